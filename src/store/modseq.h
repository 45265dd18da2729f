/* modseq.h - per-folder modification sequences for CONDSTORE and QRESYNC
 * (RFC 7162): a MODSEQ per message, the folder's HIGHESTMODSEQ, and the
 * UIDs expunged with their modseq (for VANISHED (EARLIER)).
 *
 * Dovecot keeps modseqs in its index, which moonpost does not write, so
 * they live in a moonpost-owned file, MODSEQ_NAME, next to dovecot-uidlist.
 * The file records the state each message was last seen in, so a change
 * made by anyone - a moonpost STORE, Dovecot, POP3, a rename done by hand,
 * a delivery by another process - is found by comparing the folder with it
 * (modseq_sync) and gets a new modseq then.
 *
 * Format: text, one record per LF-terminated line:
 *
 *   MPMODSEQ 1 V<uidvalidity> H<highest> E<floor>    header, first line
 *   M<uid> <modseq> <flags>                          a message as last seen
 *   X<uid>[:<uid>] <modseq>                          UIDs expunged at modseq
 *
 * <flags> is the message's Maildir info (":2,<flags>" of its file name),
 * "-" for none, or "#" and 16 hex digits (a hash of it) when it is longer
 * than MODSEQ_FLAGS_MAX or holds a byte that is not graphic ASCII: only
 * equality matters. A later line for a UID replaces an earlier one; an X
 * line drops the M line before it, an M line after it brings the UID back
 * (a message missed by one scan and seen again). HIGHESTMODSEQ is the
 * largest of H and every modseq in the file. Only the newest
 * MODSEQ_EXPUNGED_MAX X ranges are kept; E is the largest modseq of those
 * dropped: for an older modseq the history is incomplete, and QRESYNC
 * answers with every UID known to be gone instead (RFC 7162 3.2.5.2, 3.2.6).
 * Every number is decimal; uid 1..2^32-1, modseq 1..2^63-1.
 *
 * A new modseq is max(highest + 1, the clock in microseconds): modseqs
 * grow with time, so a file that lost its tail in a crash (it is never
 * fsync'd) or was deleted never hands out again a modseq a client has
 * seen; the changes whose lines were lost differ from the file and get
 * new, larger modseqs at the next sync. (This assumes fewer than a million
 * changes a second and a clock that does not step back across a crash.)
 *
 * Writers append whole lines under flock(LOCK_EX), after cutting off a
 * torn or invalid tail (a crash mid-append); readers read under LOCK_SH up
 * to the last complete valid line. Compaction writes the live state into
 * a new file renamed over the old one; a process holding the old inode
 * notices (dev/ino differ) and opens the new one. A missing file, another
 * version or UIDVALIDITY, or a bad header starts afresh: every message
 * gets a new modseq.
 *
 * modseq.c is pure (no I/O: parse, format, the state); modseq_file.c does
 * the file and the comparison with the folder and BLOCKS (pool threads
 * only). A struct modseq belongs to one thread at a time. */
#ifndef MP_MODSEQ_H
#define MP_MODSEQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

struct mailbox;

#define MODSEQ_NAME "moonpost.modseq"
#define MODSEQ_VERSION 1
#define MODSEQ_FLAGS_MAX 40             /* info kept as it is; longer: a hash */
#define MODSEQ_EXPUNGED_MAX 1024        /* X ranges kept for VANISHED (EARLIER) */
#define MODSEQ_LINE_MAX 128             /* a longer line is invalid */
#define MODSEQ_COMPACT_LINES 4096       /* dead lines that make a rewrite worth it */
#define MODSEQ_FILE_MAX ((size_t)256 << 20)     /* a bigger file is not read: afresh */
#define MODSEQ_VALUE_MAX ((uint64_t)INT64_MAX)  /* RFC 7162 7: 63 bits */

struct modseq_msg {
	uint32_t uid;
	bool live;              /* false: expunged (dropped at compaction) */
	uint64_t modseq;        /* of its last change */
	char flags[MODSEQ_FLAGS_MAX + 2];       /* as written: letters, "-", "#hash" */
};

struct modseq_gone {
	uint32_t lo, hi;        /* UIDs lo..hi */
	uint64_t modseq;        /* expunged at */
};

struct modseq_range {
	uint32_t lo, hi;
};

struct modseq {
	uint32_t uidvalidity;
	uint64_t highest;       /* HIGHESTMODSEQ */
	uint64_t floor;         /* expunges at or below it are forgotten */
	struct modseq_msg *msgs;        /* ascending UID */
	size_t count, cap, live;
	struct modseq_gone *gone;       /* oldest first (ascending modseq) */
	size_t ngone, gone_cap;
	size_t lines;           /* record lines in the file + pending */
	struct buf pending;     /* lines not written yet */
	bool reset;             /* the file must be written afresh */
	bool gone_only;         /* read by modseq_open_gone: no messages */
	/* the open file (modseq_file.c); -1 when none */
	int fd;
	bool excl;
	char *path;
	size_t good_len, file_len;
};

/* --- the state (modseq.c): pure --- */

/* An empty state for uidvalidity whose HIGHESTMODSEQ is now (>= 1); the
 * file is to be written afresh. */
void modseq_init(struct modseq *ms, uint32_t uidvalidity, uint64_t now);
/* Reads a file's bytes into ms (initialised by modseq_init: its header
 * replaces the fresh one). 0 with *good_r = the bytes of the header and of
 * every complete valid line before the first bad or torn one, or -1 when
 * the header is missing or bad (ms is left fresh). */
int modseq_parse(struct modseq *ms, const char *data, size_t len, size_t *good_r);
/* A new modseq: max(highest + 1, now), which becomes the highest. */
uint64_t modseq_new(struct modseq *ms, uint64_t now);
/* The record of a live message, or NULL (unknown or expunged). */
const struct modseq_msg *modseq_get(const struct modseq *ms, uint32_t uid);
/* Whether uid is recorded as expunged (and not back since). */
bool modseq_was_expunged(const struct modseq *ms, uint32_t uid);
/* The flags field for a Maildir info string (the part after ":2,"). */
void modseq_key(const char *info, char out[MODSEQ_FLAGS_MAX + 2]);
/* Records uid's state (a key from modseq_key) at modseq; queued for the
 * next write. */
void modseq_set(struct modseq *ms, uint32_t uid, uint64_t modseq, const char *key);
/* Records uids[0 .. n) (ascending) as expunged at modseq; UIDs already
 * expunged are left alone. */
void modseq_expunge(struct modseq *ms, const uint32_t *uids, size_t n, uint64_t modseq);
/* The UIDs expunged at a modseq above since, as ascending disjoint ranges
 * (*r malloc'd, may be NULL when *n_r is 0). 1 when that history is
 * complete, 0 when since is below the floor (then *r holds what is known). */
int modseq_vanished(const struct modseq *ms, uint64_t since, struct modseq_range **r,
		    size_t *n_r);
/* The whole file as compaction writes it (header, live messages, kept
 * expunges). */
void modseq_format(const struct modseq *ms, struct buf *out);
/* Whether the file is to be rewritten rather than appended to: a reset,
 * or more than MODSEQ_COMPACT_LINES lines that are dead. */
bool modseq_rewrite_due(const struct modseq *ms);
/* Frees the state (and closes the file); NULL-safe, sets *msp = NULL. */
void modseq_free(struct modseq **msp);

/* --- the file (modseq_file.c): blocking --- */

/* The clock in microseconds (the base of new modseqs). */
uint64_t modseq_now(void);
/* Opens (creating) the file of the folder at root, locks it (excl:
 * LOCK_EX, for writing; else LOCK_SH) and reads it; a file for another
 * UIDVALIDITY or version, or a broken one, gives a fresh state with
 * ms->reset set. 0 with *ms_r, or -1 (errno). */
int modseq_open(const char *root, uint32_t uidvalidity, bool excl, struct modseq **ms_r);
/* The same, shared and read-only, keeping only what VANISHED needs (the
 * expunged ranges, floor, HIGHESTMODSEQ): message lines are skipped, which
 * makes a QRESYNC FETCH's read of a big folder's file a fraction. Never
 * write through it. */
int modseq_open_gone(const char *root, uint32_t uidvalidity, struct modseq **ms_r);
/* Writes what is queued (appended, or the whole file renamed over the old
 * one when modseq_rewrite_due). Opened with excl only. 0 or -1. */
int modseq_commit(struct modseq *ms);
/* Releases the lock and the file; the state stays readable. */
void modseq_unlock(struct modseq *ms);
/* Brings the file up to date with the folder mb (just opened): new
 * messages and changed flags get one new modseq, live messages that are
 * gone are recorded as expunged. A message missing from mb's scan but
 * still there (a rename by another process while the directory was read)
 * is added to mb, with what the uidlist says of it, rather than expunged;
 * one whose scanned flags are stale is given its current file name, and
 * one recorded as expunged since the scan is dropped from mb. 0 with
 * *ms_r (unlocked), or -1. */
int modseq_sync(struct mailbox *mb, struct modseq **ms_r);

#endif
