/* imap_cache.c - what the folder cache (store/mcache.h) holds for IMAP:
 * ENVELOPE, BODY and BODYSTRUCTURE as they are sent, the internal date,
 * the sent date (SEARCH SENT*) and the SORT/THREAD keys (imap_sort.c). Built from one parse of the
 * message when a FETCH or SEARCH first needs it (SORT and THREAD make a
 * record of the keys alone, from the header); afterwards a FETCH of
 * these items opens no message file at all (what lets a 10,000-message
 * folder list fast, as Dovecot's dovecot.index.cache does). Runs on pool
 * threads. */
#include "imap_int.h"
#include "core/arena.h"
#include "mime/mime.h"

#include <string.h>

void imap_cache_fill_free(struct imap_cache_fill *f)
{
	buf_free(&f->env);
	buf_free(&f->body);
	buf_free(&f->bs);
	buf_free(&f->sort);
	memset(f, 0, sizeof(*f));
}

/* RFC 3501 6.4.4 SENT*: the Date: header's day in its own zone; a
 * message without a usable Date: counts by its internal date (as
 * Dovecot does). *utc: the same instant without the zone (SORT DATE). */
static int64_t imap_cache_sent(const struct mime_headers *h, time_t internal, time_t *utc)
{
	struct mime_date d;
	const struct mime_header *date = mime_headers_get(h, "Date");
	*utc = internal;
	if (date == NULL || mime_date_parse(date->value, &d) < 0)
		return (int64_t)internal;
	*utc = d.t;
	return (int64_t)d.t + (int64_t)d.tz_min * 60;
}

static void imap_cache_field(struct mcache_rec *r, enum mcache_field id, const struct buf *b)
{
	r->field[id] = buf_ptr(b);
	r->field_len[id] = (uint32_t)b->len;
}

/* The record's fixed part, and what old (the UID's previous record, or
 * NULL) has that this fill does not make: records merge, so a SORT after
 * a FETCH (or the other way round) does not undo the first one's work. */
static void imap_cache_rec(struct imap_cache_fill *f, uint32_t uid, time_t internal, int64_t sent,
			   const struct mcache_rec *old)
{
	memset(&f->rec, 0, sizeof(f->rec));
	f->rec.uid = uid;
	f->rec.internal = (int64_t)internal;
	f->rec.sent = sent;
	for (int id = 1; old != NULL && id <= MCACHE_FIELD_LAST; id++) {
		f->rec.field[id] = old->field[id];
		f->rec.field_len[id] = old->field_len[id];
	}
}

void imap_cache_fill(struct imap_cache_fill *f, uint32_t uid, time_t internal, const char *data,
		     size_t len, const struct mcache_rec *old)
{
	struct arena *a = arena_new();
	struct mime_message mm;
	mime_parse(a, data, len, NULL, &mm);
	buf_clear(&f->env);
	buf_clear(&f->body);
	buf_clear(&f->bs);
	time_t utc;
	int64_t sent = imap_cache_sent(&mm.root->hdr, internal, &utc);
	imap_envelope(&f->env, a, &mm.root->hdr);
	imap_bodystructure(&f->body, a, &mm, false);
	imap_bodystructure(&f->bs, a, &mm, true);
	imap_cache_rec(f, uid, internal, sent, old);
	imap_cache_field(&f->rec, MCACHE_ENVELOPE, &f->env);
	imap_cache_field(&f->rec, MCACHE_BODY, &f->body);
	imap_cache_field(&f->rec, MCACHE_BODYSTRUCTURE, &f->bs);
	arena_destroy(&a);
}

void imap_cache_fill_sort(struct imap_cache_fill *f, uint32_t uid, time_t internal, const char *data,
			  size_t len, const struct mcache_rec *old)
{
	struct arena *a = arena_new();
	struct mime_headers h;
	mime_headers_parse(a, data, 0, len, NULL, &h);
	buf_clear(&f->sort);
	time_t utc;
	int64_t sent = imap_cache_sent(&h, internal, &utc);
	imap_sort_fill(&f->sort, a, &h, utc);
	imap_cache_rec(f, uid, internal, sent, old);
	imap_cache_field(&f->rec, MCACHE_SORT, &f->sort);
	arena_destroy(&a);
}

bool imap_cache_complete(const struct mcache_rec *r)
{
	return r->field[MCACHE_ENVELOPE] != NULL && r->field[MCACHE_BODY] != NULL &&
	       r->field[MCACHE_BODYSTRUCTURE] != NULL;
}

bool imap_cache_dated(const struct mcache_rec *r)
{
	return r->field[MCACHE_ENVELOPE] != NULL || r->field[MCACHE_SORT] != NULL;
}
