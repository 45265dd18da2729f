/* script_regex.c - the regex module: PCRE2 with JIT, one compile per
 * pattern per set (a cache in the registry), bounded matching (match and
 * depth limits: a pathological pattern gives "no match", not a stall),
 * invalid UTF-8 in the subject tolerated (PCRE2_MATCH_INVALID_UTF), since
 * raw headers are arbitrary bytes. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "script_int.h"
#include "core/util.h"

#include <string.h>

#include <pcre2.h>

#define SCRIPT_REGEX_MT "moonpost.regex"
#define SCRIPT_REGEX_MATCH_LIMIT 1000000
#define SCRIPT_REGEX_DEPTH_LIMIT 10000

struct script_regex {
	pcre2_code *code;
	pcre2_match_data *md;
	pcre2_match_context *mc;
};

static uint32_t script_regex_flags(lua_State *L, const char *f)
{
	uint32_t o = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF;
	for (; *f; f++) {
		switch (*f) {
		case 'i': o |= PCRE2_CASELESS; break;
		case 'm': o |= PCRE2_MULTILINE; break;
		case 's': o |= PCRE2_DOTALL; break;
		case 'x': o |= PCRE2_EXTENDED; break;
		case 'u': break;
		case 'r': o &= ~(uint32_t)(PCRE2_UTF | PCRE2_MATCH_INVALID_UTF); break;
		default: luaL_error(L, "regex: unknown flag '%c'", *f);
		}
	}
	return o;
}

static int script_regex_gc(lua_State *L)
{
	struct script_regex *r = luaL_checkudata(L, 1, SCRIPT_REGEX_MT);
	pcre2_match_data_free(r->md);
	pcre2_match_context_free(r->mc);
	pcre2_code_free(r->code);
	r->code = NULL;
	r->md = NULL;
	r->mc = NULL;
	return 0;
}

/* Splits "/pattern/flags"; otherwise the whole string is the pattern. */
static void script_regex_split(lua_State *L, const char **pat, size_t *plen, const char **flags)
{
	const char *p = *pat;
	const char *last = *plen > 1 && p[0] == '/' ? memrchr(p + 1, '/', *plen - 1) : NULL;
	if (last == NULL)
		return;
	lua_pushlstring(L, p + 1, (size_t)(last - p - 1));
	lua_pushlstring(L, last + 1, *plen - (size_t)(last - p) - 1);
	*pat = lua_tolstring(L, -2, plen);
	*flags = lua_tostring(L, -1);
}

static void script_regex_compile(lua_State *L, const char *pat, size_t plen, const char *flags)
{
	int code;
	PCRE2_SIZE off;
	struct script_regex *r = lua_newuserdata(L, sizeof(*r));
	memset(r, 0, sizeof(*r));
	luaL_getmetatable(L, SCRIPT_REGEX_MT);
	lua_setmetatable(L, -2);
	r->code = pcre2_compile((PCRE2_SPTR)pat, plen, script_regex_flags(L, flags), &code, &off, NULL);
	if (r->code == NULL) {
		PCRE2_UCHAR msg[256];
		pcre2_get_error_message(code, msg, sizeof(msg));
		luaL_error(L, "regex /%s/: %s at offset %d", pat, (const char *)msg, (int)off);
	}
	pcre2_jit_compile(r->code, PCRE2_JIT_COMPLETE);   /* falls back to the interpreter */
	r->md = pcre2_match_data_create_from_pattern(r->code, NULL);
	r->mc = pcre2_match_context_create(NULL);
	pcre2_set_match_limit(r->mc, SCRIPT_REGEX_MATCH_LIMIT);
	pcre2_set_depth_limit(r->mc, SCRIPT_REGEX_DEPTH_LIMIT);
}

/* regex_new(pattern [, flags]) -> cached compiled regex; errors on a bad
 * pattern (at load time, with the rule's file:line). */
static int script_regex_new(lua_State *L)
{
	size_t plen;
	const char *pat = luaL_checklstring(L, 1, &plen);
	const char *flags = luaL_optstring(L, 2, "");
	lua_settop(L, 2);
	lua_pushvalue(L, 1);
	lua_pushstring(L, "\x01");
	lua_pushstring(L, flags);
	lua_concat(L, 3);                                       /* 3: key */
	lua_getfield(L, LUA_REGISTRYINDEX, "moonpost.regex_cache");   /* 4 */
	lua_pushvalue(L, 3);
	lua_rawget(L, 4);
	if (!lua_isnil(L, -1))
		return 1;
	lua_pop(L, 1);
	script_regex_split(L, &pat, &plen, &flags);
	script_regex_compile(L, pat, plen, flags);
	lua_pushvalue(L, 3);
	lua_pushvalue(L, -2);
	lua_rawset(L, 4);
	return 1;
}

/* Runs the match; >0 ovector pairs, 0 no match (or a limit hit). */
static int script_regex_exec(lua_State *L, struct script_regex **r_r, const char **s_r, size_t *len_r)
{
	struct script_regex *r = luaL_checkudata(L, 1, SCRIPT_REGEX_MT);
	size_t len;
	const char *s = luaL_checklstring(L, 2, &len);
	lua_Integer init = luaL_optinteger(L, 3, 1);
	if (r->code == NULL)
		return luaL_error(L, "regex: used after free");
	if (init < 1)
		init = 1;
	*r_r = r;
	*s_r = s;
	*len_r = len;
	if ((size_t)(init - 1) > len)
		return 0;
	int rc = pcre2_match(r->code, (PCRE2_SPTR)s, len, (PCRE2_SIZE)(init - 1), 0, r->md, r->mc);
	return rc > 0 ? rc : 0;
}

static int script_regex_match(lua_State *L)
{
	struct script_regex *r;
	const char *s;
	size_t len;
	lua_pushboolean(L, script_regex_exec(L, &r, &s, &len) > 0);
	return 1;
}

static int script_regex_find(lua_State *L)
{
	struct script_regex *r;
	const char *s;
	size_t len;
	if (script_regex_exec(L, &r, &s, &len) == 0)
		return 0;
	PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->md);
	lua_pushinteger(L, (lua_Integer)ov[0] + 1);
	lua_pushinteger(L, (lua_Integer)ov[1]);
	return 2;
}

static int script_regex_capture(lua_State *L)
{
	struct script_regex *r;
	const char *s;
	size_t len;
	int n = script_regex_exec(L, &r, &s, &len);
	if (n == 0)
		return 0;
	PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->md);
	lua_createtable(L, n, 0);
	for (int i = 0; i < n; i++) {
		if (ov[2 * i] == PCRE2_UNSET)
			lua_pushboolean(L, 0);
		else
			lua_pushlstring(L, s + ov[2 * i], ov[2 * i + 1] - ov[2 * i]);
		lua_rawseti(L, -2, i + 1);
	}
	return 1;
}

/* count(s [, max]) -> number of non-overlapping matches, at most max. */
static int script_regex_count(lua_State *L)
{
	struct script_regex *r = luaL_checkudata(L, 1, SCRIPT_REGEX_MT);
	size_t len;
	const char *s = luaL_checklstring(L, 2, &len);
	lua_Integer max = luaL_optinteger(L, 3, 1000);
	lua_Integer n = 0;
	PCRE2_SIZE at = 0;
	while (n < max && at <= len && r->code) {
		if (pcre2_match(r->code, (PCRE2_SPTR)s, len, at, 0, r->md, r->mc) <= 0)
			break;
		PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->md);
		n++;
		at = ov[1] > ov[0] ? ov[1] : ov[1] + 1;
	}
	lua_pushinteger(L, n);
	return 1;
}

void script_regex_open(lua_State *L)
{
	static const luaL_Reg methods[] = {
		{ "match", script_regex_match }, { "find", script_regex_find },
		{ "capture", script_regex_capture }, { "count", script_regex_count },
		{ NULL, NULL },
	};
	luaL_newmetatable(L, SCRIPT_REGEX_MT);
	lua_newtable(L);
	luaL_register(L, NULL, methods);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, script_regex_gc);
	lua_setfield(L, -2, "__gc");
	lua_pop(L, 1);
	lua_newtable(L);
	lua_setfield(L, LUA_REGISTRYINDEX, "moonpost.regex_cache");
	lua_pushcfunction(L, script_regex_new);
	lua_setfield(L, LUA_REGISTRYINDEX, "moonpost.regex_new");
}
