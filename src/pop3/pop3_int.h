/* pop3_int.h - internal to src/pop3: the session, shared by the command
 * families (pop3_session.c: table, replies, CAPA/STLS/NOOP/QUIT;
 * pop3_auth.c: USER/PASS/APOP/AUTH and opening the maildrop;
 * pop3_cmd.c: STAT/LIST/UIDL/DELE/RSET and the UPDATE state;
 * pop3_retr.c: RETR/TOP streamed from disk). */
#ifndef MP_POP3_INT_H
#define MP_POP3_INT_H

#include "pop3.h"
#include "store/mailbox.h"

#include <ev.h>

/* RFC 5034 4: an AUTH response line may be longer than a command. */
#define POP3_AUTH_LINE_MAX 8192
#define POP3_USER_MAX 255
#define POP3_RETR_CHUNK (32 * 1024)
/* Read-ahead: up to this many next messages per pool job, their first
 * chunks together at most POP3_AHEAD_BYTES. */
#define POP3_AHEAD_MAX 8
#define POP3_AHEAD_BYTES (128 * 1024)

/* RFC 1939 3: the session states (UPDATE lasts only for QUIT's job). */
enum pop3_state {
	POP3_AUTHORIZATION = 1 << 0,
	POP3_TRANSACTION = 1 << 1,
};

struct pop3_retr;
struct login;
struct script_session;

struct pop3_session {
	struct conn *conn;
	const struct pop3_server *srv;
	enum pop3_state state;
	int errors;
	bool greeted;
	bool sasl_plain;                /* waiting for the AUTH PLAIN response */
	char *user;                     /* USER name (malloc'd) */
	char *auth_user;                /* the authenticated address */
	char apop_stamp[128];           /* greeting timestamp when APOP is on */
	struct login *login;            /* a password check in progress (src/login) */
	struct script_session *ss;      /* Lua policies, NULL if none */
	/* TRANSACTION: the maildrop, owned here unless a job holds it. */
	struct mailbox *mb;
	bool *deleted;                  /* per message, until QUIT */
	bool *seen;                     /* RETR'd: \Seen when the session ends */
	uint32_t n_deleted;
	uint64_t retr_count, retr_bytes;
	/* RETR/TOP in progress, waiting for the client to read (not in flight). */
	struct pop3_retr *retr;
	struct pop3_retr *ahead[POP3_AHEAD_MAX];   /* read-ahead, next message first */
	size_t n_ahead;
	ev_prepare retr_wait;
	ev_timer retr_stall;            /* the client stopped reading */
};

void pop3_reply(struct pop3_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* A client error: replies (printf-like), or past errors_max replies
 * "-ERR Too many bad commands" instead and closes. */
void pop3_fail(struct pop3_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* USER/PASS/AUTH allowed now (TLS, or the listener allows plaintext). */
bool pop3_login_allowed(const struct pop3_session *s);

void pop3_auth_cleanup(struct pop3_session *s);
void pop3_auth_line(struct pop3_session *s, struct str line);
void pop3_make_apop_stamp(struct pop3_session *s);
void pop3_cmd_user(struct pop3_session *s, struct str args);
void pop3_cmd_pass(struct pop3_session *s, struct str args);
void pop3_cmd_apop(struct pop3_session *s, struct str args);
void pop3_cmd_auth(struct pop3_session *s, struct str args);

void pop3_cmd_stat(struct pop3_session *s, struct str args);
void pop3_cmd_list(struct pop3_session *s, struct str args);
void pop3_cmd_uidl(struct pop3_session *s, struct str args);
void pop3_cmd_dele(struct pop3_session *s, struct str args);
void pop3_cmd_rset(struct pop3_session *s, struct str args);
/* QUIT in TRANSACTION: the UPDATE state (RFC 1939 6). */
void pop3_update(struct pop3_session *s);
/* The session ends without QUIT: only the \Seen marks are written. */
void pop3_update_dropped(struct pop3_session *s);
/* A message number argument of a TRANSACTION command, or 0 after replying. */
uint32_t pop3_msg_arg(struct pop3_session *s, struct str arg);

void pop3_retr_init(struct pop3_session *s);
void pop3_retr_cleanup(struct pop3_session *s);
void pop3_cmd_retr(struct pop3_session *s, struct str args);
void pop3_cmd_top(struct pop3_session *s, struct str args);

#endif
