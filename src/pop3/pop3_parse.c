/* pop3_parse.c - pure POP3 parsing: command lines, message numbers, and
 * the LF -> CRLF + dot-stuffing transform for RETR/TOP (RFC 1939 3, 7). */
#include "pop3.h"
#include "core/util.h"

#include <string.h>

int pop3_cmd_parse(struct str line, struct pop3_cmd *cmd)
{
	for (size_t i = 0; i < line.len; i++)
		if (line.p[i] == '\0' || line.p[i] == '\r' || line.p[i] == '\n')
			return -1;
	size_t v = 0;
	while (v < line.len && line.p[v] != ' ')
		v++;
	if (v == 0 || v > POP3_VERB_MAX)
		return -1;
	for (size_t i = 0; i < v; i++) {
		char ch = line.p[i];
		if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z')))
			return -1;
	}
	cmd->verb = (struct str){ line.p, v };
	cmd->args = v < line.len ? (struct str){ line.p + v + 1, line.len - v - 1 }
				 : (struct str){ line.p + v, 0 };
	return 0;
}

int pop3_args_split(struct str args, struct str *words, int max)
{
	int n = 0;
	size_t i = 0;
	while (i < args.len) {
		while (i < args.len && args.p[i] == ' ')
			i++;
		if (i == args.len)
			break;
		size_t start = i;
		while (i < args.len && args.p[i] != ' ')
			i++;
		if (n == max)
			return -1;
		words[n++] = (struct str){ args.p + start, i - start };
	}
	return n;
}

uint32_t pop3_msgno_parse(struct str s, uint32_t count)
{
	uint64_t v;
	if (s.len == 0 || s.len > 10 || s.p[0] == '0' || util_parse_uint(s.p, s.len, UINT32_MAX, &v) != 0)
		return 0;
	return v >= 1 && v <= count ? (uint32_t)v : 0;
}

void pop3_stuff_init(struct pop3_stuff *st, bool top, uint64_t body_lines)
{
	memset(st, 0, sizeof(*st));
	st->blank = true;
	st->top = top;
	st->body_lines = body_lines;
}

/* At the end of a line: the header ends at the first blank line; in the
 * body, TOP counts lines down. */
static void pop3_stuff_eol(struct pop3_stuff *st)
{
	if (!st->in_body) {
		if (st->blank) {
			st->in_body = true;
			if (st->top && st->body_lines == 0)
				st->done = true;
		}
	} else if (st->top && --st->body_lines == 0) {
		st->done = true;
	}
	st->mid_line = false;
	st->blank = true;
	st->cr = false;
}

/* The first byte of a line: dot-stuffing and blank-line detection. */
static size_t pop3_stuff_bol(struct pop3_stuff *st, char ch, char *w)
{
	size_t n = 0;
	if (ch == '\n') {
		w[n++] = '\r';
		w[n++] = '\n';
		pop3_stuff_eol(st);
		return n;
	}
	if (ch == '.')
		w[n++] = '.';
	w[n++] = ch;
	st->blank = ch == '\r';
	st->cr = ch == '\r';
	st->mid_line = true;
	return n;
}

void pop3_stuff_feed(struct pop3_stuff *st, const char *in, size_t len, struct buf *out)
{
	if (st->done || len == 0)
		return;
	/* Worst case: every byte a bare LF (2 bytes) or a line of "." (2). */
	char *w = buf_reserve(out, len * 2);
	size_t n = 0, i = 0;
	while (i < len && !st->done) {
		if (!st->mid_line) {
			n += pop3_stuff_bol(st, in[i++], w + n);
			continue;
		}
		/* Inside a line: copy up to the LF in one go. */
		const char *lf = memchr(in + i, '\n', len - i);
		size_t run = (lf ? (size_t)(lf - in) : len) - i;
		if (run > 0) {
			memcpy(w + n, in + i, run);
			n += run;
			st->blank = false;
			st->cr = in[i + run - 1] == '\r';
			i += run;
		}
		if (lf != NULL) {
			i++;
			if (!st->cr)
				w[n++] = '\r';
			w[n++] = '\n';
			pop3_stuff_eol(st);
		}
	}
	buf_commit(out, n);
}

void pop3_stuff_finish(struct pop3_stuff *st, struct buf *out)
{
	if (st->mid_line && !st->done)
		buf_append(out, st->cr ? "\n" : "\r\n", st->cr ? 1 : 2);
	/* RFC 1939 7: TOP sends the headers, "the blank line separating the
	 * headers from the body", then the lines: even when the message has
	 * no body, hence no blank line of its own. */
	if (st->top && !st->in_body && !st->done)
		buf_append(out, "\r\n", 2);
	buf_append(out, ".\r\n", 3);
}
