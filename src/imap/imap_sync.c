/* imap_sync.c - bringing the selected mailbox's snapshot up to date with
 * the disk (deliveries, other sessions, Dovecot, POP3), and the commands
 * that may report it: NOOP, CHECK (RFC 3501 6.1.2, 6.4.1) and IDLE
 * (RFC 2177).
 *
 * A sync job on the I/O pool re-reads the folder (new messages get UIDs;
 * in a read-write session new/ moves to cur/ and those are \Recent here)
 * and compares it with the snapshot by UID; the folder's modseq file is
 * brought up to date on the way (modseq_sync: changes made by anyone get
 * their modseqs there). It answers, in this order: "* n EXPUNGE" for
 * vanished messages, highest first so each number is right when sent (RFC
 * 3501 7.4.1), or one "* VANISHED uids" after ENABLE QRESYNC (RFC 7162
 * 3.2.10); "* n FETCH (FLAGS ...)" for changed flags, with UID after
 * ENABLE QRESYNC and MODSEQ with CONDSTORE (3.1, 3.2.4: also a message
 * whose flags changed and changed back); "* n EXISTS" / "* n RECENT" when
 * messages arrived. Only commands that allow EXPUNGE responses sync (not
 * FETCH, STORE, SEARCH).
 *
 * IDLE watches the folder's new/ and cur/ with inotify (one inotify
 * instance per worker process, shared by all sessions: imap_notify.c) and
 * syncs within IMAP_IDLE_DELAY of a change, plus every IMAP_IDLE_POLL
 * seconds in case a change was missed (NFS, inotify limits). */
#include "imap_int.h"
#include "imap_notify.h"
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

#define IMAP_IDLE_DELAY 0.05        /* seconds: coalesce bursts of events */
#define IMAP_IDLE_POLL 30.0         /* seconds: a sync even without events */
#define IMAP_IDLE_KEEPALIVE 4       /* polls: "* OK Still here" every 2 minutes,
				     * for NAT (Dovecot's imap_idle_notify_interval) */

struct imap_sync_job {
	uint64_t conn_id;
	char tag[IMAP_TAG_MAX + 1];     /* "" during IDLE: no tagged line */
	char *done_text;                /* the tagged OK text (owned) */
	struct imap_selected *sel;      /* held by the job */
	struct mailbox *fresh;
	struct imap_keywords kw;        /* re-read with the folder */
	struct buf out;
	bool condstore, qresync;        /* the session's (RFC 7162) */
	bool rev2;                      /* IMAP4rev2: no \Recent (RFC 9051) */
	uint64_t *modseq;               /* of fresh's messages; NULL: none */
	uint64_t highest;
};

static const char *imap_sync_info(const struct mailbox_msg *m)
{
	const char *info = strstr(m->file, ":2,");
	return info ? info + 3 : "";
}

/* Vanished messages: old UIDs missing from fresh (both in UID order). */
static void imap_sync_expunged(struct imap_sync_job *j, const struct mailbox *old,
			       const struct mailbox *fresh)
{
	size_t *idx = xcalloc(old->count + 1, sizeof(*idx)), n = 0;
	uint32_t *uids = xcalloc(old->count + 1, sizeof(*uids));
	for (size_t i = 0, f = 0; i < old->count; i++) {
		while (f < fresh->count && fresh->msgs[f].uid < old->msgs[i].uid)
			f++;
		if (f == fresh->count || fresh->msgs[f].uid != old->msgs[i].uid) {
			idx[n] = i;
			uids[n++] = old->msgs[i].uid;
		}
	}
	imap_expunged_reply(&j->out, j->qresync, idx, uids, n);
	free(idx);
	free(uids);
}

/* One unsolicited FETCH: UID with QRESYNC, MODSEQ with CONDSTORE. */
static void imap_sync_fetch(struct imap_sync_job *j, size_t f)
{
	const struct mailbox_msg *m = &j->fresh->msgs[f];
	buf_printf(&j->out, "* %zu FETCH (", f + 1);
	if (j->qresync)
		buf_printf(&j->out, "UID %u ", m->uid);
	imap_flags_append(&j->out, m->file, m->recent, &j->kw);
	if (j->condstore && j->modseq != NULL)
		buf_printf(&j->out, " MODSEQ (%llu)", (unsigned long long)j->modseq[f]);
	buf_append_str(&j->out, ")\r\n");
}

/* Compares the snapshot with fresh (both in UID order); writes the
 * responses and carries \Recent over. */
static void imap_sync_diff(struct imap_sync_job *j)
{
	const struct mailbox *old = j->sel->mb;
	const uint64_t *old_modseq = j->sel->modseq;
	struct mailbox *fresh = j->fresh;
	size_t k = 0, kept = 0;
	for (size_t f = 0; j->rev2 && f < fresh->count; f++)
		fresh->msgs[f].recent = false;  /* RFC 9051: no \Recent */
	imap_sync_expunged(j, old, fresh);
	for (size_t f = 0; f < fresh->count; f++) {
		struct mailbox_msg *m = &fresh->msgs[f];
		while (k < old->count && old->msgs[k].uid < m->uid)
			k++;
		if (k == old->count || old->msgs[k].uid != m->uid)
			continue;
		kept++;
		m->recent = old->msgs[k].recent;
		bool flags = strcmp(imap_sync_info(m), imap_sync_info(&old->msgs[k])) != 0;
		bool modseq = j->condstore && j->modseq != NULL && old_modseq != NULL &&
			      j->modseq[f] != old_modseq[k];
		if (flags || modseq)
			imap_sync_fetch(j, f);
	}
	if (fresh->count > kept) {      /* arrivals (RFC 3501 7.3.1) */
		size_t recent = 0;
		for (size_t f = 0; f < fresh->count; f++)
			recent += fresh->msgs[f].recent;
		buf_printf(&j->out, "* %zu EXISTS\r\n", fresh->count);
		if (!j->rev2)
			buf_printf(&j->out, "* %zu RECENT\r\n", recent);
	}
}

/* The folder's modseqs brought up to date, fresh's taken (pool). */
static void imap_sync_modseqs(struct imap_sync_job *j)
{
	struct modseq *ms;
	if (modseq_sync(j->fresh, &ms) < 0) {
		log_warn(NULL, "event=modseq_failed folder=\"%s\" error=\"%s\"", j->fresh->root,
			 strerror(errno));
		return;         /* the session goes on without modseqs */
	}
	j->modseq = xcalloc(j->fresh->count + 1, sizeof(*j->modseq));
	for (size_t i = 0; i < j->fresh->count; i++) {
		const struct modseq_msg *r = modseq_get(ms, j->fresh->msgs[i].uid);
		j->modseq[i] = r != NULL ? r->modseq : ms->highest;
	}
	j->highest = ms->highest;
	modseq_free(&ms);
}

static void imap_sync_work(void *arg)
{
	struct imap_sync_job *j = arg;
	char err[512];
	struct mailbox *old = j->sel->mb;
	if (mailbox_open(old->root, j->sel->readonly ? 0 : MAILBOX_MOVE_NEW, &j->fresh, err,
			 sizeof(err)) != 0) {
		log_warn(NULL, "event=mailbox_sync_failed error=\"%s\"", err);
		j->fresh = NULL;
	} else {
		imap_sync_modseqs(j);
		if (imap_keywords_read(old->root, &j->kw) < 0)
			imap_keywords_copy(&j->kw, &j->sel->kw);
		imap_sync_diff(j);
	}
	if (j->tag[0])
		buf_printf(&j->out, "%s OK %s\r\n", j->tag, j->done_text);
}

static void imap_sync_job_free(struct imap_sync_job *j)
{
	imap_selected_free(&j->sel);
	mailbox_free(&j->fresh);
	imap_keywords_free(&j->kw);
	buf_free(&j->out);
	free(j->done_text);
	free(j->modseq);
	free(j);
}

static void imap_idle_arm(struct imap_session *s);

static void imap_sync_done(void *arg)
{
	struct imap_sync_job *j = arg;
	if (j->fresh != NULL) {
		mailbox_free(&j->sel->mb);
		j->sel->mb = j->fresh;
		j->fresh = NULL;
		imap_keywords_free(&j->sel->kw);
		j->sel->kw = j->kw;
		memset(&j->kw, 0, sizeof(j->kw));
		free(j->sel->modseq);
		j->sel->modseq = j->modseq;     /* NULL if the modseq file failed */
		j->modseq = NULL;
		if (j->sel->modseq != NULL)
			j->sel->highest = j->highest;
	}
	struct conn *c = conn_find(j->conn_id);
	if (c != NULL) {
		struct imap_session *s = c->proto;
		s->sel = j->sel;
		j->sel = NULL;
		conn_write(c, buf_ptr(&j->out), j->out.len);
		s->syncing = false;
		if (j->tag[0]) {
			imap_resume(s);
		} else if (s->idling) {
			imap_flush(s);
			imap_idle_arm(s);
		}
		else if (s->idle_done) {
			imap_idle_finish(s);
			imap_resume(s);
		}
	}
	imap_sync_job_free(j);
}

/* Starts a sync; tag NULL = during IDLE (untagged only). */
static void imap_sync_start(struct imap_session *s, const char *tag, const char *done_text)
{
	struct imap_sync_job *j = xcalloc(1, sizeof(*j));
	j->conn_id = s->conn->id;
	snprintf(j->tag, sizeof(j->tag), "%s", tag ? tag : "");
	j->done_text = done_text ? xstrdup(done_text) : NULL;
	j->sel = s->sel;        /* held by the job */
	s->sel = NULL;
	s->syncing = true;
	j->condstore = s->condstore;
	j->qresync = s->qresync;
	j->rev2 = s->rev2;
	if (tag)
		conn_pause(s->conn);
	pool_submit(s->srv->io_pool, imap_sync_work, imap_sync_done, j);
}

/* NOOP and CHECK in the selected state sync; elsewhere they just answer. */
void imap_sync_cmd(struct imap_session *s, const char *done_text)
{
	if (s->state != IMAP_SELECTED || s->sel == NULL) {
		imap_tagged(s, "OK", "%s", done_text);
		return;
	}
	imap_sync_start(s, s->tag, done_text);
}

void imap_sync_then_ok(struct imap_session *s, const char *tag, const char *done_text)
{
	imap_sync_start(s, tag, done_text);
}

/* --- IDLE --- */

static void imap_idle_event(void *owner MP_UNUSED, uint64_t conn_id)
{
	struct conn *c = conn_find(conn_id);
	if (c == NULL)
		return;
	struct imap_session *s = c->proto;
	if (s->idling && !ev_is_active(&s->idle_delay)) {
		ev_timer_set(&s->idle_delay, IMAP_IDLE_DELAY, 0.);
		ev_timer_start(c->loop, &s->idle_delay);
	}
}

static void imap_idle_delay_cb(struct ev_loop *loop, ev_timer *w, int revents MP_UNUSED)
{
	struct imap_session *s = container_of(w, struct imap_session, idle_delay);
	ev_timer_stop(loop, w);
	if (s->syncing) {       /* one at a time: look again after this one */
		ev_timer_set(w, IMAP_IDLE_DELAY, 0.);
		ev_timer_start(loop, w);
		return;
	}
	ev_timer_stop(loop, &s->idle_poll);
	if (s->idling && s->sel != NULL)
		imap_sync_start(s, NULL, NULL);
}

static void imap_idle_arm(struct imap_session *s)
{
	ev_timer_set(&s->idle_poll, IMAP_IDLE_POLL, 0.);
	ev_timer_start(s->conn->loop, &s->idle_poll);
}

static void imap_idle_poll_cb(struct ev_loop *loop, ev_timer *w, int revents MP_UNUSED)
{
	struct imap_session *s = container_of(w, struct imap_session, idle_poll);
	ev_timer_stop(loop, w);
	if (s->idling && ++s->idle_polls % IMAP_IDLE_KEEPALIVE == 0) {
		imap_reply(s, "* OK Still here");
		imap_flush(s);
	}
	if (s->idling && !s->syncing && s->sel != NULL)
		imap_sync_start(s, NULL, NULL);
	else if (s->idling && !s->syncing)
		imap_idle_arm(s);       /* not selected: only the keepalive */
}

void imap_idle_init(struct imap_session *s)
{
	ev_init(&s->idle_delay, imap_idle_delay_cb);
	ev_init(&s->idle_poll, imap_idle_poll_cb);
}

static void imap_idle_stop(struct imap_session *s)
{
	ev_timer_stop(s->conn->loop, &s->idle_delay);
	ev_timer_stop(s->conn->loop, &s->idle_poll);
	for (int i = 0; i < 2; i++)
		imap_notify_remove(&s->notify[i]);
	s->idling = false;
}

void imap_idle_cleanup(struct imap_session *s)
{
	imap_idle_stop(s);
}

void imap_cmd_idle(struct imap_session *s, const struct imap_arg *args MP_UNUSED, size_t nargs)
{
	if (nargs > 0) {
		imap_bad(s, "IDLE takes no arguments.");
		return;
	}
	snprintf(s->idle_tag, sizeof(s->idle_tag), "%s", s->tag);
	s->idling = true;
	s->idle_done = false;
	s->idle_polls = 0;
	imap_reply(s, "+ idling");
	imap_parser_want_line(&s->parser);
	if (s->state == IMAP_SELECTED && s->sel != NULL) {
		static const char *const subs[] = { "new", "cur" };
		for (int i = 0; i < 2; i++) {
			char path[4200];
			snprintf(path, sizeof(path), "%s/%s", s->sel->mb->root, subs[i]);
			s->notify[i] = imap_notify_add(s->conn->loop, path, imap_idle_event, NULL, s->conn->id);
		}
		/* a change between the last command and now is found at once */
		ev_timer_set(&s->idle_delay, 0., 0.);
		ev_timer_start(s->conn->loop, &s->idle_delay);
	} else {
		imap_idle_arm(s);
	}
}

void imap_idle_finish(struct imap_session *s)
{
	char tag[IMAP_TAG_MAX + 1];
	snprintf(tag, sizeof(tag), "%s", s->idle_tag);
	snprintf(s->tag, sizeof(s->tag), "%s", tag);
	s->idle_done = false;
	if (s->done_bad)
		imap_bad(s, "Expected DONE.");
	else
		imap_tagged(s, "OK", "Idle completed.");
	s->done_bad = false;
}

/* The line that ends IDLE (RFC 2177 3: "DONE"). */
void imap_idle_line(struct imap_session *s, struct str line)
{
	imap_idle_stop(s);
	s->done_bad = !str_case_eq(line, "DONE");
	if (s->syncing) {
		/* answered when the sync is back; nothing else runs meanwhile
		 * (the job holds the mailbox) */
		s->idle_done = true;
		conn_pause(s->conn);
		return;
	}
	imap_idle_finish(s);
}
