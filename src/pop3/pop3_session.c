/* pop3_session.c - POP3 session: states, the command table, replies,
 * CAPA (RFC 2449), STLS (RFC 2595), NOOP, QUIT, limits. */
#include "pop3_int.h"
#include "core/arena.h"
#include "core/climit.h"
#include "core/conn.h"
#include "core/log.h"
#include "core/util.h"
#include "lua/script.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pop3_command {
	const char *name;
	void (*handler)(struct pop3_session *s, struct str args);
	unsigned states;        /* enum pop3_state bits where it is allowed */
	bool noargs;            /* arguments are a syntax error */
};

void pop3_reply(struct pop3_session *s, const char *fmt, ...)
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

/* Counts a client error and answers it; the error that reaches the limit
 * gets the closing -ERR as its only answer. */
void pop3_fail(struct pop3_session *s, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	if (++s->errors >= s->srv->limits.errors_max) {
		log_info(s->conn->sid, "event=too_many_errors errors=%d", s->errors);
		pop3_reply(s, "-ERR Too many bad commands, closing connection");
		conn_close(s->conn);
		return;
	}
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	pop3_reply(s, "%s", line);
}

static bool pop3_stls_offered(const struct pop3_session *s)
{
	return s->srv->starttls && s->srv->ssl_ctx && !conn_tls_active(s->conn);
}

bool pop3_login_allowed(const struct pop3_session *s)
{
	return conn_tls_active(s->conn) || s->srv->plaintext_auth;
}

/* RFC 2449 5: what this state offers; login capabilities only while a
 * login is possible (as Dovecot does). */
static void pop3_cmd_capa(struct pop3_session *s, struct str args MP_UNUSED)
{
	struct buf b = { 0 };
	buf_append_str(&b, "+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\n");
	if (s->state == POP3_AUTHORIZATION) {
		if (pop3_login_allowed(s))
			buf_append_str(&b, "USER\r\nSASL PLAIN\r\n");
		if (pop3_stls_offered(s))
			buf_append_str(&b, "STLS\r\n");
	}
	buf_printf(&b, "IMPLEMENTATION moonpost\r\n.\r\n");
	conn_write(s->conn, buf_ptr(&b), b.len);
	buf_free(&b);
}

static void pop3_cmd_stls(struct pop3_session *s, struct str args MP_UNUSED)
{
	if (!pop3_stls_offered(s)) {
		pop3_fail(s, conn_tls_active(s->conn) ? "-ERR TLS is already active" :
			   "-ERR STLS not available");
		return;
	}
	pop3_reply(s, "+OK Begin TLS negotiation now");
	/* RFC 2595 4: forget what the client said before TLS; conn_starttls
	 * drops any pipelined plaintext. */
	free(s->user);
	s->user = NULL;
	conn_starttls(s->conn);
}

static void pop3_cmd_noop(struct pop3_session *s, struct str args MP_UNUSED)
{
	pop3_reply(s, "+OK");
}

static void pop3_cmd_quit(struct pop3_session *s, struct str args MP_UNUSED)
{
	if (s->state == POP3_TRANSACTION) {
		pop3_update(s);
		return;
	}
	pop3_reply(s, "+OK Logging out");
	conn_close(s->conn);
}

static const struct pop3_command pop3_commands[] = {
	{ "CAPA", pop3_cmd_capa, POP3_AUTHORIZATION | POP3_TRANSACTION, true },
	{ "QUIT", pop3_cmd_quit, POP3_AUTHORIZATION | POP3_TRANSACTION, true },
	{ "NOOP", pop3_cmd_noop, POP3_TRANSACTION, true },
	{ "STLS", pop3_cmd_stls, POP3_AUTHORIZATION, true },
	{ "USER", pop3_cmd_user, POP3_AUTHORIZATION, false },
	{ "PASS", pop3_cmd_pass, POP3_AUTHORIZATION, false },
	{ "APOP", pop3_cmd_apop, POP3_AUTHORIZATION, false },
	{ "AUTH", pop3_cmd_auth, POP3_AUTHORIZATION, false },
	{ "STAT", pop3_cmd_stat, POP3_TRANSACTION, true },
	{ "LIST", pop3_cmd_list, POP3_TRANSACTION, false },
	{ "UIDL", pop3_cmd_uidl, POP3_TRANSACTION, false },
	{ "RETR", pop3_cmd_retr, POP3_TRANSACTION, false },
	{ "TOP", pop3_cmd_top, POP3_TRANSACTION, false },
	{ "DELE", pop3_cmd_dele, POP3_TRANSACTION, false },
	{ "RSET", pop3_cmd_rset, POP3_TRANSACTION, true },
};

static const struct pop3_command *pop3_command_find(struct str verb)
{
	for (size_t i = 0; i < ARRAY_SIZE(pop3_commands); i++)
		if (str_case_eq(verb, pop3_commands[i].name))
			return &pop3_commands[i];
	return NULL;
}

static void pop3_on_line(struct conn *c, struct str line, bool too_long)
{
	struct pop3_session *s = c->proto;
	struct pop3_cmd cmd;
	if (too_long) {
		s->sasl_plain = false;
		conn_set_line_max(c, s->srv->limits.line_max);
		pop3_fail(s, "-ERR Line too long");
		return;
	}
	if (s->sasl_plain) {
		pop3_auth_line(s, line);
		return;
	}
	const struct pop3_command *pc = NULL;
	if (pop3_cmd_parse(line, &cmd) == 0)
		pc = pop3_command_find(cmd.verb);
	if (pc == NULL) {
		pop3_fail(s, "-ERR Unknown command");
		return;
	}
	if (!(pc->states & s->state)) {
		pop3_fail(s, "-ERR %s not allowed in this state", pc->name);
		return;
	}
	if (pc->noargs && cmd.args.len > 0) {
		pop3_fail(s, "-ERR Syntax: %s takes no arguments", pc->name);
		return;
	}
	pc->handler(s, cmd.args);
}

static void pop3_greet(struct pop3_session *s)
{
	s->greeted = true;
	if (s->srv->apop) {
		pop3_make_apop_stamp(s);
		pop3_reply(s, "+OK moonpost ready %s", s->apop_stamp);
	} else {
		pop3_reply(s, "+OK moonpost ready");
	}
}

static void pop3_on_tls_ready(struct conn *c)
{
	struct pop3_session *s = c->proto;
	if (!s->greeted)
		pop3_greet(s);
}

/* RFC 1939 3: the autologout timer ends the session without UPDATE. */
static void pop3_on_timeout(struct conn *c)
{
	struct pop3_session *s = c->proto;
	log_info(c->sid, "event=timeout");
	pop3_reply(s, "-ERR Disconnected for inactivity");
	conn_close(c);
}

static void pop3_on_drain(struct conn *c)
{
	struct pop3_session *s = c->proto;
	if (c->paused || s->retr != NULL)
		return;
	pop3_reply(s, "-ERR [SYS/TEMP] Server shutting down");
	conn_close(c);
}

static void pop3_on_closed(struct conn *c)
{
	struct pop3_session *s = c->proto;
	climit_release(c->peer_ip);
	pop3_retr_cleanup(s);
	pop3_auth_cleanup(s);
	script_session_free(&s->ss);
	if (s->mb)
		pop3_update_dropped(s);
	free(s->deleted);
	s->deleted = NULL;
	free(s->seen);
	s->seen = NULL;
	free(s->user);
	s->user = NULL;
	free(s->auth_user);
	s->auth_user = NULL;
	log_info(c->sid, "event=disconnect");
}

static const struct conn_ops pop3_conn_ops = {
	.line = pop3_on_line,
	.tls_ready = pop3_on_tls_ready,
	.timeout = pop3_on_timeout,
	.closed = pop3_on_closed,
	.drain = pop3_on_drain,
};

static struct pop3_session *pop3_session_new(struct conn *c, const struct pop3_server *srv)
{
	struct pop3_session *s = arena_alloc(c->arena, sizeof(*s));
	s->conn = c;
	s->srv = srv;
	s->state = POP3_AUTHORIZATION;
	pop3_retr_init(s);
	return s;
}

static void pop3_refused_closed(struct conn *c MP_UNUSED)
{
}

static const struct conn_ops pop3_refuse_ops = {
	.line = pop3_on_line,
	.closed = pop3_refused_closed,
};

void pop3_session_refuse(struct conn *c, const struct pop3_server *srv)
{
	struct pop3_session *s = pop3_session_new(c, srv);
	s->greeted = true;
	conn_start(c, &pop3_refuse_ops, s, srv->limits.line_max, 10., NULL, false);
	/* On an implicit-TLS port the client speaks TLS: a plaintext -ERR
	 * would be garbage to it, and a handshake is what we cannot afford. */
	if (!srv->implicit_tls)
		pop3_reply(s, "-ERR [SYS/TEMP] Too many connections, try again later");
	conn_close(c);
}

void pop3_session_start(struct conn *c, const struct pop3_server *srv)
{
	struct pop3_session *s = pop3_session_new(c, srv);
	if (srv->scripts != NULL) {
		struct script_conn_info ci = {
			.ip = c->peer_ip, .port = c->peer_port, .sid = c->sid,
			.protocol = "pop3", .tls = srv->implicit_tls,
		};
		s->ss = script_session_new(script_engine_current(srv->scripts), &ci);
	}
	log_info(c->sid, "event=connect proto=pop3 client=%s port=%d", c->peer_ip, c->peer_port);
	conn_start(c, &pop3_conn_ops, s, srv->limits.line_max, srv->limits.idle_timeout,
		   srv->ssl_ctx, srv->implicit_tls);
	if (!srv->implicit_tls)
		pop3_greet(s);
}
