/* imap_thread.c - THREAD=ORDEREDSUBJECT and THREAD=REFERENCES (RFC 5256
 * 4), over the sort keys of the matched messages (imap_sort.c). Trees are
 * walked with explicit stacks, never by recursion: a reply chain can be as
 * long as the folder. */
#include "imap_int.h"
#include "core/util.h"

#include <stdlib.h>
#include <string.h>

struct tnode {
	struct imap_sort_msg *msg;      /* NULL: a dummy (a referenced id we do not have) */
	struct str id;
	struct tnode *parent, *child, *next;
	struct tnode *hnext;            /* hash chain */
};

struct tctx {
	struct tnode *nodes;
	size_t n, cap;                  /* nodes are never moved: cap is fixed */
	struct tnode **hash;
	size_t hsize;
};

/* The message that dates a node: its own, or its first child's. */
static const struct imap_sort_msg *tnode_msg(const struct tnode *t)
{
	while (t != NULL && t->msg == NULL)
		t = t->child;
	return t ? t->msg : NULL;
}

/* RFC 5256 4: by sent date, ties by sequence number. */
static int tnode_cmp(const void *x, const void *y)
{
	const struct imap_sort_msg *a = tnode_msg(*(struct tnode *const *)x);
	const struct imap_sort_msg *b = tnode_msg(*(struct tnode *const *)y);
	if (a == NULL || b == NULL)
		return (a != NULL) - (b != NULL);
	int64_t da = a->date, db = b->date;
	if (da != db)
		return (da > db) - (da < db);
	return (a->seq > b->seq) - (a->seq < b->seq);
}

static struct tnode *tnode_new(struct tctx *t, struct str id)
{
	if (t->n == t->cap)     /* imap_thread_run's bound is wrong */
		fatal("thread: more than %zu nodes", t->cap);
	struct tnode *n = &t->nodes[t->n++];
	memset(n, 0, sizeof(*n));
	n->id = id;
	return n;
}

static size_t thash(struct str s, size_t size)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < s.len; i++)
		h = (h ^ (unsigned char)s.p[i]) * 16777619u;
	return h & (size - 1);
}

static struct tnode *tnode_get(struct tctx *t, struct str id)
{
	size_t h = thash(id, t->hsize);
	for (struct tnode *n = t->hash[h]; n != NULL; n = n->hnext)
		if (n->id.len == id.len && memcmp(n->id.p, id.p, id.len) == 0)
			return n;
	struct tnode *n = tnode_new(t, id);
	n->hnext = t->hash[h];
	t->hash[h] = n;
	return n;
}

static bool tnode_ancestor(const struct tnode *a, const struct tnode *of)
{
	for (const struct tnode *p = of; p != NULL; p = p->parent)
		if (p == a)
			return true;
	return false;
}

static void tnode_unlink(struct tnode *c)
{
	if (c->parent == NULL)
		return;
	struct tnode **pp = &c->parent->child;
	while (*pp != c)
		pp = &(*pp)->next;
	*pp = c->next;
	c->next = NULL;
	c->parent = NULL;
}

static void tnode_add_child(struct tnode *p, struct tnode *c)
{
	struct tnode **pp = &p->child;
	while (*pp != NULL)
		pp = &(*pp)->next;
	*pp = c;
	c->parent = p;
	c->next = NULL;
}

/* Links c under p unless that makes a loop (only possible when c has
 * children: the common case, a new container, costs no walk up). */
static bool tnode_link(struct tnode *p, struct tnode *c)
{
	if (p == c || (c->child != NULL && tnode_ancestor(c, p)))
		return false;
	tnode_unlink(c);
	tnode_add_child(p, c);
	return true;
}

/* The ids a message's parent chain comes from: References, else
 * In-Reply-To (space-separated). */
static struct str thread_refs(const struct imap_sort_msg *m)
{
	return m->f[IMAP_SF_REFS].len ? m->f[IMAP_SF_REFS] : m->f[IMAP_SF_INREPLYTO];
}

/* Step 1: a message and its references. */
static void thread_add(struct tctx *t, struct imap_sort_msg *m)
{
	struct str refs = thread_refs(m);
	struct tnode *prev = NULL;
	for (size_t i = 0; i < refs.len;) {
		size_t e = i;
		while (e < refs.len && refs.p[e] != ' ')
			e++;
		struct tnode *c = tnode_get(t, (struct str){ refs.p + i, e - i });
		/* 1.A: existing links stay; no loops */
		if (prev != NULL && c->parent == NULL)
			tnode_link(prev, c);
		prev = c;
		i = e + 1;
	}
	struct str id = m->f[IMAP_SF_MSGID];
	struct tnode *c = id.len ? tnode_get(t, id) : NULL;
	if (c == NULL || c->msg != NULL)        /* none, or a duplicate id */
		c = tnode_new(t, (struct str){ "", 0 });
	c->msg = m;
	/* 1.B: the parent is the last reference, or none */
	if (prev == NULL || !tnode_link(prev, c))
		tnode_unlink(c);
}

/* Every node reachable from the list, parents before children. */
static size_t thread_preorder(struct tnode *first, struct tnode **out, size_t max)
{
	size_t n = 0, top = 0;
	struct tnode **stack = xcalloc(max + 1, sizeof(*stack));
	for (struct tnode *r = first; r != NULL; r = r->next)
		stack[top++] = r;
	while (top > 0 && n < max) {
		struct tnode *c = stack[--top];
		out[n++] = c;
		for (struct tnode *k = c->child; k != NULL && top < max; k = k->next)
			stack[top++] = k;
	}
	free(stack);
	return n;
}

/* Step 4.C/D below the root set: dummies go, their children move up. */
static void thread_prune_kids(struct tnode *p)
{
	struct tnode **pp = &p->child;
	while (*pp != NULL) {
		struct tnode *k = *pp;
		if (k->msg != NULL) {
			pp = &k->next;
			continue;
		}
		struct tnode *after = k->next, *kid = k->child;
		*pp = kid;
		for (; kid != NULL; kid = kid->next) {
			kid->parent = p;
			pp = &kid->next;
		}
		*pp = after;
	}
}

static void thread_sort_kids(struct tnode *p)
{
	size_t n = 0;
	for (struct tnode *k = p->child; k != NULL; k = k->next)
		n++;
	if (n < 2)
		return;
	struct tnode **v = xcalloc(n, sizeof(*v));
	n = 0;
	for (struct tnode *k = p->child; k != NULL; k = k->next)
		v[n++] = k;
	qsort(v, n, sizeof(*v), tnode_cmp);
	for (size_t i = 0; i < n; i++)
		v[i]->next = i + 1 < n ? v[i + 1] : NULL;
	p->child = v[0];
	free(v);
}

/* Prunes (or sorts the children of) every node under the roots. */
static void thread_walk(struct tctx *t, struct tnode *roots, void (*fn)(struct tnode *))
{
	struct tnode **all = xcalloc(t->n + 1, sizeof(*all));
	size_t n = thread_preorder(roots, all, t->n);
	for (size_t i = n; i-- > 0;)    /* children first */
		fn(all[i]);
	free(all);
}

/* The root set, pruned (4) and in date order (5), as an array. */
static struct tnode **thread_roots(struct tctx *t, size_t *nroots)
{
	struct tnode **r = xcalloc(t->n + 1, sizeof(*r));
	size_t n = 0;
	for (size_t i = 0; i < t->n; i++) {
		struct tnode *c = &t->nodes[i];
		if (c->parent == NULL && (c->msg != NULL || c->child != NULL))
			r[n++] = c;
	}
	/* Promotion comes after the scan: a promoted child loses its parent
	 * and would otherwise be collected a second time at its own index. */
	for (size_t i = 0; i < n; i++)
		if (r[i]->msg == NULL && r[i]->child->next == NULL) {  /* one child: promoted */
			r[i]->child->parent = NULL;
			r[i] = r[i]->child;
		}
	qsort(r, n, sizeof(*r), tnode_cmp);
	*nroots = n;
	return r;
}

static struct str tnode_subject(const struct tnode *c)
{
	const struct imap_sort_msg *m = c->msg ? c->msg : c->child ? c->child->msg : NULL;
	return m ? m->f[IMAP_SF_SUBJECT] : (struct str){ "", 0 };
}

static bool tnode_reply(const struct tnode *c)
{
	return c->msg != NULL && c->msg->f[IMAP_SF_REPLY].len && c->msg->f[IMAP_SF_REPLY].p[0] == '1';
}

static bool thread_same_subject(const struct tnode *a, const struct tnode *b)
{
	struct str x = tnode_subject(a), y = tnode_subject(b);
	return x.len == y.len && memcmp(x.p, y.p, x.len) == 0;
}

/* 6.A: should root c replace the table's head h for their subject? A
 * dummy beats a message, a message beats a reply. */
static bool thread_better_head(const struct tnode *c, const struct tnode *h)
{
	if (h->msg == NULL)
		return false;
	return c->msg == NULL || (tnode_reply(h) && !tnode_reply(c));
}

/* The subject table: root index per base subject, open addressing. */
struct tsubj {
	size_t *slot;           /* root index + 1, 0 = empty */
	size_t size;
};

static size_t *tsubj_find(struct tsubj *t, struct tnode **r, struct str subj)
{
	size_t i = thash(subj, t->size);
	while (t->slot[i] != 0) {
		struct str o = tnode_subject(r[t->slot[i] - 1]);
		if (o.len == subj.len && memcmp(o.p, subj.p, subj.len) == 0)
			break;
		i = (i + 1) & (t->size - 1);
	}
	return &t->slot[i];
}

/* 6.B: root c joins head h (which may become a new dummy). */
static void thread_merge(struct tctx *t, struct tnode **h, struct tnode *c)
{
	if ((*h)->msg == NULL && c->msg == NULL) {
		while (c->child != NULL) {
			struct tnode *k = c->child;
			tnode_unlink(k);
			tnode_add_child(*h, k);
		}
	} else if ((*h)->msg == NULL) {
		tnode_add_child(*h, c);
	} else if (tnode_reply(c) && !tnode_reply(*h)) {
		tnode_add_child(*h, c);
	} else {
		struct tnode *d = tnode_new(t, (struct str){ "", 0 });
		tnode_add_child(d, *h);
		tnode_add_child(d, c);
		*h = d;
	}
}

static void thread_group_subjects(struct tctx *t, struct tnode **r, size_t *n)
{
	struct tsubj tab = { 0 };
	for (tab.size = 16; tab.size < *n * 2; tab.size *= 2)
		;
	tab.slot = xcalloc(tab.size, sizeof(*tab.slot));
	for (size_t i = 0; i < *n; i++) {       /* 6.A */
		struct str subj = tnode_subject(r[i]);
		if (subj.len == 0)
			continue;
		size_t *e = tsubj_find(&tab, r, subj);
		if (*e == 0 || thread_better_head(r[i], r[*e - 1]))
			*e = i + 1;
	}
	bool *gone = xcalloc(*n + 1, sizeof(*gone));
	for (size_t i = 0; i < *n; i++) {       /* 6.B */
		struct str subj = tnode_subject(r[i]);
		if (subj.len == 0)
			continue;
		size_t h = *tsubj_find(&tab, r, subj) - 1;
		if (h == i)
			continue;
		thread_merge(t, &r[h], r[i]);
		gone[i] = true;
	}
	size_t w = 0;
	for (size_t i = 0; i < *n; i++)
		if (!gone[i])
			r[w++] = r[i];
	*n = w;
	free(gone);
	free(tab.slot);
}

/* --- output: "(3 6 (4 23)(44 7 96))" (RFC 5256 5) --- */

struct tframe {
	struct tnode *next;
	bool started;
};

/* A node's number and its single-child chain; a frame for 2+ children. */
static void thread_emit_chain(struct buf *out, struct tnode *c, bool uid, struct tframe **st,
			      size_t *top, size_t *cap)
{
	for (;;) {
		if (c->msg != NULL)
			buf_append_num(out, "", uid ? c->msg->uid : c->msg->seq);
		if (c->child == NULL)
			return;
		if (c->msg != NULL)
			buf_append(out, " ", 1);
		if (c->child->next == NULL) {
			c = c->child;
			continue;
		}
		if (*top == *cap) {
			*cap = *cap ? *cap * 2 : 16;
			*st = xreallocarray(*st, *cap, sizeof(**st));
		}
		(*st)[(*top)++] = (struct tframe){ c->child, false };
		return;
	}
}

static void thread_emit(struct buf *out, struct tnode *root, bool uid)
{
	struct tframe *st = NULL;
	size_t top = 0, cap = 0;
	buf_append(out, "(", 1);
	thread_emit_chain(out, root, uid, &st, &top, &cap);
	while (top > 0) {
		struct tframe *f = &st[top - 1];
		if (f->started)
			buf_append(out, ")", 1);
		if (f->next == NULL) {
			top--;
			continue;
		}
		struct tnode *kid = f->next;
		f->next = kid->next;
		f->started = true;
		buf_append(out, "(", 1);
		thread_emit_chain(out, kid, uid, &st, &top, &cap);
	}
	buf_append(out, ")", 1);
	free(st);
}

static void thread_references(struct tctx *t, struct imap_sort_msg *m, size_t n, struct buf *out, bool uid)
{
	for (size_t i = 0; i < n; i++)
		thread_add(t, &m[i]);
	size_t nroots;
	struct tnode *all_roots = NULL, **tail = &all_roots;
	for (size_t i = 0; i < t->n; i++)
		if (t->nodes[i].parent == NULL) {
			*tail = &t->nodes[i];
			tail = &t->nodes[i].next;
		}
	*tail = NULL;
	thread_walk(t, all_roots, thread_prune_kids);
	thread_walk(t, all_roots, thread_sort_kids);
	struct tnode **r = thread_roots(t, &nroots);
	thread_group_subjects(t, r, &nroots);
	for (size_t i = 0; i < nroots; i++)
		r[i]->next = i + 1 < nroots ? r[i + 1] : NULL;
	if (nroots > 0)
		thread_walk(t, r[0], thread_sort_kids);         /* 7 */
	/* 7 sorts every set of siblings, the root level too: a subject merge
	 * may have made a dummy that now dates by its earliest child. */
	qsort(r, nroots, sizeof(*r), tnode_cmp);
	for (size_t i = 0; i < nroots; i++)
		thread_emit(out, r[i], uid);
	free(r);
}

/* ORDEREDSUBJECT: by base subject then date; each subject one thread,
 * its first message the parent of the others; threads by their first
 * message's date. */
static void thread_ordered_subject(struct tctx *t, struct imap_sort_msg *m, size_t n, struct buf *out,
				   bool uid)
{
	static const struct imap_sort_key keys[] = { { IMAP_SORT_SUBJECT, false }, { IMAP_SORT_DATE, false } };
	imap_sort_run(m, n, keys, 2);
	struct tnode **r = xcalloc(n + 1, sizeof(*r));
	size_t nroots = 0;
	for (size_t i = 0; i < n; i++) {
		struct tnode *c = tnode_new(t, (struct str){ "", 0 });
		c->msg = &m[i];
		if (nroots > 0 && thread_same_subject(r[nroots - 1], c))
			tnode_add_child(r[nroots - 1], c);
		else
			r[nroots++] = c;
	}
	qsort(r, nroots, sizeof(*r), tnode_cmp);
	for (size_t i = 0; i < nroots; i++)
		thread_emit(out, r[i], uid);
	free(r);
}

/* How many space-separated ids a references field holds. */
static size_t thread_ids(struct str refs)
{
	size_t k = refs.len > 0;
	for (const char *p = refs.p, *e = refs.p + refs.len; (p = memchr(p, ' ', (size_t)(e - p))) != NULL; p++)
		k++;
	return k;
}

void imap_thread_run(struct imap_sort_msg *m, size_t n, bool references, bool uid, struct buf *out)
{
	struct tctx t = { 0 };
	/* nodes: one per id referenced (thread_add) and per message, and one
	 * dummy per root at most (thread_merge); a length/4 guess made the
	 * arrays ten times too big, and zeroing them dominated a warm THREAD */
	size_t refs = 0;
	for (size_t i = 0; i < n; i++)
		refs += thread_ids(thread_refs(&m[i]));
	t.cap = 2 * n + refs + 16;
	t.nodes = xcalloc(t.cap, sizeof(*t.nodes));
	for (t.hsize = 64; t.hsize < t.cap; t.hsize *= 2)
		;
	t.hash = xcalloc(t.hsize, sizeof(*t.hash));
	if (references)
		thread_references(&t, m, n, out, uid);
	else
		thread_ordered_subject(&t, m, n, out, uid);
	free(t.hash);
	free(t.nodes);
}
