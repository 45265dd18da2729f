/* test_util.c - util_parse_uint at and across its limits, on both paths
 * (up to 19 digits: no overflow possible; longer: checked per digit): it
 * must refuse exactly the values above max. */
#include "tap.h"
#include "core/util.h"

#include <stdint.h>
#include <string.h>

static void parse(const char *s, uint64_t max, int want_rc, uint64_t want)
{
	uint64_t v = 12345;
	int rc = util_parse_uint(s, strlen(s), max, &v);
	ok(rc == want_rc && (rc < 0 || v == want), "\"%s\" max %llu: rc %d", s, (unsigned long long)max, rc);
}

int main(void)
{
	parse("18446744073709551615", UINT64_MAX, 0, UINT64_MAX);
	parse("18446744073709551616", UINT64_MAX, -1, 0);
	parse("99999999999999999999", UINT64_MAX, -1, 0);
	parse("184467440737095516150", UINT64_MAX, -1, 0);
	parse("9999999999999999999", UINT64_MAX, 0, 9999999999999999999ull);   /* 19 digits: fast path */
	parse("9999999999999999999", INT64_MAX, -1, 0);
	parse("9223372036854775807", INT64_MAX, 0, INT64_MAX);
	parse("00000000000000000000001", 5, 0, 1);      /* 23 digits: the checked path */
	parse("255", 255, 0, 255);
	parse("256", 255, -1, 0);
	parse("259", 255, -1, 0);
	parse("2550", 255, -1, 0);
	parse("250", 255, 0, 250);
	parse("4294967295", UINT32_MAX, 0, UINT32_MAX);
	parse("4294967296", UINT32_MAX, -1, 0);
	parse("0", 0, 0, 0);
	parse("1", 0, -1, 0);
	parse("007", 10, 0, 7);
	parse("", 10, -1, 0);
	parse("1a", 10, -1, 0);
	parse("-1", 10, -1, 0);
	return tap_done();
}
