/* imap_condstore.c - CONDSTORE and QRESYNC (RFC 7162) where they are not
 * one command's business: enabling, the SELECT/EXAMINE parameters and
 * answers ([HIGHESTMODSEQ], [NOMODSEQ], VANISHED (EARLIER), the FETCH of
 * what changed), the session's view of the modseqs, expunge responses
 * (EXPUNGE or VANISHED), and sequence sets with ranges (ESEARCH ALL,
 * MODIFIED, VANISHED).
 *
 * The modseqs themselves live in the folder's moonpost.modseq
 * (src/store/modseq.h); the session keeps the modseq of every message of
 * its snapshot next to it (struct imap_selected), so MODSEQ always goes
 * with the FLAGS the session reported, and its HIGHESTMODSEQ, which only
 * moves past changes of others once it has reported them (3.2). */
#include "imap_int.h"
#include "core/log.h"
#include "core/util.h"
#include "store/mailbox.h"
#include "store/modseq.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct imap_cs_select {
	bool qresync;
	uint32_t uidvalidity;           /* the client's */
	uint64_t modseq;                /* its last known HIGHESTMODSEQ */
	bool has_known;
	struct imap_seqset known;       /* known-uids */
};

void imap_cs_enable(struct imap_session *s)
{
	if (s->condstore)
		return;
	s->condstore = true;
	/* RFC 7162 3.1: enabled by a command other than SELECT/EXAMINE while
	 * a mailbox is selected, the client learns its HIGHESTMODSEQ */
	if (s->state == IMAP_SELECTED && s->sel != NULL && s->sel->modseq != NULL)
		imap_reply(s, "* OK [HIGHESTMODSEQ %llu] Highest", (unsigned long long)s->sel->highest);
}

void imap_cs_select_free(struct imap_cs_select **p)
{
	if (*p == NULL)
		return;
	imap_seqset_free(&(*p)->known);
	free(*p);
	*p = NULL;
}

static int imap_cs_number(const struct imap_arg *a, uint64_t max, uint64_t *v)
{
	return a->type == IMAP_ARG_ATOM && util_parse_uint(a->s.p, a->s.len, max, v) == 0 && *v > 0 ?
	       0 : -1;
}

static bool imap_cs_uidset(const struct imap_arg *a, struct imap_seqset *set)
{
	if (a->type != IMAP_ARG_ATOM || imap_seqset_parse(a->s, IMAP_SEQ_RANGES_MAX, set) < 0)
		return false;
	for (size_t i = 0; i < set->n; i++)
		if (set->r[i].lo == IMAP_SEQ_STAR || set->r[i].hi == IMAP_SEQ_STAR) {
			imap_seqset_free(set);
			return false;   /* RFC 7162 7: known-uids without "*" */
		}
	return true;
}

/* "(uidvalidity modseq [known-uids] [(seqs uids)])" (RFC 7162 3.2.5);
 * q is the LIST node. The seq-match-data only helps a server without the
 * history of expunges; it is checked and not used. */
static int imap_cs_qresync_parse(const struct imap_arg *q, struct imap_cs_select *p)
{
	uint64_t uv, ms;
	if (q->type != IMAP_ARG_LIST || q->members < 2 || q->members > 4)
		return -1;
	const struct imap_arg *a = q + 1, *end = q + q->span;
	if (imap_cs_number(&a[0], UINT32_MAX, &uv) < 0 || imap_cs_number(&a[1], MODSEQ_VALUE_MAX, &ms) < 0)
		return -1;
	p->uidvalidity = (uint32_t)uv;
	p->modseq = ms;
	a += 2;
	if (a < end && a->type == IMAP_ARG_ATOM) {
		if (!imap_cs_uidset(a, &p->known))
			return -1;
		p->has_known = true;
		a++;
	}
	if (a < end) {
		struct imap_seqset x, y;
		if (a->type != IMAP_ARG_LIST || a->members != 2 || a->span != 3)
			return -1;
		if (a[1].type != IMAP_ARG_ATOM || imap_seqset_parse(a[1].s, IMAP_SEQ_RANGES_MAX, &x) < 0)
			return -1;
		imap_seqset_free(&x);
		if (!imap_cs_uidset(&a[2], &y))
			return -1;
		imap_seqset_free(&y);
		a += a->span;
	}
	return a == end ? 0 : -1;
}

int imap_cs_select_parse(struct imap_session *s, const struct imap_arg *list,
			 struct imap_cs_select **r)
{
	struct imap_cs_select *p = xcalloc(1, sizeof(*p));
	const struct imap_arg *end = list + list->span;
	bool condstore = false;
	for (const struct imap_arg *a = list + 1; a < end; a += a->span) {
		if (a->type == IMAP_ARG_ATOM && str_case_eq(a->s, "CONDSTORE")) {
			condstore = true;
		} else if (a->type == IMAP_ARG_ATOM && str_case_eq(a->s, "QRESYNC") && !p->qresync &&
			   a + 1 < end && imap_cs_qresync_parse(a + 1, p) == 0) {
			p->qresync = true;
			a++;            /* its list */
		} else {
			imap_cs_select_free(&p);
			imap_bad(s, "Invalid select parameters.");
			return -1;
		}
	}
	if (p->qresync && !s->qresync) {
		imap_cs_select_free(&p);
		imap_bad(s, "QRESYNC is not enabled (RFC 7162 3.2.5).");
		return -1;
	}
	if (condstore || p->qresync)
		s->condstore = true;    /* the SELECT says HIGHESTMODSEQ anyway */
	*r = p;
	return 0;
}

/* --- ranges of UIDs --- */

static int imap_range_cmp(const void *a, const void *b)
{
	const struct modseq_range *x = a, *y = b;
	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* Sorts and merges in place; the new count. */
static size_t imap_ranges_norm(struct modseq_range *v, size_t n)
{
	if (n > 1)
		qsort(v, n, sizeof(*v), imap_range_cmp);
	size_t out = 0;
	for (size_t i = 0; i < n; i++) {
		if (out > 0 && (v[out - 1].hi == UINT32_MAX || v[i].lo <= v[out - 1].hi + 1)) {
			if (v[i].hi > v[out - 1].hi)
				v[out - 1].hi = v[i].hi;
			continue;
		}
		v[out++] = v[i];
	}
	return out;
}

/* A UID set as ranges, "*" being star. */
static struct modseq_range *imap_ranges_of(const struct imap_seqset *set, uint32_t star, size_t *n_r)
{
	struct modseq_range *v = xcalloc(set->n + 1, sizeof(*v));
	for (size_t i = 0; i < set->n; i++) {
		uint32_t lo = set->r[i].lo == IMAP_SEQ_STAR ? star : set->r[i].lo;
		uint32_t hi = set->r[i].hi == IMAP_SEQ_STAR ? star : set->r[i].hi;
		v[i] = lo <= hi ? (struct modseq_range){ lo, hi } : (struct modseq_range){ hi, lo };
	}
	*n_r = imap_ranges_norm(v, set->n);
	return v;
}

/* a AND b (both normalised) into a new array. */
static struct modseq_range *imap_ranges_and(const struct modseq_range *a, size_t na,
					    const struct modseq_range *b, size_t nb, size_t *n_r)
{
	struct modseq_range *v = xcalloc(na + nb + 1, sizeof(*v));
	size_t n = 0;
	for (size_t i = 0, k = 0; i < na && k < nb;) {
		uint32_t lo = a[i].lo > b[k].lo ? a[i].lo : b[k].lo;
		uint32_t hi = a[i].hi < b[k].hi ? a[i].hi : b[k].hi;
		if (lo <= hi)
			v[n++] = (struct modseq_range){ lo, hi };
		if (a[i].hi < b[k].hi)
			i++;
		else
			k++;
	}
	*n_r = n;
	return v;
}

static void imap_range_put(struct buf *b, uint32_t lo, uint32_t hi)
{
	buf_printf(b, b->len ? ",%u" : "%u", lo);
	if (hi != lo)
		buf_printf(b, ":%u", hi);
}

/* Appends the ranges without the UIDs of present[] (ascending). */
static void imap_ranges_minus(struct buf *b, const struct modseq_range *v, size_t n,
			      const uint32_t *present, size_t np)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		uint64_t lo = v[i].lo;
		while (k < np && present[k] < lo)
			k++;
		for (; k < np && present[k] <= v[i].hi; k++) {
			if (present[k] > lo)
				imap_range_put(b, (uint32_t)lo, present[k] - 1);
			lo = (uint64_t)present[k] + 1;
		}
		if (lo <= v[i].hi)
			imap_range_put(b, (uint32_t)lo, v[i].hi);
	}
}

void imap_cs_vanished_earlier(struct buf *out, const struct modseq *ms, uint64_t since,
			      const struct imap_seqset *set, const uint32_t *present,
			      size_t npresent, uint32_t next_uid)
{
	struct modseq_range *gone, *in, *both;
	size_t ngone, nin, nboth;
	uint32_t last = next_uid > 1 ? next_uid - 1 : 0;
	if (modseq_vanished(ms, since, &gone, &ngone) == 0) {
		/* the history since then is gone: every UID handed out that is
		 * not here any more (RFC 7162 3.2.5.2 allows UIDs the client
		 * never saw) */
		free(gone);
		gone = xcalloc(1, sizeof(*gone));
		gone[0] = (struct modseq_range){ 1, last };
		ngone = last > 0;
	}
	/* "*" is the last UID ever handed out: UID FETCH 1:* (VANISHED)
	 * must report UIDs above the highest one left as well */
	struct imap_seqset all = { &(struct imap_seq_range){ 1, IMAP_SEQ_STAR }, 1 };
	in = imap_ranges_of(set ? set : &all, last, &nin);
	both = imap_ranges_and(gone, ngone, in, nin, &nboth);
	struct buf uids = { 0 };
	imap_ranges_minus(&uids, both, nboth, present, npresent);
	if (uids.len > 0)
		buf_printf(out, "* VANISHED (EARLIER) %s\r\n", buf_ptr(&uids));
	buf_free(&uids);
	free(gone);
	free(in);
	free(both);
}

/* --- SELECT / EXAMINE --- */

static uint64_t imap_cs_of(const struct modseq *ms, uint32_t uid)
{
	const struct modseq_msg *r = modseq_get(ms, uid);
	return r != NULL ? r->modseq : ms->highest;
}

void imap_cs_select_reply(struct buf *out, const struct mailbox *mb, const struct modseq *ms,
			  const struct imap_cs_select *p, const struct imap_keywords *kw)
{
	if (ms == NULL) {       /* RFC 7162 3.1.2.2 */
		buf_append_str(out, "* OK [NOMODSEQ] No permanent modsequences\r\n");
		return;
	}
	buf_printf(out, "* OK [HIGHESTMODSEQ %llu] Highest\r\n", (unsigned long long)ms->highest);
	/* 3.2.5.1: another UIDVALIDITY makes the client start over: nothing */
	if (p == NULL || !p->qresync || p->uidvalidity != mb->hdr.uidvalidity)
		return;
	uint32_t *present = xcalloc(mb->count + 1, sizeof(*present));
	for (size_t i = 0; i < mb->count; i++)
		present[i] = mb->msgs[i].uid;
	imap_cs_vanished_earlier(out, ms, p->modseq, p->has_known ? &p->known : NULL, present,
				 mb->count, mb->hdr.next_uid);
	free(present);
	for (size_t i = 0; i < mb->count; i++) {
		uint64_t m = imap_cs_of(ms, mb->msgs[i].uid);
		if (m <= p->modseq)
			continue;
		buf_printf(out, "* %zu FETCH (UID %u ", i + 1, mb->msgs[i].uid);
		imap_flags_append(out, mb->msgs[i].file, mb->msgs[i].recent, kw);
		buf_printf(out, " MODSEQ (%llu))\r\n", (unsigned long long)m);
	}
}

void imap_cs_snapshot(struct imap_selected *sel, const struct modseq *ms)
{
	free(sel->modseq);
	sel->modseq = NULL;
	sel->highest = 0;
	if (ms == NULL)
		return;
	sel->modseq = xcalloc(sel->mb->count + 1, sizeof(*sel->modseq));
	for (size_t i = 0; i < sel->mb->count; i++)
		sel->modseq[i] = imap_cs_of(ms, sel->mb->msgs[i].uid);
	sel->highest = ms->highest;
}

/* --- changes made by commands (pool) --- */

uint64_t imap_cs_expunged(const char *root, uint32_t uidvalidity, const uint32_t *uids,
			  size_t n, uint64_t *before_r)
{
	struct modseq *ms;
	*before_r = 0;
	if (n == 0)
		return 0;
	if (modseq_open(root, uidvalidity, true, &ms) < 0) {
		log_warn(NULL, "event=modseq_failed folder=\"%s\" error=\"%s\"", root, strerror(errno));
		return 0;
	}
	/* RFC 7162 3.2: an expunge gets a modseq of its own (VANISHED (EARLIER)) */
	*before_r = ms->highest;
	uint64_t m = modseq_new(ms, modseq_now());
	modseq_expunge(ms, uids, n, m);
	if (modseq_commit(ms) < 0) {
		log_warn(NULL, "event=modseq_failed folder=\"%s\" error=\"%s\"", root, strerror(errno));
		m = 0;
	}
	modseq_free(&ms);
	return m;
}

void imap_cs_arrived(struct mailbox *mb)
{
	struct modseq *ms;
	if (modseq_sync(mb, &ms) < 0) {
		log_warn(NULL, "event=modseq_failed folder=\"%s\" error=\"%s\"", mb->root, strerror(errno));
		return;
	}
	modseq_free(&ms);
}

uint64_t imap_cs_highest(struct mailbox *mb)
{
	struct modseq *ms;
	if (modseq_sync(mb, &ms) < 0) {
		log_warn(NULL, "event=modseq_failed folder=\"%s\" error=\"%s\"", mb->root, strerror(errno));
		return 0;
	}
	uint64_t h = ms->highest;
	modseq_free(&ms);
	return h;
}

uint64_t imap_cs_record(struct modseq *ms, uint32_t uid, const char *file, uint64_t *mod,
			bool *bumped)
{
	char key[MODSEQ_FLAGS_MAX + 2];
	const char *info = strstr(file, ":2,");
	modseq_key(info ? info + 3 : "", key);
	const struct modseq_msg *r = modseq_get(ms, uid);
	if (r != NULL && strcmp(r->flags, key) == 0)
		return r->modseq;
	if (*mod == 0)
		*mod = modseq_new(ms, modseq_now());
	modseq_set(ms, uid, *mod, key);
	*bumped = true;
	return *mod;
}

void imap_cs_advance(uint64_t *highest, uint64_t before, uint64_t modseq)
{
	if (modseq != 0 && before <= *highest && modseq > *highest)
		*highest = modseq;
}

/* --- responses --- */

void imap_seqset_of(const uint32_t *v, size_t n, struct imap_seqset *set)
{
	set->r = xcalloc(n + 1, sizeof(*set->r));
	set->n = 0;
	for (size_t i = 0; i < n;) {
		size_t k = i + 1;
		while (k < n && v[k - 1] < UINT32_MAX && v[k] == v[k - 1] + 1)
			k++;
		set->r[set->n++] = (struct imap_seq_range){ v[i], v[k - 1] };
		i = k;
	}
}

void imap_set_append(struct buf *b, const uint32_t *v, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t k = i + 1;
		while (k < n && v[k - 1] < UINT32_MAX && v[k] == v[k - 1] + 1)
			k++;
		buf_printf(b, "%s%u", i ? "," : "", v[i]);
		if (k - i > 1)
			buf_printf(b, ":%u", v[k - 1]);
		i = k;
	}
}

void imap_expunged_reply(struct buf *out, bool vanished, const size_t *idx, const uint32_t *uids,
			 size_t n)
{
	if (n == 0)
		return;
	if (vanished) {
		buf_append_str(out, "* VANISHED ");
		imap_set_append(out, uids, n);
		buf_append_str(out, "\r\n");
		return;
	}
	for (size_t i = n; i-- > 0;)
		buf_printf(out, "* %zu EXPUNGE\r\n", idx[i] + 1);
}
