/* test_mcache.c - the per-folder message cache file (src/store/mcache.h):
 * records round trip, survive a reopen, are seen by a second handle,
 * a torn or corrupt tail is cut, another UIDVALIDITY or a foreign file
 * empties it, compaction keeps exactly the live records, and a handle
 * whose file was replaced under it keeps working. */
#include "tap.h"
#include "store/mcache.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64], path[128];

static struct mcache_rec rec(uint32_t uid, const char *env, const char *bs)
{
	struct mcache_rec r = { .uid = uid, .internal = 1700000000 + uid, .sent = 1600000000 - uid };
	r.field[MCACHE_ENVELOPE] = env;
	r.field_len[MCACHE_ENVELOPE] = (uint32_t)strlen(env);
	if (bs != NULL) {
		r.field[MCACHE_BODYSTRUCTURE] = bs;
		r.field_len[MCACHE_BODYSTRUCTURE] = (uint32_t)strlen(bs);
	}
	return r;
}

static int field_is(const struct mcache_rec *r, int f, const char *want)
{
	return r->field[f] != NULL && r->field_len[f] == strlen(want) &&
	       memcmp(r->field[f], want, r->field_len[f]) == 0;
}

static off_t file_size(void)
{
	struct stat st;
	return stat(path, &st) == 0 ? st.st_size : -1;
}

static void test_codec(void)
{
	struct buf b = { 0 };
	struct mcache_rec r = rec(7, "(\"env\")", "(\"TEXT\" \"PLAIN\")"), d;
	mcache_encode(&b, &r);
	size_t n = mcache_decode(buf_ptr(&b), b.len, &d);
	is_int(n, b.len, "decode takes the whole record");
	ok(d.uid == 7 && d.internal == r.internal && d.sent == r.sent, "numbers round trip");
	ok(field_is(&d, MCACHE_ENVELOPE, "(\"env\")") && field_is(&d, MCACHE_BODYSTRUCTURE, "(\"TEXT\" \"PLAIN\")") &&
	   d.field[MCACHE_BODY] == NULL, "fields round trip, absent ones NULL");
	for (size_t cut = 0; cut < b.len; cut++)
		if (mcache_decode(buf_ptr(&b), cut, &d) != 0) {
			ok(0, "a record cut at %zu bytes is refused", cut);
			break;
		}
	ok(1, "every cut record refused");
	b.data[b.off + 30] ^= 1;
	is_int(mcache_decode(buf_ptr(&b), b.len, &d), 0, "a flipped bit is refused (hash)");
	buf_free(&b);
}

static void test_reopen(void)
{
	struct mcache *a, *b;
	ok(mcache_open(dir, 42, &a) == 0, "open creates the cache");
	for (uint32_t uid = 1; uid <= 100; uid++) {
		struct mcache_rec e = { .uid = uid };
		mcache_put(a, &e);
	}
	struct mcache_rec r = rec(50, "fifty", "bs50");
	mcache_put(a, &r);
	ok(mcache_flush(a) == 0, "flush appends");
	ok(mcache_open(dir, 42, &b) == 0, "a second handle opens");
	is_int(mcache_count(b), 100, "it indexes 100 UIDs");
	struct mcache_rec g;
	ok(mcache_get(b, 50, &g) && field_is(&g, MCACHE_ENVELOPE, "fifty"), "the later record of a UID wins");
	ok(!mcache_get(b, 101, &g), "an unknown UID is a miss");
	r = rec(200, "two hundred", NULL);
	mcache_put(a, &r);
	mcache_flush(a);
	ok(!mcache_get(b, 200, &g), "not seen before a refresh");
	mcache_refresh(b);
	ok(mcache_get(b, 200, &g) && field_is(&g, MCACHE_ENVELOPE, "two hundred") && g.internal == 1700000200,
	   "seen after a refresh");
	mcache_free(&a);
	mcache_free(&b);
}

static void test_torn_tail(void)
{
	off_t good = file_size();
	int fd = open(path, O_WRONLY | O_APPEND);
	ok(write(fd, "\x40\0\0\0garbage", 11) == 11, "a torn record appended");
	close(fd);
	struct mcache *c;
	ok(mcache_open(dir, 42, &c) == 0, "opens with a torn tail");
	is_int(mcache_count(c), 101, "the good records are kept");
	/* rewritten with the newest record of each UID: uid 50's first,
	 * empty one (32 bytes) is gone with the torn bytes */
	is_int(file_size(), good - 32, "the file was repaired to its good records");
	struct mcache_rec r = rec(300, "after repair", NULL), g;
	mcache_put(c, &r);
	mcache_flush(c);
	mcache_free(&c);
	ok(mcache_open(dir, 42, &c) == 0 && mcache_get(c, 300, &g) && field_is(&g, MCACHE_ENVELOPE, "after repair"),
	   "a record appended after the repair is readable");
	mcache_free(&c);
}

static void test_compact(void)
{
	struct mcache *c, *old;
	ok(mcache_open(dir, 42, &c) == 0 && mcache_open(dir, 42, &old) == 0, "two handles");
	char big[2048];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	for (uint32_t uid = 1000; uid < 1300; uid++) {
		struct mcache_rec r = rec(uid, big, NULL);
		mcache_put(c, &r);
	}
	mcache_flush(c);
	mcache_refresh(c);
	mcache_refresh(old);
	uint32_t live[] = { 50, 1299 };
	size_t before = mcache_file_size(c);
	ok(mcache_compact(c, live, 2) == 0, "compaction runs");
	ok(mcache_file_size(c) < before / 10, "the file shrank (%zu -> %zu)", before, mcache_file_size(c));
	is_int(mcache_count(c), 2, "only the live records are left");
	struct mcache_rec g;
	ok(mcache_get(c, 50, &g) && field_is(&g, MCACHE_ENVELOPE, "fifty") && mcache_get(c, 1299, &g),
	   "the live records are intact");
	ok(mcache_get(old, 1200, &g) && field_is(&g, MCACHE_ENVELOPE, big),
	   "a handle on the replaced file still reads its mapping");
	struct mcache_rec r = rec(400, "from the old handle", NULL);
	mcache_put(old, &r);
	ok(mcache_flush(old) == 0, "a handle on the replaced file flushes");
	mcache_refresh(c);
	ok(mcache_get(c, 400, &g), "... into the new file");
	mcache_free(&c);
	mcache_free(&old);
}

/* MCACHE_FIELD_MAX: a bigger field is left out of the record (the caller
 * then finds the record incomplete and parses the message). */
static void test_field_max(void)
{
	struct mcache *c;
	ok(mcache_open(dir, 42, &c) == 0, "open for the field limit");
	char *big = malloc(MCACHE_FIELD_MAX + 2);
	memset(big, 'b', MCACHE_FIELD_MAX + 1);
	big[MCACHE_FIELD_MAX + 1] = '\0';
	struct mcache_rec r = rec(500, "small", big), g;
	mcache_put(c, &r);
	big[MCACHE_FIELD_MAX] = '\0';         /* exactly at the limit: kept */
	r = rec(501, "small", big);
	mcache_put(c, &r);
	mcache_flush(c);
	mcache_refresh(c);
	ok(mcache_get(c, 500, &g) && field_is(&g, MCACHE_ENVELOPE, "small") && g.field[MCACHE_BODYSTRUCTURE] == NULL,
	   "a field over MCACHE_FIELD_MAX is left out, the rest kept");
	ok(mcache_get(c, 501, &g) && g.field_len[MCACHE_BODYSTRUCTURE] == MCACHE_FIELD_MAX,
	   "a field of exactly MCACHE_FIELD_MAX is kept");
	free(big);
	mcache_free(&c);
}

static void test_reset(void)
{
	struct mcache *c;
	ok(mcache_open(dir, 43, &c) == 0, "opens for another UIDVALIDITY");
	is_int(mcache_count(c), 0, "which empties it");
	mcache_free(&c);
	FILE *f = fopen(path, "w");
	fputs("this is not a cache file at all", f);
	fclose(f);
	ok(mcache_open(dir, 43, &c) == 0 && mcache_count(c) == 0, "a foreign file is replaced");
	mcache_free(&c);
	unlink(path);
	ok(mcache_open(dir, 43, &c) == 0 && mcache_count(c) == 0, "a deleted file is made again");
	mcache_free(&c);
}

int main(void)
{
	snprintf(dir, sizeof(dir), "/tmp/mcache-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(path, sizeof(path), "%s/%s", dir, MCACHE_NAME);
	test_codec();
	test_reopen();
	test_torn_tail();
	test_compact();
	test_field_max();
	test_reset();
	unlink(path);
	rmdir(dir);
	return tap_done();
}
