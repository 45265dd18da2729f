/* dir_int.h - internal to src/dir: the backend interface.
 *
 * A backend answers three primitive, exact-match lookups (domain, mailbox,
 * alias rows for one source) and the administration calls; the common
 * layer (dir.c) adds caching, subaddresses, catch-alls and alias chains so
 * both backends behave identically. Backends must be thread-safe. */
#ifndef MP_DIR_INT_H
#define MP_DIR_INT_H

#include "dir.h"
#include "core/conf.h"

struct dir_backend_ops {
	const char *name;
	enum dir_result (*domain)(struct dir *d, const char *domain);
	/* Fills email, password, quota (not maildir). */
	enum dir_result (*user)(struct dir *d, const char *email, struct arena *a,
				struct dir_user *u);
	/* Destinations of every alias row whose source is source, split on
	 * commas; NOTFOUND when there is no row. */
	enum dir_result (*aliases)(struct dir *d, const char *source, struct arena *a,
				   struct dir_list *dests);
	int (*admin_domain)(struct dir *d, bool add, const char *domain,
			    struct arena *a, const char **error_r);
	int (*admin_user_add)(struct dir *d, const struct dir_addr *addr, const char *hash,
			      int64_t quota, struct arena *a, const char **error_r);
	int (*admin_user_del)(struct dir *d, const char *email, struct arena *a,
			      const char **error_r);
	int (*admin_user_set)(struct dir *d, const char *email, const char *hash,
			      int64_t quota, struct arena *a, const char **error_r);
	int (*admin_alias)(struct dir *d, bool add, const struct dir_addr *source,
			   const char *destination, struct arena *a, const char **error_r);
	int (*admin_list)(struct dir *d, const char *what, const char *domain,
			  struct arena *a, struct dir_list *out, const char **error_r);
	void (*close)(struct dir *d);
};

struct dir_cache;

struct dir {
	const struct dir_backend_ops *ops;
	void *backend;
	const struct conf_directory *cfg;   /* borrowed: the conf outlives us */
	const char *state_dir;              /* borrowed, for the file snapshot */
	struct dir_cache *cache;            /* NULL when cache_ttl = 0 */
};

int dir_file_open(struct dir *d, const char **error_r);
int dir_mysql_open(struct dir *d, const char **error_r);

/* Appends s to a list (arena-backed, grows by doubling). */
void dir_list_add(struct dir_list *l, const char *s, struct arena *a);
/* Splits "a, b,c" into the list, skipping empty items. */
void dir_list_split(struct dir_list *l, const char *csv, struct arena *a);

/* Cached primitives (dir.c), used by the resolver. */
enum dir_result dir_p_domain_c(struct dir *d, const char *domain, struct arena *a);
enum dir_result dir_p_user_c(struct dir *d, const char *email, struct arena *a,
			     struct dir_user *u);
enum dir_result dir_p_aliases_c(struct dir *d, const char *source, struct arena *a,
				struct dir_list *dests);
const char *dir_maildir_c(struct dir *d, const char *email, struct arena *a);

/* Cache (dir_cache.c): values are flat strings; thread-safe. */
struct dir_cache *dir_cache_new(int64_t ttl_s, int64_t negative_ttl_s);
void dir_cache_free(struct dir_cache **cp);
/* FOUND/NOTFOUND with *value_r (arena copy; NULL for NOTFOUND) when a
 * fresh entry exists, else TEMPFAIL meaning "not cached". */
enum dir_result dir_cache_get(struct dir_cache *c, const char *key,
			      struct arena *a, const char **value_r, size_t *len_r);
void dir_cache_put(struct dir_cache *c, const char *key, enum dir_result r,
		   const char *value, size_t len);
void dir_cache_clear(struct dir_cache *c);

#endif
