/* test_mime_addr.c - RFC 5322 address lists: display names (quoted,
 * encoded), comments, groups, routes, and the garbage real mail has. Each
 * case lists entries as "kind|name|name_raw|local|domain|route|flags". */
#include "mime/mime.h"
#include "tap.h"

#include <stdio.h>

static struct arena *A;

static void entry_fmt(const struct mime_addr *e, char *buf, size_t size)
{
	static const char kinds[] = { 'M', 'G', 'E' };
	snprintf(buf, size, "%c|%.*s|%.*s|%.*s|%.*s|%.*s|%x", kinds[e->kind], STR_FMT(e->name),
		 STR_FMT(e->name_raw), STR_FMT(e->local), STR_FMT(e->domain), STR_FMT(e->route),
		 e->flags);
}

/* want: entries separated by "  ". */
static void check(const char *in, const char *want, const char *what)
{
	struct mime_addr_list l;
	mime_addr_parse(A, str_from_cstr(in), &l);
	char got[2048] = "", one[512];
	size_t len = 0;
	for (size_t i = 0; i < l.count && len < sizeof(got); i++) {
		entry_fmt(&l.v[i], one, sizeof(one));
		len += (size_t)snprintf(got + len, sizeof(got) - len, "%s%s", i ? "  " : "", one);
	}
	is_str(got, want, "%s", what);
}

#define BAD "4"      /* MIME_ADDR_BAD_SYNTAX */
#define CMT "8"      /* MIME_ADDR_NAME_FROM_COMMENT */

static void test_simple(void)
{
	check("alice@example.org", "M|||alice|example.org||0", "bare address");
	check("<alice@example.org>", "M|||alice|example.org||0", "angle-addr");
	check("Alice Smith <alice@example.org>", "M|Alice Smith|Alice Smith|alice|example.org||0",
	      "name-addr");
	check("\"Smith, Alice\" <alice@example.org>, bob@example.net",
	      "M|Smith, Alice|Smith, Alice|alice|example.org||0  M|||bob|example.net||0",
	      "comma inside quotes does not split");
	check("\"A \\\"Q\\\" B\" <a@b.c>", "M|A \"Q\" B|A \"Q\" B|a|b.c||0", "quoted-pair in name");
	check("John Q. Public <jqp@example.com>",
	      "M|John Q. Public|John Q. Public|jqp|example.com||0", "unquoted dot in name (obs-phrase)");
	check("  Alice   Smith  <alice@example.org>  ", "M|Alice Smith|Alice Smith|alice|example.org||0",
	      "whitespace collapsed");
	check("a@b, , ,c@d", "M|||a|b||0  M|||c|d||0", "empty entries skipped");
	check("", "", "empty list");
}

static void test_encoded(void)
{
	check("=?utf-8?q?J=C3=B6rg?= <j@example.de>",
	      "M|J\xc3\xb6rg|=?utf-8?q?J=C3=B6rg?=|j|example.de||0", "encoded name: raw kept for IMAP");
	check("\"=?iso-8859-1?q?Andr=E9?= Muller\" <a@m.fr>",
	      "M|Andr\xc3\xa9 Muller|=?iso-8859-1?q?Andr=E9?= Muller|a|m.fr||0",
	      "encoded word inside quotes decoded (like MUAs)");
	check("=?utf-8?b?5byg5LiJ?= =?utf-8?b?5p2O5Zub?= <z@example.cn>",
	      "M|\xe5\xbc\xa0\xe4\xb8\x89\xe6\x9d\x8e\xe5\x9b\x9b|=?utf-8?b?5byg5LiJ?= "
	      "=?utf-8?b?5p2O5Zub?=|z|example.cn||0", "adjacent encoded words joined");
}

static void test_comments(void)
{
	check("alice@example.org (Alice Smith)",
	      "M|Alice Smith|Alice Smith|alice|example.org||" CMT, "comment as name (Dovecot)");
	check("Alice (the boss) <alice@example.org>",
	      "M|Alice|Alice|alice|example.org||0", "comment inside phrase dropped");
	check("alice(x)@(y)example.org", "M|y|y|alice|example.org||" CMT,
	      "comments inside addr-spec removed");
	check("<alice@example.org> (Alice)", "M|Alice|Alice|alice|example.org||" CMT,
	      "comment after angle-addr as name");
	check("(just a comment)", "", "a lone comment is not an address");
	check("a@b (nested (comment) here)", "M|nested (comment) here|nested (comment) here|a|b||" CMT,
	      "nested comment");
}

static void test_groups(void)
{
	check("undisclosed-recipients:;", "G|undisclosed-recipients|undisclosed-recipients||||0  E||||||0",
	      "empty group");
	check("Team: a@x.org, \"B\" <b@x.org>; c@y.org",
	      "G|Team|Team||||0  M|||a|x.org||0  M|B|B|b|x.org||0  E||||||0  M|||c|y.org||0",
	      "group with members, then a mailbox");
	check("Friends: a@x.org", "G|Friends|Friends||||0  M|||a|x.org||0  E||||||0",
	      "unclosed group closed at the end");
	struct mime_addr_list l;
	mime_addr_parse(A, STR_LIT("Friends: a@x.org"), &l);
	ok(l.flags & MIME_ADDR_GROUP_UNCLOSED, "unclosed group flagged");
	check("a@b; c@d", "M|||a|b||0  M|||c|d||0", "stray ';' outside a group ignored");
}

static void test_garbage(void)
{
	check("<@relay.example,@r2.example:joe@example.com>",
	      "M|||joe|example.com|@relay.example,@r2.example|0", "obsolete route");
	check("Alice <alice@example.org", "M|Alice|Alice|alice|example.org||" BAD, "missing '>'");
	check("John Doe john@example.com", "M|John Doe|John Doe|john|example.com||" BAD,
	      "name without angle brackets");
	check("foo@bar@example.com", "M|||foo@bar|example.com||0", "several '@': split at the last");
	check("\"john doe\"@example.com", "M|||john doe|example.com||0", "quoted local part");
	check("alice", "M|||alice|||1", "no domain");
	check("@example.com", "M||||example.com||2", "no local part");
	check("<>", "M||||||3", "null address");
	check("Alice <a@b> trailing", "M|Alice|Alice|a|b||" BAD, "text after '>' flagged");
	check("\"unterminated <a@b>", "M|||unterminated <a@b>|||5",
	      "unterminated quote swallows the rest");
	check("a@b,c@d,e@f", "M|||a|b||0  M|||c|d||0  M|||e|f||0", "no spaces");
	check("Joe <joe@[192.0.2.1]>", "M|Joe|Joe|joe|[192.0.2.1]||0", "domain literal");
	check("john . doe @ example . com", "M|||john.doe|example.com||0", "obs CFWS around dots");
	struct mime_addr_list l;
	mime_addr_parse(A, STR_LIT("Alice Smith <alice@example.org>"), &l);
	ok(l.count == 1 && l.v[0].addr.len == 17 && memcmp(l.v[0].addr.p, "alice@example.org", 17) == 0,
	   "addr is local@domain");
	ok(l.v[0].raw.len == 31, "raw is the whole entry");
	mime_addr_parse(A, STR_LIT("\"x\"@example.com"), &l);
	ok(l.v[0].addr.len == 13 && memcmp(l.v[0].addr.p, "x@example.com", 13) == 0,
	   "addr rebuilt when the source has quotes");
}

int main(void)
{
	A = arena_new();
	test_simple();
	test_encoded();
	test_comments();
	test_groups();
	test_garbage();
	arena_destroy(&A);
	return tap_done();
}
