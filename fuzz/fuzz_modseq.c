/* fuzz_modseq.c - libFuzzer harness: the moonpost.modseq parser
 * (src/store/modseq.c) over arbitrary bytes. What parses must format into
 * a file that parses to the same state (formatting it again gives the
 * same bytes), the good prefix never exceeds the input, and the VANISHED
 * query answers ascending, disjoint ranges. */
#include "store/modseq.h"
#include "core/util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static struct modseq *parsed(const char *p, size_t len, size_t *good, int *rc)
{
	struct modseq *ms = xcalloc(1, sizeof(*ms));
	modseq_init(ms, 7, 1);
	ms->fd = -1;
	*rc = modseq_parse(ms, p, len, good);
	return ms;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t good;
	int rc;
	struct modseq *ms = parsed((const char *)data, size, &good, &rc);
	if (good > size)
		__builtin_trap();
	struct buf a = { 0 }, b = { 0 };
	modseq_format(ms, &a);
	struct modseq *again = parsed(buf_ptr(&a), a.len, &good, &rc);
	if (rc != 0 || good != a.len)
		__builtin_trap();       /* our own output must parse whole */
	modseq_format(again, &b);
	if (a.len != b.len || memcmp(buf_ptr(&a), buf_ptr(&b), a.len) != 0)
		__builtin_trap();
	struct modseq_range *r;
	size_t n;
	modseq_vanished(ms, 0, &r, &n);
	for (size_t i = 0; i < n; i++)
		if (r[i].lo > r[i].hi || (i > 0 && r[i].lo <= r[i - 1].hi))
			__builtin_trap();
	free(r);
	buf_free(&a);
	buf_free(&b);
	modseq_free(&ms);
	modseq_free(&again);
	return 0;
}
