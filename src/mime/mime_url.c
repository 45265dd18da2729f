/* mime_url.c - URLs in text and links, split far enough for spam rules
 * (scheme, host). Candidates are found with memchr on ':' and '.', so plain
 * text costs little. */
#include "mime_int.h"

static bool is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* Browsers take '\' as '/' in http(s) URLs; phishers know it. */
static bool host_end(char c)
{
	return c == '/' || c == '\\' || c == '?' || c == '#';
}

static struct str authority_host(struct str s)
{
	size_t e = 0;
	while (e < s.len && !host_end(s.p[e]))
		e++;
	struct str auth = { s.p, e };
	const char *at = memrchr(auth.p, '@', auth.len);
	if (at) {
		auth.len -= (size_t)(at + 1 - auth.p);
		auth.p = at + 1;
	}
	if (auth.len > 0 && auth.p[0] == '[') {
		const char *rb = memchr(auth.p, ']', auth.len);
		if (rb)
			auth.len = (size_t)(rb + 1 - auth.p);
		return auth;
	}
	const char *colon = memchr(auth.p, ':', auth.len);
	if (colon)
		auth.len = (size_t)(colon - auth.p);
	return auth;
}

int mime_url_parse(struct str url, struct mime_url *r)
{
	url = mime_trim_lwsp(url);
	*r = (struct mime_url){ .url = url, .scheme = { url.p, 0 }, .host = { url.p, 0 } };
	size_t i = 0;
	while (i < url.len && i < 32 && (is_alnum(url.p[i]) || url.p[i] == '+' || url.p[i] == '-' ||
					 url.p[i] == '.'))
		i++;
	if (i > 0 && i < url.len && url.p[i] == ':' && !(url.p[0] >= '0' && url.p[0] <= '9')) {
		r->scheme = (struct str){ url.p, i };
		struct str rest = { url.p + i + 1, url.len - i - 1 };
		if (rest.len >= 2 && (rest.p[0] == '/' || rest.p[0] == '\\') &&
		    (rest.p[1] == '/' || rest.p[1] == '\\')) {
			r->host = authority_host((struct str){ rest.p + 2, rest.len - 2 });
		} else if (mime_case_eq(r->scheme.p, r->scheme.len, "mailto")) {
			const char *q = memchr(rest.p, '?', rest.len);
			size_t n = q ? (size_t)(q - rest.p) : rest.len;
			const char *at = memrchr(rest.p, '@', n);
			if (at)
				r->host = (struct str){ at + 1, (size_t)(rest.p + n - at - 1) };
		}
		return 0;
	}
	if (url.len >= 4 && mime_case_eq(url.p, 4, "www.")) {
		r->flags |= MIME_URL_NO_SCHEME;
		r->host = authority_host(url);
		return 0;
	}
	if (url.len >= 2 && url.p[0] == '/' && url.p[1] == '/') {
		r->host = authority_host((struct str){ url.p + 2, url.len - 2 });
		return 0;
	}
	return -1;
}

static void url_push(struct arena *a, struct mime_url **v, size_t *n, const struct mime_url *u)
{
	/* Capacity is the next power of two >= n (at least 8). */
	size_t cap = 8;
	while (cap < *n)
		cap *= 2;
	if (*n == 0 || *n == cap) {
		size_t ncap = *n == 0 ? 8 : cap * 2;
		struct mime_url *nv = arena_alloc(a, ncap * sizeof(*nv));
		if (*n)
			memcpy(nv, *v, *n * sizeof(*nv));
		*v = nv;
	}
	(*v)[(*n)++] = *u;
}

/* End of a URL starting at s: stops at whitespace, controls and <>"`,
 * then gives back trailing punctuation (and ')' without a '('). */
static size_t url_end(const char *p, size_t len, size_t s)
{
	size_t e = s;
	int parens = 0;
	while (e < len) {
		unsigned char c = (unsigned char)p[e];
		if (c <= ' ' || c == 0x7f || c == '<' || c == '>' || c == '"' || c == '`')
			break;
		parens += c == '(';
		parens -= c == ')';
		e++;
	}
	while (e > s) {
		char c = p[e - 1];
		if (c == ')' && parens < 0) {
			parens++;
			e--;
		} else if (c == '.' || c == ',' || c == ';' || c == ':' || c == '!' || c == '?' ||
			   c == '\'' || c == '*' || c == ']' || c == '}') {
			e--;
		} else {
			break;
		}
	}
	return e;
}

/* A URL start for the ':' at c: "http://", "https://", "ftp://", "mailto:x@". */
static size_t scheme_start(const char *p, size_t len, size_t c)
{
	size_t s = c;
	while (s > 0 && c - s < 6 && ((p[s - 1] >= 'a' && p[s - 1] <= 'z') ||
				      (p[s - 1] >= 'A' && p[s - 1] <= 'Z')))
		s--;
	if (s > 0 && (is_alnum(p[s - 1]) || p[s - 1] == '.'))
		return SIZE_MAX;
	struct str sc = { p + s, c - s };
	bool slashes = c + 2 < len && p[c + 1] == '/' && p[c + 2] == '/';
	if (slashes && (mime_case_eq(sc.p, sc.len, "http") || mime_case_eq(sc.p, sc.len, "https") ||
			mime_case_eq(sc.p, sc.len, "ftp")))
		return s;
	if (mime_case_eq(sc.p, sc.len, "mailto") && c + 1 < len && p[c + 1] > ' ')
		return s;
	return SIZE_MAX;
}

/* A "www." start for the '.' at d. */
static size_t www_start(const char *p, size_t len, size_t d)
{
	if (d < 3 || d + 1 >= len || !is_alnum(p[d + 1]) || !mime_case_eq(p + d - 3, 3, "www"))
		return SIZE_MAX;
	size_t s = d - 3;
	if (s > 0 && (is_alnum(p[s - 1]) || p[s - 1] == '.' || p[s - 1] == '/' || p[s - 1] == '@' ||
		      p[s - 1] == '-'))
		return SIZE_MAX;
	return s;
}

void mime_urls_find(struct arena *a, struct str text, size_t max, struct mime_url **urls_r,
		    size_t *count_r)
{
	const char *p = text.p;
	size_t len = text.len, pos = 0;
	const char *colon = memchr(p, ':', len), *dot = memchr(p, '.', len);
	while (*count_r < max && (colon || dot)) {
		bool is_colon = colon && (!dot || colon < dot);
		size_t at = (size_t)((is_colon ? colon : dot) - p);
		size_t s = is_colon ? scheme_start(p, len, at) : www_start(p, len, at);
		size_t next = at + 1;
		if (s != SIZE_MAX && s >= pos) {
			size_t e = url_end(p, len, s);
			struct mime_url u;
			if (e > at + 1 && mime_url_parse((struct str){ p + s, e - s }, &u) == 0) {
				url_push(a, urls_r, count_r, &u);
				pos = next = e;
			}
		}
		if (colon && (size_t)(colon - p) < next)
			colon = next < len ? memchr(p + next, ':', len - next) : NULL;
		if (dot && (size_t)(dot - p) < next)
			dot = next < len ? memchr(p + next, '.', len - next) : NULL;
	}
}

void mime_text_urls(struct arena *a, const struct mime_text *t, size_t max,
		    struct mime_url **urls_r, size_t *count_r)
{
	for (size_t i = 0; i < t->nlinks && *count_r < max; i++) {
		struct mime_url u;
		if (mime_url_parse(t->links[i].href, &u) == 0) {
			u.flags |= MIME_URL_HREF;
			url_push(a, urls_r, count_r, &u);
		}
	}
	mime_urls_find(a, t->text, max, urls_r, count_r);
}
