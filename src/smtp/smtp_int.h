/* smtp_int.h - internal to src/smtp: the session, shared by the command
 * families (smtp_session.c: connection commands; smtp_auth.c: AUTH). */
#ifndef MP_SMTP_INT_H
#define MP_SMTP_INT_H

#include "smtp.h"

#include <ev.h>

#define SMTP_HELO_MAX 255

struct conn;
struct smtp_auth_job;

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
	int errors;
	/* AUTH (smtp_auth.c) */
	enum smtp_auth_step auth_step;
	char *auth_login;              /* LOGIN username between the steps */
	char *auth_user;               /* authenticated address, or NULL */
	struct smtp_auth_job *auth_job;   /* delayed by the penalty, not submitted */
	ev_timer auth_delay;
};

void smtp_reply(struct smtp_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Counts a client error; past the limit: 421 and close. */
void smtp_error(struct smtp_session *s);

bool smtp_auth_offered(const struct smtp_session *s);
void smtp_cmd_auth(struct smtp_session *s, struct str args);
/* A line while an AUTH exchange waits for a client response. */
void smtp_auth_line(struct smtp_session *s, struct str line);
void smtp_auth_init(struct smtp_session *s);
/* The connection is closing: drop a delayed job, stop the timer. */
void smtp_auth_cleanup(struct smtp_session *s);

#endif
