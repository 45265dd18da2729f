/* imap_use.h - the RFC 6154 special uses given at CREATE
 * (CREATE-SPECIAL-USE, RFC 6154 3), internal to src/imap.
 *
 * Dovecot keeps special-use in its configuration, so there is no Dovecot
 * file to share: moonpost keeps the uses given at CREATE in a file of its
 * own in the Maildir root, "moonpost-special-use", one line per mailbox:
 *
 *     NAME<TAB>\Attr[ \Attr ...]<LF>
 *
 * NAME as stored on disk (modified UTF-7, as the folder directory; a
 * mailbox name never holds a TAB). The file is rewritten whole under the
 * flock of "moonpost-special-use.lock" (tmp, fsync, rename), like the
 * subscriptions; a missing file means no uses, and unknown attributes in
 * it are ignored. CREATE, DELETE and RENAME keep it in step. The
 * built-in uses of the top-level Drafts, Sent, Junk, Trash and Archive
 * (imap_folder_special_use) are not in it. Dovecot ignores the file.
 *
 * Everything touching the disk BLOCKS: call it on the I/O pool. */
#ifndef MP_IMAP_USE_H
#define MP_IMAP_USE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

#define IMAP_USE_FILE "moonpost-special-use"
#define IMAP_USE_LOCK "moonpost-special-use.lock"
#define IMAP_USE_LINE_MAX 1024      /* longer lines are not ours: skipped */

struct imap_uses {
	char **names;           /* mailbox names, as stored */
	char **attrs;           /* their uses: "\\Archive \\Sent" */
	size_t n;
};

/* The canonical spelling of a use CREATE may give ("\\Archive" for
 * "\archive"), or NULL: unknown, or \All / \Flagged, which name virtual
 * views (RFC 6154 2) that a Maildir folder cannot be. */
const char *imap_use_attr(struct str attr);

/* Reads the file (missing = no uses) into *u: 0, or -1 (then *u is
 * empty). Free with imap_use_free (NULL-safe members). */
int imap_use_read(const char *root, struct imap_uses *u);
void imap_use_free(struct imap_uses *u);
/* Appends the uses of name - the built-in one, then the file's, each once -
 * to b, each after a space. u may be NULL. */
void imap_use_append(struct buf *b, const struct imap_uses *u, const char *name);

/* CREATE / DELETE: name's uses become attrs ("\\Archive \\Sent"; NULL:
 * none, e.g. a stale line of a mailbox removed by another server). 0 or
 * -1 (errno). */
int imap_use_set(const char *root, const char *name, const char *attrs);
/* RENAME: the uses of from and its inferiors ("from.x") move to to
 * ("to.x"). 0 or -1 (errno). */
int imap_use_rename(const char *root, const char *from, const char *to);

#endif
