/* passwd.h - Dovecot-compatible password scheme strings.
 *
 * A stored password is "{SCHEME}data" exactly as Dovecot 2.3 writes it
 * (doveadm pw); a string without a "{...}" prefix is treated as {CRYPT},
 * like Dovecot's default_pass_scheme = CRYPT. Scheme names are ASCII
 * case-insensitive.
 *
 * Verified:  BLF-CRYPT ($2a$/$2b$/$2x$/$2y$), SHA512-CRYPT ($6$),
 *            SHA256-CRYPT ($5$), MD5-CRYPT ($1$), CRYPT (any crypt(3) hash
 *            libxcrypt knows, DES included), ARGON2ID, ARGON2I,
 *            SSHA512, SSHA256, SHA512, SHA256, and PLAIN, CLEARTEXT only
 *            when allow_plain. SSHA*, SHA* and PLAIN/CLEARTEXT also take
 *            Dovecot's encoding suffixes ".B64" and ".HEX"
 *            (e.g. "{SSHA512.HEX}"); the unsuffixed SHA* and SSHA* are
 *            base64, and an unsuffixed SHA* of hex length is read as hex,
 *            as Dovecot does.
 * Generated: ARGON2ID (m=65536 KiB, t=3, p=1), ARGON2I (m=32768, t=4, p=1,
 *            Dovecot's own parameters), BLF-CRYPT ($2y$, cost 5),
 *            SHA512-CRYPT, SHA256-CRYPT (5000 rounds), SSHA512, SSHA256
 *            (16-byte salt), and PLAIN only when allow_plain.
 *
 * A named crypt scheme must carry its own prefix ({SHA512-CRYPT} must be
 * "$6$..."); Dovecot is laxer there, but a mismatch means a broken
 * migration and should be loud, not silently accepted.
 *
 * Passwords are (ptr, len) byte strings; password must not be NULL (pass ""
 * with len 0 for empty). The crypt(3) schemes take C strings, so a password
 * with an embedded NUL never matches them, and one longer than libxcrypt's
 * CRYPT_MAX_PASSPHRASE_SIZE (512) never matches either. Empty passwords are
 * hashed and verified like any other: refusing them is the caller's policy.
 * Nothing here logs, stores or keeps the password; temporary copies and
 * derived keys are wiped before they are freed.
 *
 * All functions are thread-safe and keep no global state. Bcrypt and argon2
 * are deliberately slow (tens of ms; ARGON2ID allocates 64 MiB): call them
 * off the event loop. */
#ifndef MP_PASSWD_H
#define MP_PASSWD_H

#include <stdbool.h>
#include <stddef.h>

/* Longest stored "{SCHEME}data" accepted, in bytes. Real hashes are under
 * 200; this bounds the work a corrupt or hostile directory row can cause. */
#define PASSWD_STORED_MAX 4096

/* Checks password against the stored hash.
 * Returns 1 = match, 0 = no match, -1 = stored is malformed, too long, of
 * an unknown scheme, or plaintext while !allow_plain (*error_r is then set
 * to a static string naming the problem, never containing the password).
 * stored, password and error_r must not be NULL. Digests are compared in
 * constant time. */
int passwd_verify(const char *stored, const char *password,
		  size_t password_len, bool allow_plain, const char **error_r);

/* Hashes password with a fresh random salt (RAND_bytes) and returns
 * "{SCHEME}..." with the scheme name in canonical upper case; malloc'd, the
 * caller frees it. Returns NULL with *error_r set (static string) for an
 * unsupported scheme, PLAIN without allow_plain, a password a crypt scheme
 * cannot take (embedded NUL, > 512 bytes), or a failure of the random
 * source or hash library. */
char *passwd_hash(const char *scheme, const char *password,
		  size_t password_len, bool allow_plain, const char **error_r);

/* True if passwd_hash() can make this scheme (case-insensitive, no
 * ".HEX"/".B64" suffix). "PLAIN" is reported supported; passwd_hash() still
 * refuses it unless allow_plain. */
bool passwd_scheme_supported(const char *scheme);

#endif
