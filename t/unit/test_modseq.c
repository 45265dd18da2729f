/* test_modseq.c - the modseq file (src/store/modseq.h): flags keys (and
 * MODSEQ_FLAGS_MAX crossed), new modseqs, records and expunge ranges,
 * VANISHED history (MODSEQ_EXPUNGED_MAX crossed: the floor), the format
 * round trip, hostile and torn files cut at every byte, the rewrite
 * threshold (MODSEQ_COMPACT_LINES crossed); then the file on disk: append,
 * a torn tail cut off, compaction by rename with a second handle, a new
 * UIDVALIDITY, the file replaced under a waiting writer (MODSEQ_LOCK_TRIES
 * crossed), and modseq_sync against a real Maildir (new messages, a rename
 * behind its back, a deletion, a message the scan missed, a stale scan). */
#include "store/modseq.h"
#include "store/mailbox.h"
#include "core/util.h"
#include "tap.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static struct modseq *fresh(uint32_t uv, uint64_t now)
{
	struct modseq *ms = xcalloc(1, sizeof(*ms));
	modseq_init(ms, uv, now);
	return ms;
}

static int parse(struct modseq **msp, uint32_t uv, const char *data, size_t len, size_t *good)
{
	*msp = fresh(uv, 5);
	return modseq_parse(*msp, data, len, good);
}

static void keys(void)
{
	char k[MODSEQ_FLAGS_MAX + 2], in[MODSEQ_FLAGS_MAX + 2];
	modseq_key("", k);
	is_str(k, "-", "key: no flags is -");
	modseq_key("FRSa", k);
	is_str(k, "FRSa", "key: letters as they are");
	modseq_key("S T", k);
	ok(k[0] == '#' && strlen(k) == 17, "key: a space makes a hash (%s)", k);
	modseq_key("-S", k);
	ok(k[0] == '#', "key: a leading - is hashed (no clash with none)");
	memset(in, 'a', MODSEQ_FLAGS_MAX);
	in[MODSEQ_FLAGS_MAX] = '\0';
	modseq_key(in, k);
	is_str(k, in, "key: MODSEQ_FLAGS_MAX letters kept");
	in[MODSEQ_FLAGS_MAX] = 'b';
	in[MODSEQ_FLAGS_MAX + 1] = '\0';
	modseq_key(in, k);
	ok(k[0] == '#', "key: MODSEQ_FLAGS_MAX + 1 letters hashed");
	char k2[MODSEQ_FLAGS_MAX + 2];
	in[MODSEQ_FLAGS_MAX] = 'c';
	modseq_key(in, k2);
	ok(strcmp(k, k2) != 0, "key: hashes of different long flags differ");
}

static void news(void)
{
	struct modseq *ms = fresh(7, 0);
	is_int(ms->highest, 1, "init: highest at least 1");
	is_int(modseq_new(ms, 1000), 1000, "new: the clock when ahead");
	is_int(modseq_new(ms, 1000), 1001, "new: highest + 1 in the same microsecond");
	is_int(modseq_new(ms, 10), 1002, "new: highest + 1 when the clock went back");
	ms->highest = MODSEQ_VALUE_MAX;
	is_int(modseq_new(ms, 5), MODSEQ_VALUE_MAX, "new: saturates at 2^63-1");
	modseq_free(&ms);
	ok(ms == NULL, "free sets NULL");
	modseq_free(&ms);
}

static char *vanished_str(const struct modseq *ms, uint64_t since, int *rc)
{
	static char out[512];
	struct modseq_range *r;
	size_t n;
	out[0] = '\0';
	*rc = modseq_vanished(ms, since, &r, &n);
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(out);
		snprintf(out + l, sizeof(out) - l, "%s%u:%u", i ? "," : "", r[i].lo, r[i].hi);
	}
	free(r);
	return out;
}

static void records(void)
{
	struct modseq *ms = fresh(9, 100);
	int rc;
	modseq_set(ms, 5, 101, "S");
	modseq_set(ms, 2, 101, "-");
	modseq_set(ms, 9, 102, "RS");
	modseq_set(ms, 5, 103, "ST");
	is_int(ms->live, 3, "records: three live");
	ok(modseq_get(ms, 5) && modseq_get(ms, 5)->modseq == 103 && strcmp(modseq_get(ms, 5)->flags, "ST") == 0,
	   "records: a later record replaces");
	ok(modseq_get(ms, 3) == NULL, "records: unknown UID");
	is_int(ms->highest, 103, "records: highest follows");
	uint32_t gone[] = { 2, 3, 4, 5 };
	modseq_expunge(ms, gone, 4, 104);
	ok(modseq_get(ms, 2) == NULL && modseq_get(ms, 5) == NULL, "expunge: gone");
	is_int(ms->live, 1, "expunge: one live");
	is_int(ms->ngone, 1, "expunge: a run of UIDs is one range");
	uint32_t again[] = { 5, 9 };
	modseq_expunge(ms, again, 2, 105);
	is_int(ms->ngone, 2, "expunge: UIDs expunged already are left alone");
	is_str(vanished_str(ms, 103, &rc), "2:5,9:9", "vanished since 103");
	is_str(vanished_str(ms, 104, &rc), "9:9", "vanished since 104");
	ok(rc == 1, "vanished: history complete");
	modseq_set(ms, 5, 106, "-");
	ok(modseq_get(ms, 5) != NULL, "a record after the expunge brings the UID back");
	is_str(ms->pending.data, "M5 101 S\nM2 101 -\nM9 102 RS\nM5 103 ST\nX2:5 104\nX9 105\nM5 106 -\n",
	       "pending lines");
	struct buf b = { 0 };
	modseq_format(ms, &b);
	is_str(buf_ptr(&b), "MPMODSEQ 1 V9 H106 E0\nX2:5 104\nX9 105\nM5 106 -\n", "format: compacted");
	struct modseq *back;
	size_t good;
	ok(parse(&back, 9, buf_ptr(&b), b.len, &good) == 0 && good == b.len, "format parses back whole");
	ok(back->live == 1 && back->highest == 106 && back->ngone == 2 && modseq_get(back, 5)->modseq == 106,
	   "parse: the same state");
	modseq_free(&back);
	buf_free(&b);
	modseq_free(&ms);
}

static void history_limit(void)
{
	struct modseq *ms = fresh(1, 10);
	int rc;
	/* MODSEQ_EXPUNGED_MAX + 1 ranges (every other UID), one expunge each */
	for (uint32_t i = 0; i <= MODSEQ_EXPUNGED_MAX; i++) {
		uint32_t uid = 2 * i + 1;
		modseq_expunge(ms, &uid, 1, 100 + i);
	}
	is_int(ms->ngone, MODSEQ_EXPUNGED_MAX, "history: MODSEQ_EXPUNGED_MAX ranges kept");
	is_int(ms->floor, 100, "history: the floor is the modseq of the oldest dropped");
	vanished_str(ms, 99, &rc);
	ok(rc == 0, "history: since below the floor is incomplete");
	vanished_str(ms, 100, &rc);
	ok(rc == 1, "history: since at the floor is complete");
	is_str(vanished_str(ms, 100 + MODSEQ_EXPUNGED_MAX - 1, &rc), "2049:2049", "history: the newest one");
	/* the floor survives the file */
	struct buf b = { 0 };
	modseq_format(ms, &b);
	struct modseq *back;
	size_t good;
	ok(parse(&back, 1, buf_ptr(&b), b.len, &good) == 0 && back->floor == 100 &&
	   back->ngone == MODSEQ_EXPUNGED_MAX, "history: floor and ranges read back");
	modseq_free(&back);
	buf_free(&b);
	/* the dropped X lines, read again from an appended file, drop again */
	ok(parse(&back, 1, "MPMODSEQ 1 V1 H5 E0\n", 20, &good) == 0, "history: empty file");
	for (uint32_t i = 0; i <= MODSEQ_EXPUNGED_MAX; i++) {
		char line[64];
		int n = snprintf(line, sizeof(line), "X%u %u\n", 2 * i + 1, 100 + i);
		buf_append(&b, line, (size_t)n);
	}
	struct modseq *app;
	struct buf all = { 0 };
	buf_append_str(&all, "MPMODSEQ 1 V1 H5 E0\n");
	buf_append(&all, buf_ptr(&b), b.len);
	ok(parse(&app, 1, buf_ptr(&all), all.len, &good) == 0 && app->floor == 100 &&
	   app->ngone == MODSEQ_EXPUNGED_MAX, "history: an appended file trims alike");
	modseq_free(&app);
	modseq_free(&back);
	buf_free(&all);
	buf_free(&b);
	modseq_free(&ms);
}

struct bad_case {
	const char *name, *in;
	int rc;
	size_t good;
	size_t live;
};

static void hostile(void)
{
	static const struct bad_case cases[] = {
		{ "empty", "", -1, 0, 0 },
		{ "no LF after the header", "MPMODSEQ 1 V3 H5 E0", -1, 0, 0 },
		{ "another magic", "MPCACHE 1 V3 H5 E0\n", -1, 0, 0 },
		{ "another version", "MPMODSEQ 2 V3 H5 E0\n", -1, 0, 0 },
		{ "another UIDVALIDITY", "MPMODSEQ 1 V4 H5 E0\n", -1, 0, 0 },
		{ "H 0", "MPMODSEQ 1 V3 H0 E0\n", -1, 0, 0 },
		{ "header with extra", "MPMODSEQ 1 V3 H5 E0 Z\n", -1, 0, 0 },
		{ "good", "MPMODSEQ 1 V3 H5 E0\nM1 6 S\nM2 7 -\n", 0, 34, 2 },
		{ "torn tail", "MPMODSEQ 1 V3 H5 E0\nM1 6 S\nM2 7", 0, 27, 1 },
		{ "bad line in the middle cuts the rest", "MPMODSEQ 1 V3 H5 E0\nM1 6 S\nQ\nM2 7 -\n", 0, 27, 1 },
		{ "uid 0", "MPMODSEQ 1 V3 H5 E0\nM0 6 S\n", 0, 20, 0 },
		{ "modseq 0", "MPMODSEQ 1 V3 H5 E0\nM1 0 S\n", 0, 20, 0 },
		{ "leading zero", "MPMODSEQ 1 V3 H5 E0\nM01 6 S\n", 0, 20, 0 },
		{ "modseq 2^63", "MPMODSEQ 1 V3 H5 E0\nM1 9223372036854775808 S\n", 0, 20, 0 },
		{ "modseq 2^63-1", "MPMODSEQ 1 V3 H5 E0\nM1 9223372036854775807 S\n", 0, 45, 1 },
		{ "uid 2^32", "MPMODSEQ 1 V3 H5 E0\nM4294967296 6 S\n", 0, 20, 0 },
		{ "no flags", "MPMODSEQ 1 V3 H5 E0\nM1 6\n", 0, 20, 0 },
		{ "empty flags", "MPMODSEQ 1 V3 H5 E0\nM1 6 \n", 0, 20, 0 },
		{ "two spaces", "MPMODSEQ 1 V3 H5 E0\nM1  6 S\n", 0, 20, 0 },
		{ "bad hash", "MPMODSEQ 1 V3 H5 E0\nM1 6 #xyz\n", 0, 20, 0 },
		{ "-x", "MPMODSEQ 1 V3 H5 E0\nM1 6 -x\n", 0, 20, 0 },
		{ "X backwards", "MPMODSEQ 1 V3 H5 E0\nM1 6 S\nX5:2 7\n", 0, 27, 1 },
		{ "X with flags", "MPMODSEQ 1 V3 H5 E0\nX1 7 S\n", 0, 20, 0 },
		{ "X range", "MPMODSEQ 1 V3 H5 E0\nM1 6 S\nX1:3 7\n", 0, 34, 0 },
		{ "NUL bytes (a crash's zeroed tail)", "MPMODSEQ 1 V3 H5 E0\nM1 6 S\n\0\0\0\n", 0, 27, 1 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const struct bad_case *c = &cases[i];
		size_t len = strlen(c->in), good;
		if (strstr(c->name, "NUL"))
			len = 27 + 4;
		struct modseq *ms;
		int rc = parse(&ms, 3, c->in, len, &good);
		ok(rc == c->rc && (rc < 0 || (good == c->good && ms->live == c->live)),
		   "hostile: %s (rc %d good %zu live %zu)", c->name, rc, good, ms->live);
		if (rc < 0)
			ok(ms->reset && ms->live == 0 && ms->highest == 5, "hostile: %s leaves a fresh state", c->name);
		modseq_free(&ms);
	}
	char line[MODSEQ_LINE_MAX + 64];
	memset(line, 'a', sizeof(line));
	int n = snprintf(line, sizeof(line), "MPMODSEQ 1 V3 H5 E0\nM1 6 ");
	memset(line + n, 'a', MODSEQ_LINE_MAX);
	line[20 + MODSEQ_LINE_MAX] = '\n';
	struct modseq *ms;
	size_t good;
	ok(parse(&ms, 3, line, 21 + MODSEQ_LINE_MAX, &good) == 0 && good == 20,
	   "hostile: a line over MODSEQ_LINE_MAX is cut");
	modseq_free(&ms);
}

/* Every prefix of a good file: the state of its complete lines. */
static void prefixes(void)
{
	const char *in = "MPMODSEQ 1 V3 H5 E1\nM1 6 S\nM2 7 -\nX1 8\nM3 9 #0123456789abcdef\nX2:3 10\n";
	size_t len = strlen(in), fails = 0;
	for (size_t cut = 0; cut <= len; cut++) {
		struct modseq *ms;
		size_t good;
		int rc = parse(&ms, 3, in, cut, &good);
		size_t want = 0;
		for (size_t i = 0; i < cut; i++)
			if (in[i] == '\n')
				want = i + 1;
		if (want == 0 ? rc != -1 : (rc != 0 || good != want))
			fails++;
		modseq_free(&ms);
	}
	ok(fails == 0, "every prefix parses to its last complete line (%zu bad)", fails);
}

static void rewrite_due(void)
{
	struct modseq *ms;
	size_t good;
	ok(parse(&ms, 3, "MPMODSEQ 1 V3 H5 E0\n", 20, &good) == 0 && !modseq_rewrite_due(ms),
	   "rewrite: not due for a good file");
	for (int i = 0; i < MODSEQ_COMPACT_LINES; i++)
		modseq_set(ms, 1, 10 + (uint64_t)i, "S");
	ok(!modseq_rewrite_due(ms), "rewrite: MODSEQ_COMPACT_LINES - 1 dead lines: append");
	modseq_set(ms, 1, 20000, "S");
	ok(modseq_rewrite_due(ms), "rewrite: MODSEQ_COMPACT_LINES dead lines: rewrite");
	modseq_free(&ms);
	ms = fresh(3, 5);
	ok(modseq_rewrite_due(ms), "rewrite: a fresh state is written whole");
	modseq_free(&ms);
}

/* --- on disk --- */

static char dir[] = "/tmp/test_modseq.XXXXXX";

static size_t file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (size_t)st.st_size : 0;
}

static void on_disk(void)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/" MODSEQ_NAME, dir);
	struct modseq *ms;
	ok(modseq_open(dir, 42, true, &ms) == 0 && ms->reset, "disk: a missing file opens fresh");
	uint64_t m = modseq_new(ms, modseq_now());
	modseq_set(ms, 1, m, "S");
	ok(modseq_commit(ms) == 0, "disk: the first commit writes the whole file");
	modseq_free(&ms);
	ok(modseq_open(dir, 42, true, &ms) == 0 && !ms->reset && modseq_get(ms, 1)->modseq == m,
	   "disk: read back");
	size_t before = file_size(path);
	modseq_set(ms, 2, modseq_new(ms, 0), "-");
	ok(modseq_commit(ms) == 0 && file_size(path) == before + strlen("M2 ") +
	   (size_t)snprintf(NULL, 0, "%llu", (unsigned long long)ms->highest) + 3, "disk: the next one appends");
	modseq_free(&ms);
	/* a torn tail, as a crash mid-append leaves it */
	int fd = open(path, O_WRONLY | O_APPEND);
	ok(fd >= 0 && write(fd, "M3 99", 5) == 5, "disk: a torn line appended");
	close(fd);
	ok(modseq_open(dir, 42, true, &ms) == 0 && ms->live == 2, "disk: the torn line is not read");
	modseq_set(ms, 3, modseq_new(ms, 0), "T");
	ok(modseq_commit(ms) == 0, "disk: commit after a torn tail");
	modseq_free(&ms);
	ok(modseq_open(dir, 42, false, &ms) == 0 && ms->live == 3 && strcmp(modseq_get(ms, 3)->flags, "T") == 0,
	   "disk: the torn tail was cut before the append");
	modseq_free(&ms);
	/* compaction renames a new file over the old: a second handle that
	 * waited on the old inode reads the new one */
	struct modseq *a;
	ok(modseq_open(dir, 42, true, &a) == 0, "disk: handle a");
	for (int i = 0; i <= MODSEQ_COMPACT_LINES; i++)
		modseq_set(a, 1, modseq_new(a, 0), i % 2 ? "S" : "-");
	struct stat st0, st1;
	stat(path, &st0);
	ok(modseq_commit(a) == 0, "disk: commit past MODSEQ_COMPACT_LINES dead lines");
	stat(path, &st1);
	ok(st0.st_ino != st1.st_ino, "disk: ... rewrote the file by rename");
	ok(file_size(path) < 200, "disk: ... compacted (%zu bytes)", file_size(path));
	uint64_t h = a->highest;
	modseq_free(&a);
	ok(modseq_open(dir, 42, false, &ms) == 0 && ms->highest == h && ms->live == 3,
	   "disk: the compacted file reads the same");
	modseq_free(&ms);
	/* modseq_open_gone: the same expunges, floor and HIGHESTMODSEQ, no
	 * messages (what a QRESYNC VANISHED needs) */
	ok(modseq_open(dir, 42, true, &ms) == 0, "disk: open for expunges");
	uint32_t gone[] = { 2, 3 };
	modseq_expunge(ms, gone, 2, modseq_new(ms, 0));
	modseq_set(ms, 7, modseq_new(ms, 0), "S");
	ok(modseq_commit(ms) == 0, "disk: expunge 2:3, then a message");
	struct modseq_range *r1, *r2;
	size_t n1, n2;
	int rc1 = modseq_vanished(ms, 0, &r1, &n1);
	uint64_t h1 = ms->highest;
	modseq_free(&ms);
	ok(modseq_open_gone(dir, 42, &ms) == 0 && ms->live == 0 && ms->count == 0, "disk: gone-only: no messages");
	int rc2 = modseq_vanished(ms, 0, &r2, &n2);
	ok(rc1 == rc2 && n1 == n2 && n1 == 1 && r1[0].lo == r2[0].lo && r1[0].hi == r2[0].hi && ms->highest == h1,
	   "disk: gone-only: the same VANISHED (%zu range %u:%u) and HIGHESTMODSEQ", n2, n2 ? r2[0].lo : 0,
	   n2 ? r2[0].hi : 0);
	free(r1);
	free(r2);
	modseq_free(&ms);
	ok(modseq_open(dir, 43, true, &ms) == 0 && ms->reset && ms->live == 0 && ms->highest > 1,
	   "disk: another UIDVALIDITY starts afresh");
	modseq_free(&ms);
	/* MODSEQ_FILE_MAX crossed (sparse: no disk used); smaller ones are
	 * read all along */
	ok(truncate(path, (off_t)MODSEQ_FILE_MAX + 1) == 0 && modseq_open(dir, 42, true, &ms) == 0 && ms->reset &&
	   ms->live == 0, "disk: one byte more is not read: afresh");
	ok(modseq_commit(ms) == 0 && file_size(path) < 100, "disk: ... and rewritten small");
	modseq_free(&ms);
}

/* MODSEQ_LOCK_TRIES crossed: a file replaced (as compaction does) every
 * time the lock is had gives up with EAGAIN rather than loop. */
struct locker {
	int rc, err;
	volatile int done;
};

static void *locker_run(void *arg)
{
	struct locker *l = arg;
	struct modseq *ms;
	l->rc = modseq_open(dir, 42, true, &ms);
	l->err = errno;
	if (l->rc == 0)
		modseq_free(&ms);
	l->done = 1;
	return NULL;
}

static void lock_tries(void)
{
	char path[256], tmp[300];
	snprintf(path, sizeof(path), "%s/" MODSEQ_NAME, dir);
	snprintf(tmp, sizeof(tmp), "%s.other", path);
	int held = open(path, O_RDWR | O_CREAT, 0600);
	ok(held >= 0 && flock(held, LOCK_EX) == 0, "lock: held by another writer");
	struct locker l = { 0 };
	pthread_t t;
	pthread_create(&t, NULL, locker_run, &l);
	int rounds = 0;
	for (; rounds < 50 && !l.done; rounds++) {
		usleep(20000);  /* the other waits for the lock of the file now there */
		int next = open(tmp, O_RDWR | O_CREAT | O_TRUNC, 0600);
		flock(next, LOCK_EX);
		rename(tmp, path);
		close(held);    /* the waiter gets the old inode: replaced, again */
		held = next;
	}
	usleep(20000);
	close(held);
	pthread_join(t, NULL);
	ok(l.rc == -1 && l.err == EAGAIN, "lock: replaced MODSEQ_LOCK_TRIES times in a row: EAGAIN (rc %d, %d rounds)",
	   l.rc, rounds);
	struct modseq *ms;
	ok(modseq_open(dir, 42, true, &ms) == 0, "lock: then it opens");
	modseq_free(&ms);
}

static void put(const char *folder, const char *sub, const char *name)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s/%s", folder, sub, name);
	FILE *f = fopen(p, "w");
	fputs("Subject: x\n\nbody\n", f);
	fclose(f);
}

static uint64_t ms_of(const struct modseq *ms, uint32_t uid)
{
	const struct modseq_msg *r = modseq_get(ms, uid);
	return r ? r->modseq : 0;
}

static void sync_folder(void)
{
	char folder[256], err[256], a[600], b[600];
	snprintf(folder, sizeof(folder), "%s/Maildir", dir);
	mailbox_create(folder);
	put(folder, "cur", "1000.M1P1.test:2,S");
	put(folder, "new", "1001.M2P1.test");
	struct mailbox *mb;
	struct modseq *ms;
	ok(mailbox_open(folder, 0, &mb, err, sizeof(err)) == 0 && mb->count == 2, "sync: a folder of two");
	ok(modseq_sync(mb, &ms) == 0 && ms->live == 2 && ms_of(ms, 1) == ms_of(ms, 2) && ms_of(ms, 1) > 0,
	   "sync: both recorded with one modseq");
	uint64_t first = ms->highest;
	modseq_free(&ms);
	ok(modseq_sync(mb, &ms) == 0 && ms->highest == first, "sync: nothing changed, nothing new");
	modseq_free(&ms);
	mailbox_free(&mb);
	/* a rename by another program */
	snprintf(a, sizeof(a), "%s/cur/1000.M1P1.test:2,S", folder);
	snprintf(b, sizeof(b), "%s/cur/1000.M1P1.test:2,FS", folder);
	ok(rename(a, b) == 0, "sync: renamed behind its back");
	mailbox_open(folder, 0, &mb, err, sizeof(err));
	ok(modseq_sync(mb, &ms) == 0 && ms_of(ms, 1) > first && ms_of(ms, 2) == first,
	   "sync: the renamed one got a new modseq, the other kept its");
	uint64_t second = ms_of(ms, 1);
	modseq_free(&ms);
	/* a scan older than a rename another session made and recorded: the
	 * current name decides, no new modseq */
	snprintf(a, sizeof(a), "%s/cur/1000.M1P1.test:2,FRS", folder);
	rename(b, a);
	ok(modseq_open(folder, mb->hdr.uidvalidity, true, &ms) == 0, "sync: another session's record");
	uint64_t third = modseq_new(ms, 0);
	modseq_set(ms, 1, third, "FRS");
	modseq_commit(ms);
	modseq_free(&ms);
	ok(third > second && modseq_sync(mb, &ms) == 0 && ms_of(ms, 1) == third && ms->highest == third &&
	   strstr(mb->msgs[0].file, ":2,FRS") != NULL, "sync: a stale scan gets the current name");
	modseq_free(&ms);
	/* a message the scan missed (being renamed) goes back into mb */
	struct mailbox_msg lost = mb->msgs[1];
	mb->count = 1;
	ok(modseq_sync(mb, &ms) == 0 && mb->count == 2 && mb->msgs[1].uid == 2 && ms->live == 2,
	   "sync: a message missing from the scan but there is put back, not expunged");
	free(lost.base);
	free(lost.file);
	free(lost.ext);
	free(lost.uidl);
	modseq_free(&ms);
	/* expunged and recorded by another session after this scan: not
	 * brought back, dropped from the stale scan */
	char p2[600];
	snprintf(p2, sizeof(p2), "%s/%s", folder, mb->msgs[1].file);
	ok(unlink(p2) == 0 && modseq_open(folder, mb->hdr.uidvalidity, true, &ms) == 0, "sync: UID 2 expunged");
	uint32_t two = 2;
	uint64_t gone_at = modseq_new(ms, 0);
	modseq_expunge(ms, &two, 1, gone_at);
	modseq_commit(ms);
	modseq_free(&ms);
	ok(modseq_sync(mb, &ms) == 0 && mb->count == 1 && ms->live == 1 && modseq_get(ms, 2) == NULL &&
	   ms->highest == gone_at, "sync: a stale scan does not bring back what another session expunged");
	modseq_free(&ms);
	mailbox_free(&mb);
	/* a deletion */
	unlink(a);
	mailbox_open(folder, 0, &mb, err, sizeof(err));
	ok(modseq_sync(mb, &ms) == 0 && ms->live == 0 && ms->ngone == 2 && ms->gone[1].lo == 1,
	   "sync: a deleted message is recorded expunged");
	modseq_free(&ms);
	mailbox_free(&mb);
}

int main(void)
{
	keys();
	news();
	records();
	history_limit();
	hostile();
	prefixes();
	rewrite_due();
	if (mkdtemp(dir) == NULL)
		return 1;
	on_disk();
	lock_tries();
	sync_folder();
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		ok(0, "cleanup");
	return tap_done();
}
