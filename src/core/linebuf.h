/* linebuf.h - the bounded line reader: a pure, resumable splitter of bytes
 * into protocol lines (style rules 1-3).
 *
 * It owns no memory: the caller feeds it the unconsumed input and consumes
 * what it says. A line is terminated by LF; a CR before the LF is stripped.
 * max counts the whole line including CRLF (RFC 5321 4.5.3.1.4 counts the
 * 512 octets of a command line that way). A line longer than max is never
 * buffered: its bytes are discarded as they arrive, and once its LF is seen
 * the reader reports LINEBUF_TOOLONG exactly once, in order with the lines
 * around it, so a pipelining client gets its replies in sequence. */
#ifndef MP_LINEBUF_H
#define MP_LINEBUF_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

enum linebuf_status {
	LINEBUF_LINE,      /* *line_r is a complete line, without CR/LF */
	LINEBUF_AGAIN,     /* need more input; consume *consumed_r anyway */
	LINEBUF_TOOLONG,   /* an overlong line ended; *line_r is empty */
};

struct linebuf {
	size_t max;        /* line limit including CRLF, >= 3 */
	bool skipping;     /* inside an overlong line */
};

void linebuf_init(struct linebuf *lb, size_t max);
/* Examines buf[0..len); always sets *consumed_r (bytes the caller must drop
 * before the next call, possibly 0). *line_r points into buf. */
enum linebuf_status linebuf_next(struct linebuf *lb, const char *buf, size_t len,
				 struct str *line_r, size_t *consumed_r);

#endif
