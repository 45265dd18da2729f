#!/usr/bin/env python3
# The directory through the `moonpost` CLI, on both backends with the same
# expectations: domain/user/alias administration (writes, lists, deletes,
# ON DELETE CASCADE), and `moonpost lookup` semantics: exact user, aliases
# (multi-destination as one "a,b" row and as several rows), catch-all that
# never swallows an existing user or exact alias, +subaddress, alias chains,
# loops, external targets, case-insensitivity, and SQL metacharacters that
# stay data.  MariaDB runs the ISPmail schema with a read-only lookup user
# and an admin user for the CLI's writes, over TCP.
import os
import re
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

import mariadb  # noqa: E402
import mpcli  # noqa: E402
import mpd  # noqa: E402
import tap  # noqa: E402

mpcli.require_binary()

D = "example.org"
JOHN, JANE = "john@" + D, "jane@" + D
JANE_QUOTA = 1048576
PW = "secret"


def mbox(ws, email, depth=0, quota=0):
    return "%s%s: mailbox %s quota=%d" % ("  " * depth, email, ws.maildir(email), quota)


def alias(addr, depth=0):
    return "%s%s: alias" % ("  " * depth, addr)


def catchall(depth=0):
    return "%s@%s: alias (catch-all)" % ("  " * depth, D)


def external(addr, depth):
    return "%s%s: external (needs outbound delivery)" % ("  " * depth, addr)


def loop(addr, depth):
    return "%s%s: alias loop or too deep: not expanded" % ("  " * depth, addr)


def to_jane(ws):
    """What an address that only the catch-all takes resolves to."""
    return [catchall(), mbox(ws, JANE, 1, JANE_QUOTA)]


def no_mailbox(r):
    return r.rc == 1 and "mailbox" not in r.out and " alias" not in r.out


# (address, exit code, expected output, description, flags)
# expected: list of lines (exact, in order), or a function Result -> bool.
# flags: "ci" compare case-insensitively; "any_order" children of the first
# node in any order (rows sharing a source come back in no defined order).
def cases(ws):
    return [
        (JOHN, 0, [mbox(ws, JOHN)], "exact user", ""),
        (JANE, 0, [mbox(ws, JANE, 0, JANE_QUOTA)], "exact user with quota", ""),
        ("JOHN@EXAMPLE.ORG", 0, [mbox(ws, JOHN)], "upper-case address finds john", ""),
        ("John@Example.Org", 0, [mbox(ws, JOHN)], "mixed-case address finds john", ""),
        ("john+tag@" + D, 0, [mbox(ws, JOHN)], "subaddress goes to john's mailbox", ""),
        ("john+a+b@" + D, 0, [mbox(ws, JOHN)], "subaddress cut at the first delimiter", ""),
        ("postmaster@" + D, 0, [alias("postmaster@" + D), mbox(ws, JOHN, 1)],
         "alias postmaster -> john", ""),
        ("Postmaster@EXAMPLE.org", 0, [alias("postmaster@" + D), mbox(ws, JOHN, 1)],
         "alias lookup is case-insensitive", "ci"),
        ("postmaster+x@" + D, 0, [alias("postmaster@" + D), mbox(ws, JOHN, 1)],
         "subaddress of an alias follows the alias", ""),
        ("sales@" + D, 0, [alias("sales@" + D), mbox(ws, JOHN, 1)],
         "exact alias wins over the catch-all", ""),
        ("nobody@" + D, 0, to_jane(ws), "unknown local part goes to the catch-all", ""),
        ("team@" + D, 0, [alias("team@" + D), mbox(ws, JOHN, 1), mbox(ws, JANE, 1, JANE_QUOTA)],
         "one alias row with 'a,b' expands to both", "any_order"),
        ("both@" + D, 0, [alias("both@" + D), mbox(ws, JOHN, 1), mbox(ws, JANE, 1, JANE_QUOTA)],
         "two alias rows for one source expand to both", "any_order"),
        ("chain1@" + D, 0, [alias("chain1@" + D), alias("chain2@" + D, 1), mbox(ws, JOHN, 2)],
         "alias chain chain1 -> chain2 -> john", ""),
        ("loopx@" + D, 1, [alias("loopx@" + D), alias("loopy@" + D, 1), loop("loopx@" + D, 2)],
         "alias loop loopx -> loopy -> loopx is detected, exit 1", ""),
        ("ext@" + D, 0, [alias("ext@" + D), external("someone@remote.test", 1)],
         "alias to an external address", ""),
        ("it's@" + D, 0, [alias("it's@" + D), mbox(ws, JOHN, 1)],
         "alias whose source holds a quote", ""),
        ("x@nowhere.test", 1,
         lambda r: re.match(r"^x@nowhere\.test: not a local domain", r.out) is not None,
         "unknown domain: not a local domain, exit 1", ""),
        ("x@example.org'", 1,
         lambda r: re.match(r"^x@example\.org': not a local domain", r.out) is not None,
         "domain with a quote is not ours", ""),
        # SQL metacharacters are data: they reach the catch-all, match nothing else.
        ("o'brien@" + D, 0, to_jane(ws), "o'brien (no such user) -> catch-all", ""),
        ("back\\slash@" + D, 0, to_jane(ws), "backslash -> catch-all", ""),
        ("per%cent@" + D, 0, to_jane(ws), "percent -> catch-all", ""),
        ("j%@" + D, 0, to_jane(ws), "'j%' is no LIKE pattern for john", ""),
        ("joh_@" + D, 0, to_jane(ws), "'joh_' is no LIKE pattern for john", ""),
        ("x'OR'x'='x@" + D, 0, to_jane(ws), "quote injection without blanks -> catch-all", ""),
        ("john'--@" + D, 0, to_jane(ws), "quote plus SQL comment -> catch-all", ""),
        ("john'#@" + D, 0, to_jane(ws), "quote plus '#' comment -> catch-all", ""),
        ('dq"uote@' + D, 0, to_jane(ws), "double quote -> catch-all", ""),
        ("semi;colon@" + D, 0, to_jane(ws), "semicolon -> catch-all", ""),
        ("%s%d%n%%@" + D, 0, to_jane(ws), "query-template escapes in the address -> catch-all", ""),
        ("a' OR '1'='1@" + D, 1, no_mailbox,
         "a' OR '1'='1 (blanks: not an address) finds nothing, exit 1", ""),
        ("john@example.org' OR '1'='1", 1, no_mailbox,
         "injection in the domain part finds nothing, exit 1", ""),
        ("x" * 400 + "@" + D, 1, no_mailbox, "overlong address finds nothing, exit 1", ""),
        ("\U0001F600@" + D, 0, to_jane(ws),
         "4-byte UTF-8 local part -> catch-all (no tempfail)", ""),
    ]


def lines_match(got, want, flags):
    if "ci" in flags:
        got = [g.lower() for g in got]
        want = [w.lower() for w in want]
    if "any_order" in flags:
        return got[:1] == want[:1] and sorted(got[1:]) == sorted(want[1:])
    return got == want


def run_cases(ws, label):
    for addr, rc, want, desc, flags in cases(ws):
        r = ws.run("lookup", addr)
        if callable(want):
            good = r.rc == rc and want(r)
        else:
            good = r.rc == rc and lines_match(r.lines, want, flags)
        tap.ok(good, "%s: lookup %s: %s" % (label, addr, desc), repr(r),
               "  want exit %d and:\n    %s" % (rc, "(predicate)" if callable(want)
                                                 else "\n    ".join(want)))


class Backend:
    """What differs between the backends: raw writes the CLI cannot make,
    and reading back what was stored."""

    def __init__(self, kind, ws, db=None):
        self.kind, self.ws, self.db = kind, ws, db

    def add_raw_alias(self, source, dest_csv):
        if self.kind == "file":
            with open(self.ws.dirfile, "a") as f:
                f.write("alias %s %s\n" % (source, dest_csv))
        else:
            self.db.sql("INSERT INTO virtual_aliases (domain_id, source, destination) "
                        "SELECT id, %s, %s FROM virtual_domains WHERE name=%s"
                        % (mariadb.sql_quote(source), mariadb.sql_quote(dest_csv),
                           mariadb.sql_quote(source.rsplit("@", 1)[1])), db="mailserver")

    def stored_hash(self, email):
        if self.kind == "file":
            with open(self.ws.dirfile) as f:
                for line in f:
                    p = line.split()
                    if len(p) >= 3 and p[0] == "user" and p[1].lower() == email.lower():
                        return p[2]
            return None
        rows = self.db.sql("SELECT password FROM virtual_users WHERE email=%s"
                           % mariadb.sql_quote(email), db="mailserver")
        return rows[0][0] if rows else None


def sorted_lines(r):
    return sorted(r.lines)


def admin_setup(ws, be, label):
    """Everything through the CLI, except the one-row 'a,b' alias."""
    ws.ok_run("%s: domain add %s" % (label, D), "domain", "add", D)
    ws.ok_run("%s: domain add Other.Example (stored lower-case)" % label,
              "domain", "add", "Other.Example")
    ws.ok_run("%s: user add john (default scheme)" % label, "user", "add", JOHN, input=PW + "\n")
    ws.ok_run("%s: user add jane --quota --scheme BLF-CRYPT" % label, "user", "add", JANE,
              "--quota", str(JANE_QUOTA), "--scheme", "BLF-CRYPT", input=PW + "\n")
    ws.ok_run("%s: user add u1@other.example" % label, "user", "add", "u1@other.example",
              "--scheme", "SHA512-CRYPT", input=PW + "\n")
    for src, dst in [("postmaster@" + D, JOHN), ("sales@" + D, JOHN), ("@" + D, JANE),
                     ("both@" + D, JOHN), ("both@" + D, JANE),
                     ("chain1@" + D, "chain2@" + D), ("chain2@" + D, JOHN),
                     ("loopx@" + D, "loopy@" + D), ("loopy@" + D, "loopx@" + D),
                     ("ext@" + D, "someone@remote.test"), ("it's@" + D, JOHN),
                     ("al@other.example", "u1@other.example"),
                     ("@other.example", "u1@other.example")]:
        ws.ok_run("%s: alias add %s %s" % (label, src, dst), "alias", "add", src, dst)
    be.add_raw_alias("team@" + D, "%s,%s" % (JOHN, JANE))

    tap.is_(sorted_lines(ws.ok_run("%s: domain list" % label, "domain", "list")),
            ["example.org", "other.example"], "%s: domain list shows both domains" % label)
    users = ws.ok_run("%s: user list" % label, "user", "list")
    tap.is_(sorted_lines(users),
            ["jane@example.org quota=%d" % JANE_QUOTA, "john@example.org quota=0",
             "u1@other.example quota=0"], "%s: user list (email quota=N)" % label)
    tap.is_(sorted_lines(ws.ok_run("%s: user list other.example" % label,
                                   "user", "list", "other.example")),
            ["u1@other.example quota=0"], "%s: user list DOMAIN filters" % label)
    aliases = ws.ok_run("%s: alias list %s" % (label, D), "alias", "list", D)
    want = sorted(["postmaster@example.org -> john@example.org",
                   "sales@example.org -> john@example.org",
                   "@example.org -> jane@example.org",
                   "both@example.org -> john@example.org",
                   "both@example.org -> jane@example.org",
                   "chain1@example.org -> chain2@example.org",
                   "chain2@example.org -> john@example.org",
                   "loopx@example.org -> loopy@example.org",
                   "loopy@example.org -> loopx@example.org",
                   "ext@example.org -> someone@remote.test",
                   "it's@example.org -> john@example.org",
                   "team@example.org -> john@example.org,jane@example.org"])
    tap.is_(sorted_lines(aliases), want, "%s: alias list DOMAIN (source -> dest)" % label)
    tap.is_(len(ws.ok_run("%s: alias list" % label, "alias", "list").lines), len(want) + 2,
            "%s: alias list without a domain lists every domain's aliases" % label)

    h = be.stored_hash(JOHN) or ""
    tap.like(h, r"^\{ARGON2ID\}\$argon2id\$", "%s: default scheme is ARGON2ID" % label)
    tap.like(be.stored_hash(JANE) or "", r"^\{BLF-CRYPT\}\$2[aby]\$",
             "%s: --scheme BLF-CRYPT is stored" % label)
    r = ws.run("pw", "verify", h, input=PW + "\n")
    tap.ok(r.rc == 0 and r.out.strip() == "match", "%s: stored hash verifies" % label, repr(r))


def admin_errors(ws, label):
    ws.fail_run("%s: domain add of an existing domain fails" % label, "domain", "add",
                "EXAMPLE.org", rc=1, err_like="exists")
    ws.fail_run("%s: user add of an existing user fails (any case)" % label, "user", "add",
                "JOHN@example.org", input=PW + "\n", rc=1, err_like="exists")
    ws.fail_run("%s: user add in an unknown domain fails" % label, "user", "add",
                "x@nowhere.test", input=PW + "\n", rc=1, err_like="nowhere.test")
    ws.fail_run("%s: user add with an empty password fails" % label, "user", "add",
                "empty@" + D, input="\n", rc=1)
    ws.fail_run("%s: user add without a password fails" % label, "user", "add",
                "nopw@" + D, input="", rc=1)
    ws.fail_run("%s: user add with a bad address fails" % label, "user", "add",
                "not-an-address", input=PW + "\n")
    ws.fail_run("%s: user add with an unknown scheme fails" % label, "user", "add",
                "sch@" + D, "--scheme", "NOPE", input=PW + "\n")
    ws.fail_run("%s: user del of an unknown user fails" % label, "user", "del", "ghost@" + D,
                rc=1, err_like="ghost")
    ws.fail_run("%s: user quota with a non-number fails" % label, "user", "quota", JOHN, "lots")
    ws.fail_run("%s: alias add of an existing alias fails" % label, "alias", "add",
                "postmaster@" + D, JOHN, rc=1, err_like="exists")
    ws.fail_run("%s: alias add in an unknown domain fails" % label, "alias", "add",
                "a@nowhere.test", JOHN, rc=1)
    ws.fail_run("%s: alias del of an unknown alias fails" % label, "alias", "del",
                "postmaster@" + D, JANE, rc=1)
    ws.fail_run("%s: domain del of an unknown domain fails" % label, "domain", "del",
                "nowhere.test", rc=1)
    tap.is_(len(ws.run("user", "list").lines), 3, "%s: failed writes changed nothing" % label)
    for cmd in (["--help"], ["domain", "--help"], ["user", "--help"], ["alias", "--help"],
                ["pw", "--help"], ["lookup", "--help"], ["user", "add", "--help"]):
        r = ws.run(*cmd)
        tap.ok(r.rc == 0 and r.out.strip() != "", "%s: moonpost %s exits 0 with text"
               % (label, " ".join(cmd)), repr(r))
    ws.fail_run("%s: unknown command: one error line, exit 2" % label, "frobnicate", rc=2)
    ws.fail_run("%s: alias add with one argument is a usage error" % label,
                "alias", "add", "x@" + D, rc=2)
    r = ws.run("-c", os.path.join(ws.dir, "missing.conf"), "lookup", JOHN, conf=False)
    tap.ok(r.rc != 0 and "moonpost: " in r.err, "%s: missing config file: error" % label,
           repr(r))


def metachar_users(ws, be, label):
    """A real user with a quote (and one with a backslash) must be FOUND."""
    for email in ("o'brien@" + D, "back\\slash@" + D):
        ws.ok_run("%s: user add %s" % (label, email), "user", "add", email,
                  "--scheme", "SHA256-CRYPT", input=PW + "\n")
        r = ws.run("lookup", email)
        tap.ok(r.rc == 0 and r.lines == [mbox(ws, email)],
               "%s: lookup %s finds the real user" % (label, email), repr(r))
        tap.ok(("%s quota=0" % email) in ws.run("user", "list", D).lines,
               "%s: user list shows %s" % (label, email))
        tap.like(be.stored_hash(email) or "", r"^\{SHA256-CRYPT\}\$5\$",
                 "%s: %s stored with its hash" % (label, email))
        ws.ok_run("%s: user del %s" % (label, email), "user", "del", email)
        r = ws.run("lookup", email)
        tap.ok(r.rc == 0 and r.lines == to_jane(ws),
               "%s: after user del, %s goes to the catch-all" % (label, email), repr(r))


def hash_sign(ws, be, label):
    """'#' is a legal address byte; for the file backend it also starts a
    comment.  Whatever the CLI does with it, the directory must stay usable."""
    addr = "hash#tag@" + D
    add = ws.run("user", "add", addr, "--scheme", "SHA512-CRYPT", input=PW + "\n")
    after = ws.run("domain", "list")
    tap.ok(after.rc == 0, "%s: user add %s leaves a readable directory" % (label, addr),
           repr(add), repr(after))
    if add.rc == 0 and after.rc == 0:
        r = ws.run("lookup", addr)
        tap.ok(r.rc == 0 and r.lines == [mbox(ws, addr)],
               "%s: the added %s is found" % (label, addr), repr(r))
    elif add.rc != 0:
        tap.ok(add.err.startswith("moonpost: "), "%s: %s refused with a message"
               % (label, addr), repr(add))
    r = ws.run("lookup", JOHN)
    tap.ok(r.rc == 0, "%s: john still found after that" % label, repr(r))
    # Repair (test side) so the later sections test what they mean to.
    if be.kind == "file" and after.rc != 0:
        with open(ws.dirfile) as f:
            kept = [line for line in f if "hash#tag" not in line]
        with open(ws.dirfile, "w") as f:
            f.writelines(kept)
        tap.diag("%s: removed the unparseable '%s' line by hand" % (label, addr))
    elif add.rc == 0:
        ws.run("user", "del", addr)


def admin_changes(ws, be, label):
    # passwd and quota
    ws.ok_run("%s: user passwd john --scheme SHA512-CRYPT" % label, "user", "passwd", JOHN,
              "--scheme", "SHA512-CRYPT", input="n3w p4ss\n")
    h = be.stored_hash(JOHN) or ""
    tap.like(h, r"^\{SHA512-CRYPT\}\$6\$", "%s: passwd stored the new scheme" % label)
    r = ws.run("pw", "verify", h, input="n3w p4ss\n")
    tap.ok(r.rc == 0, "%s: the new password verifies" % label, repr(r))
    r = ws.run("pw", "verify", h, input=PW + "\n")
    tap.ok(r.rc == 1 and r.out.strip() == "no match", "%s: the old one does not" % label,
           repr(r))
    ws.ok_run("%s: user quota jane 2048" % label, "user", "quota", JANE, "2048")
    tap.ok("jane@example.org quota=2048" in ws.run("user", "list").lines,
           "%s: user list shows the new quota" % label)
    r = ws.run("lookup", JANE)
    tap.is_(r.lines, [mbox(ws, JANE, 0, 2048)], "%s: lookup shows the new quota" % label)
    tap.like(be.stored_hash(JANE) or "", r"^\{BLF-CRYPT\}",
             "%s: quota change kept the password" % label)
    ws.ok_run("%s: user quota jane back" % label, "user", "quota", JANE, str(JANE_QUOTA))

    # alias del of one of two rows
    ws.ok_run("%s: alias del both -> jane" % label, "alias", "del", "both@" + D, JANE)
    r = ws.run("lookup", "both@" + D)
    tap.is_(r.lines, [alias("both@" + D), mbox(ws, JOHN, 1)],
            "%s: the other row of 'both' remains" % label)
    ws.ok_run("%s: alias del sales -> john" % label, "alias", "del", "sales@" + D, JOHN)
    r = ws.run("lookup", "sales@" + D)
    tap.is_(r.lines, to_jane(ws), "%s: without its alias, sales goes to the catch-all" % label)

    # user del: the catch-all must not bring a deleted user back
    ws.ok_run("%s: user del jane" % label, "user", "del", JANE)
    tap.ok("jane@example.org" not in ws.run("user", "list").out,
           "%s: jane gone from user list" % label)
    r = ws.run("lookup", "nobody@" + D)
    tap.ok(r.rc == 1 and "mailbox" not in r.out,
           "%s: catch-all to a deleted user delivers nowhere, exit 1" % label, repr(r))

    # domain del cascades
    ws.ok_run("%s: domain del other.example" % label, "domain", "del", "other.example")
    tap.is_(ws.run("domain", "list").lines, ["example.org"], "%s: domain list after del" % label)
    tap.is_(ws.run("user", "list", "other.example").lines, [],
            "%s: domain del removed its users" % label)
    tap.is_(ws.run("alias", "list", "other.example").lines, [],
            "%s: domain del removed its aliases" % label)
    tap.ok("other.example" not in ws.run("alias", "list").out,
           "%s: no alias of other.example left anywhere" % label)
    r = ws.run("lookup", "u1@other.example")
    tap.ok(r.rc == 1 and "not a local domain" in r.out,
           "%s: u1@other.example is no longer local" % label, repr(r))
    r = ws.run("lookup", JOHN)
    tap.ok(r.rc == 0, "%s: example.org untouched by that" % label, repr(r))
    ws.ok_run("%s: domain del example.org" % label, "domain", "del", D)
    for what in ("domain", "user", "alias"):
        r = ws.run(what, "list")
        tap.ok(r.rc == 0 and r.out == "", "%s: %s list empty after deleting every domain"
               % (label, what), repr(r))
    r = ws.run("lookup", JOHN)
    tap.ok(r.rc == 1 and "not a local domain" in r.out, "%s: john gone" % label, repr(r))


def known_discrepancies(ws, label):
    # MariaDB's utf8mb3_general_ci ignores accents, the file backend compares
    # bytes: jöhn@ is john on one and the catch-all on the other.
    r = ws.run("lookup", "j\u00f6hn@" + D)
    good = r.rc == 0 and r.lines == to_jane(ws)
    desc = "%s: lookup j\u00f6hn@ goes to the catch-all, not john" % label
    if label == "file":
        tap.ok(good, desc, repr(r))
    else:
        mpcli.todo(good, desc, "backends disagree on accents (MariaDB collation)", repr(r))


def big_quota(ws, label):
    """Quotas above 2 GiB: the ISPmail column is int(11).  Stored exactly or
    refused with a message; never silently clamped."""
    q = 5 * 1024 ** 3
    r = ws.run("user", "add", "big@" + D, "--quota", str(q), "--scheme", "SSHA256",
               input=PW + "\n")
    if r.rc == 0:
        tap.ok("big@example.org quota=%d" % q in ws.run("user", "list").lines,
               "%s: a 5 GiB quota is stored exactly" % label)
        ws.run("user", "del", "big@" + D)
    else:
        tap.ok(r.err.startswith("moonpost: ") and "big@" not in ws.run("user", "list").out,
               "%s: a 5 GiB quota is refused with a message, nothing stored" % label, repr(r))
        tap.diag("%s: 5 GiB quota refused: %s" % (label, r.err.strip()))


def file_daemon():
    """A running daemon follows CLI edits of the directory file within a
    couple of seconds, and keeps its previous data while the file is broken.
    Seen through SMTP AUTH; SKIPped until the daemon offers it."""
    ws = mpcli.Workspace("file", name="dir-filed")
    names = ["AUTH with the first password", "CLI passwd is picked up",
             "old password refused", "broken file is logged", "broken file: previous data kept",
             "fixed file is picked up again", "daemon stops cleanly"]
    ws.ok_run("file daemon: domain add", "domain", "add", D)
    ws.ok_run("file daemon: user add john", "user", "add", JOHN, "--scheme", "BLF-CRYPT",
              input=PW + "\n")
    # One worker: each worker re-reads the file only when one of its own
    # lookups needs it, so with several, one that had no lookup since the
    # last good edit keeps older data than that (reported as a bug).
    with mpcli.auth_daemon(ws.directory, config={"workers": 1}) as d:
        port = d.ports["auth"]
        if "PLAIN" not in mpcli.auth_mechanisms(mpcli.ehlo(port)):
            for n in names:
                tap.skip("file daemon: " + n, "moonpostd does not offer AUTH PLAIN yet")
            return

        def code(pw):
            return mpcli.auth_plain(port, JOHN, pw)[0].code

        tap.is_(code(PW), 235, "file daemon: " + names[0])
        ws.ok_run("file daemon: user passwd", "user", "passwd", JOHN, "--scheme",
                  "SHA256-CRYPT", input="second\n")
        tap.ok(mpd.poll(lambda: code("second") == 235, timeout=10, interval=0.3),
               "file daemon: " + names[1])
        tap.is_(code(PW), 535, "file daemon: " + names[2])
        mark = d.mark()
        with open(ws.dirfile) as f:
            good_text = f.read()
        with open(ws.dirfile, "a") as f:
            f.write("user broken-line\n")
        # The file is re-checked (at most once a second) when a lookup needs it.
        codes = []

        def reloaded():
            codes.append(code("second"))
            return d.wait_log(r"event=directory_reload status=failed", timeout=0, since=mark)
        tap.ok(mpd.poll(reloaded, timeout=10, interval=0.3), "file daemon: " + names[3],
               d.log_tail())
        tap.ok(codes and set(codes) == {235}, "file daemon: " + names[4], codes)
        with open(ws.dirfile, "w") as f:
            f.write(good_text)
        ws.ok_run("file daemon: user passwd again", "user", "passwd", JOHN, "--scheme",
                  "BLF-CRYPT", input="third\n")
        tap.ok(mpd.poll(lambda: code("third") == 235, timeout=10, interval=0.3),
               "file daemon: " + names[5])
        tap.is_(d.stop(), 0, "file daemon: " + names[6])
    ws.cleanup()


def common(ws, be, label):
    with tap.section(label + " setup"):
        admin_setup(ws, be, label)
    with tap.section(label + " lookups"):
        run_cases(ws, label)
        # NUL cannot travel in argv: the daemon tests cover it.
        tap.skip("%s: NUL byte in an address" % label, "argv cannot carry NUL; daemon test")
        r = ws.run("lookup", "johnexample.org")
        tap.ok(r.rc == 1 and "johnexample.org" in (r.out + r.err) and "mailbox" not in r.out,
               "%s: lookup without '@' exits 1 with a message" % label, repr(r))
        r = ws.run("lookup")
        tap.ok(r.rc != 0, "%s: lookup without an address is a usage error" % label, repr(r))
        known_discrepancies(ws, label)
    with tap.section(label + " errors"):
        admin_errors(ws, label)
    with tap.section(label + " metacharacter users"):
        metachar_users(ws, be, label)
        big_quota(ws, label)
    with tap.section(label + " '#' in an address"):
        hash_sign(ws, be, label)
    with tap.section(label + " changes"):
        admin_changes(ws, be, label)
    ws.check_sanitizers()


with tap.section("file backend"):
    ws = mpcli.Workspace("file", name="dir-file")
    common(ws, Backend("file", ws), "file")
    with tap.section("file: syntax error"):
        # The CLI refuses to edit a broken file (a daemon keeps its old data).
        with open(ws.dirfile, "a") as f:
            f.write("bogus line here\n")
        ws.fail_run("file: a broken directory file is reported with file:line",
                    "domain", "list", rc=1, err_like=r"directory\.txt:\d+:")
        ws.fail_run("file: and never rewritten", "domain", "add", "new.example", rc=1)
        with open(ws.dirfile) as f:
            tap.ok("bogus line here" in f.read(), "file: the broken file is left as it was")
    ws.cleanup()

with tap.section("file: running daemon"):
    file_daemon()

if not mariadb.available():
    tap.skip("mariadb backend", "MariaDB server/client not installed")
else:
    with tap.section("mariadb backend"):
        with mariadb.MariaDB() as db:
            settings = db.create_ispmail()
            ws = mpcli.Workspace("mariadb", mariadb=settings, name="dir-mdb")
            with tap.section("mariadb: read-only user"):
                ro = ws.write_config(os.path.join(ws.dir, "ro.conf"),
                                     directory={"mariadb": {"admin_user": "",
                                                            "admin_password": ""}})
                ws.fail_run("mariadb: without admin_user, writes use the read-only user "
                            "and are denied", "domain", "add", "ro.example", conf=ro,
                            rc=1, err_like="(?i)denied")
                tap.is_(db.sql("SELECT COUNT(*) FROM virtual_domains", db="mailserver"),
                        [["0"]], "mariadb: nothing written")
            common(ws, Backend("mariadb", ws, db), "mariadb")
            ws.cleanup()

tap.done()
