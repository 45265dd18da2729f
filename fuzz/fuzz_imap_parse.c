/* fuzz_imap_parse.c - libFuzzer harness: the IMAP command parser, sequence
 * sets and response quoting on arbitrary bytes. Feeding the same input
 * whole and in 7-byte pieces must report the same events and arguments;
 * every argument slice must lie inside the parser's data and every "next"
 * index inside the argument array. */
#include "imap/imap.h"

#include <stdint.h>
#include <string.h>

static const struct imap_parse_limits lim = {
	.line_max = 512, .literal_max = 4096, .cmd_max = 16384, .args_max = 64, .depth_max = 8,
};

static void record(struct imap_parser *p, enum imap_parse_result r, struct buf *log)
{
	buf_printf(log, "%d|", (int)r);
	if (r == IMAP_PARSE_ERROR)
		buf_printf(log, "%d %s %s|", (int)p->error, p->tag, p->error_text);
	if (r != IMAP_PARSE_OK)
		return;
	buf_printf(log, "%s %s %zu %zu|", p->tag, p->name, p->nout, p->line.len);
	for (size_t i = 0; i < p->nout; i++) {
		const struct imap_arg *a = &p->out[i];
		if (a->span == 0 || i + a->span > p->nout)
			__builtin_trap();
		if (a->s.len && (a->s.p < buf_ptr(&p->data) ||
				 a->s.p + a->s.len > buf_ptr(&p->data) + p->data.len))
			__builtin_trap();
		buf_printf(log, "%d:%zu:", (int)a->type, a->span);
		buf_append(log, a->s.p, a->s.len);
		struct imap_seqset set;
		if (a->type == IMAP_ARG_ATOM && imap_seqset_parse(a->s, 100, &set) == 0) {
			buf_printf(log, "[%d]", imap_seqset_contains(&set, 3, 10));
			imap_seqset_free(&set);
		}
		struct buf q = { 0 };
		imap_append_astring(&q, a->s);
		buf_free(&q);
	}
}

static void feed(const uint8_t *data, size_t size, size_t piece, struct buf *log)
{
	struct imap_parser p;
	imap_parser_init(&p, &lim);
	for (size_t pos = 0; pos < size;) {
		size_t n = piece && piece < size - pos ? piece : size - pos, used = 0;
		enum imap_parse_result r = imap_parser_feed(&p, (const char *)data + pos, n, &used);
		if (used > n)
			__builtin_trap();
		pos += used;
		if (r != IMAP_PARSE_AGAIN)
			record(&p, r, log);
		if (r == IMAP_PARSE_OK && p.nout > 0 && p.out[0].type == IMAP_ARG_ATOM &&
		    p.out[0].s.len == 4 && memcmp(p.out[0].s.p, "LINE", 4) == 0)
			imap_parser_want_line(&p);
		if (r == IMAP_PARSE_ERROR && p.error == IMAP_ERR_FATAL)
			break;
	}
	imap_parser_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf a = { 0 }, b = { 0 };
	feed(data, size, 0, &a);
	feed(data, size, 7, &b);
	if (a.len != b.len || memcmp(buf_ptr(&a), buf_ptr(&b), a.len) != 0)
		__builtin_trap();
	buf_free(&a);
	buf_free(&b);
	return 0;
}
