/* test_imap_folder.c - the pure parts of IMAP folder handling: LIST
 * pattern matching (RFC 3501 6.3.8: "*" matches anything, "%" not the
 * hierarchy separator; linear time on hostile patterns) and mailbox name
 * checks (Maildir++ safety, modified UTF-7 framing). */
#include "imap/imap_folder.h"
#include "core/util.h"
#include "tap.h"

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

int main(void)
{
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
