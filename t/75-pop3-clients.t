#!/usr/bin/env python3
# POP3 with real clients and a real Dovecot: fetchmail (implicit TLS) and
# getmail6 (STLS) download every message byte for byte; UIDLs equal what a
# private Dovecot pop3 server reports for the same Maildir, both ways
# (moonpost's dovecot-uidlist read by Dovecot, Dovecot's read by moonpost,
# and messages delivered in between), so clients switching servers do not
# download anything again.
import glob
import os
import poplib
import shutil
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

import mpd  # noqa: E402
import tap  # noqa: E402
import dovecot  # noqa: E402

for tool in ("fetchmail", "getmail"):
    if shutil.which(tool) is None:
        tap.skip_all("%s is not installed (tools/deps.sh test installs it)" % tool)
if not dovecot.available():
    tap.skip_all("dovecot-pop3d is not installed (tools/deps.sh test installs it)")
if os.geteuid() != 0:
    tap.skip_all("needs root: Dovecot and getmail deliver as another user (make test runs as root)")

mpd.require_binary()

SEQ = [0]


def put(maildir, content):
    for d in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(maildir, d), exist_ok=True)
    SEQ[0] += 1
    w = len(content) + content.count(b"\n")
    name = "%d.M%dP%d.test,S=%d,W=%d" % (1700000000 + SEQ[0], SEQ[0], os.getpid(), len(content), w)
    with open(os.path.join(maildir, "new", name), "wb") as f:
        f.write(content)


def message(i):
    body = b"".join(b"line %d of message %d\n" % (j, i) for j in range(i * 7 % 40))
    extra = b".leading dot\n..two\n\xc3\xa4 8-bit\n" if i % 3 == 0 else b""
    return (b"From: sender%d@example.net\nTo: john@example.org\nSubject: message %d\n"
            b"Message-ID: <%d@example.net>\n\n" % (i, i, i)) + body + extra


def uidls(port, user, tls=False):
    p = (poplib.POP3_SSL("127.0.0.1", port, context=mpd.client_ctx()) if tls
         else poplib.POP3("127.0.0.1", port))
    p.user(user)
    p.pass_("secret")
    out = [x.decode() for x in p.uidl()[1]]
    sizes = [x.decode() for x in p.list()[1]]
    p.quit()
    return out, sizes


def read_maildir(path):
    out = []
    for f in sorted(glob.glob(os.path.join(path, "new", "*")) + glob.glob(os.path.join(path, "cur", "*"))):
        with open(f, "rb") as fh:
            out.append(fh.read())
    return out


def main():
    d = mpd.Daemon(start=False)
    dirfile = os.path.join(d.dir, "directory")
    with open(dirfile, "w") as f:
        f.write("domain example.org\nuser john@example.org {PLAIN}secret\n"
                "user bob@example.org {PLAIN}secret\nuser eve@example.org {PLAIN}secret\n")
    ports = {k: mpd.free_port() for k in ("stls", "plain", "tls")}
    d.config["listen"].extend([
        {"address": "127.0.0.1", "port": ports["stls"], "protocol": "pop3", "tls": "starttls"},
        {"address": "127.0.0.1", "port": ports["plain"], "protocol": "pop3", "tls": "none",
         "plaintext_auth": True},
        {"address": "127.0.0.1", "port": ports["tls"], "protocol": "pop3", "tls": "implicit"},
    ])
    vmail = os.path.join(d.dir, "vmail")
    d.write_config({"directory": {"backend": "file", "file": dirfile,
                                  "allow_plaintext_passwords": True,
                                  "maildir": vmail + "/%d/%n/Maildir"},
                    "pop3": {"apop": True}})
    d.start()
    try:
        clients(d, ports, os.path.join(vmail, "example.org", "john", "Maildir"))
        moonpost_then_dovecot(d, ports, os.path.join(vmail, "example.org", "bob", "Maildir"))
        dovecot_then_moonpost(d, ports, os.path.join(vmail, "example.org", "eve", "Maildir"))
        apop(ports)
    finally:
        d.stop()
        d.cleanup()
    tap.done()


def clients(d, ports, md):
    msgs = [message(i) for i in range(1, 13)]
    for m in msgs:
        put(md, m)
    work = os.path.join(d.dir, "clients")
    os.makedirs(work)
    # fetchmail with STLS (required), every message out through an MDA.
    mbox_dir = os.path.join(work, "fetchmail")
    os.makedirs(mbox_dir)
    save = os.path.join(work, "save.py")
    with open(save, "w") as f:
        f.write("import sys,os\nd=sys.argv[1]\nn=len(os.listdir(d))\n"
                "open(os.path.join(d,'%04d'%n),'wb').write(sys.stdin.buffer.read())\n")
    rc = os.path.join(work, "fetchmailrc")
    with open(rc, "w") as f:
        f.write('set no syslog\npoll 127.0.0.1 service %d protocol pop3 uidl:\n'
                '  user "john@example.org" password "secret" sslproto tls1.2+ no sslcertck keep\n'
                '  mda "%s %s %s"\n' % (ports["stls"], sys.executable, save, mbox_dir))
    os.chmod(rc, 0o600)
    env = dict(os.environ, HOME=work, FETCHMAILHOME=work)
    mark = d.mark()
    r = subprocess.run(["fetchmail", "-f", rc, "--nodetach", "-v", "--idfile", os.path.join(work, "ids")],
                       capture_output=True, text=True, timeout=60, env=env)
    tap.ok(r.returncode == 0, "fetchmail ran (exit %d)" % r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    tap.ok(d.wait_log(r"event=tls_established", timeout=1, since=mark), "fetchmail used STLS")
    got = [open(os.path.join(mbox_dir, f), "rb").read() for f in sorted(os.listdir(mbox_dir))]
    tap.is_(len(got), len(msgs), "fetchmail downloaded all %d messages" % len(msgs))
    # fetchmail puts its own Received: header first; the rest is the message.
    tap.ok(all(g.endswith(m) for g, m in zip(got, msgs)), "fetchmail: every message byte for byte")
    r = subprocess.run(["fetchmail", "-f", rc, "--nodetach", "-v", "--idfile", os.path.join(work, "ids")],
                       capture_output=True, text=True, timeout=60, env=env)
    tap.is_(len(os.listdir(mbox_dir)), len(msgs), "fetchmail again: UIDL says nothing is new",
            r.stdout[-1500:])
    # getmail6 over implicit TLS (port 995 style) into a Maildir, no headers added.
    gdir = os.path.join(work, "getmail")
    gmd = os.path.join(work, "gm-maildir")
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(gmd, sub))
    os.makedirs(gdir)
    # getmail will not deliver as root: its Maildir belongs to "mail".
    for p in [gmd] + [os.path.join(gmd, s) for s in ("cur", "new", "tmp")]:
        os.chown(p, 8, 8)
    with open(os.path.join(gdir, "getmailrc"), "w") as f:
        f.write("[retriever]\ntype = SimplePOP3SSLRetriever\nserver = 127.0.0.1\nport = %d\n"
                "username = john@example.org\npassword = secret\nca_certs = %s\n"
                "[destination]\ntype = Maildir\npath = %s/\nuser = mail\n"
                "[options]\nread_all = false\ndelete = false\ndelivered_to = false\n"
                "received = false\nverbose = 1\n" % (ports["tls"], d.cert, gmd))
    r = subprocess.run(["getmail", "--getmaildir", gdir, "--rcfile", "getmailrc"],
                       capture_output=True, text=True, timeout=60)
    tap.ok(r.returncode == 0, "getmail ran (exit %d)" % r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    # getmail's Maildir destination always writes a Return-Path line first.
    got = [g.split(b"\n", 1)[1] if g.startswith(b"Return-Path:") else g for g in read_maildir(gmd)]
    tap.is_(len(got), len(msgs), "getmail6 downloaded all %d messages" % len(msgs))
    tap.ok(sorted(got) == sorted(msgs), "getmail6: every message byte for byte")
    r = subprocess.run(["getmail", "--getmaildir", gdir, "--rcfile", "getmailrc"],
                       capture_output=True, text=True, timeout=60)
    tap.is_(len(read_maildir(gmd)), len(msgs), "getmail again: nothing downloaded twice")
    seen = glob.glob(os.path.join(md, "cur", "*:2,S"))
    tap.is_(len(seen), len(msgs), "every downloaded message is \\Seen for IMAP")


def moonpost_then_dovecot(d, ports, md):
    for i in range(20, 26):
        put(md, message(i))
    ours, our_sizes = uidls(ports["plain"], "bob@example.org")
    tap.is_(len(ours), 6, "moonpost: 6 UIDLs")
    with dovecot.Dovecot(md, "bob@example.org", "{PLAIN}secret") as dv:
        theirs, their_sizes = uidls(dv.port, "bob@example.org")
    tap.is_(theirs, ours, "Dovecot reports moonpost's UIDLs (it read our dovecot-uidlist)")
    tap.is_(their_sizes, our_sizes, "... and the same sizes")
    # More mail, UIDs given by moonpost after Dovecot's sync, read by Dovecot.
    for i in range(26, 29):
        put(md, message(i))
    ours, _ = uidls(ports["tls"], "bob@example.org", tls=True)
    with dovecot.Dovecot(md, "bob@example.org", "{PLAIN}secret") as dv:
        theirs, _ = uidls(dv.port, "bob@example.org")
    tap.is_(len(ours), 9, "9 messages")
    tap.is_(theirs, ours, "new UIDs assigned by moonpost: Dovecot agrees")


def dovecot_then_moonpost(d, ports, md):
    for i in range(30, 38):
        put(md, message(i))
    with dovecot.Dovecot(md, "eve@example.org", "{PLAIN}secret") as dv:
        theirs, their_sizes = uidls(dv.port, "eve@example.org")
        # Dovecot deletes one: the next UIDs must not be reused.
        p = poplib.POP3("127.0.0.1", dv.port)
        p.user("eve@example.org")
        p.pass_("secret")
        p.dele(2)
        p.quit()
        for i in range(38, 41):
            put(md, message(i))
        theirs2, _ = uidls(dv.port, "eve@example.org")
    with open(os.path.join(md, "dovecot-uidlist")) as f:
        hdr = f.readline()
    tap.like(hdr, r"^3 V\d+ N\d+ G[0-9a-f]+", "Dovecot wrote a version 3 uidlist")
    tap.is_(len(theirs), 8, "Dovecot: 8 UIDLs")
    ours, our_sizes = uidls(ports["plain"], "eve@example.org")
    tap.is_(ours, theirs2, "moonpost reports Dovecot's UIDLs (incl. after a deletion)")
    for i in range(41, 44):
        put(md, message(i))
    ours, _ = uidls(ports["plain"], "eve@example.org")
    with dovecot.Dovecot(md, "eve@example.org", "{PLAIN}secret") as dv:
        theirs, _ = uidls(dv.port, "eve@example.org")
    tap.is_(len(ours), 13, "13 messages")
    tap.is_(theirs, ours, "messages new to both: same UIDLs on both servers")
    uids = [int(u.split()[1][:8], 16) for u in ours]
    tap.ok(uids == sorted(uids) and len(set(uids)) == len(uids), "UIDs ascending and unique")


def apop(ports):
    """APOP (RFC 1939 7), enabled here: needs the {PLAIN} passwords above."""
    p = poplib.POP3("127.0.0.1", ports["plain"])
    tap.like(p.getwelcome().decode(), r"^\+OK .*<\d+\.[0-9a-f]+\.\d+@[^>]+>$",
             "APOP on: greeting carries a timestamp")
    try:
        p.apop("bob@example.org", "wrong")
        tap.ok(False, "APOP with a wrong password is refused")
    except poplib.error_proto as e:
        tap.like(str(e), r"\[AUTH\]", "APOP with a wrong password: -ERR [AUTH]")
    tap.like(p.apop("bob@example.org", "secret").decode(), r"^\+OK Logged in", "APOP login")
    p.quit()
    p = poplib.POP3("127.0.0.1", ports["stls"])
    try:
        p.apop("bob@example.org", "secret")
        tap.ok(False, "APOP before TLS refused where plaintext is not allowed")
    except poplib.error_proto as e:
        tap.like(str(e), r"\[AUTH\]", "APOP before TLS: -ERR [AUTH] where plaintext logins are not allowed")
    p.quit()


main()
