/* imap_notify.h - change notification on directories for IDLE: one
 * inotify instance per process (the kernel's per-user instance limit is
 * small: 128 by default), shared by every session, on the process's libev
 * loop. Each watch names its session by connection id (style rule 14);
 * the callback runs on the loop and must not add or remove watches. */
#ifndef MP_IMAP_NOTIFY_H
#define MP_IMAP_NOTIFY_H

#include <stdint.h>

#include <ev.h>

struct imap_notify_watch;

typedef void imap_notify_fn(void *owner, uint64_t id);

/* Calls cb(owner, id) when an entry of the directory path is created,
 * deleted or renamed. NULL when inotify is not available (the caller
 * polls instead). */
struct imap_notify_watch *imap_notify_add(struct ev_loop *loop, const char *path,
					  imap_notify_fn *cb, void *owner, uint64_t id);
/* NULL-safe; sets *wp = NULL. */
void imap_notify_remove(struct imap_notify_watch **wp);

#endif
