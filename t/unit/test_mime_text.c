/* test_mime_text.c - transfer decoders (lenient base64, quoted-printable),
 * Content-Type parameters (RFC 2231), HTML to text with links, URL
 * extraction, and a part's text end to end. */
#include "mime/mime.h"
#include "tap.h"

static struct arena *A;

static int str_is(struct str s, const char *want, const char *what)
{
	int r = ok(s.len == strlen(want) && memcmp(s.p, want, s.len) == 0, "%s", what);
	if (!r)
		printf("#   got \"%.*s\"\n#  want \"%s\"\n", STR_FMT(s), want);
	return r;
}

static void b64(const char *in, const char *want, unsigned want_flags, const char *what)
{
	char out[256];
	unsigned flags = 0;
	size_t n = mime_base64_decode(in, strlen(in), out, &flags);
	str_is((struct str){ out, n }, want, what);
	is_int(flags, want_flags, "%s: flags", what);
}

static void qp(const char *in, const char *want, unsigned want_flags, const char *what)
{
	char out[256];
	unsigned flags = 0;
	size_t n = mime_qp_decode(in, strlen(in), out, false, &flags);
	str_is((struct str){ out, n }, want, what);
	is_int(flags, want_flags, "%s: flags", what);
}

static void test_decoders(void)
{
	b64("aGVsbG8gd29ybGQ=", "hello world", 0, "base64");
	b64("aGVs\nbG8g\r\nd29y bGQ=\n", "hello world", 0, "base64 with line breaks and spaces");
	b64("aGVs*bG8=", "hello", MIME_DEC_BAD_BASE64, "base64 invalid byte skipped");
	b64("aGVsbG8", "hello", MIME_DEC_BAD_BASE64, "base64 missing padding");
	b64("aGk=aGk=", "hihi", 0, "concatenated base64 chunks");
	b64("a", "", MIME_DEC_BAD_BASE64, "lone sextet");
	b64("", "", 0, "empty");
	qp("caf=C3=A9 =3D ok", "caf\xc3\xa9 = ok", 0, "QP escapes");
	qp("soft=\nbreak", "softbreak", 0, "soft line break");
	qp("soft=  \r\nbreak", "softbreak", 0, "soft break with trailing space and CRLF");
	qp("trailing   \nspace\t\n", "trailing\nspace\n", 0, "trailing whitespace removed");
	qp("keep=20\n", "keep \n", 0, "encoded trailing space kept");
	qp("crlf  \r\nnext", "crlf\r\nnext", 0, "CRLF hard break kept");
	qp("bad =ZZ and =4", "bad =ZZ and =4", MIME_DEC_BAD_QP, "invalid escapes literal");
	qp("lower =c3=a9", "lower \xc3\xa9", 0, "lower-case hex accepted");
	qp("end=", "end", 0, "soft break at the end");
	char out[16];
	size_t n = mime_qp_decode("a_b=5F", 6, out, true, NULL);
	str_is((struct str){ out, n }, "a b_", "Q: underscore is a space");
}

static void test_params(void)
{
	struct mime_ctype c;
	is_int(mime_ctype_parse(A, STR_LIT("Text/HTML; charset=\"UTF-8\" (comment); format=flowed;"), &c),
	       0, "ctype parses");
	str_is(c.type, "Text", "type as written");
	str_is(c.subtype, "HTML", "subtype");
	ok(c.nparams == 2 && c.flags == 0, "two params, trailing ';' fine");
	str_is(mime_param_get(&c, "CHARSET")->value, "UTF-8", "param lookup");
	mime_ctype_parse(A, STR_LIT("application/octet-stream; name=my file.pdf"), &c);
	str_is(mime_param_get(&c, "name")->value, "my file.pdf", "unquoted value with a space");
	mime_ctype_parse(A, STR_LIT("text/plain; delsp; charset=us-ascii"), &c);
	ok(c.nparams == 2 && mime_param_get(&c, "delsp")->value.len == 0, "param without value");
	is_int(mime_ctype_parse(A, STR_LIT("text"), &c), -1, "no subtype: -1");
	is_int(mime_ctype_parse(A, STR_LIT(""), &c), -1, "empty: -1");
	mime_ctype_parse(A, STR_LIT("text/html charset=utf-8"), &c);
	ok(c.nparams == 1 && (c.flags & MIME_PARAM_BAD_SYNTAX), "missing ';' tolerated, flagged");
	mime_ctype_parse(A, STR_LIT("a/b; title*=us-ascii'en-us'This%20is%20%2A%2A%2Afun%2A%2A%2A"), &c);
	str_is(mime_param_get(&c, "title")->value, "This is ***fun***", "RFC 2231 example 4");
	mime_ctype_parse(A, STR_LIT("a/b; title*2=\"c\"; title*0=\"a\"; title*1=\"b\""), &c);
	str_is(mime_param_get(&c, "title")->value, "abc", "continuations in any order");
	ok(!mime_param_get(&c, "title")->extended, "plain continuations are not extended");
	mime_ctype_parse(A, STR_LIT("a/b; t*0=\"a\"; t*2=\"c\""), &c);
	ok((c.flags & MIME_PARAM_BAD_2231) && c.nparams == 1, "missing section flagged");
	str_is(mime_param_get(&c, "t")->value, "a", "sections up to the gap");
	mime_ctype_parse(A, STR_LIT("a/b; name=\"plain.txt\"; name*=iso-8859-1''%E9t%E9.txt"), &c);
	str_is(mime_param_get(&c, "name")->value, "\xc3\xa9t\xc3\xa9.txt",
	       "extended value wins over a plain duplicate");
	mime_ctype_parse(A, STR_LIT("a/b; x=\"unterminated"), &c);
	ok((c.flags & MIME_PARAM_BAD_SYNTAX) && c.nparams == 1, "unterminated quote");
	mime_disposition_parse(A, STR_LIT("attachment; filename=\"a\\\"b.txt\""), &c);
	str_is(c.type, "attachment", "disposition type");
	str_is(mime_param_get(&c, "filename")->value, "a\"b.txt", "quoted-pair in value");
}

static void test_html(void)
{
	struct mime_text t;
	mime_html_to_text(A, STR_LIT("<html><head><title>T</title><style>p{color:red}</style>"
				     "<script>var a='<b>';</script></head>"
				     "<body><p>Hello&nbsp;&amp; welcome!</p><!-- hidden -->"
				     "<div>Line&#32;two&#x21;</div>a<br>b<br/><br>c"
				     "<p>Click <A HREF='https://bank.example/login?a=1&amp;b=2'>"
				     "your   bank</a> now</p>fr&eacute;e 5 &lt; 6 &unknown; &copy;"
				     "</body></html>"), &t);
	str_is(t.text, "T\nHello & welcome!\nLine two!\na\nb\n\nc\nClick your bank now\n"
	       "fr\xc3\xa9" "e 5 < 6 &unknown; \xc2\xa9", "HTML to text");
	ok(t.html && t.nlinks == 1, "one link");
	if (t.nlinks == 1) {
		str_is(t.links[0].href, "https://bank.example/login?a=1&b=2", "href entity-decoded");
		str_is(t.links[0].text, "your bank", "anchor text");
	}
	mime_html_to_text(A, STR_LIT("fr&shy;ee m&#8203;oney a < b <3 <a href=x>unclosed"), &t);
	str_is(t.text, "free money a < b <3 unclosed", "zero-width chars dropped, stray '<' kept");
	ok(t.nlinks == 1 && t.links[0].text.len == 8, "unclosed anchor runs to the end");
	mime_html_to_text(A, STR_LIT("<script>never closed <p>x"), &t);
	ok(t.text.len == 0, "unclosed script hides the rest");
	mime_html_to_text(A, STR_LIT("<a href=\"http://a.example\">one</a><a href=\"http://b.example\">"
				     "two</a><td>x</td><td>y</td>&#0;&#99999999;"), &t);
	str_is(t.text, "onetwo x y \xef\xbf\xbd\xef\xbf\xbd", "cells spaced, bad references U+FFFD");
	ok(t.nlinks == 2, "two links");
}

static void urls(const char *text, const char *want, const char *what)
{
	struct mime_url *u = NULL;
	size_t n = 0;
	mime_urls_find(A, str_from_cstr(text), 100, &u, &n);
	char got[1024] = "";
	size_t len = 0;
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(got + len, sizeof(got) - len, "%s%.*s [%.*s]", i ? " " : "",
					STR_FMT(u[i].url), STR_FMT(u[i].host));
	is_str(got, want, "urls: %s", what);
}

static void test_urls(void)
{
	urls("Visit http://example.com/a?b=c, or (https://user:pw@Sub.Example.org:8080/x).",
	     "http://example.com/a?b=c [example.com] https://user:pw@Sub.Example.org:8080/x "
	     "[Sub.Example.org]", "schemes, trailing punctuation, userinfo, port");
	urls("see www.example.net/page. and mailto:joe@example.com?subject=hi",
	     "www.example.net/page [www.example.net] mailto:joe@example.com?subject=hi [example.com]",
	     "www. and mailto");
	urls("http://en.wikipedia.org/wiki/Foo_(bar) end", "http://en.wikipedia.org/wiki/Foo_(bar) "
	     "[en.wikipedia.org]", "balanced parenthesis kept");
	urls("<http://a.example/x>\"ftp://b.example\"", "http://a.example/x [a.example] "
	     "ftp://b.example [b.example]", "angle brackets and quotes end URLs");
	urls("http:\\\\evil.example\\path", "", "backslashes are not http:// in text");
	urls("notwww.example.com xhttp://a.b time: 10:20 a.b.c", "", "no false positives");
	urls("http://[2001:db8::1]:80/ HTTP://UPPER.example", "http://[2001:db8::1]:80/ [[2001:db8::1]] "
	     "HTTP://UPPER.example [UPPER.example]", "IPv6 literal, upper-case scheme");
	struct mime_url u;
	ok(mime_url_parse(STR_LIT("https:\\\\evil.example\\x"), &u) == 0 && u.host.len == 12,
	   "href with backslashes: host found like browsers do");
	ok(mime_url_parse(STR_LIT("/relative/link"), &u) == -1, "relative href: -1");
	ok(mime_url_parse(STR_LIT("javascript:alert(1)"), &u) == 0 && u.host.len == 0 &&
	   u.scheme.len == 10, "javascript: scheme, no host");
	struct mime_url *v = NULL;
	size_t n = 0;
	mime_urls_find(A, STR_LIT("http://a.x http://b.x http://c.x"), 2, &v, &n);
	is_int(n, 2, "max respected");
}

static void test_part_text(void)
{
	const char *m = "Content-Type: text/plain; charset=windows-1252\n"
			"Content-Transfer-Encoding: quoted-printable\n\n"
			"=93Hi=94\r\nsecond=\r\n line\r\n";
	struct mime_message msg;
	struct mime_text t;
	mime_parse(A, m, strlen(m), NULL, &msg);
	mime_part_text(A, &msg, msg.root, &t);
	str_is(t.text, "\xe2\x80\x9cHi\xe2\x80\x9d\nsecond line\n", "QP cp1252 text, CRLF made LF");
	const char *b = "Content-Type: text/plain; charset=utf-8\n"
			"Content-Transfer-Encoding: base64\n\nw6k*\n";
	mime_parse(A, b, strlen(b), NULL, &msg);
	mime_part_text(A, &msg, msg.root, &t);
	ok(t.text.len == 2 && (t.flags & MIME_DEC_BAD_BASE64), "bad base64 flagged in text");
	const char *h = "Content-Type: text/html\n\n<html><head><META http-equiv=\"Content-Type\" "
			"content=\"text/html; CHARSET=iso-8859-2\"></head><body>\xb1</body></html>\n";
	mime_parse(A, h, strlen(h), NULL, &msg);
	mime_part_text(A, &msg, msg.root, &t);
	str_is(t.text, "\xc4\x85", "HTML without charset param: <meta> charset used");
	const char *u = "Content-Type: text/plain; charset=x-klingon\n"
			"Content-Transfer-Encoding: x-weird\n\nabc\xff\n";
	mime_parse(A, u, strlen(u), NULL, &msg);
	mime_part_text(A, &msg, msg.root, &t);
	ok((t.flags & MIME_DEC_UNKNOWN_CHARSET) && (t.flags & MIME_DEC_UNKNOWN_CTE) &&
	   t.text.len == 7, "unknown charset and CTE: raw bytes made valid UTF-8");
}

int main(void)
{
	A = arena_new();
	test_decoders();
	test_params();
	test_html();
	test_urls();
	test_part_text();
	arena_destroy(&A);
	return tap_done();
}
