/* mime_decode.c - Content-Transfer-Encoding decoders (RFC 2045 6.7, 6.8),
 * lenient the way MUAs are, and a part's body as UTF-8 text. */
#include "mime_int.h"

/* base64 alphabet: B64_OK | value; B64_PAD for '=', B64_WSP for
 * whitespace, 0 for anything else. */
#define B64_OK  0x80
#define B64_PAD 0x40
#define B64_WSP 0x20
#define B64_V(v) (B64_OK | (v))

static const unsigned char b64_val[256] = {
	['A'] = B64_V(0), B64_V(1), B64_V(2), B64_V(3), B64_V(4), B64_V(5), B64_V(6),
	B64_V(7), B64_V(8), B64_V(9), B64_V(10), B64_V(11), B64_V(12), B64_V(13), B64_V(14),
	B64_V(15), B64_V(16), B64_V(17), B64_V(18), B64_V(19), B64_V(20), B64_V(21),
	B64_V(22), B64_V(23), B64_V(24), B64_V(25),
	['a'] = B64_V(26), B64_V(27), B64_V(28), B64_V(29), B64_V(30), B64_V(31), B64_V(32),
	B64_V(33), B64_V(34), B64_V(35), B64_V(36), B64_V(37), B64_V(38), B64_V(39),
	B64_V(40), B64_V(41), B64_V(42), B64_V(43), B64_V(44), B64_V(45), B64_V(46),
	B64_V(47), B64_V(48), B64_V(49), B64_V(50), B64_V(51),
	['0'] = B64_V(52), B64_V(53), B64_V(54), B64_V(55), B64_V(56), B64_V(57), B64_V(58),
	B64_V(59), B64_V(60), B64_V(61),
	['+'] = B64_V(62), ['/'] = B64_V(63), ['='] = B64_PAD,
	[' '] = B64_WSP, ['\t'] = B64_WSP, ['\r'] = B64_WSP, ['\n'] = B64_WSP,
};

/* Emits what a partial quantum of n sextets holds (n = 2 or 3). */
static size_t b64_tail(uint32_t acc, unsigned n, char *out)
{
	if (n == 2) {
		out[0] = (char)(acc >> 4);
		return 1;
	}
	if (n == 3) {
		out[0] = (char)(acc >> 10);
		out[1] = (char)(acc >> 2);
		return 2;
	}
	return 0;
}

size_t mime_base64_decode(const char *in, size_t len, char *out, unsigned *flags_r)
{
	const unsigned char *u = (const unsigned char *)in;
	size_t i = 0, o = 0;
	uint32_t acc = 0;
	unsigned n = 0;
	bool bad = false;
	while (i < len) {
		if (n == 0) {
			/* Fast path: whole quanta of alphabet bytes. */
			while (i + 4 <= len) {
				uint32_t a = b64_val[u[i]], b = b64_val[u[i + 1]];
				uint32_t c = b64_val[u[i + 2]], d = b64_val[u[i + 3]];
				if (!(a & b & c & d & B64_OK))
					break;
				uint32_t v = (a & 63) << 18 | (b & 63) << 12 | (c & 63) << 6 | (d & 63);
				out[o] = (char)(v >> 16);
				out[o + 1] = (char)(v >> 8);
				out[o + 2] = (char)v;
				o += 3;
				i += 4;
			}
			if (i >= len)
				break;
		}
		unsigned v = b64_val[u[i++]];
		if (v & B64_OK) {
			acc = acc << 6 | (v & 63);
			if (++n == 4) {
				out[o++] = (char)(acc >> 16);
				out[o++] = (char)(acc >> 8);
				out[o++] = (char)acc;
				n = 0;
				acc = 0;
			}
		} else if (v == B64_PAD) {
			/* End of a quantum; lenient: data may follow (concatenated
			 * base64), as MUAs accept. */
			if (n == 1)
				bad = true;
			o += b64_tail(acc, n, out + o);
			n = 0;
			acc = 0;
		} else if (v == 0) {
			bad = true;
		}
	}
	if (n != 0) {
		bad = true;   /* missing padding or a lone sextet */
		o += b64_tail(acc, n, out + o);
	}
	if (bad && flags_r)
		*flags_r |= MIME_DEC_BAD_BASE64;
	return o;
}

/* After '=' at in[i]: the offset after a soft line break (optional
 * trailing whitespace, then LF, CRLF or the end), or 0 when it is not one. */
static size_t qp_soft_break(const char *in, size_t len, size_t i)
{
	size_t k = i + 1;
	while (k < len && mime_is_wsp((unsigned char)in[k]))
		k++;
	if (k == len)
		return k;
	if (in[k] == '\n')
		return k + 1;
	if (in[k] == '\r' && k + 1 < len && in[k + 1] == '\n')
		return k + 2;
	return 0;
}

size_t mime_qp_decode(const char *in, size_t len, char *out, bool header, unsigned *flags_r)
{
	size_t o = 0, keep = 0;    /* bytes before keep are not trailing whitespace */
	bool bad = false;
	for (size_t i = 0; i < len;) {
		char c = in[i];
		if (c == '=') {
			int h1 = i + 2 < len ? mime_hex((unsigned char)in[i + 1]) : -1;
			int h2 = h1 >= 0 ? mime_hex((unsigned char)in[i + 2]) : -1;
			size_t soft;
			if (h2 >= 0) {
				out[o++] = (char)(h1 << 4 | h2);
				keep = o;
				i += 3;
			} else if (!header && (soft = qp_soft_break(in, len, i)) != 0) {
				while (o > keep && mime_is_wsp((unsigned char)out[o - 1]))
					o--;
				keep = o;
				i = soft;
			} else {
				out[o++] = '=';
				keep = o;
				bad = true;
				i++;
			}
		} else if (c == '\n' && !header) {
			/* Hard line break: drop transport padding (RFC 2045 6.7 (3)). */
			size_t cr = o > keep && out[o - 1] == '\r';
			o -= cr;
			while (o > keep && mime_is_wsp((unsigned char)out[o - 1]))
				o--;
			if (cr)
				out[o++] = '\r';
			out[o++] = '\n';
			keep = o;
			i++;
		} else {
			out[o++] = (header && c == '_') ? ' ' : c;
			i++;
		}
	}
	if (!header)
		while (o > keep && mime_is_wsp((unsigned char)out[o - 1]))
			o--;
	if (bad && flags_r)
		*flags_r |= MIME_DEC_BAD_QP;
	return o;
}

struct str mime_part_decode(struct arena *a, const struct mime_message *m,
			    const struct mime_part *p, unsigned *flags_r)
{
	struct str body = { m->data + p->body_offset, p->body_size };
	char *out;
	switch (p->enc) {
	case MIME_ENC_BASE64:
		out = arena_alloc(a, body.len / 4 * 3 + 4);
		return (struct str){ out, mime_base64_decode(body.p, body.len, out, flags_r) };
	case MIME_ENC_QP:
		out = arena_alloc(a, body.len + 1);
		return (struct str){ out, mime_qp_decode(body.p, body.len, out, false, flags_r) };
	case MIME_ENC_UNKNOWN:
		if (flags_r)
			*flags_r |= MIME_DEC_UNKNOWN_CTE;
		return body;
	default:
		return body;
	}
}

static struct str crlf_to_lf(struct arena *a, struct str s)
{
	if (memchr(s.p, '\r', s.len) == NULL)
		return s;
	char *w = arena_alloc(a, s.len + 1);
	size_t n = 0;
	for (size_t i = 0; i < s.len; i++)
		if (!(s.p[i] == '\r' && i + 1 < s.len && s.p[i + 1] == '\n'))
			w[n++] = s.p[i];
	return (struct str){ w, n };
}

void mime_part_text(struct arena *a, const struct mime_message *m, const struct mime_part *p,
		    struct mime_text *r)
{
	unsigned flags = 0;
	bool html = mime_part_is_type(p, "text", "html");
	struct str body = mime_part_decode(a, m, p, &flags);
	struct str charset = p->charset;
	if (html && charset.len == 0)
		charset = mime_html_meta_charset(body);
	struct str utf8 = mime_charset_to_utf8(a, charset, body, &flags);
	if (html) {
		mime_html_to_text(a, utf8, r);
	} else {
		*r = (struct mime_text){ .text = crlf_to_lf(a, utf8) };
	}
	r->flags |= flags;
}
