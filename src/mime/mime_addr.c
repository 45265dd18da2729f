/* mime_addr.c - RFC 5322 3.4 address lists: mailboxes, groups, comments,
 * quoted strings, angle-addr with obsolete routes (4.4), and the common
 * garbage around them. Entries are split first (top-level ',' ';' and a
 * group's ':'), then each is taken apart; nothing here fails. */
#include "mime_int.h"

struct aparse {
	struct arena *a;
	const char *p;
	size_t len;
	struct mime_addr_list *r;
	size_t cap;
};

/* Skips a quoted string or comment starting at p[i]; returns the offset
 * after it (or len if unclosed, then *bad is set). */
static size_t skip_special(const char *p, size_t len, size_t i, bool *bad)
{
	if (p[i] == '"') {
		for (i++; i < len; i++) {
			if (p[i] == '\\' && i + 1 < len)
				i++;
			else if (p[i] == '"')
				return i + 1;
		}
		*bad = true;
		return len;
	}
	size_t k = i;
	mime_skip_cfws(p, len, &k, NULL);
	if (k == len && (len == 0 || p[len - 1] != ')'))
		*bad = true;
	return k;
}

/* Offset of the first top-level c in p[s, e), or e. */
static size_t find_top(const char *p, size_t s, size_t e, char c, bool *bad)
{
	while (s < e) {
		if (p[s] == c)
			return s;
		if (p[s] == '"' || p[s] == '(')
			s = skip_special(p, e, s, bad);
		else
			s++;
	}
	return e;
}

static size_t find_last_at(const char *p, size_t s, size_t e, bool *bad)
{
	size_t at = e;
	while (s < e) {
		if (p[s] == '@')
			at = s;
		if (p[s] == '"' || p[s] == '(')
			s = skip_special(p, e, s, bad);
		else
			s++;
	}
	return at;
}

/* Text of p[s, e) with comments dropped and quoted strings unquoted. In a
 * phrase, words keep one space where the source had whitespace or a
 * comment; in an address nothing separates them. A view when nothing needs
 * to change. comment_r (may be NULL) gets the last comment. */
static struct str clean(struct aparse *ap, size_t s, size_t e, bool phrase, struct str *comment_r)
{
	struct str t = mime_trim_lwsp((struct str){ ap->p + s, e - s });
	bool simple = true;
	for (size_t i = 0; i < t.len && simple; i++) {
		char c = t.p[i];
		if (c == '"' || c == '(' || c == '\\' || c == '\r' || c == '\n' || c == '\t')
			simple = false;
		else if (c == ' ' && (!phrase || t.p[i + 1] == ' '))
			simple = false;
	}
	if (simple)
		return t;
	struct mime_out o;
	mime_out_init(&o, ap->a, t.len);
	const char *p = t.p;
	bool sep = false, bad = false;
	for (size_t i = 0; i < t.len;) {
		char c = p[i];
		if (mime_is_lwsp((unsigned char)c) || c == '(') {
			mime_skip_cfws(p, t.len, &i, comment_r);
			sep = true;
			continue;
		}
		if (sep && phrase && o.len > 0)
			mime_out_byte(&o, ' ');
		sep = false;
		if (c == '"') {
			size_t k = skip_special(p, t.len, i, &bad);
			size_t end = (k > i + 1 && p[k - 1] == '"') ? k - 1 : k;
			struct str u = mime_unquote(ap->a, p + i + 1, end - i - 1);
			mime_out_put(&o, u.p, u.len);
			i = k;
		} else {
			mime_out_byte(&o, c);
			i++;
		}
	}
	return mime_out_str(&o);
}

static struct mime_addr *entry_new(struct aparse *ap, enum mime_addr_kind kind, size_t s, size_t e)
{
	struct mime_addr_list *r = ap->r;
	if (r->count == ap->cap) {
		size_t ncap = ap->cap ? ap->cap * 2 : 4;
		struct mime_addr *v = arena_alloc(ap->a, ncap * sizeof(*v));
		if (r->count)
			memcpy(v, r->v, r->count * sizeof(*v));
		r->v = v;
		ap->cap = ncap;
	}
	struct mime_addr *ad = &r->v[r->count++];
	*ad = (struct mime_addr){ .kind = kind };
	ad->raw = mime_trim_lwsp((struct str){ ap->p + s, e - s });
	ad->name = ad->name_raw = ad->route = ad->local = ad->domain = ad->addr =
		(struct str){ ap->p + s, 0 };
	return ad;
}

static void name_set(struct aparse *ap, struct mime_addr *ad, struct str name_raw)
{
	ad->name_raw = name_raw;
	ad->name = mime_2047_decode(ap->a, name_raw, NULL);
}

/* addr-spec in p[s, e): local "@" domain, split at the last '@'. */
static void addr_spec(struct aparse *ap, struct mime_addr *ad, size_t s, size_t e)
{
	bool bad = false;
	size_t at = find_last_at(ap->p, s, e, &bad);
	ad->local = clean(ap, s, at, false, NULL);
	if (at < e)
		ad->domain = clean(ap, at + 1, e, false, NULL);
	if (ad->local.len == 0)
		ad->flags |= MIME_ADDR_NO_LOCAL;
	if (ad->domain.len == 0) {
		ad->flags |= MIME_ADDR_NO_DOMAIN;
		ad->addr = ad->local;
	} else if (ad->local.p + ad->local.len + 1 == ad->domain.p &&
		   ad->local.p[ad->local.len] == '@') {
		ad->addr = (struct str){ ad->local.p, ad->local.len + 1 + ad->domain.len };
	} else {
		struct mime_out o;
		mime_out_init(&o, ap->a, ad->local.len + ad->domain.len + 1);
		mime_out_put(&o, ad->local.p, ad->local.len);
		mime_out_byte(&o, '@');
		mime_out_put(&o, ad->domain.p, ad->domain.len);
		ad->addr = mime_out_str(&o);
	}
	if (bad)
		ad->flags |= MIME_ADDR_BAD_SYNTAX;
}

/* "phrase <[route:]addr-spec> [garbage]" */
static void angle_addr(struct aparse *ap, struct mime_addr *ad, size_t s, size_t lt, size_t e)
{
	const char *p = ap->p;
	bool bad = false;
	size_t gt = find_top(p, lt + 1, e, '>', &bad);
	if (gt == e)
		bad = true;
	struct str comment = { NULL, 0 };
	name_set(ap, ad, clean(ap, s, lt, true, &comment));
	size_t k = gt < e ? gt + 1 : e;
	struct str after = { NULL, 0 };
	mime_skip_cfws(p, e, &k, &after);
	if (k < e)
		bad = true;   /* text after '>' */
	if (ad->name_raw.len == 0 && (after.len > 0 || comment.len > 0)) {
		name_set(ap, ad, after.len > 0 ? after : comment);
		ad->flags |= MIME_ADDR_NAME_FROM_COMMENT;
	}
	size_t as = lt + 1;
	mime_skip_cfws(p, gt, &as, NULL);
	if (as < gt && p[as] == '@') {
		/* obs-route (RFC 5322 4.4): "@a,@b:" */
		size_t colon = find_top(p, as, gt, ':', &bad);
		ad->route = mime_trim_lwsp((struct str){ p + as, colon - as });
		as = colon < gt ? colon + 1 : gt;
	}
	addr_spec(ap, ad, as, gt);
	if (bad)
		ad->flags |= MIME_ADDR_BAD_SYNTAX;
}

/* No '<': an addr-spec with comments, or "Name user@host" garbage. */
static void bare_addr(struct aparse *ap, struct mime_addr *ad, size_t s, size_t e)
{
	const char *p = ap->p;
	struct str comment = { NULL, 0 };
	bool bad = false;
	size_t at = find_last_at(p, s, e, &bad);
	/* The last whitespace-separated word holding the '@' is the address
	 * when words without '@' precede it. */
	size_t w = at;
	while (at < e && w > s && !mime_is_lwsp((unsigned char)p[w - 1]) && p[w - 1] != ')' &&
	       p[w - 1] != '"')
		w--;
	struct str before = mime_trim_lwsp((struct str){ p + s, w - s });
	if (at < e && w > s && w < at && before.len > 0 && find_last_at(p, s, w, &bad) == w &&
	    before.p[before.len - 1] != ')' && before.p[before.len - 1] != '.') {
		name_set(ap, ad, clean(ap, s, w, true, NULL));
		addr_spec(ap, ad, w, e);
		ad->flags |= MIME_ADDR_BAD_SYNTAX;
		return;
	}
	clean(ap, s, e, false, &comment);
	addr_spec(ap, ad, s, e);
	if (comment.len > 0) {
		name_set(ap, ad, comment);
		ad->flags |= MIME_ADDR_NAME_FROM_COMMENT;
	}
	if (bad)
		ad->flags |= MIME_ADDR_BAD_SYNTAX;
}

/* End of the entry starting at s: a top-level ',' or ';', or for a group a
 * ':' before any '<' or '@'. *colon_r tells which. */
static size_t entry_end(struct aparse *ap, size_t s, bool in_group, bool *colon_r, bool *bad)
{
	const char *p = ap->p;
	int angle = 0;
	bool seen = false;   /* '<' or '@' at top level */
	*colon_r = false;
	while (s < ap->len) {
		char c = p[s];
		if (c == '"' || c == '(') {
			s = skip_special(p, ap->len, s, bad);
			continue;
		}
		if (c == '<') {
			angle++;
			seen = true;
		} else if (c == '>' && angle > 0) {
			angle--;
		} else if (c == '@') {
			seen = true;
		} else if (angle == 0 && (c == ',' || c == ';')) {
			return s;
		} else if (angle == 0 && c == ':' && !seen && !in_group) {
			*colon_r = true;
			return s;
		}
		s++;
	}
	return s;
}

void mime_addr_parse(struct arena *a, struct str value, struct mime_addr_list *r)
{
	struct aparse ap = { .a = a, .p = value.p, .len = value.len, .r = r };
	*r = (struct mime_addr_list){ 0 };
	bool in_group = false;
	size_t i = 0;
	while (i < ap.len) {
		char c = ap.p[i];
		if (mime_is_lwsp((unsigned char)c) || c == ',') {
			i++;
			continue;
		}
		if (c == ';') {
			if (in_group)
				entry_new(&ap, MIME_ADDR_GROUP_END, i, i);
			in_group = false;
			i++;
			continue;
		}
		bool colon, bad = false;
		size_t e = entry_end(&ap, i, in_group, &colon, &bad);
		if (colon) {
			struct mime_addr *g = entry_new(&ap, MIME_ADDR_GROUP_START, i, e);
			name_set(&ap, g, clean(&ap, i, e, true, NULL));
			in_group = true;
			i = e + 1;
			continue;
		}
		struct mime_addr *ad = entry_new(&ap, MIME_ADDR_MAILBOX, i, e);
		size_t lt = find_top(ap.p, i, e, '<', &bad);
		if (lt < e)
			angle_addr(&ap, ad, i, lt, e);
		else
			bare_addr(&ap, ad, i, e);
		if (bad)
			ad->flags |= MIME_ADDR_BAD_SYNTAX;
		if (ad->local.len == 0 && ad->domain.len == 0 && ad->raw.len > 0 &&
		    ad->raw.p[0] == '(' && memchr(ad->raw.p, '<', ad->raw.len) == NULL) {
			r->count--;    /* a lone comment is not an address */
			i = e;
			continue;
		}
		r->flags |= ad->flags;
		i = e;
	}
	if (in_group) {
		entry_new(&ap, MIME_ADDR_GROUP_END, ap.len, ap.len);
		r->flags |= MIME_ADDR_GROUP_UNCLOSED;
	}
}
