/* imap_folder.h - IMAP mailbox names on a Maildir++ tree (Dovecot's
 * "maildir++" layout), internal to src/imap.
 *
 * INBOX is the Maildir root; any other mailbox "A.B" is the directory
 * ROOT/.A.B (the hierarchy separator is "."). Names are stored as the
 * client sends them: modified UTF-7 (RFC 3501 5.1.3), as Dovecot stores
 * them, so no conversion is needed to share a Maildir. The subscription
 * list is the "subscriptions" file in the root, one name per line (Dovecot
 * reads this version-1 form; its version-2 form "V\t2" is read too).
 *
 * Everything touching the disk BLOCKS: call it on the I/O pool. */
#ifndef MP_IMAP_FOLDER_H
#define MP_IMAP_FOLDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/buf.h"

#define IMAP_SUBSCRIPTIONS "subscriptions"
#define IMAP_SUBSCRIPTIONS_LOCK "moonpost-subscriptions.lock"

/* A mailbox name a client may create or use: 0, or -1 with a reason
 * (empty parts, "/", a leading "~" or ".", control bytes, too long,
 * invalid modified UTF-7 framing). INBOX in any case is valid. */
int imap_folder_name_check(struct str name, const char **why_r);
/* IMAP4rev2 (RFC 9051 5.1) names are UTF-8; they are stored (and spoken
 * to IMAP4rev1 clients) in modified UTF-7 (imap_utf7.c). Appends in's
 * conversion: 0, or -1 (not UTF-8 / not modified UTF-7; then the bytes
 * are appended as they are by imap_mutf7_to_utf8, nothing by the other). */
#define IMAP_UTF8_NAME_MAX 1024
int imap_utf8_to_mutf7(struct buf *out, struct str in);
int imap_mutf7_to_utf8(struct buf *out, struct str in);
/* Whether name is INBOX (case-insensitive, RFC 3501 5.1). */
bool imap_folder_is_inbox(struct str name);
/* The directory of a mailbox: root for INBOX, root/.NAME otherwise.
 * Returns a malloc'd path. */
char *imap_folder_path(const char *root, struct str name);
/* The RFC 6154 attribute of a top-level folder name ("\\Sent", ...) or NULL. */
const char *imap_folder_special_use(const char *name);

/* Creates root if needed and the SPECIAL-USE folders (Drafts, Sent, Junk,
 * Trash, Archive) that are missing, subscribed (Dovecot's auto=subscribe,
 * as in the ISPmail guide). 0 or -1 with err. */
int imap_folder_prepare(const char *root, char *err, size_t err_size);

/* The folders under root (names without the leading "."), sorted, not
 * including INBOX. *names_r is malloc'd (and each name): free with
 * imap_folder_names_free. 0 or -1. */
int imap_folder_names(const char *root, char ***names_r, size_t *n_r);
void imap_folder_names_free(char **names, size_t n);

/* Reads the subscriptions (missing file = none). 0 or -1. */
int imap_folder_subs_read(const char *root, char ***names_r, size_t *n_r);
/* Adds (subscribe) or removes a name, rewriting the file durably
 * (tmp, fsync, rename). 0 or -1. */
int imap_folder_subs_change(const char *root, const char *name, bool subscribe);

/* Replaces root/name with the bytes of b durably: a tmp file beside it,
 * fsync, rename (readers see the old file or the new one, never half).
 * 0 or -1. */
int imap_folder_replace(const char *root, const char *name, const struct buf *b);
/* The exclusive flock on root/lockname (made if missing), for a
 * read-modify-write that sessions of any process must not interleave:
 * the fd (close it to unlock), or -1. */
int imap_folder_lock(const char *root, const char *lockname);

/* Whether pattern (with "*" and "%", RFC 3501 6.3.8) matches name; "%"
 * does not match the separator sep. */
bool imap_folder_match(const char *pattern, const char *name, char sep);
/* The same for a mailbox name with "." as separator, INBOX matched by
 * the pattern "INBOX" in any case (RFC 3501 5.1). */
bool imap_folder_match_mailbox(const char *pattern, const char *name);

/* A new unique Maildir base name (time.MusecPpidQn.host). Names made one
 * after another in this process sort in that order (new UIDs are given in
 * name order, mailbox.h), so a MULTIAPPEND's UIDs ascend like its messages. */
void imap_folder_newbase(char *out, size_t size);

/* APPEND, streamed (imap_append.c): a new empty file in folder/tmp, named
 * "BASE.moonpost.PID" so that maildir_clean_tmp() removes it if this
 * process dies. The fd (write-only), and the path in *path_r (malloc'd);
 * or -1 (errno; ENOENT: the folder is gone). */
int imap_folder_tmp_create(const char *folder, char **path_r);
/* Makes a written tmp file durable: mtime (the internal date) if > 0, then
 * fsync. 0 or -1 (errno). */
int imap_folder_tmp_sync(const char *path, time_t mtime);

struct imap_folder_file {
	const char *tmp;        /* the complete, fsync'd file in tmp/ */
	const char *flags;      /* NULL: into new/; else cur/ with ":2,FLAGS" */
	uint64_t size, vsize;   /* S= (bytes stored), W= (with CRLF line ends) */
};
/* Renames f->tmp into the folder under a new base name "BASE,S=..,W=.."
 * (to base_r; the new path to *path_r, malloc'd). The directory is not
 * fsync'd: imap_folder_sync_dir once after all. 0 or -1 (errno). */
int imap_folder_publish(const char *folder, const struct imap_folder_file *f, char *base_r,
			size_t base_size, char **path_r);

/* COPY one message: a hard link (or a copy where links fail) of
 * src_folder/src_file into dst_folder/cur with a new base name and the
 * info flags given (keyword letters differ between folders). The
 * directory is not fsync'd: imap_folder_sync_dir once after all. 0 or -1. */
int imap_folder_link(const char *src_folder, const char *src_file, const char *dst_folder,
		     const char *flags, char *base_r, size_t base_size);
/* fsync of folder/sub ("cur", "new"): the renames into it are durable. */
int imap_folder_sync_dir(const char *folder, const char *sub);

#endif
