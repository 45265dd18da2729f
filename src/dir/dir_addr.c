/* dir_addr.c - address splitting, normalisation and query templates; pure. */
#include "dir.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/util.h"

#include <string.h>

/* Addresses longer than this are not deliverable anyway (RFC 5321 4.5.3.1.3
 * caps a path at 256 octets). */
#define DIR_ADDR_MAX 320

static bool dir_addr_byte_ok(unsigned char c)
{
	/* No NUL, controls, space, or the separators a query template or a
	 * file line could confuse. 8-bit bytes pass (SMTPUTF8 local parts). */
	return c > 0x20 && c != 0x7f && c != ',' && c != '<' && c != '>';
}

int dir_addr_parse(const char *address, const char *delim, bool allow_catchall,
		   struct arena *a, struct dir_addr *out)
{
	size_t len = strlen(address);
	if (len == 0 || len > DIR_ADDR_MAX)
		return -1;
	for (size_t i = 0; i < len; i++)
		if (!dir_addr_byte_ok((unsigned char)address[i]))
			return -1;
	const char *at = strrchr(address, '@');
	if (at == NULL || at[1] == '\0' || (at == address && !allow_catchall))
		return -1;
	size_t llen = (size_t)(at - address);
	char *domain = arena_strdup(a, at + 1);
	for (char *p = domain; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p + 32);
	if (domain[0] == '.' || strstr(domain, "..") || strchr(domain, '@'))
		return -1;
	out->local = arena_strndup(a, address, llen);
	out->domain = domain;
	out->full = arena_printf(a, "%s@%s", out->local, domain);
	out->base = NULL;
	size_t cut = delim && *delim ? strcspn(out->local, delim) : llen;
	if (cut > 0 && cut < llen)
		out->base = arena_printf(a, "%.*s@%s", (int)cut, out->local, domain);
	return 0;
}

char *dir_addr_expand(const char *tmpl, const struct dir_addr *addr,
		      char *(*escape)(void *ctx, const char *s, struct arena *a),
		      void *ctx, struct arena *a)
{
	struct buf b = { 0 };
	for (const char *p = tmpl; *p; p++) {
		const char *v = NULL;
		if (*p != '%' || p[1] == '\0') {
			buf_append(&b, p, 1);
			continue;
		}
		switch (*++p) {
		case 's': case 'u': v = addr->full; break;
		case 'd': v = addr->domain; break;
		case 'n': v = addr->local; break;
		case '%': buf_append(&b, "%", 1); continue;
		default: buf_append(&b, p - 1, 2); continue;
		}
		buf_append_str(&b, escape ? escape(ctx, v, a) : v);
	}
	char *r = arena_strndup(a, buf_ptr(&b), b.len);
	buf_free(&b);
	return r;
}
