/* dir_file.c - the file directory backend.
 *
 * Format, one entry per line, '#' starts a comment:
 *   domain example.org
 *   user   john@example.org {ARGON2ID}$argon2id$...  [quota=BYTES]
 *   alias  postmaster@example.org john@example.org[,other@...]
 *   alias  @example.org catchall@example.org
 * The file is re-read when it changes (checked at most once a second) and on
 * reopen; a file with an error keeps the previous data and is logged with
 * file:line. Every good version is copied to STATE_DIR/directory.last-good;
 * a process that finds the file broken loads that copy instead, so all
 * workers agree on the data whichever of them read the file when. Lookups
 * use sorted arrays and binary search. Writes (the CLI)
 * edit lines in place under an flock and replace the file atomically. */
#include "dir_int.h"
#include "dir_file.h"
#include "core/arena.h"
#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define DFILE_RECHECK_MS 1000

struct dfile {
	char *path;
	char *snapshot;                 /* last good copy, shared by workers */
	pthread_mutex_t mu;
	struct dfile_data *data;        /* current snapshot */
	struct stat st;
	uint64_t checked_ms;
};

static int dfile_cmp_user(const void *a, const void *b)
{
	return strcasecmp(((const struct dfile_user *)a)->email,
			  ((const struct dfile_user *)b)->email);
}

static int dfile_cmp_alias(const void *a, const void *b)
{
	return strcasecmp(((const struct dfile_alias *)a)->source,
			  ((const struct dfile_alias *)b)->source);
}

static int dfile_cmp_str(const void *a, const void *b)
{
	return strcasecmp(*(char *const *)a, *(char *const *)b);
}

/* Atomically copies the file just parsed to the snapshot (best effort). */
static void dfile_save_snapshot(struct dfile *f)
{
	if (f->snapshot == NULL)
		return;
	char tmp[4200];
	snprintf(tmp, sizeof(tmp), "%s.%d", f->snapshot, (int)getpid());
	int in = open(f->path, O_RDONLY | O_CLOEXEC);
	int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	char chunk[65536];
	ssize_t n = 0;
	bool ok = in >= 0 && out >= 0;
	while (ok && (n = read(in, chunk, sizeof(chunk))) > 0)
		ok = write(out, chunk, (size_t)n) == n;
	ok = ok && n == 0;
	if (in >= 0)
		close(in);
	if (out >= 0 && close(out) != 0)
		ok = false;
	if (!ok || rename(tmp, f->snapshot) != 0)
		unlink(tmp);
}

static int dfile_reload_locked(struct dfile *f, const struct stat *st, bool use_snapshot,
			       const char **error_r)
{
	struct dfile_data *dd = dfile_parse_path(f->path, error_r);
	if (dd == NULL && !use_snapshot)
		return -1;
	if (dd == NULL) {
		f->st = *st;    /* retry when it changes again, not every second */
		const char *ignored = NULL;
		dd = f->snapshot ? dfile_parse_path(f->snapshot, &ignored) : NULL;
		if (dd == NULL)
			return -1;
		log_warn(NULL, "event=directory_reload using=%s", f->snapshot);
	} else {
		dfile_save_snapshot(f);
	}
	/* qsort/bsearch with a NULL base is undefined even for 0 items. */
	if (dd->n_domains)
		qsort(dd->domains, dd->n_domains, sizeof(*dd->domains), dfile_cmp_str);
	if (dd->n_users)
		qsort(dd->users, dd->n_users, sizeof(*dd->users), dfile_cmp_user);
	if (dd->n_aliases)
		qsort(dd->aliases, dd->n_aliases, sizeof(*dd->aliases), dfile_cmp_alias);
	if (f->data && --f->data->refs == 0)
		dfile_data_release(f->data);
	dd->refs = 1;   /* the backend's own reference */
	f->data = dd;
	f->st = *st;
	return 0;
}

/* Takes a reference to the current data, re-reading a changed file. */
static struct dfile_data *dfile_acquire(struct dfile *f)
{
	pthread_mutex_lock(&f->mu);
	uint64_t now = util_now_ms();
	if (now - f->checked_ms >= DFILE_RECHECK_MS) {
		struct stat st;
		f->checked_ms = now;
		if (stat(f->path, &st) == 0 &&
		    (st.st_ino != f->st.st_ino || st.st_size != f->st.st_size ||
		     st.st_mtim.tv_sec != f->st.st_mtim.tv_sec ||
		     st.st_mtim.tv_nsec != f->st.st_mtim.tv_nsec)) {
			const char *err = NULL;
			struct dfile_data *before = f->data;
			if (dfile_reload_locked(f, &st, true, &err) != 0 || err != NULL)
				log_error(NULL, "event=directory_reload status=failed error=\"%s\" keeping=%s",
					  err ? err : "", f->data != before ? "last-good" : "previous");
			else
				log_info(NULL, "event=directory_reload status=ok file=%s", f->path);
		}
	}
	struct dfile_data *dd = f->data;
	dd->refs++;
	pthread_mutex_unlock(&f->mu);
	return dd;
}

static void dfile_release(struct dfile *f, struct dfile_data *dd)
{
	pthread_mutex_lock(&f->mu);
	if (--dd->refs == 0)
		dfile_data_release(dd);
	pthread_mutex_unlock(&f->mu);
}

static enum dir_result dfile_domain(struct dir *d, const char *domain)
{
	struct dfile *f = d->backend;
	struct dfile_data *dd = dfile_acquire(f);
	const char *key = domain;
	bool found = dd->n_domains && bsearch(&key, dd->domains, dd->n_domains,
					      sizeof(*dd->domains), dfile_cmp_str) != NULL;
	dfile_release(f, dd);
	return found ? DIR_FOUND : DIR_NOTFOUND;
}

static enum dir_result dfile_user(struct dir *d, const char *email, struct arena *a,
				  struct dir_user *u)
{
	struct dfile *f = d->backend;
	struct dfile_data *dd = dfile_acquire(f);
	struct dfile_user key = { .email = email };
	const struct dfile_user *hit = dd->n_users == 0 ? NULL :
		bsearch(&key, dd->users, dd->n_users, sizeof(*dd->users), dfile_cmp_user);
	if (hit) {
		u->email = arena_strdup(a, hit->email);
		u->password = arena_strdup(a, hit->password);
		u->quota = hit->quota;
	}
	dfile_release(f, dd);
	return hit ? DIR_FOUND : DIR_NOTFOUND;
}

static enum dir_result dfile_aliases(struct dir *d, const char *source, struct arena *a,
				     struct dir_list *dests)
{
	struct dfile *f = d->backend;
	struct dfile_data *dd = dfile_acquire(f);
	struct dfile_alias key = { .source = source };
	const struct dfile_alias *hit = dd->n_aliases == 0 ? NULL :
		bsearch(&key, dd->aliases, dd->n_aliases, sizeof(*dd->aliases), dfile_cmp_alias);
	bool found = hit != NULL;
	if (hit) {
		/* Several rows may share a source: walk to the first. */
		while (hit > dd->aliases && dfile_cmp_alias(hit - 1, &key) == 0)
			hit--;
		for (; hit < dd->aliases + dd->n_aliases && dfile_cmp_alias(hit, &key) == 0; hit++)
			dir_list_split(dests, hit->destination, a);
	}
	dfile_release(f, dd);
	return found ? DIR_FOUND : DIR_NOTFOUND;
}

static void dfile_close(struct dir *d)
{
	struct dfile *f = d->backend;
	if (f->data && --f->data->refs == 0)
		dfile_data_release(f->data);
	pthread_mutex_destroy(&f->mu);
	free(f->snapshot);
	free(f->path);
	free(f);
}

static const struct dir_backend_ops dfile_ops = {
	.name = "file",
	.domain = dfile_domain,
	.user = dfile_user,
	.aliases = dfile_aliases,
	.admin_domain = dfile_admin_domain,
	.admin_user_add = dfile_admin_user_add,
	.admin_user_del = dfile_admin_user_del,
	.admin_user_set = dfile_admin_user_set,
	.admin_alias = dfile_admin_alias,
	.admin_list = dfile_admin_list,
	.close = dfile_close,
};

const char *dfile_path(struct dir *d)
{
	return ((struct dfile *)d->backend)->path;
}

void dfile_invalidate(struct dir *d)
{
	struct dfile *f = d->backend;
	pthread_mutex_lock(&f->mu);
	f->checked_ms = 0;
	pthread_mutex_unlock(&f->mu);
}

int dir_file_open(struct dir *d, const char **error_r)
{
	struct dfile *f = xcalloc(1, sizeof(*f));
	struct stat st;
	f->path = xstrdup(d->cfg->file);
	if (d->state_dir && d->state_dir[0]) {
		char snap[4200];
		snprintf(snap, sizeof(snap), "%s/directory.last-good", d->state_dir);
		f->snapshot = xstrdup(snap);
	}
	pthread_mutex_init(&f->mu, NULL);
	if (stat(f->path, &st) != 0) {
		static char err[512];
		snprintf(err, sizeof(err), "directory file %s: %s", f->path, strerror(errno));
		*error_r = err;
	} else if (dfile_reload_locked(f, &st, false, error_r) == 0) {
		f->checked_ms = util_now_ms();
		d->ops = &dfile_ops;
		d->backend = f;
		return 0;
	}
	pthread_mutex_destroy(&f->mu);
	free(f->snapshot);
	free(f->path);
	free(f);
	return -1;
}
