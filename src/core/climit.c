/* climit.c - shared connection counters (see climit.h). */
#include "climit.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#define CLIMIT_SLOTS 1024
#define CLIMIT_PROBE 32
#define CLIMIT_IP_MAX 46

struct climit_slot {
	char ip[CLIMIT_IP_MAX];
	atomic_uint count;
};

struct climit_region {
	atomic_int taken;
	atomic_uint total;
	struct climit_slot slots[CLIMIT_SLOTS];
};

static struct climit_region *climit;
static struct climit_region *climit_own;

int climit_init(void)
{
	if (climit)
		return 0;
	void *m = mmap(NULL, sizeof(struct climit_region) * CLIMIT_REGIONS,
		       PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return -1;
	climit = m;
	return 0;
}

int climit_region_take(void)
{
	for (int r = 0; climit && r < CLIMIT_REGIONS; r++) {
		if (atomic_load(&climit[r].taken) == 0) {
			atomic_store(&climit[r].taken, 1);
			return r;
		}
	}
	return -1;
}

void climit_region_free(int r)
{
	if (climit == NULL || r < 0 || r >= CLIMIT_REGIONS)
		return;
	struct climit_region *g = &climit[r];
	atomic_store(&g->total, 0);
	for (size_t i = 0; i < CLIMIT_SLOTS; i++)
		atomic_store(&g->slots[i].count, 0);
	atomic_store(&g->taken, 0);
}

void climit_attach(int r)
{
	climit_own = climit && r >= 0 && r < CLIMIT_REGIONS ? &climit[r] : NULL;
}

static uint32_t climit_hash(const char *ip)
{
	uint32_t h = 2166136261u;
	for (; *ip; ip++)
		h = (h ^ (unsigned char)*ip) * 16777619u;
	return h;
}

/* The slot of ip in region g; with create, claims an unused one. */
static struct climit_slot *climit_find(struct climit_region *g, const char *ip, bool create)
{
	uint32_t h = climit_hash(ip);
	struct climit_slot *free_slot = NULL;
	for (uint32_t i = 0; i < CLIMIT_PROBE; i++) {
		struct climit_slot *s = &g->slots[(h + i) % CLIMIT_SLOTS];
		bool used = atomic_load(&s->count) > 0;
		if (used && strcmp(s->ip, ip) == 0)
			return s;
		if (!used && free_slot == NULL)
			free_slot = s;
	}
	if (!create || free_slot == NULL)
		return NULL;
	snprintf(free_slot->ip, sizeof(free_slot->ip), "%s", ip);
	return free_slot;
}

bool climit_admit(const char *ip, unsigned total_max, unsigned per_ip_max)
{
	if (climit_own == NULL)
		return true;
	unsigned total = 0, mine = 0;
	for (int r = 0; r < CLIMIT_REGIONS; r++) {
		struct climit_region *g = &climit[r];
		if (atomic_load(&g->taken) == 0)
			continue;
		total += atomic_load(&g->total);
		struct climit_slot *s = climit_find(g, ip, false);
		if (s)
			mine += atomic_load(&s->count);
	}
	if (total >= total_max || mine >= per_ip_max)
		return false;
	struct climit_slot *s = climit_find(climit_own, ip, true);
	if (s)   /* a full table counts the total only: fail open per IP */
		atomic_fetch_add(&s->count, 1);
	atomic_fetch_add(&climit_own->total, 1);
	return true;
}

void climit_release(const char *ip)
{
	if (climit_own == NULL)
		return;
	struct climit_slot *s = climit_find(climit_own, ip, false);
	if (s)
		atomic_fetch_sub(&s->count, 1);
	atomic_fetch_sub(&climit_own->total, 1);
}
