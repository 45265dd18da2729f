/* listen.c - listening sockets (see listen.h). */
#include "listen.h"
#include "conf.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define LISTEN_BACKLOG 511

void listen_describe(const struct conf_listener *l, char *dst, size_t size)
{
	if (l->path[0])
		snprintf(dst, size, "%s", l->path);
	else if (strchr(l->address, ':'))
		snprintf(dst, size, "[%s]:%lld", l->address, (long long)l->port);
	else
		snprintf(dst, size, "%s:%lld", l->address, (long long)l->port);
}

int listen_same(const struct conf_listener *a, const struct conf_listener *b)
{
	return strcmp(a->address, b->address) == 0 && a->port == b->port &&
	       strcmp(a->path, b->path) == 0;
}

static int listen_unix(struct conf_listener *l, char *err, size_t size)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", l->path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, size, "socket: %s", strerror(errno));
		return -1;
	}
	/* A stale socket from a previous run would make bind fail. */
	struct stat st;
	if (lstat(l->path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(l->path);
	/* 0666 like Dovecot's lmtp socket: the local MTA (user postfix) must
	 * connect; LMTP only accepts mail for our own domains anyway. */
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0 ||
	    chmod(l->path, 0666) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
		snprintf(err, size, "bind %s: %s", l->path, strerror(errno));
		close(fd);
		return -1;
	}
	l->fd = fd;
	return 0;
}

static int listen_tcp(struct conf_listener *l, char *err, size_t size)
{
	struct addrinfo hints = { .ai_flags = AI_NUMERICHOST | AI_PASSIVE,
				  .ai_socktype = SOCK_STREAM };
	struct addrinfo *ai = NULL;
	char port[16];
	snprintf(port, sizeof(port), "%lld", (long long)l->port);
	int r = getaddrinfo(l->address, port, &hints, &ai);
	if (r != 0) {
		snprintf(err, size, "address %s: %s", l->address, gai_strerror(r));
		return -1;
	}
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0) {
		snprintf(err, size, "socket: %s", strerror(errno));
		freeaddrinfo(ai);
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ai->ai_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
	    listen(fd, LISTEN_BACKLOG) != 0) {
		char where[128];
		listen_describe(l, where, sizeof(where));
		snprintf(err, size, "bind %s: %s", where, strerror(errno));
		close(fd);
		freeaddrinfo(ai);
		return -1;
	}
	freeaddrinfo(ai);
	l->fd = fd;
	return 0;
}

int listen_bind(struct conf_listener *l, char *err, size_t size)
{
	return l->path[0] ? listen_unix(l, err, size) : listen_tcp(l, err, size);
}
