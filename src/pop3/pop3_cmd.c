/* pop3_cmd.c - the TRANSACTION state's listing and deletion commands
 * (RFC 1939 5: STAT, LIST, UIDL, DELE, RSET) and the UPDATE state (6):
 * deletions happen only here, after QUIT; a session that ends any other
 * way deletes nothing. */
#include "pop3_int.h"
#include "core/conn.h"
#include "core/log.h"
#include "core/pool.h"
#include "core/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The end of a session, on the I/O pool: \Seen marks for what was
 * retrieved (also when the client just hung up), then, only after QUIT,
 * the deletions. The job owns the mailbox; freeing it releases the lock. */
struct pop3_update_job {
	uint64_t conn_id;
	struct mailbox *mb;
	uint32_t *uids;         /* to delete, ascending */
	size_t n;
	uint32_t *seen;         /* indexes to mark \Seen */
	size_t n_seen;
	bool quit;
	size_t failed;
	char user[256];
	uint64_t retr_count, retr_bytes;
};

uint32_t pop3_msg_arg(struct pop3_session *s, struct str arg)
{
	uint32_t n = pop3_msgno_parse(arg, (uint32_t)s->mb->count);
	if (n == 0) {
		pop3_fail(s, "-ERR There is no message %.*s", arg.len > 20 ? 20 : (int)arg.len, arg.p);
		return 0;
	}
	if (s->deleted[n - 1]) {
		pop3_fail(s, "-ERR Message %u is deleted", n);
		return 0;
	}
	return n;
}

void pop3_cmd_stat(struct pop3_session *s, struct str args MP_UNUSED)
{
	uint64_t octets = 0;
	size_t n = 0;
	for (size_t i = 0; i < s->mb->count; i++) {
		if (s->deleted[i])
			continue;
		n++;
		octets += s->mb->msgs[i].vsize;
	}
	pop3_reply(s, "+OK %zu %llu", n, (unsigned long long)octets);
}

/* LIST and UIDL share their shape: one line for "CMD n", else a list of
 * the messages not deleted (RFC 1939 5, 7). */
static void pop3_listing(struct pop3_session *s, struct str args, bool uidl)
{
	struct str w[1];
	char id[71];
	int nw = pop3_args_split(args, w, 1);
	if (nw < 0) {
		pop3_fail(s, "-ERR Syntax: %s [msg]", uidl ? "UIDL" : "LIST");
		return;
	}
	/* "LIST " with only blanks is the no-argument form (nw == 0). */
	if (nw == 1) {
		uint32_t n = pop3_msg_arg(s, w[0]);
		if (n == 0)
			return;
		const struct mailbox_msg *m = &s->mb->msgs[n - 1];
		if (uidl) {
			mailbox_uidl(s->mb, m, id);
			pop3_reply(s, "+OK %u %s", n, id);
		} else {
			pop3_reply(s, "+OK %u %llu", n, (unsigned long long)m->vsize);
		}
		return;
	}
	struct buf b = { 0 };
	buf_append_str(&b, "+OK\r\n");
	for (size_t i = 0; i < s->mb->count; i++) {
		if (s->deleted[i])
			continue;
		const struct mailbox_msg *m = &s->mb->msgs[i];
		if (uidl) {
			mailbox_uidl(s->mb, m, id);
			buf_printf(&b, "%zu %s\r\n", i + 1, id);
		} else {
			buf_printf(&b, "%zu %llu\r\n", i + 1, (unsigned long long)m->vsize);
		}
	}
	buf_append_str(&b, ".\r\n");
	conn_write(s->conn, buf_ptr(&b), b.len);
	buf_free(&b);
}

void pop3_cmd_list(struct pop3_session *s, struct str args)
{
	pop3_listing(s, args, false);
}

void pop3_cmd_uidl(struct pop3_session *s, struct str args)
{
	pop3_listing(s, args, true);
}

void pop3_cmd_dele(struct pop3_session *s, struct str args)
{
	uint32_t n = pop3_msg_arg(s, args);
	if (n == 0)
		return;
	s->deleted[n - 1] = true;
	s->n_deleted++;
	pop3_reply(s, "+OK Marked to be deleted");
}

void pop3_cmd_rset(struct pop3_session *s, struct str args MP_UNUSED)
{
	memset(s->deleted, 0, s->mb->count * sizeof(*s->deleted));
	s->n_deleted = 0;
	pop3_reply(s, "+OK %zu messages", s->mb->count);
}

static void pop3_update_work(void *arg)
{
	struct pop3_update_job *j = arg;
	for (size_t i = 0; i < j->n_seen; i++) {
		struct mailbox_msg *m = &j->mb->msgs[j->seen[i]];
		if (mailbox_file_flag(j->mb->root, m->base, &m->file, 'S') != 0)
			log_warn(NULL, "event=mark_seen_failed file=\"%s\"", m->file);
	}
	if (j->quit)
		j->failed = mailbox_expunge(j->mb, j->uids, j->n);
}

static void pop3_update_done(void *arg)
{
	struct pop3_update_job *j = arg;
	struct conn *c = conn_find(j->conn_id);
	log_info(c ? c->sid : NULL, "event=logout user=\"%s\" retr=%llu/%llu seen=%zu deleted=%zu failed=%zu update=%s",
		 j->user, (unsigned long long)j->retr_count, (unsigned long long)j->retr_bytes,
		 j->n_seen, j->n - j->failed, j->failed, j->quit ? "yes" : "no");
	mailbox_free(&j->mb);
	if (c != NULL && j->quit) {
		struct pop3_session *s = c->proto;
		if (j->failed)
			pop3_reply(s, "-ERR [SYS/TEMP] %zu messages could not be deleted", j->failed);
		else
			pop3_reply(s, "+OK Logging out, %zu messages deleted", j->n);
		conn_close(c);
		conn_resume(c);
	}
	free(j->uids);
	free(j->seen);
	free(j);
}

/* Takes the mailbox from the session into a job. */
static void pop3_update_submit(struct pop3_session *s, bool quit)
{
	struct pop3_update_job *j = xcalloc(1, sizeof(*j));
	size_t count = s->mb->count ? s->mb->count : 1;
	j->conn_id = s->conn->id;
	j->quit = quit;
	j->uids = xcalloc(count, sizeof(*j->uids));
	j->seen = xcalloc(count, sizeof(*j->seen));
	for (size_t i = 0; i < s->mb->count; i++) {
		if (quit && s->deleted[i])
			j->uids[j->n++] = s->mb->msgs[i].uid;
		else if (s->seen[i])
			j->seen[j->n_seen++] = (uint32_t)i;
	}
	j->mb = s->mb;
	s->mb = NULL;
	snprintf(j->user, sizeof(j->user), "%s", s->auth_user ? s->auth_user : "");
	j->retr_count = s->retr_count;
	j->retr_bytes = s->retr_bytes;
	pool_submit(s->srv->io_pool, pop3_update_work, pop3_update_done, j);
}

void pop3_update(struct pop3_session *s)
{
	conn_pause(s->conn);
	pop3_update_submit(s, true);
}

void pop3_update_dropped(struct pop3_session *s)
{
	pop3_update_submit(s, false);
}
