/* mime_charset.c - text in a declared charset to UTF-8. The charsets of most
 * mail (UTF-8, ASCII, Latin-1/Windows-1252) are converted here without
 * iconv; everything else goes through iconv(3), opened per call (glibc keeps
 * its conversion modules loaded, so that costs about a microsecond). */
#include "mime_int.h"

#include <errno.h>
#include <iconv.h>

enum cs_kind { CS_UTF8, CS_ASCII, CS_1252, CS_UNKNOWN, CS_ICONV };

/* Windows-1252 0x80-0x9f (WHATWG index; the five holes map to C1 controls). */
static const uint16_t cp1252_c1[32] = {
	0x20ac, 0x0081, 0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021,
	0x02c6, 0x2030, 0x0160, 0x2039, 0x0152, 0x008d, 0x017d, 0x008f,
	0x0090, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014,
	0x02dc, 0x2122, 0x0161, 0x203a, 0x0153, 0x009d, 0x017e, 0x0178,
};

static const struct { const char *name; enum cs_kind kind; const char *iconv; } cs_names[] = {
	{ "utf-8", CS_UTF8, NULL }, { "utf8", CS_UTF8, NULL },
	{ "unicode-1-1-utf-8", CS_UTF8, NULL }, { "x-unicode20utf8", CS_UTF8, NULL },
	{ "us-ascii", CS_ASCII, NULL }, { "ascii", CS_ASCII, NULL }, { "us", CS_ASCII, NULL },
	{ "ansi_x3.4-1968", CS_ASCII, NULL }, { "iso646-us", CS_ASCII, NULL },
	{ "iso-8859-1", CS_1252, NULL }, { "iso8859-1", CS_1252, NULL },
	{ "iso_8859-1", CS_1252, NULL }, { "iso-8859-1:1987", CS_1252, NULL },
	{ "latin1", CS_1252, NULL }, { "latin-1", CS_1252, NULL }, { "l1", CS_1252, NULL },
	{ "cp819", CS_1252, NULL }, { "windows-1252", CS_1252, NULL },
	{ "cp1252", CS_1252, NULL }, { "x-cp1252", CS_1252, NULL },
	{ "unknown-8bit", CS_UNKNOWN, NULL }, { "x-unknown", CS_UNKNOWN, NULL },
	{ "unknown", CS_UNKNOWN, NULL }, { "x-user-defined", CS_UNKNOWN, NULL },
	{ "default", CS_UNKNOWN, NULL }, { "8bit", CS_UNKNOWN, NULL },
	/* Labels whose real content is a superset (WHATWG, MUAs). */
	{ "gb2312", CS_ICONV, "GB18030" }, { "gbk", CS_ICONV, "GB18030" },
	{ "x-gbk", CS_ICONV, "GB18030" }, { "cp936", CS_ICONV, "GB18030" },
	{ "euc-cn", CS_ICONV, "GB18030" }, { "ks_c_5601-1987", CS_ICONV, "CP949" },
	{ "ks_c_5601", CS_ICONV, "CP949" }, { "euc-kr", CS_ICONV, "CP949" },
	{ "iso-8859-8-i", CS_ICONV, "ISO-8859-8" }, { "shift_jis", CS_ICONV, "CP932" },
	{ "x-sjis", CS_ICONV, "CP932" }, { "sjis", CS_ICONV, "CP932" },
	{ "tis-620", CS_ICONV, "CP874" }, { "iso-8859-11", CS_ICONV, "CP874" },
};

/* Charsets where ASCII bytes do not stand for themselves. */
static const char *const not_ascii_compat[] = { "utf-7", "utf7", "utf-16", "utf16", "utf-32",
						 "utf32", "ucs", "iso-2022", "hz", "unicode" };

static bool is_ascii(const char *p, size_t len)
{
	uint64_t acc = 0;
	size_t i = 0;
	for (; i + 8 <= len; i += 8) {
		uint64_t w;
		memcpy(&w, p + i, 8);
		acc |= w;
	}
	for (; i < len; i++)
		acc |= (unsigned char)p[i];
	return (acc & 0x8080808080808080ull) == 0;
}

/* Length of the valid UTF-8 sequence at p, or 0 (RFC 3629 table 4). */
static size_t utf8_seq(const unsigned char *p, size_t left)
{
	unsigned char c = p[0];
	if (c < 0x80)
		return 1;
	size_t n;
	unsigned char lo = 0x80, hi = 0xbf;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else
		return 0;
	if (left < n || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

bool mime_utf8_valid(const char *p, size_t len)
{
	const unsigned char *u = (const unsigned char *)p;
	size_t i = 0;
	while (i < len) {
		if (u[i] < 0x80) {
			/* ASCII runs eight bytes at a time. */
			uint64_t w;
			while (i + 8 <= len && (memcpy(&w, u + i, 8), (w & 0x8080808080808080ull) == 0))
				i += 8;
			while (i < len && u[i] < 0x80)
				i++;
			continue;
		}
		size_t n = utf8_seq(u + i, len - i);
		if (n == 0)
			return false;
		i += n;
	}
	return true;
}

bool mime_utf8_repair(struct mime_out *o, const char *p, size_t len)
{
	const unsigned char *u = (const unsigned char *)p;
	bool bad = false;
	size_t i = 0, run = 0;
	mime_out_reserve(o, len);
	while (i < len) {
		size_t n = u[i] < 0x80 ? 1 : utf8_seq(u + i, len - i);
		if (n > 0) {
			i += n;
			continue;
		}
		mime_out_put(o, p + run, i - run);
		mime_out_utf8(o, 0xfffd);
		bad = true;
		run = ++i;
	}
	mime_out_put(o, p + run, len - run);
	return bad;
}

static void cp1252_convert(struct mime_out *o, const char *p, size_t len)
{
	size_t run = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c < 0x80)
			continue;
		mime_out_put(o, p + run, i - run);
		mime_out_utf8(o, c < 0xa0 ? cp1252_c1[c - 0x80] : c);
		run = i + 1;
	}
	mime_out_put(o, p + run, len - run);
}

/* Lower-cases a charset label into buf; false when it is too long or has
 * bytes no charset name has (so iconv never sees "//TRANSLIT" and such). */
static bool cs_normalize(struct str cs, char *buf, size_t size)
{
	cs = mime_trim_lwsp(cs);
	if (cs.len >= size)
		return false;
	for (size_t i = 0; i < cs.len; i++) {
		int c = mime_lower((unsigned char)cs.p[i]);
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		      c == '.' || c == ':' || c == '+' || c == '(' || c == ')'))
			return false;
		buf[i] = (char)c;
	}
	buf[cs.len] = '\0';
	return true;
}

static enum cs_kind cs_lookup(const char *name, const char **iconv_name_r)
{
	*iconv_name_r = name;
	if (name[0] == '\0')
		return CS_ASCII;
	for (size_t i = 0; i < sizeof(cs_names) / sizeof(cs_names[0]); i++)
		if (strcmp(name, cs_names[i].name) == 0) {
			if (cs_names[i].iconv)
				*iconv_name_r = cs_names[i].iconv;
			return cs_names[i].kind;
		}
	return CS_ICONV;
}

static bool ascii_compatible(const char *name)
{
	for (size_t i = 0; i < sizeof(not_ascii_compat) / sizeof(not_ascii_compat[0]); i++)
		if (strncmp(name, not_ascii_compat[i], strlen(not_ascii_compat[i])) == 0)
			return false;
	return true;
}

bool mime_charset_known(struct str charset)
{
	char name[64];
	const char *iname = name;
	if (!cs_normalize(charset, name, sizeof(name)))
		return false;
	enum cs_kind kind = cs_lookup(name, &iname);
	if (kind != CS_ICONV)
		return kind != CS_UNKNOWN;
	iconv_t cd = iconv_open("UTF-8", iname);
	if (cd == (iconv_t)-1)
		return false;
	iconv_close(cd);
	return true;
}

/* iconv with every invalid or truncated sequence replaced by U+FFFD. */
static bool iconv_convert(iconv_t cd, struct mime_out *o, const char *p, size_t len)
{
	char *in = (char *)p;
	size_t inleft = len;
	bool bad = false, flushing = false;
	for (;;) {
		mime_out_reserve(o, inleft * 2 + 16);
		char *out = o->p + o->len;
		size_t outleft = o->cap - o->len;
		size_t r = flushing ? iconv(cd, NULL, NULL, &out, &outleft) :
			iconv(cd, &in, &inleft, &out, &outleft);
		o->len = (size_t)(out - o->p);
		if (r != (size_t)-1) {
			if (flushing)
				break;
			flushing = true;
			continue;
		}
		if (errno == E2BIG)
			mime_out_reserve(o, o->cap);
		else if (errno == EILSEQ && !flushing && inleft > 0) {
			mime_out_utf8(o, 0xfffd);
			bad = true;
			in++;
			inleft--;
		} else {
			/* EINVAL: a sequence cut at the end. */
			if (!flushing)
				mime_out_utf8(o, 0xfffd);
			bad = true;
			if (flushing)
				break;
			inleft = 0;
			flushing = true;
		}
	}
	return bad;
}

struct str mime_charset_to_utf8(struct arena *a, struct str charset, struct str in,
				unsigned *flags_r)
{
	unsigned flags = 0;
	char name[64];
	const char *iname = name;
	enum cs_kind kind = cs_normalize(charset, name, sizeof(name)) ? cs_lookup(name, &iname) :
		CS_UNKNOWN;
	if (kind != CS_UNKNOWN && (kind != CS_ICONV || ascii_compatible(name)) &&
	    is_ascii(in.p, in.len))
		return in;
	iconv_t cd = (iconv_t)-1;
	if (kind == CS_ICONV) {
		cd = iconv_open("UTF-8", iname);
		if (cd == (iconv_t)-1)
			kind = CS_UNKNOWN;
	}
	if (kind == CS_UNKNOWN)
		flags |= MIME_DEC_UNKNOWN_CHARSET;
	if (kind != CS_ICONV && kind != CS_1252 && mime_utf8_valid(in.p, in.len)) {
		if (flags_r)
			*flags_r |= flags;
		return in;
	}
	struct mime_out o;
	mime_out_init(&o, a, in.len + in.len / 2 + 16);
	if (kind == CS_UTF8 || kind == CS_UNKNOWN) {
		mime_utf8_repair(&o, in.p, in.len);
		if (kind == CS_UTF8)
			flags |= MIME_DEC_BAD_CHARSET;
	} else if (kind == CS_ASCII || kind == CS_1252) {
		/* 8-bit "us-ascii" is nearly always Latin-1 (WHATWG agrees). */
		cp1252_convert(&o, in.p, in.len);
	} else {
		if (iconv_convert(cd, &o, in.p, in.len))
			flags |= MIME_DEC_BAD_CHARSET;
		iconv_close(cd);
	}
	if (flags_r)
		*flags_r |= flags;
	return mime_out_str(&o);
}
