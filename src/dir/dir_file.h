/* dir_file.h - internal to the file backend: parsed data and the parser
 * (pure: text in, data or "file:line: message" out) and the editors. */
#ifndef MP_DIR_FILE_H
#define MP_DIR_FILE_H

#include "dir_int.h"

struct dfile_user {
	const char *email, *password;
	int64_t quota;
};

struct dfile_alias {
	const char *source, *destination;
};

struct dfile_data {
	struct arena *arena;
	const char **domains;
	size_t n_domains;
	struct dfile_user *users;
	size_t n_users;
	struct dfile_alias *aliases;
	size_t n_aliases;
	int refs;
};

/* Parses text (len bytes). NULL with *error_r ("path:line: message",
 * thread-local storage) on the first error. */
struct dfile_data *dfile_parse(const char *path, const char *text, size_t len,
			       const char **error_r);
struct dfile_data *dfile_parse_path(const char *path, const char **error_r);
/* Cuts a "# comment" off line (only a '#' at the start of a field). */
void dfile_strip_comment(char *line);
void dfile_data_release(struct dfile_data *dd);

const char *dfile_path(struct dir *d);
/* Forces the next lookup to re-check the file (after our own write). */
void dfile_invalidate(struct dir *d);

int dfile_admin_domain(struct dir *d, bool add, const char *domain,
		       struct arena *a, const char **error_r);
int dfile_admin_user_add(struct dir *d, const struct dir_addr *addr, const char *hash,
			 int64_t quota, struct arena *a, const char **error_r);
int dfile_admin_user_del(struct dir *d, const char *email, struct arena *a,
			 const char **error_r);
int dfile_admin_user_set(struct dir *d, const char *email, const char *hash,
			 int64_t quota, struct arena *a, const char **error_r);
int dfile_admin_alias(struct dir *d, bool add, const struct dir_addr *source,
		      const char *destination, struct arena *a, const char **error_r);
int dfile_admin_list(struct dir *d, const char *what, const char *domain,
		     struct arena *a, struct dir_list *out, const char **error_r);

#endif
