/* fuzz_imap_utf7.c - libFuzzer harness: mailbox names between UTF-8
 * (IMAP4rev2 clients) and modified UTF-7 (the Maildir, IMAP4rev1) on
 * arbitrary bytes. Properties: a name that encodes decodes back to the same
 * bytes, and its encoding is printable ASCII; decoding never reads past
 * its input and, on refusal, gives the input back unchanged; whatever
 * decodes, encodes again (as UTF-8 must) to a name that decodes the same. */
#include "imap/imap_folder.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct str in = { (const char *)data, size };
	struct buf a = { 0 }, b = { 0 }, c = { 0 }, d = { 0 };
	if (imap_utf8_to_mutf7(&a, in) == 0) {
		for (size_t i = 0; i < a.len; i++)
			if (buf_ptr(&a)[i] < 0x20 || buf_ptr(&a)[i] > 0x7e)
				__builtin_trap();
		if (imap_mutf7_to_utf8(&b, (struct str){ buf_ptr(&a), a.len }) != 0 || b.len != size ||
		    (size && memcmp(buf_ptr(&b), data, size) != 0))
			__builtin_trap();
	}
	int rc = imap_mutf7_to_utf8(&c, in);
	if (rc < 0 && (c.len != size || (size && memcmp(buf_ptr(&c), data, size) != 0)))
		__builtin_trap();
	if (rc == 0 && imap_utf8_to_mutf7(&d, (struct str){ buf_ptr(&c), c.len }) == 0) {
		buf_clear(&b);
		if (imap_mutf7_to_utf8(&b, (struct str){ buf_ptr(&d), d.len }) != 0 || b.len != c.len ||
		    (c.len && memcmp(buf_ptr(&b), buf_ptr(&c), c.len) != 0))
			__builtin_trap();
	}
	buf_free(&a);
	buf_free(&b);
	buf_free(&c);
	buf_free(&d);
	return 0;
}
