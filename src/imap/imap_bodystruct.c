/* imap_bodystruct.c - ENVELOPE and BODY/BODYSTRUCTURE (RFC 3501 7.4.2)
 * from src/mime's part tree: pure, no I/O (fuzzed with the parser).
 * Sizes are what IMAP sends: CRLF line ends (the part's body_vsize), and
 * "lines" is the number of line ends of the body. */
#include "imap.h"
#include "mime/mime.h"

#include <string.h>

static void imap_nstring(struct buf *b, const struct str *s)
{
	if (s == NULL)
		buf_append_str(b, "NIL");
	else
		imap_append_string(b, *s);
}

static void imap_nstring_nonempty(struct buf *b, struct str s)
{
	imap_nstring(b, s.len ? &s : NULL);
}

static void imap_env_field(struct buf *b, const struct mime_headers *h, const char *name)
{
	const struct mime_header *f = mime_headers_get(h, name);
	imap_nstring(b, f ? &f->value : NULL);
}

/* RFC 3501 7.4.2: address = "(" addr-name SP addr-adl SP addr-mailbox SP
 * addr-host ")"; groups as (NIL NIL "name" NIL) ... (NIL NIL NIL NIL). */
static void imap_env_addrs(struct buf *b, struct arena *a, const struct mime_headers *h,
			   const char *name, const char *fallback)
{
	const struct mime_header *f = mime_headers_get(h, name);
	if (f == NULL && fallback != NULL)
		f = mime_headers_get(h, fallback);
	struct mime_addr_list l = { 0 };
	if (f != NULL)
		mime_addr_parse(a, f->value, &l);
	if (l.count == 0) {
		buf_append_str(b, "NIL");
		return;
	}
	buf_append_str(b, "(");
	for (size_t i = 0; i < l.count; i++) {
		const struct mime_addr *ad = &l.v[i];
		if (ad->kind == MIME_ADDR_GROUP_START) {
			buf_append_str(b, "(NIL NIL ");
			imap_append_string(b, ad->name_raw);
			buf_append_str(b, " NIL)");
		} else if (ad->kind == MIME_ADDR_GROUP_END) {
			buf_append_str(b, "(NIL NIL NIL NIL)");
		} else {
			buf_append_str(b, "(");
			imap_nstring_nonempty(b, ad->name_raw);
			buf_append_str(b, " ");
			imap_nstring_nonempty(b, ad->route);
			buf_append_str(b, " ");
			imap_append_string(b, ad->local);
			buf_append_str(b, " ");
			imap_append_string(b, ad->domain);
			buf_append_str(b, ")");
		}
	}
	buf_append_str(b, ")");
}

void imap_envelope(struct buf *b, struct arena *a, const struct mime_headers *h)
{
	buf_append_str(b, "(");
	imap_env_field(b, h, "Date");
	buf_append_str(b, " ");
	imap_env_field(b, h, "Subject");
	static const char *const addrs[] = { "From", "Sender", "Reply-To", "To", "Cc", "Bcc" };
	size_t from = 0, from_len = 0;
	for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
		buf_append_str(b, " ");
		/* Sender and Reply-To default to From (RFC 3501 7.4.2): its
		 * rendering is copied, not parsed again */
		if ((i == 1 || i == 2) && mime_headers_get(h, addrs[i]) == NULL) {
			buf_reserve(b, from_len);      /* b may move: copy after */
			buf_append(b, b->data + b->off + from, from_len);
			continue;
		}
		size_t start = b->len;
		imap_env_addrs(b, a, h, addrs[i], NULL);
		if (i == 0) {
			from = start;
			from_len = b->len - start;
		}
	}
	buf_append_str(b, " ");
	imap_env_field(b, h, "In-Reply-To");
	buf_append_str(b, " ");
	imap_env_field(b, h, "Message-ID");
	buf_append_str(b, ")");
}

/* body-fld-param: ("name" "value" ...) or NIL; RFC 2231 values as sent. */
static void imap_params(struct buf *b, const struct mime_ctype *c)
{
	if (c->nparams == 0) {
		buf_append_str(b, "NIL");
		return;
	}
	buf_append_str(b, "(");
	for (size_t i = 0; i < c->nparams; i++) {
		const struct mime_param *p = &c->params[i];
		if (i > 0)
			buf_append_str(b, " ");
		if (p->extended) {
			struct buf n = { 0 };
			buf_printf(&n, "%.*s*", STR_FMT(p->name));
			imap_append_string(b, (struct str){ buf_ptr(&n), n.len });
			buf_free(&n);
		} else {
			imap_append_string(b, p->name);
		}
		buf_append_str(b, " ");
		imap_append_string(b, p->raw);
	}
	buf_append_str(b, ")");
}

/* body-ext-1part / body-ext-mpart after md5 or params: disposition,
 * language, location. */
static void imap_ext_tail(struct buf *b, const struct mime_part *p)
{
	buf_append_str(b, " ");
	if (p->disp.type.len) {
		buf_append_str(b, "(");
		imap_append_string(b, p->disp.type);
		buf_append_str(b, " ");
		imap_params(b, &p->disp);
		buf_append_str(b, ")");
	} else {
		buf_append_str(b, "NIL");
	}
	buf_append_str(b, " ");
	imap_nstring_nonempty(b, p->language);
	buf_append_str(b, " ");
	imap_nstring_nonempty(b, p->location);
}

static bool imap_is(const struct mime_part *p, const char *type)
{
	return str_case_eq(p->ctype.type, type);
}

static void imap_body_leaf(struct buf *b, struct arena *a, const struct mime_part *p, bool ext,
			   unsigned depth);

static void imap_body_part(struct buf *b, struct arena *a, const struct mime_part *p, bool ext,
			   unsigned depth)
{
	if (!imap_is(p, "multipart") || depth > MIME_DEPTH_MAX + 2) {
		imap_body_leaf(b, a, p, ext, depth);
		return;
	}
	buf_append_str(b, "(");
	if (p->children == NULL)        /* no parts found: invent one, as Dovecot */
		buf_append_str(b, "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)");
	for (const struct mime_part *c = p->children; c != NULL; c = c->next)
		imap_body_part(b, a, c, ext, depth + 1);
	buf_append_str(b, " ");
	imap_append_string(b, p->ctype.subtype);
	if (ext) {
		buf_append_str(b, " ");
		imap_params(b, &p->ctype);
		imap_ext_tail(b, p);
	}
	buf_append_str(b, ")");
}

static void imap_body_leaf(struct buf *b, struct arena *a, const struct mime_part *p, bool ext,
			   unsigned depth)
{
	buf_append_str(b, "(");
	/* RFC 2045 5.2: no Content-Type is text/plain; charset=us-ascii. */
	if (p->ctype.type.len == 0 || p->ctype.subtype.len == 0 ||
	    (mime_headers_get(&p->hdr, "Content-Type") == NULL && imap_is(p, "text"))) {
		buf_append_str(b, "\"text\" \"plain\" (\"charset\" \"us-ascii\")");
	} else {
		imap_append_string(b, p->ctype.type);
		buf_append_str(b, " ");
		imap_append_string(b, p->ctype.subtype);
		buf_append_str(b, " ");
		imap_params(b, &p->ctype);
	}
	buf_append_str(b, " ");
	imap_nstring_nonempty(b, p->id);
	buf_append_str(b, " ");
	imap_nstring_nonempty(b, p->description);
	buf_append_str(b, " ");
	imap_append_string(b, p->enc_raw.len ? p->enc_raw : STR_LIT("7bit"));
	buf_append_num(b, " ", p->body_vsize);
	if (imap_is(p, "message") && p->children != NULL &&
	    (str_case_eq(p->ctype.subtype, "rfc822") || str_case_eq(p->ctype.subtype, "global"))) {
		/* RFC 3501 7.4.2: envelope, body and lines of the message */
		buf_append_str(b, " ");
		imap_envelope(b, a, &p->children->hdr);
		buf_append_str(b, " ");
		imap_body_part(b, a, p->children, ext, depth + 1);
		buf_append_num(b, " ", p->body_lines);
	} else if (imap_is(p, "text") || p->ctype.type.len == 0) {
		buf_append_num(b, " ", p->body_lines);
	}
	if (ext) {
		buf_append_str(b, " ");
		imap_nstring_nonempty(b, p->md5);
		imap_ext_tail(b, p);
	}
	buf_append_str(b, ")");
}

void imap_bodystructure(struct buf *b, struct arena *a, const struct mime_message *m, bool ext)
{
	imap_body_part(b, a, m->root, ext, 0);
}
