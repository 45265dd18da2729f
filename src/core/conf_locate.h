/* conf_locate.h - maps config key paths to source lines.
 *
 * The config is Lua, evaluated to plain tables, and tables forget where their
 * keys were written. To report "file:line" for a bad key, this pure scanner
 * reads the source once and records the line of every key it can see
 * statically: `name = ...` at top level and inside table constructors, and
 * positional items of list constructors. Paths use dots and 1-based indices:
 * "listen.2.port". Keys computed at run time are simply not recorded; lookups
 * then fall back to the nearest recorded ancestor. No I/O, no Lua. */
#ifndef MP_CONF_LOCATE_H
#define MP_CONF_LOCATE_H

#include <stddef.h>

struct conf_locs;

/* Scans src (len bytes, need not be NUL-terminated). Never fails: input it
 * cannot understand only yields fewer entries. */
struct conf_locs *conf_locate(const char *src, size_t len);
void conf_locs_free(struct conf_locs **lp);

/* Line of path, or of its nearest recorded ancestor; 0 if none. When a key
 * is written twice, the last one wins, as it does in Lua. */
int conf_locs_line(const struct conf_locs *l, const char *path);

#endif
