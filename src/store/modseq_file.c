/* modseq_file.c - the modseq file on disk (format and rules in modseq.h):
 * locked reads, appends and rewrites, and modseq_sync, which compares a
 * folder with the file and gives changes found there their modseqs.
 * Everything here blocks (pool threads only). */
#include "modseq.h"
#include "mailbox.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MODSEQ_LOCK_TRIES 5             /* the file replaced under us each time: give up */
#define MODSEQ_READ_CHUNK 65536

uint64_t modseq_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Opens and locks path; a file that a compaction replaced while we waited
 * for the lock is opened again. 0 with the fd and its size, or -1. */
static int modseq_lock(const char *path, bool excl, int *fd_r, size_t *size_r)
{
	for (int attempt = 0; attempt < MODSEQ_LOCK_TRIES; attempt++) {
		int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0)
			return -1;
		struct stat a, b;
		if (flock(fd, excl ? LOCK_EX : LOCK_SH) != 0 || fstat(fd, &a) != 0) {
			int e = errno;
			close(fd);
			errno = e;
			return -1;
		}
		if (stat(path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
			*fd_r = fd;
			*size_r = (size_t)a.st_size;
			return 0;
		}
		close(fd);
	}
	errno = EAGAIN;
	return -1;
}

static void modseq_read(struct modseq *ms)
{
	if (ms->file_len > MODSEQ_FILE_MAX)
		return;         /* not ours, or broken: afresh, and rewritten */
	char *data = xmalloc(ms->file_len + 1);
	size_t got = 0;
	while (got < ms->file_len) {
		ssize_t r = pread(ms->fd, data + got, ms->file_len - got, (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	ms->file_len = got;
	/* empty, broken, another UIDVALIDITY or version: ms stays as
	 * modseq_init made it, afresh (reset) */
	if (modseq_parse(ms, data, got, &ms->good_len) < 0)
		ms->good_len = 0;
	free(data);
}

static int modseq_open_as(const char *root, uint32_t uidvalidity, bool excl, bool gone_only,
			  struct modseq **ms_r)
{
	struct modseq *ms = xcalloc(1, sizeof(*ms));
	modseq_init(ms, uidvalidity, modseq_now());
	ms->gone_only = gone_only;
	size_t n = strlen(root) + sizeof("/" MODSEQ_NAME);
	ms->path = xmalloc(n);
	snprintf(ms->path, n, "%s/" MODSEQ_NAME, root);
	int fd;
	size_t size;
	if (modseq_lock(ms->path, excl, &fd, &size) < 0) {
		int e = errno;
		modseq_free(&ms);
		errno = e;
		return -1;
	}
	ms->file_len = size;
	ms->fd = fd;
	ms->excl = excl;
	modseq_read(ms);
	*ms_r = ms;
	return 0;
}

int modseq_open(const char *root, uint32_t uidvalidity, bool excl, struct modseq **ms_r)
{
	return modseq_open_as(root, uidvalidity, excl, false, ms_r);
}

int modseq_open_gone(const char *root, uint32_t uidvalidity, struct modseq **ms_r)
{
	return modseq_open_as(root, uidvalidity, false, true, ms_r);
}

static int modseq_write_all(int fd, const char *p, size_t n, off_t off)
{
	while (n > 0) {
		ssize_t w = pwrite(fd, p, n, off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
		off += w;
	}
	return 0;
}

/* The whole state into a new file renamed over the old one (never
 * truncated in place: a reader of the old inode finishes undisturbed). */
static int modseq_rewrite(struct modseq *ms)
{
	struct buf b = { 0 };
	char tmp[4200];
	snprintf(tmp, sizeof(tmp), "%s.tmp", ms->path);
	modseq_format(ms, &b);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int rc = fd >= 0 ? modseq_write_all(fd, buf_ptr(&b), b.len, 0) : -1;
	if (fd >= 0 && close(fd) != 0)
		rc = -1;
	if (rc == 0)
		rc = rename(tmp, ms->path);
	if (rc != 0 && fd >= 0)
		unlink(tmp);
	buf_free(&b);
	if (rc != 0)
		return -1;
	/* our lock is on the old inode now: no more writes through it */
	close(ms->fd);
	ms->fd = -1;
	ms->reset = false;
	ms->lines = ms->live + ms->ngone;
	buf_clear(&ms->pending);
	return 0;
}

int modseq_commit(struct modseq *ms)
{
	if (ms->fd < 0 || !ms->excl) {
		errno = EBADF;
		return -1;
	}
	if (modseq_rewrite_due(ms))
		return modseq_rewrite(ms);
	if (ms->pending.len == 0)
		return 0;
	/* a torn or bad tail (a crash mid-append) goes first */
	if (ms->good_len < ms->file_len && ftruncate(ms->fd, (off_t)ms->good_len) != 0)
		return -1;
	ms->file_len = ms->good_len;
	if (modseq_write_all(ms->fd, buf_ptr(&ms->pending), ms->pending.len, (off_t)ms->file_len) < 0) {
		int e = errno;
		if (ftruncate(ms->fd, (off_t)ms->file_len) != 0) {
			/* the next writer cuts the partial line off */
		}
		errno = e;
		return -1;
	}
	ms->file_len += ms->pending.len;
	ms->good_len = ms->file_len;
	buf_clear(&ms->pending);
	return 0;
}

void modseq_unlock(struct modseq *ms)
{
	if (ms->fd >= 0)
		close(ms->fd);
	ms->fd = -1;
}

/* --- the folder against the file --- */

static const char *modseq_info(const char *file)
{
	const char *i = strstr(file, ":2,");
	return i ? i + 3 : "";
}

/* Whether the file says anything that the folder contradicts. */
static bool modseq_sync_dirty(const struct modseq *ms, const struct mailbox *mb)
{
	char key[MODSEQ_FLAGS_MAX + 2];
	size_t matched = 0;
	if (ms->reset)
		return true;
	for (size_t i = 0; i < mb->count; i++) {
		const struct mailbox_msg *m = &mb->msgs[i];
		if (m->uid == 0)
			continue;       /* no UID (exhausted): not an IMAP message */
		const struct modseq_msg *r = modseq_get(ms, m->uid);
		modseq_key(modseq_info(m->file), key);
		if (r == NULL || strcmp(r->flags, key) != 0)
			return true;
		matched++;
	}
	return matched != ms->live;     /* a live message the folder lacks */
}

/* What the uidlist says of the UIDs wanted (ascending). */
struct modseq_want {
	const uint32_t *uids;
	size_t n;
	char **base, **ext;
};

static int modseq_want_rec(void *ctx, const struct uidlist_rec *r)
{
	struct modseq_want *w = ctx;
	size_t lo = 0, hi = w->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (w->uids[mid] == r->uid) {
			free(w->base[mid]);
			free(w->ext[mid]);
			w->base[mid] = xstrndup(r->name.p, r->name.len);
			w->ext[mid] = xstrndup(r->ext.p, r->ext.len);
			return 0;
		}
		if (w->uids[mid] < r->uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

static void modseq_uidlist_names(const char *root, struct modseq_want *w)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/" UIDLIST_NAME, root);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	struct uidlist_parser *p = xmalloc(sizeof(*p));
	char *chunk = xmalloc(MODSEQ_READ_CHUNK);
	uidlist_parser_init(p);
	ssize_t n;
	while ((n = read(fd, chunk, MODSEQ_READ_CHUNK)) > 0)
		if (uidlist_parser_feed(p, chunk, (size_t)n, modseq_want_rec, w) < 0)
			break;
	close(fd);
	free(chunk);
	free(p);
}

/* The octets of a message with CRLF line ends: ",W=" in its name, W in
 * its uidlist record, else counted. */
static uint64_t modseq_vsize(const char *base, const char *ext, int fd)
{
	const char *w = strstr(base, ",W=");
	uint64_t v = 0;
	if (w != NULL && util_parse_uint(w + 3, strspn(w + 3, "0123456789"), UINT64_MAX, &v) == 0)
		return v;
	struct str e = uidlist_ext_get(str_from_cstr(ext), 'W');
	if (e.len > 0 && util_parse_uint(e.p, e.len, UINT64_MAX, &v) == 0)
		return v;
	char chunk[8192];
	ssize_t n;
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		for (ssize_t i = 0; i < n; i++)
			v += 1 + (chunk[i] == '\n');
	return v;
}

/* Puts a message that the scan missed back into mb (in UID order). */
static void modseq_mb_insert(struct mailbox *mb, uint32_t uid, char *base, char *file, char *ext,
			     uint64_t vsize)
{
	size_t i = mb->count;
	while (i > 0 && mb->msgs[i - 1].uid > uid)
		i--;
	mb->msgs = xreallocarray(mb->msgs, mb->count + 1, sizeof(*mb->msgs));
	memmove(&mb->msgs[i + 1], &mb->msgs[i], (mb->count - i) * sizeof(*mb->msgs));
	mb->count++;
	struct mailbox_msg *m = &mb->msgs[i];
	memset(m, 0, sizeof(*m));
	m->uid = uid;
	m->base = base;
	m->file = file;
	m->ext = ext;
	m->vsize = vsize;
	m->seen = strchr(modseq_info(file), 'S') != NULL;
	struct str p = uidlist_ext_get(str_from_cstr(ext), 'P');
	if (p.len > 0 && p.len <= 70)
		m->uidl = xstrndup(p.p, p.len);
}

/* The live UIDs of the file that mb lacks, ascending (*n_r of them). */
static uint32_t *modseq_missing(const struct modseq *ms, const struct mailbox *mb, size_t *n_r)
{
	uint32_t *v = xcalloc(ms->live ? ms->live : 1, sizeof(*v));
	size_t n = 0, k = 0;
	for (size_t i = 0; i < ms->count && n < ms->live; i++) {
		if (!ms->msgs[i].live)
			continue;
		while (k < mb->count && mb->msgs[k].uid < ms->msgs[i].uid)
			k++;
		if (k == mb->count || mb->msgs[k].uid != ms->msgs[i].uid)
			v[n++] = ms->msgs[i].uid;
	}
	*n_r = n;
	return v;
}

/* Live messages the scan did not see: still there (renamed while the
 * directory was read: back into mb) or gone (expunged at *m). */
static void modseq_sync_missing(struct modseq *ms, struct mailbox *mb, uint64_t *m)
{
	size_t n, ngone = 0;
	uint32_t *uids = modseq_missing(ms, mb, &n);
	struct modseq_want w = { uids, n, xcalloc(n + 1, sizeof(char *)), xcalloc(n + 1, sizeof(char *)) };
	if (n > 0)
		modseq_uidlist_names(mb->root, &w);
	for (size_t i = 0; i < n; i++) {
		int fd = -1;
		char *file = NULL;
		if (w.base[i] != NULL) {
			size_t len = strlen(w.base[i]) + 5;
			file = xmalloc(len);
			snprintf(file, len, "new/%s", w.base[i]);
			fd = mailbox_file_open(mb->root, w.base[i], &file);
		}
		if (fd < 0) {
			uids[ngone++] = uids[i];
			free(file);
			continue;
		}
		modseq_mb_insert(mb, uids[i], w.base[i], file, w.ext[i], modseq_vsize(w.base[i], w.ext[i], fd));
		w.base[i] = w.ext[i] = NULL;
		close(fd);
	}
	if (ngone > 0) {
		if (*m == 0)
			*m = modseq_new(ms, modseq_now());
		modseq_expunge(ms, uids, ngone, *m);
	}
	for (size_t i = 0; i < n; i++) {
		free(w.base[i]);
		free(w.ext[i]);
	}
	free(w.base);
	free(w.ext);
	free(uids);
}

/* Drops mb->msgs[i] (expunged after the scan saw it). */
static void modseq_mb_drop(struct mailbox *mb, size_t i)
{
	struct mailbox_msg *m = &mb->msgs[i];
	free(m->base);
	free(m->file);
	free(m->ext);
	free(m->uidl);
	memmove(m, m + 1, (mb->count - i - 1) * sizeof(*m));
	mb->count--;
}

/* Whether msg's file is still there (then its current name is in msg). */
static bool modseq_still_there(const char *root, struct mailbox_msg *msg)
{
	int fd = mailbox_file_open(root, msg->base, &msg->file);
	if (fd < 0)
		return false;
	close(fd);
	msg->seen = strchr(modseq_info(msg->file), 'S') != NULL;
	return true;
}

/* Under LOCK_EX: every message whose state differs from its record. A
 * difference may be a scan older than a change another session made and
 * recorded since (a rename, an expunge): the file as it is now decides. */
static void modseq_sync_apply(struct modseq *ms, struct mailbox *mb)
{
	char key[MODSEQ_FLAGS_MAX + 2];
	uint64_t m = 0;         /* one modseq for all the changes found now */
	modseq_sync_missing(ms, mb, &m);
	for (size_t i = 0; i < mb->count; i++) {
		struct mailbox_msg *msg = &mb->msgs[i];
		if (msg->uid == 0)
			continue;
		const struct modseq_msg *r = modseq_get(ms, msg->uid);
		modseq_key(modseq_info(msg->file), key);
		if (r != NULL && strcmp(r->flags, key) == 0)
			continue;
		bool was_gone = r == NULL && modseq_was_expunged(ms, msg->uid);
		if ((r != NULL || was_gone) && modseq_still_there(mb->root, msg)) {
			modseq_key(modseq_info(msg->file), key);
			if (r != NULL && strcmp(r->flags, key) == 0)
				continue;
		} else if (was_gone) {
			modseq_mb_drop(mb, i--);
			continue;
		}
		if (m == 0)
			m = modseq_new(ms, modseq_now());
		modseq_set(ms, msg->uid, m, key);
	}
}

int modseq_sync(struct mailbox *mb, struct modseq **ms_r)
{
	struct modseq *ms;
	if (modseq_open(mb->root, mb->hdr.uidvalidity, false, &ms) < 0)
		return -1;
	if (!modseq_sync_dirty(ms, mb)) {
		modseq_unlock(ms);
		*ms_r = ms;
		return 0;
	}
	/* flock cannot upgrade atomically: again, exclusive, from the start */
	modseq_free(&ms);
	if (modseq_open(mb->root, mb->hdr.uidvalidity, true, &ms) < 0)
		return -1;
	modseq_sync_apply(ms, mb);
	int rc = modseq_commit(ms);
	modseq_unlock(ms);
	if (rc < 0) {
		modseq_free(&ms);
		return -1;
	}
	*ms_r = ms;
	return 0;
}
