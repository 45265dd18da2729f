/* imap_quota.c - QUOTA (RFC 9208) with the STORAGE resource: GETQUOTAROOT,
 * GETQUOTA and SETQUOTA.
 *
 * A user has one quota root, "", over the whole Maildir: the limit is the
 * directory's quota (s->quota, set at login), the usage is counted the
 * way SMTP delivery and APPEND/COPY's [OVERQUOTA] count it (maildir_usage:
 * every folder's cur/ and new/, the S= sizes), so the numbers a client
 * sees are the ones it is refused by. RFC 9208 5.1 gives STORAGE in units
 * of 1024 octets: both are rounded down, as Dovecot does. A user without
 * a quota has no quota root (an empty QUOTAROOT list, RFC 9208 4).
 * SETQUOTA is NO: quotas are set in the directory, not by users (no
 * QUOTASET capability). The usage scan runs on the I/O pool. */
#include "imap_int.h"
#include "imap_folder.h"
#include "core/conn.h"
#include "core/pool.h"
#include "core/util.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define IMAP_QUOTA_ROOT ""          /* the one quota root (Dovecot: "User quota") */
#define IMAP_QUOTA_UNIT 1024        /* RFC 9208 5.1: STORAGE in KiB */

struct imap_quota_job {
	uint64_t conn_id;
	char tag[IMAP_TAG_MAX + 1];
	char *root;             /* the user's Maildir */
	char *mailbox;          /* GETQUOTAROOT's (INBOX normalised); NULL: GETQUOTA */
	int64_t quota;          /* bytes, > 0 (GETQUOTA) or 0 = none */
	bool utf8;              /* IMAP4rev2: the name in UTF-8 */
	struct buf out;         /* the whole response */
};

static bool imap_quota_mailbox_exists(const char *root, const char *name)
{
	struct stat st;
	char *path = imap_folder_path(root, str_from_cstr(name));
	bool ok = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
	free(path);
	return ok;
}

/* The QUOTAROOT response (GETQUOTAROOT), then the root's QUOTA. */
static void imap_quota_work(void *arg)
{
	struct imap_quota_job *j = arg;
	if (j->mailbox != NULL && !imap_quota_mailbox_exists(j->root, j->mailbox)) {
		buf_printf(&j->out, "%s NO [NONEXISTENT] Mailbox does not exist.\r\n", j->tag);
		return;
	}
	int64_t used = j->quota > 0 ? maildir_usage(j->root) : 0;
	if (used < 0) {
		buf_printf(&j->out, "%s NO [SERVERBUG] Cannot compute the quota.\r\n", j->tag);
		return;
	}
	if (j->mailbox != NULL) {
		buf_append_str(&j->out, "* QUOTAROOT ");
		imap_append_mailbox(&j->out, j->mailbox, j->utf8);
		buf_append_str(&j->out, j->quota > 0 ? " \"" IMAP_QUOTA_ROOT "\"\r\n" : "\r\n");
	}
	if (j->quota > 0)
		buf_printf(&j->out, "* QUOTA \"" IMAP_QUOTA_ROOT "\" (STORAGE %lld %lld)\r\n",
			   (long long)(used / IMAP_QUOTA_UNIT), (long long)(j->quota / IMAP_QUOTA_UNIT));
	buf_printf(&j->out, "%s OK %s completed.\r\n", j->tag,
		   j->mailbox != NULL ? "Getquotaroot" : "Getquota");
}

static void imap_quota_done(void *arg)
{
	struct imap_quota_job *j = arg;
	struct conn *c = conn_find(j->conn_id);
	if (c != NULL) {
		conn_write(c, buf_ptr(&j->out), j->out.len);
		imap_resume(c->proto);
	}
	free(j->root);
	free(j->mailbox);
	buf_free(&j->out);
	free(j);
}

static void imap_quota_submit(struct imap_session *s, char *mailbox)
{
	struct imap_quota_job *j = xcalloc(1, sizeof(*j));
	j->conn_id = s->conn->id;
	snprintf(j->tag, sizeof(j->tag), "%s", s->tag);
	j->root = xstrdup(s->maildir);
	j->mailbox = mailbox;
	j->quota = s->quota > 0 ? s->quota : 0;
	j->utf8 = s->rev2;
	conn_pause(s->conn);
	pool_submit(s->srv->io_pool, imap_quota_work, imap_quota_done, j);
}

/* RFC 9208 4: GETQUOTAROOT mailbox */
void imap_cmd_getquotaroot(struct imap_session *s, const struct imap_arg *args, size_t nargs)
{
	struct str name;
	struct buf tmp = { 0 };
	const char *why;
	if (nargs != 1 || !imap_arg_mailbox(s->rev2, &args[0], &name, &tmp))
		imap_bad(s, "Syntax: GETQUOTAROOT mailbox");
	else if (imap_folder_name_check(name, &why) < 0)
		imap_tagged(s, "NO", "[NONEXISTENT] %s.", why);
	else
		imap_quota_submit(s, imap_folder_is_inbox(name) ? xstrdup("INBOX") : xstrndup(name.p, name.len));
	buf_free(&tmp);
}

/* RFC 9208 4: GETQUOTA quota-root */
void imap_cmd_getquota(struct imap_session *s, const struct imap_arg *args, size_t nargs)
{
	struct str root;
	if (nargs != 1 || !imap_arg_astring(&args[0], &root)) {
		imap_bad(s, "Syntax: GETQUOTA quota-root");
		return;
	}
	if (s->quota <= 0 || !str_case_eq(root, IMAP_QUOTA_ROOT)) {
		imap_tagged(s, "NO", "[NONEXISTENT] No such quota root.");
		return;
	}
	imap_quota_submit(s, NULL);
}

/* RFC 9208 4: SETQUOTA quota-root (resource limit ...); the limits are
 * the directory's, and without QUOTASET a client has no right to set them. */
void imap_cmd_setquota(struct imap_session *s, const struct imap_arg *args, size_t nargs)
{
	const struct imap_arg *a[3];
	struct str root;
	if (imap_args_top(args, nargs, a, 3) != 2 || !imap_arg_astring(a[0], &root) ||
	    a[1]->type != IMAP_ARG_LIST || a[1]->members % 2 != 0 ||
	    a[1]->span != a[1]->members + 1) {
		imap_bad(s, "Syntax: SETQUOTA quota-root (resource limit ...)");
		return;
	}
	imap_tagged(s, "NO", "[NOPERM] Quotas are set by the administrator.");
}
