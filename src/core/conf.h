/* conf.h - moonpost.conf: Lua syntax, evaluated by LuaJIT in an empty
 * sandbox, then checked against a schema in C.
 *
 * Every key has a documented default (conf/moonpost.conf lists them); an
 * unknown key, a wrong type or an out-of-range value is an error that names
 * the key and file:line. A loaded struct conf is immutable and owns all its
 * memory through conf->arena; the parent keeps one per generation and
 * workers inherit it across fork(). */
#ifndef MP_CONF_H
#define MP_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

struct arena;

enum conf_proto {
	PROTO_SMTP,
	PROTO_SUBMISSION,
	PROTO_LMTP,
	PROTO_IMAP,
	PROTO_POP3,
	PROTO_MANAGESIEVE,
};

enum conf_tls_mode {
	TLSMODE_NONE,
	TLSMODE_STARTTLS,
	TLSMODE_IMPLICIT,
};

struct conf_listener {
	char *address;          /* "" when path is set */
	int64_t port;
	char *path;             /* unix socket path, "" for TCP */
	int protocol;           /* enum conf_proto */
	int tls;                /* enum conf_tls_mode */
	bool plaintext_auth;    /* allow AUTH/LOGIN before TLS here */
	int line;               /* where it was declared, for messages */
	int fd;                 /* runtime: bound socket, -1 until bound */
};

struct conf_smtp {
	int64_t line_max;       /* RFC 5321 4.5.3.1.4: 512 incl. CRLF */
	int64_t errors_max;     /* then 421 and close */
	int64_t idle_timeout;   /* seconds */
};

struct conf_log {
	int level;              /* enum log_level */
	bool syslog;
};

struct conf_tls {
	char *cert, *key;       /* PEM files; both "" = no TLS */
};

struct conf {
	struct arena *arena;
	char *path;
	char *hostname;
	char *user, *group;
	char *state_dir;
	int64_t workers;        /* resolved: never 0 after load */
	int64_t shutdown_timeout;
	struct conf_log log;
	struct conf_tls tls;
	struct conf_smtp smtp;
	struct conf_listener *listen;
	size_t listen_count;
	SSL_CTX *ssl_ctx;       /* NULL when no cert is configured */
};

extern const char *const conf_proto_names[];
extern const char *const conf_tls_names[];

/* Loads and validates path. Returns the config, or NULL and appends one
 * "FILE:LINE: message" line per problem to *errors_r (malloc'd, caller
 * frees). TLS certificates are loaded here, so a bad cert is a config error. */
struct conf *conf_load(const char *path, char **errors_r);
/* Same, from a string (path is used only in messages); no TLS loading when
 * load_tls is false (unit tests). */
struct conf *conf_load_string(const char *path, const char *src, size_t len,
			      bool load_tls, char **errors_r);
/* Frees the config and its SSL_CTX (listener fds are the caller's). */
void conf_free(struct conf **cp);

#endif
