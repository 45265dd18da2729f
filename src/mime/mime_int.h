/* mime_int.h - helpers shared by the src/mime files; not part of the API. */
#ifndef MP_MIME_INT_H
#define MP_MIME_INT_H

#include "mime.h"

#include <stdint.h>
#include <string.h>

/* An output string growing in an arena: reserve, write, commit. Growth
 * copies into a new arena block (the old one is abandoned), so a good first
 * capacity matters more than for a heap buffer. */
struct mime_out {
	struct arena *a;
	char *p;
	size_t len, cap;
};

void mime_out_init(struct mime_out *o, struct arena *a, size_t cap);
/* Room for n more bytes; returns the write position. */
char *mime_out_reserve(struct mime_out *o, size_t n);
void mime_out_put(struct mime_out *o, const void *p, size_t n);
void mime_out_utf8(struct mime_out *o, uint32_t cp);
/* NUL-terminates and returns the string. */
struct str mime_out_str(struct mime_out *o);

static inline void mime_out_byte(struct mime_out *o, char c)
{
	if (o->len == o->cap)
		mime_out_reserve(o, 1);
	o->p[o->len++] = c;
}

static inline int mime_lower(int c)
{
	return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

static inline bool mime_is_wsp(int c)
{
	return c == ' ' || c == '\t';
}

/* Space, tab, CR or LF: whitespace in an unfolded or raw header value. */
static inline bool mime_is_lwsp(int c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Hex digit value or -1. */
static inline int mime_hex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = mime_lower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

bool mime_case_eq(const char *a, size_t alen, const char *lit);
bool mime_str_case_eq(struct str a, struct str b);
struct str mime_trim_lwsp(struct str s);
/* Skips whitespace and (nested) comments from p[*i]; stops at end. When
 * comment_r is non-NULL it gets the last comment's contents. */
void mime_skip_cfws(const char *p, size_t len, size_t *i, struct str *comment_r);
/* Counts LF line ends in p[0, len) and how many of them follow a CR. */
void mime_count_lines(const char *p, size_t len, size_t *lines_r, size_t *crlf_r);
/* Unquotes a quoted-string body (backslash pairs) into the arena. */
struct str mime_unquote(struct arena *a, const char *p, size_t len);

/* The charset an HTML document declares in a <meta>, or an empty str. */
struct str mime_html_meta_charset(struct str html);

/* UTF-8 validation with repair: appends p with invalid sequences as U+FFFD;
 * returns true when some were replaced. */
bool mime_utf8_repair(struct mime_out *o, const char *p, size_t len);

#endif
