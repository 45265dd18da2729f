/* pool.h - a small thread pool whose completions come back to a libev loop.
 *
 * For work that blocks (directory queries, password hashing, later fsync
 * batches): work(arg) runs on a pool thread, then done(arg) runs on the
 * loop thread. arg belongs to the job until done() returns; done() must not
 * assume that whoever submitted the job still exists - it finds its owner by
 * id (conn_find) and drops the result if the owner is gone. */
#ifndef MP_POOL_H
#define MP_POOL_H

#include <ev.h>

struct pool;

typedef void pool_fn(void *arg);

/* Starts threads worker threads. Call after fork(), in the process that
 * owns loop. */
struct pool *pool_new(struct ev_loop *loop, int threads);
void pool_submit(struct pool *p, pool_fn *work, pool_fn *done, void *arg);
/* Finishes every queued job (calling done), joins the threads, frees *pp. */
void pool_free(struct pool **pp);

#endif
