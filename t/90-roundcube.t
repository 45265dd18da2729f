#!/usr/bin/env python3
# End to end with a real webmail: Debian's Roundcube (PHP's built-in server
# on loopback, its own SQLite state, the password plugin's SQL driver on the
# ISPmail MariaDB) driven by headless Chromium (Debian's chromium through
# playwright-core), against moonpostd's IMAP with STARTTLS and a MariaDB
# (ISPmail) directory. As john: log in; the folder list shows INBOX, Drafts,
# Sent, Junk, Trash with their icons, the roles coming from SPECIAL-USE (the
# configured names do not exist); a message delivered over SMTP appears
# after "refresh"; open it (subject, body, attachment listed); thread view
# groups a 5-message thread; sort by date, subject and size; search by
# subject; move to Archive; delete to Trash; the quota bar; change the
# password with the password plugin (a new {ARGON2ID} hash in
# virtual_users), log out, the old password fails, the new one logs in.
#
# Three checks need an IMAP extension: the thread view (THREAD), the server
# doing the sorting (SORT; Roundcube sorts by itself without it, and the
# order on the page is checked either way) and the quota bar (QUOTA). When
# the server's CAPABILITY lacks the extension, the check is a TODO
# assertion naming it ("not ok N - ... # TODO needs THREAD"), so the script
# still passes and shows what is missing; with the extension it is a plain
# assertion. Every other step checks the page (the DOM) and, for moves and
# the password, the server's side too (IMAP, the virtual_users row).
#
# A screenshot per step goes to the output dir (printed), and a copy to
# /tmp/roundcube-shots/ (or $RC_SHOTS). MOONPOST_KEEP_TMP=1 keeps the temp
# dirs, with Roundcube's logs (imap.log has the whole IMAP conversation).
import email.utils
import imaplib
import os
import re
import shutil
import smtplib
import subprocess
import sys
import time
from email.message import EmailMessage

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

import mariadb  # noqa: E402
import mpd  # noqa: E402
import roundcube  # noqa: E402
import tap  # noqa: E402

mpd.require_binary()
CLI = os.path.join(os.path.dirname(mpd.binary()), "moonpost")
USER = "john@example.org"
OLD_PW = "Old-secret-1"
NEW_PW = "N3w-Secret-from-Roundcube"
QUOTA = 1024 * 1024   # 1 MiB: the mail here fills a visible part of it
SHOTS_COPY = os.environ.get("RC_SHOTS", "/tmp/roundcube-shots")

# The "Sorting" folder: each key gives another order.
SORTSET = [  # subject, Date, body padding
    ("Apple pie recipe", "Wed, 03 Jan 2024 10:00:00 +0000", 2000),
    ("Banana bread", "Mon, 01 Jan 2024 10:00:00 +0000", 5000),
    ("Cherry tart", "Thu, 04 Jan 2024 10:00:00 +0000", 300),
    ("Date squares", "Tue, 02 Jan 2024 10:00:00 +0000", 3500),
]
THREAD = "Moon landing plan"


# ------------------------------------------------------------------ setup --

def prerequisites():
    gone = roundcube.missing()
    if gone and os.geteuid() == 0:
        tap.diag("installing %s (tools/deps.sh test)" % " ".join(gone))
        out = roundcube.install()
        gone = roundcube.missing()
        if gone:
            tap.diag(out[-3000:])
    if gone:
        tap.skip_all("cannot install %s" % " ".join(gone))
    err = roundcube.ensure_playwright()
    if err:
        tap.ok(False, "playwright-core installed from npm", err)
        tap.done()


def pw_hash(password, scheme="SHA512-CRYPT"):
    return subprocess.run([CLI, "pw", "hash", "-s", scheme], input=password + "\n",
                          capture_output=True, text=True, check=True).stdout.strip()


def setup_db(db):
    settings = db.create_ispmail()
    q = mariadb.sql_quote
    db.sql("INSERT INTO virtual_domains (name) VALUES ('example.org');"
           "INSERT INTO virtual_users (domain_id, email, password, quota) "
           "SELECT id, %s, %s, %d FROM virtual_domains WHERE name='example.org';"
           % (q(USER), q(pw_hash(OLD_PW)), QUOTA), db="mailserver")
    # Roundcube's password plugin gets its own account that can change
    # passwords and nothing else (as an ISPmail site would set it up).
    db.sql("CREATE USER 'rcpassword'@'127.0.0.1' IDENTIFIED BY 'rc-secret';"
           "GRANT SELECT (email), UPDATE (password) ON mailserver.virtual_users "
           "TO 'rcpassword'@'127.0.0.1';")
    return settings


def stored_hash(db):
    rows = db.sql("SELECT password FROM virtual_users WHERE email=%s" % mariadb.sql_quote(USER),
                  db="mailserver")
    return rows[0][0] if rows else None


def imap(port, password=OLD_PW):
    m = imaplib.IMAP4("127.0.0.1", port, timeout=20)
    m.starttls(ssl_context=mpd.client_ctx())
    m.login(USER, password)
    return m


def smtp_send(port, msg):
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
        s.ehlo("client.test")
        s.send_message(msg, from_addr="sender@remote.test", to_addrs=[USER])


def message(subject, body, date=None, msgid=None, refs=None, sender="Alice <alice@remote.test>"):
    m = EmailMessage()
    m["From"] = sender
    m["To"] = "John <%s>" % USER
    m["Subject"] = subject
    m["Date"] = date or email.utils.formatdate(localtime=False)
    m["Message-ID"] = msgid or email.utils.make_msgid(domain="remote.test")
    if refs:
        m["In-Reply-To"] = refs[-1]
        m["References"] = " ".join(refs)
    m.set_content(body)
    return m


def populate(d, ports):
    """Before the browser: the thread and a message to delete (over SMTP),
    the Sorting folder (IMAP CREATE, SUBSCRIBE, APPEND)."""
    for i in range(5):
        mid = "<thread-%d@remote.test>" % i
        subject = THREAD if i == 0 else "Re: " + THREAD
        body = "Thread message %d.\n" % i
        # A tree, not a chain: 0 <- 1 <- 2, 0 <- 3 <- 4.
        parent = {1: 0, 2: 1, 3: 0, 4: 3}.get(i)
        refs = None
        if parent is not None:
            chain, p = [], parent
            while p is not None:
                chain.insert(0, "<thread-%d@remote.test>" % p)
                p = {1: 0, 2: 1, 3: 0, 4: 3}.get(p)
            refs = chain
        smtp_send(ports["smtp"], message(subject, body, msgid=mid, refs=refs,
                                         date="Mon, 0%d Jan 2024 12:00:00 +0000" % (i + 1)))
    smtp_send(ports["smtp"], message("Lunch on Friday", "Pizza?\n"))
    m = imap(ports["imap"])
    try:
        typ, _ = m.create("Sorting")
        tap.is_(typ, "OK", "IMAP CREATE Sorting (setup)")
        m.subscribe("Sorting")
        for subject, date, pad in SORTSET:
            msg = message(subject, "Sorting test.\n" + ("x" * 70 + "\n") * (pad // 71), date=date)
            raw = msg.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            when = imaplib.Time2Internaldate(email.utils.parsedate_to_datetime(date))
            typ, data = m.append("Sorting", None, when, raw)
            if typ != "OK":
                tap.ok(False, "APPEND to Sorting (setup)", data)
        typ, data = m.capability()
        caps = data[0].decode().upper().split()
    finally:
        m.logout()
    return caps


def folder_subjects(port, folder, password):
    """Subjects in a folder, straight from moonpost."""
    m = imap(port, password)
    try:
        typ, data = m.select('"%s"' % folder, readonly=True)
        if typ != "OK":
            return None
        typ, data = m.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        out = []
        for item in data:
            if isinstance(item, tuple):
                h = item[1].decode("utf-8", "replace")
                mm = re.search(r"^Subject: (.*)$", h, re.M | re.I)
                if mm:
                    out.append(mm.group(1).strip())
        return out
    finally:
        m.logout()


def maildir_kib(d):
    """KiB of john's messages on disk, every folder (what QUOTA should say)."""
    root = os.path.join(d.dir, "vmail", "example.org", "john", "Maildir")
    n = 0
    for dirpath, dirs, files in os.walk(root):
        if os.path.basename(dirpath) in ("cur", "new"):
            n += sum(os.path.getsize(os.path.join(dirpath, f)) for f in files)
    return n // 1024


# ------------------------------------------------------------------ steps --

def has(caps, name):
    return any(c == name or c.startswith(name + "=") for c in caps)


def subjects(rows):
    return [r["subject"] for r in rows]


def run(d, db, ports, caps, rc, b):
    tap.diag("CAPABILITY after login: " + " ".join(caps))

    with tap.section("login"):
        r = b.call("login", user=USER, password=OLD_PW, shot="login")
        if not tap.ok(r["state"]["task"] == "mail" and USER in r["user"],
                      "log in as john: the mail view, john's name in the header", r,
                      rc.log("errors")):
            return  # every later step would only time out

    with tap.section("folders"):
        r = b.call("folders", shot="folders")
        f = {x["name"]: x for x in r["folders"]}
        tap.ok(all(n in f for n in ("INBOX", "Drafts", "Sent", "Junk", "Trash")),
               "folder list: INBOX, Drafts, Sent, Junk, Trash", r["folders"])
        want = {"INBOX": "inbox", "Drafts": "drafts", "Sent": "sent", "Junk": "junk",
                "Trash": "trash"}
        got = {n: c for n, c in want.items() if n in f and c in f[n]["classes"]}
        tap.is_(got, want, "folder icons from SPECIAL-USE: li.inbox/.drafts/.sent/.junk/.trash",
                r["folders"])
        icons = {n: f[n]["icon"] for n in want if n in f}
        tap.ok(len(set(icons.values())) == len(want) and "none" not in icons.values(),
               "five different icons (the CSS ::before glyphs)", icons)
        tap.ok(not any(x["name"].startswith("NoSuch") for x in r["folders"]),
               "no folder made from the configured (wrong) names", r["folders"])

    with tap.section("new mail"):
        # The mailbox has been open for a while (a refresh has run), then mail comes.
        b.call("click", selector="#messagelist-header a.refresh")
        m = message("Quarterly report", "Hello John,\n\nthe quarterly numbers are attached.\n\nAlice\n")
        m.add_attachment(b"%PDF-1.4\n% not really a PDF\n" + b"0123456789" * 12000,
                         maintype="application", subtype="pdf", filename="q3-report.pdf")
        smtp_send(ports["smtp"], m)
        r = b.call("wait_row", subject="Quarterly report", shot="new-mail")
        row = [x for x in r["rows"] if x["subject"] == "Quarterly report"]
        tap.ok(len(row) == 1, "a message delivered over SMTP appears in INBOX after refresh",
               subjects(r["rows"]))
        tap.ok(row and "unread" in row[0]["classes"], "... as unread", row)
        inbox = subjects(r["rows"])
        tap.is_(sorted(inbox), sorted(["Quarterly report", "Lunch on Friday", THREAD]
                                      + ["Re: " + THREAD] * 4),
                "INBOX lists all 7 messages", inbox)

    with tap.section("open"):
        r = b.call("open", subject="Quarterly report", shot="open")
        tap.is_(r["subject"], "Quarterly report", "opened message: subject", r)
        tap.ok("quarterly numbers are attached" in (r["body"] or ""), "opened message: body",
               r["body"])
        names = [a["name"] for a in r["attachments"]]
        tap.ok(any("q3-report.pdf" in n for n in names), "opened message: attachment listed",
               r["attachments"])
        tap.ok("alice@remote.test" in (r["from"] or "") or "Alice" in (r["from"] or ""),
               "opened message: sender", r["from"])

    with tap.section("threads"):
        r = b.call("threads", mode="threads", shot="threads")
        rows = r["rows"]
        by_uid = {x["uid"]: x for x in rows}
        # Thread members by their Date (2024-01-0N), parents as built in populate().
        day = {x["uid"]: int(x["date"][8:10]) - 1 for x in rows if x["date"].startswith("2024-01-0")}
        tree = {}
        for uid, i in day.items():
            p = by_uid[uid].get("parent_uid")
            tree[i] = day.get(str(p)) if p else None
        want_tree = {0: None, 1: 0, 2: 1, 3: 0, 4: 3}
        depths = {i: by_uid[uid]["depth"] for uid, i in day.items()}
        grouped = (r["available"] and tree == want_tree
                   and depths == {0: 0, 1: 1, 2: 2, 3: 1, 4: 2})
        desc = "thread view groups the 5-message thread as sent (References tree)"
        why = ("list options offer 'Threads': %s; tree (message -> parent) %r, depths %r"
               % (r["available"], tree, depths))
        if has(caps, "THREAD"):
            tap.ok(grouped, desc, why, rows)
        else:
            tap.todo(grouped, desc, "needs THREAD",
                     "no THREAD in CAPABILITY: Roundcube offers no thread mode", why, rows)
        if r["available"]:
            b.call("threads", mode="list")

    with tap.section("sort"):
        b.call("folder", name="Sorting", shot="sorting-folder")
        by_date = [s for s, _, _ in sorted(SORTSET, key=lambda x: email.utils.parsedate_to_datetime(x[1]))]
        by_subject = sorted(s for s, _, _ in SORTSET)
        by_size_desc = [s for s, _, _ in sorted(SORTSET, key=lambda x: -x[2])]
        logmark = len(rc.log_text("imap"))
        r = b.call("sort", col="date", order="ASC", shot="sort-date")
        tap.is_(subjects(r["rows"]), by_date, "sort by date, ascending", r["state"])
        r = b.call("sort", col="subject", order="ASC", shot="sort-subject")
        tap.is_(subjects(r["rows"]), by_subject, "sort by subject, ascending", r["state"])
        r = b.call("sort", col="size", order="DESC", shot="sort-size")
        tap.is_(subjects(r["rows"]), by_size_desc, "sort by size, descending", r["state"])
        sorted_by_server = re.search(r"\bUID SORT\b|\bSORT \(", rc.log_text("imap")[logmark:]) is not None
        if has(caps, "SORT"):
            tap.ok(sorted_by_server, "the server sorted (Roundcube sent SORT)")
        else:
            tap.todo(sorted_by_server, "the server sorted (Roundcube sent SORT)", "needs SORT",
                     "no SORT in CAPABILITY: Roundcube sorted on its side (FETCH of every "
                     "message's sort key)")
        b.call("sort", col="date", order="DESC")

    with tap.section("search"):
        b.call("folder", name="INBOX")
        r = b.call("search", text="Quarterly", shot="search")
        tap.is_(subjects(r["rows"]), ["Quarterly report"], "search by subject: one hit",
                r["state"], r["messages"])
        r = b.call("search", text="landing", shot="search-thread")
        tap.is_(sorted(subjects(r["rows"])), sorted([THREAD] + ["Re: " + THREAD] * 4),
                "search by subject: the thread's five", r["messages"])
        r = b.call("reset_search")
        tap.is_(len(r["rows"]), 7, "search reset: all 7 again", subjects(r["rows"]))

    with tap.section("move"):
        r = b.call("move", subject="Quarterly report", folder="Archive", shot="move")
        tap.ok("Quarterly report" not in subjects(r["rows"]),
               "move to Archive: gone from INBOX's list", subjects(r["rows"]), r["messages"])
        tap.ok(any("confirmation" in m["cls"] and "moved" in m["text"] for m in r["messages"]),
               "move to Archive: Roundcube confirms", r["messages"])
        tap.is_(folder_subjects(ports["imap"], "Archive", OLD_PW), ["Quarterly report"],
                "move to Archive: in Archive on the server")
        r = b.call("folder", name="Archive", shot="archive")
        tap.is_(subjects(r["rows"]), ["Quarterly report"], "Archive shows it")
        b.call("folder", name="INBOX")

    with tap.section("delete"):
        r = b.call("delete", subject="Lunch on Friday", shot="delete")
        tap.ok("Lunch on Friday" not in subjects(r["rows"]),
               "delete: gone from INBOX's list", subjects(r["rows"]), r["messages"])
        tap.ok(any("confirmation" in m["cls"] and "Trash" in m["text"] for m in r["messages"]),
               "delete: Roundcube confirms the move to Trash", r["messages"])
        tap.is_(folder_subjects(ports["imap"], "Trash", OLD_PW), ["Lunch on Friday"],
                "delete: moved to Trash on the server")
        tap.ok("Lunch on Friday" not in (folder_subjects(ports["imap"], "INBOX", OLD_PW) or []),
               "delete: not in INBOX on the server")
        r = b.call("folder", name="Trash", shot="trash")
        tap.is_(subjects(r["rows"]), ["Lunch on Friday"], "Trash shows it")
        b.call("folder", name="INBOX")

    with tap.section("quota"):
        r = b.call("quota", shot="quota")
        c = r.get("content") or {}
        # Roundcube's numbers are in KiB (IMAP QUOTA STORAGE units); about
        # 170 KiB of mail (the attachment is 120 KB, base64) in 1 MiB.
        used, total = c.get("used") or 0, c.get("total") or 0
        shown = (r["present"] and r["visible"] and r["bar"]
                 and total == QUOTA // 1024 and 100 <= used <= 400
                 and r.get("text") == "%d%%" % c.get("percent", -1)
                 and 10 <= c.get("percent", -1) <= 40
                 and re.search(r"/ 1(\.0)? MB \(\d+%\)", r.get("title") or ""))
        disk = maildir_kib(d)
        shown = shown and abs(used - disk) <= max(4, disk // 10)
        desc = "the quota bar shows the usage of the 1 MiB quota"
        if has(caps, "QUOTA"):
            tap.ok(shown, desc, "messages on disk: %d KiB" % disk, r)
        else:
            tap.todo(shown, desc, "needs QUOTA",
                     "no QUOTA in CAPABILITY: Roundcube shows no quota widget", r)

    with tap.section("password"):
        before = stored_hash(db)
        r = b.call("password", current=OLD_PW, new=NEW_PW, shot="password")
        ok = [m for m in r["messages"] if "confirmation" in m["cls"]]
        tap.ok(ok, "password plugin: saved", r["messages"], rc.log("errors"), rc.log("password"))
        after = stored_hash(db)
        prefix = rc.password_prefix
        tap.ok(after != before and after.startswith(prefix)
               and after[len(prefix):].startswith("$argon2id$" if prefix == "{ARGON2ID}" else "$2"),
               "virtual_users has a new %s hash" % prefix, after)
        r = b.call("logout", shot="logout")
        tap.ok(r["login_form"], "log out: the login form")
        r = b.call("login", user=USER, password=OLD_PW, shot="login-old-password")
        tap.ok(r["state"]["task"] != "mail" and any("error" in m["cls"] or "warning" in m["cls"]
                                                    for m in r["messages"]),
               "the old password is refused", r)
        r = b.call("login", user=USER, password=NEW_PW, shot="login-new-password")
        tap.ok(r["state"]["task"] == "mail", "the new password logs in", r, rc.log("errors"))
        r = b.call("folders")
        tap.ok("INBOX" in [x["name"] for x in r["folders"]], "... and INBOX is there")


def main():
    prerequisites()
    if not mariadb.available():
        tap.ok(False, "MariaDB installed (tools/deps.sh test)")
        tap.done()
    shots = None
    t0 = time.monotonic()
    with mariadb.MariaDB() as db:
        settings = setup_db(db)
        d = mpd.Daemon(start=False)
        ports = {"imap": mpd.free_port(), "smtp": d.ports["smtp"]}
        d.config["listen"].append({"address": "127.0.0.1", "port": ports["imap"],
                                   "protocol": "imap", "tls": "starttls"})
        d.write_config({"directory": {"backend": "mariadb", "mariadb": settings,
                                      "cache_ttl": 0, "negative_ttl": 0,
                                      "penalty_max": 1,
                                      "maildir": os.path.join(d.dir, "vmail/%d/%n/Maildir")}})
        try:
            d.start()
            shots = os.path.join(d.dir, "shots")
            with tap.section("end to end"):
                caps = populate(d, ports)
                tap.diag("screenshots: %s (copied to %s)" % (shots, SHOTS_COPY))
                dsn = "mysql://rcpassword:rc-secret@127.0.0.1:%d/mailserver" % db.port
                with roundcube.Roundcube(ports["imap"], password_dsn=dsn) as rc:
                    tap.diag("Roundcube %s (password hash: %s)"
                             % (rc.url, rc.password_algorithm))
                    try:
                        with roundcube.Browser(rc, shots) as b:
                            tap.diag("Chromium %s" % b.call("ping")["version"])
                            run(d, db, ports, caps, rc, b)
                    finally:
                        tap.ok(not re.search(r"PHP (Fatal|Parse) error",
                                             rc.log("php-errors", 500)),
                               "no PHP fatal errors", rc.log("php-errors"))
                        if tap.failed():
                            tap.diag("Roundcube errors.log:\n" + rc.log("errors"))
                            tap.diag("Roundcube imap.log tail:\n" + "\n".join(
                                ln[:240] for ln in rc.log("imap", 60).splitlines()))
                        if os.environ.get("MOONPOST_KEEP_TMP") == "1":
                            tap.diag("kept %s" % rc.dir)
        finally:
            if shots and os.path.isdir(shots):
                shutil.rmtree(SHOTS_COPY, ignore_errors=True)
                shutil.copytree(shots, SHOTS_COPY)
            d.stop()
            d.cleanup()
    tap.diag("took %.1fs" % (time.monotonic() - t0))
    tap.done()


main()
