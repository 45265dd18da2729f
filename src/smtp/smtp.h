/* smtp.h - the SMTP server session (RFC 5321) on a struct conn.
 *
 * One session per connection, allocated in the connection's arena. The
 * server description is shared by every session of a listener and must
 * outlive them (it lives in the worker's config generation). */
#ifndef MP_SMTP_H
#define MP_SMTP_H

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
struct smtp_limits {
	size_t line_max;        /* RFC 5321 4.5.3.1.4: 512 incl. CRLF */
	int errors_max;         /* errors before 421 and close */
	double idle_timeout;    /* seconds without a command */
	uint64_t message_size;  /* content bytes; SIZE advertises it */
	unsigned rcpt_max;      /* recipients per message */
	bool reject_bare_lf;    /* else bare LF counts as a line end */
	bool reject_bare_cr;    /* else kept as a byte */
	bool reject_long_lines; /* lines over 998 octets (4.5.3.1.6) */
};

struct smtp_server {
	const char *hostname;
	bool lmtp;              /* LHLO instead of EHLO/HELO (RFC 2033) */
	bool starttls;          /* STARTTLS offered on this listener */
	bool implicit_tls;      /* TLS from the first byte */
	SSL_CTX *ssl_ctx;
	struct smtp_limits limits;
	/* AUTH (RFC 4954): offered on submission listeners, after TLS unless
	 * plaintext_auth. Verification runs on pool threads. */
	bool auth;
	bool plaintext_auth;
	struct dir *dir;
	struct pool *pool;
	int64_t penalty_max;    /* seconds; 0 = no login penalty */
	/* Receiving (smtp_txn.c, smtp_deliver.c). */
	const char *spool_dir;  /* for O_TMPFILE spill of large messages */
	const char *postmaster; /* fallback for postmaster@ours, "" = none */
	struct pool *io_pool;   /* delivery (fsync) threads */
	/* Lua rules and policies (src/lua/script.h); NULL = none. Each
	 * session keeps the set that was current when it started. */
	struct script_engine *scripts;
};

/* Takes over c: greets (after the TLS handshake for implicit TLS) and
 * serves commands until QUIT, an error limit, a timeout or the peer leaves. */
void smtp_session_start(struct conn *c, const struct smtp_server *srv);
/* Over a connection limit: "421 4.7.0" and close (RFC 5321 3.1). The
 * connection was not counted (climit_admit said no). */
void smtp_session_refuse(struct conn *c, const struct smtp_server *srv);

/* --- pure command parsing (smtp_parse.c), exported for tests/fuzzing --- */

struct smtp_cmd {
	struct str verb;        /* letters before the first space */
	struct str args;        /* the rest, leading/trailing blanks trimmed */
};

/* Splits a command line (without CRLF). Returns 0, or -1 when the line is
 * not a valid command: empty verb, or bytes RFC 5321 does not allow in a
 * command (NUL, other controls but TAB, 8-bit bytes in the verb). */
int smtp_cmd_parse(struct str line, struct smtp_cmd *cmd);

/* RFC 5321 4.5.3.1: size limits of the parts of a path. */
#define SMTP_LOCAL_MAX 64
#define SMTP_DOMAIN_MAX 255
#define SMTP_PATH_MAX 256

struct smtp_path {
	struct str addr;        /* without <>; empty for the null path <> */
	struct str params;      /* ESMTP parameters after the path */
};

/* Parses "FROM:<addr> PARAMS" (keyword "FROM:" or "TO:", any case).
 * Returns 0, or -1 on a syntax error or an address that is not
 * local@domain (bare "postmaster" allowed when allow_postmaster). */
int smtp_path_parse(struct str args, const char *keyword, bool allow_postmaster,
		    struct smtp_path *out);
/* Takes the next "KEY[=VALUE]" from params: 1 got one, 0 none left, -1 bad. */
int smtp_param_next(struct str *params, struct str *key, struct str *value);

#endif
