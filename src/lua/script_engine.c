/* script_engine.c - a worker's current script set and hot reload: inotify
 * on lib/rules/policies (debounced: an editor writes a file in several
 * steps), a complete new set built and self-tested, then swapped; the old
 * set lives on in the sessions that hold it. The status file (JSON, atomic
 * rename) is what `moonpost status` reads.
 *
 * A reload the watch starts is built on a pool thread: loading and the
 * self-tests take tens of milliseconds with the shipped rules and up to
 * lua.load_budget for a file that loops, and the loop must keep serving
 * meanwhile (a set is a state of its own, touched by one thread at a time:
 * the builder, then the loop once it is handed over). */
#include "script_int.h"
#include "core/log.h"
#include "core/pool.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#define SCRIPT_RELOAD_DEBOUNCE 0.2
#define SCRIPT_STATUS_INTERVAL 2.0

struct script_build;

struct script_engine {
	struct script_conf conf;
	struct ev_loop *loop;
	struct pool *pool;
	struct dir *dir;
	struct script_set *cur;
	int ino_fd;
	ev_io ino;
	ev_timer debounce, status_timer;
	char *status_path;
	unsigned reloads, failures;
	char last_error[1024];
	double last_reload;
	struct script_build *building;  /* a set being built on the pool, or NULL */
	bool again;             /* files changed while it was built: build again */
};

/* One off-loop build; the fields the thread reads are copies, so it never
 * touches the engine. */
struct script_build {
	struct script_engine *e;        /* NULL once the engine is gone */
	struct script_conf conf;
	struct ev_loop *loop;
	struct pool *pool;
	struct dir *dir;
	struct script_set *set;         /* the result, or NULL with err */
	double t0;
	char err[1024];
};

static void script_json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

static void script_engine_write_status(struct script_engine *e)
{
	if (e->status_path == NULL)
		return;
	char tmp[4200];
	snprintf(tmp, sizeof(tmp), "%s.tmp", e->status_path);
	FILE *f = fopen(tmp, "w");
	if (f == NULL) {
		log_warn(NULL, "event=lua_status error=\"%s: %s\"", tmp, strerror(errno));
		return;
	}
	fprintf(f, "{\"pid\":%d,\"reloads\":%u,\"failures\":%u,\"last_reload\":%.0f,\"last_result\":",
		(int)getpid(), e->reloads, e->failures, e->last_reload);
	script_json_str(f, e->last_error[0] ? "failed" : "ok");
	fprintf(f, ",\"last_error\":");
	script_json_str(f, e->last_error);
	fprintf(f, ",\"set\":%s}\n", script_set_stats_json(e->cur));
	if (fclose(f) != 0 || rename(tmp, e->status_path) != 0)
		log_warn(NULL, "event=lua_status error=\"%s: %s\"", e->status_path, strerror(errno));
}

/* A finished build (s, or NULL with err): swap it in or keep the old set. */
static int script_engine_apply(struct script_engine *e, struct script_set *s, const char *err, double t0)
{
	e->last_reload = (double)time(NULL);
	e->reloads++;
	if (s == NULL) {
		e->failures++;
		snprintf(e->last_error, sizeof(e->last_error), "%s", err);
		char q[1100];
		log_error(NULL, "event=lua_reload status=failed kept=%s error=\"%s\"", script_set_hash(e->cur),
			  log_quote(q, sizeof(q), err, strlen(err)));
		script_engine_write_status(e);
		return -1;
	}
	e->last_error[0] = '\0';
	log_info(NULL, "event=lua_reload status=ok hash=%s old=%s ms=%.1f", script_set_hash(s),
		 script_set_hash(e->cur), (script_now() - t0) * 1000);
	script_set_unref(&e->cur);
	e->cur = s;
	script_engine_write_status(e);
	return 0;
}

int script_engine_reload(struct script_engine *e)
{
	char err[1024];
	double t0 = script_now();
	struct script_set *s = script_set_load(&e->conf, e->loop, e->pool, e->dir, err, sizeof(err));
	return script_engine_apply(e, s, err, t0);
}

static void script_build_work(void *arg)
{
	struct script_build *b = arg;
	b->set = script_set_load(&b->conf, b->loop, b->pool, b->dir, b->err, sizeof(b->err));
	/* Still this thread's set: refresh the last good copy from it. */
	char err[1024];
	if (b->set != NULL && b->conf.state_dir != NULL &&
	    script_set_snapshot(b->set, b->conf.state_dir, (uid_t)-1, (gid_t)-1, err, sizeof(err)) != 0)
		log_warn(NULL, "event=lua_snapshot status=failed error=\"%s\"", err);
}

static void script_build_start(struct script_engine *e);

static void script_build_done(void *arg)
{
	struct script_build *b = arg;
	struct script_engine *e = b->e;
	if (e == NULL) {
		script_set_unref(&b->set);
		free(b);
		return;
	}
	e->building = NULL;
	script_engine_apply(e, b->set, b->err, b->t0);
	free(b);
	if (e->again) {
		e->again = false;
		script_build_start(e);
	}
}

/* At most one build at a time; changes during it make one more. */
static void script_build_start(struct script_engine *e)
{
	if (e->building) {
		e->again = true;
		return;
	}
	if (e->pool == NULL) {
		script_engine_reload(e);
		return;
	}
	struct script_build *b = xcalloc(1, sizeof(*b));
	b->e = e;
	b->conf = e->conf;
	b->loop = e->loop;
	b->pool = e->pool;
	b->dir = e->dir;
	b->t0 = script_now();
	e->building = b;
	pool_submit(e->pool, script_build_work, script_build_done, b);
}

static void script_debounce_cb(struct ev_loop *loop MP_UNUSED, ev_timer *w, int revents MP_UNUSED)
{
	script_build_start(w->data);
}

/* Whether an inotify event can change a set: a file the loader reads
 * (the "*.lua" names listdir takes, not dotfiles), or the directory itself
 * (no name: deleted, moved). Editors' swap and backup files (.x.lua.swp,
 * x.lua~) and a save's temporary file would otherwise rebuild the set on
 * every keystroke autosave. */
static bool script_ino_relevant(const struct inotify_event *ev)
{
	if (ev->len == 0 || ev->name[0] == '\0')
		return true;
	size_t n = strlen(ev->name);
	return ev->name[0] != '.' && n > 4 && strcmp(ev->name + n - 4, ".lua") == 0;
}

static void script_ino_cb(struct ev_loop *loop, ev_io *w, int revents MP_UNUSED)
{
	struct script_engine *e = w->data;
	/* Aligned for struct inotify_event (inotify(7)). */
	char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool relevant = false;
	ssize_t n;
	while ((n = read(e->ino_fd, buf, sizeof(buf))) > 0)
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;
			relevant |= script_ino_relevant(ev);
			p += sizeof(*ev) + ev->len;
		}
	if (!relevant)
		return;
	ev_timer_stop(loop, &e->debounce);
	ev_timer_set(&e->debounce, SCRIPT_RELOAD_DEBOUNCE, 0);
	ev_timer_start(loop, &e->debounce);
}

static void script_status_cb(struct ev_loop *loop MP_UNUSED, ev_timer *w, int revents MP_UNUSED)
{
	script_engine_write_status(w->data);
}

static void script_engine_watch(struct script_engine *e)
{
	e->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (e->ino_fd < 0) {
		log_warn(NULL, "event=lua_watch error=\"inotify: %s\" reload=sighup_only", strerror(errno));
		return;
	}
	const char *dirs[] = { e->conf.lib_dir, e->conf.rules_dir, e->conf.policies_dir };
	char sub[4200];
	uint32_t mask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CREATE | IN_ATTRIB;
	for (size_t i = 0; i < 3; i++)
		if (inotify_add_watch(e->ino_fd, dirs[i], mask) < 0)
			log_warn(NULL, "event=lua_watch dir=\"%s\" error=\"%s\"", dirs[i], strerror(errno));
	snprintf(sub, sizeof(sub), "%s/moonpost", e->conf.lib_dir);
	inotify_add_watch(e->ino_fd, sub, mask);
	ev_io_init(&e->ino, script_ino_cb, e->ino_fd, EV_READ);
	e->ino.data = e;
	ev_io_start(e->loop, &e->ino);
}

/* The configured files do not load: the last good copy, if it does. */
static struct script_set *script_engine_fallback(const struct script_conf *fb, struct ev_loop *loop,
						 struct pool *pool, struct dir *dir, const char *err)
{
	char q[1100], fb_err[1024];
	log_error(NULL, "event=lua_load status=failed error=\"%s\"", log_quote(q, sizeof(q), err, strlen(err)));
	struct script_set *s = script_set_load(fb, loop, pool, dir, fb_err, sizeof(fb_err));
	if (s != NULL)
		log_error(NULL, "event=lua_load status=fallback hash=%s rules=%s policies=%s "
			  "msg=\"running the last good copy until the files are fixed\"",
			  script_set_hash(s), fb->rules_dir, fb->policies_dir);
	return s;
}

struct script_engine *script_engine_new(const struct script_conf *sc, const struct script_conf *fallback,
					struct ev_loop *loop, struct pool *pool, struct dir *dir, bool watch,
					const char *status_path, char *err, size_t err_size)
{
	struct script_set *s = script_set_load(sc, loop, pool, dir, err, err_size);
	bool fell_back = false;
	if (s == NULL && fallback != NULL) {
		s = script_engine_fallback(fallback, loop, pool, dir, err);
		fell_back = s != NULL;
	}
	if (s == NULL)
		return NULL;
	struct script_engine *e = xcalloc(1, sizeof(*e));
	if (fell_back) {
		snprintf(e->last_error, sizeof(e->last_error), "%s (running the last good copy)", err);
		e->failures++;
	}
	e->conf = *sc;
	e->loop = loop;
	e->pool = pool;
	e->dir = dir;
	e->cur = s;
	e->ino_fd = -1;
	e->last_reload = (double)time(NULL);
	e->status_path = status_path && status_path[0] ? xstrdup(status_path) : NULL;
	ev_timer_init(&e->debounce, script_debounce_cb, SCRIPT_RELOAD_DEBOUNCE, 0);
	e->debounce.data = e;
	ev_timer_init(&e->status_timer, script_status_cb, SCRIPT_STATUS_INTERVAL, SCRIPT_STATUS_INTERVAL);
	e->status_timer.data = e;
	if (loop && e->status_path) {
		ev_timer_start(loop, &e->status_timer);
		ev_unref(loop);      /* the status timer alone does not keep a draining worker up */
	}
	if (watch && loop)
		script_engine_watch(e);
	log_info(NULL, "event=lua_loaded hash=%s", script_set_hash(s));
	script_engine_write_status(e);
	return e;
}

struct script_set *script_engine_current(struct script_engine *e)
{
	return e->cur;
}

void script_engine_free(struct script_engine **ep)
{
	struct script_engine *e = *ep;
	*ep = NULL;
	if (e == NULL)
		return;
	if (e->loop) {
		if (e->status_path && ev_is_active(&e->status_timer)) {
			ev_ref(e->loop);
			ev_timer_stop(e->loop, &e->status_timer);
		}
		ev_timer_stop(e->loop, &e->debounce);
		if (e->ino_fd >= 0)
			ev_io_stop(e->loop, &e->ino);
	}
	if (e->ino_fd >= 0)
		close(e->ino_fd);
	if (e->building)
		e->building->e = NULL;  /* its completion frees what it built */
	if (e->status_path)
		unlink(e->status_path);
	free(e->status_path);
	script_set_unref(&e->cur);
	free(e);
}
