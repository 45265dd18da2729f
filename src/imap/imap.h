/* imap.h - the IMAP server session (RFC 3501, IMAP4rev1) on a struct conn,
 * and the pure parsers it is built on (exported for tests and fuzzing).
 *
 * One session per connection, allocated in the connection's arena. The
 * server description is shared by every session of a listener and must
 * outlive them (it lives in the worker's config generation).
 *
 * Input: the connection runs in raw mode and every byte goes through the
 * resumable command parser below (imap_parse.c), which is the one bounded
 * reader for IMAP: it knows where literals are (RFC 3501 4.3, 7888), so it
 * alone decides what is a command line and what is literal data.
 * Logins run on the auth pool with the login penalty and the Lua "auth"
 * hook (protocol "imap"), as for POP3 and SMTP AUTH; the connection is
 * paused meanwhile, so pipelined commands answer in order.
 *
 * IMAP4rev2 (RFC 9051) later: the capability list, the response texts and
 * the command table are data in imap_session.c; the parser already
 * accepts everything rev2 syntax needs, literal8 "~{n}" (RFC 3516) too. */
#ifndef MP_IMAP_H
#define MP_IMAP_H

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
struct imap_limits {
	size_t line_max;        /* one command line (between literals) incl. CRLF */
	uint64_t literal_max;   /* one literal's size ({n}, {n+}) */
	size_t cmd_max;         /* a whole command: lines + literals */
	uint64_t append_max;    /* one APPEND message (streamed to disk, not
				 * held: not counted in literal_max/cmd_max) */
	int errors_max;         /* bad commands, then BYE and close */
	double idle_timeout;    /* seconds; RFC 3501 5.4: at least 30 minutes */
};

struct imap_server {
	const char *hostname;
	bool starttls;          /* STARTTLS offered on this listener */
	bool implicit_tls;      /* TLS from the first byte (port 993) */
	bool plaintext_auth;    /* LOGIN/AUTHENTICATE allowed before TLS */
	SSL_CTX *ssl_ctx;
	struct imap_limits limits;
	struct dir *dir;        /* NULL: every login fails [UNAVAILABLE] */
	struct pool *pool;      /* directory lookups, password hashing */
	struct pool *io_pool;   /* Maildir work */
	int64_t penalty_max;    /* seconds; 0 = no login penalty */
	/* Lua policies: the "auth" hook sees every login (protocol "imap"). */
	struct script_engine *scripts;
};

/* Takes over c: greets (after the handshake for implicit TLS) and serves
 * commands until LOGOUT, an error limit, a timeout or the peer leaves. */
void imap_session_start(struct conn *c, const struct imap_server *srv);
/* Over a connection limit: "* BYE [UNAVAILABLE]" and close. */
void imap_session_refuse(struct conn *c, const struct imap_server *srv);

/* --- the command parser (imap_parse.c): pure, resumable, no I/O --- */

/* Parsed arguments form a flat pre-order tree: a LIST node is followed by
 * its members; span counts the nodes of a subtree (itself included), so
 * the next sibling of args[i] is args[i + span] and any slice of siblings
 * is itself a valid argument array. */
enum imap_arg_type {
	IMAP_ARG_ATOM,          /* also flags (\Seen), sequence sets, fetch items */
	IMAP_ARG_QUOTED,        /* "..." with \" and \\ undone */
	IMAP_ARG_LITERAL,       /* {n} or {n+}: n bytes, any content */
	IMAP_ARG_NIL,           /* the atom NIL */
	IMAP_ARG_LIST,          /* ( ... ) */
};

struct imap_arg {
	enum imap_arg_type type;
	struct str s;           /* the bytes (empty for LIST) */
	size_t span;            /* nodes in this subtree, itself included (>= 1) */
	size_t members;         /* LIST: direct members */
};

struct imap_parse_limits {
	size_t line_max;        /* bytes of one line incl. CRLF */
	uint64_t literal_max;   /* bytes of one literal */
	size_t cmd_max;         /* bytes of a whole command incl. literals */
	size_t args_max;        /* argument nodes of a command */
	unsigned depth_max;     /* list nesting */
};

#define IMAP_TAG_MAX 64
#define IMAP_NAME_MAX 32

enum imap_parse_result {
	IMAP_PARSE_AGAIN,       /* all input consumed, command not complete */
	IMAP_PARSE_OK,          /* a complete command (or line in line mode) */
	IMAP_PARSE_LITERAL,     /* a synchronizing literal was accepted: send
				 * "+ ..." (RFC 3501 7.5), then keep feeding */
	IMAP_PARSE_ERROR,       /* see error/code; the rest of the line is skipped */
	IMAP_PARSE_ANNOUNCE,    /* announce mode only: a literal of lit_size
				 * bytes (lit_plus: non-synchronizing) ends the
				 * line, nothing of it read or checked yet; decide
				 * with imap_parser_literal*() before feeding on */
	IMAP_PARSE_CHUNK,       /* sink mode: chunk is the next piece of the
				 * literal; lit_left bytes follow (0: complete) */
};

/* What a parse error means for the session. */
enum imap_parse_error {
	IMAP_ERR_SYNTAX = 1,    /* tagged BAD (untagged if no tag yet) */
	IMAP_ERR_TOOBIG,        /* sync literal over a limit: BAD [TOOBIG], go on */
	IMAP_ERR_FATAL,         /* non-sync literal over a limit (RFC 7888 4) or a
				 * line over line_max: BAD/BYE, then close */
};

enum imap_pstate {
	IP_TAG, IP_NAME, IP_SP_OR_END, IP_ARG, IP_ATOM, IP_QUOTED, IP_QUOTED_ESC,
	IP_LIT_SIZE, IP_LIT_PLUS, IP_LIT_CR, IP_LIT_LF, IP_LIT_DATA, IP_CR,
	IP_SKIP, IP_LINE, IP_LIT_DECIDE, IP_LIT_SINK,
};

/* What becomes of an announced literal (imap_parser_literal). */
enum imap_literal_mode {
	IMAP_LIT_BUFFER,        /* into the command's arguments (the limits apply) */
	IMAP_LIT_SINK,          /* out as CHUNK events, not held: the caller
				 * bounds it (APPEND streams it to a file) */
};

struct imap_parser {
	struct imap_parse_limits lim;
	enum imap_pstate state;
	bool line_mode;         /* next: one bare line (SASL response, DONE) */
	bool announce;          /* report literals as ANNOUNCE (imap_parser_announce) */
	/* the command being built */
	char tag[IMAP_TAG_MAX + 1];
	char name[IMAP_NAME_MAX + 1];
	size_t tag_len, name_len;
	struct buf data;        /* argument bytes; offsets below point into it */
	struct imap_arg_raw {
		enum imap_arg_type type;
		size_t off, len, next, members;
	} *args;
	size_t nargs, args_cap;
	size_t open[16];        /* indexes of the LISTs being filled */
	unsigned depth;
	int bracket;            /* atom: inside [ ... ] (fetch sections) */
	uint64_t lit_size, lit_left;
	bool lit_plus, lit_skip;
	size_t line_len;        /* bytes of the current line so far */
	size_t cmd_len;         /* bytes of the command so far */
	bool done;              /* a result was reported: clear on the next feed */
	/* results */
	enum imap_parse_error error;
	const char *error_text;
	struct imap_arg *out;   /* valid after IMAP_PARSE_OK until the next feed */
	size_t nout;
	struct str line;        /* line mode result */
	struct str chunk;       /* CHUNK result: a slice of the input fed */
};

void imap_parser_init(struct imap_parser *p, const struct imap_parse_limits *lim);
void imap_parser_free(struct imap_parser *p);
/* Forgets any command in progress (STARTTLS: the buffer is dropped). */
void imap_parser_reset(struct imap_parser *p);
/* Feeds bytes; *used says how many were taken (up to the end of the event
 * reported). AGAIN: everything was taken. OK: tag/name/out are the
 * command (line mode: line), valid until the next feed. LITERAL: the
 * announced size is lit_size; go on feeding. ANNOUNCE, CHUNK: below.
 * ERROR: error/error_text, tag may be "" if it was not read yet; further
 * feeding skips to the end of the bad line (a literal announced on it is
 * not read). */
enum imap_parse_result imap_parser_feed(struct imap_parser *p, const char *buf, size_t len,
					size_t *used);
/* The next OK is one line (no tag, no arguments; CRLF removed), e.g. a
 * SASL response (RFC 3501 6.2.2) or IDLE's DONE. */
void imap_parser_want_line(struct imap_parser *p);

/* Literal sink mode, for APPEND (RFC 3501 6.3.11, RFC 3502): with on, every
 * literal is reported as ANNOUNCE when its "{n}" line ends, before any
 * limit, so the session can look at the command so far and decide: */
void imap_parser_announce(struct imap_parser *p, bool on);
/* After ANNOUNCE: the arguments before the literal, as OK would show them
 * (valid until the next feed or decision); false if the literal is inside
 * a list. */
bool imap_parser_partial(struct imap_parser *p, const struct imap_arg **args_r, size_t *n_r);
/* After ANNOUNCE: takes the literal. BUFFER applies literal_max/cmd_max and
 * stores it; SINK reports its bytes as CHUNK events instead (they do not
 * count in cmd_max) and its argument is an empty LITERAL. Returns LITERAL
 * (synchronizing: send "+"), AGAIN (non-synchronizing: keep feeding) or
 * ERROR (as feed: over a limit, too many arguments). Feeding without a
 * decision is BUFFER. */
enum imap_parse_result imap_parser_literal(struct imap_parser *p, enum imap_literal_mode mode);
/* After ANNOUNCE of a synchronizing literal: drops the command (the client
 * sends no literal after a tagged NO/BAD, RFC 3501 7.5); the next byte
 * starts a new command. The caller answers. Not for a non-synchronizing
 * literal, whose bytes are on their way: sink and drop them, or close. */
void imap_parser_literal_refuse(struct imap_parser *p);

/* Helpers over parsed arguments. */
/* An astring (atom, quoted or literal) as a slice; false otherwise. */
bool imap_arg_astring(const struct imap_arg *a, struct str *out);
/* A string (quoted or literal) or an atom without wildcards; NIL is "". */
bool imap_arg_nstring(const struct imap_arg *a, struct str *out);

/* --- sequence sets (RFC 3501 9 "sequence-set") --- */

#define IMAP_SEQ_STAR UINT32_MAX

struct imap_seq_range {
	uint32_t lo, hi;        /* lo <= hi after resolving; STAR = the largest */
};

struct imap_seqset {
	struct imap_seq_range *r;
	size_t n;
};

/* Parses "1:*,4,7:9"; 0 or -1 (syntax, 0 as a number, more than max
 * ranges). r is malloc'd: imap_seqset_free. */
int imap_seqset_parse(struct str s, size_t max, struct imap_seqset *set);
void imap_seqset_free(struct imap_seqset *set);
/* Whether n is in the set when "*" means star (the largest number in use;
 * "*" with an empty mailbox matches nothing). */
bool imap_seqset_contains(const struct imap_seqset *set, uint32_t n, uint32_t star);

/* --- quoting for responses --- */

/* Appends s as an IMAP string: quoted when it is safe, a literal otherwise
 * (CR, LF, NUL, 8-bit or very long). */
void imap_append_string(struct buf *b, struct str s);
/* Always quoted, '"' and '\\' escaped; s must hold no CR, LF or NUL (in
 * IMAP4rev2 it may hold UTF-8: RFC 9051 QUOTED-CHAR). */
void imap_append_quoted(struct buf *b, struct str s);
/* Appends an astring for a mailbox name or similar (atom when possible). */
void imap_append_astring(struct buf *b, struct str s);

/* --- FETCH items (imap_fetch_parse.c) and message data (imap_bodystruct.c):
 * pure, no I/O --- */

struct arena;
struct mime_headers;
struct mime_message;

enum imap_fetch_attr {
	IMAP_FETCH_UID = 1 << 0,
	IMAP_FETCH_FLAGS = 1 << 1,
	IMAP_FETCH_INTERNALDATE = 1 << 2,
	IMAP_FETCH_RFC822_SIZE = 1 << 3,
	IMAP_FETCH_ENVELOPE = 1 << 4,
	IMAP_FETCH_BODYSTRUCTURE = 1 << 5,
	IMAP_FETCH_BODY = 1 << 6,           /* BODY without a section */
	IMAP_FETCH_MODSEQ = 1 << 7,         /* RFC 7162 3.1.4.1 */
};

/* RFC 3501 6.4.5 section-spec. */
enum imap_section_kind {
	IMAP_SEC_ALL,           /* BODY[] or BODY[1.2]: the message or the part */
	IMAP_SEC_HEADER,
	IMAP_SEC_FIELDS,
	IMAP_SEC_FIELDS_NOT,
	IMAP_SEC_TEXT,
	IMAP_SEC_MIME,          /* the part's own header (needs a part number) */
};

#define IMAP_SECTION_DEPTH 16
#define IMAP_SECTION_FIELDS_MAX 64

struct imap_section {
	enum imap_section_kind kind;
	unsigned part[IMAP_SECTION_DEPTH];
	unsigned nparts;
	char **fields;          /* HEADER.FIELDS names (malloc'd) */
	size_t nfields;
	bool peek;              /* BODY.PEEK / RFC822.HEADER: no \Seen */
	bool binary, size_only; /* BINARY[...] / BINARY.SIZE[...] (RFC 3516) */
	bool partial;
	uint64_t origin, count; /* partial <origin.count> */
	char *label;            /* the response name, e.g. "BODY[HEADER]" or "RFC822" */
};

struct imap_fetch {
	unsigned attrs;         /* enum imap_fetch_attr */
	struct imap_section *secs;
	size_t nsecs;
	bool sets_seen;         /* a non-PEEK body section: \Seen is set */
};

/* The fetch-att or list of them (RFC 3501 9 "fetch"), args[0 .. nargs)
 * being exactly that argument. 0, or -1 with *why. Free with
 * imap_fetch_free (also after -1). */
int imap_fetch_parse(const struct imap_arg *args, size_t nargs, struct imap_fetch *f,
		     const char **why);
void imap_fetch_free(struct imap_fetch *f);
/* The bytes a section names in msg[0 .. len) (LF or CRLF stored), with
 * CRLF line ends, before any partial. A part that does not exist is
 * empty (RFC 3501 6.4.5). */
void imap_section_render(const struct imap_section *sec, const struct mime_message *m,
			 struct buf *out);
/* BINARY[part] (RFC 3516 4.2): the part's body with its
 * Content-Transfer-Encoding undone (base64 bytes as they are, other
 * encodings with CRLF line ends); BINARY[] is the whole message. 0, or -1
 * when the encoding is unknown (NO [UNKNOWN-CTE]). */
int imap_section_binary(const struct imap_section *sec, const struct mime_message *m,
			struct buf *out);
/* Appends src with every bare LF made CRLF. */
void imap_append_crlf(struct buf *out, const char *src, size_t len);
/* The same as a literal: " LABEL {n}\r\n" and the converted bytes; hint:
 * the size expected (0: unknown), which saves a move when right. */
void imap_append_crlf_literal(struct buf *out, const char *label, const char *src, size_t len,
			      size_t hint);
/* Converts into dst (room for 2 * len); the converted length. */
size_t imap_crlf_copy(char *dst, const char *src, size_t len);
/* The size of src once every bare LF is CRLF. */
size_t imap_crlf_len(const char *src, size_t len);

/* ENVELOPE of a header block; BODY (ext false) / BODYSTRUCTURE (true). */
void imap_envelope(struct buf *b, struct arena *a, const struct mime_headers *h);
void imap_bodystructure(struct buf *b, struct arena *a, const struct mime_message *m, bool ext);

#endif
