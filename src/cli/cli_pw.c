/* cli_pw.c - moonpost pw (hash, verify) and moonpost lookup. */
#include "cli.h"
#include "core/arena.h"
#include "dir/passwd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* pw works without a config file: defaults then. */
static const char *cli_pw_default_scheme(struct cli *cli, bool *allow_plain)
{
	FILE *f = fopen(cli->conf_path, "r");
	*allow_plain = false;
	if (f == NULL)
		return "ARGON2ID";
	fclose(f);
	const struct conf *c = cli_conf(cli);
	*allow_plain = c->directory.allow_plaintext_passwords;
	return c->directory.password_scheme;
}

int cli_cmd_pw(struct cli *cli, int argc, char **argv)
{
	if (cli_help_asked(argc, argv) || argc < 1) {
		printf("usage: moonpost pw hash [-s SCHEME]   prints a new hash for the password\n"
		       "       moonpost pw verify HASH        exit 0 if the password matches, 1 if not\n"
		       "  The password is read from stdin, or prompted for without echo.\n"
		       "  Schemes: ARGON2ID (default) ARGON2I BLF-CRYPT SHA512-CRYPT SHA256-CRYPT\n"
		       "  SSHA512 SSHA256 - the strings Dovecot's doveadm pw makes and reads.\n");
		return argc < 1 ? CLI_USAGE : CLI_OK;
	}
	bool allow_plain;
	const char *err = NULL;
	if (strcmp(argv[0], "hash") == 0 && (argc == 1 || (argc == 3 && strcmp(argv[1], "-s") == 0))) {
		const char *scheme = cli_pw_default_scheme(cli, &allow_plain);
		if (argc == 3)
			scheme = argv[2];
		if (!passwd_scheme_supported(scheme))
			return cli_fail("unknown scheme \"%s\"", scheme);
		char *pw = cli_read_password(true);
		if (pw == NULL)
			return cli_fail("no password given");
		char *hash = passwd_hash(scheme, pw, strlen(pw), allow_plain, &err);
		free(pw);
		if (hash == NULL)
			return cli_fail("%s", err);
		printf("%s\n", hash);
		free(hash);
		return CLI_OK;
	}
	if (strcmp(argv[0], "verify") == 0 && argc == 2) {
		cli_pw_default_scheme(cli, &allow_plain);
		char *pw = cli_read_password(false);
		if (pw == NULL)
			return cli_fail("no password given");
		int r = passwd_verify(argv[1], pw, strlen(pw), allow_plain, &err);
		free(pw);
		if (r < 0)
			return cli_fail("%s", err);
		printf("%s\n", r == 1 ? "match" : "no match");
		return r == 1 ? CLI_OK : CLI_FAIL;
	}
	return cli_fail("usage: moonpost pw hash [-s SCHEME] | pw verify HASH"), CLI_USAGE;
}

static void cli_lookup_print(const struct dir_node *nd)
{
	printf("%*s%s: ", nd->depth * 2, "", nd->address);
	switch (nd->kind) {
	case DIR_NODE_ALIAS:
		printf("alias%s\n", nd->catchall ? " (catch-all)" : "");
		break;
	case DIR_NODE_MAILBOX:
		printf("mailbox %s quota=%lld%s\n", nd->user.maildir, (long long)nd->user.quota,
		       nd->catchall ? " (catch-all)" : "");
		break;
	case DIR_NODE_EXTERNAL:
		printf("external (needs outbound delivery)\n");
		break;
	case DIR_NODE_UNKNOWN:
		printf("unknown\n");
		break;
	case DIR_NODE_LOOP:
		printf("alias loop or too deep: not expanded\n");
		break;
	}
}

int cli_cmd_lookup(struct cli *cli, int argc, char **argv)
{
	if (cli_help_asked(argc, argv) || argc != 1) {
		printf("usage: moonpost lookup ADDRESS\n"
		       "  Prints what happens to mail for ADDRESS: mailbox path, alias expansion,\n"
		       "  external targets, or unknown. Exit 0 found, 1 unknown, 75 tempfail.\n");
		return argc != 1 ? CLI_USAGE : CLI_OK;
	}
	struct arena *a = arena_new();
	struct dir_resolution r;
	struct dir_addr addr;
	if (dir_addr_parse(argv[0], "", false, a, &addr) != 0) {
		arena_destroy(&a);
		return cli_fail("not an address: %s", argv[0]);
	}
	dir_resolve(cli_dir(cli), argv[0], a, &r);
	int rc = CLI_OK;
	if (r.result == DIR_TEMPFAIL) {
		cli_fail("%s: directory temporarily unavailable, try again later", argv[0]);
		rc = CLI_TEMPFAIL;
	} else if (!r.local_domain) {
		printf("%s: not a local domain (would be relayed for authenticated senders only)\n", argv[0]);
		rc = CLI_FAIL;
	} else {
		for (size_t i = 0; i < r.n_nodes; i++)
			cli_lookup_print(&r.nodes[i]);
		rc = r.result == DIR_FOUND ? CLI_OK : CLI_FAIL;
	}
	arena_destroy(&a);
	return rc;
}
