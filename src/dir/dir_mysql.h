/* dir_mysql.h - internal to the MariaDB backend: shared by lookups
 * (dir_mysql.c) and administration (dir_mysql_admin.c). */
#ifndef MP_DIR_MYSQL_H
#define MP_DIR_MYSQL_H

#include "dir_int.h"

#include <pthread.h>
#include <mysql.h>

struct dmysql_conn {
	MYSQL *m;
	bool busy;
};

struct dmysql {
	const struct conf_mariadb *cfg;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct dmysql_conn *conns;
	size_t n;
	struct dmysql_conn admin;       /* the CLI's writes */
};

MYSQL *dmysql_connect(const struct conf_mariadb *cfg, bool admin, const char **err_r,
			     struct arena *a);
char *dmysql_escape(void *ctx, const char *s, struct arena *a);

int dmysql_admin_domain(struct dir *d, bool add, const char *domain,
			struct arena *a, const char **error_r);
int dmysql_admin_user_add(struct dir *d, const struct dir_addr *addr, const char *hash,
			  int64_t quota, struct arena *a, const char **error_r);
int dmysql_admin_user_del(struct dir *d, const char *email, struct arena *a,
			  const char **error_r);
int dmysql_admin_user_set(struct dir *d, const char *email, const char *hash,
			  int64_t quota, struct arena *a, const char **error_r);
int dmysql_admin_alias(struct dir *d, bool add, const struct dir_addr *source,
		       const char *destination, struct arena *a, const char **error_r);
int dmysql_admin_list(struct dir *d, const char *what, const char *domain,
		      struct arena *a, struct dir_list *out, const char **error_r);

#endif
