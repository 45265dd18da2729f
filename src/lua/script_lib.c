/* script_lib.c - the _mp table: the C functions the Lua library builds on.
 * Only boot.lua sees _mp; scripts get the wrappers it chooses to expose.
 * Waits (sleep, dir.lookup) yield the running coroutine (style rule 20):
 * the event loop resumes it; no C resource is held across the yield. */
#include "script_int.h"
#include "core/arena.h"
#include "core/log.h"
#include "core/pool.h"
#include "core/util.h"
#include "dir/dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

static struct script_set *script_lib_set(lua_State *L)
{
	return lua_touserdata(L, lua_upvalueindex(1));
}

static int script_name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool script_is_lua_name(const char *n)
{
	size_t len = strlen(n);
	return n[0] != '.' && len > 4 && strcmp(n + len - 4, ".lua") == 0;
}

/* listdir(dir) -> sorted "*.lua" names; nil, err when it cannot be read.
 * A missing directory is an empty set (rules are optional). */
static int script_lib_listdir(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);
	DIR *d = opendir(path);
	if (d == NULL) {
		if (errno == ENOENT) {
			lua_newtable(L);
			return 1;
		}
		lua_pushnil(L);
		lua_pushfstring(L, "%s: %s", path, strerror(errno));
		return 2;
	}
	char **names = xcalloc(SCRIPT_FILES_MAX, sizeof(*names));
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL && n < SCRIPT_FILES_MAX)
		if (script_is_lua_name(e->d_name))
			names[n++] = xstrdup(e->d_name);
	closedir(d);
	qsort(names, n, sizeof(*names), script_name_cmp);
	lua_createtable(L, (int)n, 0);
	for (size_t i = 0; i < n; i++) {
		lua_pushstring(L, names[i]);
		lua_rawseti(L, -2, (int)i + 1);
		free(names[i]);
	}
	free(names);
	return 1;
}

/* readfile(path) -> content; nil, err. Bounded by SCRIPT_FILE_MAX. */
static int script_lib_readfile(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0) {
		if (fd >= 0)
			close(fd);
		lua_pushnil(L);
		lua_pushfstring(L, "%s: %s", path, strerror(errno));
		return 2;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > SCRIPT_FILE_MAX) {
		close(fd);
		lua_pushnil(L);
		lua_pushfstring(L, "%s: not a regular file of at most %d bytes", path, SCRIPT_FILE_MAX);
		return 2;
	}
	char *buf = xmalloc((size_t)st.st_size + 1);
	ssize_t got = 0, r = 0;
	while (got < st.st_size && (r = read(fd, buf + got, (size_t)(st.st_size - got))) > 0)
		got += r;
	close(fd);
	if (r < 0) {
		free(buf);
		lua_pushnil(L);
		lua_pushfstring(L, "%s: %s", path, strerror(errno));
		return 2;
	}
	lua_pushlstring(L, buf, (size_t)got);
	free(buf);
	return 1;
}

static int script_lib_sha256(lua_State *L)
{
	size_t len;
	const char *p = luaL_checklstring(L, 1, &len);
	unsigned char md[32];
	unsigned int mdlen = 0;
	EVP_Digest(p, len, md, &mdlen, EVP_sha256(), NULL);
	char hex[65];
	for (unsigned i = 0; i < mdlen && i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	lua_pushlstring(L, hex, 2 * (size_t)mdlen);
	return 1;
}

static int script_lib_now(lua_State *L)
{
	lua_pushnumber(L, script_now());
	return 1;
}

/* over_budget() -> true once the running call's budget is gone. */
static int script_lib_over_budget(lua_State *L)
{
	struct script_set *s = script_lib_set(L);
	lua_pushboolean(L, s->aborting || (s->deadline > 0 && script_now() > s->deadline));
	return 1;
}

/* budget_grace() -> true when granted: a rule ran over the budget and the
 * scan gets SCRIPT_GRACE more seconds to finish its verdict without the
 * remaining rules. Once per call, so nothing can loop on it. */
static int script_lib_budget_grace(lua_State *L)
{
	struct script_set *s = script_lib_set(L);
	bool ok = s->deadline > 0 && !s->graced;
	if (ok) {
		s->graced = true;
		s->aborting = false;
		s->deadline = script_now() + SCRIPT_GRACE;
		script_set_rearm(s);
	}
	lua_pushboolean(L, ok);
	return 1;
}

/* log(level, where, msg [, event]): one key=value line with the session id. */
static int script_lib_log(lua_State *L)
{
	struct script_set *s = script_lib_set(L);
	const char *lvl = luaL_checkstring(L, 1);
	size_t wl, ml;
	const char *where = luaL_checklstring(L, 2, &wl);
	const char *msg = luaL_checklstring(L, 3, &ml);
	const char *event = luaL_optstring(L, 4, "lua");
	int level = log_level_parse(lvl);
	char qw[256], qm[1024], qe[64];
	log_quote(qw, sizeof(qw), where, wl);
	log_quote(qm, sizeof(qm), msg, ml);
	log_quote(qe, sizeof(qe), event, strlen(event));
	log_msg(level < 0 ? LOG_LVL_INFO : (enum log_level)level, s->sid, "event=%s file=\"%s\" msg=\"%s\"",
		qe, qw, qm);
	return 0;
}

static int script_lib_sid(lua_State *L)
{
	struct script_set *s = script_lib_set(L);
	lua_pushstring(L, s->sid ? s->sid : "");
	return 1;
}

/* sleep(seconds): yields; resumed by the loop. Without a loop, or with
 * the budget already shorter than the sleep, it returns at once (the
 * budget check aborts the latter). */
static void script_wait_cb(struct ev_loop *loop MP_UNUSED, ev_timer *w, int revents MP_UNUSED)
{
	struct script_call *c = w->data;
	c->waiting = false;
	script_call_resume(c, 0);
}

static int script_lib_sleep(lua_State *L)
{
	struct script_set *s = script_lib_set(L);
	double secs = luaL_checknumber(L, 1);
	struct script_call *c = s->running;
	if (c == NULL || s->loop == NULL || secs <= 0 || L != c->co) {
		if (s->deadline > 0 && script_now() + secs > s->deadline) {
			s->aborting = true;
			return luaL_error(L, SCRIPT_BUDGET_ERROR);
		}
		return 0;
	}
	ev_timer_init(&c->wait, script_wait_cb, secs, 0);
	c->wait.data = c;
	ev_timer_start(s->loop, &c->wait);
	c->waiting = true;
	return lua_yield(L, 0);
}

/* dir.lookup(address): a pool job resolves it; the result table is built
 * on the loop when the job is done. */
struct script_dir_job {
	struct script_call *call;
	struct dir *dir;
	char *addr;
	struct arena *arena;
	struct dir_resolution res;
};

static void script_dir_work(void *arg)
{
	struct script_dir_job *j = arg;
	dir_resolve(j->dir, j->addr, j->arena, &j->res);
}

static void script_push_strings(lua_State *L, const struct dir_resolution *r, enum dir_node_kind k)
{
	lua_newtable(L);
	int n = 0;
	for (size_t i = 0; i < r->n_nodes; i++)
		if (r->nodes[i].kind == k) {
			const char *v = k == DIR_NODE_MAILBOX ? r->nodes[i].user.email : r->nodes[i].address;
			lua_pushstring(L, v);
			lua_rawseti(L, -2, ++n);
		}
}

static void script_push_resolution(lua_State *L, const struct dir_resolution *r)
{
	lua_newtable(L);
	lua_pushstring(L, r->result == DIR_FOUND ? "found" : r->result == DIR_NOTFOUND ? "notfound" : "tempfail");
	lua_setfield(L, -2, "result");
	lua_pushboolean(L, r->local_domain);
	lua_setfield(L, -2, "local_domain");
	script_push_strings(L, r, DIR_NODE_MAILBOX);
	lua_setfield(L, -2, "mailboxes");
	script_push_strings(L, r, DIR_NODE_EXTERNAL);
	lua_setfield(L, -2, "external");
}

static void script_dir_done(void *arg)
{
	struct script_dir_job *j = arg;
	struct script_call *c = j->call;
	c->jobs--;
	if (!c->finished && c->waiting) {
		c->waiting = false;
		script_push_resolution(c->co, &j->res);
		script_call_resume(c, 1);
	} else {
		script_call_release(c);
	}
	free(j->addr);
	arena_destroy(&j->arena);
	free(j);
}

static int script_lib_dir_lookup(lua_State *L)
{
	struct script_set *s = script_lib_set(L);
	const char *addr = luaL_checkstring(L, 1);
	struct script_call *c = s->running;
	if (c == NULL || s->pool == NULL || s->dir == NULL || L != c->co) {
		lua_newtable(L);
		lua_pushstring(L, "tempfail");
		lua_setfield(L, -2, "result");
		return 1;
	}
	struct script_dir_job *j = xcalloc(1, sizeof(*j));
	j->call = c;
	j->dir = s->dir;
	j->addr = xstrdup(addr);
	j->arena = arena_new();
	c->jobs++;
	c->waiting = true;
	pool_submit(s->pool, script_dir_work, script_dir_done, j);
	return lua_yield(L, 0);
}

/* msg_new(raw) -> a message object over a copy of raw (self-tests). */
static int script_lib_msg_new(lua_State *L)
{
	size_t len;
	const char *p = luaL_checklstring(L, 1, &len);
	script_msg_push(L, p, len, false);
	return 1;
}

void script_lib_open(lua_State *L, struct script_set *s)
{
	static const luaL_Reg fns[] = {
		{ "listdir", script_lib_listdir },   { "readfile", script_lib_readfile },
		{ "sha256", script_lib_sha256 },     { "now", script_lib_now },
		{ "over_budget", script_lib_over_budget }, { "log", script_lib_log },
		{ "budget_grace", script_lib_budget_grace },
		{ "sid", script_lib_sid },           { "sleep", script_lib_sleep },
		{ "dir_lookup", script_lib_dir_lookup }, { "msg_new", script_lib_msg_new },
		{ NULL, NULL },
	};
	lua_newtable(L);
	for (const luaL_Reg *f = fns; f->name; f++) {
		lua_pushlightuserdata(L, s);
		lua_pushcclosure(L, f->func, 1);
		lua_setfield(L, -2, f->name);
	}
	lua_getfield(L, LUA_REGISTRYINDEX, "moonpost.regex_new");
	lua_setfield(L, -2, "regex_new");
	lua_pushstring(L, SCRIPT_BUDGET_ERROR);
	lua_setfield(L, -2, "BUDGET_ERROR");
}
