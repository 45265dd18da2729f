/* imap_mbox.c - the mailbox commands (RFC 3501 6.3, 6.4.1-6.4.2): LIST
 * and LSUB with CHILDREN (RFC 3348) and SPECIAL-USE (RFC 6154)
 * attributes, CREATE, DELETE, RENAME (with INBOX's special case),
 * SUBSCRIBE, UNSUBSCRIBE, STATUS, SELECT, EXAMINE, CHECK, CLOSE and
 * UNSELECT (RFC 3691).
 *
 * Each command is one job on the I/O pool: the work function does the
 * disk part and writes the whole response (untagged lines and the tagged
 * completion) into the job; the completion on the loop sends it and
 * resumes the connection. Response codes from RFC 5530. */
#include "imap_int.h"
#include "imap_folder.h"
#include "core/conn.h"
#include "core/log.h"
#include "core/pool.h"
#include "core/util.h"
#include "store/mailbox.h"

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

#define IMAP_PATTERN_MAX 1024

enum imap_status_item {
	ST_MESSAGES = 1 << 0, ST_RECENT = 1 << 1, ST_UIDNEXT = 1 << 2,
	ST_UIDVALIDITY = 1 << 3, ST_UNSEEN = 1 << 4,
};

struct imap_job;
typedef void imap_job_fn(struct imap_job *j);

struct imap_job {
	uint64_t conn_id;
	char tag[IMAP_TAG_MAX + 1];
	char *root;             /* the user's Maildir */
	char *name, *name2;     /* mailbox names (INBOX normalised) */
	char *pattern;          /* LIST/LSUB: reference + pattern */
	bool flag;              /* SUBSCRIBE / LSUB / EXAMINE */
	unsigned items;         /* STATUS */
	imap_job_fn *work;
	struct buf out;         /* the whole response */
	struct imap_selected *sel;   /* SELECT result; CLOSE input */
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
	free(sel);
	*selp = NULL;
}

static void imap_job_free(struct imap_job *j)
{
	free(j->root);
	free(j->name);
	free(j->name2);
	free(j->pattern);
	buf_free(&j->out);
	imap_selected_free(&j->sel);
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
	return j;
}

static void imap_job_submit(struct imap_session *s, struct imap_job *j)
{
	conn_pause(s->conn);
	pool_submit(s->srv->io_pool, imap_job_run, imap_job_done, j);
}

/* A mailbox name argument: checked, INBOX in any case becomes "INBOX".
 * NULL after answering BAD/NO. */
static char *imap_mbox_arg(struct imap_session *s, const struct imap_arg *a)
{
	struct str name;
	const char *why;
	if (!imap_arg_astring(a, &name)) {
		imap_bad(s, "Invalid mailbox name argument.");
		return NULL;
	}
	if (imap_folder_name_check(name, &why) < 0) {
		imap_tagged(s, "NO", "[CANNOT] %s.", why);
		return NULL;
	}
	if (imap_folder_is_inbox(name))
		return xstrdup("INBOX");
	return xstrndup(name.p, name.len);
}

static bool imap_folder_exists(const char *root, const char *name)
{
	struct stat st;
	char *path = imap_folder_path(root, str_from_cstr(name));
	bool ok = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
	free(path);
	return ok;
}

/* --- LIST / LSUB --- */

struct imap_list {
	char **names;           /* existing folders, sorted */
	size_t n;
};

static bool imap_list_has(const struct imap_list *l, const char *name, size_t len)
{
	for (size_t i = 0; i < l->n; i++)
		if (strncmp(l->names[i], name, len) == 0 && l->names[i][len] == '\0')
			return true;
	return false;
}

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
	if (strcmp(name, "INBOX") == 0 && strcasecmp(pattern, "INBOX") == 0)
		return true;
	return imap_folder_match(pattern, name, '.');
}

static void imap_list_line(struct imap_job *j, const char *cmd, const char *attrs, const char *name)
{
	buf_printf(&j->out, "* %s (%s) \".\" ", cmd, attrs);
	imap_append_astring(&j->out, str_from_cstr(name));
	buf_append(&j->out, "\r\n", 2);
}

/* One LIST line for name (existing or a parent that exists only as a
 * level of its children: \Noselect, RFC 3501 6.3.8). */
static void imap_list_one(struct imap_job *j, const struct imap_list *l, const char *name,
			  bool exists)
{
	char attrs[128];
	const char *su = imap_folder_special_use(name);
	snprintf(attrs, sizeof(attrs), "%s%s%s%s", exists ? "" : "\\Noselect ",
		 imap_list_children(l, name) ? "\\HasChildren" : "\\HasNoChildren",
		 su ? " " : "", su ? su : "");
	imap_list_line(j, "LIST", attrs, name);
}

static void imap_list_work(struct imap_job *j)
{
	struct imap_list l;
	if (imap_folder_names(j->root, &l.names, &l.n) < 0) {
		imap_job_tagged(j, "NO", "[SERVERBUG] Cannot list the mailboxes.");
		return;
	}
	if (imap_list_matches(j->pattern, "INBOX"))
		imap_list_line(j, "LIST", "\\HasNoChildren", "INBOX");
	for (size_t i = 0; i < l.n; i++) {
		/* parents missing on disk, once each (names are sorted) */
		for (const char *dot = strchr(l.names[i], '.'); dot; dot = strchr(dot + 1, '.')) {
			size_t len = (size_t)(dot - l.names[i]);
			if (imap_list_has(&l, l.names[i], len) ||
			    (i > 0 && strncmp(l.names[i - 1], l.names[i], len + 1) == 0))
				continue;
			char *parent = xstrndup(l.names[i], len);
			if (imap_list_matches(j->pattern, parent))
				imap_list_one(j, &l, parent, false);
			free(parent);
		}
		if (imap_list_matches(j->pattern, l.names[i]))
			imap_list_one(j, &l, l.names[i], true);
	}
	imap_folder_names_free(l.names, l.n);
	imap_job_tagged(j, "OK", "List completed.");
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

static void imap_list_cmd(struct imap_session *s, const struct imap_arg *args, size_t nargs,
			  bool lsub)
{
	const struct imap_arg *a[3];
	struct str ref, pat;
	if (imap_args_top(args, nargs, a, 3) != 2 || !imap_arg_astring(a[0], &ref) ||
	    !imap_arg_astring(a[1], &pat) || ref.len + pat.len > IMAP_PATTERN_MAX ||
	    memchr(ref.p, '\0', ref.len) || memchr(pat.p, '\0', pat.len)) {
		imap_bad(s, "Syntax: %s reference mailbox-pattern", lsub ? "LSUB" : "LIST");
		return;
	}
	if (pat.len == 0 && !lsub) {
		/* RFC 3501 6.3.8: the hierarchy delimiter and root name. */
		imap_reply(s, "* LIST (\\Noselect) \".\" \"\"");
		imap_tagged(s, "OK", "List completed.");
		return;
	}
	struct imap_job *j = imap_job_new(s, lsub ? imap_lsub_work : imap_list_work);
	struct buf b = { 0 };
	buf_printf(&b, "%.*s%.*s", STR_FMT(ref), STR_FMT(pat));
	j->pattern = xstrdup(buf_ptr(&b));
	buf_free(&b);
	imap_job_submit(s, j);
}

void imap_cmd_list(struct imap_session *s, const struct imap_arg *args, size_t nargs)
{
	imap_list_cmd(s, args, nargs, false);
}

void imap_cmd_lsub(struct imap_session *s, const struct imap_arg *args, size_t nargs)
{
	imap_list_cmd(s, args, nargs, true);
}

/* --- CREATE / DELETE / RENAME / SUBSCRIBE --- */

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
	if (fd < 0)
		imap_job_tagged(j, "NO", "[SERVERBUG] Cannot create the mailbox.");
	else
		imap_job_tagged(j, "OK", "Create completed.");
	if (fd >= 0)
		close(fd);
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
	if (rename(path, gone) != 0)
		imap_job_tagged(j, "NO", "[SERVERBUG] Cannot delete the mailbox.");
	else
		imap_job_tagged(j, "OK", "Delete completed.");
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

void imap_cmd_create(struct imap_session *s, const struct imap_arg *args, size_t nargs)
{
	/* RFC 3501 6.3.3: a trailing separator only says children will follow. */
	if (nargs == 1 && args[0].type != IMAP_ARG_LIST && args[0].s.len > 1 &&
	    args[0].s.p[args[0].s.len - 1] == '.') {
		struct imap_arg a = args[0];
		a.s.len--;
		imap_names_cmd(s, &a, 1, 1, imap_create_work, false);
		return;
	}
	imap_names_cmd(s, args, nargs, 1, imap_create_work, false);
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
	size_t exists, recent, unseen;
	size_t first_unseen;    /* sequence number, 0 if none */
};

static void imap_count(const struct mailbox *mb, struct imap_counts *c)
{
	memset(c, 0, sizeof(*c));
	c->exists = mb->count;
	for (size_t i = 0; i < mb->count; i++) {
		c->recent += mb->msgs[i].recent;
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

static void imap_status_work(struct imap_job *j)
{
	struct mailbox *mb = imap_open_folder(j, 0);
	if (mb == NULL)
		return;
	struct imap_counts c;
	imap_count(mb, &c);
	const char *sp = "";
	buf_append_str(&j->out, "* STATUS ");
	imap_append_astring(&j->out, str_from_cstr(j->name));
	buf_append_str(&j->out, " (");
	if (j->items & ST_MESSAGES) {
		buf_printf(&j->out, "%sMESSAGES %zu", sp, c.exists);
		sp = " ";
	}
	if (j->items & ST_RECENT) {
		buf_printf(&j->out, "%sRECENT %zu", sp, c.recent);
		sp = " ";
	}
	if (j->items & ST_UIDNEXT) {
		buf_printf(&j->out, "%sUIDNEXT %u", sp, mb->hdr.next_uid);
		sp = " ";
	}
	if (j->items & ST_UIDVALIDITY) {
		buf_printf(&j->out, "%sUIDVALIDITY %u", sp, mb->hdr.uidvalidity);
		sp = " ";
	}
	if (j->items & ST_UNSEEN)
		buf_printf(&j->out, "%sUNSEEN %zu", sp, c.unseen);
	buf_append_str(&j->out, ")\r\n");
	imap_job_tagged(j, "OK", "Status completed.");
	mailbox_free(&mb);
}

static int imap_status_items(const struct imap_arg *list, unsigned *items)
{
	static const struct { const char *name; unsigned bit; } names[] = {
		{ "MESSAGES", ST_MESSAGES }, { "RECENT", ST_RECENT }, { "UIDNEXT", ST_UIDNEXT },
		{ "UIDVALIDITY", ST_UIDVALIDITY }, { "UNSEEN", ST_UNSEEN },
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
	struct imap_keywords kw;
	if (imap_keywords_read(mb->root, &kw) < 0)
		memset(&kw, 0, sizeof(kw));
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
	buf_printf(&j->out, "* %zu EXISTS\r\n* %zu RECENT\r\n", c.exists, c.recent);
	if (c.first_unseen)
		buf_printf(&j->out, "* OK [UNSEEN %zu] First unseen.\r\n", c.first_unseen);
	buf_printf(&j->out, "* OK [UIDVALIDITY %u] UIDs valid\r\n", mb->hdr.uidvalidity);
	buf_printf(&j->out, "* OK [UIDNEXT %u] Predicted next UID\r\n", mb->hdr.next_uid);
	imap_job_tagged(j, "OK", "[%s] %s completed.", ro ? "READ-ONLY" : "READ-WRITE",
			ro ? "Examine" : "Select");
	j->sel = xcalloc(1, sizeof(*j->sel));
	j->sel->mb = mb;
	j->sel->name = xstrdup(j->name);
	j->sel->readonly = ro;
	j->sel->kw = kw;
	j->sel->cache = imap_cache_open(mb);
}

static void imap_select_cmd(struct imap_session *s, const struct imap_arg *args, size_t nargs,
			    bool readonly)
{
	const struct imap_arg *a[2];
	if (imap_args_top(args, nargs, a, 2) != 1) {
		imap_bad(s, "Syntax: %s mailbox", readonly ? "EXAMINE" : "SELECT");
		return;
	}
	/* RFC 3501 6.3.1: the selected mailbox is closed first (without
	 * expunging); a failed SELECT leaves none selected. */
	imap_selected_free(&s->sel);
	s->state = IMAP_AUTH;
	struct imap_job *j = imap_job_new(s, imap_select_work);
	j->flag = readonly;
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
	if (n > 0 && mailbox_expunge(mb, uids, n) > 0)
		log_warn(NULL, "event=expunge_failed folder=\"%s\"", mb->root);
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
