/* smtp_auth.c - SMTP AUTH (RFC 4954) with SASL PLAIN (RFC 4616) and LOGIN.
 *
 * The password check (bcrypt/argon2: tens of milliseconds by design) and
 * the directory query run on the worker's pool threads. Meanwhile the
 * connection delivers no further lines; the completion finds the session by
 * connection id, so a client that hangs up mid-check costs nothing. A
 * client IP with recent failures waits first (penalty.h). */
#include "smtp_int.h"
#include "core/arena.h"
#include "core/base64.h"
#include "core/conn.h"
#include "core/log.h"
#include "core/pool.h"
#include "core/util.h"
#include "dir/dir.h"
#include "dir/penalty.h"
#include "login/login.h"
#include "lua/script.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

/* RFC 4954 section 4: a SASL response line may be 12288 octets. */
#define SMTP_AUTH_LINE_MAX 12288
#define SMTP_AUTH_FIELD_MAX 1024

bool smtp_auth_offered(const struct smtp_session *s)
{
	return s->srv->auth && s->srv->dir &&
	       (conn_tls_active(s->conn) || s->srv->plaintext_auth);
}

/* The login's outcome (src/login): the reply. */
static void smtp_auth_done(struct conn *c, const struct login_outcome *o)
{
	struct smtp_session *s = c->proto;
	char q[256];
	s->login = NULL;
	log_quote(q, sizeof(q), o->login, strlen(o->login));
	s->auth_step = SMTP_AUTH_NONE;
	if (o->deny) {
		log_info(c->sid, "event=auth result=denied user=\"%s\" client=%s by=policy", q, o->ip);
		smtp_reply(s, "535 %s", o->deny[0] ? o->deny : "5.7.8 Authentication refused");
		smtp_error(s);
	} else if (o->result == DIR_FOUND) {
		penalty_success(o->ip);
		s->auth_user = arena_strdup(c->arena, o->user);
		if (s->ss)
			script_session_user(s->ss, s->auth_user);
		log_info(c->sid, "event=auth result=ok user=\"%s\"", q);
		smtp_reply(s, "235 2.7.0 Authentication successful");
	} else if (o->result == DIR_TEMPFAIL) {
		log_warn(c->sid, "event=auth result=tempfail user=\"%s\"", q);
		smtp_reply(s, "454 4.7.0 Temporary authentication failure");
	} else {
		log_info(c->sid, "event=auth result=fail user=\"%s\" client=%s", q, o->ip);
		smtp_reply(s, "535 5.7.8 Authentication credentials invalid");
		smtp_error(s);
	}
	conn_resume(c);
}

/* Takes ownership of login and password (malloc'd). */
static void smtp_auth_start(struct smtp_session *s, char *login, char *password, size_t len)
{
	struct login_request rq = {
		.conn = s->conn, .dir = s->srv->dir, .pool = s->srv->pool, .ss = s->ss,
		.penalty_max = s->srv->penalty_max, .login = login, .secret = password,
		.secret_len = len, .mechanism = s->auth_step == SMTP_AUTH_LOGIN_PASS ? "LOGIN" : "PLAIN",
	};
	s->auth_step = SMTP_AUTH_VERIFYING;
	s->login = login_start(&rq, smtp_auth_done);
}

void smtp_auth_cleanup(struct smtp_session *s)
{
	login_cancel(&s->login);
	if (s->auth_login)
		OPENSSL_cleanse(s->auth_login, strlen(s->auth_login));
	free(s->auth_login);
	s->auth_login = NULL;
}

/* Decodes a base64 SASL response; "*" means the client cancelled.
 * Returns malloc'd bytes (NUL-terminated) and their length, or NULL after
 * replying. */
static unsigned char *smtp_auth_decode(struct smtp_session *s, struct str in, size_t *len_r)
{
	if (in.len == 1 && in.p[0] == '*') {
		smtp_reply(s, "501 5.7.0 Authentication cancelled");
		return NULL;
	}
	unsigned char *out = xmalloc(in.len / 4 * 3 + 1);
	long n = in.len == 1 && in.p[0] == '=' ? 0 : base64_decode(in.p, in.len, out);
	if (n < 0) {
		free(out);
		smtp_reply(s, "501 5.5.2 Cannot decode response");
		smtp_error(s);
		return NULL;
	}
	out[n] = '\0';
	*len_r = (size_t)n;
	return out;
}

/* RFC 4616: [authzid] NUL authcid NUL passwd. We act only as authcid. */
static void smtp_auth_plain(struct smtp_session *s, struct str resp)
{
	size_t len;
	unsigned char *m = smtp_auth_decode(s, resp, &len);
	s->auth_step = SMTP_AUTH_NONE;
	if (m == NULL)
		return;
	unsigned char *nul1 = memchr(m, '\0', len);
	unsigned char *nul2 = nul1 ? memchr(nul1 + 1, '\0', len - (size_t)(nul1 + 1 - m)) : NULL;
	char *authz = (char *)m, *authc = nul1 ? (char *)nul1 + 1 : NULL;
	if (nul2 == NULL || strlen(authc) == 0 || strlen(authc) > SMTP_AUTH_FIELD_MAX ||
	    (authz[0] != '\0' && strcmp(authz, authc) != 0)) {
		OPENSSL_cleanse(m, len);
		free(m);
		smtp_reply(s, "535 5.7.8 Authentication credentials invalid");
		smtp_error(s);
		return;
	}
	size_t pwlen = len - (size_t)(nul2 + 1 - m);
	char *pw = xmalloc(pwlen + 1);
	memcpy(pw, nul2 + 1, pwlen);
	char *login = xstrdup(authc);
	OPENSSL_cleanse(m, len);
	free(m);
	smtp_auth_start(s, login, pw, pwlen);
}

static void smtp_auth_login_user(struct smtp_session *s, struct str resp)
{
	size_t len;
	unsigned char *m = smtp_auth_decode(s, resp, &len);
	if (m == NULL || len == 0 || len > SMTP_AUTH_FIELD_MAX || memchr(m, '\0', len)) {
		if (m)
			smtp_reply(s, "535 5.7.8 Authentication credentials invalid");
		free(m);
		s->auth_step = SMTP_AUTH_NONE;
		return;
	}
	s->auth_login = (char *)m;
	s->auth_step = SMTP_AUTH_LOGIN_PASS;
	smtp_reply(s, "334 UGFzc3dvcmQ6");      /* "Password:" */
}

void smtp_auth_line(struct smtp_session *s, struct str line)
{
	size_t len;
	unsigned char *m;
	switch (s->auth_step) {
	case SMTP_AUTH_PLAIN:
		smtp_auth_plain(s, line);
		break;
	case SMTP_AUTH_LOGIN_USER:
		smtp_auth_login_user(s, line);
		break;
	case SMTP_AUTH_LOGIN_PASS:
		s->auth_step = SMTP_AUTH_NONE;
		m = smtp_auth_decode(s, line, &len);
		if (m != NULL) {
			char *login = s->auth_login;
			s->auth_login = NULL;
			smtp_auth_start(s, login, (char *)m, len);
		} else {
			smtp_auth_cleanup(s);
		}
		break;
	default:
		break;
	}
	if (s->auth_step == SMTP_AUTH_NONE)
		conn_set_line_max(s->conn, s->srv->limits.line_max);
}

void smtp_cmd_auth(struct smtp_session *s, struct str args)
{
	if (!s->srv->auth || s->srv->dir == NULL) {
		smtp_reply(s, "502 5.5.1 Error: authentication not enabled");
		smtp_error(s);
		return;
	}
	if (!smtp_auth_offered(s)) {
		smtp_reply(s, "538 5.7.11 Encryption required for requested authentication mechanism");
		smtp_error(s);
		return;
	}
	if (!s->esmtp) {
		smtp_reply(s, "503 5.5.1 Error: send EHLO first");
		smtp_error(s);
		return;
	}
	if (s->auth_user != NULL) {
		smtp_reply(s, "503 5.5.1 Error: already authenticated");
		smtp_error(s);
		return;
	}
	size_t sp = 0;
	while (sp < args.len && args.p[sp] != ' ')
		sp++;
	struct str mech = { args.p, sp };
	struct str initial = str_trim((struct str){ args.p + sp, args.len - sp });
	bool plain = str_case_eq(mech, "PLAIN"), login = str_case_eq(mech, "LOGIN");
	if (!plain && !login) {
		smtp_reply(s, "504 5.5.4 Unrecognized authentication type");
		smtp_error(s);
		return;
	}
	conn_set_line_max(s->conn, SMTP_AUTH_LINE_MAX);
	if (plain && initial.len > 0) {
		smtp_auth_plain(s, initial);
	} else if (plain) {
		s->auth_step = SMTP_AUTH_PLAIN;
		smtp_reply(s, "334 ");
	} else if (initial.len > 0) {
		s->auth_step = SMTP_AUTH_LOGIN_USER;
		smtp_auth_login_user(s, initial);
	} else {
		s->auth_step = SMTP_AUTH_LOGIN_USER;
		smtp_reply(s, "334 VXNlcm5hbWU6");  /* "Username:" */
	}
	if (s->auth_step == SMTP_AUTH_NONE)
		conn_set_line_max(s->conn, s->srv->limits.line_max);
}
