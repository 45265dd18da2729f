/* test_pop3_parse.c - POP3 command parsing, message numbers and the RETR /
 * TOP transform (CRLF, dot-stuffing, header + n body lines), the transform
 * fed whole, one byte at a time and in 5-byte chunks. */
#include "pop3/pop3.h"
#include "tap.h"

static void cmd(const char *line, int want_rc, const char *verb, const char *args)
{
	struct pop3_cmd c;
	int rc = pop3_cmd_parse(str_from_cstr(line), &c);
	ok(rc == want_rc && (rc != 0 || (c.verb.len == strlen(verb) &&
	   memcmp(c.verb.p, verb, c.verb.len) == 0 && c.args.len == strlen(args) &&
	   memcmp(c.args.p, args, c.args.len) == 0)), "parse \"%s\"", line);
}

static void stuff(const char *name, const char *in, bool top, uint64_t lines, const char *want)
{
	size_t chunks[] = { 0, 1, 5 };
	for (size_t i = 0; i < 3; i++) {
		struct pop3_stuff st;
		struct buf out = { 0 };
		size_t len = strlen(in);
		pop3_stuff_init(&st, top, lines);
		for (size_t pos = 0; pos < len;) {
			size_t n = chunks[i] && chunks[i] < len - pos ? chunks[i] : len - pos;
			pop3_stuff_feed(&st, in + pos, n, &out);
			pos += n;
		}
		pop3_stuff_finish(&st, &out);
		ok(strcmp(buf_ptr(&out), want) == 0, "%s (chunk %zu)", name, chunks[i]);
		if (strcmp(buf_ptr(&out), want) != 0)
			printf("#   got \"%s\"\n", buf_ptr(&out));
		buf_free(&out);
	}
}

int main(void)
{
	cmd("STAT", 0, "STAT", "");
	cmd("retr 1", 0, "retr", "1");
	cmd("PASS  two  spaces ", 0, "PASS", " two  spaces ");
	cmd("TOP 1 10", 0, "TOP", "1 10");
	cmd("", -1, "", "");
	cmd(" STAT", -1, "", "");
	cmd("STATS", -1, "", "");
	cmd("ST4T", -1, "", "");
	{
		struct pop3_cmd c;
		ok(pop3_cmd_parse((struct str){ "USER a\0b", 8 }, &c) < 0, "NUL refused");
		ok(pop3_cmd_parse((struct str){ "USER a\rb", 8 }, &c) < 0, "CR refused");
	}
	ok(pop3_msgno_parse(STR_LIT("1"), 3) == 1, "msg 1");
	ok(pop3_msgno_parse(STR_LIT("3"), 3) == 3, "msg 3 of 3");
	ok(pop3_msgno_parse(STR_LIT("4"), 3) == 0, "msg 4 of 3");
	ok(pop3_msgno_parse(STR_LIT("0"), 3) == 0, "msg 0");
	ok(pop3_msgno_parse(STR_LIT("01"), 3) == 0, "leading zero");
	ok(pop3_msgno_parse(STR_LIT("-1"), 3) == 0, "negative");
	ok(pop3_msgno_parse(STR_LIT("99999999999"), 3) == 0, "huge");
	ok(pop3_msgno_parse(STR_LIT(""), 3) == 0, "empty");
	{
		struct str w[2];
		ok(pop3_args_split(STR_LIT(" 1  2 "), w, 2) == 2 && w[1].len == 1, "split 2");
		ok(pop3_args_split(STR_LIT("1 2 3"), w, 2) == -1, "too many words");
		ok(pop3_args_split(STR_LIT(""), w, 2) == 0, "no words");
	}
	stuff("LF to CRLF", "a: b\n\nbody\n", false, 0, "a: b\r\n\r\nbody\r\n.\r\n");
	stuff("CRLF kept", "a: b\r\n\r\nbody\r\n", false, 0, "a: b\r\n\r\nbody\r\n.\r\n");
	stuff("dot-stuffing", "s: x\n\n.\n..a\n.b\nc.\n", false, 0,
	      "s: x\r\n\r\n..\r\n...a\r\n..b\r\nc.\r\n.\r\n");
	stuff("no final newline", "s: x\n\nend", false, 0, "s: x\r\n\r\nend\r\n.\r\n");
	stuff("final CR only", "s: x\n\nend\r", false, 0, "s: x\r\n\r\nend\r\n.\r\n");
	stuff("bare CR kept", "s: x\n\na\rb\n", false, 0, "s: x\r\n\r\na\rb\r\n.\r\n");
	stuff("empty message", "", false, 0, ".\r\n");
	stuff("8-bit bytes", "s: x\n\n\xc3\xbc\xff\n", false, 0, "s: x\r\n\r\n\xc3\xbc\xff\r\n.\r\n");
	stuff("TOP 0", "a: b\nc: d\n\nl1\nl2\n", true, 0, "a: b\r\nc: d\r\n\r\n.\r\n");
	stuff("TOP 1", "a: b\n\nl1\nl2\n", true, 1, "a: b\r\n\r\nl1\r\n.\r\n");
	stuff("TOP 2 CRLF", "a: b\r\n\r\n.l1\r\nl2\r\nl3\r\n", true, 2, "a: b\r\n\r\n..l1\r\nl2\r\n.\r\n");
	stuff("TOP past the end", "a: b\n\nl1", true, 9, "a: b\r\n\r\nl1\r\n.\r\n");
	stuff("TOP without body: the blank line still sent (RFC 1939 7)", "a: b\nc: d\n", true, 0, "a: b\r\nc: d\r\n\r\n.\r\n");
	stuff("TOP: CR-only line ends header", "a: b\r\n\r\nx\r\n", true, 0, "a: b\r\n\r\n.\r\n");
	return tap_done();
}
