/* imap_copy.c - COPY (RFC 3501 6.4.7) and MOVE (RFC 6851) with UIDPLUS's
 * COPYUID (RFC 4315); APPEND is imap_append.c.
 *
 * COPY hard-links the files into the destination (a copy where links are
 * not possible), then the destination's dovecot-uidlist gives them UIDs.
 * MOVE is COPY then the expunge of the sources; the job holds the selected
 * mailbox meanwhile, as EXPUNGE does. A missing destination is
 * NO [TRYCREATE] (RFC 3501 6.4.7). COPY past the user's quota (the
 * directory's, counted like SMTP delivery does) is NO [OVERQUOTA]
 * (RFC 5530). The copies get their modseqs in the destination before the
 * OK; MOVE's expunges get one in the source and are reported as VANISHED
 * after ENABLE QRESYNC (RFC 7162 3.2.10). */
#include "imap_int.h"
#include "imap_folder.h"
#include "core/conn.h"
#include "core/log.h"
#include "core/pool.h"
#include "core/util.h"
#include "store/mailbox.h"
#include "store/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct imap_copy_msg {
	size_t index;
	uint32_t uid, new_uid;
	uint64_t vsize;
	char *base, *file;
	char new_base[600];
	bool copied;
};

struct imap_copy_job {
	uint64_t conn_id;
	char tag[IMAP_TAG_MAX + 1];
	char *root;             /* the user's Maildir */
	char *dest;             /* destination mailbox name */
	char *src;              /* source folder (COPY/MOVE) */
	int64_t quota;          /* bytes, 0 = unlimited */
	bool uid_cmd, move;
	struct imap_copy_msg *msgs;
	size_t n;
	struct imap_selected *sel;      /* MOVE: the source, held by the job */
	struct imap_keywords src_kw, dst_kw;
	bool expunged;
	bool vanished;          /* QRESYNC: VANISHED instead of EXPUNGE */
	struct buf out;
};

static void imap_copy_job_free(struct imap_copy_job *j)
{
	for (size_t i = 0; i < j->n; i++) {
		free(j->msgs[i].base);
		free(j->msgs[i].file);
	}
	free(j->msgs);
	free(j->root);
	free(j->dest);
	free(j->src);
	imap_keywords_free(&j->src_kw);
	imap_keywords_free(&j->dst_kw);
	buf_free(&j->out);
	free(j);
}

static void imap_copy_reply(struct imap_copy_job *j, const char *status, const char *text)
{
	buf_printf(&j->out, "%s %s %s\r\n", j->tag, status, text);
}

/* The destination folder if it exists, else NULL after NO [TRYCREATE]. */
static char *imap_copy_dest(struct imap_copy_job *j)
{
	struct stat st;
	char *path = imap_folder_path(j->root, str_from_cstr(j->dest));
	if (strcmp(j->dest, "INBOX") == 0 ? mailbox_create(path) == 0 :
	    stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return path;
	free(path);
	imap_copy_reply(j, "NO", "[TRYCREATE] Mailbox does not exist.");
	return NULL;
}

/* Gives the new files their UIDs (the destination's uidlist). */
static struct mailbox *imap_copy_uids(const char *folder, struct imap_copy_msg *msgs, size_t n)
{
	struct mailbox *mb = NULL;
	char err[512];
	if (mailbox_open(folder, 0, &mb, err, sizeof(err)) != 0) {
		log_error(NULL, "event=mailbox_open_failed error=\"%s\"", err);
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; msgs[i].copied && k < mb->count; k++)
			if (strcmp(mb->msgs[k].base, msgs[i].new_base) == 0)
				msgs[i].new_uid = mb->msgs[k].uid;
	imap_cs_arrived(mb);    /* RFC 7162: new messages, new modseqs */
	return mb;
}

/* Whether adding bytes stays within the quota (the sizes of every folder,
 * as SMTP delivery counts them); writes the NO when it does not. */
static bool imap_quota_ok(struct imap_copy_job *j, uint64_t bytes)
{
	if (j->quota <= 0)
		return true;
	int64_t used = maildir_usage(j->root);
	if (used >= 0 && (uint64_t)used + bytes <= (uint64_t)j->quota)
		return true;
	imap_copy_reply(j, "NO", used < 0 ? "[SERVERBUG] Cannot compute the quota." :
			"[OVERQUOTA] Quota exceeded (mailbox is full).");
	return false;
}

/* --- COPY / MOVE --- */

/* "1,3:5": the UIDs of the copied messages, as ranges (RFC 4315 uid-set). */
static void imap_uid_set(struct buf *b, const struct imap_copy_msg *msgs, size_t n, bool dst)
{
	const char *sep = "";
	for (size_t i = 0; i < n;) {
		if (!msgs[i].copied) {
			i++;
			continue;
		}
		uint32_t lo = dst ? msgs[i].new_uid : msgs[i].uid, hi = lo;
		size_t k = i + 1;
		while (k < n && msgs[k].copied && (dst ? msgs[k].new_uid : msgs[k].uid) == hi + 1)
			hi = dst ? msgs[k++].new_uid : msgs[k++].uid;
		if (lo == hi)
			buf_printf(b, "%s%u", sep, lo);
		else
			buf_printf(b, "%s%u:%u", sep, lo, hi);
		sep = ",";
		i = k;
	}
}

/* The info flags of file for the destination: system letters as they
 * are, keyword letters translated by name (dovecot-keywords differ per
 * folder; a new name is added to the destination's list). */
static void imap_copy_flags(struct imap_copy_job *j, const char *folder, const char *file,
			    char out[40])
{
	const char *info = strstr(file, ":2,");
	char set[128] = { 0 };
	for (const char *l = info ? info + 3 : ""; *l; l++) {
		if (*l >= 'a' && *l <= 'z') {
			const char *name = j->src_kw.names[*l - 'a'];
			char d = name ? imap_keywords_assign(folder, &j->dst_kw, name) : '\0';
			if (d)
				set[(unsigned char)d] = 1;
		} else if ((unsigned char)*l < 128) {
			set[(unsigned char)*l] = 1;
		}
	}
	size_t n = 0;
	for (int ch = 0x21; ch < 0x7f && n < 39; ch++)     /* ASCII order */
		if (set[ch])
			out[n++] = (char)ch;
	out[n] = '\0';
}

static int imap_copy_one(struct imap_copy_job *j, struct imap_copy_msg *m, const char *folder)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		char flags[40];
		imap_copy_flags(j, folder, m->file, flags);
		if (imap_folder_link(j->src, m->file, folder, flags, m->new_base, sizeof(m->new_base)) == 0)
			return 0;
		/* renamed by someone else meanwhile: find it again */
		if (errno != ENOENT || mailbox_file_flags(j->src, m->base, &m->file, "", "") < 0)
			break;
	}
	return -1;
}

/* MOVE: the sources go (with a modseq, RFC 7162 3.2), reported as
 * EXPUNGEs highest first or one VANISHED. */
static void imap_move_expunge(struct imap_copy_job *j)
{
	struct mailbox *mb = j->sel->mb;
	uint32_t *uids = xcalloc(j->n ? j->n : 1, sizeof(*uids));
	size_t *idx = xcalloc(j->n ? j->n : 1, sizeof(*idx)), n = 0;
	for (size_t i = 0; i < j->n; i++)
		if (j->msgs[i].copied) {
			idx[n] = j->msgs[i].index;
			uids[n++] = j->msgs[i].uid;
		}
	if (n > 0 && mailbox_expunge(mb, uids, n) == 0) {
		uint64_t before;
		uint64_t m = imap_cs_expunged(mb->root, mb->hdr.uidvalidity, uids, n, &before);
		imap_cs_advance(&j->sel->highest, before, m);
		j->expunged = true;
		imap_expunged_reply(&j->out, j->vanished, idx, uids, n);
	}
	free(uids);
	free(idx);
}

static void imap_copy_work(void *arg)
{
	struct imap_copy_job *j = arg;
	uint64_t bytes = 0;
	for (size_t i = 0; !j->move && i < j->n; i++)
		bytes += j->msgs[i].vsize;
	if (!imap_quota_ok(j, bytes))       /* MOVE adds nothing */
		return;
	char *folder = imap_copy_dest(j);
	if (folder == NULL)
		return;
	size_t copied = 0;
	if (imap_keywords_read(folder, &j->dst_kw) < 0)
		memset(&j->dst_kw, 0, sizeof(j->dst_kw));
	for (size_t i = 0; i < j->n; i++) {
		j->msgs[i].copied = imap_copy_one(j, &j->msgs[i], folder) == 0;
		copied += j->msgs[i].copied;
	}
	struct mailbox *mb = copied && imap_folder_sync_dir(folder, "cur") == 0 ?
			     imap_copy_uids(folder, j->msgs, j->n) : NULL;
	const char *what = j->move ? "Move" : "Copy";
	if (copied < j->n || (copied > 0 && mb == NULL)) {
		buf_printf(&j->out, "%s NO [SERVERBUG] %s failed for some messages.\r\n", j->tag, what);
	} else if (copied == 0) {
		buf_printf(&j->out, "%s OK %s completed (no messages).\r\n", j->tag, what);
	} else {
		struct buf code = { 0 };
		buf_printf(&code, "[COPYUID %u ", mb->hdr.uidvalidity);
		imap_uid_set(&code, j->msgs, j->n, false);
		buf_append_str(&code, " ");
		imap_uid_set(&code, j->msgs, j->n, true);
		buf_append_str(&code, "]");
		if (j->move) {          /* RFC 6851 4.3: COPYUID untagged, then the expunges */
			buf_printf(&j->out, "* OK %s Moved UIDs.\r\n", buf_ptr(&code));
			imap_move_expunge(j);
			buf_printf(&j->out, "%s OK Move completed.\r\n", j->tag);
		} else {
			buf_printf(&j->out, "%s OK %s Copy completed.\r\n", j->tag, buf_ptr(&code));
		}
		buf_free(&code);
	}
	mailbox_free(&mb);
	free(folder);
}

/* Drops moved messages from the snapshot (indexes ascending in msgs). */
static void imap_move_forget(struct imap_copy_job *j)
{
	struct mailbox *mb = j->sel->mb;
	size_t out = 0, k = 0;
	for (size_t i = 0; i < mb->count; i++) {
		while (k < j->n && j->msgs[k].index < i)
			k++;
		if (k < j->n && j->msgs[k].index == i && j->msgs[k].copied) {
			free(mb->msgs[i].base);
			free(mb->msgs[i].file);
			free(mb->msgs[i].ext);
			free(mb->msgs[i].uidl);
		} else {
			if (j->sel->modseq != NULL)
				j->sel->modseq[out] = j->sel->modseq[i];
			mb->msgs[out++] = mb->msgs[i];
		}
	}
	mb->count = out;
}

static void imap_copy_done(void *arg)
{
	struct imap_copy_job *j = arg;
	struct conn *c = conn_find(j->conn_id);
	if (j->sel != NULL && j->expunged)
		imap_move_forget(j);
	if (c != NULL) {
		struct imap_session *s = c->proto;
		if (j->sel != NULL) {
			s->sel = j->sel;
			j->sel = NULL;
		}
		conn_write(c, buf_ptr(&j->out), j->out.len);
		imap_resume(s);
	} else if (j->sel != NULL) {
		imap_selected_free(&j->sel);
	}
	imap_copy_job_free(j);
}

void imap_copy_run(struct imap_session *s, const struct imap_arg *args, size_t nargs, bool uid,
		   bool move)
{
	const struct imap_arg *a[3];
	struct str mbox;
	size_t *idx, n;
	char *dest;
	if (imap_args_top(args, nargs, a, 3) != 2 || a[0]->type != IMAP_ARG_ATOM ||
	    !imap_arg_astring(a[1], &mbox)) {
		imap_bad(s, "Syntax: %s sequence-set mailbox", move ? "MOVE" : "COPY");
		return;
	}
	if (move && s->sel->readonly) {
		imap_tagged(s, "NO", "[READ-ONLY] The mailbox is read-only.");
		return;
	}
	if ((dest = imap_mbox_arg(s, a[1])) == NULL)
		return;
	if (imap_msgset(s, a[0], uid, &idx, &n) < 0) {
		free(dest);
		return;
	}
	const struct mailbox *mb = s->sel->mb;
	struct imap_copy_job *j = xcalloc(1, sizeof(*j));
	j->conn_id = s->conn->id;
	snprintf(j->tag, sizeof(j->tag), "%s", s->tag);
	j->root = xstrdup(s->maildir);
	j->dest = dest;
	j->src = xstrdup(mb->root);
	imap_keywords_copy(&j->src_kw, &s->sel->kw);
	j->quota = s->quota;
	j->uid_cmd = uid;
	j->move = move;
	j->vanished = s->qresync;
	j->msgs = xcalloc(n ? n : 1, sizeof(*j->msgs));
	j->n = n;
	for (size_t i = 0; i < n; i++) {
		const struct mailbox_msg *m = &mb->msgs[idx[i]];
		j->msgs[i] = (struct imap_copy_msg){ .index = idx[i], .uid = m->uid, .vsize = m->vsize,
			.base = xstrdup(m->base), .file = xstrdup(m->file) };
	}
	free(idx);
	if (move) {
		j->sel = s->sel;        /* held by the job until it completes */
		s->sel = NULL;
	}
	conn_pause(s->conn);
	pool_submit(s->srv->io_pool, imap_copy_work, imap_copy_done, j);
}

void imap_cmd_copy(struct imap_session *s, const struct imap_arg *args, size_t nargs)
{
	imap_copy_run(s, args, nargs, false, false);
}

void imap_cmd_move(struct imap_session *s, const struct imap_arg *args, size_t nargs)
{
	imap_copy_run(s, args, nargs, false, true);
}
