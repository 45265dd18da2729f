#!/usr/bin/env python3
# Hostile IMAP input against the live daemon: random commands from the
# whole command set with random, often wrong arguments (atoms, sets,
# lists, quoted strings, literals of both kinds, NIL), in every state,
# pipelined. The server must answer every tagged command, keep serving,
# never crash a worker, and leave the Maildir valid (a known message is
# still there with its UID). Seeded, so a failure repeats.
import os
import random
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

import mpd  # noqa: E402
import tap  # noqa: E402

mpd.require_binary()
CLI = os.path.join(os.path.dirname(mpd.binary()), "moonpost")
SEED = int(os.environ.get("IMAP_HOSTILE_SEED", "7"))
ROUNDS = 40

COMMANDS = ["CAPABILITY", "NOOP", "ID", "ENABLE", "NAMESPACE", "LIST", "LSUB", "CREATE", "DELETE",
            "RENAME", "SUBSCRIBE", "UNSUBSCRIBE", "STATUS", "SELECT", "EXAMINE", "CHECK", "FETCH",
            "STORE", "SEARCH", "COPY", "MOVE", "APPEND", "EXPUNGE", "UID FETCH", "UID STORE",
            "UID SEARCH", "UID COPY", "UID MOVE", "UID EXPUNGE", "UNSELECT", "CLOSE", "STARTTLS",
            "AUTHENTICATE", "UID", "UID BOGUS", "XYZZY"]
ATOMS = ["1", "*", "1:*", "2,4:7", "0", "4294967295", "1:0", "INBOX", "inbox", "Trash", "a.b",
         "a..b", ".x", "x.", "~y", "&Jjo-", "&", "%", "*", "FLAGS", "+FLAGS", "-FLAGS.SILENT",
         "\\Seen", "\\Deleted", "\\Recent", "$kw", "BODY[]", "BODY.PEEK[1.2.MIME]",
         "BODY[HEADER.FIELDS (A B)]", "BODY[]<0.5>", "BODY[9.9.9]", "ENVELOPE", "BODYSTRUCTURE",
         "RFC822", "ALL", "FAST", "FULL", "UID", "MESSAGES", "UNSEEN", "OR", "NOT", "FROM",
         "SINCE", "1-Jan-2020", "LARGER", "CHARSET", "UTF-8", "HEADER", "PLAIN", "DONE"]


def rand_arg(r, depth=0):
    k = r.random()
    if k < 0.45:
        return r.choice(ATOMS)
    if k < 0.6:
        return '"%s"' % r.choice(ATOMS).replace("\\", "\\\\").replace('"', '\\"')
    if k < 0.7:
        return "NIL"
    if k < 0.85 and depth < 3:
        return "(" + " ".join(rand_arg(r, depth + 1) for _ in range(r.randint(0, 4))) + ")"
    body = r.choice(ATOMS).encode() * r.randint(0, 3)
    return ("{%d+}\r\n" % len(body)).encode().decode() + body.decode()


def rand_cmd(r, tag):
    cmd = r.choice(COMMANDS)
    args = " ".join(rand_arg(r) for _ in range(r.randint(0, 4)))
    return ("%s %s %s\r\n" % (tag, cmd, args)).replace("  ", " ").replace(" \r\n", "\r\n")


class Conn:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=15)
        self.buf = b""

    def read_until_tag(self, tag):
        """Reads responses (skipping literals) up to the tagged line."""
        while True:
            while b"\r\n" not in self.buf:
                d = self.sock.recv(65536)
                if not d:
                    raise EOFError("closed")
                self.buf += d
            ln, self.buf = self.buf.split(b"\r\n", 1)
            if ln.endswith(b"}") and b"{" in ln:
                n = int(ln[ln.rindex(b"{") + 1:-1])
                while len(self.buf) < n:
                    d = self.sock.recv(65536)
                    if not d:
                        raise EOFError("closed")
                    self.buf += d
                self.buf = self.buf[n:]
                continue
            if ln.startswith(b"+ "):
                continue
            if ln.startswith(tag.encode() + b" ") or ln.startswith(b"* BYE"):
                return ln.decode("utf-8", "replace")


def main():
    d = mpd.Daemon(start=False)
    h = subprocess.run([CLI, "pw", "hash", "-s", "SHA512-CRYPT"], input="secret\n",
                       capture_output=True, text=True, check=True).stdout.strip()
    dirfile = os.path.join(d.dir, "directory")
    with open(dirfile, "w") as f:
        f.write("domain example.org\nuser john@example.org %s\n" % h)
    port = mpd.free_port()
    d.config["listen"].append({"address": "127.0.0.1", "port": port, "protocol": "imap",
                               "tls": "none", "plaintext_auth": True})
    vmail = os.path.join(d.dir, "vmail")
    d.write_config({"directory": {"backend": "file", "file": dirfile, "penalty_max": 0,
                                  "maildir": vmail + "/%d/%n/Maildir"},
                    "imap": {"errors_max": 1000, "literal_max": 4096}})
    d.start()
    md = os.path.join(vmail, "example.org", "john", "Maildir")
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(md, sub), exist_ok=True)
    for i in range(3):
        with open(os.path.join(md, "new", "17000000%02d.M%dP1.t,S=20,W=23" % (i, i)), "wb") as f:
            f.write(b"Subject: s%d\n\nbody %d\n" % (i, i))
    keep = os.path.join(md, "cur", "1699999999.keep.t:2,S")
    with open(keep, "wb") as f:
        f.write(b"Subject: keep\n\nkeep me\n")
    r = random.Random(SEED)
    workers = set(d.workers())
    answered = sent = 0
    t0 = time.time()
    try:
        for rnd in range(ROUNDS):
            c = Conn(port)
            c.read_until_tag("*")                       # the greeting
            pre = []
            if r.random() < 0.8:
                pre.append("l LOGIN john@example.org secret\r\n")
                if r.random() < 0.7:
                    pre.append("s %s %s\r\n" % (r.choice(["SELECT", "EXAMINE"]), r.choice(["INBOX", "Trash", "Nope"])))
            cmds = pre + [rand_cmd(r, "t%d" % i) for i in range(25)]
            cmds = [x for x in cmds if " STARTTLS" not in x and " DELETE INBOX" not in x]
            try:
                c.sock.sendall("".join(cmds).encode())
                for x in cmds:
                    tag = x.split(" ", 1)[0]
                    sent += 1
                    ln = c.read_until_tag(tag)
                    if ln.startswith("* BYE"):
                        break
                    answered += 1
            except (EOFError, socket.timeout, ConnectionResetError):
                pass
            c.sock.close()
    finally:
        tap.ok(answered > ROUNDS * 10, "the server answered %d of %d random commands (%.1fs, seed %d)" %
               (answered, sent, time.time() - t0, SEED))
        tap.is_(set(d.workers()), workers, "no worker died",
                "\n".join(ln for ln in d.log_text().splitlines()
                          if "runtime error" in ln or "ERROR:" in ln or "worker_exit" in ln)[-3000:])
        tap.ok(any(n.startswith("1699999999.keep.t") for n in os.listdir(os.path.join(md, "cur"))) or
               any(n.startswith("1699999999.keep.t") for dp, dn, fn in os.walk(md) for n in fn),
               "the Maildir still holds the kept message (somewhere)")
        c = Conn(port)
        c.read_until_tag("*")
        c.sock.sendall(b"a LOGIN john@example.org secret\r\nb NOOP\r\n")
        tap.like(c.read_until_tag("b"), r"^b OK", "a fresh session still works")
        d.stop()
        d.cleanup()
    tap.done()


main()
