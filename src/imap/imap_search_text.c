/* imap_search_text.c - what SEARCH's string keys match against (RFC 3501
 * 6.4.4: "a substring match, case-insensitive"), as Dovecot and users
 * expect of it:
 *   - header values after RFC 2047 decoding;
 *   - BODY: the text of every text part (text/plain, text/html, ...),
 *     transfer-decoded (base64, quoted-printable), converted to UTF-8
 *     from its charset, HTML made text; non-text parts (images, PDFs) are
 *     not searched;
 *   - TEXT: the header block (raw and decoded) plus BODY.
 * Case is folded for ASCII and for the Latin-1, Latin Extended-A, Greek and
 * Cyrillic letters, so "müller" finds "MÜLLER"; the same folding is applied
 * to the key. Pure, no I/O. */
#include "imap_int.h"
#include "core/arena.h"
#include "mime/mime.h"

#include <string.h>

/* The lower case of a code point in the folded ranges, else cp. */
static uint32_t imap_fold_cp(uint32_t cp)
{
	if ((cp >= 0xC0 && cp <= 0xDE && cp != 0xD7) ||        /* Latin-1 */
	    (cp >= 0x391 && cp <= 0x3AB && cp != 0x3A2) ||     /* Greek */
	    (cp >= 0x410 && cp <= 0x42F))                      /* Cyrillic */
		return cp + 32;
	if (cp >= 0x400 && cp <= 0x40F)
		return cp + 80;
	/* Latin Extended-A: pairs upper/lower, even/odd or odd/even */
	if ((cp >= 0x100 && cp <= 0x12F) || (cp >= 0x132 && cp <= 0x137) || (cp >= 0x14A && cp <= 0x177))
		return cp | 1;
	if ((cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17E))
		return (cp & 1) ? cp + 1 : cp;
	return cp;
}

/* Appends the folded form of one 2-byte UTF-8 sequence at p. */
static void imap_fold_2(struct buf *out, const unsigned char *p)
{
	uint32_t cp = imap_fold_cp(((uint32_t)(p[0] & 0x1F) << 6) | (p[1] & 0x3F));
	char enc[2] = { (char)(0xC0 | (cp >> 6)), (char)(0x80 | (cp & 0x3F)) };
	buf_append(out, enc, 2);
}

void imap_fold(struct buf *out, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	char *w = buf_reserve(out, len);
	size_t n = 0, i = 0;
	/* the ASCII run (most of any mail) is folded in place */
	while (i < len && p[i] < 0x80) {
		w[n++] = (char)(p[i] >= 'A' && p[i] <= 'Z' ? p[i] + 32 : p[i]);
		i++;
	}
	buf_commit(out, n);
	for (; i < len; i++) {
		if (p[i] >= 0xC2 && p[i] <= 0xDF && i + 1 < len && (p[i + 1] & 0xC0) == 0x80) {
			imap_fold_2(out, p + i);
			i++;
		} else {
			char c = (char)(p[i] >= 'A' && p[i] <= 'Z' ? p[i] + 32 : p[i]);
			buf_append(out, &c, 1);
		}
	}
}

/* Every header field, raw and (where encoded) decoded. */
static void imap_text_headers(struct buf *out, struct arena *a, const struct mime_headers *h,
			      const char *msg)
{
	imap_fold(out, msg + h->offset, h->size);
	for (size_t i = 0; i < h->count; i++) {
		struct str v = h->v[i].value;
		if (memmem(v.p, v.len, "=?", 2) == NULL)
			continue;
		struct str d = mime_2047_decode(a, v, NULL);
		buf_append(out, "\n", 1);
		imap_fold(out, d.p, d.len);
	}
}

void imap_search_text(struct buf *hdr, struct buf *body, const char *msg, size_t len)
{
	struct arena *a = arena_new();
	struct mime_message mm;
	mime_parse(a, msg, len, NULL, &mm);
	imap_text_headers(hdr, a, &mm.root->hdr, msg);
	for (unsigned i = 0; i < mm.nparts; i++) {
		const struct mime_part *p = mm.parts[i];
		if (i > 0 && p->parent != NULL && mime_part_is_type(p->parent, "message", NULL))
			imap_text_headers(hdr, a, &p->hdr, msg);    /* an attached message's header */
		if (p->nchildren > 0 || !mime_part_is_type(p, "text", NULL))
			continue;
		struct mime_text t;
		mime_part_text(a, &mm, p, &t);
		buf_append(body, "\n", 1);
		imap_fold(body, t.text.p, t.text.len);
	}
	arena_destroy(&a);
}
