/* arena.h - memory that belongs to one lifetime (config, connection,
 * transaction, message), freed in one call (style rule 8).
 *
 * Allocations are zeroed and never freed individually. Cleanup hooks run in
 * reverse order of registration when the arena is destroyed, so an fd, SSL*
 * or Lua ref registered after the memory it uses is released first. */
#ifndef MP_ARENA_H
#define MP_ARENA_H

#include <stddef.h>

struct arena;

struct arena *arena_new(void);
/* Runs cleanup hooks, frees every block, sets *ap to NULL; accepts NULL. */
void arena_destroy(struct arena **ap);

/* Zeroed, aligned for any type; aborts on OOM. */
void *arena_alloc(struct arena *a, size_t size);
char *arena_strdup(struct arena *a, const char *s);
char *arena_strndup(struct arena *a, const char *s, size_t n);
char *arena_printf(struct arena *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

typedef void arena_cleanup_fn(void *ctx);
void arena_cleanup(struct arena *a, arena_cleanup_fn *fn, void *ctx);

#endif
