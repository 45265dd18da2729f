/* imap_session.c - IMAP session: input through the command parser, the
 * command table with state preconditions, replies, limits, and the
 * any-state commands CAPABILITY, NOOP, LOGOUT (RFC 3501 6.1), STARTTLS
 * (6.2.1), plus ID (RFC 2971), ENABLE (RFC 5161), NAMESPACE (RFC 2342). */
#include "imap_int.h"
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

#define IMAP_ARGS_MAX 4096          /* argument nodes per command */
#define IMAP_DEPTH_MAX 8            /* list nesting */
#define IMAP_ID_PAIRS_MAX 30        /* RFC 2971 3.3 */

struct imap_command {
	const char *name;
	imap_cmd_fn *handler;
	unsigned states;        /* enum imap_state bits where it is allowed */
};

static void imap_vline(struct imap_session *s, const char *prefix, const char *fmt, va_list ap)
{
	struct buf b = { 0 };
	buf_append_str(&b, prefix);
	buf_vprintf(&b, fmt, ap);
	buf_append(&b, "\r\n", 2);
	conn_write(s->conn, buf_ptr(&b), b.len);
	buf_free(&b);
}

void imap_reply(struct imap_session *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	imap_vline(s, "", fmt, ap);
	va_end(ap);
}

void imap_tagged(struct imap_session *s, const char *status, const char *fmt, ...)
{
	char prefix[IMAP_TAG_MAX + 8];
	va_list ap;
	snprintf(prefix, sizeof(prefix), "%s %s ", s->tag[0] ? s->tag : "*", status);
	va_start(ap, fmt);
	imap_vline(s, prefix, fmt, ap);
	va_end(ap);
}

void imap_close(struct imap_session *s, const char *bye)
{
	imap_reply(s, "* BYE %s", bye);
	s->closing = true;
	conn_close(s->conn);
}

void imap_bad(struct imap_session *s, const char *fmt, ...)
{
	char prefix[IMAP_TAG_MAX + 8];
	va_list ap;
	snprintf(prefix, sizeof(prefix), "%s BAD ", s->tag[0] ? s->tag : "*");
	va_start(ap, fmt);
	imap_vline(s, prefix, fmt, ap);
	va_end(ap);
	if (++s->errors >= s->srv->limits.errors_max) {
		log_info(s->conn->sid, "event=too_many_errors errors=%d", s->errors);
		imap_close(s, "Too many invalid commands.");
	}
}

bool imap_login_allowed(const struct imap_session *s)
{
	return conn_tls_active(s->conn) || s->srv->plaintext_auth;
}

static bool imap_starttls_offered(const struct imap_session *s)
{
	return s->srv->starttls && s->srv->ssl_ctx && !conn_tls_active(s->conn);
}

size_t imap_args_top(const struct imap_arg *args, size_t nargs, const struct imap_arg **top,
		     size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < nargs; i += args[i].span) {
		if (n < max)
			top[n] = &args[i];
		n++;
	}
	return n;
}

/* RFC 3501 7.2.1; login capabilities only while a login is possible
 * (LOGINDISABLED when it is not: RFC 3501 6.2.3). */
void imap_capabilities(const struct imap_session *s, struct buf *b)
{
	buf_append_str(b, "IMAP4rev1 IMAP4rev2 SASL-IR LITERAL+ ID ENABLE NAMESPACE UNSELECT CHILDREN "
		       "SPECIAL-USE UIDPLUS MOVE IDLE MULTIAPPEND");
	buf_append_str(b, " SORT SORT=DISPLAY THREAD=REFERENCES THREAD=ORDEREDSUBJECT BINARY");
	buf_append_str(b, " CONDSTORE QRESYNC ESEARCH SEARCHRES");
	buf_append_str(b, " LIST-EXTENDED LIST-STATUS CREATE-SPECIAL-USE STATUS=SIZE QUOTA"
		       " QUOTA=RES-STORAGE");
	if (s->state != IMAP_NOTAUTH && !conn_compressed(s->conn))
		buf_append_str(b, " COMPRESS=DEFLATE");
	if (s->state != IMAP_NOTAUTH)
		return;
	if (imap_starttls_offered(s))
		buf_append_str(b, " STARTTLS");
	if (imap_login_allowed(s))
		buf_append_str(b, " AUTH=PLAIN");
	else
		buf_append_str(b, " LOGINDISABLED");
}

static void imap_cmd_capability(struct imap_session *s, const struct imap_arg *args MP_UNUSED,
				size_t nargs)
{
	if (nargs > 0) {
		imap_bad(s, "CAPABILITY takes no arguments.");
		return;
	}
	struct buf b = { 0 };
	imap_capabilities(s, &b);
	imap_reply(s, "* CAPABILITY %s", buf_ptr(&b));
	buf_free(&b);
	imap_tagged(s, "OK", "Capability completed.");
}

static void imap_cmd_noop(struct imap_session *s, const struct imap_arg *args MP_UNUSED,
			  size_t nargs)
{
	if (nargs > 0) {
		imap_bad(s, "NOOP takes no arguments.");
		return;
	}
	imap_sync_cmd(s, "NOOP completed.");
}

static void imap_cmd_logout(struct imap_session *s, const struct imap_arg *args MP_UNUSED,
			    size_t nargs)
{
	if (nargs > 0) {
		imap_bad(s, "LOGOUT takes no arguments.");
		return;
	}
	imap_reply(s, "* BYE Logging out");
	imap_tagged(s, "OK", "Logout completed.");
	s->closing = true;
	conn_close(s->conn);
}

static void imap_cmd_starttls(struct imap_session *s, const struct imap_arg *args MP_UNUSED,
			      size_t nargs)
{
	if (nargs > 0) {
		imap_bad(s, "STARTTLS takes no arguments.");
		return;
	}
	if (!imap_starttls_offered(s)) {
		imap_bad(s, conn_tls_active(s->conn) ? "TLS is already active." :
			 "STARTTLS is not available.");
		return;
	}
	imap_tagged(s, "OK", "Begin TLS negotiation now.");
	/* RFC 3501 6.2.1: what the client sent after the command is not
	 * trusted; conn_starttls drops it, the parser starts afresh. */
	imap_parser_reset(&s->parser);
	conn_starttls(s->conn);
}

/* RFC 4978: COMPRESS DEFLATE; the OK goes out uncompressed, everything
 * after it is DEFLATE both ways (conn_compress). */
static void imap_cmd_compress(struct imap_session *s, const struct imap_arg *args, size_t nargs)
{
	if (nargs != 1 || args[0].type != IMAP_ARG_ATOM) {
		imap_bad(s, "Syntax: COMPRESS DEFLATE");
		return;
	}
	if (!str_case_eq(args[0].s, "DEFLATE")) {
		imap_tagged(s, "NO", "Unknown compression mechanism.");
		return;
	}
	if (conn_compressed(s->conn)) {
		imap_tagged(s, "NO", "[COMPRESSIONACTIVE] DEFLATE active via COMPRESS.");
		return;
	}
	imap_tagged(s, "OK", "DEFLATE active.");
	imap_parser_reset(&s->parser);
	conn_compress(s->conn);
}

/* RFC 2971 3.3: NIL or a list of at most 30 field/value pairs. */
static int imap_id_check(const struct imap_arg *a, size_t nargs, struct buf *logged)
{
	if (nargs == 0 || a[0].span != nargs)
		return -1;
	if (a[0].type == IMAP_ARG_NIL)
		return 0;
	if (a[0].type != IMAP_ARG_LIST || a[0].members % 2 || a[0].members / 2 > IMAP_ID_PAIRS_MAX)
		return -1;
	for (size_t i = 1; i < nargs;) {
		struct str k, v;
		if (!imap_arg_astring(&a[i], &k) || a[i].type == IMAP_ARG_ATOM)
			return -1;
		size_t vi = i + a[i].span;      /* members are even: a value follows */
		if (vi >= nargs || !imap_arg_nstring(&a[vi], &v) || a[vi].type == IMAP_ARG_ATOM)
			return -1;
		if (k.len <= 30 && v.len <= 1024) {
			char q[1100];
			buf_printf(logged, " %.*s=\"%s\"", STR_FMT(k), log_quote(q, sizeof(q), v.p, v.len));
		}
		i = vi + a[vi].span;
	}
	return 0;
}

static void imap_cmd_id(struct imap_session *s, const struct imap_arg *args, size_t nargs)
{
	struct buf logged = { 0 };
	if (imap_id_check(args, nargs, &logged) < 0) {
		buf_free(&logged);
		imap_bad(s, "Syntax: ID ( field value ... ) or ID NIL");
		return;
	}
	if (logged.len > 0)
		log_info(s->conn->sid, "event=client_id%s", buf_ptr(&logged));
	buf_free(&logged);
	imap_reply(s, "* ID (\"name\" \"moonpost\" \"vendor\" \"moonpost\")");
	imap_tagged(s, "OK", "ID completed.");
}

/* RFC 5161 3.1: names the client wants; ENABLED lists those we have:
 * CONDSTORE, and QRESYNC, which enables CONDSTORE too (RFC 7162 3.2.3);
 * IMAP4rev2 (RFC 9051 2.1: until it is enabled the server speaks
 * IMAP4rev1). */
static void imap_cmd_enable(struct imap_session *s, const struct imap_arg *args, size_t nargs)
{
	bool condstore = false, qresync = false, rev2 = false;
	if (nargs == 0) {
		imap_bad(s, "Syntax: ENABLE capability ...");
		return;
	}
	for (size_t i = 0; i < nargs; i += args[i].span) {
		if (args[i].type != IMAP_ARG_ATOM) {
			imap_bad(s, "Syntax: ENABLE capability ...");
			return;
		}
		condstore |= str_case_eq(args[i].s, "CONDSTORE");
		qresync |= str_case_eq(args[i].s, "QRESYNC");
		rev2 |= str_case_eq(args[i].s, "IMAP4rev2");
	}
	s->condstore |= condstore || qresync;
	s->qresync |= qresync;
	s->rev2 |= rev2;
	imap_reply(s, "* ENABLED%s%s%s", condstore ? " CONDSTORE" : "", qresync ? " QRESYNC" : "",
		   rev2 ? " IMAP4rev2" : "");
	imap_tagged(s, "OK", "Enabled.");
}

/* RFC 2342 5: one personal namespace, Maildir++'s "." separator. */
static void imap_cmd_namespace(struct imap_session *s, const struct imap_arg *args MP_UNUSED,
			       size_t nargs)
{
	if (nargs > 0) {
		imap_bad(s, "NAMESPACE takes no arguments.");
		return;
	}
	imap_reply(s, "* NAMESPACE ((\"\" \".\")) NIL NIL");
	imap_tagged(s, "OK", "Namespace completed.");
}

static const struct imap_command imap_commands[] = {
	{ "CAPABILITY", imap_cmd_capability, IMAP_ANY },
	{ "NOOP", imap_cmd_noop, IMAP_ANY },
	{ "LOGOUT", imap_cmd_logout, IMAP_ANY },
	{ "ID", imap_cmd_id, IMAP_ANY },
	{ "STARTTLS", imap_cmd_starttls, IMAP_NOTAUTH },
	{ "COMPRESS", imap_cmd_compress, IMAP_LOGGED_IN },
	{ "LOGIN", imap_cmd_login, IMAP_NOTAUTH },
	{ "AUTHENTICATE", imap_cmd_authenticate, IMAP_NOTAUTH },
	{ "ENABLE", imap_cmd_enable, IMAP_AUTH },
	{ "NAMESPACE", imap_cmd_namespace, IMAP_LOGGED_IN },
	{ "LIST", imap_cmd_list, IMAP_LOGGED_IN },
	{ "LSUB", imap_cmd_lsub, IMAP_LOGGED_IN },
	{ "CREATE", imap_cmd_create, IMAP_LOGGED_IN },
	{ "DELETE", imap_cmd_delete, IMAP_LOGGED_IN },
	{ "RENAME", imap_cmd_rename, IMAP_LOGGED_IN },
	{ "SUBSCRIBE", imap_cmd_subscribe, IMAP_LOGGED_IN },
	{ "UNSUBSCRIBE", imap_cmd_unsubscribe, IMAP_LOGGED_IN },
	{ "STATUS", imap_cmd_status, IMAP_LOGGED_IN },
	{ "SELECT", imap_cmd_select, IMAP_LOGGED_IN },
	{ "EXAMINE", imap_cmd_examine, IMAP_LOGGED_IN },
	{ "CHECK", imap_cmd_check, IMAP_SELECTED },
	{ "CLOSE", imap_cmd_close, IMAP_SELECTED },
	{ "UNSELECT", imap_cmd_unselect, IMAP_SELECTED },
	{ "FETCH", imap_cmd_fetch, IMAP_SELECTED },
	{ "STORE", imap_cmd_store, IMAP_SELECTED },
	{ "EXPUNGE", imap_cmd_expunge, IMAP_SELECTED },
	{ "APPEND", imap_cmd_append, IMAP_LOGGED_IN },
	{ "COPY", imap_cmd_copy, IMAP_SELECTED },
	{ "MOVE", imap_cmd_move, IMAP_SELECTED },
	{ "SEARCH", imap_cmd_search, IMAP_SELECTED },
	{ "SORT", imap_cmd_sort, IMAP_SELECTED },
	{ "THREAD", imap_cmd_thread, IMAP_SELECTED },
	{ "IDLE", imap_cmd_idle, IMAP_LOGGED_IN },
	{ "GETQUOTA", imap_cmd_getquota, IMAP_LOGGED_IN },
	{ "GETQUOTAROOT", imap_cmd_getquotaroot, IMAP_LOGGED_IN },
	{ "SETQUOTA", imap_cmd_setquota, IMAP_LOGGED_IN },
	{ "UID", imap_cmd_uid, IMAP_SELECTED },
};

static const struct imap_command *imap_command_find(const char *name)
{
	struct str n = str_from_cstr(name);
	for (size_t i = 0; i < ARRAY_SIZE(imap_commands); i++)
		if (str_case_eq(n, imap_commands[i].name))
			return &imap_commands[i];
	return NULL;
}

static void imap_dispatch(struct imap_session *s, struct imap_parser *p)
{
	snprintf(s->tag, sizeof(s->tag), "%s", p->tag);
	const struct imap_command *ic = imap_command_find(p->name);
	if (ic == NULL) {
		imap_bad(s, "Unknown command.");
		return;
	}
	if (!(ic->states & s->state)) {
		/* RFC 3501 6: a command in the wrong state is BAD. */
		imap_bad(s, "%s not allowed %s.", ic->name,
			 s->state == IMAP_NOTAUTH ? "before login" :
			 s->state == IMAP_AUTH ? "without a selected mailbox" : "in this state");
		return;
	}
	ic->handler(s, p->out, p->nout);
}

static void imap_parse_error(struct imap_session *s, struct imap_parser *p)
{
	imap_append_abort(s);           /* an APPEND's messages go with it */
	snprintf(s->tag, sizeof(s->tag), "%s", p->tag);
	switch (p->error) {
	case IMAP_ERR_TOOBIG:
		/* A synchronizing literal was refused before it was sent. */
		imap_tagged(s, "NO", "[TOOBIG] %s.", p->error_text);
		break;
	case IMAP_ERR_FATAL:
		log_info(s->conn->sid, "event=command_too_big error=\"%s\"", p->error_text);
		imap_tagged(s, "BAD", "[TOOBIG] %s.", p->error_text);
		imap_close(s, "Command too big, closing connection.");
		break;
	default:
		imap_bad(s, "Error in IMAP command: %s.", p->error_text);
		break;
	}
}

void imap_literal_result(struct imap_session *s, enum imap_parse_result r)
{
	if (r == IMAP_PARSE_LITERAL)
		imap_reply(s, "+ OK");          /* RFC 3501 7.5 */
	else if (r == IMAP_PARSE_ERROR)
		imap_parse_error(s, &s->parser);
}

/* A literal is announced: APPEND streams its messages to disk, any other
 * literal is held in the command (literal_max, command_max). */
static void imap_on_announce(struct imap_session *s)
{
	if (!imap_append_literal(s))
		imap_literal_result(s, imap_parser_literal(&s->parser, IMAP_LIT_BUFFER));
}

static size_t imap_on_data(struct conn *c, const char *buf, size_t len)
{
	struct imap_session *s = c->proto;
	size_t used = 0;
	if (s->closing)
		return len;
	enum imap_parse_result r = imap_parser_feed(&s->parser, buf, len, &used);
	switch (r) {
	case IMAP_PARSE_OK:
		if (s->sasl_wait)
			imap_auth_line(s, s->parser.line);
		else if (s->idling)
			imap_idle_line(s, s->parser.line);
		else
			imap_dispatch(s, &s->parser);
		break;
	case IMAP_PARSE_LITERAL:
		imap_literal_result(s, r);
		break;
	case IMAP_PARSE_ANNOUNCE:
		imap_on_announce(s);
		break;
	case IMAP_PARSE_CHUNK:
		imap_append_chunk(s, s->parser.chunk, s->parser.lit_left == 0);
		break;
	case IMAP_PARSE_ERROR:
		s->sasl_wait = false;
		if (s->idling && s->parser.error != IMAP_ERR_FATAL)
			imap_idle_line(s, STR_LIT(""));         /* answers "Expected DONE" */
		else
			imap_parse_error(s, &s->parser);
		break;
	case IMAP_PARSE_AGAIN:
		break;
	}
	return used;
}

void imap_resume(struct imap_session *s)
{
	conn_resume(s->conn);
}

void imap_flush(struct imap_session *s)
{
	/* conn_write only queues; the pump (which flushes, and delivers no
	 * input while paused) runs from the loop, as in pop3_retr.c. */
	ev_feed_event(s->conn->loop, &s->conn->wio, EV_WRITE);
}

static void imap_greet(struct imap_session *s)
{
	struct buf b = { 0 };
	s->greeted = true;
	imap_capabilities(s, &b);
	imap_reply(s, "* OK [CAPABILITY %s] moonpost ready.", buf_ptr(&b));
	buf_free(&b);
}

static void imap_on_tls_ready(struct conn *c)
{
	struct imap_session *s = c->proto;
	if (!s->greeted)
		imap_greet(s);
}

/* RFC 3501 5.4: the autologout timer. */
static void imap_on_timeout(struct conn *c)
{
	struct imap_session *s = c->proto;
	log_info(c->sid, "event=timeout");
	imap_close(s, "Disconnected for inactivity.");
}

static void imap_on_drain(struct conn *c)
{
	struct imap_session *s = c->proto;
	if (c->paused)
		return;
	imap_close(s, "[UNAVAILABLE] Server shutting down.");
}

static void imap_on_closed(struct conn *c)
{
	struct imap_session *s = c->proto;
	climit_release(c->peer_ip);
	imap_append_abort(s);
	imap_fetch_cleanup(s);
	imap_idle_cleanup(s);
	imap_mbox_cleanup(s);
	imap_auth_cleanup(s);
	script_session_free(&s->ss);
	imap_parser_free(&s->parser);
	free(s->auth_user);
	s->auth_user = NULL;
	free(s->maildir);
	s->maildir = NULL;
	log_info(c->sid, "event=disconnect");
}

static const struct conn_ops imap_conn_ops = {
	.data = imap_on_data,
	.tls_ready = imap_on_tls_ready,
	.timeout = imap_on_timeout,
	.closed = imap_on_closed,
	.drain = imap_on_drain,
};

static struct imap_session *imap_session_new(struct conn *c, const struct imap_server *srv)
{
	struct imap_session *s = arena_alloc(c->arena, sizeof(*s));
	s->conn = c;
	s->srv = srv;
	s->state = IMAP_NOTAUTH;
	struct imap_parse_limits lim = {
		.line_max = srv->limits.line_max,
		.literal_max = srv->limits.literal_max,
		.cmd_max = srv->limits.cmd_max,
		.args_max = IMAP_ARGS_MAX,
		.depth_max = IMAP_DEPTH_MAX,
	};
	imap_parser_init(&s->parser, &lim);
	imap_parser_announce(&s->parser, true);         /* APPEND streams (imap_append.c) */
	imap_fetch_init(s);
	imap_idle_init(s);
	return s;
}

static void imap_refused_closed(struct conn *c)
{
	struct imap_session *s = c->proto;
	imap_parser_free(&s->parser);
}

static size_t imap_refused_data(struct conn *c MP_UNUSED, const char *buf MP_UNUSED, size_t len)
{
	return len;
}

static const struct conn_ops imap_refuse_ops = {
	.data = imap_refused_data,
	.closed = imap_refused_closed,
};

void imap_session_refuse(struct conn *c, const struct imap_server *srv)
{
	struct imap_session *s = imap_session_new(c, srv);
	s->greeted = true;
	conn_start(c, &imap_refuse_ops, s, srv->limits.line_max, 10., NULL, false);
	conn_set_raw(c, true);
	imap_reply(s, "* BYE [UNAVAILABLE] Too many connections, try again later.");
	conn_close(c);
}

void imap_session_start(struct conn *c, const struct imap_server *srv)
{
	struct imap_session *s = imap_session_new(c, srv);
	if (srv->scripts != NULL) {
		struct script_conn_info ci = {
			.ip = c->peer_ip, .port = c->peer_port, .sid = c->sid,
			.protocol = "imap", .tls = srv->implicit_tls,
		};
		s->ss = script_session_new(script_engine_current(srv->scripts), &ci);
	}
	log_info(c->sid, "event=connect proto=imap client=%s port=%d", c->peer_ip, c->peer_port);
	conn_start(c, &imap_conn_ops, s, srv->limits.line_max, srv->limits.idle_timeout,
		   srv->ssl_ctx, srv->implicit_tls);
	conn_set_raw(c, true);
	if (!srv->implicit_tls)
		imap_greet(s);
}
