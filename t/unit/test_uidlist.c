/* test_uidlist.c - Dovecot's dovecot-uidlist parser: real files as Dovecot
 * 2.3 writes them, hostile inputs, and every case fed whole, one byte at a
 * time and in 7-byte chunks with identical results; the formatters round
 * trip. */
#include "store/mailbox.h"
#include "tap.h"

#include <stdlib.h>

struct result {
	int rc;
	struct uidlist_header hdr;
	char recs[2048];        /* "uid|ext|name;" per record */
};

static int collect(void *ctx, const struct uidlist_rec *r)
{
	struct result *res = ctx;
	size_t n = strlen(res->recs);
	snprintf(res->recs + n, sizeof(res->recs) - n, "%u|%.*s|%.*s;", r->uid,
		 STR_FMT(r->ext), STR_FMT(r->name));
	return 0;
}

static void run(const char *in, size_t len, size_t chunk, struct result *res)
{
	struct uidlist_parser *p = malloc(sizeof(*p));
	memset(res, 0, sizeof(*res));
	uidlist_parser_init(p);
	int rc = 0;
	for (size_t pos = 0; pos < len && rc == 0;) {
		size_t n = chunk && chunk < len - pos ? chunk : len - pos;
		rc = uidlist_parser_feed(p, in + pos, n, collect, res);
		pos += n;
	}
	res->rc = rc == 0 ? uidlist_parser_finish(p) : -1;
	res->hdr = p->hdr;
	free(p);
}

static void check(const char *name, const char *in, int want_rc, const char *want_recs,
		  uint32_t want_v, uint32_t want_n)
{
	size_t chunks[] = { 0, 1, 7 };
	for (size_t i = 0; i < 3; i++) {
		struct result r;
		run(in, strlen(in), chunks[i], &r);
		bool good = r.rc == want_rc && (want_rc != 0 || (strcmp(r.recs, want_recs) == 0 &&
			    r.hdr.uidvalidity == want_v && r.hdr.next_uid == want_n));
		ok(good, "%s (chunk %zu)", name, chunks[i]);
		if (!good)
			printf("#   rc %d recs \"%s\" V%u N%u\n", r.rc, r.recs, r.hdr.uidvalidity,
			       r.hdr.next_uid);
	}
}

static void formats(void)
{
	struct buf b = { 0 };
	struct uidlist_header h = { .version = 3, .uidvalidity = 1796527116, .next_uid = 5 };
	memcpy(h.guid, "9ab13c0c0cd4146b2c0d000083ecc375", 33);
	uidlist_format_header(&b, &h);
	uidlist_format_record(&b, 1, "", "1600000000.M2P2.host,S=16,W=19");
	uidlist_format_record(&b, 2, "W29", "1700000001.M1P1.host");
	is_str(buf_ptr(&b), "3 V1796527116 N5 G9ab13c0c0cd4146b2c0d000083ecc375\n"
	       "1 :1600000000.M2P2.host,S=16,W=19\n2 W29 :1700000001.M1P1.host\n",
	       "formatted like Dovecot");
	struct result r;
	run(buf_ptr(&b), b.len, 1, &r);
	ok(r.rc == 0 && strcmp(r.hdr.guid, h.guid) == 0 &&
	   strcmp(r.recs, "1||1600000000.M2P2.host,S=16,W=19;2|W29|1700000001.M1P1.host;") == 0,
	   "round trip");
	buf_free(&b);
	struct str ext = STR_LIT("W29 Pold-uidl-1 G0123");
	struct str w = uidlist_ext_get(ext, 'W'), pp = uidlist_ext_get(ext, 'P'),
		   x = uidlist_ext_get(ext, 'X');
	ok(w.len == 2 && memcmp(w.p, "29", 2) == 0, "ext W");
	ok(pp.len == 10 && memcmp(pp.p, "old-uidl-1", 10) == 0, "ext P (migrated UIDL)");
	ok(x.len == 0, "absent ext");
}

int main(void)
{
	/* What Dovecot 2.3.19 wrote in this repository's tests. */
	check("dovecot 2.3 file",
	      "3 V1796527116 N5 G9ab13c0c0cd4146b2c0d000083ecc375\n"
	      "1 :1600000000.M2P2.host,S=16,W=19\n"
	      "2 W29 :1700000001.M1P1.host\n"
	      "3 W29 :1700000002.M1P1.host\n", 0,
	      "1||1600000000.M2P2.host,S=16,W=19;2|W29|1700000001.M1P1.host;"
	      "3|W29|1700000002.M1P1.host;", 1796527116, 5);
	check("header only", "3 V1 N1\n", 0, "", 1, 1);
	check("header fields in any order, unknown kept out", "3 N7 X9 V42\n", 0, "", 42, 7);
	check("several ext fields", "3 V1 N9\n8 W10 S9 Pabc :x.host\n", 0, "8|W10 S9 Pabc|x.host;", 1, 9);
	check("stale N raised past the last uid", "3 V1 N2\n5 :a\n", 0, "5||a;", 1, 6);
	check("partial last line ignored", "3 V1 N9\n1 :a\n2 :b", 0, "1||a;", 1, 9);
	check("version 1 header", "1 77 3\n", 0, "", 77, 3);
	check("empty file", "", -1, "", 0, 0);
	check("no header LF", "3 V1 N2", -1, "", 0, 0);
	check("bad version", "4 V1 N2\n", -1, "", 0, 0);
	check("missing V", "3 N2\n", -1, "", 0, 0);
	check("V zero", "3 V0 N2\n", -1, "", 0, 0);
	check("V overflow", "3 V4294967296 N2\n", -1, "", 0, 0);
	check("uids not ascending", "3 V1 N9\n2 :a\n2 :b\n", -1, "", 0, 0);
	check("uid zero", "3 V1 N9\n0 :a\n", -1, "", 0, 0);
	check("record without name", "3 V1 N9\n1 W3\n", -1, "", 0, 0);
	check("empty name", "3 V1 N9\n1 :\n", -1, "", 0, 0);
	check("slash in name", "3 V1 N9\n1 :../etc/passwd\n", -1, "", 0, 0);
	check("colon glued to ext", "3 V1 N9\n1 W3:a\n", -1, "", 0, 0);
	check("non-digit uid", "3 V1 N9\nx :a\n", -1, "", 0, 0);
	/* Dovecot compatibility (maildir-uidlist.c): names match by base, ext
	 * tokens are skipped until one starts with ':', old formats read. */
	check("record name with flags: the base", "3 V1 N9\n5 :NAME,S=18:2,S\n", 0, "5||NAME,S=18;", 1, 9);
	check("':' inside an ext value", "3 V1 N9\n1 Pold:uidl W3 :a\n", 0, "1|Pold:uidl W3|a;", 1, 9);
	check("uid 4294967295 is corrupt", "3 V1 N9\n4294967295 :a\n", -1, "", 0, 0);
	check("version 1 records (courierimapuiddb)", "1 77 3\n1 a.host\n2 b.host:2,S\n", 0,
	      "1||a.host;2||b.host;", 77, 3);
	check("version 2 records", "2 77 5\n3 S c.host\n", 0, "3||c.host;", 77, 5);
	check("version 2 record without a name", "2 77 5\n3 S\n", -1, "", 0, 0);
	{
		char *big = malloc(UIDLIST_LINE_MAX + 64);
		int n = snprintf(big, 64, "3 V1 N2\n1 :");
		memset(big + n, 'a', UIDLIST_LINE_MAX);
		memcpy(big + n + UIDLIST_LINE_MAX, "\n", 2);
		check("overlong line", big, -1, "", 0, 0);
		free(big);
	}
	formats();
	return tap_done();
}
