/* imap_auth.c - the not-authenticated state's logins: LOGIN (RFC 3501
 * 6.2.3) and AUTHENTICATE PLAIN (6.2.2, RFC 4616) with an initial
 * response (SASL-IR, RFC 4959).
 *
 * As in pop3_auth.c: the password check runs on the auth pool, after the
 * login penalty of the client IP (penalty.h, shared with SMTP and POP3);
 * the Lua "auth" hook sees the result and may deny or delay it. Then the
 * Maildir is prepared on the I/O pool (created with the SPECIAL-USE
 * folders for a new user). The connection is paused meanwhile and the
 * completions find their session by connection id. Response codes are
 * RFC 5530's: AUTHENTICATIONFAILED, UNAVAILABLE, PRIVACYREQUIRED. */
#include "imap_int.h"
#include "imap_folder.h"
#include "core/base64.h"
#include "core/conn.h"
#include "core/log.h"
#include "core/pool.h"
#include "core/util.h"
#include "core/arena.h"
#include "dir/dir.h"
#include "dir/penalty.h"
#include "login/login.h"
#include "lua/script.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct imap_prepare_job {
	uint64_t conn_id;
	char *root;
	int rc;
	char err[512];
};

static void imap_prepare_work(void *arg)
{
	struct imap_prepare_job *j = arg;
	j->rc = imap_folder_prepare(j->root, j->err, sizeof(j->err));
}

static void imap_prepare_done(void *arg)
{
	struct imap_prepare_job *j = arg;
	struct conn *c = conn_find(j->conn_id);
	if (c != NULL) {
		struct imap_session *s = c->proto;
		if (j->rc == 0) {
			struct buf b = { 0 };
			s->state = IMAP_AUTH;
			s->maildir = j->root;
			j->root = NULL;
			log_info(c->sid, "event=login user=\"%s\"", s->auth_user);
			imap_capabilities(s, &b);
			imap_tagged(s, "OK", "[CAPABILITY %s] Logged in", buf_ptr(&b));
			buf_free(&b);
		} else {
			char q[600];
			log_error(c->sid, "event=maildir_prepare_failed error=\"%s\"",
				  log_quote(q, sizeof(q), j->err, strlen(j->err)));
			imap_tagged(s, "NO", "[UNAVAILABLE] Cannot open the mailbox, try again later.");
			free(s->auth_user);
			s->auth_user = NULL;
		}
		imap_resume(s);
	}
	free(j->root);
	free(j);
}

/* The login's outcome (src/login): the tagged answer, or on to the
 * Maildir. */
static void imap_auth_done(struct conn *c, const struct login_outcome *o)
{
	struct imap_session *s = c->proto;
	char q[256];
	s->login = NULL;
	log_quote(q, sizeof(q), o->login, strlen(o->login));
	if (o->deny) {
		log_info(c->sid, "event=auth result=denied user=\"%s\" client=%s by=policy", q, o->ip);
		imap_tagged(s, "NO", "[AUTHENTICATIONFAILED] %s",
			    o->deny[0] ? login_deny_text(o->deny) : "Authentication refused");
	} else if (o->result == DIR_FOUND && o->maildir[0] != '\0') {
		penalty_success(o->ip);
		s->auth_user = xstrdup(o->user);
		s->quota = o->quota;
		if (s->ss)
			script_session_user(s->ss, s->auth_user);
		struct imap_prepare_job *p = xcalloc(1, sizeof(*p));
		p->conn_id = c->id;
		p->root = xstrdup(o->maildir);
		pool_submit(s->srv->io_pool, imap_prepare_work, imap_prepare_done, p);
		return;         /* still paused: the prepare job resumes */
	} else if (o->result == DIR_TEMPFAIL || o->result == DIR_FOUND) {
		log_warn(c->sid, "event=auth result=tempfail user=\"%s\"", q);
		imap_tagged(s, "NO", "[UNAVAILABLE] Temporary authentication failure.");
	} else {
		log_info(c->sid, "event=auth result=fail user=\"%s\" client=%s", q, o->ip);
		imap_tagged(s, "NO", "[AUTHENTICATIONFAILED] Authentication failed.");
	}
	imap_resume(s);
}

/* Takes ownership of login and password (malloc'd). */
static void imap_auth_start(struct imap_session *s, char *login, char *password, size_t len,
			    const char *mechanism)
{
	struct login_request rq = {
		.conn = s->conn, .dir = s->srv->dir, .pool = s->srv->pool, .ss = s->ss,
		.penalty_max = s->srv->penalty_max, .login = login, .secret = password,
		.secret_len = len, .mechanism = mechanism,
	};
	s->login = login_start(&rq, imap_auth_done);
}

void imap_auth_cleanup(struct imap_session *s)
{
	login_cancel(&s->login);
}

/* RFC 3501 6.2.3: LOGIN before TLS is refused where LOGINDISABLED is
 * advertised; RFC 5530 3 PRIVACYREQUIRED. */
static bool imap_refuse_plaintext(struct imap_session *s)
{
	if (imap_login_allowed(s))
		return false;
	imap_tagged(s, "NO", "[PRIVACYREQUIRED] Plaintext authentication disallowed on "
		    "non-secure (SSL/TLS) connections.");
	return true;
}

static bool imap_login_name_ok(struct str s)
{
	return s.len > 0 && s.len <= IMAP_USER_MAX && memchr(s.p, '\0', s.len) == NULL;
}

void imap_cmd_login(struct imap_session *s, const struct imap_arg *args, size_t nargs)
{
	const struct imap_arg *a[3];
	struct str user, pw;
	if (imap_args_top(args, nargs, a, 3) != 2 || !imap_arg_astring(a[0], &user) ||
	    !imap_arg_astring(a[1], &pw) || !imap_login_name_ok(user) || memchr(pw.p, '\0', pw.len)) {
		imap_bad(s, "Syntax: LOGIN user password");
		return;
	}
	if (imap_refuse_plaintext(s))
		return;
	imap_auth_start(s, xstrndup(user.p, user.len), xstrndup(pw.p, pw.len), pw.len, "LOGIN");
}

/* RFC 4616: [authzid] NUL authcid NUL passwd; we act only as authcid. */
static void imap_auth_plain(struct imap_session *s, struct str resp)
{
	if (resp.len == 1 && resp.p[0] == '*') {
		imap_bad(s, "Authentication cancelled.");       /* RFC 3501 6.2.2 */
		return;
	}
	unsigned char *m = xmalloc(resp.len / 4 * 3 + 1);
	long n = resp.len == 1 && resp.p[0] == '=' ? 0 : base64_decode(resp.p, resp.len, m);
	unsigned char *nul1 = n > 0 ? memchr(m, '\0', (size_t)n) : NULL;
	unsigned char *nul2 = nul1 ? memchr(nul1 + 1, '\0', (size_t)(m + n - nul1 - 1)) : NULL;
	if (n >= 0)
		m[n] = '\0';
	char *authz = (char *)m, *authc = nul1 ? (char *)nul1 + 1 : NULL;
	if (nul2 == NULL || authc[0] == '\0' || strlen(authc) > IMAP_USER_MAX ||
	    (authz[0] != '\0' && strcmp(authz, authc) != 0)) {
		if (n > 0)
			OPENSSL_cleanse(m, (size_t)n);
		free(m);
		if (n < 0)
			imap_bad(s, "Invalid base64 data.");
		else
			imap_tagged(s, "NO", "[AUTHENTICATIONFAILED] Authentication failed.");
		return;
	}
	size_t pwlen = (size_t)(m + n - nul2 - 1);
	char *pw = xstrndup((char *)nul2 + 1, pwlen);
	char *login = xstrdup(authc);
	OPENSSL_cleanse(m, (size_t)n);
	free(m);
	imap_auth_start(s, login, pw, pwlen, "PLAIN");
}

void imap_auth_line(struct imap_session *s, struct str line)
{
	s->sasl_wait = false;
	imap_auth_plain(s, line);
}

void imap_cmd_authenticate(struct imap_session *s, const struct imap_arg *args, size_t nargs)
{
	const struct imap_arg *a[3];
	size_t n = imap_args_top(args, nargs, a, 3);
	if (n < 1 || n > 2 || a[0]->type != IMAP_ARG_ATOM ||
	    (n == 2 && a[1]->type != IMAP_ARG_ATOM)) {
		imap_bad(s, "Syntax: AUTHENTICATE mechanism [initial-response]");
		return;
	}
	if (!str_case_eq(a[0]->s, "PLAIN")) {
		imap_tagged(s, "NO", "Unsupported authentication mechanism.");
		return;
	}
	if (imap_refuse_plaintext(s))
		return;
	if (n == 2) {           /* RFC 4959 3: the initial response */
		imap_auth_plain(s, a[1]->s);
		return;
	}
	s->sasl_wait = true;
	imap_parser_want_line(&s->parser);
	imap_reply(s, "+ ");
}
