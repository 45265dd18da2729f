/* tap.h - a tiny TAP producer for C unit tests (run by prove).
 *
 * ok(cond, fmt, ...) prints "ok N - ..." or "not ok N - ...";
 * tap_done() prints the plan and returns the exit status. */
#ifndef MP_TAP_H
#define MP_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tap_n, tap_failed;

__attribute__((format(printf, 2, 3)))
static int ok(int cond, const char *fmt, ...)
{
	va_list ap;
	printf("%sok %d - ", cond ? "" : "not ", ++tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!cond)
		tap_failed++;
	fflush(stdout);
	return cond;
}

#define is_int(got, want, ...) \
	(ok((long long)(got) == (long long)(want), __VA_ARGS__) ? 1 : \
	 (printf("#   got %lld, want %lld\n", (long long)(got), (long long)(want)), 0))

#define is_str(got, want, ...) \
	(ok(strcmp((got), (want)) == 0, __VA_ARGS__) ? 1 : \
	 (printf("#   got \"%s\"\n#  want \"%s\"\n", (got), (want)), 0))

static int tap_done(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}

#endif
