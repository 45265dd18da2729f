/* util.h - allocation wrappers, fatal errors and small macros used everywhere.
 *
 * Contract: x*alloc never return NULL; on OOM they log and abort the role
 * (the parent restarts it). fatal() is only for broken invariants
 * (style rule 11): anything a peer, disk or database can cause is a log
 * line plus a protocol reply instead. */
#ifndef MP_UTIL_H
#define MP_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))
#define MP_UNUSED __attribute__((unused))

/* Zeroed allocation; aborts on OOM or on nmemb*size overflow. */
void *xcalloc(size_t nmemb, size_t size);
void *xmalloc(size_t size);
/* realloc(ptr, nmemb*size) with overflow check; aborts on OOM. */
void *xreallocarray(void *ptr, size_t nmemb, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Frees *p and sets it to NULL; accepts NULL and *p == NULL. */
void xfree(void *pp);

/* Logs "fatal" with the message and aborts. For broken invariants only. */
void fatal(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

/* Monotonic clock in milliseconds. */
uint64_t util_now_ms(void);

/* Parses a decimal unsigned integer of the whole slice; 0 on success,
 * -1 on empty input, non-digit or overflow past max. */
int util_parse_uint(const char *s, size_t len, uint64_t max, uint64_t *out_r);

#endif
