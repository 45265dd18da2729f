/* imap_client.c - the IMAP benchmark's client (bench/imap-fetch.sh): so
 * that a Python client reading 40 MB of literals does not become what is
 * measured. Logs in (LOGIN), SELECTs a mailbox, then sends each COMMAND in
 * turn and reads its responses (literals skipped by their announced size)
 * up to the tagged completion, which must be OK. Prints one line per
 * command: "seconds bytes" (time from sending it to its tagged OK, bytes
 * of response). usage: imap_client PORT USER PASSWORD MAILBOX COMMAND... */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF_MAX (4 << 20)

static char buf[BUF_MAX];
static size_t bstart, blen;     /* unread bytes: buf[bstart, bstart + blen) */

static void die(const char *what, const char *detail)
{
	fprintf(stderr, "imap_client: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
	exit(1);
}

static void fill(int fd)
{
	if (bstart > 0) {
		memmove(buf, buf + bstart, blen);
		bstart = 0;
	}
	if (blen == sizeof(buf))
		die("response line too long", NULL);
	ssize_t n = read(fd, buf + blen, sizeof(buf) - blen);
	if (n <= 0)
		die("connection closed", NULL);
	blen += (size_t)n;
}

/* Skips n bytes of literal data. */
static void skip(int fd, size_t n)
{
	while (n > 0) {
		if (blen == 0)
			fill(fd);
		size_t k = n < blen ? n : blen;
		bstart += k;
		blen -= k;
		n -= k;
	}
}

/* Reads one line (without CRLF) into line; returns its length + 2. */
static size_t next_line(int fd, char *line, size_t size)
{
	char *lf;
	while ((lf = memchr(buf + bstart, '\n', blen)) == NULL)
		fill(fd);
	size_t n = (size_t)(lf - (buf + bstart)) + 1;
	size_t keep = n >= 2 ? n - 2 : 0;
	if (keep >= size)
		keep = size - 1;
	memcpy(line, buf + bstart, keep);
	line[keep] = '\0';
	bstart += n;
	blen -= n;
	return n;
}

/* Reads responses up to the tagged one; returns the bytes read. */
static size_t until_tagged(int fd, const char *tag)
{
	char line[8192];
	size_t total = 0, tl = strlen(tag);
	for (;;) {
		size_t n = next_line(fd, line, sizeof(line));
		total += n;
		size_t len = strlen(line);
		if (len > 2 && line[len - 1] == '}') {
			char *open = strrchr(line, '{');
			if (open != NULL) {
				size_t lit = strtoul(open + 1, NULL, 10);
				skip(fd, lit);
				total += lit;
				continue;
			}
		}
		if (strncmp(line, tag, tl) == 0 && line[tl] == ' ') {
			if (strncmp(line + tl + 1, "OK", 2) != 0)
				die("command failed", line);
			return total;
		}
	}
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void send_cmd(int fd, const char *tag, const char *cmd)
{
	char out[8192];
	int n = snprintf(out, sizeof(out), "%s %s\r\n", tag, cmd);
	if (n < 0 || (size_t)n >= sizeof(out) || write(fd, out, (size_t)n) != n)
		die("cannot send", cmd);
}

static int connect_to(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("cannot connect", NULL);
	char line[8192];
	next_line(fd, line, sizeof(line));
	if (strncmp(line, "* OK", 4) != 0)
		die("bad greeting", line);
	return fd;
}

int main(int argc, char **argv)
{
	if (argc < 6)
		die("usage: imap_client PORT USER PASSWORD MAILBOX COMMAND...", NULL);
	int fd = connect_to(atoi(argv[1]));
	char cmd[4096];
	snprintf(cmd, sizeof(cmd), "LOGIN \"%s\" \"%s\"", argv[2], argv[3]);
	send_cmd(fd, "l", cmd);
	until_tagged(fd, "l");
	snprintf(cmd, sizeof(cmd), "SELECT \"%s\"", argv[4]);
	send_cmd(fd, "s", cmd);
	until_tagged(fd, "s");
	for (int i = 5; i < argc; i++) {
		char tag[16];
		snprintf(tag, sizeof(tag), "c%d", i);
		double t = now();
		send_cmd(fd, tag, argv[i]);
		size_t bytes = until_tagged(fd, tag);
		printf("%.6f %zu\n", now() - t, bytes);
	}
	send_cmd(fd, "z", "LOGOUT");
	until_tagged(fd, "z");
	close(fd);
	return 0;
}
