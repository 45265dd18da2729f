/* imap_list.c - LIST (RFC 3501 6.3.8) and its extensions: LIST-EXTENDED
 * (RFC 5258: selection options SUBSCRIBED, REMOTE, RECURSIVEMATCH and
 * RFC 6154's SPECIAL-USE; return options SUBSCRIBED, CHILDREN and
 * SPECIAL-USE; several patterns; \NonExistent, \Subscribed and the
 * CHILDINFO extended data) and LIST-STATUS (RFC 5819: RETURN (STATUS
 * (...)) answers an untagged STATUS after the LIST line of each mailbox
 * that can be selected).
 *
 * One job on the I/O pool: the tree is read once - folders, then the
 * subscriptions and the special uses when the options need them - into
 * one sorted array of names (the folders, the levels that exist only
 * through their children, the subscribed names), then every name is
 * matched against the patterns and the selection. A LIST in RFC 3501
 * syntax answers as it always did: \Noselect for a level,
 * \HasChildren/\HasNoChildren and the special uses on every line (RFC
 * 5258 3 lets a server send them unasked; Dovecot does the same). */
#include "imap_int.h"
#include "imap_folder.h"
#include "imap_use.h"
#include "core/conn.h"
#include "core/log.h"
#include "core/pool.h"
#include "core/util.h"
#include "store/mailbox.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IMAP_LIST_PATTERNS_MAX 64   /* mailbox patterns of one LIST */

enum imap_list_opt {
	LIST_EXTENDED = 1 << 0,         /* RFC 5258 syntax: its attribute rules */
	LIST_SEL_SUBSCRIBED = 1 << 1,
	LIST_SEL_SPECIALUSE = 1 << 2,   /* RFC 6154 5.1 */
	LIST_SEL_RECURSIVE = 1 << 3,
	LIST_RET_SUBSCRIBED = 1 << 4,
	LIST_RET_CHILDREN = 1 << 5,
	LIST_RET_SPECIALUSE = 1 << 6,
	LIST_RET_STATUS = 1 << 7,       /* RFC 5819 */
};

#define LIST_SEL_BASE (LIST_SEL_SUBSCRIBED | LIST_SEL_SPECIALUSE)

struct imap_list_job {
	uint64_t conn_id;
	char tag[IMAP_TAG_MAX + 1];
	char *root;             /* the user's Maildir */
	char **patterns;        /* reference + pattern, each */
	size_t npatterns;
	unsigned opts;          /* enum imap_list_opt */
	unsigned status;        /* LIST-STATUS items (imap_status_items) */
	bool root_query;        /* the one pattern is "" given as a string */
	bool utf8;              /* IMAP4rev2: names in UTF-8 (RFC 9051 5.1) */
	struct buf out;         /* the whole response */
};

/* One name of the tree. */
struct imap_list_node {
	char *name;
	bool exists;            /* a folder, or INBOX */
	bool subscribed;
	bool matched;           /* by one of the patterns */
};

/* The names, sorted: INBOX first, then by strcmp - so the descendants
 * of a name ("a.*") are one run, found by binary search. */
struct imap_list_tree {
	struct imap_list_node *v;
	size_t n, cap;
	struct imap_uses uses;
};

static void imap_list_job_free(struct imap_list_job *j)
{
	free(j->root);
	imap_folder_names_free(j->patterns, j->npatterns);
	buf_free(&j->out);
	free(j);
}

static void imap_list_add(struct imap_list_tree *t, const char *name, size_t len, bool exists,
			  bool subscribed)
{
	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 32;
		t->v = xreallocarray(t->v, t->cap, sizeof(*t->v));
	}
	t->v[t->n++] = (struct imap_list_node){ xstrndup(name, len), exists, subscribed, false };
}

/* name, and the levels above it ("a.b.c": "a", "a.b") as names that do
 * not exist by themselves. */
static void imap_list_add_path(struct imap_list_tree *t, const char *name, bool exists,
			       bool subscribed)
{
	for (const char *dot = strchr(name, '.'); dot != NULL; dot = strchr(dot + 1, '.'))
		imap_list_add(t, name, (size_t)(dot - name), false, false);
	imap_list_add(t, name, strlen(name), exists, subscribed);
}

static int imap_list_cmp(const void *a, const void *b)
{
	const char *x = ((const struct imap_list_node *)a)->name;
	const char *y = ((const struct imap_list_node *)b)->name;
	bool xi = strcmp(x, "INBOX") == 0, yi = strcmp(y, "INBOX") == 0;
	if (xi || yi)
		return yi - xi;
	return strcmp(x, y);
}

/* Sorts the names and merges the duplicates' flags. */
static void imap_list_sort(struct imap_list_tree *t)
{
	qsort(t->v, t->n, sizeof(*t->v), imap_list_cmp);
	size_t o = 0;
	for (size_t i = 0; i < t->n; i++) {
		if (o > 0 && strcmp(t->v[o - 1].name, t->v[i].name) == 0) {
			t->v[o - 1].exists |= t->v[i].exists;
			t->v[o - 1].subscribed |= t->v[i].subscribed;
			free(t->v[i].name);
			continue;
		}
		t->v[o++] = t->v[i];
	}
	t->n = o;
}

static void imap_list_tree_free(struct imap_list_tree *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->v[i].name);
	free(t->v);
	imap_use_free(&t->uses);
}

/* Reads what the options need: 0 or -1. */
static int imap_list_tree_read(const struct imap_list_job *j, struct imap_list_tree *t)
{
	char **names;
	size_t n;
	if (imap_folder_names(j->root, &names, &n) < 0)
		return -1;
	imap_list_add(t, "INBOX", 5, true, false);
	for (size_t i = 0; i < n; i++)
		imap_list_add_path(t, names[i], true, false);
	imap_folder_names_free(names, n);
	if (j->opts & (LIST_SEL_SUBSCRIBED | LIST_RET_SUBSCRIBED)) {
		if (imap_folder_subs_read(j->root, &names, &n) < 0)
			return -1;
		for (size_t i = 0; i < n; i++)
			imap_list_add_path(t, names[i], false, true);
		imap_folder_names_free(names, n);
	}
	if ((!(j->opts & LIST_EXTENDED) || (j->opts & (LIST_SEL_SPECIALUSE | LIST_RET_SPECIALUSE))) &&
	    imap_use_read(j->root, &t->uses) < 0)
		return -1;
	imap_list_sort(t);
	for (size_t i = 0; i < t->n; i++)
		for (size_t p = 0; p < j->npatterns && !t->v[i].matched; p++)
			t->v[i].matched = imap_folder_match_mailbox(j->patterns[p], t->v[i].name);
	return 0;
}

/* The first index of the run of names under t->v[i] ("NAME."), and its
 * prefix length in *len. */
static size_t imap_list_below(const struct imap_list_tree *t, size_t i, size_t *len)
{
	struct buf b = { 0 };
	buf_printf(&b, "%s.", t->v[i].name);
	size_t lo = 1, hi = t->n;       /* INBOX (0) sorts out of order: not searched */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(t->v[mid].name, buf_ptr(&b)) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*len = b.len;
	buf_free(&b);
	return lo;
}

static bool imap_list_has_use(const struct imap_list_tree *t, const char *name)
{
	struct buf b = { 0 };
	imap_use_append(&b, &t->uses, name);
	bool has = b.len > 0;
	buf_free(&b);
	return has;
}

/* RFC 5258 3.1: whether a name meets the criteria of the base selection
 * options given (all of them). */
static bool imap_list_selected(const struct imap_list_job *j, const struct imap_list_tree *t,
			       const struct imap_list_node *nd)
{
	if ((j->opts & LIST_SEL_SUBSCRIBED) && !nd->subscribed)
		return false;
	return !(j->opts & LIST_SEL_SPECIALUSE) || (nd->exists && imap_list_has_use(t, nd->name));
}

/* Over the descendants of t->v[i]: whether one exists (\HasChildren,
 * RFC 5258 4), and - with RECURSIVEMATCH - whether one that no pattern
 * matches meets the selection (CHILDINFO, RFC 5258 3.5). */
static void imap_list_descendants(const struct imap_list_job *j, const struct imap_list_tree *t,
				  size_t i, bool *children, bool *childinfo)
{
	size_t len, k = imap_list_below(t, i, &len);
	const char *name = t->v[i].name;
	*children = *childinfo = false;
	for (; k < t->n && strncmp(t->v[k].name, name, len - 1) == 0 && t->v[k].name[len - 1] == '.';
	     k++) {
		*children |= t->v[k].exists;
		if ((j->opts & LIST_SEL_RECURSIVE) && !t->v[k].matched &&
		    imap_list_selected(j, t, &t->v[k]))
			*childinfo = true;
		if (*children && (*childinfo || !(j->opts & LIST_SEL_RECURSIVE)))
			break;
	}
}

/* The attributes of a LIST line, each after a space. */
static void imap_list_attrs(struct buf *b, const struct imap_list_job *j,
			    const struct imap_list_tree *t, const struct imap_list_node *nd,
			    bool children)
{
	bool ext = j->opts & LIST_EXTENDED;
	if (ext && nd->subscribed && (j->opts & (LIST_SEL_SUBSCRIBED | LIST_RET_SUBSCRIBED)))
		buf_append_str(b, " \\Subscribed");
	if (!nd->exists)        /* RFC 5258 3: \NonExistent implies \Noselect */
		buf_append_str(b, ext ? " \\NonExistent" : " \\Noselect");
	if (!ext || (j->opts & LIST_RET_CHILDREN))
		buf_append_str(b, children ? " \\HasChildren" : " \\HasNoChildren");
	else if (!nd->exists && !(j->opts & LIST_SEL_BASE))
		buf_append_str(b, " \\HasChildren");  /* why a level is listed (RFC 5258 5, ex. 10) */
	if (!ext || (j->opts & (LIST_SEL_SPECIALUSE | LIST_RET_SPECIALUSE)))
		imap_use_append(b, &t->uses, nd->name);
}

/* RFC 5258 3.5 CHILDINFO: the base selection options a child meets. */
static void imap_list_childinfo(struct buf *b, const struct imap_list_job *j)
{
	buf_append_str(b, " (\"CHILDINFO\" (");
	if (j->opts & LIST_SEL_SUBSCRIBED)
		buf_append_str(b, "\"SUBSCRIBED\"");
	if (j->opts & LIST_SEL_SPECIALUSE)
		buf_printf(b, "%s\"SPECIAL-USE\"", j->opts & LIST_SEL_SUBSCRIBED ? " " : "");
	buf_append_str(b, "))");
}

/* RFC 5819: the STATUS of a listed mailbox; one that cannot be opened is
 * left out (logged), the LIST goes on. */
static void imap_list_status(struct imap_list_job *j, const char *name)
{
	struct mailbox *mb;
	char err[512];
	char *path = imap_folder_path(j->root, str_from_cstr(name));
	if (mailbox_open(path, 0, &mb, err, sizeof(err)) == 0) {
		imap_status_append(&j->out, mb, name, j->status, j->utf8);
		mailbox_free(&mb);
	} else {
		log_error(NULL, "event=mailbox_open_failed error=\"%s\"", err);
	}
	free(path);
}

static void imap_list_node_out(struct imap_list_job *j, const struct imap_list_tree *t, size_t i)
{
	const struct imap_list_node *nd = &t->v[i];
	bool children, childinfo;
	if (!nd->matched)
		return;
	imap_list_descendants(j, t, i, &children, &childinfo);
	/* without a base option, a level that exists only through its
	 * children is listed too (RFC 3501 6.3.8) */
	bool sel = (j->opts & LIST_SEL_BASE) ? imap_list_selected(j, t, nd) :
		   nd->exists || children;
	if (!sel && !childinfo)
		return;
	struct buf attrs = { 0 };
	imap_list_attrs(&attrs, j, t, nd, children);
	buf_printf(&j->out, "* LIST (%s) \".\" ", attrs.len ? buf_ptr(&attrs) + 1 : "");
	buf_free(&attrs);
	imap_append_mailbox(&j->out, nd->name, j->utf8);
	if (childinfo)
		imap_list_childinfo(&j->out, j);
	buf_append(&j->out, "\r\n", 2);
	if ((j->opts & LIST_RET_STATUS) && nd->exists)
		imap_list_status(j, nd->name);
}

static void imap_list_work(void *arg)
{
	struct imap_list_job *j = arg;
	struct imap_list_tree t = { 0 };
	if (imap_list_tree_read(j, &t) < 0) {
		buf_printf(&j->out, "%s NO [SERVERBUG] Cannot list the mailboxes.\r\n", j->tag);
	} else {
		for (size_t i = 0; i < t.n; i++)
			imap_list_node_out(j, &t, i);
		buf_printf(&j->out, "%s OK List completed.\r\n", j->tag);
	}
	imap_list_tree_free(&t);
}

static void imap_list_done(void *arg)
{
	struct imap_list_job *j = arg;
	struct conn *c = conn_find(j->conn_id);
	if (c != NULL) {
		conn_write(c, buf_ptr(&j->out), j->out.len);
		imap_resume(c->proto);
	}
	imap_list_job_free(j);
}

/* --- the command --- */

/* RFC 5258 3.1 list-select-opts: 0, or -1 with *why. */
static int imap_list_select_opts(const struct imap_arg *list, unsigned *opts, const char **why)
{
	static const struct { const char *name; unsigned bit; } names[] = {
		{ "SUBSCRIBED", LIST_SEL_SUBSCRIBED }, { "REMOTE", 0 },  /* no remote mailboxes */
		{ "RECURSIVEMATCH", LIST_SEL_RECURSIVE }, { "SPECIAL-USE", LIST_SEL_SPECIALUSE },
	};
	*opts |= LIST_EXTENDED;
	for (const struct imap_arg *o = list + 1; o < list + list->span; o += o->span) {
		size_t k = 0;
		while (k < ARRAY_SIZE(names) &&
		       (o->type != IMAP_ARG_ATOM || !str_case_eq(o->s, names[k].name)))
			k++;
		if (k == ARRAY_SIZE(names)) {
			*why = "Unknown LIST selection option";
			return -1;
		}
		*opts |= names[k].bit;
	}
	/* RFC 5258 3.1: RECURSIVEMATCH alone (or with REMOTE) is BAD */
	if ((*opts & LIST_SEL_RECURSIVE) && !(*opts & LIST_SEL_BASE)) {
		*why = "RECURSIVEMATCH needs SUBSCRIBED or SPECIAL-USE";
		return -1;
	}
	return 0;
}

/* RFC 5258 3.2 "RETURN (...)", with RFC 5819's STATUS (items): 0 or -1. */
static int imap_list_return_opts(const struct imap_arg *kw, const struct imap_arg *list,
				 struct imap_list_job *j, const char **why)
{
	if (kw->type != IMAP_ARG_ATOM || !str_case_eq(kw->s, "RETURN") || list->type != IMAP_ARG_LIST)
		return -1;
	j->opts |= LIST_EXTENDED;
	const struct imap_arg *end = list + list->span;
	for (const struct imap_arg *o = list + 1; o < end; o += o->span) {
		*why = "Unknown LIST return option";
		if (o->type != IMAP_ARG_ATOM)
			return -1;
		if (str_case_eq(o->s, "SUBSCRIBED"))
			j->opts |= LIST_RET_SUBSCRIBED;
		else if (str_case_eq(o->s, "CHILDREN"))
			j->opts |= LIST_RET_CHILDREN;
		else if (str_case_eq(o->s, "SPECIAL-USE"))
			j->opts |= LIST_RET_SPECIALUSE;
		else if (!str_case_eq(o->s, "STATUS"))
			return -1;
		if (!str_case_eq(o->s, "STATUS"))
			continue;
		*why = "Syntax: RETURN (STATUS (item ...))";
		if (++o >= end || o->span != o->members + 1 || imap_status_items(o, &j->status) < 0)
			return -1;
		j->opts |= LIST_RET_STATUS;
	}
	return 0;
}

static int imap_list_pattern(struct imap_list_job *j, struct str ref, const struct imap_arg *a)
{
	struct str pat;
	struct buf pt = { 0 };
	if (!imap_arg_mailbox(j->utf8, a, &pat, &pt) || ref.len + pat.len > IMAP_PATTERN_MAX ||
	    memchr(pat.p, '\0', pat.len)) {
		buf_free(&pt);
		return -1;
	}
	struct buf b = { 0 };
	buf_printf(&b, "%.*s%.*s", STR_FMT(ref), STR_FMT(pat));
	buf_free(&pt);
	j->patterns = xreallocarray(j->patterns, j->npatterns + 1, sizeof(*j->patterns));
	j->patterns[j->npatterns++] = xstrdup(buf_ptr(&b));
	buf_free(&b);
	return 0;
}

/* One pattern or RFC 5258's "(pattern ...)", each after ref: 0 or -1. */
static int imap_list_patterns_of(struct imap_list_job *j, struct str ref, const struct imap_arg *pat,
				 const char **why)
{
	if (pat->type != IMAP_ARG_LIST) {
		j->root_query = pat->s.len == 0;
		return imap_list_pattern(j, ref, pat);
	}
	j->opts |= LIST_EXTENDED;
	if (pat->members == 0 || pat->span != pat->members + 1)
		return -1;
	if (pat->members > IMAP_LIST_PATTERNS_MAX) {
		*why = "Too many mailbox patterns";
		return -1;
	}
	for (const struct imap_arg *a = pat + 1; a < pat + pat->span; a++)
		if (imap_list_pattern(j, ref, a) < 0)
			return -1;
	return 0;
}

/* The reference and one pattern or RFC 5258's "(pattern ...)": 0 or -1. */
static int imap_list_patterns(struct imap_list_job *j, const struct imap_arg *ref_a,
			      const struct imap_arg *pat, const char **why)
{
	struct str ref;
	struct buf rt = { 0 };
	if (!imap_arg_mailbox(j->utf8, ref_a, &ref, &rt) || memchr(ref.p, '\0', ref.len)) {
		buf_free(&rt);
		return -1;
	}
	int rc = imap_list_patterns_of(j, ref, pat, why);
	buf_free(&rt);
	return rc;
}

/* LIST [(select-opts)] reference pattern|(patterns) [RETURN (opts)]:
 * the job, or NULL with *why. */
static struct imap_list_job *imap_list_parse(const struct imap_arg *args, size_t nargs, bool utf8,
					     const char **why)
{
	const struct imap_arg *a[5];
	size_t n = imap_args_top(args, nargs, a, 5), k = 0;
	struct imap_list_job *j = xcalloc(1, sizeof(*j));
	j->utf8 = utf8;
	int rc = 0;
	*why = "Syntax: LIST [(options)] reference mailbox-pattern [RETURN (options)]";
	if (n > 0 && a[0]->type == IMAP_ARG_LIST) {
		rc = imap_list_select_opts(a[0], &j->opts, why);
		k = 1;
	}
	if (rc == 0 && n != k + 2 && n != k + 4)
		rc = -1;
	if (rc == 0 && n == k + 4)
		rc = imap_list_return_opts(a[k + 2], a[k + 3], j, why);
	if (rc == 0)
		rc = imap_list_patterns(j, a[k], a[k + 1], why);
	if (rc < 0) {
		imap_list_job_free(j);
		return NULL;
	}
	return j;
}

void imap_cmd_list(struct imap_session *s, const struct imap_arg *args, size_t nargs)
{
	const char *why;
	struct imap_list_job *j = imap_list_parse(args, nargs, s->rev2, &why);
	if (j == NULL) {
		imap_bad(s, "%s.", why);
		return;
	}
	/* RFC 3501 6.3.8: "" asks for the hierarchy delimiter and root name
	 * (unless options select something else). */
	if (j->root_query && !(j->opts & LIST_SEL_BASE)) {
		imap_reply(s, "* LIST (\\Noselect) \".\" \"\"");
		imap_tagged(s, "OK", "List completed.");
		imap_list_job_free(j);
		return;
	}
	j->conn_id = s->conn->id;
	snprintf(j->tag, sizeof(j->tag), "%s", s->tag);
	j->root = xstrdup(s->maildir);
	conn_pause(s->conn);
	pool_submit(s->srv->io_pool, imap_list_work, imap_list_done, j);
}
