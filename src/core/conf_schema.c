/* conf_schema.c - walks a Lua table against a field table (see conf_schema.h). */
#include "conf_schema.h"
#include "arena.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define SCHEMA_PATH_MAX 256

static void *field_ptr(void *base, size_t off)
{
	return (char *)base + off;
}

void conf_schema_defaults(const struct conf_field *fields, void *base,
			  struct arena *arena)
{
	for (const struct conf_field *f = fields; f->name; f++) {
		void *p = field_ptr(base, f->offset);
		switch (f->type) {
		case CT_STRING:
			*(char **)p = arena_strdup(arena, f->def_str ? f->def_str : "");
			break;
		case CT_INT:
			*(int64_t *)p = f->def_int;
			break;
		case CT_BOOL:
			*(bool *)p = f->def_int != 0;
			break;
		case CT_NUMBER:
			*(double *)p = f->def_num;
			break;
		case CT_ENUM:
			*(int *)p = (int)f->def_int;
			break;
		case CT_TABLE:
			conf_schema_defaults(f->sub, p, arena);
			break;
		case CT_LIST:
			*(void **)p = NULL;
			*(size_t *)field_ptr(base, f->count_offset) = 0;
			break;
		}
	}
}

static const char *lua_type_name(lua_State *L, int idx)
{
	return lua_typename(L, lua_type(L, idx));
}

static int walk_int(struct conf_walk *w, const struct conf_field *f, void *p,
		    int idx, const char *path)
{
	if (lua_type(w->L, idx) != LUA_TNUMBER) {
		w->error(w->error_ctx, path, "%s: expected an integer, got %s",
			 path, lua_type_name(w->L, idx));
		return 1;
	}
	double d = lua_tonumber(w->L, idx);
	if (d != floor(d) || d < (double)f->min || d > (double)f->max) {
		w->error(w->error_ctx, path,
			 "%s: %g is out of range (expected an integer %lld..%lld)",
			 path, d, (long long)f->min, (long long)f->max);
		return 1;
	}
	*(int64_t *)p = (int64_t)d;
	return 0;
}

static int walk_number(struct conf_walk *w, const struct conf_field *f, void *p,
		       int idx, const char *path)
{
	double d = lua_tonumber(w->L, idx);
	if (lua_type(w->L, idx) != LUA_TNUMBER || d != d) {
		w->error(w->error_ctx, path, "%s: expected a number, got %s",
			 path, lua_type_name(w->L, idx));
		return 1;
	}
	if (d < (double)f->min || d > (double)f->max) {
		w->error(w->error_ctx, path, "%s: %g is out of range (expected %lld..%lld)",
			 path, d, (long long)f->min, (long long)f->max);
		return 1;
	}
	*(double *)p = d;
	return 0;
}

static int walk_enum(struct conf_walk *w, const struct conf_field *f, void *p,
		     int idx, const char *path)
{
	const char *s = lua_type(w->L, idx) == LUA_TSTRING ? lua_tostring(w->L, idx) : NULL;
	for (int i = 0; s && f->names[i]; i++) {
		if (strcmp(s, f->names[i]) == 0) {
			*(int *)p = i;
			return 0;
		}
	}
	char allowed[256] = "";
	size_t o = 0;
	for (int i = 0; f->names[i] && o < sizeof(allowed); i++)
		o += (size_t)snprintf(allowed + o, sizeof(allowed) - o, "%s\"%s\"",
				      i ? ", " : "", f->names[i]);
	w->error(w->error_ctx, path, "%s: expected one of %s, got %s%s%s", path,
		 allowed, s ? "\"" : "", s ? s : lua_type_name(w->L, idx),
		 s ? "\"" : "");
	return 1;
}

static int walk_list(struct conf_walk *w, const struct conf_field *f,
		     void *base, int idx, const char *path)
{
	lua_State *L = w->L;
	size_t n = lua_objlen(L, idx);
	size_t keys = 0;
	lua_pushnil(L);
	while (lua_next(L, idx) != 0) {
		keys++;
		lua_pop(L, 1);
	}
	if (keys != n) {
		w->error(w->error_ctx, path, "%s: expected a list { {...}, {...} }", path);
		return 1;
	}
	char *elems = n ? arena_alloc(w->arena, n * f->elem_size) : NULL;
	int errors = 0;
	for (size_t i = 0; i < n; i++) {
		char sub[SCHEMA_PATH_MAX];
		snprintf(sub, sizeof(sub), "%s.%zu", path, i + 1);
		void *elem = elems + i * f->elem_size;
		conf_schema_defaults(f->sub, elem, w->arena);
		if (f->line_offset && w->line_of)
			*(int *)field_ptr(elem, f->line_offset) = w->line_of(w->error_ctx, sub);
		lua_rawgeti(L, idx, (int)(i + 1));
		if (lua_type(L, -1) != LUA_TTABLE) {
			w->error(w->error_ctx, sub, "%s: expected a table, got %s", sub,
				 lua_type_name(L, -1));
			errors++;
		} else {
			errors += conf_schema_walk(w, f->sub, elem, lua_gettop(L), sub);
		}
		lua_pop(L, 1);
	}
	*(void **)field_ptr(base, f->offset) = elems;
	*(size_t *)field_ptr(base, f->count_offset) = n;
	return errors;
}

static int walk_value(struct conf_walk *w, const struct conf_field *f,
		      void *base, int idx, const char *path)
{
	lua_State *L = w->L;
	void *p = field_ptr(base, f->offset);
	int t = lua_type(L, idx);
	switch (f->type) {
	case CT_STRING:
		if (t != LUA_TSTRING)
			break;
		*(char **)p = arena_strdup(w->arena, lua_tostring(L, idx));
		if (strlen(*(char **)p) != lua_objlen(L, idx)) {
			w->error(w->error_ctx, path, "%s: string contains a NUL byte", path);
			return 1;
		}
		return 0;
	case CT_INT:
		return walk_int(w, f, p, idx, path);
	case CT_NUMBER:
		return walk_number(w, f, p, idx, path);
	case CT_BOOL:
		if (t != LUA_TBOOLEAN)
			break;
		*(bool *)p = lua_toboolean(L, idx);
		return 0;
	case CT_ENUM:
		return walk_enum(w, f, p, idx, path);
	case CT_TABLE:
		if (t != LUA_TTABLE)
			break;
		return conf_schema_walk(w, f->sub, p, idx, path);
	case CT_LIST:
		if (t != LUA_TTABLE)
			break;
		return walk_list(w, f, base, idx, path);
	}
	static const char *const want[] = { "a string", "an integer", "a boolean",
					    "a string", "a table", "a list" };
	w->error(w->error_ctx, path, "%s: expected %s, got %s", path, want[f->type],
		 lua_type_name(L, idx));
	return 1;
}

static const struct conf_field *field_find(const struct conf_field *fields,
					   const char *name)
{
	for (const struct conf_field *f = fields; f->name; f++)
		if (strcmp(f->name, name) == 0)
			return f;
	return NULL;
}

int conf_schema_walk(struct conf_walk *w, const struct conf_field *fields,
		     void *base, int idx, const char *path)
{
	lua_State *L = w->L;
	int errors = 0;
	lua_pushnil(L);
	while (lua_next(L, idx) != 0) {
		char sub[SCHEMA_PATH_MAX];
		const struct conf_field *f = NULL;
		if (lua_type(L, -2) == LUA_TSTRING) {
			const char *key = lua_tostring(L, -2);
			snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "", key);
			f = field_find(fields, key);
			if (f == NULL) {
				w->error(w->error_ctx, sub, "%s: unknown key", sub);
				errors++;
			}
		} else {
			snprintf(sub, sizeof(sub), "%s", path);
			w->error(w->error_ctx, sub, "%s: unexpected %s key (expected names)",
				 *path ? path : "configuration", lua_type_name(L, -2));
			errors++;
		}
		if (f != NULL)
			errors += walk_value(w, f, base, lua_gettop(L), sub);
		lua_pop(L, 1);
	}
	return errors;
}
