/* pop3_auth.c - the AUTHORIZATION state: USER/PASS (RFC 1939 7), APOP
 * (off by default), AUTH PLAIN (RFC 5034, RFC 4616), then opening and
 * locking the maildrop.
 *
 * The password check runs on the auth pool, the Maildir scan on the I/O
 * pool; the connection is paused meanwhile and completions find their
 * session by connection id. A client IP with recent failures waits first
 * (penalty.h, shared with SMTP AUTH); the Lua "auth" hook then sees the
 * result and may deny or delay it, as for SMTP AUTH. Response codes: [AUTH] for bad
 * credentials or plaintext refused, [SYS/TEMP] for a directory or disk
 * failure (RFC 3206), [IN-USE] for a mailbox already in a POP3 session
 * (RFC 2449 8.1.2). */
#include "pop3_int.h"
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
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct pop3_open_job {
	uint64_t conn_id;
	char *root;
	unsigned flags;
	struct mailbox *mb;
	int rc;
	char err[512];
};

/* APOP (RFC 1939 7): MD5(stamp + password) needs the password itself,
 * so only {PLAIN}/{CLEAR} directory entries can use it. A login_check_fn
 * (src/login): runs on the auth pool; secret is the hex digest, stamp the
 * greeting's timestamp. */
static enum dir_result pop3_apop_check(struct dir *dir, const char *login, const char *secret,
				       size_t secret_len, const char *stamp, struct arena *a,
				       struct dir_user *u)
{
	enum dir_result r = dir_user_lookup(dir, login, a, u);
	if (r != DIR_FOUND)
		return r;
	static const char *const schemes[] = { "{PLAIN}", "{CLEAR}", "{CLEARTEXT}" };
	const char *pw = NULL;
	for (size_t i = 0; i < ARRAY_SIZE(schemes); i++)
		if (strncmp(u->password, schemes[i], strlen(schemes[i])) == 0)
			pw = u->password + strlen(schemes[i]);
	if (pw == NULL)
		return DIR_NOTFOUND;
	unsigned char md[16];
	char hex[33];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_DigestInit_ex(ctx, EVP_md5(), NULL);
	EVP_DigestUpdate(ctx, stamp, strlen(stamp));
	EVP_DigestUpdate(ctx, pw, strlen(pw));
	EVP_DigestFinal_ex(ctx, md, NULL);
	EVP_MD_CTX_free(ctx);
	for (int i = 0; i < 16; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	bool ok = secret_len == 32 && CRYPTO_memcmp(hex, secret, 32) == 0;
	OPENSSL_cleanse(hex, sizeof(hex));
	return ok ? DIR_FOUND : DIR_NOTFOUND;
}

static void pop3_open_work(void *arg)
{
	struct pop3_open_job *j = arg;
	j->rc = mailbox_open(j->root, j->flags, &j->mb, j->err, sizeof(j->err));
}

static void pop3_open_free(struct pop3_open_job *j)
{
	mailbox_free(&j->mb);
	free(j->root);
	free(j);
}

static void pop3_logged_in(struct pop3_session *s, struct pop3_open_job *j)
{
	uint64_t octets = 0;
	s->mb = j->mb;
	j->mb = NULL;
	s->deleted = xcalloc(s->mb->count ? s->mb->count : 1, sizeof(*s->deleted));
	s->seen = xcalloc(s->mb->count ? s->mb->count : 1, sizeof(*s->seen));
	s->state = POP3_TRANSACTION;
	for (size_t i = 0; i < s->mb->count; i++)
		octets += s->mb->msgs[i].vsize;
	log_info(s->conn->sid, "event=login user=\"%s\" messages=%zu octets=%llu", s->auth_user,
		 s->mb->count, (unsigned long long)octets);
	pop3_reply(s, "+OK Logged in, %zu messages (%llu octets)", s->mb->count,
		   (unsigned long long)octets);
}

static void pop3_open_done(void *arg)
{
	struct pop3_open_job *j = arg;
	struct conn *c = conn_find(j->conn_id);
	if (c != NULL) {
		struct pop3_session *s = c->proto;
		if (j->rc == 0) {
			pop3_logged_in(s, j);
		} else if (j->rc == 1) {
			log_info(c->sid, "event=mailbox_in_use user=\"%s\"", s->auth_user);
			pop3_reply(s, "-ERR [IN-USE] Mailbox is locked by another POP3 session");
		} else {
			char q[600];
			log_error(c->sid, "event=mailbox_open_failed error=\"%s\"",
				  log_quote(q, sizeof(q), j->err, strlen(j->err)));
			pop3_reply(s, "-ERR [SYS/TEMP] Cannot open the mailbox, try again later");
		}
		if (j->rc != 0) {
			free(s->auth_user);
			s->auth_user = NULL;
		}
		conn_resume(c);
	}
	pop3_open_free(j);
}

static void pop3_open_start(struct pop3_session *s, const char *maildir)
{
	struct pop3_open_job *o = xcalloc(1, sizeof(*o));
	o->conn_id = s->conn->id;
	o->root = xstrdup(maildir);
	o->flags = MAILBOX_POP3_LOCK | MAILBOX_MOVE_NEW;
	pool_submit(s->srv->io_pool, pop3_open_work, pop3_open_done, o);
}

/* The login's outcome (src/login): the reply, or on to the maildrop. */
static void pop3_auth_done(struct conn *c, const struct login_outcome *o)
{
	struct pop3_session *s = c->proto;
	char q[256];
	s->login = NULL;
	log_quote(q, sizeof(q), o->login, strlen(o->login));
	if (o->deny) {
		log_info(c->sid, "event=auth result=denied user=\"%s\" client=%s by=policy", q, o->ip);
		pop3_fail(s, "-ERR [AUTH] %s", o->deny[0] ? login_deny_text(o->deny) : "Authentication refused");
	} else if (o->result == DIR_FOUND && o->maildir[0] != '\0') {
		penalty_success(o->ip);
		s->auth_user = xstrdup(o->user);
		if (s->ss)
			script_session_user(s->ss, s->auth_user);
		pop3_open_start(s, o->maildir);
		return;         /* still paused: the open job resumes */
	} else if (o->result == DIR_TEMPFAIL || o->result == DIR_FOUND) {
		log_warn(c->sid, "event=auth result=tempfail user=\"%s\"", q);
		pop3_reply(s, "-ERR [SYS/TEMP] Temporary authentication failure");
	} else {
		log_info(c->sid, "event=auth result=fail user=\"%s\" client=%s", q, o->ip);
		pop3_fail(s, "-ERR [AUTH] Authentication failed");
	}
	conn_resume(c);
}

/* Takes ownership of login and password (malloc'd); stamp: APOP. */
static void pop3_auth_start(struct pop3_session *s, char *login, char *password, size_t len,
			    const char *stamp, const char *mechanism)
{
	struct login_request rq = {
		.conn = s->conn, .dir = s->srv->dir, .pool = s->srv->pool, .ss = s->ss,
		.penalty_max = s->srv->penalty_max, .login = login, .secret = password,
		.secret_len = len, .mechanism = mechanism,
		.check = stamp ? pop3_apop_check : NULL, .check_arg = stamp,
	};
	s->login = login_start(&rq, pop3_auth_done);
}

void pop3_auth_cleanup(struct pop3_session *s)
{
	login_cancel(&s->login);
}

void pop3_make_apop_stamp(struct pop3_session *s)
{
	unsigned char r[8];
	uint64_t v = 0;
	if (getentropy(r, sizeof(r)) == 0)
		memcpy(&v, r, sizeof(v));
	snprintf(s->apop_stamp, sizeof(s->apop_stamp), "<%d.%llx.%ld@%s>", (int)getpid(),
		 (unsigned long long)v, (long)time(NULL), s->srv->hostname);
}

/* Plaintext logins before TLS: Dovecot's wording, with [AUTH] (RFC 3206 4). */
static bool pop3_refuse_plaintext(struct pop3_session *s)
{
	if (pop3_login_allowed(s))
		return false;
	pop3_fail(s, "-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections");
	return true;
}

void pop3_cmd_user(struct pop3_session *s, struct str args)
{
	if (pop3_refuse_plaintext(s))
		return;
	if (args.len == 0 || args.len > POP3_USER_MAX || memchr(args.p, ' ', args.len)) {
		pop3_fail(s, "-ERR Syntax: USER name");
		return;
	}
	free(s->user);
	s->user = xstrndup(args.p, args.len);
	pop3_reply(s, "+OK");
}

void pop3_cmd_pass(struct pop3_session *s, struct str args)
{
	if (pop3_refuse_plaintext(s))
		return;
	if (s->user == NULL) {
		pop3_fail(s, "-ERR No username given (USER first)");
		return;
	}
	char *login = s->user;
	s->user = NULL;
	pop3_auth_start(s, login, xstrndup(args.p, args.len), args.len, NULL, "USER");
}

void pop3_cmd_apop(struct pop3_session *s, struct str args)
{
	struct str w[2];
	if (!s->srv->apop) {
		pop3_fail(s, "-ERR APOP is not enabled");
		return;
	}
	/* The digest hides the password, but not the session: like every
	 * login, only after TLS unless the listener allows plaintext. */
	if (pop3_refuse_plaintext(s))
		return;
	if (pop3_args_split(args, w, 2) != 2 || w[0].len > POP3_USER_MAX || w[1].len != 32) {
		pop3_fail(s, "-ERR Syntax: APOP name digest");
		return;
	}
	pop3_auth_start(s, xstrndup(w[0].p, w[0].len), xstrndup(w[1].p, w[1].len), 32,
			s->apop_stamp, "APOP");
}

/* RFC 4616: [authzid] NUL authcid NUL passwd; we act only as authcid. */
static void pop3_auth_plain(struct pop3_session *s, struct str resp)
{
	if (resp.len == 1 && resp.p[0] == '*') {
		pop3_fail(s, "-ERR Authentication cancelled");     /* RFC 5034 4 */
		return;
	}
	unsigned char *m = xmalloc(resp.len / 4 * 3 + 1);
	long n = resp.len == 1 && resp.p[0] == '=' ? 0 : base64_decode(resp.p, resp.len, m);
	unsigned char *nul1 = n > 0 ? memchr(m, '\0', (size_t)n) : NULL;
	unsigned char *nul2 = nul1 ? memchr(nul1 + 1, '\0', (size_t)(m + n - nul1 - 1)) : NULL;
	if (n >= 0)
		m[n] = '\0';
	char *authz = (char *)m, *authc = nul1 ? (char *)nul1 + 1 : NULL;
	if (nul2 == NULL || authc[0] == '\0' || strlen(authc) > POP3_USER_MAX ||
	    (authz[0] != '\0' && strcmp(authz, authc) != 0)) {
		if (n > 0)
			OPENSSL_cleanse(m, (size_t)n);
		free(m);
		pop3_fail(s, n < 0 ? "-ERR Invalid base64 data" : "-ERR [AUTH] Authentication failed");
		return;
	}
	size_t pwlen = (size_t)(m + n - nul2 - 1);
	char *pw = xstrndup((char *)nul2 + 1, pwlen);
	char *login = xstrdup(authc);
	OPENSSL_cleanse(m, (size_t)n);
	free(m);
	pop3_auth_start(s, login, pw, pwlen, NULL, "PLAIN");
}

void pop3_auth_line(struct pop3_session *s, struct str line)
{
	s->sasl_plain = false;
	conn_set_line_max(s->conn, s->srv->limits.line_max);
	pop3_auth_plain(s, line);
}

void pop3_cmd_auth(struct pop3_session *s, struct str args)
{
	struct str w[2];
	int n = pop3_args_split(args, w, 2);
	if (n == 0) {
		/* Not in RFC 5034, but clients (and Dovecot) use it: the list. */
		pop3_reply(s, "+OK\r\nPLAIN\r\n.");
		return;
	}
	if (pop3_refuse_plaintext(s))
		return;
	if (n < 0 || !str_case_eq(w[0], "PLAIN")) {
		pop3_fail(s, "-ERR Unsupported authentication mechanism");
		return;
	}
	if (n == 2) {
		pop3_auth_plain(s, w[1]);
		return;
	}
	s->sasl_plain = true;
	conn_set_line_max(s->conn, POP3_AUTH_LINE_MAX);
	pop3_reply(s, "+ ");
}
