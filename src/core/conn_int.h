/* conn_int.h - shared by conn.c and conn_z.c (COMPRESS=DEFLATE), nobody
 * else: the raw read and the compression layer's hooks. */
#ifndef MP_CONN_INT_H
#define MP_CONN_INT_H

#include "conn.h"

#define CONN_READ_CHUNK 16384

/* One read from the socket (through TLS when active) into w: 1 got *n
 * bytes, 0 nothing now (or EOF: c->eof), -1 failed. */
int conn_read(struct conn *c, char *w, size_t room, size_t *n);

/* conn_z.c: c->z is set between start and free. */
int conn_z_start(struct conn *c);
void conn_z_free(struct conn *c);
/* Deflates plaintext into c->out (sets c->dead on a zlib failure). */
void conn_z_put(struct conn *c, const void *p, size_t n);
/* Flushes the compressor into c->out (Z_SYNC_FLUSH) if it holds input. */
void conn_z_sync(struct conn *c);
/* conn_fill for a compressed connection: up to room plaintext bytes into
 * c->in; same returns as conn_read. */
int conn_z_fill(struct conn *c, size_t room);

#endif
