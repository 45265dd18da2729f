/* pop3.h - the POP3 server session (RFC 1939) on a struct conn, with
 * CAPA and response codes (RFC 2449, 3206), STLS (RFC 2595) and SASL
 * PLAIN (RFC 5034).
 *
 * One session per connection, allocated in the connection's arena. The
 * server description is shared by every session of a listener and must
 * outlive them (it lives in the worker's config generation).
 *
 * The maildrop is the INBOX of the user's Maildir through src/store's
 * mailbox layer (mailbox.h): UIDLs are Dovecot's, one POP3 session per
 * mailbox at a time ([IN-USE]), deletions only at QUIT (RFC 1939 6). All
 * disk work and password checks run on pool threads; the connection is
 * paused meanwhile, so pipelined commands (RFC 2449 6.6) answer in order. */
#ifndef MP_POP3_H
#define MP_POP3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "core/buf.h"

struct conn;
struct dir;
struct pool;
struct script_engine;

/* Named limits (style rule 2); defaults in conf/moonpost.conf. */
struct pop3_limits {
	size_t line_max;        /* command line incl. CRLF (RFC 2449 4: 255 at least) */
	int errors_max;         /* bad commands, then -ERR and close */
	double idle_timeout;    /* seconds; RFC 1939 3: at least 10 minutes */
};

struct pop3_server {
	const char *hostname;
	bool starttls;          /* STLS offered on this listener */
	bool implicit_tls;      /* TLS from the first byte (port 995) */
	bool plaintext_auth;    /* USER/PASS/AUTH allowed before TLS */
	bool apop;              /* APOP (needs {PLAIN} passwords in the directory) */
	bool mark_seen;         /* RETR marks the message \Seen for IMAP */
	SSL_CTX *ssl_ctx;
	struct pop3_limits limits;
	struct dir *dir;        /* NULL: every login fails [SYS/TEMP] */
	struct pool *pool;      /* directory lookups, password hashing */
	struct pool *io_pool;   /* Maildir work */
	int64_t penalty_max;    /* seconds; 0 = no login penalty */
	/* Lua policies (src/lua/script.h): the "auth" hook sees every login
	 * (protocol "pop3"); NULL = none. */
	struct script_engine *scripts;
};

/* Takes over c: greets (after the TLS handshake for implicit TLS) and
 * serves commands until QUIT, an error limit, a timeout or the peer leaves. */
void pop3_session_start(struct conn *c, const struct pop3_server *srv);
/* Over a connection limit: "-ERR [SYS/TEMP]" and close. */
void pop3_session_refuse(struct conn *c, const struct pop3_server *srv);

/* --- pure parsing (pop3_parse.c), exported for tests and fuzzing --- */

#define POP3_VERB_MAX 4         /* RFC 2449 3: keywords are 3 or 4 characters */

struct pop3_cmd {
	struct str verb;
	struct str args;        /* after the single space; not trimmed (PASS) */
};

/* Splits a command line (without CRLF). 0, or -1 for an empty or overlong
 * verb or control bytes (NUL, CR, LF) anywhere. */
int pop3_cmd_parse(struct str line, struct pop3_cmd *cmd);
/* Splits args into up to max space-separated words; returns their count,
 * or -1 if there are more than max. */
int pop3_args_split(struct str args, struct str *words, int max);
/* A message number 1..count (RFC 1939 "msg"), or 0 when invalid. */
uint32_t pop3_msgno_parse(struct str s, uint32_t count);

/* Message content (LF or CRLF line ends) -> the wire: CRLF line ends, a
 * leading '.' doubled (RFC 1939 3), optionally only the header and the
 * first body_lines lines of the body (TOP, RFC 1939 7). Resumable over any
 * chunking. */
struct pop3_stuff {
	bool mid_line;          /* inside a line (not at its first byte) */
	bool cr;                /* the last byte was CR */
	bool blank;             /* the current line so far is empty (or "\r") */
	bool in_body;
	bool top;               /* stop after body_lines body lines */
	bool done;              /* TOP limit reached: ignore further input */
	uint64_t body_lines;
};

void pop3_stuff_init(struct pop3_stuff *st, bool top, uint64_t body_lines);
/* Appends the converted form of in to out. */
void pop3_stuff_feed(struct pop3_stuff *st, const char *in, size_t len, struct buf *out);
/* Ends the content: a CRLF if the last line had none, then ".\r\n". */
void pop3_stuff_finish(struct pop3_stuff *st, struct buf *out);

#endif
