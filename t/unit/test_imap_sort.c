/* test_imap_sort.c - RFC 5256 base subjects (2.1) and THREAD on hostile
 * shapes: a reference loop, a self-reference, duplicate Message-IDs, and a
 * reply chain 100,000 deep (no recursion to overflow). */
#include "tap.h"
#include "imap/imap_int.h"
#include "core/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void base(const char *in, const char *want, int want_reply)
{
	struct buf b = { 0 };
	bool reply;
	imap_base_subject(&b, str_from_cstr(in), &reply);
	buf_append(&b, "", 1);
	ok(strcmp(buf_ptr(&b), want) == 0 && reply == want_reply, "base subject of \"%s\": \"%s\" (reply %d)",
	   in, buf_ptr(&b), reply);
	buf_free(&b);
}

static void test_base_subjects(void)
{
	base("Hello", "HELLO", 0);
	base("Re: Hello", "HELLO", 1);
	base("RE: re: Fwd: hello", "HELLO", 1);
	base("Re[2]: hello", "HELLO", 1);
	base("[list] Re: hello", "HELLO", 1);
	base("Re: [list] hello", "HELLO", 1);
	base("[list]", "[LIST]", 0);            /* (4): a blob alone stays */
	base("[Fwd: hello]", "HELLO", 1);
	base("[fwd: Re: hello (fwd)]", "HELLO", 1);
	base("hello (fwd)  ", "HELLO", 1);
	base("  hello \t  world ", "HELLO WORLD", 0);
	base("Re:", "", 1);
	base("", "", 0);
	base("Rex: hello", "REX: HELLO", 0);
	base("Fw: hello", "HELLO", 1);
	base("[a][b] re: x", "X", 1);
}

static struct imap_sort_msg msg(uint32_t seq, const char *blob_fields[IMAP_SF_COUNT])
{
	struct buf b = { 0 };
	for (int i = 0; i < IMAP_SF_COUNT; i++) {
		buf_append_str(&b, blob_fields[i] ? blob_fields[i] : "");
		buf_append(&b, "", 1);
	}
	struct imap_sort_msg m = { .seq = seq, .uid = seq };
	char *blob = xmalloc(b.len);
	memcpy(blob, buf_ptr(&b), b.len);
	imap_sort_fields(blob, b.len, &m);
	buf_free(&b);
	return m;
}

static void thread(struct imap_sort_msg *m, size_t n, const char *want, const char *what)
{
	struct buf out = { 0 };
	imap_thread_run(m, n, true, false, &out);
	buf_append(&out, "", 1);
	ok(want == NULL ? out.len > 1 : strcmp(buf_ptr(&out), want) == 0, "%s: %.60s", what, buf_ptr(&out));
	buf_free(&out);
	for (size_t i = 0; i < n; i++)
		free((char *)m[i].f[0].p);     /* the blob msg() made: its first field */
}

static void test_thread_hostile(void)
{
	/* A refs B, B refs A: no loop, both shown */
	const char *a[IMAP_SF_COUNT] = { "1", "X", "0", [IMAP_SF_MSGID] = "<a@x>", [IMAP_SF_REFS] = "<b@x>" };
	const char *b[IMAP_SF_COUNT] = { "2", "Y", "0", [IMAP_SF_MSGID] = "<b@x>", [IMAP_SF_REFS] = "<a@x>" };
	struct imap_sort_msg m[3] = { msg(1, a), msg(2, b) };
	/* A is filed under B (its reference); B's reference to A would close
	 * a loop and is dropped */
	thread(m, 2, "(2 1)", "a reference loop is not made");
	const char *self[IMAP_SF_COUNT] = { "1", "X", "0", [IMAP_SF_MSGID] = "<s@x>", [IMAP_SF_REFS] = "<s@x>" };
	m[0] = msg(1, self);
	thread(m, 1, "(1)", "a message referring to itself");
	const char *d1[IMAP_SF_COUNT] = { "1", "P", "0", [IMAP_SF_MSGID] = "<d@x>" };
	const char *d2[IMAP_SF_COUNT] = { "2", "Q", "0", [IMAP_SF_MSGID] = "<d@x>" };
	m[0] = msg(1, d1);
	m[1] = msg(2, d2);
	thread(m, 2, "(1)(2)", "a duplicate Message-ID: both messages kept");

	size_t n = 100000;
	struct imap_sort_msg *chain = calloc(n, sizeof(*chain));
	for (size_t i = 0; i < n; i++) {
		char date[24], id[32], ref[32];
		snprintf(date, sizeof(date), "%zu", i);
		snprintf(id, sizeof(id), "<%zu@x>", i);
		snprintf(ref, sizeof(ref), "<%zu@x>", i ? i - 1 : 0);
		const char *f[IMAP_SF_COUNT] = { date, "CHAIN", i ? "1" : "0", [IMAP_SF_MSGID] = id,
						 [IMAP_SF_REFS] = i ? ref : "" };
		chain[i] = msg((uint32_t)(i + 1), f);
	}
	thread(chain, n, NULL, "a 100,000-deep reply chain");
	free(chain);
}

/* Shapes where Dovecot and the RFC agree and an earlier moonpost did not. */
static void test_thread_roots(void)
{
	/* a dummy root with one child is promoted once, not listed twice */
	const char *a[IMAP_SF_COUNT] = { "1", "", "1", [IMAP_SF_MSGID] = "<a@x>", [IMAP_SF_REFS] = "<r@x>" };
	const char *b[IMAP_SF_COUNT] = { "2", "", "1", [IMAP_SF_MSGID] = "<b@x>", [IMAP_SF_REFS] = "<r@x> <a@x>" };
	struct imap_sort_msg m[4] = { msg(1, a), msg(2, b) };
	thread(m, 2, "(1 2)", "a one-child dummy root is promoted once");
	/* RFC 5256 6 then 7: the subject merge makes a dummy dated by its
	 * first child (1), and the root level is sorted again after it */
	const char *h[IMAP_SF_COUNT] = { "1", "HELLO", "0", [IMAP_SF_MSGID] = "<h@x>" };
	const char *o[IMAP_SF_COUNT] = { "2", "OTHER", "0", [IMAP_SF_MSGID] = "<o@x>" };
	const char *c[IMAP_SF_COUNT] = { "3", "HELLO", "1", [IMAP_SF_MSGID] = "<c@x>", [IMAP_SF_REFS] = "<x@x>" };
	const char *e[IMAP_SF_COUNT] = { "4", "HELLO", "1", [IMAP_SF_MSGID] = "<e@x>", [IMAP_SF_REFS] = "<x@x>" };
	m[0] = msg(1, h);
	m[1] = msg(2, o);
	m[2] = msg(3, c);
	m[3] = msg(4, e);
	thread(m, 4, "((1)(3)(4))(2)", "roots re-sorted by date after the subject merge");
}

/* imap_sort_run's 8-byte images against a plain comparison: subjects of
 * "A"/"B" only, 0 to 12 long, so images tie often and prefixes nest. */
static const char *const *naive_subj;
static const int *naive_date;
static int naive_rev, naive_second;

static int naive_cmp(const void *x, const void *y)
{
	int a = *(const int *)x, b = *(const int *)y;
	int c = strcmp(naive_subj[a], naive_subj[b]);
	c = c < 0 ? -1 : c > 0;
	if (naive_rev)
		c = -c;
	if (c == 0 && naive_second)
		c = (naive_date[a] > naive_date[b]) - (naive_date[a] < naive_date[b]);
	return c ? c : (a > b) - (a < b);
}

static void test_sort_images(void)
{
	enum { N = 2000 };
	static char subj[N][16];
	static const char *sp[N];
	static int date[N], want[N];
	unsigned r = 12345;
	for (int i = 0; i < N; i++) {
		r = r * 1103515245u + 12345u;
		int len = (int)((r >> 16) % 13);
		for (int k = 0; k < len; k++) {
			r = r * 1103515245u + 12345u;
			subj[i][k] = (r >> 16) & 1 ? 'B' : 'A';
		}
		subj[i][len] = '\0';
		sp[i] = subj[i];
		date[i] = (int)((r >> 8) % 50);
	}
	naive_subj = sp;
	naive_date = date;
	const struct { struct imap_sort_key k[2]; size_t n; int rev, second; const char *what; } runs[] = {
		{ { { IMAP_SORT_SUBJECT, false } }, 1, 0, 0, "SUBJECT" },
		{ { { IMAP_SORT_SUBJECT, true } }, 1, 1, 0, "REVERSE SUBJECT (ties ascending)" },
		{ { { IMAP_SORT_SUBJECT, false }, { IMAP_SORT_DATE, false } }, 2, 0, 1, "SUBJECT DATE" },
	};
	for (size_t t = 0; t < ARRAY_SIZE(runs); t++) {
		struct imap_sort_msg *m = calloc(N, sizeof(*m));
		for (int i = 0; i < N; i++) {
			char d[16];
			snprintf(d, sizeof(d), "%d", date[i]);
			const char *f[IMAP_SF_COUNT] = { d, subj[i], "0" };
			m[i] = msg((uint32_t)i + 1, f);
			want[i] = i;
		}
		naive_rev = runs[t].rev;
		naive_second = runs[t].second;
		qsort(want, N, sizeof(*want), naive_cmp);
		imap_sort_run(m, N, runs[t].k, runs[t].n);
		int bad = -1;
		for (int i = 0; i < N && bad < 0; i++)
			if (m[i].seq != (uint32_t)want[i] + 1)
				bad = i;
		ok(bad < 0, "%s of %d subjects sharing prefixes: as a plain sort (first difference %d)",
		   runs[t].what, N, bad);
		for (int i = 0; i < N; i++)
			free((char *)m[i].f[0].p);
		free(m);
	}
}

int main(void)
{
	test_sort_images();
	test_base_subjects();
	test_thread_hostile();
	test_thread_roots();
	return tap_done();
}
