/* arena.c - chunked bump allocator with cleanup hooks (see arena.h). */
#include "arena.h"
#include "util.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_CHUNK 4096
#define ARENA_ALIGN 16

struct arena_block {
	struct arena_block *next;
	size_t size, used;
	_Alignas(ARENA_ALIGN) unsigned char mem[];
};

struct arena_hook {
	struct arena_hook *next;
	arena_cleanup_fn *fn;
	void *ctx;
};

struct arena {
	struct arena_block *blocks;
	struct arena_hook *hooks;
	size_t total;
};

struct arena *arena_new(void)
{
	return xcalloc(1, sizeof(struct arena));
}

void arena_destroy(struct arena **ap)
{
	struct arena *a = *ap;
	if (a == NULL)
		return;
	/* Hooks may use arena memory, so they run before any block is freed. */
	while (a->hooks) {
		struct arena_hook *h = a->hooks;
		a->hooks = h->next;
		h->fn(h->ctx);
	}
	while (a->blocks) {
		struct arena_block *b = a->blocks;
		a->blocks = b->next;
		free(b);
	}
	free(a);
	*ap = NULL;
}

static struct arena_block *arena_grow(struct arena *a, size_t size)
{
	size_t bsize = size > ARENA_CHUNK ? size : ARENA_CHUNK;
	struct arena_block *b = xcalloc(1, sizeof(*b) + bsize);
	b->size = bsize;
	b->next = a->blocks;
	a->blocks = b;
	return b;
}

void *arena_alloc(struct arena *a, size_t size)
{
	if (size > SIZE_MAX - ARENA_ALIGN - sizeof(struct arena_block))
		fatal("arena_alloc: size overflow %zu", size);
	size = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
	struct arena_block *b = a->blocks;
	if (b == NULL || b->size - b->used < size)
		b = arena_grow(a, size);
	void *p = b->mem + b->used;
	b->used += size;
	a->total += size;
	return p;
}

char *arena_strndup(struct arena *a, const char *s, size_t n)
{
	char *p = arena_alloc(a, n + 1);
	memcpy(p, s, n);
	return p;
}

char *arena_strdup(struct arena *a, const char *s)
{
	return arena_strndup(a, s, strlen(s));
}

char *arena_printf(struct arena *a, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		fatal("arena_printf: bad format");
	char *p = arena_alloc(a, (size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return p;
}

void arena_cleanup(struct arena *a, arena_cleanup_fn *fn, void *ctx)
{
	struct arena_hook *h = arena_alloc(a, sizeof(*h));
	h->fn = fn;
	h->ctx = ctx;
	h->next = a->hooks;
	a->hooks = h;
}

