/* fuzz_smtp_data.c - libFuzzer harness: the DATA/BDAT reader and the
 * MAIL/RCPT path parser on arbitrary bytes. Feeding the same input whole
 * and in 7-byte pieces must give identical output. */
#include "smtp/smtp.h"
#include "smtp/smtp_data.h"

#include <stdint.h>
#include <string.h>

static void feed(const uint8_t *data, size_t size, size_t piece, bool bdat, struct buf *out,
		 size_t *end_r)
{
	struct smtp_data d;
	smtp_data_init(&d, bdat, 998, 1 << 20);
	*end_r = 0;
	for (size_t pos = 0; pos < size;) {
		size_t n = piece && piece < size - pos ? piece : size - pos, used;
		enum smtp_data_status st = smtp_data_feed(&d, (const char *)data + pos, n, out, &used);
		if (used > n)
			__builtin_trap();
		pos += used;
		if (st == SMTP_DATA_END) {
			*end_r = pos;
			break;
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	for (int bdat = 0; bdat < 2; bdat++) {
		struct buf a = { 0 }, b = { 0 };
		size_t ea, eb;
		feed(data, size, 0, bdat, &a, &ea);
		feed(data, size, 7, bdat, &b, &eb);
		if (ea != eb || a.len != b.len || memcmp(buf_ptr(&a), buf_ptr(&b), a.len) != 0)
			__builtin_trap();
		buf_free(&a);
		buf_free(&b);
	}
	struct smtp_path p;
	struct str args = { (const char *)data, size };
	if (smtp_path_parse(args, "TO:", true, &p) == 0 &&
	    (p.addr.p + p.addr.len > args.p + args.len || p.params.p + p.params.len > args.p + args.len))
		__builtin_trap();
	struct str k, v;
	struct str params = args;
	for (int i = 0; i < 100 && smtp_param_next(&params, &k, &v) == 1; i++)
		;
	return 0;
}
