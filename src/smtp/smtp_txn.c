/* smtp_txn.c - the mail transaction: MAIL, RCPT (directory lookups on the
 * pool, replies in order), DATA and BDAT content (RFC 5321 3.3, 4.1.1;
 * RFC 1870 SIZE, 6152 8BITMIME, 6531 SMTPUTF8, 3461 DSN, 3030 CHUNKING). */
#include "smtp_int.h"
#include "core/arena.h"
#include "core/conn.h"
#include "core/log.h"
#include "core/pool.h"
#include "core/util.h"
#include "lua/script.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* RFC 5321 4.5.3.1.6: a text line is at most 1000 octets with its CRLF. */
#define SMTP_TEXT_LINE_MAX 998

void smtp_txn_reset(struct smtp_session *s)
{
	struct smtp_txn *t = &s->txn;
	for (size_t i = 0; i < t->n_rcpts; i++)
		arena_destroy(&t->rcpts[i].arena);
	free(t->rcpts);
	spool_free(&t->spool);
	arena_destroy(&t->arena);
	memset(t, 0, sizeof(*t));
	t->spool.fd = -1;
	if (s->ss)
		script_session_txn_end(s->ss);
}

static void smtp_txn_begin(struct smtp_session *s)
{
	struct smtp_txn *t = &s->txn;
	smtp_txn_reset(s);
	t->arena = arena_new();
	t->active = true;
	t->started_ms = util_now_ms();
	spool_init(&t->spool, s->srv->spool_dir);
	snprintf(t->qid, sizeof(t->qid), "%s%u", s->conn->sid, ++s->messages);
}

static bool smtp_has_8bit(struct str s)
{
	for (size_t i = 0; i < s.len; i++)
		if ((unsigned char)s.p[i] >= 0x80)
			return true;
	return false;
}

/* "Local@Example.ORG" -> "Local@example.org": domains are case-insensitive,
 * local parts are not ours to change (RFC 5321 2.4). */
static char *smtp_addr_norm(struct str a)
{
	char *s = xstrndup(a.p, a.len);
	char *at = strrchr(s, '@');
	for (char *p = at; p && *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p + 32);
	return s;
}

/* MAIL parameters (RFC 1870, 6152, 6531, 3461). 0, or -1 after replying. */
static int smtp_mail_params(struct smtp_session *s, struct str params)
{
	struct smtp_txn *t = &s->txn;
	struct str k, v;
	int r;
	while ((r = smtp_param_next(&params, &k, &v)) == 1) {
		uint64_t n;
		if (str_case_eq(k, "SIZE") && util_parse_uint(v.p, v.len, UINT64_MAX / 2, &n) == 0) {
			if (n > s->srv->limits.message_size) {
				smtp_reply(s, "552 5.3.4 Message size exceeds fixed limit");
				return -1;
			}
			t->size_decl = n;
		} else if (str_case_eq(k, "BODY") &&
			   (str_case_eq(v, "7BIT") || str_case_eq(v, "8BITMIME"))) {
			/* 8-bit content is stored as it comes; the value is
			 * kept for the scripts (ctx.env.params.BODY). */
			t->body = arena_strndup(t->arena, v.p, v.len);
		} else if (str_case_eq(k, "SMTPUTF8") && v.len == 0) {
			t->smtputf8 = true;
		} else if (str_case_eq(k, "RET") && (str_case_eq(v, "FULL") || str_case_eq(v, "HDRS"))) {
			t->ret = arena_strndup(t->arena, v.p, v.len);
		} else if (str_case_eq(k, "ENVID") && v.len > 0 && v.len <= 100) {
			t->envid = arena_strndup(t->arena, v.p, v.len);
		} else if (str_case_eq(k, "AUTH")) {
			/* RFC 4954 5: informational; we trust only our own AUTH. */
		} else {
			smtp_reply(s, "555 5.5.4 Unsupported option: %.*s", STR_FMT(k));
			return -1;
		}
	}
	if (r < 0) {
		smtp_reply(s, "501 5.5.4 Bad MAIL parameters");
		return -1;
	}
	return 0;
}

static void smtp_mail_done(uint64_t owner, const struct script_result *r)
{
	struct conn *c = conn_find(owner);
	if (c == NULL)
		return;
	struct smtp_session *s = c->proto;
	conn_resume(c);
	if (smtp_policy_refused(s, r)) {
		smtp_txn_reset(s);
		return;
	}
	smtp_reply(s, "250 2.1.0 Ok");
}

/* ctx.env for the scripts, then the mail_from hook. */
static void smtp_mail_policy(struct smtp_session *s)
{
	struct smtp_txn *t = &s->txn;
	if (s->ss == NULL) {
		smtp_reply(s, "250 2.1.0 Ok");
		return;
	}
	char size[32];
	snprintf(size, sizeof(size), "%llu", (unsigned long long)t->size_decl);
	const char *params[10];         /* name/value pairs, one per parameter below */
	size_t n = 0;
	if (t->size_decl) {
		params[2 * n] = "SIZE";
		params[2 * n++ + 1] = size;
	}
	if (t->body) {
		params[2 * n] = "BODY";
		params[2 * n++ + 1] = t->body;
	}
	if (t->smtputf8) {
		params[2 * n] = "SMTPUTF8";
		params[2 * n++ + 1] = NULL;
	}
	if (t->ret) {
		params[2 * n] = "RET";
		params[2 * n++ + 1] = t->ret;
	}
	if (t->envid) {
		params[2 * n] = "ENVID";
		params[2 * n++ + 1] = t->envid;
	}
	script_session_mail(s->ss, t->from, t->qid, params, n);
	if (!smtp_policy_has(s, "mail_from")) {
		smtp_reply(s, "250 2.1.0 Ok");
		return;
	}
	conn_pause(s->conn);
	script_call_hook(s->ss, "mail_from", NULL, smtp_mail_done, s->conn->id);
}

void smtp_cmd_mail(struct smtp_session *s, struct str args)
{
	struct smtp_path path;
	if (s->helo[0] == '\0') {
		smtp_reply(s, "503 5.5.1 Error: send HELO/EHLO first");
		smtp_error(s);
		return;
	}
	if (s->txn.active) {
		smtp_reply(s, "503 5.5.1 Error: nested MAIL command");
		smtp_error(s);
		return;
	}
	if (smtp_path_parse(args, "FROM:", false, &path) != 0) {
		smtp_reply(s, "501 5.1.7 Bad sender address syntax");
		smtp_error(s);
		return;
	}
	smtp_txn_begin(s);
	if (smtp_mail_params(s, path.params) != 0) {
		smtp_txn_reset(s);
		smtp_error(s);
		return;
	}
	if (smtp_has_8bit(path.addr) && !s->txn.smtputf8) {
		smtp_reply(s, "553 5.6.7 Non-ASCII address requires SMTPUTF8");
		smtp_txn_reset(s);
		smtp_error(s);
		return;
	}
	s->txn.from = arena_strndup(s->txn.arena, path.addr.p, path.addr.len);
	smtp_mail_policy(s);
}

/* --- RCPT: resolution on the pool, reply when it comes back --- */

struct smtp_rcpt_job {
	uint64_t conn_id;
	struct dir *dir;
	char *addr;
	const char *postmaster;
	uint64_t size;
	struct arena *arena;
	struct dir_resolution res;
	bool over_quota;
};

static bool smtp_is_postmaster(const char *addr)
{
	return strncasecmp(addr, "postmaster@", 11) == 0 || strcasecmp(addr, "postmaster") == 0;
}

static void smtp_rcpt_work(void *arg)
{
	struct smtp_rcpt_job *j = arg;
	dir_resolve(j->dir, j->addr, j->arena, &j->res);
	/* RFC 5321 4.5.1: postmaster at our domains must be deliverable. */
	if (j->res.result == DIR_NOTFOUND && j->res.local_domain &&
	    smtp_is_postmaster(j->addr) && j->postmaster[0])
		dir_resolve(j->dir, j->postmaster, j->arena, &j->res);
	for (size_t i = 0; j->res.result == DIR_FOUND && i < j->res.n_nodes; i++) {
		const struct dir_node *nd = &j->res.nodes[i];
		if (nd->kind != DIR_NODE_MAILBOX || nd->user.quota <= 0)
			continue;
		int64_t used = maildir_usage(nd->user.maildir);
		if (used >= 0 && (uint64_t)used + j->size > (uint64_t)nd->user.quota)
			j->over_quota = true;
	}
}

static bool smtp_res_has(const struct dir_resolution *r, enum dir_node_kind kind)
{
	for (size_t i = 0; i < r->n_nodes; i++)
		if (r->nodes[i].kind == kind)
			return true;
	return false;
}

/* The refusal for a finished lookup (written to buf), or NULL when the
 * directory accepts the recipient. */
static const char *smtp_rcpt_refusal(struct smtp_session *s, struct smtp_rcpt_job *j,
				     char *buf, size_t size)
{
	const struct dir_resolution *r = &j->res;
	if (r->result == DIR_TEMPFAIL)
		snprintf(buf, size, "451 4.3.0 <%s>: Temporary lookup failure, try again later", j->addr);
	else if (!r->local_domain && !s->srv->lmtp)
		snprintf(buf, size, "554 5.7.1 <%s>: Relay access denied", j->addr);
	else if (r->result == DIR_NOTFOUND && smtp_res_has(r, DIR_NODE_LOOP))
		snprintf(buf, size, "554 5.4.6 <%s>: Alias loop detected", j->addr);
	else if (r->result == DIR_NOTFOUND)
		snprintf(buf, size, "550 5.1.1 <%s>: Recipient address rejected: User unknown", j->addr);
	else if (smtp_res_has(r, DIR_NODE_EXTERNAL))
		/* Forwarding needs the outbound queue; the sender retries. */
		snprintf(buf, size, "451 4.4.0 <%s>: Forwarding not available yet, try again later", j->addr);
	else if (j->over_quota)
		snprintf(buf, size, "552 5.2.2 <%s>: Mailbox full", j->addr);
	else
		return NULL;
	return buf;
}

static void smtp_rcpt_free(struct smtp_rcpt_job *j)
{
	if (j == NULL)
		return;
	arena_destroy(&j->arena);
	free(j->addr);
	free(j);
}

static void smtp_rcpt_log(struct smtp_session *s, const struct smtp_rcpt_job *j, const char *result)
{
	char q[300];
	log_info(s->conn->sid, "event=rcpt qid=%s to=<%s> result=%s", s->txn.qid,
		 log_quote(q, sizeof(q), j->addr, strlen(j->addr)), result);
}

/* The recipient is in: the transaction takes the job's resolution. */
static void smtp_rcpt_accept(struct smtp_session *s, struct smtp_rcpt_job *j)
{
	struct smtp_txn *t = &s->txn;
	smtp_rcpt_log(s, j, "ok");
	if (t->n_rcpts == t->cap_rcpts) {
		t->cap_rcpts = t->cap_rcpts ? t->cap_rcpts * 2 : 4;
		t->rcpts = xreallocarray(t->rcpts, t->cap_rcpts, sizeof(*t->rcpts));
	}
	t->rcpts[t->n_rcpts++] = (struct smtp_rcpt){
		.addr = arena_strdup(t->arena, j->addr), .arena = j->arena, .res = j->res };
	j->arena = NULL;    /* now the transaction's */
	if (s->ss)
		script_session_rcpt(s->ss, j->addr);
	smtp_reply(s, "250 2.1.5 Ok");
}

/* The pending job of a session whose hook finished, or NULL when the
 * session is gone (its close freed the job). */
static struct smtp_rcpt_job *smtp_rcpt_take(uint64_t owner, struct smtp_session **s_r)
{
	struct conn *c = conn_find(owner);
	if (c == NULL)
		return NULL;
	struct smtp_session *s = c->proto;
	struct smtp_rcpt_job *j = s->rcpt_pending;
	s->rcpt_pending = NULL;
	conn_resume(c);
	*s_r = s;
	return j;
}

static void smtp_rcpt_to_done(uint64_t owner, const struct script_result *r)
{
	struct smtp_session *s;
	struct smtp_rcpt_job *j = smtp_rcpt_take(owner, &s);
	if (j == NULL)
		return;
	if (s->txn.active && smtp_policy_refused(s, r))
		smtp_rcpt_log(s, j, "policy");
	else if (s->txn.active)
		smtp_rcpt_accept(s, j);
	smtp_rcpt_free(j);
}

static void smtp_rcpt_to_hook(struct smtp_session *s, struct smtp_rcpt_job *j)
{
	const char *mb[64], *ext[64];
	struct script_rcpt_info ri = { .addr = j->addr, .result = "found",
				       .local_domain = j->res.local_domain,
				       .mailboxes = mb, .external = ext };
	for (size_t i = 0; i < j->res.n_nodes; i++) {
		const struct dir_node *nd = &j->res.nodes[i];
		if (nd->kind == DIR_NODE_MAILBOX && ri.n_mailboxes < 64)
			mb[ri.n_mailboxes++] = nd->user.email;
		else if (nd->kind == DIR_NODE_EXTERNAL && ri.n_external < 64)
			ext[ri.n_external++] = nd->address;
	}
	s->rcpt_pending = j;
	conn_pause(s->conn);
	script_call_rcpt(s->ss, "rcpt_to", &ri, smtp_rcpt_to_done, s->conn->id);
}

static void smtp_rcpt_done(void *arg)
{
	struct smtp_rcpt_job *j = arg;
	struct conn *c = conn_find(j->conn_id);
	struct smtp_session *s = c ? c->proto : NULL;
	if (s != NULL && s->txn.active) {
		char buf[600];
		const char *refusal = smtp_rcpt_refusal(s, j, buf, sizeof(buf));
		conn_resume(c);
		if (refusal) {
			smtp_rcpt_log(s, j, "rejected");
			smtp_reply(s, "%s", refusal);
			smtp_error(s);
		} else if (smtp_policy_has(s, "rcpt_to")) {
			smtp_rcpt_to_hook(s, j);
			return;
		} else {
			smtp_rcpt_accept(s, j);
		}
	}
	smtp_rcpt_free(j);
}

void smtp_txn_close(struct smtp_session *s)
{
	smtp_rcpt_free(s->rcpt_pending);
	s->rcpt_pending = NULL;
	smtp_txn_reset(s);
}

static void smtp_rcpt_submit(struct smtp_session *s, struct smtp_rcpt_job *j)
{
	conn_pause(s->conn);
	pool_submit(s->srv->pool, smtp_rcpt_work, smtp_rcpt_done, j);
}

/* route hook (before the directory): mailbox(addr) looks up addr instead;
 * relay(host) needs the outbound queue that does not exist yet. */
static void smtp_route_done(uint64_t owner, const struct script_result *r)
{
	struct smtp_session *s;
	struct smtp_rcpt_job *j = smtp_rcpt_take(owner, &s);
	if (j == NULL)
		return;
	if (!s->txn.active) {
		smtp_rcpt_free(j);
	} else if (smtp_policy_refused(s, r)) {
		smtp_rcpt_log(s, j, "policy");
		smtp_rcpt_free(j);
	} else if (r->verdict == SCRIPT_RELAY) {
		smtp_rcpt_log(s, j, "relay_unavailable");
		smtp_reply(s, "451 4.4.0 <%s>: Relaying to %s not available yet, try again later",
			   j->addr, r->arg);
		smtp_rcpt_free(j);
	} else {
		if (r->verdict == SCRIPT_MAILBOX && r->arg[0]) {
			log_info(s->conn->sid, "event=route from=<%s> to=<%s>", j->addr, r->arg);
			free(j->addr);
			j->addr = smtp_addr_norm((struct str){ r->arg, strlen(r->arg) });
		}
		smtp_rcpt_submit(s, j);
	}
}

static int smtp_rcpt_params(struct smtp_session *s, struct str params)
{
	struct str k, v;
	int r;
	while ((r = smtp_param_next(&params, &k, &v)) == 1) {
		if (!(str_case_eq(k, "NOTIFY") && v.len > 0) && !(str_case_eq(k, "ORCPT") && v.len > 0)) {
			smtp_reply(s, "555 5.5.4 Unsupported option: %.*s", STR_FMT(k));
			return -1;
		}
	}
	if (r < 0)
		smtp_reply(s, "501 5.5.4 Bad RCPT parameters");
	return r < 0 ? -1 : 0;
}

void smtp_cmd_rcpt(struct smtp_session *s, struct str args)
{
	struct smtp_path path;
	if (!s->txn.active) {
		smtp_reply(s, "503 5.5.1 Error: need MAIL command");
		smtp_error(s);
		return;
	}
	if (smtp_path_parse(args, "TO:", true, &path) != 0 || path.addr.len == 0) {
		smtp_reply(s, "501 5.1.3 Bad recipient address syntax");
		smtp_error(s);
		return;
	}
	if (smtp_rcpt_params(s, path.params) != 0) {
		smtp_error(s);
		return;
	}
	if (smtp_has_8bit(path.addr) && !s->txn.smtputf8) {
		smtp_reply(s, "553 5.6.7 Non-ASCII address requires SMTPUTF8");
		smtp_error(s);
		return;
	}
	if (s->txn.n_rcpts >= s->srv->limits.rcpt_max) {
		smtp_reply(s, "452 4.5.3 Error: too many recipients");
		return;
	}
	if (s->srv->dir == NULL) {
		smtp_reply(s, "451 4.3.0 No directory configured");
		return;
	}
	struct smtp_rcpt_job *j = xcalloc(1, sizeof(*j));
	j->conn_id = s->conn->id;
	j->dir = s->srv->dir;
	if (str_case_eq(path.addr, "postmaster")) {
		/* RFC 5321 4.5.1: bare <postmaster> must work. */
		const char *dot = strchr(s->srv->hostname, '.');
		j->addr = s->srv->postmaster[0] ? xstrdup(s->srv->postmaster) :
			  xstrdup(dot && strchr(dot + 1, '.') ? dot + 1 : s->srv->hostname);
		if (!s->srv->postmaster[0]) {
			char *domain = j->addr;
			j->addr = xmalloc(strlen(domain) + 12);
			memcpy(j->addr, "postmaster@", 11);
			memcpy(j->addr + 11, domain, strlen(domain) + 1);
			free(domain);
		}
	} else {
		j->addr = smtp_addr_norm(path.addr);
	}
	j->postmaster = s->srv->postmaster;
	j->size = s->txn.size_decl;
	j->arena = arena_new();
	if (!smtp_policy_has(s, "route")) {
		smtp_rcpt_submit(s, j);
		return;
	}
	struct script_rcpt_info ri = { .addr = j->addr };
	s->rcpt_pending = j;
	conn_pause(s->conn);
	script_call_rcpt(s->ss, "route", &ri, smtp_route_done, s->conn->id);
}

/* --- content --- */

static bool smtp_content_ready(struct smtp_session *s)
{
	if (!s->txn.active) {
		smtp_reply(s, "503 5.5.1 Error: need MAIL command");
	} else if (s->txn.n_rcpts == 0) {
		smtp_reply(s, "554 5.5.1 Error: no valid recipients");
	} else {
		return true;
	}
	smtp_error(s);
	return false;
}

static void smtp_content_begin(struct smtp_session *s, bool bdat)
{
	struct smtp_txn *t = &s->txn;
	t->receiving = true;
	t->bdat = bdat;
	smtp_data_init(&t->reader, bdat, SMTP_TEXT_LINE_MAX, s->srv->limits.message_size);
}

void smtp_cmd_data(struct smtp_session *s, struct str args MP_UNUSED)
{
	if (s->txn.bdat) {
		smtp_reply(s, "503 5.5.1 Error: DATA after BDAT");
		smtp_error(s);
		return;
	}
	if (!smtp_content_ready(s))
		return;
	smtp_content_begin(s, false);
	smtp_reply(s, "354 End data with <CR><LF>.<CR><LF>");
	conn_set_raw(s->conn, true);
}

void smtp_cmd_bdat(struct smtp_session *s, struct str args)
{
	struct smtp_txn *t = &s->txn;
	uint64_t n;
	size_t sp = 0;
	while (sp < args.len && args.p[sp] != ' ')
		sp++;
	struct str last = str_trim((struct str){ args.p + sp, args.len - sp });
	if (util_parse_uint(args.p, sp, UINT64_MAX / 2, &n) != 0 ||
	    (last.len > 0 && !str_case_eq(last, "LAST"))) {
		/* Without a valid size we cannot find the next command. */
		smtp_reply(s, "501 5.5.4 Syntax: BDAT size [LAST]");
		conn_close(s->conn);
		return;
	}
	bool ok = t->bdat || smtp_content_ready(s);
	if (ok && !t->bdat)
		smtp_content_begin(s, true);
	/* RFC 3030 3: the chunk must be read even when it is refused. */
	t->bdat_discard = !ok;
	t->bdat_left = n;
	t->bdat_last = last.len > 0;
	conn_set_raw(s->conn, true);
	if (n == 0)
		smtp_txn_data(s, "", 0);
}

static size_t smtp_bdat_data(struct smtp_session *s, const char *p, size_t len)
{
	struct smtp_txn *t = &s->txn;
	size_t take = len < t->bdat_left ? len : (size_t)t->bdat_left;
	if (!t->bdat_discard) {
		size_t used;
		smtp_data_feed(&t->reader, p, take, &t->spool.mem, &used);
		spool_maybe_spill(&t->spool);
	}
	t->bdat_left -= take;
	if (t->bdat_left > 0)
		return take;
	conn_set_raw(s->conn, false);
	if (t->bdat_discard) {
		/* The refusal was already sent by smtp_content_ready(). */
		t->bdat_discard = false;
		return take;
	}
	if (!t->bdat_last) {
		smtp_reply(s, "250 2.0.0 %llu octets received",
			   (unsigned long long)spool_size(&t->spool));
		return take;
	}
	smtp_data_finish(&t->reader, &t->spool.mem);
	t->receiving = false;
	smtp_deliver(s);
	return take;
}

size_t smtp_txn_data(struct smtp_session *s, const char *p, size_t len)
{
	struct smtp_txn *t = &s->txn;
	if (t->bdat || t->bdat_discard)
		return smtp_bdat_data(s, p, len);
	size_t used;
	enum smtp_data_status st = smtp_data_feed(&t->reader, p, len, &t->spool.mem, &used);
	spool_maybe_spill(&t->spool);
	if (st == SMTP_DATA_END) {
		conn_set_raw(s->conn, false);
		t->receiving = false;
		smtp_deliver(s);
	}
	return used;
}
