/* test_mailbox.c - the Maildir mailbox layer on a temp folder: UIDs taken
 * from a Dovecot uidlist (including a migrated P<uidl>), new UIDs in
 * delivery order written back durably, sizes, new/ -> cur/, flags by
 * rename (also after another process renamed the file), expunge, the POP3
 * session lock, and a broken uidlist rebuilt with a new UIDVALIDITY. */
#include "store/mailbox.h"
#include "tap.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[256];

static void put(const char *rel, const char *content)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	FILE *f = fopen(p, "w");
	fputs(content, f);
	fclose(f);
}

static bool exists(const char *rel)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	return access(p, F_OK) == 0;
}

static char *slurp(const char *rel)
{
	static char b[4096];
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	int fd = open(p, O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, b, sizeof(b) - 1) : -1;
	b[n > 0 ? n : 0] = '\0';
	if (fd >= 0)
		close(fd);
	return b;
}

static const struct mailbox_msg *by_uid(const struct mailbox *mb, uint32_t uid)
{
	for (size_t i = 0; i < mb->count; i++)
		if (mb->msgs[i].uid == uid)
			return &mb->msgs[i];
	return NULL;
}

static void first_open(void)
{
	char err[256], uidl[71];
	struct mailbox *mb = NULL, *again = NULL;
	put("dovecot-uidlist", "3 V1234 N10 Gabc\n7 Pold-uidl-7 W99 :1600000000.a.host,S=5,W=6\n");
	put("new/1600000000.a.host,S=5,W=6", "x\ny\nz");
	put("new/1700000002.b.host", "b\n");
	put("cur/1700000001.c.host:2,S", "c1\nc2\n");
	ok(mailbox_open(root, MAILBOX_POP3_LOCK | MAILBOX_MOVE_NEW, &mb, err, sizeof(err)) == 0,
	   "open (%s)", err);
	is_int(mb->count, 3, "three messages");
	is_int(mb->hdr.uidvalidity, 1234, "UIDVALIDITY kept");
	is_int(mb->hdr.next_uid, 12, "next uid after two new ones");
	const struct mailbox_msg *a = by_uid(mb, 7), *c = by_uid(mb, 10), *b = by_uid(mb, 11);
	ok(a && b && c, "uid 7 kept, 10 and 11 given in delivery-time order");
	ok(a && strcmp(a->base, "1600000000.a.host,S=5,W=6") == 0, "base name without flags");
	ok(a && a->vsize == 6, "size from ,W= in the name");
	ok(c && c->vsize == 8 && c->seen, "size counted with CRLF, seen from :2,S");
	mailbox_uidl(mb, a, uidl);
	is_str(uidl, "old-uidl-7", "a migrated P<uidl> is the UIDL");
	mailbox_uidl(mb, b, uidl);
	is_str(uidl, "0000000b000004d2", "Dovecot's %%08Xu%%08Xv, lower-case");
	ok(!exists("new/1700000002.b.host") && exists("cur/1700000002.b.host:2,"), "new/ moved to cur/");
	is_str(slurp("dovecot-uidlist"),
	       "3 V1234 N12 Gabc\n7 Pold-uidl-7 W99 :1600000000.a.host,S=5,W=6\n"
	       "10 W8 :1700000001.c.host\n11 W3 :1700000002.b.host\n", "uidlist written back");
	ok(!exists(UIDLIST_LOCK_NAME), "uidlist lock released");
	ok(mailbox_open(root, MAILBOX_POP3_LOCK, &again, err, sizeof(err)) == 1,
	   "a second POP3 open: in use");
	ok(mailbox_open(root, 0, &again, err, sizeof(err)) == 0 && again->count == 3,
	   "opening without the POP3 lock works");
	mailbox_free(&again);
	mailbox_free(&mb);
	ok(mb == NULL, "free sets NULL");
}

static void flags_and_expunge(void)
{
	char err[256];
	struct mailbox *mb = NULL;
	ok(mailbox_open(root, MAILBOX_POP3_LOCK, &mb, err, sizeof(err)) == 0, "reopen after free");
	struct mailbox_msg *b = (struct mailbox_msg *)by_uid(mb, 11);
	struct mailbox_msg *c = (struct mailbox_msg *)by_uid(mb, 10);
	ok(mailbox_file_flag(mb->root, b->base, &b->file, 'S') == 0 &&
	   strcmp(b->file, "cur/1700000002.b.host:2,S") == 0, "flag S by rename");
	ok(mailbox_file_flag(mb->root, c->base, &c->file, 'F') == 0 &&
	   strcmp(c->file, "cur/1700000001.c.host:2,FS") == 0, "flags kept in ASCII order");
	char from[512], to[512];
	snprintf(from, sizeof(from), "%s/%s", root, b->file);
	snprintf(to, sizeof(to), "%s/cur/1700000002.b.host:2,RS", root);
	rename(from, to);
	int fd = mailbox_file_open(mb->root, b->base, &b->file);
	ok(fd >= 0 && strcmp(b->file, "cur/1700000002.b.host:2,RS") == 0,
	   "renamed by someone else: found again by base name");
	if (fd >= 0)
		close(fd);
	uint32_t del[] = { 10 };
	is_int(mailbox_expunge(mb, del, 1), 0, "expunge uid 10");
	ok(!exists("cur/1700000001.c.host:2,FS"), "its file is gone");
	ok(strstr(slurp("dovecot-uidlist"), ":1700000001.c.host") == NULL, "and its uidlist record");
	mailbox_free(&mb);
}

static void broken_uidlist(void)
{
	char err[256];
	struct mailbox *mb = NULL;
	put("dovecot-uidlist", "garbage\n");
	ok(mailbox_open(root, 0, &mb, err, sizeof(err)) == 0 && mb->count == 2, "broken uidlist: open");
	ok(mb->hdr.uidvalidity != 1234 && mb->hdr.next_uid == 3, "rebuilt: new UIDVALIDITY, UIDs from 1");
	mailbox_free(&mb);
}

int main(void)
{
	snprintf(root, sizeof(root), "/tmp/mp-mailbox-%d/Maildir", (int)getpid());
	char parent[256];
	snprintf(parent, sizeof(parent), "/tmp/mp-mailbox-%d", (int)getpid());
	mkdir(parent, 0700);
	mkdir(root, 0700);
	char p[512];
	snprintf(p, sizeof(p), "%s/new", root);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/cur", root);
	mkdir(p, 0700);
	first_open();
	flags_and_expunge();
	broken_uidlist();
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", parent);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", parent);
	return tap_done();
}
