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
	int64_t message_size;   /* bytes */
	int64_t rcpt_max;
	int bare_lf, bare_cr;   /* 0 normalize, 1 reject */
	int long_lines;         /* 0 reject, 1 accept */
	char *postmaster;
	int64_t delivery_threads;
	int64_t connections_max, connections_per_ip;
};

/* POP3 (RFC 1939; src/pop3/pop3.h). */
struct conf_pop3 {
	int64_t line_max;       /* command line incl. CRLF */
	int64_t errors_max;     /* bad commands, then -ERR and close */
	int64_t idle_timeout;   /* seconds; RFC 1939 3: at least 600 */
	bool mark_seen;         /* RETR sets \Seen for IMAP */
	bool apop;              /* APOP command (needs {PLAIN} passwords) */
};

/* IMAP (RFC 3501; src/imap/imap.h). */
struct conf_imap {
	int64_t line_max;       /* one command line (between literals) incl. CRLF */
	int64_t literal_max;    /* bytes of one literal */
	int64_t command_max;    /* bytes of a whole command incl. literals */
	int64_t append_max;     /* bytes of one APPEND message (streamed to disk);
				 * 0 in the file = smtp.message_size */
	int64_t errors_max;     /* bad commands, then BYE and close */
	int64_t idle_timeout;   /* seconds; RFC 3501 5.4: at least 1800 */
};

struct conf_log {
	int level;              /* enum log_level */
	bool syslog;
};

struct conf_tls {
	char *cert, *key;       /* PEM files; both "" = no TLS */
};

enum conf_dir_backend {
	DIRECTORY_NONE,         /* no users: MX rejects, no logins */
	DIRECTORY_FILE,
	DIRECTORY_MARIADB,
};

struct conf_mariadb {
	char *host;             /* "" with socket set: unix socket */
	int64_t port;
	char *socket;
	char *user, *password, *database;
	char *admin_user, *admin_password;  /* for the CLI's writes; "" = user */
	int64_t pool;           /* connections per process */
	int64_t connect_timeout, query_timeout;   /* seconds */
};

struct conf_directory {
	int backend;            /* enum conf_dir_backend */
	char *file;
	struct conf_mariadb mariadb;
	char *domain_query;     /* any row = the domain is ours */
	char *user_query;       /* columns: email, password, quota */
	char *alias_query;      /* column: destination (comma-separated ok) */
	char *maildir;          /* path template: %d %n %u */
	char *recipient_delimiter;
	int64_t cache_ttl, negative_ttl;   /* seconds, 0 = off */
	int64_t alias_depth_max;
	char *password_scheme;  /* for new hashes */
	bool allow_plaintext_passwords;    /* {PLAIN} in the directory */
	int64_t auth_threads;   /* lookup/hash threads per worker */
	int64_t penalty_max;    /* seconds, max login delay per IP; 0 = off */
};

/* The Lua layer (src/lua/script.h, docs/LUA.md). */
struct conf_lua {
	char *lib_dir, *rules_dir, *policies_dir;
	double budget;          /* seconds of wall clock per hook */
	double load_budget;     /* seconds to load and self-test a set */
	bool watch;             /* reload on file changes (inotify) */
	int64_t scan_max;       /* bytes; larger messages skip the rules */
	struct conf_lua_actions {
		double reject, add_header, soft_reject;   /* 0 = off */
	} actions;
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
	struct conf_pop3 pop3;
	struct conf_imap imap;
	struct conf_directory directory;
	struct conf_lua lua;
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
/* Same without loading the TLS certificate (the CLI, which may not be
 * allowed to read the key). */
struct conf *conf_load_notls(const char *path, char **errors_r);
/* Same, from a string (path is used only in messages); no TLS loading when
 * load_tls is false (unit tests). */
struct conf *conf_load_string(const char *path, const char *src, size_t len,
			      bool load_tls, char **errors_r);
/* Frees the config and its SSL_CTX (listener fds are the caller's). */
void conf_free(struct conf **cp);

#endif
