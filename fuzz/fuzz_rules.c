/* fuzz_rules.c - libFuzzer harness: the shipped rule set (rules/ with the
 * library in lua/) scans arbitrary bytes as a message, through the same
 * entry point as `moonpost rules test --json`. This drives every message
 * binding (src/lua/script_msg.c) and src/mime beneath it with the access
 * patterns real rules have, under ASan/UBSan.
 *
 * Beyond memory errors it traps when a shipped rule raises an error: in the
 * server such a rule only counts as "not matched", but on some input it
 * silently stops protecting, so it is a bug in the rule (a nil field, a
 * pattern assumption) that the fuzzer should find. Budget aborts are not
 * errors of the rule's logic and are allowed. */
#include "lua/script.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

static struct script_set *set;

/* At exit the set is closed, so LeakSanitizer sees only real leaks. */
static void fuzz_rules_free(void)
{
	script_set_unref(&set);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	static char policies[] = "/tmp/fuzz-rules-policies-XXXXXX";
	if (mkdtemp(policies) == NULL)
		abort();
	struct script_conf sc = {
		.lib_dir = MP_SRCDIR "/lua", .rules_dir = MP_SRCDIR "/rules", .policies_dir = policies,
		.budget = 2, .load_budget = 30, .reject = 15, .add_header = 6, .soft_reject = 0,
		.scan_max = 10 << 20,
	};
	char err[1024];
	set = script_set_load(&sc, NULL, NULL, NULL, err, sizeof(err));
	if (set == NULL) {
		fprintf(stderr, "fuzz_rules: the rule set does not load: %s\n", err);
		abort();
	}
	rmdir(policies);
	atexit(fuzz_rules_free);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct script_report_opts o = { .file = "fuzz" };
	char *r = script_set_report(set, (const char *)data, size, &o, true);
	CHECK(r != NULL && r[0] == '{');
	/* "errors":[] when no rule raised; a budget abort is allowed. */
	const char *e = strstr(r, "\"errors\":");
	CHECK(e != NULL);
	if (strncmp(e, "\"errors\":[]", 11) != 0 && strncmp(e, "\"errors\":{}", 11) != 0 &&
	    strstr(e, "budget exceeded") == NULL) {
		fprintf(stderr, "fuzz_rules: a rule raised: %.2000s\n", e);
		__builtin_trap();
	}
	free(r);
	return 0;
}
