/* test_mime_part.c - the part tree: real-world shaped messages (plain,
 * alternative with QP and base64, nested mixed with RFC 2231 and RFC 2047
 * filenames, message/rfc822, digest), broken structure (missing or wrong
 * boundary, missing close delimiter, prefix boundaries, depth and part
 * limits) in LF and CRLF forms, with every range checked exactly. */
#include "mime/mime.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static struct arena *A;

static int str_is(struct str s, const char *want, const char *what)
{
	int r = ok(s.len == strlen(want) && memcmp(s.p, want, s.len) == 0, "%s", what);
	if (!r)
		printf("#   got \"%.*s\"\n#  want \"%s\"\n", STR_FMT(s), want);
	return r;
}

/* Offset of the n-th (1-based) occurrence of needle. */
static size_t at(const char *m, const char *needle, int n)
{
	const char *p = m - 1;
	while (n-- > 0) {
		p = strstr(p + 1, needle);
		if (p == NULL) {
			printf("# test bug: \"%s\" not found\n", needle);
			exit(2);
		}
	}
	return (size_t)(p - m);
}

/* Ranges of every part lie inside the message and children inside their
 * parent's body, in order; the preorder array matches the tree. */
static int tree_ok(const struct mime_message *m)
{
	for (unsigned i = 0; i < m->nparts; i++) {
		const struct mime_part *p = m->parts[i];
		if (p->index != i || p->hdr.offset + p->hdr.size != p->body_offset ||
		    p->body_offset + p->body_size > m->len)
			return 0;
		size_t prev_end = p->body_offset;
		unsigned n = 0;
		for (const struct mime_part *c = p->children; c; c = c->next, n++) {
			if (c->parent != p || c->depth != p->depth + 1 || c->hdr.offset < prev_end ||
			    c->body_offset + c->body_size > p->body_offset + p->body_size)
				return 0;
			prev_end = c->body_offset + c->body_size;
		}
		if (n != p->nchildren)
			return 0;
	}
	return 1;
}

static void body_is(const struct mime_message *m, const struct mime_part *p, const char *want,
		    const char *what)
{
	str_is((struct str){ m->data + p->body_offset, p->body_size }, want, what);
}

static void test_plain(void)
{
	const char *m = "From: a@example.org\nSubject: hi\n\nHello\nWorld\n";
	struct mime_message msg;
	mime_parse(A, m, strlen(m), NULL, &msg);
	ok(msg.nparts == 1 && msg.root == msg.parts[0] && tree_ok(&msg), "plain: one part");
	const struct mime_part *r = msg.root;
	is_int(r->hdr.offset, 0, "plain: header at 0");
	is_int(r->body_offset, at(m, "Hello", 1), "plain: body offset");
	is_int(r->body_size, 12, "plain: body size");
	is_int(r->body_lines, 2, "plain: body lines");
	is_int(r->body_vsize, 14, "plain: vsize with CRLF");
	ok(mime_part_is_type(r, "text", "plain") && r->charset.len == 0 && r->enc == MIME_ENC_7BIT,
	   "plain: default text/plain 7bit");
	ok(msg.flags == 0, "plain: no flags");
	ok(mime_part_is_text(r), "plain: is text");
	str_is(mime_headers_get(&r->hdr, "subject")->value, "hi", "plain: header lookup");
}

static const char *alt_msg =
	"From: Shop <news@shop.example>\n"
	"To: bob@example.org\n"
	"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\n"
	"MIME-Version: 1.0\n"
	"Content-Type: multipart/alternative;\n"
	" boundary=\"b1\"\n"
	"\n"
	"This is a multi-part message in MIME format.\n"
	"--b1\n"
	"Content-Type: text/plain; charset=iso-8859-1\n"
	"Content-Transfer-Encoding: quoted-printable\n"
	"\n"
	"Gr=FC=DFe aus M=FCnchen, soft=\n"
	"break. Visit http://shop.example/deal?id=3D1 now.\n"
	"--b1\n"
	"Content-Type: text/html; charset=\"utf-8\"\n"
	"Content-Transfer-Encoding: base64\n"
	"\n"
	/* <p>Hi <a href="http://evil.example/x">shop.example</a></p> */
	"PHA+SGkgPGEgaHJlZj0iaHR0cDovL2V2aWwuZXhhbXBsZS94Ij5zaG9wLmV4YW1wbGU8L2E+PC9w\n"
	"Pg==\n"
	"--b1--\n"
	"epilogue\n";

static void alt_check(const char *m, const char *nl, const char *what)
{
	struct mime_message msg;
	mime_parse(A, m, strlen(m), NULL, &msg);
	const struct mime_part *r = msg.root, *t, *h;
	ok(tree_ok(&msg) && msg.nparts == 3 && r->nchildren == 2 && msg.flags == 0,
	   "%s: three parts, no flags", what);
	t = r->children;
	h = t->next;
	ok(mime_part_is_type(r, "multipart", "alternative"), "%s: root type", what);
	str_is(r->boundary, "b1", "boundary param");
	char needle[64];
	snprintf(needle, sizeof(needle), "%s--b1%s", nl, nl);
	is_int(r->body_offset, at(m, "This is", 1), "root body offset");
	is_int(r->body_size, strlen(m) - r->body_offset, "root body runs to the end");
	is_int(t->hdr.offset, at(m, needle, 1) + strlen(needle), "text header offset");
	is_int(t->body_offset, at(m, "Gr=FC", 1), "text body offset");
	is_int(t->body_offset + t->body_size, at(m, needle, 2), "text body ends before the line end");
	is_int(t->body_lines, 1, "text body lines (the last line end is the delimiter's)");
	ok(t->enc == MIME_ENC_QP && mime_part_is_type(t, "TEXT", "Plain"), "text: QP text/plain");
	str_is(t->charset, "iso-8859-1", "text: charset");
	is_int(h->body_offset, at(m, "PHA+", 1), "html body offset");
	snprintf(needle, sizeof(needle), "%s--b1--", nl);
	is_int(h->body_offset + h->body_size, at(m, needle, 1), "html body end");
	ok(h->enc == MIME_ENC_BASE64 && h->depth == 1 && h->index == 2, "html: base64, depth, index");
	str_is(h->charset, "utf-8", "quoted charset unquoted");

	struct mime_text tx;
	mime_part_text(A, &msg, t, &tx);
	str_is(tx.text, "Gr\xc3\xbc\xc3\x9f" "e aus M\xc3\xbcnchen, softbreak. Visit "
	       "http://shop.example/deal?id=1 now.", "QP + latin-1 decoded to UTF-8");
	ok(!tx.html && tx.flags == 0, "text: no flags");
	mime_part_text(A, &msg, h, &tx);
	str_is(tx.text, "Hi shop.example", "base64 HTML to text");
	ok(tx.html && tx.nlinks == 1, "one link");
	if (tx.nlinks == 1) {
		str_is(tx.links[0].href, "http://evil.example/x", "link href");
		str_is(tx.links[0].text, "shop.example", "link text (phishing check material)");
	}
	struct mime_url *urls = NULL;
	size_t n = 0;
	mime_text_urls(A, &tx, 10, &urls, &n);
	ok(n == 1 && (urls[0].flags & MIME_URL_HREF), "href URL");
	if (n == 1)
		str_is(urls[0].host, "evil.example", "href host");
	struct str subj = mime_2047_decode(A, mime_headers_get(&r->hdr, "subject")->value, NULL);
	str_is(subj, "Gr\xc3\xbc\xc3\x9f" "e", "subject decoded");
}

/* The same message with CRLF line ends. */
static char *to_crlf(const char *m)
{
	size_t n = strlen(m);
	char *c = malloc(2 * n + 1), *w = c;
	for (const char *p = m; *p; p++) {
		if (*p == '\n')
			*w++ = '\r';
		*w++ = *p;
	}
	*w = '\0';
	return c;
}

static void test_alternative(void)
{
	alt_check(alt_msg, "\n", "LF");
	char *c = to_crlf(alt_msg);
	alt_check(c, "\r\n", "CRLF");
	struct mime_message msg;
	mime_parse(A, c, strlen(c), NULL, &msg);
	ok(msg.root->body_vsize == msg.root->body_size &&
	   msg.root->hdr.vsize == msg.root->hdr.size, "CRLF: vsize = size");
	free(c);
}

static const char *mixed_msg =
	"From: a@example.org\n"
	"Content-Type: multipart/mixed; boundary=\"=_outer\"\n"
	"\n"
	"--=_outer\n"
	"Content-Type: multipart/alternative; boundary=\"=_inner\"\n"
	"\n"
	"--=_inner\n"
	"Content-Type: text/plain\n"
	"\n"
	"plain\n"
	"--=_inner\n"
	"Content-Type: text/html\n"
	"\n"
	"<b>html</b>\n"
	"--=_inner--\n"
	"\n"
	"--=_outer\n"
	"Content-Type: application/pdf; name=\"fallback.pdf\"\n"
	"Content-Disposition: attachment;\n"
	" filename*0*=utf-8''%E2%82%AC%20report;\n"
	" filename*1=\" 2024.pdf\"\n"
	"Content-Transfer-Encoding: base64\n"
	"Content-ID: <pdf@example>\n"
	"Content-Description: The report\n"
	"Content-Language: en, de\n"
	"\n"
	"JVBERi0xLjQK\n"
	"--=_outer\n"
	"Content-Type: image/png; name=\"=?utf-8?q?Bild_=C3=BC.png?=\"\n"
	"Content-Disposition: inline\n"
	"\n"
	"iVBORw0KGgo=\n"
	"--=_outer--\n";

static void test_mixed(void)
{
	const char *m = mixed_msg;
	struct mime_message msg;
	mime_parse(A, m, strlen(m), NULL, &msg);
	ok(tree_ok(&msg) && msg.nparts == 6 && msg.flags == 0, "mixed: six parts, no flags");
	if (msg.nparts != 6)
		return;
	struct mime_part **p = msg.parts;
	ok(p[1]->nchildren == 2 && p[2]->parent == p[1] && p[3]->parent == p[1] &&
	   p[4]->parent == p[0] && p[5]->parent == p[0] && p[2]->depth == 2,
	   "mixed: preorder tree");
	body_is(&msg, p[2], "plain", "inner text body");
	body_is(&msg, p[3], "<b>html</b>", "inner html body");
	is_int(p[1]->body_offset + p[1]->body_size, at(m, "\n--=_outer\nContent-Type: app", 1),
	       "alternative ends before the outer delimiter (epilogue included)");
	str_is(p[4]->filename, "\xe2\x82\xac report 2024.pdf", "RFC 2231 filename joined and decoded");
	const struct mime_param *fn = mime_param_get(&p[4]->disp, "filename");
	ok(fn && fn->extended, "RFC 2231 param is extended");
	if (fn)
		str_is(fn->raw, "utf-8''%E2%82%AC%20report 2024.pdf", "raw value for IMAP");
	str_is(p[4]->disp.type, "attachment", "disposition");
	str_is(p[4]->id, "<pdf@example>", "Content-ID");
	str_is(p[4]->description, "The report", "Content-Description");
	str_is(p[4]->language, "en, de", "Content-Language");
	ok(!mime_part_is_text(p[4]) && mime_part_is_text(p[2]), "attachment is not text");
	str_is(p[5]->filename, "Bild \xc3\xbc.png", "RFC 2047 name= decoded (common)");
	struct str pdf = mime_part_decode(A, &msg, p[4], NULL);
	ok(pdf.len == 9 && memcmp(pdf.p, "%PDF-1.4\n", 9) == 0, "base64 attachment decoded");
}

static void test_rfc822(void)
{
	const char *m =
		"Subject: Fwd: report\n"
		"Content-Type: multipart/mixed; boundary=\"b\"\n"
		"\n"
		"--b\n"
		"Content-Type: text/plain\n"
		"\n"
		"see attached\n"
		"--b\n"
		"Content-Type: message/rfc822\n"
		"\n"
		"From: inner@example.org\n"
		"Subject: the original\n"
		"Content-Type: multipart/alternative; boundary=\"in\"\n"
		"\n"
		"--in\n"
		"\n"
		"inner one\n"
		"--in\n"
		"\n"
		"inner two\n"
		"--in--\n"
		"--b--\n";
	struct mime_message msg;
	mime_parse(A, m, strlen(m), NULL, &msg);
	ok(tree_ok(&msg) && msg.nparts == 6 && msg.flags == 0, "rfc822: six parts");
	if (msg.nparts != 6)
		return;
	const struct mime_part *att = msg.parts[2], *inner = msg.parts[3];
	ok(mime_part_is_type(att, "message", "rfc822") && att->nchildren == 1 &&
	   att->children == inner, "message/rfc822 has the inner root as its child");
	is_int(inner->hdr.offset, att->body_offset, "inner header = the attachment body start");
	str_is(mime_headers_get(&inner->hdr, "subject")->value, "the original", "inner Subject");
	ok(inner->nchildren == 2 && inner->depth == 2, "inner multipart split");
	body_is(&msg, msg.parts[4], "inner one", "inner part 1");
	body_is(&msg, msg.parts[5], "inner two", "inner part 2 (no headers)");
	is_int(msg.parts[4]->hdr.size, 1, "part without headers: just the empty line");
	is_int(att->body_lines, 10, "rfc822 body lines (IMAP)");
}

static void test_broken_structure(void)
{
	struct mime_message msg;
	const char *noend = "Content-Type: multipart/mixed; boundary=x\n\n--x\n\none\n--x\n\ntwo\n";
	mime_parse(A, noend, strlen(noend), NULL, &msg);
	ok(tree_ok(&msg) && msg.nparts == 3 && (msg.flags & MIME_PART_NO_END_BOUNDARY),
	   "missing close delimiter flagged");
	body_is(&msg, msg.parts[2], "two\n", "last part runs to the end");

	const char *wrong = "Content-Type: multipart/mixed; boundary=x\n\n--y\n\none\n--y--\n";
	mime_parse(A, wrong, strlen(wrong), NULL, &msg);
	ok(tree_ok(&msg) && msg.nparts == 1 && (msg.flags & MIME_PART_BOUNDARY_MISSING),
	   "wrong boundary: no children, flagged");

	const char *nob = "Content-Type: multipart/mixed\n\n--x\n\none\n";
	mime_parse(A, nob, strlen(nob), NULL, &msg);
	ok(msg.nparts == 1 && (msg.flags & MIME_PART_NO_BOUNDARY), "no boundary param: leaf");

	const char *badct = "Content-Type: garbage\nContent-Transfer-Encoding: x-uuencode\n\nbody";
	mime_parse(A, badct, strlen(badct), NULL, &msg);
	ok(mime_part_is_type(msg.root, "text", "plain") &&
	   (msg.flags & MIME_PART_BAD_CTYPE) && (msg.flags & MIME_PART_BAD_ENCODING) &&
	   msg.root->enc == MIME_ENC_UNKNOWN, "bad Content-Type defaults, unknown CTE flagged");

	/* Inner part without close: the outer delimiter ends it. */
	const char *inner = "Content-Type: multipart/mixed; boundary=o\n\n--o\n"
			    "Content-Type: multipart/alternative; boundary=i\n\n--i\n\nA\n"
			    "--o\n\nB\n--o--\n";
	mime_parse(A, inner, strlen(inner), NULL, &msg);
	ok(tree_ok(&msg) && msg.nparts == 4 && msg.parts[3]->parent == msg.root &&
	   (msg.parts[1]->flags & MIME_PART_NO_END_BOUNDARY), "outer delimiter closes inner part");
	body_is(&msg, msg.parts[2], "A", "inner part body stops at the outer delimiter");

	/* Boundary "ab" is a prefix of the inner "abc": no confusion. */
	const char *prefix = "Content-Type: multipart/mixed; boundary=ab\n\n--ab\n"
			     "Content-Type: multipart/alternative; boundary=abc\n\n--abc\n\nX\n"
			     "--abc\n\nY\n--abc--\n--ab\n\nZ\n--ab--\n";
	mime_parse(A, prefix, strlen(prefix), NULL, &msg);
	ok(tree_ok(&msg) && msg.nparts == 5 && msg.parts[1]->nchildren == 2 && msg.flags == 0,
	   "prefix boundaries kept apart");

	const char *trailing = "Content-Type: multipart/mixed; boundary=q\n\n--q  \t\n\nA\n--q-- junk\n";
	mime_parse(A, trailing, strlen(trailing), NULL, &msg);
	ok(msg.nparts == 2 && msg.flags == 0, "delimiter with trailing whitespace, close with junk");
	body_is(&msg, msg.parts[1], "A", "body between them");

	const char *digest = "Content-Type: multipart/digest; boundary=d\n\n--d\n\nSubject: s\n\nx\n--d--\n";
	mime_parse(A, digest, strlen(digest), NULL, &msg);
	ok(msg.nparts == 3 && mime_part_is_type(msg.parts[1], "message", "rfc822") &&
	   msg.parts[2]->hdr.count == 1, "digest: default message/rfc822, parsed");

	const char *b64multi = "Content-Type: multipart/mixed; boundary=z\n"
			       "Content-Transfer-Encoding: base64\n\n--z\n\na\n--z--\n";
	mime_parse(A, b64multi, strlen(b64multi), NULL, &msg);
	ok(msg.nparts == 2 && (msg.flags & MIME_PART_BAD_ENCODING), "base64 multipart flagged");

	const char *empty_part = "Content-Type: multipart/mixed; boundary=e\n\n--e\n--e--\n";
	mime_parse(A, empty_part, strlen(empty_part), NULL, &msg);
	ok(tree_ok(&msg) && msg.nparts == 2 && msg.parts[1]->body_size == 0 &&
	   msg.parts[1]->hdr.size == 0, "empty part between two delimiters");

	mime_parse(A, "", 0, NULL, &msg);
	ok(msg.nparts == 1 && msg.root->body_size == 0, "empty message");
}

static void test_limits(void)
{
	/* 30 nested multiparts: everything from depth 20 on is a leaf. */
	char m[8192];
	size_t n = 0;
	for (int i = 0; i < 30; i++)
		n += (size_t)snprintf(m + n, sizeof(m) - n,
				      "Content-Type: multipart/mixed; boundary=\"d%d\"\n\n--d%d\n", i, i);
	n += (size_t)snprintf(m + n, sizeof(m) - n, "\ndeep\n");
	struct mime_message msg;
	mime_parse(A, m, n, NULL, &msg);
	ok(tree_ok(&msg) && msg.nparts == 21 && msg.parts[20]->depth == 20 &&
	   (msg.parts[20]->flags & MIME_PART_DEPTH_LIMIT) && (msg.flags & MIME_PART_DEPTH_LIMIT),
	   "depth limit: 21 parts, the last a flagged leaf");

	/* 600 parts with a limit of 10: the 10th takes the rest. */
	static char big[32768];
	n = (size_t)snprintf(big, sizeof(big), "Content-Type: multipart/mixed; boundary=p\n\n");
	for (int i = 0; i < 600; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n, "--p\n\n%d\n", i);
	n += (size_t)snprintf(big + n, sizeof(big) - n, "--p--\n");
	struct mime_limits lim = mime_limits_default;
	lim.parts_max = 10;
	mime_parse(A, big, n, &lim, &msg);
	ok(tree_ok(&msg) && msg.nparts == 10 && (msg.flags & MIME_PART_PARTS_LIMIT),
	   "part limit: 10 parts, flagged");
	is_int(msg.parts[9]->body_offset + msg.parts[9]->body_size, n,
	       "the last allowed part takes the rest");
	mime_parse(A, big, n, NULL, &msg);
	ok(tree_ok(&msg) && msg.nparts == 500, "default part limit 500");
}

static void test_perf(void)
{
	/* A 10 KB multipart message: text, HTML, a base64 attachment. */
	static char m[16384];
	size_t n = (size_t)snprintf(m, sizeof(m), "%s", alt_msg);
	n -= strlen("--b1--\nepilogue\n");
	n += (size_t)snprintf(m + n, sizeof(m) - n,
			      "--b1\nContent-Type: application/octet-stream; name=\"a.bin\"\n"
			      "Content-Transfer-Encoding: base64\n\n");
	while (n < 10200)
		n += (size_t)snprintf(m + n, sizeof(m) - n,
				      "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5\n");
	n += (size_t)snprintf(m + n, sizeof(m) - n, "--b1--\n");
	struct mime_message msg;
	struct timespec t0, t1;
	int iters = 20000;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < iters; i++) {
		struct arena *a = arena_new();
		mime_parse(a, m, n, NULL, &msg);
		arena_destroy(&a);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double us = ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / 1e3 / iters;
	printf("# structure parse of a %zu-byte multipart message: %.2f us\n", n, us);
	ok(msg.nparts == 4 && us < 1000, "parse time sane");
}

int main(void)
{
	A = arena_new();
	test_plain();
	test_alternative();
	test_mixed();
	test_rfc822();
	test_broken_structure();
	test_limits();
	test_perf();
	arena_destroy(&A);
	return tap_done();
}
