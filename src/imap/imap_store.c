/* imap_store.c - STORE / UID STORE (RFC 3501 6.4.6) and EXPUNGE (6.4.3).
 *
 * Flags live in the Maildir file name (":2,DFRST", Dovecot's letters), so
 * a STORE is a rename per message, done on the I/O pool; the session's
 * snapshot takes the new names when the job completes. Keywords are
 * letters a-z in the name, their names in the folder's dovecot-keywords
 * (imap_keywords.h), as Dovecot keeps them. EXPUNGE removes the messages
 * marked \Deleted in the snapshot and reports them highest first, so each
 * sequence number is right when it is sent (RFC 3501 7.4.1). */
#include "imap_int.h"
#include "core/conn.h"
#include "core/log.h"
#include "core/pool.h"
#include "core/util.h"
#include "store/mailbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct imap_store_msg {
	size_t index;
	uint32_t uid;
	char *base, *file;
	bool recent, changed, gone;
};

struct imap_store_job {
	uint64_t conn_id;
	char tag[IMAP_TAG_MAX + 1];
	char *root;
	char op;                /* '+', '-' or '=' */
	char letters[8];        /* the system flags named */
	char *kwnames[IMAP_KEYWORDS_MAX];   /* the keywords named */
	size_t nkw;
	struct imap_keywords kw;        /* the folder's, updated by the job */
	char add[40], remove[40];       /* info letters, computed on the pool */
	bool silent, uid_cmd;
	struct imap_store_msg *msgs;
	size_t n, gone;
	struct buf out;
	/* EXPUNGE */
	struct imap_selected *sel;
	uint32_t *uids;
	size_t nuids;
};

static const struct {
	const char *flag;
	char letter;
} imap_store_flags[] = {
	{ "\\Answered", 'R' }, { "\\Flagged", 'F' }, { "\\Deleted", 'T' },
	{ "\\Seen", 'S' }, { "\\Draft", 'D' },
};

static void imap_store_job_free(struct imap_store_job *j)
{
	for (size_t i = 0; i < j->n; i++) {
		free(j->msgs[i].base);
		free(j->msgs[i].file);
	}
	for (size_t i = 0; i < j->nkw; i++)
		free(j->kwnames[i]);
	imap_keywords_free(&j->kw);
	free(j->msgs);
	free(j->root);
	free(j->uids);
	buf_free(&j->out);
	free(j);
}

/* The flag arguments: a list or flags separated by spaces: system flags
 * as letters, keywords as names. 0, or -1 (\Recent, a bad flag). */
static int imap_store_parse_flags(struct imap_store_job *j, const struct imap_arg *args, size_t nargs)
{
	size_t n = 0;
	if (nargs > 0 && args[0].type == IMAP_ARG_LIST) {
		if (args[0].span != nargs || args[0].members != nargs - 1)
			return -1;
		args++;
		nargs--;
	}
	for (size_t i = 0; i < nargs; i++) {
		if (args[i].type != IMAP_ARG_ATOM)
			return -1;
		if (args[i].s.p[0] != '\\') {
			if (!imap_keyword_valid(args[i].s))
				return -1;
			if (j->nkw < IMAP_KEYWORDS_MAX)
				j->kwnames[j->nkw++] = xstrndup(args[i].s.p, args[i].s.len);
			continue;
		}
		size_t k = 0;
		while (k < ARRAY_SIZE(imap_store_flags) && !str_case_eq(args[i].s, imap_store_flags[k].flag))
			k++;
		if (k == ARRAY_SIZE(imap_store_flags))
			return -1;      /* \Recent or an unknown system flag */
		if (!memchr(j->letters, imap_store_flags[k].letter, n))
			j->letters[n++] = imap_store_flags[k].letter;
	}
	j->letters[n] = '\0';
	return 0;
}

/* add/remove from the operation; keywords get their letters here (a new
 * one is added to dovecot-keywords unless it is being removed). */
static void imap_store_resolve(struct imap_store_job *j)
{
	char kwl[IMAP_KEYWORDS_MAX + 1] = "";
	size_t n = 0;
	for (size_t i = 0; i < j->nkw; i++) {
		char l = j->op == '-' ? imap_keywords_find(&j->kw, j->kwnames[i]) :
			 imap_keywords_assign(j->root, &j->kw, j->kwnames[i]);
		if (l && !strchr(kwl, l)) {
			kwl[n++] = l;
			kwl[n] = '\0';
		}
	}
	if (j->op == '-') {
		snprintf(j->remove, sizeof(j->remove), "%s%s", j->letters, kwl);
		return;
	}
	snprintf(j->add, sizeof(j->add), "%s%s", j->letters, kwl);
	if (j->op == '+')
		return;
	n = 0;          /* FLAGS: everything else goes */
	for (const char *l = "DFRSTabcdefghijklmnopqrstuvwxyz"; *l; l++)
		if (!strchr(j->add, *l))
			j->remove[n++] = *l;
	j->remove[n] = '\0';
}

static void imap_store_fetch_line(struct imap_store_job *j, const struct imap_store_msg *m)
{
	buf_printf(&j->out, "* %zu FETCH (", m->index + 1);
	if (j->uid_cmd)
		buf_printf(&j->out, "UID %u ", m->uid);
	imap_flags_append(&j->out, m->file, m->recent, &j->kw);
	buf_append_str(&j->out, ")\r\n");
}

static void imap_store_work(void *arg)
{
	struct imap_store_job *j = arg;
	imap_store_resolve(j);
	for (size_t i = 0; i < j->n; i++) {
		struct imap_store_msg *m = &j->msgs[i];
		char *before = xstrdup(m->file);
		if (mailbox_file_flags(j->root, m->base, &m->file, j->add, j->remove) < 0) {
			m->gone = true;
			j->gone++;
		} else {
			m->changed = strcmp(before, m->file) != 0;
			if (!j->silent)
				imap_store_fetch_line(j, m);
		}
		free(before);
	}
	if (j->gone)
		buf_printf(&j->out, "%s NO [EXPUNGEISSUED] Some messages were expunged.\r\n", j->tag);
	else
		buf_printf(&j->out, "%s OK %sStore completed.\r\n", j->tag, j->uid_cmd ? "UID " : "");
}

static void imap_store_done(void *arg)
{
	struct imap_store_job *j = arg;
	struct conn *c = conn_find(j->conn_id);
	if (c != NULL) {
		struct imap_session *s = c->proto;
		struct mailbox *mb = s->sel ? s->sel->mb : NULL;
		for (size_t i = 0; mb && i < j->n; i++) {
			struct imap_store_msg *m = &j->msgs[i];
			if (!m->changed || m->index >= mb->count || mb->msgs[m->index].uid != m->uid)
				continue;
			free(mb->msgs[m->index].file);
			mb->msgs[m->index].file = xstrdup(m->file);
			const char *info = strstr(m->file, ":2,");
			mb->msgs[m->index].seen = info && strchr(info + 3, 'S');
		}
		if (s->sel != NULL) {   /* new keywords may have been added */
			imap_keywords_free(&s->sel->kw);
			s->sel->kw = j->kw;
			memset(&j->kw, 0, sizeof(j->kw));
		}
		conn_write(c, buf_ptr(&j->out), j->out.len);
		imap_resume(s);
	}
	imap_store_job_free(j);
}

static struct imap_store_job *imap_store_job_new(struct imap_session *s)
{
	struct imap_store_job *j = xcalloc(1, sizeof(*j));
	j->conn_id = s->conn->id;
	snprintf(j->tag, sizeof(j->tag), "%s", s->tag);
	j->root = xstrdup(s->sel->mb->root);
	return j;
}

/* "+FLAGS", "-FLAGS.SILENT", ...: the operation. */
static int imap_store_op(struct imap_store_job *j, struct str item)
{
	j->op = item.len && (item.p[0] == '+' || item.p[0] == '-') ? item.p[0] : '=';
	if (j->op != '=') {
		item.p++;
		item.len--;
	}
	if (str_case_eq(item, "FLAGS.SILENT"))
		j->silent = true;
	else if (!str_case_eq(item, "FLAGS"))
		return -1;
	return 0;
}

void imap_store_run(struct imap_session *s, const struct imap_arg *args, size_t nargs, bool uid)
{
	const struct imap_arg *a[2];
	size_t *idx, n;
	if (imap_args_top(args, nargs, a, 2) < 3 || a[0]->type != IMAP_ARG_ATOM ||
	    a[1]->type != IMAP_ARG_ATOM) {
		imap_bad(s, "Syntax: STORE sequence-set (+|-)FLAGS[.SILENT] (flags)");
		return;
	}
	if (s->sel->readonly) {
		imap_tagged(s, "NO", "[READ-ONLY] The mailbox is read-only.");
		return;
	}
	struct imap_store_job *j = imap_store_job_new(s);
	j->uid_cmd = uid;
	if (imap_store_op(j, a[1]->s) < 0 || imap_store_parse_flags(j, &args[2], nargs - 2) < 0) {
		imap_store_job_free(j);
		imap_bad(s, "Syntax: STORE sequence-set (+|-)FLAGS[.SILENT] (flags)");
		return;
	}
	if (imap_msgset(s, a[0], uid, &idx, &n) < 0) {
		imap_store_job_free(j);
		return;
	}
	imap_keywords_copy(&j->kw, &s->sel->kw);
	const struct mailbox *mb = s->sel->mb;
	j->msgs = xcalloc(n ? n : 1, sizeof(*j->msgs));
	j->n = n;
	for (size_t i = 0; i < n; i++) {
		const struct mailbox_msg *m = &mb->msgs[idx[i]];
		j->msgs[i] = (struct imap_store_msg){
			.index = idx[i], .uid = m->uid, .base = xstrdup(m->base),
			.file = xstrdup(m->file), .recent = m->recent,
		};
	}
	free(idx);
	conn_pause(s->conn);
	pool_submit(s->srv->io_pool, imap_store_work, imap_store_done, j);
}

void imap_cmd_store(struct imap_session *s, const struct imap_arg *args, size_t nargs)
{
	imap_store_run(s, args, nargs, false);
}

/* --- EXPUNGE --- */

static bool imap_msg_deleted(const struct mailbox_msg *m)
{
	const char *info = strstr(m->file, ":2,");
	return info != NULL && strchr(info + 3, 'T') != NULL;
}

/* Whether uid is one of the job's (ascending) UIDs to expunge. */
static bool imap_expunge_listed(const struct imap_store_job *j, uint32_t uid)
{
	size_t lo = 0, hi = j->nuids;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (j->uids[mid] == uid)
			return true;
		if (j->uids[mid] < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

static void imap_expunge_work(void *arg)
{
	struct imap_store_job *j = arg;
	struct mailbox *mb = j->sel->mb;
	if (j->nuids > 0 && mailbox_expunge(mb, j->uids, j->nuids) > 0) {
		log_warn(NULL, "event=expunge_failed folder=\"%s\"", mb->root);
		buf_printf(&j->out, "%s NO [SERVERBUG] Some messages could not be expunged.\r\n", j->tag);
		j->nuids = 0;   /* the snapshot stays as it is */
		return;
	}
	for (size_t i = mb->count; i-- > 0;)
		if (imap_expunge_listed(j, mb->msgs[i].uid))
			buf_printf(&j->out, "* %zu EXPUNGE\r\n", i + 1);
	buf_printf(&j->out, "%s OK Expunge completed.\r\n", j->tag);
}

/* Drops the expunged messages from the snapshot. */
static void imap_expunge_forget(const struct imap_store_job *j, struct mailbox *mb)
{
	size_t out = 0;
	for (size_t i = 0; i < mb->count; i++) {
		if (imap_expunge_listed(j, mb->msgs[i].uid)) {
			free(mb->msgs[i].base);
			free(mb->msgs[i].file);
			free(mb->msgs[i].ext);
			free(mb->msgs[i].uidl);
		} else {
			mb->msgs[out++] = mb->msgs[i];
		}
	}
	mb->count = out;
}

static void imap_expunge_done(void *arg)
{
	struct imap_store_job *j = arg;
	struct conn *c = conn_find(j->conn_id);
	if (j->nuids > 0)
		imap_expunge_forget(j, j->sel->mb);
	if (c != NULL) {
		struct imap_session *s = c->proto;
		s->sel = j->sel;        /* back to the session */
		j->sel = NULL;
		conn_write(c, buf_ptr(&j->out), j->out.len);
		imap_resume(s);
	} else {
		imap_selected_free(&j->sel);
	}
	imap_store_job_free(j);
}

/* EXPUNGE, or UID EXPUNGE (RFC 4315 2.1: only the \Deleted messages of
 * the UID set). */
void imap_expunge_run(struct imap_session *s, const struct imap_arg *args, size_t nargs, bool uid)
{
	size_t *idx = NULL, n = 0;
	if (nargs != (uid ? 1u : 0u)) {
		imap_bad(s, uid ? "Syntax: UID EXPUNGE uid-set" : "EXPUNGE takes no arguments.");
		return;
	}
	if (s->sel->readonly) {
		imap_tagged(s, "NO", "[READ-ONLY] The mailbox is read-only.");
		return;
	}
	if (uid && imap_msgset(s, &args[0], true, &idx, &n) < 0)
		return;
	struct imap_store_job *j = imap_store_job_new(s);
	struct mailbox *mb = s->sel->mb;
	j->uids = xcalloc(mb->count ? mb->count : 1, sizeof(*j->uids));
	for (size_t i = 0, k = 0; i < mb->count; i++) {
		while (uid && k < n && idx[k] < i)
			k++;
		if (imap_msg_deleted(&mb->msgs[i]) && (!uid || (k < n && idx[k] == i)))
			j->uids[j->nuids++] = mb->msgs[i].uid;
	}
	free(idx);
	/* The job holds the mailbox while it runs (the connection waits). */
	j->sel = s->sel;
	s->sel = NULL;
	conn_pause(s->conn);
	pool_submit(s->srv->io_pool, imap_expunge_work, imap_expunge_done, j);
}

void imap_cmd_expunge(struct imap_session *s, const struct imap_arg *args, size_t nargs)
{
	imap_expunge_run(s, args, nargs, false);
}
