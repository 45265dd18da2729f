/* imap_utf7.c - mailbox names between UTF-8 (what an IMAP4rev2 client
 * speaks, RFC 9051 5.1) and modified UTF-7 (RFC 3501 5.1.3: what IMAP4rev1
 * clients speak and what Dovecot and moonpost store on disk).
 *
 * Modified UTF-7: printable US-ASCII other than "&" stands for itself; "&-"
 * is "&"; anything else is UTF-16 in RFC 2152's BASE64 with "," for "/",
 * no padding, between "&" and "-". Pure functions. */
#include "imap_folder.h"
#include "imap_int.h"

#include <stdint.h>
#include <string.h>

static const char imap_mb64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/* One code point of UTF-8 (RFC 3629: shortest form, no surrogates, at
 * most U+10FFFF); its length, or 0 if invalid. */
static size_t imap_utf8_cp(const unsigned char *p, size_t n, uint32_t *cp)
{
	if (p[0] < 0x80) {
		*cp = p[0];
		return 1;
	}
	size_t len = p[0] >= 0xF0 ? 4 : p[0] >= 0xE0 ? 3 : p[0] >= 0xC2 ? 2 : 0;
	if (len == 0 || len > n || p[0] > 0xF4)
		return 0;
	uint32_t v = p[0] & (0x7F >> len);
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return 0;
		v = (v << 6) | (p[i] & 0x3F);
	}
	static const uint32_t min[] = { 0, 0, 0x80, 0x800, 0x10000 };
	if (v < min[len] || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
		return 0;
	*cp = v;
	return len;
}

/* Appends a run of UTF-16 units as "&BASE64-". */
static void imap_mutf7_put_run(struct buf *out, const uint16_t *u, size_t n)
{
	uint32_t bits = 0;
	unsigned nbits = 0;
	buf_append(out, "&", 1);
	for (size_t i = 0; i < n; i++) {
		bits = (bits << 16) | u[i];
		nbits += 16;
		while (nbits >= 6) {
			nbits -= 6;
			buf_append(out, &imap_mb64[(bits >> nbits) & 0x3F], 1);
		}
	}
	if (nbits > 0)
		buf_append(out, &imap_mb64[(bits << (6 - nbits)) & 0x3F], 1);
	buf_append(out, "-", 1);
}

int imap_utf8_to_mutf7(struct buf *out, struct str in)
{
	const unsigned char *p = (const unsigned char *)in.p;
	uint16_t run[IMAP_UTF8_NAME_MAX];       /* a unit per input byte at most */
	size_t nrun = 0;
	if (in.len > IMAP_UTF8_NAME_MAX)
		return -1;
	for (size_t i = 0; i < in.len;) {
		uint32_t cp;
		size_t len = imap_utf8_cp(p + i, in.len - i, &cp);
		if (len == 0)
			return -1;
		i += len;
		if (cp >= 0x20 && cp <= 0x7E) {
			if (nrun > 0)
				imap_mutf7_put_run(out, run, nrun);
			nrun = 0;
			if (cp == '&')
				buf_append(out, "&-", 2);
			else
				buf_append(out, &in.p[i - 1], 1);
		} else if (cp >= 0x10000) {
			run[nrun++] = (uint16_t)(0xD800 + ((cp - 0x10000) >> 10));
			run[nrun++] = (uint16_t)(0xDC00 + ((cp - 0x10000) & 0x3FF));
		} else {
			run[nrun++] = (uint16_t)cp;
		}
	}
	if (nrun > 0)
		imap_mutf7_put_run(out, run, nrun);
	return 0;
}

static void imap_utf8_put(struct buf *out, uint32_t cp)
{
	char b[4];
	size_t n;
	if (cp < 0x80) {
		b[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		b[0] = (char)(0xC0 | (cp >> 6));
		b[1] = (char)(0x80 | (cp & 0x3F));
		n = 2;
	} else if (cp < 0x10000) {
		b[0] = (char)(0xE0 | (cp >> 12));
		b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		b[2] = (char)(0x80 | (cp & 0x3F));
		n = 3;
	} else {
		b[0] = (char)(0xF0 | (cp >> 18));
		b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
		b[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
		b[3] = (char)(0x80 | (cp & 0x3F));
		n = 4;
	}
	buf_append(out, b, n);
}

/* Decodes the run p[0 .. n) (between "&" and "-"); 0 or -1. */
static int imap_mutf7_get_run(struct buf *out, const char *p, size_t n)
{
	uint32_t bits = 0, high = 0;
	unsigned nbits = 0;
	for (size_t i = 0; i < n; i++) {
		const char *v = p[i] ? strchr(imap_mb64, p[i]) : NULL;
		if (v == NULL)
			return -1;
		bits = (bits << 6) | (uint32_t)(v - imap_mb64);
		nbits += 6;
		if (nbits < 16)
			continue;
		nbits -= 16;
		uint32_t u = (bits >> nbits) & 0xFFFF;
		if (high != 0) {
			if (u < 0xDC00 || u > 0xDFFF)
				return -1;
			imap_utf8_put(out, 0x10000 + ((high - 0xD800) << 10) + (u - 0xDC00));
			high = 0;
		} else if (u >= 0xD800 && u <= 0xDBFF) {
			high = u;
		} else if (u >= 0xDC00 && u <= 0xDFFF) {
			return -1;
		} else {
			imap_utf8_put(out, u);
		}
	}
	return high == 0 && nbits < 6 && (bits & ((1u << nbits) - 1)) == 0 ? 0 : -1;
}

int imap_mutf7_to_utf8(struct buf *out, struct str in)
{
	size_t start = out->len;
	for (size_t i = 0; i < in.len; i++) {
		if (in.p[i] != '&') {
			buf_append(out, &in.p[i], 1);
			continue;
		}
		const char *end = memchr(in.p + i + 1, '-', in.len - i - 1);
		size_t n = end ? (size_t)(end - (in.p + i + 1)) : 0;
		int rc = end == NULL ? -1 : n == 0 ? 0 : imap_mutf7_get_run(out, in.p + i + 1, n);
		if (rc < 0) {
			out->len = start;       /* not modified UTF-7: left as it is */
			buf_append(out, in.p, in.len);
			return -1;
		}
		if (n == 0)
			buf_append(out, "&", 1);        /* "&-" */
		i += n + 1;
	}
	return 0;
}

bool imap_arg_mailbox(bool utf8, const struct imap_arg *a, struct str *name, struct buf *tmp)
{
	if (!imap_arg_astring(a, name))
		return false;
	if (!utf8)
		return true;
	buf_clear(tmp);
	if (imap_utf8_to_mutf7(tmp, *name) < 0)
		return false;
	*name = (struct str){ buf_ptr(tmp), tmp->len };
	return true;
}

void imap_append_mailbox(struct buf *out, const char *name, bool utf8)
{
	if (!utf8) {
		imap_append_astring(out, str_from_cstr(name));
		return;
	}
	struct buf u = { 0 };
	imap_mutf7_to_utf8(&u, str_from_cstr(name));
	bool eight = false;
	for (size_t i = 0; i < u.len; i++)
		eight |= (unsigned char)buf_ptr(&u)[i] >= 0x80;
	if (!eight) {
		imap_append_astring(out, (struct str){ buf_ptr(&u), u.len });
	} else {
		/* RFC 9051 9: a quoted string may hold UTF-8 (QUOTED-CHAR);
		 * stored names have no CR, LF or NUL (imap_folder_name_check) */
		imap_append_quoted(out, (struct str){ buf_ptr(&u), u.len });
	}
	buf_free(&u);
}
