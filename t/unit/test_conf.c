/* test_conf.c - config schema: defaults, every kind of error with its
 * file:line, and the key locator. */
#include "core/conf.h"
#include "core/conf_locate.h"
#include "tap.h"

#include <stdlib.h>

static const char *good =
	"hostname = 'mx.test'\n"
	"workers = 3\n"
	"smtp = { line_max = 1000 }\n"
	"listen = {\n"
	"  { address = '127.0.0.1', port = 2525, protocol = 'smtp' },\n"
	"  { path = '/tmp/x.sock', protocol = 'lmtp' },\n"
	"}\n";

static struct conf *load(const char *src, char **errors)
{
	return conf_load_string("test.conf", src, strlen(src), false, errors);
}

static void expect_error(const char *name, const char *src, const char *needle)
{
	char *errors = NULL;
	struct conf *c = load(src, &errors);
	ok(c == NULL, "%s: rejected", name);
	int found = errors && strstr(errors, needle) != NULL;
	if (!ok(found, "%s: error mentions \"%s\"", name, needle))
		printf("#   errors: %s\n", errors ? errors : "(none)");
	conf_free(&c);
	free(errors);
}

static void test_good(void)
{
	char *errors = NULL;
	struct conf *c = load(good, &errors);
	if (!ok(c != NULL, "good config loads"))
		printf("# %s\n", errors);
	if (c == NULL)
		return;
	is_str(c->hostname, "mx.test", "hostname");
	is_int(c->workers, 3, "workers");
	is_int(c->smtp.line_max, 1000, "smtp.line_max set");
	is_int(c->smtp.errors_max, 20, "smtp.errors_max default");
	is_int(c->smtp.idle_timeout, 300, "smtp.idle_timeout default");
	is_int(c->shutdown_timeout, 30, "shutdown_timeout default");
	is_int(c->listen_count, 2, "two listeners");
	is_int(c->listen[0].port, 2525, "listener port");
	is_int(c->listen[0].protocol, PROTO_SMTP, "listener protocol");
	is_int(c->listen[0].tls, TLSMODE_NONE, "listener tls default");
	is_int(c->listen[0].line, 5, "listener line recorded");
	is_str(c->listen[1].path, "/tmp/x.sock", "unix listener path");
	is_str(c->user, "vmail", "user default");
	conf_free(&c);
	ok(c == NULL, "conf_free sets NULL");
}

static void test_errors(void)
{
	expect_error("unknown top-level key", "hostname = 'x'\nbogus = 1\n", "test.conf:2: bogus: unknown key");
	expect_error("unknown listener key",
		     "listen = {\n  { address = '127.0.0.1',\n    port = 25,\n    colour = 'red',\n    protocol = 'smtp' },\n}\n",
		     "test.conf:4: listen.1.colour: unknown key");
	expect_error("wrong type", "listen = {\n  { address = '127.0.0.1', port = 'abc', protocol = 'smtp' },\n}\n",
		     "test.conf:2: listen.1.port: expected an integer, got string");
	expect_error("out of range", "workers = -1\n", "test.conf:1: workers: -1 is out of range");
	expect_error("not an integer", "workers = 1.5\n", "test.conf:1: workers: 1.5 is out of range");
	expect_error("bad enum", "listen = {\n  { address = '127.0.0.1', port = 25, protocol = 'gopher' } }\n",
		     "test.conf:2: listen.1.protocol: expected one of");
	expect_error("syntax error", "hostname = 'x'\nworkers = = 2\n", "test.conf:2:");
	expect_error("runtime error in sandbox", "hostname = 'x'\n\nos.execute('true')\n", "test.conf:3:");
	expect_error("endless loop", "while true do end\n", "runs too long");
	expect_error("missing listeners", "hostname = 'x'\n", "listen: at least one listener");
	expect_error("tls without cert",
		     "listen = { { address = '127.0.0.1', port = 25, protocol = 'smtp', tls = 'starttls' } }\n",
		     "needs tls.cert");
	expect_error("nested table type", "smtp = 5\n", "test.conf:1: smtp: expected a table, got number");
	expect_error("list is not a map", "listen = { a = 1 }\n", "listen: expected a list");
	expect_error("duplicate listener",
		     "listen = {\n { address = '127.0.0.1', port = 25, protocol = 'smtp' },\n"
		     " { address = '127.0.0.1', port = 25, protocol = 'lmtp' },\n}\n",
		     "test.conf:3: listen.2: same address as listen.1");
	/* Two problems: both reported. */
	char *errors = NULL;
	struct conf *c = load("a = 1\nb = 2\nlisten = {}\n", &errors);
	ok(c == NULL && errors && strstr(errors, "test.conf:1: a:") && strstr(errors, "test.conf:2: b:"),
	   "two errors are both reported");
	free(errors);
}

static void test_locate(void)
{
	const char *src =
		"-- comment with x = 1\n"
		"a = 1\n"
		"--[[ long\ncomment b = 2 ]]\n"
		"t = {\n"
		"  k = [[long\nstring]],\n"
		"  { 'p' },\n"
		"  n = { m = \"q\" },\n"
		"}\n";
	struct conf_locs *l = conf_locate(src, strlen(src));
	is_int(conf_locs_line(l, "a"), 2, "top-level key");
	is_int(conf_locs_line(l, "x"), 0, "key inside comment ignored");
	is_int(conf_locs_line(l, "b"), 0, "key inside long comment ignored");
	is_int(conf_locs_line(l, "t.k"), 6, "table key");
	is_int(conf_locs_line(l, "t.1"), 8, "positional item after a long string");
	is_int(conf_locs_line(l, "t.n.m"), 9, "nested key");
	is_int(conf_locs_line(l, "t.n.zzz"), 9, "unknown falls back to ancestor");
	conf_locs_free(&l);
	ok(l == NULL, "locs freed");

	/* Found by fuzz_conf_locate: nesting deeper than the tracker's stack. */
	char deep[1024];
	size_t n = 0;
	n += (size_t)snprintf(deep, sizeof(deep), "t = ");
	for (int i = 0; i < 200; i++)
		deep[n++] = '{';
	for (int i = 0; i < 200; i++)
		deep[n++] = '}';
	n += (size_t)snprintf(deep + n, sizeof(deep) - n, "\nafter = 1\n");
	l = conf_locate(deep, n);
	is_int(conf_locs_line(l, "after"), 2, "key after 200 nested braces still located");
	conf_locs_free(&l);
}

int main(void)
{
	test_good();
	test_errors();
	test_locate();
	return tap_done();
}
