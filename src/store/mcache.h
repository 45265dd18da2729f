/* mcache.h - the per-folder message cache: what IMAP FETCH, SEARCH (and
 * later SORT/THREAD) need of a message without opening its file.
 *
 * One file per Maildir folder, MCACHE_NAME next to dovecot-uidlist. A
 * Maildir message never changes once delivered (only the flags in its
 * name do), so a record keyed by UID stays true as long as UIDVALIDITY
 * does; nothing else can make it stale. The file is only a cache: it is
 * never fsync'd, a torn or corrupt tail is cut off at the last good
 * record, a wrong UIDVALIDITY or version empties it, and a deleted file
 * is simply rebuilt as messages are fetched.
 *
 *   header   "MPCACHE" version(1 byte) uidvalidity(u32) reserved(u32)
 *   record   len(u32) uid(u32) internal(i64) sent(i64) nfields(u32)
 *            { id(u16) len(u32) bytes } ... hash(u32)
 *
 * All integers in host order (the cache never leaves the machine); len
 * is the whole record, hash is a 64-bit multiply-xorshift over everything
 * before it, folded to 32 bits (mcache.c). A later
 * record for the same UID replaces an earlier one (a record with more
 * fields, or two sessions that filled the same message).
 *
 * Writers append whole records with one write() under flock(LOCK_EX);
 * readers mmap the file without a lock and read records up to the last
 * complete one. Compaction (mcache_compact) rewrites the live records into
 * a new file renamed over the old one; a writer whose fd is then on the
 * old inode notices (dev/ino differ) and reopens.
 *
 * Everything here BLOCKS (file I/O): pool threads only. A struct mcache is
 * used by one thread at a time. */
#ifndef MP_MCACHE_H
#define MP_MCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define MCACHE_NAME "moonpost.cache"
#define MCACHE_VERSION 2              /* 2: the 8-byte-step hash */
#define MCACHE_FIELD_MAX (256 * 1024)   /* bigger fields are not cached */
#define MCACHE_FILE_MAX ((size_t)1 << 30) /* a bigger file is emptied */
#define MCACHE_COMPACT_MIN (256 * 1024) /* smaller files are never compacted */

/* The text fields, as IMAP writes them (the caller's format). */
enum mcache_field {
	MCACHE_ENVELOPE = 1,
	MCACHE_BODY = 2,                /* BODY: BODYSTRUCTURE without extensions */
	MCACHE_BODYSTRUCTURE = 3,
	MCACHE_SORT = 4,                /* SORT/THREAD keys (imap_sort.c) */
	MCACHE_FIELD_LAST = MCACHE_SORT,
};

struct mcache_rec {
	uint32_t uid;
	int64_t internal;       /* the file's mtime: INTERNALDATE */
	int64_t sent;           /* Date: in the sender's zone (t + offset), or internal */
	const char *field[MCACHE_FIELD_LAST + 1];       /* NULL = not cached */
	uint32_t field_len[MCACHE_FIELD_LAST + 1];
};

struct mcache;

/* Opens (creating) the cache of the folder at root for uidvalidity and
 * reads its records. A file for another UIDVALIDITY or version, or not a
 * cache at all, is emptied. 0, or -1 (errno): work without a cache. */
int mcache_open(const char *root, uint32_t uidvalidity, struct mcache **mc_r);
/* Reads records other processes appended since (and reopens a file that
 * compaction replaced). Pointers from mcache_get die here. */
void mcache_refresh(struct mcache *mc);
/* The newest record of uid: true with *r (pointing into the cache, valid
 * until the next refresh, flush or free), false when none is cached. */
bool mcache_get(const struct mcache *mc, uint32_t uid, struct mcache_rec *r);
/* Queues a record (the field pointers are copied from); written by the
 * next mcache_flush. Fields over MCACHE_FIELD_MAX are left out. */
void mcache_put(struct mcache *mc, const struct mcache_rec *r);
/* Appends the queued records; 0 or -1 (then they are dropped). */
int mcache_flush(struct mcache *mc);
/* Rewrites the file with only the records of uids[0 .. n) (ascending)
 * when dead records make up more than half of a file of at least
 * MCACHE_COMPACT_MIN bytes. 0 = nothing to do or done, -1 = failed (the
 * old file stays). */
int mcache_compact(struct mcache *mc, const uint32_t *uids, size_t n);
/* NULL-safe; sets *mcp = NULL. */
void mcache_free(struct mcache **mcp);

/* For tests: records indexed, bytes of the file. */
size_t mcache_count(const struct mcache *mc);
size_t mcache_file_size(const struct mcache *mc);

/* Pure: encodes a record (appends to out) / decodes the one at p (len
 * bytes available). Decode returns the record's length, 0 if p holds no
 * complete valid record. */
void mcache_encode(struct buf *out, const struct mcache_rec *r);
size_t mcache_decode(const char *p, size_t len, struct mcache_rec *r);

#endif
