/* store.h - message content in flight (spool) and Maildir delivery.
 *
 * spool: the content of one message while it is received. Small messages
 * stay in memory; past SPOOL_MEM_MAX the bytes move to an unnamed O_TMPFILE
 * in the spool directory, so a 40 MB message is never held whole in memory
 * and a crash leaves nothing behind. The spool is never fsync'd: nothing is
 * acknowledged from it.
 *
 * maildir_deliver: the durable write (style rule 16): create tmp/FILE,
 * write the per-recipient header prefix and the content, fdatasync, rename
 * into new/ (or cur/ with flags), fsync the directory. Only after it
 * returns 0 may the message be acknowledged. A crash at any point leaves at
 * most a file in tmp/, never a partial file in new/; maildir_clean_tmp()
 * removes such leftovers. File names follow Dovecot: "SECS.MusecPpid_Qn.HOST
 * ,S=size,W=crlf_size[:2,FLAGS]". Files use LF line endings. All functions
 * here block on disk and are meant for pool threads; they are thread-safe.
 * Reading a folder as a mailbox (UIDs, flags, expunge) is mailbox.h. */
#ifndef MP_STORE_H
#define MP_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define SPOOL_MEM_MAX (256 * 1024)

struct spool {
	struct buf mem;         /* tail of the content not yet in the file */
	int fd;                 /* -1 until spilled */
	uint64_t file_size;     /* bytes in the file */
	const char *dir;        /* where O_TMPFILE goes */
	bool failed;            /* a write failed: the message must be refused */
	void *map;              /* spool_map() of the file, or NULL */
	size_t map_len;
};

void spool_init(struct spool *s, const char *dir);
/* Moves the memory part to the file when it grew past SPOOL_MEM_MAX. */
void spool_maybe_spill(struct spool *s);
uint64_t spool_size(const struct spool *s);
/* Appends the whole content to fd; 0 or -1 (errno set). Thread-safe for
 * concurrent readers (positional reads). */
int spool_copy_to(const struct spool *s, int fd);
/* A contiguous read-only view of the whole content (for the rules): the
 * memory buffer, or the file mapped after the memory tail is written to
 * it. Valid until spool_free(). 0, or -1 (errno set). */
int spool_map(struct spool *s, const char **p_r, size_t *len_r);
void spool_free(struct spool *s);

struct maildir_target {
	const char *root;       /* ".../Maildir" */
	const char *folder;     /* NULL or "" = INBOX, else "Junk", "Lists.lua" */
	const char *flags;      /* NULL = new/, else cur/ with ":2,FLAGS" */
	const char *prefix;     /* header lines to put first (LF endings) */
	size_t prefix_len;
	uint64_t prefix_lines;
};

/* Delivers spool to t. 0 and the final path in path_r, or -1 with a
 * message in err. content_lines: LFs in the content (for W=). */
int maildir_deliver(const struct maildir_target *t, const struct spool *content,
		    uint64_t content_lines, const char *hostname,
		    char *path_r, size_t path_size, char *err, size_t err_size);
/* Bytes used by the mailbox (every folder's cur/ and new/), -1 on error. */
int64_t maildir_usage(const char *root);
/* Removes files in tmp/ of root (and its folders) left by dead processes
 * of ours or older than 36 hours (the Maildir convention). */
void maildir_clean_tmp(const char *root);
/* The same for every Maildir the path template (%d %n %u) can name. */
void maildir_clean_all(const char *tmpl);

#endif
