/* imap_keywords.h - IMAP keywords (RFC 3501 2.3.2) in a Maildir the way
 * Dovecot keeps them, internal to src/imap: the folder's "dovecot-keywords"
 * file lists "<index> <name>" lines, and index i is the letter 'a' + i in
 * a message file's info (":2,Sa" = \Seen and keyword 0). At most 26 per
 * folder, as in Dovecot. New names are added under Dovecot's dotlock
 * ("dovecot-keywords.lock", O_EXCL, stale after 30 s): the new content is
 * written into the lock file, fsync'd and renamed over the list.
 * The read/assign functions BLOCK (I/O pool only). */
#ifndef MP_IMAP_KEYWORDS_H
#define MP_IMAP_KEYWORDS_H

#include <stdbool.h>

#include "core/buf.h"

#define IMAP_KEYWORDS_MAX 26
#define IMAP_KEYWORD_LEN_MAX 128

struct imap_keywords {
	char *names[IMAP_KEYWORDS_MAX];     /* NULL = unused index */
};

/* A missing file is an empty list. 0 or -1. */
int imap_keywords_read(const char *folder, struct imap_keywords *kw);
void imap_keywords_copy(struct imap_keywords *dst, const struct imap_keywords *src);
void imap_keywords_free(struct imap_keywords *kw);
/* The letter of name in kw ('\0' if it has none). */
char imap_keywords_find(const struct imap_keywords *kw, const char *name);
/* The letter of name, adding it to the folder's list when missing (kw is
 * refreshed from the file then). '\0' when the list is full or on error. */
char imap_keywords_assign(const char *folder, struct imap_keywords *kw, const char *name);
/* A flag-keyword as a client may send it: an atom without "\". */
bool imap_keyword_valid(struct str s);
/* Appends "FLAGS (...)" for a Maildir file name: system flags from the
 * info letters, keywords by kw, and \Recent. */
void imap_flags_append(struct buf *b, const char *file, bool recent, const struct imap_keywords *kw);
/* The keyword names of kw, space-separated with a leading space each. */
void imap_keywords_list(struct buf *b, const struct imap_keywords *kw);

#endif
