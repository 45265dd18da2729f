/* test_script_str.c - script sets replace string.find/match/gmatch/gsub
 * with src/lua/script_str.c (a prefiltered copy of LuaJIT's matcher). This
 * pins it to LuaJIT's own: t/lua/str_difftest.lua calls both on the same
 * patterns and subjects (rule patterns, edge cases, random ones; the
 * t/corpus messages as subjects) and compares every result and error. */
#include "lua/script_int.h"
#include "tap.h"

#include <dirent.h>
#include <lauxlib.h>
#include <lualib.h>
#include <stdlib.h>
#include <string.h>

#define SRC MP_SRCDIR

static int corpus_files(lua_State *L)
{
	DIR *d = opendir(SRC "/t/corpus");
	int n = 0;
	lua_newtable(L);
	if (d == NULL)
		return 0;
	struct dirent *de;
	char p[4096];
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		if (len < 5 || strcmp(de->d_name + len - 4, ".eml") != 0)
			continue;
		snprintf(p, sizeof(p), "%s/t/corpus/%s", SRC, de->d_name);
		lua_pushstring(L, p);
		lua_rawseti(L, -2, ++n);
	}
	closedir(d);
	return n;
}

int main(void)
{
	lua_State *L = luaL_newstate();
	luaL_openlibs(L);
	ok(luaL_dostring(L, "ORIG = { find = string.find, match = string.match, "
			    "gmatch = string.gmatch, gsub = string.gsub }") == 0, "LuaJIT's functions kept");
	script_str_open(L);
	ok(luaL_dostring(L, "FAST = { find = string.find, match = string.match, "
			    "gmatch = string.gmatch, gsub = string.gsub }\n"
			    "return FAST.find ~= ORIG.find and FAST.gsub ~= ORIG.gsub") == 0 &&
	   lua_toboolean(L, -1), "ours installed in their place");
	lua_settop(L, 0);
	int nfiles = corpus_files(L);
	lua_setglobal(L, "arg");
	ok(nfiles > 10, "corpus subjects (%d files)", nfiles);
	if (luaL_loadfile(L, SRC "/t/lua/str_difftest.lua") != 0 || lua_pcall(L, 0, 3, 0) != 0) {
		ok(false, "str_difftest.lua runs: %s", lua_tostring(L, -1));
		lua_close(L);
		return tap_done();
	}
	long tests = (long)lua_tointeger(L, 1), bad = (long)lua_tointeger(L, 2);
	ok(tests > 10000, "%ld cases compared (each: find, match, gmatch and gsub in several forms)", tests);
	ok(bad == 0, "no difference from LuaJIT's string functions (%ld)", bad);
	if (bad != 0)
		printf("#   %s\n", lua_tostring(L, 3));
	lua_close(L);
	return tap_done();
}
