/* pop3_client.c - the benchmark's POP3 client (bench/pop3-retr.sh): logs
 * in with USER/PASS, STAT, then RETR 1..N one at a time, each read to its
 * terminating ".CRLF", and QUIT. Prints "messages bytes seconds" for the
 * RETR loop only (or, with "session", from connect to the QUIT answer:
 * login, the server's folder sync and its end-of-session work included),
 * so the client costs as little as possible per message.
 * usage: pop3_client PORT USER PASSWORD [session] */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF_MAX (1 << 20)

static char buf[BUF_MAX];
static size_t blen;

static void die(const char *what)
{
	fprintf(stderr, "pop3_client: %s\n", what);
	exit(1);
}

static void fill(int fd)
{
	if (blen == sizeof(buf))
		die("reply too large");
	ssize_t n = read(fd, buf + blen, sizeof(buf) - blen);
	if (n <= 0)
		die("connection closed");
	blen += (size_t)n;
}

static void drop(size_t n)
{
	memmove(buf, buf + n, blen - n);
	blen -= n;
}

/* One status line; exits unless it is +OK. Returns its length. */
static size_t status(int fd, char *line, size_t size)
{
	char *lf;
	while ((lf = memchr(buf, '\n', blen)) == NULL)
		fill(fd);
	size_t n = (size_t)(lf - buf) + 1;
	snprintf(line, size, "%.*s", (int)n, buf);
	drop(n);
	if (strncmp(line, "+OK", 3) != 0)
		die(line);
	return n;
}

static void cmd(int fd, const char *c, char *line, size_t size)
{
	if (write(fd, c, strlen(c)) != (ssize_t)strlen(c))
		die("write");
	status(fd, line, size);
}

/* Reads a multi-line body through the ".\r\n" line; returns its size. */
static size_t body(int fd)
{
	size_t from = 0;
	for (;;) {
		if (blen >= 3 && memcmp(buf, ".\r\n", 3) == 0) {
			drop(3);
			return 3;
		}
		if (blen >= 5) {
			char *p = memmem(buf + from, blen - from, "\r\n.\r\n", 5);
			if (p != NULL) {
				size_t n = (size_t)(p + 5 - buf);
				drop(n);
				return n;
			}
			from = blen - 4;
		}
		fill(fd);
	}
}

int main(int argc, char **argv)
{
	char line[512], c[512];
	if (argc != 4 && argc != 5)
		die("usage: pop3_client PORT USER PASSWORD [session]");
	bool whole = argc == 5 && strcmp(argv[4], "session") == 0;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons((uint16_t)strtoul(argv[1], NULL, 10)) };
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		die("connect");
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	status(fd, line, sizeof(line));
	snprintf(c, sizeof(c), "USER %s\r\n", argv[2]);
	cmd(fd, c, line, sizeof(line));
	snprintf(c, sizeof(c), "PASS %s\r\n", argv[3]);
	cmd(fd, c, line, sizeof(line));
	cmd(fd, "STAT\r\n", line, sizeof(line));
	long n = strtol(line + 4, NULL, 10);
	unsigned long long total = 0;
	if (!whole)
		clock_gettime(CLOCK_MONOTONIC, &t0);
	for (long i = 1; i <= n; i++) {
		snprintf(c, sizeof(c), "RETR %ld\r\n", i);
		cmd(fd, c, line, sizeof(line));
		total += body(fd);
	}
	if (!whole)
		clock_gettime(CLOCK_MONOTONIC, &t1);
	cmd(fd, "QUIT\r\n", line, sizeof(line));
	if (whole)
		clock_gettime(CLOCK_MONOTONIC, &t1);
	close(fd);
	printf("%ld %llu %.6f\n", n, total,
	       (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	return 0;
}
