/* fuzz_conf_locate.c - libFuzzer harness: the config key locator on
 * arbitrary text (it must never fail, loop or read out of bounds). */
#include "core/conf_locate.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conf_locs *l = conf_locate((const char *)data, size);
	(void)conf_locs_line(l, "listen.1.port");
	conf_locs_free(&l);
	return 0;
}
