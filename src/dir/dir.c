/* dir.c - the directory's common layer: backend choice, cache, address
 * semantics (subaddress, catch-all, alias chains) and authentication. */
#include "dir_int.h"
#include "passwd.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void dir_list_add(struct dir_list *l, const char *s, struct arena *a)
{
	/* Capacity is the next power of two >= n; grow when n hits it. */
	if ((l->n & (l->n - 1)) == 0) {
		size_t cap = l->n ? l->n * 2 : 4;
		const char **items = arena_alloc(a, cap * sizeof(*items));
		if (l->n)
			memcpy(items, l->items, l->n * sizeof(*items));
		l->items = items;
	}
	l->items[l->n++] = s;
}

void dir_list_split(struct dir_list *l, const char *csv, struct arena *a)
{
	const char *p = csv;
	while (*p) {
		size_t n = strcspn(p, ",");
		struct str item = str_trim((struct str){ p, n });
		if (item.len > 0)
			dir_list_add(l, arena_strndup(a, item.p, item.len), a);
		p += n;
		if (*p == ',')
			p++;
	}
}

struct dir *dir_open(const struct conf *c, const char **error_r)
{
	if (c->directory.backend == DIRECTORY_NONE) {
		*error_r = "no directory configured (directory.backend = \"none\")";
		return NULL;
	}
	struct dir *d = xcalloc(1, sizeof(*d));
	d->cfg = &c->directory;
	d->state_dir = c->state_dir;
	int r = d->cfg->backend == DIRECTORY_MARIADB ? dir_mysql_open(d, error_r)
						      : dir_file_open(d, error_r);
	if (r != 0) {
		free(d);
		return NULL;
	}
	if (d->cfg->cache_ttl > 0 || d->cfg->negative_ttl > 0)
		d->cache = dir_cache_new(d->cfg->cache_ttl, d->cfg->negative_ttl);
	return d;
}

void dir_close(struct dir **dp)
{
	struct dir *d = *dp;
	if (d == NULL)
		return;
	d->ops->close(d);
	dir_cache_free(&d->cache);
	free(d);
	*dp = NULL;
}

const char *dir_backend_name(const struct dir *d)
{
	return d->ops->name;
}

/* --- cached primitives --- */

/* "kind:key", lower-cased: lookups are case-insensitive. */
static char *dir_cache_key(char kind, const char *key, struct arena *a)
{
	char *k = arena_printf(a, "%c:%s", kind, key);
	for (char *p = k; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p + 32);
	return k;
}

static enum dir_result dir_cached(struct dir *d, char kind, const char *key,
				  struct arena *a, const char **v, size_t *len)
{
	if (d->cache == NULL)
		return DIR_TEMPFAIL;
	return dir_cache_get(d->cache, dir_cache_key(kind, key, a), a, v, len);
}

static void dir_cache_store(struct dir *d, char kind, const char *key,
			    enum dir_result r, const char *v, size_t len, struct arena *a)
{
	if (d->cache != NULL)
		dir_cache_put(d->cache, dir_cache_key(kind, key, a), r, v, len);
}

enum dir_result dir_p_domain_c(struct dir *d, const char *domain, struct arena *a)
{
	const char *v;
	size_t len;
	enum dir_result r = dir_cached(d, 'd', domain, a, &v, &len);
	if (r != DIR_TEMPFAIL)
		return r;
	r = d->ops->domain(d, domain);
	dir_cache_store(d, 'd', domain, r, r == DIR_FOUND ? "" : NULL, 0, a);
	return r;
}

/* Users are cached as "email\0password\0quota". */
enum dir_result dir_p_user_c(struct dir *d, const char *email, struct arena *a,
			     struct dir_user *u)
{
	const char *v;
	size_t len;
	enum dir_result r = dir_cached(d, 'u', email, a, &v, &len);
	if (r == DIR_FOUND) {
		u->email = v;
		u->password = v + strlen(v) + 1;
		const char *q = u->password + strlen(u->password) + 1;
		u->quota = strtoll(q, NULL, 10);
		return r;
	}
	if (r == DIR_NOTFOUND)
		return r;
	r = d->ops->user(d, email, a, u);
	if (r == DIR_FOUND) {
		char *flat = arena_printf(a, "%s%c%s%c%lld", u->email, 0, u->password, 0,
					  (long long)u->quota);
		size_t flen = strlen(u->email) + strlen(u->password) + 2;
		flen += strlen(flat + flen);
		dir_cache_store(d, 'u', email, r, flat, flen, a);
	} else {
		dir_cache_store(d, 'u', email, r, NULL, 0, a);
	}
	return r;
}

/* Alias destinations are cached comma-joined. */
enum dir_result dir_p_aliases_c(struct dir *d, const char *source, struct arena *a,
				struct dir_list *dests)
{
	const char *v;
	size_t len;
	enum dir_result r = dir_cached(d, 'a', source, a, &v, &len);
	if (r == DIR_FOUND) {
		dir_list_split(dests, v, a);
		return r;
	}
	if (r == DIR_NOTFOUND)
		return r;
	r = d->ops->aliases(d, source, a, dests);
	if (r == DIR_FOUND && dests->n == 0)
		r = DIR_NOTFOUND;       /* rows with empty destinations */
	if (r == DIR_FOUND) {
		struct buf b = { 0 };
		for (size_t i = 0; i < dests->n; i++)
			buf_printf(&b, "%s%s", i ? "," : "", dests->items[i]);
		dir_cache_store(d, 'a', source, r, buf_ptr(&b), b.len, a);
		buf_free(&b);
	} else {
		dir_cache_store(d, 'a', source, r, NULL, 0, a);
	}
	return r;
}

const char *dir_maildir_c(struct dir *d, const char *email, struct arena *a)
{
	struct dir_addr addr;
	if (dir_addr_parse(email, "", false, a, &addr) != 0)
		return "";
	return dir_addr_expand(d->cfg->maildir, &addr, NULL, NULL, a);
}

enum dir_result dir_domain_exists(struct dir *d, const char *domain)
{
	struct arena *a = arena_new();
	struct dir_addr addr;
	char *probe = arena_printf(a, "x@%s", domain);
	enum dir_result r = dir_addr_parse(probe, "", false, a, &addr) == 0 ?
			    dir_p_domain_c(d, addr.domain, a) : DIR_NOTFOUND;
	arena_destroy(&a);
	return r;
}

enum dir_result dir_user_lookup(struct dir *d, const char *email, struct arena *a,
				struct dir_user *u_r)
{
	struct dir_addr addr;
	memset(u_r, 0, sizeof(*u_r));
	if (dir_addr_parse(email, "", false, a, &addr) != 0)
		return DIR_NOTFOUND;
	enum dir_result r = dir_p_user_c(d, addr.full, a, u_r);
	if (r == DIR_FOUND)
		u_r->maildir = dir_maildir_c(d, u_r->email, a);
	return r;
}

enum dir_result dir_authenticate(struct dir *d, const char *login,
				 const char *password, size_t password_len,
				 struct arena *a, struct dir_user *u_r)
{
	enum dir_result r = dir_user_lookup(d, login, a, u_r);
	if (r != DIR_FOUND)
		return r;
	const char *err = NULL;
	int ok = passwd_verify(u_r->password, password, password_len,
			       d->cfg->allow_plaintext_passwords, &err);
	if (ok < 0) {
		char q[256];
		log_warn(NULL, "event=bad_password_hash user=%s error=\"%s\"",
			 log_quote(q, sizeof(q), u_r->email, strlen(u_r->email)), err);
	}
	return ok == 1 ? DIR_FOUND : DIR_NOTFOUND;
}
