/* base64.c - strict base64 (see base64.h). */
#include "base64.h"

#include <stdbool.h>

static const char b64_chars[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

long base64_decode(const char *src, size_t len, unsigned char *dst)
{
	if (len % 4 != 0)
		return -1;
	long o = 0;
	for (size_t i = 0; i < len; i += 4) {
		int v[4], pad = 0;
		for (int k = 0; k < 4; k++) {
			unsigned char c = (unsigned char)src[i + k];
			bool last = i + 4 == len;
			if (c == '=' && last && k >= 2 && (k == 3 || src[i + 3] == '=')) {
				v[k] = 0;
				pad++;
				continue;
			}
			if (pad > 0 || (v[k] = b64_value(c)) < 0)
				return -1;
		}
		dst[o++] = (unsigned char)(v[0] << 2 | v[1] >> 4);
		if (pad < 2)
			dst[o++] = (unsigned char)(v[1] << 4 | v[2] >> 2);
		if (pad < 1)
			dst[o++] = (unsigned char)(v[2] << 6 | v[3]);
	}
	return o;
}

size_t base64_encode(const unsigned char *src, size_t len, char *dst)
{
	size_t o = 0;
	for (size_t i = 0; i < len; i += 3) {
		unsigned v = (unsigned)src[i] << 16;
		if (i + 1 < len)
			v |= (unsigned)src[i + 1] << 8;
		if (i + 2 < len)
			v |= src[i + 2];
		dst[o++] = b64_chars[v >> 18 & 63];
		dst[o++] = b64_chars[v >> 12 & 63];
		dst[o++] = i + 1 < len ? b64_chars[v >> 6 & 63] : '=';
		dst[o++] = i + 2 < len ? b64_chars[v & 63] : '=';
	}
	dst[o] = '\0';
	return o;
}
