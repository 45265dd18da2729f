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
#include "lua/script.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct imap_auth_job {
	uint64_t conn_id;
	struct dir *dir;
	char *login;
	char *password;
	size_t password_len;
	char ip[64];
	enum dir_result result;
	char *user;             /* stored address on success */
	char *maildir;
	int64_t quota;
	const char *mechanism;
	bool verified;          /* the check ran; a delay now only holds the reply */
	char deny[SCRIPT_TEXT_MAX];
};

struct imap_prepare_job {
	uint64_t conn_id;
	char *root;
	int rc;
	char err[512];
};

static void imap_auth_job_free(struct imap_auth_job *j)
{
	if (j == NULL)
		return;
	if (j->password)
		OPENSSL_cleanse(j->password, j->password_len);
	free(j->password);
	free(j->login);
	free(j->user);
	free(j->maildir);
	free(j);
}

static void imap_auth_work(void *arg)
{
	struct imap_auth_job *j = arg;
	struct arena *a = arena_new();
	struct dir_user u;
	j->result = dir_authenticate(j->dir, j->login, j->password, j->password_len, a, &u);
	if (j->result == DIR_FOUND) {
		j->user = xstrdup(u.email);
		j->maildir = xstrdup(u.maildir ? u.maildir : "");
		j->quota = u.quota;
	}
	OPENSSL_cleanse(j->password, j->password_len);
	arena_destroy(&a);
}

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

/* A policy text may start with an SMTP enhanced code ("5.7.8 ..."). */
static const char *imap_policy_text(const char *t)
{
	if (t[0] >= '2' && t[0] <= '5' && t[1] == '.') {
		const char *sp = strchr(t, ' ');
		if (sp != NULL && (size_t)(sp - t) <= 9)
			return sp + 1;
	}
	return t;
}

static void imap_auth_finish(struct imap_session *s, struct imap_auth_job *j)
{
	char q[256];
	log_quote(q, sizeof(q), j->login, strlen(j->login));
	if (j->deny[0]) {
		if (j->result == DIR_NOTFOUND)
			penalty_fail(j->ip);
		log_info(s->conn->sid, "event=auth result=denied user=\"%s\" client=%s by=policy", q, j->ip);
		imap_tagged(s, "NO", "[AUTHENTICATIONFAILED] %s", j->deny);
	} else if (j->result == DIR_FOUND && j->maildir[0] != '\0') {
		penalty_success(j->ip);
		s->auth_user = xstrdup(j->user);
		s->quota = j->quota;
		if (s->ss)
			script_session_user(s->ss, s->auth_user);
		struct imap_prepare_job *p = xcalloc(1, sizeof(*p));
		p->conn_id = s->conn->id;
		p->root = xstrdup(j->maildir);
		pool_submit(s->srv->io_pool, imap_prepare_work, imap_prepare_done, p);
		return;         /* still paused: the prepare job resumes */
	} else if (j->result == DIR_TEMPFAIL || j->result == DIR_FOUND) {
		log_warn(s->conn->sid, "event=auth result=tempfail user=\"%s\"", q);
		imap_tagged(s, "NO", "[UNAVAILABLE] Temporary authentication failure.");
	} else {
		penalty_fail(j->ip);
		log_info(s->conn->sid, "event=auth result=fail user=\"%s\" client=%s", q, j->ip);
		imap_tagged(s, "NO", "[AUTHENTICATIONFAILED] Authentication failed.");
	}
	imap_resume(s);
}

static void imap_auth_hooked(uint64_t owner, const struct script_result *r)
{
	struct conn *c = conn_find(owner);
	if (c == NULL)
		return;         /* the session freed its auth_job */
	struct imap_session *s = c->proto;
	struct imap_auth_job *j = s->auth_job;
	s->auth_job = NULL;
	if (r->verdict == SCRIPT_DENY)
		snprintf(j->deny, sizeof(j->deny), "%s",
			 r->text[0] ? imap_policy_text(r->text) : "Authentication refused");
	if (r->verdict == SCRIPT_DELAY && r->delay > 0) {
		log_info(c->sid, "event=auth_policy_delay delay_ms=%.0f client=%s", r->delay * 1000, j->ip);
		j->verified = true;
		s->auth_job = j;
		ev_timer_set(&s->auth_delay, r->delay > 300 ? 300 : r->delay, 0.);
		ev_timer_start(c->loop, &s->auth_delay);
		return;
	}
	imap_auth_finish(s, j);
	imap_auth_job_free(j);
}

static bool imap_auth_policy(struct imap_session *s, struct imap_auth_job *j)
{
	if (s->ss == NULL || !script_set_has(script_session_set(s->ss), "auth"))
		return false;
	const char *res = j->result == DIR_FOUND ? "ok" : j->result == DIR_TEMPFAIL ? "tempfail" : "fail";
	struct script_auth_info ai = {
		.user = j->login, .mechanism = j->mechanism, .result = res,
		.failures_ip = penalty_failures(j->ip) + (j->result == DIR_NOTFOUND),
	};
	s->auth_job = j;
	script_call_hook(s->ss, "auth", &ai, imap_auth_hooked, s->conn->id);
	return true;
}

static void imap_auth_done(void *arg)
{
	struct imap_auth_job *j = arg;
	struct conn *c = conn_find(j->conn_id);
	if (c != NULL && imap_auth_policy(c->proto, j))
		return;
	if (c != NULL)
		imap_auth_finish(c->proto, j);
	imap_auth_job_free(j);
}

static void imap_auth_delay_cb(struct ev_loop *loop, ev_timer *w, int revents MP_UNUSED)
{
	struct imap_session *s = container_of(w, struct imap_session, auth_delay);
	struct imap_auth_job *j = s->auth_job;
	ev_timer_stop(loop, w);
	s->auth_job = NULL;
	if (j->verified) {
		imap_auth_finish(s, j);
		imap_auth_job_free(j);
		return;
	}
	pool_submit(s->srv->pool, imap_auth_work, imap_auth_done, j);
}

/* Takes ownership of login and password (malloc'd). */
static void imap_auth_start(struct imap_session *s, char *login, char *password, size_t len,
			    const char *mechanism)
{
	struct imap_auth_job *j = xcalloc(1, sizeof(*j));
	j->conn_id = s->conn->id;
	j->dir = s->srv->dir;
	j->login = login;
	j->password = password;
	j->password_len = len;
	j->mechanism = mechanism;
	snprintf(j->ip, sizeof(j->ip), "%s", s->conn->peer_ip);
	conn_pause(s->conn);
	if (j->dir == NULL) {
		j->result = DIR_TEMPFAIL;
		imap_auth_finish(s, j);
		imap_auth_job_free(j);
		return;
	}
	uint32_t delay = penalty_delay_ms(j->ip, s->srv->penalty_max);
	if (delay == 0) {
		pool_submit(s->srv->pool, imap_auth_work, imap_auth_done, j);
		return;
	}
	log_info(s->conn->sid, "event=auth_penalty delay_ms=%u client=%s", delay, j->ip);
	s->auth_job = j;
	ev_timer_set(&s->auth_delay, delay / 1000.0, 0.);
	ev_timer_start(s->conn->loop, &s->auth_delay);
}

void imap_auth_init(struct imap_session *s)
{
	ev_init(&s->auth_delay, imap_auth_delay_cb);
}

void imap_auth_cleanup(struct imap_session *s)
{
	ev_timer_stop(s->conn->loop, &s->auth_delay);
	imap_auth_job_free(s->auth_job);
	s->auth_job = NULL;
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
