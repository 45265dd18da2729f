/* imap_use.c - the special uses given at CREATE, kept in the Maildir
 * root's "moonpost-special-use" (see imap_use.h). Blocking: runs on the
 * I/O pool. */
#include "imap_use.h"
#include "imap_folder.h"
#include "core/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* RFC 6154 2: the uses a real folder can have. \All and \Flagged are
 * views over other mailboxes (a server offering them must fill them). */
static const char *const imap_use_attrs[] = {
	"\\Archive", "\\Drafts", "\\Junk", "\\Sent", "\\Trash",
};

const char *imap_use_attr(struct str attr)
{
	for (size_t i = 0; i < ARRAY_SIZE(imap_use_attrs); i++)
		if (str_case_eq(attr, imap_use_attrs[i]))
			return imap_use_attrs[i];
	return NULL;
}

void imap_use_free(struct imap_uses *u)
{
	imap_folder_names_free(u->names, u->n);
	imap_folder_names_free(u->attrs, u->n);
	memset(u, 0, sizeof(*u));
}

static void imap_use_push(struct imap_uses *u, const char *name, const char *attrs)
{
	u->names = xreallocarray(u->names, u->n + 1, sizeof(*u->names));
	u->attrs = xreallocarray(u->attrs, u->n + 1, sizeof(*u->attrs));
	u->names[u->n] = xstrdup(name);
	u->attrs[u->n] = xstrdup(attrs);
	u->n++;
}

/* One line "NAME\tATTRS" (no LF): its known attributes, canonical; a line
 * with none is dropped. */
static void imap_use_parse(struct imap_uses *u, char *line)
{
	char *tab = strchr(line, '\t');
	if (tab == NULL || tab == line)
		return;
	*tab = '\0';
	struct buf b = { 0 };
	for (char *p = tab + 1; *p != '\0';) {
		size_t n = strcspn(p, " ");
		const char *attr = imap_use_attr((struct str){ p, n });
		if (attr != NULL && (b.len == 0 || strstr(buf_ptr(&b), attr) == NULL))
			buf_printf(&b, "%s%s", b.len ? " " : "", attr);
		p += n + (p[n] == ' ');
	}
	if (b.len > 0)
		imap_use_push(u, line, buf_ptr(&b));
	buf_free(&b);
}

int imap_use_read(const char *root, struct imap_uses *u)
{
	char path[4096], line[IMAP_USE_LINE_MAX];
	memset(u, 0, sizeof(*u));
	snprintf(path, sizeof(path), "%s/" IMAP_USE_FILE, root);
	FILE *f = fopen(path, "re");
	if (f == NULL)
		return errno == ENOENT ? 0 : -1;
	bool skip = false;      /* in the rest of an overlong line */
	while (fgets(line, sizeof(line), f) != NULL) {
		size_t len = strlen(line);
		bool whole = len > 0 && line[len - 1] == '\n';
		if (!skip && whole) {
			line[len - 1] = '\0';
			imap_use_parse(u, line);
		}
		skip = !whole;
	}
	int rc = ferror(f) ? -1 : 0;
	fclose(f);
	if (rc < 0)
		imap_use_free(u);
	return rc;
}

/* The index of name's line, u->n if none. */
static size_t imap_use_find(const struct imap_uses *u, const char *name)
{
	size_t i = 0;
	while (i < u->n && strcmp(u->names[i], name) != 0)
		i++;
	return i;
}

void imap_use_append(struct buf *b, const struct imap_uses *u, const char *name)
{
	const char *builtin = imap_folder_special_use(name);
	if (builtin != NULL)
		buf_printf(b, " %s", builtin);
	size_t i = u != NULL ? imap_use_find(u, name) : 0;
	if (u == NULL || i == u->n)
		return;
	for (const char *p = u->attrs[i]; *p != '\0';) {
		size_t n = strcspn(p, " ");
		if (builtin == NULL || strlen(builtin) != n || strncmp(builtin, p, n) != 0)
			buf_printf(b, " %.*s", (int)n, p);
		p += n + (p[n] == ' ');
	}
}

static int imap_use_write(const char *root, const struct imap_uses *u)
{
	struct buf b = { 0 };
	for (size_t i = 0; i < u->n; i++)
		buf_printf(&b, "%s\t%s\n", u->names[i], u->attrs[i]);
	int rc = imap_folder_replace(root, IMAP_USE_FILE, &b);
	buf_free(&b);
	return rc;
}

/* name gets attrs (NULL: its line goes); true if that changed u. */
static bool imap_use_edit_set(struct imap_uses *u, const char *name, const char *attrs)
{
	size_t i = imap_use_find(u, name);
	if (i == u->n) {
		if (attrs != NULL)
			imap_use_push(u, name, attrs);
		return attrs != NULL;
	}
	if (attrs != NULL) {
		if (strcmp(u->attrs[i], attrs) == 0)
			return false;
		free(u->attrs[i]);
		u->attrs[i] = xstrdup(attrs);
		return true;
	}
	free(u->names[i]);
	free(u->attrs[i]);
	memmove(&u->names[i], &u->names[i + 1], (u->n - i - 1) * sizeof(*u->names));
	memmove(&u->attrs[i], &u->attrs[i + 1], (u->n - i - 1) * sizeof(*u->attrs));
	u->n--;
	return true;
}

/* from and "from.*" become to and "to.*"; true if any did. */
static bool imap_use_edit_rename(struct imap_uses *u, const char *from, const char *to)
{
	size_t len = strlen(from);
	/* a line of to is stale: RENAME checked that no such mailbox exists */
	bool changed = imap_use_edit_set(u, to, NULL);
	for (size_t i = 0; i < u->n; i++) {
		const char *n = u->names[i];
		if (strncmp(n, from, len) != 0 || (n[len] != '\0' && n[len] != '.'))
			continue;
		struct buf b = { 0 };
		buf_printf(&b, "%s%s", to, n + len);
		free(u->names[i]);
		u->names[i] = xstrdup(buf_ptr(&b));
		buf_free(&b);
		changed = true;
	}
	return changed;
}

/* Read, change (rename when to != NULL, else set attrs), write if
 * changed - all under the lock. */
static int imap_use_edit(const char *root, const char *name, const char *to, const char *attrs)
{
	int lock = imap_folder_lock(root, IMAP_USE_LOCK);
	if (lock < 0)
		return -1;
	struct imap_uses u;
	int rc = imap_use_read(root, &u);
	if (rc == 0 && (to != NULL ? imap_use_edit_rename(&u, name, to) :
			imap_use_edit_set(&u, name, attrs)))
		rc = imap_use_write(root, &u);
	imap_use_free(&u);
	close(lock);
	return rc;
}

/* No file and nothing to add: no lock, no file made. */
static bool imap_use_none(const char *root)
{
	char path[4096];
	struct stat st;
	snprintf(path, sizeof(path), "%s/" IMAP_USE_FILE, root);
	return stat(path, &st) != 0 && errno == ENOENT;
}

int imap_use_set(const char *root, const char *name, const char *attrs)
{
	if (attrs == NULL && imap_use_none(root))
		return 0;
	return imap_use_edit(root, name, NULL, attrs);
}

int imap_use_rename(const char *root, const char *from, const char *to)
{
	if (imap_use_none(root))
		return 0;
	return imap_use_edit(root, from, to, NULL);
}
