/* smtp_data.h - the DATA / BDAT content reader: a pure, resumable state
 * machine from wire bytes to stored message bytes (style rule 3).
 *
 * DATA (RFC 5321 4.1.1.4, 4.5.2): removes dot-stuffing and finds the end of
 * data, which is ONLY <CRLF>.<CRLF>: a dot line after or before a bare LF
 * never ends the message (SMTP smuggling, CVE-2023-51764 class) - the
 * previous line must have ended in CRLF and the dot line must end in CRLF.
 * BDAT (RFC 3030): the same conversion without stuffing or end detection;
 * the caller feeds exactly the chunk.
 *
 * Output uses LF line endings, as Maildir files do (Dovecot's default):
 * CRLF becomes LF. A bare LF is kept as a line end (Postfix's
 * "normalize"), a bare CR is kept as a byte; both are flagged so the caller
 * can refuse the message by policy. Lines over line_max octets (RFC 5321
 * 4.5.3.1.6: 998 + CRLF) and content over size_max are flagged too; past
 * size_max nothing more is output, but reading continues to the end so the
 * session stays in sync. */
#ifndef MP_SMTP_DATA_H
#define MP_SMTP_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

enum smtp_data_status {
	SMTP_DATA_MORE,         /* all input consumed, message continues */
	SMTP_DATA_END,          /* end of data seen; *consumed_r tells where */
};

struct smtp_data {
	int state;
	bool bdat;              /* no stuffing, no end marker */
	bool prev_crlf;         /* the previous line ended with CRLF */
	size_t line_len;
	size_t line_max;
	uint64_t size;          /* content bytes (LF endings), incl. dropped */
	uint64_t size_max;
	uint64_t lines;         /* line ends seen, for the CRLF size (W=) */
	bool bare_lf, bare_cr, long_line, too_big;
};

void smtp_data_init(struct smtp_data *d, bool bdat, size_t line_max, uint64_t size_max);
/* Consumes up to len bytes of in, appending content to out. */
enum smtp_data_status smtp_data_feed(struct smtp_data *d, const char *in, size_t len,
				     struct buf *out, size_t *consumed_r);
/* BDAT: the end of the last chunk - flushes a pending CR. */
void smtp_data_finish(struct smtp_data *d, struct buf *out);

#endif
