/* imap_fetch_parse.c - FETCH data items (RFC 3501 6.4.5): the items and
 * macros, body sections "BODY[1.2.HEADER.FIELDS (From)]<0.100>", and the
 * bytes a section names in a parsed message (with CRLF line ends, as IMAP
 * sends them; messages are stored with LF). Pure, no I/O. */
#include "imap.h"
#include "core/arena.h"
#include "core/util.h"
#include "mime/mime.h"

#include <stdlib.h>
#include <string.h>

void imap_fetch_free(struct imap_fetch *f)
{
	for (size_t i = 0; i < f->nsecs; i++) {
		for (size_t k = 0; k < f->secs[i].nfields; k++)
			free(f->secs[i].fields[k]);
		free(f->secs[i].fields);
		free(f->secs[i].label);
	}
	free(f->secs);
	memset(f, 0, sizeof(*f));
}

static struct imap_section *imap_fetch_add(struct imap_fetch *f)
{
	f->secs = xreallocarray(f->secs, f->nsecs + 1, sizeof(*f->secs));
	struct imap_section *s = &f->secs[f->nsecs++];
	memset(s, 0, sizeof(*s));
	return s;
}

/* A decimal number of at most 10 digits (< 2^32 + ...); -1 if none. */
static int imap_number(struct str *s, uint64_t *v)
{
	size_t i = 0;
	*v = 0;
	while (i < s->len && i < 10 && s->p[i] >= '0' && s->p[i] <= '9')
		*v = *v * 10 + (uint64_t)(s->p[i++] - '0');
	if (i == 0 || (i < s->len && s->p[i] >= '0' && s->p[i] <= '9'))
		return -1;
	s->p += i;
	s->len -= i;
	return 0;
}

static bool imap_eat(struct str *s, const char *lit)
{
	size_t n = strlen(lit);
	if (s->len < n || !str_case_prefix(*s, lit))
		return false;
	s->p += n;
	s->len -= n;
	return true;
}

/* " (name name ...)" of HEADER.FIELDS; names may be quoted. */
static int imap_section_fields(struct str s, struct imap_section *sec)
{
	if (!imap_eat(&s, " (") || s.len == 0 || s.p[s.len - 1] != ')')
		return -1;
	s.len--;
	while (s.len > 0) {
		size_t n = 0;
		while (n < s.len && s.p[n] != ' ')
			n++;
		struct str name = { s.p, n };
		if (name.len >= 2 && name.p[0] == '"' && name.p[name.len - 1] == '"') {
			name.p++;
			name.len -= 2;
		}
		for (size_t i = 0; i < name.len; i++)
			if ((unsigned char)name.p[i] <= ' ' || (unsigned char)name.p[i] >= 0x7f ||
			    name.p[i] == ':' || name.p[i] == '"')
				return -1;
		if (name.len == 0 || sec->nfields >= IMAP_SECTION_FIELDS_MAX)
			return -1;
		sec->fields = xreallocarray(sec->fields, sec->nfields + 1, sizeof(*sec->fields));
		sec->fields[sec->nfields++] = xstrndup(name.p, name.len);
		s.p += n;
		s.len -= n;
		if (s.len > 0) {
			s.p++;          /* the space */
			s.len--;
			if (s.len == 0)
				return -1;
		}
	}
	return sec->nfields > 0 ? 0 : -1;
}

/* section-spec inside the brackets. */
static int imap_section_spec(struct str s, struct imap_section *sec)
{
	while (s.len > 0 && s.p[0] >= '1' && s.p[0] <= '9') {
		uint64_t n;
		if (imap_number(&s, &n) < 0 || n > UINT32_MAX || sec->nparts >= IMAP_SECTION_DEPTH)
			return -1;
		sec->part[sec->nparts++] = (unsigned)n;
		if (s.len == 0)
			return 0;
		if (!imap_eat(&s, ".") || s.len == 0)
			return -1;
	}
	sec->kind = IMAP_SEC_ALL;
	if (s.len == 0)
		return sec->nparts == 0 ? 0 : -1;
	if (str_case_eq(s, "HEADER")) {
		sec->kind = IMAP_SEC_HEADER;
		return 0;
	}
	if (str_case_eq(s, "TEXT")) {
		sec->kind = IMAP_SEC_TEXT;
		return 0;
	}
	if (str_case_eq(s, "MIME")) {
		sec->kind = IMAP_SEC_MIME;
		return sec->nparts > 0 ? 0 : -1;
	}
	if (imap_eat(&s, "HEADER.FIELDS.NOT")) {
		sec->kind = IMAP_SEC_FIELDS_NOT;
		return imap_section_fields(s, sec);
	}
	if (imap_eat(&s, "HEADER.FIELDS")) {
		sec->kind = IMAP_SEC_FIELDS;
		return imap_section_fields(s, sec);
	}
	return -1;
}

/* "<origin.count>" after a section, if any. */
static int imap_section_partial(struct str rest, struct imap_section *sec)
{
	uint64_t n;
	if (rest.len == 0)
		return 0;
	if (!imap_eat(&rest, "<") || imap_number(&rest, &sec->origin) < 0 || !imap_eat(&rest, ".") ||
	    imap_number(&rest, &n) < 0 || n == 0 || !str_case_eq(rest, ">"))
		return -1;
	sec->partial = true;
	sec->count = n;
	return 0;
}

/* The response name: "BODY[1.2]<0>" (a partial's origin only, 6.4.5). */
static void imap_section_label(struct imap_section *sec, const char *item, struct str spec)
{
	struct buf b = { 0 };
	buf_printf(&b, "%s[%.*s]", item, STR_FMT(spec));
	if (sec->partial)
		buf_printf(&b, "<%llu>", (unsigned long long)sec->origin);
	sec->label = xstrdup(buf_ptr(&b));
	buf_free(&b);
}

/* BODY[...]<o.n> or BODY.PEEK[...]<o.n>. */
static int imap_fetch_body(struct imap_fetch *f, struct str s)
{
	bool peek = imap_eat(&s, "BODY.PEEK[");
	if (!peek && !imap_eat(&s, "BODY["))
		return -1;
	const char *close = NULL;
	for (size_t i = 0; i < s.len; i++)
		if (s.p[i] == ']')
			close = s.p + i;
	if (close == NULL)
		return -1;
	struct str spec = { s.p, (size_t)(close - s.p) };
	struct str rest = { close + 1, (size_t)(s.p + s.len - close - 1) };
	struct imap_section *sec = imap_fetch_add(f);
	sec->peek = peek;
	if (imap_section_spec(spec, sec) < 0 || imap_section_partial(rest, sec) < 0)
		return -1;
	imap_section_label(sec, "BODY", spec);
	if (!peek)
		f->sets_seen = true;
	return 0;
}

/* RFC 3516 4.2: BINARY[part]<o.n>, BINARY.PEEK[part]<o.n>, BINARY.SIZE[part]:
 * part numbers only, no HEADER/TEXT/MIME. */
static int imap_fetch_binary(struct imap_fetch *f, struct str s)
{
	bool size = imap_eat(&s, "BINARY.SIZE[");
	bool peek = !size && imap_eat(&s, "BINARY.PEEK[");
	if (!size && !peek && !imap_eat(&s, "BINARY["))
		return -1;
	const char *close = memchr(s.p, ']', s.len);
	if (close == NULL)
		return -1;
	struct str spec = { s.p, (size_t)(close - s.p) };
	struct str rest = { close + 1, (size_t)(s.p + s.len - close - 1) };
	struct imap_section *sec = imap_fetch_add(f);
	sec->binary = true;
	sec->size_only = size;
	sec->peek = peek || size;
	if (imap_section_spec(spec, sec) < 0 || sec->kind != IMAP_SEC_ALL ||
	    (size && rest.len > 0) || imap_section_partial(rest, sec) < 0)
		return -1;
	imap_section_label(sec, size ? "BINARY.SIZE" : "BINARY", spec);
	if (!sec->peek)
		f->sets_seen = true;
	return 0;
}

static int imap_fetch_rfc822(struct imap_fetch *f, struct str s)
{
	static const struct {
		const char *name;
		enum imap_section_kind kind;
		bool peek;
	} items[] = {
		{ "RFC822", IMAP_SEC_ALL, false },
		{ "RFC822.HEADER", IMAP_SEC_HEADER, true },
		{ "RFC822.TEXT", IMAP_SEC_TEXT, false },
	};
	for (size_t i = 0; i < ARRAY_SIZE(items); i++) {
		if (!str_case_eq(s, items[i].name))
			continue;
		struct imap_section *sec = imap_fetch_add(f);
		sec->kind = items[i].kind;
		sec->peek = items[i].peek;
		sec->label = xstrdup(items[i].name);
		if (!items[i].peek)
			f->sets_seen = true;
		return 0;
	}
	return -1;
}

static int imap_fetch_item(struct imap_fetch *f, const struct imap_arg *a)
{
	static const struct {
		const char *name;
		unsigned attr;
	} attrs[] = {
		{ "UID", IMAP_FETCH_UID }, { "FLAGS", IMAP_FETCH_FLAGS },
		{ "INTERNALDATE", IMAP_FETCH_INTERNALDATE }, { "RFC822.SIZE", IMAP_FETCH_RFC822_SIZE },
		{ "ENVELOPE", IMAP_FETCH_ENVELOPE }, { "BODYSTRUCTURE", IMAP_FETCH_BODYSTRUCTURE },
		{ "BODY", IMAP_FETCH_BODY }, { "MODSEQ", IMAP_FETCH_MODSEQ },    /* RFC 7162 3.1.4.1 */
	};
	if (a->type != IMAP_ARG_ATOM)
		return -1;
	for (size_t i = 0; i < ARRAY_SIZE(attrs); i++)
		if (str_case_eq(a->s, attrs[i].name)) {
			f->attrs |= attrs[i].attr;
			return 0;
		}
	if (str_case_prefix(a->s, "RFC822"))
		return imap_fetch_rfc822(f, a->s);
	if (str_case_prefix(a->s, "BINARY"))
		return imap_fetch_binary(f, a->s);
	return imap_fetch_body(f, a->s);
}

int imap_fetch_parse(const struct imap_arg *args, size_t nargs, struct imap_fetch *f,
		     const char **why)
{
	memset(f, 0, sizeof(*f));
	*why = "Invalid fetch item";
	if (nargs == 0 || args[0].span != nargs)
		return -1;
	if (args[0].type == IMAP_ARG_ATOM) {
		/* RFC 3501 6.4.5: the macros, only alone */
		struct str s = args[0].s;
		unsigned fast = IMAP_FETCH_FLAGS | IMAP_FETCH_INTERNALDATE | IMAP_FETCH_RFC822_SIZE;
		if (str_case_eq(s, "FAST"))
			f->attrs = fast;
		else if (str_case_eq(s, "ALL"))
			f->attrs = fast | IMAP_FETCH_ENVELOPE;
		else if (str_case_eq(s, "FULL"))
			f->attrs = fast | IMAP_FETCH_ENVELOPE | IMAP_FETCH_BODY;
		else
			return imap_fetch_item(f, &args[0]);
		return 0;
	}
	if (args[0].type != IMAP_ARG_LIST || args[0].members == 0 || args[0].members != nargs - 1)
		return -1;
	for (size_t i = 1; i < nargs; i++)
		if (imap_fetch_item(f, &args[i]) < 0)
			return -1;
	return 0;
}

/* --- rendering --- */

size_t imap_crlf_len(const char *src, size_t len)
{
	size_t n = len;
	for (const char *lf = src; (lf = memchr(lf, '\n', (size_t)(src + len - lf))) != NULL; lf++)
		n += lf == src || lf[-1] != '\r';
	return n;
}

/* The hot loop of every body FETCH: memchr from line end to line end, one
 * memcpy per line (a byte loop with two appends per line was a third of
 * the CPU of a large FETCH). dst has room for 2 * len; returns its length. */
size_t imap_crlf_copy(char *dst, const char *src, size_t len)
{
	size_t n = 0, start = 0;
	for (const char *lf = src; (lf = memchr(lf, '\n', (size_t)(src + len - lf))) != NULL; lf++) {
		size_t i = (size_t)(lf - src);
		if (i > 0 && src[i - 1] == '\r')
			continue;
		memcpy(dst + n, src + start, i - start);
		n += i - start;
		dst[n++] = '\r';
		dst[n++] = '\n';
		start = i + 1;
	}
	memcpy(dst + n, src + start, len - start);
	return n + len - start;
}

/* Above this a counting pass is cheaper than reserving twice the size. */
#define IMAP_CRLF_SPARE_MAX ((size_t)256 << 10)

void imap_append_crlf(struct buf *out, const char *src, size_t len)
{
	char *w = buf_reserve(out, len <= IMAP_CRLF_SPARE_MAX ? 2 * len : imap_crlf_len(src, len));
	buf_commit(out, imap_crlf_copy(w, src, len));
}

void imap_append_crlf_literal(struct buf *out, const char *label, const char *src, size_t len,
			      size_t hint)
{
	if (len > IMAP_CRLF_SPARE_MAX) {
		buf_printf(out, " %s {%zu}\r\n", label, imap_crlf_len(src, len));
		imap_append_crlf(out, src, len);
		return;
	}
	/* one pass: the prefix written with the expected size (the Maildir
	 * W= size, RFC822.SIZE), the bytes converted right after it; when the
	 * size turns out different, the bytes move behind a corrected prefix
	 * (a memmove the common case no longer pays) */
	size_t room = strlen(label) + 32;       /* > any prefix and its NUL */
	char *w = buf_reserve(out, 2 * room + 2 * len);
	size_t h = hint ? (size_t)snprintf(w, room, " %s {%zu}\r\n", label, hint) : room;
	size_t n = imap_crlf_copy(w + h, src, len);
	if (hint == 0 || n != hint) {
		char *pre = w + room + 2 * len;         /* spare room after any data */
		size_t h2 = (size_t)snprintf(pre, room, " %s {%zu}\r\n", label, n);
		memmove(w + h2, w + h, n);
		memcpy(w, pre, h2);
		h = h2;
	}
	buf_commit(out, h + n);
}

static bool imap_part_multipart(const struct mime_part *p)
{
	return str_case_eq(p->ctype.type, "multipart") && p->children != NULL;
}

static bool imap_part_message(const struct mime_part *p)
{
	return str_case_eq(p->ctype.type, "message") && p->children != NULL &&
	       (str_case_eq(p->ctype.subtype, "rfc822") || str_case_eq(p->ctype.subtype, "global"));
}

static const struct mime_part *imap_nth_child(const struct mime_part *p, unsigned n)
{
	const struct mime_part *c = p->children;
	while (c != NULL && --n > 0)
		c = c->next;
	return c;
}

/* RFC 3501 6.4.5: part numbers; a non-multipart has part 1 = itself, a
 * message/rfc822 part's numbers continue inside the encapsulated message. */
static const struct mime_part *imap_section_part(const struct imap_section *sec,
						 const struct mime_message *m)
{
	const struct mime_part *cur = m->root;
	for (unsigned i = 0; i < sec->nparts && cur != NULL; i++) {
		unsigned n = sec->part[i];
		if (i > 0 && imap_part_message(cur))
			cur = cur->children;    /* the encapsulated message */
		if (imap_part_multipart(cur))
			cur = imap_nth_child(cur, n);
		else if (n != 1)
			cur = NULL;
	}
	return cur;
}

static bool imap_field_listed(const struct imap_section *sec, struct str name)
{
	for (size_t i = 0; i < sec->nfields; i++)
		if (str_case_eq(name, sec->fields[i]))
			return true;
	return false;
}

static void imap_render_fields(const struct imap_section *sec, const struct mime_message *m,
			       const struct mime_headers *h, struct buf *out)
{
	bool want = sec->kind == IMAP_SEC_FIELDS;
	for (size_t i = 0; i < h->count; i++)
		if (imap_field_listed(sec, h->v[i].name) == want)
			imap_append_crlf(out, m->data + h->v[i].offset, h->v[i].size);
	buf_append(out, "\r\n", 2);
}

int imap_section_binary(const struct imap_section *sec, const struct mime_message *m,
			struct buf *out)
{
	const struct mime_part *p = imap_section_part(sec, m);
	if (p == NULL)
		return 0;
	if (sec->nparts == 0 || imap_part_multipart(p) || imap_part_message(p)) {
		imap_append_crlf(out, m->data + (sec->nparts ? p->body_offset : 0),
				 sec->nparts ? p->body_size : m->len);
		return 0;
	}
	if (p->enc == MIME_ENC_UNKNOWN)
		return -1;
	struct arena *a = arena_new();
	struct str d = mime_part_decode(a, m, p, NULL);
	if (p->enc == MIME_ENC_BASE64)
		buf_append(out, d.p, d.len);
	else
		imap_append_crlf(out, d.p, d.len);
	arena_destroy(&a);
	return 0;
}

void imap_section_render(const struct imap_section *sec, const struct mime_message *m,
			 struct buf *out)
{
	const struct mime_part *p = imap_section_part(sec, m);
	if (p == NULL)
		return;
	if (sec->kind == IMAP_SEC_ALL) {
		if (sec->nparts == 0)
			imap_append_crlf(out, m->data, m->len);
		else
			imap_append_crlf(out, m->data + p->body_offset, p->body_size);
		return;
	}
	if (sec->kind == IMAP_SEC_MIME) {
		imap_append_crlf(out, m->data + p->hdr.offset, p->hdr.size);
		return;
	}
	/* HEADER / HEADER.FIELDS / TEXT of the message or of a message/rfc822 */
	if (sec->nparts > 0) {
		if (!imap_part_message(p))
			return;
		p = p->children;
	}
	if (sec->kind == IMAP_SEC_HEADER)
		imap_append_crlf(out, m->data + p->hdr.offset, p->hdr.size);
	else if (sec->kind == IMAP_SEC_TEXT)
		imap_append_crlf(out, m->data + p->body_offset, p->body_size);
	else
		imap_render_fields(sec, m, &p->hdr, out);
}
