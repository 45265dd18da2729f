/* test_imap_parse.c - the IMAP command parser fed whole, one byte at a time
 * and in 3- and 7-byte chunks: atoms, quoted strings, literals ({n} and
 * {n+}), NIL, nested lists, fetch sections with brackets, limits, hostile
 * input, error recovery; announced literals (buffered, sunk as chunks,
 * refused, undecided) for APPEND's streaming; sequence sets; response
 * quoting. */
#include "imap/imap.h"
#include "core/util.h"
#include "tap.h"

#include <stdlib.h>

static const struct imap_parse_limits lim = {
	.line_max = 200, .literal_max = 100, .cmd_max = 400, .args_max = 40, .depth_max = 4,
};

/* Renders parsed arguments: atom, "quoted", {literal}, NIL, (list). */
static void render(const struct imap_arg *a, size_t from, size_t to, struct buf *out)
{
	for (size_t i = from; i < to; i += a[i].span) {
		if (i > from)
			buf_append_str(out, " ");
		switch (a[i].type) {
		case IMAP_ARG_ATOM:
			buf_printf(out, "%.*s", STR_FMT(a[i].s));
			break;
		case IMAP_ARG_QUOTED:
			buf_printf(out, "\"%.*s\"", STR_FMT(a[i].s));
			break;
		case IMAP_ARG_LITERAL:
			buf_printf(out, "{%.*s}", STR_FMT(a[i].s));
			break;
		case IMAP_ARG_NIL:
			buf_append_str(out, "NIL");
			break;
		case IMAP_ARG_LIST:
			buf_append_str(out, "(");
			render(a, i + 1, i + a[i].span, out);
			buf_append_str(out, ")");
			break;
		}
	}
}

/* What the test does with announced literals: one letter per literal,
 * b(uffer), s(ink), r(efuse), n(o decision: feed on); NULL = no announce. */
struct policy {
	const char *letters;
	size_t next;
	struct buf data;        /* the sunk literal so far */
};

static bool record(struct imap_parser *p, enum imap_parse_result r, struct policy *pol,
		   struct buf *log);

static void top_args(struct imap_parser *p, struct buf *log)
{
	const struct imap_arg *a;
	size_t n;
	if (!imap_parser_partial(p, &a, &n)) {
		buf_append_str(log, " list");
		return;
	}
	buf_append_str(log, " [");
	render(a, 0, n, log);
	buf_append_str(log, "]");
}

/* ANNOUNCE: logged as "ANN n[+] [args so far]", then the policy's decision.
 * True if that was a fatal error. */
static bool announced(struct imap_parser *p, struct policy *pol, struct buf *log)
{
	char d = pol->letters[pol->next] ? pol->letters[pol->next++] : 'b';
	buf_printf(log, "ANN %llu%s", (unsigned long long)p->lit_size, p->lit_plus ? "+" : "");
	top_args(p, log);
	buf_append_str(log, "|");
	if (d == 'r') {
		imap_parser_literal_refuse(p);
		buf_append_str(log, "REFUSED|");
	} else if (d != 'n') {
		return record(p, imap_parser_literal(p, d == 's' ? IMAP_LIT_SINK : IMAP_LIT_BUFFER),
			      pol, log);
	}
	return false;
}

/* A sunk literal is logged once complete: "DATA bytes" (or its size). */
static void chunk(struct imap_parser *p, struct policy *pol, struct buf *log)
{
	buf_append(&pol->data, p->chunk.p, p->chunk.len);
	if (p->lit_left > 0)
		return;
	if (pol->data.len <= 32)
		buf_printf(log, "DATA %s|", buf_ptr(&pol->data));
	else
		buf_printf(log, "DATA %zu bytes|", pol->data.len);
	buf_clear(&pol->data);
}

/* Records an event as text: "OK tag NAME args|", "LIT n|", "ERR code tag
 * text|". True after a fatal error (the session would close). */
static bool record(struct imap_parser *p, enum imap_parse_result r, struct policy *pol,
		   struct buf *log)
{
	switch (r) {
	case IMAP_PARSE_OK:
		buf_printf(log, "OK %s %s", p->tag, p->name);
		if (p->nout) {
			buf_append_str(log, " ");
			render(p->out, 0, p->nout, log);
		}
		buf_append_str(log, "|");
		break;
	case IMAP_PARSE_LITERAL:
		buf_printf(log, "LIT %llu|", (unsigned long long)p->lit_size);
		break;
	case IMAP_PARSE_ERROR:
		buf_printf(log, "ERR %d %s %s|", (int)p->error, p->tag, p->error_text);
		return p->error == IMAP_ERR_FATAL;
	case IMAP_PARSE_ANNOUNCE:
		return announced(p, pol, log);
	case IMAP_PARSE_CHUNK:
		chunk(p, pol, log);
		break;
	case IMAP_PARSE_AGAIN:
		break;
	}
	return false;
}

/* Feeds in in chunks of chunk bytes (0 = all), recording every event; a
 * fatal error ends it (the session closes). */
static void run_policy(const char *in, size_t inlen, size_t chunk, const char *letters,
		       struct buf *log)
{
	struct imap_parser p;
	struct policy pol = { .letters = letters ? letters : "" };
	imap_parser_init(&p, &lim);
	imap_parser_announce(&p, letters != NULL);
	size_t pos = 0;
	while (pos < inlen) {
		size_t n = chunk && chunk < inlen - pos ? chunk : inlen - pos;
		size_t off = 0;
		while (off < n) {
			size_t used = 0;
			enum imap_parse_result r = imap_parser_feed(&p, in + pos + off, n - off, &used);
			off += used;
			if (record(&p, r, &pol, log))
				goto out;
			if (used == 0 && r == IMAP_PARSE_AGAIN)
				break;
		}
		pos += n;
	}
out:
	buf_free(&pol.data);
	imap_parser_free(&p);
}

static void run(const char *in, size_t inlen, size_t chunk, struct buf *log)
{
	run_policy(in, inlen, chunk, NULL, log);
}

static void parse_policy(const char *name, const char *in, size_t len, const char *letters,
			 const char *want)
{
	size_t chunks[] = { 0, 1, 3, 7 };
	for (size_t i = 0; i < ARRAY_SIZE(chunks); i++) {
		struct buf log = { 0 };
		run_policy(in, len, chunks[i], letters, &log);
		if (!ok(strcmp(buf_ptr(&log), want) == 0, "%s (chunk %zu)", name, chunks[i]))
			printf("#   got  \"%s\"\n#   want \"%s\"\n", buf_ptr(&log), want);
		buf_free(&log);
	}
}

static void parse(const char *name, const char *in, const char *want)
{
	parse_policy(name, in, strlen(in), NULL, want);
}

static void commands(void)
{
	parse("simple", "a1 NOOP\r\n", "OK a1 NOOP|");
	parse("bare LF", "a1 noop\n", "OK a1 noop|");
	parse("empty lines ignored", "\r\n\r\na CAPABILITY\r\n", "OK a CAPABILITY|");
	parse("atoms and quoted", "a LOGIN john \"se\\\"cr\\\\et\"\r\n",
	      "OK a LOGIN john \"se\"cr\\et\"|");
	parse("NIL and lists", "a X (a (b c) NIL \"q\" ()) nil\r\n",
	      "OK a X (a (b c) NIL \"q\" ()) NIL|");
	parse("sync literal", "a LOGIN {4}\r\njohn {3}\r\nx y\r\n", "LIT 4|LIT 3|OK a LOGIN {john} {x y}|");
	parse("LITERAL+", "a LOGIN {4+}\r\njohn {2+}\r\n\r\n\r\n", "OK a LOGIN {john} {\r\n}|");
	parse("empty literal", "a X {0}\r\n\r\n", "LIT 0|OK a X {}|");
	parse("literal in a list", "a X ({3+}\r\nabc)\r\n", "OK a X ({abc})|");
	parse("fetch section with spaces and parens",
	      "a UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (From To)]<0.100>)\r\n",
	      "OK a UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (From To)]<0.100>)|");
	parse("flags and wildcards", "a STORE 1 +FLAGS (\\Seen \\Deleted)\r\nb LIST \"\" %\r\n",
	      "OK a STORE 1 +FLAGS (\\Seen \\Deleted)|OK b LIST \"\" %|");
	parse("pipelined", "a NOOP\r\nb NOOP\r\nc LOGOUT\r\n", "OK a NOOP|OK b NOOP|OK c LOGOUT|");
	/* RFC 3516 literal8; "~" alone or before anything else is an atom */
	parse("literal8", "a APPEND INBOX ~{3}\r\nabc\r\n", "LIT 3|OK a APPEND INBOX {abc}|");
	parse("literal8 non-sync in a list", "a X (~{2+}\r\nab ~u)\r\n", "OK a X ({ab} ~u)|");
	parse("a ~ atom", "a SELECT ~user\r\nb X ~\r\n", "OK a SELECT ~user|OK b X ~|");
	parse("8-bit in quoted", "a X \"\xc3\xa4\"\r\n", "OK a X \"\xc3\xa4\"|");
}

static void errors(void)
{
	parse("missing name", "a\r\nb NOOP\r\n", "ERR 1 a Missing command name|OK b NOOP|");
	parse("bad tag", "a+ NOOP\r\nb NOOP\r\n", "ERR 1  Invalid tag|OK b NOOP|");
	parse("star tag", "* NOOP\r\n", "ERR 1  Invalid tag|");
	parse("unclosed list", "a X (b\r\nc NOOP\r\n", "ERR 1 a Unclosed list|OK c NOOP|");
	parse("stray paren", "a X b)\r\nc NOOP\r\n", "ERR 1 a Unexpected ')'|OK c NOOP|");
	parse("unterminated quote", "a X \"b\r\nc NOOP\r\n",
	      "ERR 1 a Unterminated quoted string|OK c NOOP|");
	parse("bad escape", "a X \"\\n\"\r\nc NOOP\r\n", "ERR 1 a Invalid escape in quoted string|OK c NOOP|");
	parse("double space", "a X  b\r\nc NOOP\r\n", "ERR 1 a Invalid character in argument|OK c NOOP|");
	parse("CR without LF", "a X\rb\r\nc NOOP\r\n", "ERR 1 a CR without LF|OK c NOOP|");
	parse("literal not at end", "a X {3}b\r\nc NOOP\r\n",
	      "ERR 1 a Literal size not at the end of the line|OK c NOOP|");
	parse("literal bad size", "a X {x}\r\nc NOOP\r\n", "ERR 1 a Invalid literal size|OK c NOOP|");
	parse("literal huge digits", "a X {99999999999999999999999}\r\nc NOOP\r\n",
	      "ERR 1 a Invalid literal size|OK c NOOP|");
	parse("sync literal too big: TOOBIG, next command goes on", "a APPEND x {101}\r\nc NOOP\r\n",
	      "ERR 2 a Literal too big|OK c NOOP|");
	parse("non-sync literal too big: fatal", "a APPEND x {101+}\r\n", "ERR 3 a Literal too big|");
	parse("deep nesting", "a X ((((( x)))))\r\nc NOOP\r\n", "ERR 1 a Lists nested too deeply|OK c NOOP|");
	parse("NUL in atom", "a X b\001c\r\nc NOOP\r\n", "ERR 1 a Invalid character in atom|OK c NOOP|");
	parse("name too long", "a ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJ\r\nc NOOP\r\n",
	      "ERR 1 a Invalid command name|OK c NOOP|");
	/* A line over line_max is fatal (the session closes). */
	char big[400];
	memset(big, 'x', sizeof(big));
	memcpy(big, "a X ", 4);
	memcpy(big + sizeof(big) - 2, "\r\n", 2);
	struct buf log = { 0 };
	run(big, sizeof(big), 0, &log);
	is_str(buf_ptr(&log), "ERR 3 a Command line too long|", "overlong line: fatal");
	buf_free(&log);
	/* Too many arguments. */
	struct buf many = { 0 };
	buf_append_str(&many, "a X");
	for (int i = 0; i < 45; i++)
		buf_append_str(&many, " a");
	buf_append_str(&many, "\r\nb NOOP\r\n");
	parse("too many arguments", buf_ptr(&many), "ERR 1 a Too many arguments|OK b NOOP|");
	buf_free(&many);
	/* cmd_max counts literals: four literals of 100 bytes pass
	 * literal_max, not cmd_max. */
	struct buf lits = { 0 };
	buf_append_str(&lits, "a X");
	for (int i = 0; i < 4; i++) {
		buf_append_str(&lits, " {100+}\r\n");
		for (int j = 0; j < 100; j++)
			buf_append_str(&lits, "y");
	}
	buf_append_str(&lits, "\r\n");
	log = (struct buf){ 0 };
	run(buf_ptr(&lits), lits.len, 0, &log);
	is_str(buf_ptr(&log), "ERR 3 a Literal too big|", "literals past cmd_max: fatal");
	buf_free(&log);
	buf_free(&lits);
}

/* Literal announcements (APPEND streaming): the session sees the command so
 * far and buffers, sinks or refuses each literal. */
static void announce(void)
{
	const char *in = "a LOGIN {4}\r\njohn {3}\r\nx y\r\n";
	parse_policy("announced, buffered", in, strlen(in), "bb",
		     "ANN 4 []|LIT 4|ANN 3 [{john}]|LIT 3|OK a LOGIN {john} {x y}|");
	parse_policy("announced, no decision: buffered", in, strlen(in), "nn",
		     "ANN 4 []|LIT 4|ANN 3 [{john}]|LIT 3|OK a LOGIN {john} {x y}|");
	in = "a APPEND x (\\Seen) {5}\r\nhello (\\Draft) \"d\" {3+}\r\na\r\n\r\n";
	parse_policy("MULTIAPPEND sunk: chunks, empty literal arguments", in, strlen(in), "ss",
		     "ANN 5 [x (\\Seen)]|LIT 5|DATA hello|"
		     "ANN 3+ [x (\\Seen) {} (\\Draft) \"d\"]|DATA a\r\n|"
		     "OK a APPEND x (\\Seen) {} (\\Draft) \"d\" {}|");
	in = "a APPEND x {5}\r\nb NOOP\r\n";
	parse_policy("refused: the next command follows", in, strlen(in), "r",
		     "ANN 5 [x]|REFUSED|OK b NOOP|");
	in = "a APPEND x {0}\r\n\r\n";
	parse_policy("empty literal sunk", in, strlen(in), "s", "ANN 0 [x]|LIT 0|OK a APPEND x {}|");
	in = "a APPEND x ({3}\r\nabc)\r\n";
	parse_policy("inside a list: no partial view", in, strlen(in), "b",
		     "ANN 3 list|LIT 3|OK a APPEND x ({abc})|");
	in = "a APPEND x {101}\r\nc NOOP\r\n";
	parse_policy("buffered: literal_max applies", in, strlen(in), "b",
		     "ANN 101 [x]|ERR 2 a Literal too big|OK c NOOP|");
	/* A sunk literal is not held: neither literal_max nor cmd_max. */
	struct buf big = { 0 };
	buf_append_str(&big, "a APPEND x {1000}\r\n");
	for (int i = 0; i < 1000; i++)
		buf_append_str(&big, "y");
	buf_append_str(&big, " {1000+}\r\n");
	for (int i = 0; i < 1000; i++)
		buf_append_str(&big, "z");
	buf_append_str(&big, "\r\nb NOOP\r\n");
	parse_policy("sunk: past literal_max and cmd_max", buf_ptr(&big), big.len, "ss",
		     "ANN 1000 [x]|LIT 1000|DATA 1000 bytes|ANN 1000+ [x {}]|DATA 1000 bytes|"
		     "OK a APPEND x {} {}|OK b NOOP|");
	buf_free(&big);
	/* Too many arguments at a literal: a synchronizing one was not sent
	 * (the session goes on), a non-synchronizing one is fatal (its bytes
	 * must not be read as commands). */
	struct buf many = { 0 };
	buf_append_str(&many, "a X");
	for (int i = 0; i < 40; i++)
		buf_append_str(&many, " a");
	size_t head = many.len;
	buf_append_str(&many, " {3}\r\nb NOOP\r\n");
	parse("too many arguments at a sync literal", buf_ptr(&many),
	      "ERR 1 a Too many arguments|OK b NOOP|");
	many.len = head;
	buf_append_str(&many, " {9+}\r\nb NOOP\r\n\r\n");
	parse("too many arguments at a non-sync literal: fatal", buf_ptr(&many),
	      "ERR 3 a Too many arguments|");
	buf_free(&many);
}

static void line_mode(void)
{
	struct imap_parser p;
	size_t used;
	imap_parser_init(&p, &lim);
	const char *in = "a AUTHENTICATE PLAIN\r\n";
	ok(imap_parser_feed(&p, in, strlen(in), &used) == IMAP_PARSE_OK, "AUTHENTICATE parsed");
	imap_parser_want_line(&p);
	in = "dGVzdA==\r\nb NOOP\r\n";
	ok(imap_parser_feed(&p, in, strlen(in), &used) == IMAP_PARSE_OK && used == 10 &&
	   p.line.len == 8 && memcmp(p.line.p, "dGVzdA==", 8) == 0, "line mode: one line");
	ok(imap_parser_feed(&p, in + used, strlen(in) - used, &used) == IMAP_PARSE_OK &&
	   strcmp(p.name, "NOOP") == 0, "then commands again");
	imap_parser_want_line(&p);
	ok(imap_parser_feed(&p, "DO", 2, &used) == IMAP_PARSE_AGAIN, "line mode: partial");
	ok(imap_parser_feed(&p, "NE\n", 3, &used) == IMAP_PARSE_OK && p.line.len == 4,
	   "line mode: resumed (DONE)");
	imap_parser_free(&p);
}

static void seqsets(void)
{
	struct imap_seqset s;
	ok(imap_seqset_parse(STR_LIT("1:*"), 10, &s) == 0 && s.n == 1, "1:*");
	ok(imap_seqset_contains(&s, 1, 5) && imap_seqset_contains(&s, 5, 5) &&
	   !imap_seqset_contains(&s, 6, 5), "1:* with 5 messages");
	ok(!imap_seqset_contains(&s, 1, 0), "1:* in an empty mailbox matches nothing");
	imap_seqset_free(&s);
	ok(imap_seqset_parse(STR_LIT("2,4:7,9"), 10, &s) == 0 && s.n == 3, "2,4:7,9");
	ok(imap_seqset_contains(&s, 2, 20) && !imap_seqset_contains(&s, 3, 20) &&
	   imap_seqset_contains(&s, 5, 20) && imap_seqset_contains(&s, 9, 20) &&
	   !imap_seqset_contains(&s, 10, 20), "2,4:7,9 membership");
	imap_seqset_free(&s);
	ok(imap_seqset_parse(STR_LIT("7:4"), 10, &s) == 0 && imap_seqset_contains(&s, 5, 9),
	   "7:4 is 4:7 (RFC 3501 9)");
	imap_seqset_free(&s);
	ok(imap_seqset_parse(STR_LIT("*:3"), 10, &s) == 0 && imap_seqset_contains(&s, 3, 4) &&
	   imap_seqset_contains(&s, 4, 4) && !imap_seqset_contains(&s, 2, 4), "*:3");
	imap_seqset_free(&s);
	const char *bad[] = { "", "0", "1:0", "1,", ",1", "1::2", "a", "1:2:3", "-1", "4294967296",
			      "01", "1 2" };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		ok(imap_seqset_parse(str_from_cstr(bad[i]), 10, &s) < 0 && s.r == NULL,
		   "bad sequence set \"%s\"", bad[i]);
	ok(imap_seqset_parse(STR_LIT("1,2,3"), 2, &s) < 0, "more ranges than max");
	ok(imap_seqset_parse(STR_LIT("4294967295"), 2, &s) < 0, "2^32-1 is reserved");
	ok(imap_seqset_parse(STR_LIT("4294967294"), 2, &s) == 0, "2^32-2 ok");
	imap_seqset_free(&s);
}

static void quoting(void)
{
	struct buf b = { 0 };
	imap_append_astring(&b, STR_LIT("INBOX"));
	buf_append_str(&b, " ");
	imap_append_astring(&b, STR_LIT("a b"));
	buf_append_str(&b, " ");
	imap_append_astring(&b, STR_LIT("NIL"));
	buf_append_str(&b, " ");
	imap_append_astring(&b, STR_LIT(""));
	buf_append_str(&b, " ");
	imap_append_string(&b, STR_LIT("q\"\\"));
	buf_append_str(&b, " ");
	imap_append_string(&b, STR_LIT("l\r\n"));
	is_str(buf_ptr(&b), "INBOX \"a b\" \"NIL\" \"\" \"q\\\"\\\\\" {3}\r\nl\r\n", "quoting");
	buf_free(&b);
}

static void fetch_item(const char *item, int want_rc, const char *label, int kind, unsigned nparts)
{
	struct imap_arg a = { .type = IMAP_ARG_ATOM, .s = str_from_cstr(item), .span = 1 };
	struct imap_fetch f;
	const char *why;
	int rc = imap_fetch_parse(&a, 1, &f, &why);
	ok(rc == want_rc && (rc < 0 || label == NULL ||
	   (f.nsecs == 1 && strcmp(f.secs[0].label, label) == 0 && (int)f.secs[0].kind == kind &&
	    f.secs[0].nparts == nparts)), "fetch item \"%s\"", item);
	imap_fetch_free(&f);
}

static void fetch_items(void)
{
	fetch_item("FLAGS", 0, NULL, 0, 0);
	fetch_item("body.peek[]", 0, "BODY[]", IMAP_SEC_ALL, 0);
	fetch_item("BODY[1.2.3]", 0, "BODY[1.2.3]", IMAP_SEC_ALL, 3);
	fetch_item("BODY[2.MIME]", 0, "BODY[2.MIME]", IMAP_SEC_MIME, 1);
	fetch_item("BODY[HEADER.FIELDS (From To)]<0.10>", 0, "BODY[HEADER.FIELDS (From To)]<0>",
		   IMAP_SEC_FIELDS, 0);
	fetch_item("BODY[1.HEADER.FIELDS.NOT (X)]", 0, "BODY[1.HEADER.FIELDS.NOT (X)]",
		   IMAP_SEC_FIELDS_NOT, 1);
	fetch_item("RFC822.HEADER", 0, "RFC822.HEADER", IMAP_SEC_HEADER, 0);
	const char *bad[] = { "BODY[", "BODY[0]", "BODY[1.]", "BODY[MIME]", "BODY[HEADER.FIELDS]",
			      "BODY[HEADER.FIELDS ()]", "BODY[HEADER.FIELDS (A:B)]", "BODY[]<1>",
			      "BODY[]<1.0>", "BODY[]<x.1>", "BODY[]x", "BODY[TEXTX]", "FROB",
			      "BODY[1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17]", "BODY[99999999999]" };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		fetch_item(bad[i], -1, NULL, 0, 0);
}

/* The one-pass literal (convert, then move behind the prefix) must say
 * exactly the length it sends, for bare LF, CRLF, mixed, empty, a lone CR,
 * and a size above the spare-room limit (counting pass). */
static void crlf_literals(void)
{
	const char *in[] = { "", "a", "a\n", "\n\n", "a\r\nb\nc", "\r", "x\r\r\n\ny", "no newline" };
	for (size_t i = 0; i < ARRAY_SIZE(in); i++) {
		size_t len = strlen(in[i]), want = imap_crlf_len(in[i], len);
		/* the size hint: none, right, too small, too big (a W= that lies) */
		size_t hints[] = { 0, want, want ? want - 1 : 0, want + 1000 };
		for (size_t k = 0; k < ARRAY_SIZE(hints); k++) {
			struct buf b = { 0 };
			imap_append_crlf_literal(&b, "BODY[]", in[i], len, hints[k]);
			char pre[64];
			int h = snprintf(pre, sizeof(pre), " BODY[] {%zu}\r\n", want);
			struct buf c = { 0 };
			imap_append_crlf(&c, in[i], len);
			ok(b.len == (size_t)h + want && memcmp(buf_ptr(&b), pre, (size_t)h) == 0 &&
			   c.len == want && memcmp(buf_ptr(&b) + h, buf_ptr(&c), want) == 0,
			   "literal of case %zu, hint %zu: {%zu} and its %zu bytes", i, hints[k], want,
			   b.len - (size_t)h);
			buf_free(&b);
			buf_free(&c);
		}
	}
	size_t big = (size_t)600 << 10;
	char *src = xmalloc(big);
	for (size_t i = 0; i < big; i++)
		src[i] = i % 50 == 49 ? '\n' : 'x';
	struct buf b = { 0 };
	imap_append_crlf_literal(&b, "RFC822", src, big, 0);
	ok(b.len == strlen(" RFC822 {626688}\r\n") + big + big / 50 &&
	   memcmp(buf_ptr(&b), " RFC822 {626688}\r\n", 18) == 0, "a 600 KB literal: counted first");
	buf_free(&b);
	free(src);
}

int main(void)
{
	fetch_items();
	commands();
	errors();
	announce();
	line_mode();
	seqsets();
	quoting();
	crlf_literals();
	return tap_done();
}
