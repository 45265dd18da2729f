/* smtp_data.c - DATA/BDAT content state machine (see smtp_data.h). */
#include "smtp_data.h"

enum {
	ST_BOL,         /* beginning of a line */
	ST_DOT,         /* "." at the beginning of a line (DATA only) */
	ST_DOT_CR,      /* ".\r" at the beginning of a line */
	ST_TEXT,        /* inside a line */
	ST_CR,          /* CR seen, waiting for LF */
};

void smtp_data_init(struct smtp_data *d, bool bdat, size_t line_max, uint64_t size_max)
{
	*d = (struct smtp_data){ .state = ST_BOL, .bdat = bdat, .prev_crlf = true,
				 .line_max = line_max, .size_max = size_max };
}

static void data_emit(struct smtp_data *d, struct buf *out, const char *p, size_t n)
{
	d->size += n;
	if (d->size > d->size_max) {
		d->too_big = true;
		return;
	}
	buf_append(out, p, n);
}

static void data_text(struct smtp_data *d, struct buf *out, char c)
{
	if (++d->line_len > d->line_max)
		d->long_line = true;
	data_emit(d, out, &c, 1);
	d->state = ST_TEXT;
}

static void data_eol(struct smtp_data *d, struct buf *out, bool crlf)
{
	if (!crlf)
		d->bare_lf = true;
	data_emit(d, out, "\n", 1);
	d->lines++;
	d->line_len = 0;
	d->prev_crlf = crlf;
	d->state = ST_BOL;
}

/* One byte; returns true at the end of data. */
static bool data_byte(struct smtp_data *d, struct buf *out, char c)
{
	switch (d->state) {
	case ST_BOL:
		if (c == '.' && !d->bdat) {
			d->state = ST_DOT;
			return false;
		}
		/* fall through */
	case ST_TEXT:
		if (c == '\r')
			d->state = ST_CR;
		else if (c == '\n')
			data_eol(d, out, false);
		else
			data_text(d, out, c);
		return false;
	case ST_DOT:
		if (c == '\r') {
			d->state = ST_DOT_CR;
		} else if (c == '\n') {
			/* ".\n" is not an end marker: keep the line as it came. */
			data_text(d, out, '.');
			data_eol(d, out, false);
		} else {
			data_text(d, out, c);   /* a stuffed dot: dropped */
		}
		return false;
	case ST_DOT_CR:
		if (c == '\n' && d->prev_crlf)
			return true;
		data_text(d, out, '.');
		d->state = ST_CR;
		return data_byte(d, out, c);
	case ST_CR:
		if (c == '\n') {
			data_eol(d, out, true);
			return false;
		}
		d->bare_cr = true;
		data_text(d, out, '\r');
		return data_byte(d, out, c);
	}
	return false;
}

/* Length of the run of ordinary bytes at in (no CR, no LF). */
static size_t data_run(const char *in, size_t len)
{
	size_t n = 0;
	while (n < len && in[n] != '\r' && in[n] != '\n')
		n++;
	return n;
}

enum smtp_data_status smtp_data_feed(struct smtp_data *d, const char *in, size_t len,
				     struct buf *out, size_t *consumed_r)
{
	for (size_t i = 0; i < len; i++) {
		if (d->state == ST_TEXT) {
			/* Fast path: copy a run of text in one go. */
			size_t n = data_run(in + i, len - i);
			if (n > 0) {
				d->line_len += n;
				if (d->line_len > d->line_max)
					d->long_line = true;
				data_emit(d, out, in + i, n);
				i += n;
				if (i == len)
					break;
			}
		}
		if (data_byte(d, out, in[i])) {
			*consumed_r = i + 1;
			return SMTP_DATA_END;
		}
	}
	*consumed_r = len;
	return SMTP_DATA_MORE;
}

void smtp_data_finish(struct smtp_data *d, struct buf *out)
{
	if (d->state == ST_CR) {
		d->bare_cr = true;
		data_text(d, out, '\r');
	}
}
