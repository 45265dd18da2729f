/* linebuf.c - bounded line splitting (see linebuf.h). */
#include "linebuf.h"

#include <string.h>

void linebuf_init(struct linebuf *lb, size_t max)
{
	lb->max = max < 3 ? 3 : max;
	lb->skipping = false;
}

enum linebuf_status linebuf_next(struct linebuf *lb, const char *buf, size_t len,
				 struct str *line_r, size_t *consumed_r)
{
	/* The terminator may legitimately sit at offset max - 1 (the LF of a
	 * line of exactly max bytes), so look that far and no further. */
	size_t scan = len < lb->max ? len : lb->max;
	const char *lf = memchr(buf, '\n', lb->skipping ? len : scan);
	*line_r = (struct str){ buf, 0 };
	if (lb->skipping) {
		if (lf == NULL) {
			*consumed_r = len;
			return LINEBUF_AGAIN;
		}
		lb->skipping = false;
		*consumed_r = (size_t)(lf - buf) + 1;
		return LINEBUF_TOOLONG;
	}
	if (lf == NULL) {
		if (len < lb->max) {
			*consumed_r = 0;
			return LINEBUF_AGAIN;
		}
		/* Overlong: its end may already be buffered past the window. */
		lb->skipping = true;
		return linebuf_next(lb, buf, len, line_r, consumed_r);
	}
	size_t n = (size_t)(lf - buf);
	*consumed_r = n + 1;
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	line_r->len = n;
	return LINEBUF_LINE;
}
