/* mcache.c - the per-folder message cache file (format in mcache.h). */
#include "mcache.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MCACHE_MAGIC "MPCACHE"
#define MCACHE_HDR_LEN 16
#define MCACHE_REC_FIXED (4 + 4 + 8 + 8 + 4)    /* len uid internal sent nfields */
#define MCACHE_FIELD_HDR (2 + 4)

struct mcache_slot {
	uint32_t uid;
	uint32_t checked;       /* its hash was verified: records in the map never change */
	size_t off;             /* of the newest record in the map */
};

struct mcache {
	char *path;
	int fd;
	dev_t dev;
	ino_t ino;
	uint32_t uidvalidity;
	const char *map;
	size_t maplen;          /* bytes mapped */
	size_t used;            /* bytes of complete records (and the header) */
	struct mcache_slot *slots;      /* ascending uid */
	size_t n, cap;
	struct buf pending;     /* encoded records for the next flush */
};

/* A record's check value: 8 bytes a step (a byte-wise FNV was a third of
 * a cached FETCH of 10,000 messages). Not cryptographic: it catches torn
 * writes and bit rot, which is all a cache needs. */
static uint32_t mcache_hash(const char *p, size_t len)
{
	uint64_t h = 0x9E3779B97F4A7C15ull ^ len, v;
	size_t i = 0;
	for (; i + 8 <= len; i += 8) {
		memcpy(&v, p + i, 8);
		h = (h ^ v) * 0xff51afd7ed558ccdull;
		h ^= h >> 32;
	}
	v = 0;
	memcpy(&v, p + i, len - i);
	h = (h ^ v) * 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 29;
	return (uint32_t)h;
}

void mcache_encode(struct buf *out, const struct mcache_rec *r)
{
	uint32_t nfields = 0, len = MCACHE_REC_FIXED + 4;
	for (int f = 1; f <= MCACHE_FIELD_LAST; f++)
		if (r->field[f] != NULL && r->field_len[f] <= MCACHE_FIELD_MAX) {
			nfields++;
			len += MCACHE_FIELD_HDR + r->field_len[f];
		}
	size_t start = out->len;
	buf_append(out, &len, 4);
	buf_append(out, &r->uid, 4);
	buf_append(out, &r->internal, 8);
	buf_append(out, &r->sent, 8);
	buf_append(out, &nfields, 4);
	for (uint16_t f = 1; f <= MCACHE_FIELD_LAST; f++) {
		if (r->field[f] == NULL || r->field_len[f] > MCACHE_FIELD_MAX)
			continue;
		buf_append(out, &f, 2);
		buf_append(out, &r->field_len[f], 4);
		buf_append(out, r->field[f], r->field_len[f]);
	}
	uint32_t h = mcache_hash(buf_ptr(out) + start, out->len - start);
	buf_append(out, &h, 4);
}

/* The fields of a record whose length and hash were checked. */
static bool mcache_decode_fields(const char *p, size_t len, uint32_t nfields, struct mcache_rec *r)
{
	size_t off = MCACHE_REC_FIXED, end = len - 4;
	for (uint32_t i = 0; i < nfields; i++) {
		uint16_t id;
		uint32_t flen;
		if (end - off < MCACHE_FIELD_HDR)
			return false;
		memcpy(&id, p + off, 2);
		memcpy(&flen, p + off + 2, 4);
		off += MCACHE_FIELD_HDR;
		if (flen > end - off)
			return false;
		if (id >= 1 && id <= MCACHE_FIELD_LAST) {  /* unknown ids: a newer writer */
			r->field[id] = p + off;
			r->field_len[id] = flen;
		}
		off += flen;
	}
	return off == end;
}

static size_t mcache_decode_rec(const char *p, size_t len, struct mcache_rec *r, bool verify)
{
	uint32_t rlen, nfields, h;
	memset(r, 0, sizeof(*r));
	if (len < MCACHE_REC_FIXED + 4)
		return 0;
	memcpy(&rlen, p, 4);
	if (rlen < MCACHE_REC_FIXED + 4 || rlen > len)
		return 0;
	memcpy(&h, p + rlen - 4, 4);
	if (verify && h != mcache_hash(p, rlen - 4))
		return 0;
	memcpy(&r->uid, p + 4, 4);
	memcpy(&r->internal, p + 8, 8);
	memcpy(&r->sent, p + 16, 8);
	memcpy(&nfields, p + 24, 4);
	if (!mcache_decode_fields(p, rlen, nfields, r)) {
		memset(r, 0, sizeof(*r));
		return 0;
	}
	return rlen;
}

size_t mcache_decode(const char *p, size_t len, struct mcache_rec *r)
{
	return mcache_decode_rec(p, len, r, true);
}

/* The length and UID of the record at p, 0 if it does not fit in len.
 * Indexing looks no further; the hash is checked when a record is read
 * (mcache_get), so opening a big cache costs no pass over its bytes. */
static size_t mcache_peek(const char *p, size_t len, uint32_t *uid)
{
	uint32_t rlen;
	if (len < MCACHE_REC_FIXED + 4)
		return 0;
	memcpy(&rlen, p, 4);
	if (rlen < MCACHE_REC_FIXED + 4 || rlen > len)
		return 0;
	memcpy(uid, p + 4, 4);
	return rlen;
}

/* The slot of uid, or where it would go. */
static size_t mcache_find(const struct mcache *mc, uint32_t uid)
{
	size_t lo = 0, hi = mc->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (mc->slots[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void mcache_index(struct mcache *mc, uint32_t uid, size_t off)
{
	size_t i = mc->n && mc->slots[mc->n - 1].uid < uid ? mc->n : mcache_find(mc, uid);
	if (i < mc->n && mc->slots[i].uid == uid) {
		mc->slots[i].off = off;
		mc->slots[i].checked = 0;
		return;
	}
	if (mc->n == mc->cap) {
		mc->cap = mc->cap ? mc->cap * 2 : 256;
		mc->slots = xreallocarray(mc->slots, mc->cap, sizeof(*mc->slots));
	}
	memmove(&mc->slots[i + 1], &mc->slots[i], (mc->n - i) * sizeof(*mc->slots));
	mc->slots[i] = (struct mcache_slot){ .uid = uid, .off = off };
	mc->n++;
}

static void mcache_unmap(struct mcache *mc)
{
	if (mc->map != NULL)
		munmap((void *)mc->map, mc->maplen);
	mc->map = NULL;
	mc->maplen = mc->used = 0;
	mc->n = 0;
}

static bool mcache_header_ok(const struct mcache *mc, const char *p, size_t len)
{
	uint32_t v;
	if (len < MCACHE_HDR_LEN || memcmp(p, MCACHE_MAGIC, 7) != 0 || p[7] != MCACHE_VERSION)
		return false;
	memcpy(&v, p + 8, 4);
	return v == mc->uidvalidity;
}

/* Maps the file's first size bytes (again) and indexes the complete
 * records past mc->used. Returns the offset where parsing stopped. */
static int mcache_map(struct mcache *mc, size_t size)
{
	if (size <= mc->used)
		return 0;
	void *p = mmap(NULL, size, PROT_READ, MAP_SHARED, mc->fd, 0);
	if (p == MAP_FAILED)
		return -1;
	if (mc->map != NULL)
		munmap((void *)mc->map, mc->maplen);
	mc->map = p;
	mc->maplen = size;
	if (mc->used < MCACHE_HDR_LEN)
		mc->used = MCACHE_HDR_LEN;
	uint32_t uid;
	for (size_t rlen; mc->used < size && (rlen = mcache_peek(mc->map + mc->used, size - mc->used, &uid)) > 0;
	     mc->used += rlen)
		mcache_index(mc, uid, mc->used);
	return 0;
}

/* (Re)opens the file at mc->path. */
static int mcache_reopen(struct mcache *mc)
{
	if (mc->fd >= 0)
		close(mc->fd);
	mcache_unmap(mc);
	mc->fd = open(mc->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	struct stat st;
	if (mc->fd < 0 || fstat(mc->fd, &st) < 0)
		return -1;
	mc->dev = st.st_dev;
	mc->ino = st.st_ino;
	return 0;
}

/* A new file (a fresh header, then the records of uids[0 .. n), or of
 * every indexed UID when uids is NULL) renamed over the old one. Never a
 * truncate in place: other processes may have the file mapped, and pages
 * cut off under a mapping fault (SIGBUS). Call with the lock held. */
static int mcache_replace(struct mcache *mc, const uint32_t *uids, size_t n)
{
	char tmp[4096];
	snprintf(tmp, sizeof(tmp), "%s.tmp", mc->path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	struct buf b = { 0 };
	char hdr[MCACHE_HDR_LEN] = MCACHE_MAGIC;
	hdr[7] = MCACHE_VERSION;
	memcpy(hdr + 8, &mc->uidvalidity, 4);
	buf_append(&b, hdr, sizeof(hdr));
	struct mcache_rec r;
	for (size_t i = 0; i < (uids ? n : mc->n); i++)
		if (mcache_get(mc, uids ? uids[i] : mc->slots[i].uid, &r))
			mcache_encode(&b, &r);
	int rc = write(fd, buf_ptr(&b), b.len) == (ssize_t)b.len ? 0 : -1;
	buf_free(&b);
	if (close(fd) < 0 || rc < 0 || rename(tmp, mc->path) < 0) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* Did compaction or a repair replace the file under our fd? */
static bool mcache_replaced(const struct mcache *mc)
{
	struct stat st;
	return stat(mc->path, &st) < 0 || st.st_dev != mc->dev || st.st_ino != mc->ino;
}

/* Reads what was appended; a record that does not parse is either being
 * written right now (its writer holds the lock) or a torn write from a
 * crash: under the lock it is looked at again, and a file still bad is
 * replaced by its good records. */
static int mcache_tail(struct mcache *mc, bool locked)
{
	struct stat st;
	if (fstat(mc->fd, &st) < 0 || (size_t)st.st_size > MCACHE_FILE_MAX || mcache_map(mc, (size_t)st.st_size) < 0)
		return -1;
	if (mc->used == (size_t)st.st_size)
		return 0;
	int rc = -1;
	if (locked || flock(mc->fd, LOCK_EX) == 0) {
		if (fstat(mc->fd, &st) == 0 && mcache_map(mc, (size_t)st.st_size) == 0)
			rc = mc->used == (size_t)st.st_size || mcache_replace(mc, NULL, 0) == 0 ? 0 : -1;
		if (!locked)
			flock(mc->fd, LOCK_UN);
	}
	return rc;
}

/* Opens the file and checks its header: one for another UIDVALIDITY or
 * version, or no cache at all, is replaced by an empty cache. */
static int mcache_load(struct mcache *mc)
{
	for (int attempt = 0; attempt < 3; attempt++) {
		if (mcache_reopen(mc) < 0)
			return -1;
		char hdr[MCACHE_HDR_LEN];
		if (pread(mc->fd, hdr, sizeof(hdr), 0) == (ssize_t)sizeof(hdr) && mcache_header_ok(mc, hdr, sizeof(hdr)))
			return mcache_tail(mc, false);
		if (flock(mc->fd, LOCK_EX) < 0)
			return -1;
		/* under the lock: another process may have replaced it already */
		if (!mcache_replaced(mc) && mcache_replace(mc, NULL, 0) < 0) {
			flock(mc->fd, LOCK_UN);
			return -1;
		}
		flock(mc->fd, LOCK_UN);
	}
	errno = EAGAIN;
	return -1;
}

int mcache_open(const char *root, uint32_t uidvalidity, struct mcache **mc_r)
{
	struct mcache *mc = xcalloc(1, sizeof(*mc));
	size_t n = strlen(root) + sizeof("/" MCACHE_NAME);
	mc->path = xmalloc(n);
	snprintf(mc->path, n, "%s/%s", root, MCACHE_NAME);
	mc->fd = -1;
	mc->uidvalidity = uidvalidity;
	if (mcache_load(mc) < 0) {
		int e = errno;
		mcache_free(&mc);
		errno = e;
		return -1;
	}
	*mc_r = mc;
	return 0;
}

void mcache_refresh(struct mcache *mc)
{
	if (mc->fd < 0)
		return;
	if (mcache_replaced(mc) ? mcache_load(mc) < 0 : mcache_tail(mc, false) < 0)
		mcache_unmap(mc);
}

bool mcache_get(const struct mcache *mc, uint32_t uid, struct mcache_rec *r)
{
	size_t i = mcache_find(mc, uid);
	if (i >= mc->n || mc->slots[i].uid != uid)
		return false;
	/* The hash is checked on a slot's first read only: a SORT or FETCH
	 * over a warm 10,000-message cache spent a fifth of its time on it.
	 * The job that reads holds this mcache alone (see mcache.h). */
	struct mcache_slot *sl = &mc->slots[i];
	if (mcache_decode_rec(mc->map + sl->off, mc->used - sl->off, r, !sl->checked) == 0)
		return false;
	sl->checked = 1;
	return true;
}

void mcache_put(struct mcache *mc, const struct mcache_rec *r)
{
	mcache_encode(&mc->pending, r);
}

int mcache_flush(struct mcache *mc)
{
	if (mc->pending.len == 0)
		return 0;
	int rc = -1;
	if (mc->fd >= 0 && flock(mc->fd, LOCK_EX) == 0) {
		if (mcache_replaced(mc)) {
			flock(mc->fd, LOCK_UN);
			if (mcache_load(mc) < 0 || flock(mc->fd, LOCK_EX) < 0)
				goto out;
		}
		/* O_APPEND: one write of whole records at the end of the file */
		rc = write(mc->fd, buf_ptr(&mc->pending), mc->pending.len) == (ssize_t)mc->pending.len ? 0 : -1;
		flock(mc->fd, LOCK_UN);
	}
out:
	buf_clear(&mc->pending);
	return rc;
}

int mcache_compact(struct mcache *mc, const uint32_t *uids, size_t n)
{
	if (mc->fd < 0 || mc->used < MCACHE_COMPACT_MIN)
		return 0;
	size_t live = MCACHE_HDR_LEN;
	uint32_t uid;
	for (size_t i = 0; i < n; i++) {
		size_t k = mcache_find(mc, uids[i]);
		if (k < mc->n && mc->slots[k].uid == uids[i])
			live += mcache_peek(mc->map + mc->slots[k].off, mc->used - mc->slots[k].off, &uid);
	}
	if (live * 2 > mc->used)
		return 0;
	int rc = -1;
	if (flock(mc->fd, LOCK_EX) == 0) {
		/* records appended meanwhile are kept; a file another process
		 * replaced meanwhile is left to it */
		rc = mcache_replaced(mc) ? 0 : mcache_tail(mc, true) == 0 ? mcache_replace(mc, uids, n) : -1;
		flock(mc->fd, LOCK_UN);
	}
	if (mcache_load(mc) < 0)
		mcache_unmap(mc);
	return rc;
}

void mcache_free(struct mcache **mcp)
{
	struct mcache *mc = *mcp;
	if (mc == NULL)
		return;
	mcache_unmap(mc);
	if (mc->fd >= 0)
		close(mc->fd);
	free(mc->slots);
	free(mc->path);
	buf_free(&mc->pending);
	free(mc);
	*mcp = NULL;
}

size_t mcache_count(const struct mcache *mc)
{
	return mc->n;
}

size_t mcache_file_size(const struct mcache *mc)
{
	return mc->used;
}
