/* fuzz_imap_parse.c - libFuzzer harness: the IMAP command parser, sequence
 * sets and response quoting on arbitrary bytes. Feeding the same input
 * whole and in 7-byte pieces must report the same events and arguments;
 * every argument slice must lie inside the parser's data and every "next"
 * index inside the argument array. A second pass runs in announce mode
 * (APPEND streaming): each literal is buffered, sunk or refused by its
 * size; the sunk bytes (whatever the chunking) and the partial argument
 * views must come out the same, every chunk inside the input fed. */
#include "imap/imap.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

static const struct imap_parse_limits lim = {
	.line_max = 512, .literal_max = 4096, .cmd_max = 16384, .args_max = 64, .depth_max = 8,
};

static void check_args(const struct imap_parser *p, const struct imap_arg *args, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct imap_arg *a = &args[i];
		if (a->span == 0 || i + a->span > n)
			__builtin_trap();
		if (a->s.len && (a->s.p < buf_ptr(&p->data) ||
				 a->s.p + a->s.len > buf_ptr(&p->data) + p->data.len))
			__builtin_trap();
	}
}

/* Logs an event; true after a fatal error (the session would close). */
static bool record(struct imap_parser *p, enum imap_parse_result r, struct buf *log);

/* Announce mode: the decision follows from the size, so both feeds take
 * the same one; a refusal only for a synchronizing literal (contract). */
static bool decide(struct imap_parser *p, struct buf *log)
{
	const struct imap_arg *args;
	size_t n;
	if (imap_parser_partial(p, &args, &n)) {
		check_args(p, args, n);
		buf_printf(log, "P%zu|", n);
	}
	switch (p->lit_size % 4) {
	case 0:
		return record(p, imap_parser_literal(p, IMAP_LIT_BUFFER), log);
	case 1:
		if (!p->lit_plus) {
			imap_parser_literal_refuse(p);
			buf_append_str(log, "R|");
			return false;
		}
		__attribute__((fallthrough));
	case 2:
		return record(p, imap_parser_literal(p, IMAP_LIT_SINK), log);
	default:
		return false;           /* no decision: the next feed buffers */
	}
}

static bool record(struct imap_parser *p, enum imap_parse_result r, struct buf *log)
{
	if (r == IMAP_PARSE_CHUNK) {    /* only the bytes: chunking must not show */
		buf_append(log, p->chunk.p, p->chunk.len);
		if (p->lit_left == 0)
			buf_append_str(log, "|E|");
		return false;
	}
	buf_printf(log, "%d|", (int)r);
	if (r == IMAP_PARSE_ERROR) {
		buf_printf(log, "%d %s %s|", (int)p->error, p->tag, p->error_text);
		return p->error == IMAP_ERR_FATAL;
	}
	if (r == IMAP_PARSE_ANNOUNCE)
		return decide(p, log);
	if (r != IMAP_PARSE_OK)
		return false;
	buf_printf(log, "%s %s %zu %zu|", p->tag, p->name, p->nout, p->line.len);
	check_args(p, p->out, p->nout);
	for (size_t i = 0; i < p->nout; i++) {
		const struct imap_arg *a = &p->out[i];
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
	return false;
}

static void feed(const uint8_t *data, size_t size, size_t piece, bool announce, struct buf *log)
{
	struct imap_parser p;
	imap_parser_init(&p, &lim);
	imap_parser_announce(&p, announce);
	for (size_t pos = 0; pos < size;) {
		size_t n = piece && piece < size - pos ? piece : size - pos, used = 0;
		enum imap_parse_result r = imap_parser_feed(&p, (const char *)data + pos, n, &used);
		if (used > n)
			__builtin_trap();
		if (r == IMAP_PARSE_CHUNK && (p.chunk.p < (const char *)data + pos ||
					      p.chunk.p + p.chunk.len > (const char *)data + pos + used))
			__builtin_trap();
		pos += used;
		if (r != IMAP_PARSE_AGAIN && record(&p, r, log))
			break;          /* fatal: the session closes */
		if (r == IMAP_PARSE_OK && p.nout > 0 && p.out[0].type == IMAP_ARG_ATOM &&
		    p.out[0].s.len == 4 && memcmp(p.out[0].s.p, "LINE", 4) == 0)
			imap_parser_want_line(&p);
	}
	imap_parser_free(&p);
}

static void compare(const uint8_t *data, size_t size, bool announce)
{
	struct buf a = { 0 }, b = { 0 };
	feed(data, size, 0, announce, &a);
	feed(data, size, 7, announce, &b);
	if (a.len != b.len || memcmp(buf_ptr(&a), buf_ptr(&b), a.len) != 0)
		__builtin_trap();
	buf_free(&a);
	buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	compare(data, size, false);
	compare(data, size, true);
	return 0;
}
