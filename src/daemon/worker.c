/* worker.c - a worker process: drops privileges and serves every listener
 * on one libev loop until told to drain. */
#include "daemon.h"
#include "core/arena.h"
#include "core/climit.h"
#include "core/conn.h"
#include "core/log.h"
#include "core/pool.h"
#include "dir/dir.h"
#include "core/util.h"
#include "smtp/smtp.h"
#include "pop3/pop3.h"
#include "imap/imap.h"
#include "store/store.h"
#include "lua/script.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#define ACCEPTS_PER_EVENT 32
#define EX_CONFIG 78

struct worker_listener {
	ev_io io;
	const struct conf_listener *cl;
	struct smtp_server smtp;
	struct pop3_server pop3;
	struct imap_server imap;
};

struct worker {
	struct ev_loop *loop;
	const struct conf *conf;
	struct worker_listener *ls;
	size_t nls;
	struct dir *dir;
	struct pool *pool;
	struct pool *io_pool;
	struct script_engine *scripts;
	char *spool_dir;
	ev_signal sigterm, sigint, sigusr1;
	ev_timer deadline;
	bool draining;
};

static struct worker worker;

static void worker_drop_privileges(const struct conf *c)
{
	if (geteuid() != 0 || c->user[0] == '\0')
		return;
	struct passwd *pw = getpwnam(c->user);
	struct group *gr = c->group[0] ? getgrnam(c->group) : NULL;
	if (pw == NULL || (c->group[0] && gr == NULL)) {
		log_error(NULL, "event=privdrop_failed error=\"unknown user or group\"");
		_exit(EX_CONFIG);
	}
	gid_t gid = gr ? gr->gr_gid : pw->pw_gid;
	if (setgroups(1, &gid) != 0 || setgid(gid) != 0 || setuid(pw->pw_uid) != 0) {
		log_error(NULL, "event=privdrop_failed error=\"%s\"", strerror(errno));
		_exit(EX_CONFIG);
	}
	/* Make sure root cannot be regained. */
	if (setuid(0) == 0)
		fatal("privileges could be regained after dropping them");
}

static void worker_check_drained(void)
{
	if (worker.draining && conn_count() == 0)
		ev_break(worker.loop, EVBREAK_ALL);
}

static void worker_accept_cb(struct ev_loop *loop, ev_io *w, int revents MP_UNUSED)
{
	struct worker_listener *wl = container_of(w, struct worker_listener, io);
	for (int i = 0; i < ACCEPTS_PER_EVENT && !worker.draining; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(w->fd, (struct sockaddr *)&ss, &sl,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			/* EAGAIN: another worker took it. EMFILE and friends:
			 * the connection stays queued for a less busy worker. */
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				log_warn(NULL, "event=accept_failed error=\"%s\"", strerror(errno));
			return;
		}
		/* Replies are complete lines written at once: Nagle would only
		 * hold them back for the peer's delayed ACK (40 ms per round
		 * trip in TLS handshakes and pipelined exchanges). */
		if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6) {
			int one = 1;
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		}
		struct conn *c = conn_new(loop, fd, (struct sockaddr *)&ss, sl);
		const struct conf_smtp *lim = &worker.conf->smtp;
		if (!climit_admit(c->peer_ip, (unsigned)lim->connections_max,
				  (unsigned)lim->connections_per_ip)) {
			log_notice(c->sid, "event=connection_refused client=%s reason=too_many_connections",
				   c->peer_ip);
			if (wl->cl->protocol == PROTO_POP3)
				pop3_session_refuse(c, &wl->pop3);
			else if (wl->cl->protocol == PROTO_IMAP)
				imap_session_refuse(c, &wl->imap);
			else
				smtp_session_refuse(c, &wl->smtp);
			continue;
		}
		if (wl->cl->protocol == PROTO_POP3)
			pop3_session_start(c, &wl->pop3);
		else if (wl->cl->protocol == PROTO_IMAP)
			imap_session_start(c, &wl->imap);
		else
			smtp_session_start(c, &wl->smtp);
	}
}

static void worker_drain_deadline_cb(struct ev_loop *loop, ev_timer *w MP_UNUSED,
				     int revents MP_UNUSED)
{
	log_info(NULL, "event=drain_deadline open_connections=%zu", conn_count());
	conn_abort_all();
	ev_break(loop, EVBREAK_ALL);
}

/* shutdown: the server stops (SIGTERM) - idle sessions are told 421 now;
 * otherwise a reload retires this generation and sessions just run on. */
static void worker_drain(struct ev_loop *loop, bool shutdown)
{
	if (worker.draining)
		return;
	worker.draining = true;
	for (size_t i = 0; i < worker.nls; i++) {
		ev_io_stop(loop, &worker.ls[i].io);
		close(worker.ls[i].io.fd);
	}
	log_info(NULL, "event=drain reason=%s open_connections=%zu",
		 shutdown ? "shutdown" : "reload", conn_count());
	if (shutdown)
		conn_drain_all();
	ev_timer_init(&worker.deadline, worker_drain_deadline_cb,
		      (double)worker.conf->shutdown_timeout, 0.);
	ev_timer_start(loop, &worker.deadline);
	worker_check_drained();
}

static void worker_signal_cb(struct ev_loop *loop, ev_signal *w, int revents MP_UNUSED)
{
	worker_drain(loop, w->signum != SIGUSR1);
}

static void worker_setup_pop3(struct worker_listener *wl, const struct conf_listener *cl,
			      const struct conf *c)
{
	wl->pop3 = (struct pop3_server){
		.hostname = c->hostname,
		.starttls = cl->tls == TLSMODE_STARTTLS,
		.implicit_tls = cl->tls == TLSMODE_IMPLICIT,
		.plaintext_auth = cl->plaintext_auth,
		.apop = c->pop3.apop,
		.mark_seen = c->pop3.mark_seen,
		.ssl_ctx = c->ssl_ctx,
		.limits = {
			.line_max = (size_t)c->pop3.line_max,
			.errors_max = (int)c->pop3.errors_max,
			.idle_timeout = (double)c->pop3.idle_timeout,
		},
		.dir = worker.dir,
		.pool = worker.pool,
		.io_pool = worker.io_pool,
		.penalty_max = c->directory.penalty_max,
		.scripts = worker.scripts,
	};
}

static void worker_setup_imap(struct worker_listener *wl, const struct conf_listener *cl,
			      const struct conf *c)
{
	wl->imap = (struct imap_server){
		.hostname = c->hostname,
		.starttls = cl->tls == TLSMODE_STARTTLS,
		.implicit_tls = cl->tls == TLSMODE_IMPLICIT,
		.plaintext_auth = cl->plaintext_auth,
		.ssl_ctx = c->ssl_ctx,
		.limits = {
			.line_max = (size_t)c->imap.line_max,
			.literal_max = (uint64_t)c->imap.literal_max,
			.cmd_max = (size_t)c->imap.command_max,
			.append_max = (uint64_t)c->imap.append_max,
			.errors_max = (int)c->imap.errors_max,
			.idle_timeout = (double)c->imap.idle_timeout,
		},
		.dir = worker.dir,
		.pool = worker.pool,
		.io_pool = worker.io_pool,
		.penalty_max = c->directory.penalty_max,
		.scripts = worker.scripts,
	};
}

static void worker_setup_listener(struct worker_listener *wl,
				  const struct conf_listener *cl, const struct conf *c)
{
	wl->cl = cl;
	wl->smtp = (struct smtp_server){
		.hostname = c->hostname,
		.lmtp = cl->protocol == PROTO_LMTP,
		.starttls = cl->tls == TLSMODE_STARTTLS,
		.implicit_tls = cl->tls == TLSMODE_IMPLICIT,
		.ssl_ctx = c->ssl_ctx,
		.limits = {
			.line_max = (size_t)c->smtp.line_max,
			.errors_max = (int)c->smtp.errors_max,
			.idle_timeout = (double)c->smtp.idle_timeout,
			.message_size = (uint64_t)c->smtp.message_size,
			.rcpt_max = (unsigned)c->smtp.rcpt_max,
			.reject_bare_lf = c->smtp.bare_lf == 1,
			.reject_bare_cr = c->smtp.bare_cr == 1,
			.reject_long_lines = c->smtp.long_lines == 0,
		},
		.spool_dir = worker.spool_dir,
		.postmaster = c->smtp.postmaster,
		.io_pool = worker.io_pool,
		.auth = cl->protocol == PROTO_SUBMISSION,
		.plaintext_auth = cl->plaintext_auth,
		.dir = worker.dir,
		.pool = worker.pool,
		.penalty_max = c->directory.penalty_max,
		.scripts = worker.scripts,
	};
	if (cl->protocol == PROTO_POP3)
		worker_setup_pop3(wl, cl, c);
	if (cl->protocol == PROTO_IMAP)
		worker_setup_imap(wl, cl, c);
	ev_io_init(&wl->io, worker_accept_cb, cl->fd, EV_READ);
	ev_io_start(worker.loop, &wl->io);
}

static void worker_sweep_tmp(void *tmpl)
{
	maildir_clean_all(tmpl);
}

static void worker_sweep_done(void *tmpl MP_UNUSED)
{
	log_info(NULL, "event=tmp_sweep status=done");
}

/* The parent checked the scripts before this generation; a file edited
 * since may not load: then the last good copy the parent saved runs (the
 * engine logs it and keeps watching the real files). Only when that fails
 * too does the worker stop: it must not serve mail unfiltered. */
static void worker_scripts_start(const struct conf *c)
{
	struct script_conf sc, fb;
	char err[1024], status[4200], rules[4200], policies[4200];
	script_conf_from(c, &sc);
	fb = sc;
	script_snapshot_paths(c->state_dir, rules, policies, sizeof(rules));
	fb.rules_dir = rules;
	fb.policies_dir = policies;
	snprintf(status, sizeof(status), "%s/status/lua-%d.json", c->state_dir, (int)getpid());
	worker.scripts = script_engine_new(&sc, &fb, worker.loop, worker.pool, worker.dir, c->lua.watch,
					   status, err, sizeof(err));
	if (worker.scripts == NULL) {
		char q[1200];
		log_error(NULL, "event=lua_load status=failed error=\"%s\"", log_quote(q, sizeof(q), err, strlen(err)));
		_exit(EX_CONFIG);
	}
}

void worker_run(const struct conf *c, int id, int climit_region)
{
	log_init("worker");
	signal(SIGPIPE, SIG_IGN);
	worker_drop_privileges(c);
	climit_attach(climit_region);
	worker.conf = c;
	worker.loop = ev_default_loop(EVFLAG_AUTO);
	if (worker.loop == NULL)
		fatal("cannot create the event loop");
	const char *err = NULL;
	worker.dir = c->directory.backend == DIRECTORY_NONE ? NULL : dir_open(c, &err);
	if (worker.dir == NULL && c->directory.backend != DIRECTORY_NONE)
		log_error(NULL, "event=directory_unavailable error=\"%s\"", err ? err : "");
	worker.pool = pool_new(worker.loop, (int)c->directory.auth_threads);
	worker.io_pool = pool_new(worker.loop, (int)c->smtp.delivery_threads);
	worker.spool_dir = arena_printf(c->arena, "%s/spool", c->state_dir);
	worker_scripts_start(c);
	worker.ls = xcalloc(c->listen_count ? c->listen_count : 1, sizeof(*worker.ls));
	for (size_t i = 0; i < c->listen_count; i++)
		if (c->listen[i].fd >= 0)
			worker_setup_listener(&worker.ls[worker.nls++], &c->listen[i], c);
	ev_signal_init(&worker.sigterm, worker_signal_cb, SIGTERM);
	ev_signal_init(&worker.sigint, worker_signal_cb, SIGINT);
	ev_signal_start(worker.loop, &worker.sigterm);
	ev_signal_start(worker.loop, &worker.sigint);
	ev_signal_init(&worker.sigusr1, worker_signal_cb, SIGUSR1);
	ev_signal_start(worker.loop, &worker.sigusr1);
	conn_set_free_hook(worker_check_drained);
	/* After a crash, tmp/ files of dead processes are swept once, off the
	 * loop (a large /var/vmail takes a while); slot 0 does it. */
	if (id == 0 && c->directory.backend != DIRECTORY_NONE)
		pool_submit(worker.io_pool, worker_sweep_tmp, worker_sweep_done,
			    (void *)c->directory.maildir);
	log_info(NULL, "event=worker_ready slot=%d listeners=%zu uid=%d", id, worker.nls,
		 (int)getuid());
	ev_run(worker.loop, 0);
	pool_free(&worker.io_pool);
	pool_free(&worker.pool);
	script_engine_free(&worker.scripts);
	dir_close(&worker.dir);
	log_info(NULL, "event=worker_done slot=%d", id);
	exit(0);
}
