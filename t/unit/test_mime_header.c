/* test_mime_header.c - header blocks: fields, folding, lookup, broken lines
 * (Dovecot's rules), limits, LF and CRLF forms with exact offsets. */
#include "mime/mime.h"
#include "tap.h"

static int str_is(struct str s, const char *want, const char *what)
{
	int r = ok(s.len == strlen(want) && memcmp(s.p, want, s.len) == 0, "%s", what);
	if (!r)
		printf("#   got \"%.*s\"\n#  want \"%s\"\n", STR_FMT(s), want);
	return r;
}

static void test_basic(struct arena *a)
{
	const char *m = "From: Alice <a@example.org>\n"
			"Subject: hello\n"
			"  world\n"
			"X-Empty:\n"
			"Received: from a\n"
			"Received: from b\n"
			"\n"
			"body\n";
	struct mime_headers h;
	mime_headers_parse(a, m, 0, strlen(m), NULL, &h);
	is_int(h.count, 5, "five fields");
	is_int(h.body_offset, strstr(m, "body") - m, "body offset after the empty line");
	is_int(h.size, h.body_offset, "block size includes the empty line");
	is_int(h.vsize, h.size + 7, "vsize counts 7 bare LFs as CRLF");
	is_int(h.flags, 0, "no flags");
	str_is(h.v[0].name, "From", "name");
	str_is(h.v[0].value, "Alice <a@example.org>", "value");
	is_int(h.v[0].offset, 0, "first offset");
	is_int(h.v[0].size, 28, "first size incl. LF");
	str_is(h.v[1].raw, " hello\n  world", "raw keeps folding");
	str_is(h.v[1].value, "hello  world", "unfolded value keeps the WSP");
	is_int(h.v[1].offset, 28, "second offset");
	str_is(h.v[2].value, "", "empty value");
	const struct mime_header *f = mime_headers_get(&h, "SUBJECT");
	ok(f == &h.v[1], "case-insensitive lookup");
	ok(mime_headers_get(&h, "Cc") == NULL, "missing header");
	int n = 0;
	for (f = NULL; (f = mime_headers_next(&h, "received", f)) != NULL;)
		n++;
	is_int(n, 2, "all Received fields");
	f = mime_headers_next(&h, "received", NULL);
	str_is(f->value, "from a", "first Received first");
}

static void test_crlf(struct arena *a)
{
	const char *m = "Subject: a\r\n b\r\nTo: x@y\r\n\r\nbody\r\n";
	struct mime_headers h;
	mime_headers_parse(a, m, 0, strlen(m), NULL, &h);
	is_int(h.count, 2, "CRLF: two fields");
	str_is(h.v[0].raw, " a\r\n b", "CRLF: raw without the final CRLF");
	str_is(h.v[0].value, "a b", "CRLF: unfolded");
	is_int(h.v[0].size, 16, "CRLF: size incl. CRLF");
	str_is(h.v[1].value, "x@y", "CRLF: second value");
	is_int(h.body_offset, 27, "CRLF: body offset");
	is_int(h.vsize, h.size, "CRLF: vsize = size");
}

static void test_broken(struct arena *a)
{
	const char *m = "Subject: ok\n"
			"this line has no colon\n"
			"Bad Name: x\n"
			"Spaced : y\n"
			": no name\n"
			"To: z\n"
			"\n";
	struct mime_headers h;
	mime_headers_parse(a, m, 0, strlen(m), NULL, &h);
	is_int(h.count, 6, "broken lines kept as fields, parsing goes on");
	str_is(h.v[1].name, "this line has no colon", "no colon: the line is the name");
	ok(h.v[1].flags & MIME_HDR_BROKEN, "no colon flagged");
	str_is(h.v[1].value, "", "no colon: empty value");
	ok(h.v[2].flags & MIME_HDR_BROKEN, "space in name flagged");
	str_is(h.v[3].name, "Spaced", "WSP before colon trimmed");
	ok((h.v[3].flags & MIME_HDR_NAME_WSP) && !(h.v[3].flags & MIME_HDR_BROKEN),
	   "WSP before colon: obs syntax, not broken");
	ok(h.v[4].flags & MIME_HDR_BROKEN, "empty name flagged");
	str_is(mime_headers_get(&h, "to")->value, "z", "field after garbage found");
	ok(h.flags & MIME_HDR_BROKEN, "block flag");

	const char *c = " leading continuation\nA: b\n\n";
	mime_headers_parse(a, c, 0, strlen(c), NULL, &h);
	ok(h.count == 2 && (h.v[0].flags & MIME_HDR_BROKEN) && h.v[0].name.len == 0,
	   "continuation first in block is broken");

	const char *noend = "A: b\nC: d";
	mime_headers_parse(a, noend, 0, strlen(noend), NULL, &h);
	ok(h.count == 2 && (h.flags & MIME_HDRS_NO_END) && h.body_offset == strlen(noend),
	   "no empty line: block runs to the end");
	str_is(h.v[1].value, "d", "last field without line end");

	const char *empty = "\nbody";
	mime_headers_parse(a, empty, 0, strlen(empty), NULL, &h);
	ok(h.count == 0 && h.body_offset == 1 && h.flags == 0, "empty header block");
	mime_headers_parse(a, "", 0, 0, NULL, &h);
	ok(h.count == 0 && h.body_offset == 0, "empty input");

	const char *ws = "A: b\n \t\nC: d\n\n";
	mime_headers_parse(a, ws, 0, strlen(ws), NULL, &h);
	ok(h.count == 2 && h.body_offset == strlen(ws), "whitespace-only line continues a field");
}

static void test_limits(struct arena *a)
{
	struct mime_limits lim = mime_limits_default;
	lim.header_count_max = 2;
	lim.header_field_max = 10;
	lim.header_line_max = 12;
	const char *m = "A: 1\nB: 0123456789abcdef\nC: 3\nD: 4\n\nbody";
	struct mime_headers h;
	mime_headers_parse(a, m, 0, strlen(m), &lim, &h);
	is_int(h.count, 2, "count limit keeps the first two");
	ok(h.flags & MIME_HDRS_TOO_MANY, "count limit flagged");
	is_int(h.body_offset, strlen(m) - 4, "body found past skipped fields");
	ok(h.v[1].flags & MIME_HDR_TRUNCATED, "long field flagged");
	str_is(h.v[1].raw, " 0123456", "raw cut at field max (10 bytes of field)");
	ok(h.v[1].flags & MIME_HDR_LONG_LINE, "long line flagged");
	is_int(h.v[1].size, 20, "size stays the real one");
}

static void test_iter(struct arena *a)
{
	const char *m = "X: 1\nSubject: folded\n value\n\nbody";
	struct mime_header_iter it;
	struct mime_header h;
	mime_header_iter_init(&it, m, 0, strlen(m), NULL);
	ok(mime_header_next(&it, &h) == 1 && h.name.len == 1, "iter: first");
	ok(mime_header_next(&it, &h) == 1, "iter: second");
	str_is(mime_header_unfold(a, h.raw), "folded value", "unfold on demand");
	ok(mime_header_next(&it, &h) == 0 && it.body_offset == strlen(m) - 4, "iter: end");
	/* A header block inside a bigger buffer: offsets stay absolute. */
	const char *p = "junk--A: b\n\nrest";
	struct mime_headers hh;
	mime_headers_parse(a, p, 6, strlen(p), NULL, &hh);
	ok(hh.count == 1 && hh.v[0].offset == 6 && hh.offset == 6 && hh.body_offset == 12,
	   "offsets are from the buffer start");
}

int main(void)
{
	struct arena *a = arena_new();
	test_basic(a);
	test_crlf(a);
	test_broken(a);
	test_limits(a);
	test_iter(a);
	arena_destroy(&a);
	return tap_done();
}
