/* test_mime_2047.c - RFC 2047 encoded-words and charset conversion:
 * adjacent words, split characters, invalid base64/QP, unknown charsets,
 * UTF-8 / ISO-8859-1 / Windows-1252 / iconv charsets. */
#include "mime/mime.h"
#include "tap.h"

static struct arena *A;

static void dec(const char *in, const char *want, unsigned want_flags, const char *what)
{
	unsigned flags = 0;
	struct str r = mime_2047_decode(A, str_from_cstr(in), &flags);
	int good = r.len == strlen(want) && memcmp(r.p, want, r.len) == 0;
	ok(good && flags == want_flags, "2047: %s", what);
	if (!good || flags != want_flags)
		printf("#   got \"%.*s\" flags %#x\n#  want \"%s\" flags %#x\n", STR_FMT(r), flags,
		       want, want_flags);
}

static void conv(const char *cs, const char *in, const char *want, unsigned want_flags,
		 const char *what)
{
	unsigned flags = 0;
	struct str r = mime_charset_to_utf8(A, str_from_cstr(cs), str_from_cstr(in), &flags);
	int good = r.len == strlen(want) && memcmp(r.p, want, r.len) == 0;
	ok(good && flags == want_flags, "charset: %s", what);
	if (!good || flags != want_flags)
		printf("#   got \"%.*s\" flags %#x\n#  want \"%s\" flags %#x\n", STR_FMT(r), flags,
		       want, want_flags);
}

#define H MIME_DEC_HAS_2047

static void test_2047(void)
{
	const char *plain = "no encoded words here";
	struct str in = str_from_cstr(plain);
	ok(mime_2047_decode(A, in, NULL).p == plain, "no words: the input itself (zero copy)");
	dec("=?utf-8?q?caf=C3=A9?=", "caf\xc3\xa9", H, "Q utf-8");
	dec("=?UTF-8?B?Y2Fmw6k=?=", "caf\xc3\xa9", H, "B utf-8, upper case");
	dec("=?iso-8859-1?q?caf=E9?=", "caf\xc3\xa9", H, "Q iso-8859-1");
	dec("=?windows-1252?q?=93quoted=94_=80?=", "\xe2\x80\x9cquoted\xe2\x80\x9d \xe2\x82\xac", H,
	    "Q windows-1252 quotes and euro, underscore is space");
	dec("Re: =?utf-8?q?a?= =?utf-8?q?b?=  =?utf-8?q?c?= end", "Re: abc end", H,
	    "whitespace between adjacent words dropped, kept around text");
	dec("=?utf-8?q?a?=\r\n =?utf-8?q?b?=", "ab", H, "folded whitespace between words dropped");
	dec("=?utf-8?q?a?= x =?utf-8?q?b?=", "a x b", H, "text between words kept");
	/* A UTF-8 character split across two B words (RFC 2047 forbids it,
	 * mailers do it): bytes are joined before conversion. */
	dec("=?utf-8?B?4oK=?= =?utf-8?B?rA==?=", "\xe2\x82\xac", H, "character split across words");
	dec("=?utf-8?q?=E2=82?= =?utf-8?q?=AC?=", "\xe2\x82\xac", H, "split in Q words too");
	dec("=?iso-8859-1?q?=E9?= =?utf-8?q?=C3=A9?=", "\xc3\xa9\xc3\xa9", H,
	    "different charsets converted separately");
	dec("=?utf-8*en?q?hi?=", "hi", H, "RFC 2231 language suffix");
	dec("=?koi8-r?b?8NLJ18XU?=", "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82", H,
	    "koi8-r through iconv");
	dec("=?x-unknown-cs?q?abc=FF?=", "abc\xef\xbf\xbd", H | MIME_DEC_UNKNOWN_CHARSET,
	    "unknown charset: bytes kept, made valid UTF-8");
	dec("=?x-unknown-cs?q?ab=C3=A9?=", "ab\xc3\xa9", H | MIME_DEC_UNKNOWN_CHARSET,
	    "unknown charset: valid UTF-8 bytes kept as they are");
	dec("=?utf-8?b?Y2Fm*w6k=?=", "caf\xc3\xa9", H | MIME_DEC_BAD_2047 | MIME_DEC_BAD_BASE64,
	    "invalid base64 byte skipped and flagged");
	dec("=?utf-8?b?YWJj?=", "abc", H, "base64 without padding need");
	dec("=?utf-8?b?YWI?=", "ab", H | MIME_DEC_BAD_2047 | MIME_DEC_BAD_BASE64,
	    "missing padding decoded, flagged");
	dec("=?utf-8?q?a=ZZb?=", "a=ZZb", H | MIME_DEC_BAD_2047 | MIME_DEC_BAD_QP,
	    "invalid QP escape kept literally");
	dec("=?utf-8?x?abc?=", "=?utf-8?x?abc?=", MIME_DEC_BAD_2047, "unknown encoding kept raw");
	dec("=?utf-8?q?a b?=", "=?utf-8?q?a b?=", MIME_DEC_BAD_2047, "space inside: not a word");
	dec("=?utf-8?q?unterminated", "=?utf-8?q?unterminated", MIME_DEC_BAD_2047,
	    "unterminated word kept raw");
	dec("x=?utf-8?q?y?=z", "xyz", H, "words inside text decoded (like Dovecot)");
	dec("=?utf-8?q?" "?=", "", H, "empty word");
	dec("=?=?utf-8?q?x?=", "=?x", H | MIME_DEC_BAD_2047, "garbage before a word");
	dec("=?utf-8?q?=C3?=", "\xef\xbf\xbd", H | MIME_DEC_BAD_CHARSET,
	    "truncated UTF-8 becomes U+FFFD");
	dec("caf\xc3\xa9 =?utf-8?q?x?=", "caf\xc3\xa9 x", H, "raw UTF-8 outside words kept");
}

static void test_charset(void)
{
	const char *ascii = "plain";
	struct str in = str_from_cstr(ascii);
	ok(mime_charset_to_utf8(A, STR_LIT("iso-8859-2"), in, NULL).p == ascii,
	   "ASCII in an ASCII-compatible charset: zero copy");
	conv("utf-8", "caf\xc3\xa9", "caf\xc3\xa9", 0, "valid UTF-8 kept");
	conv("UTF8", "a\xff" "b", "a\xef\xbf\xbd" "b", MIME_DEC_BAD_CHARSET, "invalid UTF-8 repaired");
	conv("utf-8", "\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", MIME_DEC_BAD_CHARSET,
	     "UTF-8 surrogate rejected");
	conv("utf-8", "\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd", MIME_DEC_BAD_CHARSET,
	     "overlong UTF-8 rejected");
	conv("ISO-8859-1", "\xe9t\xe9", "\xc3\xa9t\xc3\xa9", 0, "latin-1");
	conv("iso-8859-1", "\x80", "\xe2\x82\xac", 0, "latin-1 label read as windows-1252");
	conv("cp1252", "\x85\x99", "\xe2\x80\xa6\xe2\x84\xa2", 0, "cp1252 ellipsis, trademark");
	conv("", "\xe9", "\xc3\xa9", 0, "no charset = us-ascii, 8-bit read as windows-1252");
	conv("us-ascii", "caf\xc3\xa9", "caf\xc3\xa9", 0, "us-ascii that is UTF-8 kept");
	conv("iso-8859-15", "\xa4", "\xe2\x82\xac", 0, "iso-8859-15 euro through iconv");
	conv("iso-8859-2", "\xb1", "\xc4\x85", 0, "iso-8859-2");
	conv("gb2312", "\xc4\xe3\xba\xc3", "\xe4\xbd\xa0\xe5\xa5\xbd", 0, "gb2312 (as GB18030)");
	conv("shift_jis", "\x82\xa0", "\xe3\x81\x82", 0, "shift_jis (as CP932)");
	conv("iso-2022-jp", "\x1b$B$\"\x1b(B", "\xe3\x81\x82", 0, "iso-2022-jp (stateful)");
	struct str u16 = mime_charset_to_utf8(A, STR_LIT("utf-16le"), (struct str){ "a\0b\0", 4 }, NULL);
	ok(u16.len == 2 && memcmp(u16.p, "ab", 2) == 0, "utf-16: no ASCII shortcut");
	conv("utf-7", "+AOk-", "\xc3\xa9", 0, "utf-7: no ASCII shortcut");
	conv("euc-jp", "\xa4", "\xef\xbf\xbd", MIME_DEC_BAD_CHARSET, "truncated multibyte");
	conv("bogus-charset", "a\xe9", "a\xef\xbf\xbd", MIME_DEC_UNKNOWN_CHARSET,
	     "unknown charset: made valid UTF-8");
	conv("utf-8//TRANSLIT", "a\xe9", "a\xef\xbf\xbd", MIME_DEC_UNKNOWN_CHARSET,
	     "iconv suffixes never reach iconv");
	conv("unknown-8bit", "x\xc3\xa9", "x\xc3\xa9", MIME_DEC_UNKNOWN_CHARSET, "unknown-8bit");
	ok(mime_utf8_valid("\xf0\x9f\x98\x80", 4) && !mime_utf8_valid("\xf4\x90\x80\x80", 4),
	   "utf8_valid: 4-byte ok, past U+10FFFF not");
}

int main(void)
{
	A = arena_new();
	test_2047();
	test_charset();
	arena_destroy(&A);
	return tap_done();
}
