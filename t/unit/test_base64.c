/* test_base64.c - strict base64 used by SASL. */
#include "core/base64.h"
#include "tap.h"

static void round_trip(const char *in)
{
	char enc[256];
	unsigned char dec[256];
	size_t n = base64_encode((const unsigned char *)in, strlen(in), enc);
	long m = base64_decode(enc, n, dec);
	ok(m == (long)strlen(in) && memcmp(dec, in, (size_t)m) == 0, "round trip \"%s\" via %s", in, enc);
}

int main(void)
{
	unsigned char out[64];
	round_trip("");
	round_trip("f");
	round_trip("fo");
	round_trip("foo");
	round_trip("foob");
	round_trip("\x01\xff\x80");
	is_int(base64_decode("AGpvaG4Ac2VjcmV0", 16, out), 12, "SASL PLAIN response decodes");
	ok(memcmp(out, "\0john\0secret", 12) == 0, "with its NUL separators");
	is_int(base64_decode("Zm9v\n", 5, out), -1, "newline rejected");
	is_int(base64_decode("Zm9", 3, out), -1, "missing padding rejected");
	is_int(base64_decode("Zm=v", 4, out), -1, "padding in the middle rejected");
	is_int(base64_decode("Z===", 4, out), -1, "three pad characters rejected");
	is_int(base64_decode("Zg==Zg==", 8, out), -1, "padding before more data rejected");
	is_int(base64_decode("Zm9*", 4, out), -1, "bad character rejected");
	return tap_done();
}
