/* dir_cache.c - a small TTL cache of primitive lookup answers.
 *
 * Chained hash table behind one mutex; lookups are microseconds against the
 * milliseconds of a database round trip, so contention does not matter.
 * When full it is simply emptied: entries live seconds anyway. TEMPFAIL is
 * never cached. */
#include "dir_int.h"
#include "core/arena.h"
#include "core/util.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define DIR_CACHE_BUCKETS 4096
#define DIR_CACHE_MAX 65536

struct dir_cache_entry {
	struct dir_cache_entry *next;
	uint64_t expires_ms;
	enum dir_result result;
	size_t len;
	char *value;            /* NULL for NOTFOUND */
	char key[];
};

struct dir_cache {
	pthread_mutex_t mu;
	uint64_t ttl_ms, neg_ttl_ms;
	size_t count;
	struct dir_cache_entry *b[DIR_CACHE_BUCKETS];
};

static uint32_t dir_cache_hash(const char *s)
{
	uint32_t h = 2166136261u;   /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % DIR_CACHE_BUCKETS;
}

struct dir_cache *dir_cache_new(int64_t ttl_s, int64_t negative_ttl_s)
{
	struct dir_cache *c = xcalloc(1, sizeof(*c));
	pthread_mutex_init(&c->mu, NULL);
	c->ttl_ms = (uint64_t)ttl_s * 1000;
	c->neg_ttl_ms = (uint64_t)negative_ttl_s * 1000;
	return c;
}

static void dir_cache_entry_free(struct dir_cache_entry *e)
{
	free(e->value);
	free(e);
}

void dir_cache_clear(struct dir_cache *c)
{
	pthread_mutex_lock(&c->mu);
	for (size_t i = 0; i < DIR_CACHE_BUCKETS; i++) {
		while (c->b[i]) {
			struct dir_cache_entry *e = c->b[i];
			c->b[i] = e->next;
			dir_cache_entry_free(e);
		}
	}
	c->count = 0;
	pthread_mutex_unlock(&c->mu);
}

void dir_cache_free(struct dir_cache **cp)
{
	if (*cp == NULL)
		return;
	dir_cache_clear(*cp);
	pthread_mutex_destroy(&(*cp)->mu);
	free(*cp);
	*cp = NULL;
}

enum dir_result dir_cache_get(struct dir_cache *c, const char *key,
			      struct arena *a, const char **value_r, size_t *len_r)
{
	enum dir_result r = DIR_TEMPFAIL;
	uint64_t now = util_now_ms();
	pthread_mutex_lock(&c->mu);
	for (struct dir_cache_entry *e = c->b[dir_cache_hash(key)]; e; e = e->next) {
		if (strcmp(e->key, key) != 0 || e->expires_ms <= now)
			continue;
		r = e->result;
		*value_r = e->value ? arena_strndup(a, e->value, e->len) : NULL;
		*len_r = e->len;
		break;
	}
	pthread_mutex_unlock(&c->mu);
	return r;
}

void dir_cache_put(struct dir_cache *c, const char *key, enum dir_result r,
		   const char *value, size_t len)
{
	uint64_t ttl = r == DIR_FOUND ? c->ttl_ms : c->neg_ttl_ms;
	if (r == DIR_TEMPFAIL || ttl == 0)
		return;
	size_t klen = strlen(key);
	struct dir_cache_entry *e = xcalloc(1, sizeof(*e) + klen + 1);
	memcpy(e->key, key, klen + 1);
	e->result = r;
	e->expires_ms = util_now_ms() + ttl;
	if (value) {
		e->value = xmalloc(len + 1);
		memcpy(e->value, value, len);
		e->len = len;
	}
	if (c->count >= DIR_CACHE_MAX)
		dir_cache_clear(c);
	pthread_mutex_lock(&c->mu);
	uint32_t h = dir_cache_hash(key);
	/* Replace an older entry for the same key. */
	for (struct dir_cache_entry **pp = &c->b[h]; *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->key, key) == 0) {
			struct dir_cache_entry *old = *pp;
			*pp = old->next;
			dir_cache_entry_free(old);
			c->count--;
			break;
		}
	}
	e->next = c->b[h];
	c->b[h] = e;
	c->count++;
	pthread_mutex_unlock(&c->mu);
}
