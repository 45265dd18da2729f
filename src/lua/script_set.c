/* script_set.c - building a script set: one LuaJIT state, the JIT off (so
 * the count hook always fires, style rule 21; it is installed when a run's
 * deadline passes, see script_count_hook), the library's boot.lua run
 * with the full standard library, which then loads rules/ and policies/
 * into allow-listed environments and runs their self-tests. */
#include "script_int.h"
#include "core/conf.h"
#include "core/log.h"
#include "core/util.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lualib.h>
#include <luajit.h>

static const char *const script_hook_names[] = {
	"connect", "helo", "mail_from", "route", "rcpt_to", "data", "deliver", "auth", "rules",
};

unsigned script_hook_bit(const char *name)
{
	for (size_t i = 0; i < sizeof(script_hook_names) / sizeof(*script_hook_names); i++)
		if (strcmp(name, script_hook_names[i]) == 0)
			return 1u << i;
	return 0;
}

double script_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void script_conf_from(const struct conf *c, struct script_conf *sc)
{
	sc->lib_dir = c->lua.lib_dir;
	sc->rules_dir = c->lua.rules_dir;
	sc->policies_dir = c->lua.policies_dir;
	sc->budget = c->lua.budget;
	sc->load_budget = c->lua.load_budget;
	sc->reject = c->lua.actions.reject;
	sc->add_header = c->lua.actions.add_header;
	sc->soft_reject = c->lua.actions.soft_reject;
	sc->scan_max = (uint64_t)c->lua.scan_max;
	sc->state_dir = c->state_dir;
}

/* The per-state hook: every SCRIPT_HOOK_COUNT instructions. Once over
 * budget it keeps raising, so a rule's pcall cannot swallow the abort. */
static struct script_set *script_hook_set(lua_State *L)
{
	lua_getfield(L, LUA_REGISTRYINDEX, "moonpost.set");
	struct script_set *s = lua_touserdata(L, -1);
	lua_pop(L, 1);
	return s;
}

/* The count hook costs every interpreted instruction a few cycles even
 * when it has nothing to do, so it is installed only once the deadline has
 * passed: a POSIX timer of the loop thread (SIGEV_THREAD_ID) fires at the
 * deadline and its signal handler installs the hook, as luajit.c does on
 * SIGINT and LuaJIT's own profiler does from SIGPROF. The timer then
 * repeats every SCRIPT_ALARM_REPEAT seconds: LuaJIT restores the hook mask
 * saved before a __gc finalizer, which can drop a hook set meanwhile. The
 * hook stays in place until the run ends, checking every SCRIPT_HOOK_COUNT
 * instructions (a grace period moves the deadline). A thread without the
 * timer (or a failed timer_create) keeps the hook installed throughout. */
#define SCRIPT_ALARM_REPEAT 0.005

static struct {
	bool ok;                        /* timer made in this process/thread */
	pid_t pid, tid;
	timer_t timer;
	int sig;
} script_alarm;
static lua_State *volatile script_alarm_L;      /* the state running now */

static void script_count_hook(lua_State *L, lua_Debug *ar MP_UNUSED)
{
	struct script_set *s = script_hook_set(L);
	if (s == NULL || s->deadline <= 0) {
		if (s == NULL || !s->hook_always)
			lua_sethook(L, NULL, 0, 0);     /* a late alarm: nothing runs */
		return;
	}
	/* back to every SCRIPT_HOOK_COUNT instructions first: the error
	 * handlers that see the abort need a few instructions to run */
	if (lua_gethookcount(L) != SCRIPT_HOOK_COUNT)
		lua_sethook(L, script_count_hook, LUA_MASKCOUNT, SCRIPT_HOOK_COUNT);
	if (s->aborting || script_now() > s->deadline) {
		s->aborting = true;
		luaL_error(L, SCRIPT_BUDGET_ERROR);
	}
}

static void script_alarm_handler(int sig MP_UNUSED)
{
	lua_State *L = script_alarm_L;
	if (L != NULL)
		lua_sethook(L, script_count_hook, LUA_MASKCOUNT, 1);
}

/* The timer of this thread, made on first use (and again after a fork). */
static bool script_alarm_ready(void)
{
	pid_t pid = getpid(), tid = gettid();
	if (script_alarm.ok && script_alarm.pid == pid)
		return script_alarm.tid == tid;
	script_alarm.ok = false;
	script_alarm.sig = SIGRTMIN + 3;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = script_alarm_handler;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	struct sigevent ev;
	memset(&ev, 0, sizeof(ev));
	ev.sigev_notify = SIGEV_THREAD_ID;
	ev.sigev_signo = script_alarm.sig;
	ev._sigev_un._tid = tid;        /* sigev_notify_thread_id */
	if (sigaction(script_alarm.sig, &sa, NULL) != 0 ||
	    timer_create(CLOCK_MONOTONIC, &ev, &script_alarm.timer) != 0)
		return false;
	script_alarm.ok = true;
	script_alarm.pid = pid;
	script_alarm.tid = tid;
	return true;
}

static struct timespec script_ts(double t)
{
	struct timespec ts;
	ts.tv_sec = (time_t)t;
	ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
	if (ts.tv_nsec >= 1000000000L)
		ts.tv_nsec = 999999999L;
	return ts;
}

/* True on the thread that owns the timer (the worker's loop thread). A
 * set built on a pool thread (a hot reload) runs with the hook installed
 * throughout and must never touch the timer or script_alarm_L: the loop
 * thread may be inside a hook right now, and disarming its alarm would let
 * a looping rule run on unchecked. */
static bool script_alarm_owned(void)
{
	return script_alarm.ok && script_alarm.pid == getpid() && script_alarm.tid == gettid();
}

/* Arms the alarm for s->deadline (CLOCK_MONOTONIC, as script_now). */
void script_set_rearm(struct script_set *s)
{
	if (s->hook_always || s->deadline <= 0 || !script_alarm_owned())
		return;
	struct itimerspec its;
	its.it_value = script_ts(s->deadline);
	its.it_interval = script_ts(SCRIPT_ALARM_REPEAT);
	timer_settime(script_alarm.timer, TIMER_ABSTIME, &its, NULL);
}

void script_set_enter(struct script_set *s, struct script_call *c, double deadline, const char *sid)
{
	s->running = c;
	s->deadline = deadline;
	s->aborting = false;
	s->graced = false;
	s->sid = sid;
	if (s->hook_always)
		return;
	if (!script_alarm_ready()) {
		/* not the thread the timer belongs to: the old way */
		lua_sethook(s->L, script_count_hook, LUA_MASKCOUNT, SCRIPT_HOOK_COUNT);
		return;
	}
	script_alarm_L = s->L;
	script_set_rearm(s);
}

void script_set_leave(struct script_set *s)
{
	s->running = NULL;
	s->deadline = 0;
	s->aborting = false;
	s->sid = NULL;
	if (s->hook_always)
		return;
	if (script_alarm_owned()) {
		script_alarm_L = NULL;
		struct itimerspec off;
		memset(&off, 0, sizeof(off));
		timer_settime(script_alarm.timer, 0, &off, NULL);
	}
	if (lua_gethookmask(s->L) != 0)
		lua_sethook(s->L, NULL, 0, 0);
}

static void script_push_conf(lua_State *L, const struct script_set *s)
{
	lua_newtable(L);
	lua_pushstring(L, s->lib_dir);
	lua_setfield(L, -2, "lib_dir");
	lua_pushstring(L, s->rules_dir);
	lua_setfield(L, -2, "rules_dir");
	lua_pushstring(L, s->policies_dir);
	lua_setfield(L, -2, "policies_dir");
	lua_pushnumber(L, s->conf.reject);
	lua_setfield(L, -2, "reject");
	lua_pushnumber(L, s->conf.add_header);
	lua_setfield(L, -2, "add_header");
	lua_pushnumber(L, s->conf.soft_reject);
	lua_setfield(L, -2, "soft_reject");
	lua_pushnumber(L, (double)s->conf.scan_max);
	lua_setfield(L, -2, "scan_max");
}

/* traceback handler for the boot pcall */
static int script_traceback(lua_State *L)
{
	const char *msg = lua_tostring(L, 1);
	luaL_traceback(L, L, msg ? msg : "(error object is not a string)", 1);
	return 1;
}

static void script_err_first_line(char *err, size_t size, const char *msg)
{
	snprintf(err, size, "%s", msg ? msg : "unknown error");
	char *nl = strstr(err, "\nstack traceback:");
	if (nl)
		*nl = '\0';
}

/* Runs lib_dir/moonpost/boot.lua(_mp, conf); keeps its API table. */
static int script_boot(struct script_set *s, char *err, size_t err_size)
{
	lua_State *L = s->L;
	char path[4096];
	snprintf(path, sizeof(path), "%s/moonpost/boot.lua", s->lib_dir);
	lua_pushcfunction(L, script_traceback);
	if (luaL_loadfile(L, path) != 0) {
		script_err_first_line(err, err_size, lua_tostring(L, -1));
		lua_pop(L, 2);
		return -1;
	}
	script_lib_open(L, s);
	script_push_conf(L, s);
	script_set_enter(s, NULL, script_now() + s->conf.load_budget, NULL);
	int rc = lua_pcall(L, 2, 1, -4);
	script_set_leave(s);
	if (rc != 0) {
		script_err_first_line(err, err_size, lua_tostring(L, -1));
		lua_pop(L, 2);
		return -1;
	}
	if (!lua_istable(L, -1)) {
		snprintf(err, err_size, "%s: did not return the API table", path);
		lua_pop(L, 2);
		return -1;
	}
	s->api_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_pop(L, 1);
	return 0;
}

/* API fields the C side reads once: hooks (name -> true) and hash. */
static void script_read_api(struct script_set *s)
{
	lua_State *L = s->L;
	lua_rawgeti(L, LUA_REGISTRYINDEX, s->api_ref);
	lua_getfield(L, -1, "hooks");
	if (lua_istable(L, -1)) {
		lua_pushnil(L);
		while (lua_next(L, -2)) {
			if (lua_type(L, -2) == LUA_TSTRING && lua_toboolean(L, -1))
				s->hooks |= script_hook_bit(lua_tostring(L, -2));
			lua_pop(L, 1);
		}
	}
	lua_pop(L, 1);
	lua_getfield(L, -1, "hash");
	snprintf(s->hash, sizeof(s->hash), "%s", lua_isstring(L, -1) ? lua_tostring(L, -1) : "");
	lua_pop(L, 2);
}

static struct script_set *script_set_new(const struct script_conf *sc, struct ev_loop *loop,
					 struct pool *pool, struct dir *dir)
{
	struct script_set *s = xcalloc(1, sizeof(*s));
	s->refs = 1;
	s->conf = *sc;
	s->lib_dir = xstrdup(sc->lib_dir);
	s->rules_dir = xstrdup(sc->rules_dir);
	s->policies_dir = xstrdup(sc->policies_dir);
	s->conf.lib_dir = s->lib_dir;
	s->conf.rules_dir = s->rules_dir;
	s->conf.policies_dir = s->policies_dir;
	s->loop = loop;
	s->pool = pool;
	s->dir = dir;
	s->api_ref = LUA_NOREF;
	s->loaded_at = (double)time(NULL);
	return s;
}

struct script_set *script_set_load(const struct script_conf *sc, struct ev_loop *loop,
				   struct pool *pool, struct dir *dir, char *err, size_t err_size)
{
	struct script_set *s = script_set_new(sc, loop, pool, dir);
	s->L = luaL_newstate();
	if (s->L == NULL) {
		snprintf(err, err_size, "cannot create a Lua state (out of memory)");
		script_set_unref(&s);
		return NULL;
	}
	lua_State *L = s->L;
	luaL_openlibs(L);
	script_str_open(L);
	/* Hooks do not fire inside compiled traces: without the JIT the
	 * budget holds for every loop (style rule 21). */
	luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF);
	lua_pushlightuserdata(L, s);
	lua_setfield(L, LUA_REGISTRYINDEX, "moonpost.set");
	script_msg_open(L);
	script_regex_open(L);
	/* the count hook is installed by the deadline alarm (script_set_enter);
	 * MOONPOST_LUA_HOOK=always keeps it on throughout (for comparison) */
	const char *hk = getenv("MOONPOST_LUA_HOOK");
	s->hook_always = hk != NULL && strcmp(hk, "always") == 0;
	if (s->hook_always)
		lua_sethook(L, script_count_hook, LUA_MASKCOUNT, SCRIPT_HOOK_COUNT);
	if (script_boot(s, err, err_size) != 0) {
		script_set_unref(&s);
		return NULL;
	}
	script_read_api(s);
	return s;
}

void script_set_ref(struct script_set *s)
{
	s->refs++;
}

void script_set_unref(struct script_set **sp)
{
	struct script_set *s = *sp;
	*sp = NULL;
	if (s == NULL || --s->refs > 0)
		return;
	if (s->L)
		lua_close(s->L);
	free(s->lib_dir);
	free(s->rules_dir);
	free(s->policies_dir);
	free(s->stats);
	free(s);
}

const char *script_set_hash(const struct script_set *s)
{
	return s->hash;
}

bool script_set_has(const struct script_set *s, const char *hook)
{
	return (s->hooks & script_hook_bit(hook)) != 0;
}

const char *script_set_stats_json(struct script_set *s)
{
	lua_State *L = s->L;
	int top = lua_gettop(L);
	lua_rawgeti(L, LUA_REGISTRYINDEX, s->api_ref);
	lua_getfield(L, -1, "stats_json");
	free(s->stats);
	s->stats = NULL;
	script_set_enter(s, NULL, script_now() + 1.0, NULL);
	if (lua_pcall(L, 0, 1, 0) == 0 && lua_isstring(L, -1))
		s->stats = xstrdup(lua_tostring(L, -1));
	script_set_leave(s);
	lua_settop(L, top);
	if (s->stats == NULL)
		s->stats = xstrdup("{}");
	return s->stats;
}

static void script_setopt(lua_State *L, const char *k, const char *v)
{
	if (v == NULL)
		return;
	lua_pushstring(L, v);
	lua_setfield(L, -2, k);
}

/* Calls API[fn](raw, opts [, format]) with the hook budget; leaves the
 * result (or the error message) on the stack; 0 = ok. */
static int script_report_call(struct script_set *s, const char *fn, const char *raw, size_t len,
			      const struct script_report_opts *o, const char *format)
{
	lua_State *L = s->L;
	int base = lua_gettop(L) + 1;
	lua_pushcfunction(L, script_traceback);
	lua_rawgeti(L, LUA_REGISTRYINDEX, s->api_ref);
	lua_getfield(L, -1, fn);
	lua_remove(L, -2);
	lua_pushlstring(L, raw, len);
	lua_newtable(L);
	script_setopt(L, "file", o->file);
	script_setopt(L, "from", o->from);
	script_setopt(L, "rcpt", o->rcpt);
	script_setopt(L, "ip", o->ip);
	script_setopt(L, "helo", o->helo);
	if (format)
		lua_pushstring(L, format);
	script_set_enter(s, NULL, script_now() + (s->conf.budget > 0 ? s->conf.budget : 0.5), "rules-test");
	int rc = lua_pcall(L, format ? 3 : 2, 1, base);
	script_set_leave(s);
	lua_remove(L, base);
	return rc;
}

static int script_dbl_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* o->repeat scans of fresh copies; appends their statistics to *out
 * (malloc'd, replaced). An error stops the repeats and is reported. */
static void script_report_bench(struct script_set *s, const char *raw, size_t len,
				const struct script_report_opts *o, bool json, char **out)
{
	lua_State *L = s->L;
	double *t = xcalloc(o->repeat, sizeof(*t));
	unsigned n = 0;
	const char *err = NULL;
	for (; n < o->repeat; n++) {
		int rc = script_report_call(s, "bench", raw, len, o, NULL);
		if (rc != 0 || !lua_isnumber(L, -1)) {
			err = lua_tostring(L, -1) ? lua_tostring(L, -1) : "bench: no time";
			break;
		}
		t[n] = lua_tonumber(L, -1);
		lua_pop(L, 1);
	}
	double sum = 0;
	for (unsigned i = 0; i < n; i++)
		sum += t[i];
	qsort(t, n, sizeof(*t), script_dbl_cmp);
	double med = n == 0 ? 0 : n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
	double p90 = n == 0 ? 0 : t[(size_t)(0.9 * (n - 1) + 0.5)];
	char add[512];
	if (json)
		snprintf(add, sizeof(add),
			 ",\"bench\":{\"repeat\":%u,\"median_us\":%.3f,\"mean_us\":%.3f,\"min_us\":%.3f,"
			 "\"p90_us\":%.3f,\"max_us\":%.3f%s}}",
			 n, med, n ? sum / n : 0, n ? t[0] : 0, p90, n ? t[n - 1] : 0,
			 err ? ",\"error\":true" : "");
	else
		snprintf(add, sizeof(add), "\nbench: %u scans, median %.1f us, mean %.1f us, min %.1f us, p90 %.1f us%s",
			 n, med, n ? sum / n : 0, n ? t[0] : 0, p90, err ? " (stopped by an error)" : "");
	size_t ol = strlen(*out);
	if (json && ol > 0 && (*out)[ol - 1] == '}')
		ol--;       /* the object goes on */
	else if (json)
		add[0] = '\0';
	char *r = xmalloc(ol + strlen(add) + 1);
	memcpy(r, *out, ol);
	memcpy(r + ol, add, strlen(add) + 1);
	free(*out);
	*out = r;
	if (err)
		fprintf(stderr, "%s: bench: %s\n", o->file ? o->file : "-", err);
	lua_settop(L, lua_gettop(L) - (err ? 1 : 0));
	free(t);
}

char *script_set_report(struct script_set *s, const char *raw, size_t len,
			const struct script_report_opts *o, bool json)
{
	lua_State *L = s->L;
	int top = lua_gettop(L);
	int rc = script_report_call(s, "report", raw, len, o, json ? "json" : "text");
	char *out;
	if (rc == 0) {
		out = xstrdup(lua_tostring(L, -1) ? lua_tostring(L, -1) : "");
	} else {
		const char *m = lua_tostring(L, -1);
		size_t n = strlen(m ? m : "?") + 32;
		out = xmalloc(n);
		snprintf(out, n, "error: %s", m ? m : "?");
	}
	lua_settop(L, top);
	if (rc == 0 && o->repeat > 0)
		script_report_bench(s, raw, len, o, json, &out);
	lua_settop(L, top);
	return out;
}

char *script_status_format(const char *lib_dir, const char *const *json, size_t n,
			   char *err, size_t err_size)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/moonpost/status.lua", lib_dir);
	lua_State *L = luaL_newstate();
	luaL_openlibs(L);
	char *out = NULL;
	if (luaL_loadfile(L, path) != 0) {
		snprintf(err, err_size, "%s", lua_tostring(L, -1));
		lua_close(L);
		return NULL;
	}
	lua_createtable(L, (int)n, 0);
	for (size_t i = 0; i < n; i++) {
		lua_pushstring(L, json[i]);
		lua_rawseti(L, -2, (int)i + 1);
	}
	if (lua_pcall(L, 1, 1, 0) != 0)
		snprintf(err, err_size, "%s", lua_tostring(L, -1));
	else
		out = xstrdup(lua_isstring(L, -1) ? lua_tostring(L, -1) : "");
	lua_close(L);
	return out;
}
