/* imap_search.c - SEARCH and UID SEARCH (RFC 3501 6.4.4), with ESEARCH's
 * RETURN (MIN MAX ALL COUNT) (RFC 4731), SEARCHRES's SAVE and "$" (RFC
 * 5182) and CONDSTORE's MODSEQ key (RFC 7162 3.1.5).
 *
 * The keys are parsed on the loop into a tree; the messages are matched on
 * the I/O pool, reading a file only when a key needs its header or body.
 * Strings match as case-insensitive substrings (RFC 3501 6.4.4) of the
 * decoded text (imap_search_text.c). Dates compare days: BEFORE/ON/SINCE
 * the internal date (the file's mtime, UTC), SENT* the Date header in its
 * own zone; both come from the folder cache when it has the message, so
 * date searches open no file. CHARSET may be
 * US-ASCII or UTF-8 (else NO [BADCHARSET]). MODSEQ compares the session's
 * snapshot, as FETCH MODSEQ reports it. SAVE keeps the UIDs found (only
 * the MIN/MAX ones when those are all that is asked, 5182 2.4) for "$"
 * in later commands; a SAVE that fails leaves "$" empty (2.1). */
#include "imap_int.h"
#include "core/arena.h"
#include "core/conn.h"
#include "core/log.h"
#include "core/pool.h"
#include "core/util.h"
#include "mime/mime.h"
#include "store/mailbox.h"
#include "store/modseq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define IMAP_SEARCH_DEPTH 32
#define IMAP_SEARCH_FILE_MAX ((size_t)64 << 20)
#define IMAP_SEARCH_HEAD_STEP ((size_t)16 << 10)     /* a SORT key read */

enum imap_skey_type {
	SK_ALL, SK_AND, SK_OR, SK_NOT, SK_FLAG, SK_NOFLAG, SK_RECENT, SK_NEW, SK_OLD,
	SK_NEVER, SK_HEADER, SK_BODY, SK_TEXT, SK_BEFORE, SK_ON, SK_SINCE, SK_SENTBEFORE,
	SK_SENTON, SK_SENTSINCE, SK_LARGER, SK_SMALLER, SK_UID, SK_SEQ, SK_MODSEQ,
};

/* RETURN options (RFC 4731 3.1, RFC 5182 2.1) */
enum imap_search_ret {
	IMAP_RET_MIN = 1 << 0, IMAP_RET_MAX = 1 << 1, IMAP_RET_ALL = 1 << 2,
	IMAP_RET_COUNT = 1 << 3, IMAP_RET_SAVE = 1 << 4,
};

struct imap_skey {
	enum imap_skey_type type;
	char letter;            /* SK_FLAG / SK_NOFLAG */
	char *field, *value;    /* SK_HEADER (field), string keys (value) */
	uint64_t num;           /* sizes; days since the epoch for dates */
	struct imap_seqset set;
	struct imap_skey **kids;
	size_t nkids;
};

struct imap_search_msg {
	size_t index;
	uint32_t uid;
	char *base, *file;      /* the held snapshot's; file malloc'd once owned */
	bool file_owned;
	uint64_t vsize;
	uint64_t modseq;        /* the snapshot's (0: NOMODSEQ) */
	bool recent;
};

struct imap_search_job {
	uint64_t conn_id;
	char tag[IMAP_TAG_MAX + 1];
	char *root;
	bool uid_cmd;
	struct imap_skey *key;
	struct imap_search_msg *msgs;
	size_t n;
	struct imap_selected *sel;      /* the session's, held while the job runs */
	uint32_t max_uid, count;
	struct buf out;
	struct mcache *cache;   /* the selected folder's, held while the job runs */
	/* SORT / THREAD (imap_sort.c, imap_thread.c): the matches' keys */
	enum imap_search_mode { IMAP_SEARCH, IMAP_SORT, IMAP_THREAD_REFS, IMAP_THREAD_SUBJ } mode;
	struct imap_sort_key sort[IMAP_SORT_KEYS_MAX];
	size_t nsort;
	bool stat_only;         /* ARRIVAL / SIZE: a file's mtime is enough */
	size_t nfields;         /* of the sort keys kept per match (THREAD: all) */
	struct imap_sort_msg *hits;
	struct buf keys;        /* the hits' sort keys, each NUL-ended */
	size_t nhits;
	struct imap_cache_fill fill;
	/* SEARCH: the matches (numbers as answered, UIDs, modseqs) */
	uint32_t *num, *uids;
	uint64_t *mods;
	size_t nmatch;
	uint64_t maxmod;        /* of every match (SORT's (MODSEQ n)) */
	bool modseq_key;        /* the answer says MODSEQ (RFC 7162 3.1.5) */
	unsigned ret;           /* RETURN options; 0: a plain SEARCH */
	uint32_t *saved;        /* SAVE: the UIDs for "$" */
	size_t nsaved;
};

/* What one message offers, loaded when a key asks. */
struct imap_search_ctx {
	struct imap_search_job *j;
	struct imap_search_msg *m;
	bool loaded, statted;
	struct buf data;
	time_t mtime;
	struct arena *a;
	struct mime_headers hdr;
	bool texted;            /* fhdr and fbody are made */
	struct buf fhdr, fbody; /* folded text (imap_search_text.c) */
	struct buf tmp;
	bool found;             /* rec holds the folder cache's record */
	bool cached;            /* ... made from a parse: its dates hold (imap_cache_dated) */
	struct mcache_rec rec;
};

static void imap_skey_free(struct imap_skey *k)
{
	if (k == NULL)
		return;
	for (size_t i = 0; i < k->nkids; i++)
		imap_skey_free(k->kids[i]);
	free(k->kids);
	free(k->field);
	free(k->value);
	imap_seqset_free(&k->set);
	free(k);
}

static struct imap_skey *imap_skey_new(enum imap_skey_type type)
{
	struct imap_skey *k = xcalloc(1, sizeof(*k));
	k->type = type;
	return k;
}

static void imap_skey_add(struct imap_skey *parent, struct imap_skey *kid)
{
	parent->kids = xreallocarray(parent->kids, parent->nkids + 1, sizeof(*parent->kids));
	parent->kids[parent->nkids++] = kid;
}

/* RFC 3501 9 date: "d-Mon-yyyy" (quoted or not) -> days since the epoch. */
static int imap_search_date(const struct imap_arg *a, uint64_t *days)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	char buf[16], mon[4];
	int d, y, n = 0;
	if ((a->type != IMAP_ARG_ATOM && a->type != IMAP_ARG_QUOTED) || a->s.len > 11)
		return -1;
	snprintf(buf, sizeof(buf), "%.*s", STR_FMT(a->s));
	if (sscanf(buf, "%2d-%3s-%4d%n", &d, mon, &y, &n) != 3 || (size_t)n != strlen(buf))
		return -1;
	const char *m = strcasestr(months, mon);
	if (m == NULL || (m - months) % 3 || d < 1 || d > 31 || y < 1970 || y > 9999)
		return -1;
	struct tm tm = { .tm_mday = d, .tm_mon = (int)((m - months) / 3), .tm_year = y - 1900 };
	*days = (uint64_t)(timegm(&tm) / 86400);
	return 0;
}

static const struct {
	const char *name;
	enum imap_skey_type type;
	char letter;
} imap_simple_keys[] = {
	{ "ALL", SK_ALL, 0 }, { "ANSWERED", SK_FLAG, 'R' }, { "DELETED", SK_FLAG, 'T' },
	{ "DRAFT", SK_FLAG, 'D' }, { "FLAGGED", SK_FLAG, 'F' }, { "SEEN", SK_FLAG, 'S' },
	{ "UNANSWERED", SK_NOFLAG, 'R' }, { "UNDELETED", SK_NOFLAG, 'T' },
	{ "UNDRAFT", SK_NOFLAG, 'D' }, { "UNFLAGGED", SK_NOFLAG, 'F' }, { "UNSEEN", SK_NOFLAG, 'S' },
	{ "RECENT", SK_RECENT, 0 }, { "NEW", SK_NEW, 0 }, { "OLD", SK_OLD, 0 },
};

static const struct {
	const char *name;
	enum imap_skey_type type;
	const char *field;      /* header keys */
} imap_string_keys[] = {
	{ "FROM", SK_HEADER, "From" }, { "TO", SK_HEADER, "To" }, { "CC", SK_HEADER, "Cc" },
	{ "BCC", SK_HEADER, "Bcc" }, { "SUBJECT", SK_HEADER, "Subject" },
	{ "BODY", SK_BODY, NULL }, { "TEXT", SK_TEXT, NULL },

};

static const struct {
	const char *name;
	enum imap_skey_type type;
} imap_date_keys[] = {
	{ "BEFORE", SK_BEFORE }, { "ON", SK_ON }, { "SINCE", SK_SINCE },
	{ "SENTBEFORE", SK_SENTBEFORE }, { "SENTON", SK_SENTON }, { "SENTSINCE", SK_SENTSINCE },
};

/* What parsing the keys needs of the session and tells it. */
struct imap_spctx {
	const struct imap_keywords *kw;         /* KEYWORD keys become letters */
	const struct imap_selected *sel;        /* "$": its saved UIDs (RFC 5182) */
	bool modseq;                            /* a MODSEQ key was used (RFC 7162) */
};

static struct imap_skey *imap_search_key(const struct imap_arg *a, size_t n, size_t *used,
					 unsigned depth, struct imap_spctx *pc);

/* Keys until n: the AND of them. */
static struct imap_skey *imap_search_keys(const struct imap_arg *a, size_t n, unsigned depth,
					  struct imap_spctx *pc)
{
	struct imap_skey *and = imap_skey_new(SK_AND);
	for (size_t i = 0; i < n;) {
		size_t used = 0;
		struct imap_skey *k = imap_search_key(&a[i], n - i, &used, depth + 1, pc);
		if (k == NULL) {
			imap_skey_free(and);
			return NULL;
		}
		imap_skey_add(and, k);
		i += used;
	}
	return and;
}

/* A key with one string argument (a[0] the name). */
/* Key strings are folded once here; the text they meet is folded too. */
static char *imap_search_folded(struct str v)
{
	struct buf b = { 0 };
	imap_fold(&b, v.p, v.len);
	char *r = xstrndup(buf_ptr(&b), b.len);
	buf_free(&b);
	return r;
}

static struct imap_skey *imap_search_string_key(const struct imap_arg *a, size_t n, size_t *used,
						size_t k)
{
	struct str v;
	if (n < 2 || !imap_arg_astring(&a[1], &v))
		return NULL;
	struct imap_skey *key = imap_skey_new(imap_string_keys[k].type);
	key->value = imap_search_folded(v);
	if (imap_string_keys[k].field)
		key->field = xstrdup(imap_string_keys[k].field);
	*used = 2;
	return key;
}

/* Keys from the tables: flags (no argument), strings, dates. NULL with
 * *found false when name is none of them. */
static struct imap_skey *imap_search_table_key(const struct imap_arg *a, size_t n, size_t *used,
					       bool *found)
{
	struct str name = a[0].s;
	*found = true;
	for (size_t k = 0; k < ARRAY_SIZE(imap_simple_keys); k++)
		if (str_case_eq(name, imap_simple_keys[k].name)) {
			struct imap_skey *key = imap_skey_new(imap_simple_keys[k].type);
			key->letter = imap_simple_keys[k].letter;
			*used = 1;
			return key;
		}
	for (size_t k = 0; k < ARRAY_SIZE(imap_string_keys); k++)
		if (str_case_eq(name, imap_string_keys[k].name))
			return imap_search_string_key(a, n, used, k);
	for (size_t k = 0; k < ARRAY_SIZE(imap_date_keys); k++)
		if (str_case_eq(name, imap_date_keys[k].name)) {
			uint64_t days;
			if (n < 2 || imap_search_date(&a[1], &days) < 0)
				return NULL;
			struct imap_skey *key = imap_skey_new(imap_date_keys[k].type);
			key->num = days;
			*used = 2;
			return key;
		}
	*found = false;
	return NULL;
}

/* KEYWORD / UNKEYWORD: the letter from the selected folder's
 * dovecot-keywords; an unknown keyword is on no message. */
static struct imap_skey *imap_search_keyword_key(const struct imap_arg *a, size_t n, size_t *used,
						 struct imap_spctx *pc)
{
	bool un = str_case_eq(a[0].s, "UNKEYWORD");
	char buf[IMAP_KEYWORD_LEN_MAX + 1];
	if (n < 2 || a[1].type != IMAP_ARG_ATOM || !imap_keyword_valid(a[1].s))
		return NULL;
	snprintf(buf, sizeof(buf), "%.*s", STR_FMT(a[1].s));
	char l = imap_keywords_find(pc->kw, buf);
	struct imap_skey *key = imap_skey_new(l ? (un ? SK_NOFLAG : SK_FLAG) : (un ? SK_ALL : SK_NEVER));
	key->letter = l;
	*used = 2;
	return key;
}

static struct imap_skey *imap_search_header_key(const struct imap_arg *a, size_t n, size_t *used)
{
	struct str f, v;
	if (n < 3 || !imap_arg_astring(&a[1], &f) || !imap_arg_astring(&a[2], &v) || f.len == 0)
		return NULL;
	struct imap_skey *key = imap_skey_new(SK_HEADER);
	key->field = xstrndup(f.p, f.len);
	key->value = imap_search_folded(v);
	*used = 3;
	return key;
}

/* LARGER / SMALLER n */
static struct imap_skey *imap_search_size_key(const struct imap_arg *a, size_t n, size_t *used)
{
	uint64_t v;
	if (n < 2 || a[1].type != IMAP_ARG_ATOM || util_parse_uint(a[1].s.p, a[1].s.len, UINT32_MAX, &v) < 0)
		return NULL;
	struct imap_skey *key = imap_skey_new(str_case_eq(a[0].s, "LARGER") ? SK_LARGER : SK_SMALLER);
	key->num = v;
	*used = 2;
	return key;
}

/* A sequence set: UID set (at 1, after "UID") or a bare message set. */
static struct imap_skey *imap_search_set_key(struct str set, enum imap_skey_type type, size_t *used,
					     size_t n_used)
{
	struct imap_skey *key = imap_skey_new(type);
	if (imap_seqset_parse(set, IMAP_SEQ_RANGES_MAX, &key->set) < 0) {
		imap_skey_free(key);
		return NULL;
	}
	*used = n_used;
	return key;
}

/* RFC 5182 2.1: "$" (alone, or after UID) is the saved result, UIDs. */
static bool imap_search_is_saved(const struct imap_arg *a)
{
	return a->type == IMAP_ARG_ATOM && a->s.len == 1 && a->s.p[0] == '$';
}

static struct imap_skey *imap_search_saved_key(struct imap_spctx *pc, size_t *used, size_t n_used)
{
	struct imap_skey *key = imap_skey_new(SK_UID);
	imap_seqset_of(pc->sel->saved, pc->sel->nsaved, &key->set);
	*used = n_used;
	return key;
}

/* RFC 7162 3.1.5: MODSEQ [entry-name entry-type-req] mod-sequence-valzer;
 * a message's modseq covers all its flags, so the entry only parses. */
static struct imap_skey *imap_search_modseq_key(const struct imap_arg *a, size_t n, size_t *used,
						struct imap_spctx *pc)
{
	size_t i = 1;
	uint64_t v;
	if (n > 3 && (a[1].type == IMAP_ARG_QUOTED || a[1].type == IMAP_ARG_LITERAL)) {
		if (a[2].type != IMAP_ARG_ATOM || !(str_case_eq(a[2].s, "priv") ||
		    str_case_eq(a[2].s, "shared") || str_case_eq(a[2].s, "all")))
			return NULL;
		i = 3;
	}
	if (i >= n || a[i].type != IMAP_ARG_ATOM ||
	    util_parse_uint(a[i].s.p, a[i].s.len, MODSEQ_VALUE_MAX, &v) < 0)
		return NULL;
	struct imap_skey *key = imap_skey_new(SK_MODSEQ);
	key->num = v;
	pc->modseq = true;
	*used = i + 1;
	return key;
}

/* NOT key / OR key1 key2 */
static struct imap_skey *imap_search_bool_key(const struct imap_arg *a, size_t n, size_t *used,
					      unsigned depth, struct imap_spctx *pc)
{
	bool or = str_case_eq(a[0].s, "OR");
	struct imap_skey *key = imap_skey_new(or ? SK_OR : SK_NOT);
	size_t pos = 1;
	for (int i = 0; i < (or ? 2 : 1); i++) {
		size_t u = 0;
		struct imap_skey *kid = pos < n ? imap_search_key(&a[pos], n - pos, &u, depth + 1, pc) :
					 NULL;
		if (kid == NULL) {
			imap_skey_free(key);
			return NULL;
		}
		imap_skey_add(key, kid);
		pos += u;
	}
	*used = pos;
	return key;
}

static struct imap_skey *imap_search_named(const struct imap_arg *a, size_t n, size_t *used,
					   unsigned depth, struct imap_spctx *pc)
{
	struct str name = a[0].s;
	bool found;
	struct imap_skey *key = imap_search_table_key(a, n, used, &found);
	if (found)
		return key;
	if (str_case_eq(name, "KEYWORD") || str_case_eq(name, "UNKEYWORD"))
		return imap_search_keyword_key(a, n, used, pc);
	if (str_case_eq(name, "HEADER"))
		return imap_search_header_key(a, n, used);
	if (str_case_eq(name, "LARGER") || str_case_eq(name, "SMALLER"))
		return imap_search_size_key(a, n, used);
	if (str_case_eq(name, "UID") && n >= 2 && imap_search_is_saved(&a[1]))
		return imap_search_saved_key(pc, used, 2);
	if (str_case_eq(name, "UID"))
		return n < 2 || a[1].type != IMAP_ARG_ATOM ? NULL : imap_search_set_key(a[1].s, SK_UID, used, 2);
	if (imap_search_is_saved(&a[0]))
		return imap_search_saved_key(pc, used, 1);
	if (str_case_eq(name, "MODSEQ"))
		return imap_search_modseq_key(a, n, used, pc);
	if (str_case_eq(name, "NOT") || str_case_eq(name, "OR"))
		return imap_search_bool_key(a, n, used, depth, pc);
	return imap_search_set_key(name, SK_SEQ, used, 1);
}

static struct imap_skey *imap_search_key(const struct imap_arg *a, size_t n, size_t *used,
					 unsigned depth, struct imap_spctx *pc)
{
	if (depth > IMAP_SEARCH_DEPTH || n == 0)
		return NULL;
	if (a[0].type == IMAP_ARG_LIST) {
		*used = a[0].span;
		return a[0].members ? imap_search_keys(&a[1], a[0].span - 1, depth, pc) : NULL;
	}
	if (a[0].type != IMAP_ARG_ATOM)
		return NULL;
	return imap_search_named(a, n, used, depth, pc);
}

/* --- matching (pool thread) --- */

static bool imap_search_has(const struct buf *hay, const char *needle)
{
	return needle[0] == '\0' || memmem(buf_ptr(hay), hay->len, needle, strlen(needle)) != NULL;
}

/* The message's file open, its stat in *st (*rc: 0, or -1 if fstat
 * failed) and its mtime noted: the fd, or -1 when it is gone. */
static int imap_search_open(struct imap_search_ctx *c, struct stat *st, int *rc)
{
	if (!c->m->file_owned) {        /* mailbox_file_open may replace (free) it */
		c->m->file = xstrdup(c->m->file);
		c->m->file_owned = true;
	}
	int fd = mailbox_file_open(c->j->root, c->m->base, &c->m->file);
	if (fd < 0)
		return -1;
	*rc = fstat(fd, st) == 0 ? 0 : -1;
	c->mtime = *rc == 0 ? st->st_mtime : 0;
	c->statted = true;
	return fd;
}

/* The file's bytes (content) or just its mtime; imap_search_load adds
 * the parsed header. */
static int imap_search_read(struct imap_search_ctx *c, bool content)
{
	if (c->loaded || (!content && c->statted))
		return 0;
	if (!content) {         /* a date alone: a stat by name, no open (SORT ARRIVAL) */
		char path[4096];
		struct stat st;
		snprintf(path, sizeof(path), "%s/%s", c->j->root, c->m->file);
		if (stat(path, &st) == 0) {
			c->mtime = st.st_mtime;
			c->statted = true;
			return 0;
		}       /* renamed meanwhile: found again by its base name below */
	}
	struct stat st;
	int rc, fd = imap_search_open(c, &st, &rc);
	if (fd < 0)
		return -1;
	if (rc == 0 && content && (size_t)st.st_size < IMAP_SEARCH_FILE_MAX) {
		for (size_t left = (size_t)st.st_size; left > 0;) {
			ssize_t r = read(fd, buf_reserve(&c->data, left), left);
			if (r <= 0)
				break;
			buf_commit(&c->data, (size_t)r);
			left -= (size_t)r;
		}
		c->loaded = true;
	}
	close(fd);
	return rc;
}

/* Whether data holds a whole header block (an empty line). */
static bool imap_search_head_done(const struct buf *data)
{
	const char *p = buf_ptr(data);
	return data->len >= 2 && (memmem(p, data->len, "\n\n", 2) || memmem(p, data->len, "\n\r\n", 3));
}

/* The header of the file (at least: whole IMAP_SEARCH_HEAD_STEP reads
 * until an empty line or the end) and its mtime: what SORT and THREAD
 * keys need, without reading a large body. */
static int imap_search_read_head(struct imap_search_ctx *c)
{
	if (c->loaded)
		return 0;
	struct stat st;
	int rc, fd = imap_search_open(c, &st, &rc);
	if (fd < 0)
		return -1;
	buf_clear(&c->data);
	while (rc == 0 && c->data.len < IMAP_SEARCH_FILE_MAX && !imap_search_head_done(&c->data)) {
		ssize_t r = read(fd, buf_reserve(&c->data, IMAP_SEARCH_HEAD_STEP), IMAP_SEARCH_HEAD_STEP);
		if (r <= 0)
			break;
		buf_commit(&c->data, (size_t)r);
	}
	close(fd);
	return rc;
}

static int imap_search_load(struct imap_search_ctx *c, bool content)
{
	if (imap_search_read(c, content) < 0)
		return -1;
	if (c->loaded && c->a == NULL) {
		c->a = arena_new();
		mime_headers_parse(c->a, buf_ptr(&c->data), 0, c->data.len, NULL, &c->hdr);
	}
	return 0;
}

static bool imap_search_header(struct imap_search_ctx *c, const char *field, const char *value)
{
	if (imap_search_load(c, true) < 0 || !c->loaded)
		return false;
	for (const struct mime_header *h = NULL; (h = mime_headers_next(&c->hdr, field, h)) != NULL;) {
		if (value[0] == '\0')
			return true;    /* RFC 3501: HEADER f "" = has the field */
		struct str v = mime_2047_decode(c->a, h->value, NULL);
		buf_clear(&c->tmp);
		imap_fold(&c->tmp, v.p, v.len);
		if (imap_search_has(&c->tmp, value))
			return true;
	}
	return false;
}

static bool imap_search_has_flag(const struct imap_search_msg *m, char letter)
{
	const char *info = strstr(m->file, ":2,");
	return info != NULL && strchr(info + 3, letter) != NULL;
}

static uint64_t imap_search_sent_day(struct imap_search_ctx *c)
{
	struct mime_date d;
	if (c->cached)
		return (uint64_t)(c->rec.sent / 86400);
	if (imap_search_load(c, true) < 0 || !c->loaded)
		return 0;
	const struct mime_header *h = mime_headers_get(&c->hdr, "Date");
	if (h == NULL || mime_date_parse(h->value, &d) < 0)
		return (uint64_t)(c->mtime / 86400);    /* no Date: the internal date, as Dovecot */
	return (uint64_t)((d.t + d.tz_min * 60) / 86400);
}

static bool imap_search_match(struct imap_search_ctx *c, const struct imap_skey *k)
{
	struct imap_search_msg *m = c->m;
	switch (k->type) {
	case SK_ALL:
		return true;
	case SK_NEVER:
		return false;
	case SK_AND:
		for (size_t i = 0; i < k->nkids; i++)
			if (!imap_search_match(c, k->kids[i]))
				return false;
		return true;
	case SK_OR:
		return imap_search_match(c, k->kids[0]) || imap_search_match(c, k->kids[1]);
	case SK_NOT:
		return !imap_search_match(c, k->kids[0]);
	case SK_FLAG:
		return imap_search_has_flag(m, k->letter);
	case SK_NOFLAG:
		return !imap_search_has_flag(m, k->letter);
	case SK_RECENT:
		return m->recent;
	case SK_NEW:
		return m->recent && !imap_search_has_flag(m, 'S');
	case SK_OLD:
		return !m->recent;
	case SK_HEADER:
		return imap_search_header(c, k->field, k->value);
	case SK_BODY:
	case SK_TEXT:
		if (imap_search_load(c, true) < 0 || !c->loaded)
			return false;
		if (!c->texted) {
			imap_search_text(&c->fhdr, &c->fbody, buf_ptr(&c->data), c->data.len);
			c->texted = true;
		}
		return imap_search_has(&c->fbody, k->value) ||
		       (k->type == SK_TEXT && imap_search_has(&c->fhdr, k->value));
	case SK_BEFORE:
	case SK_ON:
	case SK_SINCE: {
		if (!c->cached && imap_search_load(c, false) < 0)
			return false;
		uint64_t day = (uint64_t)((c->cached ? (time_t)c->rec.internal : c->mtime) / 86400);
		return k->type == SK_BEFORE ? day < k->num : k->type == SK_ON ? day == k->num : day >= k->num;
	}
	case SK_SENTBEFORE:
	case SK_SENTON:
	case SK_SENTSINCE: {
		uint64_t day = imap_search_sent_day(c);
		return k->type == SK_SENTBEFORE ? day < k->num : k->type == SK_SENTON ? day == k->num :
		       day >= k->num;
	}
	case SK_LARGER:
		return m->vsize > k->num;
	case SK_SMALLER:
		return m->vsize < k->num;
	case SK_UID:
		return imap_seqset_contains(&k->set, m->uid, c->j->max_uid);
	case SK_SEQ:
		return imap_seqset_contains(&k->set, (uint32_t)(m->index + 1), c->j->count);
	case SK_MODSEQ:
		return m->modseq >= k->num;
	}
	return false;
}

/* SORT by ARRIVAL / SIZE needs the internal date alone: from the cache's
 * record, or (as Dovecot does) a stat, no parse; the date is then cached
 * in a record without fields (FETCH and SEARCH refill those). */
static bool imap_search_hit_date(struct imap_search_ctx *c, int64_t *internal)
{
	if (c->found) {
		*internal = c->rec.internal;
		return true;
	}
	if (imap_search_read(c, false) < 0)
		return false;
	*internal = (int64_t)c->mtime;
	struct mcache_rec r = { .uid = c->m->uid, .internal = *internal, .sent = *internal };
	if (c->j->cache != NULL)
		mcache_put(c->j->cache, &r);
	return true;
}

/* A SORT/THREAD match: its keys from the folder cache, or from its
 * file's header (then a record of the keys and dates is queued for the
 * cache; ENVELOPE and BODYSTRUCTURE wait for a FETCH that needs them). */
static void imap_search_hit(struct imap_search_ctx *c)
{
	struct imap_search_job *j = c->j;
	struct imap_sort_msg *h = &j->hits[j->nhits];
	const char *blob = NULL;
	size_t len = 0;
	int64_t internal = 0;
	if (j->stat_only) {
		if (!imap_search_hit_date(c, &internal))
			return;
		blob = "";
	} else if (c->found && c->rec.field[MCACHE_SORT] != NULL) {
		blob = c->rec.field[MCACHE_SORT];
		len = c->rec.field_len[MCACHE_SORT];
		internal = c->rec.internal;
	} else if (imap_search_read_head(c) == 0) {
		imap_cache_fill_sort(&j->fill, c->m->uid, c->mtime, buf_ptr(&c->data), c->data.len,
				     c->found ? &c->rec : NULL);
		if (j->cache != NULL)
			mcache_put(j->cache, &j->fill.rec);
		blob = buf_ptr(&j->fill.sort);
		len = j->fill.sort.len;
		internal = (int64_t)c->mtime;
	} else {
		return;         /* gone meanwhile: left out, as SEARCH does */
	}
	/* one buffer for every match's keys (a malloc each was a tenth of a
	 * warm SORT); f[] are set once it stops growing (imap_search_keys) */
	len = imap_sort_prefix(blob, len, j->nfields);  /* the fields the criteria use */
	*h = (struct imap_sort_msg){ .seq = (uint32_t)(c->m->index + 1), .uid = c->m->uid,
		.internal = internal, .size = c->m->vsize, .koff = j->keys.len, .klen = len };
	buf_append(&j->keys, blob, len);
	buf_append(&j->keys, "", 1);
	j->nhits++;
}

static void imap_search_keys_split(struct imap_search_job *j)
{
	for (size_t i = 0; i < j->nhits; i++)
		imap_sort_fields(buf_ptr(&j->keys) + j->hits[i].koff, j->hits[i].klen, &j->hits[i]);
}

/* RFC 5182 2.4: with MIN and/or MAX but neither ALL nor COUNT, SAVE
 * keeps just those messages; otherwise every match. */
static bool imap_search_minmax_only(unsigned ret)
{
	return (ret & (IMAP_RET_MIN | IMAP_RET_MAX)) && !(ret & (IMAP_RET_ALL | IMAP_RET_COUNT));
}

static void imap_search_save(struct imap_search_job *j)
{
	size_t n = j->nmatch;
	j->saved = xcalloc(n + 1, sizeof(*j->saved));
	if (!imap_search_minmax_only(j->ret)) {
		memcpy(j->saved, j->uids, n * sizeof(*j->uids));
		j->nsaved = n;
	} else if (n > 0) {
		if (j->ret & IMAP_RET_MIN)
			j->saved[j->nsaved++] = j->uids[0];
		if ((j->ret & IMAP_RET_MAX) && (j->nsaved == 0 || j->uids[n - 1] != j->saved[0]))
			j->saved[j->nsaved++] = j->uids[n - 1];
	}
}

/* RFC 7162 3.1.5 with RFC 4731: the highest modseq of what is returned,
 * the MIN/MAX messages alone when those are all. */
static uint64_t imap_search_ret_modseq(const struct imap_search_job *j)
{
	size_t n = j->nmatch;
	uint64_t m = 0;
	if (!imap_search_minmax_only(j->ret))
		return j->maxmod;
	if (j->ret & IMAP_RET_MIN)
		m = j->mods[0];
	if ((j->ret & IMAP_RET_MAX) && j->mods[n - 1] > m)
		m = j->mods[n - 1];
	return m;
}

/* RFC 4731 3.1: * ESEARCH (TAG "t") [UID] MIN MAX ALL COUNT [MODSEQ]; no
 * MIN/MAX/ALL without matches; nothing for SAVE alone (RFC 5182 2.1). */
static void imap_esearch_answer(struct imap_search_job *j)
{
	size_t n = j->nmatch;
	if (j->ret & IMAP_RET_SAVE)
		imap_search_save(j);
	if (j->ret == IMAP_RET_SAVE)
		return;
	buf_printf(&j->out, "* ESEARCH (TAG \"%s\")%s", j->tag, j->uid_cmd ? " UID" : "");
	if (n > 0 && (j->ret & IMAP_RET_MIN))
		buf_printf(&j->out, " MIN %u", j->num[0]);
	if (n > 0 && (j->ret & IMAP_RET_MAX))
		buf_printf(&j->out, " MAX %u", j->num[n - 1]);
	if (n > 0 && (j->ret & IMAP_RET_ALL)) {
		buf_append_str(&j->out, " ALL ");
		imap_set_append(&j->out, j->num, n);
	}
	if (j->ret & IMAP_RET_COUNT)
		buf_printf(&j->out, " COUNT %zu", n);
	if (n > 0 && j->modseq_key)
		buf_printf(&j->out, " MODSEQ %llu", (unsigned long long)imap_search_ret_modseq(j));
	buf_append_str(&j->out, "\r\n");
}

static void imap_search_answer(struct imap_search_job *j)
{
	static const char *const names[] = { "Search", "Sort", "Thread", "Thread" };
	if (j->mode == IMAP_SEARCH && j->ret) {
		imap_esearch_answer(j);
	} else if (j->mode == IMAP_SEARCH) {
		buf_append_str(&j->out, "* SEARCH");
		for (size_t i = 0; i < j->nmatch; i++)
			buf_append_num(&j->out, " ", j->num[i]);
	} else if (j->mode == IMAP_SORT) {
		imap_search_keys_split(j);
		imap_sort_run(j->hits, j->nhits, j->sort, j->nsort);
		buf_append_str(&j->out, "* SORT");
		for (size_t i = 0; i < j->nhits; i++)
			buf_append_num(&j->out, " ", j->uid_cmd ? j->hits[i].uid : j->hits[i].seq);
	} else {
		imap_search_keys_split(j);
		buf_append_str(&j->out, "* THREAD ");
		imap_thread_run(j->hits, j->nhits, j->mode == IMAP_THREAD_REFS, j->uid_cmd, &j->out);
	}
	/* RFC 7162 3.1.5: "(MODSEQ n)" after the numbers of SEARCH and SORT */
	bool found = j->mode == IMAP_SORT ? j->nhits > 0 : j->nmatch > 0;
	if (!j->ret && j->modseq_key && found && j->mode != IMAP_THREAD_REFS &&
	    j->mode != IMAP_THREAD_SUBJ)
		buf_printf(&j->out, " (MODSEQ %llu)", (unsigned long long)j->maxmod);
	if (!(j->mode == IMAP_SEARCH && j->ret))
		buf_append_str(&j->out, "\r\n");
	buf_printf(&j->out, "%s OK %s%s completed.\r\n", j->tag, j->uid_cmd ? "UID " : "",
		   names[j->mode]);
}

/* A match: SEARCH keeps its number, UID and modseq. */
static void imap_search_matched(struct imap_search_job *j, struct imap_search_ctx *c)
{
	const struct imap_search_msg *m = c->m;
	if (m->modseq > j->maxmod)
		j->maxmod = m->modseq;
	if (j->mode != IMAP_SEARCH) {
		imap_search_hit(c);
		return;
	}
	j->num[j->nmatch] = j->uid_cmd ? m->uid : (uint32_t)(m->index + 1);
	j->uids[j->nmatch] = m->uid;
	j->mods[j->nmatch++] = m->modseq;
}

static void imap_search_work(void *arg)
{
	struct imap_search_job *j = arg;
	if (j->mode == IMAP_SEARCH) {
		j->num = xcalloc(j->n + 1, sizeof(*j->num));
		j->uids = xcalloc(j->n + 1, sizeof(*j->uids));
		j->mods = xcalloc(j->n + 1, sizeof(*j->mods));
	} else {
		j->hits = xcalloc(j->n + 1, sizeof(*j->hits));
	}
	if (j->cache != NULL)
		mcache_refresh(j->cache);
	struct imap_search_ctx c = { .j = j };
	for (size_t i = 0; i < j->n; i++) {
		c.m = &j->msgs[i];
		c.loaded = c.statted = c.texted = false;
		c.found = j->cache != NULL && mcache_get(j->cache, c.m->uid, &c.rec);
		c.cached = c.found && imap_cache_dated(&c.rec);
		if (imap_search_match(&c, j->key))
			imap_search_matched(j, &c);
		buf_clear(&c.data);
		buf_clear(&c.fhdr);
		buf_clear(&c.fbody);
		arena_destroy(&c.a);
	}
	buf_free(&c.data);
	buf_free(&c.fhdr);
	buf_free(&c.fbody);
	buf_free(&c.tmp);
	if (j->cache != NULL)
		mcache_flush(j->cache);
	imap_search_answer(j);
}

static void imap_search_job_free(struct imap_search_job *j)
{
	for (size_t i = 0; i < j->n; i++)
		if (j->msgs[i].file_owned)
			free(j->msgs[i].file);
	imap_selected_free(&j->sel);    /* the session went away meanwhile */
	free(j->msgs);
	free(j->root);
	imap_skey_free(j->key);
	buf_free(&j->out);
	mcache_free(&j->cache);
	buf_free(&j->keys);
	free(j->hits);
	imap_cache_fill_free(&j->fill);
	free(j->num);
	free(j->uids);
	free(j->mods);
	free(j->saved);
	free(j);
}

static void imap_search_done(void *arg)
{
	struct imap_search_job *j = arg;
	struct conn *c = conn_find(j->conn_id);
	if (c != NULL) {
		struct imap_session *s = c->proto;
		s->sel = j->sel;                /* back to the session, with the cache */
		j->sel = NULL;
		if (s->sel != NULL && s->sel->cache == NULL) {
			s->sel->cache = j->cache;
			j->cache = NULL;
		}
		if (s->sel != NULL && (j->ret & IMAP_RET_SAVE)) {
			free(s->sel->saved);    /* RFC 5182 2.1: "$" from now on */
			s->sel->saved = j->saved;
			s->sel->nsaved = j->nsaved;
			j->saved = NULL;
		}
		conn_write(c, buf_ptr(&j->out), j->out.len);
		imap_resume(s);
	}
	imap_search_job_free(j);
}

/* [CHARSET x] (required for SORT/THREAD, RFC 5256) then the keys; NULL
 * after answering. *modseq_r: a MODSEQ key is among them. */
static struct imap_skey *imap_search_parse(struct imap_session *s, const struct imap_arg *args,
					   size_t nargs, bool need_charset, bool *modseq_r)
{
	bool has = nargs >= 2 && args[0].type == IMAP_ARG_ATOM && str_case_eq(args[0].s, "CHARSET");
	if (need_charset || has) {
		struct str cs;
		const struct imap_arg *a = need_charset ? &args[0] : &args[1];
		if (nargs < (need_charset ? 1u : 2u) || !imap_arg_astring(a, &cs)) {
			imap_bad(s, "Missing charset.");
			return NULL;
		}
		if (!(str_case_eq(cs, "UTF-8") || str_case_eq(cs, "US-ASCII"))) {
			imap_tagged(s, "NO", "[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset.");
			return NULL;
		}
		args += need_charset ? 1 : 2;
		nargs -= need_charset ? 1 : 2;
	}
	struct imap_spctx pc = { .kw = &s->sel->kw, .sel = s->sel };
	struct imap_skey *key = nargs ? imap_search_keys(args, nargs, 0, &pc) : NULL;
	if (key == NULL) {
		imap_bad(s, "Invalid search keys.");
		return NULL;
	}
	if (pc.modseq && s->sel->modseq == NULL) {
		imap_skey_free(key);
		imap_bad(s, "[NOMODSEQ] No modification sequences here (RFC 7162 3.1.2.2).");
		return NULL;
	}
	*modseq_r = pc.modseq;
	if (pc.modseq)
		imap_cs_enable(s);      /* RFC 7162 3.1: a CONDSTORE-enabling command */
	return key;
}

static void imap_search_submit(struct imap_session *s, struct imap_search_job *j)
{
	/* The job holds the selected snapshot until it completes (as a sync
	 * does; the session is paused meanwhile), so the messages' names are
	 * used where they are: copying 20,000 strings on the loop was a
	 * sixth of a warm SORT. */
	j->sel = s->sel;
	s->sel = NULL;
	const struct mailbox *mb = j->sel->mb;
	j->conn_id = s->conn->id;
	snprintf(j->tag, sizeof(j->tag), "%s", s->tag);
	j->root = xstrdup(mb->root);
	j->cache = j->sel->cache;       /* the job's until it completes */
	j->sel->cache = NULL;
	j->n = mb->count;
	j->count = (uint32_t)mb->count;
	j->max_uid = mb->count ? mb->msgs[mb->count - 1].uid : 0;
	j->msgs = xcalloc(mb->count ? mb->count : 1, sizeof(*j->msgs));
	for (size_t i = 0; i < mb->count; i++)
		j->msgs[i] = (struct imap_search_msg){ .index = i, .uid = mb->msgs[i].uid,
			.base = mb->msgs[i].base, .file = mb->msgs[i].file,
			.vsize = mb->msgs[i].vsize, .recent = mb->msgs[i].recent,
			.modseq = j->sel->modseq ? j->sel->modseq[i] : 0 };
	conn_pause(s->conn);
	pool_submit(s->srv->io_pool, imap_search_work, imap_search_done, j);
}

/* RFC 4731 3.1: "RETURN (MIN MAX ALL COUNT SAVE)"; "()" is ALL. 0 or -1. */
static int imap_search_return(const struct imap_arg *list, unsigned *ret)
{
	static const struct { const char *name; unsigned bit; } opts[] = {
		{ "MIN", IMAP_RET_MIN }, { "MAX", IMAP_RET_MAX }, { "ALL", IMAP_RET_ALL },
		{ "COUNT", IMAP_RET_COUNT }, { "SAVE", IMAP_RET_SAVE },
	};
	*ret = 0;
	if (list->type != IMAP_ARG_LIST || list->span != list->members + 1)
		return -1;
	for (size_t m = 1; m <= list->members; m++) {
		size_t k = 0;
		while (k < ARRAY_SIZE(opts) && (list[m].type != IMAP_ARG_ATOM ||
						!str_case_eq(list[m].s, opts[k].name)))
			k++;
		if (k == ARRAY_SIZE(opts))
			return -1;
		*ret |= opts[k].bit;
	}
	if (*ret == 0)
		*ret = IMAP_RET_ALL;
	return 0;
}

/* RFC 5182 2.1: a SEARCH with SAVE that fails leaves "$" empty. */
static void imap_search_unsave(struct imap_session *s)
{
	free(s->sel->saved);
	s->sel->saved = NULL;
	s->sel->nsaved = 0;
}

void imap_search_run(struct imap_session *s, const struct imap_arg *args, size_t nargs, bool uid)
{
	unsigned ret = 0;
	bool modseq;
	if (nargs >= 2 && args[0].type == IMAP_ARG_ATOM && str_case_eq(args[0].s, "RETURN")) {
		if (imap_search_return(&args[1], &ret) < 0) {
			imap_bad(s, "Syntax: SEARCH [RETURN (MIN MAX ALL COUNT SAVE)] keys");
			return;
		}
		nargs -= 1 + args[1].span;
		args += 1 + args[1].span;
	}
	struct imap_skey *key = imap_search_parse(s, args, nargs, false, &modseq);
	if (key == NULL) {
		if (ret & IMAP_RET_SAVE)
			imap_search_unsave(s);
		return;
	}
	struct imap_search_job *j = xcalloc(1, sizeof(*j));
	j->uid_cmd = uid;
	j->key = key;
	/* RFC 9051 6.4.4: an IMAP4rev2 SEARCH answers ESEARCH, RETURN (ALL)
	 * when none is given */
	j->ret = ret == 0 && s->rev2 ? IMAP_RET_ALL : ret;
	j->modseq_key = modseq;
	imap_search_submit(s, j);
}

/* RFC 5256 3: SORT (criteria) charset keys. */
void imap_sort_cmd_run(struct imap_session *s, const struct imap_arg *args, size_t nargs, bool uid)
{
	struct imap_sort_key keys[IMAP_SORT_KEYS_MAX];
	size_t nkeys;
	if (nargs < 3 || imap_sort_parse(&args[0], keys, &nkeys) < 0) {
		imap_bad(s, "Syntax: SORT (criteria) charset search-keys");
		return;
	}
	bool modseq;
	struct imap_skey *key = imap_search_parse(s, args + args[0].span, nargs - args[0].span, true,
						  &modseq);
	if (key == NULL)
		return;
	struct imap_search_job *j = xcalloc(1, sizeof(*j));
	j->uid_cmd = uid;
	j->key = key;
	j->modseq_key = modseq;
	j->mode = IMAP_SORT;
	memcpy(j->sort, keys, nkeys * sizeof(*keys));
	j->nsort = nkeys;
	j->stat_only = imap_sort_dates_only(keys, nkeys);
	j->nfields = imap_sort_nfields(keys, nkeys);
	imap_search_submit(s, j);
}

/* RFC 5256 4: THREAD algorithm charset keys. */
void imap_thread_cmd_run(struct imap_session *s, const struct imap_arg *args, size_t nargs, bool uid)
{
	if (nargs < 3 || args[0].type != IMAP_ARG_ATOM ||
	    !(str_case_eq(args[0].s, "REFERENCES") || str_case_eq(args[0].s, "ORDEREDSUBJECT"))) {
		imap_bad(s, "Syntax: THREAD REFERENCES|ORDEREDSUBJECT charset search-keys");
		return;
	}
	bool modseq;
	struct imap_skey *key = imap_search_parse(s, args + 1, nargs - 1, true, &modseq);
	if (key == NULL)
		return;
	struct imap_search_job *j = xcalloc(1, sizeof(*j));
	j->uid_cmd = uid;
	j->key = key;
	j->mode = str_case_eq(args[0].s, "REFERENCES") ? IMAP_THREAD_REFS : IMAP_THREAD_SUBJ;
	j->nfields = IMAP_SF_COUNT;
	imap_search_submit(s, j);
}

void imap_cmd_sort(struct imap_session *s, const struct imap_arg *args, size_t nargs)
{
	imap_sort_cmd_run(s, args, nargs, false);
}

void imap_cmd_thread(struct imap_session *s, const struct imap_arg *args, size_t nargs)
{
	imap_thread_cmd_run(s, args, nargs, false);
}

void imap_cmd_search(struct imap_session *s, const struct imap_arg *args, size_t nargs)
{
	imap_search_run(s, args, nargs, false);
}
