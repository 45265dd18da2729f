/* penalty.c - shared login penalty table (see penalty.h). */
#include "penalty.h"
#include "core/util.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define PENALTY_SLOTS 4096
#define PENALTY_PROBE 16
#define PENALTY_IP_MAX 46

struct penalty_slot {
	char ip[PENALTY_IP_MAX];
	uint32_t failures;
	int64_t last_s;
};

struct penalty_table {
	pthread_mutex_t mu;
	struct penalty_slot slots[PENALTY_SLOTS];
};

static struct penalty_table *penalty;

int penalty_init(void)
{
	if (penalty != NULL)
		return 0;
	void *m = mmap(NULL, sizeof(struct penalty_table), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return -1;
	penalty = m;
	pthread_mutexattr_t at;
	pthread_mutexattr_init(&at);
	pthread_mutexattr_setpshared(&at, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&at, PTHREAD_MUTEX_ROBUST);
	pthread_mutex_init(&penalty->mu, &at);
	pthread_mutexattr_destroy(&at);
	return 0;
}

static void penalty_lock(void)
{
	if (pthread_mutex_lock(&penalty->mu) == EOWNERDEAD)
		pthread_mutex_consistent(&penalty->mu);   /* counters may be off by one */
}

static int64_t penalty_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* The slot for ip (create: claim a free or stale one). Lock held. */
static struct penalty_slot *penalty_slot(const char *ip, bool create)
{
	uint32_t h = 2166136261u;
	for (const char *p = ip; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	int64_t now = penalty_now();
	struct penalty_slot *victim = NULL;
	for (uint32_t i = 0; i < PENALTY_PROBE; i++) {
		struct penalty_slot *s = &penalty->slots[(h + i) % PENALTY_SLOTS];
		bool stale = now - s->last_s > PENALTY_WINDOW_S;
		if (s->ip[0] && !stale && strcmp(s->ip, ip) == 0)
			return s;
		/* Reuse an empty slot first, else the least recently failed. */
		int64_t age = s->ip[0] ? s->last_s : INT64_MIN;
		if (victim == NULL || age < (victim->ip[0] ? victim->last_s : INT64_MIN))
			victim = s;
	}
	if (!create)
		return NULL;
	memset(victim, 0, sizeof(*victim));
	snprintf(victim->ip, sizeof(victim->ip), "%s", ip);
	victim->last_s = now;
	return victim;
}

uint32_t penalty_delay_ms(const char *ip, int64_t max_s)
{
	if (penalty == NULL || max_s <= 0)
		return 0;
	penalty_lock();
	struct penalty_slot *s = penalty_slot(ip, false);
	uint32_t n = s ? s->failures : 0;
	pthread_mutex_unlock(&penalty->mu);
	if (n <= PENALTY_FREE_FAILURES)
		return 0;
	uint32_t shift = n - PENALTY_FREE_FAILURES - 1;
	uint64_t ms = (uint64_t)PENALTY_BASE_MS << (shift > 20 ? 20 : shift);
	uint64_t cap = (uint64_t)max_s * 1000;
	return (uint32_t)(ms < cap ? ms : cap);
}

uint32_t penalty_failures(const char *ip)
{
	if (penalty == NULL)
		return 0;
	penalty_lock();
	struct penalty_slot *s = penalty_slot(ip, false);
	uint32_t n = s ? s->failures : 0;
	pthread_mutex_unlock(&penalty->mu);
	return n;
}

void penalty_fail(const char *ip)
{
	if (penalty == NULL)
		return;
	penalty_lock();
	struct penalty_slot *s = penalty_slot(ip, true);
	s->failures++;
	s->last_s = penalty_now();
	pthread_mutex_unlock(&penalty->mu);
}

void penalty_success(const char *ip)
{
	if (penalty == NULL)
		return;
	penalty_lock();
	struct penalty_slot *s = penalty_slot(ip, false);
	if (s)
		memset(s, 0, sizeof(*s));
	pthread_mutex_unlock(&penalty->mu);
}
