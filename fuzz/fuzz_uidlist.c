/* fuzz_uidlist.c - libFuzzer harness: arbitrary bytes as a dovecot-uidlist,
 * fed whole and in chunks chosen by the first byte; both feedings must agree
 * and every record must point into the parser's line and round-trip through
 * the formatter. Also runs the POP3 command parser and the RETR transform
 * (whole and byte by byte must give the same wire bytes). */
#include "pop3/pop3.h"
#include "store/mailbox.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct sum {
	uint64_t n, hash;
};

static int rec_cb(void *ctx, const struct uidlist_rec *r)
{
	struct sum *s = ctx;
	struct buf b = { 0 };
	char *ext = strndup(r->ext.p, r->ext.len), *name = strndup(r->name.p, r->name.len);
	uidlist_format_record(&b, r->uid, ext, name);
	struct uidlist_rec again;
	struct str line = { buf_ptr(&b), b.len - 1 };
	if (uidlist_parse_record(line, &again) != 0 || again.uid != r->uid ||
	    again.name.len != r->name.len)
		__builtin_trap();
	free(ext);
	free(name);
	buf_free(&b);
	s->n++;
	s->hash = s->hash * 31 + r->uid + r->name.len * 7 + r->ext.len;
	return 0;
}

static int parse(const uint8_t *data, size_t size, size_t chunk, struct sum *s)
{
	struct uidlist_parser *p = malloc(sizeof(*p));
	uidlist_parser_init(p);
	int rc = 0;
	for (size_t pos = 0; pos < size && rc == 0; pos += chunk) {
		size_t n = chunk < size - pos ? chunk : size - pos;
		rc = uidlist_parser_feed(p, (const char *)data + pos, n, rec_cb, s);
	}
	if (rc == 0)
		rc = uidlist_parser_finish(p);
	free(p);
	return rc;
}

static void pop3(const uint8_t *data, size_t size)
{
	struct pop3_cmd cmd;
	struct str line = { (const char *)data, size < 512 ? size : 512 };
	if (pop3_cmd_parse(line, &cmd) == 0 && cmd.args.p + cmd.args.len > line.p + line.len)
		__builtin_trap();
	struct pop3_stuff st, st2;
	struct buf out = { 0 }, out2 = { 0 };
	bool top = size > 0 && data[0] & 1;
	uint64_t lines = size > 1 ? data[1] % 8 : 0;
	pop3_stuff_init(&st, top, lines);
	pop3_stuff_feed(&st, (const char *)data, size, &out);
	pop3_stuff_finish(&st, &out);
	if (out.len < 3 || memcmp(buf_ptr(&out) + out.len - 3, ".\r\n", 3) != 0)
		__builtin_trap();
	/* Resumable: byte by byte gives the same wire bytes. */
	pop3_stuff_init(&st2, top, lines);
	for (size_t i = 0; i < size; i++)
		pop3_stuff_feed(&st2, (const char *)data + i, 1, &out2);
	pop3_stuff_finish(&st2, &out2);
	if (out.len != out2.len || memcmp(buf_ptr(&out), buf_ptr(&out2), out.len) != 0)
		__builtin_trap();
	buf_free(&out);
	buf_free(&out2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sum whole = { 0 }, chunked = { 0 };
	int a = parse(data, size, size ? size : 1, &whole);
	int b = parse(data, size, size ? 1 + data[0] % 13 : 1, &chunked);
	if (a != b || (a == 0 && (whole.n != chunked.n || whole.hash != chunked.hash)))
		__builtin_trap();
	pop3(data, size);
	return 0;
}
