/* imap_store.c - STORE / UID STORE (RFC 3501 6.4.6) with CONDSTORE's
 * UNCHANGEDSINCE (RFC 7162 3.1.3), and EXPUNGE (6.4.3).
 *
 * Flags live in the Maildir file name (":2,DFRST", Dovecot's letters), so
 * a STORE is a rename per message, done on the I/O pool; the session's
 * snapshot takes the new names when the job completes. Keywords are
 * letters a-z in the name, their names in the folder's dovecot-keywords
 * (imap_keywords.h), as Dovecot keeps them. Every message a STORE
 * changes gets the command's one new modseq (RFC 7162 3.1.3); with
 * UNCHANGEDSINCE the job holds the folder's modseq file locked while it
 * tests and renames, so test and change are one step for every moonpost
 * session. EXPUNGE
 * removes the messages marked \Deleted in the snapshot and reports them
 * highest first, so each sequence number is right when it is sent (RFC
 * 3501 7.4.1), or as one VANISHED after ENABLE QRESYNC (RFC 7162 3.2.10). */
#include "imap_int.h"
#include "core/conn.h"
#include "core/log.h"
#include "core/pool.h"
#include "core/util.h"
#include "store/mailbox.h"
#include "store/modseq.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct imap_store_msg {
	size_t index;
	uint32_t uid;
	char *base, *file;
	char *old;              /* the file name the session reported */
	uint64_t modseq;        /* after the command, 0 = unknown (no modseq file) */
	bool recent, changed, gone;
	bool bumped;            /* got a new modseq */
	bool modified;          /* failed UNCHANGEDSINCE (RFC 7162 3.1.3) */
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
	size_t n, gone, nmodified;
	struct buf out;
	/* CONDSTORE (RFC 7162) */
	bool condstore;         /* enabled: MODSEQ in the FETCH responses */
	bool qresync;           /* enabled: UID in them too (RFC 7162 3.2.4) */
	bool unchanged;         /* UNCHANGEDSINCE given */
	uint64_t unchangedsince;
	uint32_t uidvalidity;
	uint64_t highest;       /* the session's HIGHESTMODSEQ; the job's result */
	/* EXPUNGE */
	struct imap_selected *sel;
	uint32_t *uids;
	size_t nuids;
	bool vanished;          /* QRESYNC: VANISHED instead of EXPUNGE */
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
		free(j->msgs[i].old);
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

static const char *imap_store_info(const char *file)
{
	const char *info = strstr(file, ":2,");
	return info ? info + 3 : "";
}

/* Whether the new flags are what the client asked for on top of what it
 * was told: if not (someone else changed the message meanwhile), even a
 * .SILENT store says the FLAGS, or the client would never learn them. */
static bool imap_store_expected(const struct imap_store_job *j, const struct imap_store_msg *m)
{
	const char *old = imap_store_info(m->old), *now = imap_store_info(m->file);
	for (int ch = 0x21; ch < 0x7f; ch++) {
		bool want = (strchr(old, ch) || strchr(j->add, ch)) && !strchr(j->remove, ch);
		if (want != (strchr(now, ch) != NULL))
			return false;
	}
	return true;
}

static void imap_store_fetch_line(struct imap_store_job *j, const struct imap_store_msg *m)
{
	bool flags = !j->silent || !imap_store_expected(j, m);
	bool modseq = j->condstore && m->modseq != 0;
	/* RFC 7162 3.1.3: with CONDSTORE a message that changed is reported
	 * even under .SILENT, for its MODSEQ (which another session's sync
	 * may have given it between our rename and our record) */
	bool changed = m->bumped || strcmp(imap_store_info(m->old), imap_store_info(m->file)) != 0;
	if (!flags && !(modseq && changed))
		return;
	const char *sp = "";
	buf_printf(&j->out, "* %zu FETCH (", m->index + 1);
	if (j->uid_cmd || j->qresync) {
		buf_printf(&j->out, "UID %u", m->uid);
		sp = " ";
	}
	if (flags) {
		buf_append_str(&j->out, sp);
		imap_flags_append(&j->out, m->file, m->recent, &j->kw);
		sp = " ";
	}
	if (modseq)
		buf_printf(&j->out, "%sMODSEQ (%llu)", sp, (unsigned long long)m->modseq);
	buf_append_str(&j->out, ")\r\n");
}

/* The modseq of m's state now, recorded if it is new (once per command). */
static void imap_store_record(struct modseq *ms, struct imap_store_msg *m, uint64_t *mod)
{
	if (ms != NULL)
		m->modseq = imap_cs_record(ms, m->uid, m->file, mod, &m->bumped);
}

/* RFC 7162 3.1.3: whether m changed after the client's UNCHANGEDSINCE.
 * Its current file decides (a change by another program that no sync
 * has recorded yet counts, with a new modseq); without a modseq file
 * nothing can be promised: it fails. */
static bool imap_store_conflict(struct imap_store_job *j, struct modseq *ms,
				struct imap_store_msg *m, uint64_t *mod)
{
	if (ms == NULL)
		return true;
	int fd = mailbox_file_open(j->root, m->base, &m->file);
	if (fd < 0)
		return false;   /* gone: the rename says so */
	close(fd);
	imap_store_record(ms, m, mod);
	return m->modseq > j->unchangedsince;
}

static void imap_store_one(struct imap_store_job *j, struct modseq *ms, struct imap_store_msg *m,
			   uint64_t *mod)
{
	if (j->unchanged && imap_store_conflict(j, ms, m, mod)) {
		m->modified = true;
		j->nmodified++;
		return;
	}
	char *before = xstrdup(m->file);
	if (mailbox_file_flags(j->root, m->base, &m->file, j->add, j->remove) < 0) {
		m->gone = true;
		j->gone++;
	} else {
		m->changed = strcmp(m->old, m->file) != 0 || strcmp(before, m->file) != 0;
		imap_store_record(ms, m, mod);
	}
	free(before);
}

/* The FETCH responses, then the tagged one: MODIFIED lists the failed
 * messages (3.1.3), by UID for UID STORE. */
static void imap_store_reply(struct imap_store_job *j, uint64_t before)
{
	uint32_t *failed = xcalloc(j->nmodified + 1, sizeof(*failed));
	size_t nf = 0;
	bool modseqs = false;
	for (size_t i = 0; i < j->n; i++) {
		struct imap_store_msg *m = &j->msgs[i];
		if (m->modified)
			failed[nf++] = j->uid_cmd ? m->uid : (uint32_t)(m->index + 1);
		if (m->modified || m->gone)
			continue;
		imap_store_fetch_line(j, m);
		modseqs |= j->condstore && m->modseq != 0;
	}
	/* RFC 7162 3.2: MODSEQs past changes of others not reported yet: the
	 * client must not take them for its HIGHESTMODSEQ */
	if (modseqs && before > j->highest)
		buf_printf(&j->out, "* OK [HIGHESTMODSEQ %llu] Highest\r\n", (unsigned long long)j->highest);
	if (nf > 0) {
		buf_printf(&j->out, "%s OK [MODIFIED ", j->tag);
		imap_set_append(&j->out, failed, nf);
		buf_append_str(&j->out, "] Conditional STORE failed\r\n");
	} else if (j->gone) {
		buf_printf(&j->out, "%s NO [EXPUNGEISSUED] Some messages were expunged.\r\n", j->tag);
	} else {
		buf_printf(&j->out, "%s OK %sStore completed.\r\n", j->tag, j->uid_cmd ? "UID " : "");
	}
	free(failed);
}

static struct modseq *imap_store_modseqs(const struct imap_store_job *j)
{
	struct modseq *ms;
	if (modseq_open(j->root, j->uidvalidity, true, &ms) == 0)
		return ms;
	log_warn(NULL, "event=modseq_failed folder=\"%s\" error=\"%s\"", j->root, strerror(errno));
	return NULL;
}

static void imap_store_work(void *arg)
{
	struct imap_store_job *j = arg;
	struct modseq *ms = NULL;
	uint64_t before = 0, mod = 0;
	imap_store_resolve(j);
	/* UNCHANGEDSINCE: the tests and the renames under the modseq file's
	 * lock, one step for every moonpost session (RFC 7162 3.1.3);
	 * otherwise the renames first, then the lock just for the records */
	if (j->unchanged && (ms = imap_store_modseqs(j)) != NULL)
		before = ms->highest;
	for (size_t i = 0; i < j->n; i++)
		imap_store_one(j, ms, &j->msgs[i], &mod);
	if (!j->unchanged && (ms = imap_store_modseqs(j)) != NULL) {
		before = ms->highest;
		for (size_t i = 0; i < j->n; i++)
			if (!j->msgs[i].gone)
				imap_store_record(ms, &j->msgs[i], &mod);
	}
	if (ms != NULL && modseq_commit(ms) < 0)
		log_warn(NULL, "event=modseq_failed folder=\"%s\" error=\"%s\"", j->root, strerror(errno));
	modseq_free(&ms);
	imap_store_reply(j, before);
	imap_cs_advance(&j->highest, before, mod);
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
			if (m->gone || m->index >= mb->count || mb->msgs[m->index].uid != m->uid)
				continue;
			if (m->modseq != 0 && s->sel->modseq != NULL)
				s->sel->modseq[m->index] = m->modseq;
			if (!m->changed)
				continue;
			free(mb->msgs[m->index].file);
			mb->msgs[m->index].file = xstrdup(m->file);
			const char *info = strstr(m->file, ":2,");
			mb->msgs[m->index].seen = info && strchr(info + 3, 'S');
		}
		if (s->sel != NULL && s->sel->modseq != NULL)
			s->sel->highest = j->highest;
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
	j->uidvalidity = s->sel->mb->hdr.uidvalidity;
	j->highest = s->sel->highest;
	j->condstore = s->condstore;
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

/* RFC 7162 3.1.3: "(UNCHANGEDSINCE n)" (n may be 0). 0 or -1. */
static int imap_store_modifiers(struct imap_store_job *j, const struct imap_arg *list)
{
	uint64_t v;
	if (list->members != 2 || list->span != 3 || list[1].type != IMAP_ARG_ATOM ||
	    !str_case_eq(list[1].s, "UNCHANGEDSINCE") || list[2].type != IMAP_ARG_ATOM ||
	    util_parse_uint(list[2].s.p, list[2].s.len, MODSEQ_VALUE_MAX, &v) < 0)
		return -1;
	j->unchanged = true;
	j->unchangedsince = v;
	return 0;
}

#define IMAP_STORE_SYNTAX "Syntax: STORE sequence-set [(UNCHANGEDSINCE n)] (+|-)FLAGS[.SILENT] (flags)"

void imap_store_run(struct imap_session *s, const struct imap_arg *args, size_t nargs, bool uid)
{
	const struct imap_arg *a[3];
	size_t *idx, n;
	size_t top = imap_args_top(args, nargs, a, 3);
	bool mods = top >= 2 && a[1]->type == IMAP_ARG_LIST;
	const struct imap_arg *op = mods ? a[2] : a[1];
	if (top < (mods ? 4u : 3u) || a[0]->type != IMAP_ARG_ATOM || op->type != IMAP_ARG_ATOM) {
		imap_bad(s, IMAP_STORE_SYNTAX);
		return;
	}
	if (s->sel->readonly) {
		imap_tagged(s, "NO", "[READ-ONLY] The mailbox is read-only.");
		return;
	}
	struct imap_store_job *j = imap_store_job_new(s);
	j->uid_cmd = uid;
	size_t rest = (size_t)(op - args) + 1;
	if ((mods && imap_store_modifiers(j, a[1]) < 0) || imap_store_op(j, op->s) < 0 ||
	    imap_store_parse_flags(j, &args[rest], nargs - rest) < 0) {
		imap_store_job_free(j);
		imap_bad(s, IMAP_STORE_SYNTAX);
		return;
	}
	if (j->unchanged && s->sel->modseq == NULL) {
		imap_store_job_free(j);
		imap_bad(s, "[NOMODSEQ] No modification sequences here (RFC 7162 3.1.2.2).");
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
			.file = xstrdup(m->file), .old = xstrdup(m->file), .recent = m->recent,
		};
	}
	free(idx);
	if (j->unchanged)
		imap_cs_enable(s);      /* RFC 7162 3.1: STORE UNCHANGEDSINCE enables it */
	j->condstore = s->condstore;
	j->qresync = s->qresync;
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
	uint64_t before;
	uint64_t m = imap_cs_expunged(mb->root, mb->hdr.uidvalidity, j->uids, j->nuids, &before);
	imap_cs_advance(&j->sel->highest, before, m);
	size_t *idx = xcalloc(j->nuids + 1, sizeof(*idx)), n = 0;
	for (size_t i = 0; i < mb->count; i++)
		if (imap_expunge_listed(j, mb->msgs[i].uid))
			idx[n++] = i;
	imap_expunged_reply(&j->out, j->vanished, idx, j->uids, j->nuids);
	free(idx);
	buf_printf(&j->out, "%s OK Expunge completed.\r\n", j->tag);
}

/* Drops the expunged messages from the snapshot (and their modseqs). */
static void imap_expunge_forget(const struct imap_store_job *j, struct imap_selected *sel)
{
	struct mailbox *mb = sel->mb;
	size_t out = 0;
	for (size_t i = 0; i < mb->count; i++) {
		if (imap_expunge_listed(j, mb->msgs[i].uid)) {
			free(mb->msgs[i].base);
			free(mb->msgs[i].file);
			free(mb->msgs[i].ext);
			free(mb->msgs[i].uidl);
			continue;
		}
		if (sel->modseq != NULL)
			sel->modseq[out] = sel->modseq[i];
		mb->msgs[out++] = mb->msgs[i];
	}
	mb->count = out;
}

static void imap_expunge_done(void *arg)
{
	struct imap_store_job *j = arg;
	struct conn *c = conn_find(j->conn_id);
	if (j->nuids > 0)
		imap_expunge_forget(j, j->sel);
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
	j->vanished = s->qresync;
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
