/* main.c - moonpostd: option parsing, `-t` config check, then the parent. */
#include "daemon.h"
#include "lua/script.h"
#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MOONPOST_VERSION "0.1.0"
#define DEFAULT_CONF "/etc/moonpost/moonpost.conf"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: moonpostd [-c FILE] [-t] [-V] [-h]\n"
		"  -c FILE  configuration (default " DEFAULT_CONF ")\n"
		"  -t       check the configuration and exit (0 = valid)\n"
		"  -V       print the version\n"
		"Runs in the foreground; logs to stderr. SIGHUP reloads, SIGTERM stops.\n");
}

int main(int argc, char **argv)
{
	const char *path = DEFAULT_CONF;
	int test = 0, opt;
	while ((opt = getopt(argc, argv, "c:tVh")) != -1) {
		switch (opt) {
		case 'c': path = optarg; break;
		case 't': test = 1; break;
		case 'V': printf("moonpostd %s\n", MOONPOST_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	log_init("parent");
	char *errors = NULL;
	struct conf *c = conf_load(path, &errors);
	if (c == NULL) {
		fputs(errors, stderr);
		fprintf(stderr, "moonpostd: configuration %s is invalid\n", path);
		free(errors);
		return 1;
	}
	if (test) {
		struct script_conf sc;
		char err[1024];
		script_conf_from(c, &sc);
		struct script_set *set = script_set_load(&sc, NULL, NULL, NULL, err, sizeof(err));
		if (set == NULL) {
			fprintf(stderr, "%s\nmoonpostd: the Lua scripts do not load\n", err);
			conf_free(&c);
			return 1;
		}
		printf("moonpostd: configuration %s ok, scripts %s\n", path, script_set_hash(set));
		script_set_unref(&set);
		conf_free(&c);
		return 0;
	}
	return parent_run(c);
}
