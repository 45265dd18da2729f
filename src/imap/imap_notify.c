/* imap_notify.c - the shared inotify instance (see imap_notify.h). */
#include "imap_notify.h"
#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#define IMAP_NOTIFY_MASK (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ONLYDIR)

struct imap_notify_watch {
	int wd;
	imap_notify_fn *cb;
	void *owner;
	uint64_t id;
	struct imap_notify_watch *prev, *next;
};

static int notify_fd = -1;
static ev_io notify_io;
static struct imap_notify_watch *notify_list;

static void imap_notify_dispatch(int wd)
{
	for (struct imap_notify_watch *w = notify_list; w != NULL; w = w->next)
		if (w->wd == wd)
			w->cb(w->owner, w->id);
}

static void imap_notify_read_cb(struct ev_loop *loop MP_UNUSED, ev_io *io, int revents MP_UNUSED)
{
	char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
	for (int rounds = 0; rounds < 16; rounds++) {
		ssize_t n = read(io->fd, buf, sizeof(buf));
		if (n <= 0)
			return;
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *e = (const struct inotify_event *)p;
			if (e->mask & IN_IGNORED) {     /* the directory went away */
				for (struct imap_notify_watch *w = notify_list; w; w = w->next)
					if (w->wd == e->wd)
						w->wd = -1;
			} else {
				imap_notify_dispatch(e->wd);
			}
			p += sizeof(*e) + e->len;
		}
	}
}

static int imap_notify_open(struct ev_loop *loop)
{
	if (notify_fd >= 0)
		return 0;
	notify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (notify_fd < 0) {
		log_warn(NULL, "event=inotify_unavailable error=\"%s\"", strerror(errno));
		return -1;
	}
	ev_io_init(&notify_io, imap_notify_read_cb, notify_fd, EV_READ);
	ev_io_start(loop, &notify_io);
	/* the watcher alone must not keep a draining worker's loop alive */
	ev_unref(loop);
	return 0;
}

struct imap_notify_watch *imap_notify_add(struct ev_loop *loop, const char *path,
					  imap_notify_fn *cb, void *owner, uint64_t id)
{
	if (imap_notify_open(loop) < 0)
		return NULL;
	int wd = inotify_add_watch(notify_fd, path, IMAP_NOTIFY_MASK);
	if (wd < 0)
		return NULL;
	struct imap_notify_watch *w = xcalloc(1, sizeof(*w));
	*w = (struct imap_notify_watch){ .wd = wd, .cb = cb, .owner = owner, .id = id,
					 .next = notify_list };
	if (notify_list)
		notify_list->prev = w;
	notify_list = w;
	return w;
}

void imap_notify_remove(struct imap_notify_watch **wp)
{
	struct imap_notify_watch *w = *wp;
	if (w == NULL)
		return;
	if (w->prev)
		w->prev->next = w->next;
	else
		notify_list = w->next;
	if (w->next)
		w->next->prev = w->prev;
	bool shared = false;
	for (struct imap_notify_watch *o = notify_list; o && !shared; o = o->next)
		shared = o->wd == w->wd;
	/* the kernel has one watch per directory: only the last user drops it */
	if (!shared && w->wd >= 0)
		inotify_rm_watch(notify_fd, w->wd);
	free(w);
	*wp = NULL;
}
