/* modseq.c - the modseq file's format and the state it describes (see
 * modseq.h): parse, format, records by UID, expunge ranges. Pure: no I/O
 * (modseq_file.c reads and writes the file). */
#include "modseq.h"
#include "core/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MODSEQ_MAGIC "MPMODSEQ"

void modseq_init(struct modseq *ms, uint32_t uidvalidity, uint64_t now)
{
	memset(ms, 0, sizeof(*ms));
	ms->uidvalidity = uidvalidity;
	ms->highest = now > 0 ? now : 1;
	ms->reset = true;
	ms->fd = -1;
}

void modseq_free(struct modseq **msp)
{
	struct modseq *ms = *msp;
	if (ms == NULL)
		return;
	if (ms->fd >= 0)
		close(ms->fd);
	free(ms->msgs);
	free(ms->gone);
	free(ms->path);
	buf_free(&ms->pending);
	free(ms);
	*msp = NULL;
}

/* --- records --- */

/* The index of uid's record, or where it would go (*found false). */
static size_t modseq_find(const struct modseq *ms, uint32_t uid, bool *found)
{
	size_t lo = 0, hi = ms->count;
	*found = false;
	if (hi > 0 && ms->msgs[hi - 1].uid < uid)
		return hi;      /* the common case: a new message */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (ms->msgs[mid].uid == uid) {
			*found = true;
			return mid;
		}
		if (ms->msgs[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

const struct modseq_msg *modseq_get(const struct modseq *ms, uint32_t uid)
{
	bool found;
	size_t i = modseq_find(ms, uid, &found);
	return found && ms->msgs[i].live ? &ms->msgs[i] : NULL;
}

/* key: at most MODSEQ_FLAGS_MAX + 1 bytes (modseq_key, modseq_flags_valid) */
static void modseq_apply_msg(struct modseq *ms, uint32_t uid, uint64_t modseq, struct str key)
{
	bool found;
	size_t i = modseq_find(ms, uid, &found);
	if (!found) {
		if (ms->count == ms->cap) {
			ms->cap = ms->cap ? ms->cap * 2 : 64;
			ms->msgs = xreallocarray(ms->msgs, ms->cap, sizeof(*ms->msgs));
		}
		memmove(&ms->msgs[i + 1], &ms->msgs[i], (ms->count - i) * sizeof(*ms->msgs));
		ms->count++;
		memset(&ms->msgs[i], 0, sizeof(ms->msgs[i]));
		ms->msgs[i].uid = uid;
	}
	struct modseq_msg *m = &ms->msgs[i];
	if (!m->live)
		ms->live++;
	m->live = true;
	m->modseq = modseq;
	/* a copy, not snprintf: this runs per line of a file re-read at every
	 * QRESYNC resync (a third of a CHANGEDSINCE FETCH) */
	size_t n = key.len < sizeof(m->flags) - 1 ? key.len : sizeof(m->flags) - 1;
	memcpy(m->flags, key.p, n);
	m->flags[n] = '\0';
	if (modseq > ms->highest)
		ms->highest = modseq;
}

/* Keeps the newest MODSEQ_EXPUNGED_MAX ranges; the floor rises to the
 * newest modseq dropped. */
static void modseq_trim(struct modseq *ms)
{
	if (ms->ngone <= MODSEQ_EXPUNGED_MAX)
		return;
	size_t drop = ms->ngone - MODSEQ_EXPUNGED_MAX;
	for (size_t i = 0; i < drop; i++)
		if (ms->gone[i].modseq > ms->floor)
			ms->floor = ms->gone[i].modseq;
	memmove(ms->gone, ms->gone + drop, MODSEQ_EXPUNGED_MAX * sizeof(*ms->gone));
	ms->ngone = MODSEQ_EXPUNGED_MAX;
}

static void modseq_apply_gone(struct modseq *ms, uint32_t lo, uint32_t hi, uint64_t modseq)
{
	bool found;
	for (size_t i = modseq_find(ms, lo, &found); i < ms->count && ms->msgs[i].uid <= hi; i++)
		if (ms->msgs[i].live) {
			ms->msgs[i].live = false;
			ms->live--;
		}
	struct modseq_gone *last = ms->ngone ? &ms->gone[ms->ngone - 1] : NULL;
	if (last != NULL && last->modseq == modseq && last->hi < UINT32_MAX && last->hi + 1 == lo) {
		last->hi = hi;  /* one EXPUNGE of a run of UIDs: one range */
	} else {
		if (ms->ngone == ms->gone_cap) {
			ms->gone_cap = ms->gone_cap ? ms->gone_cap * 2 : 16;
			ms->gone = xreallocarray(ms->gone, ms->gone_cap, sizeof(*ms->gone));
		}
		ms->gone[ms->ngone++] = (struct modseq_gone){ lo, hi, modseq };
	}
	if (modseq > ms->highest)
		ms->highest = modseq;
	modseq_trim(ms);
}

uint64_t modseq_new(struct modseq *ms, uint64_t now)
{
	uint64_t v = ms->highest < MODSEQ_VALUE_MAX ? ms->highest + 1 : MODSEQ_VALUE_MAX;
	if (now > v && now <= MODSEQ_VALUE_MAX)
		v = now;
	ms->highest = v;
	return v;
}

/* FNV-1a, 64 bits: only equality of flags matters. */
static uint64_t modseq_hash(const char *s)
{
	uint64_t h = 14695981039346656037ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

void modseq_key(const char *info, char out[MODSEQ_FLAGS_MAX + 2])
{
	size_t n = strlen(info);
	bool plain = n > 0 && n <= MODSEQ_FLAGS_MAX && info[0] != '-' && info[0] != '#';
	for (size_t i = 0; plain && i < n; i++)
		plain = info[i] > ' ' && info[i] < 0x7f;
	if (n == 0)
		snprintf(out, MODSEQ_FLAGS_MAX + 2, "-");
	else if (plain)
		snprintf(out, MODSEQ_FLAGS_MAX + 2, "%s", info);
	else
		snprintf(out, MODSEQ_FLAGS_MAX + 2, "#%016llx", (unsigned long long)modseq_hash(info));
}

void modseq_set(struct modseq *ms, uint32_t uid, uint64_t modseq, const char *key)
{
	modseq_apply_msg(ms, uid, modseq, str_from_cstr(key));
	buf_printf(&ms->pending, "M%u %llu %s\n", uid, (unsigned long long)modseq, key);
	ms->lines++;
}

static void modseq_gone_line(struct modseq *ms, uint32_t lo, uint32_t hi, uint64_t modseq)
{
	modseq_apply_gone(ms, lo, hi, modseq);
	if (lo == hi)
		buf_printf(&ms->pending, "X%u %llu\n", lo, (unsigned long long)modseq);
	else
		buf_printf(&ms->pending, "X%u:%u %llu\n", lo, hi, (unsigned long long)modseq);
	ms->lines++;
}

bool modseq_was_expunged(const struct modseq *ms, uint32_t uid)
{
	bool found;
	size_t k = modseq_find(ms, uid, &found);
	return found && !ms->msgs[k].live;
}

void modseq_expunge(struct modseq *ms, const uint32_t *uids, size_t n, uint64_t modseq)
{
	/* one found gone by another session's sync (between the unlink and
	 * this record) keeps that expunge */
	for (size_t i = 0; i < n;) {
		if (modseq_was_expunged(ms, uids[i])) {
			i++;
			continue;
		}
		size_t e = i + 1;
		while (e < n && uids[e] == uids[e - 1] + 1 && !modseq_was_expunged(ms, uids[e]))
			e++;
		modseq_gone_line(ms, uids[i], uids[e - 1], modseq);
		i = e;
	}
}

static int modseq_range_cmp(const void *a, const void *b)
{
	const struct modseq_range *x = a, *y = b;
	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

int modseq_vanished(const struct modseq *ms, uint64_t since, struct modseq_range **r,
		    size_t *n_r)
{
	struct modseq_range *v = ms->ngone ? xcalloc(ms->ngone, sizeof(*v)) : NULL;
	size_t n = 0;
	for (size_t i = 0; i < ms->ngone; i++)
		if (ms->gone[i].modseq > since)
			v[n++] = (struct modseq_range){ ms->gone[i].lo, ms->gone[i].hi };
	if (n > 1)
		qsort(v, n, sizeof(*v), modseq_range_cmp);
	size_t out = 0;
	for (size_t i = 0; i < n; i++) {    /* merge overlapping and adjacent */
		if (out > 0 && (v[out - 1].hi == UINT32_MAX || v[i].lo <= v[out - 1].hi + 1)) {
			if (v[i].hi > v[out - 1].hi)
				v[out - 1].hi = v[i].hi;
			continue;
		}
		v[out++] = v[i];
	}
	*r = v;
	*n_r = out;
	return since >= ms->floor ? 1 : 0;
}

/* --- the file's text --- */

void modseq_format(const struct modseq *ms, struct buf *out)
{
	buf_printf(out, MODSEQ_MAGIC " %d V%u H%llu E%llu\n", MODSEQ_VERSION, ms->uidvalidity,
		   (unsigned long long)ms->highest, (unsigned long long)ms->floor);
	/* the expunges first: a live message inside a range came back */
	for (size_t i = 0; i < ms->ngone; i++) {
		const struct modseq_gone *g = &ms->gone[i];
		if (g->lo == g->hi)
			buf_printf(out, "X%u %llu\n", g->lo, (unsigned long long)g->modseq);
		else
			buf_printf(out, "X%u:%u %llu\n", g->lo, g->hi, (unsigned long long)g->modseq);
	}
	for (size_t i = 0; i < ms->count; i++)
		if (ms->msgs[i].live)
			buf_printf(out, "M%u %llu %s\n", ms->msgs[i].uid,
				   (unsigned long long)ms->msgs[i].modseq, ms->msgs[i].flags);
}

bool modseq_rewrite_due(const struct modseq *ms)
{
	return ms->reset || ms->lines >= ms->live + ms->ngone + MODSEQ_COMPACT_LINES;
}

/* The next space-separated token of *s (at most one space between). */
static struct str modseq_token(struct str *s)
{
	struct str t = { s->p, 0 };
	while (t.len < s->len && s->p[t.len] != ' ')
		t.len++;
	s->p += t.len;
	s->len -= t.len;
	if (s->len > 0) {
		s->p++;
		s->len--;
	}
	return t;
}

/* A number in [min, max] of the whole token after a one-letter prefix
 * (prefix 0: none). */
static int modseq_number(struct str t, char prefix, uint64_t min, uint64_t max, uint64_t *v)
{
	if (prefix) {
		if (t.len == 0 || t.p[0] != prefix)
			return -1;
		t.p++;
		t.len--;
	}
	if (t.len > 1 && t.p[0] == '0')
		return -1;      /* one spelling per number */
	return util_parse_uint(t.p, t.len, max, v) == 0 && *v >= min ? 0 : -1;
}

static int modseq_parse_header(struct modseq *ms, struct str line)
{
	uint64_t ver, uv, h, e;
	struct str magic = modseq_token(&line);
	if (magic.len != strlen(MODSEQ_MAGIC) || memcmp(magic.p, MODSEQ_MAGIC, magic.len) != 0 ||
	    modseq_number(modseq_token(&line), 0, 1, 1000, &ver) < 0 || ver != MODSEQ_VERSION ||
	    modseq_number(modseq_token(&line), 'V', 0, UINT32_MAX, &uv) < 0 ||
	    modseq_number(modseq_token(&line), 'H', 1, MODSEQ_VALUE_MAX, &h) < 0 ||
	    modseq_number(modseq_token(&line), 'E', 0, MODSEQ_VALUE_MAX, &e) < 0 || line.len > 0)
		return -1;
	if (uv != ms->uidvalidity)
		return -1;      /* another UIDVALIDITY: its modseqs mean nothing now */
	ms->highest = h;
	ms->floor = e;
	return 0;
}

/* A flags field as modseq_key writes it. */
static bool modseq_flags_valid(struct str f)
{
	if (f.len == 0 || f.len > MODSEQ_FLAGS_MAX + 1)
		return false;
	if (f.p[0] == '-')
		return f.len == 1;
	if (f.p[0] == '#') {
		if (f.len != 17)
			return false;
		/* not strchr(): it finds a NUL byte too (found by fuzz_modseq) */
		for (size_t i = 1; i < f.len; i++)
			if (!((f.p[i] >= '0' && f.p[i] <= '9') || (f.p[i] >= 'a' && f.p[i] <= 'f')))
				return false;
		return true;
	}
	for (size_t i = 0; i < f.len; i++)
		if (f.p[i] <= ' ' || f.p[i] >= 0x7f)
			return false;
	return f.len <= MODSEQ_FLAGS_MAX;
}

static int modseq_parse_record(struct modseq *ms, struct str line)
{
	uint64_t uid, hi, modseq;
	if (line.len == 0)
		return -1;
	char kind = line.p[0];
	struct str first = modseq_token(&line);
	struct str ms_tok = modseq_token(&line);
	if (modseq_number(ms_tok, 0, 1, MODSEQ_VALUE_MAX, &modseq) < 0)
		return -1;
	first.p++;
	first.len--;
	if (kind == 'M' && ms->gone_only) {    /* modseq_open_gone: the expunges alone */
		if (modseq > ms->highest)
			ms->highest = modseq;
		return 0;
	}
	if (kind == 'M') {
		struct str flags = modseq_token(&line);
		if (line.len > 0 || modseq_number(first, 0, 1, UINT32_MAX, &uid) < 0 ||
		    !modseq_flags_valid(flags))
			return -1;
		modseq_apply_msg(ms, (uint32_t)uid, modseq, flags);
		return 0;
	}
	if (kind != 'X' || line.len > 0)
		return -1;
	const char *colon = memchr(first.p, ':', first.len);
	struct str a = { first.p, colon ? (size_t)(colon - first.p) : first.len };
	struct str b = colon ? (struct str){ colon + 1, first.len - a.len - 1 } : a;
	if (modseq_number(a, 0, 1, UINT32_MAX, &uid) < 0 || modseq_number(b, 0, 1, UINT32_MAX, &hi) < 0 ||
	    hi < uid)
		return -1;
	modseq_apply_gone(ms, (uint32_t)uid, (uint32_t)hi, modseq);
	return 0;
}

int modseq_parse(struct modseq *ms, const char *data, size_t len, size_t *good_r)
{
	size_t pos = 0, lines = 0;
	*good_r = 0;
	for (bool header = true;; header = false) {
		const char *lf = pos < len ? memchr(data + pos, '\n', len - pos) : NULL;
		if (lf == NULL)
			break;  /* the end, or a torn last line */
		struct str line = { data + pos, (size_t)(lf - (data + pos)) };
		if (line.len > MODSEQ_LINE_MAX)
			break;
		if (header) {
			if (modseq_parse_header(ms, line) < 0)
				return -1;      /* ms stays fresh */
		} else if (modseq_parse_record(ms, line) < 0) {
			break;  /* a bad line: it and the rest are cut off */
		} else {
			lines++;
		}
		pos = (size_t)(lf - data) + 1;
		*good_r = pos;
	}
	if (*good_r == 0)
		return -1;
	ms->reset = false;
	ms->lines = lines;
	return 0;
}
