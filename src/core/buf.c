/* buf.c - slices and growable buffers (see buf.h). */
#include "buf.h"
#include "util.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

struct str str_from_cstr(const char *s)
{
	return (struct str){ s, s ? strlen(s) : 0 };
}


static int ascii_lower(int c)
{
	return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

bool str_case_prefix(struct str a, const char *lit)
{
	size_t n = strlen(lit);
	if (a.len < n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (ascii_lower((unsigned char)a.p[i]) !=
		    ascii_lower((unsigned char)lit[i]))
			return false;
	return true;
}

bool str_case_eq(struct str a, const char *lit)
{
	return a.len == strlen(lit) && str_case_prefix(a, lit);
}

struct str str_trim(struct str s)
{
	while (s.len > 0 && (s.p[0] == ' ' || s.p[0] == '\t')) {
		s.p++;
		s.len--;
	}
	while (s.len > 0 && (s.p[s.len - 1] == ' ' || s.p[s.len - 1] == '\t'))
		s.len--;
	return s;
}

void buf_free(struct buf *b)
{
	xfree(&b->data);
	b->off = b->len = b->cap = 0;
}

char *buf_reserve(struct buf *b, size_t add)
{
	if (add > SIZE_MAX - 1 - b->len)
		fatal("buffer overflow: len %zu + %zu", b->len, add);
	if (b->off > 0 && b->off + b->len + add > b->cap) {
		memmove(b->data, b->data + b->off, b->len);
		b->off = 0;
	}
	if (b->len + add > b->cap || b->data == NULL) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + add)
			cap = cap > SIZE_MAX / 2 ? b->len + add : cap * 2;
		b->data = xreallocarray(b->data, cap + 1, 1);
		b->cap = cap;
	}
	return b->data + b->off + b->len;
}

void buf_commit(struct buf *b, size_t n)
{
	b->len += n;
	b->data[b->off + b->len] = '\0';
}

void buf_append(struct buf *b, const void *p, size_t n)
{
	char *w = buf_reserve(b, n);
	if (n > 0)
		memcpy(w, p, n);
	buf_commit(b, n);
}

void buf_append_str(struct buf *b, const char *s)
{
	buf_append(b, s, strlen(s));
}

void buf_append_num(struct buf *b, const char *s, uint64_t n)
{
	char d[20];
	size_t k = sizeof(d);
	do
		d[--k] = (char)('0' + n % 10);
	while ((n /= 10) != 0);
	size_t sl = strlen(s);
	char *w = buf_reserve(b, sl + sizeof(d) - k);
	memcpy(w, s, sl);
	memcpy(w + sl, d + k, sizeof(d) - k);
	buf_commit(b, sl + sizeof(d) - k);
}

void buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		fatal("buf_vprintf: bad format");
	char *w = buf_reserve(b, (size_t)n);
	vsnprintf(w, (size_t)n + 1, fmt, ap);
	buf_commit(b, (size_t)n);
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(b, fmt, ap);
	va_end(ap);
}

void buf_consume(struct buf *b, size_t n)
{
	if (n > b->len)
		fatal("buf_consume past end: %zu > %zu", n, b->len);
	b->off += n;
	b->len -= n;
	if (b->len == 0)
		b->off = 0;
	if (b->data)
		b->data[b->off + b->len] = '\0';
}

void buf_clear(struct buf *b)
{
	b->off = b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}
