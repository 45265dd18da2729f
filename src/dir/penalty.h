/* penalty.h - login failure penalty per client IP, shared by all workers.
 *
 * Like Dovecot's auth penalty: a few failures are free (typos), then every
 * further attempt from that IP waits base * 2^n, capped at max. The table
 * lives in shared memory mapped by the parent before fork(), so it is one
 * table for every worker and survives worker restarts; a robust
 * process-shared mutex keeps a worker dying mid-update from wedging it.
 * Entries age out after PENALTY_WINDOW_S without failures. The table is
 * bounded: when full, the oldest entry in the probe window is reused. */
#ifndef MP_PENALTY_H
#define MP_PENALTY_H

#include <stdint.h>

#define PENALTY_FREE_FAILURES 2
#define PENALTY_BASE_MS 250
#define PENALTY_WINDOW_S 600

/* Maps the table; 0 or -1. Call once, in the parent, before fork(). */
int penalty_init(void);
/* Milliseconds an attempt from ip must wait now (0 = none); max_s caps it. */
uint32_t penalty_delay_ms(const char *ip, int64_t max_s);
void penalty_fail(const char *ip);
/* Failures recorded for ip within the window (for the auth policy). */
uint32_t penalty_failures(const char *ip);
/* A successful login clears the IP's record. */
void penalty_success(const char *ip);

#endif
