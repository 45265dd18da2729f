/* dir_admin.c - administration entry points: validate, dispatch to the
 * backend, and drop cached answers so this process sees the change. */
#include "dir_int.h"
#include "core/arena.h"

#include <string.h>

static int dir_admin_done(struct dir *d, int rc)
{
	if (rc == 0 && d->cache)
		dir_cache_clear(d->cache);
	return rc;
}

int dir_admin_domain(struct dir *d, bool add, const char *domain,
		     struct arena *a, const char **error_r)
{
	return dir_admin_done(d, d->ops->admin_domain(d, add, domain, a, error_r));
}

static int dir_admin_addr(const char *email, bool catchall, struct arena *a,
			  struct dir_addr *addr, const char **error_r)
{
	if (dir_addr_parse(email, "", catchall, a, addr) == 0)
		return 0;
	*error_r = arena_printf(a, "not an address: %s", email);
	return -1;
}

int dir_admin_user_add(struct dir *d, const char *email, const char *hash,
		       int64_t quota, struct arena *a, const char **error_r)
{
	struct dir_addr addr;
	if (dir_admin_addr(email, false, a, &addr, error_r) != 0)
		return -1;
	return dir_admin_done(d, d->ops->admin_user_add(d, &addr, hash, quota, a, error_r));
}

int dir_admin_user_del(struct dir *d, const char *email, struct arena *a,
		       const char **error_r)
{
	return dir_admin_done(d, d->ops->admin_user_del(d, email, a, error_r));
}

int dir_admin_user_set(struct dir *d, const char *email, const char *hash,
		       int64_t quota, struct arena *a, const char **error_r)
{
	return dir_admin_done(d, d->ops->admin_user_set(d, email, hash, quota, a, error_r));
}

int dir_admin_alias(struct dir *d, bool add, const char *source,
		    const char *destination, struct arena *a, const char **error_r)
{
	struct dir_addr src;
	if (dir_admin_addr(source, true, a, &src, error_r) != 0)
		return -1;
	return dir_admin_done(d, d->ops->admin_alias(d, add, &src, destination, a, error_r));
}

int dir_admin_list(struct dir *d, const char *what, const char *domain,
		   struct arena *a, struct dir_list *out, const char **error_r)
{
	return d->ops->admin_list(d, what, domain, a, out, error_r);
}
