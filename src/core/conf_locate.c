/* conf_locate.c - a tokenizer for the Lua subset used in config files, and a
 * tracker of table-constructor nesting that records key lines. */
#include "conf_locate.h"
#include "util.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOC_PATH_MAX 256
#define LOC_DEPTH_MAX 64

enum tok_kind { TOK_NAME, TOK_STRING, TOK_NUMBER, TOK_PUNCT, TOK_EOF };

struct tok {
	enum tok_kind kind;
	const char *p;
	size_t len;
	int line;
};

struct lexer {
	const char *s;
	size_t len, pos;
	int line;
};

struct loc_entry {
	char *path;
	int line;
};

struct conf_locs {
	struct loc_entry *v;
	size_t n, cap;
};

static bool lex_is_name(char c, bool first)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
	       (!first && c >= '0' && c <= '9');
}

/* Level of a long bracket "[==[" at pos, or -1 if none. */
static int lex_long_open(const struct lexer *lx, size_t pos)
{
	if (pos >= lx->len || lx->s[pos] != '[')
		return -1;
	size_t i = pos + 1;
	int level = 0;
	while (i < lx->len && lx->s[i] == '=') {
		level++;
		i++;
	}
	return (i < lx->len && lx->s[i] == '[') ? level : -1;
}

static void lex_skip_long(struct lexer *lx, int level)
{
	lx->pos += (size_t)level + 2;
	while (lx->pos < lx->len) {
		char c = lx->s[lx->pos];
		if (c == '\n')
			lx->line++;
		if (c == ']') {
			size_t i = lx->pos + 1;
			int l = 0;
			while (i < lx->len && lx->s[i] == '=') {
				l++;
				i++;
			}
			if (l == level && i < lx->len && lx->s[i] == ']') {
				lx->pos = i + 1;
				return;
			}
		}
		lx->pos++;
	}
}

static void lex_skip_space(struct lexer *lx)
{
	while (lx->pos < lx->len) {
		char c = lx->s[lx->pos];
		if (c == '\n') {
			lx->line++;
			lx->pos++;
		} else if (c == ' ' || c == '\t' || c == '\r' || c == '\f' ||
			   c == '\v') {
			lx->pos++;
		} else if (c == '-' && lx->pos + 1 < lx->len &&
			   lx->s[lx->pos + 1] == '-') {
			lx->pos += 2;
			int level = lex_long_open(lx, lx->pos);
			if (level >= 0) {
				lex_skip_long(lx, level);
				continue;
			}
			while (lx->pos < lx->len && lx->s[lx->pos] != '\n')
				lx->pos++;
		} else {
			return;
		}
	}
}

static void lex_quoted(struct lexer *lx)
{
	char q = lx->s[lx->pos++];
	while (lx->pos < lx->len) {
		char c = lx->s[lx->pos++];
		if (c == '\\' && lx->pos < lx->len) {
			if (lx->s[lx->pos] == '\n')
				lx->line++;
			lx->pos++;
		} else if (c == q || c == '\n') {
			if (c == '\n')
				lx->line++;
			return;
		}
	}
}

static struct tok lex_next(struct lexer *lx)
{
	lex_skip_space(lx);
	struct tok t = { TOK_EOF, lx->s + lx->pos, 0, lx->line };
	if (lx->pos >= lx->len)
		return t;
	size_t start = lx->pos;
	char c = lx->s[lx->pos];
	int level;
	if (lex_is_name(c, true)) {
		t.kind = TOK_NAME;
		while (lx->pos < lx->len && lex_is_name(lx->s[lx->pos], false))
			lx->pos++;
	} else if (c >= '0' && c <= '9') {
		t.kind = TOK_NUMBER;
		while (lx->pos < lx->len &&
		       (lex_is_name(lx->s[lx->pos], false) || lx->s[lx->pos] == '.'))
			lx->pos++;
	} else if (c == '"' || c == '\'') {
		t.kind = TOK_STRING;
		lex_quoted(lx);
	} else if ((level = lex_long_open(lx, lx->pos)) >= 0) {
		t.kind = TOK_STRING;
		lex_skip_long(lx, level);
	} else {
		t.kind = TOK_PUNCT;
		lx->pos++;
		/* "==" must not look like an assignment. */
		if (c == '=' && lx->pos < lx->len && lx->s[lx->pos] == '=')
			lx->pos++;
	}
	t.len = lx->pos - start;
	return t;
}

static bool tok_is(const struct tok *t, const char *punct)
{
	return t->kind == TOK_PUNCT && t->len == strlen(punct) &&
	       memcmp(t->p, punct, t->len) == 0;
}

static void locs_add(struct conf_locs *l, const char *path, int line)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 32;
		l->v = xreallocarray(l->v, l->cap, sizeof(*l->v));
	}
	l->v[l->n].path = xstrdup(path);
	l->v[l->n].line = line;
	l->n++;
}

struct frame {
	char path[LOC_PATH_MAX];   /* "" = top level, "?" = unknown */
	int index;                 /* positional items seen */
	bool item_start;
};

struct scanner {
	struct conf_locs *locs;
	struct frame stack[LOC_DEPTH_MAX];
	int depth;
	char pending[LOC_PATH_MAX]; /* path a following '{' belongs to */
};

static void scan_join(char *dst, const char *base, const char *key, size_t klen)
{
	if (strcmp(base, "?") == 0)
		snprintf(dst, LOC_PATH_MAX, "?");
	else if (base[0] == '\0')
		snprintf(dst, LOC_PATH_MAX, "%.*s", (int)klen, key);
	else
		snprintf(dst, LOC_PATH_MAX, "%s.%.*s", base, (int)klen, key);
}

static void scan_record(struct scanner *sc, const char *key, size_t klen, int line)
{
	scan_join(sc->pending, sc->stack[sc->depth].path, key, klen);
	if (strcmp(sc->pending, "?") != 0)
		locs_add(sc->locs, sc->pending, line);
}

static void scan_open(struct scanner *sc)
{
	if (sc->depth + 1 >= LOC_DEPTH_MAX) {
		sc->depth = LOC_DEPTH_MAX;   /* counted, not tracked */
		return;
	}
	struct frame *f = &sc->stack[++sc->depth];
	snprintf(f->path, sizeof(f->path), "%s",
		 sc->pending[0] ? sc->pending : "?");
	f->index = 0;
	f->item_start = true;
	sc->pending[0] = '\0';
}

static void scan_token(struct scanner *sc, const struct tok *t, const struct tok *next)
{
	if (sc->depth >= LOC_DEPTH_MAX) {
		/* Too deep to track: only keep the braces balanced. */
		if (tok_is(t, "{"))
			sc->depth++;
		else if (tok_is(t, "}"))
			sc->depth--;
		return;
	}
	struct frame *f = &sc->stack[sc->depth];
	bool item_start = sc->depth == 0 || f->item_start;
	if (sc->depth > 0)
		f->item_start = false;
	if (t->kind == TOK_NAME && tok_is(next, "=") && item_start) {
		scan_record(sc, t->p, t->len, t->line);
		return;
	}
	if (tok_is(t, "=")) {
		return;   /* keeps pending for a following '{' */
	}
	if (sc->depth > 0 && item_start && !tok_is(t, "}") && !tok_is(t, "[")) {
		char idx[24];
		int n = snprintf(idx, sizeof(idx), "%d", ++f->index);
		scan_record(sc, idx, (size_t)n, t->line);
	}
	if (tok_is(t, "{")) {
		scan_open(sc);
		return;
	}
	sc->pending[0] = '\0';
	if (tok_is(t, "}")) {
		if (sc->depth > 0)
			sc->depth--;
	} else if ((tok_is(t, ",") || tok_is(t, ";")) && sc->depth > 0) {
		f->item_start = true;
	}
}

struct conf_locs *conf_locate(const char *src, size_t len)
{
	struct conf_locs *l = xcalloc(1, sizeof(*l));
	struct scanner *sc = xcalloc(1, sizeof(*sc));
	sc->locs = l;
	struct lexer lx = { src, len, 0, 1 };
	struct tok cur = lex_next(&lx);
	while (cur.kind != TOK_EOF) {
		struct tok next = lex_next(&lx);
		scan_token(sc, &cur, &next);
		cur = next;
	}
	free(sc);
	return l;
}

void conf_locs_free(struct conf_locs **lp)
{
	struct conf_locs *l = *lp;
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].path);
	free(l->v);
	free(l);
	*lp = NULL;
}

int conf_locs_line(const struct conf_locs *l, const char *path)
{
	char p[LOC_PATH_MAX];
	snprintf(p, sizeof(p), "%s", path);
	for (;;) {
		for (size_t i = l->n; i-- > 0;)
			if (strcmp(l->v[i].path, p) == 0)
				return l->v[i].line;
		char *dot = strrchr(p, '.');
		if (dot == NULL)
			return 0;
		*dot = '\0';
	}
}

