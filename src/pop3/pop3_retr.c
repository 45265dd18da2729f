/* pop3_retr.c - RETR and TOP (RFC 1939 7): the message streamed from its
 * Maildir file in chunks read on the I/O pool, converted to CRLF and
 * dot-stuffed (pop3_stuff_*). A chunk is read only while the connection's
 * write queue is below CONN_OUT_HIGH, so a slow reader never makes us hold
 * a big message in memory.
 *
 * Read-ahead: clients fetch messages in order (RETR 1, RETR 2, ...), so
 * after a RETR the first chunks of the next few messages are read by one
 * pool job while this one is still being sent; the next RETRs then answer
 * without a pool round trip each. Message files never change (Maildir), so
 * data read ahead cannot be stale; a read-ahead nobody asks for is dropped.
 *
 * RETR notes the message as seen; the \Seen renames happen when the
 * session ends (pop3_cmd.c), as Dovecot does. */
#include "pop3_int.h"
#include "core/conn.h"
#include "core/log.h"
#include "core/pool.h"
#include "core/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One RETR/TOP (or read-ahead); owned by the pool while a chunk is read,
 * else by the session (s->retr waiting for the client, s->ahead[] ready). */
struct pop3_retr {
	uint64_t conn_id;
	const struct pop3_server *srv;
	char *root, *base, *file;       /* copies: the job never touches the mailbox */
	uint32_t msgno;
	uint64_t vsize;
	bool started, eof, top;
	bool ahead;                     /* a read-ahead ... */
	bool wanted;                    /* ... that a RETR now waits for */
	bool orphan;                    /* ... that nobody will ask for */
	bool ready;                     /* ... whose first chunk is read */
	bool renamed;                   /* file changed: copy back to the mailbox */
	int fd;
	int error;                      /* errno of a failed open/read */
	struct pop3_stuff st;
	struct buf out;
};

/* Read-ahead messages read by one pool job. */
struct pop3_batch {
	uint64_t conn_id;
	struct pop3_retr *r[POP3_AHEAD_MAX];
	size_t n;
};

static void pop3_retr_free(struct pop3_retr *r)
{
	if (r == NULL)
		return;
	if (r->fd >= 0)
		close(r->fd);
	buf_free(&r->out);
	free(r->root);
	free(r->base);
	free(r->file);
	free(r);
}

static void pop3_retr_open(struct pop3_retr *r)
{
	char *before = xstrdup(r->file);
	r->fd = mailbox_file_open(r->root, r->base, &r->file);
	if (r->fd < 0)
		r->error = errno;
	r->renamed = strcmp(before, r->file) != 0;
	free(before);
}

/* Reads and converts until a chunk's worth is ready or the end. */
static void pop3_retr_work(void *arg)
{
	struct pop3_retr *r = arg;
	char chunk[POP3_RETR_CHUNK];
	if (r->fd < 0 && r->error == 0) {
		pop3_retr_open(r);
		if (r->fd < 0)
			return;
	}
	while (r->out.len < POP3_RETR_CHUNK && !r->eof && !r->st.done) {
		ssize_t n = read(r->fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r->error = errno;
			return;
		}
		if (n == 0)
			r->eof = true;
		else
			pop3_stuff_feed(&r->st, chunk, (size_t)n, &r->out);
	}
	if (r->eof || r->st.done) {
		close(r->fd);
		r->fd = -1;
	}
}

static void pop3_retr_done(void *arg);

static void pop3_retr_submit(struct pop3_retr *r)
{
	pool_submit(r->srv->io_pool, pop3_retr_work, pop3_retr_done, r);
}

static struct pop3_retr *pop3_retr_new(struct pop3_session *s, uint32_t n, bool top,
				       uint64_t lines)
{
	const struct mailbox_msg *m = &s->mb->msgs[n - 1];
	struct pop3_retr *r = xcalloc(1, sizeof(*r));
	r->conn_id = s->conn->id;
	r->srv = s->srv;
	r->root = xstrdup(s->mb->root);
	r->base = xstrdup(m->base);
	r->file = xstrdup(m->file);
	r->msgno = n;
	r->vsize = m->vsize;
	r->top = top;
	r->fd = -1;
	pop3_stuff_init(&r->st, top, lines);
	return r;
}

/* The first answer: +OK, or -ERR if the message cannot be read. */
static bool pop3_retr_first(struct pop3_session *s, struct pop3_retr *r)
{
	struct mailbox_msg *m = &s->mb->msgs[r->msgno - 1];
	r->started = true;
	if (r->renamed) {
		free(m->file);
		m->file = xstrdup(r->file);
	}
	if (r->error && !r->eof && r->out.len == 0) {
		log_warn(s->conn->sid, "event=retr_failed msg=%u error=\"%s\"", r->msgno, strerror(r->error));
		if (r->error == ENOENT)
			pop3_reply(s, "-ERR Message %u was removed by another session", r->msgno);
		else
			pop3_reply(s, "-ERR [SYS/TEMP] Cannot read message %u", r->msgno);
		return false;
	}
	if (r->top) {
		pop3_reply(s, "+OK");
		return true;
	}
	if (s->srv->mark_seen && !m->seen)
		s->seen[r->msgno - 1] = true;
	pop3_reply(s, "+OK %llu octets", (unsigned long long)r->vsize);
	return true;
}

/* Writes what the job converted; returns true when the message is done. */
static bool pop3_retr_flush(struct pop3_session *s, struct pop3_retr *r)
{
	conn_write(s->conn, buf_ptr(&r->out), r->out.len);
	buf_clear(&r->out);
	if (r->error) {
		log_error(s->conn->sid, "event=retr_read_failed msg=%u error=\"%s\"", r->msgno,
			  strerror(r->error));
		conn_close(s->conn);    /* mid-message: no way to say -ERR */
		return true;
	}
	if (!r->eof && !r->st.done)
		return false;
	pop3_stuff_finish(&r->st, &r->out);
	conn_write(s->conn, buf_ptr(&r->out), r->out.len);
	if (!r->top) {
		s->retr_count++;
		s->retr_bytes += r->vsize;
	}
	return true;
}

static void pop3_batch_work(void *arg)
{
	struct pop3_batch *b = arg;
	for (size_t i = 0; i < b->n; i++)
		pop3_retr_work(b->r[i]);
}

static void pop3_retr_progress(struct pop3_session *s, struct pop3_retr *r);
static void pop3_retr_read_ahead(struct pop3_session *s, uint32_t msgno);

/* Takes the next read-ahead off the queue and sends it; when the queue
 * runs dry, the next batch is read while this message goes out. */
static void pop3_retr_take(struct pop3_session *s)
{
	struct pop3_retr *r = s->ahead[0];
	memmove(s->ahead, s->ahead + 1, --s->n_ahead * sizeof(*s->ahead));
	r->ahead = false;
	if (s->n_ahead == 0 && !r->top)
		pop3_retr_read_ahead(s, r->msgno);
	pop3_retr_progress(s, r);
}

static void pop3_batch_done(void *arg)
{
	struct pop3_batch *b = arg;
	struct conn *c = conn_find(b->conn_id);
	for (size_t i = 0; i < b->n; i++) {
		if (c == NULL || b->r[i]->orphan)
			pop3_retr_free(b->r[i]);
		else
			b->r[i]->ready = true;
	}
	free(b);
	if (c == NULL)
		return;
	struct pop3_session *s = c->proto;
	if (s->n_ahead > 0 && s->ahead[0]->ready && s->ahead[0]->wanted)
		pop3_retr_take(s);
}

/* Starts reading the next messages not deleted after msgno. */
static void pop3_retr_read_ahead(struct pop3_session *s, uint32_t msgno)
{
	if (s->n_ahead > 0 || s->mb == NULL || s->conn->closing)
		return;
	struct pop3_batch *b = xcalloc(1, sizeof(*b));
	uint64_t bytes = 0;
	b->conn_id = s->conn->id;
	for (uint32_t n = msgno + 1; n <= s->mb->count && b->n < POP3_AHEAD_MAX; n++) {
		if (s->deleted[n - 1])
			continue;
		uint64_t v = s->mb->msgs[n - 1].vsize;
		bytes += v < POP3_RETR_CHUNK ? v : POP3_RETR_CHUNK;
		if (b->n > 0 && bytes > POP3_AHEAD_BYTES)
			break;
		struct pop3_retr *r = pop3_retr_new(s, n, false, 0);
		r->ahead = true;
		b->r[b->n++] = r;
		s->ahead[s->n_ahead++] = r;
	}
	if (b->n == 0) {
		free(b);
		return;
	}
	pool_submit(s->srv->io_pool, pop3_batch_work, pop3_batch_done, b);
}

/* A chunk is ready for the client: send it, then finish, read on, or wait
 * until the client has read enough. */
static void pop3_retr_progress(struct pop3_session *s, struct pop3_retr *r)
{
	struct conn *c = s->conn;
	if ((!r->started && !pop3_retr_first(s, r)) || pop3_retr_flush(s, r)) {
		bool next = !r->top && r->error == 0;
		uint32_t msgno = r->msgno;
		pop3_retr_free(r);
		conn_resume(c);
		if (next)
			pop3_retr_read_ahead(s, msgno);
		return;
	}
	/* conn_write only queues; a paused connection is pumped (flushed)
	 * when its write watcher runs, so run it from the loop now. */
	ev_feed_event(c->loop, &c->wio, EV_WRITE);
	if (c->out.len < CONN_OUT_HIGH) {
		pop3_retr_submit(r);
		return;
	}
	s->retr = r;
	ev_prepare_start(c->loop, &s->retr_wait);
	ev_timer_set(&s->retr_stall, s->srv->limits.idle_timeout, 0.);
	ev_timer_start(c->loop, &s->retr_stall);
}

static void pop3_retr_done(void *arg)
{
	struct pop3_retr *r = arg;
	struct conn *c = conn_find(r->conn_id);
	if (c == NULL || r->orphan) {
		pop3_retr_free(r);
		return;
	}
	pop3_retr_progress(c->proto, r);
}

/* Before the loop blocks (after this iteration's writes ran): has the
 * client read enough? An ev_check is queued before the iteration's I/O
 * callbacks: when the write that drains the queue runs after it, nothing
 * would wake the loop again (a stall). */
static void pop3_retr_wait_cb(struct ev_loop *loop, ev_prepare *w, int revents MP_UNUSED)
{
	struct pop3_session *s = container_of(w, struct pop3_session, retr_wait);
	if (s->conn->out.len >= CONN_OUT_HIGH / 2)
		return;
	ev_prepare_stop(loop, w);
	ev_timer_stop(loop, &s->retr_stall);
	struct pop3_retr *r = s->retr;
	s->retr = NULL;
	pop3_retr_submit(r);
}

/* The client stopped reading mid-message for idle_timeout: give up. The
 * connection is resumed so its own idle timer aborts it if even the close
 * cannot be flushed. */
static void pop3_retr_stall_cb(struct ev_loop *loop MP_UNUSED, ev_timer *w, int revents MP_UNUSED)
{
	struct pop3_session *s = container_of(w, struct pop3_session, retr_stall);
	log_info(s->conn->sid, "event=timeout during=retr");
	pop3_retr_cleanup(s);
	conn_close(s->conn);
	conn_resume(s->conn);
}

void pop3_retr_init(struct pop3_session *s)
{
	ev_prepare_init(&s->retr_wait, pop3_retr_wait_cb);
	ev_init(&s->retr_stall, pop3_retr_stall_cb);
}

/* A read-ahead in flight belongs to the pool: it is told to drop itself. */
static void pop3_retr_drop_ahead(struct pop3_session *s)
{
	for (size_t i = 0; i < s->n_ahead; i++) {
		if (s->ahead[i]->ready)
			pop3_retr_free(s->ahead[i]);
		else
			s->ahead[i]->orphan = true;
	}
	s->n_ahead = 0;
}

void pop3_retr_cleanup(struct pop3_session *s)
{
	ev_prepare_stop(s->conn->loop, &s->retr_wait);
	ev_timer_stop(s->conn->loop, &s->retr_stall);
	pop3_retr_free(s->retr);
	s->retr = NULL;
	pop3_retr_drop_ahead(s);
}

static void pop3_retr_start(struct pop3_session *s, uint32_t n, bool top, uint64_t lines)
{
	struct pop3_retr *a = s->n_ahead > 0 ? s->ahead[0] : NULL;
	conn_pause(s->conn);
	if (!top && a != NULL && a->msgno == n) {
		if (a->ready)
			pop3_retr_take(s);
		else
			a->wanted = true;       /* the batch's completion carries on */
		return;
	}
	if (!top)
		pop3_retr_drop_ahead(s);
	pop3_retr_submit(pop3_retr_new(s, n, top, lines));
}

void pop3_cmd_retr(struct pop3_session *s, struct str args)
{
	uint32_t n = pop3_msg_arg(s, args);
	if (n != 0)
		pop3_retr_start(s, n, false, 0);
}

void pop3_cmd_top(struct pop3_session *s, struct str args)
{
	struct str w[2];
	uint64_t lines;
	if (pop3_args_split(args, w, 2) != 2 ||
	    util_parse_uint(w[1].p, w[1].len, UINT64_MAX / 2, &lines) != 0) {
		pop3_fail(s, "-ERR Syntax: TOP msg lines");
		return;
	}
	uint32_t n = pop3_msg_arg(s, w[0]);
	if (n != 0)
		pop3_retr_start(s, n, true, lines);
}
