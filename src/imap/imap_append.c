/* imap_append.c - APPEND (RFC 3501 6.3.11) and MULTIAPPEND (RFC 3502),
 * streamed to disk, answered with UIDPLUS's APPENDUID (RFC 4315 3).
 *
 * The parser announces every literal (imap_parser_announce); a message
 * literal of APPEND is not held in memory but sunk here, one message after
 * the other:
 *  1. announced (loop): the options before it (flags, date-time) are
 *     checked and its size against imap.append_max; then a pool job checks
 *     the mailbox (TRYCREATE), the quota (the Maildir's usage, counted once
 *     per command, plus every size announced) and creates the message's
 *     file in the folder's tmp/. Only then does a synchronizing literal get
 *     its "+": a refusal costs the client no upload (RFC 3501 7.5).
 *  2. its bytes (loop): written to that file as they arrive, CRLF made LF
 *     as deliveries are stored - a page-cache write, as SMTP's spool does.
 *  3. the command's end (pool): every file fsync'd, then each renamed into
 *     new/ (cur/ with flags) with its sizes in the name, the directories
 *     fsync'd, the UIDs taken from the uidlist; then OK [APPENDUID v set].
 * All or nothing (RFC 3502 6.3.11): any failure removes every file of the
 * command. A client that leaves mid-literal leaves nothing in new/ or cur/;
 * its tmp/ files are removed on the pool (by maildir_clean_tmp() if the
 * process dies). */
#include "imap_int.h"
#include "imap_folder.h"
#include "core/conn.h"
#include "core/log.h"
#include "core/pool.h"
#include "core/util.h"
#include "store/mailbox.h"
#include "store/store.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define IMAP_APPEND_STAGE 16384         /* CRLF->LF staging, on the stack */
#define IMAP_APPEND_BASE_MAX 600       /* "time.MusecPpidQn.host,S=..,W=.." */
#define IMAP_APPEND_SYNTAX "Syntax: APPEND mailbox [(flags)] [date-time] literal ..."

struct imap_append_msg {
	char *tmp;              /* folder/tmp/NAME while it is written */
	char *dst;              /* its path in new/ or cur/ once published */
	char *base;             /* the uidlist's name, once published */
	int fd;                 /* -1: complete (or never opened) */
	char flags[8];          /* system flag letters, ASCII order */
	char *kw[IMAP_KEYWORDS_MAX];    /* keyword names */
	size_t nkw;
	time_t date;            /* the internal date; 0 = now */
	uint64_t size, vsize;   /* bytes stored (LF), with CRLF (RFC822.SIZE) */
	bool cr;                /* the last chunk ended in a CR */
	uint32_t uid;
};

/* One APPEND command; the session holds it between its literals, a pool
 * job while one runs (found again by connection id, style rule 14). */
struct imap_append {
	uint64_t conn_id;
	struct pool *io_pool;
	char tag[IMAP_TAG_MAX + 1];
	char *root, *dest;      /* the user's Maildir; the mailbox name */
	char *folder;           /* its directory, once checked */
	int64_t quota, used;    /* bytes (0 = unlimited); usage, -1 = not yet */
	uint64_t announced;     /* bytes of the messages announced so far */
	size_t next_arg;        /* top-level arguments taken by the messages */
	struct imap_append_msg *msgs;
	size_t n, cap;
	const char *status;     /* set: the command fails with status text */
	char text[200];
	struct buf out;         /* the tagged reply of the commit */
};

static void imap_append_fail(struct imap_append *a, const char *status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void imap_append_fail(struct imap_append *a, const char *status, const char *fmt, ...)
{
	va_list ap;
	if (a->status != NULL)
		return;                 /* the first reason is the answer */
	a->status = status;
	va_start(ap, fmt);
	vsnprintf(a->text, sizeof(a->text), fmt, ap);
	va_end(ap);
}

static void imap_append_msg_free(struct imap_append_msg *m)
{
	for (size_t i = 0; i < m->nkw; i++)
		free(m->kw[i]);
	free(m->tmp);
	free(m->dst);
	free(m->base);
}

static void imap_append_free(struct imap_append **ap)
{
	struct imap_append *a = *ap;
	if (a == NULL)
		return;
	for (size_t i = 0; i < a->n; i++)
		imap_append_msg_free(&a->msgs[i]);
	free(a->msgs);
	free(a->root);
	free(a->dest);
	free(a->folder);
	buf_free(&a->out);
	free(a);
	*ap = NULL;
}

/* Closes what is open and removes every file of the command. Blocking. */
static void imap_append_unlink_all(struct imap_append *a)
{
	for (size_t i = 0; i < a->n; i++) {
		struct imap_append_msg *m = &a->msgs[i];
		if (m->fd >= 0)
			close(m->fd);
		m->fd = -1;
		if (m->dst != NULL)
			unlink(m->dst);
		else if (m->tmp != NULL)
			unlink(m->tmp);
	}
}

static void imap_append_discard_work(void *arg)
{
	imap_append_unlink_all(arg);
}

static void imap_append_discard_done(void *arg)
{
	struct imap_append *a = arg;
	imap_append_free(&a);
}

void imap_append_abort(struct imap_session *s)
{
	struct imap_append *a = s->append;
	bool files = false;
	s->append = NULL;
	for (size_t i = 0; a != NULL && i < a->n; i++)
		files |= a->msgs[i].tmp != NULL;
	if (files)
		pool_submit(a->io_pool, imap_append_discard_work, imap_append_discard_done, a);
	else
		imap_append_free(&a);
}

/* --- the options of a message (loop) --- */

/* RFC 3501 9 date-time: "dd-Mon-yyyy hh:mm:ss +zzzz" (day may be " d"). */
static int imap_parse_date_time(struct str s, time_t *t)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	char buf[40];
	if (s.len < 25 || s.len > 27)
		return -1;
	snprintf(buf, sizeof(buf), "%.*s", STR_FMT(s));
	struct tm tm = { 0 };
	char mon[4];
	int zone, n = 0;
	if (sscanf(buf, "%2d-%3s-%4d %2d:%2d:%2d %5d%n", &tm.tm_mday, mon, &tm.tm_year, &tm.tm_hour,
		   &tm.tm_min, &tm.tm_sec, &zone, &n) != 7 || (size_t)n != strlen(buf))
		return -1;
	const char *m = strstr(months, mon);
	if (m == NULL || (m - months) % 3 != 0 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
	    tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60 || zone < -1459 || zone > 1459)
		return -1;
	tm.tm_mon = (int)((m - months) / 3);
	tm.tm_year -= 1900;
	int off = (zone / 100) * 3600 + (zone % 100) * 60;
	*t = timegm(&tm) - off;
	return 0;
}

/* A flag-list: system flags as Maildir letters (ASCII order, as Dovecot
 * writes them), keywords kept by name for the commit; \Recent cannot be
 * set (RFC 3501 2.3.2). 0 or -1. */
static int imap_append_flags(struct imap_append_msg *m, const struct imap_arg *list)
{
	static const struct { const char *flag; char letter; } map[] = {
		{ "\\Draft", 'D' }, { "\\Flagged", 'F' }, { "\\Answered", 'R' },
		{ "\\Seen", 'S' }, { "\\Deleted", 'T' },
	};
	char set[ARRAY_SIZE(map)] = { 0 };
	if (list->members != list->span - 1)
		return -1;              /* a list inside */
	for (size_t i = 1; i <= list->members; i++) {
		if (list[i].type != IMAP_ARG_ATOM)
			return -1;
		if (list[i].s.p[0] != '\\') {
			if (!imap_keyword_valid(list[i].s))
				return -1;
			if (m->nkw < IMAP_KEYWORDS_MAX)
				m->kw[m->nkw++] = xstrndup(list[i].s.p, list[i].s.len);
			continue;
		}
		size_t k = 0;
		while (k < ARRAY_SIZE(map) && !str_case_eq(list[i].s, map[k].flag))
			k++;
		if (k == ARRAY_SIZE(map))
			return -1;
		set[k] = map[k].letter;
	}
	size_t n = 0;
	for (size_t k = 0; k < ARRAY_SIZE(map); k++)
		if (set[k])
			m->flags[n++] = set[k];
	m->flags[n] = '\0';
	return 0;
}

/* RFC 3502 append-opts: the top-level arguments after the previous
 * message, [flag-list] [date-time]. *count_r = the top-level arguments
 * so far. 0 or -1. */
static int imap_append_opts(struct imap_append_msg *m, const struct imap_arg *args, size_t nargs,
			    size_t from, size_t *count_r)
{
	const struct imap_arg *o[3];
	size_t k = 0, count = 0;
	for (size_t i = 0; i < nargs; i += args[i].span, count++)
		if (count >= from && k < ARRAY_SIZE(o))
			o[k++] = &args[i];
	*count_r = count;
	if (count < from || count - from > 2)
		return -1;
	size_t i = 0;
	if (i < k && o[i]->type == IMAP_ARG_LIST && imap_append_flags(m, o[i]) == 0)
		i++;
	if (i < k && o[i]->type == IMAP_ARG_QUOTED && imap_parse_date_time(o[i]->s, &m->date) == 0)
		i++;
	return i == k ? 0 : -1;
}

/* --- announced literals (loop) --- */

static struct imap_append *imap_append_new(struct imap_session *s, const struct imap_arg *mbox_arg)
{
	struct imap_append *a = xcalloc(1, sizeof(*a));
	struct str mbox;
	const char *why;
	a->conn_id = s->conn->id;
	a->io_pool = s->srv->io_pool;
	snprintf(a->tag, sizeof(a->tag), "%s", s->tag);
	a->root = xstrdup(s->maildir);
	a->quota = s->quota;
	a->used = -1;
	a->next_arg = 1;
	struct buf tmp = { 0 };
	if (!imap_arg_mailbox(s->rev2, mbox_arg, &mbox, &tmp))
		imap_append_fail(a, "BAD", IMAP_APPEND_SYNTAX);
	else if (imap_folder_name_check(mbox, &why) < 0)
		imap_append_fail(a, "NO", "[CANNOT] %s.", why);
	else
		a->dest = imap_folder_is_inbox(mbox) ? xstrdup("INBOX") : xstrndup(mbox.p, mbox.len);
	buf_free(&tmp);
	return a;
}

static void imap_append_answer(struct imap_session *s, const struct imap_append *a)
{
	if (strcmp(a->status, "BAD") == 0)
		imap_bad(s, "%s", a->text);
	else
		imap_tagged(s, a->status, "%s", a->text);
}

/* The literal announced now is not taken (a->status says why). A
 * synchronizing one was never sent: the command ends here. A
 * non-synchronizing one is on its way: read and dropped with the rest of
 * the command, the answer at its end - unless it is too big to read
 * (RFC 7888 4): then BAD and close. */
static void imap_append_refuse(struct imap_session *s, bool too_big)
{
	struct imap_parser *p = &s->parser;
	if (!p->lit_plus) {
		imap_parser_literal_refuse(p);
		imap_append_answer(s, s->append);
		imap_append_abort(s);
	} else if (too_big) {
		log_info(s->conn->sid, "event=command_too_big error=\"APPEND literal of %llu bytes\"",
			 (unsigned long long)p->lit_size);
		imap_tagged(s, "BAD", "[TOOBIG] Message too big.");
		imap_append_abort(s);
		imap_close(s, "Message too big, closing connection.");
	} else {
		imap_literal_result(s, imap_parser_literal(p, IMAP_LIT_SINK));
	}
}

static void imap_append_open_work(void *arg);
static void imap_append_open_done(void *arg);

/* The message m announced now: the pool checks and opens its file. */
static void imap_append_prepare(struct imap_session *s, struct imap_append_msg *m)
{
	struct imap_append *a = s->append;
	if (a->n == a->cap) {
		a->cap = a->cap ? a->cap * 2 : 4;
		a->msgs = xreallocarray(a->msgs, a->cap, sizeof(*a->msgs));
	}
	a->msgs[a->n++] = *m;
	a->announced += s->parser.lit_size;
	s->append = NULL;               /* the job holds it */
	conn_pause(s->conn);
	pool_submit(a->io_pool, imap_append_open_work, imap_append_open_done, a);
}

bool imap_append_literal(struct imap_session *s)
{
	struct imap_parser *p = &s->parser;
	const struct imap_arg *args;
	size_t nargs, count;
	if (!(s->state & IMAP_LOGGED_IN) || !str_case_eq(str_from_cstr(p->name), "APPEND") ||
	    !imap_parser_partial(p, &args, &nargs) || nargs == 0)
		return false;   /* held: the mailbox name, one inside a list, ... */
	snprintf(s->tag, sizeof(s->tag), "%s", p->tag);
	if (s->append == NULL)
		s->append = imap_append_new(s, &args[0]);
	struct imap_append *a = s->append;
	struct imap_append_msg m = { .fd = -1 };
	if (a->status == NULL) {
		if (imap_append_opts(&m, args, nargs, a->next_arg, &count) < 0)
			imap_append_fail(a, "BAD", IMAP_APPEND_SYNTAX);
		a->next_arg = count + 1;
	}
	bool too_big = p->lit_size > s->srv->limits.append_max;
	if (too_big)
		imap_append_fail(a, p->lit_plus ? "BAD" : "NO", "[TOOBIG] Message too big.");
	if (a->status != NULL) {        /* this one, or an earlier one, failed */
		imap_append_msg_free(&m);
		imap_append_refuse(s, too_big);
		return true;
	}
	imap_append_prepare(s, &m);
	return true;
}

/* --- the file of a message (pool, then loop) --- */

/* The destination folder of the first message; INBOX is made if missing. */
static int imap_append_folder(struct imap_append *a)
{
	struct stat st;
	char *path = imap_folder_path(a->root, str_from_cstr(a->dest));
	bool inbox = strcmp(a->dest, "INBOX") == 0;
	if (inbox ? mailbox_create(path) == 0 : stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		a->folder = path;
		return 0;
	}
	free(path);
	if (inbox)
		imap_append_fail(a, "NO", "[SERVERBUG] Cannot create INBOX.");
	else    /* RFC 3501 6.3.11: the client may CREATE and retry */
		imap_append_fail(a, "NO", "[TRYCREATE] Mailbox does not exist.");
	return -1;
}

/* RFC 5530 OVERQUOTA: the Maildir's usage (as SMTP delivery counts it)
 * plus every message of the command so far. */
static int imap_append_quota(struct imap_append *a)
{
	if (a->quota <= 0)
		return 0;
	if (a->used < 0)
		a->used = maildir_usage(a->root);
	if (a->used < 0) {
		imap_append_fail(a, "NO", "[SERVERBUG] Cannot compute the quota.");
		return -1;
	}
	if ((uint64_t)a->used + a->announced <= (uint64_t)a->quota)
		return 0;
	imap_append_fail(a, "NO", "[OVERQUOTA] Quota exceeded (mailbox is full).");
	return -1;
}

static void imap_append_open_work(void *arg)
{
	struct imap_append *a = arg;
	struct imap_append_msg *m = &a->msgs[a->n - 1];
	if ((a->folder == NULL && imap_append_folder(a) < 0) || imap_append_quota(a) < 0)
		return;
	m->fd = imap_folder_tmp_create(a->folder, &m->tmp);
	if (m->fd >= 0)
		return;
	int e = errno;
	if (e == ENOENT) {              /* deleted since the first message */
		imap_append_fail(a, "NO", "[TRYCREATE] Mailbox does not exist.");
		return;
	}
	log_error(NULL, "event=append_failed folder=\"%s\" error=\"%s\"", a->folder, strerror(e));
	imap_append_fail(a, "NO", "[SERVERBUG] Cannot save the message.");
}

static int imap_append_write_all(int fd, const char *p, size_t n)
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

/* Stored as deliveries are: CRLF becomes LF; W= counts each LF as two. A
 * CR that ends a chunk waits for the next one. 0 or -1 (errno). */
static int imap_append_write(struct imap_append_msg *m, struct str in)
{
	char out[IMAP_APPEND_STAGE];
	size_t o = 0;
	for (size_t i = 0; i < in.len; i++) {
		char ch = in.p[i];
		if (m->cr && ch != '\n')
			out[o++] = '\r';        /* a bare CR is kept */
		m->cr = ch == '\r';
		if (!m->cr)
			out[o++] = ch;
		if (o + 2 > sizeof(out) || i + 1 == in.len) {
			if (imap_append_write_all(m->fd, out, o) < 0)
				return -1;
			m->size += o;
			m->vsize += o;
			for (size_t k = 0; k < o; k++)
				m->vsize += out[k] == '\n';
			o = 0;
		}
	}
	return 0;
}

static void imap_append_write_failed(struct imap_append *a, struct imap_append_msg *m)
{
	int e = errno;
	log_error(NULL, "event=append_failed folder=\"%s\" error=\"%s\"", a->folder, strerror(e));
	if (e == ENOSPC || e == EDQUOT)
		imap_append_fail(a, "NO", "[OVERQUOTA] Not enough disk space.");
	else
		imap_append_fail(a, "NO", "[SERVERBUG] Cannot save the message.");
	close(m->fd);
	m->fd = -1;
}

/* A message whose literal ended: its file is closed (a CR still pending
 * was a bare one). */
static void imap_append_msg_end(struct imap_append *a, struct imap_append_msg *m)
{
	if (m->fd < 0)
		return;
	if (m->cr && imap_append_write_all(m->fd, "\r", 1) < 0) {
		imap_append_write_failed(a, m);
		return;
	}
	m->size += m->cr;
	m->vsize += m->cr;
	m->cr = false;
	/* closed now: a long MULTIAPPEND holds no fd per message; the commit
	 * opens each file again for its fsync */
	if (close(m->fd) != 0)          /* closed anyway (Linux); the data may be lost */
		imap_append_fail(a, "NO", "[SERVERBUG] Cannot save the message.");
	m->fd = -1;
}

void imap_append_chunk(struct imap_session *s, struct str chunk, bool last)
{
	struct imap_append *a = s->append;
	if (a == NULL || a->n == 0)
		return;
	struct imap_append_msg *m = &a->msgs[a->n - 1];
	if (a->status != NULL)
		return;                 /* dropped: the command fails at its end */
	if (m->fd >= 0 && imap_append_write(m, chunk) < 0)
		imap_append_write_failed(a, m);
	if (last)
		imap_append_msg_end(a, m);
}

static void imap_append_open_done(void *arg)
{
	struct imap_append *a = arg;
	struct conn *c = conn_find(a->conn_id);
	if (c == NULL) {
		/* The client left meanwhile; rare, so cleaned up right here
		 * rather than by a job submitted from a completion. */
		imap_append_unlink_all(a);
		imap_append_free(&a);
		return;
	}
	struct imap_session *s = c->proto;
	s->append = a;
	if (a->status != NULL) {
		imap_append_refuse(s, false);
	} else {
		struct imap_append_msg *m = &a->msgs[a->n - 1];
		enum imap_parse_result r = imap_parser_literal(&s->parser, IMAP_LIT_SINK);
		if (r != IMAP_PARSE_ERROR && s->parser.lit_size == 0)
			imap_append_msg_end(a, m);
		imap_literal_result(s, r);
	}
	imap_resume(s);
}

/* --- the command's end: commit (pool) --- */

/* Every file durable before any is visible. */
static int imap_append_sync_all(struct imap_append *a)
{
	for (size_t i = 0; i < a->n; i++) {
		if (imap_folder_tmp_sync(a->msgs[i].tmp, a->msgs[i].date) == 0)
			continue;
		int e = errno;
		struct stat st;
		if (e == ENOENT && stat(a->folder, &st) != 0)
			imap_append_fail(a, "NO", "[TRYCREATE] Mailbox was deleted.");
		log_error(NULL, "event=append_failed folder=\"%s\" error=\"%s\"", a->folder,
			  strerror(e));
		imap_append_fail(a, "NO", "[SERVERBUG] Cannot save the message.");
		return -1;
	}
	return 0;
}

/* The info flags of m: its system letters and its keywords' letters in the
 * folder's dovecot-keywords (new names added), in ASCII order. NULL when
 * it has none: the message goes to new/. */
static const char *imap_append_info(const struct imap_append_msg *m, const char *folder,
				    struct imap_keywords *kw, char out[40])
{
	char set[128] = { 0 };
	for (const char *l = m->flags; *l; l++)
		set[(unsigned char)*l] = 1;
	for (size_t i = 0; i < m->nkw; i++) {
		char l = imap_keywords_assign(folder, kw, m->kw[i]);
		if (l)
			set[(unsigned char)l] = 1;
	}
	size_t n = 0;
	for (int ch = 'A'; ch <= 'z' && n < 39; ch++)
		if (set[ch])
			out[n++] = (char)ch;
	out[n] = '\0';
	return n > 0 ? out : NULL;
}

/* Renames every file into place, then makes the renames durable. */
static int imap_append_publish_all(struct imap_append *a)
{
	struct imap_keywords kw = { 0 };
	bool cur = false, new = false, keywords = false;
	int rc = 0;
	for (size_t i = 0; i < a->n; i++)
		keywords |= a->msgs[i].nkw > 0;
	if (keywords && imap_keywords_read(a->folder, &kw) < 0)
		rc = -1;
	for (size_t i = 0; rc == 0 && i < a->n; i++) {
		struct imap_append_msg *m = &a->msgs[i];
		char info[40], base[IMAP_APPEND_BASE_MAX];
		struct imap_folder_file f = { .tmp = m->tmp, .size = m->size, .vsize = m->vsize,
					      .flags = imap_append_info(m, a->folder, &kw, info) };
		rc = imap_folder_publish(a->folder, &f, base, sizeof(base), &m->dst);
		if (rc == 0)
			m->base = xstrdup(base);
		cur |= f.flags != NULL;
		new |= f.flags == NULL;
	}
	if (rc == 0 && ((new && imap_folder_sync_dir(a->folder, "new") != 0) ||
			(cur && imap_folder_sync_dir(a->folder, "cur") != 0)))
		rc = -1;
	if (rc != 0) {
		log_error(NULL, "event=append_failed folder=\"%s\" error=\"%s\"", a->folder,
			  strerror(errno));
		imap_append_fail(a, "NO", "[SERVERBUG] Cannot save the message.");
	}
	imap_keywords_free(&kw);
	return rc;
}

/* RFC 4315 uid-set, the messages in order: "7:9" or "7,9:10". */
static void imap_append_uid_set(struct buf *b, const struct imap_append *a)
{
	for (size_t i = 0; i < a->n;) {
		size_t k = i + 1;
		while (k < a->n && a->msgs[k].uid == a->msgs[k - 1].uid + 1)
			k++;
		buf_printf(b, "%s%u", i ? "," : "", a->msgs[i].uid);
		if (k - i > 1)
			buf_printf(b, ":%u", a->msgs[k - 1].uid);
		i = k;
	}
}

/* The UIDs the uidlist gives the new files; the reply. The messages are
 * in either way: without UIDs the answer is a plain OK (a NO would make
 * the client append them twice). */
static void imap_append_uids(struct imap_append *a)
{
	struct mailbox *mb = NULL;
	char err[512];
	size_t found = 0;
	if (mailbox_open(a->folder, 0, &mb, err, sizeof(err)) != 0)
		log_error(NULL, "event=mailbox_open_failed error=\"%s\"", err);
	for (size_t i = 0; mb != NULL && i < a->n; i++)
		for (size_t k = 0; k < mb->count && !a->msgs[i].uid; k++)
			if (strcmp(mb->msgs[k].base, a->msgs[i].base) == 0) {
				a->msgs[i].uid = mb->msgs[k].uid;
				found++;
			}
	if (mb != NULL)
		imap_cs_arrived(mb);    /* RFC 7162: a new message gets a modseq */
	if (found < a->n) {
		buf_printf(&a->out, "%s OK Append completed.\r\n", a->tag);
	} else {
		buf_printf(&a->out, "%s OK [APPENDUID %u ", a->tag, mb->hdr.uidvalidity);
		imap_append_uid_set(&a->out, a);
		buf_append_str(&a->out, "] Append completed.\r\n");
	}
	mailbox_free(&mb);
}

static void imap_append_commit_work(void *arg)
{
	struct imap_append *a = arg;
	if (imap_append_sync_all(a) == 0 && imap_append_publish_all(a) == 0) {
		imap_append_uids(a);
		return;
	}
	imap_append_unlink_all(a);      /* all or nothing (RFC 3502) */
	buf_printf(&a->out, "%s %s %s\r\n", a->tag, a->status, a->text);
}

/* RFC 3501 6.3.11: an APPEND to the selected mailbox SHOULD send its
 * EXISTS before the tagged OK: a sync of the session's view first. */
static bool imap_append_to_selected(const struct imap_session *s, const struct imap_append *a)
{
	return a->status == NULL && a->folder != NULL && s->state == IMAP_SELECTED && s->sel != NULL &&
	       !s->syncing && strcmp(s->sel->mb->root, a->folder) == 0;
}

static void imap_append_commit_done(void *arg)
{
	struct imap_append *a = arg;
	struct conn *c = conn_find(a->conn_id);
	if (c != NULL && imap_append_to_selected(c->proto, a)) {
		/* "TAG OK text\r\n" -> text */
		size_t skip = strlen(a->tag) + 4;
		char *text = xstrndup(buf_ptr(&a->out) + skip, a->out.len - skip - 2);
		imap_sync_then_ok(c->proto, a->tag, text);
		free(text);
	} else if (c != NULL) {
		conn_write(c, buf_ptr(&a->out), a->out.len);
		imap_resume(c->proto);
	}
	imap_append_free(&a);
}

/* The whole command is read: every message literal went to its file
 * (imap_append_literal); here the arguments are complete. */
void imap_cmd_append(struct imap_session *s, const struct imap_arg *args, size_t nargs)
{
	struct imap_append *a = s->append;
	if (a == NULL) {                /* no message literal at all */
		imap_bad(s, IMAP_APPEND_SYNTAX);
		return;
	}
	if (imap_args_top(args, nargs, NULL, 0) != a->next_arg)
		imap_append_fail(a, "BAD", IMAP_APPEND_SYNTAX);     /* options after the last message */
	if (a->status != NULL) {
		imap_append_answer(s, a);
		imap_append_abort(s);
		return;
	}
	s->append = NULL;               /* the job holds it */
	snprintf(a->tag, sizeof(a->tag), "%s", s->tag);
	conn_pause(s->conn);
	pool_submit(a->io_pool, imap_append_commit_work, imap_append_commit_done, a);
}
