/* uidlist.c - Dovecot's dovecot-uidlist format: a pure, resumable parser
 * and the line formatters (no I/O here; mailbox.c reads and writes). */
#include "mailbox.h"
#include "core/util.h"

#include <stdio.h>
#include <string.h>

void uidlist_parser_init(struct uidlist_parser *p)
{
	memset(p, 0, sizeof(*p));
	p->state = UIDLIST_HEADER;
}

static int uidlist_uint(struct str s, uint32_t *out)
{
	uint64_t v;
	if (util_parse_uint(s.p, s.len, UINT32_MAX, &v) != 0)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

/* Next space-separated token of *s (consumed). */
static struct str uidlist_token(struct str *s)
{
	size_t i = 0;
	while (i < s->len && s->p[i] == ' ')
		i++;
	size_t start = i;
	while (i < s->len && s->p[i] != ' ')
		i++;
	struct str t = { s->p + start, i - start };
	s->p += i;
	s->len -= i;
	return t;
}

static bool uidlist_is_hex(struct str s)
{
	for (size_t i = 0; i < s.len; i++)
		if (!((s.p[i] >= '0' && s.p[i] <= '9') || (s.p[i] >= 'a' && s.p[i] <= 'f') ||
		      (s.p[i] >= 'A' && s.p[i] <= 'F')))
			return false;
	return true;
}

/* Version 3: "3 V<uidvalidity> N<nextuid> [G<guid>] [other fields]".
 * Versions 1 and 2: "1 <uidvalidity> <nextuid>". */
int uidlist_parse_header(struct str line, struct uidlist_header *h)
{
	memset(h, 0, sizeof(*h));
	struct str t = uidlist_token(&line);
	if (t.len != 1 || t.p[0] < '1' || t.p[0] > '3')
		return -1;
	h->version = (unsigned)(t.p[0] - '0');
	if (h->version < 3) {
		struct str v = uidlist_token(&line), n = uidlist_token(&line);
		if (uidlist_uint(v, &h->uidvalidity) < 0 || uidlist_uint(n, &h->next_uid) < 0)
			return -1;
		return h->uidvalidity == 0 || h->next_uid == 0 ? -1 : 0;
	}
	bool have_v = false, have_n = false;
	while ((t = uidlist_token(&line)).len > 0) {
		struct str val = { t.p + 1, t.len - 1 };
		if (t.p[0] == 'V')
			have_v = uidlist_uint(val, &h->uidvalidity) == 0;
		else if (t.p[0] == 'N')
			have_n = uidlist_uint(val, &h->next_uid) == 0;
		else if (t.p[0] == 'G' && val.len < sizeof(h->guid) && uidlist_is_hex(val))
			memcpy(h->guid, val.p, val.len);
	}
	if (!have_v || !have_n || h->uidvalidity == 0 || h->next_uid == 0)
		return -1;
	return 0;
}

/* The record's file name is matched by its base (Dovecot's
 * maildir_filename_base_cmp): a record may carry ":2,FLAGS" and still name
 * the file whatever its flags are now. */
static int uidlist_set_name(struct uidlist_rec *r, struct str name)
{
	const char *c = memchr(name.p, ':', name.len);
	if (c != NULL)
		name.len = (size_t)(c - name.p);
	if (name.len == 0 || memchr(name.p, '/', name.len) || memchr(name.p, '\0', name.len))
		return -1;
	r->name = name;
	return 0;
}

/* The UID field; UINT32_MAX is corrupt for Dovecot too (no next UID). */
static int uidlist_rec_uid(struct str *line, struct uidlist_rec *r)
{
	struct str uid = uidlist_token(line);
	if (uid.len == 0 || uid.p[0] == '0' || uidlist_uint(uid, &r->uid) < 0 || r->uid == UINT32_MAX)
		return -1;
	return 0;
}

/* Version 3: "<uid> [ext ...] :<name>". Like Dovecot's
 * maildir_uidlist_read_extended, ext tokens are skipped until one starts
 * with ':' (an ext value may itself hold a ':', e.g. a migrated P<uidl>). */
int uidlist_parse_record(struct str line, struct uidlist_rec *r)
{
	if (uidlist_rec_uid(&line, r) < 0)
		return -1;
	const char *ext_start = NULL, *ext_end = NULL;
	for (;;) {
		struct str t = uidlist_token(&line);
		if (t.len == 0)
			return -1;
		if (t.p[0] == ':') {
			struct str name = { t.p + 1, (size_t)(line.p + line.len - t.p - 1) };
			r->ext = ext_start ? (struct str){ ext_start, (size_t)(ext_end - ext_start) } :
					     (struct str){ "", 0 };
			return uidlist_set_name(r, name);
		}
		if (ext_start == NULL)
			ext_start = t.p;
		ext_end = t.p + t.len;
	}
}

/* Versions 1 ("<uid> <name>", Courier's courierimapuiddb) and 2
 * ("<uid> <flags> <name>"): no extension fields. */
static int uidlist_parse_record_old(struct str line, unsigned version, struct uidlist_rec *r)
{
	if (uidlist_rec_uid(&line, r) < 0)
		return -1;
	if (version == 2 && uidlist_token(&line).len == 0)
		return -1;
	struct str name = uidlist_token(&line);
	if (name.len == 0 || str_trim(line).len != 0)
		return -1;
	r->ext = (struct str){ "", 0 };
	return uidlist_set_name(r, name);
}

struct str uidlist_ext_get(struct str ext, char key)
{
	struct str t;
	while ((t = uidlist_token(&ext)).len > 0)
		if (t.p[0] == key)
			return (struct str){ t.p + 1, t.len - 1 };
	return (struct str){ "", 0 };
}

static int uidlist_line(struct uidlist_parser *p, struct str line, uidlist_rec_fn *cb, void *ctx)
{
	p->lineno++;
	if (p->state == UIDLIST_HEADER) {
		if (uidlist_parse_header(line, &p->hdr) < 0)
			return -1;
		p->state = UIDLIST_RECORDS;
		return 0;
	}
	struct uidlist_rec r;
	int rc = p->hdr.version >= 3 ? uidlist_parse_record(line, &r) :
		 uidlist_parse_record_old(line, p->hdr.version, &r);
	if (rc < 0 || r.uid <= p->last_uid)
		return -1;
	p->last_uid = r.uid;
	/* A record at or past next_uid: the header is stale; never hand the
	 * same UID out again. */
	if (r.uid >= p->hdr.next_uid)
		p->hdr.next_uid = r.uid + 1;
	return cb(ctx, &r);
}

int uidlist_parser_feed(struct uidlist_parser *p, const char *buf, size_t len,
			uidlist_rec_fn *cb, void *ctx)
{
	while (len > 0 && p->state != UIDLIST_ERROR) {
		const char *lf = memchr(buf, '\n', len);
		size_t take = lf ? (size_t)(lf - buf) : len;
		if (p->len + take >= sizeof(p->line)) {
			p->state = UIDLIST_ERROR;
			break;
		}
		memcpy(p->line + p->len, buf, take);
		p->len += take;
		if (lf == NULL)
			return 0;
		buf += take + 1;
		len -= take + 1;
		struct str line = { p->line, p->len };
		p->len = 0;
		if (uidlist_line(p, line, cb, ctx) < 0)
			p->state = UIDLIST_ERROR;
	}
	return p->state == UIDLIST_ERROR ? -1 : 0;
}

int uidlist_parser_finish(const struct uidlist_parser *p)
{
	return p->state == UIDLIST_RECORDS ? 0 : -1;
}

void uidlist_format_header(struct buf *b, const struct uidlist_header *h)
{
	buf_printf(b, "3 V%u N%u", h->uidvalidity, h->next_uid);
	if (h->guid[0])
		buf_printf(b, " G%s", h->guid);
	buf_append(b, "\n", 1);
}

void uidlist_format_record(struct buf *b, uint32_t uid, const char *ext, const char *name)
{
	buf_printf(b, "%u ", uid);
	if (ext && ext[0])
		buf_printf(b, "%s ", ext);
	buf_printf(b, ":%s\n", name);
}
