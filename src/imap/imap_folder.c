/* imap_folder.c - Maildir++ folders and the subscriptions file for IMAP
 * (see imap_folder.h). Blocking: runs on the I/O pool. */
#include "imap_folder.h"
#include "imap_int.h"
#include "core/util.h"
#include "store/mailbox.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* RFC 6154 names created for a new user, as the ISPmail guide's Dovecot
 * configuration (auto = subscribe) does. */
static const struct {
	const char *name, *attr;
} imap_specials[] = {
	{ "Drafts", "\\Drafts" }, { "Sent", "\\Sent" }, { "Junk", "\\Junk" },
	{ "Trash", "\\Trash" }, { "Archive", "\\Archive" },
};

bool imap_folder_is_inbox(struct str name)
{
	return str_case_eq(name, "INBOX");
}

const char *imap_folder_special_use(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(imap_specials); i++)
		if (strcmp(name, imap_specials[i].name) == 0)
			return imap_specials[i].attr;
	return NULL;
}

static int imap_mb64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : c == ',' ? 63 : -1;
}

/* One UTF-16 unit of a run: printable ASCII must not be encoded (RFC 3501
 * 5.1.3), surrogates must pair. *high: a high surrogate waits. */
static int imap_mutf7_unit(uint32_t u, bool *high)
{
	if (*high) {
		*high = false;
		return u >= 0xDC00 && u <= 0xDFFF ? 0 : -1;
	}
	if (u >= 0xDC00 && u <= 0xDFFF)
		return -1;
	*high = u >= 0xD800 && u <= 0xDBFF;
	return u >= 0x20 && u <= 0x7E ? -1 : 0;
}

/* The run of modified BASE64 in p[0 .. n): whole UTF-16 units, zero
 * padding bits (RFC 2152), every unit valid. 0 or -1. */
static int imap_mutf7_run(const char *p, size_t n)
{
	uint32_t bits = 0;
	unsigned nbits = 0;
	bool high = false;
	for (size_t i = 0; i < n; i++) {
		int v = imap_mb64_value(p[i]);
		if (v < 0)
			return -1;
		bits = (bits << 6) | (uint32_t)v;
		nbits += 6;
		if (nbits >= 16) {
			nbits -= 16;
			if (imap_mutf7_unit((bits >> nbits) & 0xFFFF, &high) < 0)
				return -1;
		}
	}
	return nbits < 6 && (bits & ((1u << nbits) - 1)) == 0 && !high ? 0 : -1;
}

/* RFC 3501 5.1.3: "&" starts modified BASE64 (RFC 2152's alphabet with
 * "," for "/") ended by "-"; "&-" is "&". Printable ASCII other than "&"
 * stands for itself, and two runs never touch ("&...-&...-" must be one
 * run). 0 or -1. */
static int imap_folder_mutf7_check(struct str name)
{
	bool after_run = false;
	for (size_t i = 0; i < name.len; i++) {
		if (name.p[i] != '&') {
			after_run = false;
			continue;
		}
		const char *end = memchr(name.p + i + 1, '-', name.len - i - 1);
		if (end == NULL)
			return -1;
		size_t n = (size_t)(end - (name.p + i + 1));
		if (n > 0 && (after_run || imap_mutf7_run(name.p + i + 1, n) < 0))
			return -1;
		after_run = n > 0;
		i += n + 1;
	}
	return 0;
}

int imap_folder_name_check(struct str name, const char **why_r)
{
	*why_r = "Invalid mailbox name";
	if (name.len == 0 || name.len > IMAP_MAILBOX_NAME_MAX)
		return -1;
	if (imap_folder_is_inbox(name))
		return 0;
	if (name.p[0] == '.' || name.p[name.len - 1] == '.' || name.p[0] == '~')
		return -1;
	for (size_t i = 0; i < name.len; i++) {
		unsigned char ch = (unsigned char)name.p[i];
		if (ch < 0x20 || ch >= 0x7f || ch == '/' || ch == '*' || ch == '%')
			return -1;
		if (ch == '.' && name.p[i + 1] == '.')
			return -1;      /* an empty hierarchy level */
	}
	return imap_folder_mutf7_check(name);
}

char *imap_folder_path(const char *root, struct str name)
{
	struct buf b = { 0 };
	if (imap_folder_is_inbox(name))
		buf_append_str(&b, root);
	else
		buf_printf(&b, "%s/.%.*s", root, STR_FMT(name));
	char *p = xstrdup(buf_ptr(&b));
	buf_free(&b);
	return p;
}

/* Like Dovecot's "auto = subscribe" mailboxes: a missing one is created
 * and subscribed at login. */
static int imap_folder_create_special(const char *root)
{
	for (size_t i = 0; i < ARRAY_SIZE(imap_specials); i++) {
		struct stat st;
		char *path = imap_folder_path(root, str_from_cstr(imap_specials[i].name));
		int rc = stat(path, &st) == 0 ? 1 : mailbox_create(path);
		free(path);
		if (rc < 0 || (rc == 0 && imap_folder_subs_change(root, imap_specials[i].name, true) < 0))
			return -1;
	}
	return 0;
}

int imap_folder_prepare(const char *root, char *err, size_t err_size)
{
	if (mailbox_create(root) < 0 || imap_folder_create_special(root) < 0) {
		snprintf(err, err_size, "cannot create the Maildir %s: %s", root, strerror(errno));
		return -1;
	}
	return 0;
}

static int imap_folder_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void imap_folder_names_free(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

static void imap_folder_push(char ***v, size_t *n, size_t *cap, const char *name)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		*v = xreallocarray(*v, *cap, sizeof(**v));
	}
	(*v)[(*n)++] = xstrdup(name);
}

int imap_folder_names(const char *root, char ***names_r, size_t *n_r)
{
	char **v = NULL;
	size_t n = 0, cap = 0;
	DIR *d = opendir(root);
	if (d == NULL)
		return -1;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] != '.' || e->d_name[1] == '\0' || strcmp(e->d_name, "..") == 0)
			continue;
		if (e->d_type != DT_DIR && e->d_type != DT_UNKNOWN)
			continue;
		struct stat st;
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", root, e->d_name);
		if (e->d_type == DT_UNKNOWN && (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)))
			continue;
		if (imap_folder_name_check(str_from_cstr(e->d_name + 1), &(const char *){ NULL }) < 0)
			continue;
		imap_folder_push(&v, &n, &cap, e->d_name + 1);
	}
	closedir(d);
	if (n > 1)
		qsort(v, n, sizeof(*v), imap_folder_cmp);
	*names_r = v;
	*n_r = n;
	return 0;
}

int imap_folder_subs_read(const char *root, char ***names_r, size_t *n_r)
{
	char path[4096];
	char **v = NULL;
	size_t n = 0, cap = 0;
	snprintf(path, sizeof(path), "%s/" IMAP_SUBSCRIPTIONS, root);
	*names_r = NULL;
	*n_r = 0;
	FILE *f = fopen(path, "re");
	if (f == NULL)
		return errno == ENOENT ? 0 : -1;
	char line[1024];
	bool v2 = false;
	for (unsigned ln = 0; fgets(line, sizeof(line), f) != NULL; ln++) {
		line[strcspn(line, "\r\n")] = '\0';
		if (ln == 0 && strncmp(line, "V\t", 2) == 0) {
			v2 = true;      /* Dovecot 2.3's form: levels separated by TAB */
			continue;
		}
		if (line[0] == '\0')
			continue;
		if (v2)
			for (char *t = line; (t = strchr(t, '\t')) != NULL;)
				*t = '.';
		imap_folder_push(&v, &n, &cap, line);
	}
	fclose(f);
	*names_r = v;
	*n_r = n;
	return 0;
}

int imap_folder_replace(const char *root, const char *name, const struct buf *b)
{
	char path[4096], tmp[4200];
	snprintf(path, sizeof(path), "%s/%s", root, name);
	static unsigned seq;
	snprintf(tmp, sizeof(tmp), "%s.%d.%u.tmp", path, (int)getpid(),
		 __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED));
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int rc = fd < 0 ? -1 : 0;
	if (rc == 0 && write(fd, buf_ptr(b), b->len) != (ssize_t)b->len)
		rc = -1;
	if (rc == 0 && fsync(fd) != 0)
		rc = -1;
	if (fd >= 0 && close(fd) != 0)
		rc = -1;
	if (rc == 0 && rename(tmp, path) != 0)
		rc = -1;
	if (rc != 0 && fd >= 0)
		unlink(tmp);
	return rc;
}

int imap_folder_lock(const char *root, const char *lockname)
{
	char lpath[4200];
	snprintf(lpath, sizeof(lpath), "%s/%s", root, lockname);
	int lock = open(lpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lock >= 0 && flock(lock, LOCK_EX) != 0) {
		close(lock);
		lock = -1;
	}
	return lock;
}

static int imap_folder_subs_write(const char *root, char **names, size_t n)
{
	struct buf b = { 0 };
	for (size_t i = 0; i < n; i++)
		buf_printf(&b, "%s\n", names[i]);
	int rc = imap_folder_replace(root, IMAP_SUBSCRIPTIONS, &b);
	buf_free(&b);
	return rc;
}

int imap_folder_subs_change(const char *root, const char *name, bool subscribe)
{
	char **v;
	size_t n, cap;
	int lock = imap_folder_lock(root, IMAP_SUBSCRIPTIONS_LOCK);
	if (lock < 0)
		return -1;
	if (imap_folder_subs_read(root, &v, &n) < 0) {
		close(lock);
		return -1;
	}
	cap = n;
	size_t found = n;
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], name) == 0)
			found = i;
	int rc = 0;
	if (subscribe && found == n) {
		imap_folder_push(&v, &n, &cap, name);
		rc = imap_folder_subs_write(root, v, n);
	} else if (!subscribe && found < n) {
		free(v[found]);
		memmove(&v[found], &v[found + 1], (n - found - 1) * sizeof(*v));
		n--;
		rc = imap_folder_subs_write(root, v, n);
	}
	imap_folder_names_free(v, n);
	close(lock);
	return rc;
}

/* Dynamic programming over (pattern position, name position), one row at
 * a time: linear memory and O(|pattern| * |name|) time whatever the
 * wildcards (a backtracking matcher is exponential on "*a*a*a...b"). */
bool imap_folder_match(const char *pattern, const char *name, char sep)
{
	size_t plen = strlen(pattern), nlen = strlen(name);
	bool *next = xcalloc(nlen + 1, sizeof(bool)), *cur = xcalloc(nlen + 1, sizeof(bool));
	next[nlen] = true;              /* the empty pattern matches only the end */
	for (size_t i = plen; i-- > 0;) {
		char pc = pattern[i];
		for (size_t j = nlen + 1; j-- > 0;) {
			if (pc == '*')
				cur[j] = next[j] || (j < nlen && cur[j + 1]);
			else if (pc == '%')
				cur[j] = next[j] || (j < nlen && name[j] != sep && cur[j + 1]);
			else
				cur[j] = j < nlen && name[j] == pc && next[j + 1];
		}
		bool *t = next;
		next = cur;
		cur = t;
	}
	bool m = next[0];
	free(next);
	free(cur);
	return m;
}

bool imap_folder_match_mailbox(const char *pattern, const char *name)
{
	if (strcmp(name, "INBOX") == 0 && strcasecmp(pattern, "INBOX") == 0)
		return true;
	return imap_folder_match(pattern, name, '.');
}

/* --- new messages: APPEND, COPY --- */

#define IMAP_FOLDER_TMP_TAG "moonpost"    /* store/maildir.c's tmp tag: swept when we die */

void imap_folder_newbase(char *out, size_t size)
{
	static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	static struct timeval last;
	static unsigned seq;
	struct timeval tv;
	char host[256];
	gettimeofday(&tv, NULL);
	/* Strictly increasing in this process, microseconds zero-padded: the
	 * names sort (mailbox.c: seconds, then strcmp) in the order made. */
	pthread_mutex_lock(&mu);
	if (timercmp(&tv, &last, <=)) {
		tv = last;
		if (++tv.tv_usec == 1000000) {
			tv.tv_sec++;
			tv.tv_usec = 0;
		}
	}
	last = tv;
	unsigned q = ++seq;
	pthread_mutex_unlock(&mu);
	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	for (char *h = host; *h; h++)
		if (*h == '/' || *h == ':')
			*h = '_';       /* Maildir: no "/" or ":" in names */
	snprintf(out, size, "%ld.M%06ldP%dQ%u.%s", (long)tv.tv_sec, (long)tv.tv_usec, (int)getpid(),
		 q, host);
}

static int imap_folder_fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	close(fd);
	return rc;
}

int imap_folder_tmp_create(const char *folder, char **path_r)
{
	char base[512];
	struct buf b = { 0 };
	imap_folder_newbase(base, sizeof(base));
	buf_printf(&b, "%s/tmp/%s.%s.%d", folder, base, IMAP_FOLDER_TMP_TAG, (int)getpid());
	int fd = open(buf_ptr(&b), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 && errno == ENOENT) {
		/* a folder made by hand may lack tmp/; a deleted one stays ENOENT */
		char tmp[4200];
		snprintf(tmp, sizeof(tmp), "%s/tmp", folder);
		if (mkdir(tmp, 0700) == 0 || errno == EEXIST)
			fd = open(buf_ptr(&b), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	}
	int e = errno;
	if (fd >= 0)
		*path_r = xstrdup(buf_ptr(&b));
	buf_free(&b);
	errno = e;
	return fd;
}

int imap_folder_tmp_sync(const char *path, time_t mtime)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = 0;
	if (mtime > 0) {
		struct timespec ts[2] = { { mtime, 0 }, { mtime, 0 } };
		rc = futimens(fd, ts);
	}
	if (rc == 0)
		rc = fsync(fd);
	if (close(fd) != 0)
		rc = -1;
	return rc;
}

int imap_folder_publish(const char *folder, const struct imap_folder_file *f, char *base_r,
			size_t base_size, char **path_r)
{
	char base[512];
	struct buf dst = { 0 };
	imap_folder_newbase(base, sizeof(base));
	snprintf(base_r, base_size, "%s,S=%llu,W=%llu", base, (unsigned long long)f->size,
		 (unsigned long long)f->vsize);
	/* new/ even with flags: \Recent "in either case" (RFC 3501 6.3.11);
	 * the next SELECT moves it to cur/ with its flags, as Dovecot does */
	if (f->flags == NULL)
		buf_printf(&dst, "%s/new/%s", folder, base_r);
	else
		buf_printf(&dst, "%s/new/%s:2,%s", folder, base_r, f->flags);
	int rc = rename(f->tmp, buf_ptr(&dst));
	int e = errno;
	if (rc == 0)
		*path_r = xstrdup(buf_ptr(&dst));
	buf_free(&dst);
	errno = e;
	return rc;
}

int imap_folder_link(const char *src_folder, const char *src_file, const char *dst_folder,
		     const char *flags, char *base_r, size_t base_size)
{
	const char *name = strrchr(src_file, '/');
	name = name ? name + 1 : src_file;
	const char *info = strstr(name, ":2,");
	/* keep the size fields of the old name (",S=...,W=..."), new unique part */
	const char *sizes = strstr(name, ",S=");
	size_t slen = sizes ? (size_t)((info ? info : name + strlen(name)) - sizes) : 0;
	char base[512], from[4600], to[4800];
	imap_folder_newbase(base, sizeof(base));
	snprintf(base_r, base_size, "%s%.*s", base, (int)slen, sizes ? sizes : "");
	snprintf(from, sizeof(from), "%s/%s", src_folder, src_file);
	/* new/: copies are \Recent (RFC 3501 6.4.7) */
	snprintf(to, sizeof(to), "%s/new/%s:2,%s", dst_folder, base_r, flags);
	if (link(from, to) == 0)
		return 0;
	if (errno != EXDEV && errno != EPERM)
		return -1;
	/* no hard links here: copy the bytes */
	int in = open(from, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -1;
	struct buf b = { 0 };
	char chunk[65536];
	ssize_t r;
	while ((r = read(in, chunk, sizeof(chunk))) > 0)
		buf_append(&b, chunk, (size_t)r);
	close(in);
	char tmp[4700];
	snprintf(tmp, sizeof(tmp), "%s/tmp/%s", dst_folder, base_r);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	int rc = fd < 0 || r < 0 ? -1 : 0;
	if (rc == 0 && write(fd, buf_ptr(&b), b.len) != (ssize_t)b.len)
		rc = -1;
	if (rc == 0 && fsync(fd) != 0)
		rc = -1;
	if (fd >= 0)
		close(fd);
	if (rc == 0 && rename(tmp, to) != 0)
		rc = -1;
	if (rc != 0 && fd >= 0)
		unlink(tmp);
	buf_free(&b);
	return rc;
}

int imap_folder_sync_dir(const char *folder, const char *sub)
{
	char dir[4600];
	snprintf(dir, sizeof(dir), "%s/%s", folder, sub);
	return imap_folder_fsync_dir(dir);
}
