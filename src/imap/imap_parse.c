/* imap_parse.c - the IMAP command parser (RFC 3501 9 "command"): a pure,
 * resumable state machine over any chunking of the input, with literals
 * (RFC 3501 4.3, non-synchronizing ones from RFC 7888), lists, quoted
 * strings and bounded sizes; plus sequence sets and response quoting. */
#include "imap.h"
#include "core/util.h"

#include <stdlib.h>
#include <string.h>

/* RFC 3501 9: ATOM-CHAR is any CHAR except atom-specials
 * ( "(" / ")" / "{" / SP / CTL / list-wildcards / quoted-specials /
 * resp-specials ). We also take list-wildcards ("%", "*": LIST patterns,
 * "1:*") and "\" (flags) and "]" in atoms, as the grammar's users need. */
static bool imap_atom_char(unsigned char ch)
{
	if (ch <= 0x20 || ch >= 0x7f)
		return false;
	return ch != '(' && ch != ')' && ch != '{' && ch != '"';
}

/* RFC 3501 9: tag = 1*<any ASTRING-CHAR except "+">. */
static bool imap_tag_char(unsigned char ch)
{
	return imap_atom_char(ch) && ch != '+' && ch != '*' && ch != '%' && ch != '\\';
}

static bool imap_name_char(unsigned char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
	       (ch >= '0' && ch <= '9') || ch == '-' || ch == '.';
}

void imap_parser_init(struct imap_parser *p, const struct imap_parse_limits *lim)
{
	memset(p, 0, sizeof(*p));
	p->lim = *lim;
	if (p->lim.depth_max > ARRAY_SIZE(p->open))
		p->lim.depth_max = ARRAY_SIZE(p->open);
	p->state = IP_TAG;
}

void imap_parser_free(struct imap_parser *p)
{
	buf_free(&p->data);
	free(p->args);
	free(p->out);
	p->args = NULL;
	p->out = NULL;
	p->nargs = p->args_cap = p->nout = 0;
}

/* Clears the command being built (keeps the allocations). */
static void imap_parser_clear(struct imap_parser *p)
{
	p->tag_len = p->name_len = 0;
	p->tag[0] = p->name[0] = '\0';
	buf_clear(&p->data);
	p->nargs = 0;
	p->nout = 0;
	p->depth = 0;
	p->bracket = 0;
	p->line_len = p->cmd_len = 0;
	p->lit_size = p->lit_left = 0;
	p->lit_plus = false;
	p->error = 0;
	p->error_text = NULL;
	p->line = (struct str){ "", 0 };
}

void imap_parser_reset(struct imap_parser *p)
{
	imap_parser_clear(p);
	p->line_mode = false;
	p->state = IP_TAG;
}

void imap_parser_want_line(struct imap_parser *p)
{
	p->line_mode = true;
}

static enum imap_parse_result imap_parse_fail(struct imap_parser *p, enum imap_parse_error e,
					      const char *text)
{
	p->error = e;
	p->error_text = text;
	p->state = IP_SKIP;
	return IMAP_PARSE_ERROR;
}

/* Adds an argument node in the innermost open list; -1 past args_max. */
static int imap_arg_add(struct imap_parser *p, enum imap_arg_type type)
{
	if (p->nargs >= p->lim.args_max)
		return -1;
	if (p->nargs == p->args_cap) {
		p->args_cap = p->args_cap ? p->args_cap * 2 : 16;
		p->args = xreallocarray(p->args, p->args_cap, sizeof(*p->args));
	}
	struct imap_arg_raw *a = &p->args[p->nargs++];
	*a = (struct imap_arg_raw){ .type = type, .off = p->data.len };
	if (p->depth > 0)
		p->args[p->open[p->depth - 1]].members++;
	return 0;
}

static struct imap_arg_raw *imap_arg_last(struct imap_parser *p)
{
	return &p->args[p->nargs - 1];
}

static void imap_arg_byte(struct imap_parser *p, char ch)
{
	buf_append(&p->data, &ch, 1);
	imap_arg_last(p)->len++;
}

static void imap_atom_finish(struct imap_parser *p)
{
	struct imap_arg_raw *a = imap_arg_last(p);
	struct str s = { buf_ptr(&p->data) + a->off, a->len };
	if (str_case_eq(s, "NIL"))
		a->type = IMAP_ARG_NIL;
}

/* Fills next for every node, then the public view. */
static void imap_parser_output(struct imap_parser *p)
{
	if (p->nout < p->nargs || p->out == NULL)
		p->out = xreallocarray(p->out, p->nargs ? p->nargs : 1, sizeof(*p->out));
	/* next of a node = index after its subtree: walk backwards. */
	for (size_t i = p->nargs; i-- > 0;) {
		struct imap_arg_raw *a = &p->args[i];
		size_t next = i + 1;
		if (a->type == IMAP_ARG_LIST)
			for (size_t m = 0; m < a->members; m++)
				next = p->args[next].next;
		a->next = next;
	}
	const char *base = buf_ptr(&p->data);
	for (size_t i = 0; i < p->nargs; i++) {
		struct imap_arg_raw *a = &p->args[i];
		p->out[i] = (struct imap_arg){ .type = a->type, .s = { base + a->off, a->len },
					       .span = a->next - i, .members = a->members };
	}
	p->nout = p->nargs;
	p->tag[p->tag_len] = '\0';
	p->name[p->name_len] = '\0';
}

/* The end of a command line (LF seen, not after a literal announcement). */
static enum imap_parse_result imap_line_end(struct imap_parser *p)
{
	if (p->tag_len == 0 && p->name_len == 0) {
		p->state = IP_TAG;
		return IMAP_PARSE_AGAIN;        /* an empty line: ignored */
	}
	if (p->name_len == 0)
		return imap_parse_fail(p, IMAP_ERR_SYNTAX, "Missing command name");
	if (p->depth > 0)
		return imap_parse_fail(p, IMAP_ERR_SYNTAX, "Unclosed list");
	imap_parser_output(p);
	p->state = IP_TAG;
	p->done = true;
	return IMAP_PARSE_OK;
}

/* A literal that will not be read. RFC 7888 4: a non-synchronizing
 * literal's bytes are on their way already and cannot be told from
 * commands: the session must close. A synchronizing one was never sent:
 * refuse it and go on with the next command. */
static enum imap_parse_result imap_literal_fail(struct imap_parser *p, enum imap_parse_error e,
						const char *text)
{
	enum imap_parse_result r = imap_parse_fail(p, p->lit_plus ? IMAP_ERR_FATAL : e, text);
	p->state = IP_TAG;
	p->done = true;
	return r;
}

/* The literal's argument node and its data state; sync literals ask for "+". */
static enum imap_parse_result imap_literal_begin(struct imap_parser *p, enum imap_pstate data)
{
	if (imap_arg_add(p, IMAP_ARG_LITERAL) < 0)
		return imap_literal_fail(p, IMAP_ERR_SYNTAX, "Too many arguments");
	p->lit_left = p->lit_size;
	p->line_len = 0;
	p->state = p->lit_size ? data : IP_SP_OR_END;
	return p->lit_plus ? IMAP_PARSE_AGAIN : IMAP_PARSE_LITERAL;
}

/* A literal held in the command: literal_max and cmd_max apply. */
static enum imap_parse_result imap_literal_buffer(struct imap_parser *p)
{
	uint64_t room = p->lim.cmd_max > p->cmd_len ? p->lim.cmd_max - p->cmd_len : 0;
	if (p->lit_size > p->lim.literal_max || p->lit_size > room)
		return imap_literal_fail(p, IMAP_ERR_TOOBIG, "Literal too big");
	return imap_literal_begin(p, IP_LIT_DATA);
}

/* The announcement line ended: decide now, or let the session decide. */
static enum imap_parse_result imap_literal_start(struct imap_parser *p)
{
	if (!p->announce)
		return imap_literal_buffer(p);
	p->state = IP_LIT_DECIDE;
	return IMAP_PARSE_ANNOUNCE;
}

void imap_parser_announce(struct imap_parser *p, bool on)
{
	p->announce = on;
}

bool imap_parser_partial(struct imap_parser *p, const struct imap_arg **args_r, size_t *n_r)
{
	if (p->state != IP_LIT_DECIDE || p->depth > 0)
		return false;
	imap_parser_output(p);
	*args_r = p->out;
	*n_r = p->nout;
	return true;
}

enum imap_parse_result imap_parser_literal(struct imap_parser *p, enum imap_literal_mode mode)
{
	if (p->state != IP_LIT_DECIDE)
		return IMAP_PARSE_AGAIN;        /* nothing announced: a caller's slip */
	return mode == IMAP_LIT_SINK ? imap_literal_begin(p, IP_LIT_SINK) : imap_literal_buffer(p);
}

void imap_parser_literal_refuse(struct imap_parser *p)
{
	if (p->state != IP_LIT_DECIDE)
		return;
	p->state = IP_TAG;
	p->done = true;
}

static enum imap_parse_result imap_list_open(struct imap_parser *p)
{
	if (p->depth >= p->lim.depth_max)
		return imap_parse_fail(p, IMAP_ERR_SYNTAX, "Lists nested too deeply");
	if (imap_arg_add(p, IMAP_ARG_LIST) < 0)
		return imap_parse_fail(p, IMAP_ERR_SYNTAX, "Too many arguments");
	p->open[p->depth++] = p->nargs - 1;
	p->state = IP_ARG;
	return IMAP_PARSE_AGAIN;
}

static enum imap_parse_result imap_list_close(struct imap_parser *p)
{
	if (p->depth == 0)
		return imap_parse_fail(p, IMAP_ERR_SYNTAX, "Unexpected ')'");
	p->depth--;
	p->state = IP_SP_OR_END;
	return IMAP_PARSE_AGAIN;
}

/* A CR or LF where a command line may end. */
static enum imap_parse_result imap_eol(struct imap_parser *p, unsigned char ch)
{
	if (ch == '\r') {
		p->state = IP_CR;
		return IMAP_PARSE_AGAIN;
	}
	return imap_line_end(p);
}

/* The first byte of an argument. */
static enum imap_parse_result imap_arg_start(struct imap_parser *p, unsigned char ch)
{
	switch (ch) {
	case '(':
		return imap_list_open(p);
	case ')':
		return imap_list_close(p);
	case '"':
		if (imap_arg_add(p, IMAP_ARG_QUOTED) < 0)
			return imap_parse_fail(p, IMAP_ERR_SYNTAX, "Too many arguments");
		p->state = IP_QUOTED;
		return IMAP_PARSE_AGAIN;
	case '{':
		p->lit_size = 0;
		p->lit_plus = false;
		p->lit_skip = false;    /* reused: "a digit was seen" */
		p->state = IP_LIT_SIZE;
		return IMAP_PARSE_AGAIN;
	case '\r':
	case '\n':
		return imap_eol(p, ch);
	}
	if (!imap_atom_char(ch))
		return imap_parse_fail(p, IMAP_ERR_SYNTAX, "Invalid character in argument");
	if (imap_arg_add(p, IMAP_ARG_ATOM) < 0)
		return imap_parse_fail(p, IMAP_ERR_SYNTAX, "Too many arguments");
	p->state = IP_ATOM;
	p->bracket = 0;
	if (ch == '[')
		p->bracket = 1;
	imap_arg_byte(p, (char)ch);
	return IMAP_PARSE_AGAIN;
}

/* Takes back the last argument (an atom still being read). */
static void imap_arg_drop(struct imap_parser *p)
{
	struct imap_arg_raw *a = imap_arg_last(p);
	p->data.len -= a->len;
	p->nargs--;
	if (p->depth > 0)
		p->args[p->open[p->depth - 1]].members--;
}

static enum imap_parse_result imap_atom_byte(struct imap_parser *p, unsigned char ch)
{
	if (ch == '{' && p->bracket == 0) {
		/* RFC 3516 literal8 "~{n}" (BINARY): an atom "~" was begun */
		struct imap_arg_raw *a = imap_arg_last(p);
		if (a->len == 1 && buf_ptr(&p->data)[a->off] == '~') {
			imap_arg_drop(p);
			return imap_arg_start(p, '{');
		}
	}
	if (p->bracket > 0) {
		/* BODY[HEADER.FIELDS (A B)]: a section may hold spaces and
		 * parentheses (RFC 3501 6.4.5); it ends at the matching "]". */
		if (ch == '\r' || ch == '\n' || ch == '\0' || ch >= 0x7f)
			return imap_parse_fail(p, IMAP_ERR_SYNTAX, "Unterminated [");
		if (ch == '[' && ++p->bracket > 4)
			return imap_parse_fail(p, IMAP_ERR_SYNTAX, "Brackets nested too deeply");
		if (ch == ']')
			p->bracket--;
		imap_arg_byte(p, (char)ch);
		return IMAP_PARSE_AGAIN;
	}
	if (imap_atom_char(ch)) {
		if (ch == '[')
			p->bracket = 1;
		imap_arg_byte(p, (char)ch);
		return IMAP_PARSE_AGAIN;
	}
	imap_atom_finish(p);
	switch (ch) {
	case ' ':
		p->state = IP_ARG;
		return IMAP_PARSE_AGAIN;
	case ')':
		return imap_list_close(p);
	case '\r':
	case '\n':
		return imap_eol(p, ch);
	}
	return imap_parse_fail(p, IMAP_ERR_SYNTAX, "Invalid character in atom");
}

static enum imap_parse_result imap_lit_byte(struct imap_parser *p, unsigned char ch)
{
	switch (p->state) {
	case IP_LIT_SIZE:
		if (ch >= '0' && ch <= '9') {
			if (p->lit_size > (UINT64_MAX - 9) / 10 || (p->lit_size == 0 && p->lit_skip))
				return imap_parse_fail(p, IMAP_ERR_SYNTAX, "Invalid literal size");
			p->lit_size = p->lit_size * 10 + (uint64_t)(ch - '0');
			p->lit_skip = true;
			return IMAP_PARSE_AGAIN;
		}
		if (!p->lit_skip || (ch != '+' && ch != '}'))
			return imap_parse_fail(p, IMAP_ERR_SYNTAX, "Invalid literal size");
		p->lit_plus = ch == '+';
		p->state = ch == '+' ? IP_LIT_PLUS : IP_LIT_CR;
		return IMAP_PARSE_AGAIN;
	case IP_LIT_PLUS:
		if (ch != '}')
			return imap_parse_fail(p, IMAP_ERR_SYNTAX, "Invalid literal size");
		p->state = IP_LIT_CR;
		return IMAP_PARSE_AGAIN;
	case IP_LIT_CR:
		if (ch == '\r') {
			p->state = IP_LIT_LF;
			return IMAP_PARSE_AGAIN;
		}
		/* a bare LF ends the line too */
		__attribute__((fallthrough));
	default:
		if (ch != '\n')
			return imap_parse_fail(p, IMAP_ERR_SYNTAX, "Literal size not at the end of the line");
		return imap_literal_start(p);
	}
}

/* The tag and the command name. */
static enum imap_parse_result imap_head_byte(struct imap_parser *p, unsigned char ch)
{
	if (p->state == IP_TAG) {
		if (ch == ' ' && p->tag_len > 0) {
			p->state = IP_NAME;
			return IMAP_PARSE_AGAIN;
		}
		if ((ch == '\r' || ch == '\n') && p->tag_len == 0)
			return ch == '\r' ? (p->state = IP_CR, IMAP_PARSE_AGAIN) : IMAP_PARSE_AGAIN;
		if ((ch == '\r' || ch == '\n'))
			return imap_parse_fail(p, IMAP_ERR_SYNTAX, "Missing command name");
		if (!imap_tag_char(ch)) {
			p->tag_len = 0;         /* no valid tag: the answer is untagged */
			p->tag[0] = '\0';
			return imap_parse_fail(p, IMAP_ERR_SYNTAX, "Invalid tag");
		}
		if (p->tag_len >= IMAP_TAG_MAX)
			return imap_parse_fail(p, IMAP_ERR_SYNTAX, "Tag too long");
		p->tag[p->tag_len++] = (char)ch;
		p->tag[p->tag_len] = '\0';
		return IMAP_PARSE_AGAIN;
	}
	if (ch == ' ' && p->name_len > 0) {
		p->state = IP_ARG;
		return IMAP_PARSE_AGAIN;
	}
	if (ch == '\r' || ch == '\n')
		return imap_eol(p, ch);
	if (!imap_name_char(ch) || p->name_len >= IMAP_NAME_MAX)
		return imap_parse_fail(p, IMAP_ERR_SYNTAX, "Invalid command name");
	p->name[p->name_len++] = (char)ch;
	p->name[p->name_len] = '\0';
	return IMAP_PARSE_AGAIN;
}

/* One byte outside literal data. */
static enum imap_parse_result imap_parse_byte(struct imap_parser *p, unsigned char ch)
{
	switch (p->state) {
	case IP_TAG:
	case IP_NAME:
		return imap_head_byte(p, ch);
	case IP_ARG:
		return imap_arg_start(p, ch);
	case IP_ATOM:
		return imap_atom_byte(p, ch);
	case IP_QUOTED:
		if (ch == '"') {
			p->state = IP_SP_OR_END;
		} else if (ch == '\\') {
			p->state = IP_QUOTED_ESC;
		} else if (ch == '\r' || ch == '\n' || ch == '\0') {
			return imap_parse_fail(p, IMAP_ERR_SYNTAX, "Unterminated quoted string");
		} else {
			imap_arg_byte(p, (char)ch);
		}
		return IMAP_PARSE_AGAIN;
	case IP_QUOTED_ESC:
		if (ch != '"' && ch != '\\')
			return imap_parse_fail(p, IMAP_ERR_SYNTAX, "Invalid escape in quoted string");
		imap_arg_byte(p, (char)ch);
		p->state = IP_QUOTED;
		return IMAP_PARSE_AGAIN;
	case IP_SP_OR_END:
		if (ch == ' ') {
			p->state = IP_ARG;
			return IMAP_PARSE_AGAIN;
		}
		if (ch == ')')
			return imap_list_close(p);
		if (ch == '\r' || ch == '\n')
			return imap_eol(p, ch);
		return imap_parse_fail(p, IMAP_ERR_SYNTAX, "Expected space or end of line");
	case IP_CR:
		if (ch != '\n')
			return imap_parse_fail(p, IMAP_ERR_SYNTAX, "CR without LF");
		return imap_line_end(p);
	default:
		return imap_lit_byte(p, ch);
	}
}

/* Literal bytes: as many as are here. */
static size_t imap_lit_data(struct imap_parser *p, const char *buf, size_t len)
{
	size_t n = len < p->lit_left ? len : (size_t)p->lit_left;
	buf_append(&p->data, buf, n);
	imap_arg_last(p)->len += n;
	p->lit_left -= n;
	p->cmd_len += n;
	if (p->lit_left == 0)
		p->state = IP_SP_OR_END;
	return n;
}

/* Sink mode: the literal bytes here go out as one CHUNK. */
static size_t imap_lit_chunk(struct imap_parser *p, const char *buf, size_t len)
{
	size_t n = len < p->lit_left ? len : (size_t)p->lit_left;
	p->chunk = (struct str){ buf, n };
	p->lit_left -= n;
	if (p->lit_left == 0)
		p->state = IP_SP_OR_END;
	return n;
}

/* Line mode: one line into data. */
static enum imap_parse_result imap_line_byte(struct imap_parser *p, unsigned char ch)
{
	if (ch != '\n') {
		buf_append(&p->data, &ch, 1);
		return IMAP_PARSE_AGAIN;
	}
	size_t n = p->data.len;
	if (n > 0 && buf_ptr(&p->data)[n - 1] == '\r')
		n--;
	p->line = (struct str){ buf_ptr(&p->data), n };
	p->line_mode = false;
	p->state = IP_TAG;
	p->done = true;
	return IMAP_PARSE_OK;
}

enum imap_parse_result imap_parser_feed(struct imap_parser *p, const char *buf, size_t len,
					size_t *used)
{
	size_t i = 0;
	enum imap_parse_result r = IMAP_PARSE_AGAIN;
	if (p->done) {
		imap_parser_clear(p);
		p->done = false;
	}
	if (p->state == IP_TAG && p->line_mode && p->tag_len == 0)
		p->state = IP_LINE;
	if (p->state == IP_LIT_DECIDE) {
		r = imap_parser_literal(p, IMAP_LIT_BUFFER);    /* no decision: the default */
		if (r != IMAP_PARSE_AGAIN) {
			*used = 0;
			return r;
		}
	}
	while (i < len && r == IMAP_PARSE_AGAIN) {
		if (p->state == IP_LIT_SINK) {
			i += imap_lit_chunk(p, buf + i, len - i);
			r = IMAP_PARSE_CHUNK;
			break;
		}
		if (p->state == IP_LIT_DATA) {
			i += imap_lit_data(p, buf + i, len - i);
			continue;
		}
		unsigned char ch = (unsigned char)buf[i++];
		if (p->state == IP_SKIP) {
			if (ch == '\n') {
				imap_parser_clear(p);
				p->state = p->line_mode ? IP_LINE : IP_TAG;
				/* the next command may start right here */
			}
			continue;
		}
		if (++p->line_len > p->lim.line_max || ++p->cmd_len > p->lim.cmd_max) {
			r = imap_parse_fail(p, IMAP_ERR_FATAL, "Command line too long");
			break;
		}
		if (p->state == IP_LINE) {
			r = imap_line_byte(p, ch);
			continue;
		}
		r = imap_parse_byte(p, ch);
		if (r == IMAP_PARSE_AGAIN && p->state == IP_TAG && p->tag_len == 0)
			p->line_len = p->cmd_len = 0;     /* an empty line was skipped */
		if (r == IMAP_PARSE_ERROR && ch == '\n') {
			/* The bad line is over already: nothing to skip. */
			p->state = IP_TAG;
			p->done = true;
		}
	}
	*used = i;
	return r;
}

bool imap_arg_astring(const struct imap_arg *a, struct str *out)
{
	if (a->type != IMAP_ARG_ATOM && a->type != IMAP_ARG_QUOTED && a->type != IMAP_ARG_LITERAL)
		return false;
	*out = a->s;
	return true;
}

bool imap_arg_nstring(const struct imap_arg *a, struct str *out)
{
	if (a->type == IMAP_ARG_NIL) {
		*out = (struct str){ "", 0 };
		return true;
	}
	return imap_arg_astring(a, out);
}

/* --- sequence sets --- */

/* seq-number = nz-number / "*"; advances *s. */
static int imap_seq_number(struct str *s, uint32_t *out)
{
	if (s->len > 0 && s->p[0] == '*') {
		*out = IMAP_SEQ_STAR;
		s->p++;
		s->len--;
		return 0;
	}
	uint64_t v = 0;
	size_t i = 0;
	if (s->len == 0 || s->p[0] < '1' || s->p[0] > '9')
		return -1;
	while (i < s->len && s->p[i] >= '0' && s->p[i] <= '9') {
		v = v * 10 + (uint64_t)(s->p[i++] - '0');
		if (v >= IMAP_SEQ_STAR)     /* nz-number < 2^32, and not our STAR */
			return -1;
	}
	*out = (uint32_t)v;
	s->p += i;
	s->len -= i;
	return 0;
}

int imap_seqset_parse(struct str s, size_t max, struct imap_seqset *set)
{
	set->r = NULL;
	set->n = 0;
	size_t cap = 0;
	for (;;) {
		struct imap_seq_range r;
		if (imap_seq_number(&s, &r.lo) < 0)
			goto fail;
		r.hi = r.lo;
		if (s.len > 0 && s.p[0] == ':') {
			s.p++;
			s.len--;
			if (imap_seq_number(&s, &r.hi) < 0)
				goto fail;
		}
		if (set->n >= max)
			goto fail;
		if (set->n == cap) {
			cap = cap ? cap * 2 : 4;
			set->r = xreallocarray(set->r, cap, sizeof(*set->r));
		}
		set->r[set->n++] = r;
		if (s.len == 0)
			return 0;
		if (s.p[0] != ',')
			goto fail;
		s.p++;
		s.len--;
	}
fail:
	imap_seqset_free(set);
	return -1;
}

void imap_seqset_free(struct imap_seqset *set)
{
	free(set->r);
	set->r = NULL;
	set->n = 0;
}

bool imap_seqset_contains(const struct imap_seqset *set, uint32_t n, uint32_t star)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < set->n; i++) {
		uint32_t lo = set->r[i].lo == IMAP_SEQ_STAR ? star : set->r[i].lo;
		uint32_t hi = set->r[i].hi == IMAP_SEQ_STAR ? star : set->r[i].hi;
		if (lo > hi) {
			uint32_t t = lo;
			lo = hi;
			hi = t;
		}
		/* "*" in an empty mailbox (star 0) matches nothing. */
		if (lo == 0 && (set->r[i].lo == IMAP_SEQ_STAR || set->r[i].hi == IMAP_SEQ_STAR) &&
		    star == 0)
			continue;
		if (n >= lo && n <= hi)
			return true;
	}
	return false;
}

/* --- quoting --- */

#define IMAP_QUOTED_MAX 1024

void imap_append_string(struct buf *b, struct str s)
{
	bool quoted = s.len <= IMAP_QUOTED_MAX;
	for (size_t i = 0; quoted && i < s.len; i++) {
		unsigned char ch = (unsigned char)s.p[i];
		if (ch == '\r' || ch == '\n' || ch == '\0' || ch >= 0x80)
			quoted = false;
	}
	if (!quoted) {
		buf_printf(b, "{%zu}\r\n", s.len);
		buf_append(b, s.p, s.len);
		return;
	}
	imap_append_quoted(b, s);
}

void imap_append_quoted(struct buf *b, struct str s)
{
	/* one reservation for the worst case (every byte escaped): a
	 * buf_append per byte was a tenth of filling a cold SORT's cache */
	char *w = buf_reserve(b, 2 * s.len + 2), *w0 = w;
	*w++ = '"';
	for (size_t i = 0; i < s.len; i++) {
		if (s.p[i] == '"' || s.p[i] == '\\')
			*w++ = '\\';
		*w++ = s.p[i];
	}
	*w++ = '"';
	buf_commit(b, (size_t)(w - w0));
}

void imap_append_astring(struct buf *b, struct str s)
{
	bool atom = s.len > 0 && !str_case_eq(s, "NIL");
	for (size_t i = 0; atom && i < s.len; i++) {
		unsigned char ch = (unsigned char)s.p[i];
		if (!imap_atom_char(ch) || ch == '%' || ch == '*' || ch == '\\' || ch == ']' ||
		    ch == '[')
			atom = false;
	}
	if (atom)
		buf_append(b, s.p, s.len);
	else
		imap_append_string(b, s);
}
