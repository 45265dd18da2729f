/* conf_schema.h - a table-driven checker from a Lua table to a C struct.
 *
 * Internal to the conf module. Each field says its key, type, where it is
 * stored (offset), its range or allowed names and its default. The walker
 * applies defaults first, then visits every key of the Lua table: unknown
 * keys and bad values become errors with the key's path. */
#ifndef MP_CONF_SCHEMA_H
#define MP_CONF_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lua.h>

struct arena;

enum conf_type {
	CT_STRING,      /* char *, arena-owned */
	CT_INT,         /* int64_t within [min, max] */
	CT_BOOL,        /* bool */
	CT_ENUM,        /* int index into names */
	CT_TABLE,       /* nested struct at offset, fields in sub */
	CT_LIST,        /* array of elem_size structs, fields in sub */
	CT_NUMBER,      /* double within [min, max] */
};

struct conf_field {
	const char *name;
	enum conf_type type;
	size_t offset;
	int64_t min, max;
	const char *const *names;      /* CT_ENUM, NULL-terminated */
	const struct conf_field *sub;  /* CT_TABLE, CT_LIST; {NULL}-terminated */
	size_t elem_size;              /* CT_LIST */
	size_t count_offset;           /* CT_LIST: size_t element count */
	int64_t def_int;               /* CT_INT, CT_BOOL, CT_ENUM */
	const char *def_str;           /* CT_STRING */
	double def_num;                /* CT_NUMBER */
	size_t line_offset;            /* CT_LIST elems: int line, 0 = none */
};

/* Reports an error at a key path ("listen.2.port"). */
typedef void conf_error_fn(void *ctx, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

struct conf_walk {
	lua_State *L;
	struct arena *arena;
	conf_error_fn *error;
	void *error_ctx;
	/* Line lookup for list elements (may be NULL). */
	int (*line_of)(void *ctx, const char *path);
};

/* Applies defaults of fields to the struct at base. */
void conf_schema_defaults(const struct conf_field *fields, void *base,
			  struct arena *arena);
/* Checks the table at stack index idx against fields, storing into base.
 * Returns the number of errors reported. */
int conf_schema_walk(struct conf_walk *w, const struct conf_field *fields,
		     void *base, int idx, const char *path);

#endif
