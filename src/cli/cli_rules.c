/* cli_rules.c - `moonpost rules test` (the configured rules on message
 * files, no server needed) and `moonpost status` (what the running
 * workers have loaded, from the status files in state_dir/status). */
#include "cli.h"
#include "core/util.h"
#include "lua/script.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLI_MESSAGE_MAX (64 * 1024 * 1024)
#define CLI_STATUS_MAX (16 * 1024 * 1024)

static char *cli_slurp(const char *path, size_t max, size_t *len_r)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	size_t cap = 65536, len = 0;
	char *buf = xmalloc(cap + 1);
	size_t n;
	while ((n = fread(buf + len, 1, cap - len, f)) > 0) {
		len += n;
		if (len == cap) {
			if (cap >= max) {
				fclose(f);
				free(buf);
				errno = EFBIG;
				return NULL;
			}
			cap *= 2;
			buf = xreallocarray(buf, cap + 1, 1);
		}
	}
	bool bad = ferror(f);
	fclose(f);
	if (bad) {
		free(buf);
		return NULL;
	}
	buf[len] = '\0';
	*len_r = len;
	return buf;
}

static int cli_rules_usage(void)
{
	fprintf(stderr, "usage: moonpost rules test FILE... [--from ADDR] [--rcpt ADDR] [--ip IP] [--helo NAME] [--json]\n"
			"                         [--repeat N]   (N more timed scans per file: median/p90 us)\n"
			"                         [--stats]      (then every rule's hits and time, as JSON)\n");
	return CLI_USAGE;
}

static int cli_rules_opts(int argc, char **argv, struct script_report_opts *o, bool *json,
			  bool *stats, char **files, size_t *nfiles)
{
	for (int i = 0; i < argc; i++) {
		const char **dst = strcmp(argv[i], "--from") == 0 ? &o->from :
				   strcmp(argv[i], "--rcpt") == 0 ? &o->rcpt :
				   strcmp(argv[i], "--ip") == 0 ? &o->ip :
				   strcmp(argv[i], "--helo") == 0 ? &o->helo : NULL;
		if (dst) {
			if (++i >= argc)
				return -1;
			*dst = argv[i];
		} else if (strcmp(argv[i], "--json") == 0) {
			*json = true;
		} else if (strcmp(argv[i], "--stats") == 0) {
			*stats = true;
		} else if (strcmp(argv[i], "--repeat") == 0) {
			uint64_t n;
			if (++i >= argc || util_parse_uint(argv[i], strlen(argv[i]), 1000000, &n) != 0)
				return -1;
			o->repeat = (unsigned)n;
		} else if (argv[i][0] == '-' && argv[i][1] != '\0') {
			return -1;
		} else {
			files[(*nfiles)++] = argv[i];
		}
	}
	return *nfiles ? 0 : -1;
}

static int cli_rules_test(struct cli *cli, int argc, char **argv)
{
	struct script_report_opts o = { 0 };
	bool json = false, stats = false;
	char **files = xcalloc((size_t)argc + 1, sizeof(*files));
	size_t nfiles = 0;
	if (cli_rules_opts(argc, argv, &o, &json, &stats, files, &nfiles) != 0) {
		free(files);
		return cli_rules_usage();
	}
	struct script_conf sc;
	char err[1024];
	script_conf_from(cli_conf(cli), &sc);
	struct script_set *set = script_set_load(&sc, NULL, NULL, NULL, err, sizeof(err));
	if (set == NULL) {
		free(files);
		return cli_fail("the scripts do not load: %s", err);
	}
	int rc = CLI_OK;
	for (size_t i = 0; i < nfiles; i++) {
		size_t len = 0;
		char *raw = cli_slurp(files[i], CLI_MESSAGE_MAX, &len);
		if (raw == NULL) {
			rc = cli_fail("%s: %s", files[i], strerror(errno));
			continue;
		}
		o.file = files[i];
		char *report = script_set_report(set, raw, len, &o, json);
		if (json)
			printf("%s\n", report);
		else if (nfiles > 1)
			printf("== %s\n%s\n", files[i], report);
		else
			printf("%s\n", report);
		if (strncmp(report, "error: ", 7) == 0)
			rc = CLI_FAIL;
		free(report);
		free(raw);
	}
	/* where a rule author finds the slow rule: time summed over every
	 * scan above (with --repeat, over all of them) */
	if (stats)
		printf("%s\n", script_set_stats_json(set));
	script_set_unref(&set);
	free(files);
	return rc;
}

int cli_cmd_rules(struct cli *cli, int argc, char **argv)
{
	if (argc < 1 || cli_help_asked(argc, argv) || strcmp(argv[0], "test") != 0)
		return cli_rules_usage();
	return cli_rules_test(cli, argc - 1, argv + 1);
}

/* A worker's file is lua-PID.json; files of dead pids are leftovers of a
 * crash and are skipped. */
static bool cli_status_live(const char *name)
{
	int pid = 0;
	if (sscanf(name, "lua-%d.json", &pid) != 1)
		return strcmp(name, "parent.json") == 0;
	return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

int cli_cmd_status(struct cli *cli, int argc, char **argv)
{
	if (argc > 0 || cli_help_asked(argc, argv)) {
		fprintf(stderr, "usage: moonpost status\n");
		return argc > 0 && !cli_help_asked(argc, argv) ? CLI_USAGE : CLI_OK;
	}
	const struct conf *c = cli_conf(cli);
	char dirpath[4200];
	snprintf(dirpath, sizeof(dirpath), "%s/status", c->state_dir);
	DIR *d = opendir(dirpath);
	if (d == NULL)
		return cli_fail("%s: %s (is moonpostd running?)", dirpath, strerror(errno));
	char *texts[260];
	size_t n = 0, workers = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL && n < 260) {
		char path[4500];
		size_t len;
		if (!strstr(e->d_name, ".json") || strstr(e->d_name, ".tmp") || !cli_status_live(e->d_name))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dirpath, e->d_name);
		if ((texts[n] = cli_slurp(path, CLI_STATUS_MAX, &len)) != NULL) {
			workers += strncmp(e->d_name, "lua-", 4) == 0;
			n++;
		}
	}
	closedir(d);
	int rc = CLI_OK;
	if (workers == 0) {
		rc = cli_fail("no running worker found in %s (is moonpostd running?)", dirpath);
	} else {
		char err[1024];
		char *out = script_status_format(c->lua.lib_dir, (const char *const *)texts, n, err, sizeof(err));
		if (out == NULL)
			rc = cli_fail("status: %s", err);
		else
			fputs(out, stdout);
		free(out);
	}
	for (size_t i = 0; i < n; i++)
		free(texts[i]);
	return rc;
}
