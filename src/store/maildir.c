/* maildir.c - durable Maildir delivery, usage and tmp/ cleaning. */
#include "store.h"

#include <dirent.h>
#include <pthread.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAILDIR_TMP_MAX_AGE (36 * 3600)   /* the Maildir convention */
#define MAILDIR_TMP_TAG "moonpost"

static atomic_uint maildir_counter;

/* Roots this process has already cleaned: tmp/ leftovers of a killed
 * process are removed the first time a new process delivers there. */
#define MAILDIR_CLEANED_MAX 4096
static pthread_mutex_t maildir_cleaned_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t maildir_cleaned[MAILDIR_CLEANED_MAX];
static size_t maildir_n_cleaned;

static bool maildir_first_visit(const char *root)
{
	uint64_t h = 1469598103934665603ULL;   /* FNV-1a 64 */
	for (const char *p = root; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	bool first = true;
	pthread_mutex_lock(&maildir_cleaned_mu);
	for (size_t i = 0; i < maildir_n_cleaned && first; i++)
		first = maildir_cleaned[i] != h;
	if (first)
		maildir_cleaned[maildir_n_cleaned++ % MAILDIR_CLEANED_MAX] = h;
	pthread_mutex_unlock(&maildir_cleaned_mu);
	return first;
}

static int maildir_mkdir(const char *path)
{
	return mkdir(path, 0700) == 0 || errno == EEXIST ? 0 : -1;
}

/* A Maildir++ folder carries an empty "maildirfolder" file (Dovecot and
 * Courier look for it); the new folder's entry in root is made durable
 * before a message is acknowledged into it. */
static int maildir_folder_mark(const char *root, const char *dir)
{
	char p[4200];
	snprintf(p, sizeof(p), "%s/maildirfolder", dir);
	int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
	int dfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -1;
	int rc = fsync(dfd);
	close(dfd);
	return rc;
}

/* Creates root (and its parents) and the cur/new/tmp triple of dir. */
static int maildir_create(const char *root, const char *dir)
{
	char p[4096];
	snprintf(p, sizeof(p), "%s", root);
	for (char *s = p + 1; *s; s++) {
		if (*s == '/') {
			*s = '\0';
			if (maildir_mkdir(p) != 0)
				return -1;
			*s = '/';
		}
	}
	if (maildir_mkdir(root) != 0 || maildir_mkdir(dir) != 0)
		return -1;
	static const char *const sub[] = { "cur", "new", "tmp" };
	for (size_t i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s/%s", dir, sub[i]);
		if (maildir_mkdir(p) != 0)
			return -1;
	}
	if (strcmp(root, dir) != 0)
		return maildir_folder_mark(root, dir);
	return 0;
}

/* Dovecot escapes '/' and ':' in the host part of file names. */
static void maildir_host(const char *hostname, char *dst, size_t size)
{
	size_t o = 0;
	for (const char *h = hostname; *h && o + 5 < size; h++) {
		if (*h == '/')
			o += (size_t)snprintf(dst + o, size - o, "\\057");
		else if (*h == ':')
			o += (size_t)snprintf(dst + o, size - o, "\\072");
		else
			dst[o++] = *h;
	}
	dst[o] = '\0';
}

static int maildir_write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int maildir_fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int r = fsync(fd);
	close(fd);
	return r;
}

/* Opens tmp/NAME exclusively, creating the Maildir on first use. */
static int maildir_open_tmp(const char *root, const char *dir, const char *base,
			    char *tmp, size_t size)
{
	snprintf(tmp, size, "%s/tmp/%s", dir, base);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 && errno == ENOENT && maildir_create(root, dir) == 0)
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	return fd;
}

int maildir_deliver(const struct maildir_target *t, const struct spool *content,
		    uint64_t content_lines, const char *hostname,
		    char *path_r, size_t path_size, char *err, size_t err_size)
{
	char dir[4096], host[256], base[512], tmp[4600];
	struct timeval tv;
	if (t->folder && t->folder[0])
		snprintf(dir, sizeof(dir), "%s/.%s", t->root, t->folder);
	else
		snprintf(dir, sizeof(dir), "%s", t->root);
	gettimeofday(&tv, NULL);
	maildir_host(hostname, host, sizeof(host));
	unsigned q = atomic_fetch_add(&maildir_counter, 1);
	/* The tmp name carries our tag and pid so maildir_clean_tmp() can
	 * tell a dead process's leftovers from a delivery in progress. */
	snprintf(base, sizeof(base), "%ld.M%ldP%dQ%u.%s", (long)tv.tv_sec, (long)tv.tv_usec,
		 (int)getpid(), q, host);
	char tmpbase[600];
	snprintf(tmpbase, sizeof(tmpbase), "%s.%s.%d", base, MAILDIR_TMP_TAG, (int)getpid());
	if (maildir_first_visit(t->root))
		maildir_clean_tmp(t->root);
	int fd = maildir_open_tmp(t->root, dir, tmpbase, tmp, sizeof(tmp));
	if (fd < 0) {
		snprintf(err, err_size, "create %s: %s", tmp, strerror(errno));
		return -1;
	}
	uint64_t size = t->prefix_len + spool_size(content);
	uint64_t crlf_size = size + t->prefix_lines + content_lines;
	if (maildir_write_all(fd, t->prefix, t->prefix_len) != 0 ||
	    spool_copy_to(content, fd) != 0 || fdatasync(fd) != 0) {
		snprintf(err, err_size, "write %s: %s", tmp, strerror(errno));
		close(fd);
		unlink(tmp);
		return -1;
	}
	close(fd);
	if (t->flags)
		snprintf(path_r, path_size, "%s/cur/%s,S=%llu,W=%llu:2,%s", dir, base,
			 (unsigned long long)size, (unsigned long long)crlf_size, t->flags);
	else
		snprintf(path_r, path_size, "%s/new/%s,S=%llu,W=%llu", dir, base,
			 (unsigned long long)size, (unsigned long long)crlf_size);
	char final_dir[4200];
	snprintf(final_dir, sizeof(final_dir), "%s/%s", dir, t->flags ? "cur" : "new");
	if (rename(tmp, path_r) != 0 || maildir_fsync_dir(final_dir) != 0) {
		snprintf(err, err_size, "rename to %s: %s", path_r, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* S=size from a Dovecot-style name, or stat() when absent. */
static int64_t maildir_file_size(int dfd, const char *name)
{
	const char *s = strstr(name, ",S=");
	if (s)
		return strtoll(s + 3, NULL, 10);
	struct stat st;
	return fstatat(dfd, name, &st, 0) == 0 ? st.st_size : 0;
}

static int64_t maildir_dir_usage(const char *dir)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return errno == ENOENT ? 0 : -1;
	int64_t total = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			total += maildir_file_size(dirfd(d), e->d_name);
	closedir(d);
	return total;
}

/* Calls fn(dir) for root and every ".Folder" below it. */
static int maildir_each_folder(const char *root, int64_t (*fn)(const char *dir, void *ctx),
			       void *ctx, int64_t *sum)
{
	DIR *d = opendir(root);
	if (d == NULL)
		return errno == ENOENT ? 0 : -1;
	char p[4200];
	*sum += fn(root, ctx);
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		/* ".." and "..moonpost-deleted.*" (a DELETE in progress) are
		 * not folders: Maildir++ folder names never start with ".." */
		if (e->d_name[0] != '.' || strcmp(e->d_name, ".") == 0 || e->d_name[1] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", root, e->d_name);
		*sum += fn(p, ctx);
	}
	closedir(d);
	return 0;
}

static int64_t maildir_folder_usage(const char *dir, void *ctx)
{
	(void)ctx;
	char p[4300];
	snprintf(p, sizeof(p), "%s/cur", dir);
	int64_t a = maildir_dir_usage(p);
	snprintf(p, sizeof(p), "%s/new", dir);
	int64_t b = maildir_dir_usage(p);
	return (a < 0 ? 0 : a) + (b < 0 ? 0 : b);
}

int64_t maildir_usage(const char *root)
{
	int64_t sum = 0;
	return maildir_each_folder(root, maildir_folder_usage, NULL, &sum) == 0 ? sum : -1;
}

/* A tmp file of ours from a process that no longer runs, or any file past
 * the Maildir age limit. */
static bool maildir_tmp_stale(int dfd, const char *name, time_t now)
{
	/* The tag is the last ".moonpost." (the host part may contain one). */
	const char *tag = NULL;
	for (const char *p = name; (p = strstr(p, "." MAILDIR_TMP_TAG ".")) != NULL; p++)
		tag = p;
	if (tag) {
		long pid = strtol(tag + strlen(MAILDIR_TMP_TAG) + 2, NULL, 10);
		if (pid > 0 && kill((pid_t)pid, 0) != 0 && errno == ESRCH)
			return true;
	}
	struct stat st;
	return fstatat(dfd, name, &st, 0) == 0 && now - st.st_mtime > MAILDIR_TMP_MAX_AGE;
}

static int64_t maildir_folder_clean(const char *dir, void *ctx)
{
	(void)ctx;
	char p[4300];
	snprintf(p, sizeof(p), "%s/tmp", dir);
	DIR *d = opendir(p);
	if (d == NULL)
		return 0;
	time_t now = time(NULL);
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.' && maildir_tmp_stale(dirfd(d), e->d_name, now))
			unlinkat(dirfd(d), e->d_name, 0);
	closedir(d);
	return 0;
}

void maildir_clean_tmp(const char *root)
{
	int64_t unused = 0;
	maildir_each_folder(root, maildir_folder_clean, NULL, &unused);
}

void maildir_clean_all(const char *tmpl)
{
	/* "/var/vmail/%d/%n/Maildir" -> glob "/var/vmail/ * / * /Maildir". */
	char pattern[4096];
	size_t o = 0;
	for (const char *p = tmpl; *p && o + 2 < sizeof(pattern); p++) {
		if (p[0] == '%' && p[1] && strchr("sudn", p[1])) {
			pattern[o++] = '*';
			p++;
		} else {
			pattern[o++] = *p;
		}
	}
	pattern[o] = '\0';
	glob_t g;
	if (glob(pattern, GLOB_NOSORT | GLOB_ONLYDIR, NULL, &g) != 0)
		return;
	for (size_t i = 0; i < g.gl_pathc; i++)
		maildir_clean_tmp(g.gl_pathv[i]);
	globfree(&g);
}
