/* mime_html.c - a minimal HTML to text converter for spam rules: enough to
 * read what a recipient would see and which links they would click, not a
 * renderer (no DOM, no CSS). One pass over the bytes. */
#include "mime_int.h"

struct html {
	struct arena *a;
	const char *p;
	size_t len, i;
	struct mime_out o;
	bool space;            /* whitespace seen since the last output byte */
	size_t link_start;     /* output offset where the open <a> began */
	bool in_link;
	struct mime_link *links;
	size_t nlinks, cap;
	size_t *link_off;      /* text start/end offsets, resolved at the end */
};

/* Named references worth knowing in mail; zero-width ones decode to
 * nothing (they are used to break words for filters). */
static const struct { const char *name; uint32_t cp; } entities[] = {
	{ "amp", '&' }, { "lt", '<' }, { "gt", '>' }, { "quot", '"' }, { "apos", '\'' },
	{ "nbsp", ' ' }, { "copy", 0xa9 }, { "reg", 0xae }, { "trade", 0x2122 },
	{ "euro", 0x20ac }, { "pound", 0xa3 }, { "yen", 0xa5 }, { "cent", 0xa2 },
	{ "sect", 0xa7 }, { "deg", 0xb0 }, { "plusmn", 0xb1 }, { "middot", 0xb7 },
	{ "laquo", 0xab }, { "raquo", 0xbb }, { "ndash", 0x2013 }, { "mdash", 0x2014 },
	{ "lsquo", 0x2018 }, { "rsquo", 0x2019 }, { "ldquo", 0x201c }, { "rdquo", 0x201d },
	{ "sbquo", 0x201a }, { "bdquo", 0x201e }, { "hellip", 0x2026 }, { "bull", 0x2022 },
	{ "times", 0xd7 }, { "auml", 0xe4 }, { "ouml", 0xf6 }, { "uuml", 0xfc },
	{ "Auml", 0xc4 }, { "Ouml", 0xd6 }, { "Uuml", 0xdc }, { "szlig", 0xdf },
	{ "eacute", 0xe9 }, { "egrave", 0xe8 }, { "agrave", 0xe0 }, { "ccedil", 0xe7 },
	{ "zwnj", 0 }, { "zwj", 0 }, { "shy", 0 },
};

static bool zero_width(uint32_t cp)
{
	return cp == 0 || cp == 0xad || (cp >= 0x200b && cp <= 0x200d) || cp == 0xfeff;
}

/* Decodes the reference at p[i] ('&'); returns its length, 0 if it is not
 * one (then '&' is literal). */
static size_t entity(const char *p, size_t len, size_t i, uint32_t *cp)
{
	size_t k = i + 1;
	if (k < len && p[k] == '#') {
		bool hex = k + 1 < len && (p[k + 1] == 'x' || p[k + 1] == 'X');
		k += hex ? 2 : 1;
		uint32_t v = 0;
		size_t s = k;
		for (; k < len; k++) {
			int d = hex ? mime_hex((unsigned char)p[k]) :
				(p[k] >= '0' && p[k] <= '9' ? p[k] - '0' : -1);
			if (d < 0)
				break;
			if (v <= 0x10ffff)
				v = v * (hex ? 16 : 10) + (uint32_t)d;
		}
		if (k == s)
			return 0;
		*cp = v == 0 || v > 0x10ffff ? 0xfffd : v;
		return (k < len && p[k] == ';' ? k + 1 : k) - i;
	}
	size_t s = k;
	while (k < len && k - s < 10 && ((p[k] >= 'a' && p[k] <= 'z') || (p[k] >= 'A' && p[k] <= 'Z')))
		k++;
	if (k >= len || p[k] != ';')
		return 0;
	for (size_t e = 0; e < sizeof(entities) / sizeof(entities[0]); e++)
		if (strlen(entities[e].name) == k - s && memcmp(entities[e].name, p + s, k - s) == 0) {
			*cp = entities[e].cp;
			return k + 1 - i;
		}
	return 0;
}

static inline void emit_space_if_pending(struct html *h)
{
	if (!h->space)
		return;
	if (h->o.len > 0 && h->o.p[h->o.len - 1] != '\n' && h->o.p[h->o.len - 1] != ' ')
		mime_out_byte(&h->o, ' ');
	h->space = false;
}

static void emit_newline(struct html *h, bool always)
{
	while (h->o.len > 0 && h->o.p[h->o.len - 1] == ' ')
		h->o.len--;
	size_t n = 0;
	while (n < h->o.len && n < 2 && h->o.p[h->o.len - 1 - n] == '\n')
		n++;
	if (h->o.len > 0 && (always ? n < 2 : n == 0))
		mime_out_byte(&h->o, '\n');
	h->space = false;
}

static bool is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Skips to just after the first case-insensitive "</name" ... '>'. */
static void skip_raw_text(struct html *h, const char *name)
{
	size_t n = strlen(name);
	for (; h->i < h->len; h->i++) {
		if (h->p[h->i] != '<' || h->i + 2 + n > h->len || h->p[h->i + 1] != '/' ||
		    !mime_case_eq(h->p + h->i + 2, n, name))
			continue;
		const char *gt = memchr(h->p + h->i, '>', h->len - h->i);
		h->i = gt ? (size_t)(gt - h->p) + 1 : h->len;
		return;
	}
}

static struct str href_decode(struct html *h, struct str v)
{
	v = mime_trim_lwsp(v);
	if (memchr(v.p, '&', v.len) == NULL)
		return v;
	struct mime_out o;
	mime_out_init(&o, h->a, v.len);
	for (size_t i = 0; i < v.len;) {
		uint32_t cp;
		size_t n = v.p[i] == '&' ? entity(v.p, v.len, i, &cp) : 0;
		if (n == 0) {
			mime_out_byte(&o, v.p[i++]);
			continue;
		}
		if (!zero_width(cp))
			mime_out_utf8(&o, cp);
		i += n;
	}
	return mime_out_str(&o);
}

static void link_close(struct html *h)
{
	if (!h->in_link)
		return;
	h->in_link = false;
	h->link_off[2 * (h->nlinks - 1)] = h->link_start;
	h->link_off[2 * (h->nlinks - 1) + 1] = h->o.len;
}

static void link_open(struct html *h, struct str href)
{
	link_close(h);
	if (h->nlinks == MIME_HTML_LINKS_MAX)
		return;
	if (h->nlinks == h->cap) {
		size_t ncap = h->cap ? h->cap * 2 : 8;
		struct mime_link *v = arena_alloc(h->a, ncap * sizeof(*v));
		size_t *off = arena_alloc(h->a, 2 * ncap * sizeof(*off));
		if (h->nlinks) {
			memcpy(v, h->links, h->nlinks * sizeof(*v));
			memcpy(off, h->link_off, 2 * h->nlinks * sizeof(*off));
		}
		h->links = v;
		h->link_off = off;
		h->cap = ncap;
	}
	h->links[h->nlinks++].href = href_decode(h, href);
	emit_space_if_pending(h);
	h->link_start = h->o.len;
	h->link_off[2 * (h->nlinks - 1)] = h->link_off[2 * (h->nlinks - 1) + 1] = h->o.len;
	h->in_link = true;
}

/* Parses attributes up to '>'; returns the href value (or an empty str). */
static struct str attributes(struct html *h)
{
	const char *p = h->p;
	struct str href = { NULL, 0 };
	while (h->i < h->len && p[h->i] != '>') {
		if (mime_is_lwsp((unsigned char)p[h->i]) || p[h->i] == '/') {
			h->i++;
			continue;
		}
		size_t s = h->i;
		while (h->i < h->len && !mime_is_lwsp((unsigned char)p[h->i]) && p[h->i] != '=' &&
		       p[h->i] != '>' && p[h->i] != '/')
			h->i++;
		if (h->i == s) {
			h->i++;      /* a stray '=' */
			continue;
		}
		struct str name = { p + s, h->i - s };
		while (h->i < h->len && mime_is_lwsp((unsigned char)p[h->i]))
			h->i++;
		if (h->i >= h->len || p[h->i] != '=')
			continue;
		h->i++;
		while (h->i < h->len && mime_is_lwsp((unsigned char)p[h->i]))
			h->i++;
		struct str v;
		if (h->i < h->len && (p[h->i] == '"' || p[h->i] == '\'')) {
			const char *q = memchr(p + h->i + 1, p[h->i], h->len - h->i - 1);
			size_t e = q ? (size_t)(q - p) : h->len;
			v = (struct str){ p + h->i + 1, e - h->i - 1 };
			h->i = q ? e + 1 : h->len;
		} else {
			s = h->i;
			while (h->i < h->len && !mime_is_lwsp((unsigned char)p[h->i]) && p[h->i] != '>')
				h->i++;
			v = (struct str){ p + s, h->i - s };
		}
		if (href.p == NULL && name.len == 4 && mime_case_eq(name.p, name.len, "href"))
			href = v;
	}
	if (h->i < h->len)
		h->i++;
	return href;
}

enum tag_kind { TAG_OTHER, TAG_BLOCK, TAG_BR, TAG_CELL, TAG_ANCHOR, TAG_SCRIPT, TAG_STYLE };

static const struct { const char *name; enum tag_kind kind; } tag_kinds[] = {
	{ "p", TAG_BLOCK }, { "div", TAG_BLOCK }, { "tr", TAG_BLOCK }, { "li", TAG_BLOCK },
	{ "h1", TAG_BLOCK }, { "h2", TAG_BLOCK }, { "h3", TAG_BLOCK }, { "h4", TAG_BLOCK },
	{ "h5", TAG_BLOCK }, { "h6", TAG_BLOCK }, { "table", TAG_BLOCK }, { "ul", TAG_BLOCK },
	{ "ol", TAG_BLOCK }, { "blockquote", TAG_BLOCK }, { "pre", TAG_BLOCK }, { "hr", TAG_BLOCK },
	{ "title", TAG_BLOCK }, { "dt", TAG_BLOCK }, { "dd", TAG_BLOCK }, { "section", TAG_BLOCK },
	{ "article", TAG_BLOCK }, { "header", TAG_BLOCK }, { "footer", TAG_BLOCK },
	{ "form", TAG_BLOCK }, { "dl", TAG_BLOCK }, { "center", TAG_BLOCK },
	{ "address", TAG_BLOCK }, { "nav", TAG_BLOCK }, { "aside", TAG_BLOCK },
	{ "main", TAG_BLOCK }, { "tbody", TAG_BLOCK }, { "br", TAG_BR }, { "td", TAG_CELL },
	{ "th", TAG_CELL }, { "a", TAG_ANCHOR }, { "area", TAG_ANCHOR },
	{ "script", TAG_SCRIPT }, { "style", TAG_STYLE },
};

/* Tag names are short: lower-case into a small buffer, then compare. */
static enum tag_kind tag_kind(struct str n)
{
	char lc[12];
	if (n.len == 0 || n.len >= sizeof(lc))
		return TAG_OTHER;
	for (size_t i = 0; i < n.len; i++)
		lc[i] = (char)mime_lower((unsigned char)n.p[i]);
	lc[n.len] = '\0';
	for (size_t i = 0; i < sizeof(tag_kinds) / sizeof(tag_kinds[0]); i++)
		if (tag_kinds[i].name[0] == lc[0] && strcmp(tag_kinds[i].name, lc) == 0)
			return tag_kinds[i].kind;
	return TAG_OTHER;
}

static void tag(struct html *h)
{
	const char *p = h->p;
	size_t k = h->i + 1;
	if (k + 2 < h->len && p[k] == '!' && p[k + 1] == '-' && p[k + 2] == '-') {
		const char *e = memmem(p + k + 3, h->len - k - 3, "-->", 3);
		h->i = e ? (size_t)(e - p) + 3 : h->len;
		return;
	}
	if (k < h->len && (p[k] == '!' || p[k] == '?')) {
		const char *gt = memchr(p + k, '>', h->len - k);
		h->i = gt ? (size_t)(gt - p) + 1 : h->len;
		return;
	}
	bool close = k < h->len && p[k] == '/';
	k += close;
	size_t s = k;
	while (k < h->len && (is_alpha(p[k]) || (k > s && p[k] >= '0' && p[k] <= '9')))
		k++;
	struct str name = { p + s, k - s };
	h->i = k;
	struct str href = attributes(h);
	switch (tag_kind(name)) {
	case TAG_SCRIPT:
	case TAG_STYLE:
		if (!close)
			skip_raw_text(h, name.len == 6 ? "script" : "style");
		break;
	case TAG_ANCHOR:
		if (close)
			link_close(h);
		else if (href.p != NULL)
			link_open(h, href);
		break;
	case TAG_BR:
		emit_newline(h, true);
		break;
	case TAG_BLOCK:
		emit_newline(h, false);
		break;
	case TAG_CELL:
		h->space = true;
		break;
	case TAG_OTHER:
		break;
	}
}

static void text_byte(struct html *h, char c)
{
	if (mime_is_lwsp((unsigned char)c) || c == '\f') {
		h->space = true;
		return;
	}
	emit_space_if_pending(h);
	mime_out_byte(&h->o, c);
}

/* HTML 5 4.2.5.5: <meta charset=X> or http-equiv content "...; charset=X",
 * looked for (case-insensitively) in the first 1024 bytes only. */
struct str mime_html_meta_charset(struct str html)
{
	size_t n = html.len < 1024 ? html.len : 1024;
	for (size_t i = 0; i + 8 < n; i++) {
		if (mime_lower((unsigned char)html.p[i]) != 'c' || !mime_case_eq(html.p + i, 7, "charset"))
			continue;
		size_t k = i + 7;
		while (k < n && mime_is_lwsp((unsigned char)html.p[k]))
			k++;
		if (k >= n || html.p[k] != '=')
			continue;
		k++;
		while (k < n && (mime_is_lwsp((unsigned char)html.p[k]) || html.p[k] == '"' ||
				 html.p[k] == '\''))
			k++;
		size_t s = k;
		while (k < n && (mime_hex((unsigned char)html.p[k]) >= 0 ||
				 (html.p[k] >= 'g' && html.p[k] <= 'z') ||
				 (html.p[k] >= 'G' && html.p[k] <= 'Z') || html.p[k] == '-' ||
				 html.p[k] == '_' || html.p[k] == '.' || html.p[k] == ':'))
			k++;
		if (k > s)
			return (struct str){ html.p + s, k - s };
	}
	return (struct str){ html.p, 0 };
}

void mime_html_to_text(struct arena *a, struct str html, struct mime_text *r)
{
	struct html h = { .a = a, .p = html.p, .len = html.len };
	mime_out_init(&h.o, a, html.len / 2 + 16);
	while (h.i < h.len) {
		char c = h.p[h.i];
		if (c == '<' && h.i + 1 < h.len &&
		    (is_alpha(h.p[h.i + 1]) || h.p[h.i + 1] == '/' || h.p[h.i + 1] == '!' ||
		     h.p[h.i + 1] == '?')) {
			tag(&h);
		} else if (c == '&') {
			uint32_t cp;
			size_t n = entity(h.p, h.len, h.i, &cp);
			if (n == 0) {
				text_byte(&h, c);
				h.i++;
				continue;
			}
			h.i += n;
			if (cp == ' ')
				h.space = true;
			else if (!zero_width(cp)) {
				emit_space_if_pending(&h);
				mime_out_utf8(&h.o, cp);
			}
		} else {
			text_byte(&h, c);
			h.i++;
		}
	}
	link_close(&h);
	while (h.o.len > 0 && (h.o.p[h.o.len - 1] == ' ' || h.o.p[h.o.len - 1] == '\n'))
		h.o.len--;
	*r = (struct mime_text){ .text = mime_out_str(&h.o), .html = true,
				 .links = h.links, .nlinks = h.nlinks };
	for (size_t i = 0; i < h.nlinks; i++) {
		size_t s = h.link_off[2 * i], e = h.link_off[2 * i + 1];
		if (e > r->text.len)
			e = r->text.len;
		if (s > e)
			s = e;
		r->links[i].text = mime_trim_lwsp((struct str){ r->text.p + s, e - s });
	}
}
