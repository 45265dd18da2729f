/* conn.c - non-blocking plain/TLS connection driver (see conn.h). */
#include "conn.h"
#include "conn_int.h"
#include "arena.h"
#include "log.h"
#include "tls.h"
#include "util.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <openssl/err.h>

#define CONN_READS_PER_PUMP 16

#define CONN_ID_BUCKETS 1024

static struct conn *conn_list;
static struct conn *conn_ids[CONN_ID_BUCKETS];
static uint64_t conn_next_id;
static size_t conn_n;
static void (*conn_free_hook)(void);
static uint64_t conn_sid_seed, conn_sid_ctr;

static void conn_pump(struct conn *c);

static uint64_t conn_mix(uint64_t x)
{
	/* splitmix64: spreads a counter into an unpredictable-looking id. */
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static void conn_make_sid(char *dst)
{
	static const char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
	if (conn_sid_seed == 0 &&
	    getrandom(&conn_sid_seed, sizeof(conn_sid_seed), 0) != sizeof(conn_sid_seed))
		conn_sid_seed = (uint64_t)getpid() * 0x2545f4914f6cdd1dULL ^ util_now_ms();
	uint64_t v = conn_mix(conn_sid_seed ^ conn_mix(++conn_sid_ctr));
	for (int i = 0; i < CONN_SID_LEN; i++) {
		dst[i] = alphabet[v & 31];
		v >>= 5;
	}
	dst[CONN_SID_LEN] = '\0';
}

static void conn_io_cb(struct ev_loop *loop MP_UNUSED, ev_io *w, int revents MP_UNUSED)
{
	conn_pump(w->data);
}

static void conn_idle_cb(struct ev_loop *loop MP_UNUSED, ev_timer *w, int revents MP_UNUSED)
{
	struct conn *c = w->data;
	if (c->timed_out || c->closing || c->handshake || c->ops->timeout == NULL) {
		/* Second expiry, or a peer that will not read our goodbye. */
		log_info(c->sid, "event=timeout action=abort");
		c->dead = true;
	} else {
		c->timed_out = true;
		c->ops->timeout(c);
		ev_timer_again(c->loop, &c->idle);
	}
	conn_pump(c);
}

struct conn *conn_new(struct ev_loop *loop, int fd, const struct sockaddr *sa,
		      socklen_t salen MP_UNUSED)
{
	struct conn *c = xcalloc(1, sizeof(*c));
	c->loop = loop;
	c->fd = fd;
	c->arena = arena_new();
	conn_make_sid(c->sid);
	c->id = ++conn_next_id;
	c->hnext = conn_ids[c->id % CONN_ID_BUCKETS];
	conn_ids[c->id % CONN_ID_BUCKETS] = c;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)sa;
		inet_ntop(AF_INET, &s4->sin_addr, c->peer_ip, sizeof(c->peer_ip));
		c->peer_port = ntohs(s4->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)sa;
		inet_ntop(AF_INET6, &s6->sin6_addr, c->peer_ip, sizeof(c->peer_ip));
		c->peer_port = ntohs(s6->sin6_port);
	} else {
		snprintf(c->peer_ip, sizeof(c->peer_ip), "local");
	}
	ev_io_init(&c->rio, conn_io_cb, fd, EV_READ);
	ev_io_init(&c->wio, conn_io_cb, fd, EV_WRITE);
	c->rio.data = c->wio.data = c;
	c->next = conn_list;
	if (conn_list)
		conn_list->prev = c;
	conn_list = c;
	conn_n++;
	return c;
}

static int conn_tls_begin(struct conn *c)
{
	c->ssl = SSL_new(c->ssl_ctx);
	if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
		log_warn(c->sid, "event=tls_error error=\"cannot create TLS session\"");
		return -1;
	}
	SSL_set_accept_state(c->ssl);
	c->handshake = true;
	return 0;
}

void conn_start(struct conn *c, const struct conn_ops *ops, void *proto,
		size_t line_max, double idle_timeout, SSL_CTX *ssl_ctx,
		bool implicit_tls)
{
	c->ops = ops;
	c->proto = proto;
	c->ssl_ctx = ssl_ctx;
	c->idle_timeout = idle_timeout;
	linebuf_init(&c->lb, line_max);
	ev_init(&c->idle, conn_idle_cb);
	c->idle.data = c;
	c->idle.repeat = idle_timeout;
	ev_timer_again(c->loop, &c->idle);
	if (implicit_tls && conn_tls_begin(c) < 0)
		c->dead = true;
	/* Nothing runs until the loop sees the socket; the protocol's
	 * greeting, written right after this, is flushed then. */
	ev_io_start(c->loop, &c->rio);
	ev_io_start(c->loop, &c->wio);
}

void conn_write(struct conn *c, const void *p, size_t n)
{
	if (c->closing || c->dead)
		return;
	if (c->z != NULL)
		conn_z_put(c, p, n);
	else
		buf_append(&c->out, p, n);
}

void conn_write_buf(struct conn *c, struct buf *b)
{
	if (c->closing || c->dead || c->z != NULL) {
		conn_write(c, buf_ptr(b), b->len);
		buf_clear(b);
		return;
	}
	if (c->out.len == 0) {
		struct buf empty = c->out;      /* zero copy: the buffers trade places */
		c->out = *b;
		*b = empty;
		buf_clear(b);
		return;
	}
	buf_append(&c->out, buf_ptr(b), b->len);
	buf_clear(b);
}

void conn_printf(struct conn *c, const char *fmt, ...)
{
	va_list ap;
	if (c->closing || c->dead)
		return;
	va_start(ap, fmt);
	if (c->z != NULL) {
		struct buf b = { 0 };
		buf_vprintf(&b, fmt, ap);
		conn_z_put(c, buf_ptr(&b), b.len);
		buf_free(&b);
	} else {
		buf_vprintf(&c->out, fmt, ap);
	}
	va_end(ap);
}

void conn_close(struct conn *c)
{
	c->closing = true;
}

void conn_starttls(struct conn *c)
{
	c->starttls = true;
}

void conn_compress(struct conn *c)
{
	c->compress = true;
}

bool conn_compressed(const struct conn *c)
{
	return c->z != NULL || c->compress;
}

void conn_pause(struct conn *c)
{
	/* Our own slow work (a lookup, an fsync) is not client idleness. */
	c->paused = true;
	ev_timer_stop(c->loop, &c->idle);
}

void conn_resume(struct conn *c)
{
	if (!c->paused)
		return;
	c->paused = false;
	ev_timer_again(c->loop, &c->idle);
	/* Lines may already be buffered: run the pump from the loop, not from
	 * inside the caller (no callback before returning). */
	ev_feed_event(c->loop, &c->rio, EV_READ);
}

struct conn *conn_find(uint64_t id)
{
	for (struct conn *c = conn_ids[id % CONN_ID_BUCKETS]; c; c = c->hnext)
		if (c->id == id)
			return c;
	return NULL;
}

bool conn_tls_active(const struct conn *c)
{
	return c->ssl != NULL && !c->handshake;
}

void conn_set_raw(struct conn *c, bool raw)
{
	c->raw = raw;
}

void conn_set_line_max(struct conn *c, size_t max)
{
	linebuf_init(&c->lb, max);
}

static void conn_tls_log_error(struct conn *c, const char *what, int err)
{
	char reason[256] = "";
	unsigned long e = ERR_get_error();
	if (e != 0)
		ERR_error_string_n(e, reason, sizeof(reason));
	ERR_clear_error();
	log_info(c->sid, "event=tls_error op=%s ssl_error=%d reason=\"%s\" errno=\"%s\"",
		 what, err, reason, err == SSL_ERROR_SYSCALL ? strerror(errno) : "");
}

/* 1 done, 0 in progress, -1 failed. */
static int conn_handshake(struct conn *c)
{
	int r = SSL_do_handshake(c->ssl);
	if (r == 1) {
		char desc[128];
		c->handshake = false;
		c->ssl_want = 0;
		tls_describe(c->ssl, desc, sizeof(desc));
		log_info(c->sid, "event=tls_established tls=\"%s\"", desc);
		return 1;
	}
	int err = SSL_get_error(c->ssl, r);
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
		c->ssl_want = err;
		return 0;
	}
	conn_tls_log_error(c, "handshake", err);
	return -1;
}

/* Writes what it can: 0 ok (maybe partial), -1 the connection failed. */
static int conn_flush(struct conn *c)
{
	conn_z_sync(c);
	while (c->out.len > 0) {
		size_t n = 0;
		if (c->ssl) {
			int r = SSL_write_ex(c->ssl, buf_ptr(&c->out), c->out.len, &n);
			if (r <= 0) {
				int err = SSL_get_error(c->ssl, r);
				if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
					c->ssl_want = err;
					return 0;
				}
				conn_tls_log_error(c, "write", err);
				return -1;
			}
		} else {
			ssize_t w = write(c->fd, buf_ptr(&c->out), c->out.len);
			if (w < 0) {
				if (errno == EAGAIN || errno == EINTR)
					return 0;
				log_info(c->sid, "event=write_error error=\"%s\"", strerror(errno));
				return -1;
			}
			n = (size_t)w;
		}
		buf_consume(&c->out, n);
	}
	return 0;
}

static size_t conn_in_max(const struct conn *c)
{
	return c->lb.max + CONN_READ_CHUNK;
}

int conn_read(struct conn *c, char *w, size_t room, size_t *n)
{
	*n = 0;
	if (c->ssl) {
		int r = SSL_read_ex(c->ssl, w, room, n);
		if (r <= 0) {
			int err = SSL_get_error(c->ssl, r);
			if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
				c->ssl_want = err;
				return 0;
			}
			if (err == SSL_ERROR_ZERO_RETURN) {
				c->eof = true;
				return 0;
			}
			conn_tls_log_error(c, "read", err);
			return -1;
		}
		return 1;
	}
	ssize_t r = read(c->fd, w, room);
	if (r < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return 0;
		log_info(c->sid, "event=read_error error=\"%s\"", strerror(errno));
		return -1;
	}
	if (r == 0) {
		c->eof = true;
		return 0;
	}
	*n = (size_t)r;
	return 1;
}

/* Reads one chunk: 1 got bytes, 0 nothing now, -1 failed (eof sets c->eof). */
static int conn_fill(struct conn *c)
{
	size_t room = conn_in_max(c) - c->in.len;
	if (room > CONN_READ_CHUNK)
		room = CONN_READ_CHUNK;
	size_t n = 0;
	int r = c->z != NULL ? conn_z_fill(c, room) : conn_read(c, buf_reserve(&c->in, room), room, &n);
	if (r <= 0)
		return r;
	buf_commit(&c->in, n);
	ev_timer_again(c->loop, &c->idle);
	c->timed_out = false;
	return 1;
}

/* Delivers buffered lines; returns how many. */
static int conn_lines(struct conn *c)
{
	int n = 0;
	while (!c->closing && !c->starttls && !c->dead && !c->paused &&
	       c->out.len < CONN_OUT_HIGH) {
		if (c->raw) {
			if (c->in.len == 0)
				break;
			size_t used = c->ops->data(c, buf_ptr(&c->in), c->in.len);
			buf_consume(&c->in, used);
			if (used == 0 && c->raw)
				break;
			n++;
			continue;
		}
		struct str line;
		size_t used;
		enum linebuf_status st = linebuf_next(&c->lb, buf_ptr(&c->in), c->in.len,
						      &line, &used);
		if (st == LINEBUF_AGAIN) {
			buf_consume(&c->in, used);
			break;
		}
		c->ops->line(c, line, st == LINEBUF_TOOLONG);
		buf_consume(&c->in, used);
		n++;
	}
	return n;
}

/* One step of progress; false when waiting for the network. */
static bool conn_step(struct conn *c, int *reads)
{
	if (c->handshake) {
		int r = conn_handshake(c);
		if (r <= 0) {
			c->dead = r < 0;
			return false;
		}
		ev_timer_again(c->loop, &c->idle);
		if (c->ops->tls_ready)
			c->ops->tls_ready(c);
	}
	if (conn_flush(c) < 0) {
		c->dead = true;
		return false;
	}
	if (c->closing) {
		if (c->out.len == 0) {
			if (c->ssl)
				SSL_shutdown(c->ssl);
			c->dead = true;
		}
		return false;
	}
	if (c->compress) {     /* RFC 4978: after the tagged OK, raw as it was */
		if (c->out.len > 0)
			return false;
		c->compress = false;
		buf_clear(&c->in);      /* pipelined bytes were not compressed: dropped */
		c->lb.skipping = false;
		if (conn_z_start(c) < 0) {
			c->dead = true;
			return false;
		}
		return true;
	}
	if (c->starttls) {
		if (c->out.len > 0)
			return false;
		c->starttls = false;
		buf_clear(&c->in);
		c->lb.skipping = false;
		if (c->ssl != NULL || c->ssl_ctx == NULL || conn_tls_begin(c) < 0) {
			c->dead = true;
			return false;
		}
		return true;
	}
	if (c->out.len >= CONN_OUT_HIGH)
		return false;
	if (conn_lines(c) > 0)
		return true;
	if (c->eof) {
		if (c->paused)
			return false;   /* answer what was asked first */
		c->closing = true;
		return true;
	}
	if (c->in.len >= conn_in_max(c) || *reads >= CONN_READS_PER_PUMP || c->paused)
		return false;
	(*reads)++;
	int r = conn_fill(c);
	if (r < 0)
		c->dead = true;
	return r > 0 || c->eof;
}

static void conn_watch(struct conn *c)
{
	bool want_read, want_write;
	if (c->handshake) {
		want_read = c->ssl_want != SSL_ERROR_WANT_WRITE;
		want_write = c->ssl_want == SSL_ERROR_WANT_WRITE;
	} else {
		conn_z_sync(c);
		want_write = c->out.len > 0;
		want_read = (!c->closing && !c->starttls && !c->eof && !c->paused &&
			     c->out.len < CONN_OUT_HIGH && c->in.len < conn_in_max(c)) ||
			    (want_write && c->ssl_want == SSL_ERROR_WANT_READ);
	}
	if (want_read && !ev_is_active(&c->rio))
		ev_io_start(c->loop, &c->rio);
	else if (!want_read && ev_is_active(&c->rio))
		ev_io_stop(c->loop, &c->rio);
	if (want_write && !ev_is_active(&c->wio))
		ev_io_start(c->loop, &c->wio);
	else if (!want_write && ev_is_active(&c->wio))
		ev_io_stop(c->loop, &c->wio);
}

static void conn_free(struct conn *c)
{
	ev_io_stop(c->loop, &c->rio);
	ev_io_stop(c->loop, &c->wio);
	ev_timer_stop(c->loop, &c->idle);
	if (c->ops && c->ops->closed)
		c->ops->closed(c);
	if (c->ssl)
		SSL_free(c->ssl);
	close(c->fd);
	buf_free(&c->in);
	buf_free(&c->out);
	conn_z_free(c);
	arena_destroy(&c->arena);
	for (struct conn **pp = &conn_ids[c->id % CONN_ID_BUCKETS]; *pp; pp = &(*pp)->hnext) {
		if (*pp == c) {
			*pp = c->hnext;
			break;
		}
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		conn_list = c->next;
	if (c->next)
		c->next->prev = c->prev;
	conn_n--;
	free(c);
	if (conn_free_hook)
		conn_free_hook();
}

static void conn_pump(struct conn *c)
{
	if (c->busy)
		return;
	c->busy = true;
	int reads = 0;
	while (!c->dead && conn_step(c, &reads))
		;
	c->busy = false;
	if (c->dead) {
		conn_free(c);
		return;
	}
	conn_watch(c);
	/* Decrypted bytes can sit inside OpenSSL with the socket idle. */
	if (reads >= CONN_READS_PER_PUMP || (c->ssl && SSL_pending(c->ssl) > 0 &&
					     ev_is_active(&c->rio)))
		ev_feed_event(c->loop, &c->rio, EV_READ);
}

size_t conn_count(void)
{
	return conn_n;
}

void conn_drain_all(void)
{
	struct conn *c = conn_list;
	while (c) {
		/* Pumping may free c: take the next one first. */
		struct conn *next = c->next;
		if (c->ops && c->ops->drain && !c->closing && !c->dead) {
			c->ops->drain(c);
			conn_pump(c);
		}
		c = next;
	}
}

void conn_abort_all(void)
{
	while (conn_list) {
		struct conn *c = conn_list;
		c->dead = true;
		conn_free(c);
	}
}

void conn_set_free_hook(void (*fn)(void))
{
	conn_free_hook = fn;
}
