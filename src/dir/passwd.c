/* passwd.c - Dovecot password scheme strings (see passwd.h): split
 * "{SCHEME.ENC}data", then hand the data to crypt(3), argon2, a salted
 * SHA-2 digest or a plaintext comparison through one static scheme table. */
#include "dir/passwd.h"
#include "core/buf.h"
#include "core/util.h"

#include <argon2.h>
#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* New SSHA* salts. Dovecot writes 4 bytes and reads any length >= 1;
 * 16 costs nothing and keeps salts unique across large user tables. */
#define PASSWD_SSHA_SALT_LEN 16
/* Random bytes fed to crypt_gensalt_rn: bcrypt wants exactly 16, the SHA
 * crypts turn up to 16 into their (maximal) 16-character salt. */
#define PASSWD_CRYPT_RANDOM_LEN 16
#define PASSWD_ARGON2_SALT_LEN 16
#define PASSWD_ARGON2_HASH_LEN 32

enum passwd_enc { PASSWD_ENC_NONE, PASSWD_ENC_B64, PASSWD_ENC_HEX };

struct passwd_scheme;

/* The stored string split into its parts; data is the tail of the stored
 * C string, so data.p[data.len] == '\0'. */
struct passwd_parsed {
	const struct passwd_scheme *scheme;
	enum passwd_enc enc;  /* from a ".B64"/".HEX" suffix, else NONE */
	struct str data;
};

/* Decoded bytes we own; wiped before they are freed. */
struct passwd_bytes {
	unsigned char *p;
	size_t len;
};

typedef int passwd_verify_fn(const struct passwd_scheme *s,
			     const struct passwd_parsed *in, struct str pw,
			     const char **error_r);
typedef char *passwd_hash_fn(const struct passwd_scheme *s, struct str pw,
			     const char **error_r);

struct passwd_scheme {
	const char *name;
	passwd_verify_fn *verify;
	passwd_hash_fn *hash;           /* NULL: verify only */
	bool plain;                     /* needs allow_plain */
	bool encodable;                 /* accepts ".B64"/".HEX" */
	const char *crypt_match;        /* crypt: required prefix, NULL = any */
	const char *crypt_gensalt;      /* crypt: prefix for new hashes */
	unsigned long crypt_cost;       /* 0 = libxcrypt's default */
	argon2_type argon2_type;
	uint32_t argon2_t, argon2_m;    /* passes, KiB for new hashes */
	const EVP_MD *(*md)(void);      /* SHA-2 schemes */
	bool salted;                    /* SSHA*: digest || salt */
};

static passwd_verify_fn passwd_crypt_verify, passwd_argon2_verify,
	passwd_digest_verify, passwd_plain_verify;
static passwd_hash_fn passwd_crypt_hash, passwd_argon2_hash,
	passwd_digest_hash, passwd_plain_hash;

static const struct passwd_scheme passwd_schemes[] = {
	{ .name = "ARGON2ID", .verify = passwd_argon2_verify,
	  .hash = passwd_argon2_hash, .argon2_type = Argon2_id,
	  .argon2_t = 3, .argon2_m = 65536 },
	{ .name = "ARGON2I", .verify = passwd_argon2_verify,
	  .hash = passwd_argon2_hash, .argon2_type = Argon2_i,
	  .argon2_t = 4, .argon2_m = 32768 },
	/* libxcrypt 4.4 generates "$2y$" itself (checked on Debian 12), so
	 * new hashes look like Dovecot's and ISPmail's; verifying takes
	 * $2a$/$2b$/$2x$/$2y$ alike. */
	{ .name = "BLF-CRYPT", .verify = passwd_crypt_verify,
	  .hash = passwd_crypt_hash, .crypt_match = "$2",
	  .crypt_gensalt = "$2y$", .crypt_cost = 5 },
	{ .name = "SHA512-CRYPT", .verify = passwd_crypt_verify,
	  .hash = passwd_crypt_hash, .crypt_match = "$6$",
	  .crypt_gensalt = "$6$" },
	{ .name = "SHA256-CRYPT", .verify = passwd_crypt_verify,
	  .hash = passwd_crypt_hash, .crypt_match = "$5$",
	  .crypt_gensalt = "$5$" },
	{ .name = "MD5-CRYPT", .verify = passwd_crypt_verify,
	  .crypt_match = "$1$" },
	{ .name = "CRYPT", .verify = passwd_crypt_verify },
	{ .name = "SSHA512", .verify = passwd_digest_verify,
	  .hash = passwd_digest_hash, .encodable = true, .md = EVP_sha512,
	  .salted = true },
	{ .name = "SSHA256", .verify = passwd_digest_verify,
	  .hash = passwd_digest_hash, .encodable = true, .md = EVP_sha256,
	  .salted = true },
	{ .name = "SHA512", .verify = passwd_digest_verify, .encodable = true,
	  .md = EVP_sha512 },
	{ .name = "SHA256", .verify = passwd_digest_verify, .encodable = true,
	  .md = EVP_sha256 },
	{ .name = "PLAIN", .verify = passwd_plain_verify,
	  .hash = passwd_plain_hash, .plain = true, .encodable = true },
	{ .name = "CLEARTEXT", .verify = passwd_plain_verify, .plain = true,
	  .encodable = true },
};

/* ---- small helpers ---- */

static const struct passwd_scheme *passwd_scheme_find(struct str name)
{
	for (size_t i = 0; i < ARRAY_SIZE(passwd_schemes); i++)
		if (str_case_eq(name, passwd_schemes[i].name))
			return &passwd_schemes[i];
	return NULL;
}

static bool passwd_str_prefix(struct str s, const char *lit)
{
	size_t n = strlen(lit);
	return s.len >= n && memcmp(s.p, lit, n) == 0;
}

/* "{" name "}" body, malloc'd. */
static char *passwd_join(const char *name, const char *body, size_t body_len)
{
	size_t n = strlen(name);
	char *s = xmalloc(n + body_len + 3);
	s[0] = '{';
	memcpy(s + 1, name, n);
	s[n + 1] = '}';
	memcpy(s + n + 2, body, body_len);
	s[n + 2 + body_len] = '\0';
	return s;
}

static void passwd_bytes_wipe(struct passwd_bytes *b)
{
	if (b->p != NULL) {
		OPENSSL_cleanse(b->p, b->len);
		free(b->p);
	}
	b->p = NULL;
	b->len = 0;
}

/* ---- encodings ---- */

static bool passwd_b64_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/* Strict RFC 4648 base64 with padding, as Dovecot writes it. We check the
 * alphabet ourselves because EVP_DecodeBlock skips whitespace and counts
 * padding as decoded zero bytes. */
static int passwd_b64_decode(struct str in, struct passwd_bytes *out)
{
	size_t pad = 0;
	if (in.len == 0 || in.len % 4 != 0)
		return -1;
	for (size_t i = 0; i < in.len; i++) {
		unsigned char c = (unsigned char)in.p[i];
		if (c == '=')
			pad++;
		else if (pad > 0 || !passwd_b64_char(c))
			return -1;
	}
	if (pad > 2)
		return -1;
	out->p = xmalloc(in.len / 4 * 3);
	int n = EVP_DecodeBlock(out->p, (const unsigned char *)in.p,
				(int)in.len);
	out->len = in.len / 4 * 3;
	if (n < 0 || (size_t)n != out->len) {
		passwd_bytes_wipe(out);
		return -1;
	}
	out->len -= pad;
	return 0;
}

static int passwd_hex_val(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int passwd_hex_decode(struct str in, struct passwd_bytes *out)
{
	if (in.len == 0 || in.len % 2 != 0)
		return -1;
	out->len = in.len / 2;
	out->p = xmalloc(out->len);
	for (size_t i = 0; i < out->len; i++) {
		int hi = passwd_hex_val((unsigned char)in.p[2 * i]);
		int lo = passwd_hex_val((unsigned char)in.p[2 * i + 1]);
		if (hi < 0 || lo < 0) {
			passwd_bytes_wipe(out);
			return -1;
		}
		out->p[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

static int passwd_decode(struct str in, enum passwd_enc enc,
			 struct passwd_bytes *out, const char **error_r)
{
	switch (enc) {
	case PASSWD_ENC_B64:
		if (passwd_b64_decode(in, out) == 0)
			return 0;
		*error_r = "password hash is not valid base64";
		return -1;
	case PASSWD_ENC_HEX:
		if (passwd_hex_decode(in, out) == 0)
			return 0;
		*error_r = "password hash is not valid hex";
		return -1;
	case PASSWD_ENC_NONE:
		break;
	}
	out->len = in.len;
	out->p = xmalloc(in.len ? in.len : 1);
	memcpy(out->p, in.p, in.len);
	return 0;
}

/* ---- parsing "{SCHEME.ENC}data" ---- */

/* Strips a Dovecot encoding suffix off the scheme name, if there is one. */
static enum passwd_enc passwd_split_enc(struct str *name)
{
	const char *dot = memrchr(name->p, '.', name->len);
	if (dot == NULL)
		return PASSWD_ENC_NONE;
	struct str suffix = { dot + 1, name->len - (size_t)(dot + 1 - name->p) };
	enum passwd_enc enc;
	if (str_case_eq(suffix, "HEX"))
		enc = PASSWD_ENC_HEX;
	else if (str_case_eq(suffix, "B64") || str_case_eq(suffix, "BASE64"))
		enc = PASSWD_ENC_B64;
	else
		return PASSWD_ENC_NONE;  /* leaves the name unknown */
	name->len = (size_t)(dot - name->p);
	return enc;
}

static int passwd_parse(const char *stored, struct passwd_parsed *out,
			const char **error_r)
{
	size_t len = strnlen(stored, PASSWD_STORED_MAX + 1);
	if (len > PASSWD_STORED_MAX) {
		*error_r = "stored password hash is too long";
		return -1;
	}
	out->enc = PASSWD_ENC_NONE;
	if (stored[0] != '{') {
		/* Dovecot's default_pass_scheme = CRYPT. */
		out->scheme = passwd_scheme_find(STR_LIT("CRYPT"));
		out->data = (struct str){ stored, len };
		return 0;
	}
	const char *end = memchr(stored, '}', len);
	if (end == NULL) {
		*error_r = "missing '}' after the password scheme name";
		return -1;
	}
	struct str name = { stored + 1, (size_t)(end - stored - 1) };
	out->enc = passwd_split_enc(&name);
	out->scheme = passwd_scheme_find(name);
	if (out->scheme == NULL ||
	    (out->enc != PASSWD_ENC_NONE && !out->scheme->encodable)) {
		*error_r = "unknown password scheme";
		return -1;
	}
	out->data = (struct str){ end + 1, len - (size_t)(end + 1 - stored) };
	return 0;
}

/* ---- crypt(3) schemes ---- */

/* One heap block per call: struct crypt_data is 32 KiB, too big for the
 * small stacks of worker threads, and it holds password-derived state, so
 * the whole block is wiped together with the NUL-terminated copy. */
struct passwd_crypt {
	struct crypt_data data;
	char pw[CRYPT_MAX_PASSPHRASE_SIZE + 1];
};

/* crypt(3) takes a C string, so an embedded NUL would silently truncate
 * the password; libxcrypt refuses anything longer than 512 bytes. */
static bool passwd_crypt_can_take(struct str pw)
{
	return pw.len <= CRYPT_MAX_PASSPHRASE_SIZE &&
	       memchr(pw.p, '\0', pw.len) == NULL;
}

/* Returns crypt_rn's output (inside *c_r) or NULL if crypt failed. The
 * caller releases *c_r with passwd_crypt_free() in either case. */
static const char *passwd_crypt_run(struct str pw, const char *setting,
				    struct passwd_crypt **c_r)
{
	struct passwd_crypt *c = xmalloc(sizeof(*c));
	memcpy(c->pw, pw.p, pw.len);
	c->pw[pw.len] = '\0';
	*c_r = c;
	const char *out = crypt_rn(c->pw, setting, &c->data, sizeof(c->data));
	/* crypt_rn returns NULL on failure; older libcrypts return "*0". */
	return (out == NULL || out[0] == '*') ? NULL : out;
}

static void passwd_crypt_free(struct passwd_crypt **c)
{
	OPENSSL_cleanse(*c, sizeof(**c));
	free(*c);
	*c = NULL;
}

static int passwd_crypt_verify(const struct passwd_scheme *s,
			       const struct passwd_parsed *in, struct str pw,
			       const char **error_r)
{
	struct str h = in->data;
	if (s->crypt_match != NULL && !passwd_str_prefix(h, s->crypt_match)) {
		*error_r = "crypt hash does not have its scheme's prefix";
		return -1;
	}
	if (!passwd_crypt_can_take(pw))
		return 0;
	struct passwd_crypt *c;
	const char *out = passwd_crypt_run(pw, h.p, &c);
	int ret;
	/* The output length depends only on the setting, never on the
	 * password, so a length mismatch means no password can ever match:
	 * that is a malformed hash (a truncated one, or plain text stored
	 * without a scheme), not a wrong password. */
	if (out == NULL || strlen(out) != h.len) {
		*error_r = "malformed crypt hash";
		ret = -1;
	} else {
		ret = CRYPTO_memcmp(out, h.p, h.len) == 0 ? 1 : 0;
	}
	passwd_crypt_free(&c);
	return ret;
}

static char *passwd_crypt_hash(const struct passwd_scheme *s, struct str pw,
			       const char **error_r)
{
	unsigned char rnd[PASSWD_CRYPT_RANDOM_LEN];
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	if (!passwd_crypt_can_take(pw)) {
		*error_r = "password has a NUL byte or is over 512 bytes, "
			   "which crypt schemes cannot take";
		return NULL;
	}
	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		*error_r = "random source failed";
		return NULL;
	}
	if (crypt_gensalt_rn(s->crypt_gensalt, s->crypt_cost,
			     (const char *)rnd, sizeof(rnd),
			     setting, sizeof(setting)) == NULL) {
		*error_r = "crypt_gensalt failed";
		return NULL;
	}
	struct passwd_crypt *c;
	const char *out = passwd_crypt_run(pw, setting, &c);
	char *res = out != NULL ? passwd_join(s->name, out, strlen(out)) : NULL;
	if (res == NULL)
		*error_r = "crypt failed";
	passwd_crypt_free(&c);
	return res;
}

/* ---- argon2 ---- */

/* The encoded string carries its own parameters; libargon2 rejects a type
 * that does not match (an $argon2i$ hash under {ARGON2ID}). Its verify
 * frees the candidate digest without wiping it; that digest of a wrong
 * guess is worthless, and libargon2 has no lower-level decoder to avoid
 * it. */
static int passwd_argon2_verify(const struct passwd_scheme *s,
				const struct passwd_parsed *in, struct str pw,
				const char **error_r)
{
	if (pw.len > ARGON2_MAX_PWD_LENGTH)
		return 0;
	int rc = argon2_verify(in->data.p, pw.p, pw.len, s->argon2_type);
	if (rc == ARGON2_OK)
		return 1;
	if (rc == ARGON2_VERIFY_MISMATCH)
		return 0;
	*error_r = rc == ARGON2_DECODING_FAIL ? "malformed argon2 hash" :
		   argon2_error_message(rc);
	return -1;
}

static char *passwd_argon2_hash(const struct passwd_scheme *s, struct str pw,
				const char **error_r)
{
	unsigned char salt[PASSWD_ARGON2_SALT_LEN];
	if (RAND_bytes(salt, sizeof(salt)) != 1) {
		*error_r = "random source failed";
		return NULL;
	}
	size_t enc_len = argon2_encodedlen(s->argon2_t, s->argon2_m, 1,
					   sizeof(salt), PASSWD_ARGON2_HASH_LEN,
					   s->argon2_type);
	char *enc = xmalloc(enc_len);
	int rc = argon2_hash(s->argon2_t, s->argon2_m, 1, pw.p, pw.len,
			     salt, sizeof(salt), NULL, PASSWD_ARGON2_HASH_LEN,
			     enc, enc_len, s->argon2_type, ARGON2_VERSION_13);
	char *res = NULL;
	if (rc == ARGON2_OK)
		res = passwd_join(s->name, enc, strlen(enc));
	else
		*error_r = argon2_error_message(rc);
	free(enc);
	return res;
}

/* ---- SHA-2 digests, salted (digest || salt) or not ---- */

/* out = md(pw || salt); out has room for EVP_MAX_MD_SIZE. */
static int passwd_digest(const EVP_MD *md, struct str pw,
			 const unsigned char *salt, size_t salt_len,
			 unsigned char *out)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok = ctx != NULL &&
		 EVP_DigestInit_ex(ctx, md, NULL) == 1 &&
		 EVP_DigestUpdate(ctx, pw.p, pw.len) == 1 &&
		 EVP_DigestUpdate(ctx, salt, salt_len) == 1 &&
		 EVP_DigestFinal_ex(ctx, out, NULL) == 1;
	EVP_MD_CTX_free(ctx);  /* wipes the digest state */
	return ok ? 0 : -1;
}

/* Unsalted SHA* default to base64, but Dovecot also reads a string of
 * exactly hex length as hex; salted ones have no fixed length to tell. */
static enum passwd_enc passwd_digest_enc(const struct passwd_scheme *s,
					 const struct passwd_parsed *in,
					 size_t dlen)
{
	if (in->enc != PASSWD_ENC_NONE)
		return in->enc;
	if (!s->salted && in->data.len == 2 * dlen)
		return PASSWD_ENC_HEX;
	return PASSWD_ENC_B64;
}

static int passwd_digest_check(const EVP_MD *md, size_t dlen, bool salted,
			       const struct passwd_bytes *raw, struct str pw,
			       const char **error_r)
{
	unsigned char calc[EVP_MAX_MD_SIZE];
	if (salted ? raw->len <= dlen : raw->len != dlen) {
		*error_r = salted ? "salted digest is too short" :
				    "digest has the wrong length";
		return -1;
	}
	if (passwd_digest(md, pw, raw->p + dlen, raw->len - dlen, calc) < 0) {
		*error_r = "digest computation failed";
		return -1;
	}
	int ret = CRYPTO_memcmp(calc, raw->p, dlen) == 0 ? 1 : 0;
	OPENSSL_cleanse(calc, sizeof(calc));
	return ret;
}

static int passwd_digest_verify(const struct passwd_scheme *s,
				const struct passwd_parsed *in, struct str pw,
				const char **error_r)
{
	const EVP_MD *md = s->md();
	size_t dlen = (size_t)EVP_MD_get_size(md);
	struct passwd_bytes raw = { 0 };
	if (passwd_decode(in->data, passwd_digest_enc(s, in, dlen), &raw,
			  error_r) < 0)
		return -1;
	int ret = passwd_digest_check(md, dlen, s->salted, &raw, pw, error_r);
	passwd_bytes_wipe(&raw);
	return ret;
}

static char *passwd_digest_hash(const struct passwd_scheme *s, struct str pw,
				const char **error_r)
{
	unsigned char raw[EVP_MAX_MD_SIZE + PASSWD_SSHA_SALT_LEN];
	char b64[(sizeof(raw) + 2) / 3 * 4 + 1];
	const EVP_MD *md = s->md();
	size_t dlen = (size_t)EVP_MD_get_size(md);
	if (RAND_bytes(raw + dlen, PASSWD_SSHA_SALT_LEN) != 1) {
		*error_r = "random source failed";
		return NULL;
	}
	if (passwd_digest(md, pw, raw + dlen, PASSWD_SSHA_SALT_LEN, raw) < 0) {
		*error_r = "digest computation failed";
		return NULL;
	}
	int n = EVP_EncodeBlock((unsigned char *)b64, raw,
				(int)(dlen + PASSWD_SSHA_SALT_LEN));
	OPENSSL_cleanse(raw, sizeof(raw));
	return passwd_join(s->name, b64, (size_t)n);
}

/* ---- plaintext ---- */

static int passwd_plain_verify(const struct passwd_scheme *s,
			       const struct passwd_parsed *in, struct str pw,
			       const char **error_r)
{
	struct passwd_bytes raw = { 0 };
	(void)s;
	if (passwd_decode(in->data, in->enc, &raw, error_r) < 0)
		return -1;
	/* The length is not secret enough to hide: the whole value is. */
	int ret = raw.len == pw.len &&
		  CRYPTO_memcmp(raw.p, pw.p, pw.len) == 0 ? 1 : 0;
	passwd_bytes_wipe(&raw);
	return ret;
}

static char *passwd_plain_hash(const struct passwd_scheme *s, struct str pw,
			       const char **error_r)
{
	if (memchr(pw.p, '\0', pw.len) != NULL) {
		*error_r = "password has a NUL byte, which PLAIN cannot store";
		return NULL;
	}
	return passwd_join(s->name, pw.p, pw.len);
}

/* ---- API ---- */

int passwd_verify(const char *stored, const char *password,
		  size_t password_len, bool allow_plain, const char **error_r)
{
	struct passwd_parsed in;
	if (passwd_parse(stored, &in, error_r) < 0)
		return -1;
	if (in.scheme->plain && !allow_plain) {
		*error_r = "plaintext password schemes are disabled";
		return -1;
	}
	return in.scheme->verify(in.scheme, &in,
				 (struct str){ password, password_len },
				 error_r);
}

static const struct passwd_scheme *passwd_hash_scheme(const char *scheme)
{
	const struct passwd_scheme *s =
		passwd_scheme_find(str_from_cstr(scheme));
	return s != NULL && s->hash != NULL ? s : NULL;
}

char *passwd_hash(const char *scheme, const char *password,
		  size_t password_len, bool allow_plain, const char **error_r)
{
	const struct passwd_scheme *s = passwd_hash_scheme(scheme);
	if (s == NULL) {
		*error_r = "password scheme cannot be generated";
		return NULL;
	}
	if (s->plain && !allow_plain) {
		*error_r = "plaintext password schemes are disabled";
		return NULL;
	}
	return s->hash(s, (struct str){ password, password_len }, error_r);
}

bool passwd_scheme_supported(const char *scheme)
{
	return passwd_hash_scheme(scheme) != NULL;
}
