/* test_buf.c - slices, growable buffers and arenas. */
#include "core/arena.h"
#include "core/buf.h"
#include "tap.h"

#include <stdint.h>
#include <stdlib.h>

static void test_buf_grow(void)
{
	struct buf b = { 0 };
	for (int i = 0; i < 10000; i++)
		buf_append(&b, "ab", 2);
	is_int(b.len, 20000, "20000 bytes appended");
	ok(buf_ptr(&b)[b.len] == '\0', "spare NUL after the data");
	buf_consume(&b, 19999);
	is_str(buf_ptr(&b), "b", "consume leaves the tail");
	buf_printf(&b, "%d-%s", 42, "x");
	is_str(buf_ptr(&b), "b42-x", "printf appends after consumed prefix");
	buf_consume(&b, b.len);
	is_int(b.len, 0, "fully consumed");
	is_int(b.off, 0, "offset resets when empty");
	buf_free(&b);
	ok(b.data == NULL && b.cap == 0, "buf_free resets");
}

static void test_buf_empty(void)
{
	struct buf b = { 0 };
	buf_append(&b, "", 0);
	ok(b.data != NULL && b.len == 0 && buf_ptr(&b)[0] == '\0', "empty append allocates the NUL");
	buf_free(&b);
	ok(buf_ptr(&b)[0] == '\0', "buf_ptr of a freed buffer is an empty string");
}

static void test_str(void)
{
	ok(str_case_eq(STR_LIT("eHlO"), "EHLO"), "case-insensitive equality");
	ok(!str_case_eq(STR_LIT("EHLOX"), "EHLO"), "longer is not equal");
	ok(str_case_prefix(STR_LIT("mail from:<a>"), "MAIL FROM:"), "case-insensitive prefix");
	struct str t = str_trim(STR_LIT(" \t x y \t"));
	ok(t.len == 3 && t.p[0] == 'x', "trim blanks both sides");
	ok(str_trim(STR_LIT("   ")).len == 0, "trim all-blank");
}

static int cleanups;
static void count_cleanup(void *ctx)
{
	int *order = ctx;
	*order = ++cleanups;
}

static void test_arena(void)
{
	struct arena *a = arena_new();
	char *s = arena_printf(a, "%s-%d", "sid", 7);
	is_str(s, "sid-7", "arena_printf");
	char *big = arena_alloc(a, 100000);
	ok(big[0] == 0 && big[99999] == 0, "large allocation is zeroed");
	ok(((uintptr_t)arena_alloc(a, 3) & 15) == 0, "allocations are 16-aligned");
	int first = 0, second = 0;
	arena_cleanup(a, count_cleanup, &first);
	arena_cleanup(a, count_cleanup, &second);
	arena_destroy(&a);
	ok(a == NULL, "destroy sets the pointer to NULL");
	ok(second == 1 && first == 2, "cleanups run in reverse order");
	arena_destroy(&a);
	ok(1, "destroying NULL is harmless");
}

static void test_buf_num(void)
{
	struct buf b = { 0 };
	buf_append_num(&b, "* ", 0);
	buf_append_num(&b, " x", 7);
	buf_append_num(&b, "", 4294967295u);
	buf_append_num(&b, " ", UINT64_MAX);
	buf_append(&b, "", 1);
	ok(strcmp(buf_ptr(&b), "* 0 x74294967295 18446744073709551615") == 0, "buf_append_num: 0, 1 digit, "
	   "UINT32_MAX, UINT64_MAX: %s", buf_ptr(&b));
	buf_free(&b);
}

int main(void)
{
	test_buf_num();
	test_buf_grow();
	test_buf_empty();
	test_str();
	test_arena();
	return tap_done();
}
