/* imap_int.h - internal to src/imap: the session, shared by the command
 * families (one file each, as Dovecot's cmd-*.c):
 *   imap_session.c  input, the command table, replies, limits;
 *                   CAPABILITY, NOOP, LOGOUT, STARTTLS, ID, ENABLE, NAMESPACE
 *   imap_auth.c     LOGIN, AUTHENTICATE (the login on the pools)
 *   imap_mbox.c     LSUB, CREATE, DELETE, RENAME, SUBSCRIBE,
 *                   UNSUBSCRIBE, STATUS, SELECT, EXAMINE, CLOSE, UNSELECT,
 *                   CHECK (folder work on the I/O pool)
 *   imap_list.c     LIST, plain and extended (LIST-EXTENDED, LIST-STATUS,
 *                   SPECIAL-USE selection and return options)
 *   imap_quota.c    GETQUOTA, GETQUOTAROOT, SETQUOTA (RFC 9208)
 *   imap_folder.c   Maildir++ folder names and the subscriptions file
 *                   (blocking helpers for the pool jobs)
 *   imap_fetch.c    FETCH, UID (message data from the I/O pool, in batches)
 *   imap_store.c    STORE, EXPUNGE (flags are renames of the Maildir files)
 *   imap_append.c   APPEND, MULTIAPPEND: message literals streamed to tmp/
 *   imap_copy.c     COPY, MOVE with UIDPLUS responses
 *   imap_search.c   SEARCH (keys parsed on the loop, matched on the pool)
 *   imap_sync.c     NOOP/CHECK/IDLE: the snapshot vs the disk (EXPUNGE,
 *                   FETCH FLAGS, EXISTS); imap_notify.c the shared inotify
 *   imap_keywords.c keywords in dovecot-keywords (Dovecot's letters a-z)
 *   imap_condstore.c CONDSTORE/QRESYNC (RFC 7162): SELECT parameters,
 *                   HIGHESTMODSEQ, VANISHED; sets for ESEARCH/SEARCHRES
 *
 * Handlers get the parsed arguments (valid only during the call); a handler
 * that goes asynchronous copies what it needs, pauses the connection and
 * answers from its completion with the tag kept in the session. */
#ifndef MP_IMAP_INT_H
#define MP_IMAP_INT_H

#include "imap.h"
#include "imap_keywords.h"
#include "store/mcache.h"

#include <ev.h>
#include <time.h>

/* RFC 3501 3: the connection states (LOGOUT is just closing). */
enum imap_state {
	IMAP_NOTAUTH = 1 << 0,
	IMAP_AUTH = 1 << 1,
	IMAP_SELECTED = 1 << 2,
};

#define IMAP_ANY (IMAP_NOTAUTH | IMAP_AUTH | IMAP_SELECTED)
#define IMAP_LOGGED_IN (IMAP_AUTH | IMAP_SELECTED)
#define IMAP_USER_MAX 255
#define IMAP_SEQ_RANGES_MAX 10000
#define IMAP_MAILBOX_NAME_MAX 255   /* bytes of a mailbox name (mUTF-7) */
#define IMAP_PATTERN_MAX 1024       /* LIST/LSUB: bytes of reference + pattern */

struct login;
struct script_session;
struct imap_fetch_job;
struct imap_append;
struct imap_notify_watch;

/* The selected mailbox (RFC 3501 3.3): a snapshot of the folder taken at
 * SELECT; message i has sequence number i + 1. */
struct imap_selected {
	struct mailbox *mb;
	char *name;
	bool readonly;
	struct imap_keywords kw;        /* the folder's dovecot-keywords */
	struct mcache *cache;           /* NULL: none, or a FETCH/SEARCH job has it */
	uint64_t *modseq;               /* per message as mb->msgs (RFC 7162); NULL: NOMODSEQ */
	uint64_t highest;               /* HIGHESTMODSEQ as far as this session has seen */
	uint32_t *saved;                /* SEARCHRES "$" (RFC 5182): UIDs, ascending */
	size_t nsaved;
};

/* NULL-safe; sets *selp = NULL. */
void imap_selected_free(struct imap_selected **selp);

struct imap_session {
	struct conn *conn;
	const struct imap_server *srv;
	enum imap_state state;
	int errors;
	bool greeted;
	bool sasl_wait;                 /* AUTHENTICATE: the next line is the response */
	bool closing;
	struct imap_parser parser;
	char tag[IMAP_TAG_MAX + 1];     /* of the command being answered */
	char *auth_user;                /* the authenticated address */
	char *maildir;                  /* its Maildir root */
	int64_t quota;                  /* bytes, 0 = unlimited (the directory's) */
	struct login *login;            /* a password check in progress (src/login) */
	struct script_session *ss;
	/* SELECTED: the mailbox, owned here unless a job holds it. */
	struct imap_selected *sel;
	/* NOOP/CHECK/IDLE: a sync job holds sel (imap_sync.c) */
	bool syncing;
	/* IDLE (RFC 2177): waiting for DONE */
	bool idling, idle_done, done_bad;
	char idle_tag[IMAP_TAG_MAX + 1];
	unsigned idle_polls;            /* for the keepalive */
	ev_timer idle_delay, idle_poll;
	struct imap_notify_watch *notify[2];    /* new/ and cur/ */
	/* APPEND: the messages of the command being read (imap_append.c) */
	struct imap_append *append;
	/* FETCH: a job waiting for the client to read the previous batch */
	struct imap_fetch_job *fetch_wait_job;
	ev_prepare fetch_wait;
	bool condstore, qresync;        /* RFC 7162 3.1, 3.2.3: enabled */
	bool rev2;                      /* ENABLE IMAP4rev2 (RFC 9051): UTF-8 names,
					 * no \Recent, ESEARCH for SEARCH */
};

/* One untagged or continuation line (printf-like; CRLF added). */
void imap_reply(struct imap_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* The tagged completion of the current command: status "OK"/"NO"/"BAD". */
void imap_tagged(struct imap_session *s, const char *status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* A client error: tagged BAD (counted; past errors_max: BYE and close). */
void imap_bad(struct imap_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* "* BYE bye" and close. */
void imap_close(struct imap_session *s, const char *bye);
/* Answers the outcome of imap_parser_literal(): "+" for LITERAL, the error
 * for ERROR (the command is dropped), nothing for AGAIN. */
void imap_literal_result(struct imap_session *s, enum imap_parse_result r);
/* Appends the capability list for the current state to b. */
void imap_capabilities(const struct imap_session *s, struct buf *b);
/* LOGIN/AUTHENTICATE allowed now (TLS, or the listener allows plaintext). */
bool imap_login_allowed(const struct imap_session *s);
/* A paused command is done: resume reading commands. */
void imap_resume(struct imap_session *s);
/* Output written from a pool completion without resuming (a FETCH batch,
 * an IDLE push) is sent: the connection is pumped from the loop. */
void imap_flush(struct imap_session *s);

/* The top-level arguments: fills top[] with up to max of them and returns
 * how many there are (may be more than max: then top holds the first max). */
size_t imap_args_top(const struct imap_arg *args, size_t nargs, const struct imap_arg **top,
		     size_t max);

typedef void imap_cmd_fn(struct imap_session *s, const struct imap_arg *args, size_t nargs);

void imap_auth_cleanup(struct imap_session *s);
void imap_auth_line(struct imap_session *s, struct str line);
imap_cmd_fn imap_cmd_login, imap_cmd_authenticate;

void imap_fetch_init(struct imap_session *s);
void imap_fetch_cleanup(struct imap_session *s);
imap_cmd_fn imap_cmd_fetch, imap_cmd_uid;
/* FETCH / UID FETCH (uid: the set holds UIDs). */
void imap_fetch_run(struct imap_session *s, const struct imap_arg *args, size_t nargs, bool uid);
/* The message indexes of a sequence set (uid: of UIDs) in the selected
 * mailbox, ascending; *idx_r malloc'd. 0, or -1 after answering BAD. */
int imap_msgset(struct imap_session *s, const struct imap_arg *a, bool uid, size_t **idx_r,
		size_t *n_r);

imap_cmd_fn imap_cmd_store, imap_cmd_expunge;
void imap_expunge_run(struct imap_session *s, const struct imap_arg *args, size_t nargs, bool uid);
/* STORE / UID STORE. */
void imap_store_run(struct imap_session *s, const struct imap_arg *args, size_t nargs, bool uid);

imap_cmd_fn imap_cmd_append, imap_cmd_copy, imap_cmd_move, imap_cmd_search;
/* imap_append.c, on the parser's events: a literal was announced - true if
 * it is an APPEND message, which APPEND then takes (streamed) or refuses;
 * false: the session buffers it as usual. */
bool imap_append_literal(struct imap_session *s);
/* A piece of the message literal (last: it is complete). */
void imap_append_chunk(struct imap_session *s, struct str chunk, bool last);
/* The command failed or the session ends: the messages written so far are
 * removed (on the I/O pool). NULL-safe on s->append. */
void imap_append_abort(struct imap_session *s);
void imap_search_run(struct imap_session *s, const struct imap_arg *args, size_t nargs, bool uid);
/* COPY / MOVE / UID COPY / UID MOVE. */
void imap_copy_run(struct imap_session *s, const struct imap_arg *args, size_t nargs, bool uid,
		   bool move);

/* imap_cache.c: the folder cache's records (pool threads). */
struct imap_cache_fill {
	struct buf env, body, bs, sort;
	struct mcache_rec rec;          /* points into the bufs */
};
/* Parses a message and fills f (reused between messages) with what FETCH
 * serves (ENVELOPE, BODY, BODYSTRUCTURE, dates); old: the UID's record
 * found in the cache (its other fields are kept), or NULL. */
void imap_cache_fill(struct imap_cache_fill *f, uint32_t uid, time_t internal, const char *data,
		     size_t len, const struct mcache_rec *old);
/* Only the sort keys and dates, from the header (SORT and THREAD: the
 * rest of a record waits for a FETCH that needs it, as in Dovecot). */
void imap_cache_fill_sort(struct imap_cache_fill *f, uint32_t uid, time_t internal, const char *data,
			  size_t len, const struct mcache_rec *old);
void imap_cache_fill_free(struct imap_cache_fill *f);
/* Has what FETCH serves from the cache (a record of SORT, of a SORT by
 * date alone, or of an older writer may not). */
bool imap_cache_complete(const struct mcache_rec *r);
/* Was made from a parse, so its sent date is the Date: header's (a record
 * of a SORT by arrival has only the file's date). */
bool imap_cache_dated(const struct mcache_rec *r);

/* imap_sort.c / imap_thread.c: SORT (RFC 5256 3, 5957), THREAD (5256 4). */
enum imap_sort_field {
	IMAP_SF_DATE, IMAP_SF_SUBJECT, IMAP_SF_REPLY, IMAP_SF_FROM, IMAP_SF_DFROM, IMAP_SF_TO,
	IMAP_SF_DTO, IMAP_SF_CC, IMAP_SF_MSGID, IMAP_SF_INREPLYTO, IMAP_SF_REFS, IMAP_SF_COUNT,
};
enum imap_sort_crit {
	IMAP_SORT_ARRIVAL, IMAP_SORT_CC, IMAP_SORT_DATE, IMAP_SORT_FROM, IMAP_SORT_SIZE,
	IMAP_SORT_SUBJECT, IMAP_SORT_TO, IMAP_SORT_DISPLAYFROM, IMAP_SORT_DISPLAYTO,
};
#define IMAP_SORT_KEYS_MAX 16
struct imap_sort_key {
	enum imap_sort_crit crit;
	bool reverse;
};
/* A matched message with its keys: f[] point into a blob of keys the
 * caller keeps (koff/klen: where, for a caller that collects them in one
 * growing buffer); date is f[IMAP_SF_DATE] parsed once (imap_sort_fields). */
struct imap_sort_msg {
	uint32_t seq, uid;
	int64_t internal, date;
	uint64_t size;
	size_t koff, klen;
	struct str f[IMAP_SF_COUNT];
};
/* The RFC 5256 2.1 base subject of a decoded subject, ASCII upper-cased,
 * appended to out; *reply: a Re:/Fwd: was removed. */
void imap_base_subject(struct buf *out, struct str subject, bool *reply);
/* Appends the NUL-separated sort keys of a message header (the cache's
 * MCACHE_SORT field); sent: its Date: in UTC, or the internal date. */
struct arena;
struct mime_headers;
void imap_sort_fill(struct buf *b, struct arena *a, const struct mime_headers *h, time_t sent);
/* How many leading fields of such a blob the criteria compare, and the
 * length of a blob's first n fields (with their NULs): a SORT keeps just
 * those. */
size_t imap_sort_nfields(const struct imap_sort_key *keys, size_t nkeys);
/* Whether the criteria compare no header key (ARRIVAL, SIZE only). */
bool imap_sort_dates_only(const struct imap_sort_key *keys, size_t nkeys);
size_t imap_sort_prefix(const char *blob, size_t len, size_t n);
/* Splits such a blob into m's fields (missing ones empty) and sets m->date. */
void imap_sort_fields(const char *blob, size_t len, struct imap_sort_msg *m);
/* The sort criteria list "(REVERSE DATE SUBJECT)": 0, or -1 if invalid. */
int imap_sort_parse(const struct imap_arg *list, struct imap_sort_key *keys, size_t *n);
void imap_sort_run(struct imap_sort_msg *m, size_t n, const struct imap_sort_key *keys, size_t nkeys);
/* Appends the threads of m[0 .. n) (references: REFERENCES, else
 * ORDEREDSUBJECT) as in "* THREAD (2)(3 6 (4 23)(44 7 96))"; m is
 * reordered. */
void imap_thread_run(struct imap_sort_msg *m, size_t n, bool references, bool uid, struct buf *out);
imap_cmd_fn imap_cmd_sort, imap_cmd_thread;
/* SORT / THREAD and their UID forms (imap_search.c runs them). */
void imap_sort_cmd_run(struct imap_session *s, const struct imap_arg *args, size_t nargs, bool uid);
void imap_thread_cmd_run(struct imap_session *s, const struct imap_arg *args, size_t nargs, bool uid);

/* imap_search_text.c: SEARCH string matching (pure). */
/* Appends s folded to lower case (ASCII, Latin-1, Latin Extended-A,
 * Greek, Cyrillic): both sides of a match are folded. */
void imap_fold(struct buf *out, const char *s, size_t len);
/* Appends the folded text SEARCH matches: the header fields (raw and RFC
 * 2047 decoded, attached messages' too) to hdr, the decoded text parts to
 * body. */
void imap_search_text(struct buf *hdr, struct buf *body, const char *msg, size_t len);

/* imap_sync.c: NOOP/CHECK sync (answers done_text), IDLE. */
void imap_sync_cmd(struct imap_session *s, const char *done_text);
/* In the selected state: the untagged updates (EXISTS, EXPUNGE, FETCH
 * FLAGS) first, then "tag OK done_text" (copied) - for a command that
 * changed the selected mailbox, e.g. APPEND (RFC 3501 6.3.11). */
void imap_sync_then_ok(struct imap_session *s, const char *tag, const char *done_text);
void imap_idle_init(struct imap_session *s);
void imap_idle_cleanup(struct imap_session *s);
void imap_idle_line(struct imap_session *s, struct str line);
void imap_idle_finish(struct imap_session *s);
imap_cmd_fn imap_cmd_idle;

/* imap_condstore.c: CONDSTORE and QRESYNC (RFC 7162). */
struct mailbox;
struct modseq;
struct imap_cs_select;          /* SELECT/EXAMINE parameters */
/* A CONDSTORE-enabling command (RFC 7162 3.1): enables it and, the first
 * time in the selected state, says the HIGHESTMODSEQ. */
void imap_cs_enable(struct imap_session *s);
/* The select-param list of SELECT/EXAMINE: (CONDSTORE), (QRESYNC (...)).
 * 0 with *r (NULL-safe free), or -1 after answering BAD. */
int imap_cs_select_parse(struct imap_session *s, const struct imap_arg *list,
			 struct imap_cs_select **r);
void imap_cs_select_free(struct imap_cs_select **p);
/* SELECT/EXAMINE (pool): [HIGHESTMODSEQ] or [NOMODSEQ] (ms NULL), then for
 * QRESYNC the VANISHED (EARLIER) and FETCH of what changed (3.2.5). */
void imap_cs_select_reply(struct buf *out, const struct mailbox *mb, const struct modseq *ms,
			  const struct imap_cs_select *p, const struct imap_keywords *kw);
/* sel's per-message modseqs and HIGHESTMODSEQ from ms (NULL: NOMODSEQ). */
void imap_cs_snapshot(struct imap_selected *sel, const struct modseq *ms);
/* "* VANISHED (EARLIER) set" (3.2.5.2, 3.2.6): UIDs in set (NULL: all)
 * expunged at a modseq above since and not in present[] (ascending); all
 * UIDs below next_uid that are not present when that history is gone. */
void imap_cs_vanished_earlier(struct buf *out, const struct modseq *ms, uint64_t since,
			      const struct imap_seqset *set, const uint32_t *present,
			      size_t npresent, uint32_t next_uid);
/* uids[0 .. n) (ascending) of the folder at root were expunged: their
 * modseq (pool), 0 when it could not be recorded; *before_r is the
 * HIGHESTMODSEQ before. */
uint64_t imap_cs_expunged(const char *root, uint32_t uidvalidity, const uint32_t *uids,
			  size_t n, uint64_t *before_r);
/* Messages just added to mb's folder (APPEND, COPY, MOVE) get modseqs. */
void imap_cs_arrived(struct mailbox *mb);
/* The HIGHESTMODSEQ of mb's folder just opened, after bringing its modseqs
 * up to date (pool; STATUS, 3.1.6); 0 when it has none. */
uint64_t imap_cs_highest(struct mailbox *mb);
/* After a change of ours at modseq when the file's HIGHESTMODSEQ was
 * before: the session's HIGHESTMODSEQ follows unless others changed the
 * mailbox meanwhile (their changes are not reported yet: RFC 7162 3.2). */
void imap_cs_advance(uint64_t *highest, uint64_t before, uint64_t modseq);
/* Expunge responses for messages at 0-based indexes idx[] with uids[]
 * (both ascending): "* VANISHED set" (QRESYNC, 3.2.10) or "* n EXPUNGE"
 * highest first (RFC 3501 7.4.1). */
void imap_expunged_reply(struct buf *out, bool vanished, const size_t *idx, const uint32_t *uids,
			 size_t n);
/* The modseq of message uid as file shows it (pool, ms locked for
 * writing): its record's when that has these flags, else *mod (made once
 * per command, then shared) recorded for it, with *bumped set. */
uint64_t imap_cs_record(struct modseq *ms, uint32_t uid, const char *file, uint64_t *mod,
			bool *bumped);
/* Appends ascending numbers as a sequence set with ranges: "1:3,5". */
void imap_set_append(struct buf *b, const uint32_t *v, size_t n);
/* Ascending numbers as a sequence set (free with imap_seqset_free). */
void imap_seqset_of(const uint32_t *v, size_t n, struct imap_seqset *set);

void imap_mbox_cleanup(struct imap_session *s);
imap_cmd_fn imap_cmd_list, imap_cmd_lsub, imap_cmd_create, imap_cmd_delete, imap_cmd_rename,
	imap_cmd_subscribe, imap_cmd_unsubscribe, imap_cmd_status, imap_cmd_select,
	imap_cmd_examine, imap_cmd_close, imap_cmd_unselect, imap_cmd_check;
/* STATUS data items (imap_mbox.c), shared with LIST-STATUS (RFC 5819): the
 * item list "(MESSAGES SIZE ...)", its members flat, as bits: 0, or -1 if
 * empty or unknown; and the untagged STATUS response for those items of an
 * open mailbox, appended to out. */
struct mailbox;
int imap_status_items(const struct imap_arg *list, unsigned *items);
void imap_status_append(struct buf *out, struct mailbox *mb, const char *name,
			unsigned items, bool utf8);

imap_cmd_fn imap_cmd_getquota, imap_cmd_getquotaroot, imap_cmd_setquota;

/* imap_utf7.c: a mailbox name (or LIST pattern) argument in the stored
 * form, converted from UTF-8 when utf8 (IMAP4rev2, RFC 9051 5.1; *name
 * then points into tmp): false if not an astring or not UTF-8. And a
 * stored name appended as the client wants it. */
bool imap_arg_mailbox(bool utf8, const struct imap_arg *a, struct str *name, struct buf *tmp);
void imap_append_mailbox(struct buf *out, const char *name, bool utf8);
/* imap_mbox.c: a mailbox argument checked and stored-form, INBOX in any
 * case made "INBOX" (malloc'd); NULL after answering BAD / NO [CANNOT]. */
char *imap_mbox_arg(struct imap_session *s, const struct imap_arg *a);

#endif
