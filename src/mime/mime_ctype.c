/* mime_ctype.c - Content-Type (RFC 2045 5.1) and Content-Disposition
 * (RFC 2183) values with their parameters, including RFC 2231 continuations,
 * charsets and %-encoding, and the RFC 2047 words MUAs put in filenames. */
#include "mime_int.h"

/* One "name=value" as written. */
struct rawp {
	struct str base;      /* name without "*N*" */
	int section;          /* RFC 2231 section, -1 if none */
	bool ext;             /* trailing '*': %-encoded */
	bool used;
	struct str value;     /* unquoted (backslash pairs undone) */
};

struct pparse {
	struct arena *a;
	const char *p;
	size_t len, i;
	struct rawp raw[MIME_PARAMS_MAX];
	size_t nraw;
	unsigned flags;
};

/* Splits "name*N*" into base, section and extended flag. */
static void name_split(struct rawp *r, struct str name)
{
	r->section = -1;
	r->ext = false;
	if (name.len > 0 && name.p[name.len - 1] == '*') {
		r->ext = true;
		name.len--;
	}
	const char *star = memchr(name.p, '*', name.len);
	if (star != NULL) {
		size_t k = (size_t)(star - name.p) + 1;
		int sec = 0;
		bool digits = k < name.len && name.len - k <= 3;
		for (size_t j = k; digits && j < name.len; j++) {
			if (name.p[j] < '0' || name.p[j] > '9')
				digits = false;
			else
				sec = sec * 10 + (name.p[j] - '0');
		}
		if (digits) {
			r->section = sec;
			name.len = k - 1;
		}
	}
	r->base = name;
}

static bool is_token_end(int c, bool stop_eq)
{
	return c == ';' || c == '(' || c == '"' || mime_is_lwsp(c) || (stop_eq && c == '=');
}

static struct str token(struct pparse *pp, bool stop_eq, bool stop_slash)
{
	size_t s = pp->i;
	while (pp->i < pp->len && !is_token_end((unsigned char)pp->p[pp->i], stop_eq) &&
	       !(stop_slash && pp->p[pp->i] == '/'))
		pp->i++;
	return (struct str){ pp->p + s, pp->i - s };
}

static struct str value(struct pparse *pp)
{
	const char *p = pp->p;
	if (pp->i < pp->len && p[pp->i] == '"') {
		size_t s = ++pp->i;
		while (pp->i < pp->len && p[pp->i] != '"') {
			if (p[pp->i] == '\\' && pp->i + 1 < pp->len)
				pp->i++;
			pp->i++;
		}
		size_t e = pp->i;
		if (pp->i < pp->len)
			pp->i++;
		else
			pp->flags |= MIME_PARAM_BAD_SYNTAX;
		return mime_unquote(pp->a, p + s, e - s);
	}
	/* Lenient: an unquoted value runs to ';' (spaces in filenames). */
	size_t s = pp->i;
	const char *semi = memchr(p + s, ';', pp->len - s);
	pp->i = semi ? (size_t)(semi - p) : pp->len;
	return mime_trim_lwsp((struct str){ p + s, pp->i - s });
}

static void params_scan(struct pparse *pp)
{
	while (pp->i < pp->len) {
		mime_skip_cfws(pp->p, pp->len, &pp->i, NULL);
		if (pp->i >= pp->len)
			break;
		if (pp->p[pp->i] == ';')
			pp->i++;
		else
			pp->flags |= MIME_PARAM_BAD_SYNTAX;   /* missing ';' */
		mime_skip_cfws(pp->p, pp->len, &pp->i, NULL);
		struct str name = token(pp, true, false);
		mime_skip_cfws(pp->p, pp->len, &pp->i, NULL);
		if (name.len == 0) {
			if (pp->i < pp->len && pp->p[pp->i] != ';') {
				pp->flags |= MIME_PARAM_BAD_SYNTAX;
				pp->i++;
			}
			continue;
		}
		struct str v = { pp->p + pp->i, 0 };
		if (pp->i < pp->len && pp->p[pp->i] == '=') {
			pp->i++;
			mime_skip_cfws(pp->p, pp->len, &pp->i, NULL);
			v = value(pp);
		}
		if (pp->nraw == MIME_PARAMS_MAX) {
			pp->flags |= MIME_PARAM_TOO_MANY;
			continue;
		}
		struct rawp *r = &pp->raw[pp->nraw++];
		name_split(r, name);
		r->value = v;
		r->used = false;
	}
}

/* %XX-decodes an RFC 2231 extended value into o. */
static void pct_decode(struct mime_out *o, struct str v)
{
	for (size_t i = 0; i < v.len; i++) {
		int h1, h2;
		if (v.p[i] == '%' && i + 2 < v.len && (h1 = mime_hex((unsigned char)v.p[i + 1])) >= 0 &&
		    (h2 = mime_hex((unsigned char)v.p[i + 2])) >= 0) {
			mime_out_byte(o, (char)(h1 << 4 | h2));
			i += 2;
		} else {
			mime_out_byte(o, v.p[i]);
		}
	}
}

/* charset'lang'text: returns text, sets charset. */
static struct str ext_prefix(struct str v, struct str *charset_r)
{
	const char *q1 = memchr(v.p, '\'', v.len);
	const char *q2 = q1 ? memchr(q1 + 1, '\'', (size_t)(v.p + v.len - q1 - 1)) : NULL;
	if (q2 == NULL) {
		*charset_r = (struct str){ v.p, 0 };
		return v;
	}
	*charset_r = (struct str){ v.p, (size_t)(q1 - v.p) };
	return (struct str){ q2 + 1, (size_t)(v.p + v.len - q2 - 1) };
}

/* Joins the sections 0..n of rp->base (RFC 2231 3). */
static void sections_join(struct pparse *pp, const struct rawp *first, struct mime_param *out)
{
	struct mime_out bytes, raw;
	mime_out_init(&bytes, pp->a, 64);
	mime_out_init(&raw, pp->a, 64);
	struct str charset = { "", 0 };
	int next = 0;
	size_t found = 0, total = 0;
	for (size_t k = 0; k < pp->nraw; k++)
		if (pp->raw[k].section >= 0 && mime_str_case_eq(pp->raw[k].base, first->base))
			total++;
	for (bool progress = true; progress;) {
		progress = false;
		for (size_t k = 0; k < pp->nraw; k++) {
			struct rawp *r = &pp->raw[k];
			if (r->used || r->section != next || !mime_str_case_eq(r->base, first->base))
				continue;
			r->used = true;
			struct str v = r->value;
			mime_out_put(&raw, v.p, v.len);
			if (r->ext && next == 0)
				v = ext_prefix(v, &charset);
			if (r->ext)
				pct_decode(&bytes, v);
			else
				mime_out_put(&bytes, v.p, v.len);
			if (next == 0)
				out->extended = r->ext;
			found++;
			next++;
			progress = true;
			break;
		}
	}
	if (found != total)
		pp->flags |= MIME_PARAM_BAD_2231;
	for (size_t k = 0; k < pp->nraw; k++)   /* stray sections: dropped */
		if (pp->raw[k].section >= 0 && mime_str_case_eq(pp->raw[k].base, first->base))
			pp->raw[k].used = true;
	out->raw = mime_out_str(&raw);
	out->value = mime_charset_to_utf8(pp->a, charset, mime_out_str(&bytes), NULL);
}

static void params_build(struct pparse *pp, struct mime_ctype *r)
{
	r->params = pp->nraw ? arena_alloc(pp->a, pp->nraw * sizeof(*r->params)) : NULL;
	for (size_t k = 0; k < pp->nraw; k++) {
		struct rawp *rp = &pp->raw[k];
		if (rp->used)
			continue;
		struct mime_param *out = &r->params[r->nparams++];
		out->name = rp->base;
		if (rp->section >= 0) {
			sections_join(pp, rp, out);
			continue;
		}
		rp->used = true;
		out->raw = rp->value;
		out->extended = rp->ext;
		if (rp->ext) {
			struct str charset;
			struct mime_out bytes;
			mime_out_init(&bytes, pp->a, rp->value.len);
			pct_decode(&bytes, ext_prefix(rp->value, &charset));
			out->value = mime_charset_to_utf8(pp->a, charset, mime_out_str(&bytes), NULL);
		} else {
			out->value = mime_2047_decode(pp->a, rp->value, NULL);
		}
	}
	r->flags |= pp->flags;
}

static int parse(struct arena *a, struct str v, bool subtype, struct mime_ctype *r)
{
	struct pparse ppbuf, *pp = &ppbuf;   /* raw[] stays uninitialised */
	pp->a = a;
	pp->p = v.p;
	pp->len = v.len;
	pp->i = pp->nraw = 0;
	pp->flags = 0;
	*r = (struct mime_ctype){ .type = { v.p, 0 }, .subtype = { v.p, 0 } };
	int ret = 0;
	mime_skip_cfws(pp->p, pp->len, &pp->i, NULL);
	r->type = token(pp, false, subtype);
	if (subtype) {
		mime_skip_cfws(pp->p, pp->len, &pp->i, NULL);
		if (pp->i < pp->len && pp->p[pp->i] == '/') {
			pp->i++;
			mime_skip_cfws(pp->p, pp->len, &pp->i, NULL);
			r->subtype = token(pp, false, false);
		}
		if (r->subtype.len == 0)
			ret = -1;
	}
	if (r->type.len == 0)
		ret = -1;
	if (ret < 0)
		pp->flags |= MIME_PARAM_BAD_SYNTAX;
	params_scan(pp);
	params_build(pp, r);
	return ret;
}

int mime_ctype_parse(struct arena *a, struct str value, struct mime_ctype *r)
{
	return parse(a, value, true, r);
}

int mime_disposition_parse(struct arena *a, struct str value, struct mime_ctype *r)
{
	return parse(a, value, false, r);
}

const struct mime_param *mime_param_get(const struct mime_ctype *c, const char *name)
{
	const struct mime_param *first = NULL;
	size_t n = strlen(name);
	for (size_t i = 0; i < c->nparams; i++) {
		const struct mime_param *p = &c->params[i];
		if (n != p->name.len || !mime_case_eq(p->name.p, p->name.len, name))
			continue;
		if (p->extended)
			return p;     /* RFC 2231 wins over a plain duplicate */
		if (first == NULL)
			first = p;
	}
	return first;
}
