/* dir_file_parse.c - parser of the directory file (format in dir_file.c). */
#include "dir_file.h"
#include "core/arena.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define DFILE_MAX_BYTES (256 * 1024 * 1024)
#define DFILE_FIELDS_MAX 4

static _Thread_local char dfile_err[1024];

void dfile_strip_comment(char *line)
{
	/* '#' starts a comment only where a field could start: addresses
	 * may contain '#' (RFC 5322 atext). */
	for (char *p = line; *p; p++) {
		if (*p == '#' && (p == line || p[-1] == ' ' || p[-1] == '\t')) {
			*p = '\0';
			return;
		}
	}
}

static const char *dfile_fail(const char *path, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static const char *dfile_fail(const char *path, int line, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(dfile_err, sizeof(dfile_err), "%s:%d: ", path, line);
	va_start(ap, fmt);
	vsnprintf(dfile_err + n, sizeof(dfile_err) - (size_t)n, fmt, ap);
	va_end(ap);
	return dfile_err;
}

struct dfile_builder {
	struct dfile_data *dd;
	size_t cap_d, cap_u, cap_a;
};

static void *dfile_grow(void *v, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return v;
	*cap = *cap ? *cap * 2 : 16;
	return xreallocarray(v, *cap, size);
}

/* Splits line into blank-separated fields; returns the count (max+1 if
 * there are too many). */
static int dfile_fields(char *line, char **f, int max)
{
	int n = 0;
	char *p = line;
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			return n;
		if (n == max)
			return max + 1;
		f[n++] = p;
		while (*p && *p != ' ' && *p != '\t')
			p++;
		if (*p)
			*p++ = '\0';
	}
}

static bool dfile_domain_known(const struct dfile_data *dd, const char *domain)
{
	for (size_t i = 0; i < dd->n_domains; i++)
		if (strcasecmp(dd->domains[i], domain) == 0)
			return true;
	return false;
}

static const char *dfile_line(struct dfile_builder *b, const char *path, int ln,
			      char **f, int n)
{
	struct dfile_data *dd = b->dd;
	struct dir_addr addr;
	if (strcmp(f[0], "domain") == 0) {
		if (n != 2 || dir_addr_parse(arena_printf(dd->arena, "x@%s", f[1]), "", false,
					     dd->arena, &addr) != 0)
			return dfile_fail(path, ln, "expected: domain NAME");
		dd->domains = dfile_grow(dd->domains, &b->cap_d, dd->n_domains, sizeof(char *));
		dd->domains[dd->n_domains++] = addr.domain;
		return NULL;
	}
	if (strcmp(f[0], "user") == 0) {
		int64_t quota = 0;
		if (n < 3 || n > 4 || dir_addr_parse(f[1], "", false, dd->arena, &addr) != 0)
			return dfile_fail(path, ln, "expected: user EMAIL HASH [quota=BYTES]");
		if (n == 4) {
			uint64_t q;
			if (strncmp(f[3], "quota=", 6) != 0 ||
			    util_parse_uint(f[3] + 6, strlen(f[3] + 6), INT64_MAX, &q) != 0)
				return dfile_fail(path, ln, "bad quota \"%s\" (want quota=BYTES)", f[3]);
			quota = (int64_t)q;
		}
		if (!dfile_domain_known(dd, addr.domain))
			return dfile_fail(path, ln, "domain %s is not declared above", addr.domain);
		dd->users = dfile_grow(dd->users, &b->cap_u, dd->n_users, sizeof(*dd->users));
		dd->users[dd->n_users++] = (struct dfile_user){
			arena_printf(dd->arena, "%s@%s", addr.local, addr.domain),
			arena_strdup(dd->arena, f[2]), quota };
		return NULL;
	}
	if (strcmp(f[0], "alias") == 0) {
		if (n != 3 || dir_addr_parse(f[1], "", true, dd->arena, &addr) != 0)
			return dfile_fail(path, ln, "expected: alias SOURCE DEST[,DEST...]");
		if (!dfile_domain_known(dd, addr.domain))
			return dfile_fail(path, ln, "domain %s is not declared above", addr.domain);
		dd->aliases = dfile_grow(dd->aliases, &b->cap_a, dd->n_aliases, sizeof(*dd->aliases));
		dd->aliases[dd->n_aliases++] = (struct dfile_alias){
			addr.full, arena_strdup(dd->arena, f[2]) };
		return NULL;
	}
	return dfile_fail(path, ln, "unknown entry \"%s\" (domain, user or alias)", f[0]);
}

struct dfile_data *dfile_parse(const char *path, const char *text, size_t len,
			       const char **error_r)
{
	struct dfile_builder b = { .dd = xcalloc(1, sizeof(struct dfile_data)) };
	b.dd->arena = arena_new();
	const char *p = text, *end = text + len;
	for (int ln = 1; p < end; ln++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (memchr(p, '\0', n)) {
			*error_r = dfile_fail(path, ln, "NUL byte");
			goto fail;
		}
		char *line = arena_strndup(b.dd->arena, p, n);
		dfile_strip_comment(line);
		if (n && line[n - 1] == '\r')
			line[n - 1] = '\0';
		char *f[DFILE_FIELDS_MAX];
		int nf = dfile_fields(line, f, DFILE_FIELDS_MAX);
		if (nf > DFILE_FIELDS_MAX) {
			*error_r = dfile_fail(path, ln, "too many fields");
			goto fail;
		}
		if (nf > 0 && (*error_r = dfile_line(&b, path, ln, f, nf)) != NULL)
			goto fail;
		p = nl ? nl + 1 : end;
	}
	return b.dd;
fail:
	free(b.dd->domains);
	free(b.dd->users);
	free(b.dd->aliases);
	arena_destroy(&b.dd->arena);
	free(b.dd);
	return NULL;
}

struct dfile_data *dfile_parse_path(const char *path, const char **error_r)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0 || st.st_size > DFILE_MAX_BYTES) {
		*error_r = dfile_fail(path, 0, "cannot read: %s",
				      fd < 0 ? strerror(errno) : "too large");
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	char *text = xmalloc((size_t)st.st_size + 1);
	ssize_t got = read(fd, text, (size_t)st.st_size);
	close(fd);
	if (got != st.st_size) {
		free(text);
		*error_r = dfile_fail(path, 0, "short read");
		return NULL;
	}
	struct dfile_data *dd = dfile_parse(path, text, (size_t)got, error_r);
	free(text);
	return dd;
}

void dfile_data_release(struct dfile_data *dd)
{
	if (dd == NULL)
		return;
	free(dd->domains);
	free(dd->users);
	free(dd->aliases);
	arena_destroy(&dd->arena);
	free(dd);
}
