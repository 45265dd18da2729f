/* bind.c - listener sockets across config generations. */
#include "daemon.h"
#include "core/listen.h"
#include "core/log.h"

#include <stdio.h>
#include <unistd.h>

bool daemon_proto_served(int protocol)
{
	return protocol == PROTO_SMTP || protocol == PROTO_SUBMISSION || protocol == PROTO_LMTP ||
	       protocol == PROTO_POP3 || protocol == PROTO_IMAP;
}

static bool bind_take_old(struct conf_listener *l, struct conf *old)
{
	for (size_t j = 0; old && j < old->listen_count; j++) {
		struct conf_listener *o = &old->listen[j];
		if (o->fd >= 0 && listen_same(o, l)) {
			l->fd = o->fd;
			o->fd = -1;     /* now owned by the new generation */
			return true;
		}
	}
	return false;
}

static void bind_give_back(struct conf *c, struct conf *old)
{
	for (size_t i = 0; i < c->listen_count; i++) {
		struct conf_listener *l = &c->listen[i];
		bool returned = false;
		for (size_t j = 0; old && j < old->listen_count && !returned; j++) {
			if (old->listen[j].fd < 0 && listen_same(&old->listen[j], l) &&
			    l->fd >= 0) {
				old->listen[j].fd = l->fd;
				returned = true;
			}
		}
		if (!returned && l->fd >= 0)
			close(l->fd);
		l->fd = -1;
	}
}

int daemon_bind(struct conf *c, struct conf *old, char *err, size_t size)
{
	for (size_t i = 0; i < c->listen_count; i++) {
		struct conf_listener *l = &c->listen[i];
		char where[128];
		listen_describe(l, where, sizeof(where));
		if (!daemon_proto_served(l->protocol)) {
			log_notice(NULL, "event=listener_skipped listen=%s protocol=%s reason=\"not implemented yet\"",
				   where, conf_proto_names[l->protocol]);
			continue;
		}
		if (bind_take_old(l, old))
			continue;
		if (listen_bind(l, err, size) != 0) {
			bind_give_back(c, old);
			return -1;
		}
		log_info(NULL, "event=listen listen=%s protocol=%s tls=%s", where,
			 conf_proto_names[l->protocol], conf_tls_names[l->tls]);
	}
	return 0;
}

void daemon_unbind(struct conf *c)
{
	for (size_t i = 0; i < c->listen_count; i++) {
		if (c->listen[i].fd >= 0) {
			if (c->listen[i].path[0])
				unlink(c->listen[i].path);
			close(c->listen[i].fd);
			c->listen[i].fd = -1;
		}
	}
}
