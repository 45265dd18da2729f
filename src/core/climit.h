/* climit.h - concurrent connection limits, server-wide and per client IP,
 * across every worker process.
 *
 * A shared anonymous mapping (made by the parent before fork) holds one
 * region per worker process. A worker writes only its own region (no
 * locks: one writer, atomic counters); a check sums every region. The
 * parent assigns a free region when it forks a worker and clears it when
 * that worker exits, so connections of a killed worker stop counting. Reads
 * of other regions race with their writers; the limits are approximate by
 * a connection or two, which is what limits of this kind need. */
#ifndef MP_CLIMIT_H
#define MP_CLIMIT_H

#include <stdbool.h>
#include <stddef.h>

#define CLIMIT_REGIONS 512

/* Parent, before any fork. 0 or -1. */
int climit_init(void);
/* Parent: a free region for a new worker (marks it taken), or -1. */
int climit_region_take(void);
/* Parent: the worker of region r is gone. */
void climit_region_free(int r);
/* Worker: use region r from now on (-1: no limits). */
void climit_attach(int r);
/* Counts the connection and returns true when both limits allow it. */
bool climit_admit(const char *ip, unsigned total_max, unsigned per_ip_max);
void climit_release(const char *ip);

#endif
