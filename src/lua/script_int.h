/* script_int.h - internal to src/lua: the set and call structures shared by
 * script_set.c (states), script_call.c (coroutines), script_lib.c (the _mp
 * table of C functions the library uses), script_msg.c (ctx.msg) and
 * script_regex.c (regex objects). */
#ifndef MP_SCRIPT_INT_H
#define MP_SCRIPT_INT_H

#include "script.h"

#include <lua.h>
#include <lauxlib.h>

/* Instructions between two budget checks: ~10 us of interpreted Lua. */
#define SCRIPT_HOOK_COUNT 1000
#define SCRIPT_BUDGET_ERROR "moonpost: budget exceeded"
/* Seconds a scan gets to finish after one rule used up the budget. */
#define SCRIPT_GRACE 0.05

struct script_call;

struct script_set {
	int refs;
	lua_State *L;
	struct script_conf conf;
	char *lib_dir, *rules_dir, *policies_dir;   /* owned copies */
	struct ev_loop *loop;
	struct pool *pool;
	struct dir *dir;
	int api_ref;            /* the table boot.lua returned */
	char hash[17];
	double loaded_at;       /* Unix time */
	unsigned hooks;         /* bit per SCRIPT_HOOK_* with a registration */
	/* The call whose coroutine runs now (one at a time per state), and
	 * its deadline; 0 = no deadline (between calls). */
	struct script_call *running;
	double deadline;
	bool aborting;          /* the budget error is raised until the call ends */
	bool graced;            /* budget_grace() was used in this run */
	bool hook_always;       /* count hook on throughout (no deadline alarm) */
	const char *sid;        /* for log lines of the running code */
	char *stats;            /* last script_set_stats_json() */
	uint64_t next_call_id;
};

enum {
	SCRIPT_HOOK_CONNECT   = 1 << 0,
	SCRIPT_HOOK_HELO      = 1 << 1,
	SCRIPT_HOOK_MAIL_FROM = 1 << 2,
	SCRIPT_HOOK_ROUTE     = 1 << 3,
	SCRIPT_HOOK_RCPT_TO   = 1 << 4,
	SCRIPT_HOOK_DATA      = 1 << 5,
	SCRIPT_HOOK_DELIVER   = 1 << 6,
	SCRIPT_HOOK_AUTH      = 1 << 7,
	SCRIPT_HOOK_RULES     = 1 << 8,
};
unsigned script_hook_bit(const char *name);

/* A hook call: a coroutine of the set's state. Freed when it has finished
 * and no pool job refers to it. */
struct script_call {
	struct script_set *set;     /* referenced */
	lua_State *co;
	int co_ref;
	uint64_t owner;
	script_done_fn *done;
	char sid[32];
	double deadline;
	ev_timer budget;            /* fires at deadline while waiting */
	ev_timer wait;              /* sleep() */
	int jobs;                   /* pool jobs that point here */
	bool waiting, finished;
	int kind;                   /* what the result looks like */
	size_t n_targets;
};

double script_now(void);
/* Enters / leaves a running section of the set (deadline, running call). */
void script_set_enter(struct script_set *s, struct script_call *c, double deadline, const char *sid);
void script_set_leave(struct script_set *s);
/* Re-arms the deadline alarm after s->deadline moved (budget_grace). */
void script_set_rearm(struct script_set *s);

/* Resumes c's coroutine with nargs values pushed on c->co. */
void script_call_resume(struct script_call *c, int nargs);
void script_call_release(struct script_call *c);

/* Registers the _mp table (C functions for the library) at the top. */
void script_lib_open(lua_State *L, struct script_set *s);
/* ctx.msg objects. */
void script_msg_open(lua_State *L);
/* Pushes a message userdata over data (not copied when borrowed: the
 * caller invalidates it with script_msg_invalidate before data dies). */
void script_msg_push(lua_State *L, const char *data, size_t len, bool borrowed);
void script_msg_invalidate(lua_State *L, int idx);
void script_regex_open(lua_State *L);
/* string.find/match/gmatch/gsub with a prefilter (script_str.c): same
 * results and errors as LuaJIT's, much faster on long subjects. */
void script_str_open(lua_State *L);

#endif
