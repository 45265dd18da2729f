/* script_snapshot.c - the last good copy of rules/ and policies/.
 *
 * Running workers keep their set when a file turns bad, but a worker that
 * starts later (after a crash) would load the bad file and could not serve.
 * So whenever a set has loaded and passed its self-tests - in the parent at
 * each generation start, in a worker after each hot reload - the sources
 * that set was built from (held in the set, not re-read from disk, so the
 * copy is exactly what was verified) are written to
 * STATE_DIR/lua-good/{rules,policies}. A worker whose configured files do
 * not load starts on that copy, logs it, and keeps watching the configured
 * directories. The new copy is built beside the old one and swapped in with
 * one renameat2(RENAME_EXCHANGE), so a reader never sees half a copy. */
#include "script_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SCRIPT_PATH_MAX 4200

void script_snapshot_paths(const char *state_dir, char *rules, char *policies, size_t size)
{
	snprintf(rules, size, "%s/lua-good/rules", state_dir);
	snprintf(policies, size, "%s/lua-good/policies", state_dir);
}

/* Removes a copy: dir/{rules,policies}/FILE, then the directories. */
static void script_snapshot_rm(const char *dir)
{
	static const char *const subs[] = { "rules", "policies" };
	char sub[SCRIPT_PATH_MAX], p[SCRIPT_PATH_MAX + 256];
	for (size_t i = 0; i < 2; i++) {
		snprintf(sub, sizeof(sub), "%s/%s", dir, subs[i]);
		DIR *d = opendir(sub);
		if (d == NULL)
			continue;
		struct dirent *de;
		while ((de = readdir(d)) != NULL)
			if (de->d_name[0] != '.') {
				snprintf(p, sizeof(p), "%s/%s", sub, de->d_name);
				unlink(p);
			}
		closedir(d);
		rmdir(sub);
	}
	rmdir(dir);
}

static int script_write_file(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	size_t off = 0;
	while (off < len) {
		ssize_t n = write(fd, data + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			close(fd);
			return -1;
		}
		off += (size_t)n;
	}
	return close(fd);
}

/* Writes API.sources of s (at the top of the stack) under dir; 0 or -1. */
static int script_snapshot_write(lua_State *L, const char *dir, char *err, size_t err_size)
{
	char p[SCRIPT_PATH_MAX + 512];
	int n = (int)lua_objlen(L, -1);
	for (int i = 1; i <= n; i++) {
		lua_rawgeti(L, -1, i);
		lua_getfield(L, -1, "kind");
		lua_getfield(L, -2, "name");
		lua_getfield(L, -3, "src");
		size_t len = 0;
		const char *kind = lua_tostring(L, -3), *name = lua_tostring(L, -2);
		const char *src = lua_tolstring(L, -1, &len);
		int rc = -1;
		if (kind && name && src && strchr(name, '/') == NULL) {
			snprintf(p, sizeof(p), "%s/%s/%s", dir, kind, name);
			rc = script_write_file(p, src, len);
			if (rc != 0)
				snprintf(err, err_size, "%s: %s", p, strerror(errno));
		} else {
			snprintf(err, err_size, "bad source entry %d", i);
		}
		lua_pop(L, 4);
		if (rc != 0)
			return -1;
	}
	return 0;
}

static int script_snapshot_mkdirs(const char *dir, uid_t uid, gid_t gid)
{
	char sub[SCRIPT_PATH_MAX];
	if (mkdir(dir, 0755) != 0)
		return -1;
	snprintf(sub, sizeof(sub), "%s/rules", dir);
	if (mkdir(sub, 0755) != 0 || (uid != (uid_t)-1 && chown(sub, uid, gid) != 0))
		return -1;
	snprintf(sub, sizeof(sub), "%s/policies", dir);
	if (mkdir(sub, 0755) != 0 || (uid != (uid_t)-1 && chown(sub, uid, gid) != 0))
		return -1;
	return uid != (uid_t)-1 ? chown(dir, uid, gid) : 0;
}

/* Swaps tmp in for top (exchange when top exists), then removes the old. */
static int script_snapshot_swap(const char *tmp, const char *top, char *err, size_t err_size)
{
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, top, RENAME_EXCHANGE) == 0) {
		script_snapshot_rm(tmp);
		return 0;
	}
	if (errno == ENOENT && rename(tmp, top) == 0)
		return 0;
	snprintf(err, err_size, "swap %s: %s", top, strerror(errno));
	script_snapshot_rm(tmp);
	return -1;
}

int script_set_snapshot(struct script_set *s, const char *state_dir, uid_t uid, gid_t gid,
			char *err, size_t err_size)
{
	char top[SCRIPT_PATH_MAX], tmp[SCRIPT_PATH_MAX];
	snprintf(top, sizeof(top), "%s/lua-good", state_dir);
	snprintf(tmp, sizeof(tmp), "%s/lua-good.new.%ld", state_dir, (long)getpid());
	script_snapshot_rm(tmp);
	if (script_snapshot_mkdirs(tmp, uid, gid) != 0) {
		snprintf(err, err_size, "%s: %s", tmp, strerror(errno));
		script_snapshot_rm(tmp);
		return -1;
	}
	lua_State *L = s->L;
	int top_idx = lua_gettop(L);
	lua_rawgeti(L, LUA_REGISTRYINDEX, s->api_ref);
	lua_getfield(L, -1, "sources");
	int rc = lua_istable(L, -1) ? script_snapshot_write(L, tmp, err, err_size) : -1;
	if (!lua_istable(L, -1))
		snprintf(err, err_size, "the set has no sources");
	lua_settop(L, top_idx);
	if (rc != 0) {
		script_snapshot_rm(tmp);
		return -1;
	}
	return script_snapshot_swap(tmp, top, err, err_size);
}
