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
 * (RFC 5530).
 *
 * CONDSTORE (RFC 7162 3.1.4): MODSEQ comes from the snapshot too; the
 * CHANGEDSINCE modifier keeps the messages changed since, and for UID FETCH
 * after ENABLE QRESYNC, VANISHED first reports the UIDs of the set expunged
 * since (3.2.6). \Seen is set on every message of the command before the
 * first batch, all with one modseq, so their FETCH carries it. The
 * sequence set "$" is the last SEARCH saved (SEARCHRES, RFC 5182). */
#include "imap_int.h"
#include "core/arena.h"
#include "core/conn.h"
#include "core/log.h"
#include "core/pool.h"
#include "core/util.h"
#include "mime/mime.h"
#include "store/mailbox.h"
#include "store/modseq.h"

#include <errno.h>
#include <fcntl.h>
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
	uint64_t modseq;        /* the snapshot's, or the \Seen change's */
	bool recent, renamed, gone;
};

struct imap_fetch_job {
	uint64_t conn_id;
	char tag[IMAP_TAG_MAX + 1];
	char *root;             /* the folder */
	int rootfd;             /* root opened O_PATH by the first batch; -1: not yet / none */
	bool uid_cmd, set_seen;
	struct imap_keywords kw;        /* a copy of the session's */
	struct imap_fetch f;
	struct imap_fetch_msg *msgs;
	size_t n, next;         /* messages, the next one to do */
	size_t gone;
	bool unknown_cte;       /* a BINARY part in an unknown encoding was left out */
	struct buf out;
	struct mcache *cache;   /* the selected folder's, held while the job runs */
	struct imap_cache_fill fill;    /* a record built from a parse */
	struct buf data;        /* the message being sent */
	/* CONDSTORE / QRESYNC (RFC 7162) */
	bool condstore;         /* enabled: MODSEQ goes with changed FLAGS */
	bool qresync;           /* enabled: so does UID (RFC 7162 3.2.4) */
	uint32_t uidvalidity;
	uint64_t highest;       /* the session's HIGHESTMODSEQ; the job's result */
	bool pending;           /* our MODSEQs are past others' unreported changes */
	bool vanished;          /* UID FETCH (CHANGEDSINCE n VANISHED) */
	uint64_t since;
	struct imap_seqset set; /* the UID set, for VANISHED */
	uint32_t *present;      /* the snapshot's UIDs, for VANISHED */
	size_t npresent;
	uint32_t next_uid;
};

static void imap_fetch_job_free(struct imap_fetch_job *j)
{
	if (j == NULL)
		return;
	if (j->rootfd >= 0)
		close(j->rootfd);
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
	imap_seqset_free(&j->set);
	free(j->present);
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

/* Reads the whole file; 0, or -1 (errno ENOENT: the message is gone).
 * mtime NULL: not needed, and no fstat either: a read of more than the
 * file can hold (its CRLF size, vsize, plus one) that comes back short has
 * met the end (regular files read short only there) - one syscall fewer
 * per message of a body FETCH. */
static int imap_fetch_read(struct imap_fetch_job *j, struct imap_fetch_msg *m, struct buf *data,
			   time_t *mtime)
{
	if (j->rootfd == -1)
		j->rootfd = open(j->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (j->rootfd < 0)
		j->rootfd = -2;         /* none: paths from root */
	int fd = mailbox_file_openat(j->rootfd, j->root, m->base, &m->file);
	if (fd < 0)
		return -1;
	struct stat st;
	size_t want = (size_t)m->vsize + 1;
	if (mtime != NULL || m->vsize == 0 || m->vsize >= IMAP_FETCH_FILE_MAX) {
		if (fstat(fd, &st) != 0 || (size_t)st.st_size >= IMAP_FETCH_FILE_MAX) {
			close(fd);
			return -1;
		}
		if (mtime != NULL)
			*mtime = st.st_mtime;
		want = (size_t)st.st_size + 1;
	}
	for (;;) {
		ssize_t r = read(fd, buf_reserve(data, want), want);
		if (r <= 0)
			break;
		buf_commit(data, (size_t)r);
		if ((size_t)r < want)
			break;
		want = want * 2 < IMAP_FETCH_FILE_MAX - data->len ? want * 2 : IMAP_FETCH_FILE_MAX - data->len;
		if (want == 0)
			break;
	}
	close(fd);
	return 0;
}

/* mm NULL: the whole message (BODY[], RFC822) needs no parse; without a
 * partial it is converted straight into the response. */
/* One section's bytes r (before any partial) into the response: the
 * literal, or literal8 "~{n}" for BINARY data holding NUL (RFC 3516 4.3),
 * or BINARY.SIZE's number. */
static void imap_fetch_literal(struct buf *items, const struct imap_section *sec, const struct buf *r)
{
	if (sec->size_only) {
		buf_printf(items, " %s %zu", sec->label, r->len);
		return;
	}
	size_t off = 0, len = r->len;
	if (sec->partial) {     /* RFC 3501 6.4.5 <origin.octets> */
		off = sec->origin < r->len ? (size_t)sec->origin : r->len;
		len = r->len - off < sec->count ? r->len - off : (size_t)sec->count;
	}
	bool lit8 = sec->binary && memchr(buf_ptr(r) + off, '\0', len) != NULL;
	buf_printf(items, " %s %s{%zu}\r\n", sec->label, lit8 ? "~" : "", len);
	buf_append(items, buf_ptr(r) + off, len);
}

/* mm NULL: the whole message (BODY[], RFC822, BINARY[]) needs no parse;
 * without a partial it is converted straight into the response (vsize,
 * RFC822.SIZE, the size it is expected to have). false:
 * a BINARY part in an unknown encoding (left out). */
static bool imap_fetch_section(struct buf *items, const struct imap_section *sec,
			       const struct mime_message *mm, const struct buf *data, uint64_t vsize)
{
	struct buf r = { 0 };
	bool ok = true;
	if (mm == NULL && !sec->partial && !sec->binary) {
		imap_append_crlf_literal(items, sec->label, buf_ptr(data), data->len, (size_t)vsize);
		return true;
	}
	if (mm == NULL)
		imap_append_crlf(&r, buf_ptr(data), data->len);
	else if (sec->binary)
		ok = imap_section_binary(sec, mm, &r) == 0;
	else
		imap_section_render(sec, mm, &r);
	if (ok)
		imap_fetch_literal(items, sec, &r);
	buf_free(&r);
	return ok;
}

/* The parsed-message items: ENVELOPE, BODY, BODYSTRUCTURE, sections. */
static bool imap_fetch_whole(const struct imap_section *sec)
{
	return sec->kind == IMAP_SEC_ALL && sec->nparts == 0;
}

/* The body sections; whole-message ones need no parse. */
static void imap_fetch_sections(struct imap_fetch_job *j, const struct buf *data, struct buf *items,
				uint64_t vsize)
{
	bool parse = false;
	for (size_t i = 0; i < j->f.nsecs && !parse; i++)
		parse = !imap_fetch_whole(&j->f.secs[i]);
	if (!parse) {
		for (size_t i = 0; i < j->f.nsecs; i++)
			imap_fetch_section(items, &j->f.secs[i], NULL, data, vsize);
		return;
	}
	struct arena *a = arena_new();
	struct mime_message mm;
	mime_parse(a, buf_ptr(data), data->len, NULL, &mm);
	for (size_t i = 0; i < j->f.nsecs; i++)
		if (!imap_fetch_section(items, &j->f.secs[i], &mm, data, vsize))
			j->unknown_cte = true;
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
	bool found = meta && j->cache != NULL && mcache_get(j->cache, m->uid, rec);
	bool hit = found && imap_cache_complete(rec);
	buf_clear(&j->data);
	if ((!meta || hit) && j->f.nsecs == 0)
		return 0;
	time_t mtime = 0;
	if (imap_fetch_read(j, m, &j->data, meta && !hit ? &mtime : NULL) < 0)
		return -1;
	if (meta && !hit) {
		imap_cache_fill(&j->fill, m->uid, mtime, buf_ptr(&j->data), j->data.len, found ? rec : NULL);
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
	unsigned attrs = j->f.attrs | (j->uid_cmd ? IMAP_FETCH_UID : 0) |
			 (m->renamed ? IMAP_FETCH_FLAGS : 0) |
			 (m->renamed && j->qresync ? IMAP_FETCH_UID : 0);
	/* every item goes straight into the response with a leading space;
	 * the first one's becomes the "(" (no copy of the message) */
	buf_append_num(&j->out, "* ", m->index + 1);
	buf_append_str(&j->out, " FETCH ");
	size_t open = j->out.len;
	if (attrs & IMAP_FETCH_UID)
		buf_append_num(items, " UID ", m->uid);
	if (attrs & IMAP_FETCH_FLAGS) {
		buf_append_str(items, " ");
		imap_flags_append(items, m->file, m->recent, &j->kw);
	}
	if (attrs & IMAP_FETCH_INTERNALDATE) {
		buf_append_str(items, " ");
		imap_fetch_date(items, (time_t)rec.internal);
	}
	if (attrs & IMAP_FETCH_RFC822_SIZE)
		buf_append_num(items, " RFC822.SIZE ", m->vsize);
	if (attrs & IMAP_FETCH_ENVELOPE)
		imap_fetch_field(items, " ENVELOPE ", &rec, MCACHE_ENVELOPE);
	if (attrs & IMAP_FETCH_BODY)
		imap_fetch_field(items, " BODY ", &rec, MCACHE_BODY);
	if (attrs & IMAP_FETCH_BODYSTRUCTURE)
		imap_fetch_field(items, " BODYSTRUCTURE ", &rec, MCACHE_BODYSTRUCTURE);
	/* RFC 7162 3.1.4.1; with CONDSTORE a \Seen set here says its modseq */
	if ((attrs & IMAP_FETCH_MODSEQ) || (j->condstore && m->renamed && m->modseq != 0))
		buf_printf(items, " MODSEQ (%llu)", (unsigned long long)m->modseq);
	if (j->f.nsecs)
		imap_fetch_sections(j, &j->data, items, m->vsize);
	if (j->out.len == open)
		buf_append_str(&j->out, "(");
	else
		j->out.data[j->out.off + open] = '(';
	buf_append_str(&j->out, ")\r\n");
}

/* A non-PEEK body section (RFC 3501 6.4.5): \Seen on every message of
 * the command first, recorded with one modseq, which their FETCH then
 * says (RFC 7162 3.1). */
static void imap_fetch_mark_seen(struct imap_fetch_job *j)
{
	size_t renamed = 0;
	for (size_t i = 0; i < j->n; i++) {
		struct imap_fetch_msg *m = &j->msgs[i];
		const char *info = strstr(m->file, ":2,");
		if ((info == NULL || strchr(info + 3, 'S') == NULL) &&
		    mailbox_file_flag(j->root, m->base, &m->file, 'S') == 0) {
			m->renamed = true;
			renamed++;
		}
	}
	struct modseq *ms;
	if (renamed == 0)
		return;
	if (modseq_open(j->root, j->uidvalidity, true, &ms) < 0) {
		log_warn(NULL, "event=modseq_failed folder=\"%s\" error=\"%s\"", j->root, strerror(errno));
		return;
	}
	uint64_t before = ms->highest, mod = 0;
	bool bumped = false;
	for (size_t i = 0; i < j->n; i++)
		if (j->msgs[i].renamed)
			j->msgs[i].modseq = imap_cs_record(ms, j->msgs[i].uid, j->msgs[i].file, &mod, &bumped);
	if (modseq_commit(ms) < 0)
		log_warn(NULL, "event=modseq_failed folder=\"%s\" error=\"%s\"", j->root, strerror(errno));
	modseq_free(&ms);
	j->pending = before > j->highest;
	imap_cs_advance(&j->highest, before, mod);
}

/* RFC 7162 3.2.6: the UIDs of the set expunged since, before the FETCHes. */
static void imap_fetch_vanished(struct imap_fetch_job *j)
{
	struct modseq *ms;
	if (modseq_open_gone(j->root, j->uidvalidity, &ms) < 0) {
		log_warn(NULL, "event=modseq_failed folder=\"%s\" error=\"%s\"", j->root, strerror(errno));
		return;
	}
	modseq_unlock(ms);
	imap_cs_vanished_earlier(&j->out, ms, j->since, &j->set, j->present, j->npresent, j->next_uid);
	modseq_free(&ms);
}

static void imap_fetch_work(void *arg)
{
	struct imap_fetch_job *j = arg;
	if (j->next == 0) {
		if (j->cache != NULL)
			mcache_refresh(j->cache);       /* what other sessions cached */
		if (j->vanished)
			imap_fetch_vanished(j);
		if (j->set_seen)
			imap_fetch_mark_seen(j);
	}
	while (j->next < j->n && j->out.len < IMAP_FETCH_BATCH)
		imap_fetch_one(j, &j->msgs[j->next++]);
	if (j->cache != NULL)
		mcache_flush(j->cache);
	if (j->next == j->n) {
		/* RFC 7162 3.2: MODSEQs past changes of others not reported yet */
		if (j->pending && j->condstore)
			buf_printf(&j->out, "* OK [HIGHESTMODSEQ %llu] Highest\r\n",
				   (unsigned long long)j->highest);
		if (j->gone)
			buf_printf(&j->out, "%s NO [EXPUNGEISSUED] Some messages were expunged.\r\n", j->tag);
		else if (j->unknown_cte)       /* RFC 3516 4.2 */
			buf_printf(&j->out, "%s NO [UNKNOWN-CTE] A part has an unknown transfer encoding.\r\n", j->tag);
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
		if (s->sel->modseq != NULL && m->modseq != 0)
			s->sel->modseq[m->index] = m->modseq;
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
	if (s->sel != NULL && s->sel->modseq != NULL)
		s->sel->highest = j->highest;
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

/* RFC 5182 2.1: "$", the UIDs the last SEARCH saved (expunged ones are
 * simply gone), whatever the command numbers by. */
static void imap_msgset_saved(const struct imap_selected *sel, size_t **idx_r, size_t *n_r)
{
	const struct mailbox *mb = sel->mb;
	size_t *idx = xcalloc(mb->count ? mb->count : 1, sizeof(*idx)), n = 0;
	for (size_t i = 0, k = 0; i < mb->count; i++) {
		while (k < sel->nsaved && sel->saved[k] < mb->msgs[i].uid)
			k++;
		if (k < sel->nsaved && sel->saved[k] == mb->msgs[i].uid)
			idx[n++] = i;
	}
	*idx_r = idx;
	*n_r = n;
}

static bool imap_is_saved(const struct imap_arg *a)
{
	return a->type == IMAP_ARG_ATOM && a->s.len == 1 && a->s.p[0] == '$';
}

int imap_msgset(struct imap_session *s, const struct imap_arg *a, bool uid, size_t **idx_r,
		size_t *n_r)
{
	struct imap_seqset set;
	const struct mailbox *mb = s->sel->mb;
	if (imap_is_saved(a)) {
		imap_msgset_saved(s->sel, idx_r, n_r);
		return 0;
	}
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

/* RFC 7162 3.1.4.1, 3.2.6: "(CHANGEDSINCE n [VANISHED])". 0 or -1. */
static int imap_fetch_modifiers(const struct imap_arg *list, struct imap_fetch_job *j, bool *changed)
{
	const struct imap_arg *end = list + list->span;
	*changed = false;
	if (list->type != IMAP_ARG_LIST || list->members == 0)
		return -1;
	for (const struct imap_arg *a = list + 1; a < end; a += a->span) {
		if (a->type != IMAP_ARG_ATOM)
			return -1;
		if (str_case_eq(a->s, "VANISHED") && !j->vanished) {
			j->vanished = true;
		} else if (str_case_eq(a->s, "CHANGEDSINCE") && !*changed && a + 1 < end &&
			   a[1].type == IMAP_ARG_ATOM &&
			   util_parse_uint(a[1].s.p, a[1].s.len, MODSEQ_VALUE_MAX, &j->since) == 0) {
			*changed = true;
			a++;
		} else {
			return -1;
		}
	}
	return 0;
}

/* The items and modifiers into j; NULL, or the error for BAD. */
static const char *imap_fetch_args(struct imap_session *s, const struct imap_arg *args, size_t nargs,
				   struct imap_fetch_job *j, bool uid, bool *changed)
{
	const struct imap_arg *a[4];
	const char *why = "missing items";
	size_t top = imap_args_top(args, nargs, a, 4);
	*changed = false;
	if (top < 2 || top > 3)
		return top < 2 ? why : "too many arguments";
	size_t items_end = (size_t)(a[1] - args) + a[1]->span;
	if (imap_fetch_parse(a[1], items_end - (size_t)(a[1] - args), &j->f, &why) < 0)
		return why;
	if (top == 3 && imap_fetch_modifiers(a[2], j, changed) < 0)
		return "invalid modifiers";
	/* 3.2.6: VANISHED only with UID FETCH, CHANGEDSINCE and QRESYNC on */
	if (j->vanished && (!uid || !*changed || !s->qresync))
		return "VANISHED needs UID FETCH, CHANGEDSINCE and ENABLE QRESYNC";
	if ((*changed || (j->f.attrs & IMAP_FETCH_MODSEQ)) && s->sel->modseq == NULL)
		return "[NOMODSEQ] no modification sequences here";
	if (*changed)
		j->f.attrs |= IMAP_FETCH_MODSEQ;        /* 3.1.4.1 */
	return NULL;
}

/* VANISHED's inputs: the UID set, the snapshot's UIDs, the next UID. */
static void imap_fetch_vanished_prep(struct imap_session *s, const struct imap_arg *set,
				     struct imap_fetch_job *j)
{
	const struct mailbox *mb = s->sel->mb;
	if (imap_is_saved(set))
		imap_seqset_of(s->sel->saved, s->sel->nsaved, &j->set);
	else
		imap_seqset_parse(set->s, IMAP_SEQ_RANGES_MAX, &j->set);  /* imap_msgset checked it */
	j->present = xcalloc(mb->count + 1, sizeof(*j->present));
	for (size_t i = 0; i < mb->count; i++)
		j->present[i] = mb->msgs[i].uid;
	j->npresent = mb->count;
	j->next_uid = mb->hdr.next_uid;
}

static void imap_fetch_msgs(struct imap_session *s, struct imap_fetch_job *j, const size_t *idx,
			    size_t n, bool changed)
{
	const struct mailbox *mb = s->sel->mb;
	j->msgs = xcalloc(n ? n : 1, sizeof(*j->msgs));
	for (size_t i = 0; i < n; i++) {
		const struct mailbox_msg *m = &mb->msgs[idx[i]];
		uint64_t modseq = s->sel->modseq ? s->sel->modseq[idx[i]] : 0;
		if (changed && modseq <= j->since)
			continue;       /* 3.1.4.1: only what changed since */
		j->msgs[j->n++] = (struct imap_fetch_msg){
			.index = idx[i], .uid = m->uid, .base = xstrdup(m->base),
			.file = xstrdup(m->file), .vsize = m->vsize, .recent = m->recent,
			.modseq = modseq,
		};
	}
}

void imap_fetch_run(struct imap_session *s, const struct imap_arg *args, size_t nargs, bool uid)
{
	size_t *idx, n;
	bool changed;
	struct imap_fetch_job *j = xcalloc(1, sizeof(*j));
	j->rootfd = -1;
	const char *why = imap_fetch_args(s, args, nargs, j, uid, &changed);
	if (why != NULL) {
		imap_fetch_job_free(j);
		imap_bad(s, "Syntax: FETCH sequence-set items [(modifiers)] (%s).", why);
		return;
	}
	if (imap_msgset(s, &args[0], uid, &idx, &n) < 0) {
		imap_fetch_job_free(j);
		return;
	}
	if (changed || (j->f.attrs & IMAP_FETCH_MODSEQ))
		imap_cs_enable(s);      /* RFC 7162 3.1: a CONDSTORE-enabling command */
	const struct mailbox *mb = s->sel->mb;
	j->conn_id = s->conn->id;
	snprintf(j->tag, sizeof(j->tag), "%s", s->tag);
	j->root = xstrdup(mb->root);
	j->uid_cmd = uid;
	j->set_seen = j->f.sets_seen && !s->sel->readonly;
	j->condstore = s->condstore;
	j->qresync = s->qresync;
	j->uidvalidity = mb->hdr.uidvalidity;
	j->highest = s->sel->highest;
	imap_keywords_copy(&j->kw, &s->sel->kw);
	if (j->f.attrs & IMAP_FETCH_META) {
		j->cache = s->sel->cache;       /* the job's until it completes */
		s->sel->cache = NULL;
	}
	if (j->vanished)
		imap_fetch_vanished_prep(s, &args[0], j);
	imap_fetch_msgs(s, j, idx, n, changed);
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
