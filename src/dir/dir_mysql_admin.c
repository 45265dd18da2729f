/* dir_mysql_admin.c - the CLI's writes against the ISPmail schema
 * (virtual_domains / virtual_users / virtual_aliases). These statements are
 * fixed: a site with another schema manages its database its own way and
 * only overrides the lookup queries. Values are escaped on the connection. */
#include "dir_mysql.h"
#include "core/arena.h"
#include "core/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Builds a statement: each "%s" in fmt takes a C string, escaped (the
 * quotes are in fmt); "%q" takes a long long. */
static char *dma_build(MYSQL *m, struct arena *a, const char *fmt, va_list ap)
{
	struct buf b = { 0 };
	for (const char *p = fmt; *p; p++) {
		if (p[0] == '%' && p[1] == 's') {
			buf_append_str(&b, dmysql_escape(m, va_arg(ap, const char *), a));
			p++;
		} else if (p[0] == '%' && p[1] == 'q') {
			buf_printf(&b, "%lld", va_arg(ap, long long));
			p++;
		} else {
			buf_append(&b, p, 1);
		}
	}
	char *q = arena_strndup(a, buf_ptr(&b), b.len);
	buf_free(&b);
	return q;
}

/* Runs one statement on the admin connection. Returns affected rows, or
 * -1 with *error_r. When res_r is set, the result set goes there. */
static long long dma_exec(struct dir *d, struct arena *a, const char **error_r,
			  MYSQL_RES **res_r, const char *fmt, ...)
{
	struct dmysql *my = d->backend;
	if (my->admin.m == NULL &&
	    (my->admin.m = dmysql_connect(my->cfg, true, error_r, a)) == NULL) {
		*error_r = arena_printf(a, "cannot connect to MariaDB: %s", *error_r ? *error_r : "");
		return -1;
	}
	va_list ap;
	va_start(ap, fmt);
	char *q = dma_build(my->admin.m, a, fmt, ap);
	va_end(ap);
	if (mysql_real_query(my->admin.m, q, (unsigned long)strlen(q)) != 0) {
		*error_r = arena_printf(a, "MariaDB: %s", mysql_error(my->admin.m));
		return -1;
	}
	if (res_r) {
		*res_r = mysql_store_result(my->admin.m);
		if (*res_r == NULL) {
			*error_r = arena_printf(a, "MariaDB: %s", mysql_error(my->admin.m));
			return -1;
		}
		return (long long)mysql_num_rows(*res_r);
	}
	return (long long)mysql_affected_rows(my->admin.m);
}

static long long dma_count(struct dir *d, struct arena *a, const char **error_r,
			   const char *fmt, const char *arg1, const char *arg2)
{
	MYSQL_RES *res = NULL;
	long long n = dma_exec(d, a, error_r, &res, fmt, arg1, arg2);
	if (res)
		mysql_free_result(res);
	return n;
}

int dmysql_admin_domain(struct dir *d, bool add, const char *domain,
			struct arena *a, const char **error_r)
{
	long long n = dma_count(d, a, error_r, "SELECT 1 FROM virtual_domains WHERE name='%s'",
				domain, NULL);
	if (n < 0)
		return -1;
	if (add && n > 0) {
		*error_r = arena_printf(a, "domain %s already exists", domain);
		return -1;
	}
	if (!add && n == 0) {
		*error_r = arena_printf(a, "no such domain: %s", domain);
		return -1;
	}
	n = add ? dma_exec(d, a, error_r, NULL, "INSERT INTO virtual_domains (name) VALUES ('%s')",
			   domain)
		: dma_exec(d, a, error_r, NULL, "DELETE FROM virtual_domains WHERE name='%s'", domain);
	return n < 0 ? -1 : 0;
}

int dmysql_admin_user_add(struct dir *d, const struct dir_addr *addr, const char *hash,
			  int64_t quota, struct arena *a, const char **error_r)
{
	long long n = dma_count(d, a, error_r, "SELECT 1 FROM virtual_users WHERE email='%s'",
				addr->full, NULL);
	if (n < 0)
		return -1;
	if (n > 0) {
		*error_r = arena_printf(a, "user %s already exists", addr->full);
		return -1;
	}
	n = dma_exec(d, a, error_r, NULL,
		     "INSERT INTO virtual_users (domain_id, email, password, quota) "
		     "SELECT id, '%s', '%s', %q FROM virtual_domains WHERE name='%s'",
		     addr->full, hash, (long long)quota, addr->domain);
	if (n == 0)
		*error_r = arena_printf(a, "no such domain: %s (add it first)", addr->domain);
	return n > 0 ? 0 : -1;
}

int dmysql_admin_user_del(struct dir *d, const char *email, struct arena *a,
			  const char **error_r)
{
	long long n = dma_exec(d, a, error_r, NULL, "DELETE FROM virtual_users WHERE email='%s'",
			       email);
	if (n == 0)
		*error_r = arena_printf(a, "no such user: %s", email);
	return n > 0 ? 0 : -1;
}

int dmysql_admin_user_set(struct dir *d, const char *email, const char *hash,
			  int64_t quota, struct arena *a, const char **error_r)
{
	long long n = dma_count(d, a, error_r, "SELECT 1 FROM virtual_users WHERE email='%s'",
				email, NULL);
	if (n == 0)
		*error_r = arena_printf(a, "no such user: %s", email);
	if (n <= 0)
		return -1;
	if (hash && dma_exec(d, a, error_r, NULL,
			     "UPDATE virtual_users SET password='%s' WHERE email='%s'",
			     hash, email) < 0)
		return -1;
	if (quota >= 0 && dma_exec(d, a, error_r, NULL,
				   "UPDATE virtual_users SET quota=%q WHERE email='%s'",
				   (long long)quota, email) < 0)
		return -1;
	return 0;
}

int dmysql_admin_alias(struct dir *d, bool add, const struct dir_addr *source,
		       const char *destination, struct arena *a, const char **error_r)
{
	long long n = dma_count(d, a, error_r,
				"SELECT 1 FROM virtual_aliases WHERE source='%s' AND destination='%s'",
				source->full, destination);
	if (n < 0)
		return -1;
	if (add && n > 0) {
		*error_r = arena_printf(a, "alias %s -> %s already exists", source->full, destination);
		return -1;
	}
	if (!add && n == 0) {
		*error_r = arena_printf(a, "no such alias: %s -> %s", source->full, destination);
		return -1;
	}
	if (!add)
		return dma_exec(d, a, error_r, NULL,
				"DELETE FROM virtual_aliases WHERE source='%s' AND destination='%s'",
				source->full, destination) < 0 ? -1 : 0;
	n = dma_exec(d, a, error_r, NULL,
		     "INSERT INTO virtual_aliases (domain_id, source, destination) "
		     "SELECT id, '%s', '%s' FROM virtual_domains WHERE name='%s'",
		     source->full, destination, source->domain);
	if (n == 0)
		*error_r = arena_printf(a, "no such domain: %s (add it first)", source->domain);
	return n > 0 ? 0 : -1;
}

int dmysql_admin_list(struct dir *d, const char *what, const char *domain,
		      struct arena *a, struct dir_list *out, const char **error_r)
{
	MYSQL_RES *res = NULL;
	const char *dom = domain ? domain : "";
	long long n;
	if (strcmp(what, "domain") == 0)
		n = dma_exec(d, a, error_r, &res, "SELECT name FROM virtual_domains ORDER BY name");
	else if (strcmp(what, "user") == 0)
		n = dma_exec(d, a, error_r, &res,
			     "SELECT u.email, u.quota FROM virtual_users u JOIN virtual_domains d "
			     "ON u.domain_id = d.id WHERE '%s' = '' OR d.name = '%s' ORDER BY u.email",
			     dom, dom);
	else
		n = dma_exec(d, a, error_r, &res,
			     "SELECT a.source, a.destination FROM virtual_aliases a JOIN virtual_domains d "
			     "ON a.domain_id = d.id WHERE '%s' = '' OR d.name = '%s' ORDER BY a.source",
			     dom, dom);
	if (n < 0)
		return -1;
	MYSQL_ROW row;
	while ((row = mysql_fetch_row(res)) != NULL) {
		if (strcmp(what, "domain") == 0)
			dir_list_add(out, arena_strdup(a, row[0] ? row[0] : ""), a);
		else if (strcmp(what, "user") == 0)
			dir_list_add(out, arena_printf(a, "%s quota=%s", row[0] ? row[0] : "",
						       row[1] ? row[1] : "0"), a);
		else
			dir_list_add(out, arena_printf(a, "%s -> %s", row[0] ? row[0] : "",
						       row[1] ? row[1] : ""), a);
	}
	mysql_free_result(res);
	return 0;
}
