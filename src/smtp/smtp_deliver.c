/* smtp_deliver.c - the end of a message: content policy checks, trace
 * headers, durable delivery to every mailbox on the I/O pool, then the
 * reply: one for SMTP, one per accepted recipient for LMTP (RFC 2033 4.2).
 * Nothing is acknowledged before every copy is fsync'd. The job owns its
 * memory (and the spooled content), so a client that disconnects while its
 * message is written changes nothing but who reads the reply. */
#include "smtp_int.h"
#include "core/arena.h"
#include "core/conn.h"
#include "core/log.h"
#include "core/pool.h"
#include "core/tls.h"
#include "core/util.h"
#include "lua/script.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct smtp_dlv_target {
	const char *email;          /* the mailbox (Delivered-To) */
	const char *rcpt;           /* as the client gave it */
	size_t rcpt_index;
	struct maildir_target md;
	bool ok;
	char path[4608];
	char err[256];
};

struct smtp_dlv_job {
	uint64_t conn_id;
	struct arena *arena;
	struct spool spool;         /* moved out of the transaction */
	uint64_t lines;
	const char *hostname, *qid, *from;
	struct smtp_dlv_target *t;
	size_t n;
	size_t n_rcpts;
	uint64_t started_ms;
};

static void smtp_date(char *dst, size_t size)
{
	time_t now = time(NULL);
	struct tm tm;
	localtime_r(&now, &tm);
	strftime(dst, size, "%a, %d %b %Y %H:%M:%S %z", &tm);
}

/* RFC 5321 4.4 trace header; "with" per RFC 3848. */
static const char *smtp_received(struct smtp_session *s, struct arena *a, const char *for_rcpt)
{
	char tls[128] = "", date[64];
	bool secure = conn_tls_active(s->conn), auth = s->auth_user != NULL;
	const char *with = s->srv->lmtp ? (secure ? "LMTPS" : "LMTP") :
			   !s->esmtp ? "SMTP" :
			   secure && auth ? "ESMTPSA" : secure ? "ESMTPS" : auth ? "ESMTPA" : "ESMTP";
	if (secure) {
		char d[100];
		tls_describe(s->conn->ssl, d, sizeof(d));
		snprintf(tls, sizeof(tls), "\n\t(%s)", d);
	}
	smtp_date(date, sizeof(date));
	return arena_printf(a, "Received: from %s ([%s])\n\tby %s (moonpost) with %s id %s%s%s%s%s;\n\t%s\n",
			    s->helo, s->conn->peer_ip, s->srv->hostname, with, s->txn.qid, tls,
			    for_rcpt ? "\n\tfor <" : "", for_rcpt ? for_rcpt : "",
			    for_rcpt ? ">" : "", date);
}

static void smtp_dlv_prefix(struct smtp_session *s, struct smtp_dlv_job *j,
			    struct smtp_dlv_target *t, const char *received)
{
	char *p = arena_printf(j->arena, "Return-Path: <%s>\nDelivered-To: %s\n%s",
			       s->txn.from, t->email, received);
	t->md.prefix = p;
	t->md.prefix_len = strlen(p);
	for (const char *c = p; *c; c++)
		t->md.prefix_lines += *c == '\n';
}

static void smtp_dlv_add(struct smtp_session *s, struct smtp_dlv_job *j, size_t cap,
			 size_t ri, const struct dir_node *nd, const char *received)
{
	for (size_t k = 0; k < j->n; k++)
		if (strcmp(j->t[k].md.root, nd->user.maildir) == 0)
			return;     /* one copy per mailbox */
	if (j->n == cap)
		return;
	struct smtp_dlv_target *t = &j->t[j->n++];
	t->email = arena_strdup(j->arena, nd->user.email);
	t->rcpt = arena_strdup(j->arena, s->txn.rcpts[ri].addr);
	t->rcpt_index = ri;
	t->md.root = arena_strdup(j->arena, nd->user.maildir);
	smtp_dlv_prefix(s, j, t, received);
}

static struct smtp_dlv_job *smtp_dlv_job_new(struct smtp_session *s)
{
	struct smtp_txn *tx = &s->txn;
	struct smtp_dlv_job *j = xcalloc(1, sizeof(*j));
	j->arena = arena_new();
	j->conn_id = s->conn->id;
	j->spool = tx->spool;
	spool_init(&tx->spool, s->srv->spool_dir);   /* moved: the job frees it */
	j->lines = tx->reader.lines;
	j->hostname = arena_strdup(j->arena, s->srv->hostname);
	j->qid = arena_strdup(j->arena, tx->qid);
	j->from = arena_strdup(j->arena, tx->from);
	j->n_rcpts = tx->n_rcpts;
	j->started_ms = tx->started_ms;
	size_t cap = 0;
	for (size_t i = 0; i < tx->n_rcpts; i++)
		cap += tx->rcpts[i].res.n_nodes;
	j->t = arena_alloc(j->arena, (cap ? cap : 1) * sizeof(*j->t));
	const char *shared = tx->n_rcpts > 1 ? smtp_received(s, j->arena, NULL) : NULL;
	for (size_t i = 0; i < tx->n_rcpts; i++) {
		const char *received = shared ? shared : smtp_received(s, j->arena, tx->rcpts[i].addr);
		for (size_t k = 0; k < tx->rcpts[i].res.n_nodes; k++)
			if (tx->rcpts[i].res.nodes[k].kind == DIR_NODE_MAILBOX)
				smtp_dlv_add(s, j, cap, i, &tx->rcpts[i].res.nodes[k], received);
	}
	return j;
}

static void smtp_dlv_work(void *arg)
{
	struct smtp_dlv_job *j = arg;
	for (size_t i = 0; i < j->n; i++) {
		struct smtp_dlv_target *t = &j->t[i];
		t->ok = maildir_deliver(&t->md, &j->spool, j->lines, j->hostname, t->path,
					sizeof(t->path), t->err, sizeof(t->err)) == 0;
	}
}

static void smtp_dlv_log(struct conn *c, const struct smtp_dlv_job *j)
{
	double delay = (double)(util_now_ms() - j->started_ms) / 1000.0;
	for (size_t i = 0; i < j->n; i++) {
		const struct smtp_dlv_target *t = &j->t[i];
		char q1[300], q2[300], q3[300];
		log_quote(q1, sizeof(q1), j->from, strlen(j->from));
		log_quote(q2, sizeof(q2), t->email, strlen(t->email));
		log_quote(q3, sizeof(q3), t->rcpt, strlen(t->rcpt));
		if (t->ok)
			log_info(c ? c->sid : NULL, "event=delivered qid=%s from=<%s> to=<%s> orig_to=<%s> status=sent delay=%.3f size=%llu folder=%s",
				 j->qid, q1, q2, q3, delay, (unsigned long long)spool_size(&j->spool),
				 t->md.folder ? t->md.folder : "INBOX");
		else
			log_error(c ? c->sid : NULL, "event=delivered qid=%s to=<%s> status=deferred delay=%.3f error=\"%s\"",
				  j->qid, q2, delay, t->err);
	}
}

static void smtp_dlv_reply(struct smtp_session *s, struct smtp_dlv_job *j)
{
	if (!s->srv->lmtp) {
		bool all = true;
		for (size_t i = 0; i < j->n; i++)
			all &= j->t[i].ok;
		if (all)
			smtp_reply(s, "250 2.0.0 Ok: queued as %s", j->qid);
		else
			smtp_reply(s, "451 4.3.0 Error: local delivery failed, try again later");
		return;
	}
	for (size_t r = 0; r < j->n_rcpts; r++) {
		bool ok = true;
		for (size_t i = 0; i < j->n; i++)
			if (j->t[i].rcpt_index == r)
				ok &= j->t[i].ok;
		if (ok)
			smtp_reply(s, "250 2.0.0 <%s> Ok: delivered as %s", s->txn.rcpts[r].addr, j->qid);
		else
			smtp_reply(s, "451 4.3.0 <%s> Error: delivery failed", s->txn.rcpts[r].addr);
	}
}

static void smtp_dlv_done(void *arg)
{
	struct smtp_dlv_job *j = arg;
	struct conn *c = conn_find(j->conn_id);
	smtp_dlv_log(c, j);
	if (c != NULL) {
		struct smtp_session *s = c->proto;
		smtp_dlv_reply(s, j);
		smtp_txn_reset(s);
		conn_resume(c);
	}
	spool_free(&j->spool);
	arena_destroy(&j->arena);
	free(j);
}

/* Content policy; NULL when the message may be delivered. */
static const char *smtp_content_refusal(struct smtp_session *s)
{
	const struct smtp_data *d = &s->txn.reader;
	const struct smtp_limits *l = &s->srv->limits;
	if (d->too_big)
		return "552 5.3.4 Message size exceeds fixed limit";
	if (s->txn.spool.failed)
		return "451 4.3.0 Error: cannot spool the message, try again later";
	if (d->bare_lf && l->reject_bare_lf)
		return "550 5.6.11 Message contains bare <LF> (RFC 5321 2.3.8), not accepted";
	if (d->bare_cr && l->reject_bare_cr)
		return "550 5.6.11 Message contains bare <CR> (RFC 5321 2.3.8), not accepted";
	if (d->long_line && l->reject_long_lines)
		return "550 5.6.0 Message has lines over 998 octets (RFC 5321 4.5.3.1.6)";
	return NULL;
}

static void smtp_dlv_submit(struct smtp_session *s, struct smtp_dlv_job *j)
{
	conn_pause(s->conn);
	pool_submit(s->srv->io_pool, smtp_dlv_work, smtp_dlv_done, j);
}

static void smtp_dlv_free(struct smtp_dlv_job *j)
{
	spool_free(&j->spool);
	arena_destroy(&j->arena);
	free(j);
}

/* The scan's X-Spam-* lines go after our trace fields. */
static void smtp_dlv_add_headers(struct smtp_dlv_job *j, struct smtp_dlv_target *t, const char *hdr)
{
	t->md.prefix = arena_printf(j->arena, "%s%s", t->md.prefix, hdr);
	t->md.prefix_len = strlen(t->md.prefix);
	for (const char *c = hdr; *c; c++)
		t->md.prefix_lines += *c == '\n';
}

/* Per-target decisions of the deliver hook: one copy per folder, flags,
 * discard (dropped from the job, logged). */
static void smtp_dlv_apply(struct smtp_session *s, struct smtp_dlv_job *j, const struct script_result *r)
{
	const char *hdr = r->scanned && r->headers ? arena_strdup(j->arena, r->headers) : NULL;
	size_t cap = 0, nn = 0;
	for (size_t i = 0; i < j->n; i++)
		cap += i < r->n_dlv && r->dlv[i].n_folders ? r->dlv[i].n_folders : 1;
	struct smtp_dlv_target *nt = arena_alloc(j->arena, (cap ? cap : 1) * sizeof(*nt));
	for (size_t i = 0; i < j->n; i++) {
		struct smtp_dlv_target *t = &j->t[i];
		const struct script_delivery *d = i < r->n_dlv ? &r->dlv[i] : NULL;
		if (d && d->discard) {
			log_info(s->conn->sid, "event=discarded qid=%s to=<%s> by=deliver", j->qid, t->email);
			continue;
		}
		if (hdr)
			smtp_dlv_add_headers(j, t, hdr);
		const char *flags = d && d->flags[0] ? arena_strdup(j->arena, d->flags) : NULL;
		size_t nf = d && d->n_folders ? d->n_folders : 1;
		for (size_t f = 0; f < nf; f++) {
			nt[nn] = *t;
			nt[nn].md.flags = flags;
			nt[nn].md.folder = d && d->n_folders && d->folders[f][0] ?
					   arena_strdup(j->arena, d->folders[f]) : NULL;
			nn++;
		}
	}
	j->t = nt;
	j->n = nn;
}

static void smtp_dlv_reply_all(struct smtp_session *s, const char *fmt, const char *arg)
{
	size_t n = s->srv->lmtp ? s->txn.n_rcpts : 1;
	for (size_t i = 0; i < n; i++)
		smtp_reply(s, fmt, arg);
}

/* A discarded message is acknowledged as delivered (that is the point of
 * discard); LMTP gets its usual per-recipient form (RFC 2033 4.2). */
static void smtp_dlv_reply_discarded(struct smtp_session *s, const char *qid)
{
	if (!s->srv->lmtp) {
		smtp_reply(s, "250 2.0.0 Ok: queued as %s", qid);
		return;
	}
	for (size_t i = 0; i < s->txn.n_rcpts; i++)
		smtp_reply(s, "250 2.0.0 <%s> Ok: delivered as %s", s->txn.rcpts[i].addr, qid);
}

static void smtp_dlv_scanned(uint64_t owner, const struct script_result *r)
{
	struct conn *c = conn_find(owner);
	if (c == NULL)
		return;
	struct smtp_session *s = c->proto;
	struct smtp_dlv_job *j = s->dlv_pending;
	s->dlv_pending = NULL;
	conn_resume(c);
	if (r->scanned) {
		char q[2048];
		const char *sy = r->symbols ? r->symbols : "";
		log_info(c->sid, "event=scan qid=%s score=%.2f required=%.2f action=\"%s\" time_us=%.0f symbols=\"%s\"",
			 j->qid, r->score, r->required, r->action ? r->action : "", r->scan_us,
			 log_quote(q, sizeof(q), sy, strlen(sy)));
	}
	if (r->verdict == SCRIPT_REJECT || r->verdict == SCRIPT_TEMPFAIL) {
		char line[SCRIPT_TEXT_MAX + 8];
		snprintf(line, sizeof(line), "%d %s", r->verdict == SCRIPT_REJECT ? r->code : 451, r->text);
		log_info(c->sid, "event=refused qid=%s reason=\"%.200s\" by=policy", j->qid, r->text);
		smtp_dlv_reply_all(s, "%s", line);
	} else if (r->verdict == SCRIPT_DISCARD) {
		log_info(c->sid, "event=discarded qid=%s by=data", j->qid);
		smtp_dlv_reply_discarded(s, j->qid);
	} else {
		smtp_dlv_apply(s, j, r);
		smtp_dlv_submit(s, j);
		return;
	}
	smtp_txn_reset(s);
	smtp_dlv_free(j);
}

/* Rules, the data hook and the deliver hook decide before any write. */
static void smtp_dlv_scripts(struct smtp_session *s, struct smtp_dlv_job *j)
{
	const char *p;
	size_t len;
	if (spool_map(&j->spool, &p, &len) != 0) {
		log_error(s->conn->sid, "event=spool_map_failed qid=%s", j->qid);
		smtp_dlv_reply_all(s, "%s", "451 4.3.0 Error: cannot read the message back, try again later");
		smtp_txn_reset(s);
		smtp_dlv_free(j);
		return;
	}
	script_session_message(s->ss, p, len);
	struct script_target *t = arena_alloc(j->arena, (j->n ? j->n : 1) * sizeof(*t));
	for (size_t i = 0; i < j->n; i++)
		t[i] = (struct script_target){ .rcpt = j->t[i].rcpt, .mailbox = j->t[i].email };
	s->dlv_pending = j;
	conn_pause(s->conn);
	script_call_message(s->ss, t, j->n, smtp_dlv_scanned, s->conn->id);
}

void smtp_deliver_close(struct smtp_session *s)
{
	if (s->dlv_pending)
		smtp_dlv_free(s->dlv_pending);
	s->dlv_pending = NULL;
}

void smtp_deliver(struct smtp_session *s)
{
	const char *refusal = smtp_content_refusal(s);
	if (refusal) {
		log_info(s->conn->sid, "event=refused qid=%s reason=\"%s\"", s->txn.qid, refusal + 10);
		size_t n = s->srv->lmtp ? s->txn.n_rcpts : 1;
		for (size_t i = 0; i < n; i++)
			smtp_reply(s, "%s", refusal);
		smtp_txn_reset(s);
		return;
	}
	struct smtp_dlv_job *j = smtp_dlv_job_new(s);
	if (s->ss)
		smtp_dlv_scripts(s, j);
	else
		smtp_dlv_submit(s, j);
}
