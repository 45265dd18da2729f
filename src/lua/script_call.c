/* script_call.c - sessions (the ctx table of a connection) and calls (a
 * hook run in a coroutine). Every C->Lua entry goes through
 * script_call_resume(): the set's deadline and running call are set around
 * lua_resume, the stack is checked, errors are logged with the session id
 * (style rule 18); the library (boot.lua) wraps each hook in xpcall, so an
 * error in one script is logged with its traceback and the call still
 * completes. */
#include "script_int.h"
#include "core/log.h"
#include "core/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SCRIPT_KIND_HOOK, SCRIPT_KIND_RCPT, SCRIPT_KIND_MESSAGE };

struct script_session {
	struct script_set *set;
	int ctx_ref;
	int msg_ref;
	char sid[32];
};

/* ---- sessions --------------------------------------------------------- */

static void script_setfield_str(lua_State *L, const char *k, const char *v)
{
	if (v)
		lua_pushstring(L, v);
	else
		lua_pushnil(L);
	lua_setfield(L, -2, k);
}

static void script_ctx_push(struct script_session *ss)
{
	lua_rawgeti(ss->set->L, LUA_REGISTRYINDEX, ss->ctx_ref);
}

struct script_session *script_session_new(struct script_set *set, const struct script_conn_info *ci)
{
	struct script_session *ss = xcalloc(1, sizeof(*ss));
	lua_State *L = set->L;
	ss->set = set;
	script_set_ref(set);
	snprintf(ss->sid, sizeof(ss->sid), "%s", ci->sid ? ci->sid : "");
	lua_createtable(L, 0, 6);
	lua_createtable(L, 0, 8);
	script_setfield_str(L, "ip", ci->ip);
	lua_pushinteger(L, ci->port);
	lua_setfield(L, -2, "port");
	script_setfield_str(L, "protocol", ci->protocol);
	script_setfield_str(L, "sid", ss->sid);
	lua_pushboolean(L, ci->tls);
	lua_setfield(L, -2, "tls");
	lua_setfield(L, -2, "conn");
	lua_newtable(L);
	lua_setfield(L, -2, "notes");
	ss->ctx_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	ss->msg_ref = LUA_NOREF;
	return ss;
}

struct script_set *script_session_set(const struct script_session *ss)
{
	return ss->set;
}

static void script_conn_set(struct script_session *ss, const char *k, const char *v, int b)
{
	lua_State *L = ss->set->L;
	script_ctx_push(ss);
	lua_getfield(L, -1, "conn");
	if (k)
		script_setfield_str(L, k, v);
	if (b >= 0) {
		lua_pushboolean(L, b);
		lua_setfield(L, -2, "tls");
	}
	lua_pop(L, 2);
}

void script_session_helo(struct script_session *ss, const char *helo, bool tls)
{
	script_conn_set(ss, "helo", helo, tls);
}

void script_session_user(struct script_session *ss, const char *user)
{
	script_conn_set(ss, "user", user, -1);
}

void script_session_mail(struct script_session *ss, const char *from, const char *qid,
			 const char *const *params, size_t nparams)
{
	lua_State *L = ss->set->L;
	script_ctx_push(ss);
	lua_createtable(L, 0, 4);
	script_setfield_str(L, "from", from);
	script_setfield_str(L, "qid", qid);
	lua_newtable(L);
	lua_setfield(L, -2, "rcpts");
	lua_newtable(L);
	for (size_t i = 0; i < nparams; i++) {
		if (params[2 * i + 1])
			lua_pushstring(L, params[2 * i + 1]);
		else
			lua_pushboolean(L, 1);
		lua_setfield(L, -2, params[2 * i]);
	}
	lua_setfield(L, -2, "params");
	lua_setfield(L, -2, "env");
	lua_newtable(L);
	lua_setfield(L, -2, "notes");
	lua_pop(L, 1);
}

void script_session_rcpt(struct script_session *ss, const char *addr)
{
	lua_State *L = ss->set->L;
	script_ctx_push(ss);
	lua_getfield(L, -1, "env");
	if (lua_istable(L, -1)) {
		lua_getfield(L, -1, "rcpts");
		lua_pushstring(L, addr);
		lua_rawseti(L, -2, (int)lua_objlen(L, -2) + 1);
		lua_pop(L, 1);
	}
	lua_pop(L, 2);
}

static void script_session_unbind(struct script_session *ss)
{
	lua_State *L = ss->set->L;
	if (ss->msg_ref == LUA_NOREF)
		return;
	lua_rawgeti(L, LUA_REGISTRYINDEX, ss->msg_ref);
	script_msg_invalidate(L, -1);
	lua_pop(L, 1);
	luaL_unref(L, LUA_REGISTRYINDEX, ss->msg_ref);
	ss->msg_ref = LUA_NOREF;
}

void script_session_message(struct script_session *ss, const char *data, size_t len)
{
	lua_State *L = ss->set->L;
	script_session_unbind(ss);
	script_ctx_push(ss);
	script_msg_push(L, data, len, true);
	lua_pushvalue(L, -1);
	ss->msg_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_setfield(L, -2, "msg");
	lua_pop(L, 1);
}

void script_session_txn_end(struct script_session *ss)
{
	lua_State *L = ss->set->L;
	script_session_unbind(ss);
	script_ctx_push(ss);
	lua_pushnil(L);
	lua_setfield(L, -2, "env");
	lua_pushnil(L);
	lua_setfield(L, -2, "msg");
	lua_pushnil(L);
	lua_setfield(L, -2, "scan");
	lua_newtable(L);
	lua_setfield(L, -2, "notes");
	lua_pop(L, 1);
}

void script_session_free(struct script_session **sp)
{
	struct script_session *ss = *sp;
	*sp = NULL;
	if (ss == NULL)
		return;
	script_session_unbind(ss);
	luaL_unref(ss->set->L, LUA_REGISTRYINDEX, ss->ctx_ref);
	script_set_unref(&ss->set);
	free(ss);
}

/* ---- calls ------------------------------------------------------------ */

static void script_budget_cb(struct ev_loop *loop, ev_timer *w, int revents);

static struct script_call *script_call_new(struct script_session *ss, int kind, const char *fn,
					   script_done_fn *done, uint64_t owner)
{
	struct script_set *set = ss->set;
	struct script_call *c = xcalloc(1, sizeof(*c));
	c->set = set;
	script_set_ref(set);
	c->kind = kind;
	c->done = done;
	c->owner = owner;
	memcpy(c->sid, ss->sid, sizeof(c->sid));
	c->co = lua_newthread(set->L);
	c->co_ref = luaL_ref(set->L, LUA_REGISTRYINDEX);
	lua_rawgeti(c->co, LUA_REGISTRYINDEX, set->api_ref);
	lua_getfield(c->co, -1, fn);
	lua_remove(c->co, -2);
	return c;
}

void script_call_release(struct script_call *c)
{
	if (!c->finished || c->jobs > 0)
		return;
	if (c->set->loop) {
		ev_timer_stop(c->set->loop, &c->budget);
		ev_timer_stop(c->set->loop, &c->wait);
	}
	luaL_unref(c->set->L, LUA_REGISTRYINDEX, c->co_ref);
	script_set_unref(&c->set);
	free(c);
}

static const char *script_tstr(lua_State *L, int t, const char *k, char *dst, size_t size)
{
	lua_getfield(L, t, k);
	const char *v = lua_isstring(L, -1) ? lua_tostring(L, -1) : NULL;
	if (dst) {
		snprintf(dst, size, "%s", v ? v : "");
		lua_pop(L, 1);
		return dst;
	}
	lua_pop(L, 1);   /* the string stays referenced by the table */
	return v;
}

static double script_tnum(lua_State *L, int t, const char *k)
{
	lua_getfield(L, t, k);
	double v = lua_tonumber(L, -1);
	lua_pop(L, 1);
	return v;
}

static enum script_verdict script_verdict_parse(const char *v)
{
	static const char *const names[] = {
		"", "accept", "reject", "tempfail", "discard", "quarantine",
		"mailbox", "relay", "allow", "deny", "delay",
	};
	for (size_t i = 1; v && i < sizeof(names) / sizeof(*names); i++)
		if (strcmp(v, names[i]) == 0)
			return (enum script_verdict)i;
	return SCRIPT_NONE;
}

static void script_read_scan(lua_State *L, int t, struct script_result *r)
{
	lua_getfield(L, t, "scan");
	if (lua_istable(L, -1)) {
		int s = lua_gettop(L);
		r->scanned = true;
		r->score = script_tnum(L, s, "score");
		r->required = script_tnum(L, s, "required");
		r->action = script_tstr(L, s, "action", NULL, 0);
		r->headers = script_tstr(L, s, "headers", NULL, 0);
		r->symbols = script_tstr(L, s, "summary", NULL, 0);
		r->scan_us = script_tnum(L, s, "time_us");
	}
	lua_pop(L, 1);
}

static void script_read_dlv(lua_State *L, int t, struct script_delivery *d)
{
	lua_getfield(L, t, "folders");
	if (lua_istable(L, -1))
		for (int i = 1; i <= (int)lua_objlen(L, -1) && d->n_folders < SCRIPT_FOLDERS_MAX; i++) {
			lua_rawgeti(L, -1, i);
			if (lua_isstring(L, -1))
				d->folders[d->n_folders++] = lua_tostring(L, -1);
			lua_pop(L, 1);
		}
	lua_pop(L, 1);
	script_tstr(L, t, "flags", d->flags, sizeof(d->flags));
	d->redirects = script_tstr(L, t, "redirects", NULL, 0);
	lua_getfield(L, t, "discard");
	d->discard = lua_toboolean(L, -1);
	lua_pop(L, 1);
}

static void script_read_dlvs(lua_State *L, int t, struct script_result *r, size_t n)
{
	r->dlv = xcalloc(n ? n : 1, sizeof(*r->dlv));
	r->n_dlv = n;
	lua_getfield(L, t, "dlv");
	if (lua_istable(L, -1))
		for (size_t i = 0; i < n; i++) {
			lua_rawgeti(L, -1, (int)i + 1);
			if (lua_istable(L, -1))
				script_read_dlv(L, lua_gettop(L), &r->dlv[i]);
			lua_pop(L, 1);
		}
	lua_pop(L, 1);
}

/* Verdict texts end up inside protocol reply lines: a CR or LF from a
 * script (a prefilter echoing a decoded Subject, say) would inject lines
 * (RFC 5321 4.2, RFC 1939 3), so every control byte becomes a space. */
static void script_text_clean(char *t)
{
	for (; *t; t++)
		if ((unsigned char)*t < 0x20 || *t == 0x7f)
			*t = ' ';
}

/* The library's result table at the top of c->co -> r. */
static void script_read_result(struct script_call *c, struct script_result *r)
{
	lua_State *L = c->co;
	int t = lua_gettop(L);
	if (!lua_istable(L, t))
		return;
	r->verdict = script_verdict_parse(script_tstr(L, t, "verdict", NULL, 0));
	r->code = (int)script_tnum(L, t, "code");
	script_tstr(L, t, "text", r->text, sizeof(r->text));
	script_tstr(L, t, "arg", r->arg, sizeof(r->arg));
	script_text_clean(r->text);
	script_text_clean(r->arg);
	r->delay = script_tnum(L, t, "delay");
	lua_getfield(L, t, "failed");
	r->failed = lua_toboolean(L, -1);
	lua_pop(L, 1);
	if (c->kind == SCRIPT_KIND_MESSAGE) {
		script_read_scan(L, t, r);
		script_read_dlvs(L, t, r, c->n_targets);
	}
}

static void script_call_finish(struct script_call *c, bool ok)
{
	struct script_result r;
	memset(&r, 0, sizeof(r));
	if (ok)
		script_read_result(c, &r);
	else
		r.failed = true;
	if (c->kind == SCRIPT_KIND_MESSAGE && r.dlv == NULL) {
		r.dlv = xcalloc(c->n_targets ? c->n_targets : 1, sizeof(*r.dlv));
		r.n_dlv = c->n_targets;
	}
	c->finished = true;
	if (c->set->loop) {
		ev_timer_stop(c->set->loop, &c->budget);
		ev_timer_stop(c->set->loop, &c->wait);
	}
	c->done(c->owner, &r);
	free(r.dlv);
	lua_settop(c->co, 0);
	script_call_release(c);
}

void script_call_resume(struct script_call *c, int nargs)
{
	struct script_set *s = c->set;
	script_set_enter(s, c, c->deadline, c->sid);
	int rc = lua_resume(c->co, nargs);
	bool over = s->aborting;
	script_set_leave(s);
	if (rc == LUA_YIELD && c->waiting)
		return;
	if (rc != 0) {
		const char *msg = lua_tostring(c->co, -1);
		if (rc == LUA_YIELD)
			msg = "yield outside a moonpost wait";
		char q[512];
		log_quote(q, sizeof(q), msg ? msg : "?", msg ? strlen(msg) : 1);
		log_error(c->sid, "event=lua_error error=\"%s\"%s", q, over ? " budget=exceeded" : "");
	}
	script_call_finish(c, rc == 0);
}

static void script_budget_cb(struct ev_loop *loop MP_UNUSED, ev_timer *w, int revents MP_UNUSED)
{
	struct script_call *c = w->data;
	if (!c->waiting || c->finished)
		return;
	c->waiting = false;
	log_error(c->sid, "event=lua_error error=\"hook aborted: a wait outlived the budget\" budget=exceeded");
	script_call_finish(c, false);
}

static void script_call_go(struct script_call *c, int nargs)
{
	struct script_set *s = c->set;
	double budget = s->conf.budget > 0 ? s->conf.budget : 0.5;
	c->deadline = script_now() + budget;
	if (s->loop) {
		/* The timer counts from the loop's cached time, which lags
		 * behind when this call starts late in an iteration; without the
		 * update a wait could be cut before its deadline. */
		ev_now_update(s->loop);
		ev_timer_init(&c->budget, script_budget_cb, budget, 0);
		c->budget.data = c;
		ev_timer_start(s->loop, &c->budget);
	}
	script_call_resume(c, nargs);
}

static void script_done_now(script_done_fn *done, uint64_t owner, size_t n_targets)
{
	struct script_result r;
	memset(&r, 0, sizeof(r));
	r.dlv = xcalloc(n_targets ? n_targets : 1, sizeof(*r.dlv));
	r.n_dlv = n_targets;
	done(owner, &r);
	free(r.dlv);
}

void script_call_hook(struct script_session *ss, const char *hook,
		      const struct script_auth_info *auth, script_done_fn *done, uint64_t owner)
{
	if (!script_set_has(ss->set, hook)) {
		script_done_now(done, owner, 0);
		return;
	}
	struct script_call *c = script_call_new(ss, SCRIPT_KIND_HOOK, "hook", done, owner);
	lua_State *L = c->co;
	lua_pushstring(L, hook);
	lua_rawgeti(L, LUA_REGISTRYINDEX, ss->ctx_ref);
	if (auth) {
		lua_createtable(L, 0, 6);
		script_setfield_str(L, "user", auth->user);
		script_setfield_str(L, "mechanism", auth->mechanism);
		script_setfield_str(L, "result", auth->result);
		lua_getfield(L, -2, "conn");
		lua_getfield(L, -1, "ip");
		lua_setfield(L, -3, "ip");
		lua_getfield(L, -1, "protocol");
		lua_setfield(L, -3, "protocol");
		lua_pop(L, 1);
		lua_pushnumber(L, (double)auth->failures_ip);
		lua_setfield(L, -2, "failures_ip");
		lua_pushnumber(L, (double)auth->failures_user);
		lua_setfield(L, -2, "failures_user");
	} else {
		lua_pushnil(L);
	}
	script_call_go(c, 3);
}

static void script_push_list(lua_State *L, const char *k, const char *const *v, size_t n)
{
	lua_createtable(L, (int)n, 0);
	for (size_t i = 0; i < n; i++) {
		lua_pushstring(L, v[i]);
		lua_rawseti(L, -2, (int)i + 1);
	}
	lua_setfield(L, -2, k);
}

void script_call_rcpt(struct script_session *ss, const char *hook, const struct script_rcpt_info *ri,
		      script_done_fn *done, uint64_t owner)
{
	if (!script_set_has(ss->set, hook)) {
		script_done_now(done, owner, 0);
		return;
	}
	struct script_call *c = script_call_new(ss, SCRIPT_KIND_RCPT, "hook", done, owner);
	lua_State *L = c->co;
	lua_pushstring(L, hook);
	lua_rawgeti(L, LUA_REGISTRYINDEX, ss->ctx_ref);
	lua_createtable(L, 0, 5);
	script_setfield_str(L, "addr", ri->addr);
	if (ri->result) {
		script_setfield_str(L, "result", ri->result);
		lua_pushboolean(L, ri->local_domain);
		lua_setfield(L, -2, "local_domain");
		script_push_list(L, "mailboxes", ri->mailboxes, ri->n_mailboxes);
		script_push_list(L, "external", ri->external, ri->n_external);
	}
	script_call_go(c, 3);
}

void script_call_message(struct script_session *ss, const struct script_target *t, size_t n,
			 script_done_fn *done, uint64_t owner)
{
	struct script_set *s = ss->set;
	if (!(s->hooks & (SCRIPT_HOOK_RULES | SCRIPT_HOOK_DATA | SCRIPT_HOOK_DELIVER))) {
		script_done_now(done, owner, n);
		return;
	}
	struct script_call *c = script_call_new(ss, SCRIPT_KIND_MESSAGE, "message", done, owner);
	c->n_targets = n;
	lua_State *L = c->co;
	lua_rawgeti(L, LUA_REGISTRYINDEX, ss->ctx_ref);
	lua_createtable(L, (int)n, 0);
	for (size_t i = 0; i < n; i++) {
		lua_createtable(L, 0, 2);
		script_setfield_str(L, "addr", t[i].rcpt);
		script_setfield_str(L, "mailbox", t[i].mailbox);
		lua_rawseti(L, -2, (int)i + 1);
	}
	script_call_go(c, 2);
}
