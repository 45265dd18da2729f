/* mime_header.c - RFC 5322 2.2 header fields: iteration over a header block,
 * unfolding, lookup by name. Lines are found with memchr; a field is its
 * first line plus every following line that starts with WSP. */
#include "mime_int.h"

void mime_header_iter_init(struct mime_header_iter *it, const char *p, size_t start,
			   size_t end, const struct mime_limits *lim)
{
	*it = (struct mime_header_iter){ .p = p, .pos = start, .end = end,
					 .body_offset = end,
					 .lim = lim ? lim : &mime_limits_default };
}

/* The end of the line starting at pos (offset of its LF, or end) and the
 * start of the next one. Counts the line end. */
static size_t line_end(struct mime_header_iter *it, size_t pos, size_t *next_r)
{
	const char *nl = memchr(it->p + pos, '\n', it->end - pos);
	if (nl == NULL) {
		*next_r = it->end;
		return it->end;
	}
	size_t e = (size_t)(nl - it->p);
	it->lines++;
	if (e > pos && it->p[e - 1] == '\r')
		it->crlf++;
	*next_r = e + 1;
	return e;
}

/* Length of the line's content without a trailing CR. */
static size_t content_len(const char *p, size_t pos, size_t e)
{
	return (e > pos && p[e - 1] == '\r') ? e - pos - 1 : e - pos;
}

/* RFC 5322 3.6.8: field-name = 1*(%d33-57 / %d59-126). */
static unsigned name_check(struct str *name)
{
	unsigned flags = 0;
	if (name->len > 0 && mime_is_wsp((unsigned char)name->p[name->len - 1])) {
		flags |= MIME_HDR_NAME_WSP;
		while (name->len > 0 && mime_is_wsp((unsigned char)name->p[name->len - 1]))
			name->len--;
	}
	if (name->len == 0)
		return flags | MIME_HDR_BROKEN;
	for (size_t i = 0; i < name->len; i++) {
		unsigned char c = (unsigned char)name->p[i];
		if (c < 33 || c > 126)
			return flags | MIME_HDR_BROKEN;
	}
	return flags;
}

static void field_fill(struct mime_header_iter *it, size_t start, size_t first_end,
		       size_t last_end, struct mime_header *h)
{
	const char *p = it->p;
	size_t first_len = content_len(p, start, first_end);
	size_t last_len = content_len(p, start, last_end);   /* up to the final CR */
	const char *colon = memchr(p + start, ':', first_len);
	if (mime_is_wsp((unsigned char)p[start])) {
		/* A continuation with nothing to continue. */
		h->name = (struct str){ p + start, 0 };
		h->raw = (struct str){ p + start, last_len };
		h->flags |= MIME_HDR_BROKEN;
	} else if (colon == NULL) {
		/* Dovecot: missing ':', the whole line is the name. */
		h->name = (struct str){ p + start, first_len };
		h->raw = (struct str){ p + first_end, 0 };
		h->flags |= MIME_HDR_BROKEN;
	} else {
		size_t c = (size_t)(colon - p);
		h->name = (struct str){ p + start, c - start };
		h->flags |= name_check(&h->name);
		h->raw = (struct str){ p + c + 1, start + last_len - c - 1 };
	}
	size_t field_max = it->lim->header_field_max;
	if (last_len > field_max) {
		h->flags |= MIME_HDR_TRUNCATED;
		size_t room = h->raw.p >= p + start + field_max ? 0 :
			(size_t)(p + start + field_max - h->raw.p);
		if (h->raw.len > room)
			h->raw.len = room;
		if (h->name.len > field_max)
			h->name.len = field_max;
	}
	h->value = mime_trim_lwsp(h->raw);
}

int mime_header_next(struct mime_header_iter *it, struct mime_header *h)
{
	const char *p = it->p;
	size_t start = it->pos, next;
	if (start >= it->end) {
		it->flags |= MIME_HDRS_NO_END;
		it->body_offset = it->end;
		return 0;
	}
	size_t first_end = line_end(it, start, &next);
	if (content_len(p, start, first_end) == 0) {
		/* The empty line ends the block (RFC 5322 2.1). */
		it->pos = it->body_offset = next;
		return 0;
	}
	*h = (struct mime_header){ .offset = start };
	size_t line_max = it->lim->header_line_max;
	if (content_len(p, start, first_end) > line_max)
		h->flags |= MIME_HDR_LONG_LINE;
	size_t last_end = first_end;
	while (next < it->end && mime_is_wsp((unsigned char)p[next])) {
		size_t s = next;
		last_end = line_end(it, s, &next);
		if (content_len(p, s, last_end) > line_max)
			h->flags |= MIME_HDR_LONG_LINE;
	}
	field_fill(it, start, first_end, last_end, h);
	h->size = next - start;
	it->pos = next;
	return 1;
}

struct str mime_header_unfold(struct arena *a, struct str raw)
{
	const char *nl = memchr(raw.p, '\n', raw.len);
	if (nl == NULL)
		return mime_trim_lwsp(raw);
	char *w = arena_alloc(a, raw.len + 1);
	size_t n = 0;
	const char *q = raw.p, *end = raw.p + raw.len;
	while (nl != NULL) {
		size_t k = (size_t)(nl - q);
		if (k > 0 && nl[-1] == '\r')
			k--;
		memcpy(w + n, q, k);
		n += k;
		q = nl + 1;
		nl = memchr(q, '\n', (size_t)(end - q));
	}
	memcpy(w + n, q, (size_t)(end - q));
	n += (size_t)(end - q);
	return mime_trim_lwsp((struct str){ w, n });
}

/* Fields are collected on the stack and copied to the arena at their exact
 * count (most part headers have two or three); only blocks with more than
 * HDR_STACK fields grow in the arena. */
#define HDR_STACK 48

void mime_headers_parse(struct arena *a, const char *p, size_t start, size_t end,
			const struct mime_limits *lim, struct mime_headers *r)
{
	struct mime_header_iter it;
	struct mime_header stack[HDR_STACK], *v = stack, h;
	size_t cap = HDR_STACK, n = 0;
	mime_header_iter_init(&it, p, start, end, lim);
	*r = (struct mime_headers){ .offset = start };
	while (mime_header_next(&it, &h)) {
		r->flags |= h.flags;
		if (n >= it.lim->header_count_max) {
			r->flags |= MIME_HDRS_TOO_MANY;
			continue;
		}
		if (n == cap) {
			struct mime_header *nv = arena_alloc(a, 2 * cap * sizeof(*nv));
			memcpy(nv, v, n * sizeof(*nv));
			v = nv;
			cap *= 2;
		}
		h.value = mime_header_unfold(a, h.raw);
		v[n++] = h;
	}
	if (v == stack && n > 0) {
		r->v = arena_alloc(a, n * sizeof(*v));
		memcpy(r->v, stack, n * sizeof(*v));
	} else {
		r->v = v;
	}
	r->count = n;
	r->flags |= it.flags;
	r->body_offset = it.body_offset;
	r->size = it.body_offset - start;
	r->vsize = r->size + (it.lines - it.crlf);
}

const struct mime_header *mime_headers_next(const struct mime_headers *h, const char *name,
					    const struct mime_header *prev)
{
	size_t i = prev ? (size_t)(prev - h->v) + 1 : 0;
	size_t n = strlen(name);
	if (n == 0)
		return NULL;
	for (; i < h->count; i++) {
		const struct mime_header *f = &h->v[i];
		if (f->name.len == n && mime_lower((unsigned char)f->name.p[0]) ==
		    mime_lower((unsigned char)name[0]) && mime_case_eq(f->name.p, n, name))
			return f;
	}
	return NULL;
}

const struct mime_header *mime_headers_get(const struct mime_headers *h, const char *name)
{
	return mime_headers_next(h, name, NULL);
}
