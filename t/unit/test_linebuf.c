/* test_linebuf.c - the bounded line reader, fed whole, one byte at a time
 * and in random chunks: every way must yield the same lines. */
#include "core/buf.h"
#include "core/linebuf.h"
#include "tap.h"

#include <stdlib.h>

#define MAXLINE 16

/* Feeds input in chunks of chunk bytes (0 = random 1..7), records the
 * lines as "text|" and overlong lines as "<LONG>|". */
static void run(const char *input, size_t chunk, struct buf *out, unsigned seed)
{
	struct linebuf lb;
	struct buf in = { 0 };
	size_t len = strlen(input), pos = 0;
	linebuf_init(&lb, MAXLINE);
	srand(seed);
	while (pos < len) {
		size_t n = chunk ? chunk : (size_t)(rand() % 7 + 1);
		if (n > len - pos)
			n = len - pos;
		buf_append(&in, input + pos, n);
		pos += n;
		for (;;) {
			struct str line;
			size_t used;
			enum linebuf_status st = linebuf_next(&lb, buf_ptr(&in), in.len, &line, &used);
			/* The line is a view into in: use it before consuming. */
			if (st == LINEBUF_TOOLONG)
				buf_append_str(out, "<LONG>|");
			else if (st == LINEBUF_LINE) {
				buf_append(out, line.p, line.len);
				buf_append_str(out, "|");
			}
			buf_consume(&in, used);
			if (st == LINEBUF_AGAIN)
				break;
		}
		ok(in.len <= MAXLINE + 7, "buffer stays bounded (%zu bytes)", in.len);
	}
	buf_free(&in);
}

static void check(const char *name, const char *input, const char *want)
{
	size_t chunks[] = { 1000, 1, 2, 3, 0, 0, 0 };
	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		struct buf out = { 0 };
		run(input, chunks[i], &out, (unsigned)i);
		is_str(buf_ptr(&out), want, "%s (chunk %zu)", name, chunks[i]);
		buf_free(&out);
	}
}

int main(void)
{
	check("crlf lines", "EHLO a\r\nNOOP\r\n", "EHLO a|NOOP|");
	check("bare lf accepted as command end", "NOOP\nQUIT\n", "NOOP|QUIT|");
	check("empty line", "\r\nX\r\n", "|X|");
	check("partial line waits", "NOOP\r\nQUI", "NOOP|");
	/* 14 chars + CRLF = 16 = MAXLINE: fits exactly. */
	check("line of exactly max", "abcdefghijklmn\r\nZ\r\n", "abcdefghijklmn|Z|");
	check("line of max+1", "abcdefghijklmno\r\nZ\r\n", "<LONG>|Z|");
	check("very long line then normal", "0123456789012345678901234567890123456789\r\nNOOP\r\n",
	      "<LONG>|NOOP|");
	check("two long lines", "01234567890123456789\n01234567890123456789\nA\n",
	      "<LONG>|<LONG>|A|");
	check("cr inside line kept", "a\rb\r\n", "a\rb|");
	return tap_done();
}
