/* smtp_session.c - SMTP server session: state, command table, replies.
 *
 * For now the session covers the connection-level commands (greeting,
 * EHLO/HELO, STARTTLS, NOOP, RSET, QUIT, VRFY, HELP) and the limits; the
 * mail transaction commands answer 502 until the receive path lands. */
#include "smtp_int.h"
#include "core/arena.h"
#include "core/climit.h"
#include "core/conn.h"
#include "core/log.h"
#include "core/util.h"
#include "lua/script.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum smtp_cmd_flags {
	SMTP_CMD_NOARGS = 1 << 0,   /* arguments are a syntax error */
};

struct smtp_command {
	const char *name;
	void (*handler)(struct smtp_session *s, struct str args);
	unsigned flags;
	int mode;               /* enum smtp_cmd_mode */
};

void smtp_reply(struct smtp_session *s, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof(line) - 3)
		n = sizeof(line) - 3;
	memcpy(line + n, "\r\n", 2);
	conn_write(s->conn, line, (size_t)n + 2);
}

/* Counts a client error; past the limit the session ends (RFC 5321 4.3.2
 * allows 421 at any time). */
void smtp_error(struct smtp_session *s)
{
	if (++s->errors < s->srv->limits.errors_max)
		return;
	log_info(s->conn->sid, "event=too_many_errors errors=%d", s->errors);
	smtp_reply(s, "421 4.7.0 %s Error: too many errors", s->srv->hostname);
	conn_close(s->conn);
}

static void smtp_reset(struct smtp_session *s)
{
	smtp_txn_reset(s);
}

static bool smtp_starttls_offered(const struct smtp_session *s)
{
	return s->srv->starttls && s->srv->ssl_ctx && !conn_tls_active(s->conn);
}

bool smtp_policy_has(const struct smtp_session *s, const char *hook)
{
	return s->ss != NULL && script_set_has(script_session_set(s->ss), hook);
}

bool smtp_policy_refused(struct smtp_session *s, const struct script_result *r)
{
	if (r->verdict == SCRIPT_REJECT)
		smtp_reply(s, "%d %s", r->code >= 500 && r->code <= 599 ? r->code : 550, r->text);
	else if (r->verdict == SCRIPT_TEMPFAIL)
		smtp_reply(s, "451 %s", r->text);
	else
		return false;
	log_info(s->conn->sid, "event=policy verdict=%s text=\"%.200s\"",
		 r->verdict == SCRIPT_REJECT ? "reject" : "tempfail", r->text);
	return true;
}

static void smtp_hello_reply(struct smtp_session *s)
{
	const char *exts[12];
	char size[40];
	size_t n = 0;
	if (!s->esmtp) {
		smtp_reply(s, "250 %s", s->srv->hostname);
		return;
	}
	snprintf(size, sizeof(size), "SIZE %llu", (unsigned long long)s->srv->limits.message_size);
	exts[n++] = "PIPELINING";
	exts[n++] = size;
	exts[n++] = "ENHANCEDSTATUSCODES";
	exts[n++] = "8BITMIME";
	exts[n++] = "SMTPUTF8";
	exts[n++] = "CHUNKING";
	exts[n++] = "DSN";
	if (smtp_starttls_offered(s))
		exts[n++] = "STARTTLS";
	if (smtp_auth_offered(s))
		exts[n++] = "AUTH PLAIN LOGIN";
	smtp_reply(s, "250-%s", s->srv->hostname);
	for (size_t i = 0; i < n; i++)
		smtp_reply(s, "250%c%s", i + 1 == n ? ' ' : '-', exts[i]);
}

static void smtp_helo_done(uint64_t owner, const struct script_result *r)
{
	struct conn *c = conn_find(owner);
	if (c == NULL)
		return;
	struct smtp_session *s = c->proto;
	conn_resume(c);
	if (smtp_policy_refused(s, r)) {
		s->helo[0] = '\0';
		return;
	}
	smtp_hello_reply(s);
}

/* HELO/EHLO/LHLO accepted by syntax: the helo hook, then the reply. */
static void smtp_hello(struct smtp_session *s, struct str args, bool esmtp)
{
	snprintf(s->helo, sizeof(s->helo), "%.*s", STR_FMT(args));
	s->esmtp = esmtp;
	smtp_reset(s);
	if (s->ss == NULL) {
		smtp_hello_reply(s);
		return;
	}
	script_session_helo(s->ss, s->helo, conn_tls_active(s->conn));
	if (!smtp_policy_has(s, "helo")) {
		smtp_hello_reply(s);
		return;
	}
	conn_pause(s->conn);
	script_call_hook(s->ss, "helo", NULL, smtp_helo_done, s->conn->id);
}

static void smtp_cmd_ehlo(struct smtp_session *s, struct str args)
{
	if (args.len == 0 || args.len > SMTP_HELO_MAX) {
		smtp_reply(s, "501 5.5.4 Syntax: %s hostname", s->srv->lmtp ? "LHLO" : "EHLO");
		smtp_error(s);
		return;
	}
	smtp_hello(s, args, true);
}

static void smtp_cmd_lhlo(struct smtp_session *s, struct str args)
{
	smtp_cmd_ehlo(s, args);
}

static void smtp_cmd_helo(struct smtp_session *s, struct str args)
{
	if (args.len == 0 || args.len > SMTP_HELO_MAX) {
		smtp_reply(s, "501 5.5.4 Syntax: HELO hostname");
		smtp_error(s);
		return;
	}
	smtp_hello(s, args, false);
}

static void smtp_cmd_starttls(struct smtp_session *s, struct str args MP_UNUSED)
{
	if (conn_tls_active(s->conn)) {
		smtp_reply(s, "554 5.5.1 Error: TLS already active");
		smtp_error(s);
		return;
	}
	if (!smtp_starttls_offered(s)) {
		smtp_reply(s, "502 5.5.1 Error: command not implemented");
		smtp_error(s);
		return;
	}
	smtp_reply(s, "220 2.0.0 Ready to start TLS");
	/* RFC 3207 4.2: forget everything learnt before TLS, including any
	 * pipelined plaintext (conn_starttls drops the input buffer). */
	s->helo[0] = '\0';
	s->esmtp = false;
	s->auth_user = NULL;
	smtp_reset(s);
	if (s->ss) {
		/* The scripts forget it too: a hook must not trust a login
		 * made before TLS once the session state was reset. */
		script_session_user(s->ss, NULL);
		script_session_helo(s->ss, NULL, false);
	}
	conn_starttls(s->conn);
}

static void smtp_cmd_noop(struct smtp_session *s, struct str args MP_UNUSED)
{
	smtp_reply(s, "250 2.0.0 OK");
}

static void smtp_cmd_rset(struct smtp_session *s, struct str args MP_UNUSED)
{
	smtp_reset(s);
	smtp_reply(s, "250 2.0.0 OK");
}

static void smtp_cmd_quit(struct smtp_session *s, struct str args MP_UNUSED)
{
	smtp_reply(s, "221 2.0.0 Bye");
	conn_close(s->conn);
}

static void smtp_cmd_vrfy(struct smtp_session *s, struct str args MP_UNUSED)
{
	/* RFC 5321 3.5.3: 252 when we will not verify; no address harvesting. */
	smtp_reply(s, "252 2.1.5 Send some mail, I'll try my best");
}

static void smtp_cmd_help(struct smtp_session *s, struct str args MP_UNUSED)
{
	smtp_reply(s, "214 2.0.0 Commands: EHLO HELO STARTTLS AUTH MAIL RCPT DATA BDAT NOOP RSET QUIT VRFY HELP");
}

enum smtp_cmd_mode {
	SMTP_MODE_BOTH,
	SMTP_MODE_SMTP,         /* not in LMTP (RFC 2033 4.1: LHLO only) */
	SMTP_MODE_LMTP,
};

static const struct smtp_command smtp_commands[] = {
	{ "EHLO", smtp_cmd_ehlo, 0, SMTP_MODE_SMTP },
	{ "HELO", smtp_cmd_helo, 0, SMTP_MODE_SMTP },
	{ "LHLO", smtp_cmd_lhlo, 0, SMTP_MODE_LMTP },
	{ "STARTTLS", smtp_cmd_starttls, SMTP_CMD_NOARGS, SMTP_MODE_BOTH },
	{ "AUTH", smtp_cmd_auth, 0, SMTP_MODE_SMTP },
	{ "MAIL", smtp_cmd_mail, 0, SMTP_MODE_BOTH },
	{ "RCPT", smtp_cmd_rcpt, 0, SMTP_MODE_BOTH },
	{ "DATA", smtp_cmd_data, SMTP_CMD_NOARGS, SMTP_MODE_BOTH },
	{ "BDAT", smtp_cmd_bdat, 0, SMTP_MODE_BOTH },
	{ "NOOP", smtp_cmd_noop, 0, SMTP_MODE_BOTH },
	{ "RSET", smtp_cmd_rset, SMTP_CMD_NOARGS, SMTP_MODE_BOTH },
	{ "QUIT", smtp_cmd_quit, SMTP_CMD_NOARGS, SMTP_MODE_BOTH },
	{ "VRFY", smtp_cmd_vrfy, 0, SMTP_MODE_BOTH },
	{ "HELP", smtp_cmd_help, 0, SMTP_MODE_BOTH },
};

static const struct smtp_command *smtp_command_find(struct str verb, bool lmtp)
{
	for (size_t i = 0; i < ARRAY_SIZE(smtp_commands); i++) {
		const struct smtp_command *sc = &smtp_commands[i];
		if (str_case_eq(verb, sc->name))
			return sc->mode == SMTP_MODE_BOTH ||
			       sc->mode == (lmtp ? SMTP_MODE_LMTP : SMTP_MODE_SMTP) ? sc : NULL;
	}
	return NULL;
}

static void smtp_on_line(struct conn *c, struct str line, bool too_long)
{
	struct smtp_session *s = c->proto;
	struct smtp_cmd cmd;
	if (s->auth_step != SMTP_AUTH_NONE && !too_long) {
		smtp_auth_line(s, line);
		return;
	}
	if (too_long) {
		s->auth_step = SMTP_AUTH_NONE;   /* an overlong SASL response ends the exchange */
		smtp_reply(s, "500 5.5.6 Error: line too long (limit %zu)",
			   s->srv->limits.line_max);
		smtp_error(s);
		return;
	}
	if (smtp_cmd_parse(line, &cmd) < 0) {
		smtp_reply(s, "500 5.5.2 Error: bad syntax");
		smtp_error(s);
		return;
	}
	const struct smtp_command *sc = smtp_command_find(cmd.verb, s->srv->lmtp);
	if (sc == NULL) {
		smtp_reply(s, "500 5.5.2 Error: command not recognized");
		smtp_error(s);
		return;
	}
	if ((sc->flags & SMTP_CMD_NOARGS) && cmd.args.len > 0) {
		smtp_reply(s, "501 5.5.4 Syntax: %s", sc->name);
		smtp_error(s);
		return;
	}
	sc->handler(s, cmd.args);
}

static void smtp_greet_now(struct smtp_session *s)
{
	smtp_reply(s, "220 %s %s moonpost", s->srv->hostname, s->srv->lmtp ? "LMTP" : "ESMTP");
}

/* RFC 5321 3.1: a server that will not serve says 554 in its greeting
 * (and we close); 421 for a temporary refusal. */
static void smtp_connect_done(uint64_t owner, const struct script_result *r)
{
	struct conn *c = conn_find(owner);
	if (c == NULL)
		return;
	struct smtp_session *s = c->proto;
	if (r->verdict == SCRIPT_REJECT || r->verdict == SCRIPT_TEMPFAIL) {
		smtp_reply(s, "%s %s", r->verdict == SCRIPT_REJECT ? "554" : "421", r->text);
		log_info(c->sid, "event=policy hook=connect verdict=%s text=\"%.200s\"",
			 r->verdict == SCRIPT_REJECT ? "reject" : "tempfail", r->text);
		conn_close(c);
		return;
	}
	conn_resume(c);
	smtp_greet_now(s);
}

static void smtp_greet(struct smtp_session *s)
{
	s->greeted = true;
	if (!smtp_policy_has(s, "connect")) {
		smtp_greet_now(s);
		return;
	}
	conn_pause(s->conn);
	script_call_hook(s->ss, "connect", NULL, smtp_connect_done, s->conn->id);
}

static void smtp_on_tls_ready(struct conn *c)
{
	struct smtp_session *s = c->proto;
	/* Implicit TLS (RFC 8314): the greeting comes after the handshake. */
	if (!s->greeted)
		smtp_greet(s);
}

static void smtp_on_timeout(struct conn *c)
{
	struct smtp_session *s = c->proto;
	log_info(c->sid, "event=timeout");
	smtp_reply(s, "421 4.4.2 %s Error: timeout exceeded", s->srv->hostname);
	conn_close(c);
}

/* RFC 5321 3.8: a server shutting down may send 421 between commands;
 * a session in the middle of a transaction is let finish. */
static void smtp_on_drain(struct conn *c)
{
	struct smtp_session *s = c->proto;
	if (s->txn.active || c->paused || s->auth_step != SMTP_AUTH_NONE)
		return;
	smtp_reply(s, "421 4.3.2 %s Service shutting down", s->srv->hostname);
	conn_close(c);
}

static size_t smtp_on_data(struct conn *c, const char *p, size_t len)
{
	return smtp_txn_data(c->proto, p, len);
}

static void smtp_on_closed(struct conn *c)
{
	struct smtp_session *s = c->proto;
	if (s->counted)
		climit_release(c->peer_ip);
	if (s->txn.receiving)
		log_info(c->sid, "event=lost_connection during=data qid=%s", s->txn.qid);
	smtp_deliver_close(s);
	smtp_txn_close(s);
	smtp_auth_cleanup(s);
	script_session_free(&s->ss);
	log_info(c->sid, "event=disconnect");
}

static const struct conn_ops smtp_conn_ops = {
	.line = smtp_on_line,
	.data = smtp_on_data,
	.tls_ready = smtp_on_tls_ready,
	.timeout = smtp_on_timeout,
	.closed = smtp_on_closed,
	.drain = smtp_on_drain,
};

static struct smtp_session *smtp_session_new(struct conn *c, const struct smtp_server *srv)
{
	struct smtp_session *s = arena_alloc(c->arena, sizeof(*s));
	s->conn = c;
	s->srv = srv;
	s->txn.spool.fd = -1;
	return s;
}

void smtp_session_refuse(struct conn *c, const struct smtp_server *srv)
{
	struct smtp_session *s = smtp_session_new(c, srv);
	s->greeted = true;      /* no greeting, even after implicit TLS */
	conn_start(c, &smtp_conn_ops, s, srv->limits.line_max, 10., NULL, false);
	/* Implicit TLS (465): the client speaks TLS, a plaintext 421 would be
	 * garbage to it, and a handshake is what we cannot afford: just close. */
	if (!srv->implicit_tls)
		smtp_reply(s, "421 4.7.0 %s Error: too many connections, try again later", srv->hostname);
	conn_close(c);
}

static void smtp_session_scripts(struct smtp_session *s)
{
	const struct smtp_server *srv = s->srv;
	if (srv->scripts == NULL)
		return;
	struct script_conn_info ci = {
		.ip = s->conn->peer_ip, .port = s->conn->peer_port, .sid = s->conn->sid,
		.protocol = srv->lmtp ? "lmtp" : srv->auth ? "submission" : "smtp",
		.tls = srv->implicit_tls,
	};
	s->ss = script_session_new(script_engine_current(srv->scripts), &ci);
}

void smtp_session_start(struct conn *c, const struct smtp_server *srv)
{
	struct smtp_session *s = smtp_session_new(c, srv);
	s->counted = true;
	smtp_session_scripts(s);
	log_info(c->sid, "event=connect proto=%s client=%s port=%d",
		 srv->lmtp ? "lmtp" : "smtp", c->peer_ip, c->peer_port);
	conn_start(c, &smtp_conn_ops, s, srv->limits.line_max,
		   srv->limits.idle_timeout, srv->ssl_ctx, srv->implicit_tls);
	if (!srv->implicit_tls)
		smtp_greet(s);
}
