/* conn.h - one client connection: socket or TLS stream, bounded line
 * reader, write queue and idle timer on a libev loop.
 *
 * This is the only code that reads or writes a client socket (style rule 1).
 * Protocol code gets complete lines through ops->line and answers with
 * conn_write()/conn_printf(); it never sees partial reads or EAGAIN.
 *
 * Callbacks are only ever called from inside the connection's own event
 * handling, never from a conn_* call the protocol makes, and the connection
 * is freed only after the callback returns (libev rule: a start function
 * never calls back before returning). After ops->closed the conn is gone.
 *
 * Back-pressure: while more than CONN_OUT_HIGH bytes wait to be written,
 * no further lines are delivered, so a pipelining client that never reads
 * cannot make the server buffer without bound. */
#ifndef MP_CONN_H
#define MP_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <ev.h>
#include <openssl/ssl.h>

#include "buf.h"
#include "linebuf.h"

#define CONN_OUT_HIGH (64 * 1024)
#define CONN_SID_LEN 12

struct arena;
struct conn;

struct conn_ops {
	/* A complete line; too_long: an overlong line was discarded instead. */
	void (*line)(struct conn *c, struct str line, bool too_long);
	/* Raw mode (conn_set_raw): bytes as they arrive; returns how many it
	 * consumed. What it leaves stays buffered for line mode. */
	size_t (*data)(struct conn *c, const char *p, size_t len);
	/* TLS is up: after an implicit-TLS handshake (before any protocol
	 * byte) or after the STARTTLS handshake. May be NULL. */
	void (*tls_ready)(struct conn *c);
	/* The idle timer fired; write a goodbye and call conn_close(). */
	void (*timeout)(struct conn *c);
	/* The connection is going away: release protocol state. */
	void (*closed)(struct conn *c);
	/* The server is stopping: finish now if nothing is in flight (may be
	 * NULL: then the session runs until it ends or the deadline). */
	void (*drain)(struct conn *c);
};

struct conn_z;

struct conn {
	struct ev_loop *loop;
	int fd;
	SSL *ssl;
	SSL_CTX *ssl_ctx;           /* borrowed: for STARTTLS / implicit TLS */
	ev_io rio, wio;
	ev_timer idle;
	double idle_timeout;
	struct buf in, out;
	struct linebuf lb;
	const struct conn_ops *ops;
	void *proto;                /* the protocol session */
	struct arena *arena;        /* freed with the connection */
	uint64_t id;                /* unique in this process, never reused */
	struct conn *hnext;         /* id hash chain */
	char sid[CONN_SID_LEN + 1];
	char peer_ip[INET6_ADDRSTRLEN];
	int peer_port;
	int ssl_want;               /* SSL_ERROR_WANT_* of the last TLS call */
	bool handshake, starttls, closing, eof, dead, busy, timed_out, paused, raw, compress;
	struct conn_z *z;           /* COMPRESS=DEFLATE state, NULL when off */
	struct conn *prev, *next;   /* all connections of this process */
};

/* Wraps an accepted, non-blocking fd (ownership passes to the conn). */
struct conn *conn_new(struct ev_loop *loop, int fd, const struct sockaddr *sa,
		      socklen_t salen);
/* Starts I/O. With implicit_tls the TLS handshake runs first and
 * ops->tls_ready follows; otherwise the protocol may write at once. */
void conn_start(struct conn *c, const struct conn_ops *ops, void *proto,
		size_t line_max, double idle_timeout, SSL_CTX *ssl_ctx,
		bool implicit_tls);

void conn_write(struct conn *c, const void *p, size_t n);
/* Queues all of b and leaves it empty (its storage may be traded with the
 * connection's empty output buffer: no copy of a large batch). */
void conn_write_buf(struct conn *c, struct buf *b);
void conn_printf(struct conn *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Flushes what is queued, then closes. No more lines are delivered. */
void conn_close(struct conn *c);
/* After the queued reply is flushed: drops every buffered input byte
 * (RFC 3207 section 4.2: plaintext before TLS must not be trusted) and runs
 * the server handshake; ops->tls_ready follows. No line is delivered
 * in between. */
void conn_starttls(struct conn *c);
bool conn_tls_active(const struct conn *c);
/* COMPRESS=DEFLATE (RFC 4978): once what is queued now (the tagged OK)
 * is sent, both directions are raw DEFLATE; bytes the client sent after
 * the command are dropped, as with STARTTLS. */
void conn_compress(struct conn *c);
bool conn_compressed(const struct conn *c);
/* Stops delivering lines (an async reply is pending); resume picks up
 * with whatever was pipelined meanwhile. Output still flows. */
void conn_pause(struct conn *c);
void conn_resume(struct conn *c);
/* The live connection with this id, or NULL if it is gone: how async
 * completions find their session (style rule 14). */
struct conn *conn_find(uint64_t id);
void conn_set_line_max(struct conn *c, size_t max);
/* Switches between line delivery and raw bytes (ops->data), e.g. for a
 * DATA body; effective for the next byte. */
void conn_set_raw(struct conn *c, bool raw);

/* Per-process registry, for draining and limits. */
size_t conn_count(void);
/* Asks every connection to finish (ops->drain). */
void conn_drain_all(void);
/* Closes every connection at once (drain deadline passed). */
void conn_abort_all(void);
/* Called each time a connection is freed (may be NULL). */
void conn_set_free_hook(void (*fn)(void));

#endif
