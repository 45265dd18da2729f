/* fuzz_smtp_cmd.c - libFuzzer harness: arbitrary bytes through the bounded
 * line reader, then every line through the SMTP command parser. */
#include "core/linebuf.h"
#include "smtp/smtp.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct linebuf lb;
	const char *p = (const char *)data;
	linebuf_init(&lb, 64 + (size ? data[0] : 0));
	while (size > 0) {
		struct str line;
		size_t used;
		enum linebuf_status st = linebuf_next(&lb, p, size, &line, &used);
		if (used > size)
			__builtin_trap();
		if (st == LINEBUF_LINE) {
			struct smtp_cmd cmd;
			if (smtp_cmd_parse(line, &cmd) == 0 &&
			    (cmd.verb.len == 0 || cmd.verb.p < line.p ||
			     cmd.args.p + cmd.args.len > line.p + line.len))
				__builtin_trap();
		}
		if (used == 0)
			break;
		p += used;
		size -= used;
	}
	return 0;
}
