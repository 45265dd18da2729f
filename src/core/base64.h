/* base64.h - strict RFC 4648 base64, as SASL (RFC 4422/4954) needs it. */
#ifndef MP_BASE64_H
#define MP_BASE64_H

#include <stddef.h>

/* Decodes src (len bytes) into dst (room for len/4*3 bytes). Padding is
 * required; whitespace and any other byte are errors. Returns the decoded
 * length, or -1. */
long base64_decode(const char *src, size_t len, unsigned char *dst);
/* Encodes into dst (room for 4*((len+2)/3)+1); NUL-terminates; returns the
 * encoded length. */
size_t base64_encode(const unsigned char *src, size_t len, char *dst);

#endif
