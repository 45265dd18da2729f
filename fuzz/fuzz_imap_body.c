/* fuzz_imap_body.c - libFuzzer harness: ENVELOPE, BODY and BODYSTRUCTURE
 * generation and body section rendering (imap_bodystruct.c,
 * imap_fetch_parse.c) and the decoded, folded text SEARCH matches
 * (imap_search_text.c) over arbitrary messages parsed by src/mime. The
 * output must be balanced: every "(" closed, outside quoted strings and
 * literals. */
#include "imap/imap_int.h"
#include "core/arena.h"
#include "mime/mime.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Parentheses balance outside "..." and {n}\r\n literals. */
static void check_balanced(const struct buf *b)
{
	const char *p = buf_ptr(b);
	long depth = 0;
	for (size_t i = 0; i < b->len; i++) {
		if (p[i] == '"') {
			for (i++; i < b->len && p[i] != '"'; i++)
				if (p[i] == '\\')
					i++;
		} else if (p[i] == '{') {
			size_t n = strtoul(p + i + 1, NULL, 10);
			const char *e = memchr(p + i, '\n', b->len - i);
			if (e == NULL)
				__builtin_trap();
			i = (size_t)(e - p) + n;
		} else if (p[i] == '(') {
			depth++;
		} else if (p[i] == ')' && --depth < 0) {
			__builtin_trap();
		}
	}
	if (depth != 0)
		__builtin_trap();
}

static const char *const sections[] = {
	"BODY[]", "BODY[HEADER]", "BODY[TEXT]", "BODY[1]", "BODY[1.MIME]", "BODY[2.1.HEADER]",
	"BODY[1.2.3.TEXT]", "BODY[HEADER.FIELDS (From To)]", "BODY[2.HEADER.FIELDS.NOT (Subject)]",
	"BODY.PEEK[3]<1.5>",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct arena *a = arena_new();
	struct mime_message m;
	mime_parse(a, (const char *)data, size, NULL, &m);
	struct buf b = { 0 };
	imap_envelope(&b, a, &m.root->hdr);
	check_balanced(&b);
	buf_clear(&b);
	imap_bodystructure(&b, a, &m, true);
	check_balanced(&b);
	buf_clear(&b);
	imap_bodystructure(&b, a, &m, false);
	check_balanced(&b);
	buf_free(&b);
	for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++) {
		struct imap_arg arg = { .type = IMAP_ARG_ATOM, .s = str_from_cstr(sections[i]), .span = 1 };
		struct imap_fetch f;
		const char *why;
		if (imap_fetch_parse(&arg, 1, &f, &why) != 0 || f.nsecs != 1)
			__builtin_trap();
		struct buf out = { 0 };
		imap_section_render(&f.secs[0], &m, &out);
		if (out.len > 2 * size + 4)
			__builtin_trap();
		buf_free(&out);
		imap_fetch_free(&f);
	}
	struct buf hdr = { 0 }, body = { 0 };
	imap_search_text(&hdr, &body, (const char *)data, size);
	buf_free(&hdr);
	buf_free(&body);
	arena_destroy(&a);
	return 0;
}
