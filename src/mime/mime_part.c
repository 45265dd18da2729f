/* mime_part.c - the RFC 2046 part tree of a message held in one buffer.
 *
 * A multipart's body [s, e) is split at its own delimiter lines ("--" B,
 * then only whitespace, or "--" B "--"), searched with memmem over the whole
 * region; each child is parsed the same way inside its range. An outer
 * delimiter therefore always ends an inner part whose own close delimiter is
 * missing (RFC 2046 5.1.2), and a boundary that is a prefix of another does
 * not match it (the rest of the line must be blank). The line end before a
 * delimiter belongs to the delimiter (RFC 2046 5.1.1). */
#include "mime_int.h"

/* Recursion bound whatever limits the caller passes. */
#define MIME_DEPTH_HARD_MAX 100

struct pctx {
	struct arena *a;
	const char *p;
	const struct mime_limits *lim;
	struct mime_message *m;
	unsigned parts_cap;
	unsigned depth_max, parts_max;
};

struct delim {
	size_t start;   /* first byte of "--B" */
	size_t next;    /* start of the following line */
	bool close;     /* "--B--" */
};

/* Finds the next delimiter line of boundary b at a line start in [pos, end).
 * Candidates are found with memchr on '-', which base64 never contains, so
 * attachments are skipped at memchr speed (memmem with a short needle is a
 * byte loop in glibc and was 60% of the parse time). */
static bool delim_find(const struct pctx *c, struct str b, size_t pos, size_t end, struct delim *d)
{
	const char *p = c->p;
	size_t from = pos;
	while (from + 2 + b.len <= end) {
		const char *hit = memchr(p + from, '-', end - from - 1 - b.len);
		if (hit == NULL)
			return false;
		size_t ls = (size_t)(hit - p);
		from = ls + 1;
		if (p[ls + 1] != '-' || (ls > pos && p[ls - 1] != '\n') ||
		    memcmp(p + ls + 2, b.p, b.len) != 0)
			continue;
		size_t k = ls + 2 + b.len;
		const char *nl = memchr(p + k, '\n', end - k);
		size_t le = nl ? (size_t)(nl - p) : end;
		d->start = ls;
		d->next = nl ? le + 1 : end;
		d->close = k + 2 <= le && p[k] == '-' && p[k + 1] == '-';
		if (d->close)
			return true;
		while (k < le && mime_is_lwsp((unsigned char)p[k]))
			k++;
		if (k == le)
			return true;
	}
	return false;
}

static enum mime_enc enc_parse(struct str v)
{
	size_t i = 0;
	mime_skip_cfws(v.p, v.len, &i, NULL);
	size_t s = i;
	while (i < v.len && !mime_is_lwsp((unsigned char)v.p[i]) && v.p[i] != '(' && v.p[i] != ';')
		i++;
	static const struct { const char *name; enum mime_enc enc; } encs[] = {
		{ "7bit", MIME_ENC_7BIT }, { "8bit", MIME_ENC_8BIT },
		{ "binary", MIME_ENC_BINARY }, { "quoted-printable", MIME_ENC_QP },
		{ "base64", MIME_ENC_BASE64 },
	};
	for (size_t k = 0; k < sizeof(encs) / sizeof(encs[0]); k++)
		if (mime_case_eq(v.p + s, i - s, encs[k].name))
			return encs[k].enc;
	return MIME_ENC_UNKNOWN;
}

static void ctype_default(struct mime_part *part, bool digest)
{
	part->ctype.type = digest ? STR_LIT("message") : STR_LIT("text");
	part->ctype.subtype = digest ? STR_LIT("rfc822") : STR_LIT("plain");
	part->ctype.params = NULL;
	part->ctype.nparams = 0;
}

/* Fills the part's MIME fields from its Content-* headers; the first of
 * each wins. */
static void content_headers(struct pctx *c, struct mime_part *part, bool digest)
{
	bool have_type = false, have_enc = false, have_disp = false;
	for (size_t i = 0; i < part->hdr.count; i++) {
		const struct mime_header *h = &part->hdr.v[i];
		if (h->name.len < 10 || !mime_case_eq(h->name.p, 8, "content-"))
			continue;
		const char *n = h->name.p + 8;
		size_t nl = h->name.len - 8;
		if (!have_type && mime_case_eq(n, nl, "type")) {
			have_type = true;
			if (mime_ctype_parse(c->a, h->value, &part->ctype) < 0) {
				part->flags |= MIME_PART_BAD_CTYPE;
				ctype_default(part, digest);
			}
		} else if (!have_enc && mime_case_eq(n, nl, "transfer-encoding")) {
			have_enc = true;
			part->enc_raw = h->value;
			part->enc = enc_parse(h->value);
		} else if (!have_disp && mime_case_eq(n, nl, "disposition")) {
			have_disp = true;
			mime_disposition_parse(c->a, h->value, &part->disp);
		} else if (part->id.len == 0 && mime_case_eq(n, nl, "id")) {
			part->id = h->value;
		} else if (part->description.len == 0 && mime_case_eq(n, nl, "description")) {
			part->description = h->value;
		} else if (part->language.len == 0 && mime_case_eq(n, nl, "language")) {
			part->language = h->value;
		} else if (part->location.len == 0 && mime_case_eq(n, nl, "location")) {
			part->location = h->value;
		} else if (part->md5.len == 0 && mime_case_eq(n, nl, "md5")) {
			part->md5 = h->value;
		}
	}
	if (!have_type)
		ctype_default(part, digest);
	if ((part->ctype.flags | part->disp.flags) != 0)
		part->flags |= MIME_PART_BAD_PARAMS;
	if (part->hdr.flags & MIME_HDR_BROKEN)
		part->flags |= MIME_PART_BAD_HEADER;
	if (part->enc == MIME_ENC_UNKNOWN)
		part->flags |= MIME_PART_BAD_ENCODING;
	const struct mime_param *pa = mime_param_get(&part->ctype, "charset");
	if (pa)
		part->charset = pa->raw;
	pa = mime_param_get(&part->ctype, "boundary");
	if (pa)
		part->boundary = pa->raw;
	pa = mime_param_get(&part->disp, "filename");
	if (pa == NULL)
		pa = mime_param_get(&part->ctype, "name");
	if (pa)
		part->filename = pa->value;
}

static struct mime_part *part_new(struct pctx *c, struct mime_part *parent, unsigned depth)
{
	struct mime_message *m = c->m;
	struct mime_part *part = arena_alloc(c->a, sizeof(*part));
	part->parent = parent;
	part->depth = depth;
	part->index = m->nparts;
	if (m->nparts == c->parts_cap) {
		unsigned ncap = c->parts_cap ? c->parts_cap * 2 : 8;
		struct mime_part **v = arena_alloc(c->a, ncap * sizeof(*v));
		if (m->nparts)
			memcpy(v, m->parts, m->nparts * sizeof(*v));
		m->parts = v;
		c->parts_cap = ncap;
	}
	m->parts[m->nparts++] = part;
	return part;
}

static struct mime_part *part_parse(struct pctx *c, struct mime_part *parent, size_t start,
				    size_t end, bool digest, bool leaf_only);

/* The body range of a child ending where delimiter d starts. */
static size_t child_end(const char *p, size_t child_start, size_t ls)
{
	if (ls > child_start && p[ls - 1] == '\n')
		ls--;
	if (ls > child_start && p[ls - 1] == '\r')
		ls--;
	return ls;
}

static void multipart_split(struct pctx *c, struct mime_part *part, size_t end)
{
	struct str b = part->boundary;
	struct delim d;
	bool digest = mime_case_eq(part->ctype.subtype.p, part->ctype.subtype.len, "digest");
	if (!delim_find(c, b, part->body_offset, end, &d) || d.close) {
		part->flags |= MIME_PART_BOUNDARY_MISSING;
		return;
	}
	struct mime_part **tail = &part->children;
	for (;;) {
		size_t cs = d.next;
		struct delim nd;
		bool found = delim_find(c, b, cs, end, &nd);
		size_t ce = found ? child_end(c->p, cs, nd.start) : end;
		if (!found)
			part->flags |= MIME_PART_NO_END_BOUNDARY;
		if (c->m->nparts >= c->parts_max) {
			part->flags |= MIME_PART_PARTS_LIMIT;
			return;
		}
		bool last = c->m->nparts + 1 == c->parts_max;
		*tail = part_parse(c, part, cs, last ? end : ce, digest, last);
		tail = &(*tail)->next;
		part->nchildren++;
		if (last && found && !nd.close)
			part->flags |= MIME_PART_PARTS_LIMIT;   /* siblings merged */
		if (last || !found || nd.close)
			return;
		d = nd;
	}
}

static void message_parse(struct pctx *c, struct mime_part *part, size_t end)
{
	if (part->enc != MIME_ENC_7BIT && part->enc != MIME_ENC_8BIT &&
	    part->enc != MIME_ENC_BINARY) {
		part->flags |= MIME_PART_BAD_ENCODING;
		return;
	}
	if (c->m->nparts >= c->parts_max) {
		part->flags |= MIME_PART_PARTS_LIMIT;
		return;
	}
	part->children = part_parse(c, part, part->body_offset, end, false,
				    c->m->nparts + 1 == c->parts_max);
	part->nchildren = 1;
}

static struct mime_part *part_parse(struct pctx *c, struct mime_part *parent, size_t start,
				    size_t end, bool digest, bool leaf_only)
{
	unsigned depth = parent ? parent->depth + 1 : 0;
	struct mime_part *part = part_new(c, parent, depth);
	mime_headers_parse(c->a, c->p, start, end, c->lim, &part->hdr);
	part->body_offset = part->hdr.body_offset;
	part->body_size = end - part->body_offset;
	size_t crlf;
	mime_count_lines(c->p + part->body_offset, part->body_size, &part->body_lines, &crlf);
	part->body_vsize = part->body_size + part->body_lines - crlf;
	content_headers(c, part, digest);
	bool multi = mime_case_eq(part->ctype.type.p, part->ctype.type.len, "multipart");
	bool msg = mime_part_is_type(part, "message", "rfc822") ||
		mime_part_is_type(part, "message", "global");
	if (multi && part->boundary.len == 0)
		part->flags |= MIME_PART_NO_BOUNDARY;
	if (multi && (part->enc == MIME_ENC_QP || part->enc == MIME_ENC_BASE64))
		part->flags |= MIME_PART_BAD_ENCODING;   /* RFC 2045 6.4; split anyway */
	if (!(msg || (multi && part->boundary.len > 0))) {
		/* a leaf */
	} else if (leaf_only) {
		part->flags |= MIME_PART_PARTS_LIMIT;
	} else if (depth >= c->depth_max) {
		part->flags |= MIME_PART_DEPTH_LIMIT;
	} else if (multi) {
		multipart_split(c, part, end);
	} else {
		message_parse(c, part, end);
	}
	c->m->flags |= part->flags;
	return part;
}

void mime_parse(struct arena *a, const char *p, size_t len, const struct mime_limits *lim,
		struct mime_message *r)
{
	*r = (struct mime_message){ .data = p, .len = len };
	struct pctx c = { .a = a, .p = p, .lim = lim ? lim : &mime_limits_default, .m = r };
	c.depth_max = c.lim->depth_max < MIME_DEPTH_HARD_MAX ? c.lim->depth_max : MIME_DEPTH_HARD_MAX;
	c.parts_max = c.lim->parts_max > 0 ? c.lim->parts_max : 1;
	part_parse(&c, NULL, 0, len, false, c.parts_max == 1);
	r->root = r->parts[0];
}

bool mime_part_is_type(const struct mime_part *p, const char *type, const char *subtype)
{
	return mime_case_eq(p->ctype.type.p, p->ctype.type.len, type) &&
		(subtype == NULL || mime_case_eq(p->ctype.subtype.p, p->ctype.subtype.len, subtype));
}

bool mime_part_is_text(const struct mime_part *p)
{
	return mime_part_is_type(p, "text", NULL) && p->filename.len == 0 &&
		!mime_case_eq(p->disp.type.p, p->disp.type.len, "attachment");
}
