/* mime_util.c - the arena output builder and small lexical helpers shared by
 * the mime parsers (see mime_int.h). */
#include "mime_int.h"
#include "core/util.h"

const struct mime_limits mime_limits_default = {
	.header_field_max = MIME_HEADER_FIELD_MAX,
	.header_line_max = MIME_HEADER_LINE_MAX,
	.header_count_max = MIME_HEADER_COUNT_MAX,
	.depth_max = MIME_DEPTH_MAX,
	.parts_max = MIME_PARTS_MAX,
};

void mime_out_init(struct mime_out *o, struct arena *a, size_t cap)
{
	o->a = a;
	o->len = 0;
	o->cap = cap ? cap : 16;
	o->p = arena_alloc(a, o->cap + 1);
}

char *mime_out_reserve(struct mime_out *o, size_t n)
{
	if (n > o->cap - o->len) {
		if (n > SIZE_MAX / 4 - o->len)
			fatal("mime_out: size overflow");
		size_t cap = o->cap * 2;
		if (cap < o->len + n)
			cap = o->len + n;
		char *p = arena_alloc(o->a, cap + 1);
		memcpy(p, o->p, o->len);
		o->p = p;
		o->cap = cap;
	}
	return o->p + o->len;
}

void mime_out_put(struct mime_out *o, const void *p, size_t n)
{
	if (n == 0)
		return;
	memcpy(mime_out_reserve(o, n), p, n);
	o->len += n;
}

void mime_out_utf8(struct mime_out *o, uint32_t cp)
{
	char *w = mime_out_reserve(o, 4);
	if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		cp = 0xfffd;
	if (cp < 0x80) {
		w[0] = (char)cp;
		o->len += 1;
	} else if (cp < 0x800) {
		w[0] = (char)(0xc0 | (cp >> 6));
		w[1] = (char)(0x80 | (cp & 0x3f));
		o->len += 2;
	} else if (cp < 0x10000) {
		w[0] = (char)(0xe0 | (cp >> 12));
		w[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		w[2] = (char)(0x80 | (cp & 0x3f));
		o->len += 3;
	} else {
		w[0] = (char)(0xf0 | (cp >> 18));
		w[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		w[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		w[3] = (char)(0x80 | (cp & 0x3f));
		o->len += 4;
	}
}

struct str mime_out_str(struct mime_out *o)
{
	o->p[o->len] = '\0';
	return (struct str){ o->p, o->len };
}

bool mime_case_eq(const char *a, size_t alen, const char *lit)
{
	if (alen == 0 || mime_lower((unsigned char)a[0]) != mime_lower((unsigned char)lit[0]))
		return alen == 0 && lit[0] == '\0';    /* most calls end here, before a strlen */
	size_t n = strlen(lit);
	if (alen != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (mime_lower((unsigned char)a[i]) != mime_lower((unsigned char)lit[i]))
			return false;
	return true;
}

bool mime_str_case_eq(struct str a, struct str b)
{
	if (a.len != b.len)
		return false;
	for (size_t i = 0; i < a.len; i++)
		if (mime_lower((unsigned char)a.p[i]) != mime_lower((unsigned char)b.p[i]))
			return false;
	return true;
}

struct str mime_trim_lwsp(struct str s)
{
	while (s.len > 0 && mime_is_lwsp((unsigned char)s.p[0])) {
		s.p++;
		s.len--;
	}
	while (s.len > 0 && mime_is_lwsp((unsigned char)s.p[s.len - 1]))
		s.len--;
	return s;
}

/* RFC 5322 3.2.2: comments nest and may hold quoted-pairs. An unclosed
 * comment runs to the end. */
void mime_skip_cfws(const char *p, size_t len, size_t *i, struct str *comment_r)
{
	size_t k = *i;
	for (;;) {
		while (k < len && mime_is_lwsp((unsigned char)p[k]))
			k++;
		if (k >= len || p[k] != '(')
			break;
		size_t start = ++k;
		int depth = 1;
		while (k < len && depth > 0) {
			if (p[k] == '\\' && k + 1 < len)
				k++;
			else if (p[k] == '(')
				depth++;
			else if (p[k] == ')')
				depth--;
			k++;
		}
		if (comment_r) {
			size_t end = depth == 0 ? k - 1 : k;
			*comment_r = mime_trim_lwsp((struct str){ p + start, end - start });
		}
	}
	*i = k;
}

void mime_count_lines(const char *p, size_t len, size_t *lines_r, size_t *crlf_r)
{
	size_t crlf = 0;
	const char *end = p + len, *q = memchr(p, '\r', len);
	/* Stored mail has LF ends: the CRLF count is only needed when a CR is
	 * there at all. */
	while (q != NULL && q + 1 < end) {
		if (q[1] == '\n')
			crlf++;
		q = memchr(q + 1, '\r', (size_t)(end - q - 1));
	}
	size_t lines = 0;
	for (q = p; q < end; lines++) {
		q = memchr(q, '\n', (size_t)(end - q));
		if (q == NULL)
			break;
		q++;
	}
	*lines_r = lines;
	*crlf_r = crlf;
}

struct str mime_unquote(struct arena *a, const char *p, size_t len)
{
	if (memchr(p, '\\', len) == NULL)
		return (struct str){ p, len };
	char *w = arena_alloc(a, len + 1);
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		if (p[i] == '\\' && i + 1 < len)
			i++;
		w[n++] = p[i];
	}
	return (struct str){ w, n };
}
