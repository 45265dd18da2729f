/* test_imap_folder.c - the pure parts of IMAP folder handling: LIST
 * pattern matching (RFC 3501 6.3.8: "*" matches anything, "%" not the
 * hierarchy separator; linear time on hostile patterns) and mailbox name
 * checks (Maildir++ safety, modified UTF-7 framing). */
#include "imap/imap_folder.h"
#include "core/util.h"
#include "tap.h"

#include <string.h>
#include <time.h>

static void match(const char *pattern, const char *name, bool want)
{
	ok(imap_folder_match(pattern, name, '.') == want, "\"%s\" %s \"%s\"", pattern,
	   want ? "matches" : "does not match", name);
}

static void name(const char *n, int want)
{
	const char *why;
	ok(imap_folder_name_check(str_from_cstr(n), &why) == want, "name \"%s\" %s", n,
	   want == 0 ? "valid" : "refused");
}

/* UTF-8 <-> modified UTF-7 (IMAP4rev2 names, RFC 9051 5.1 / 3501 5.1.3) */
static void conv(const char *utf8, const char *mutf7)
{
	struct buf a = { 0 }, b = { 0 };
	int rc1 = imap_utf8_to_mutf7(&a, str_from_cstr(utf8));
	int rc2 = imap_mutf7_to_utf8(&b, str_from_cstr(mutf7));
	buf_append(&a, "", 1);
	buf_append(&b, "", 1);
	ok(rc1 == 0 && strcmp(buf_ptr(&a), mutf7) == 0, "\"%s\" -> \"%s\" (%s)", utf8, mutf7, buf_ptr(&a));
	ok(rc2 == 0 && strcmp(buf_ptr(&b), utf8) == 0, "\"%s\" -> \"%s\"", mutf7, buf_ptr(&b));
	ok(imap_folder_name_check(str_from_cstr(mutf7), &(const char *){ NULL }) == 0 || strchr(utf8, '/') ||
	   utf8[0] == '\0', "\"%s\" is a valid stored name", mutf7);
	buf_free(&a);
	buf_free(&b);
}

static void test_utf7(void)
{
	conv("Entw\xc3\xbcrfe", "Entw&APw-rfe");
	conv("\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", "&ZeVnLIqe-");
	conv("a&b", "a&-b");
	conv("\xf0\x9f\x98\x80", "&2D3eAA-");           /* U+1F600: a surrogate pair */
	conv("Mail.\xc3\xa9t\xc3\xa9 & more", "Mail.&AOk-t&AOk- &- more");
	conv("plain", "plain");
	const char *bad[] = { "\xc3", "\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "a\xff" "b" };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct buf a = { 0 };
		ok(imap_utf8_to_mutf7(&a, str_from_cstr(bad[i])) < 0, "invalid UTF-8 %zu refused", i);
		buf_free(&a);
	}
	struct buf b = { 0 };
	ok(imap_mutf7_to_utf8(&b, str_from_cstr("&APw")) < 0 && b.len == 4 && memcmp(buf_ptr(&b), "&APw", 4) == 0,
	   "invalid modified UTF-7 is passed as it is");
	buf_free(&b);
	char big[IMAP_UTF8_NAME_MAX + 2];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	struct buf c = { 0 };
	ok(imap_utf8_to_mutf7(&c, str_from_cstr(big)) < 0, "a name over IMAP_UTF8_NAME_MAX bytes refused");
	buf_free(&c);
}

int main(void)
{
	test_utf7();
	/* modified UTF-7 decoded (RFC 3501 5.1.3, RFC 2152) */
	name("Entw&APw-rfe", 0);
	name("&ZeVnLIqe-", 0);
	name("a&-b", 0);
	name("peter.mail.&U,BTFw-.&ZeVnLIqe-", 0);
	name("&2D3eAA-", 0);                    /* a surrogate pair (U+1F600) */
	name("&U,BTFw-&ZeVnLIqe-", -1);          /* two runs touching */
	name("&AGE-", -1);                      /* "a" encoded */
	name("&2AA-", -1);                      /* a lone high surrogate */
	name("&3gA-", -1);                      /* a lone low surrogate */
	name("&APw", -1);                       /* no "-" */
	name("&APx-", -1);                      /* padding bits not zero */
	name("&AP-", -1);                       /* not a whole unit */
	match("*", "a.b.c", true);
	match("%", "a", true);
	match("%", "a.b", false);
	match("a.%", "a.b", true);
	match("a.%", "a.b.c", false);
	match("a.*", "a.b.c", true);
	match("*c", "a.b.c", true);
	match("%c", "a.b.c", false);
	match("", "", true);
	match("", "a", false);
	match("a", "a", true);
	match("a", "ab", false);
	match("a*b*c", "axxbyyc", true);
	match("a*b*c", "axxbyy", false);
	match("Sent", "sent", false);
	/* hostile: exponential for a backtracking matcher, linear here */
	char pat[201], nm[256];
	for (int i = 0; i < 200; i += 2)
		memcpy(pat + i, "*a", 2);
	pat[200] = '\0';
	memset(nm, 'a', 254);
	nm[254] = 'b';
	nm[255] = '\0';
	clock_t t0 = clock();
	match(pat, nm, false);
	ok((double)(clock() - t0) / CLOCKS_PER_SEC < 0.5, "100 stars against 255 bytes: fast");
	name("INBOX", 0);
	name("inbox", 0);
	name("Sent", 0);
	name("Lists.lua", 0);
	name("&Jjo-", 0);
	name("a&Jjo-b.c&AOQ-", 0);
	name("", -1);
	name(".x", -1);
	name("x.", -1);
	name("a..b", -1);
	name("~x", -1);
	name("a/b", -1);
	name("../x", -1);
	name("a*", -1);
	name("a%", -1);
	name("a&Jjo", -1);
	name("&-", 0);
	name("a&AOQ-b", 0);
	name("&AOQA6Q-", 0);
	name("&AOQAyQ-", 0);
	name("&ZeVnLIqe-", 0);
	name("&ZeVnLIq-", -1);
	name("&A-", -1);
	name("&A!-", -1);
	name("&Jj/-", -1);
	name("\x7f", -1);
	name("caf\xc3\xa9", -1);
	char longname[300];
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	name(longname, -1);
	const char *special[][2] = { { "Drafts", "\\Drafts" }, { "Sent", "\\Sent" }, { "Junk", "\\Junk" },
				     { "Trash", "\\Trash" }, { "Archive", "\\Archive" } };
	for (size_t i = 0; i < ARRAY_SIZE(special); i++) {
		const char *a = imap_folder_special_use(special[i][0]);
		ok(a && strcmp(a, special[i][1]) == 0, "SPECIAL-USE %s", special[i][1]);
	}
	ok(imap_folder_special_use("Work") == NULL, "no SPECIAL-USE for Work");
	return tap_done();
}
