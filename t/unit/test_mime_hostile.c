/* test_mime_hostile.c - inputs built to make a parser slow or deep: every
 * one must stay linear (each is timed against a generous bound that a
 * quadratic algorithm misses by orders of magnitude, even under ASan). */
#include "mime/mime.h"
#include "tap.h"

#include <stdlib.h>
#include <time.h>

#define BIG (1 << 20)

static struct arena *A;
static char *buf;

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Fills buf with pattern repeated up to about n bytes; returns the length. */
static size_t fill(const char *head, const char *pattern, size_t n)
{
	size_t len = strlen(head), pl = strlen(pattern);
	memcpy(buf, head, len);
	while (len + pl < n) {
		memcpy(buf + len, pattern, pl);
		len += pl;
	}
	buf[len] = '\0';
	return len;
}

#define TIMED(what, stmt) do { \
		double t0 = now_ms(); \
		stmt; \
		double ms = now_ms() - t0; \
		ok(ms < 500, "%s (%.1f ms)", what, ms); \
	} while (0)

int main(void)
{
	A = arena_new();
	buf = malloc(BIG + 1);
	struct mime_message m;
	size_t n;

	n = fill("", "=?a?q?x", 64 * 1024);
	TIMED("2047: many unterminated words", mime_2047_decode(A, (struct str){ buf, n }, NULL));
	n = fill("", "=?utf-8?q?x?=", 64 * 1024);
	struct str d;
	TIMED("2047: many adjacent words", d = mime_2047_decode(A, (struct str){ buf, n }, NULL));
	is_int(d.len, n / 13, "adjacent words all decoded");

	n = fill("Content-Type: multipart/mixed; boundary=\"-\"\n\n", "-------------------\n", BIG);
	TIMED("multipart: lines of dashes", mime_parse(A, buf, n, NULL, &m));
	n = fill("Content-Type: multipart/mixed; boundary=b\n\n", "--b\n", BIG);
	TIMED("multipart: a million delimiters", mime_parse(A, buf, n, NULL, &m));
	ok(m.nparts == 500 && (m.flags & MIME_PART_PARTS_LIMIT), "part limit reached");
	n = fill("", "Content-Type: multipart/mixed; boundary=b\n\n--b\n", BIG);
	TIMED("multipart: same boundary nested", mime_parse(A, buf, n, NULL, &m));
	ok(m.nparts == 500 && m.root->nchildren == 499 && (m.flags & MIME_PART_PARTS_LIMIT),
	   "an inner reuse of the outer boundary is the outer's delimiter");
	n = fill("", "Content-Type: message/rfc822\n\n", BIG);
	TIMED("message/rfc822 chain", mime_parse(A, buf, n, NULL, &m));
	ok(m.nparts == 21, "rfc822 depth limited");
	n = fill("", "a:b\n", BIG);
	TIMED("a million header fields", mime_parse(A, buf, n, NULL, &m));
	ok(m.root->hdr.count == MIME_HEADER_COUNT_MAX && (m.root->hdr.flags & MIME_HDRS_TOO_MANY),
	   "header count limit");
	n = fill("Subject: x", "\n y", BIG);
	TIMED("one folded field of 1 MB", mime_parse(A, buf, n, NULL, &m));
	ok(m.root->hdr.v[0].value.len <= MIME_HEADER_FIELD_MAX, "field truncated");

	n = fill("", "(", 64 * 1024);
	struct mime_addr_list l;
	TIMED("addresses: unclosed comments", mime_addr_parse(A, (struct str){ buf, n }, &l));
	n = fill("", "\"a\\\"b<c@d>,", 64 * 1024);
	TIMED("addresses: quotes and angles", mime_addr_parse(A, (struct str){ buf, n }, &l));
	n = fill("", "a@b,", 64 * 1024);
	TIMED("addresses: 16k mailboxes", mime_addr_parse(A, (struct str){ buf, n }, &l));
	is_int(l.count, n / 4, "all mailboxes kept");

	struct mime_text t;
	n = fill("", "<a<a href=x", BIG);
	TIMED("html: unclosed tags", mime_html_to_text(A, (struct str){ buf, n }, &t));
	n = fill("", "<a href=x>y</a>", BIG);
	TIMED("html: many links", mime_html_to_text(A, (struct str){ buf, n }, &t));
	is_int(t.nlinks, MIME_HTML_LINKS_MAX, "link limit");
	n = fill("", "&#99999999999999", BIG);
	TIMED("html: long references", mime_html_to_text(A, (struct str){ buf, n }, &t));
	n = fill("", "<script>", BIG);
	TIMED("html: script openers", mime_html_to_text(A, (struct str){ buf, n }, &t));

	struct mime_url *u = NULL;
	size_t nu = 0;
	n = fill("", "http://", BIG);
	TIMED("urls: scheme soup", mime_urls_find(A, (struct str){ buf, n }, 1000, &u, &nu));
	nu = 0;
	n = fill("", "www.www.", BIG);
	TIMED("urls: www soup", mime_urls_find(A, (struct str){ buf, n }, 1000, &u, &nu));

	struct mime_ctype c;
	n = fill("a/b", "; x*0*=%", 64 * 1024);
	TIMED("params: many continuations", mime_ctype_parse(A, (struct str){ buf, n }, &c));
	ok(c.flags & MIME_PARAM_TOO_MANY, "parameter limit");
	struct mime_date dt;
	n = fill("", "1 ", 64 * 1024);
	TIMED("date: number soup", mime_date_parse((struct str){ buf, n }, &dt));

	free(buf);
	arena_destroy(&A);
	return tap_done();
}
