/* buf.h - (ptr,len) string slices and overflow-checked growable buffers.
 *
 * struct str is a borrowed view: it does not own its bytes and is valid only
 * as long as the memory it points into. struct buf owns its bytes, always
 * keeps one spare byte so data[len] == '\0', and may be consumed from the
 * front cheaply (an offset, compacted on the next growth).
 * Growth checks len + add for overflow and aborts on OOM (style rules 6, 9). */
#ifndef MP_BUF_H
#define MP_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct str {
	const char *p;
	size_t len;
};

#define STR_LIT(s) ((struct str){ (s), sizeof(s) - 1 })
#define STR_FMT(s) (int)(s).len, (s).p   /* for "%.*s" */

struct str str_from_cstr(const char *s);
/* ASCII case-insensitive comparison, as SMTP and IMAP keywords require. */
bool str_case_eq(struct str a, const char *lit);
bool str_case_prefix(struct str a, const char *lit);
struct str str_trim(struct str s);

struct buf {
	char *data;       /* bytes start at data + off */
	size_t off;       /* consumed prefix */
	size_t len;       /* bytes from data + off */
	size_t cap;       /* allocated, excluding the spare NUL */
};

/* An empty buffer needs no init beyond zeroing. */
void buf_free(struct buf *b);
static inline const char *buf_ptr(const struct buf *b)
{
	return b->data ? b->data + b->off : "";
}
/* Ensures room for add more bytes; returns pointer to the write position. */
char *buf_reserve(struct buf *b, size_t add);
/* Commits n bytes written after buf_reserve(). */
void buf_commit(struct buf *b, size_t n);
void buf_append(struct buf *b, const void *p, size_t n);
void buf_append_str(struct buf *b, const char *s);
/* s then n in decimal: the hot paths' numbers without printf's machinery */
void buf_append_num(struct buf *b, const char *s, uint64_t n);
void buf_printf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void buf_vprintf(struct buf *b, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
/* Drops n bytes from the front (n <= len). Views into the buffer (struct str)
 * are invalid afterwards. */
void buf_consume(struct buf *b, size_t n);
void buf_clear(struct buf *b);

#endif
