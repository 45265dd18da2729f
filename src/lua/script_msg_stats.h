/* script_msg_stats.h - counts and decodings behind msg:text_stats() and
 * msg:body_qp() (script_msg.c): pure functions over byte strings, so the
 * rules that used to do them with string.gsub over every text get the
 * same numbers from one pass in C. */
#ifndef MP_SCRIPT_MSG_STATS_H
#define MP_SCRIPT_MSG_STATS_H

#include <lua.h>
#include <stdbool.h>
#include <stddef.h>

/* Counts with the meaning of Lua patterns in the C locale (ASCII classes,
 * as LuaJIT's lj_char): a byte >= 0x80 is no letter, digit or space. */
struct msg_text_stats {
	size_t letters;         /* %a */
	size_t upper;           /* %u */
	size_t lower;           /* %l */
	size_t digits;          /* %d */
	size_t words;           /* matches of "%a%a+" (maximal runs of 2+ letters) */
	size_t nonspace;        /* %S */
	size_t exclaim;         /* "!" */
	size_t exclaim_runs;    /* matches of "!!+" */
};

/* Adds the counts of one text (runs never continue into the next text). */
void msg_text_stats_add(struct msg_text_stats *s, const char *p, size_t n);

/* s += t, field by field. */
void msg_text_stats_sum(struct msg_text_stats *s, const struct msg_text_stats *t);

/* Pushes the counts as a table of integers, keyed by the names above. */
void msg_text_stats_push(lua_State *L, const struct msg_text_stats *s);

/* The raw body as the HTML rules read it: when it contains "=3D" or "=\n"
 * anywhere, quoted-printable soft line breaks ("=\n", "=\r\n") are removed
 * and then every "=XX" (two hex digits, either case) becomes its byte, left
 * to right, as body:gsub("=\r?\n", ""):gsub("=(%x%x)", ...) did; otherwise
 * unchanged. Decodes in place and returns the new length. */
size_t msg_qp_undo(char *p, size_t n);

/* A-Z to a-z, other bytes unchanged (string.lower in the C locale). */
void msg_ascii_lower(char *p, size_t n);

/* Whether msg_qp_undo() would touch the body at all. */
bool msg_qp_wanted(const char *p, size_t n);

#endif
