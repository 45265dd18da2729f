/* imap_mbox.c - the mailbox commands (RFC 3501 6.3, 6.4.1-6.4.2): LSUB,
 * CREATE (with CREATE-SPECIAL-USE, RFC 6154 3), DELETE, RENAME (with
 * INBOX's special case), SUBSCRIBE, UNSUBSCRIBE, STATUS (with SIZE, RFC
 * 8438, and DELETED), SELECT, EXAMINE, CHECK, CLOSE and UNSELECT (RFC
 * 3691). LIST is imap_list.c.
 *
 * Each command is one job on the I/O pool: the work function does the
 * disk part and writes the whole response (untagged lines and the tagged
 * completion) into the job; the completion on the loop sends it and
 * resumes the connection. Response codes from RFC 5530. */
#include "imap_int.h"
#include "imap_folder.h"
#include "imap_use.h"
#include "core/conn.h"
#include "core/log.h"
#include "core/pool.h"
#include "core/util.h"
#include "store/mailbox.h"
#include "store/modseq.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

enum imap_status_item {
	ST_MESSAGES = 1 << 0, ST_RECENT = 1 << 1, ST_UIDNEXT = 1 << 2,
	ST_UIDVALIDITY = 1 << 3, ST_UNSEEN = 1 << 4,
	ST_SIZE = 1 << 5,       /* RFC 8438 STATUS=SIZE */
	ST_DELETED = 1 << 6,    /* RFC 9051 6.3.11: messages with \Deleted */
	ST_HIGHESTMODSEQ = 1 << 7,      /* RFC 7162 3.1.6 */
};

struct imap_job;
typedef void imap_job_fn(struct imap_job *j);

struct imap_job {
	uint64_t conn_id;
	char tag[IMAP_TAG_MAX + 1];
	char *root;             /* the user's Maildir */
	char *name, *name2;     /* mailbox names (INBOX normalised) */
	char *pattern;          /* LSUB: reference + pattern */
	char *uses;             /* CREATE: RFC 6154 uses ("\\Archive"), or NULL */
	bool flag;              /* SUBSCRIBE / LSUB / EXAMINE */
	bool rev2;              /* IMAP4rev2: names in UTF-8, no \Recent (RFC 9051) */
	unsigned items;         /* STATUS */
	imap_job_fn *work;
	struct buf out;         /* the whole response */
	struct imap_selected *sel;   /* SELECT result; CLOSE input */
	struct imap_cs_select *cs;   /* SELECT/EXAMINE parameters (RFC 7162) */
};

__attribute__((format(printf, 3, 4)))
static void imap_job_tagged(struct imap_job *j, const char *status, const char *fmt, ...)
{
	va_list ap;
	buf_printf(&j->out, "%s %s ", j->tag, status);
	va_start(ap, fmt);
	buf_vprintf(&j->out, fmt, ap);
	va_end(ap);
	buf_append(&j->out, "\r\n", 2);
}

void imap_selected_free(struct imap_selected **selp)
{
	struct imap_selected *sel = *selp;
	if (sel == NULL)
		return;
	imap_keywords_free(&sel->kw);
	mcache_free(&sel->cache);
	mailbox_free(&sel->mb);
	free(sel->name);
	free(sel->modseq);
	free(sel->saved);
	free(sel);
	*selp = NULL;
}

static void imap_job_free(struct imap_job *j)
{
	free(j->root);
	free(j->name);
	free(j->name2);
	free(j->pattern);
	free(j->uses);
	buf_free(&j->out);
	imap_selected_free(&j->sel);
	imap_cs_select_free(&j->cs);
	free(j);
}

void imap_mbox_cleanup(struct imap_session *s)
{
	imap_selected_free(&s->sel);
}

static void imap_job_run(void *arg)
{
	struct imap_job *j = arg;
	j->work(j);
}

static void imap_job_done(void *arg)
{
	struct imap_job *j = arg;
	struct conn *c = conn_find(j->conn_id);
	if (c != NULL) {
		struct imap_session *s = c->proto;
		if (j->sel != NULL) {           /* SELECT/EXAMINE succeeded */
			s->sel = j->sel;
			j->sel = NULL;
			s->state = IMAP_SELECTED;
		}
		conn_write(c, buf_ptr(&j->out), j->out.len);
		imap_resume(s);
	}
	imap_job_free(j);
}

static struct imap_job *imap_job_new(struct imap_session *s, imap_job_fn *work)
{
	struct imap_job *j = xcalloc(1, sizeof(*j));
	j->conn_id = s->conn->id;
	snprintf(j->tag, sizeof(j->tag), "%s", s->tag);
	j->root = xstrdup(s->maildir);
	j->work = work;
	j->rev2 = s->rev2;
	return j;
}

static void imap_job_submit(struct imap_session *s, struct imap_job *j)
{
	conn_pause(s->conn);
	pool_submit(s->srv->io_pool, imap_job_run, imap_job_done, j);
}

/* A mailbox name argument: checked, INBOX in any case becomes "INBOX".
 * NULL after answering BAD/NO. */
char *imap_mbox_arg(struct imap_session *s, const struct imap_arg *a)
{
	struct str name;
	struct buf tmp = { 0 };
	const char *why;
	char *r = NULL;
	if (!imap_arg_mailbox(s->rev2, a, &name, &tmp))
		imap_bad(s, "Invalid mailbox name argument.");
	else if (imap_folder_name_check(name, &why) < 0)
		imap_tagged(s, "NO", "[CANNOT] %s.", why);
	else
		r = imap_folder_is_inbox(name) ? xstrdup("INBOX") : xstrndup(name.p, name.len);
	buf_free(&tmp);
	return r;
}

static bool imap_folder_exists(const char *root, const char *name)
{
	struct stat st;
	char *path = imap_folder_path(root, str_from_cstr(name));
	bool ok = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
	free(path);
	return ok;
}

/* --- LSUB --- */

struct imap_list {
	char **names;           /* existing folders, sorted */
	size_t n;
};

static bool imap_list_children(const struct imap_list *l, const char *name)
{
	size_t len = strlen(name);
	for (size_t i = 0; i < l->n; i++)
		if (strncmp(l->names[i], name, len) == 0 && l->names[i][len] == '.')
			return true;
	return false;
}

static bool imap_list_matches(const char *pattern, const char *name)
{
	return imap_folder_match_mailbox(pattern, name);
}

static void imap_list_line(struct imap_job *j, const char *cmd, const char *attrs, const char *name)
{
	buf_printf(&j->out, "* %s (%s) \".\" ", cmd, attrs);
	imap_append_mailbox(&j->out, name, j->rev2);
	buf_append(&j->out, "\r\n", 2);
}

static bool imap_name_in(char **names, size_t n, const char *name, size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (strncmp(names[i], name, len) == 0 && names[i][len] == '\0')
			return true;
	return false;
}

/* RFC 3501 6.3.9: "news.comp.%" with only news.comp.mail.misc subscribed
 * must show news.comp.mail, \Noselect: a parent that the pattern matches
 * and that is not subscribed itself. */
static void imap_lsub_parents(struct imap_job *j, char **subs, size_t n)
{
	char **shown = xcalloc(n + 1, sizeof(*shown));
	size_t nshown = 0;
	for (size_t i = 0; i < n; i++) {
		if (imap_list_matches(j->pattern, subs[i]))
			continue;
		for (const char *dot = strchr(subs[i], '.'); dot != NULL; dot = strchr(dot + 1, '.')) {
			size_t len = (size_t)(dot - subs[i]);
			char *parent = xstrndup(subs[i], len);
			if (imap_list_matches(j->pattern, parent) && !imap_name_in(subs, n, parent, len) &&
			    !imap_name_in(shown, nshown, parent, len)) {
				imap_list_line(j, "LSUB", "\\Noselect", parent);
				shown = xreallocarray(shown, nshown + 2, sizeof(*shown));
				shown[nshown++] = parent;
				continue;
			}
			free(parent);
		}
	}
	imap_folder_names_free(shown, nshown);
}

static void imap_lsub_work(struct imap_job *j)
{
	char **subs;
	size_t n;
	if (imap_folder_subs_read(j->root, &subs, &n) < 0) {
		imap_job_tagged(j, "NO", "[SERVERBUG] Cannot read the subscriptions.");
		return;
	}
	for (size_t i = 0; i < n; i++)
		if (imap_list_matches(j->pattern, subs[i]))
			imap_list_line(j, "LSUB", imap_folder_exists(j->root, subs[i]) ? "" : "\\Noselect",
				       subs[i]);
	imap_lsub_parents(j, subs, n);
	imap_folder_names_free(subs, n);
	imap_job_tagged(j, "OK", "Lsub completed.");
}

void imap_cmd_lsub(struct imap_session *s, const struct imap_arg *args, size_t nargs)
{
	const struct imap_arg *a[3];
	struct str ref, pat;
	struct buf rt = { 0 }, pt = { 0 };
	if (imap_args_top(args, nargs, a, 3) != 2 || !imap_arg_mailbox(s->rev2, a[0], &ref, &rt) ||
	    !imap_arg_mailbox(s->rev2, a[1], &pat, &pt) || ref.len + pat.len > IMAP_PATTERN_MAX ||
	    memchr(ref.p, '\0', ref.len) || memchr(pat.p, '\0', pat.len)) {
		imap_bad(s, "Syntax: LSUB reference mailbox-pattern");
	} else {
		struct imap_job *j = imap_job_new(s, imap_lsub_work);
		struct buf b = { 0 };
		buf_printf(&b, "%.*s%.*s", STR_FMT(ref), STR_FMT(pat));
		j->pattern = xstrdup(buf_ptr(&b));
		buf_free(&b);
		imap_job_submit(s, j);
	}
	buf_free(&rt);
	buf_free(&pt);
}

/* --- CREATE / DELETE / RENAME / SUBSCRIBE --- */

static int imap_rmtree(const char *dir, int depth);

static void imap_create_work(struct imap_job *j)
{
	if (strcmp(j->name, "INBOX") == 0 || imap_folder_exists(j->root, j->name)) {
		imap_job_tagged(j, "NO", "[ALREADYEXISTS] Mailbox already exists.");
		return;
	}
	char *path = imap_folder_path(j->root, str_from_cstr(j->name));
	char mark[4200];
	snprintf(mark, sizeof(mark), "%s/maildirfolder", path);     /* Maildir++ marker */
	int fd = -1;
	if (mailbox_create(path) == 0)
		fd = open(mark, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
	/* RFC 6154 3: a mailbox whose use cannot be kept is not made. Without
	 * USE, a stale line of an earlier mailbox of that name goes. */
	if (fd >= 0 && imap_use_set(j->root, j->name, j->uses) < 0) {
		imap_rmtree(path, 1);
		fd = -1;
	}
	if (fd < 0)
		imap_job_tagged(j, "NO", "[SERVERBUG] Cannot create the mailbox.");
	else
		imap_job_tagged(j, "OK", "Create completed.");
	free(path);
}

/* Removes a folder directory: its files, its cur/new/tmp and itself. */
static int imap_rmtree(const char *dir, int depth)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return -1;
	struct dirent *e;
	int rc = 0;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (unlink(path) == 0)
			continue;
		if ((errno == EISDIR || errno == EPERM) && depth > 0 && imap_rmtree(path, depth - 1) == 0)
			continue;
		rc = -1;
	}
	closedir(d);
	return rc == 0 ? rmdir(dir) : -1;
}

static void imap_delete_work(struct imap_job *j)
{
	if (strcmp(j->name, "INBOX") == 0) {
		imap_job_tagged(j, "NO", "[CANNOT] INBOX cannot be deleted.");
		return;
	}
	if (!imap_folder_exists(j->root, j->name)) {
		imap_job_tagged(j, "NO", "[NONEXISTENT] Mailbox does not exist.");
		return;
	}
	/* RFC 3501 6.3.4: inferior names stay (in Maildir++ they are sibling
	 * directories, ".foo.bar" next to ".foo"); LIST then shows "foo" as
	 * \Noselect. Out of sight first (one rename), then removed. */
	static unsigned seq;
	char *path = imap_folder_path(j->root, str_from_cstr(j->name));
	char gone[4200];
	snprintf(gone, sizeof(gone), "%s/..moonpost-deleted.%d.%u", j->root, (int)getpid(),
		 __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED));
	if (rename(path, gone) != 0) {
		imap_job_tagged(j, "NO", "[SERVERBUG] Cannot delete the mailbox.");
	} else {
		imap_job_tagged(j, "OK", "Delete completed.");
		/* its use goes with it (a stale one is also dropped at CREATE) */
		if (imap_use_set(j->root, j->name, NULL) < 0)
			log_warn(NULL, "event=special_use_update_failed root=\"%s\"", j->root);
	}
	imap_rmtree(gone, 1);
	free(path);
}

/* RFC 3501 6.3.5: renaming INBOX moves its messages into the new mailbox
 * and leaves INBOX empty. */
static int imap_rename_inbox(const char *root, const char *to)
{
	char *dst = imap_folder_path(root, str_from_cstr(to));
	int rc = mailbox_create(dst);
	static const char *const subs[] = { "cur", "new" };
	for (size_t i = 0; rc == 0 && i < ARRAY_SIZE(subs); i++) {
		char from[4096];
		snprintf(from, sizeof(from), "%s/%s", root, subs[i]);
		DIR *d = opendir(from);
		if (d == NULL) {
			rc = -1;
			break;
		}
		struct dirent *e;
		while ((e = readdir(d)) != NULL) {
			if (e->d_name[0] == '.')
				continue;
			char a[4400], b[4400];
			snprintf(a, sizeof(a), "%s/%s", from, e->d_name);
			snprintf(b, sizeof(b), "%s/%s/%s", dst, subs[i], e->d_name);
			if (rename(a, b) != 0 && errno != ENOENT)
				rc = -1;
		}
		closedir(d);
	}
	free(dst);
	return rc;
}

/* Renames name and its children (RFC 3501 6.3.5: inferiors too). */
static int imap_rename_tree(const char *root, const char *from, const char *to)
{
	struct imap_list l;
	if (imap_folder_names(root, &l.names, &l.n) < 0)
		return -1;
	int rc = 0;
	size_t flen = strlen(from);
	for (size_t i = 0; i < l.n && rc == 0; i++) {
		if (strcmp(l.names[i], from) != 0 &&
		    !(strncmp(l.names[i], from, flen) == 0 && l.names[i][flen] == '.'))
			continue;
		char a[4400], b[4400];
		snprintf(a, sizeof(a), "%s/.%s", root, l.names[i]);
		snprintf(b, sizeof(b), "%s/.%s%s", root, to, l.names[i] + flen);
		if (rename(a, b) != 0)
			rc = -1;
	}
	imap_folder_names_free(l.names, l.n);
	return rc;
}

static void imap_rename_work(struct imap_job *j)
{
	bool inbox = strcmp(j->name, "INBOX") == 0;
	bool children = false;
	struct imap_list l;
	if (!inbox && imap_folder_names(j->root, &l.names, &l.n) == 0) {
		children = imap_list_children(&l, j->name);
		imap_folder_names_free(l.names, l.n);
	}
	/* A level that exists only through its children can be renamed too. */
	if (!inbox && !children && !imap_folder_exists(j->root, j->name)) {
		imap_job_tagged(j, "NO", "[NONEXISTENT] Mailbox does not exist.");
		return;
	}
	if (strcmp(j->name2, "INBOX") == 0 || imap_folder_exists(j->root, j->name2)) {
		imap_job_tagged(j, "NO", "[ALREADYEXISTS] Target mailbox already exists.");
		return;
	}
	size_t n = strlen(j->name);
	if (!inbox && strncmp(j->name2, j->name, n) == 0 && j->name2[n] == '.') {
		imap_job_tagged(j, "NO", "[CANNOT] Cannot rename a mailbox under itself.");
		return;
	}
	int rc = inbox ? imap_rename_inbox(j->root, j->name2) :
		 imap_rename_tree(j->root, j->name, j->name2);
	if (rc < 0)
		imap_job_tagged(j, "NO", "[SERVERBUG] Cannot rename the mailbox.");
	else
		imap_job_tagged(j, "OK", "Rename completed.");
	/* the uses follow the names (INBOX has none: it cannot be created) */
	if (!inbox && rc == 0 && imap_use_rename(j->root, j->name, j->name2) < 0)
		log_warn(NULL, "event=special_use_update_failed root=\"%s\"", j->root);
}

static void imap_subscribe_work(struct imap_job *j)
{
	if (imap_folder_subs_change(j->root, j->name, j->flag) < 0)
		imap_job_tagged(j, "NO", "[SERVERBUG] Cannot update the subscriptions.");
	else
		imap_job_tagged(j, "OK", "%s completed.", j->flag ? "Subscribe" : "Unsubscribe");
}

/* Commands whose arguments are exactly n mailbox names. */
static void imap_names_cmd(struct imap_session *s, const struct imap_arg *args, size_t nargs,
			   size_t n, imap_job_fn *work, bool flag)
{
	const struct imap_arg *a[3];
	if (imap_args_top(args, nargs, a, 3) != n) {
		imap_bad(s, "Wrong number of arguments.");
		return;
	}
	struct imap_job *j = imap_job_new(s, work);
	j->flag = flag;
	j->name = imap_mbox_arg(s, a[0]);
	if (j->name != NULL && n == 2)
		j->name2 = imap_mbox_arg(s, a[1]);
	if (j->name == NULL || (n == 2 && j->name2 == NULL)) {
		imap_job_free(j);
		return;
	}
	imap_job_submit(s, j);
}

/* RFC 6154 3 (an RFC 4466 create-param): "(USE (\\Archive ...))" as the
 * uses, canonical and each once, "\\Archive \\Sent" in *uses_r (malloc'd;
 * NULL if none); or -1 after answering BAD (syntax, an unknown parameter:
 * RFC 4466 2.2) or NO [USEATTR] (a use we cannot give). */
static int imap_create_uses(struct imap_session *s, const struct imap_arg *params, char **uses_r)
{
	struct buf b = { 0 };
	const struct imap_arg *end = params + params->span, *p = params + 1;
	int rc = params->type == IMAP_ARG_LIST ? 0 : -1;
	while (rc == 0 && p < end) {
		const struct imap_arg *l = p + 1;
		if (p->type != IMAP_ARG_ATOM || !str_case_eq(p->s, "USE") || l >= end ||
		    l->type != IMAP_ARG_LIST || l->span != l->members + 1) {
			rc = -1;
			break;
		}
		for (const struct imap_arg *u = l + 1; rc == 0 && u < l + l->span; u++) {
			const char *attr = u->type == IMAP_ARG_ATOM ? imap_use_attr(u->s) : NULL;
			if (attr == NULL)
				rc = u->type == IMAP_ARG_ATOM ? -2 : -1;
			else if (b.len == 0 || strstr(buf_ptr(&b), attr) == NULL)
				buf_printf(&b, "%s%s", b.len ? " " : "", attr);
		}
		p = l + l->span;
	}
	if (rc == -1)
		imap_bad(s, "Syntax: CREATE mailbox [(USE (\\Attribute ...))]");
	else if (rc == -2)
		imap_tagged(s, "NO", "[USEATTR] Special use not supported.");
	*uses_r = rc == 0 && b.len > 0 ? xstrdup(buf_ptr(&b)) : NULL;
	buf_free(&b);
	return rc < 0 ? -1 : 0;
}

void imap_cmd_create(struct imap_session *s, const struct imap_arg *args, size_t nargs)
{
	const struct imap_arg *a[3];
	size_t n = imap_args_top(args, nargs, a, 3);
	char *uses = NULL;
	if (n < 1 || n > 2) {
		imap_bad(s, "Wrong number of arguments.");
		return;
	}
	if (n == 2 && imap_create_uses(s, a[1], &uses) < 0)
		return;
	/* RFC 3501 6.3.3: a trailing separator only says children will follow. */
	struct imap_arg name = *a[0];
	if (name.s.len > 1 && name.s.p[name.s.len - 1] == '.')
		name.s.len--;
	struct imap_job *j = imap_job_new(s, imap_create_work);
	j->uses = uses;
	if ((j->name = imap_mbox_arg(s, &name)) == NULL) {
		imap_job_free(j);
		return;
	}
	imap_job_submit(s, j);
}

void imap_cmd_delete(struct imap_session *s, const struct imap_arg *args, size_t nargs)
{
	imap_names_cmd(s, args, nargs, 1, imap_delete_work, false);
}

void imap_cmd_rename(struct imap_session *s, const struct imap_arg *args, size_t nargs)
{
	imap_names_cmd(s, args, nargs, 2, imap_rename_work, false);
}

void imap_cmd_subscribe(struct imap_session *s, const struct imap_arg *args, size_t nargs)
{
	imap_names_cmd(s, args, nargs, 1, imap_subscribe_work, true);
}

void imap_cmd_unsubscribe(struct imap_session *s, const struct imap_arg *args, size_t nargs)
{
	imap_names_cmd(s, args, nargs, 1, imap_subscribe_work, false);
}

/* --- STATUS / SELECT / EXAMINE --- */

struct imap_counts {
	size_t exists, recent, unseen, deleted;
	size_t first_unseen;    /* sequence number, 0 if none */
	uint64_t size;          /* the RFC822.SIZEs added up (RFC 8438) */
};

static void imap_count(const struct mailbox *mb, struct imap_counts *c)
{
	memset(c, 0, sizeof(*c));
	c->exists = mb->count;
	for (size_t i = 0; i < mb->count; i++) {
		const char *info = strstr(mb->msgs[i].file, ":2,");
		c->recent += mb->msgs[i].recent;
		c->size += mb->msgs[i].vsize;
		c->deleted += info != NULL && strchr(info + 3, 'T') != NULL;
		if (!mb->msgs[i].seen) {
			c->unseen++;
			if (c->first_unseen == 0)
				c->first_unseen = i + 1;
		}
	}
}

/* Opens an existing folder; NULL after writing the NO. */
static struct mailbox *imap_open_folder(struct imap_job *j, unsigned flags)
{
	struct mailbox *mb = NULL;
	char err[512];
	if (strcmp(j->name, "INBOX") != 0 && !imap_folder_exists(j->root, j->name)) {
		imap_job_tagged(j, "NO", "[NONEXISTENT] Mailbox does not exist.");
		return NULL;
	}
	char *path = imap_folder_path(j->root, str_from_cstr(j->name));
	if (mailbox_open(path, flags, &mb, err, sizeof(err)) != 0) {
		log_error(NULL, "event=mailbox_open_failed error=\"%s\"", err);
		imap_job_tagged(j, "NO", "[SERVERBUG] Cannot open the mailbox.");
		mb = NULL;
	}
	free(path);
	return mb;
}

/* One "NAME value" of a STATUS response, space-separated. */
__attribute__((format(printf, 3, 4)))
static void imap_status_put(struct buf *out, bool *first, const char *fmt, ...)
{
	va_list ap;
	if (!*first)
		buf_append(out, " ", 1);
	*first = false;
	va_start(ap, fmt);
	buf_vprintf(out, fmt, ap);
	va_end(ap);
}

void imap_status_append(struct buf *out, struct mailbox *mb, const char *name,
			unsigned items, bool utf8)
{
	/* first: the modseq sync may find a message the scan missed */
	uint64_t highest = items & ST_HIGHESTMODSEQ ? imap_cs_highest(mb) : 0;
	struct imap_counts c;
	bool first = true;
	imap_count(mb, &c);
	buf_append_str(out, "* STATUS ");
	imap_append_mailbox(out, name, utf8);
	buf_append_str(out, " (");
	if (items & ST_MESSAGES)
		imap_status_put(out, &first, "MESSAGES %zu", c.exists);
	if (items & ST_RECENT)
		imap_status_put(out, &first, "RECENT %zu", c.recent);
	if (items & ST_UIDNEXT)
		imap_status_put(out, &first, "UIDNEXT %u", mb->hdr.next_uid);
	if (items & ST_UIDVALIDITY)
		imap_status_put(out, &first, "UIDVALIDITY %u", mb->hdr.uidvalidity);
	if (items & ST_UNSEEN)
		imap_status_put(out, &first, "UNSEEN %zu", c.unseen);
	if (items & ST_SIZE)
		imap_status_put(out, &first, "SIZE %llu", (unsigned long long)c.size);
	if (items & ST_DELETED)
		imap_status_put(out, &first, "DELETED %zu", c.deleted);
	if (items & ST_HIGHESTMODSEQ)
		imap_status_put(out, &first, "HIGHESTMODSEQ %llu", (unsigned long long)highest);
	buf_append_str(out, ")\r\n");
}

static void imap_status_work(struct imap_job *j)
{
	struct mailbox *mb = imap_open_folder(j, 0);
	if (mb == NULL)
		return;
	imap_status_append(&j->out, mb, j->name, j->items, j->rev2);
	imap_job_tagged(j, "OK", "Status completed.");
	mailbox_free(&mb);
}

int imap_status_items(const struct imap_arg *list, unsigned *items)
{
	static const struct { const char *name; unsigned bit; } names[] = {
		{ "MESSAGES", ST_MESSAGES }, { "RECENT", ST_RECENT }, { "UIDNEXT", ST_UIDNEXT },
		{ "UIDVALIDITY", ST_UIDVALIDITY }, { "UNSEEN", ST_UNSEEN }, { "SIZE", ST_SIZE },
		{ "DELETED", ST_DELETED }, { "HIGHESTMODSEQ", ST_HIGHESTMODSEQ },
	};
	*items = 0;
	if (list->type != IMAP_ARG_LIST || list->members == 0)
		return -1;
	/* the caller checked the members are flat: list[1 .. members] */
	for (size_t m = 1; m <= list->members; m++) {
		const struct imap_arg *a = &list[m];
		size_t k = 0;
		while (k < ARRAY_SIZE(names) && (a->type != IMAP_ARG_ATOM || !str_case_eq(a->s, names[k].name)))
			k++;
		if (k == ARRAY_SIZE(names))
			return -1;
		*items |= names[k].bit;
	}
	return 0;
}

void imap_cmd_status(struct imap_session *s, const struct imap_arg *args, size_t nargs)
{
	const struct imap_arg *a[3];
	unsigned items;
	if (imap_args_top(args, nargs, a, 3) != 2 || a[1]->type != IMAP_ARG_LIST ||
	    a[1]->members != nargs - 2 || imap_status_items(a[1], &items) < 0) {
		imap_bad(s, "Syntax: STATUS mailbox (item ...)");
		return;
	}
	if (items & ST_HIGHESTMODSEQ)
		imap_cs_enable(s);      /* RFC 7162 3.1: a CONDSTORE-enabling command */
	struct imap_job *j = imap_job_new(s, imap_status_work);
	j->items = items;
	if ((j->name = imap_mbox_arg(s, a[0])) == NULL) {
		imap_job_free(j);
		return;
	}
	imap_job_submit(s, j);
}

/* The folder cache, compacted when expunged messages fill most of it;
 * NULL when it cannot be had (FETCH then reads the messages). */
static struct mcache *imap_cache_open(const struct mailbox *mb)
{
	struct mcache *mc;
	if (mcache_open(mb->root, mb->hdr.uidvalidity, &mc) < 0)
		return NULL;
	uint32_t *uids = xcalloc(mb->count ? mb->count : 1, sizeof(*uids));
	for (size_t i = 0; i < mb->count; i++)
		uids[i] = mb->msgs[i].uid;
	mcache_compact(mc, uids, mb->count);
	free(uids);
	return mc;
}

static void imap_select_work(struct imap_job *j)
{
	bool ro = j->flag;
	struct mailbox *mb = imap_open_folder(j, ro ? 0 : MAILBOX_MOVE_NEW);
	if (mb == NULL)
		return;
	struct modseq *ms = NULL;       /* NULL: [NOMODSEQ] (RFC 7162 3.1.2.2) */
	if (modseq_sync(mb, &ms) < 0) {
		log_warn(NULL, "event=modseq_failed folder=\"%s\" error=\"%s\"", mb->root, strerror(errno));
		ms = NULL;
	}
	struct imap_keywords kw;
	if (imap_keywords_read(mb->root, &kw) < 0)
		memset(&kw, 0, sizeof(kw));
	if (j->rev2)    /* RFC 9051 (E.): no \Recent, no RECENT response */
		for (size_t i = 0; i < mb->count; i++)
			mb->msgs[i].recent = false;
	struct imap_counts c;
	imap_count(mb, &c);
	/* RFC 3501 6.3.1: the required untagged responses; keywords are
	 * permanent (dovecot-keywords), new ones may be made: \* */
	struct buf names = { 0 };
	imap_keywords_list(&names, &kw);
	buf_printf(&j->out, "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft%s)\r\n",
		   buf_ptr(&names));
	buf_printf(&j->out, "* OK [PERMANENTFLAGS (%s%s%s)] %s\r\n",
		   ro ? "" : "\\Answered \\Flagged \\Deleted \\Seen \\Draft",
		   ro ? "" : buf_ptr(&names), ro ? "" : " \\*",
		   ro ? "Read-only mailbox." : "Flags permitted.");
	buf_free(&names);
	if (j->rev2) {
		/* RFC 9051 6.3.2: EXISTS, LIST with the mailbox's name; RECENT
		 * and the UNSEEN code are gone */
		buf_printf(&j->out, "* %zu EXISTS\r\n* LIST () \".\" ", c.exists);
		imap_append_mailbox(&j->out, j->name, true);
		buf_append(&j->out, "\r\n", 2);
	} else {
		buf_printf(&j->out, "* %zu EXISTS\r\n* %zu RECENT\r\n", c.exists, c.recent);
		if (c.first_unseen)
			buf_printf(&j->out, "* OK [UNSEEN %zu] First unseen.\r\n", c.first_unseen);
	}
	buf_printf(&j->out, "* OK [UIDVALIDITY %u] UIDs valid\r\n", mb->hdr.uidvalidity);
	buf_printf(&j->out, "* OK [UIDNEXT %u] Predicted next UID\r\n", mb->hdr.next_uid);
	imap_cs_select_reply(&j->out, mb, ms, j->cs, &kw);
	imap_job_tagged(j, "OK", "[%s] %s completed.", ro ? "READ-ONLY" : "READ-WRITE",
			ro ? "Examine" : "Select");
	j->sel = xcalloc(1, sizeof(*j->sel));
	j->sel->mb = mb;
	j->sel->name = xstrdup(j->name);
	j->sel->readonly = ro;
	j->sel->kw = kw;
	j->sel->cache = imap_cache_open(mb);
	imap_cs_snapshot(j->sel, ms);
	modseq_free(&ms);
}

static void imap_select_cmd(struct imap_session *s, const struct imap_arg *args, size_t nargs,
			    bool readonly)
{
	const struct imap_arg *a[3];
	struct imap_cs_select *cs = NULL;
	size_t top = imap_args_top(args, nargs, a, 3);
	if (top < 1 || top > 2 || (top == 2 && a[1]->type != IMAP_ARG_LIST)) {
		imap_bad(s, "Syntax: %s mailbox [(parameters)]", readonly ? "EXAMINE" : "SELECT");
		return;
	}
	/* RFC 7162 3.1.8, 3.2.5: (CONDSTORE), (QRESYNC (...)) */
	if (top == 2 && imap_cs_select_parse(s, a[1], &cs) < 0)
		return;
	/* RFC 3501 6.3.1: the selected mailbox is closed first (without
	 * expunging); a failed SELECT leaves none selected. RFC 7162
	 * 3.2.11: CLOSED ends the responses about it. */
	if (s->sel != NULL)
		imap_reply(s, "* OK [CLOSED] Previous mailbox closed.");
	imap_selected_free(&s->sel);
	s->state = IMAP_AUTH;
	struct imap_job *j = imap_job_new(s, imap_select_work);
	j->flag = readonly;
	j->cs = cs;
	if ((j->name = imap_mbox_arg(s, a[0])) == NULL) {
		imap_job_free(j);
		return;
	}
	imap_job_submit(s, j);
}

void imap_cmd_select(struct imap_session *s, const struct imap_arg *args, size_t nargs)
{
	imap_select_cmd(s, args, nargs, false);
}

void imap_cmd_examine(struct imap_session *s, const struct imap_arg *args, size_t nargs)
{
	imap_select_cmd(s, args, nargs, true);
}

/* --- CHECK / CLOSE / UNSELECT --- */

void imap_cmd_check(struct imap_session *s, const struct imap_arg *args MP_UNUSED, size_t nargs)
{
	if (nargs > 0) {
		imap_bad(s, "CHECK takes no arguments.");
		return;
	}
	/* Every change is on disk when its command completes; like NOOP,
	 * CHECK reports what others changed (RFC 3501 6.4.1). */
	imap_sync_cmd(s, "Check completed.");
}

/* RFC 3501 6.4.2: CLOSE expunges the \Deleted ("T" in the Maildir info)
 * messages of a read-write mailbox, silently. */
static void imap_close_work(struct imap_job *j)
{
	struct mailbox *mb = j->sel->mb;
	uint32_t *uids = xcalloc(mb->count ? mb->count : 1, sizeof(*uids));
	size_t n = 0;
	for (size_t i = 0; i < mb->count; i++) {
		const char *info = strstr(mb->msgs[i].file, ":2,");
		if (info != NULL && strchr(info + 3, 'T') != NULL)
			uids[n++] = mb->msgs[i].uid;
	}
	uint64_t before;
	if (n > 0 && mailbox_expunge(mb, uids, n) > 0)
		log_warn(NULL, "event=expunge_failed folder=\"%s\"", mb->root);
	else        /* RFC 7162 3.2: CLOSE's expunges get a modseq too */
		imap_cs_expunged(mb->root, mb->hdr.uidvalidity, uids, n, &before);
	free(uids);
	imap_selected_free(&j->sel);
	imap_job_tagged(j, "OK", "Close completed.");
}

static void imap_deselect(struct imap_session *s, const struct imap_arg *args MP_UNUSED,
			  size_t nargs, bool expunge)
{
	if (nargs > 0) {
		imap_bad(s, "%s takes no arguments.", expunge ? "CLOSE" : "UNSELECT");
		return;
	}
	s->state = IMAP_AUTH;
	if (!expunge || s->sel->readonly) {
		imap_selected_free(&s->sel);
		imap_tagged(s, "OK", "%s completed.", expunge ? "Close" : "Unselect");
		return;
	}
	struct imap_job *j = imap_job_new(s, imap_close_work);
	j->sel = s->sel;
	s->sel = NULL;
	imap_job_submit(s, j);
}

void imap_cmd_close(struct imap_session *s, const struct imap_arg *args, size_t nargs)
{
	imap_deselect(s, args, nargs, true);
}

void imap_cmd_unselect(struct imap_session *s, const struct imap_arg *args, size_t nargs)
{
	imap_deselect(s, args, nargs, false);
}
