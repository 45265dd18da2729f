/* mime_2047.c - RFC 2047 encoded-words in header values to UTF-8.
 * encoded-word = "=?" charset ["*" lang (RFC 2231 5)] "?" B/Q "?" text "?=" */
#include "mime_int.h"

struct word {
	struct str charset;   /* without "*lang" */
	char enc;             /* 'b' or 'q' */
	struct str text;
	size_t end;           /* offset after "?=" */
};

/* Where the encoded text starting at t ends: the '?' of the first "?=", or
 * the first whitespace, or the end. The last answer is cached: a later
 * start inside the scanned range has the same answer, which keeps inputs
 * like "=?a?q?x=?a?q?x..." linear instead of quadratic. */
struct scan {
	size_t from, end;
	bool valid;
};

static size_t text_end(struct str in, size_t t, struct scan *sc)
{
	if (sc->valid && t >= sc->from && t <= sc->end)
		return sc->end;
	size_t i = t;
	while (i < in.len && !mime_is_lwsp((unsigned char)in.p[i]) &&
	       !(in.p[i] == '?' && i + 1 < in.len && in.p[i + 1] == '='))
		i++;
	*sc = (struct scan){ .from = t, .end = i, .valid = true };
	return i;
}

/* Parses the encoded-word starting at in[pos] ("=?"); false if it is not one.
 * No whitespace is allowed anywhere inside (RFC 2047 5). */
static bool word_parse(struct str in, size_t pos, struct word *w, struct scan *sc)
{
	const char *p = in.p;
	size_t i = pos + 2, cs = i;
	while (i < in.len && p[i] != '?' && !mime_is_lwsp((unsigned char)p[i]))
		i++;
	if (i >= in.len || p[i] != '?' || i == cs)
		return false;
	w->charset = (struct str){ p + cs, i - cs };
	const char *star = memchr(w->charset.p, '*', w->charset.len);
	if (star)
		w->charset.len = (size_t)(star - w->charset.p);
	if (i + 2 >= in.len || p[i + 2] != '?')
		return false;
	w->enc = (char)mime_lower((unsigned char)p[i + 1]);
	if (w->enc != 'b' && w->enc != 'q')
		return false;
	size_t t = i + 3;
	size_t e = text_end(in, t, sc);
	if (e + 1 >= in.len || p[e] != '?')
		return false;
	w->text = (struct str){ p + t, e - t };
	w->end = e + 2;
	return true;
}

struct decoder {
	struct arena *a;
	struct mime_out out;       /* the result */
	struct mime_out pend;      /* decoded bytes not yet converted */
	struct str pend_charset;
	unsigned flags;
};

static void pend_flush(struct decoder *d)
{
	if (d->pend.len == 0)
		return;
	struct str u = mime_charset_to_utf8(d->a, d->pend_charset, (struct str){ d->pend.p, d->pend.len },
					    &d->flags);
	mime_out_put(&d->out, u.p, u.len);
	d->pend.len = 0;
}

static void word_decode(struct decoder *d, const struct word *w)
{
	if (d->pend.len > 0 && !mime_str_case_eq(w->charset, d->pend_charset))
		pend_flush(d);
	d->pend_charset = w->charset;
	unsigned f = 0;
	char *o = mime_out_reserve(&d->pend, w->text.len + 4);
	if (w->enc == 'b')
		d->pend.len += mime_base64_decode(w->text.p, w->text.len, o, &f);
	else
		d->pend.len += mime_qp_decode(w->text.p, w->text.len, o, true, &f);
	d->flags |= MIME_DEC_HAS_2047 | (f ? MIME_DEC_BAD_2047 | f : 0);
}

static bool all_lwsp(const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!mime_is_lwsp((unsigned char)p[i]))
			return false;
	return true;
}

struct str mime_2047_decode(struct arena *a, struct str in, unsigned *flags_r)
{
	const char *hit = in.len >= 2 ? memmem(in.p, in.len, "=?", 2) : NULL;
	if (hit == NULL)
		return in;
	struct decoder d = { .a = a };
	struct scan sc = { .valid = false };
	mime_out_init(&d.out, a, in.len + 16);
	mime_out_init(&d.pend, a, in.len + 4);
	size_t text = 0;          /* start of literal text not yet emitted */
	bool after_word = false;  /* text starts right after an encoded-word */
	while (hit != NULL) {
		size_t pos = (size_t)(hit - in.p);
		struct word w;
		if (!word_parse(in, pos, &w, &sc)) {
			d.flags |= MIME_DEC_BAD_2047;
			hit = pos + 2 < in.len ? memmem(hit + 1, in.len - pos - 1, "=?", 2) : NULL;
			continue;
		}
		/* Whitespace between two encoded-words is dropped (RFC 2047 6.2). */
		if (!(after_word && all_lwsp(in.p + text, pos - text))) {
			pend_flush(&d);
			mime_out_put(&d.out, in.p + text, pos - text);
		}
		word_decode(&d, &w);
		text = w.end;
		after_word = true;
		hit = w.end + 1 < in.len ? memmem(in.p + w.end, in.len - w.end, "=?", 2) : NULL;
	}
	pend_flush(&d);
	mime_out_put(&d.out, in.p + text, in.len - text);
	if (flags_r)
		*flags_r |= d.flags;
	return mime_out_str(&d.out);
}
