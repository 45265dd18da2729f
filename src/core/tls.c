/* tls.c - server TLS contexts (see tls.h). */
#include "tls.h"

#include <stdio.h>
#include <openssl/err.h>

static void tls_error(char *err, size_t size, const char *what, const char *file)
{
	unsigned long e = ERR_get_error();
	char reason[256] = "unknown error";
	if (e != 0)
		ERR_error_string_n(e, reason, sizeof(reason));
	ERR_clear_error();
	snprintf(err, size, "%s %s: %s", what, file, reason);
}

SSL_CTX *tls_server_ctx_new(const char *cert_file, const char *key_file,
			    char *err, size_t size)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		tls_error(err, size, "cannot create TLS context", "");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* Renegotiation buys nothing for mail and has a history of DoS bugs;
	 * a peer that closes without close_notify is normal in SMTP. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
				 SSL_OP_IGNORE_UNEXPECTED_EOF |
				 SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
			      SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
			      SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		tls_error(err, size, "cannot load certificate", cert_file);
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
		tls_error(err, size, "cannot load private key", key_file);
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		tls_error(err, size, "private key does not match certificate", key_file);
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

void tls_ctx_free(SSL_CTX **ctxp)
{
	if (*ctxp != NULL) {
		SSL_CTX_free(*ctxp);
		*ctxp = NULL;
	}
}

void tls_describe(SSL *ssl, char *dst, size_t size)
{
	if (ssl == NULL) {
		snprintf(dst, size, "none");
		return;
	}
	snprintf(dst, size, "%s %s", SSL_get_version(ssl),
		 SSL_CIPHER_get_name(SSL_get_current_cipher(ssl)));
}
