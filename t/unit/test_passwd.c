/* test_passwd.c - Dovecot password schemes: doveadm vectors, round trips,
 * malformed input. bcrypt and argon2 calls are kept few: argon2id alone
 * costs ~100 ms (64 MiB) per call, more under ASan. */
#include "dir/passwd.h"
#include "tap.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Made with Dovecot 2.3.19 (Debian 12): doveadm pw -s SCHEME -p secret */
static const char *const dovecot_secret[] = {
	"{BLF-CRYPT}$2y$05$UV1D9OULhr/ZG3a3WZN1duaujDkVuktW8PQTicFGJ8TQDeSqp71dK",
	"{SHA512-CRYPT}$6$1sKaG0cVKoZEmtYt$e.oEOAcAPcQit5jpXGunEFQVBpfCdW8.r/id0"
	"FiDlzOInTz9d/rimAxZRoVvHIUZIX1QJ7nzilD6ENX.aQswf/",
	"{SHA256-CRYPT}$5$VGARPmqfgcihhliO$OnnfZ6TR/kXYQnQZvd42tmsKymbzqxwp38mrB"
	"0yWbj/",
	"{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$xCo5ezqVuIB0N/Kx5oYVmw$CPSxV5Q"
	"ruSCEO0j38/AVXxUsCzkeZOfnBXd2q7EnQBo",
	"{ARGON2I}$argon2i$v=19$m=32768,t=4,p=1$gHVmafhh+24wajLKWjDbLQ$R5IA4SlK1"
	"38fQre8mEr5y+Fd/y8wawQBOpo6Fa5Y39w",
	"{SSHA512}FJxJ6WLygZCy/wwGTh103oNMw10P53i+W8Q34BhIo5hizrkaN8CzzqG0UBKjSJf"
	"p3yl5kAVAkQv1lQyCN0lh/mEcQLQ=",
	"{SSHA256}AyqwAeEqTn8gtBdwpHHtHxv/79oc596lpVNr9bnFTQstS/0u",
	"{MD5-CRYPT}$1$R97TRuy7$xu.n1fs5kUm8u5h1rEe7l0",
	"{CRYPT}$2y$05$dCoAvyOsoinxqGySU.exu.IoKD6HCWovXf2ZhPGFZbmi1wtl5.c0.",
	"{PLAIN}secret",
	"{CLEARTEXT}secret",
	"{SHA512}vSsar3708Jvp9Szi2NWZZ02Bqp1qRCFpbcTZPdBhnWgs5WtNZKnvCXdhztmeD2c"
	"mW192CF5bDufKRpayrW/isg==",
	"{SHA256}K7gNU3sdo+OL0wNhqoVWhr3g6s1xYv72ol/pe/Unols=",
	"{SSHA512.HEX}1ff8d50d6d51fce2b93c0f553a2c36009a28ec4baadcd82b2a5bd6ab1d3c"
	"22d1afc44663fec06ce4dfc77ad61c0d26759689303d1353cb450a576477f0a8955861b"
	"fd776",
	"{SHA256.HEX}2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527"
	"a25b",
	"{SSHA256.B64}wdeAHhnVeYjTo3VgFIlm/UIm5kszpotSFikZqN8ukASdFqxG",
};

static const char *const other_secret[] = {
	/* not from doveadm pw, but checked with doveadm pw -t: forms Dovecot
	 * also reads (DES crypt from Python's crypt.crypt("secret", "ab")) */
	"{CRYPT}abNANd1rDfiNc",
	"$6$1sKaG0cVKoZEmtYt$e.oEOAcAPcQit5jpXGunEFQVBpfCdW8.r/id0FiDlzOInTz9d/r"
	"imAxZRoVvHIUZIX1QJ7nzilD6ENX.aQswf/",                 /* no prefix */
	"{sha512-Crypt}$6$1sKaG0cVKoZEmtYt$e.oEOAcAPcQit5jpXGunEFQVBpfCdW8.r/id0"
	"FiDlzOInTz9d/rimAxZRoVvHIUZIX1QJ7nzilD6ENX.aQswf/",    /* case */
	"{sha256}2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b",
	"{PLAIN.B64}c2VjcmV0",
};

/* ISPmail guide's example user (john@example.org, "summersun"). */
static const char ispmail[] =
	"{BLF-CRYPT}$2y$05$m.GdQNMyUFNG0vPsaXxSB.0ZQqZhe1e9Un841oBcWi6U6HRF2Kmky";

static int verify(const char *stored, const char *pw, bool allow_plain)
{
	const char *err = NULL;
	int r = passwd_verify(stored, pw, strlen(pw), allow_plain, &err);
	if (r < 0)
		printf("#   error: %s\n", err != NULL ? err : "(NULL!)");
	return r;
}

static void check_secret(const char *h)
{
	is_int(verify(h, "secret", true), 1, "%.40s: secret", h);
	is_int(verify(h, "Secret", true), 0, "%.40s: Secret", h);
	is_int(verify(h, "secret ", true), 0, "%.40s: 'secret '", h);
}

static void test_dovecot_vectors(void)
{
	for (size_t i = 0; i < sizeof(dovecot_secret) / sizeof(*dovecot_secret); i++)
		check_secret(dovecot_secret[i]);
	for (size_t i = 0; i < sizeof(other_secret) / sizeof(*other_secret); i++)
		check_secret(other_secret[i]);
	is_int(verify(ispmail, "summersun", false), 1, "ISPmail example: summersun");
	is_int(verify(ispmail, "wrong", false), 0, "ISPmail example: wrong");
}

/* Hashes "secret" with scheme, checks the prefix, then verifies; slow
 * (argon2, 100-200 ms a call) checks only the right password. */
static void roundtrip(const char *scheme, const char *want_prefix, bool slow)
{
	const char *err = NULL;
	char *h = passwd_hash(scheme, "secret", 6, true, &err);
	if (!ok(h != NULL, "%s: hash made", scheme)) {
		printf("#   error: %s\n", err);
		return;
	}
	ok(strncmp(h, want_prefix, strlen(want_prefix)) == 0,
	   "%s: %s starts with %s", scheme, h, want_prefix);
	is_int(verify(h, "secret", true), 1, "%s: right password", scheme);
	if (slow) {
		/* argon2's mismatch path is covered by the doveadm vectors */
		free(h);
		return;
	}
	is_int(verify(h, "secreT", true), 0, "%s: wrong password", scheme);
	is_int(verify(h, "", true), 0, "%s: empty password", scheme);
	if (strcmp(scheme, "PLAIN") != 0) {
		char *h2 = passwd_hash(scheme, "secret", 6, true, &err);
		ok(h2 != NULL && strcmp(h, h2) != 0,
		   "%s: two hashes differ (fresh salt)", scheme);
		free(h2);
	}
	free(h);
}

static void test_roundtrip(void)
{
	roundtrip("ARGON2ID", "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$", true);
	roundtrip("argon2i", "{ARGON2I}$argon2i$v=19$m=32768,t=4,p=1$", true);
	roundtrip("BLF-CRYPT", "{BLF-CRYPT}$2y$05$", false);
	roundtrip("SHA512-CRYPT", "{SHA512-CRYPT}$6$", false);
	roundtrip("sha256-crypt", "{SHA256-CRYPT}$5$", false);
	roundtrip("SSHA512", "{SSHA512}", false);
	roundtrip("SSHA256", "{SSHA256}", false);
	roundtrip("PLAIN", "{PLAIN}secret", false);
}

static void test_hash_shapes(void)
{
	const char *err = NULL;
	char *h = passwd_hash("SHA512-CRYPT", "x", 1, false, &err);
	ok(h != NULL && strstr(h, "rounds=") == NULL && strlen(h) ==
	   strlen("{SHA512-CRYPT}$6$") + 16 + 1 + 86,
	   "SHA512-CRYPT: default 5000 rounds, 16-char salt, like Dovecot");
	free(h);
	h = passwd_hash("SSHA512", "x", 1, false, &err);
	/* base64 of 64-byte digest + 16-byte salt */
	ok(h != NULL && strlen(h) == strlen("{SSHA512}") + 108,
	   "SSHA512: 16-byte salt");
	free(h);
}

static void test_empty_and_binary(void)
{
	const char *err = NULL;
	char *h = passwd_hash("SSHA256", "", 0, false, &err);
	is_int(passwd_verify(h, "", 0, false, &err), 1, "empty password verifies");
	is_int(passwd_verify(h, "x", 1, false, &err), 0, "x is not the empty password");
	free(h);
	h = passwd_hash("SHA256-CRYPT", "", 0, false, &err);
	is_int(passwd_verify(h, "", 0, false, &err), 1, "crypt: empty password verifies");
	free(h);

	static const char bin[] = "se\0cr\xff\x80t";
	h = passwd_hash("SSHA512", bin, sizeof(bin) - 1, false, &err);
	is_int(passwd_verify(h, bin, sizeof(bin) - 1, false, &err), 1,
	       "SSHA512: password with NUL and high bytes verifies");
	is_int(passwd_verify(h, bin, 2, false, &err), 0,
	       "SSHA512: password_len is authoritative (no truncation at NUL)");
	free(h);
	err = NULL;
	ok(passwd_hash("SHA512-CRYPT", bin, sizeof(bin) - 1, false, &err) == NULL &&
	   err != NULL, "crypt: hashing a password with NUL is refused");
	is_int(passwd_verify(dovecot_secret[1], "secret\0x", 8, false, &err), 0,
	       "crypt: embedded NUL never matches (no truncation)");

	char longpw[600];
	memset(longpw, 'a', sizeof(longpw));
	is_int(passwd_verify(dovecot_secret[1], longpw, sizeof(longpw), false, &err), 0,
	       "crypt: 600-byte password is no match, not an error");
	h = passwd_hash("SSHA256", longpw, sizeof(longpw), false, &err);
	is_int(passwd_verify(h, longpw, sizeof(longpw), false, &err), 1,
	       "SSHA256: 600-byte password round trip");
	free(h);
}

static void test_malformed_one(const char *stored, bool allow_plain, const char *what)
{
	const char *err = NULL;
	int r = passwd_verify(stored, "secret", 6, allow_plain, &err);
	ok(r == -1 && err != NULL, "malformed %s -> -1 (%s)", what,
	   err != NULL ? err : "no error");
}

static void test_malformed(void)
{
	test_malformed_one("{BLF-CRYPT}garbage", false, "BLF-CRYPT garbage");
	test_malformed_one("{BLF-CRYPT}$2y$05$UV1D9OULhr/ZG3a3WZN1duauj", false,
			   "truncated bcrypt");
	test_malformed_one("{ARGON2ID}$argon2id$v=19$m=1", false, "argon2 params");
	test_malformed_one("{ARGON2ID}$argon2i$v=19$m=32768,t=4,p=1$gHVmafhh+24wajL"
			   "KWjDbLQ$R5IA4SlK138fQre8mEr5y+Fd/y8wawQBOpo6Fa5Y39w",
			   false, "argon2i hash under ARGON2ID");
	test_malformed_one("{SSHA512}", false, "empty SSHA512");
	test_malformed_one("{SSHA512}!!!notbase64", false, "SSHA512 not base64");
	test_malformed_one("{SSHA512}vSsar3708Jvp9Szi2NWZZ02Bqp1qRCFpbcTZPdBhnWgs5Wt"
			   "NZKnvCXdhztmeD2cmW192CF5bDufKRpayrW/isg==", false,
			   "SSHA512 without salt");
	test_malformed_one("{SHA256}K7gNU3sdo+OL0wNhqoVWhr3g6s1xYv72ol/pe/Uno===", false,
			   "SHA256 bad padding");
	test_malformed_one("{SHA256}AAAA", false, "SHA256 short digest");
	test_malformed_one("{SSHA256.HEX}zz", false, "SSHA256.HEX not hex");
	test_malformed_one("{UNKNOWN}x", false, "unknown scheme");
	test_malformed_one("{}x", false, "empty scheme name");
	test_malformed_one("{BLF-CRYPT.HEX}x", false, "encoding on a crypt scheme");
	test_malformed_one("{SHA512-CRYPT", false, "no closing brace");
	test_malformed_one("{SHA512-CRYPT}$5$VGARPmqfgcihhliO$OnnfZ6TR/kXYQnQZvd42t"
			   "msKymbzqxwp38mrB0yWbj/", false, "$5$ under SHA512-CRYPT");
	test_malformed_one("{CRYPT}", false, "empty CRYPT");
	test_malformed_one("", false, "empty string");
	test_malformed_one("secret", false, "plaintext without scheme");
	test_malformed_one("{PLAIN}secret", false, "PLAIN with allow_plain=false");
	test_malformed_one("{cleartext}secret", false, "CLEARTEXT with allow_plain=false");

	char *mid = malloc(PASSWD_STORED_MAX + 1);
	memset(mid, 'x', PASSWD_STORED_MAX);
	mid[PASSWD_STORED_MAX] = '\0';
	test_malformed_one(mid, false, "4 KB without scheme (crypt setting)");
	memcpy(mid, "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$", 42);
	test_malformed_one(mid, false, "4 KB argon2");
	free(mid);

	size_t n = 100 * 1024;
	char *big = malloc(n + 1);
	memset(big, 'A', n);
	big[n] = '\0';
	test_malformed_one(big, false, "100 KB without scheme");
	big[0] = '{';
	test_malformed_one(big, false, "100 KB scheme name");
	memcpy(big, "{SSHA512}", 9);
	test_malformed_one(big, false, "100 KB SSHA512");
	free(big);
}

/* Every strict prefix of a valid hash: never a match, never a crash (ASan).
 * argon2 is left out: a shortened digest still decodes and costs 64 MiB. */
static void test_truncated(void)
{
	int matched = 0, tried = 0;
	char buf[256];
	for (size_t i = 0; i < sizeof(dovecot_secret) / sizeof(*dovecot_secret); i++) {
		const char *h = dovecot_secret[i];
		if (strstr(h, "$argon2") != NULL)
			continue;
		for (size_t len = 0; len < strlen(h) && len < sizeof(buf); len++) {
			const char *err = NULL;
			memcpy(buf, h, len);
			buf[len] = '\0';
			int r = passwd_verify(buf, "secret", 6, true, &err);
			matched += r == 1 || (r == -1 && err == NULL);
			tried++;
		}
	}
	ok(matched == 0 && tried > 1000,
	   "%d truncated hashes: none matches, every -1 has an error", tried);
}

static void test_hash_errors(void)
{
	static const struct { const char *scheme; bool allow_plain; } refused[] = {
		{ "PLAIN", false },        /* plaintext disabled */
		{ "MD5-CRYPT", true },     /* verify only */
		{ "CRYPT", true },         /* verify only */
		{ "SSHA512.HEX", true },   /* no encoding suffix on output */
		{ "NOPE", true },
	};
	for (size_t i = 0; i < sizeof(refused) / sizeof(*refused); i++) {
		const char *err = NULL;
		char *h = passwd_hash(refused[i].scheme, "secret", 6,
				      refused[i].allow_plain, &err);
		ok(h == NULL && err != NULL, "hash %s refused (%s)",
		   refused[i].scheme, err != NULL ? err : "no error");
		free(h);
	}
	ok(passwd_scheme_supported("argon2id") && passwd_scheme_supported("BLF-CRYPT") &&
	   passwd_scheme_supported("SSHA256") && passwd_scheme_supported("PLAIN"),
	   "supported: ARGON2ID, BLF-CRYPT, SSHA256, PLAIN");
	ok(!passwd_scheme_supported("CRYPT") && !passwd_scheme_supported("SHA512") &&
	   !passwd_scheme_supported("CLEARTEXT") && !passwd_scheme_supported("") &&
	   !passwd_scheme_supported("BLF-CRYPTX"),
	   "not supported: CRYPT, SHA512, CLEARTEXT, empty, BLF-CRYPTX");
}

int main(void)
{
	test_dovecot_vectors();
	test_roundtrip();
	test_hash_shapes();
	test_empty_and_binary();
	test_malformed();
	test_truncated();
	test_hash_errors();
	return tap_done();
}
