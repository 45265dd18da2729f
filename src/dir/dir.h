/* dir.h - the directory: which domains, mailboxes and aliases exist.
 *
 * One interface over two backends: MariaDB (an ISPmail database, unchanged;
 * every query overridable) and a plain file (quick start, small sites).
 * Every lookup answers DIR_FOUND / DIR_NOTFOUND / DIR_TEMPFAIL (style rule
 * 12): a database outage is TEMPFAIL and becomes a 4xx / NO [UNAVAILABLE],
 * never "user unknown".
 *
 * These calls BLOCK (network, disk, password hashing) and are thread-safe:
 * the CLI calls them directly, daemon workers only through dir_async.h on
 * pool threads, never on an event loop. Results live in the caller's arena.
 *
 * Address semantics: domains compare case-insensitively, local parts too
 * (as MariaDB's default collation does), stored spelling is returned;
 * "user+tag@dom" falls back to "user@dom" (delimiter configurable); an exact
 * alias or mailbox wins over the catch-all "@dom"; alias chains are followed
 * with loop and depth detection. */
#ifndef MP_DIR_H
#define MP_DIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct arena;
struct conf;

enum dir_result {
	DIR_TEMPFAIL = -1,
	DIR_NOTFOUND = 0,
	DIR_FOUND = 1,
};

struct dir;

struct dir_user {
	const char *email;      /* as stored */
	const char *password;   /* scheme string, e.g. "{BLF-CRYPT}$2y$05$..." */
	int64_t quota;          /* bytes, 0 = unlimited */
	const char *maildir;    /* from the directory.maildir template */
};

/* Resolution of one address: a tree of nodes in pre-order. */
enum dir_node_kind {
	DIR_NODE_ALIAS,         /* expanded into the nodes below it */
	DIR_NODE_MAILBOX,       /* a local mailbox: deliver here */
	DIR_NODE_EXTERNAL,      /* another domain: needs outbound */
	DIR_NODE_UNKNOWN,       /* our domain, but nothing there */
	DIR_NODE_LOOP,          /* seen before on this path, or too deep */
};

struct dir_node {
	enum dir_node_kind kind;
	const char *address;    /* normalized */
	int depth;              /* 0 for the address asked about */
	bool catchall;          /* reached through an @domain alias */
	struct dir_user user;   /* DIR_NODE_MAILBOX */
};

struct dir_resolution {
	enum dir_result result; /* FOUND if any mailbox or external target */
	bool local_domain;      /* the address's domain is ours */
	struct dir_node *nodes;
	size_t n_nodes;
	const char *error;      /* TEMPFAIL reason */
};

/* Opens the backend configured in c->directory. NULL with *error_r
 * (static or arena-less message) on bad settings; a database that is
 * down is NOT an error here: lookups TEMPFAIL until it is back. */
struct dir *dir_open(const struct conf *c, const char **error_r);
void dir_close(struct dir **dp);
const char *dir_backend_name(const struct dir *d);

enum dir_result dir_domain_exists(struct dir *d, const char *domain);
/* Mailbox by exact address (no subaddress / alias logic): logins. */
enum dir_result dir_user_lookup(struct dir *d, const char *email,
				struct arena *a, struct dir_user *u_r);
/* Everything that happens to mail for address. */
enum dir_result dir_resolve(struct dir *d, const char *address,
			    struct arena *a, struct dir_resolution *r);
/* Password check for a login: FOUND = user exists and password matches,
 * NOTFOUND = unknown user or wrong password (callers must not tell them
 * apart to the client), TEMPFAIL = directory down. Slow by design. */
enum dir_result dir_authenticate(struct dir *d, const char *login,
				 const char *password, size_t password_len,
				 struct arena *a, struct dir_user *u_r);

/* Administration (the CLI). 0 ok, -1 with *error_r (arena string). */
struct dir_list {
	const char **items;     /* one display line each */
	size_t n;
};
int dir_admin_domain(struct dir *d, bool add, const char *domain,
		     struct arena *a, const char **error_r);
int dir_admin_user_add(struct dir *d, const char *email, const char *hash,
		       int64_t quota, struct arena *a, const char **error_r);
int dir_admin_user_del(struct dir *d, const char *email, struct arena *a,
		       const char **error_r);
/* Sets the hash (when hash != NULL) and/or quota (when quota >= 0). */
int dir_admin_user_set(struct dir *d, const char *email, const char *hash,
		       int64_t quota, struct arena *a, const char **error_r);
int dir_admin_alias(struct dir *d, bool add, const char *source,
		    const char *destination, struct arena *a, const char **error_r);
/* what: "domain", "user", "alias"; domain filter may be NULL. */
int dir_admin_list(struct dir *d, const char *what, const char *domain,
		   struct arena *a, struct dir_list *out, const char **error_r);

/* --- pure address helpers (dir_addr.c) --- */

struct dir_addr {
	const char *local;      /* arena copies */
	const char *domain;     /* lower-cased */
	const char *full;       /* local@domain */
	const char *base;       /* full without +tag, or NULL if no tag */
};
/* 0, or -1 if address is not "local@domain" with sane bytes (no NUL,
 * controls, spaces, quotes handling is not attempted). delim: subaddress
 * delimiter characters, "" = none. "@domain" (catch-all form) is allowed
 * only with allow_catchall. */
int dir_addr_parse(const char *address, const char *delim, bool allow_catchall,
		   struct arena *a, struct dir_addr *out);
/* Expands %s %u (full), %d (domain), %n (local), %% in a template, with
 * escape() applied to each value (NULL = none). */
char *dir_addr_expand(const char *tmpl, const struct dir_addr *addr,
		      char *(*escape)(void *ctx, const char *s, struct arena *a),
		      void *ctx, struct arena *a);

#endif
