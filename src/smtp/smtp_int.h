/* smtp_int.h - internal to src/smtp: the session, shared by the command
 * families (smtp_session.c: connection commands; smtp_auth.c: AUTH). */
#ifndef MP_SMTP_INT_H
#define MP_SMTP_INT_H

#include "smtp.h"

#include <ev.h>

#define SMTP_HELO_MAX 255

#include "smtp_data.h"
#include "dir/dir.h"
#include "store/store.h"

struct conn;
struct login;
struct smtp_rcpt_job;
struct smtp_dlv_job;
struct script_result;
struct script_session;

/* One accepted (or pending) RCPT. */
struct smtp_rcpt {
	const char *addr;               /* as given, domain lower-cased */
	const char *notify, *orcpt;     /* DSN (RFC 3461), kept with the message */
	struct arena *arena;            /* owns res */
	struct dir_resolution res;
	int status;                     /* LMTP: per-recipient delivery result */
};

/* The mail transaction (RFC 5321 3.3): from MAIL to the end of data. */
struct smtp_txn {
	struct arena *arena;            /* freed by smtp_txn_reset */
	bool active;                    /* MAIL accepted */
	const char *from;               /* "" for the null reverse-path */
	uint64_t size_decl;             /* SIZE= (RFC 1870), 0 if none */
	const char *body;               /* BODY= (RFC 6152) as given, or NULL */
	const char *ret, *envid;        /* DSN */
	bool smtputf8;
	struct smtp_rcpt *rcpts;
	size_t n_rcpts, cap_rcpts;
	/* content */
	bool receiving;                 /* DATA body or BDAT chunks under way */
	bool bdat;                      /* this message uses BDAT */
	bool bdat_discard;              /* chunk read only to stay in sync */
	bool bdat_last;
	uint64_t bdat_left;             /* bytes of the current chunk */
	struct smtp_data reader;
	struct spool spool;
	char qid[24];
	uint64_t started_ms;
};

enum smtp_auth_step {
	SMTP_AUTH_NONE,         /* not in an AUTH exchange */
	SMTP_AUTH_PLAIN,        /* waiting for the PLAIN response line */
	SMTP_AUTH_LOGIN_USER,   /* waiting for the LOGIN username line */
	SMTP_AUTH_LOGIN_PASS,   /* waiting for the LOGIN password line */
	SMTP_AUTH_VERIFYING,    /* job submitted or delayed; input paused */
};

struct smtp_session {
	struct conn *conn;
	const struct smtp_server *srv;
	char helo[SMTP_HELO_MAX + 1];
	bool esmtp;
	bool greeted;
	bool counted;                   /* holds a climit slot */
	int errors;
	unsigned messages;              /* for queue ids */
	struct smtp_txn txn;
	/* AUTH (smtp_auth.c) */
	enum smtp_auth_step auth_step;
	char *auth_login;              /* LOGIN username between the steps */
	char *auth_user;               /* authenticated address, or NULL */
	struct login *login;            /* a password check in progress (src/login) */
	/* Lua (smtp_session.c connect/helo, smtp_txn.c mail/route/rcpt_to,
	 * smtp_deliver.c message, smtp_auth.c auth); NULL without scripts. */
	struct script_session *ss;
	struct smtp_rcpt_job *rcpt_pending;   /* waiting for route/rcpt_to */
	struct smtp_dlv_job *dlv_pending;     /* waiting for rules/data/deliver */
};

/* Replies for a reject / tempfail verdict of a hook; true when it did. */
bool smtp_policy_refused(struct smtp_session *s, const struct script_result *r);
/* True when the session's script set has this hook. */
bool smtp_policy_has(const struct smtp_session *s, const char *hook);

void smtp_reply(struct smtp_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Counts a client error; past the limit: 421 and close. */
void smtp_error(struct smtp_session *s);

bool smtp_auth_offered(const struct smtp_session *s);
void smtp_cmd_auth(struct smtp_session *s, struct str args);
/* A line while an AUTH exchange waits for a client response. */
void smtp_auth_line(struct smtp_session *s, struct str line);

/* Transaction (smtp_txn.c). */
void smtp_cmd_mail(struct smtp_session *s, struct str args);
void smtp_cmd_rcpt(struct smtp_session *s, struct str args);
void smtp_cmd_data(struct smtp_session *s, struct str args);
void smtp_cmd_bdat(struct smtp_session *s, struct str args);
/* Raw bytes of a DATA body / BDAT chunk (conn raw mode). */
size_t smtp_txn_data(struct smtp_session *s, const char *p, size_t len);
void smtp_txn_reset(struct smtp_session *s);
/* The connection is gone: a recipient waiting for a hook is dropped too. */
void smtp_txn_close(struct smtp_session *s);
/* End of message content: checks, then delivery (smtp_deliver.c). */
void smtp_deliver(struct smtp_session *s);
/* The connection is gone: a message waiting for its scripts is dropped
 * (nothing was acknowledged). */
void smtp_deliver_close(struct smtp_session *s);
/* The connection is closing: drop a delayed job, stop the timer. */
void smtp_auth_cleanup(struct smtp_session *s);

#endif
