/* mailbox.c - a Maildir folder with Dovecot-compatible UIDs: scan, UID
 * assignment under Dovecot's uidlist lock, flags by rename, expunge.
 * Everything here blocks (pool threads only, see mailbox.h). */
#include "mailbox.h"
#include "core/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAILBOX_READ_CHUNK 65536

/* What the uidlist says: records with owned strings. */
struct mailbox_uidlist {
	struct uidlist_header hdr;
	struct mailbox_msg *recs;     /* uid, base, ext, uidl */
	size_t count, cap;
	bool exists;
	uint32_t old_uidvalidity;     /* of a broken file, when its header parsed */
};

static void mailbox_msg_clear(struct mailbox_msg *m)
{
	free(m->base);
	free(m->file);
	free(m->ext);
	free(m->uidl);
	memset(m, 0, sizeof(*m));
}

static void mailbox_uidlist_clear(struct mailbox_uidlist *u)
{
	for (size_t i = 0; i < u->count; i++)
		mailbox_msg_clear(&u->recs[i]);
	free(u->recs);
	memset(u, 0, sizeof(*u));
}

static struct mailbox_msg *mailbox_push(struct mailbox_msg **v, size_t *n, size_t *cap)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		*v = xreallocarray(*v, *cap, sizeof(**v));
	}
	struct mailbox_msg *m = &(*v)[(*n)++];
	memset(m, 0, sizeof(*m));
	return m;
}

static int mailbox_uidlist_rec(void *ctx, const struct uidlist_rec *r)
{
	struct mailbox_uidlist *u = ctx;
	struct mailbox_msg *m = mailbox_push(&u->recs, &u->count, &u->cap);
	m->uid = r->uid;
	m->base = xstrndup(r->name.p, r->name.len);
	m->ext = xstrndup(r->ext.p, r->ext.len);
	struct str p = uidlist_ext_get(r->ext, 'P');
	if (p.len > 0 && p.len <= 70)
		m->uidl = xstrndup(p.p, p.len);
	struct str w = uidlist_ext_get(r->ext, 'W');
	uint64_t v;
	if (w.len && util_parse_uint(w.p, w.len, UINT64_MAX, &v) == 0)
		m->vsize = v;
	return 0;
}

/* Reads root/dovecot-uidlist. 0 (also when it does not exist or is broken:
 * then it is rebuilt with a new UIDVALIDITY, as Dovecot does), -1 on an
 * I/O error. */
static int mailbox_uidlist_read(const char *root, struct mailbox_uidlist *u)
{
	char path[4096];
	memset(u, 0, sizeof(*u));
	snprintf(path, sizeof(path), "%s/" UIDLIST_NAME, root);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	struct uidlist_parser *p = xmalloc(sizeof(*p));
	char *chunk = xmalloc(MAILBOX_READ_CHUNK);
	uidlist_parser_init(p);
	ssize_t n;
	int rc = 0;
	while ((n = read(fd, chunk, MAILBOX_READ_CHUNK)) > 0)
		if (uidlist_parser_feed(p, chunk, (size_t)n, mailbox_uidlist_rec, u) < 0)
			break;
	if (n < 0)
		rc = -1;
	close(fd);
	if (rc == 0 && uidlist_parser_finish(p) == 0) {
		u->hdr = p->hdr;
		u->exists = true;
	} else {
		mailbox_uidlist_clear(u);
		u->old_uidvalidity = p->hdr.uidvalidity;
	}
	free(chunk);
	free(p);
	return rc;
}

/* qsort, which must not see a NULL array even for 0 elements; input in
 * order already (a uidlist written in UID order by Dovecot or us, whose
 * names grow with time) costs one pass, not a sort. */
static void mailbox_sort(struct mailbox_msg *v, size_t n,
			 int (*cmp)(const void *, const void *))
{
	size_t i = 1;
	while (i < n && cmp(&v[i - 1], &v[i]) <= 0)
		i++;
	if (i < n)
		qsort(v, n, sizeof(*v), cmp);
}

/* --- file names --- */

/* Length of the base name: up to ":2," (Maildir "info"). */
static size_t mailbox_base_len(const char *name)
{
	const char *c = strchr(name, ':');
	return c ? (size_t)(c - name) : strlen(name);
}

static const char *mailbox_flags_of(const char *name)
{
	const char *c = strstr(name, ":2,");
	return c ? c + 3 : "";
}

/* ",W=123" in the base name (Dovecot's and ours), 1 if found. */
static int mailbox_name_vsize(const char *base, uint64_t *v)
{
	const char *w = strstr(base, ",W=");
	if (w == NULL)
		return 0;
	w += 3;
	size_t n = strspn(w, "0123456789");
	return util_parse_uint(w, n, UINT64_MAX, v) == 0;
}

/* Size with every bare LF counted as CRLF (RFC 1939 octet counts). */
static int mailbox_count_vsize(const char *root, const char *file, uint64_t *v)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", root, file);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	char *b = xmalloc(MAILBOX_READ_CHUNK);
	uint64_t total = 0;
	char prev = 0;
	ssize_t n;
	while ((n = read(fd, b, MAILBOX_READ_CHUNK)) > 0) {
		for (ssize_t i = 0; i < n; i++) {
			if (b[i] == '\n' && prev != '\r')
				total++;
			prev = b[i];
		}
		total += (uint64_t)n;
	}
	free(b);
	close(fd);
	*v = total;
	return n < 0 ? -1 : 0;
}

/* --- scanning --- */

struct mailbox_scan {
	struct mailbox_msg *v;
	size_t count, cap;
};

static bool mailbox_name_bad(const char *n)
{
	for (; *n; n++)
		if ((unsigned char)*n < 0x20 || *n == 0x7f || *n == '/')
			return true;
	return false;
}

static int mailbox_scan_dir(const char *root, const char *sub, struct mailbox_scan *s)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", root, sub);
	DIR *d = opendir(path);
	if (d == NULL)
		return -1;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		/* A name with a control byte (a newline) cannot be a uidlist
		 * record: Dovecot ignores such files too. */
		if (de->d_name[0] == '.' || mailbox_name_bad(de->d_name))
			continue;
		struct mailbox_msg *m = mailbox_push(&s->v, &s->count, &s->cap);
		m->base = xstrndup(de->d_name, mailbox_base_len(de->d_name));
		size_t fl = strlen(sub) + 1 + strlen(de->d_name) + 1;
		m->file = xmalloc(fl);
		snprintf(m->file, fl, "%s/%s", sub, de->d_name);
		m->seen = strchr(mailbox_flags_of(de->d_name), 'S') != NULL;
		mailbox_name_vsize(m->base, &m->vsize);  /* ,W= wins over the record's W */
	}
	closedir(d);
	return 0;
}

static int mailbox_cmp_base(const void *a, const void *b)
{
	return strcmp(((const struct mailbox_msg *)a)->base, ((const struct mailbox_msg *)b)->base);
}

/* Dovecot's order for new UIDs: delivery time (the number before the first
 * '.'), then the name. */
static int mailbox_cmp_delivery(const void *a, const void *b)
{
	const char *x = ((const struct mailbox_msg *)a)->base;
	const char *y = ((const struct mailbox_msg *)b)->base;
	unsigned long long tx = strtoull(x, NULL, 10), ty = strtoull(y, NULL, 10);
	if (tx != ty)
		return tx < ty ? -1 : 1;
	return strcmp(x, y);
}

static int mailbox_cmp_uid(const void *a, const void *b)
{
	uint32_t x = ((const struct mailbox_msg *)a)->uid, y = ((const struct mailbox_msg *)b)->uid;
	return x < y ? -1 : x > y;
}

static void mailbox_scan_clear(struct mailbox_scan *s);

/* new/ then cur/: a file moved from new/ to cur/ meanwhile is still seen.
 * Duplicates (seen in both) keep the cur/ entry. */
static int mailbox_scan(const char *root, struct mailbox_scan *s)
{
	memset(s, 0, sizeof(*s));
	if (mailbox_scan_dir(root, "new", s) < 0 || mailbox_scan_dir(root, "cur", s) < 0) {
		mailbox_scan_clear(s);
		return -1;
	}
	mailbox_sort(s->v, s->count, mailbox_cmp_base);
	size_t out = 0;
	for (size_t i = 0; i < s->count; i++) {
		if (out > 0 && strcmp(s->v[out - 1].base, s->v[i].base) == 0) {
			bool cur = strncmp(s->v[i].file, "cur/", 4) == 0;
			if (cur) {
				mailbox_msg_clear(&s->v[out - 1]);
				s->v[out - 1] = s->v[i];
			} else {
				mailbox_msg_clear(&s->v[i]);
			}
			continue;
		}
		s->v[out++] = s->v[i];
	}
	s->count = out;
	return 0;
}

static void mailbox_scan_clear(struct mailbox_scan *s)
{
	for (size_t i = 0; i < s->count; i++)
		mailbox_msg_clear(&s->v[i]);
	free(s->v);
	memset(s, 0, sizeof(*s));
}

/* new/NAME -> cur/NAME:2, (the message is no longer \Recent). */
static void mailbox_move_new(const char *root, struct mailbox_msg *m)
{
	if (strncmp(m->file, "new/", 4) != 0)
		return;
	char from[4096], to[4096];
	snprintf(from, sizeof(from), "%s/%s", root, m->file);
	const char *name = m->file + 4;
	int n = snprintf(to, sizeof(to), "%s/cur/%s%s", root, name, strchr(name, ':') ? "" : ":2,");
	if (n < 0 || (size_t)n >= sizeof(to) || rename(from, to) != 0)
		return;     /* someone else moved it: found again on open */
	free(m->file);
	m->file = xstrdup(to + strlen(root) + 1);
}

/* --- locks --- */

static int mailbox_pop3_lock(const char *root, int *fd_r)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/" MAILBOX_POP3_LOCK_NAME, root);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		int e = errno;
		close(fd);
		errno = e;
		return e == EWOULDBLOCK ? 1 : -1;
	}
	*fd_r = fd;
	return 0;
}

/* Dovecot's dotlock: O_EXCL create; a lock older than the stale timeout
 * belongs to a dead writer and is removed. Returns the fd or -1. */
static int mailbox_uidlist_lock(const char *root)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/" UIDLIST_LOCK_NAME, root);
	for (int waited = 0; waited < UIDLIST_LOCK_WAIT_MS; waited += 10) {
		int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd >= 0 || errno != EEXIST)
			return fd;
		struct stat st;
		if (stat(path, &st) == 0 && time(NULL) - st.st_mtime > UIDLIST_LOCK_STALE_S) {
			unlink(path);
			continue;
		}
		usleep(10000);
	}
	errno = EAGAIN;
	return -1;
}

static int mailbox_write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int mailbox_fsync_dir(const char *root)
{
	int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	close(fd);
	return rc;
}

/* Writes content into the lock file, then renames it over the uidlist
 * (which also releases the lock). On failure the lock is removed. */
static int mailbox_uidlist_replace(const char *root, int lock_fd, const struct buf *content)
{
	char lock[4096], path[4096];
	snprintf(lock, sizeof(lock), "%s/" UIDLIST_LOCK_NAME, root);
	snprintf(path, sizeof(path), "%s/" UIDLIST_NAME, root);
	int rc = mailbox_write_all(lock_fd, buf_ptr(content), content->len);
	if (rc == 0)
		rc = fdatasync(lock_fd);
	close(lock_fd);
	if (rc == 0)
		rc = rename(lock, path);
	if (rc != 0) {
		unlink(lock);
		return -1;
	}
	return mailbox_fsync_dir(root);
}

/* RFC 3501 2.3.1.1: a mailbox deleted (or renamed away) and made again
 * must not get its old UIDVALIDITY back, even within the same second. As
 * Dovecot does, the Maildir root keeps the last one handed out to any of
 * its folders in "dovecot-uidvalidity" (hex), under flock: the next is
 * past both it and the clock. */
static uint32_t mailbox_next_uidvalidity(const char *folder)
{
	char path[4096];
	const char *slash = strrchr(folder, '/');
	int n = slash != NULL && slash[1] == '.' ?
		snprintf(path, sizeof(path), "%.*s/%s", (int)(slash - folder), folder, MAILBOX_UIDVALIDITY_NAME) :
		snprintf(path, sizeof(path), "%s/%s", folder, MAILBOX_UIDVALIDITY_NAME);
	uint32_t v = (uint32_t)time(NULL);
	int fd = n > 0 && (size_t)n < sizeof(path) ? open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600) : -1;
	if (fd < 0 || flock(fd, LOCK_EX) < 0) {
		if (fd >= 0)
			close(fd);
		return v;
	}
	char buf[32] = { 0 };
	ssize_t got = pread(fd, buf, sizeof(buf) - 1, 0);
	unsigned long last = got > 0 ? strtoul(buf, NULL, 16) : 0;
	if (last >= v && last < UINT32_MAX)
		v = (uint32_t)last + 1;
	int len = snprintf(buf, sizeof(buf), "%08x\n", v);
	if (pwrite(fd, buf, (size_t)len, 0) == len)
		(void)ftruncate(fd, len);
	close(fd);      /* drops the lock */
	return v;
}

static void mailbox_new_header(struct uidlist_header *h, const char *folder)
{
	unsigned char g[16];
	memset(h, 0, sizeof(*h));
	h->version = 3;
	h->uidvalidity = mailbox_next_uidvalidity(folder);
	h->next_uid = 1;
	if (getrandom(g, sizeof(g), 0) == (ssize_t)sizeof(g))
		for (size_t i = 0; i < sizeof(g); i++)
			snprintf(h->guid + 2 * i, 3, "%02x", g[i]);
}

/* --- matching files to records --- */

static struct mailbox_msg *mailbox_find(struct mailbox_msg *sorted, size_t n, const char *base)
{
	struct mailbox_msg key = { .base = (char *)base };
	return n ? bsearch(&key, sorted, n, sizeof(*sorted), mailbox_cmp_base) : NULL;
}

/* Takes uid/ext/uidl/vsize from the uidlist records (sorted by base) for
 * every scanned file; returns how many files have no record. */
static size_t mailbox_match(struct mailbox_scan *s, struct mailbox_uidlist *u)
{
	size_t unknown = 0, j = 0;
	mailbox_sort(u->recs, u->count, mailbox_cmp_base);
	for (size_t i = 0; i < s->count; i++) {
		struct mailbox_msg *m = &s->v[i];
		struct mailbox_msg *r;
		/* the scan is in base order too (mailbox_scan): one merge walk,
		 * not a binary search per file (a tenth of a SELECT of 10,000);
		 * a scan out of order falls back to the search */
		if (i > 0 && strcmp(s->v[i - 1].base, m->base) > 0) {
			r = mailbox_find(u->recs, u->count, m->base);
		} else {
			int c = 1;
			while (j < u->count && (c = strcmp(u->recs[j].base, m->base)) < 0)
				j++;
			r = j < u->count && c == 0 ? &u->recs[j] : NULL;
		}
		if (r == NULL) {
			m->uid = 0;
			unknown++;
			continue;
		}
		m->uid = r->uid;
		free(m->ext);
		m->ext = xstrdup(r->ext);
		free(m->uidl);
		m->uidl = r->uidl ? xstrdup(r->uidl) : NULL;
		if (m->vsize == 0)
			m->vsize = r->vsize;
	}
	return unknown;
}

static void mailbox_format(struct buf *b, const struct uidlist_header *h,
			   struct mailbox_msg *recs, size_t n)
{
	mailbox_sort(recs, n, mailbox_cmp_uid);
	uidlist_format_header(b, h);
	for (size_t i = 0; i < n; i++)
		uidlist_format_record(b, recs[i].uid, recs[i].ext, recs[i].base);
}

/* Under the uidlist lock: re-read (another writer may have assigned UIDs
 * since), give the remaining unknown files new UIDs in delivery order, and
 * write old records + new ones. Records of files we did not see stay: a
 * file being renamed by another process right now may have been missed. */
static int mailbox_assign(const char *root, struct mailbox_scan *s, struct uidlist_header *hdr_r)
{
	int lock = mailbox_uidlist_lock(root);
	if (lock < 0)
		return -1;
	struct mailbox_uidlist u;
	if (mailbox_uidlist_read(root, &u) < 0) {
		close(lock);
		char p[4096];
		snprintf(p, sizeof(p), "%s/" UIDLIST_LOCK_NAME, root);
		unlink(p);
		return -1;
	}
	if (!u.exists) {
		mailbox_new_header(&u.hdr, root);
		/* A rebuild must never reuse a UIDVALIDITY (RFC 3501 2.3.1.1):
		 * clients would pair old UIDs with new messages. Same second or
		 * a clock stepped back: one past the old one. */
		if (u.old_uidvalidity != 0 && u.hdr.uidvalidity <= u.old_uidvalidity &&
		    u.old_uidvalidity < UINT32_MAX)
			u.hdr.uidvalidity = u.old_uidvalidity + 1;
	}
	u.hdr.version = 3;
	mailbox_match(s, &u);
	mailbox_sort(s->v, s->count, mailbox_cmp_delivery);
	for (size_t i = 0; i < s->count; i++) {
		struct mailbox_msg *m = &s->v[i];
		if (m->uid != 0)
			continue;
		if (u.hdr.next_uid == UINT32_MAX)
			break;      /* UIDs exhausted: no wrap to 0 (left without a UID) */
		m->uid = u.hdr.next_uid++;
		char ext[40] = "";
		if (m->vsize && strstr(m->base, ",W=") == NULL)
			snprintf(ext, sizeof(ext), "W%llu", (unsigned long long)m->vsize);
		free(m->ext);
		m->ext = xstrdup(ext);
		struct mailbox_msg *r = mailbox_push(&u.recs, &u.count, &u.cap);
		r->uid = m->uid;
		r->base = xstrdup(m->base);
		r->ext = xstrdup(ext);
	}
	struct buf b = { 0 };
	mailbox_format(&b, &u.hdr, u.recs, u.count);
	int rc = mailbox_uidlist_replace(root, lock, &b);
	buf_free(&b);
	*hdr_r = u.hdr;
	mailbox_uidlist_clear(&u);
	return rc;
}

/* mkdir -p of the folder's parents (a first login before any delivery). */
static int mailbox_mkdir_parents(const char *root)
{
	char path[4096];
	int n = snprintf(path, sizeof(path), "%s", root);
	if (n < 0 || (size_t)n >= sizeof(path))
		return -1;
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0700) != 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return 0;
}

static int mailbox_mkdirs(const char *root)
{
	static const char *const subs[] = { "", "/cur", "/new", "/tmp" };
	char path[4096];
	struct stat st;
	if (stat(root, &st) != 0 && mailbox_mkdir_parents(root) != 0)
		return -1;
	for (size_t i = 0; i < ARRAY_SIZE(subs); i++) {
		snprintf(path, sizeof(path), "%s%s", root, subs[i]);
		if (mkdir(path, 0700) != 0 && errno != EEXIST)
			return -1;
	}
	return 0;
}

int mailbox_create(const char *root)
{
	return mailbox_mkdirs(root);
}

/* Sizes for files whose name and record do not carry one (read once). */
static int mailbox_sizes(const char *root, struct mailbox_scan *s)
{
	for (size_t i = 0; i < s->count; i++) {
		struct mailbox_msg *m = &s->v[i];
		if (m->vsize == 0 && !mailbox_name_vsize(m->base, &m->vsize) &&
		    mailbox_count_vsize(root, m->file, &m->vsize) < 0 && errno != ENOENT)
			return -1;
	}
	return 0;
}

static int mailbox_sync(struct mailbox *mb, unsigned flags)
{
	struct mailbox_scan s;
	struct mailbox_uidlist u;
	if (mailbox_scan(mb->root, &s) < 0)
		return -1;
	if (mailbox_uidlist_read(mb->root, &u) < 0) {
		mailbox_scan_clear(&s);
		return -1;
	}
	size_t unknown = mailbox_match(&s, &u);
	bool exists = u.exists;
	mb->hdr = u.hdr;
	mailbox_uidlist_clear(&u);
	int rc = mailbox_sizes(mb->root, &s);
	if (rc == 0 && (unknown > 0 || !exists))
		rc = mailbox_assign(mb->root, &s, &mb->hdr);
	for (size_t i = 0; i < s.count; i++)
		s.v[i].recent = strncmp(s.v[i].file, "new/", 4) == 0;
	if (rc == 0 && (flags & MAILBOX_MOVE_NEW))
		for (size_t i = 0; i < s.count; i++)
			mailbox_move_new(mb->root, &s.v[i]);
	mailbox_sort(s.v, s.count, mailbox_cmp_uid);
	mb->msgs = s.v;
	mb->count = s.count;
	return rc;
}

int mailbox_open(const char *root, unsigned flags, struct mailbox **mb_r,
		 char *err, size_t err_size)
{
	struct mailbox *mb = xcalloc(1, sizeof(*mb));
	mb->root = xstrdup(root);
	mb->lock_fd = -1;
	const char *what = "create the Maildir";
	int rc = mailbox_mkdirs(root);
	if (rc == 0 && (flags & MAILBOX_POP3_LOCK)) {
		what = "lock the mailbox";
		rc = mailbox_pop3_lock(root, &mb->lock_fd);
		if (rc == 1) {
			mailbox_free(&mb);
			return 1;
		}
	}
	if (rc == 0) {
		what = "sync the mailbox";
		rc = mailbox_sync(mb, flags);
	}
	if (rc != 0) {
		snprintf(err, err_size, "cannot %s %s: %s", what, root, strerror(errno));
		mailbox_free(&mb);
		return -1;
	}
	*mb_r = mb;
	return 0;
}

void mailbox_free(struct mailbox **mbp)
{
	struct mailbox *mb = *mbp;
	if (mb == NULL)
		return;
	for (size_t i = 0; i < mb->count; i++)
		mailbox_msg_clear(&mb->msgs[i]);
	free(mb->msgs);
	if (mb->lock_fd >= 0)
		close(mb->lock_fd);
	free(mb->root);
	free(mb);
	*mbp = NULL;
}

/* --- single messages --- */

/* Finds base in cur/ or new/ again (renamed by someone else). 0 or -1. */
static int mailbox_locate(const char *root, const char *base, char **file_io)
{
	static const char *const subs[] = { "cur", "new" };
	size_t bl = strlen(base);
	for (size_t i = 0; i < ARRAY_SIZE(subs); i++) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", root, subs[i]);
		DIR *d = opendir(path);
		if (d == NULL)
			continue;
		struct dirent *de;
		while ((de = readdir(d)) != NULL) {
			if (strncmp(de->d_name, base, bl) != 0 ||
			    (de->d_name[bl] != '\0' && de->d_name[bl] != ':'))
				continue;
			size_t n = strlen(subs[i]) + strlen(de->d_name) + 2;
			free(*file_io);
			*file_io = xmalloc(n);
			snprintf(*file_io, n, "%s/%s", subs[i], de->d_name);
			closedir(d);
			return 0;
		}
		closedir(d);
	}
	errno = ENOENT;
	return -1;
}

/* O_NOATIME: reading a message should not dirty its inode (a journal
 * write per first read); only the owner may ask, others open without. */
static int mailbox_open_read(int dirfd, const char *path)
{
	int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOATIME);
	if (fd < 0 && errno == EPERM)
		fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
	return fd;
}

int mailbox_file_open(const char *root, const char *base, char **file_io)
{
	for (int attempt = 0; attempt < 3; attempt++) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", root, *file_io);
		int fd = mailbox_open_read(AT_FDCWD, path);
		if (fd >= 0 || errno != ENOENT)
			return fd;
		if (mailbox_locate(root, base, file_io) < 0)
			return -1;
	}
	errno = ENOENT;
	return -1;
}

int mailbox_file_openat(int dirfd, const char *root, const char *base, char **file_io)
{
	if (dirfd >= 0) {
		int fd = mailbox_open_read(dirfd, *file_io);
		if (fd >= 0 || errno != ENOENT)
			return fd;
	}
	return mailbox_file_open(root, base, file_io);  /* renamed: found again */
}

/* "cur/BASE:2,FLAGS" with flag added in ASCII order; 0, or 1 if present. */
static int mailbox_flagged_name(const char *file, const char *base, char flag,
				char *out, size_t size)
{
	const char *name = strchr(file, '/') + 1;
	const char *old = mailbox_flags_of(name);
	if (strchr(old, flag))
		return strncmp(file, "cur/", 4) == 0 ? 1 : 0;
	char flags[64];
	size_t n = 0;
	bool put = false;
	for (const char *f = old; *f && n + 2 < sizeof(flags); f++) {
		if (!put && *f > flag) {
			flags[n++] = flag;
			put = true;
		}
		flags[n++] = *f;
	}
	if (!put)
		flags[n++] = flag;
	flags[n] = '\0';
	snprintf(out, size, "cur/%s:2,%s", base, flags);
	return 0;
}

int mailbox_file_flag(const char *root, const char *base, char **file_io, char flag)
{
	for (int attempt = 0; attempt < 3; attempt++) {
		char to_rel[4096], from[4096], to[4096];
		if (strchr(*file_io, '/') == NULL)
			return -1;
		int have = mailbox_flagged_name(*file_io, base, flag, to_rel, sizeof(to_rel));
		if (have == 1)
			return 0;
		snprintf(from, sizeof(from), "%s/%s", root, *file_io);
		snprintf(to, sizeof(to), "%s/%s", root, to_rel);
		if (rename(from, to) == 0) {
			free(*file_io);
			*file_io = xstrdup(to_rel);
			return 0;
		}
		if (errno != ENOENT || mailbox_locate(root, base, file_io) < 0)
			return -1;
	}
	return -1;
}

/* The name with flags (old + add - remove), kept in ASCII order; 1 when
 * that is the current name already. */
static int mailbox_flags_name(const char *file, const char *base, const char *add,
			      const char *remove, char *out, size_t size)
{
	const char *old = mailbox_flags_of(strchr(file, '/') + 1);
	char flags[64];
	size_t n = 0;
	for (int ch = 0x21; ch < 0x7f && n + 1 < sizeof(flags); ch++)
		if ((strchr(old, ch) || strchr(add, ch)) && !strchr(remove, ch))
			flags[n++] = (char)ch;
	flags[n] = '\0';
	if (strcmp(flags, old) == 0 && strncmp(file, "cur/", 4) == 0)
		return 1;
	snprintf(out, size, "cur/%s:2,%s", base, flags);
	return 0;
}

int mailbox_file_flags(const char *root, const char *base, char **file_io, const char *add,
		       const char *remove)
{
	for (int attempt = 0; attempt < 3; attempt++) {
		char to_rel[4096], from[4096], to[4096];
		if (strchr(*file_io, '/') == NULL)
			return -1;
		if (mailbox_flags_name(*file_io, base, add, remove, to_rel, sizeof(to_rel)) == 1)
			return 0;
		snprintf(from, sizeof(from), "%s/%s", root, *file_io);
		snprintf(to, sizeof(to), "%s/%s", root, to_rel);
		if (rename(from, to) == 0) {
			free(*file_io);
			*file_io = xstrdup(to_rel);
			return 0;
		}
		if (errno != ENOENT || mailbox_locate(root, base, file_io) < 0)
			return -1;
	}
	return -1;
}

int mailbox_file_unlink(const char *root, const char *base, char **file_io)
{
	for (int attempt = 0; attempt < 3; attempt++) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", root, *file_io);
		if (unlink(path) == 0)
			return 0;
		if (errno != ENOENT)
			return -1;
		if (mailbox_locate(root, base, file_io) < 0)
			return errno == ENOENT ? 0 : -1;
	}
	return -1;
}

static bool mailbox_uid_in(uint32_t uid, const uint32_t *uids, size_t n)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (uids[mid] == uid)
			return true;
		if (uids[mid] < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* Drops the records of removed messages (Dovecot does the same on its next
 * full sync; doing it here keeps a moonpost-only uidlist from growing). */
static void mailbox_forget(struct mailbox *mb, const uint32_t *uids, size_t n)
{
	int lock = mailbox_uidlist_lock(mb->root);
	if (lock < 0)
		return;
	struct mailbox_uidlist u;
	if (mailbox_uidlist_read(mb->root, &u) < 0 || !u.exists) {
		char p[4096];
		close(lock);
		snprintf(p, sizeof(p), "%s/" UIDLIST_LOCK_NAME, mb->root);
		unlink(p);
		mailbox_uidlist_clear(&u);
		return;
	}
	size_t out = 0;
	for (size_t i = 0; i < u.count; i++) {
		if (mailbox_uid_in(u.recs[i].uid, uids, n))
			mailbox_msg_clear(&u.recs[i]);
		else
			u.recs[out++] = u.recs[i];
	}
	u.count = out;
	struct buf b = { 0 };
	mailbox_format(&b, &u.hdr, u.recs, u.count);
	mailbox_uidlist_replace(mb->root, lock, &b);
	buf_free(&b);
	mailbox_uidlist_clear(&u);
}

size_t mailbox_expunge(struct mailbox *mb, const uint32_t *uids, size_t n)
{
	size_t failed = 0;
	if (n == 0)
		return 0;
	for (size_t i = 0; i < mb->count; i++) {
		struct mailbox_msg *m = &mb->msgs[i];
		if (mailbox_uid_in(m->uid, uids, n) &&
		    mailbox_file_unlink(mb->root, m->base, &m->file) != 0)
			failed++;
	}
	char cur[4096];
	snprintf(cur, sizeof(cur), "%s/cur", mb->root);
	if (mailbox_fsync_dir(cur) != 0)
		failed = n;
	if (failed == 0)
		mailbox_forget(mb, uids, n);
	return failed;
}

void mailbox_uidl(const struct mailbox *mb, const struct mailbox_msg *m, char out[71])
{
	if (m->uidl)
		snprintf(out, 71, "%s", m->uidl);
	else
		snprintf(out, 71, "%08x%08x", m->uid, mb->hdr.uidvalidity);
}
