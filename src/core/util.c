/* util.c - allocation wrappers and fatal(). */
#include "util.h"
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void oom(size_t size) __attribute__((noreturn));
static void oom(size_t size)
{
	fatal("out of memory allocating %zu bytes", size);
}

void *xcalloc(size_t nmemb, size_t size)
{
	void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
	if (p == NULL)
		oom(nmemb * size);
	return p;
}

void *xmalloc(size_t size)
{
	return xcalloc(1, size);
}

void *xreallocarray(void *ptr, size_t nmemb, size_t size)
{
	if (size != 0 && nmemb > SIZE_MAX / size)
		fatal("allocation overflow: %zu * %zu", nmemb, size);
	size_t total = nmemb * size;
	void *p = realloc(ptr, total > 0 ? total : 1);
	if (p == NULL)
		oom(nmemb * size);
	return p;
}

char *xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

void xfree(void *pp)
{
	void **p = pp;
	if (p != NULL) {
		free(*p);
		*p = NULL;
	}
}

void fatal(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_msg(LOG_LVL_ERROR, NULL, "event=fatal error=\"%s\"", msg);
	abort();
}

uint64_t util_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int util_parse_uint(const char *s, size_t len, uint64_t max, uint64_t *out_r)
{
	uint64_t v = 0;
	if (len == 0)
		return -1;
	if (len <= 19) {        /* < 10^19 < 2^64: no overflow, no division */
		for (size_t i = 0; i < len; i++) {
			if (s[i] < '0' || s[i] > '9')
				return -1;
			v = v * 10 + (unsigned)(s[i] - '0');
		}
		if (v > max)
			return -1;
		*out_r = v;
		return 0;
	}
	uint64_t lim = max / 10, rem = max % 10;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		unsigned d = (unsigned)(s[i] - '0');
		if (v > lim || (v == lim && d > rem))
			return -1;
		v = v * 10 + d;
	}
	*out_r = v;
	return 0;
}
