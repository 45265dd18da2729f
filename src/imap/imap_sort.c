/* imap_sort.c - SORT (RFC 5256 3) and SORT=DISPLAY (RFC 5957): the sort
 * keys of a message, the base subject (RFC 5256 2.1), and ordering.
 *
 * The keys are computed once per message from its header and kept in the
 * folder cache (MCACHE_SORT) as NUL-separated fields, so SORT and THREAD
 * of a cached folder open no message file:
 *   date      the Date: in UTC seconds, the internal date when missing or
 *             unparsable (RFC 5256 3 "DATE")
 *   subject   the base subject, RFC 2047 decoded, ASCII upper-cased
 *             (i;ascii-casemap compares)
 *   reply     "1" when a Re:/Fwd: leader or a [fwd: ...] was removed
 *   from, to, cc   the first address's local part, upper-cased
 *   dfrom, dto     the display name (decoded) or addr-spec, folded
 *             (RFC 5957 compares with i;unicode-casemap)
 *   msgid, inreplyto, refs   for THREAD=REFERENCES (imap_thread.c) */
#include "imap_int.h"
#include "core/arena.h"
#include "core/util.h"
#include "mime/mime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool imap_wsp(char c)
{
	return c == ' ' || c == '\t';
}

static bool imap_ci_prefix(struct str s, const char *lit)
{
	size_t n = strlen(lit);
	return s.len >= n && str_case_prefix(s, lit);
}

static void imap_str_skip(struct str *s, size_t n)
{
	s->p += n;
	s->len -= n;
}

/* subj-blob = "[" *BLOBCHAR "]" *WSP; its length, 0 if none. */
static size_t imap_subj_blob(struct str s)
{
	if (s.len == 0 || s.p[0] != '[')
		return 0;
	size_t i = 1;
	while (i < s.len && s.p[i] != '[' && s.p[i] != ']')
		i++;
	if (i == s.len || s.p[i] != ']')
		return 0;
	for (i++; i < s.len && imap_wsp(s.p[i]); i++)
		;
	return i;
}

/* (2) subj-trailer = "(fwd)" / WSP, removed from the end; "(fwd)" makes
 * it a forward (RFC 5256 2.1, last paragraph). */
static bool imap_subj_trailer(struct str *s, bool *reply)
{
	if (s->len > 0 && imap_wsp(s->p[s->len - 1])) {
		s->len--;
		return true;
	}
	if (s->len >= 5 && strncasecmp(s->p + s->len - 5, "(fwd)", 5) == 0) {
		s->len -= 5;
		*reply = true;
		return true;
	}
	return false;
}

/* (3) subj-leader = (*subj-blob subj-refwd) / WSP;
 * subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":" */
static bool imap_subj_leader(struct str *s, bool *reply)
{
	if (s->len > 0 && imap_wsp(s->p[0])) {
		imap_str_skip(s, 1);
		return true;
	}
	struct str t = *s;
	for (size_t n; (n = imap_subj_blob(t)) > 0;)
		imap_str_skip(&t, n);
	if (imap_ci_prefix(t, "re"))
		imap_str_skip(&t, 2);
	else if (imap_ci_prefix(t, "fwd"))
		imap_str_skip(&t, 3);
	else if (imap_ci_prefix(t, "fw"))
		imap_str_skip(&t, 2);
	else
		return false;
	while (t.len > 0 && imap_wsp(t.p[0]))
		imap_str_skip(&t, 1);
	imap_str_skip(&t, imap_subj_blob(t));
	if (t.len == 0 || t.p[0] != ':')
		return false;
	imap_str_skip(&t, 1);
	*s = t;
	*reply = true;
	return true;
}

/* (1) whitespace runs made one space, then (2) to (6). */
static struct str imap_base_subject_of(struct str in, bool *reply)
{
	struct str s = in;
	for (;;) {
		while (imap_subj_trailer(&s, reply))
			;
		for (bool again = true; again;) {
			again = false;
			while (imap_subj_leader(&s, reply))
				again = true;
			size_t n = imap_subj_blob(s);
			if (n > 0 && n < s.len) {       /* (4) only if something is left */
				imap_str_skip(&s, n);
				again = true;
			}
		}
		/* (6) "[fwd:" ... "]" */
		if (s.len >= 6 && imap_ci_prefix(s, "[fwd:") && s.p[s.len - 1] == ']') {
			imap_str_skip(&s, 5);
			s.len--;
			*reply = true;
			continue;
		}
		return s;
	}
}

void imap_base_subject(struct buf *out, struct str subject, bool *reply)
{
	struct buf norm = { 0 };
	bool space = false;
	for (size_t i = 0; i < subject.len; i++) {
		char c = subject.p[i];
		bool ws = c == ' ' || c == '\t' || c == '\r' || c == '\n';
		if (ws && space)
			continue;
		space = ws;
		c = ws ? ' ' : (c >= 'a' && c <= 'z') ? (char)(c - 32) : c;
		buf_append(&norm, &c, 1);
	}
	*reply = false;
	struct str base = imap_base_subject_of((struct str){ buf_ptr(&norm), norm.len }, reply);
	buf_append(out, base.p, base.len);
	buf_free(&norm);
}

/* --- the keys of one message --- */

static void imap_sort_put(struct buf *b, const char *p, size_t len)
{
	buf_append(b, p, len);
	buf_append(b, "", 1);
}

static void imap_sort_upper(struct buf *b, struct str s)
{
	size_t start = b->len;
	buf_append(b, s.p, s.len);
	for (size_t i = start; i < b->len; i++) {
		char *c = &b->data[b->off + i];
		if (*c >= 'a' && *c <= 'z')
			*c = (char)(*c - 32);
	}
	buf_append(b, "", 1);
}

static const struct mime_addr *imap_sort_first(struct arena *a, const struct mime_headers *h,
					       const char *field)
{
	const struct mime_header *f = mime_headers_get(h, field);
	if (f == NULL)
		return NULL;
	struct mime_addr_list l;
	mime_addr_parse(a, f->value, &l);
	for (size_t i = 0; i < l.count; i++)
		if (l.v[i].kind == MIME_ADDR_MAILBOX)
			return &l.v[i];
	return NULL;
}

/* RFC 5957 compares display names with i;unicode-casemap (RFC 5051),
 * which decomposes letters: "Émile" sorts with the E's. Here the folded
 * Latin-1 letters are replaced by their base letter (NUL-free, shorter:
 * done in place from start). */
static void imap_sort_unaccent(struct buf *b, size_t start)
{
	static const char base[] = "aaaaaa\0ceeeeiiii\0nooooo\0\0uuuuy\0y";   /* U+00E0 .. U+00FF */
	char *p = b->data + b->off;
	size_t w = start;
	for (size_t i = start; i < b->len; i++) {
		unsigned char c = (unsigned char)p[i], d = i + 1 < b->len ? (unsigned char)p[i + 1] : 0;
		if (c == 0xC3 && d >= 0xA0 && d <= 0xBF && base[d - 0xA0] != '\0') {
			p[w++] = base[d - 0xA0];
			i++;
		} else {
			p[w++] = (char)c;
		}
	}
	b->len = w;
}

/* One address header's keys from one parse: the first address's local
 * part (upper-cased), and with display its name or address, folded. */
static void imap_sort_addr(struct buf *b, struct arena *a, const struct mime_headers *h,
			   const char *field, bool display)
{
	const struct mime_addr *m = imap_sort_first(a, h, field);
	if (m == NULL) {
		imap_sort_put(b, "", 0);
		if (display)
			imap_sort_put(b, "", 0);
		return;
	}
	imap_sort_upper(b, m->local);
	if (!display)
		return;
	struct str s = m->name.len ? m->name : m->addr;
	size_t start = b->len;
	imap_fold(b, s.p, s.len);
	imap_sort_unaccent(b, start);
	buf_append(b, "", 1);
}

/* The msg-ids ("<...>") in a header value, space-separated. */
static void imap_sort_ids(struct buf *b, const struct mime_headers *h, const char *field, bool first)
{
	const struct mime_header *f = mime_headers_get(h, field);
	struct str v = f ? f->value : (struct str){ "", 0 };
	bool any = false;
	for (size_t i = 0; i < v.len; i++) {
		if (v.p[i] != '<')
			continue;
		const char *e = memchr(v.p + i, '>', v.len - i);
		if (e == NULL || memchr(v.p + i, '@', (size_t)(e - (v.p + i))) == NULL)
			continue;       /* RFC 5256: only valid-looking msg-ids */
		if (any)
			buf_append(b, " ", 1);
		buf_append(b, v.p + i, (size_t)(e - (v.p + i)) + 1);
		any = true;
		i = (size_t)(e - v.p);
		if (first)
			break;
	}
	buf_append(b, "", 1);
}

void imap_sort_fill(struct buf *b, struct arena *a, const struct mime_headers *h, time_t t)
{
	char num[32];
	imap_sort_put(b, num, (size_t)snprintf(num, sizeof(num), "%lld", (long long)t));
	const struct mime_header *subj = mime_headers_get(h, "Subject");
	struct str s = subj ? mime_2047_decode(a, subj->value, NULL) : (struct str){ "", 0 };
	bool reply;
	imap_base_subject(b, s, &reply);
	buf_append(b, "", 1);
	imap_sort_put(b, reply ? "1" : "0", 1);
	imap_sort_addr(b, a, h, "From", true);          /* from, dfrom */
	imap_sort_addr(b, a, h, "To", true);            /* to, dto */
	imap_sort_addr(b, a, h, "Cc", false);
	imap_sort_ids(b, h, "Message-ID", true);
	imap_sort_ids(b, h, "In-Reply-To", true);
	imap_sort_ids(b, h, "References", false);
}

/* The date field: decimal seconds, maybe negative (strtoll was a twentieth
 * of a warm SORT). */
static int64_t imap_sort_int(struct str s)
{
	bool neg = s.len > 0 && s.p[0] == '-';
	uint64_t v = 0;
	for (size_t i = neg; i < s.len && s.p[i] >= '0' && s.p[i] <= '9' && v < UINT64_MAX / 100; i++)
		v = v * 10 + (uint64_t)(s.p[i] - '0');
	v = v > INT64_MAX ? INT64_MAX : v;
	return neg ? -(int64_t)v : (int64_t)v;
}

void imap_sort_fields(const char *blob, size_t len, struct imap_sort_msg *m)
{
	struct str *f = m->f;
	size_t k = 0;
	for (size_t i = 0; k < IMAP_SF_COUNT;) {
		const char *z = i < len ? memchr(blob + i, '\0', len - i) : NULL;
		size_t n = z ? (size_t)(z - (blob + i)) : len > i ? len - i : 0;
		f[k++] = (struct str){ blob + i, n };
		i += n + (z != NULL);
		if (z == NULL)
			break;
	}
	while (k < IMAP_SF_COUNT)
		f[k++] = (struct str){ "", 0 };
	m->date = imap_sort_int(f[IMAP_SF_DATE]);
}

size_t imap_sort_prefix(const char *blob, size_t len, size_t n)
{
	size_t off = 0;
	for (size_t k = 0; k < n && off < len; k++) {
		const char *z = memchr(blob + off, '\0', len - off);
		off = z ? (size_t)(z - blob) + 1 : len;
	}
	return off;
}

/* --- SORT --- */

/* The blob field each criterion compares (ARRIVAL, SIZE: none). */
static int imap_sort_field_of(enum imap_sort_crit c)
{
	switch (c) {
	case IMAP_SORT_DATE: return IMAP_SF_DATE;
	case IMAP_SORT_SUBJECT: return IMAP_SF_SUBJECT;
	case IMAP_SORT_FROM: return IMAP_SF_FROM;
	case IMAP_SORT_DISPLAYFROM: return IMAP_SF_DFROM;
	case IMAP_SORT_TO: return IMAP_SF_TO;
	case IMAP_SORT_DISPLAYTO: return IMAP_SF_DTO;
	case IMAP_SORT_CC: return IMAP_SF_CC;
	case IMAP_SORT_ARRIVAL:
	case IMAP_SORT_SIZE:
		break;
	}
	return -1;
}

bool imap_sort_dates_only(const struct imap_sort_key *keys, size_t nkeys)
{
	for (size_t i = 0; i < nkeys; i++)
		if (imap_sort_field_of(keys[i].crit) >= 0)
			return false;
	return true;
}

size_t imap_sort_nfields(const struct imap_sort_key *keys, size_t nkeys)
{
	size_t n = 1;           /* the date: always parsed (imap_sort_fields) */
	for (size_t i = 0; i < nkeys; i++) {
		int f = imap_sort_field_of(keys[i].crit);
		if (f >= 0 && (size_t)f + 1 > n)
			n = (size_t)f + 1;
	}
	return n;
}

static const struct {
	const char *name;
	enum imap_sort_crit crit;
} imap_sort_names[] = {
	{ "ARRIVAL", IMAP_SORT_ARRIVAL }, { "CC", IMAP_SORT_CC }, { "DATE", IMAP_SORT_DATE },
	{ "FROM", IMAP_SORT_FROM }, { "SIZE", IMAP_SORT_SIZE }, { "SUBJECT", IMAP_SORT_SUBJECT },
	{ "TO", IMAP_SORT_TO }, { "DISPLAYFROM", IMAP_SORT_DISPLAYFROM },
	{ "DISPLAYTO", IMAP_SORT_DISPLAYTO },
};

int imap_sort_parse(const struct imap_arg *list, struct imap_sort_key *keys, size_t *n)
{
	if (list->type != IMAP_ARG_LIST || list->members == 0)
		return -1;
	bool reverse = false;
	*n = 0;
	for (size_t i = 1; i < list->span; i++) {
		const struct imap_arg *a = &list[i];
		if (a->type != IMAP_ARG_ATOM)
			return -1;
		if (str_case_eq(a->s, "REVERSE")) {
			if (reverse)
				return -1;
			reverse = true;
			continue;
		}
		size_t k = 0;
		while (k < ARRAY_SIZE(imap_sort_names) && !str_case_eq(a->s, imap_sort_names[k].name))
			k++;
		if (k == ARRAY_SIZE(imap_sort_names) || *n == IMAP_SORT_KEYS_MAX)
			return -1;
		keys[(*n)++] = (struct imap_sort_key){ imap_sort_names[k].crit, reverse };
		reverse = false;
	}
	return reverse || *n == 0 ? -1 : 0;
}

static int imap_str_cmp(struct str a, struct str b)
{
	int c = memcmp(a.p, b.p, a.len < b.len ? a.len : b.len);
	return c ? c : (a.len > b.len) - (a.len < b.len);
}

static int imap_sort_cmp1(const struct imap_sort_msg *a, const struct imap_sort_msg *b,
			  enum imap_sort_crit c)
{
	switch (c) {
	case IMAP_SORT_ARRIVAL:
		return (a->internal > b->internal) - (a->internal < b->internal);
	case IMAP_SORT_DATE:
		return (a->date > b->date) - (a->date < b->date);
	case IMAP_SORT_SIZE:
		return (a->size > b->size) - (a->size < b->size);
	case IMAP_SORT_SUBJECT:
		return imap_str_cmp(a->f[IMAP_SF_SUBJECT], b->f[IMAP_SF_SUBJECT]);
	case IMAP_SORT_FROM:
		return imap_str_cmp(a->f[IMAP_SF_FROM], b->f[IMAP_SF_FROM]);
	case IMAP_SORT_TO:
		return imap_str_cmp(a->f[IMAP_SF_TO], b->f[IMAP_SF_TO]);
	case IMAP_SORT_CC:
		return imap_str_cmp(a->f[IMAP_SF_CC], b->f[IMAP_SF_CC]);
	case IMAP_SORT_DISPLAYFROM:
		return imap_str_cmp(a->f[IMAP_SF_DFROM], b->f[IMAP_SF_DFROM]);
	case IMAP_SORT_DISPLAYTO:
		return imap_str_cmp(a->f[IMAP_SF_DTO], b->f[IMAP_SF_DTO]);
	}
	return 0;
}

struct imap_sort_by {
	const struct imap_sort_key *keys;
	size_t n;
};

/* RFC 5256 3: ties left by every key are ordered by sequence number. */
static int imap_sort_cmp(const void *x, const void *y, void *arg)
{
	const struct imap_sort_msg *a = x, *b = y;
	const struct imap_sort_by *by = arg;
	for (size_t i = 0; i < by->n; i++) {
		int c = imap_sort_cmp1(a, b, by->keys[i].crit);
		if (c != 0)
			return by->keys[i].reverse ? -c : c;
	}
	return (a->seq > b->seq) - (a->seq < b->seq);
}

/* A message with a 64-bit image of its first criterion: most comparisons
 * end on it, without touching the message (the sort of 10,000 subjects
 * was mostly memcmp and cache misses). */
struct imap_sort_ent {
	uint64_t k;
	struct str s;           /* a string criterion's key: compared here */
	uint32_t seq;
	struct imap_sort_msg *m;
};

struct imap_sort_ctx {
	struct imap_sort_by by;
	bool reverse;           /* of the first criterion */
};

/* The first 8 bytes, big-endian, zero-padded: ordered as memcmp orders
 * the strings (the keys hold no NUL), ties left to the full compare. */
static uint64_t imap_sort_prefix8(struct str s)
{
	uint64_t k = 0;
	for (size_t i = 0; i < 8; i++)
		k = (k << 8) | (i < s.len ? (unsigned char)s.p[i] : 0);
	return k;
}

static struct imap_sort_ent imap_sort_image(struct imap_sort_msg *m, enum imap_sort_crit c)
{
	struct imap_sort_ent e = { .seq = m->seq, .m = m };
	int f = imap_sort_field_of(c);
	if (f >= 0 && f != IMAP_SF_DATE) {
		e.s = m->f[f];
		e.k = imap_sort_prefix8(e.s);
	} else if (c == IMAP_SORT_ARRIVAL || c == IMAP_SORT_DATE) {
		e.k = (uint64_t)(c == IMAP_SORT_DATE ? m->date : m->internal) ^ (1ull << 63);  /* signed order */
	} else {
		e.k = m->size;
	}
	return e;
}

static int imap_sort_cmp_ent(const void *x, const void *y, void *arg)
{
	const struct imap_sort_ent *a = x, *b = y;
	const struct imap_sort_ctx *ctx = arg;
	int c = (a->k > b->k) - (a->k < b->k);
	if (c == 0 && (a->s.len > 8 || b->s.len > 8))   /* equal images: the strings decide */
		c = imap_str_cmp(a->s, b->s);
	if (c != 0)
		return ctx->reverse ? -c : c;
	if (ctx->by.n == 1)     /* RFC 5256 3: ties by sequence number */
		return (a->seq > b->seq) - (a->seq < b->seq);
	return imap_sort_cmp(a->m, b->m, (void *)&ctx->by);
}

/* Entries are sorted, then the messages put in their order: qsort moving
 * the big elements themselves was a tenth of a warm SORT. */
void imap_sort_run(struct imap_sort_msg *m, size_t n, const struct imap_sort_key *keys, size_t nkeys)
{
	struct imap_sort_ctx ctx = { { keys, nkeys }, nkeys > 0 && keys[0].reverse };
	if (n < 2)
		return;
	struct imap_sort_ent *v = xcalloc(n, sizeof(*v));
	for (size_t i = 0; i < n; i++)
		v[i] = nkeys > 0 ? imap_sort_image(&m[i], keys[0].crit) : (struct imap_sort_ent){ .seq = m[i].seq, .m = &m[i] };
	qsort_r(v, n, sizeof(*v), imap_sort_cmp_ent, &ctx);
	/* m[i] takes m[src[i]]: cycle by cycle, one spare element (a second
	 * array of messages was megabytes to fault in for each SORT) */
	size_t *src = xcalloc(n, sizeof(*src));
	for (size_t i = 0; i < n; i++)
		src[i] = (size_t)(v[i].m - m);
	free(v);
	for (size_t i = 0; i < n; i++) {
		if (src[i] == i || src[i] == SIZE_MAX)
			continue;
		struct imap_sort_msg spare = m[i];
		size_t j = i;
		while (src[j] != i) {
			size_t k = src[j];
			m[j] = m[k];
			src[j] = SIZE_MAX;
			j = k;
		}
		m[j] = spare;
		src[j] = SIZE_MAX;
	}
	free(src);
}
