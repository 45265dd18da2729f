/* main.c - moonpost: administration of domains, users and aliases,
 * password hashes and address lookups, against the configured directory. */
#include "cli.h"
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#define DEFAULT_CONF "/etc/moonpost/moonpost.conf"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: moonpost [-c CONF] COMMAND ...\n"
		"  domain add|del NAME | domain list\n"
		"  user add EMAIL [--quota BYTES] [--scheme S] | user del EMAIL\n"
		"  user list [DOMAIN] | user passwd EMAIL [--scheme S] | user quota EMAIL BYTES\n"
		"  alias add|del SOURCE DEST | alias list [DOMAIN]\n"
		"  pw hash [-s SCHEME] | pw verify HASH     (password on stdin or prompted)\n"
		"  lookup ADDRESS                           (exit 0 found, 1 unknown, 75 tempfail)\n"
		"  rules test FILE... [--from A] [--rcpt B] [--ip X] [--helo H] [--json]\n"
		"  status                                   (scripts loaded by the running workers)\n"
		"CONF defaults to $MOONPOST_CONF or " DEFAULT_CONF ". COMMAND --help for details.\n");
}

int cli_fail(const char *fmt, ...)
{
	va_list ap;
	fputs("moonpost: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return CLI_FAIL;
}

bool cli_help_asked(int argc, char **argv)
{
	for (int i = 0; i < argc; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return true;
	return false;
}

const struct conf *cli_conf(struct cli *cli)
{
	if (cli->conf)
		return cli->conf;
	char *errors = NULL;
	cli->conf = conf_load_notls(cli->conf_path, &errors);
	if (cli->conf == NULL) {
		fputs(errors, stderr);
		cli_fail("configuration %s is invalid", cli->conf_path);
		exit(CLI_FAIL);
	}
	return cli->conf;
}

struct dir *cli_dir(struct cli *cli)
{
	if (cli->dir)
		return cli->dir;
	const char *err = NULL;
	cli->dir = dir_open(cli_conf(cli), &err);
	if (cli->dir == NULL) {
		cli_fail("directory: %s", err ? err : "cannot open");
		exit(CLI_FAIL);
	}
	return cli->dir;
}

static char *cli_read_line(void)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n = getline(&line, &cap, stdin);
	if (n < 0) {
		free(line);
		return NULL;
	}
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	return line;
}

static char *cli_prompt(const char *prompt)
{
	struct termios old, quiet;
	fputs(prompt, stderr);
	tcgetattr(STDIN_FILENO, &old);
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	char *p = cli_read_line();
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
	fputc('\n', stderr);
	return p;
}

char *cli_read_password(bool confirm)
{
	if (!isatty(STDIN_FILENO))
		return cli_read_line();
	char *p = cli_prompt("Password: ");
	if (p == NULL || !confirm)
		return p;
	char *again = cli_prompt("Again: ");
	if (again == NULL || strcmp(p, again) != 0) {
		free(p);
		free(again);
		cli_fail("passwords do not match");
		return NULL;
	}
	free(again);
	return p;
}

static const struct {
	const char *name;
	int (*fn)(struct cli *cli, int argc, char **argv);
} cli_commands[] = {
	{ "domain", cli_cmd_domain },
	{ "user", cli_cmd_user },
	{ "alias", cli_cmd_alias },
	{ "pw", cli_cmd_pw },
	{ "lookup", cli_cmd_lookup },
	{ "rules", cli_cmd_rules },
	{ "status", cli_cmd_status },
};

int main(int argc, char **argv)
{
	struct cli cli = { .conf_path = getenv("MOONPOST_CONF") };
	if (cli.conf_path == NULL)
		cli.conf_path = DEFAULT_CONF;
	log_init("cli");
	log_set_level(LOG_LVL_ERROR);
	int i = 1;
	if (i + 1 < argc && strcmp(argv[i], "-c") == 0) {
		cli.conf_path = argv[i + 1];
		i += 2;
	}
	if (i >= argc || strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
		usage(i >= argc ? stderr : stdout);
		return i >= argc ? CLI_USAGE : CLI_OK;
	}
	for (size_t k = 0; k < sizeof(cli_commands) / sizeof(cli_commands[0]); k++) {
		if (strcmp(argv[i], cli_commands[k].name) == 0) {
			int rc = cli_commands[k].fn(&cli, argc - i - 1, argv + i + 1);
			dir_close(&cli.dir);
			conf_free(&cli.conf);
			return rc;
		}
	}
	cli_fail("unknown command \"%s\" (try --help)", argv[i]);
	return CLI_USAGE;
}
