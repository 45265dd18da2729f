/* dir_mysql.c - the MariaDB directory backend (Connector/C).
 *
 * Blocking calls by design: they run on pool threads (dir_async.h) or in the
 * CLI, never on an event loop. A fixed pool of connections per process;
 * a connection that fails is closed and re-opened on next use, so lookups
 * recover by themselves when the server comes back. Every value placed in a
 * query is escaped with mysql_real_escape_string() on the live connection
 * (its character set), and an address with a NUL never gets here
 * (dir_addr_parse rejects it). Any failure is TEMPFAIL, never NOTFOUND. */
#include "dir_mysql.h"
#include "core/arena.h"
#include "core/log.h"
#include "core/util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <errmsg.h>

/* Server error numbers (mysqld_error.h) for "illegal mix of collations";
 * client-side errors (CR_*) start at 2000. */
#define DMYSQL_ER_COLLATION_MIX2 1267
#define DMYSQL_ER_COLLATION_MIX3 1270
#define DMYSQL_ER_COLLATION_MIXN 1271
#define DMYSQL_CLIENT_ERRORS 2000

static pthread_once_t dmysql_once = PTHREAD_ONCE_INIT;

static void dmysql_library_init(void)
{
	mysql_library_init(0, NULL, NULL);
}

MYSQL *dmysql_connect(const struct conf_mariadb *cfg, bool admin, const char **err_r,
			     struct arena *a)
{
	MYSQL *m = mysql_init(NULL);
	unsigned int ct = (unsigned int)cfg->connect_timeout, qt = (unsigned int)cfg->query_timeout;
	my_bool off = 0;
	mysql_optionsv(m, MYSQL_OPT_CONNECT_TIMEOUT, &ct);
	mysql_optionsv(m, MYSQL_OPT_READ_TIMEOUT, &qt);
	mysql_optionsv(m, MYSQL_OPT_WRITE_TIMEOUT, &qt);
	mysql_optionsv(m, MYSQL_SET_CHARSET_NAME, "utf8mb4");
	mysql_optionsv(m, MYSQL_OPT_RECONNECT, &off);   /* we reconnect ourselves */
	const char *user = admin && cfg->admin_user[0] ? cfg->admin_user : cfg->user;
	const char *pass = admin && cfg->admin_user[0] ? cfg->admin_password : cfg->password;
	if (mysql_real_connect(m, cfg->socket[0] ? NULL : cfg->host, user, pass, cfg->database,
			       (unsigned int)cfg->port, cfg->socket[0] ? cfg->socket : NULL,
			       0) == NULL) {
		*err_r = a ? arena_strdup(a, mysql_error(m)) : NULL;
		log_warn(NULL, "event=mariadb_connect_failed error=\"%s\"", mysql_error(m));
		mysql_close(m);
		return NULL;
	}
	return m;
}

static struct dmysql_conn *dmysql_acquire(struct dmysql *my)
{
	pthread_mutex_lock(&my->mu);
	for (;;) {
		for (size_t i = 0; i < my->n; i++) {
			if (!my->conns[i].busy) {
				my->conns[i].busy = true;
				pthread_mutex_unlock(&my->mu);
				return &my->conns[i];
			}
		}
		pthread_cond_wait(&my->cv, &my->mu);
	}
}

static void dmysql_release(struct dmysql *my, struct dmysql_conn *c)
{
	pthread_mutex_lock(&my->mu);
	c->busy = false;
	pthread_cond_signal(&my->cv);
	pthread_mutex_unlock(&my->mu);
}

char *dmysql_escape(void *ctx, const char *s, struct arena *a)
{
	MYSQL *m = ctx;
	size_t len = strlen(s);
	char *out = arena_alloc(a, len * 2 + 1);
	mysql_real_escape_string(m, out, s, (unsigned long)len);
	return out;
}

/* Runs tmpl for key on c. Returns the result set or NULL (TEMPFAIL; the
 * connection is closed so the next use reconnects). Retries once on a fresh
 * connection when a pooled one turns out to be dead (server restarted). */
static MYSQL_RES *dmysql_query(struct dmysql *my, struct dmysql_conn *c, bool admin,
			       const char *tmpl, const struct dir_addr *key, struct arena *a,
			       bool *nomatch_r)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		bool fresh = c->m == NULL;
		const char *err = NULL;
		if (c->m == NULL && (c->m = dmysql_connect(my->cfg, admin, &err, NULL)) == NULL)
			return NULL;
		char *q = dir_addr_expand(tmpl, key, dmysql_escape, c->m, a);
		if (mysql_real_query(c->m, q, (unsigned long)strlen(q)) == 0) {
			if (mysql_field_count(c->m) == 0)
				return NULL;    /* statement without result: caller checks */
			MYSQL_RES *res = mysql_store_result(c->m);
			if (res != NULL)
				return res;
		}
		unsigned int e = mysql_errno(c->m);
		if (e == DMYSQL_ER_COLLATION_MIX2 || e == DMYSQL_ER_COLLATION_MIX3 ||
		    e == DMYSQL_ER_COLLATION_MIXN) {
			/* A value the column's character set cannot hold (a
			 * 4-byte UTF-8 address against ISPmail's utf8mb3
			 * tables) can match no row: not found, not an outage. */
			*nomatch_r = true;
			return NULL;
		}
		log_warn(NULL, "event=mariadb_query_failed errno=%u error=\"%s\"", e, mysql_error(c->m));
		if (e < DMYSQL_CLIENT_ERRORS) {
			return NULL;    /* the server answered: the connection is fine */
		}
		mysql_close(c->m);
		c->m = NULL;
		if (fresh || (e != CR_SERVER_GONE_ERROR && e != CR_SERVER_LOST))
			return NULL;
	}
	return NULL;
}

static enum dir_result dmysql_lookup(struct dir *d, const char *tmpl, const char *address,
				     struct arena *a, MYSQL_RES **res_r, struct dmysql_conn **c_r)
{
	struct dmysql *my = d->backend;
	struct dir_addr key;
	if (dir_addr_parse(address, "", true, a, &key) != 0)
		return DIR_NOTFOUND;
	struct dmysql_conn *c = dmysql_acquire(my);
	bool nomatch = false;
	MYSQL_RES *res = dmysql_query(my, c, false, tmpl, &key, a, &nomatch);
	if (res == NULL) {
		dmysql_release(my, c);
		*res_r = NULL;
		*c_r = NULL;
		return nomatch ? DIR_NOTFOUND : DIR_TEMPFAIL;
	}
	*res_r = res;
	*c_r = c;
	return mysql_num_rows(res) > 0 ? DIR_FOUND : DIR_NOTFOUND;
}

static void dmysql_done(struct dir *d, MYSQL_RES *res, struct dmysql_conn *c)
{
	if (res == NULL)
		return;     /* nothing was held: the lookup released already */
	mysql_free_result(res);
	dmysql_release(d->backend, c);
}

static enum dir_result dmysql_domain(struct dir *d, const char *domain)
{
	struct arena *a = arena_new();
	MYSQL_RES *res;
	struct dmysql_conn *c;
	/* The template's %d is the domain; %s gets "@domain" for Postfix-style
	 * queries that expect the whole key. */
	enum dir_result r = dmysql_lookup(d, d->cfg->domain_query,
					  arena_printf(a, "@%s", domain), a, &res, &c);
	if (r != DIR_TEMPFAIL)
		dmysql_done(d, res, c);
	arena_destroy(&a);
	return r;
}

static enum dir_result dmysql_user(struct dir *d, const char *email, struct arena *a,
				   struct dir_user *u)
{
	MYSQL_RES *res;
	struct dmysql_conn *c;
	enum dir_result r = dmysql_lookup(d, d->cfg->user_query, email, a, &res, &c);
	if (r == DIR_TEMPFAIL)
		return r;
	MYSQL_ROW row = r == DIR_FOUND && res ? mysql_fetch_row(res) : NULL;
	if (row != NULL && mysql_num_fields(res) >= 3 && row[0] && row[1]) {
		u->email = arena_strdup(a, row[0]);
		u->password = arena_strdup(a, row[1]);
		u->quota = row[2] ? strtoll(row[2], NULL, 10) : 0;
	} else if (row != NULL) {
		log_error(NULL, "event=bad_user_query error=\"need columns email, password, quota\"");
		r = DIR_TEMPFAIL;
	}
	dmysql_done(d, res, c);
	return r;
}

static enum dir_result dmysql_aliases(struct dir *d, const char *source, struct arena *a,
				      struct dir_list *dests)
{
	MYSQL_RES *res;
	struct dmysql_conn *c;
	enum dir_result r = dmysql_lookup(d, d->cfg->alias_query, source, a, &res, &c);
	if (r == DIR_TEMPFAIL)
		return r;
	MYSQL_ROW row;
	while (res && (row = mysql_fetch_row(res)) != NULL)
		if (row[0])
			dir_list_split(dests, row[0], a);
	dmysql_done(d, res, c);
	return r;
}

static void dmysql_close(struct dir *d)
{
	struct dmysql *my = d->backend;
	for (size_t i = 0; i < my->n; i++)
		if (my->conns[i].m)
			mysql_close(my->conns[i].m);
	if (my->admin.m)
		mysql_close(my->admin.m);
	free(my->conns);
	pthread_mutex_destroy(&my->mu);
	pthread_cond_destroy(&my->cv);
	free(my);
}

static const struct dir_backend_ops dmysql_ops = {
	.name = "mariadb",
	.domain = dmysql_domain,
	.user = dmysql_user,
	.aliases = dmysql_aliases,
	.admin_domain = dmysql_admin_domain,
	.admin_user_add = dmysql_admin_user_add,
	.admin_user_del = dmysql_admin_user_del,
	.admin_user_set = dmysql_admin_user_set,
	.admin_alias = dmysql_admin_alias,
	.admin_list = dmysql_admin_list,
	.close = dmysql_close,
};

int dir_mysql_open(struct dir *d, const char **error_r)
{
	(void)error_r;
	pthread_once(&dmysql_once, dmysql_library_init);
	struct dmysql *my = xcalloc(1, sizeof(*my));
	my->cfg = &d->cfg->mariadb;
	my->n = (size_t)my->cfg->pool;
	my->conns = xcalloc(my->n, sizeof(*my->conns));
	pthread_mutex_init(&my->mu, NULL);
	pthread_cond_init(&my->cv, NULL);
	d->ops = &dmysql_ops;
	d->backend = my;
	return 0;
}
