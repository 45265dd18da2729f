/* tls.h - OpenSSL 3 server contexts.
 *
 * Contexts allow TLS 1.2 and later only, no renegotiation, and use the
 * system's default cipher policy. A context is created by the parent (which
 * can read the key as root) and inherited by workers across fork(). */
#ifndef MP_TLS_H
#define MP_TLS_H

#include <stddef.h>
#include <openssl/ssl.h>

/* Returns a new server context, or NULL with a message in err (size bytes)
 * naming the file and OpenSSL's reason. */
SSL_CTX *tls_server_ctx_new(const char *cert_file, const char *key_file,
			    char *err, size_t size);
/* Frees *ctxp (reference-counted by OpenSSL) and sets it to NULL. */
void tls_ctx_free(SSL_CTX **ctxp);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384" for logs and Received headers. */
void tls_describe(SSL *ssl, char *dst, size_t size);

#endif
