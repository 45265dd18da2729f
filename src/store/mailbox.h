/* mailbox.h - one Maildir folder as a mailbox: messages with UIDs that stay
 * the same for Dovecot and moonpost (shared by POP3 and, later, IMAP).
 *
 * UIDs live in Dovecot's "dovecot-uidlist" file (version 3), read and
 * written in Dovecot's own format, so a Maildir moves between the two
 * servers with no client re-downloading:
 *
 *     3 V<uidvalidity> N<next uid> G<guid hex>         header
 *     <uid> [<ext> ...] :<base name>                   one line per message
 *
 * The base name is the file name up to ":2,FLAGS"; ext fields are a key
 * letter and a value (W<vsize> = size with CRLF line ends, P<uidl> = a POP3
 * UIDL kept from a migration, ...); unknown ones are kept as they are.
 *
 * Writers take Dovecot's lock: "dovecot-uidlist.lock" created with O_EXCL,
 * the new content written into it, fsync, then renamed over the uidlist
 * (Dovecot's file_dotlock_replace), so readers never see a half file and
 * Dovecot and moonpost never assign the same UID twice.
 *
 * Every function that touches the disk BLOCKS: call it on a pool thread
 * (pool.h), never on an event loop. A struct mailbox belongs to one thread
 * at a time; nothing here is shared between mailboxes. */
#ifndef MP_MAILBOX_H
#define MP_MAILBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* --- the uidlist format (uidlist.c): pure, resumable, no I/O --- */

#define UIDLIST_LINE_MAX 8192       /* longer record lines make the file invalid */
#define UIDLIST_NAME "dovecot-uidlist"
#define UIDLIST_LOCK_NAME "dovecot-uidlist.lock"
#define UIDLIST_LOCK_STALE_S 120    /* Dovecot's stale timeout for this lock */
#define UIDLIST_LOCK_WAIT_MS 10000  /* then the sync fails (TEMP) */

struct uidlist_header {
	unsigned version;       /* 3 (1 and 2 are read as far as they go) */
	uint32_t uidvalidity;
	uint32_t next_uid;
	char guid[33];          /* hex, "" if none */
};

struct uidlist_rec {
	uint32_t uid;
	struct str ext;         /* "W29 P..." as written, may be empty */
	struct str name;        /* base name */
};

/* Called for each record line; the slices are valid during the call only.
 * Returns 0, or -1 to stop the parse (an error). */
typedef int uidlist_rec_fn(void *ctx, const struct uidlist_rec *rec);

enum uidlist_state { UIDLIST_HEADER, UIDLIST_RECORDS, UIDLIST_ERROR };

struct uidlist_parser {
	enum uidlist_state state;
	struct uidlist_header hdr;
	uint32_t last_uid;
	unsigned lineno;
	size_t len;             /* bytes of the current line in line[] */
	char line[UIDLIST_LINE_MAX];
};

void uidlist_parser_init(struct uidlist_parser *p);
/* Feeds bytes in any chunking. 0 = fine so far, -1 = invalid file (bad
 * header, bad record, UIDs not ascending, line too long) or cb said stop.
 * Only LF-terminated lines count: a last line without LF (a writer that
 * appended half a line) is never reported. */
int uidlist_parser_feed(struct uidlist_parser *p, const char *buf, size_t len,
			uidlist_rec_fn *cb, void *ctx);
/* 0 when a complete header was seen and nothing failed, else -1. */
int uidlist_parser_finish(const struct uidlist_parser *p);

/* Parses one header / record line (no LF). 0 or -1. */
int uidlist_parse_header(struct str line, struct uidlist_header *h);
int uidlist_parse_record(struct str line, struct uidlist_rec *r);
/* The value of ext field key (e.g. 'W') in ext, or an empty slice. */
struct str uidlist_ext_get(struct str ext, char key);
/* Appends the header line / a record line (with LF). */
void uidlist_format_header(struct buf *b, const struct uidlist_header *h);
void uidlist_format_record(struct buf *b, uint32_t uid, const char *ext, const char *name);

/* --- the mailbox (mailbox.c): blocking --- */

struct mailbox_msg {
	uint32_t uid;
	char *base;             /* file name up to ":2," */
	char *file;             /* current path under the folder: "cur/NAME:2,S" */
	char *ext;              /* uidlist ext fields ("" if none) */
	char *uidl;             /* P<uidl> from the uidlist, or NULL */
	uint64_t vsize;         /* octets with CRLF line ends (RFC 1939 sizes) */
	bool seen;              /* 'S' in the flags */
	bool recent;            /* was in new/ when the mailbox was opened (IMAP \Recent) */
};

struct mailbox {
	char *root;             /* the folder: ".../Maildir" for INBOX */
	struct uidlist_header hdr;
	struct mailbox_msg *msgs;   /* in UID order */
	size_t count;
	int lock_fd;            /* the POP3 session lock, -1 if not held */
};

enum mailbox_open_flags {
	MAILBOX_POP3_LOCK = 1 << 0,  /* hold the one-POP3-session lock */
	MAILBOX_MOVE_NEW = 1 << 1,   /* move new/ files to cur/ (not \Recent any more) */
};

#define MAILBOX_POP3_LOCK_NAME "moonpost-pop3.lock"
/* In the Maildir root: the last UIDVALIDITY given to any folder (hex), as
 * Dovecot keeps it, so a folder made again never reuses one. */
#define MAILBOX_UIDVALIDITY_NAME "dovecot-uidvalidity"

/* Creates the folder if needed, takes the locks asked for, scans new/ and
 * cur/, and gives UIDs to files the uidlist does not know yet (written
 * durably before return; the same order Dovecot uses: by delivery time).
 * Returns 0 with *mb_r, 1 when MAILBOX_POP3_LOCK is held by another session
 * (flock on MAILBOX_POP3_LOCK_NAME in the folder, any process), or -1 with
 * a message in err. */
int mailbox_open(const char *root, unsigned flags, struct mailbox **mb_r,
		 char *err, size_t err_size);
/* Creates the folder (and missing parents) with cur/ new/ tmp/; 0 or -1
 * (errno). Existing parts are kept. */
int mailbox_create(const char *root);
/* Releases the locks and the memory; NULL-safe, sets *mbp = NULL. */
void mailbox_free(struct mailbox **mbp);

/* Per message, by folder + base name + current file (which another
 * process may have renamed: then it is found again by base name, and
 * *file_io is replaced by the new name, malloc'd; the old one is freed). */
/* An fd for reading, or -1 (errno; ENOENT = the message is gone). */
int mailbox_file_open(const char *root, const char *base, char **file_io);
/* The same through dirfd, an fd of root (O_PATH is enough; -1: none):
 * no walk of root's path for every message of a big FETCH. */
int mailbox_file_openat(int dirfd, const char *root, const char *base, char **file_io);
/* Adds flag (e.g. 'S' for \Seen) to the file name (Maildir "info" kept
 * in ASCII order, as Dovecot does), moving it to cur/. 0 or -1. */
int mailbox_file_flag(const char *root, const char *base, char **file_io, char flag);
/* Sets the Maildir info flags to (current + add - remove), e.g. add "S",
 * remove "T" (IMAP STORE); the file moves to cur/. 0, or -1 (errno;
 * ENOENT = the message is gone). */
int mailbox_file_flags(const char *root, const char *base, char **file_io, const char *add,
		       const char *remove);
/* Removes the message. 0 (also when it was gone already) or -1. */
int mailbox_file_unlink(const char *root, const char *base, char **file_io);

/* Removes the messages whose uid is in uids (ascending), then drops their
 * uidlist records. Returns how many could not be removed (0 = all). */
size_t mailbox_expunge(struct mailbox *mb, const uint32_t *uids, size_t n);

/* Dovecot's default POP3 UIDL (pop3_uidl_format = %08Xu%08Xv, which
 * Dovecot 2.3 prints in lower-case hex: "000000016b14d5d3"), or the
 * migrated P<uidl> of the record. out needs 71 bytes (RFC 1939: 1..70). */
void mailbox_uidl(const struct mailbox *mb, const struct mailbox_msg *m, char out[71]);

#endif
