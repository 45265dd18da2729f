/* login.h - one password login, the same for every protocol (SMTP AUTH,
 * POP3, IMAP):
 *   1. the client IP's login penalty is waited out (penalty.h, shared by
 *      all workers);
 *   2. the password is checked on the auth pool (dir_authenticate, or the
 *      caller's check: bcrypt/argon2 never run on the event loop);
 *   3. the Lua "auth" hook sees the result and may deny (even a right
 *      password) or delay the answer;
 *   4. a wrong password is booked as a failure of the IP (also when the
 *      policy denied: otherwise a client past the policy's limit would stop
 *      counting and slip back under it), and the caller's done callback
 *      answers. Booking a success (penalty_success) is the caller's: it may
 *      still refuse a right password (no mailbox).
 * The connection stays paused from login_start to done. Every completion
 * finds its login by id and the connection by connection id, never by a
 * pointer held across the loop (style rule 14). done is never called
 * before login_start returns (style rule 15), and never after
 * login_cancel. Loop thread only. */
#ifndef MP_LOGIN_H
#define MP_LOGIN_H

#include <stddef.h>
#include <stdint.h>

#include "dir/dir.h"

struct arena;
struct conn;
struct pool;
struct script_session;

/* A check other than dir_authenticate (POP3 APOP). Runs on a pool thread:
 * arg is the request's check_arg (copied), u is filled on DIR_FOUND. */
typedef enum dir_result login_check_fn(struct dir *dir, const char *login, const char *secret,
				       size_t secret_len, const char *arg, struct arena *a,
				       struct dir_user *u);

struct login_request {
	struct conn *conn;
	struct dir *dir;                /* NULL: answered as TEMPFAIL */
	struct pool *pool;              /* the auth pool */
	struct script_session *ss;      /* NULL, or without an "auth" hook: no policy */
	int64_t penalty_max;            /* seconds, cap of the penalty delay */
	char *login, *secret;           /* malloc'd, taken over; secret is cleansed */
	size_t secret_len;
	const char *mechanism;          /* static string: "PLAIN", "LOGIN", ... */
	login_check_fn *check;          /* NULL: dir_authenticate */
	const char *check_arg;          /* copied */
};

struct login_outcome {
	enum dir_result result;         /* FOUND: the password was right */
	const char *login, *ip;
	const char *deny;               /* the policy denied: its text ("" = none given); else NULL */
	const char *user, *maildir;     /* FOUND: the stored address and Maildir ("" = none) */
	int64_t quota;                  /* FOUND: bytes, 0 = unlimited */
};

/* c is the paused connection (alive); o lives until the callback returns. */
typedef void login_done_fn(struct conn *c, const struct login_outcome *o);

struct login;

/* A policy's deny text without its leading SMTP enhanced status code
 * ("5.7.8 Not today" -> "Not today"), for protocols with codes of their
 * own (POP3 RFC 3206, IMAP RFC 5530). Points into t. */
const char *login_deny_text(const char *t);

/* Pauses rq->conn and starts. The session keeps the handle only to cancel. */
struct login *login_start(const struct login_request *rq, login_done_fn *done);
/* The connection is closing: done will not be called. Accepts NULL. */
void login_cancel(struct login **lp);

#endif
