/* daemon.h - the moonpostd process roles.
 *
 * parent (root): owns the config generations and the listening sockets,
 * forks and restarts workers, turns SIGHUP into a reload and SIGTERM/SIGINT
 * into a graceful stop. It holds no client connection.
 * worker: drops privileges, runs a libev loop serving every listener.
 * A reload starts a new generation of workers on the new config and tells
 * the old ones to drain, so established sessions are never cut. */
#ifndef MP_DAEMON_H
#define MP_DAEMON_H

#include <stdbool.h>

#include "core/conf.h"

/* True for protocols this build serves; listeners of others are skipped. */
bool daemon_proto_served(int protocol);

/* Binds every served listener of c, reusing fds of old (may be NULL) for
 * identical addresses. 0, or -1 with everything newly bound closed again. */
int daemon_bind(struct conf *c, struct conf *old, char *err, size_t size);
/* Closes the listener fds c still holds. */
void daemon_unbind(struct conf *c);

/* Runs the parent loop; returns the process exit code. Takes ownership of c. */
int parent_run(struct conf *c);
/* Worker entry after fork(); never returns. */
void worker_run(const struct conf *c, int id, int climit_region) __attribute__((noreturn));

#endif
