/* conf.c - loads moonpost.conf: Lua in an empty sandbox, then the schema. */
#include "conf.h"
#include "arena.h"
#include "buf.h"
#include "conf_locate.h"
#include "conf_schema.h"
#include "log.h"
#include "tls.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>
#include <luajit.h>

/* A config is a few hundred lines; anything near these is a mistake. */
#define CONF_FILE_MAX (1024 * 1024)
#define CONF_INSTR_MAX 10000000      /* Lua VM instructions */

const char *const conf_proto_names[] = {
	"smtp", "submission", "lmtp", "imap", "pop3", "managesieve", NULL,
};
const char *const conf_tls_names[] = { "none", "starttls", "implicit", NULL };
static const char *const log_level_names[] = {
	"debug", "info", "notice", "warn", "error", NULL,
};

#define F(st, field) offsetof(struct st, field)

static const struct conf_field listener_fields[] = {
	{ .name = "address", .type = CT_STRING, .offset = F(conf_listener, address) },
	{ .name = "port", .type = CT_INT, .offset = F(conf_listener, port), .min = 1, .max = 65535 },
	{ .name = "path", .type = CT_STRING, .offset = F(conf_listener, path) },
	{ .name = "protocol", .type = CT_ENUM, .offset = F(conf_listener, protocol),
	  .names = conf_proto_names, .def_int = -1 },
	{ .name = "tls", .type = CT_ENUM, .offset = F(conf_listener, tls),
	  .names = conf_tls_names, .def_int = TLSMODE_NONE },
	{ .name = "plaintext_auth", .type = CT_BOOL, .offset = F(conf_listener, plaintext_auth) },
	{ .name = NULL },
};

static const struct conf_field log_fields[] = {
	{ .name = "level", .type = CT_ENUM, .offset = F(conf_log, level), .names = log_level_names,
	  .def_int = LOG_LVL_INFO },
	{ .name = "syslog", .type = CT_BOOL, .offset = F(conf_log, syslog) },
	{ .name = NULL },
};

static const struct conf_field tls_fields[] = {
	{ .name = "cert", .type = CT_STRING, .offset = F(conf_tls, cert) },
	{ .name = "key", .type = CT_STRING, .offset = F(conf_tls, key) },
	{ .name = NULL },
};

static const char *const lf_policy_names[] = { "normalize", "reject", NULL };
static const char *const long_line_names[] = { "reject", "accept", NULL };

static const struct conf_field smtp_fields[] = {
	{ .name = "line_max", .type = CT_INT, .offset = F(conf_smtp, line_max),
	  .min = 512, .max = 65536, .def_int = 512 },
	{ .name = "errors_max", .type = CT_INT, .offset = F(conf_smtp, errors_max),
	  .min = 1, .max = 1000, .def_int = 20 },
	{ .name = "idle_timeout", .type = CT_INT, .offset = F(conf_smtp, idle_timeout),
	  .min = 1, .max = 86400, .def_int = 300 },
	{ .name = "message_size", .type = CT_INT, .offset = F(conf_smtp, message_size),
	  .min = 1024, .max = INT64_C(1) << 40, .def_int = 41943040 },
	{ .name = "rcpt_max", .type = CT_INT, .offset = F(conf_smtp, rcpt_max),
	  .min = 1, .max = 100000, .def_int = 1000 },
	{ .name = "bare_lf", .type = CT_ENUM, .offset = F(conf_smtp, bare_lf),
	  .names = lf_policy_names, .def_int = 0 },
	{ .name = "bare_cr", .type = CT_ENUM, .offset = F(conf_smtp, bare_cr),
	  .names = lf_policy_names, .def_int = 0 },
	{ .name = "long_lines", .type = CT_ENUM, .offset = F(conf_smtp, long_lines),
	  .names = long_line_names, .def_int = 0 },
	{ .name = "postmaster", .type = CT_STRING, .offset = F(conf_smtp, postmaster) },
	{ .name = "delivery_threads", .type = CT_INT, .offset = F(conf_smtp, delivery_threads),
	  .min = 1, .max = 256, .def_int = 16 },
	{ .name = "connections_max", .type = CT_INT, .offset = F(conf_smtp, connections_max),
	  .min = 1, .max = 1000000, .def_int = 1000 },
	{ .name = "connections_per_ip", .type = CT_INT, .offset = F(conf_smtp, connections_per_ip),
	  .min = 1, .max = 1000000, .def_int = 50 },
	{ .name = NULL },
};

static const struct conf_field pop3_fields[] = {
	{ .name = "line_max", .type = CT_INT, .offset = F(conf_pop3, line_max),
	  .min = 255, .max = 65536, .def_int = 512 },
	{ .name = "errors_max", .type = CT_INT, .offset = F(conf_pop3, errors_max),
	  .min = 1, .max = 1000, .def_int = 10 },
	/* RFC 1939 3 asks for at least 10 minutes; shorter only for tests. */
	{ .name = "idle_timeout", .type = CT_INT, .offset = F(conf_pop3, idle_timeout),
	  .min = 1, .max = 86400, .def_int = 600 },
	{ .name = "mark_seen", .type = CT_BOOL, .offset = F(conf_pop3, mark_seen), .def_int = 1 },
	{ .name = "apop", .type = CT_BOOL, .offset = F(conf_pop3, apop), .def_int = 0 },
	{ .name = NULL },
};

static const struct conf_field imap_fields[] = {
	/* RFC 7162 4 recommends accepting command lines of 8192 octets. */
	{ .name = "line_max", .type = CT_INT, .offset = F(conf_imap, line_max),
	  .min = 1024, .max = 1048576, .def_int = 65536 },
	/* Literals held in memory (LOGIN, SEARCH strings, ...): APPEND's
	 * messages are streamed to disk and bounded by append_max instead. */
	{ .name = "literal_max", .type = CT_INT, .offset = F(conf_imap, literal_max),
	  .min = 1024, .max = INT64_C(1) << 34, .def_int = 1024 * 1024 },
	{ .name = "command_max", .type = CT_INT, .offset = F(conf_imap, command_max),
	  .min = 1024, .max = INT64_C(1) << 34, .def_int = 2 * 1024 * 1024 },
	/* 0: the same limit as SMTP's message_size (conf_check). */
	{ .name = "append_max", .type = CT_INT, .offset = F(conf_imap, append_max),
	  .min = 0, .max = INT64_C(1) << 40, .def_int = 0 },
	{ .name = "errors_max", .type = CT_INT, .offset = F(conf_imap, errors_max),
	  .min = 1, .max = 1000, .def_int = 20 },
	/* RFC 3501 5.4 asks for at least 30 minutes; shorter only for tests. */
	{ .name = "idle_timeout", .type = CT_INT, .offset = F(conf_imap, idle_timeout),
	  .min = 1, .max = 86400, .def_int = 1800 },
	{ .name = NULL },
};

static const char *const dir_backend_names[] = { "none", "file", "mariadb", NULL };

static const struct conf_field mariadb_fields[] = {
	{ .name = "host", .type = CT_STRING, .offset = F(conf_mariadb, host), .def_str = "127.0.0.1" },
	{ .name = "port", .type = CT_INT, .offset = F(conf_mariadb, port), .min = 1, .max = 65535,
	  .def_int = 3306 },
	{ .name = "socket", .type = CT_STRING, .offset = F(conf_mariadb, socket) },
	{ .name = "user", .type = CT_STRING, .offset = F(conf_mariadb, user), .def_str = "mailserver" },
	{ .name = "password", .type = CT_STRING, .offset = F(conf_mariadb, password) },
	{ .name = "database", .type = CT_STRING, .offset = F(conf_mariadb, database),
	  .def_str = "mailserver" },
	{ .name = "admin_user", .type = CT_STRING, .offset = F(conf_mariadb, admin_user) },
	{ .name = "admin_password", .type = CT_STRING, .offset = F(conf_mariadb, admin_password) },
	{ .name = "pool", .type = CT_INT, .offset = F(conf_mariadb, pool), .min = 1, .max = 64,
	  .def_int = 4 },
	{ .name = "connect_timeout", .type = CT_INT, .offset = F(conf_mariadb, connect_timeout),
	  .min = 1, .max = 300, .def_int = 5 },
	{ .name = "query_timeout", .type = CT_INT, .offset = F(conf_mariadb, query_timeout),
	  .min = 1, .max = 300, .def_int = 5 },
	{ .name = NULL },
};

/* The ISPmail guide's queries (Postfix maps + Dovecot passdb/userdb). */
static const struct conf_field directory_fields[] = {
	{ .name = "backend", .type = CT_ENUM, .offset = F(conf_directory, backend),
	  .names = dir_backend_names, .def_int = DIRECTORY_NONE },
	{ .name = "file", .type = CT_STRING, .offset = F(conf_directory, file),
	  .def_str = "/etc/moonpost/directory" },
	{ .name = "mariadb", .type = CT_TABLE, .offset = F(conf_directory, mariadb),
	  .sub = mariadb_fields },
	{ .name = "domain_query", .type = CT_STRING, .offset = F(conf_directory, domain_query),
	  .def_str = "SELECT 1 FROM virtual_domains WHERE name='%d'" },
	{ .name = "user_query", .type = CT_STRING, .offset = F(conf_directory, user_query),
	  .def_str = "SELECT email, password, quota FROM virtual_users WHERE email='%s'" },
	{ .name = "alias_query", .type = CT_STRING, .offset = F(conf_directory, alias_query),
	  .def_str = "SELECT destination FROM virtual_aliases WHERE source='%s'" },
	{ .name = "maildir", .type = CT_STRING, .offset = F(conf_directory, maildir),
	  .def_str = "/var/vmail/%d/%n/Maildir" },
	{ .name = "recipient_delimiter", .type = CT_STRING,
	  .offset = F(conf_directory, recipient_delimiter), .def_str = "+" },
	{ .name = "cache_ttl", .type = CT_INT, .offset = F(conf_directory, cache_ttl),
	  .min = 0, .max = 86400, .def_int = 60 },
	{ .name = "negative_ttl", .type = CT_INT, .offset = F(conf_directory, negative_ttl),
	  .min = 0, .max = 86400, .def_int = 10 },
	{ .name = "alias_depth_max", .type = CT_INT, .offset = F(conf_directory, alias_depth_max),
	  .min = 1, .max = 50, .def_int = 20 },
	{ .name = "password_scheme", .type = CT_STRING,
	  .offset = F(conf_directory, password_scheme), .def_str = "ARGON2ID" },
	{ .name = "allow_plaintext_passwords", .type = CT_BOOL,
	  .offset = F(conf_directory, allow_plaintext_passwords) },
	{ .name = "auth_threads", .type = CT_INT, .offset = F(conf_directory, auth_threads),
	  .min = 1, .max = 64, .def_int = 4 },
	{ .name = "penalty_max", .type = CT_INT, .offset = F(conf_directory, penalty_max),
	  .min = 0, .max = 300, .def_int = 15 },
	{ .name = NULL },
};

static const struct conf_field lua_action_fields[] = {
	{ .name = "reject", .type = CT_NUMBER, .offset = F(conf_lua_actions, reject),
	  .min = 0, .max = 1000, .def_num = 15 },
	{ .name = "add_header", .type = CT_NUMBER, .offset = F(conf_lua_actions, add_header),
	  .min = 0, .max = 1000, .def_num = 6 },
	{ .name = "soft_reject", .type = CT_NUMBER, .offset = F(conf_lua_actions, soft_reject),
	  .min = 0, .max = 1000, .def_num = 0 },
	{ .name = NULL },
};

static const struct conf_field lua_fields[] = {
	{ .name = "lib_dir", .type = CT_STRING, .offset = F(conf_lua, lib_dir) },
	{ .name = "rules_dir", .type = CT_STRING, .offset = F(conf_lua, rules_dir),
	  .def_str = "/etc/moonpost/rules" },
	{ .name = "policies_dir", .type = CT_STRING, .offset = F(conf_lua, policies_dir),
	  .def_str = "/etc/moonpost/policies" },
	{ .name = "budget", .type = CT_NUMBER, .offset = F(conf_lua, budget),
	  .min = 0, .max = 60, .def_num = 0.5 },
	{ .name = "load_budget", .type = CT_NUMBER, .offset = F(conf_lua, load_budget),
	  .min = 0, .max = 600, .def_num = 10 },
	{ .name = "watch", .type = CT_BOOL, .offset = F(conf_lua, watch), .def_int = 1 },
	{ .name = "scan_max", .type = CT_INT, .offset = F(conf_lua, scan_max),
	  .min = 0, .max = INT64_C(1) << 32, .def_int = 10485760 },
	{ .name = "actions", .type = CT_TABLE, .offset = F(conf_lua, actions), .sub = lua_action_fields },
	{ .name = NULL },
};

static const struct conf_field conf_fields[] = {
	{ .name = "hostname", .type = CT_STRING, .offset = F(conf, hostname) },
	{ .name = "user", .type = CT_STRING, .offset = F(conf, user), .def_str = "vmail" },
	{ .name = "group", .type = CT_STRING, .offset = F(conf, group), .def_str = "vmail" },
	{ .name = "state_dir", .type = CT_STRING, .offset = F(conf, state_dir),
	  .def_str = "/var/lib/moonpost" },
	{ .name = "workers", .type = CT_INT, .offset = F(conf, workers), .min = 0, .max = 256 },
	{ .name = "shutdown_timeout", .type = CT_INT, .offset = F(conf, shutdown_timeout),
	  .min = 0, .max = 3600, .def_int = 30 },
	{ .name = "log", .type = CT_TABLE, .offset = F(conf, log), .sub = log_fields },
	{ .name = "tls", .type = CT_TABLE, .offset = F(conf, tls), .sub = tls_fields },
	{ .name = "smtp", .type = CT_TABLE, .offset = F(conf, smtp), .sub = smtp_fields },
	{ .name = "pop3", .type = CT_TABLE, .offset = F(conf, pop3), .sub = pop3_fields },
	{ .name = "imap", .type = CT_TABLE, .offset = F(conf, imap), .sub = imap_fields },
	{ .name = "directory", .type = CT_TABLE, .offset = F(conf, directory), .sub = directory_fields },
	{ .name = "lua", .type = CT_TABLE, .offset = F(conf, lua), .sub = lua_fields },
	{ .name = "listen", .type = CT_LIST, .offset = F(conf, listen), .sub = listener_fields,
	  .elem_size = sizeof(struct conf_listener), .count_offset = F(conf, listen_count),
	  .line_offset = F(conf_listener, line) },
	{ .name = NULL },
};

/* Collects "FILE:LINE: message" lines. */
struct conf_errors {
	const char *path;
	struct conf_locs *locs;
	struct buf out;
	int count;
};

static void conf_error_at(struct conf_errors *e, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void conf_error_at(struct conf_errors *e, int line, const char *fmt, ...)
{
	va_list ap;
	if (line > 0)
		buf_printf(&e->out, "%s:%d: ", e->path, line);
	else
		buf_printf(&e->out, "%s: ", e->path);
	va_start(ap, fmt);
	buf_vprintf(&e->out, fmt, ap);
	va_end(ap);
	buf_append(&e->out, "\n", 1);
	e->count++;
}

static void conf_error_path(void *ctx, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void conf_error_path(void *ctx, const char *path, const char *fmt, ...)
{
	struct conf_errors *e = ctx;
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	conf_error_at(e, e->locs ? conf_locs_line(e->locs, path) : 0, "%s", msg);
}

static int conf_line_of(void *ctx, const char *path)
{
	struct conf_errors *e = ctx;
	return e->locs ? conf_locs_line(e->locs, path) : 0;
}

/* Lua's messages already start with "FILE:LINE:"; keep them as they are. */
static void conf_error_lua(struct conf_errors *e, const char *msg)
{
	size_t plen = strlen(e->path);
	if (msg == NULL)
		msg = "unknown Lua error";
	if (strncmp(msg, e->path, plen) == 0 && msg[plen] == ':') {
		buf_printf(&e->out, "%s\n", msg);
		e->count++;
	} else {
		conf_error_at(e, 0, "%s", msg);
	}
}

static void conf_hook(lua_State *L, lua_Debug *ar MP_UNUSED)
{
	luaL_error(L, "configuration runs too long (an endless loop?)");
}

/* Evaluates the chunk with an empty environment; leaves that environment
 * (the config's globals) on the stack. */
static int conf_eval(lua_State *L, struct conf_errors *e, const char *src, size_t len)
{
	char chunk[PATH_MAX + 2];
	snprintf(chunk, sizeof(chunk), "@%s", e->path);
	/* The JIT does not fire count hooks; config is tiny, interpreting it
	 * is free, and the hook is what stops an endless loop. */
	luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF);
	if (luaL_loadbuffer(L, src, len, chunk) != 0) {
		conf_error_lua(e, lua_tostring(L, -1));
		return -1;
	}
	lua_newtable(L);
	lua_pushvalue(L, -1);
	lua_insert(L, -3);          /* env, chunk, env */
	lua_setfenv(L, -2);
	lua_sethook(L, conf_hook, LUA_MASKCOUNT, CONF_INSTR_MAX);
	if (lua_pcall(L, 0, 0, 0) != 0) {
		conf_error_lua(e, lua_tostring(L, -1));
		return -1;
	}
	lua_sethook(L, NULL, 0, 0);
	return 0;
}

static void conf_resolve_path(struct conf *c, char **pp)
{
	char *p = *pp;
	if (p[0] == '\0' || p[0] == '/')
		return;
	char cwd[PATH_MAX];
	if (getcwd(cwd, sizeof(cwd)) == NULL)
		return;
	*pp = arena_printf(c->arena, "%s/%s", cwd, p);
}

static void conf_check_listener(struct conf *c, struct conf_errors *e, size_t i)
{
	struct conf_listener *l = &c->listen[i];
	l->fd = -1;
	if (l->protocol < 0)
		conf_error_at(e, l->line, "listen.%zu: protocol is required", i + 1);
	if (l->path[0] != '\0') {
		if (l->address[0] != '\0' || l->port != 0)
			conf_error_at(e, l->line, "listen.%zu: use either path or address/port", i + 1);
		if (strlen(l->path) >= 108)
			conf_error_at(e, l->line, "listen.%zu: unix socket path too long", i + 1);
		conf_resolve_path(c, &l->path);
	} else if (l->address[0] == '\0' || l->port == 0) {
		conf_error_at(e, l->line, "listen.%zu: address and port are required", i + 1);
	}
	if (l->tls != TLSMODE_NONE && c->tls.cert[0] == '\0')
		conf_error_at(e, l->line, "listen.%zu: tls = \"%s\" needs tls.cert and tls.key",
			      i + 1, conf_tls_names[l->tls]);
	for (size_t j = 0; j < i; j++) {
		struct conf_listener *o = &c->listen[j];
		if (strcmp(o->address, l->address) == 0 && o->port == l->port &&
		    strcmp(o->path, l->path) == 0)
			conf_error_at(e, l->line, "listen.%zu: same address as listen.%zu",
				      i + 1, j + 1);
	}
}

/* lib_dir "" = the installed library (PREFIX/share/moonpost/lua), or the
 * source tree's when running from a build directory. */
static void conf_lua_lib_default(struct conf *c)
{
	if (c->lua.lib_dir[0] != '\0')
		return;
	struct stat st;
	bool installed = stat(MP_DATADIR "/lua/moonpost/boot.lua", &st) == 0;
	c->lua.lib_dir = arena_strdup(c->arena, installed ? MP_DATADIR "/lua" : MP_SRCDIR "/lua");
}

static void conf_check(struct conf *c, struct conf_errors *e, bool load_tls)
{
	if (c->hostname[0] == '\0') {
		char h[256] = "localhost";
		gethostname(h, sizeof(h) - 1);
		c->hostname = arena_strdup(c->arena, h);
	}
	if (c->imap.append_max == 0)
		c->imap.append_max = c->smtp.message_size;
	if (c->workers == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		c->workers = n > 0 ? n : 1;
	}
	conf_resolve_path(c, &c->state_dir);
	conf_resolve_path(c, &c->tls.cert);
	conf_resolve_path(c, &c->tls.key);
	conf_resolve_path(c, &c->directory.file);
	conf_resolve_path(c, &c->directory.maildir);
	conf_lua_lib_default(c);
	conf_resolve_path(c, &c->lua.lib_dir);
	conf_resolve_path(c, &c->lua.rules_dir);
	conf_resolve_path(c, &c->lua.policies_dir);
	if (c->listen_count == 0)
		conf_error_at(e, conf_line_of(e, "listen"), "listen: at least one listener is required");
	for (size_t i = 0; i < c->listen_count; i++)
		conf_check_listener(c, e, i);
	if ((c->tls.cert[0] == '\0') != (c->tls.key[0] == '\0'))
		conf_error_at(e, conf_line_of(e, "tls"), "tls: set both cert and key");
	if (load_tls && c->tls.cert[0] && c->tls.key[0]) {
		char err[512];
		c->ssl_ctx = tls_server_ctx_new(c->tls.cert, c->tls.key, err, sizeof(err));
		if (c->ssl_ctx == NULL)
			conf_error_at(e, conf_line_of(e, "tls.cert"), "tls: %s", err);
	}
}

struct conf *conf_load_string(const char *path, const char *src, size_t len,
			      bool load_tls, char **errors_r)
{
	struct conf_errors e = { .path = path };
	struct conf *c = xcalloc(1, sizeof(*c));
	c->arena = arena_new();
	c->path = arena_strdup(c->arena, path);
	conf_schema_defaults(conf_fields, c, c->arena);

	lua_State *L = luaL_newstate();
	if (L == NULL)
		fatal("cannot create a Lua state");
	if (conf_eval(L, &e, src, len) == 0) {
		e.locs = conf_locate(src, len);
		struct conf_walk w = { L, c->arena, conf_error_path, &e, conf_line_of };
		conf_schema_walk(&w, conf_fields, c, lua_gettop(L), "");
		if (e.count == 0)
			conf_check(c, &e, load_tls);
	}
	lua_close(L);
	conf_locs_free(&e.locs);
	if (e.count > 0) {
		*errors_r = xstrndup(buf_ptr(&e.out), e.out.len);
		buf_free(&e.out);
		conf_free(&c);
		return NULL;
	}
	buf_free(&e.out);
	*errors_r = NULL;
	return c;
}

static char *conf_read_file(const char *path, size_t *len_r, char **errors_r)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char err[PATH_MAX + 128];
	if (fd < 0 || fstat(fd, &st) != 0) {
		snprintf(err, sizeof(err), "%s: cannot open: %s\n", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > CONF_FILE_MAX) {
		snprintf(err, sizeof(err), "%s: not a regular file under %d bytes\n",
			 path, CONF_FILE_MAX);
		goto fail;
	}
	char *src = xmalloc((size_t)st.st_size + 1);
	ssize_t n = read(fd, src, (size_t)st.st_size);
	if (n != st.st_size) {
		snprintf(err, sizeof(err), "%s: cannot read: %s\n", path,
			 n < 0 ? strerror(errno) : "short read");
		free(src);
		goto fail;
	}
	close(fd);
	*len_r = (size_t)n;
	return src;
fail:
	if (fd >= 0)
		close(fd);
	*errors_r = xstrdup(err);
	return NULL;
}

static struct conf *conf_load_file(const char *path, bool load_tls, char **errors_r)
{
	size_t len;
	char *src = conf_read_file(path, &len, errors_r);
	if (src == NULL)
		return NULL;
	struct conf *c = conf_load_string(path, src, len, load_tls, errors_r);
	free(src);
	return c;
}

struct conf *conf_load(const char *path, char **errors_r)
{
	return conf_load_file(path, true, errors_r);
}

struct conf *conf_load_notls(const char *path, char **errors_r)
{
	return conf_load_file(path, false, errors_r);
}

void conf_free(struct conf **cp)
{
	struct conf *c = *cp;
	if (c == NULL)
		return;
	tls_ctx_free(&c->ssl_ctx);
	arena_destroy(&c->arena);
	free(c);
	*cp = NULL;
}
