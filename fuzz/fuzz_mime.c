/* fuzz_mime.c - libFuzzer harness: every src/mime parser on arbitrary bytes,
 * as a whole message (default and tiny limits) and as a single header value.
 * Checks the contract's invariants: part ranges inside the buffer and
 * children inside their parent in order, preorder array = tree, UTF-8 out
 * of UTF-8 in, decoder output within its documented bound. */
#include "mime/mime.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

static void tree_check(const struct mime_message *m, const struct mime_limits *lim)
{
	CHECK(m->nparts >= 1 && m->nparts <= lim->parts_max + (lim->parts_max == 0));
	CHECK(m->root == m->parts[0]);
	for (unsigned i = 0; i < m->nparts; i++) {
		const struct mime_part *p = m->parts[i];
		CHECK(p->index == i && p->depth <= lim->depth_max);
		CHECK(p->hdr.offset + p->hdr.size == p->body_offset);
		CHECK(p->body_offset <= m->len && p->body_size <= m->len - p->body_offset);
		CHECK(p->body_lines <= p->body_size && p->body_vsize >= p->body_size);
		CHECK(p->hdr.count <= lim->header_count_max);
		for (size_t k = 0; k < p->hdr.count; k++) {
			const struct mime_header *h = &p->hdr.v[k];
			CHECK(h->offset >= p->hdr.offset && h->offset + h->size <= p->body_offset);
			CHECK(h->raw.p >= m->data + h->offset &&
			      h->raw.p + h->raw.len <= m->data + h->offset + h->size);
		}
		size_t prev = p->body_offset;
		unsigned n = 0;
		for (const struct mime_part *c = p->children; c; c = c->next, n++) {
			CHECK(c->parent == p && c->depth == p->depth + 1 && c->index > p->index);
			CHECK(c->hdr.offset >= prev);
			CHECK(c->body_offset + c->body_size <= p->body_offset + p->body_size);
			prev = c->body_offset + c->body_size;
		}
		CHECK(n == p->nchildren);
	}
}

static void text_check(struct arena *a, const struct mime_message *m, const struct mime_part *p)
{
	struct mime_text t;
	mime_part_text(a, m, p, &t);
	CHECK(mime_utf8_valid(t.text.p, t.text.len));
	for (size_t i = 0; i < t.nlinks; i++)
		CHECK(t.links[i].text.p >= t.text.p &&
		      t.links[i].text.p + t.links[i].text.len <= t.text.p + t.text.len);
	struct mime_url *urls = NULL;
	size_t n = 0;
	mime_text_urls(a, &t, 50, &urls, &n);
	CHECK(n <= 50);
}

static void value_check(struct arena *a, struct str v)
{
	struct str d = mime_2047_decode(a, v, NULL);
	if (mime_utf8_valid(v.p, v.len))
		CHECK(mime_utf8_valid(d.p, d.len));
	struct mime_addr_list l;
	mime_addr_parse(a, v, &l);
	int open = 0;
	for (size_t i = 0; i < l.count; i++) {
		if (l.v[i].kind == MIME_ADDR_GROUP_START)
			CHECK(open++ == 0);
		else if (l.v[i].kind == MIME_ADDR_GROUP_END)
			CHECK(open-- == 1);
	}
	CHECK(open == 0);
	struct mime_date dt;
	mime_date_parse(v, &dt);
	struct mime_ctype c;
	mime_ctype_parse(a, v, &c);
	CHECK(c.nparams <= MIME_PARAMS_MAX);
	for (size_t i = 0; i < c.nparams; i++)
		CHECK(mime_utf8_valid(c.params[i].value.p, c.params[i].value.len) ||
		      !mime_utf8_valid(v.p, v.len));
	mime_disposition_parse(a, v, &c);
}

static void message_check(struct arena *a, const char *p, size_t len, const struct mime_limits *lim)
{
	struct mime_message m;
	mime_parse(a, p, len, lim, &m);
	tree_check(&m, lim);
	for (unsigned i = 0; i < m.nparts && i < 20; i++) {
		const struct mime_part *part = m.parts[i];
		if (part->children == NULL)
			text_check(a, &m, part);
		for (size_t k = 0; k < part->hdr.count && k < 20; k++)
			value_check(a, part->hdr.v[k].value);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	struct arena *a = arena_new();
	message_check(a, p, size, &mime_limits_default);
	struct mime_limits tiny = { .header_field_max = 40, .header_line_max = 20,
				    .header_count_max = 3, .depth_max = 3, .parts_max = 5 };
	message_check(a, p, size, &tiny);

	struct str v = { p, size };
	value_check(a, v);
	struct mime_text t;
	mime_html_to_text(a, v, &t);
	/* Heap buffers of exactly the documented size, so ASan sees the bound. */
	char *b64 = malloc(size / 4 * 3 + 3), *qp = malloc(size ? size : 1);
	CHECK(mime_base64_decode(p, size, b64, NULL) <= size / 4 * 3 + 3);
	CHECK(mime_qp_decode(p, size, qp, size % 2, NULL) <= size);
	free(b64);
	free(qp);
	struct mime_url u;
	mime_url_parse(v, &u);
	if (size > 0) {
		const char *cs[] = { "utf-8", "iso-8859-1", "koi8-r", "iso-2022-jp", "utf-7", "utf-16" };
		struct str r = mime_charset_to_utf8(a, str_from_cstr(cs[data[0] % 6]),
						    (struct str){ p + 1, size - 1 }, NULL);
		CHECK(mime_utf8_valid(r.p, r.len));
	}
	arena_destroy(&a);
	return 0;
}
