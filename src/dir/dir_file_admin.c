/* dir_file_admin.c - edits of the directory file for the CLI.
 *
 * An edit works on lines, so comments and order survive: it takes an
 * exclusive flock on FILE.lock, re-reads and checks the file (a broken file
 * is never rewritten), changes lines, writes FILE.tmp, fsyncs it, renames it
 * over FILE and fsyncs the directory. Running daemons pick it up within a
 * second. */
#include "dir_file.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

struct dfile_edit {
	struct dir *d;
	struct arena *a;
	const char *path;
	int lockfd;
	struct dfile_data *dd;   /* the file as it is now */
	char **lines;
	size_t n, cap;
	bool changed;
};

static const char *dfile_errf(struct arena *a, const char *fmt, const char *arg)
{
	return arena_printf(a, fmt, arg);
}

static void dfile_edit_end(struct dfile_edit *e)
{
	dfile_data_release(e->dd);
	free(e->lines);
	if (e->lockfd >= 0)
		close(e->lockfd);   /* releases the flock */
}

static void dfile_push(struct dfile_edit *e, char *line)
{
	if (e->n == e->cap) {
		e->cap = e->cap ? e->cap * 2 : 64;
		e->lines = xreallocarray(e->lines, e->cap, sizeof(*e->lines));
	}
	e->lines[e->n++] = line;
}

static int dfile_edit_begin(struct dir *d, struct arena *a, struct dfile_edit *e,
			    const char **error_r)
{
	memset(e, 0, sizeof(*e));
	e->d = d;
	e->a = a;
	e->path = dfile_path(d);
	e->lockfd = open(arena_printf(a, "%s.lock", e->path), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (e->lockfd < 0 || flock(e->lockfd, LOCK_EX) != 0) {
		*error_r = arena_printf(a, "cannot lock %s.lock: %s", e->path, strerror(errno));
		dfile_edit_end(e);
		return -1;
	}
	const char *err = NULL;
	e->dd = dfile_parse_path(e->path, &err);
	if (e->dd == NULL) {
		*error_r = arena_printf(a, "%s (fix the file first)", err);
		dfile_edit_end(e);
		return -1;
	}
	FILE *fp = fopen(e->path, "re");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	while (fp && (n = getline(&line, &cap, fp)) >= 0) {
		if (n > 0 && line[n - 1] == '\n')
			line[--n] = '\0';
		dfile_push(e, arena_strndup(a, line, (size_t)n));
	}
	free(line);
	if (fp)
		fclose(fp);
	return 0;
}

static int dfile_edit_commit(struct dfile_edit *e, const char **error_r)
{
	struct stat st;
	mode_t mode = stat(e->path, &st) == 0 ? st.st_mode & 07777 : 0640;
	char *tmp = arena_printf(e->a, "%s.tmp", e->path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	struct buf b = { 0 };
	for (size_t i = 0; i < e->n; i++)
		buf_printf(&b, "%s\n", e->lines[i]);
	bool ok = fd >= 0 && write(fd, buf_ptr(&b), b.len) == (ssize_t)b.len &&
		  fsync(fd) == 0;
	buf_free(&b);
	if (fd >= 0 && close(fd) != 0)
		ok = false;
	if (ok && st.st_uid != getuid())
		(void)fchownat(AT_FDCWD, tmp, st.st_uid, st.st_gid, 0);
	if (!ok || rename(tmp, e->path) != 0) {
		*error_r = arena_printf(e->a, "cannot write %s: %s", e->path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	char *dirpath = arena_strdup(e->a, e->path);
	int dfd = open(dirname(dirpath), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	dfile_invalidate(e->d);
	return 0;
}

/* Splits a copy of line i; returns the field count. */
static int dfile_split(struct dfile_edit *e, size_t i, char **f)
{
	char *copy = arena_strdup(e->a, e->lines[i]);
	dfile_strip_comment(copy);
	int n = 0;
	for (char *tok = copy; n < 4;) {
		while (*tok == ' ' || *tok == '\t')
			tok++;
		if (!*tok)
			break;
		f[n++] = tok;
		tok += strcspn(tok, " \t");
		if (*tok)
			*tok++ = '\0';
	}
	return n;
}

static const char *dfile_domain_of(const char *addr)
{
	const char *at = strrchr(addr, '@');
	return at ? at + 1 : "";
}

/* Removes lines matching (kind, key[, dest]); returns how many. */
static size_t dfile_remove(struct dfile_edit *e, const char *kind, const char *key,
			   const char *dest, bool by_domain)
{
	size_t removed = 0, w = 0;
	for (size_t i = 0; i < e->n; i++) {
		char *f[4];
		int n = dfile_split(e, i, f);
		bool hit = n >= 2 && strcmp(f[0], kind) == 0 &&
			   strcasecmp(by_domain ? dfile_domain_of(f[1]) : f[1], key) == 0 &&
			   (dest == NULL || (n >= 3 && strcasecmp(f[2], dest) == 0));
		if (hit)
			removed++;
		else
			e->lines[w++] = e->lines[i];
	}
	e->n = w;
	return removed;
}

int dfile_admin_domain(struct dir *d, bool add, const char *domain,
		       struct arena *a, const char **error_r)
{
	struct dfile_edit e;
	if (dfile_edit_begin(d, a, &e, error_r) != 0)
		return -1;
	bool exists = false;
	for (size_t i = 0; i < e.dd->n_domains; i++)
		exists |= strcasecmp(e.dd->domains[i], domain) == 0;
	int r = -1;
	if (add && exists) {
		*error_r = dfile_errf(a, "domain %s already exists", domain);
	} else if (!add && !exists) {
		*error_r = dfile_errf(a, "no such domain: %s", domain);
	} else if (add) {
		dfile_push(&e, arena_printf(a, "domain %s", domain));
		r = dfile_edit_commit(&e, error_r);
	} else {
		/* Like the ISPmail schema's ON DELETE CASCADE. */
		dfile_remove(&e, "user", domain, NULL, true);
		dfile_remove(&e, "alias", domain, NULL, true);
		dfile_remove(&e, "domain", domain, NULL, false);
		r = dfile_edit_commit(&e, error_r);
	}
	dfile_edit_end(&e);
	return r;
}

static const struct dfile_user *dfile_find_user(const struct dfile_data *dd, const char *email)
{
	for (size_t i = 0; i < dd->n_users; i++)
		if (strcasecmp(dd->users[i].email, email) == 0)
			return &dd->users[i];
	return NULL;
}

static char *dfile_user_line(struct arena *a, const char *email, const char *hash, int64_t quota)
{
	return quota > 0 ? arena_printf(a, "user %s %s quota=%lld", email, hash, (long long)quota)
			 : arena_printf(a, "user %s %s", email, hash);
}

int dfile_admin_user_add(struct dir *d, const struct dir_addr *addr, const char *hash,
			 int64_t quota, struct arena *a, const char **error_r)
{
	struct dfile_edit e;
	if (dfile_edit_begin(d, a, &e, error_r) != 0)
		return -1;
	bool dom = false;
	for (size_t i = 0; i < e.dd->n_domains; i++)
		dom |= strcasecmp(e.dd->domains[i], addr->domain) == 0;
	int r = -1;
	if (!dom)
		*error_r = dfile_errf(a, "no such domain: %s (add it first)", addr->domain);
	else if (dfile_find_user(e.dd, addr->full))
		*error_r = dfile_errf(a, "user %s already exists", addr->full);
	else {
		dfile_push(&e, dfile_user_line(a, addr->full, hash, quota));
		r = dfile_edit_commit(&e, error_r);
	}
	dfile_edit_end(&e);
	return r;
}

int dfile_admin_user_del(struct dir *d, const char *email, struct arena *a,
			 const char **error_r)
{
	struct dfile_edit e;
	if (dfile_edit_begin(d, a, &e, error_r) != 0)
		return -1;
	int r = -1;
	if (dfile_remove(&e, "user", email, NULL, false) == 0)
		*error_r = dfile_errf(a, "no such user: %s", email);
	else
		r = dfile_edit_commit(&e, error_r);
	dfile_edit_end(&e);
	return r;
}

int dfile_admin_user_set(struct dir *d, const char *email, const char *hash,
			 int64_t quota, struct arena *a, const char **error_r)
{
	struct dfile_edit e;
	if (dfile_edit_begin(d, a, &e, error_r) != 0)
		return -1;
	const struct dfile_user *u = dfile_find_user(e.dd, email);
	int r = -1;
	if (u == NULL) {
		*error_r = dfile_errf(a, "no such user: %s", email);
	} else {
		char *line = dfile_user_line(a, u->email, hash ? hash : u->password,
					     quota >= 0 ? quota : u->quota);
		for (size_t i = 0; i < e.n; i++) {
			char *f[4];
			if (dfile_split(&e, i, f) >= 2 && strcmp(f[0], "user") == 0 &&
			    strcasecmp(f[1], email) == 0)
				e.lines[i] = line;
		}
		r = dfile_edit_commit(&e, error_r);
	}
	dfile_edit_end(&e);
	return r;
}

int dfile_admin_alias(struct dir *d, bool add, const struct dir_addr *source,
		      const char *destination, struct arena *a, const char **error_r)
{
	struct dfile_edit e;
	if (dfile_edit_begin(d, a, &e, error_r) != 0)
		return -1;
	int r = -1;
	bool dom = false, dup = false;
	for (size_t i = 0; i < e.dd->n_domains; i++)
		dom |= strcasecmp(e.dd->domains[i], source->domain) == 0;
	for (size_t i = 0; i < e.dd->n_aliases; i++)
		dup |= strcasecmp(e.dd->aliases[i].source, source->full) == 0 &&
		       strcasecmp(e.dd->aliases[i].destination, destination) == 0;
	if (add && !dom)
		*error_r = dfile_errf(a, "no such domain: %s (add it first)", source->domain);
	else if (add && dup)
		*error_r = arena_printf(a, "alias %s -> %s already exists", source->full, destination);
	else if (add) {
		dfile_push(&e, arena_printf(a, "alias %s %s", source->full, destination));
		r = dfile_edit_commit(&e, error_r);
	} else if (dfile_remove(&e, "alias", source->full, destination, false) == 0)
		*error_r = arena_printf(a, "no such alias: %s -> %s", source->full, destination);
	else
		r = dfile_edit_commit(&e, error_r);
	dfile_edit_end(&e);
	return r;
}

int dfile_admin_list(struct dir *d, const char *what, const char *domain,
		     struct arena *a, struct dir_list *out, const char **error_r)
{
	const char *err = NULL;
	struct dfile_data *dd = dfile_parse_path(dfile_path(d), &err);
	if (dd == NULL) {
		*error_r = arena_strdup(a, err);
		return -1;
	}
	for (size_t i = 0; strcmp(what, "domain") == 0 && i < dd->n_domains; i++)
		dir_list_add(out, arena_strdup(a, dd->domains[i]), a);
	for (size_t i = 0; strcmp(what, "user") == 0 && i < dd->n_users; i++)
		if (!domain || strcasecmp(dfile_domain_of(dd->users[i].email), domain) == 0)
			dir_list_add(out, arena_printf(a, "%s quota=%lld", dd->users[i].email,
						       (long long)dd->users[i].quota), a);
	for (size_t i = 0; strcmp(what, "alias") == 0 && i < dd->n_aliases; i++)
		if (!domain || strcasecmp(dfile_domain_of(dd->aliases[i].source), domain) == 0)
			dir_list_add(out, arena_printf(a, "%s -> %s", dd->aliases[i].source,
						       dd->aliases[i].destination), a);
	dfile_data_release(dd);
	return 0;
}
