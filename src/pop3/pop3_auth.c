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
#include "lua/script.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct pop3_auth_job {
	uint64_t conn_id;
	struct dir *dir;
	char *login;
	char *password;         /* the password, or for APOP the hex digest */
	size_t password_len;
	char stamp[128];        /* APOP: the greeting timestamp; "" otherwise */
	char ip[64];
	enum dir_result result;
	char *user;             /* stored address on success */
	char *maildir;
	const char *mechanism;
	bool verified;          /* the check ran; a delay now only holds the reply */
	char deny[SCRIPT_TEXT_MAX];   /* the auth policy refused: this text */
};

struct pop3_open_job {
	uint64_t conn_id;
	char *root;
	unsigned flags;
	struct mailbox *mb;
	int rc;
	char err[512];
};

static void pop3_auth_job_free(struct pop3_auth_job *j)
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

/* APOP (RFC 1939 7): MD5(stamp + password) needs the password itself,
 * so only {PLAIN}/{CLEAR} directory entries can use it. */
static enum dir_result pop3_apop_check(struct pop3_auth_job *j, struct arena *a,
				       struct dir_user *u)
{
	enum dir_result r = dir_user_lookup(j->dir, j->login, a, u);
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
	EVP_DigestUpdate(ctx, j->stamp, strlen(j->stamp));
	EVP_DigestUpdate(ctx, pw, strlen(pw));
	EVP_DigestFinal_ex(ctx, md, NULL);
	EVP_MD_CTX_free(ctx);
	for (int i = 0; i < 16; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	bool ok = j->password_len == 32 && CRYPTO_memcmp(hex, j->password, 32) == 0;
	OPENSSL_cleanse(hex, sizeof(hex));
	return ok ? DIR_FOUND : DIR_NOTFOUND;
}

static void pop3_auth_work(void *arg)
{
	struct pop3_auth_job *j = arg;
	struct arena *a = arena_new();
	struct dir_user u;
	if (j->stamp[0])
		j->result = pop3_apop_check(j, a, &u);
	else
		j->result = dir_authenticate(j->dir, j->login, j->password, j->password_len, a, &u);
	if (j->result == DIR_FOUND) {
		j->user = xstrdup(u.email);
		j->maildir = xstrdup(u.maildir ? u.maildir : "");
	}
	OPENSSL_cleanse(j->password, j->password_len);
	arena_destroy(&a);
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

/* A policy text may start with an SMTP enhanced code ("5.7.8 ..."): POP3
 * has its own codes (RFC 3206), so that part is dropped. */
static const char *pop3_policy_text(const char *t)
{
	if (t[0] >= '2' && t[0] <= '5' && t[1] == '.') {
		const char *sp = strchr(t, ' ');
		if (sp != NULL && (size_t)(sp - t) <= 9)
			return sp + 1;
	}
	return t;
}

static void pop3_auth_finish(struct pop3_session *s, struct pop3_auth_job *j)
{
	char q[256];
	log_quote(q, sizeof(q), j->login, strlen(j->login));
	if (j->deny[0]) {
		/* A wrong password still counts for the penalty (smtp_auth.c). */
		if (j->result == DIR_NOTFOUND)
			penalty_fail(j->ip);
		log_info(s->conn->sid, "event=auth result=denied user=\"%s\" client=%s by=policy", q, j->ip);
		pop3_fail(s, "-ERR [AUTH] %s", j->deny);
	} else if (j->result == DIR_FOUND && j->maildir[0] != '\0') {
		penalty_success(j->ip);
		s->auth_user = xstrdup(j->user);
		if (s->ss)
			script_session_user(s->ss, s->auth_user);
		pop3_open_start(s, j->maildir);
		return;         /* still paused: the open job resumes */
	} else if (j->result == DIR_TEMPFAIL || j->result == DIR_FOUND) {
		log_warn(s->conn->sid, "event=auth result=tempfail user=\"%s\"", q);
		pop3_reply(s, "-ERR [SYS/TEMP] Temporary authentication failure");
	} else {
		penalty_fail(j->ip);
		log_info(s->conn->sid, "event=auth result=fail user=\"%s\" client=%s", q, j->ip);
		pop3_fail(s, "-ERR [AUTH] Authentication failed");
	}
	conn_resume(s->conn);
}

/* The auth policy's verdict (policies/, hook "auth"): deny turns even a
 * right password into -ERR [AUTH]; delay holds the answer. */
static void pop3_auth_hooked(uint64_t owner, const struct script_result *r)
{
	struct conn *c = conn_find(owner);
	if (c == NULL)
		return;         /* the session freed its auth_job */
	struct pop3_session *s = c->proto;
	struct pop3_auth_job *j = s->auth_job;
	s->auth_job = NULL;
	if (r->verdict == SCRIPT_DENY)
		snprintf(j->deny, sizeof(j->deny), "%s",
			 r->text[0] ? pop3_policy_text(r->text) : "Authentication refused");
	if (r->verdict == SCRIPT_DELAY && r->delay > 0) {
		log_info(c->sid, "event=auth_policy_delay delay_ms=%.0f client=%s", r->delay * 1000, j->ip);
		j->verified = true;
		s->auth_job = j;
		ev_timer_set(&s->auth_delay, r->delay > 300 ? 300 : r->delay, 0.);
		ev_timer_start(c->loop, &s->auth_delay);
		return;
	}
	pop3_auth_finish(s, j);
	pop3_auth_job_free(j);
}

static bool pop3_auth_policy(struct pop3_session *s, struct pop3_auth_job *j)
{
	if (s->ss == NULL || !script_set_has(script_session_set(s->ss), "auth"))
		return false;
	const char *res = j->result == DIR_FOUND ? "ok" : j->result == DIR_TEMPFAIL ? "tempfail" : "fail";
	struct script_auth_info ai = {
		.user = j->login, .mechanism = j->mechanism, .result = res,
		.failures_ip = penalty_failures(j->ip) + (j->result == DIR_NOTFOUND),
	};
	s->auth_job = j;
	script_call_hook(s->ss, "auth", &ai, pop3_auth_hooked, s->conn->id);
	return true;
}

static void pop3_auth_done(void *arg)
{
	struct pop3_auth_job *j = arg;
	struct conn *c = conn_find(j->conn_id);
	if (c != NULL && pop3_auth_policy(c->proto, j))
		return;
	if (c != NULL)
		pop3_auth_finish(c->proto, j);
	pop3_auth_job_free(j);
}

static void pop3_auth_delay_cb(struct ev_loop *loop, ev_timer *w, int revents MP_UNUSED)
{
	struct pop3_session *s = container_of(w, struct pop3_session, auth_delay);
	struct pop3_auth_job *j = s->auth_job;
	ev_timer_stop(loop, w);
	s->auth_job = NULL;
	if (j->verified) {
		pop3_auth_finish(s, j);
		pop3_auth_job_free(j);
		return;
	}
	pool_submit(s->srv->pool, pop3_auth_work, pop3_auth_done, j);
}

/* Takes ownership of login and password (malloc'd). */
static void pop3_auth_start(struct pop3_session *s, char *login, char *password, size_t len,
			    const char *stamp, const char *mechanism)
{
	struct pop3_auth_job *j = xcalloc(1, sizeof(*j));
	j->conn_id = s->conn->id;
	j->dir = s->srv->dir;
	j->login = login;
	j->password = password;
	j->password_len = len;
	snprintf(j->stamp, sizeof(j->stamp), "%s", stamp ? stamp : "");
	j->mechanism = mechanism;
	snprintf(j->ip, sizeof(j->ip), "%s", s->conn->peer_ip);
	conn_pause(s->conn);
	if (j->dir == NULL) {
		j->result = DIR_TEMPFAIL;
		pop3_auth_finish(s, j);
		pop3_auth_job_free(j);
		return;
	}
	uint32_t delay = penalty_delay_ms(j->ip, s->srv->penalty_max);
	if (delay == 0) {
		pool_submit(s->srv->pool, pop3_auth_work, pop3_auth_done, j);
		return;
	}
	log_info(s->conn->sid, "event=auth_penalty delay_ms=%u client=%s", delay, j->ip);
	s->auth_job = j;
	ev_timer_set(&s->auth_delay, delay / 1000.0, 0.);
	ev_timer_start(s->conn->loop, &s->auth_delay);
}

void pop3_auth_init(struct pop3_session *s)
{
	ev_init(&s->auth_delay, pop3_auth_delay_cb);
}

void pop3_auth_cleanup(struct pop3_session *s)
{
	ev_timer_stop(s->conn->loop, &s->auth_delay);
	pop3_auth_job_free(s->auth_job);
	s->auth_job = NULL;
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
