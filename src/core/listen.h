/* listen.h - binds the configured listening sockets.
 *
 * Sockets are bound by the root parent and shared by every worker; they are
 * non-blocking and close-on-exec. */
#ifndef MP_LISTEN_H
#define MP_LISTEN_H

#include <stddef.h>

struct conf_listener;

/* Binds l (TCP or unix) and stores the fd in l->fd. Returns 0, or -1 with
 * a message in err. */
int listen_bind(struct conf_listener *l, char *err, size_t size);
/* "127.0.0.1:25" or the unix path, for logs. */
void listen_describe(const struct conf_listener *l, char *dst, size_t size);
/* True when a and b denote the same socket address. */
int listen_same(const struct conf_listener *a, const struct conf_listener *b);

#endif
