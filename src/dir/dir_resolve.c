/* dir_resolve.c - what happens to mail for an address: exact alias, then
 * mailbox, then the same without +tag, then the catch-all, following alias
 * chains depth-first with loop detection. The order is Postfix's
 * virtual_alias_maps with ISPmail's email2email map: an existing mailbox or
 * exact alias is never swallowed by "@domain". */
#include "dir_int.h"
#include "core/arena.h"
#include "core/util.h"

#include <string.h>
#include <strings.h>

#define RESOLVE_NODES_MAX 1000

struct resolve {
	struct dir *d;
	struct arena *a;
	struct dir_node *nodes;
	size_t n, cap;
	const char *path[64];   /* addresses being expanded, by depth */
	bool tempfail;
	const char *error;
};

static struct dir_node *resolve_add(struct resolve *rs, enum dir_node_kind kind,
				    const char *address, int depth)
{
	if (rs->n == rs->cap) {
		size_t cap = rs->cap ? rs->cap * 2 : 8;
		struct dir_node *nodes = arena_alloc(rs->a, cap * sizeof(*nodes));
		if (rs->n)
			memcpy(nodes, rs->nodes, rs->n * sizeof(*nodes));
		rs->nodes = nodes;
		rs->cap = cap;
	}
	struct dir_node *nd = &rs->nodes[rs->n++];
	memset(nd, 0, sizeof(*nd));
	nd->kind = kind;
	nd->address = address;
	nd->depth = depth;
	return nd;
}

static void resolve_address(struct resolve *rs, const char *address, int depth,
			    bool catchall);

static void resolve_mailbox(struct resolve *rs, const char *key, int depth, bool catchall)
{
	struct dir_user u;
	enum dir_result r = dir_p_user_c(rs->d, key, rs->a, &u);
	if (r == DIR_TEMPFAIL) {
		rs->tempfail = true;
		return;
	}
	struct dir_node *nd = resolve_add(rs, r == DIR_FOUND ? DIR_NODE_MAILBOX : DIR_NODE_UNKNOWN,
					  r == DIR_FOUND ? u.email : key, depth);
	nd->catchall = catchall;
	if (r == DIR_FOUND) {
		u.maildir = dir_maildir_c(rs->d, u.email, rs->a);
		nd->user = u;
	}
}

static void resolve_expand(struct resolve *rs, const char *key, const struct dir_list *dests,
			   int depth, bool catchall)
{
	struct dir_node *nd = resolve_add(rs, DIR_NODE_ALIAS, key, depth);
	nd->catchall = catchall;
	rs->path[depth] = key;
	for (size_t i = 0; i < dests->n && rs->n < RESOLVE_NODES_MAX; i++) {
		/* "a@x -> a@x, b@x" keeps a copy in a@x's own mailbox. */
		if (strcasecmp(dests->items[i], key) == 0)
			resolve_mailbox(rs, key, depth + 1, false);
		else
			resolve_address(rs, dests->items[i], depth + 1, false);
	}
}

/* Alias rows for key, else a mailbox called key. 1 handled, 0 not found. */
static int resolve_key(struct resolve *rs, const char *key, int depth, bool catchall)
{
	struct dir_list dests = { 0 };
	enum dir_result r = dir_p_aliases_c(rs->d, key, rs->a, &dests);
	if (r == DIR_TEMPFAIL) {
		rs->tempfail = true;
		return 1;
	}
	if (r == DIR_FOUND) {
		resolve_expand(rs, key, &dests, depth, catchall);
		return 1;
	}
	struct dir_user u;
	r = dir_p_user_c(rs->d, key, rs->a, &u);
	if (r == DIR_TEMPFAIL) {
		rs->tempfail = true;
		return 1;
	}
	if (r == DIR_NOTFOUND)
		return 0;
	struct dir_node *nd = resolve_add(rs, DIR_NODE_MAILBOX, u.email, depth);
	u.maildir = dir_maildir_c(rs->d, u.email, rs->a);
	nd->user = u;
	nd->catchall = catchall;
	return 1;
}

static bool resolve_on_path(const struct resolve *rs, const char *full, int depth)
{
	for (int i = 0; i < depth; i++)
		if (rs->path[i] && strcasecmp(rs->path[i], full) == 0)
			return true;
	return false;
}

static void resolve_address(struct resolve *rs, const char *address, int depth,
			    bool catchall)
{
	struct dir_addr addr;
	const struct conf_directory *cfg = rs->d->cfg;
	if (dir_addr_parse(address, cfg->recipient_delimiter, false, rs->a, &addr) != 0) {
		resolve_add(rs, DIR_NODE_UNKNOWN, address, depth);
		return;
	}
	if (depth > cfg->alias_depth_max || depth >= (int)ARRAY_SIZE(rs->path) ||
	    resolve_on_path(rs, addr.full, depth) || rs->n >= RESOLVE_NODES_MAX) {
		resolve_add(rs, DIR_NODE_LOOP, addr.full, depth);
		return;
	}
	enum dir_result r = dir_p_domain_c(rs->d, addr.domain, rs->a);
	if (r == DIR_TEMPFAIL) {
		rs->tempfail = true;
		return;
	}
	if (r == DIR_NOTFOUND) {
		resolve_add(rs, DIR_NODE_EXTERNAL, addr.full, depth)->catchall = catchall;
		return;
	}
	rs->path[depth] = addr.full;
	if (resolve_key(rs, addr.full, depth, catchall))
		return;
	if (addr.base && resolve_key(rs, addr.base, depth, catchall))
		return;
	char *any = arena_printf(rs->a, "@%s", addr.domain);
	struct dir_list dests = { 0 };
	r = dir_p_aliases_c(rs->d, any, rs->a, &dests);
	if (r == DIR_TEMPFAIL)
		rs->tempfail = true;
	else if (r == DIR_FOUND)
		resolve_expand(rs, any, &dests, depth, true);
	else
		resolve_add(rs, DIR_NODE_UNKNOWN, addr.full, depth);
}

enum dir_result dir_resolve(struct dir *d, const char *address, struct arena *a,
			    struct dir_resolution *r)
{
	struct resolve rs = { .d = d, .a = a };
	memset(r, 0, sizeof(*r));
	resolve_address(&rs, address, 0, false);
	r->nodes = rs.nodes;
	r->n_nodes = rs.n;
	/* The first node says what the address itself is. */
	r->local_domain = rs.n > 0 && rs.nodes[0].kind != DIR_NODE_EXTERNAL;
	bool deliverable = false;
	for (size_t i = 0; i < rs.n; i++)
		if (rs.nodes[i].kind == DIR_NODE_MAILBOX || rs.nodes[i].kind == DIR_NODE_EXTERNAL)
			deliverable = true;
	if (rs.tempfail) {
		r->result = DIR_TEMPFAIL;
		r->error = "directory temporarily unavailable";
	} else {
		r->result = deliverable && r->local_domain ? DIR_FOUND : DIR_NOTFOUND;
	}
	return r->result;
}
