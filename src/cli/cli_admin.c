/* cli_admin.c - moonpost domain|user|alias: directory administration. */
#include "cli.h"
#include "core/arena.h"
#include "core/util.h"
#include "dir/passwd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cli_admin_done(int rc, const char *err, struct arena **a)
{
	if (rc != 0)
		cli_fail("%s", err ? err : "failed");
	arena_destroy(a);
	return rc == 0 ? CLI_OK : CLI_FAIL;
}

static int cli_list(struct cli *cli, const char *what, const char *domain)
{
	struct arena *a = arena_new();
	struct dir_list l = { 0 };
	const char *err = NULL;
	int rc = dir_admin_list(cli_dir(cli), what, domain, a, &l, &err);
	for (size_t i = 0; rc == 0 && i < l.n; i++)
		printf("%s\n", l.items[i]);
	return cli_admin_done(rc, err, &a);
}

int cli_cmd_domain(struct cli *cli, int argc, char **argv)
{
	if (cli_help_asked(argc, argv) || argc < 1) {
		printf("usage: moonpost domain add NAME | domain del NAME | domain list\n"
		       "  del also removes the domain's users and aliases (as the ISPmail schema's\n"
		       "  ON DELETE CASCADE does); mail already in Maildirs is left alone.\n");
		return argc < 1 ? CLI_USAGE : CLI_OK;
	}
	if (strcmp(argv[0], "list") == 0 && argc == 1)
		return cli_list(cli, "domain", NULL);
	if ((strcmp(argv[0], "add") != 0 && strcmp(argv[0], "del") != 0) || argc != 2)
		return cli_fail("usage: moonpost domain add|del NAME | domain list"), CLI_USAGE;
	struct arena *a = arena_new();
	struct dir_addr addr;
	const char *err = NULL;
	if (dir_addr_parse(arena_printf(a, "x@%s", argv[1]), "", false, a, &addr) != 0) {
		arena_destroy(&a);
		return cli_fail("not a domain name: %s", argv[1]);
	}
	int rc = dir_admin_domain(cli_dir(cli), strcmp(argv[0], "add") == 0, addr.domain, a, &err);
	return cli_admin_done(rc, err, &a);
}

/* Parses "--quota N" / "--scheme S" options from argv[from..]. */
static int cli_user_opts(int argc, char **argv, int from, int64_t *quota, const char **scheme)
{
	for (int i = from; i < argc; i++) {
		uint64_t q;
		if (strcmp(argv[i], "--quota") == 0 && i + 1 < argc &&
		    util_parse_uint(argv[i + 1], strlen(argv[i + 1]), INT64_MAX, &q) == 0) {
			*quota = (int64_t)q;
			i++;
		} else if (strcmp(argv[i], "--scheme") == 0 && i + 1 < argc) {
			*scheme = argv[++i];
		} else {
			return cli_fail("unexpected argument \"%s\"", argv[i]), -1;
		}
	}
	return 0;
}

static char *cli_new_hash(struct cli *cli, const char *scheme)
{
	const struct conf *c = cli_conf(cli);
	const char *err = NULL;
	char *pw = cli_read_password(true);
	if (pw == NULL)
		return cli_fail("no password given"), NULL;
	if (pw[0] == '\0') {
		free(pw);
		return cli_fail("empty password refused"), NULL;
	}
	char *hash = passwd_hash(scheme ? scheme : c->directory.password_scheme, pw, strlen(pw),
				 c->directory.allow_plaintext_passwords, &err);
	free(pw);
	if (hash == NULL)
		cli_fail("%s", err);
	return hash;
}

static int cli_user_write(struct cli *cli, const char *op, const char *email,
			  int64_t quota, const char *scheme)
{
	struct arena *a = arena_new();
	struct dir_addr addr;
	const char *err = NULL;
	int rc = -1;
	if (dir_addr_parse(email, "", false, a, &addr) != 0) {
		arena_destroy(&a);
		return cli_fail("not an address: %s", email);
	}
	struct dir *d = cli_dir(cli);
	if (strcmp(op, "del") == 0) {
		rc = dir_admin_user_del(d, addr.full, a, &err);
	} else if (strcmp(op, "quota") == 0) {
		rc = dir_admin_user_set(d, addr.full, NULL, quota, a, &err);
	} else {
		char *hash = cli_new_hash(cli, scheme);
		if (hash == NULL) {
			arena_destroy(&a);
			return CLI_FAIL;
		}
		rc = strcmp(op, "add") == 0 ? dir_admin_user_add(d, addr.full, hash, quota, a, &err)
					    : dir_admin_user_set(d, addr.full, hash, -1, a, &err);
		free(hash);
	}
	return cli_admin_done(rc, err, &a);
}

int cli_cmd_user(struct cli *cli, int argc, char **argv)
{
	if (cli_help_asked(argc, argv) || argc < 1) {
		printf("usage: moonpost user add EMAIL [--quota BYTES] [--scheme SCHEME]\n"
		       "       moonpost user del EMAIL | user list [DOMAIN]\n"
		       "       moonpost user passwd EMAIL [--scheme SCHEME] | user quota EMAIL BYTES\n"
		       "  The password is read from stdin, or prompted for without echo.\n"
		       "  SCHEME defaults to directory.password_scheme (ARGON2ID); quota 0 = unlimited.\n");
		return argc < 1 ? CLI_USAGE : CLI_OK;
	}
	const char *op = argv[0];
	int64_t quota = 0;
	const char *scheme = NULL;
	if (strcmp(op, "list") == 0 && argc <= 2)
		return cli_list(cli, "user", argc == 2 ? argv[1] : NULL);
	if (strcmp(op, "quota") == 0 && argc == 3) {
		uint64_t q;
		if (util_parse_uint(argv[2], strlen(argv[2]), INT64_MAX, &q) != 0)
			return cli_fail("bad quota \"%s\" (bytes, 0 = unlimited)", argv[2]);
		return cli_user_write(cli, op, argv[1], (int64_t)q, NULL);
	}
	if (argc >= 2 && (strcmp(op, "add") == 0 || strcmp(op, "passwd") == 0 ||
			  (strcmp(op, "del") == 0 && argc == 2))) {
		if (cli_user_opts(argc, argv, 2, &quota, &scheme) != 0)
			return CLI_USAGE;
		return cli_user_write(cli, op, argv[1], quota, scheme);
	}
	return cli_fail("bad arguments (try: moonpost user --help)"), CLI_USAGE;
}

int cli_cmd_alias(struct cli *cli, int argc, char **argv)
{
	if (cli_help_asked(argc, argv) || argc < 1) {
		printf("usage: moonpost alias add SOURCE DEST | alias del SOURCE DEST | alias list [DOMAIN]\n"
		       "  SOURCE may be @domain (catch-all: only addresses without a mailbox or\n"
		       "  alias of their own). DEST may be external; add several rows for several.\n");
		return argc < 1 ? CLI_USAGE : CLI_OK;
	}
	if (strcmp(argv[0], "list") == 0 && argc <= 2)
		return cli_list(cli, "alias", argc == 2 ? argv[1] : NULL);
	if ((strcmp(argv[0], "add") != 0 && strcmp(argv[0], "del") != 0) || argc != 3)
		return cli_fail("usage: moonpost alias add|del SOURCE DEST"), CLI_USAGE;
	struct arena *a = arena_new();
	struct dir_addr src, dst;
	const char *err = NULL;
	bool src_ok = dir_addr_parse(argv[1], "", true, a, &src) == 0;
	if (!src_ok || dir_addr_parse(argv[2], "", false, a, &dst) != 0) {
		arena_destroy(&a);
		return cli_fail("not an address: %s", src_ok ? argv[2] : argv[1]);
	}
	int rc = dir_admin_alias(cli_dir(cli), strcmp(argv[0], "add") == 0, src.full, dst.full, a, &err);
	return cli_admin_done(rc, err, &a);
}
