/* script_str.c - string.find/match/gmatch/gsub for script sets: the same
 * Lua 5.1 patterns, results and errors as LuaJIT 2.1's own, plus a
 * prefilter so that a pattern does not get tried at every byte of a long
 * subject.
 *
 * The pattern matcher (match(), the class and set functions) is adapted
 * from LuaJIT's lib_string.c, itself taken from Lua 5.1's lstrlib.c:
 *   Copyright (C) 2005-2023 Mike Pall. LuaJIT is MIT licensed.
 *   Copyright (C) 1994-2008 Lua.org, PUC-Rio. Lua is MIT licensed.
 * Both under the MIT licence: permission is granted, free of charge, to
 * deal in the Software without restriction, provided the copyright notice
 * and this permission notice are included; THE SOFTWARE IS PROVIDED "AS
 * IS", WITHOUT WARRANTY OF ANY KIND. Its behaviour is pinned to the
 * originals by t/unit/test_script_str.c (a differential test).
 *
 * Why: the rules run pattern searches over whole message bodies, and
 * LuaJIT's matcher calls match() at every position (about 7 ns a byte:
 * 70 us per search of a 10 KB body). Most patterns cannot match at most
 * positions: "display%s*:%s*none" needs a 'd', "%a<!%-%-" needs "<!--"
 * one byte further. Each pattern is analysed once (a small cache per Lua
 * state, keyed by its text) into:
 *   - a literal run at a fixed offset from the match start (all items
 *     before it match exactly one byte): memmem/memchr finds candidates;
 *   - otherwise the set of bytes the first item accepts: a table scan;
 *   - whether the pattern is one single-byte item (gsub("%u", "") and the
 *     like): counted and replaced in one pass;
 *   - whether it is "linear": one-byte items, the last maybe with '+' or
 *     '*' ("%a%a+", "%S+", "%d%d%d%d%d"): matched by a loop over byte
 *     sets, without match()'s recursion and backtracking.
 * Positions the prefilter skips are exactly those where match() fails, so
 * results do not change; the analysis stops at anything it does not model
 * (optional items, %b, %f, back references) and keeps what it found before. */
#include "script_int.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define STR_MAXCAPTURES 32
#define STR_MAXDEPTH 200                /* LJ_MAX_XLEVEL */
#define STR_CAP_UNFINISHED (-1)
#define STR_CAP_POSITION (-2)
#define STR_ESC '%'
#define STR_CACHE_SLOTS 1024            /* the shipped rules use a few hundred patterns */
#define STR_PAT_MAX 96                  /* longer patterns are analysed per call */
#define STR_LIN_MAX 8                   /* items of a linear pattern */

/* ---- ASCII classes, as LuaJIT's lj_char (no locale) ------------------- */

static bool str_isdigit(int c) { return c >= '0' && c <= '9'; }
static bool str_islower(int c) { return c >= 'a' && c <= 'z'; }
static bool str_isupper(int c) { return c >= 'A' && c <= 'Z'; }
static bool str_isalpha(int c) { return str_islower(c) || str_isupper(c); }
static bool str_iscntrl(int c) { return c < 32 || c == 127; }
static bool str_isspace(int c) { return c == ' ' || (c >= 9 && c <= 13); }
static bool str_isgraph(int c) { return c > 32 && c < 127; }
static bool str_ispunct(int c) { return str_isgraph(c) && !str_isalpha(c) && !str_isdigit(c); }
static bool str_isxdigit(int c)
{
	return str_isdigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* %a %c %d %g %l %p %s %u %w %x %z; upper case negates. */
static int str_match_class_slow(int c, int cl)
{
	bool r;
	switch (cl | 0x20) {
	case 'a': r = str_isalpha(c); break;
	case 'c': r = str_iscntrl(c); break;
	case 'd': r = str_isdigit(c); break;
	case 'g': r = str_isgraph(c); break;
	case 'l': r = str_islower(c); break;
	case 'p': r = str_ispunct(c); break;
	case 's': r = str_isspace(c); break;
	case 'u': r = str_isupper(c); break;
	case 'w': r = str_isalpha(c) || str_isdigit(c); break;
	case 'x': r = str_isxdigit(c); break;
	case 'z': r = c == 0; break;
	default: return cl == c;
	}
	if (!str_isalpha(cl))
		return cl == c;
	return str_islower(cl) ? r : !r;
}

/* The classes as tables (filled by script_str_open): row 0 = not a
 * class letter (the item is the letter itself), rows per letter. */
static uint8_t str_class_row[128];
static uint8_t str_class_tab[23][256];

static void str_class_init(void)
{
	static const char letters[] = "acdglpsuwxzACDGLPSUWXZ";
	for (int i = 0; letters[i]; i++) {
		str_class_row[(unsigned char)letters[i]] = (uint8_t)(i + 1);
		for (int c = 0; c < 256; c++)
			str_class_tab[i + 1][c] = (uint8_t)str_match_class_slow(c, letters[i]);
	}
}

static int str_match_class(int c, int cl)
{
	int row = cl < 128 ? str_class_row[cl] : 0;
	return row ? str_class_tab[row][c] : cl == c;
}

/* ---- the matcher (LuaJIT 2.1 lib_string.c) ----------------------------- */

struct str_ms {
	const char *src_init, *src_end;
	lua_State *L;
	int level, depth;
	struct {
		const char *init;
		ptrdiff_t len;
	} capture[STR_MAXCAPTURES];
};

static const char *str_match(struct str_ms *ms, const char *s, const char *p);

static int str_check_capture(struct str_ms *ms, int l)
{
	l -= '1';
	if (l < 0 || l >= ms->level || ms->capture[l].len == STR_CAP_UNFINISHED)
		return luaL_error(ms->L, "invalid capture index");
	return l;
}

static int str_capture_to_close(struct str_ms *ms)
{
	int level = ms->level;
	for (level--; level >= 0; level--)
		if (ms->capture[level].len == STR_CAP_UNFINISHED)
			return level;
	return luaL_error(ms->L, "invalid pattern capture");
}

static const char *str_class_end(struct str_ms *ms, const char *p)
{
	switch (*p++) {
	case STR_ESC:
		if (*p == '\0')
			luaL_error(ms->L, "malformed pattern (ends with '%%')");
		return p + 1;
	case '[':
		if (*p == '^')
			p++;
		do {
			if (*p == '\0')
				luaL_error(ms->L, "malformed pattern (missing ']')");
			if (*(p++) == STR_ESC && *p != '\0')
				p++;
		} while (*p != ']');
		return p + 1;
	default:
		return p;
	}
}

static int str_match_bracket(int c, const char *p, const char *ec)
{
	int sig = 1;
	if (*(p + 1) == '^') {
		sig = 0;
		p++;
	}
	while (++p < ec) {
		if (*p == STR_ESC) {
			p++;
			if (str_match_class(c, (unsigned char)*p))
				return sig;
		} else if (*(p + 1) == '-' && p + 2 < ec) {
			p += 2;
			if ((unsigned char)*(p - 2) <= c && c <= (unsigned char)*p)
				return sig;
		} else if ((unsigned char)*p == c) {
			return sig;
		}
	}
	return !sig;
}

static int str_single_match(int c, const char *p, const char *ep)
{
	switch (*p) {
	case '.': return 1;
	case STR_ESC: return str_match_class(c, (unsigned char)*(p + 1));
	case '[': return str_match_bracket(c, p, ep - 1);
	default: return (unsigned char)*p == c;
	}
}

static const char *str_match_balance(struct str_ms *ms, const char *s, const char *p)
{
	if (*p == 0 || *(p + 1) == 0)
		luaL_error(ms->L, "unbalanced pattern");
	if (*s != *p)
		return NULL;
	int b = *p, e = *(p + 1), cont = 1;
	while (++s < ms->src_end) {
		if (*s == e) {
			if (--cont == 0)
				return s + 1;
		} else if (*s == b) {
			cont++;
		}
	}
	return NULL;
}

static const char *str_max_expand(struct str_ms *ms, const char *s, const char *p, const char *ep)
{
	ptrdiff_t i = 0;
	while (s + i < ms->src_end && str_single_match((unsigned char)*(s + i), p, ep))
		i++;
	while (i >= 0) {
		const char *res = str_match(ms, s + i, ep + 1);
		if (res)
			return res;
		i--;
	}
	return NULL;
}

static const char *str_min_expand(struct str_ms *ms, const char *s, const char *p, const char *ep)
{
	for (;;) {
		const char *res = str_match(ms, s, ep + 1);
		if (res != NULL)
			return res;
		if (s < ms->src_end && str_single_match((unsigned char)*s, p, ep))
			s++;
		else
			return NULL;
	}
}

static const char *str_start_capture(struct str_ms *ms, const char *s, const char *p, int what)
{
	int level = ms->level;
	if (level >= STR_MAXCAPTURES)
		luaL_error(ms->L, "too many captures");
	ms->capture[level].init = s;
	ms->capture[level].len = what;
	ms->level = level + 1;
	const char *res = str_match(ms, s, p);
	if (res == NULL)
		ms->level--;
	return res;
}

static const char *str_end_capture(struct str_ms *ms, const char *s, const char *p)
{
	int l = str_capture_to_close(ms);
	ms->capture[l].len = s - ms->capture[l].init;
	const char *res = str_match(ms, s, p);
	if (res == NULL)
		ms->capture[l].len = STR_CAP_UNFINISHED;
	return res;
}

static const char *str_match_capture(struct str_ms *ms, const char *s, int l)
{
	l = str_check_capture(ms, l);
	size_t len = (size_t)ms->capture[l].len;
	if ((size_t)(ms->src_end - s) >= len && memcmp(ms->capture[l].init, s, len) == 0)
		return s + len;
	return NULL;
}

/* One pattern item and its quantifier at s; the rest by tail iteration. */
static const char *str_match_item(struct str_ms *ms, const char *s, const char *p, const char **p_next)
{
	const char *ep = str_class_end(ms, p);
	int m = s < ms->src_end && str_single_match((unsigned char)*s, p, ep);
	*p_next = NULL;
	switch (*ep) {
	case '?': {
		const char *res;
		if (m && (res = str_match(ms, s + 1, ep + 1)) != NULL)
			return res;
		*p_next = ep + 1;
		return s;
	}
	case '*':
		return str_max_expand(ms, s, p, ep);
	case '+':
		return m ? str_max_expand(ms, s + 1, p, ep) : NULL;
	case '-':
		return str_min_expand(ms, s, p, ep);
	default:
		if (!m)
			return NULL;
		*p_next = ep;
		return s + 1;
	}
}

static const char *str_match(struct str_ms *ms, const char *s, const char *p)
{
	if (++ms->depth > STR_MAXDEPTH)
		luaL_error(ms->L, "pattern too complex");
	for (;;) {
		const char *next = NULL;
		switch (*p) {
		case '(':
			s = p[1] == ')' ? str_start_capture(ms, s, p + 2, STR_CAP_POSITION)
					: str_start_capture(ms, s, p + 1, STR_CAP_UNFINISHED);
			break;
		case ')':
			s = str_end_capture(ms, s, p + 1);
			break;
		case '\0':
			break;
		case '$':
			if (p[1] != '\0') {
				s = str_match_item(ms, s, p, &next);
				break;
			}
			if (s != ms->src_end)
				s = NULL;
			break;
		case STR_ESC:
			if (p[1] == 'b') {
				s = str_match_balance(ms, s, p + 2);
				next = s ? p + 4 : NULL;
			} else if (p[1] == 'f') {
				p += 2;
				if (*p != '[')
					luaL_error(ms->L, "missing '[' after '%%f' in pattern");
				const char *ep = str_class_end(ms, p);
				int prev = (s == ms->src_init) ? 0 : (unsigned char)*(s - 1);
				if (str_match_bracket(prev, p, ep - 1) ||
				    !str_match_bracket((unsigned char)*s, p, ep - 1))
					s = NULL;
				else
					next = ep;
			} else if (str_isdigit((unsigned char)p[1])) {
				s = str_match_capture(ms, s, (unsigned char)p[1]);
				next = s ? p + 2 : NULL;
			} else {
				s = str_match_item(ms, s, p, &next);
			}
			break;
		default:
			s = str_match_item(ms, s, p, &next);
			break;
		}
		if (next == NULL || s == NULL)
			break;
		p = next;
	}
	ms->depth--;
	return s;
}

static void str_push_one_capture(struct str_ms *ms, int i, const char *s, const char *e)
{
	if (i >= ms->level) {
		if (i == 0)
			lua_pushlstring(ms->L, s, (size_t)(e - s));
		else
			luaL_error(ms->L, "invalid capture index");
		return;
	}
	ptrdiff_t l = ms->capture[i].len;
	if (l == STR_CAP_UNFINISHED)
		luaL_error(ms->L, "unfinished capture");
	if (l == STR_CAP_POSITION)
		lua_pushinteger(ms->L, ms->capture[i].init - ms->src_init + 1);
	else
		lua_pushlstring(ms->L, ms->capture[i].init, (size_t)l);
}

static int str_push_captures(struct str_ms *ms, const char *s, const char *e)
{
	int n = (ms->level == 0 && s) ? 1 : ms->level;
	luaL_checkstack(ms->L, n, "too many captures");
	for (int i = 0; i < n; i++)
		str_push_one_capture(ms, i, s, e);
	return n;
}

static void str_ms_init(struct str_ms *ms, lua_State *L, const char *s, size_t len)
{
	ms->L = L;
	ms->src_init = s;
	ms->src_end = s + len;
	ms->level = ms->depth = 0;
}

/* ---- the prefilter ------------------------------------------------------ */

enum { STR_PRE_NONE, STR_PRE_LIT, STR_PRE_SET };

struct str_pre {
	size_t plen;                    /* the key: pattern text; 0 = empty slot */
	char pat[STR_PAT_MAX];
	int kind;
	bool single;                    /* one single-byte item, nothing else */
	size_t off, llen;               /* STR_PRE_LIT: lit at off from the start */
	char lit[STR_PAT_MAX];
	uint8_t set[32];                /* STR_PRE_SET / single: accepted first bytes */
	/* linear: one-byte items, the last maybe with '+' or '*', nothing
	 * else (no captures, anchors, optional items): matched without
	 * backtracking, since a greedy run at the very end always stands */
	bool linear;
	int lin_n;                      /* items, the greedy one included */
	char lin_tail;                  /* 0, '+' or '*': the quantifier of the last */
	uint8_t lin_set[STR_LIN_MAX][32];
};

struct str_cache {
	struct str_pre slot[STR_CACHE_SLOTS];
};

static bool str_in(const uint8_t *set, unsigned char c)
{
	return (set[c >> 3] >> (c & 7)) & 1;
}

/* class_end without errors: NULL on a malformed item (the matcher will
 * raise the error itself). */
static const char *str_class_end_safe(const char *p)
{
	switch (*p++) {
	case STR_ESC:
		return *p == '\0' ? NULL : p + 1;
	case '[':
		if (*p == '^')
			p++;
		do {
			if (*p == '\0')
				return NULL;
			if (*(p++) == STR_ESC && *p != '\0')
				p++;
		} while (*p != ']');
		return p + 1;
	default:
		return p;
	}
}

/* The byte an item matches exactly, or -1 (a class, a set, '.'). */
static int str_item_literal(const char *p)
{
	if (*p == '.' || *p == '[')
		return -1;
	if (*p == STR_ESC) {
		int c = (unsigned char)p[1];
		return str_isalpha(c) && strchr("acdglpsuwxz", c | 0x20) ? -1 : c;
	}
	return (unsigned char)*p;
}

static void str_item_set(const char *p, const char *ep, uint8_t *set)
{
	memset(set, 0, 32);
	for (int c = 0; c < 256; c++)
		if (str_single_match(c, p, ep))
			set[c >> 3] |= (uint8_t)(1u << (c & 7));
}

static bool str_set_full(const uint8_t *set)
{
	for (int i = 0; i < 32; i++)
		if (set[i] != 0xff)
			return false;
	return true;
}

struct str_run {
	size_t off, len;
	char b[STR_PAT_MAX];
};

static void str_keep_longer(struct str_pre *a, const struct str_run *r)
{
	if (r->len > a->llen) {
		a->off = r->off;
		a->llen = r->len;
		memcpy(a->lit, r->b, r->len);
	}
}

/* Walks the items that each match exactly one byte (captures do not
 * consume); stops at the first one that may match zero or several. */
static void str_analyse(const char *p, struct str_pre *a)
{
	struct str_run run = { 0, 0, { 0 } };
	size_t k = 0;
	bool first = true, set_ok = false;
	a->kind = STR_PRE_NONE;
	a->llen = 0;
	a->single = false;
	for (;;) {
		if (*p == '(') {
			p += p[1] == ')' ? 2 : 1;
			continue;
		}
		if (*p == ')') {
			p++;
			continue;
		}
		if (*p == '\0' || (*p == '$' && p[1] == '\0'))
			break;
		if (*p == STR_ESC && (p[1] == 'b' || p[1] == 'f' || str_isdigit((unsigned char)p[1])))
			break;
		const char *ep = str_class_end_safe(p);
		if (ep == NULL || *ep == '*' || *ep == '-' || *ep == '?')
			break;
		if (first) {
			str_item_set(p, ep, a->set);
			set_ok = !str_set_full(a->set);
			first = false;
		}
		int lit = str_item_literal(p);
		if (lit >= 0 && run.len < sizeof(run.b)) {
			if (run.len == 0)
				run.off = k;
			run.b[run.len++] = (char)lit;
		} else {
			str_keep_longer(a, &run);
			run.len = 0;
		}
		k++;
		if (*ep == '+')
			break;
		p = ep;
	}
	str_keep_longer(a, &run);
	if (a->llen > 0)
		a->kind = STR_PRE_LIT;
	else if (set_ok)
		a->kind = STR_PRE_SET;
}

static void str_analyse_single(const char *p, struct str_pre *a)
{
	if (*p == '(' || *p == ')' || *p == '\0' || (*p == '$' && p[1] == '\0'))
		return;
	if (*p == STR_ESC && (p[1] == 'b' || p[1] == 'f' || str_isdigit((unsigned char)p[1])))
		return;
	const char *ep = str_class_end_safe(p);
	if (ep != NULL && *ep == '\0') {
		a->single = true;
		str_item_set(p, ep, a->set);
	}
}

/* Can matching this pattern raise an error anywhere? The matcher raises
 * lazily (a bad item only when a match attempt reaches it), so skipping
 * positions would skip errors too: patterns that may raise get no
 * prefilter. Walks the items as match() does: captures open and close in
 * pattern order on every path, so their state at each point is static;
 * the recursion depth is below the pattern length (< STR_PAT_MAX). */
static bool str_valid(const char *p)
{
	bool closed[STR_MAXCAPTURES];
	int level = 0;
	while (*p) {
		if (*p == '(') {
			if (level >= STR_MAXCAPTURES)
				return false;
			closed[level++] = p[1] == ')';
			p += p[1] == ')' ? 2 : 1;
		} else if (*p == ')') {
			int l = level - 1;
			while (l >= 0 && closed[l])
				l--;
			if (l < 0)
				return false;
			closed[l] = true;
			p++;
		} else if (*p == STR_ESC && p[1] == 'b') {
			if (p[2] == '\0' || p[3] == '\0')
				return false;
			p += 4;
		} else if (*p == STR_ESC && p[1] == 'f') {
			if (p[2] != '[' || (p = str_class_end_safe(p + 2)) == NULL)
				return false;
		} else if (*p == STR_ESC && str_isdigit((unsigned char)p[1])) {
			int l = p[1] - '1';
			if (l < 0 || l >= level || !closed[l])
				return false;
			p += 2;
		} else {
			const char *ep = str_class_end_safe(p);
			if (ep == NULL)
				return false;
			p = (*ep && strchr("*+-?", *ep)) ? ep + 1 : ep;
		}
	}
	return true;
}

static void str_analyse_linear(const char *p, struct str_pre *a)
{
	int n = 0;
	a->linear = false;
	while (*p) {
		if (*p == '(' || *p == ')' || (*p == '$' && p[1] == '\0') || n >= STR_LIN_MAX)
			return;
		if (*p == STR_ESC && (p[1] == 'b' || p[1] == 'f' || str_isdigit((unsigned char)p[1])))
			return;
		const char *ep = str_class_end_safe(p);
		if (ep == NULL || *ep == '-' || *ep == '?')
			return;
		str_item_set(p, ep, a->lin_set[n++]);
		if (*ep == '+' || *ep == '*') {
			if (ep[1] != '\0')
				return;
			a->lin_tail = *ep;
			a->lin_n = n;
			a->linear = true;
			return;
		}
		p = ep;
	}
	if (n == 0)
		return;
	a->lin_tail = 0;
	a->lin_n = n;
	a->linear = true;
}

/* The end of the match of a linear pattern at s, or NULL. */
static const char *str_lin_match(const struct str_pre *a, const char *s, const char *end)
{
	int fixed = a->lin_tail ? a->lin_n - 1 : a->lin_n;
	if (end - s < fixed)
		return NULL;
	for (int i = 0; i < fixed; i++)
		if (!str_in(a->lin_set[i], (unsigned char)s[i]))
			return NULL;
	s += fixed;
	if (a->lin_tail == 0)
		return s;
	const uint8_t *t = a->lin_set[a->lin_n - 1];
	if (a->lin_tail == '+' && (s >= end || !str_in(t, (unsigned char)*s)))
		return NULL;
	while (s < end && str_in(t, (unsigned char)*s))
		s++;
	return s;
}

static uint32_t str_hash(const char *p, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)p[i]) * 16777619u;
	return h;
}

/* The analysis of pattern p (NUL-terminated, plen bytes), from the cache
 * or made now (into tmp for long patterns). */
static const struct str_pre *str_pre_get(lua_State *L, const char *p, size_t plen, struct str_pre *tmp)
{
	struct str_cache *c = lua_touserdata(L, lua_upvalueindex(1));
	struct str_pre *a = tmp;
	if (c != NULL && plen > 0 && plen < STR_PAT_MAX) {
		a = &c->slot[str_hash(p, plen) % STR_CACHE_SLOTS];
		if (a->plen == plen && memcmp(a->pat, p, plen) == 0)
			return a;
		a->plen = plen;
		memcpy(a->pat, p, plen);
	}
	a->kind = STR_PRE_NONE;
	a->single = false;
	a->linear = false;
	if (str_valid(p)) {
		str_analyse(p, a);
		str_analyse_single(p, a);
		str_analyse_linear(p, a);
	}
	return a;
}

/* memmem for the prefilter's literals: glibc's memmem runs at about a
 * byte per ns on short needles; comparing the needle's first and last
 * bytes 16 positions at a time (SSE2) and checking the middle only where
 * both agree is several times faster on text. */
static const char *str_find_lit(const char *h, size_t hn, const char *n, size_t nn)
{
#ifdef __SSE2__
	if (nn >= 2 && hn >= nn + 16) {
		const __m128i first = _mm_set1_epi8(n[0]), last = _mm_set1_epi8(n[nn - 1]);
		size_t i = 0;
		for (; i + nn - 1 + 16 <= hn; i += 16) {
			__m128i bf = _mm_loadu_si128((const __m128i *)(const void *)(h + i));
			__m128i bl = _mm_loadu_si128((const __m128i *)(const void *)(h + i + nn - 1));
			unsigned mask = (unsigned)_mm_movemask_epi8(_mm_and_si128(_mm_cmpeq_epi8(bf, first),
										      _mm_cmpeq_epi8(bl, last)));
			while (mask) {
				unsigned bit = (unsigned)__builtin_ctz(mask);
				if (memcmp(h + i + bit + 1, n + 1, nn - 2) == 0)
					return h + i + bit;
				mask &= mask - 1;
			}
		}
		const char *r = memmem(h + i, hn - i, n, nn);
		return r;
	}
#endif
	return memmem(h, hn, n, nn);
}

/* The first position >= s where the pattern can start, or NULL. */
static const char *str_pre_next(const struct str_pre *a, const char *s, const char *end)
{
	if (a->kind == STR_PRE_LIT) {
		if ((size_t)(end - s) < a->off + a->llen)
			return NULL;
		const char *h = a->llen == 1 ? memchr(s + a->off, (unsigned char)a->lit[0], (size_t)(end - s) - a->off)
					     : str_find_lit(s + a->off, (size_t)(end - s) - a->off, a->lit, a->llen);
		return h ? h - a->off : NULL;
	}
	if (a->kind == STR_PRE_SET) {
		while (s < end && !str_in(a->set, (unsigned char)*s))
			s++;
		return s < end ? s : NULL;
	}
	return s;
}

/* ---- find, match ------------------------------------------------------- */

static bool str_has_pattern(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)p[i];
		if (str_ispunct(c) && strchr("^$*+?.([%-", c))
			return true;
	}
	return false;
}

static int str_find_aux(lua_State *L, bool find)
{
	size_t l1, l2;
	const char *s = luaL_checklstring(L, 1, &l1);
	const char *p = luaL_checklstring(L, 2, &l2);
	lua_Integer start = luaL_optinteger(L, 3, 1);
	if (start < 0)
		start += (lua_Integer)l1;
	else
		start--;
	if (start < 0)
		start = 0;
	size_t init = (size_t)start > l1 ? l1 : (size_t)start;
	if (find && (lua_toboolean(L, 4) || !str_has_pattern(p, l2))) {
		const char *q = l2 == 0 ? s + init : memmem(s + init, l1 - init, p, l2);
		if (q) {
			lua_pushinteger(L, q - s + 1);
			lua_pushinteger(L, q - s + (ptrdiff_t)l2);
			return 2;
		}
		lua_pushnil(L);
		return 1;
	}
	struct str_ms ms;
	str_ms_init(&ms, L, s, l1);
	bool anchor = *p == '^';
	struct str_pre tmp;
	const struct str_pre *a = anchor ? NULL : str_pre_get(L, p, l2, &tmp);
	if (anchor)
		p++;
	const char *s1 = s + init;
	do {
		if (a && (s1 = str_pre_next(a, s1, ms.src_end)) == NULL)
			break;
		ms.level = ms.depth = 0;
		const char *res = a && a->linear ? str_lin_match(a, s1, ms.src_end) : str_match(&ms, s1, p);
		if (res != NULL) {
			if (!find)
				return str_push_captures(&ms, s1, res);
			lua_pushinteger(L, s1 - s + 1);
			lua_pushinteger(L, res - s);
			return str_push_captures(&ms, NULL, NULL) + 2;
		}
	} while (s1++ < ms.src_end && !anchor);
	lua_pushnil(L);
	return 1;
}

static int str_find(lua_State *L)
{
	return str_find_aux(L, true);
}

static int str_match_fn(lua_State *L)
{
	return str_find_aux(L, false);
}

/* ---- gmatch ------------------------------------------------------------ */

/* upvalues: 1 cache, 2 subject, 3 pattern, 4 position */
static int str_gmatch_aux(lua_State *L)
{
	size_t ls, lp;
	const char *s = lua_tolstring(L, lua_upvalueindex(2), &ls);
	const char *p = lua_tolstring(L, lua_upvalueindex(3), &lp);
	struct str_ms ms;
	str_ms_init(&ms, L, s, ls);
	struct str_pre tmp;
	const struct str_pre *a = str_pre_get(L, p, lp, &tmp);
	for (const char *src = s + (size_t)lua_tointeger(L, lua_upvalueindex(4)); src <= ms.src_end; src++) {
		if ((src = str_pre_next(a, src, ms.src_end)) == NULL)
			break;
		ms.level = ms.depth = 0;
		const char *e = a->linear ? str_lin_match(a, src, ms.src_end) : str_match(&ms, src, p);
		if (e != NULL) {
			lua_Integer pos = e - s;
			if (e == src)
				pos++;
			lua_pushinteger(L, pos);
			lua_replace(L, lua_upvalueindex(4));
			return str_push_captures(&ms, src, e);
		}
	}
	return 0;
}

static int str_gmatch(lua_State *L)
{
	luaL_checkstring(L, 1);
	luaL_checkstring(L, 2);
	lua_settop(L, 2);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_pushinteger(L, 0);
	lua_pushcclosure(L, str_gmatch_aux, 4);
	return 1;
}

/* ---- gsub -------------------------------------------------------------- */

/* The result of gsub, in a userdata at a fixed stack slot (so a Lua error
 * leaks nothing): LuaJIT's luaL_addlstring copies a byte at a time. */
struct str_buf {
	char *p;
	size_t len, cap;
	int idx;
};

static void str_buf_init(lua_State *L, struct str_buf *b, size_t cap)
{
	b->cap = cap < 64 ? 64 : cap;
	b->p = lua_newuserdata(L, b->cap);
	b->len = 0;
	b->idx = lua_gettop(L);
}

static void str_buf_add(lua_State *L, struct str_buf *b, const char *s, size_t n)
{
	if (n > b->cap - b->len) {
		size_t cap = b->cap;
		while (n > cap - b->len) {
			if (cap > ((size_t)-1) / 2)
				luaL_error(L, "not enough memory");
			cap *= 2;
		}
		char *np = lua_newuserdata(L, cap);
		memcpy(np, b->p, b->len);
		lua_replace(L, b->idx);
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

/* Appends the string at the top of the stack and pops it. */
static void str_buf_add_value(lua_State *L, struct str_buf *b)
{
	size_t n;
	const char *v = lua_tolstring(L, -1, &n);
	str_buf_add(L, b, v, n);
	lua_pop(L, 1);
}

static void str_add_s(struct str_ms *ms, struct str_buf *b, const char *s, const char *e)
{
	size_t l;
	const char *news = lua_tolstring(ms->L, 3, &l);
	for (size_t i = 0; i < l; i++) {
		size_t k = i;
		while (k < l && news[k] != STR_ESC)
			k++;
		str_buf_add(ms->L, b, news + i, k - i);
		if ((i = k) >= l)
			break;
		i++;
		if (!str_isdigit((unsigned char)news[i])) {
			str_buf_add(ms->L, b, news + i, 1);   /* news[l] is the NUL */
		} else if (news[i] == '0') {
			str_buf_add(ms->L, b, s, (size_t)(e - s));
		} else {
			str_push_one_capture(ms, news[i] - '1', s, e);
			str_buf_add_value(ms->L, b);
		}
	}
}

static void str_add_value(struct str_ms *ms, struct str_buf *b, const char *s, const char *e)
{
	lua_State *L = ms->L;
	switch (lua_type(L, 3)) {
	case LUA_TNUMBER:
	case LUA_TSTRING:
		str_add_s(ms, b, s, e);
		return;
	case LUA_TFUNCTION:
		lua_pushvalue(L, 3);
		lua_call(L, str_push_captures(ms, s, e), 1);
		break;
	case LUA_TTABLE:
		str_push_one_capture(ms, 0, s, e);
		lua_gettable(L, 3);
		break;
	}
	if (!lua_toboolean(L, -1)) {
		lua_pop(L, 1);
		str_buf_add(L, b, s, (size_t)(e - s));
	} else if (!lua_isstring(L, -1)) {
		luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
	} else {
		str_buf_add_value(L, b);
	}
}

/* gsub of a one-byte item by a string without '%': counted in one pass,
 * written in a second into a buffer of the exact size. */
static int str_gsub_delete(lua_State *L, const struct str_pre *a, const char *src, size_t srcl)
{
	uint8_t in[256];
	for (int c = 0; c < 256; c++)
		in[c] = str_in(a->set, (unsigned char)c);
	struct str_buf b;
	str_buf_init(L, &b, srcl);
	size_t o = 0, n = 0;
	for (size_t i = 0; i < srcl; i++) {
		unsigned char c = (unsigned char)src[i];
		b.p[o] = (char)c;       /* kept unless it matched */
		o += !in[c];
		n += in[c];
	}
	lua_pushlstring(L, b.p, o);
	lua_pushinteger(L, (lua_Integer)n);
	return 2;
}

static int str_gsub_single(lua_State *L, const struct str_pre *a, const char *src, size_t srcl, int max_s)
{
	size_t rl;
	const char *r = lua_tolstring(L, 3, &rl);
	const char *end = src + srcl;
	int n = 0;
	/* deleting every match (the count idiom: select(2, s:gsub("%u", ""))):
	 * one branch-free pass */
	if (rl == 0 && (size_t)max_s > srcl)
		return str_gsub_delete(L, a, src, srcl);
	for (const char *s = src; s < end && n < max_s; s++)
		n += str_in(a->set, (unsigned char)*s);
	struct str_buf b;
	str_buf_init(L, &b, srcl - (size_t)n + (size_t)n * rl);
	const char *run = src;
	int k = 0;
	for (const char *s = src; s < end && k < n; s++) {
		if (!str_in(a->set, (unsigned char)*s))
			continue;
		memcpy(b.p + b.len, run, (size_t)(s - run));
		b.len += (size_t)(s - run);
		memcpy(b.p + b.len, r, rl);
		b.len += rl;
		run = s + 1;
		k++;
	}
	memcpy(b.p + b.len, run, (size_t)(end - run));
	b.len += (size_t)(end - run);
	lua_pushlstring(L, b.p, b.len);
	lua_pushinteger(L, n);
	return 2;
}

static int str_gsub(lua_State *L)
{
	size_t srcl, lp;
	const char *src = luaL_checklstring(L, 1, &srcl);
	const char *p = luaL_checklstring(L, 2, &lp);
	int tr = lua_type(L, 3);
	int max_s = luaL_optint(L, 4, (int)(srcl + 1));
	luaL_argcheck(L, tr == LUA_TNUMBER || tr == LUA_TSTRING || tr == LUA_TFUNCTION || tr == LUA_TTABLE,
		      3, "string/function/table expected");
	bool anchor = *p == '^';
	struct str_pre tmp;
	const struct str_pre *a = anchor ? NULL : str_pre_get(L, p, lp, &tmp);
	if (a && a->single && (tr == LUA_TSTRING || tr == LUA_TNUMBER) &&
	    strchr(lua_tostring(L, 3), STR_ESC) == NULL)
		return str_gsub_single(L, a, src, srcl, max_s);
	/* a function or a table (__index) runs Lua code between matches,
	 * which may reuse this pattern's cache slot: work on a copy */
	struct str_pre own;
	if (a && (tr == LUA_TFUNCTION || tr == LUA_TTABLE)) {
		own = *a;
		a = &own;
	}
	if (anchor)
		p++;
	struct str_ms ms;
	str_ms_init(&ms, L, src, srcl);
	struct str_buf b;
	str_buf_init(L, &b, srcl);
	int n = 0;
	while (n < max_s) {
		if (a) {
			const char *c = str_pre_next(a, src, ms.src_end);
			if (c == NULL)
				break;
			str_buf_add(L, &b, src, (size_t)(c - src));
			src = c;
		}
		ms.level = ms.depth = 0;
		const char *e = a && a->linear ? str_lin_match(a, src, ms.src_end) : str_match(&ms, src, p);
		if (e) {
			n++;
			str_add_value(&ms, &b, src, e);
		}
		if (e && e > src)
			src = e;
		else if (src < ms.src_end)
			str_buf_add(L, &b, src++, 1);
		else
			break;
		if (anchor)
			break;
	}
	str_buf_add(L, &b, src, (size_t)(ms.src_end - src));
	lua_pushlstring(L, b.p, b.len);
	lua_pushinteger(L, n);
	return 2;
}

/* ---- registration ------------------------------------------------------- */

void script_str_open(lua_State *L)
{
	static const luaL_Reg fns[] = {
		{ "find", str_find }, { "match", str_match_fn },
		{ "gmatch", str_gmatch }, { "gsub", str_gsub },
		{ NULL, NULL },
	};
	str_class_init();
	lua_getglobal(L, "string");
	struct str_cache *c = lua_newuserdata(L, sizeof(*c));
	memset(c, 0, sizeof(*c));
	for (const luaL_Reg *f = fns; f->name; f++) {
		lua_pushvalue(L, -1);
		lua_pushcclosure(L, f->func, 1);
		lua_setfield(L, -3, f->name);
	}
	lua_pop(L, 2);
}
