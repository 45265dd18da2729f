/* conn_z.c - COMPRESS=DEFLATE (RFC 4978) under the connection: once on,
 * everything the protocol writes is raw DEFLATE (RFC 1951, no zlib
 * header: windowBits -15) before TLS, and everything read is inflated
 * before the protocol sees it. Writes are deflated as they are queued
 * (Z_NO_FLUSH) and flushed (Z_SYNC_FLUSH) whenever the connection is
 * about to send, so a response is never held back in the compressor. */
#include "conn.h"
#include "conn_int.h"
#include "log.h"
#include "util.h"

#include <string.h>
#include <zlib.h>

struct conn_z {
	z_stream in, out;
	bool out_ready, in_ready;
	bool pending;           /* input given to deflate since the last sync */
	struct buf raw;         /* compressed bytes read, not inflated yet */
};

void conn_z_free(struct conn *c)
{
	struct conn_z *z = c->z;
	if (z == NULL)
		return;
	if (z->out_ready)
		deflateEnd(&z->out);
	if (z->in_ready)
		inflateEnd(&z->in);
	buf_free(&z->raw);
	free(z);
	c->z = NULL;
}

int conn_z_start(struct conn *c)
{
	struct conn_z *z = xcalloc(1, sizeof(*z));
	c->z = z;
	z->out_ready = deflateInit2(&z->out, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8,
				    Z_DEFAULT_STRATEGY) == Z_OK;
	z->in_ready = inflateInit2(&z->in, -15) == Z_OK;
	if (!z->out_ready || !z->in_ready) {
		log_warn(c->sid, "event=compress_error error=\"cannot start zlib\"");
		conn_z_free(c);
		return -1;
	}
	return 0;
}

/* Runs deflate over p[0 .. n) into c->out with flush mode. */
static int conn_z_deflate(struct conn *c, const void *p, size_t n, int flush)
{
	z_stream *s = &c->z->out;
	s->next_in = (Bytef *)(uintptr_t)p;
	s->avail_in = (uInt)n;
	do {
		size_t room = n / 2 + 4096;
		char *w = buf_reserve(&c->out, room);
		s->next_out = (Bytef *)w;
		s->avail_out = (uInt)room;
		int r = deflate(s, flush);
		if (r != Z_OK && r != Z_BUF_ERROR)
			return -1;
		buf_commit(&c->out, room - s->avail_out);
	} while (s->avail_in > 0 || s->avail_out == 0);
	return 0;
}

void conn_z_put(struct conn *c, const void *p, size_t n)
{
	/* avail_in is 32 bits: feed huge writes in pieces */
	for (size_t off = 0; off < n;) {
		size_t k = n - off > (1u << 30) ? (1u << 30) : n - off;
		if (conn_z_deflate(c, (const char *)p + off, k, Z_NO_FLUSH) < 0) {
			c->dead = true;
			return;
		}
		off += k;
	}
	c->z->pending = c->z->pending || n > 0;
}

void conn_z_sync(struct conn *c)
{
	if (c->z == NULL || !c->z->pending)
		return;
	c->z->pending = false;
	if (conn_z_deflate(c, "", 0, Z_SYNC_FLUSH) < 0)
		c->dead = true;
}

/* Inflates what was read into c->in, up to room bytes. 0, or -1 for a
 * broken stream. */
static int conn_z_inflate(struct conn *c, size_t room)
{
	struct conn_z *z = c->z;
	z->in.next_in = (Bytef *)(uintptr_t)buf_ptr(&z->raw);
	z->in.avail_in = (uInt)z->raw.len;
	char *w = buf_reserve(&c->in, room);
	z->in.next_out = (Bytef *)w;
	z->in.avail_out = (uInt)room;
	int r = inflate(&z->in, Z_SYNC_FLUSH);
	buf_commit(&c->in, room - z->in.avail_out);
	buf_consume(&z->raw, z->raw.len - z->in.avail_in);
	if (r == Z_OK || r == Z_BUF_ERROR)
		return 0;
	log_info(c->sid, "event=compress_error error=\"%s\"", r == Z_STREAM_END ? "stream ended" :
		 z->in.msg ? z->in.msg : "inflate failed");
	return -1;
}

int conn_z_fill(struct conn *c, size_t room)
{
	struct conn_z *z = c->z;
	bool read_now = z->raw.len == 0;
	if (read_now) {
		size_t n = 0;
		char *w = buf_reserve(&z->raw, CONN_READ_CHUNK);
		int got = conn_read(c, w, CONN_READ_CHUNK, &n);
		if (got <= 0)
			return got;
		buf_commit(&z->raw, n);
	}
	size_t raw_before = z->raw.len, in_before = c->in.len;
	if (conn_z_inflate(c, room) < 0)
		return -1;
	/* leftover input that inflate could not use now: wait for more */
	return read_now || z->raw.len != raw_before || c->in.len != in_before ? 1 : 0;
}
