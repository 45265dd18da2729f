/* cli.h - the moonpost command: shared helpers of its subcommands.
 *
 * Every subcommand prints one clear line on stderr and exits non-zero on
 * error; `--help` works on each. Exit codes: 0 ok, 1 error or "no",
 * 2 usage, 75 (EX_TEMPFAIL) directory temporarily unavailable. */
#ifndef MP_CLI_H
#define MP_CLI_H

#include <stdbool.h>

#include "core/conf.h"
#include "dir/dir.h"

#define CLI_OK 0
#define CLI_FAIL 1
#define CLI_USAGE 2
#define CLI_TEMPFAIL 75

struct cli {
	const char *conf_path;
	struct conf *conf;      /* loaded lazily by cli_conf() */
	struct dir *dir;        /* opened lazily by cli_dir() */
};

/* Loaded config, or exits 1 with its errors. */
const struct conf *cli_conf(struct cli *cli);
/* Opened directory, or exits 1. */
struct dir *cli_dir(struct cli *cli);
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
bool cli_help_asked(int argc, char **argv);
/* Reads a password: no-echo prompt (twice when confirm) on a terminal,
 * else one line from stdin. malloc'd; NULL on EOF/mismatch. */
char *cli_read_password(bool confirm);

int cli_cmd_domain(struct cli *cli, int argc, char **argv);
int cli_cmd_user(struct cli *cli, int argc, char **argv);
int cli_cmd_alias(struct cli *cli, int argc, char **argv);
int cli_cmd_pw(struct cli *cli, int argc, char **argv);
int cli_cmd_lookup(struct cli *cli, int argc, char **argv);
int cli_cmd_rules(struct cli *cli, int argc, char **argv);
int cli_cmd_status(struct cli *cli, int argc, char **argv);

#endif
