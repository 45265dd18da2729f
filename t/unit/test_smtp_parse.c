/* test_smtp_parse.c - SMTP command splitting. */
#include "smtp/smtp.h"
#include "tap.h"

static void check(const char *line, int want_rc, const char *verb, const char *args)
{
	struct smtp_cmd cmd;
	int rc = smtp_cmd_parse(str_from_cstr(line), &cmd);
	if (!is_int(rc, want_rc, "parse rc for \"%s\"", line) || rc != 0)
		return;
	char v[64], a[256];
	snprintf(v, sizeof(v), "%.*s", STR_FMT(cmd.verb));
	snprintf(a, sizeof(a), "%.*s", STR_FMT(cmd.args));
	is_str(v, verb, "verb of \"%s\"", line);
	is_str(a, args, "args of \"%s\"", line);
}

int main(void)
{
	check("EHLO client.example", 0, "EHLO", "client.example");
	check("noop", 0, "noop", "");
	check("MAIL FROM:<a@b> SIZE=10", 0, "MAIL", "FROM:<a@b> SIZE=10");
	check("HELO   spaced   ", 0, "HELO", "spaced");
	check("RSET\t", 0, "RSET", "");
	check("", -1, "", "");
	check(" NOOP", -1, "", "");
	check("NO@OP", -1, "", "");
	check("NOOP \x01", -1, "", "");
	struct smtp_cmd cmd;
	ok(smtp_cmd_parse((struct str){ "NO\0OP", 5 }, &cmd) == -1, "NUL byte rejected");
	ok(smtp_cmd_parse(STR_LIT("DATA\x7f"), &cmd) == -1, "DEL rejected");
	return tap_done();
}
