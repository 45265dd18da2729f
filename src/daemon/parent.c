/* parent.c - the root process: worker slots, restarts with backoff,
 * reload (SIGHUP) and graceful stop (SIGTERM/SIGINT).
 *
 * The parent has no event loop: it blocks the signals it handles and waits
 * for them with sigtimedwait(), waking for timers (restart backoff, drain
 * deadlines). Nothing it does can block on a client. */
#include "daemon.h"
#include "core/climit.h"
#include "core/log.h"
#include "core/util.h"
#include "dir/dir.h"
#include "dir/penalty.h"
#include "lua/script.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RESTART_MIN_MS 250
#define RESTART_MAX_MS 30000
#define RESTART_STABLE_MS 10000   /* a worker that lived this long was fine */
#define KILL_GRACE_MS 2000        /* after a drain deadline, before SIGKILL */
#define OLD_MAX 256

struct worker_slot {
	pid_t pid;                /* 0 = not running */
	int region;               /* climit region, -1 = none */
	uint64_t started_ms;
	uint64_t restart_at_ms;   /* when pid == 0 */
	unsigned fails;           /* quick deaths in a row */
};

struct old_worker {
	pid_t pid;
	int region;
	uint64_t kill_at_ms;
};

struct parent {
	struct conf *conf;
	struct worker_slot *slots;
	size_t nslots;
	struct old_worker old[OLD_MAX];
	size_t nold;
	bool stopping;
	uint64_t stop_kill_at_ms;
	sigset_t sigs;
	pid_t self;
};

static void parent_fork_worker(struct parent *p, size_t i)
{
	struct worker_slot *w = &p->slots[i];
	w->region = climit_region_take();
	pid_t pid = fork();
	if (pid < 0) {
		log_error(NULL, "event=fork_failed error=\"%s\"", strerror(errno));
		climit_region_free(w->region);
		w->restart_at_ms = util_now_ms() + RESTART_MAX_MS;
		return;
	}
	if (pid == 0) {
		/* Workers must not outlive the parent (no stray processes). */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != p->self)
			_exit(0);
		sigprocmask(SIG_UNBLOCK, &p->sigs, NULL);
		worker_run(p->conf, (int)i, w->region);
	}
	w->pid = pid;
	w->started_ms = util_now_ms();
	log_info(NULL, "event=worker_start pid=%d slot=%zu", (int)pid, i);
}

static void parent_start_generation(struct parent *p)
{
	p->nslots = (size_t)p->conf->workers;
	p->slots = xcalloc(p->nslots, sizeof(*p->slots));
	for (size_t i = 0; i < p->nslots; i++)
		parent_fork_worker(p, i);
}

static void parent_retire_generation(struct parent *p, uint64_t deadline_ms)
{
	for (size_t i = 0; i < p->nslots; i++) {
		pid_t pid = p->slots[i].pid;
		if (pid <= 0)
			continue;
		kill(pid, SIGUSR1);     /* retire: sessions run on, no 421 */
		if (p->nold < OLD_MAX)
			p->old[p->nold++] = (struct old_worker){ pid, p->slots[i].region, deadline_ms };
		else
			kill(pid, SIGKILL);
	}
	xfree(&p->slots);
	p->nslots = 0;
}

static void parent_schedule_restart(struct parent *p, struct worker_slot *w)
{
	uint64_t now = util_now_ms();
	if (now - w->started_ms >= RESTART_STABLE_MS)
		w->fails = 0;
	uint64_t delay = 0;
	if (w->fails > 0) {
		delay = RESTART_MIN_MS << (w->fails > 7 ? 7 : w->fails - 1);
		if (delay > RESTART_MAX_MS)
			delay = RESTART_MAX_MS;
	}
	w->fails++;
	w->pid = 0;
	w->restart_at_ms = now + delay;
	(void)p;
}

static void parent_log_exit(pid_t pid, int status, const char *which)
{
	if (WIFEXITED(status))
		log_info(NULL, "event=worker_exit pid=%d status=exit:%d generation=%s",
			 (int)pid, WEXITSTATUS(status), which);
	else if (WIFSIGNALED(status))
		log_warn(NULL, "event=worker_exit pid=%d status=signal:%d generation=%s",
			 (int)pid, WTERMSIG(status), which);
}

static void parent_reap(struct parent *p)
{
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		bool found = false;
		for (size_t i = 0; i < p->nslots && !found; i++) {
			if (p->slots[i].pid != pid)
				continue;
			found = true;
			parent_log_exit(pid, status, "current");
			climit_region_free(p->slots[i].region);
			p->slots[i].region = -1;
			if (p->stopping)
				p->slots[i].pid = 0;
			else
				parent_schedule_restart(p, &p->slots[i]);
		}
		for (size_t i = 0; i < p->nold && !found; i++) {
			if (p->old[i].pid != pid)
				continue;
			found = true;
			parent_log_exit(pid, status, "old");
			climit_region_free(p->old[i].region);
			p->old[i] = p->old[--p->nold];
		}
	}
}

static size_t parent_children(const struct parent *p)
{
	size_t n = p->nold;
	for (size_t i = 0; i < p->nslots; i++)
		n += p->slots[i].pid > 0;
	return n;
}

/* Writes every line of a multi-line error list to the log. */
static void parent_log_errors(const char *event, const char *errors)
{
	const char *line = errors;
	while (line && *line) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		char q[1024];
		log_error(NULL, "event=%s status=failed error=\"%s\"", event,
			  log_quote(q, sizeof(q), line, len));
		line = nl ? nl + 1 : NULL;
	}
}

static void parent_apply_log(const struct conf *c)
{
	log_set_level((enum log_level)c->log.level);
	log_set_syslog(c->log.syslog);
}

/* The directory must open (file readable and valid, settings sane) before
 * a generation starts on it; a database that is down is not an error. */
static int parent_check_directory(const struct conf *c, char *err, size_t size)
{
	const char *e = NULL;
	if (c->directory.backend == DIRECTORY_NONE)
		return 0;
	struct dir *d = dir_open(c, &e);
	if (d == NULL) {
		snprintf(err, size, "directory: %s", e ? e : "cannot open");
		return -1;
	}
	dir_close(&d);
	return 0;
}

/* Records a reload result for `moonpost status` (state_dir/status). */
static void parent_write_status(const struct conf *c, const char *error)
{
	char path[4200], tmp[4300];
	snprintf(path, sizeof(path), "%s/status/parent.json", c->state_dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (f == NULL)
		return;
	fprintf(f, "{\"pid\":%d,\"time\":%lld,\"last_result\":\"%s\",\"last_error\":\"", (int)getpid(),
		(long long)time(NULL), error ? "failed" : "ok");
	for (const char *e = error ? error : ""; *e; e++)
		fprintf(f, (*e == '"' || *e == '\\') ? "\\%c" : (unsigned char)*e < 0x20 ? "\\u%04x" : "%c", *e);
	fprintf(f, "\"}\n");
	if (fclose(f) == 0)
		rename(tmp, path);
}

/* The scripts must load and pass their self-tests before a generation
 * starts on them (workers load the same files again). Good ones are copied
 * as the last good set for workers that start after a file turned bad. */
static int parent_check_scripts(const struct conf *c, char *err, size_t size)
{
	struct script_conf sc;
	script_conf_from(c, &sc);
	char e[1024];
	struct script_set *s = script_set_load(&sc, NULL, NULL, NULL, e, sizeof(e));
	if (s == NULL) {
		snprintf(err, size, "lua: %s", e);
		return -1;
	}
	uid_t uid = (uid_t)-1;
	gid_t gid = (gid_t)-1;
	struct passwd *pw = geteuid() == 0 ? getpwnam(c->user) : NULL;
	if (pw != NULL) {
		uid = pw->pw_uid;
		gid = pw->pw_gid;
	}
	if (script_set_snapshot(s, c->state_dir, uid, gid, e, sizeof(e)) != 0)
		log_warn(NULL, "event=lua_snapshot status=failed error=\"%s\"", e);
	script_set_unref(&s);
	return 0;
}

/* Creates state_dir, owned by the worker user when we run as root. */
static int parent_prepare_dirs(const struct conf *c, char *err, size_t size)
{
	if (mkdir(c->state_dir, 0750) != 0 && errno != EEXIST) {
		snprintf(err, size, "state_dir %s: %s", c->state_dir, strerror(errno));
		return -1;
	}
	char spool[4200], status[4200];
	snprintf(spool, sizeof(spool), "%s/spool", c->state_dir);
	snprintf(status, sizeof(status), "%s/status", c->state_dir);
	if ((mkdir(spool, 0700) != 0 && errno != EEXIST) || (mkdir(status, 0755) != 0 && errno != EEXIST)) {
		snprintf(err, size, "%s: %s", spool, strerror(errno));
		return -1;
	}
	if (geteuid() != 0 || c->user[0] == '\0')
		return 0;
	struct passwd *pw = getpwnam(c->user);
	if (pw == NULL) {
		snprintf(err, size, "user \"%s\" does not exist", c->user);
		return -1;
	}
	gid_t gid = pw->pw_gid;
	if (c->group[0] != '\0') {
		struct group *gr = getgrnam(c->group);
		if (gr == NULL) {
			snprintf(err, size, "group \"%s\" does not exist", c->group);
			return -1;
		}
		gid = gr->gr_gid;
	}
	if (chown(c->state_dir, pw->pw_uid, gid) != 0 || chown(spool, pw->pw_uid, gid) != 0 ||
	    chown(status, pw->pw_uid, gid) != 0) {
		snprintf(err, size, "chown %s: %s", c->state_dir, strerror(errno));
		return -1;
	}
	return 0;
}

static void parent_reload(struct parent *p)
{
	char *errors = NULL;
	char err[512];
	log_info(NULL, "event=reload_start config=%s", p->conf->path);
	struct conf *nc = conf_load(p->conf->path, &errors);
	if (nc == NULL) {
		parent_log_errors("reload", errors);
		free(errors);
		log_error(NULL, "event=reload status=failed error=\"configuration invalid, keeping the running one\"");
		return;
	}
	if (parent_prepare_dirs(nc, err, sizeof(err)) != 0 ||
	    parent_check_directory(nc, err, sizeof(err)) != 0 ||
	    parent_check_scripts(nc, err, sizeof(err)) != 0 ||
	    daemon_bind(nc, p->conf, err, sizeof(err)) != 0) {
		char q[1200];
		log_error(NULL, "event=reload status=failed error=\"%s\"",
			  log_quote(q, sizeof(q), err, strlen(err)));
		parent_write_status(p->conf, err);
		conf_free(&nc);
		return;
	}
	uint64_t deadline = util_now_ms() + (uint64_t)p->conf->shutdown_timeout * 1000 + KILL_GRACE_MS;
	parent_retire_generation(p, deadline);
	daemon_unbind(p->conf);
	conf_free(&p->conf);
	p->conf = nc;
	parent_apply_log(nc);
	parent_start_generation(p);
	parent_write_status(nc, NULL);
	log_info(NULL, "event=reload status=ok workers=%lld", (long long)nc->workers);
}

static void parent_stop(struct parent *p)
{
	if (p->stopping)
		return;
	p->stopping = true;
	log_info(NULL, "event=shutdown_start timeout=%lld", (long long)p->conf->shutdown_timeout);
	/* Closing our copies now: once the workers close theirs, the kernel
	 * refuses new connections instead of queueing them. */
	daemon_unbind(p->conf);
	p->stop_kill_at_ms = util_now_ms() + (uint64_t)p->conf->shutdown_timeout * 1000 + KILL_GRACE_MS;
	for (size_t i = 0; i < p->nslots; i++)
		if (p->slots[i].pid > 0)
			kill(p->slots[i].pid, SIGTERM);
	for (size_t i = 0; i < p->nold; i++)
		kill(p->old[i].pid, SIGTERM);
}

/* Runs due timers; returns ms until the next one (or -1 for none). */
static int64_t parent_timers(struct parent *p)
{
	uint64_t now = util_now_ms();
	int64_t next = -1;
#define NEXT(at) do { int64_t d_ = (int64_t)((at) - now); \
	if (next < 0 || d_ < next) next = d_; } while (0)
	for (size_t i = 0; i < p->nslots && !p->stopping; i++) {
		struct worker_slot *w = &p->slots[i];
		if (w->pid != 0)
			continue;
		if (w->restart_at_ms <= now)
			parent_fork_worker(p, i);
		else
			NEXT(w->restart_at_ms);
	}
	for (size_t i = 0; i < p->nold; i++) {
		uint64_t at = p->stopping && p->stop_kill_at_ms < p->old[i].kill_at_ms ?
			      p->stop_kill_at_ms : p->old[i].kill_at_ms;
		if (at <= now)
			kill(p->old[i].pid, SIGKILL);
		else
			NEXT(at);
	}
	if (p->stopping) {
		if (p->stop_kill_at_ms <= now) {
			for (size_t i = 0; i < p->nslots; i++)
				if (p->slots[i].pid > 0)
					kill(p->slots[i].pid, SIGKILL);
			NEXT(now + 100);
		} else {
			NEXT(p->stop_kill_at_ms);
		}
	}
#undef NEXT
	return next;
}

static void parent_wait(struct parent *p, int64_t ms)
{
	siginfo_t si;
	struct timespec ts = { .tv_sec = 3600 };
	if (ms >= 0) {
		ts.tv_sec = ms / 1000;
		ts.tv_nsec = (ms % 1000) * 1000000L;
	}
	int sig = sigtimedwait(&p->sigs, &si, &ts);
	switch (sig) {
	case SIGCHLD:
		parent_reap(p);
		break;
	case SIGHUP:
		if (!p->stopping)
			parent_reload(p);
		break;
	case SIGTERM:
	case SIGINT:
		parent_stop(p);
		break;
	default:
		break;
	}
}

int parent_run(struct conf *c)
{
	struct parent p = { .conf = c, .self = getpid() };
	char err[512];
	sigemptyset(&p.sigs);
	sigaddset(&p.sigs, SIGCHLD);
	sigaddset(&p.sigs, SIGHUP);
	sigaddset(&p.sigs, SIGTERM);
	sigaddset(&p.sigs, SIGINT);
	sigprocmask(SIG_BLOCK, &p.sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	parent_apply_log(c);
	if (climit_init() != 0)
		log_warn(NULL, "event=climit_unavailable error=\"cannot map shared memory\"");
	if (penalty_init() != 0)
		log_warn(NULL, "event=penalty_unavailable error=\"cannot map shared memory\"");
	if (parent_prepare_dirs(c, err, sizeof(err)) != 0 ||
	    parent_check_directory(c, err, sizeof(err)) != 0 ||
	    parent_check_scripts(c, err, sizeof(err)) != 0 ||
	    daemon_bind(c, NULL, err, sizeof(err)) != 0) {
		log_error(NULL, "event=startup_failed error=\"%s\"", err);
		fprintf(stderr, "moonpostd: %s\n", err);
		conf_free(&p.conf);
		return 1;
	}
	parent_start_generation(&p);
	parent_write_status(c, NULL);
	log_info(NULL, "event=ready workers=%lld config=%s", (long long)c->workers, c->path);
	while (!p.stopping || parent_children(&p) > 0) {
		int64_t ms = parent_timers(&p);
		parent_reap(&p);
		if (p.stopping && parent_children(&p) == 0)
			break;
		parent_wait(&p, ms);
	}
	log_info(NULL, "event=shutdown status=ok");
	daemon_unbind(p.conf);
	conf_free(&p.conf);
	free(p.slots);
	return 0;
}
