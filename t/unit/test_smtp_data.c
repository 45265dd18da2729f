/* test_smtp_data.c - DATA/BDAT reader: dot-stuffing, the one true end
 * marker, smuggling variants, flags and limits; every case fed whole, one
 * byte at a time and in 3-byte chunks, with identical results. */
#include "smtp/smtp_data.h"
#include "tap.h"

struct result {
	char out[512];
	size_t consumed;
	int ended;
	struct smtp_data d;
};

static void run(const char *in, size_t len, size_t chunk, bool bdat, uint64_t size_max,
		struct result *r)
{
	struct buf out = { 0 };
	smtp_data_init(&r->d, bdat, 10, size_max);
	r->ended = 0;
	r->consumed = 0;
	for (size_t pos = 0; pos < len && !r->ended;) {
		size_t n = chunk && chunk < len - pos ? chunk : len - pos, used;
		if (smtp_data_feed(&r->d, in + pos, n, &out, &used) == SMTP_DATA_END)
			r->ended = 1;
		pos += used;
		r->consumed = pos;
	}
	if (bdat)
		smtp_data_finish(&r->d, &out);
	snprintf(r->out, sizeof(r->out), "%s", buf_ptr(&out));
	buf_free(&out);
}

static void check(const char *name, const char *in, int want_end, const char *want_out,
		  size_t want_consumed, int want_bare_lf)
{
	size_t chunks[] = { 0, 1, 3 };
	for (size_t i = 0; i < 3; i++) {
		struct result r;
		run(in, strlen(in), chunks[i], false, 1000, &r);
		ok(r.ended == want_end && strcmp(r.out, want_out) == 0 &&
		   (!want_end || r.consumed == want_consumed) && r.d.bare_lf == want_bare_lf,
		   "%s (chunk %zu)", name, chunks[i]);
		if (strcmp(r.out, want_out) != 0)
			printf("#   out \"%s\"\n#  want \"%s\"\n", r.out, want_out);
		if (r.ended != want_end || (want_end && r.consumed != want_consumed))
			printf("#   ended %d consumed %zu\n", r.ended, r.consumed);
	}
}

int main(void)
{
	check("simple", "a\r\nb\r\n.\r\nQUIT\r\n", 1, "a\nb\n", 9, 0);
	check("empty message", ".\r\n", 1, "", 3, 0);
	check("dot-stuffing removed", "..x\r\n..\r\n.\r\n", 1, ".x\n.\n", 12, 0);
	check("no end yet", "a\r\nb", 0, "a\nb", 0, 0);
	/* Smuggling: none of these end the message. */
	check("bare LF dot bare LF", "a\n.\nMAIL FROM:<x@y>\r\n", 0, "a\n.\nMAIL FROM:<x@y>\n", 0, 1);
	check("CRLF dot bare LF", "a\r\n.\nb\r\n", 0, "a\n.\nb\n", 0, 1);
	check("bare LF dot CRLF", "a\n.\r\nb\r\n", 0, "a\n.\nb\n", 0, 1);
	check("dot CR CR LF", "a\r\n.\r\r\nb\r\n", 0, "a\n.\r\nb\n", 0, 0);
	check("smuggled then real end", "a\n.\nX\r\n.\r\n", 1, "a\n.\nX\n", 10, 1);

	struct result r;
	run("a\rb\r\n.\r\n", 8, 1, false, 1000, &r);
	ok(r.ended && r.d.bare_cr && strcmp(r.out, "a\rb\n") == 0, "bare CR kept and flagged");
	run("0123456789\r\n01234567890\r\n.\r\n", 28, 0, false, 1000, &r);
	ok(r.ended && r.d.long_line, "line of 11 > line_max 10 flagged");
	run("0123456789\r\n.\r\n", 15, 0, false, 1000, &r);
	ok(r.ended && !r.d.long_line, "line of exactly line_max not flagged");
	run("aaaa\r\nbbbb\r\n.\r\n", 15, 2, false, 7, &r);
	ok(r.ended && r.d.too_big && strlen(r.out) <= 7, "size limit flags and stops output");
	is_int(r.d.size, 10, "size counts everything seen");
	run("a\r\nb\r\n.\r\n", 9, 0, false, 1000, &r);
	is_int(r.d.lines, 2, "line ends counted (for the CRLF size)");
	/* BDAT: no stuffing, no end marker, CRLF -> LF. */
	run("..x\r\n.\r\nend\r", 13, 1, true, 1000, &r);
	ok(!r.ended && strcmp(r.out, "..x\n.\nend\r") == 0 && r.d.bare_cr, "BDAT: raw, trailing CR flushed");
	return tap_done();
}
