/* dir_bench.c - in-process micro-benchmarks of the directory and of the
 * password schemes, driven by bench/dir-lookup.sh (which also prepares the
 * configs and the address list). Prints one JSON line per thread count.
 *
 *   dir_bench resolve CONF ADDRFILE THREADS SECONDS ROUNDS [CLASS]
 *     Opens the directory of CONF (conf_load_notls + dir_open), reads
 *     ADDRFILE ("CLASS ADDRESS" per line; CLASS is user, alias, catchall,
 *     unknown or subaddr; only lines of CLASS when given), then
 *       1. checks every address once, single-threaded, against what its
 *          class must resolve to (this pass also fills the cache when the
 *          config has one, so the timed runs of a cached config are warm);
 *       2. ROUNDS times, for each thread count in THREADS ("1,2"): runs
 *          dir_resolve() over the list from that many threads sharing one
 *          struct dir for SECONDS (SECONDS 0 = only step 1). Each thread
 *          starts at its own offset and walks the list round-robin; every
 *          lookup gets a fresh arena, as in the daemon, and its answer is
 *          checked again. Thread counts alternate within a round, so a
 *          noisy neighbour hits them alike; the median round is reported.
 *     Exit 1 if any address did not resolve as its class says, or if a
 *     lookup TEMPFAILed: a benchmark of errors is worthless.
 *
 *   dir_bench passwd SCHEME THREADS SECONDS ROUNDS
 *     passwd_hash(SCHEME, "secret") once with our default parameters, then
 *     rounds of passwd_verify() of the right password, as above. Every
 *     verification must succeed.
 *
 * A rate is operations completed / wall time from the start barrier until
 * the last thread has finished its in-flight operation. */
#include "core/arena.h"
#include "core/conf.h"
#include "dir/dir.h"
#include "dir/passwd.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum cls { C_USER, C_ALIAS, C_CATCHALL, C_UNKNOWN, C_SUBADDR, C_N };
static const char *const cls_names[C_N] = {
	"user", "alias", "catchall", "unknown", "subaddr",
};

struct addr {
	enum cls cls;
	char *s;
};

static struct addr *addrs;
static size_t n_addrs;
static atomic_bool stop_flag;
static pthread_barrier_t start_barrier;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;
	fputs("dir_bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_s(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

#define MAX_TCOUNTS 8

/* "1,2" -> counts; returns how many. */
static int parse_threads(const char *s, int *counts)
{
	int n = 0;
	const char *p = s;
	for (;;) {
		char *end;
		long v = strtol(p, &end, 10);
		if (end == p || v < 1 || v > 256 || n == MAX_TCOUNTS || (*end && *end != ','))
			die("bad THREADS \"%s\" (comma-separated counts 1..256, at most %d)", s,
			    MAX_TCOUNTS);
		counts[n++] = (int)v;
		if (*end == '\0')
			return n;
		p = end + 1;
	}
}

static int parse_rounds(const char *s)
{
	char *end;
	long n = strtol(s, &end, 10);
	if (*end || n < 1 || n > 100)
		die("bad ROUNDS \"%s\" (1..100)", s);
	return (int)n;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(const double *v, int n)
{
	double *s = malloc((size_t)n * sizeof(*s));
	if (s == NULL)
		die("out of memory");
	memcpy(s, v, (size_t)n * sizeof(*s));
	qsort(s, (size_t)n, sizeof(*s), cmp_double);
	double m = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
	free(s);
	return m;
}

static void print_rounds(const double *v, int n)
{
	printf("\"rounds_per_s\":[");
	for (int i = 0; i < n; i++)
		printf("%s%.1f", i ? "," : "", v[i]);
	printf("]");
}

static double parse_seconds(const char *s)
{
	char *end;
	double d = strtod(s, &end);
	if (*end || !(d >= 0 && d <= 3600))
		die("bad SECONDS \"%s\" (0..3600)", s);
	return d;
}

/* Starts n threads on fn(args[i]), lets them run for seconds, stops and
 * joins them; returns the elapsed wall time in ns. */
static uint64_t run_threads(int n, void *(*fn)(void *), void *args, size_t arg_size,
			    double seconds)
{
	pthread_t *t = calloc((size_t)n, sizeof(*t));
	if (t == NULL)
		die("out of memory");
	atomic_store(&stop_flag, false);
	if (pthread_barrier_init(&start_barrier, NULL, (unsigned)n + 1) != 0)
		die("pthread_barrier_init failed");
	for (int i = 0; i < n; i++)
		if (pthread_create(&t[i], NULL, fn, (char *)args + (size_t)i * arg_size) != 0)
			die("pthread_create failed");
	pthread_barrier_wait(&start_barrier);
	uint64_t t0 = now_ns();
	sleep_s(seconds);
	atomic_store(&stop_flag, true);
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	uint64_t el = now_ns() - t0;
	pthread_barrier_destroy(&start_barrier);
	free(t);
	return el;
}

/* ------------------------------------------------------------ resolve -- */

static void load_addrs(const char *path, const char *only)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		die("%s: %s", path, strerror(errno));
	char cls[32], addr[512];
	size_t cap = 0;
	int ln = 0;
	char line[600];
	while (fgets(line, sizeof(line), f)) {
		ln++;
		if (line[0] == '#' || line[0] == '\n')
			continue;
		if (sscanf(line, "%31s %511s", cls, addr) != 2)
			die("%s:%d: expected \"CLASS ADDRESS\"", path, ln);
		int c = -1;
		for (int i = 0; i < C_N; i++)
			if (strcmp(cls, cls_names[i]) == 0)
				c = i;
		if (c < 0)
			die("%s:%d: unknown class \"%s\"", path, ln, cls);
		if (only && strcmp(only, cls) != 0)
			continue;
		if (n_addrs == cap) {
			cap = cap ? cap * 2 : 1024;
			addrs = realloc(addrs, cap * sizeof(*addrs));
			if (addrs == NULL)
				die("out of memory");
		}
		addrs[n_addrs].cls = (enum cls)c;
		addrs[n_addrs].s = strdup(addr);
		n_addrs++;
	}
	fclose(f);
	if (n_addrs == 0)
		die("%s: no addresses%s%s", path, only ? " of class " : "", only ? only : "");
}

/* NULL if the resolution is what an address of class c must give. */
static const char *check_resolution(enum cls c, enum dir_result r,
				    const struct dir_resolution *res)
{
	if (r == DIR_TEMPFAIL)
		return "TEMPFAIL";
	const struct dir_node *n0 = res->n_nodes ? &res->nodes[0] : NULL;
	switch (c) {
	case C_USER:
	case C_SUBADDR:
		if (r != DIR_FOUND || !n0 || n0->kind != DIR_NODE_MAILBOX || n0->catchall)
			return "expected a mailbox";
		return NULL;
	case C_ALIAS:
		if (r != DIR_FOUND || !n0 || n0->kind != DIR_NODE_ALIAS || n0->catchall)
			return "expected an alias";
		return NULL;
	case C_CATCHALL:
		if (r != DIR_FOUND || !n0 || n0->kind != DIR_NODE_ALIAS || !n0->catchall)
			return "expected a catch-all hit";
		return NULL;
	case C_UNKNOWN:
		if (r != DIR_NOTFOUND || !res->local_domain)
			return "expected an unknown user of a local domain";
		return NULL;
	default:
		return "bad class";
	}
}

struct rworker {
	struct dir *d;
	size_t start;
	uint64_t ops, tempfail, wrong;
	uint64_t n[C_N], ns[C_N];
};

static void *resolve_thread(void *arg)
{
	struct rworker *w = arg;
	size_t i = w->start;
	pthread_barrier_wait(&start_barrier);
	while (!atomic_load_explicit(&stop_flag, memory_order_relaxed)) {
		const struct addr *ad = &addrs[i];
		struct arena *a = arena_new();
		struct dir_resolution res;
		uint64_t t0 = now_ns();
		enum dir_result r = dir_resolve(w->d, ad->s, a, &res);
		uint64_t t1 = now_ns();
		if (r == DIR_TEMPFAIL)
			w->tempfail++;
		else if (check_resolution(ad->cls, r, &res))
			w->wrong++;
		arena_destroy(&a);
		w->n[ad->cls]++;
		w->ns[ad->cls] += t1 - t0;
		w->ops++;
		if (++i == n_addrs)
			i = 0;
	}
	return NULL;
}

static int cmd_resolve(int argc, char **argv)
{
	if (argc < 5 || argc > 6)
		die("usage: dir_bench resolve CONF ADDRFILE THREADS SECONDS ROUNDS [CLASS]");
	const char *conf_path = argv[0], *only = argc == 6 ? argv[5] : NULL;
	int tcounts[MAX_TCOUNTS];
	int n_t = parse_threads(argv[2], tcounts);
	double seconds = parse_seconds(argv[3]);
	int rounds = parse_rounds(argv[4]);
	load_addrs(argv[1], only);

	char *errors = NULL;
	struct conf *c = conf_load_notls(conf_path, &errors);
	if (c == NULL)
		die("%s: invalid configuration:\n%s", conf_path, errors ? errors : "");
	const char *err = NULL;
	struct dir *d = dir_open(c, &err);
	if (d == NULL)
		die("directory: %s", err ? err : "cannot open");

	/* 1. Check every address once (and fill the cache, if any). */
	uint64_t v0 = now_ns();
	for (size_t i = 0; i < n_addrs; i++) {
		struct arena *a = arena_new();
		struct dir_resolution res;
		enum dir_result r = dir_resolve(d, addrs[i].s, a, &res);
		const char *why = check_resolution(addrs[i].cls, r, &res);
		if (why)
			die("%s (class %s): %s%s%s", addrs[i].s, cls_names[addrs[i].cls], why,
			    res.error ? ": " : "", res.error ? res.error : "");
		arena_destroy(&a);
	}
	uint64_t verify_ns = now_ns() - v0;
	if (seconds == 0)
		rounds = 0;

	/* 2. The timed runs: per thread count, per-round rates and the totals
	 * of every round. */
	double rate[MAX_TCOUNTS][100];
	struct rworker tot[MAX_TCOUNTS];
	uint64_t el_tot[MAX_TCOUNTS];
	memset(tot, 0, sizeof(tot));
	memset(el_tot, 0, sizeof(el_tot));
	bool bad = false;
	for (int r = 0; r < rounds; r++) {
		for (int k = 0; k < n_t; k++) {
			int threads = tcounts[k];
			struct rworker *w = calloc((size_t)threads, sizeof(*w));
			if (w == NULL)
				die("out of memory");
			for (int i = 0; i < threads; i++) {
				w[i].d = d;
				w[i].start = n_addrs * (size_t)i / (size_t)threads;
			}
			uint64_t el = run_threads(threads, resolve_thread, w, sizeof(*w), seconds);
			uint64_t ops = 0;
			for (int i = 0; i < threads; i++) {
				ops += w[i].ops;
				tot[k].ops += w[i].ops;
				tot[k].tempfail += w[i].tempfail;
				tot[k].wrong += w[i].wrong;
				for (int m = 0; m < C_N; m++) {
					tot[k].n[m] += w[i].n[m];
					tot[k].ns[m] += w[i].ns[m];
				}
			}
			el_tot[k] += el;
			rate[k][r] = (double)ops / ((double)el / 1e9);
			free(w);
		}
	}

	for (int k = 0; k < (rounds ? n_t : 1); k++) {
		uint64_t busy_ns = 0;
		for (int m = 0; m < C_N; m++)
			busy_ns += tot[k].ns[m];
		printf("{\"kind\":\"resolve\",\"backend\":\"%s\",\"cache_ttl\":%lld,"
		       "\"negative_ttl\":%lld,\"class_filter\":\"%s\",\"threads\":%d,"
		       "\"addresses\":%zu,\"verify_s\":%.4f,\"verify_per_s\":%.1f,"
		       "\"seconds\":%.4f,\"rounds\":%d,\"ops\":%llu,\"per_s\":%.1f,",
		       dir_backend_name(d), (long long)c->directory.cache_ttl,
		       (long long)c->directory.negative_ttl, only ? only : "", tcounts[k],
		       n_addrs, (double)verify_ns / 1e9,
		       (double)n_addrs / ((double)verify_ns / 1e9), (double)el_tot[k] / 1e9,
		       rounds, (unsigned long long)tot[k].ops,
		       rounds ? median(rate[k], rounds) : 0.0);
		print_rounds(rate[k], rounds);
		printf(",\"us_mean\":%.2f,\"tempfail\":%llu,\"wrong\":%llu,\"classes\":{",
		       tot[k].ops ? (double)busy_ns / 1e3 / (double)tot[k].ops : 0.0,
		       (unsigned long long)tot[k].tempfail, (unsigned long long)tot[k].wrong);
		bool first = true;
		for (int m = 0; m < C_N; m++) {
			if (tot[k].n[m] == 0)
				continue;
			printf("%s\"%s\":{\"n\":%llu,\"us_mean\":%.2f}", first ? "" : ",",
			       cls_names[m], (unsigned long long)tot[k].n[m],
			       (double)tot[k].ns[m] / 1e3 / (double)tot[k].n[m]);
			first = false;
		}
		printf("}}\n");
		if (tot[k].tempfail || tot[k].wrong) {
			fprintf(stderr, "dir_bench: %d threads: %llu lookups TEMPFAILed and %llu "
				"gave a wrong answer\n", tcounts[k],
				(unsigned long long)tot[k].tempfail, (unsigned long long)tot[k].wrong);
			bad = true;
		}
	}
	fflush(stdout);
	dir_close(&d);
	conf_free(&c);
	return bad ? 1 : 0;
}

/* ------------------------------------------------------------- passwd -- */

static const char *pw_hash;
static const char bench_password[] = "secret";

struct pworker {
	uint64_t ops, wrong;
};

static void *passwd_thread(void *arg)
{
	struct pworker *w = arg;
	pthread_barrier_wait(&start_barrier);
	while (!atomic_load_explicit(&stop_flag, memory_order_relaxed)) {
		const char *err = NULL;
		if (passwd_verify(pw_hash, bench_password, sizeof(bench_password) - 1, false,
				  &err) != 1)
			w->wrong++;
		w->ops++;
	}
	return NULL;
}

static int cmd_passwd(int argc, char **argv)
{
	if (argc != 4)
		die("usage: dir_bench passwd SCHEME THREADS SECONDS ROUNDS");
	const char *scheme = argv[0];
	int tcounts[MAX_TCOUNTS];
	int n_t = parse_threads(argv[1], tcounts);
	double seconds = parse_seconds(argv[2]);
	int rounds = parse_rounds(argv[3]);
	const char *err = NULL;
	char *h = passwd_hash(scheme, bench_password, sizeof(bench_password) - 1, false, &err);
	if (h == NULL)
		die("passwd_hash(%s): %s", scheme, err ? err : "failed");
	if (passwd_verify(h, bench_password, sizeof(bench_password) - 1, false, &err) != 1 ||
	    passwd_verify(h, "wrong", 5, false, &err) != 0)
		die("%s: the hash does not verify as it should", scheme);
	pw_hash = h;

	/* The hash's parameters without salt and digest: "{BLF-CRYPT}$2y$05$",
	 * "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$", "{SSHA512}". bcrypt has
	 * salt+digest in one field after the last '$'; the other crypt formats
	 * end in "$salt$digest". */
	char params[80];
	size_t plen = strcspn(h, "}") + 1, dollars = 0, seen = 0;
	for (const char *p = h; *p; p++)
		dollars += *p == '$';
	size_t keep = strncmp(h, "{BLF-CRYPT}", 11) == 0 ? dollars : dollars >= 2 ? dollars - 1 : 0;
	for (size_t i = 0; h[i] && keep; i++)
		if (h[i] == '$' && ++seen == keep) {
			plen = i + 1;
			break;
		}
	snprintf(params, sizeof(params), "%.*s", (int)plen, h);

	double rate[MAX_TCOUNTS][100];
	uint64_t ops[MAX_TCOUNTS] = { 0 }, wrong[MAX_TCOUNTS] = { 0 }, el_tot[MAX_TCOUNTS] = { 0 };
	for (int r = 0; r < rounds; r++) {
		for (int k = 0; k < n_t; k++) {
			struct pworker *w = calloc((size_t)tcounts[k], sizeof(*w));
			if (w == NULL)
				die("out of memory");
			uint64_t el = run_threads(tcounts[k], passwd_thread, w, sizeof(*w), seconds);
			uint64_t n = 0;
			for (int i = 0; i < tcounts[k]; i++) {
				n += w[i].ops;
				wrong[k] += w[i].wrong;
			}
			ops[k] += n;
			el_tot[k] += el;
			rate[k][r] = (double)n / ((double)el / 1e9);
			free(w);
		}
	}
	bool bad = false;
	for (int k = 0; k < n_t; k++) {
		double secs = (double)el_tot[k] / 1e9;
		printf("{\"kind\":\"passwd\",\"scheme\":\"%s\",\"params\":\"%s\",\"threads\":%d,"
		       "\"seconds\":%.4f,\"rounds\":%d,\"ops\":%llu,\"per_s\":%.2f,",
		       scheme, params, tcounts[k], secs, rounds, (unsigned long long)ops[k],
		       median(rate[k], rounds));
		print_rounds(rate[k], rounds);
		printf(",\"ms_per_op_per_thread\":%.3f,\"wrong\":%llu}\n",
		       ops[k] ? secs * 1e3 * tcounts[k] / (double)ops[k] : 0.0,
		       (unsigned long long)wrong[k]);
		if (wrong[k]) {
			fprintf(stderr, "dir_bench: %s: %llu verifications failed\n", scheme,
				(unsigned long long)wrong[k]);
			bad = true;
		}
	}
	fflush(stdout);
	free(h);
	return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "resolve") == 0)
		return cmd_resolve(argc - 2, argv + 2);
	if (argc >= 2 && strcmp(argv[1], "passwd") == 0)
		return cmd_passwd(argc - 2, argv + 2);
	fprintf(stderr,
		"usage: dir_bench resolve CONF ADDRFILE THREADS SECONDS ROUNDS [CLASS]\n"
		"       dir_bench passwd SCHEME THREADS SECONDS ROUNDS\n"
		"THREADS: comma-separated thread counts, e.g. 1,2\n");
	return 2;
}
