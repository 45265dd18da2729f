/* smtp_session.c - SMTP server session: state, command table, replies.
 *
 * For now the session covers the connection-level commands (greeting,
 * EHLO/HELO, STARTTLS, NOOP, RSET, QUIT, VRFY, HELP) and the limits; the
 * mail transaction commands answer 502 until the receive path lands. */
#include "smtp_int.h"
#include "core/arena.h"
#include "core/conn.h"
#include "core/log.h"
#include "core/util.h"

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
	/* The mail transaction state will live here. */
	(void)s;
}

static bool smtp_starttls_offered(const struct smtp_session *s)
{
	return s->srv->starttls && s->srv->ssl_ctx && !conn_tls_active(s->conn);
}

static void smtp_cmd_ehlo(struct smtp_session *s, struct str args)
{
	const char *exts[8];
	size_t n = 0;
	if (args.len == 0 || args.len > SMTP_HELO_MAX) {
		smtp_reply(s, "501 5.5.4 Syntax: EHLO hostname");
		smtp_error(s);
		return;
	}
	snprintf(s->helo, sizeof(s->helo), "%.*s", STR_FMT(args));
	s->esmtp = true;
	smtp_reset(s);
	exts[n++] = "PIPELINING";
	exts[n++] = "ENHANCEDSTATUSCODES";
	if (smtp_starttls_offered(s))
		exts[n++] = "STARTTLS";
	if (smtp_auth_offered(s))
		exts[n++] = "AUTH PLAIN LOGIN";
	smtp_reply(s, "250-%s", s->srv->hostname);
	for (size_t i = 0; i < n; i++)
		smtp_reply(s, "250%c%s", i + 1 == n ? ' ' : '-', exts[i]);
}

static void smtp_cmd_helo(struct smtp_session *s, struct str args)
{
	if (args.len == 0 || args.len > SMTP_HELO_MAX) {
		smtp_reply(s, "501 5.5.4 Syntax: HELO hostname");
		smtp_error(s);
		return;
	}
	snprintf(s->helo, sizeof(s->helo), "%.*s", STR_FMT(args));
	s->esmtp = false;
	smtp_reset(s);
	smtp_reply(s, "250 %s", s->srv->hostname);
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
	smtp_reply(s, "214 2.0.0 Commands: EHLO HELO STARTTLS AUTH NOOP RSET QUIT VRFY HELP");
}

static void smtp_cmd_unimplemented(struct smtp_session *s, struct str args MP_UNUSED)
{
	smtp_reply(s, "502 5.5.1 Error: command not implemented");
	smtp_error(s);
}

static const struct smtp_command smtp_commands[] = {
	{ "EHLO", smtp_cmd_ehlo, 0 },
	{ "HELO", smtp_cmd_helo, 0 },
	{ "STARTTLS", smtp_cmd_starttls, SMTP_CMD_NOARGS },
	{ "NOOP", smtp_cmd_noop, 0 },
	{ "RSET", smtp_cmd_rset, SMTP_CMD_NOARGS },
	{ "QUIT", smtp_cmd_quit, SMTP_CMD_NOARGS },
	{ "VRFY", smtp_cmd_vrfy, 0 },
	{ "HELP", smtp_cmd_help, 0 },
	{ "AUTH", smtp_cmd_auth, 0 },
	{ "MAIL", smtp_cmd_unimplemented, 0 },
	{ "RCPT", smtp_cmd_unimplemented, 0 },
	{ "DATA", smtp_cmd_unimplemented, 0 },
	{ "BDAT", smtp_cmd_unimplemented, 0 },
};

static const struct smtp_command *smtp_command_find(struct str verb)
{
	for (size_t i = 0; i < ARRAY_SIZE(smtp_commands); i++)
		if (str_case_eq(verb, smtp_commands[i].name))
			return &smtp_commands[i];
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
	const struct smtp_command *sc = smtp_command_find(cmd.verb);
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

static void smtp_greet(struct smtp_session *s)
{
	s->greeted = true;
	smtp_reply(s, "220 %s ESMTP moonpost", s->srv->hostname);
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

static void smtp_on_closed(struct conn *c)
{
	smtp_auth_cleanup(c->proto);
	log_info(c->sid, "event=disconnect");
}

static const struct conn_ops smtp_conn_ops = {
	.line = smtp_on_line,
	.tls_ready = smtp_on_tls_ready,
	.timeout = smtp_on_timeout,
	.closed = smtp_on_closed,
};

void smtp_session_start(struct conn *c, const struct smtp_server *srv)
{
	struct smtp_session *s = arena_alloc(c->arena, sizeof(*s));
	s->conn = c;
	s->srv = srv;
	smtp_auth_init(s);
	log_info(c->sid, "event=connect proto=%s client=%s port=%d",
		 srv->lmtp ? "lmtp" : "smtp", c->peer_ip, c->peer_port);
	conn_start(c, &smtp_conn_ops, s, srv->limits.line_max,
		   srv->limits.idle_timeout, srv->ssl_ctx, srv->implicit_tls);
	if (!srv->implicit_tls)
		smtp_greet(s);
}
