#!/usr/bin/env python3
"""IMAP select/headers/bodies timings, moonpost vs Dovecot: see imap-fetch.sh."""
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "t", "lib"))

import dovecot as dvlib  # noqa: E402
import mpd  # noqa: E402

N = int(os.environ.get("N", "2000"))
SIZE = int(os.environ.get("SIZE", "4096"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))

def make_maildir(md):
    for d in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(md, d), exist_ok=True)
    line = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\n"
    for i in range(N):
        hdr = (b"From: Sender %d <s%d@example.net>\nTo: john@example.org\nSubject: message %d\n"
               b"Date: Sat, 05 Dec 2026 10:%02d:00 +0000\nMessage-ID: <%d@example.net>\n\n"
               % (i, i, i, i % 60, i))
        body = line * max(1, (SIZE - len(hdr)) // len(line))
        data = hdr + body
        w = len(data) + data.count(b"\n")
        name = "%d.M%dP1.bench,S=%d,W=%d" % (1700000000 + i, i, len(data), w)
        with open(os.path.join(md, "new", name), "wb") as f:
            f.write(data)


class Client:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.buf = b""
        self.n = 0
        self.read_until(b"* OK")

    def read_until(self, prefix):
        """Reads responses (literals included) until a line starts with prefix."""
        total = 0
        while True:
            while b"\r\n" not in self.buf:
                d = self.s.recv(1 << 20)
                if not d:
                    raise EOFError
                self.buf += d
            ln, self.buf = self.buf.split(b"\r\n", 1)
            total += len(ln) + 2
            if ln.endswith(b"}") and b"{" in ln:
                n = int(ln[ln.rindex(b"{") + 1:-1])
                while len(self.buf) < n:
                    d = self.s.recv(1 << 20)
                    if not d:
                        raise EOFError
                    self.buf += d
                self.buf = self.buf[n:]
                total += n
                continue
            if ln.startswith(prefix):
                return ln, total

    def cmd(self, text):
        self.n += 1
        tag = b"b%d" % self.n
        self.s.sendall(tag + b" " + text.encode() + b"\r\n")
        ln, total = self.read_until(tag + b" ")
        if not ln.startswith(tag + b" OK"):
            raise RuntimeError(ln)
        return total


def session(port):
    out = {}
    c = Client(port)
    t = time.perf_counter()
    c.cmd("LOGIN john@example.org secret")
    c.cmd("SELECT INBOX")
    out["select"] = time.perf_counter() - t
    t = time.perf_counter()
    c.cmd("UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE)")
    out["headers"] = time.perf_counter() - t
    t = time.perf_counter()
    out["bytes"] = c.cmd("FETCH 1:* BODY.PEEK[]")
    out["bodies"] = time.perf_counter() - t
    t = time.perf_counter()
    c.cmd("SELECT INBOX")
    out["reselect"] = time.perf_counter() - t
    c.cmd("LOGOUT")
    return out


def moonpost(work, md):
    d = mpd.Daemon(start=False)
    with open(os.path.join(d.dir, "directory"), "w") as f:
        f.write("domain example.org\nuser john@example.org {PLAIN}secret\n")
    port = mpd.free_port()
    d.config["listen"].append({"address": "127.0.0.1", "port": port, "protocol": "imap",
                               "tls": "none", "plaintext_auth": True})
    d.write_config({"workers": 2, "directory": {"backend": "file", "file": os.path.join(d.dir, "directory"),
                                                "allow_plaintext_passwords": True, "maildir": md}})
    d.start()
    try:
        return session(port)
    finally:
        d.stop()
        d.cleanup()


def dovecot(work, md):
    with dvlib.Dovecot(md, "john@example.org", "{PLAIN}secret", protocol="imap") as dv:
        return session(dv.port)


def main():
    if not dvlib.available("imap"):
        sys.exit("dovecot-imapd is not installed")
    work = tempfile.mkdtemp(prefix="imapbench-", dir="/tmp")
    os.chmod(work, 0o755)
    master = os.path.join(work, "master")
    make_maildir(master)
    res = {"moonpost": [], "dovecot": []}
    try:
        for r in range(ROUNDS):
            order = [("moonpost", moonpost), ("dovecot", dovecot)]
            if r % 2:
                order.reverse()
            for name, fn in order:
                md = os.path.join(work, "%s-%d" % (name, r))
                shutil.copytree(master, md)
                res[name].append(fn(work, md))
                shutil.rmtree(md, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("IMAP, %d messages of ~%d bytes, median of %d rounds (seconds; lower is better)" % (N, SIZE, ROUNDS))
    print("%-10s %10s %10s %8s" % ("", "moonpost", "dovecot", "ratio"))
    for k in ("select", "headers", "bodies", "reselect"):
        m = statistics.median(x[k] for x in res["moonpost"])
        d = statistics.median(x[k] for x in res["dovecot"])
        print("%-10s %10.3f %10.3f %7.2fx" % (k, m, d, d / m if m else 0))
    b = [x["bytes"] for x in res["moonpost"]][0], [x["bytes"] for x in res["dovecot"]][0]
    print("bytes of the body FETCH: moonpost %d, dovecot %d" % b)


main()
