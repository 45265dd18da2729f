/* script_msg.c - ctx.msg: a userdata over the received bytes (style rule
 * 22). Nothing is parsed until a field is read; the MIME tree (src/mime,
 * pure and fuzzed) is built once, text and URLs once, and each computed
 * field and each method's result (script_msg_cached) is cached in the
 * userdata's environment table. A session's message
 * is borrowed: C invalidates the object when the transaction ends, and any
 * later access raises a clean error instead of reading freed memory
 * (style rule 17). */
#include "script_int.h"
#include "script_msg_stats.h"
#include "core/arena.h"
#include "core/util.h"
#include "mime/mime.h"

#include <stdlib.h>
#include <string.h>

#define SCRIPT_MSG_MT "moonpost.msg"
#define SCRIPT_URLS_MAX 1000

struct script_msg {
	const char *data;
	size_t len;
	bool valid, owned;
	struct arena *arena;
	bool parsed;
	struct mime_message m;
	bool texts_done;
	struct mime_text *texts;    /* per part index; .text.p NULL = not text */
	unsigned dec_flags;         /* MIME_DEC_* of every text part */
};

static struct script_msg *script_msg_check(lua_State *L, int idx)
{
	struct script_msg *m = luaL_checkudata(L, idx, SCRIPT_MSG_MT);
	if (!m->valid)
		luaL_error(L, "ctx.msg: the message is no longer available");
	return m;
}

static const struct mime_message *script_msg_tree(struct script_msg *m)
{
	if (!m->parsed) {
		if (m->arena == NULL)
			m->arena = arena_new();
		mime_parse(m->arena, m->data, m->len, NULL, &m->m);
		m->parsed = true;
	}
	return &m->m;
}

static void script_push_str(lua_State *L, struct str s)
{
	lua_pushlstring(L, s.p ? s.p : "", s.len);
}

static const struct mime_headers *script_msg_hdr(struct script_msg *m)
{
	return &script_msg_tree(m)->root->hdr;
}

static void script_push_decoded(lua_State *L, struct script_msg *m, const struct mime_header *h)
{
	script_push_str(L, mime_2047_decode(m->arena, h->value, NULL));
}

/* msg:header(name) -> first value, decoded; nil */
static int script_msg_header(lua_State *L)
{
	struct script_msg *m = script_msg_check(L, 1);
	const struct mime_header *h = mime_headers_get(script_msg_hdr(m), luaL_checkstring(L, 2));
	if (h == NULL)
		return 0;
	script_push_decoded(L, m, h);
	return 1;
}

static int script_msg_raw_header(lua_State *L)
{
	struct script_msg *m = script_msg_check(L, 1);
	const struct mime_header *h = mime_headers_get(script_msg_hdr(m), luaL_checkstring(L, 2));
	if (h == NULL)
		return 0;
	script_push_str(L, h->raw);
	return 1;
}

static int script_msg_list(lua_State *L, bool raw);

/* msg:headers(name) -> { values }; msg:headers() -> { {name, value} } */
static int script_msg_headers(lua_State *L)
{
	return script_msg_list(L, false);
}

/* msg:raw_headers(name) -> { raw values } */
static int script_msg_raw_headers(lua_State *L)
{
	luaL_checkstring(L, 2);
	return script_msg_list(L, true);
}

static int script_msg_list(lua_State *L, bool raw)
{
	struct script_msg *m = script_msg_check(L, 1);
	const struct mime_headers *hs = script_msg_hdr(m);
	const char *name = luaL_optstring(L, 2, NULL);
	lua_newtable(L);
	int n = 0;
	for (size_t i = 0; i < hs->count; i++) {
		const struct mime_header *h = &hs->v[i];
		if (name && (h->name.len != strlen(name) || strncasecmp(h->name.p, name, h->name.len) != 0))
			continue;
		if (name && raw) {
			script_push_str(L, h->raw);
		} else if (name) {
			script_push_decoded(L, m, h);
		} else {
			lua_createtable(L, 0, 2);
			script_push_str(L, h->name);
			lua_setfield(L, -2, "name");
			script_push_decoded(L, m, h);
			lua_setfield(L, -2, "value");
		}
		lua_rawseti(L, -2, ++n);
	}
	return 1;
}

static void script_push_addrs(lua_State *L, struct script_msg *m, const char *field)
{
	const struct mime_header *h = mime_headers_get(script_msg_hdr(m), field);
	lua_newtable(L);
	if (h == NULL)
		return;
	struct mime_addr_list al;
	mime_addr_parse(m->arena, h->value, &al);
	int n = 0;
	for (size_t i = 0; i < al.count; i++) {
		const struct mime_addr *a = &al.v[i];
		if (a->kind != MIME_ADDR_MAILBOX)
			continue;
		lua_createtable(L, 0, 5);
		script_push_str(L, a->name);
		lua_setfield(L, -2, "name");
		script_push_str(L, a->addr);
		lua_setfield(L, -2, "addr");
		script_push_str(L, a->local);
		lua_setfield(L, -2, "user");
		script_push_str(L, a->domain);
		lua_setfield(L, -2, "domain");
		lua_pushboolean(L, (a->flags & (MIME_ADDR_BAD_SYNTAX | MIME_ADDR_NO_DOMAIN)) != 0);
		lua_setfield(L, -2, "bad");
		lua_rawseti(L, -2, ++n);
	}
}

static const char *const script_part_flag_names[] = {
	"no_boundary", "boundary_missing", "no_end_boundary", "depth_limit", "parts_limit",
	"bad_encoding", "bad_ctype", "bad_header", "bad_params",
};
static const char *const script_dec_flag_names[] = {
	"bad_base64", "bad_qp", "unknown_charset", "bad_charset", "bad_2047",
};

static void script_push_flag_set(lua_State *L, unsigned part_flags, unsigned dec_flags)
{
	lua_newtable(L);
	for (size_t i = 0; i < sizeof(script_part_flag_names) / sizeof(*script_part_flag_names); i++)
		if (part_flags & (1u << i)) {
			lua_pushboolean(L, 1);
			lua_setfield(L, -2, script_part_flag_names[i]);
		}
	for (size_t i = 0; i < sizeof(script_dec_flag_names) / sizeof(*script_dec_flag_names); i++)
		if (dec_flags & (1u << i)) {
			lua_pushboolean(L, 1);
			lua_setfield(L, -2, script_dec_flag_names[i]);
		}
}

static const char *script_enc_name(enum mime_enc e)
{
	static const char *const names[] = { "7bit", "8bit", "binary", "quoted-printable", "base64", "unknown" };
	return (unsigned)e < 6 ? names[e] : "unknown";
}

static void script_push_part(lua_State *L, const struct mime_part *p)
{
	lua_createtable(L, 0, 16);
	lua_pushinteger(L, p->index + 1);
	lua_setfield(L, -2, "index");
	lua_pushinteger(L, p->depth);
	lua_setfield(L, -2, "depth");
	char ct[256];
	size_t n = (size_t)snprintf(ct, sizeof(ct), "%.*s/%.*s", (int)p->ctype.type.len, p->ctype.type.p,
				    (int)p->ctype.subtype.len, p->ctype.subtype.p);
	for (size_t i = 0; i < n && i < sizeof(ct); i++)
		ct[i] = (char)((ct[i] >= 'A' && ct[i] <= 'Z') ? ct[i] + 32 : ct[i]);
	lua_pushstring(L, ct);
	lua_setfield(L, -2, "content_type");
	char *slash = strchr(ct, '/');
	lua_pushlstring(L, ct, slash ? (size_t)(slash - ct) : strlen(ct));
	lua_setfield(L, -2, "type");
	lua_pushstring(L, slash ? slash + 1 : "");
	lua_setfield(L, -2, "subtype");
	script_push_str(L, p->charset);
	lua_setfield(L, -2, "charset");
	lua_pushboolean(L, mime_charset_known(p->charset));
	lua_setfield(L, -2, "charset_known");
	script_push_str(L, p->filename);
	lua_setfield(L, -2, "filename");
	script_push_str(L, p->disp.type);
	lua_setfield(L, -2, "disposition");
	lua_pushstring(L, script_enc_name(p->enc));
	lua_setfield(L, -2, "encoding");
	lua_pushinteger(L, (lua_Integer)p->body_size);
	lua_setfield(L, -2, "size");
	lua_pushinteger(L, (lua_Integer)p->body_lines);
	lua_setfield(L, -2, "lines");
	bool multi = p->ctype.type.len == 9 && strncasecmp(p->ctype.type.p, "multipart", 9) == 0;
	lua_pushboolean(L, multi);
	lua_setfield(L, -2, "is_multipart");
	lua_pushboolean(L, p->nchildren == 0 && mime_part_is_text(p));
	lua_setfield(L, -2, "is_text");
	bool attach = p->filename.len > 0 ||
		      (p->disp.type.len == 10 && strncasecmp(p->disp.type.p, "attachment", 10) == 0);
	lua_pushboolean(L, attach);
	lua_setfield(L, -2, "is_attachment");
	script_push_flag_set(L, p->flags, 0);
	lua_setfield(L, -2, "flags");
}

static int script_msg_parts(lua_State *L)
{
	struct script_msg *m = script_msg_check(L, 1);
	const struct mime_message *mm = script_msg_tree(m);
	lua_createtable(L, (int)mm->nparts, 0);
	for (unsigned i = 0; i < mm->nparts; i++) {
		script_push_part(L, mm->parts[i]);
		lua_rawseti(L, -2, (int)i + 1);
	}
	return 1;
}

/* Decodes the displayable text parts once. */
static void script_msg_texts(struct script_msg *m)
{
	if (m->texts_done)
		return;
	const struct mime_message *mm = script_msg_tree(m);
	m->texts = arena_alloc(m->arena, (mm->nparts ? mm->nparts : 1) * sizeof(*m->texts));
	memset(m->texts, 0, (mm->nparts ? mm->nparts : 1) * sizeof(*m->texts));
	for (unsigned i = 0; i < mm->nparts; i++) {
		const struct mime_part *p = mm->parts[i];
		if (p->nchildren != 0 || !mime_part_is_text(p))
			continue;
		mime_part_text(m->arena, mm, p, &m->texts[i]);
		if (m->texts[i].text.p == NULL)
			m->texts[i].text.p = "";
		m->dec_flags |= m->texts[i].flags;
	}
	m->texts_done = true;
}

static int script_msg_text(lua_State *L)
{
	struct script_msg *m = script_msg_check(L, 1);
	script_msg_texts(m);
	lua_newtable(L);
	int n = 0;
	for (unsigned i = 0; i < m->m.nparts; i++) {
		const struct mime_text *t = &m->texts[i];
		if (t->text.p == NULL)
			continue;
		lua_createtable(L, 0, 4);
		lua_pushinteger(L, i + 1);
		lua_setfield(L, -2, "part");
		script_push_str(L, t->text);
		lua_setfield(L, -2, "text");
		lua_pushboolean(L, t->html);
		lua_setfield(L, -2, "html");
		lua_createtable(L, (int)t->nlinks, 0);
		for (size_t k = 0; k < t->nlinks; k++) {
			lua_createtable(L, 0, 2);
			script_push_str(L, t->links[k].href);
			lua_setfield(L, -2, "href");
			script_push_str(L, t->links[k].text);
			lua_setfield(L, -2, "text");
			lua_rawseti(L, -2, (int)k + 1);
		}
		lua_setfield(L, -2, "links");
		lua_rawseti(L, -2, ++n);
	}
	return 1;
}

static void script_push_url(lua_State *L, const struct mime_url *u, const struct str *text)
{
	lua_createtable(L, 0, 5);
	script_push_str(L, u->url);
	lua_setfield(L, -2, "url");
	script_push_str(L, u->scheme);
	lua_setfield(L, -2, "scheme");
	char host[256];
	size_t hl = u->host.len < sizeof(host) ? u->host.len : sizeof(host) - 1;
	for (size_t i = 0; i < hl; i++)
		host[i] = (char)((u->host.p[i] >= 'A' && u->host.p[i] <= 'Z') ? u->host.p[i] + 32 : u->host.p[i]);
	lua_pushlstring(L, host, hl);
	lua_setfield(L, -2, "host");
	lua_pushboolean(L, (u->flags & MIME_URL_HREF) != 0);
	lua_setfield(L, -2, "href");
	if (text) {
		script_push_str(L, *text);
		lua_setfield(L, -2, "text");
	}
}

/* msg:urls() -> links' hrefs (with anchor text) then URLs in the text. */
static int script_msg_urls(lua_State *L)
{
	struct script_msg *m = script_msg_check(L, 1);
	script_msg_texts(m);
	lua_newtable(L);
	int n = 0;
	for (unsigned i = 0; i < m->m.nparts && n < SCRIPT_URLS_MAX; i++) {
		const struct mime_text *t = &m->texts[i];
		if (t->text.p == NULL)
			continue;
		for (size_t k = 0; k < t->nlinks && n < SCRIPT_URLS_MAX; k++) {
			struct mime_url u;
			if (mime_url_parse(t->links[k].href, &u) != 0)
				continue;
			u.flags |= MIME_URL_HREF;
			script_push_url(L, &u, &t->links[k].text);
			lua_rawseti(L, -2, ++n);
		}
		struct mime_url *urls = NULL;
		size_t count = 0;
		mime_urls_find(m->arena, t->text, SCRIPT_URLS_MAX - (size_t)n, &urls, &count);
		for (size_t k = 0; k < count; k++) {
			script_push_url(L, &urls[k], NULL);
			lua_rawseti(L, -2, ++n);
		}
	}
	return 1;
}

static int script_msg_flags(lua_State *L)
{
	struct script_msg *m = script_msg_check(L, 1);
	script_msg_texts(m);
	unsigned dec = m->dec_flags;
	const struct mime_headers *h = script_msg_hdr(m);
	for (size_t i = 0; i < h->count; i++) {
		unsigned f = 0;
		(void)mime_2047_decode(m->arena, h->v[i].value, &f);
		dec |= f & MIME_DEC_BAD_2047;
	}
	script_push_flag_set(L, m->m.flags, dec);
	return 1;
}

static int script_msg_body(lua_State *L)
{
	struct script_msg *m = script_msg_check(L, 1);
	const struct mime_message *mm = script_msg_tree(m);
	size_t off = mm->root->body_offset <= m->len ? mm->root->body_offset : m->len;
	lua_pushlstring(L, m->data + off, m->len - off);
	return 1;
}

/* msg:text_stats() -> the counts of msg_text_stats over every displayable
 * text part, with .plain and .html the same over the non-HTML and the HTML
 * parts (nil when there is no such part). Several rules counted letters,
 * capitals, words and "!" with a gsub each over every text. */
static int script_msg_text_stats(lua_State *L)
{
	struct script_msg *m = script_msg_check(L, 1);
	script_msg_texts(m);
	struct msg_text_stats all = { 0 }, kind[2] = { { 0 }, { 0 } };
	bool seen[2] = { false, false };
	for (unsigned i = 0; i < m->m.nparts; i++) {
		const struct mime_text *t = &m->texts[i];
		if (t->text.p == NULL)
			continue;
		struct msg_text_stats one = { 0 };
		msg_text_stats_add(&one, t->text.p, t->text.len);
		int h = t->html ? 1 : 0;
		seen[h] = true;
		msg_text_stats_sum(&kind[h], &one);
		msg_text_stats_sum(&all, &one);
	}
	msg_text_stats_push(L, &all);
	for (int h = 0; h < 2; h++) {
		if (!seen[h])
			continue;
		msg_text_stats_push(L, &kind[h]);
		lua_setfield(L, -2, h ? "html" : "plain");
	}
	return 1;
}

/* msg:body_qp() -> { text = the raw body with quoted-printable undone
 * (msg_qp_undo), lower = the same in ASCII lower case }. The HTML rules
 * look for tags in it; decoding in Lua took a callback per "=XX". */
static int script_msg_body_qp(lua_State *L)
{
	struct script_msg *m = script_msg_check(L, 1);
	const struct mime_message *mm = script_msg_tree(m);
	size_t off = mm->root->body_offset <= m->len ? mm->root->body_offset : m->len;
	size_t n = m->len - off;
	char *b = xmalloc(n + 1);
	memcpy(b, m->data + off, n);
	n = msg_qp_undo(b, n);
	lua_createtable(L, 0, 2);
	lua_pushlstring(L, b, n);
	lua_setfield(L, -2, "text");
	msg_ascii_lower(b, n);
	lua_pushlstring(L, b, n);
	lua_setfield(L, -2, "lower");
	free(b);
	return 1;
}

/* Fields computed on first read (then cached in the environment). */
static int script_msg_field(lua_State *L, struct script_msg *m, const char *k)
{
	if (strcmp(k, "size") == 0) {
		lua_pushinteger(L, (lua_Integer)m->len);
	} else if (strcmp(k, "subject") == 0 || strcmp(k, "message_id") == 0) {
		const struct mime_header *h = mime_headers_get(script_msg_hdr(m),
							       k[0] == 's' ? "Subject" : "Message-ID");
		if (h == NULL)
			return 0;
		if (k[0] == 's')
			script_push_decoded(L, m, h);
		else
			script_push_str(L, h->value);
	} else if (strcmp(k, "date") == 0) {
		const struct mime_header *h = mime_headers_get(script_msg_hdr(m), "Date");
		struct mime_date d;
		if (h == NULL || mime_date_parse(h->value, &d) != 0)
			return 0;
		lua_pushnumber(L, (double)d.t);
	} else if (strcmp(k, "from") == 0 || strcmp(k, "to") == 0 || strcmp(k, "cc") == 0 ||
		   strcmp(k, "reply_to") == 0) {
		script_push_addrs(L, m, k[0] == 'f' ? "From" : k[0] == 't' ? "To" : k[0] == 'c' ? "Cc" : "Reply-To");
	} else {
		return 0;
	}
	return 1;
}

/* upvalues: 1 the metatable, 2 the methods. A scan reads ctx.msg fields
 * and methods hundreds of times: the type check compares the metatable
 * with the upvalue (luaL_checkudata looks it up by name), the lookups are
 * raw and by the key already on the stack. */
static int script_msg_index(lua_State *L)
{
	struct script_msg *m = lua_touserdata(L, 1);
	if (m == NULL || !lua_getmetatable(L, 1) || !lua_rawequal(L, -1, lua_upvalueindex(1)))
		m = luaL_checkudata(L, 1, SCRIPT_MSG_MT);   /* raises the usual error */
	if (!m->valid)
		luaL_error(L, "ctx.msg: the message is no longer available");
	luaL_checkstring(L, 2);
	lua_settop(L, 2);
	lua_pushvalue(L, 2);
	lua_rawget(L, lua_upvalueindex(2));
	if (!lua_isnil(L, -1))
		return 1;
	lua_pop(L, 1);
	lua_getfenv(L, 1);                  /* 3 */
	lua_pushvalue(L, 2);
	lua_rawget(L, 3);
	if (!lua_isnil(L, -1))
		return 1;
	lua_pop(L, 1);
	if (!script_msg_field(L, m, lua_tostring(L, 2)))
		return 0;
	lua_pushvalue(L, 2);
	lua_pushvalue(L, -2);
	lua_rawset(L, 3);
	return 1;
}

static void script_msg_release(struct script_msg *m)
{
	arena_destroy(&m->arena);
	if (m->owned)
		free((void *)m->data);
	m->data = NULL;
	m->owned = false;
	m->valid = false;
	m->parsed = false;
	m->texts_done = false;
}

static int script_msg_gc(lua_State *L)
{
	script_msg_release(luaL_checkudata(L, 1, SCRIPT_MSG_MT));
	return 0;
}

void script_msg_push(lua_State *L, const char *data, size_t len, bool borrowed)
{
	struct script_msg *m = lua_newuserdata(L, sizeof(*m));
	memset(m, 0, sizeof(*m));
	if (borrowed) {
		m->data = data;
	} else {
		char *copy = xmalloc(len + 1);
		memcpy(copy, data, len);
		m->data = copy;
		m->owned = true;
	}
	m->len = len;
	m->valid = true;
	luaL_getmetatable(L, SCRIPT_MSG_MT);
	lua_setmetatable(L, -2);
	lua_newtable(L);
	lua_setfenv(L, -2);
}

void script_msg_invalidate(lua_State *L, int idx)
{
	struct script_msg *m = luaL_checkudata(L, idx, SCRIPT_MSG_MT);
	script_msg_release(m);
	lua_newtable(L);
	lua_setfenv(L, idx < 0 ? idx - 1 : idx);
}

/* The methods' results depend only on the message (and the header name
 * asked for), and a scan calls them once per rule: each is built once per
 * message and kept in the userdata's environment, in a table per method
 * (keyed by the method's C function) keyed by the name (true without one);
 * false stands for "nothing". Every caller gets the same tables back.
 * Upvalues: 1 the method, 2 its argument (0 none, 1 optional name, 2 name). */
static int script_msg_cached(lua_State *L)
{
	script_msg_check(L, 1);
	int arg = (int)lua_tointeger(L, lua_upvalueindex(2));
	if (arg == 2)
		luaL_checkstring(L, 2);
	else if (arg == 1)
		luaL_optstring(L, 2, NULL);
	lua_settop(L, 2);
	if (arg == 0 || lua_isnil(L, 2)) {
		lua_pushboolean(L, 1);
		lua_replace(L, 2);          /* 2: the key */
	}
	lua_getfenv(L, 1);                  /* 3: env */
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_rawget(L, 3);                   /* 4: this method's results */
	if (!lua_istable(L, 4)) {
		lua_pop(L, 1);
		lua_newtable(L);
		lua_pushvalue(L, lua_upvalueindex(1));
		lua_pushvalue(L, 4);
		lua_rawset(L, 3);
	}
	lua_pushvalue(L, 2);
	lua_rawget(L, 4);                   /* 5: the cached result */
	if (lua_isnil(L, 5)) {
		lua_pop(L, 1);
		lua_pushvalue(L, lua_upvalueindex(1));
		lua_pushvalue(L, 1);
		if (lua_type(L, 2) == LUA_TBOOLEAN)
			lua_pushnil(L);
		else
			lua_pushvalue(L, 2);
		lua_call(L, 2, 1);          /* 5 */
		if (lua_isnil(L, 5)) {
			lua_pop(L, 1);
			lua_pushboolean(L, 0);
		}
		lua_pushvalue(L, 2);
		lua_pushvalue(L, 5);
		lua_rawset(L, 4);
	}
	if (lua_type(L, 5) == LUA_TBOOLEAN && !lua_toboolean(L, 5))
		return 0;
	return 1;
}

void script_msg_open(lua_State *L)
{
	static const struct {
		const char *name;
		lua_CFunction fn;
		int arg;
	} methods[] = {
		{ "header", script_msg_header, 2 }, { "headers", script_msg_headers, 1 },
		{ "raw_header", script_msg_raw_header, 2 }, { "raw_headers", script_msg_raw_headers, 2 },
		{ "parts", script_msg_parts, 0 },
		{ "text", script_msg_text, 0 }, { "urls", script_msg_urls, 0 },
		{ "flags", script_msg_flags, 0 }, { "body", script_msg_body, 0 },
		{ "text_stats", script_msg_text_stats, 0 }, { "body_qp", script_msg_body_qp, 0 },
	};
	luaL_newmetatable(L, SCRIPT_MSG_MT);
	lua_newtable(L);
	for (size_t i = 0; i < sizeof(methods) / sizeof(*methods); i++) {
		lua_pushcfunction(L, methods[i].fn);
		lua_pushinteger(L, methods[i].arg);
		lua_pushcclosure(L, script_msg_cached, 2);
		lua_setfield(L, -2, methods[i].name);
	}
	lua_setfield(L, -2, "methods");
	lua_pushvalue(L, -1);
	lua_getfield(L, -1, "methods");
	lua_pushcclosure(L, script_msg_index, 2);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, script_msg_gc);
	lua_setfield(L, -2, "__gc");
	lua_pop(L, 1);
}
