/* login.c - the login flow of login.h: penalty wait (ev_timer), check on
 * the auth pool, the Lua "auth" hook, failure booking, done. A login is in
 * one place at a time: waiting on its timer or its hook (then it is in the
 * table below, found by id), or on the pool (then the pool owns it and a
 * cancelled one is only marked). */
#include "login.h"
#include "core/arena.h"
#include "core/conn.h"
#include "core/log.h"
#include "core/pool.h"
#include "core/util.h"
#include "dir/penalty.h"
#include "lua/script.h"

#include <ev.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOGIN_POLICY_DELAY_MAX 300.0    /* seconds: a policy's delay is capped */

struct login {
	uint64_t id, conn_id;
	struct login *prev, *next;      /* in login_table while not on the pool */
	struct ev_loop *loop;
	ev_timer timer;                 /* the penalty, or the policy's delay */
	struct dir *dir;
	struct pool *pool;
	struct script_session *ss;
	login_check_fn *check;
	char *check_arg;
	char *login, *secret;
	size_t secret_len;
	const char *mechanism;
	char ip[64];
	bool on_pool, orphan;           /* orphan: cancelled while on the pool */
	bool verified;                  /* the check ran: the timer only holds the answer */
	enum dir_result result;
	char *user, *maildir;
	int64_t quota;
	bool denied;
	char deny[SCRIPT_TEXT_MAX];
	login_done_fn *done;
};

static struct login *login_table;
static uint64_t login_next_id = 1;

static void login_table_add(struct login *l)
{
	l->prev = NULL;
	l->next = login_table;
	if (login_table)
		login_table->prev = l;
	login_table = l;
}

static void login_table_del(struct login *l)
{
	if (l->prev)
		l->prev->next = l->next;
	else if (login_table == l)
		login_table = l->next;
	if (l->next)
		l->next->prev = l->prev;
	l->prev = l->next = NULL;
}

static struct login *login_table_find(uint64_t id)
{
	for (struct login *l = login_table; l; l = l->next)
		if (l->id == id)
			return l;
	return NULL;
}

static void login_free(struct login *l)
{
	if (l->secret)
		OPENSSL_cleanse(l->secret, l->secret_len);
	free(l->secret);
	free(l->login);
	free(l->check_arg);
	free(l->user);
	free(l->maildir);
	free(l);
}

/* Books the failure, calls done, frees: the end of every login. */
static void login_finish(struct login *l)
{
	login_table_del(l);
	struct conn *c = conn_find(l->conn_id);
	if (c != NULL) {
		if (l->result == DIR_NOTFOUND)
			penalty_fail(l->ip);
		struct login_outcome o = {
			.result = l->result, .login = l->login, .ip = l->ip,
			.deny = l->denied ? l->deny : NULL,
			.user = l->user, .maildir = l->maildir ? l->maildir : "", .quota = l->quota,
		};
		l->done(c, &o);
	}
	login_free(l);
}

static void login_work(void *arg)
{
	struct login *l = arg;
	struct arena *a = arena_new();
	struct dir_user u;
	l->result = l->check ? l->check(l->dir, l->login, l->secret, l->secret_len, l->check_arg, a, &u) :
		    dir_authenticate(l->dir, l->login, l->secret, l->secret_len, a, &u);
	if (l->result == DIR_FOUND) {
		l->user = xstrdup(u.email);
		l->maildir = xstrdup(u.maildir ? u.maildir : "");
		l->quota = u.quota;
	}
	OPENSSL_cleanse(l->secret, l->secret_len);
	arena_destroy(&a);
}

static void login_wait(struct login *l, double seconds)
{
	login_table_add(l);
	ev_timer_set(&l->timer, seconds, 0.);
	ev_timer_start(l->loop, &l->timer);
}

/* The policy's verdict: deny turns even a right password into a refusal
 * (RFC 4954 6), delay holds the answer (brute force gets slow answers). */
static void login_hooked(uint64_t id, const struct script_result *r)
{
	struct login *l = login_table_find(id);
	if (l == NULL)
		return;         /* cancelled */
	if (r->verdict == SCRIPT_DENY) {
		l->denied = true;
		snprintf(l->deny, sizeof(l->deny), "%s", r->text);
	}
	if (r->verdict == SCRIPT_DELAY && r->delay > 0) {
		struct conn *c = conn_find(l->conn_id);
		log_info(c ? c->sid : NULL, "event=auth_policy_delay delay_ms=%.0f client=%s", r->delay * 1000,
			 l->ip);
		l->verified = true;
		login_table_del(l);
		login_wait(l, r->delay > LOGIN_POLICY_DELAY_MAX ? LOGIN_POLICY_DELAY_MAX : r->delay);
		return;
	}
	login_finish(l);
}

/* True when the "auth" hook was called (it answers through login_hooked). */
static bool login_policy(struct login *l)
{
	if (l->ss == NULL || !script_set_has(script_session_set(l->ss), "auth"))
		return false;
	const char *res = l->result == DIR_FOUND ? "ok" : l->result == DIR_TEMPFAIL ? "tempfail" : "fail";
	struct script_auth_info ai = {
		.user = l->login, .mechanism = l->mechanism, .result = res,
		.failures_ip = penalty_failures(l->ip) + (l->result == DIR_NOTFOUND),
	};
	login_table_add(l);
	script_call_hook(l->ss, "auth", &ai, login_hooked, l->id);
	return true;
}

static void login_work_done(void *arg)
{
	struct login *l = arg;
	l->on_pool = false;
	if (l->orphan || conn_find(l->conn_id) == NULL) {
		login_free(l);
		return;
	}
	if (!login_policy(l))
		login_finish(l);
}

static void login_timer_cb(struct ev_loop *loop, ev_timer *w, int revents MP_UNUSED)
{
	struct login *l = container_of(w, struct login, timer);
	ev_timer_stop(loop, w);
	if (l->verified) {
		login_finish(l);
		return;
	}
	login_table_del(l);
	l->on_pool = true;
	pool_submit(l->pool, login_work, login_work_done, l);
}

struct login *login_start(const struct login_request *rq, login_done_fn *done)
{
	struct login *l = xcalloc(1, sizeof(*l));
	l->id = login_next_id++;
	l->conn_id = rq->conn->id;
	l->loop = rq->conn->loop;
	l->dir = rq->dir;
	l->pool = rq->pool;
	l->ss = rq->ss;
	l->check = rq->check;
	l->check_arg = xstrdup(rq->check_arg ? rq->check_arg : "");
	l->login = rq->login;
	l->secret = rq->secret;
	l->secret_len = rq->secret_len;
	l->mechanism = rq->mechanism;
	l->done = done;
	snprintf(l->ip, sizeof(l->ip), "%s", rq->conn->peer_ip);
	ev_init(&l->timer, login_timer_cb);
	conn_pause(rq->conn);
	if (l->dir == NULL) {
		/* No directory: a temporary failure, answered from the loop. */
		l->result = DIR_TEMPFAIL;
		l->verified = true;
		login_wait(l, 0.);
		return l;
	}
	uint32_t delay = penalty_delay_ms(l->ip, rq->penalty_max);
	if (delay > 0)
		log_info(rq->conn->sid, "event=auth_penalty delay_ms=%u client=%s", delay, l->ip);
	login_wait(l, delay / 1000.0);
	return l;
}

const char *login_deny_text(const char *t)
{
	if (t[0] >= '2' && t[0] <= '5' && t[1] == '.') {
		const char *sp = strchr(t, ' ');
		if (sp != NULL && (size_t)(sp - t) <= 9)
			return sp + 1;
	}
	return t;
}

void login_cancel(struct login **lp)
{
	struct login *l = *lp;
	*lp = NULL;
	if (l == NULL)
		return;
	if (l->on_pool) {
		l->orphan = true;   /* login_work_done frees it */
		return;
	}
	ev_timer_stop(l->loop, &l->timer);
	login_table_del(l);
	login_free(l);
}
