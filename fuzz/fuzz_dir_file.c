/* fuzz_dir_file.c - libFuzzer harness: the directory file parser and the
 * address parser on arbitrary bytes. */
#include "dir/dir_file.h"
#include "core/arena.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *err = NULL;
	struct dfile_data *dd = dfile_parse("fuzz", (const char *)data, size, &err);
	if (dd == NULL && err == NULL)
		__builtin_trap();
	dfile_data_release(dd);
	if (size < 400 && memchr(data, 0, size) == NULL) {
		char s[401];
		memcpy(s, data, size);
		s[size] = '\0';
		struct arena *a = arena_new();
		struct dir_addr addr;
		if (dir_addr_parse(s, "+-", true, a, &addr) == 0 &&
		    (addr.domain == NULL || addr.full == NULL))
			__builtin_trap();
		arena_destroy(&a);
	}
	return 0;
}
