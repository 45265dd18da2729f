/* imap_keywords.c - Dovecot's dovecot-keywords (see imap_keywords.h). */
#include "imap_keywords.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define IMAP_KEYWORDS_FILE "dovecot-keywords"
#define IMAP_KEYWORDS_LOCK "dovecot-keywords.lock"
#define IMAP_KEYWORDS_STALE_S 30
#define IMAP_KEYWORDS_WAIT_MS 3000

void imap_keywords_free(struct imap_keywords *kw)
{
	for (int i = 0; i < IMAP_KEYWORDS_MAX; i++) {
		free(kw->names[i]);
		kw->names[i] = NULL;
	}
}

void imap_keywords_copy(struct imap_keywords *dst, const struct imap_keywords *src)
{
	for (int i = 0; i < IMAP_KEYWORDS_MAX; i++)
		dst->names[i] = src->names[i] ? xstrdup(src->names[i]) : NULL;
}

bool imap_keyword_valid(struct str s)
{
	if (s.len == 0 || s.len > IMAP_KEYWORD_LEN_MAX)
		return false;
	for (size_t i = 0; i < s.len; i++) {
		unsigned char ch = (unsigned char)s.p[i];
		if (ch <= ' ' || ch >= 0x7f || strchr("(){%*\"\\]", ch))
			return false;
	}
	return true;
}

int imap_keywords_read(const char *folder, struct imap_keywords *kw)
{
	char path[4200], line[512];
	memset(kw, 0, sizeof(*kw));
	snprintf(path, sizeof(path), "%s/" IMAP_KEYWORDS_FILE, folder);
	FILE *f = fopen(path, "re");
	if (f == NULL)
		return errno == ENOENT ? 0 : -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		char *end;
		line[strcspn(line, "\r\n")] = '\0';
		unsigned long idx = strtoul(line, &end, 10);
		if (end == line || *end != ' ' || idx >= IMAP_KEYWORDS_MAX || kw->names[idx] ||
		    !imap_keyword_valid(str_from_cstr(end + 1)))
			continue;       /* Dovecot ignores what it cannot use, too */
		kw->names[idx] = xstrdup(end + 1);
	}
	fclose(f);
	return 0;
}

char imap_keywords_find(const struct imap_keywords *kw, const char *name)
{
	/* RFC 3501 2.3.2: keywords compare case-insensitively */
	for (int i = 0; i < IMAP_KEYWORDS_MAX; i++)
		if (kw->names[i] && strcasecmp(kw->names[i], name) == 0)
			return (char)('a' + i);
	return '\0';
}

/* Dovecot's dotlock: O_EXCL, waiting up to IMAP_KEYWORDS_WAIT_MS; a lock
 * older than IMAP_KEYWORDS_STALE_S is taken over. An fd or -1. */
static int imap_keywords_lock(const char *lock)
{
	for (int waited = 0; waited < IMAP_KEYWORDS_WAIT_MS; waited += 10) {
		int fd = open(lock, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd >= 0 || errno != EEXIST)
			return fd;
		struct stat st;
		if (stat(lock, &st) == 0 && time(NULL) - st.st_mtime > IMAP_KEYWORDS_STALE_S)
			unlink(lock);
		usleep(10000);
	}
	errno = EAGAIN;
	return -1;
}

static int imap_keywords_write(int fd, const struct imap_keywords *kw)
{
	struct buf b = { 0 };
	for (int i = 0; i < IMAP_KEYWORDS_MAX; i++)
		if (kw->names[i])
			buf_printf(&b, "%d %s\n", i, kw->names[i]);
	int rc = write(fd, buf_ptr(&b), b.len) == (ssize_t)b.len && fsync(fd) == 0 ? 0 : -1;
	buf_free(&b);
	return rc;
}

char imap_keywords_assign(const char *folder, struct imap_keywords *kw, const char *name)
{
	char letter = imap_keywords_find(kw, name);
	if (letter || !imap_keyword_valid(str_from_cstr(name)))
		return letter;
	char lock[4200], path[4200];
	snprintf(lock, sizeof(lock), "%s/" IMAP_KEYWORDS_LOCK, folder);
	snprintf(path, sizeof(path), "%s/" IMAP_KEYWORDS_FILE, folder);
	int fd = imap_keywords_lock(lock);
	if (fd < 0)
		return '\0';
	/* someone may have added it meanwhile: the file is the truth */
	imap_keywords_free(kw);
	int rc = imap_keywords_read(folder, kw);
	letter = rc == 0 ? imap_keywords_find(kw, name) : '\0';
	for (int i = 0; rc == 0 && !letter && i < IMAP_KEYWORDS_MAX; i++)
		if (kw->names[i] == NULL) {
			kw->names[i] = xstrdup(name);
			if (imap_keywords_write(fd, kw) == 0 && rename(lock, path) == 0) {
				letter = (char)('a' + i);
			} else {
				free(kw->names[i]);
				kw->names[i] = NULL;
			}
			break;
		}
	close(fd);
	if (!letter)
		unlink(lock);
	return letter;
}

void imap_flags_append(struct buf *b, const char *file, bool recent, const struct imap_keywords *kw)
{
	static const struct { char letter; const char *flag; } map[] = {
		{ 'R', "\\Answered" }, { 'F', "\\Flagged" }, { 'T', "\\Deleted" },
		{ 'S', "\\Seen" }, { 'D', "\\Draft" },
	};
	const char *info = strstr(file, ":2,");
	const char *sp = "";
	buf_append_str(b, "FLAGS (");
	for (size_t i = 0; info != NULL && i < ARRAY_SIZE(map); i++)
		if (strchr(info + 3, map[i].letter) != NULL) {
			buf_printf(b, "%s%s", sp, map[i].flag);
			sp = " ";
		}
	for (const char *l = info ? info + 3 : ""; kw && *l; l++)
		if (*l >= 'a' && *l <= 'z' && kw->names[*l - 'a']) {
			buf_printf(b, "%s%s", sp, kw->names[*l - 'a']);
			sp = " ";
		}
	if (recent)
		buf_printf(b, "%s\\Recent", sp);
	buf_append_str(b, ")");
}

void imap_keywords_list(struct buf *b, const struct imap_keywords *kw)
{
	for (int i = 0; i < IMAP_KEYWORDS_MAX; i++)
		if (kw->names[i])
			buf_printf(b, " %s", kw->names[i]);
}
