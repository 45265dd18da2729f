/* script.h - the Lua layer: script sets (rules, policies, the library),
 * hook calls as coroutines driven by the worker's event loop, hot reload.
 * The Lua-side API is docs/LUA.md.
 *
 * A script set is one LuaJIT state built from lua/ rules/ policies/. It is
 * immutable once loaded (apart from per-rule counters) and reference
 * counted: the engine holds the current set, every session holds the set it
 * started with, every call holds its set. A reload builds a complete new set
 * and swaps the engine's pointer only when every file loaded and every
 * self-test passed; old sets die with their last session.
 *
 * Threading: everything here runs on the worker's loop thread (sets are not
 * thread-safe). Blocking work (directory lookups) goes to the pool given at
 * engine creation; a hook never blocks the loop: Lua runs with the JIT off
 * and an instruction-count hook that aborts code over its wall-clock budget,
 * and an ev_timer aborts a hook whose wait (lookup, sleep) outlives it.
 *
 * Errors in scripts never fail a call: they are logged with file:line and
 * the session id, counted, and the call completes with what it has. */
#ifndef MP_SCRIPT_H
#define MP_SCRIPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <ev.h>

struct arena;
struct conf;
struct dir;
struct pool;
struct script_set;
struct script_session;

#define SCRIPT_FILE_MAX (1024 * 1024)    /* bytes per script file */
#define SCRIPT_FILES_MAX 1000            /* files per directory */
#define SCRIPT_TEXT_MAX 512              /* verdict texts */
#define SCRIPT_FOLDERS_MAX 8             /* fileinto per recipient */

/* What the engine needs from the config (lua = { ... }). */
struct script_conf {
	const char *lib_dir, *rules_dir, *policies_dir;
	double budget;          /* seconds of wall clock per hook */
	double load_budget;     /* seconds for loading + self-tests of a set */
	double reject, add_header, soft_reject;   /* action thresholds, 0 = off */
	uint64_t scan_max;      /* bytes: larger messages skip the rules */
	const char *state_dir;  /* a worker's reloads refresh the last good copy
				   here (script_set_snapshot); NULL = no copy */
};

void script_conf_from(const struct conf *c, struct script_conf *sc);

/* ---- sets ------------------------------------------------------------ */

/* Builds and self-tests a set. loop/pool/dir may be NULL (CLI, config
 * check): then waits return at once (dir.lookup answers "tempfail"). NULL
 * with a message (file:line: ...) in err on failure. */
struct script_set *script_set_load(const struct script_conf *sc, struct ev_loop *loop,
				   struct pool *pool, struct dir *dir, char *err, size_t err_size);
void script_set_ref(struct script_set *s);
void script_set_unref(struct script_set **sp);
/* SHA-256 (hex, first 16 chars) over every file's name and content. */
const char *script_set_hash(const struct script_set *s);
/* Hook names with at least one registration; "rules" when rules exist. */
bool script_set_has(const struct script_set *s, const char *hook);
/* JSON object: hash, loaded time, files, per-rule hits/errors/time. The
 * string lives until the next call on this set. */
const char *script_set_stats_json(struct script_set *s);

/* `moonpost rules test`: scans raw with the set's rules (no server: waits
 * return at once) and returns a malloc'd report, text or one JSON object
 * ({file, score, action, required, symbols, errors, time_us}). time_us is
 * the scan alone (prefilters, rules, composites, the MIME parsing they ask
 * for; not the X-Spam headers), measured inside the Lua state: no process
 * start, no file reading. */
struct script_report_opts {
	const char *file, *from, *rcpt, *ip, *helo;
	/* > 0: after the reported scan, scan fresh copies of the message this
	 * many times more (each its own call, its own budget) and add their
	 * times: "bench": {repeat, median_us, mean_us, min_us, p90_us, max_us}
	 * (JSON) or a "bench:" line (text). For bench/rules-eval.sh. */
	unsigned repeat;
};
char *script_set_report(struct script_set *s, const char *raw, size_t len,
			const struct script_report_opts *o, bool json);
/* `moonpost status`: formats the status files' JSON texts (workers and
 * parent) with lib_dir/moonpost/status.lua. malloc'd text, or NULL with err. */
char *script_status_format(const char *lib_dir, const char *const *json, size_t n,
			   char *err, size_t err_size);

/* The last good copy of rules/ and policies/ (script_snapshot.c): the
 * sources s was built from, written under state_dir/lua-good and swapped in
 * atomically; uid/gid own the directories ((uid_t)-1: leave them). The
 * parent saves it when a generation starts, a worker after a hot reload; a
 * worker whose configured files no longer load starts on it. Blocks on
 * disk. 0, or -1 with err. */
int script_set_snapshot(struct script_set *s, const char *state_dir, uid_t uid, gid_t gid,
			char *err, size_t err_size);
/* Where the copy is: state_dir/lua-good/{rules,policies}. */
void script_snapshot_paths(const char *state_dir, char *rules, char *policies, size_t size);

/* ---- sessions: the ctx table of one connection ------------------------ */

struct script_conn_info {
	const char *ip;
	int port;
	const char *protocol;   /* "smtp" | "submission" | "lmtp" */
	const char *sid;
	bool tls;
};

struct script_session *script_session_new(struct script_set *set, const struct script_conn_info *ci);
/* Unbinds the message, drops ctx; in-flight calls finish on their own. */
void script_session_free(struct script_session **sp);
struct script_set *script_session_set(const struct script_session *ss);
void script_session_helo(struct script_session *ss, const char *helo, bool tls);
void script_session_user(struct script_session *ss, const char *user);
/* MAIL accepted: env.from, env.params (pairs of name/value; value NULL for
 * a flag), env.qid; a fresh ctx.notes. */
void script_session_mail(struct script_session *ss, const char *from, const char *qid,
			 const char *const *params, size_t nparams);
void script_session_rcpt(struct script_session *ss, const char *addr);
/* Binds the received message (LF line ends). The bytes must stay valid
 * until script_session_txn_end(); access after it fails in Lua. */
void script_session_message(struct script_session *ss, const char *data, size_t len);
/* End of transaction: env, notes, msg, scan cleared. */
void script_session_txn_end(struct script_session *ss);

/* ---- calls ------------------------------------------------------------ */

enum script_verdict {
	SCRIPT_NONE,            /* no hook, nothing returned, or an error */
	SCRIPT_ACCEPT,
	SCRIPT_REJECT,
	SCRIPT_TEMPFAIL,
	SCRIPT_DISCARD,
	SCRIPT_QUARANTINE,      /* arg = folder */
	SCRIPT_MAILBOX,         /* route: arg = address */
	SCRIPT_RELAY,           /* route: arg = host */
	SCRIPT_ALLOW,           /* auth */
	SCRIPT_DENY,
	SCRIPT_DELAY,           /* auth: delay seconds */
};

/* The delivery decision for one mailbox (deliver hook). */
struct script_delivery {
	const char *folders[SCRIPT_FOLDERS_MAX];  /* "" = INBOX */
	size_t n_folders;       /* 0 and !discard: keep (INBOX) */
	char flags[8];          /* Maildir info letters, e.g. "FS" */
	const char *redirects;  /* comma-separated, recorded only */
	bool discard;
};

struct script_result {
	enum script_verdict verdict;
	int code;                       /* reject: 5xx */
	char text[SCRIPT_TEXT_MAX];     /* reject/tempfail/deny text */
	char arg[SCRIPT_TEXT_MAX];      /* folder / address / host */
	double delay;
	bool failed;                    /* a hook raised an error / over budget */
	/* scan (message calls) */
	bool scanned;
	double score, required;
	const char *action;             /* "no action" | "add header" | "soft reject" | "reject" */
	const char *headers;            /* X-Spam-* lines, LF ends */
	const char *symbols;            /* "NAME(score)[opts],..." for the log */
	double scan_us;                 /* time the scan took */
	/* deliveries (message calls), one per target in the order given */
	struct script_delivery *dlv;
	size_t n_dlv;
};

/* Called once per call, maybe before script_call_* returns. The result and
 * everything it points to live until the callback returns. owner: the
 * caller's id (a conn id), handed back so the callback can find its owner
 * (it may be gone). */
typedef void script_done_fn(uint64_t owner, const struct script_result *r);

/* One connection/command hook: "connect" "helo" "mail_from" "auth".
 * For "auth", the auth table (user, mechanism, result, failures_ip,
 * failures_user) is set from these fields. */
struct script_auth_info {
	const char *user, *mechanism, *result;
	int64_t failures_ip, failures_user;
};
void script_call_hook(struct script_session *ss, const char *hook,
		      const struct script_auth_info *auth, script_done_fn *done, uint64_t owner);

/* Recipient hooks: "route" (before the directory: rcpt = { addr }) or
 * "rcpt_to" (after: with the resolution fields below). */
struct script_rcpt_info {
	const char *addr;
	const char *result;             /* "found" | "notfound" | "tempfail" */
	bool local_domain;
	const char *const *mailboxes;
	size_t n_mailboxes;
	const char *const *external;
	size_t n_external;
};
void script_call_rcpt(struct script_session *ss, const char *hook, const struct script_rcpt_info *ri,
		      script_done_fn *done, uint64_t owner);

/* The message (bound with script_session_message): rules, data hooks, then
 * the deliver hook for each target (rcpt address, mailbox address). */
struct script_target {
	const char *rcpt, *mailbox;
};
void script_call_message(struct script_session *ss, const struct script_target *t, size_t n,
			 script_done_fn *done, uint64_t owner);

/* ---- the engine of a worker: current set, reload --------------------- */

struct script_engine;

/* Loads the first set; when sc's files do not load and fallback is not
 * NULL, the set from fallback's directories (the last good copy) is used
 * and the error is kept as the last reload result; later reloads read sc's
 * directories again. NULL with err when nothing loads (the worker must not
 * serve with a broken set). watch: reload on changes (inotify) of sc's
 * directories. status_path: where the stats JSON is written (after each
 * reload and every few seconds while counters move), "" for none. */
struct script_engine *script_engine_new(const struct script_conf *sc, const struct script_conf *fallback,
					struct ev_loop *loop, struct pool *pool, struct dir *dir, bool watch,
					const char *status_path, char *err, size_t err_size);
/* The current set (not referenced: take a ref to keep it). */
struct script_set *script_engine_current(struct script_engine *e);
/* Builds a new set now; 0 = swapped, -1 = kept the old one (logged). */
int script_engine_reload(struct script_engine *e);
void script_engine_free(struct script_engine **ep);

#endif
