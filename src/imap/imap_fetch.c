/* imap_fetch.c - FETCH and UID FETCH (RFC 3501 6.4.5, 6.4.8), and the UID
 * command prefix.
 *
 * The items are parsed on the loop (imap_fetch_parse.c); the messages are
 * read and the response built on the I/O pool, in batches of about
 * IMAP_FETCH_BATCH bytes: the next batch starts only while less than
 * IMAP_FETCH_QUEUE_MAX waits to be sent (an ev_prepare looks before the
 * loop blocks), so a large FETCH never piles up in memory. Files are stored with LF line ends and sent
 * with CRLF; RFC822.SIZE is the exact CRLF size (W= in the file name or
 * the uidlist). A non-PEEK body section sets \Seen (RFC 3501 6.4.5) and
 * the FETCH response then carries FLAGS. INTERNALDATE, ENVELOPE, BODY
 * and BODYSTRUCTURE come from the folder cache (imap_cache.c), filled from
 * one parse on a miss; UID, FLAGS and RFC822.SIZE come from the session's
 * snapshot: only body sections open the file. A message whose file vanished
 * under the FETCH is left out and the command answers NO [EXPUNGEISSUED]
 * (RFC 5530). */
#include "imap_int.h"
#include "core/arena.h"
#include "core/conn.h"
#include "core/log.h"
#include "core/pool.h"
#include "core/util.h"
#include "mime/mime.h"
#include "store/mailbox.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define IMAP_FETCH_BATCH (256 * 1024)
/* The next batch is read while at most this much waits to be sent: the
 * pool reads ahead of the socket, memory stays bounded per connection. */
#define IMAP_FETCH_QUEUE_MAX (1024 * 1024)
#define IMAP_FETCH_FILE_MAX ((size_t)1 << 31)

struct imap_fetch_msg {
	size_t index;           /* in the selected mailbox */
	uint32_t uid;
	char *base, *file;      /* file may be renamed by the job (\Seen) */
	uint64_t vsize;
	bool recent, renamed, gone;
};

struct imap_fetch_job {
	uint64_t conn_id;
	char tag[IMAP_TAG_MAX + 1];
	char *root;             /* the folder */
	bool uid_cmd, set_seen;
	struct imap_keywords kw;        /* a copy of the session's */
	struct imap_fetch f;
	struct imap_fetch_msg *msgs;
	size_t n, next;         /* messages, the next one to do */
	size_t gone;
	struct buf out;
	struct mcache *cache;   /* the selected folder's, held while the job runs */
	struct imap_cache_fill fill;    /* a record built from a parse */
	struct buf data;        /* the message being sent */
};

static void imap_fetch_job_free(struct imap_fetch_job *j)
{
	if (j == NULL)
		return;
	for (size_t i = 0; i < j->n; i++) {
		free(j->msgs[i].base);
		free(j->msgs[i].file);
	}
	free(j->msgs);
	free(j->root);
	imap_keywords_free(&j->kw);
	imap_fetch_free(&j->f);
	buf_free(&j->out);
	mcache_free(&j->cache);
	imap_cache_fill_free(&j->fill);
	buf_free(&j->data);
	free(j);
}

static void imap_fetch_date(struct buf *b, time_t t)
{
	static const char *const mon[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm tm;
	gmtime_r(&t, &tm);
	buf_printf(b, "INTERNALDATE \"%02d-%s-%04d %02d:%02d:%02d +0000\"", tm.tm_mday,
		   mon[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* Reads the whole file; 0, or -1 (errno ENOENT: the message is gone). */
static int imap_fetch_read(const char *root, struct imap_fetch_msg *m, struct buf *data,
			   time_t *mtime)
{
	int fd = mailbox_file_open(root, m->base, &m->file);
	if (fd < 0)
		return -1;
	struct stat st;
	int rc = fstat(fd, &st) == 0 && (size_t)st.st_size < IMAP_FETCH_FILE_MAX ? 0 : -1;
	*mtime = rc == 0 ? st.st_mtime : 0;
	for (size_t left = rc == 0 ? (size_t)st.st_size : 0; left > 0;) {
		char *w = buf_reserve(data, left);
		ssize_t r = read(fd, w, left);
		if (r <= 0)
			break;
		buf_commit(data, (size_t)r);
		left -= (size_t)r;
	}
	close(fd);
	return rc;
}

/* mm NULL: the whole message (BODY[], RFC822) needs no parse; without a
 * partial it is converted straight into the response. */
static void imap_fetch_section(struct buf *items, const struct imap_section *sec,
			       const struct mime_message *mm, const struct buf *data)
{
	struct buf r = { 0 };
	if (mm == NULL && !sec->partial) {
		buf_printf(items, " %s {%zu}\r\n", sec->label, imap_crlf_len(buf_ptr(data), data->len));
		imap_append_crlf(items, buf_ptr(data), data->len);
		return;
	}
	if (mm == NULL)
		imap_append_crlf(&r, buf_ptr(data), data->len);
	else
		imap_section_render(sec, mm, &r);
	size_t off = 0, len = r.len;
	if (sec->partial) {     /* RFC 3501 6.4.5 <origin.octets> */
		off = sec->origin < r.len ? (size_t)sec->origin : r.len;
		len = r.len - off < sec->count ? r.len - off : (size_t)sec->count;
	}
	buf_printf(items, " %s {%zu}\r\n", sec->label, len);
	buf_append(items, buf_ptr(&r) + off, len);
	buf_free(&r);
}

/* The parsed-message items: ENVELOPE, BODY, BODYSTRUCTURE, sections. */
static bool imap_fetch_whole(const struct imap_section *sec)
{
	return sec->kind == IMAP_SEC_ALL && sec->nparts == 0;
}

/* The body sections; whole-message ones need no parse. */
static void imap_fetch_sections(struct imap_fetch_job *j, const struct buf *data, struct buf *items)
{
	bool parse = false;
	for (size_t i = 0; i < j->f.nsecs && !parse; i++)
		parse = !imap_fetch_whole(&j->f.secs[i]);
	if (!parse) {
		for (size_t i = 0; i < j->f.nsecs; i++)
			imap_fetch_section(items, &j->f.secs[i], NULL, data);
		return;
	}
	struct arena *a = arena_new();
	struct mime_message mm;
	mime_parse(a, buf_ptr(data), data->len, NULL, &mm);
	for (size_t i = 0; i < j->f.nsecs; i++)
		imap_fetch_section(items, &j->f.secs[i], &mm, data);
	arena_destroy(&a);
}

#define IMAP_FETCH_META (IMAP_FETCH_INTERNALDATE | IMAP_FETCH_ENVELOPE | IMAP_FETCH_BODY | \
			 IMAP_FETCH_BODYSTRUCTURE)

/* What the message needs beyond its name: the cache record (from the
 * cache, or built from the file and queued for it) and the file's bytes
 * when a section is asked for. 0, or -1 when the message is gone. */
static int imap_fetch_load(struct imap_fetch_job *j, struct imap_fetch_msg *m, struct mcache_rec *rec)
{
	bool meta = j->f.attrs & IMAP_FETCH_META;
	bool hit = meta && j->cache != NULL && mcache_get(j->cache, m->uid, rec) && imap_cache_complete(rec);
	buf_clear(&j->data);
	if ((!meta || hit) && j->f.nsecs == 0)
		return 0;
	time_t mtime;
	if (imap_fetch_read(j->root, m, &j->data, &mtime) < 0)
		return -1;
	if (meta && !hit) {
		imap_cache_fill(&j->fill, m->uid, mtime, buf_ptr(&j->data), j->data.len);
		*rec = j->fill.rec;
		if (j->cache != NULL)
			mcache_put(j->cache, rec);
	}
	return 0;
}

static void imap_fetch_field(struct buf *items, const char *name, const struct mcache_rec *rec,
			     enum mcache_field f)
{
	buf_append_str(items, name);
	buf_append(items, rec->field[f], rec->field_len[f]);
}

/* One message's response; every item is written with a leading space. */
static void imap_fetch_one(struct imap_fetch_job *j, struct imap_fetch_msg *m)
{
	struct buf *items = &j->out;
	struct mcache_rec rec;
	if (imap_fetch_load(j, m, &rec) < 0) {
		m->gone = errno == ENOENT;
		j->gone++;
		return;
	}
	const char *info = strstr(m->file, ":2,");
	if (j->set_seen && (info == NULL || strchr(info + 3, 'S') == NULL) &&
	    mailbox_file_flag(j->root, m->base, &m->file, 'S') == 0)
		m->renamed = true;
	unsigned attrs = j->f.attrs | (j->uid_cmd ? IMAP_FETCH_UID : 0) |
			 (m->renamed ? IMAP_FETCH_FLAGS : 0);
	/* every item goes straight into the response with a leading space;
	 * the first one's becomes the "(" (no copy of the message) */
	buf_printf(&j->out, "* %zu FETCH ", m->index + 1);
	size_t open = j->out.len;
	if (attrs & IMAP_FETCH_UID)
		buf_printf(items, " UID %u", m->uid);
	if (attrs & IMAP_FETCH_FLAGS) {
		buf_append_str(items, " ");
		imap_flags_append(items, m->file, m->recent, &j->kw);
	}
	if (attrs & IMAP_FETCH_INTERNALDATE) {
		buf_append_str(items, " ");
		imap_fetch_date(items, (time_t)rec.internal);
	}
	if (attrs & IMAP_FETCH_RFC822_SIZE)
		buf_printf(items, " RFC822.SIZE %llu", (unsigned long long)m->vsize);
	if (attrs & IMAP_FETCH_ENVELOPE)
		imap_fetch_field(items, " ENVELOPE ", &rec, MCACHE_ENVELOPE);
	if (attrs & IMAP_FETCH_BODY)
		imap_fetch_field(items, " BODY ", &rec, MCACHE_BODY);
	if (attrs & IMAP_FETCH_BODYSTRUCTURE)
		imap_fetch_field(items, " BODYSTRUCTURE ", &rec, MCACHE_BODYSTRUCTURE);
	if (j->f.nsecs)
		imap_fetch_sections(j, &j->data, items);
	if (j->out.len == open)
		buf_append_str(&j->out, "(");
	else
		j->out.data[j->out.off + open] = '(';
	buf_append_str(&j->out, ")\r\n");
}

static void imap_fetch_work(void *arg)
{
	struct imap_fetch_job *j = arg;
	if (j->cache != NULL && j->next == 0)
		mcache_refresh(j->cache);       /* what other sessions cached */
	while (j->next < j->n && j->out.len < IMAP_FETCH_BATCH)
		imap_fetch_one(j, &j->msgs[j->next++]);
	if (j->cache != NULL)
		mcache_flush(j->cache);
	if (j->next == j->n) {
		if (j->gone)
			buf_printf(&j->out, "%s NO [EXPUNGEISSUED] Some messages were expunged.\r\n", j->tag);
		else
			buf_printf(&j->out, "%s OK %sFetch completed.\r\n", j->tag, j->uid_cmd ? "UID " : "");
	}
}

/* Brings renamed files (\Seen set) back into the session's snapshot. */
static void imap_fetch_sync(struct imap_session *s, struct imap_fetch_job *j)
{
	struct mailbox *mb = s->sel ? s->sel->mb : NULL;
	for (size_t i = 0; mb && i < j->next; i++) {
		struct imap_fetch_msg *m = &j->msgs[i];
		if (!m->renamed || m->index >= mb->count || mb->msgs[m->index].uid != m->uid)
			continue;
		free(mb->msgs[m->index].file);
		mb->msgs[m->index].file = xstrdup(m->file);
		mb->msgs[m->index].seen = true;
		m->renamed = false;
	}
}

static void imap_fetch_done(void *arg);

static void imap_fetch_continue(struct imap_session *s, struct imap_fetch_job *j)
{
	if (s->conn->out.len >= IMAP_FETCH_QUEUE_MAX) {
		s->fetch_wait_job = j;
		ev_prepare_start(s->conn->loop, &s->fetch_wait);
		return;
	}
	pool_submit(s->srv->io_pool, imap_fetch_work, imap_fetch_done, j);
}

static void imap_fetch_done(void *arg)
{
	struct imap_fetch_job *j = arg;
	struct conn *c = conn_find(j->conn_id);
	if (c == NULL) {
		imap_fetch_job_free(j);
		return;
	}
	struct imap_session *s = c->proto;
	imap_fetch_sync(s, j);
	conn_write_buf(c, &j->out);
	if (j->next < j->n) {
		imap_flush(s);
		imap_fetch_continue(s, j);
		return;
	}
	if (s->sel != NULL && s->sel->cache == NULL) {
		s->sel->cache = j->cache;       /* back to the session */
		j->cache = NULL;
	}
	imap_fetch_job_free(j);
	imap_resume(s);
}

/* Before the loop blocks (after this iteration's writes ran): has the
 * client taken enough? An ev_check would run right after the poll, before
 * the flush, and a drained queue would then wake nothing: a stall. */
static void imap_fetch_wait_cb(struct ev_loop *loop, ev_prepare *w, int revents MP_UNUSED)
{
	struct imap_session *s = container_of(w, struct imap_session, fetch_wait);
	if (s->conn->out.len >= IMAP_FETCH_QUEUE_MAX)
		return;
	ev_prepare_stop(loop, w);
	struct imap_fetch_job *j = s->fetch_wait_job;
	s->fetch_wait_job = NULL;
	pool_submit(s->srv->io_pool, imap_fetch_work, imap_fetch_done, j);
}

void imap_fetch_init(struct imap_session *s)
{
	ev_prepare_init(&s->fetch_wait, imap_fetch_wait_cb);
}

void imap_fetch_cleanup(struct imap_session *s)
{
	ev_prepare_stop(s->conn->loop, &s->fetch_wait);
	imap_fetch_job_free(s->fetch_wait_job);
	s->fetch_wait_job = NULL;
}

int imap_msgset(struct imap_session *s, const struct imap_arg *a, bool uid, size_t **idx_r,
		size_t *n_r)
{
	struct imap_seqset set;
	const struct mailbox *mb = s->sel->mb;
	if (a->type != IMAP_ARG_ATOM || imap_seqset_parse(a->s, IMAP_SEQ_RANGES_MAX, &set) < 0) {
		imap_bad(s, "Invalid message set.");
		return -1;
	}
	/* RFC 3501 9: sequence numbers past the end are an error; UIDs are
	 * not, nor is a range up to "*" (an empty mailbox's "1:*"). */
	for (size_t i = 0; !uid && i < set.n; i++)
		if (set.r[i].lo != IMAP_SEQ_STAR && set.r[i].hi != IMAP_SEQ_STAR &&
		    (set.r[i].lo > mb->count || set.r[i].hi > mb->count)) {
			imap_seqset_free(&set);
			imap_bad(s, "Invalid message set: no such message.");
			return -1;
		}
	uint32_t star = uid ? (mb->count ? mb->msgs[mb->count - 1].uid : 0) : (uint32_t)mb->count;
	size_t *idx = xcalloc(mb->count ? mb->count : 1, sizeof(*idx)), n = 0;
	for (size_t i = 0; i < mb->count; i++)
		if (imap_seqset_contains(&set, uid ? mb->msgs[i].uid : (uint32_t)(i + 1), star))
			idx[n++] = i;
	imap_seqset_free(&set);
	*idx_r = idx;
	*n_r = n;
	return 0;
}

void imap_fetch_run(struct imap_session *s, const struct imap_arg *args, size_t nargs, bool uid)
{
	const char *why = "missing items";
	struct imap_fetch f = { 0 };
	size_t *idx, n;
	if (nargs < 2 || imap_fetch_parse(&args[args[0].span], nargs - args[0].span, &f, &why) < 0) {
		imap_fetch_free(&f);
		imap_bad(s, "Syntax: FETCH sequence-set items (%s).", why);
		return;
	}
	if (imap_msgset(s, &args[0], uid, &idx, &n) < 0) {
		imap_fetch_free(&f);
		return;
	}
	const struct mailbox *mb = s->sel->mb;
	struct imap_fetch_job *j = xcalloc(1, sizeof(*j));
	j->conn_id = s->conn->id;
	snprintf(j->tag, sizeof(j->tag), "%s", s->tag);
	j->root = xstrdup(mb->root);
	j->uid_cmd = uid;
	j->set_seen = f.sets_seen && !s->sel->readonly;
	j->f = f;
	imap_keywords_copy(&j->kw, &s->sel->kw);
	if (f.attrs & IMAP_FETCH_META) {
		j->cache = s->sel->cache;       /* the job's until it completes */
		s->sel->cache = NULL;
	}
	j->msgs = xcalloc(n ? n : 1, sizeof(*j->msgs));
	j->n = n;
	for (size_t i = 0; i < n; i++) {
		const struct mailbox_msg *m = &mb->msgs[idx[i]];
		j->msgs[i] = (struct imap_fetch_msg){
			.index = idx[i], .uid = m->uid, .base = xstrdup(m->base),
			.file = xstrdup(m->file), .vsize = m->vsize, .recent = m->recent,
		};
	}
	free(idx);
	conn_pause(s->conn);
	pool_submit(s->srv->io_pool, imap_fetch_work, imap_fetch_done, j);
}

void imap_cmd_fetch(struct imap_session *s, const struct imap_arg *args, size_t nargs)
{
	imap_fetch_run(s, args, nargs, false);
}

/* RFC 3501 6.4.8: UID FETCH / ... take UIDs instead of sequence numbers. */
void imap_cmd_uid(struct imap_session *s, const struct imap_arg *args, size_t nargs)
{
	if (nargs == 0 || args[0].type != IMAP_ARG_ATOM) {
		imap_bad(s, "Syntax: UID command arguments");
		return;
	}
	const struct imap_arg *rest = &args[args[0].span];
	size_t nrest = nargs - args[0].span;
	if (str_case_eq(args[0].s, "FETCH"))
		imap_fetch_run(s, rest, nrest, true);
	else if (str_case_eq(args[0].s, "STORE"))
		imap_store_run(s, rest, nrest, true);
	else if (str_case_eq(args[0].s, "SEARCH"))
		imap_search_run(s, rest, nrest, true);
	else if (str_case_eq(args[0].s, "EXPUNGE"))
		imap_expunge_run(s, rest, nrest, true);
	else if (str_case_eq(args[0].s, "COPY"))
		imap_copy_run(s, rest, nrest, true, false);
	else if (str_case_eq(args[0].s, "MOVE"))
		imap_copy_run(s, rest, nrest, true, true);
	else if (str_case_eq(args[0].s, "SORT"))
		imap_sort_cmd_run(s, rest, nrest, true);
	else if (str_case_eq(args[0].s, "THREAD"))
		imap_thread_cmd_run(s, rest, nrest, true);
	else
		imap_bad(s, "Unknown UID command.");
}
