/* script_msg_stats.c - see script_msg_stats.h. The rules asked for these
 * numbers with one string.gsub per character class per text part, each a
 * pass over every text of the message and each rule doing its own; one
 * pass here, cached per message by script_msg.c, gives all of them. The
 * definitions are those of the Lua patterns they replace, byte for byte:
 * ASCII classes only (no locale), runs counted as gsub counts matches. */
#include "script_msg_stats.h"

#include <lauxlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

static bool stats_isupper(unsigned char c) { return c >= 'A' && c <= 'Z'; }
static bool stats_islower(unsigned char c) { return c >= 'a' && c <= 'z'; }
static bool stats_isdigit(unsigned char c) { return c >= '0' && c <= '9'; }
static bool stats_isspace(unsigned char c) { return c == ' ' || (c >= 9 && c <= 13); }

static int stats_hex(unsigned char c)
{
	if (stats_isdigit(c))
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Letter and "!" runs: for each of the two, the bits of the last two
 * bytes (bit 1 the last, bit 0 the one before). gsub("%a%a+") matches a
 * whole run of 2+ letters and goes on after it, so it counts one match per
 * maximal run: at a run's second byte (letter, letter, no letter before);
 * "!!+" the same. Runs never continue from one text into the next. */
struct stats_runs {
	unsigned alpha, bang;
};

static void stats_scalar(struct msg_text_stats *s, struct stats_runs *r, const unsigned char *p, size_t n)
{
	size_t up = 0, lo = 0, di = 0, sp = 0, bang = 0, words = 0, bang_runs = 0;
	unsigned ra = r->alpha, rb = r->bang;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = p[i];
		unsigned u = stats_isupper(c), l = stats_islower(c), a = u | l, b = c == '!';
		up += u;
		lo += l;
		di += stats_isdigit(c);
		sp += stats_isspace(c);
		bang += b;
		words += a & (ra >> 1) & ~ra & 1;
		bang_runs += b & (rb >> 1) & ~rb & 1;
		ra = (ra >> 1) | a << 1;
		rb = (rb >> 1) | b << 1;
	}
	r->alpha = ra;
	r->bang = rb;
	s->upper += up;
	s->lower += lo;
	s->digits += di;
	s->nonspace += n - sp;
	s->exclaim += bang;
	s->words += words;
	s->exclaim_runs += bang_runs;
}

#ifdef __SSE2__
/* Bytes of v in [lo, lo + n) (unsigned): 0xff each, else 0. */
static __m128i stats_range(__m128i v, unsigned char lo, unsigned char n)
{
	__m128i t = _mm_add_epi8(v, _mm_set1_epi8((char)(0x80 - lo)));
	return _mm_cmplt_epi8(t, _mm_set1_epi8((char)(0x80 + n)));
}

/* Without -mpopcnt __builtin_popcount is a library call per use. */
static unsigned stats_popcount16(unsigned x)
{
	x = x - ((x >> 1) & 0x5555);
	x = (x & 0x3333) + ((x >> 2) & 0x3333);
	x = (x + (x >> 4)) & 0x0f0f;
	return (x + (x >> 8)) & 0x1f;
}

/* Runs that reach their second byte in this block of 16; *last2 holds the
 * bits of the two bytes before it and gets this block's last two. */
static unsigned stats_run_starts(unsigned bits, unsigned *last2)
{
	unsigned w = bits << 2 | *last2;
	*last2 = (w >> 16) & 3;
	return stats_popcount16(((w & w << 1 & ~(w << 2)) >> 2) & 0xffff);
}

/* Sum of the 16 byte counters of c. */
static size_t stats_hsum(__m128i c)
{
	__m128i s = _mm_sad_epu8(c, _mm_setzero_si128());
	return (size_t)_mm_cvtsi128_si32(s) + (size_t)_mm_cvtsi128_si32(_mm_srli_si128(s, 8));
}

enum { STATS_UP, STATS_LO, STATS_DI, STATS_SP, STATS_BANG, STATS_N };

/* Up to 255 blocks of 16 (byte counters do not overflow): each class's
 * compare mask (0xff = -1) subtracted from a counter per byte lane. */
static void stats_sse2_blocks(struct msg_text_stats *s, struct stats_runs *r, const unsigned char *p,
			      size_t blocks)
{
	__m128i cnt[STATS_N];
	for (int k = 0; k < STATS_N; k++)
		cnt[k] = _mm_setzero_si128();
	for (size_t i = 0; i < blocks; i++) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + 16 * i));
		__m128i up = stats_range(v, 'A', 26), lo = stats_range(v, 'a', 26);
		__m128i b = _mm_cmpeq_epi8(v, _mm_set1_epi8('!'));
		__m128i sp = _mm_or_si128(stats_range(v, 9, 5), _mm_cmpeq_epi8(v, _mm_set1_epi8(' ')));
		cnt[STATS_UP] = _mm_sub_epi8(cnt[STATS_UP], up);
		cnt[STATS_LO] = _mm_sub_epi8(cnt[STATS_LO], lo);
		cnt[STATS_DI] = _mm_sub_epi8(cnt[STATS_DI], stats_range(v, '0', 10));
		cnt[STATS_SP] = _mm_sub_epi8(cnt[STATS_SP], sp);
		cnt[STATS_BANG] = _mm_sub_epi8(cnt[STATS_BANG], b);
		s->words += stats_run_starts((unsigned)_mm_movemask_epi8(_mm_or_si128(up, lo)), &r->alpha);
		s->exclaim_runs += stats_run_starts((unsigned)_mm_movemask_epi8(b), &r->bang);
	}
	s->upper += stats_hsum(cnt[STATS_UP]);
	s->lower += stats_hsum(cnt[STATS_LO]);
	s->digits += stats_hsum(cnt[STATS_DI]);
	s->nonspace += 16 * blocks - stats_hsum(cnt[STATS_SP]);
	s->exclaim += stats_hsum(cnt[STATS_BANG]);
}

/* 16 bytes at a time, as many whole blocks as there are; returns the
 * bytes done. */
static size_t stats_sse2(struct msg_text_stats *s, struct stats_runs *r, const unsigned char *p, size_t n)
{
	size_t blocks = n / 16;
	for (size_t i = 0; i < blocks; i += 255)
		stats_sse2_blocks(s, r, p + 16 * i, blocks - i < 255 ? blocks - i : 255);
	return 16 * blocks;
}
#endif

void msg_text_stats_add(struct msg_text_stats *s, const char *p, size_t n)
{
	const unsigned char *u = (const unsigned char *)p;
	struct stats_runs r = { 0, 0 };
	size_t done = 0;
#ifdef __SSE2__
	done = stats_sse2(s, &r, u, n);
#endif
	stats_scalar(s, &r, u + done, n - done);
	s->letters = s->upper + s->lower;
}

void msg_text_stats_sum(struct msg_text_stats *s, const struct msg_text_stats *t)
{
	s->letters += t->letters;
	s->upper += t->upper;
	s->lower += t->lower;
	s->digits += t->digits;
	s->words += t->words;
	s->nonspace += t->nonspace;
	s->exclaim += t->exclaim;
	s->exclaim_runs += t->exclaim_runs;
}

void msg_text_stats_push(lua_State *L, const struct msg_text_stats *s)
{
	const struct {
		const char *name;
		size_t v;
	} f[] = {
		{ "letters", s->letters }, { "upper", s->upper }, { "lower", s->lower },
		{ "digits", s->digits }, { "words", s->words }, { "nonspace", s->nonspace },
		{ "exclaim", s->exclaim }, { "exclaim_runs", s->exclaim_runs },
	};
	lua_createtable(L, 0, (int)(sizeof(f) / sizeof(*f)));
	for (size_t i = 0; i < sizeof(f) / sizeof(*f); i++) {
		lua_pushinteger(L, (lua_Integer)f[i].v);
		lua_setfield(L, -2, f[i].name);
	}
}

bool msg_qp_wanted(const char *p, size_t n)
{
	const char *e = p + n;
	for (const char *q = p; (q = memchr(q, '=', (size_t)(e - q))) != NULL; q++) {
		if (e - q >= 3 && q[1] == '3' && q[2] == 'D')
			return true;
		if (e - q >= 2 && q[1] == '\n')
			return true;
	}
	return false;
}

/* Both passes copy the bytes between two "=" with memmove, found with
 * memchr: a byte loop over a 10 KB body cost more than the rules using it. */

/* Pass 1: "=\n" and "=\r\n" removed (gsub("=\r?\n", "")). */
static size_t qp_soft_breaks(char *p, size_t n)
{
	size_t o = 0, i = 0;
	while (i < n) {
		const char *eq = memchr(p + i, '=', n - i);
		size_t k = eq ? (size_t)(eq - p) : n;      /* next "=" or the end */
		memmove(p + o, p + i, k - i);
		o += k - i;
		i = k;
		if (i == n)
			break;
		if (i + 1 < n && p[i + 1] == '\n') {
			i += 2;
		} else if (i + 2 < n && p[i + 1] == '\r' && p[i + 2] == '\n') {
			i += 3;
		} else {
			p[o++] = p[i++];
		}
	}
	return o;
}

/* Pass 2, over pass 1's result: "=XX" -> the byte; a decoded byte is not
 * looked at again (gsub resumes after its match). */
static size_t qp_escapes(char *p, size_t n)
{
	size_t o = 0, i = 0;
	while (i < n) {
		const char *eq = memchr(p + i, '=', n - i);
		size_t k = eq ? (size_t)(eq - p) : n;
		memmove(p + o, p + i, k - i);
		o += k - i;
		i = k;
		if (i == n)
			break;
		int hi = i + 2 < n ? stats_hex((unsigned char)p[i + 1]) : -1;
		int lo = hi >= 0 ? stats_hex((unsigned char)p[i + 2]) : -1;
		if (lo >= 0) {
			p[o++] = (char)(hi * 16 + lo);
			i += 3;
		} else {
			p[o++] = p[i++];
		}
	}
	return o;
}

void msg_ascii_lower(char *p, size_t n)
{
	size_t i = 0;
#ifdef __SSE2__
	for (; i + 16 <= n; i += 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
		__m128i up = stats_range(v, 'A', 26);
		v = _mm_add_epi8(v, _mm_and_si128(up, _mm_set1_epi8(0x20)));
		_mm_storeu_si128((__m128i *)(void *)(p + i), v);
	}
#endif
	for (; i < n; i++)
		if (p[i] >= 'A' && p[i] <= 'Z')
			p[i] = (char)(p[i] + 0x20);
}

size_t msg_qp_undo(char *p, size_t n)
{
	if (!msg_qp_wanted(p, n))
		return n;
	return qp_escapes(p, qp_soft_breaks(p, n));
}
