#!/usr/bin/env python3
"""POP3 RETR throughput: moonpost vs a private Dovecot on the same Maildir.

See bench/pop3-retr.sh for what is measured and how. Prints a table.
"""
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "t", "lib"))
sys.dont_write_bytecode = True

import dovecot  # noqa: E402
import mpd  # noqa: E402

N = int(os.environ.get("N", "2000"))
SIZE = int(os.environ.get("SIZE", "4096"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
USER = "john@example.org"


def make_maildir(md):
    for d in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(md, d))
    line = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\n"
    for i in range(N):
        body = (b"From: sender%d@example.net\nTo: %s\nSubject: bench %d\nMessage-ID: <%d@bench>\n\n"
                % (i, USER.encode(), i, i))
        while len(body) < SIZE:
            body += (b"." if i % 7 == 0 and len(body) % 5 == 0 else b"") + line
        w = len(body) + body.count(b"\n")
        name = "%d.M%dP1.bench,S=%d,W=%d" % (1700000000 + i, i, len(body), w)
        with open(os.path.join(md, "new", name), "wb") as f:
            f.write(body)


class Client:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()

    def line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                ln = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return ln
            self.fill()

    def fill(self):
        d = self.s.recv(262144)
        if not d:
            raise EOFError
        self.buf += d

    def cmd(self, c):
        self.s.sendall(c.encode() + b"\r\n")
        r = self.line()
        if not r.startswith(b"+OK"):
            raise RuntimeError("%s: %r" % (c, r))
        return r

    def multi(self):
        start = 0
        while True:
            i = self.buf.find(b"\r\n.\r\n", start)
            if i >= 0:
                out = bytes(self.buf[:i + 5])
                del self.buf[:i + 5]
                return out
            start = max(0, len(self.buf) - 4)
            self.fill()


def session(port, keep=False):
    """Login, STAT, RETR every message in order; seconds for the RETRs."""
    c = Client(port)
    c.line()
    c.cmd("USER " + USER)
    c.cmd("PASS secret")
    n = int(c.cmd("STAT").split()[1])
    got = [] if keep else None
    total = 0
    t0 = time.monotonic()
    for i in range(1, n + 1):
        c.cmd("RETR %d" % i)
        m = c.multi()
        total += len(m)
        if keep:
            got.append(m)
    took = time.monotonic() - t0
    c.cmd("QUIT")
    c.s.close()
    return n, total, took, got


CCLIENT = os.path.join(os.path.dirname(mpd.binary()), "bench", "pop3_client")


def session_c(port, user=USER, whole=False):
    """The same session with the small C client (bench/pop3_client.c)."""
    r = subprocess.run([CCLIENT, str(port), user, "secret"] + (["session"] if whole else []),
                       capture_output=True, text=True, timeout=300, check=True)
    n, total, took = r.stdout.split()
    return int(n), int(total), float(took), None


def busy_ticks():
    """Machine-wide busy CPU ticks (/proc/stat): servers + this client.
    Dovecot's pop3 process exits with the session, so per-process
    accounting would miss it."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v) - v[3] - v[4]


def fresh_copy(work, md, tag):
    """A new Maildir with every message in new/ (no uidlist, no index)."""
    copy = os.path.join(work, "vmail", "example.org", tag, "Maildir")
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(copy, sub))
    for f in os.listdir(os.path.join(md, "cur")):
        shutil.copyfile(os.path.join(md, "cur", f), os.path.join(copy, "new", f.split(":")[0]))
    subprocess.run(["sync"], check=True)
    return copy


def cold(work, md, h, d):
    """First download of a fresh copy (a new user switching clients): the
    whole session, login to QUIT, with each server's first sync (UIDs,
    new/ -> cur/, Dovecot's index) and the \\Seen renames of every message.
    COLD_ROUNDS (default 3) fresh copies per server, alternating order."""
    rounds = int(os.environ.get("COLD_ROUNDS", "3"))
    res = {"dovecot": [], "moonpost": []}
    for r in range(rounds):
        order = ["dovecot", "moonpost"] if r % 2 == 0 else ["moonpost", "dovecot"]
        for name in order:
            tag = "cold%d-%s" % (r, name)
            user = tag + "@example.org"
            copy = fresh_copy(work, md, tag)
            if name == "dovecot":
                dv = dovecot.Dovecot(copy, user, h)
                try:
                    n, _, took, _ = session_c(dv.port, user, whole=True)
                finally:
                    dv.stop()
            else:
                with open(os.path.join(d.dir, "directory"), "a") as f:
                    f.write("user %s %s\n" % (user, h))
                time.sleep(1.2)     # the file directory is re-read at most once a second
                n, _, took, _ = session_c(d.config["listen"][-1]["port"], user, whole=True)
            res[name].append(n / took)
    print()
    print("first download of a fresh copy, whole session (login, sync, RETR all, QUIT with "
          "\\Seen), %d rounds (median, range):" % rounds)
    print()
    print("| server | msgs/s | seconds |")
    print("|---|---|---|")
    for name in ("dovecot", "moonpost"):
        med = statistics.median(res[name])
        print("| %s | %.0f (%.0f-%.0f) | %.3f |" % (
            "Dovecot 2.3 pop3" if name == "dovecot" else "moonpost", med,
            min(res[name]), max(res[name]), N / med))
    print()
    print("ratio moonpost / Dovecot: %.2fx" % (statistics.median(res["moonpost"]) /
                                            statistics.median(res["dovecot"])))


def main():
    work = tempfile.mkdtemp(prefix="pop3-bench-", dir="/tmp")
    os.chmod(work, 0o755)
    md = os.path.join(work, "vmail", "example.org", "john", "Maildir")
    make_maildir(md)
    h = subprocess.run([os.path.join(os.path.dirname(mpd.binary()), "moonpost"), "pw", "hash",
                        "-s", "SHA512-CRYPT"], input="secret\n", capture_output=True, text=True,
                       check=True).stdout.strip()
    d = mpd.Daemon(start=False)
    dirfile = os.path.join(d.dir, "directory")
    with open(dirfile, "w") as f:
        f.write("domain example.org\nuser %s %s\n" % (USER, h))
    port = mpd.free_port()
    d.config["listen"].append({"address": "127.0.0.1", "port": port, "protocol": "pop3",
                               "tls": "none", "plaintext_auth": True})
    d.write_config({"log": {"level": "warn"}, "workers": 2,
                    "directory": {"backend": "file", "file": dirfile,
                                  "maildir": os.path.join(work, "vmail", "%d", "%n", "Maildir")}})
    dv = None
    try:
        d.start()
        dv = dovecot.Dovecot(md, USER, h)
        # Warm-up: both sync the folder (UIDs, new/ -> cur/, \Seen renames,
        # Dovecot's index) and the page cache holds every file.
        _, _, _, ours = session(port, keep=True)
        _, _, _, theirs = session(dv.port, keep=True)
        same = ours == theirs
        use_c = os.access(CCLIENT, os.X_OK)
        res = {"moonpost": [], "dovecot": []}
        cpu = {"moonpost": [], "dovecot": []}
        for r in range(ROUNDS):
            order = [("moonpost", port), ("dovecot", dv.port)]
            if r % 2:
                order.reverse()
            for name, p in order:
                c0 = busy_ticks()
                n, total, took, _ = session_c(p) if use_c else session(p)
                cpu[name].append((busy_ticks() - c0) * 1000.0 / os.sysconf("SC_CLK_TCK"))
                res[name].append((n, total, took))
        print("POP3 RETR, one session, %d messages of ~%d bytes, sequential RETR 1..N, %d rounds "
              "(median, range), loopback, same Maildir" % (N, SIZE, ROUNDS))
        print("identical bytes from both servers: %s; client: %s" % (
            "yes" if same else "NO", "build/bench/pop3_client (C)" if use_c else "Python"))
        print()
        print("| server | msgs/s | MB/s | seconds | machine CPU ms (incl. client) |")
        print("|---|---|---|---|---|")
        rates = {}
        for name in ("dovecot", "moonpost"):
            secs = [t for _, _, t in res[name]]
            rate = [n / t for n, _, t in res[name]]
            mbs = [tot / t / 1e6 for _, tot, t in res[name]]
            rates[name] = statistics.median(rate)
            print("| %s | %.0f (%.0f-%.0f) | %.1f | %.3f | %.0f |" % (
                "Dovecot 2.3 pop3" if name == "dovecot" else "moonpost",
                statistics.median(rate), min(rate), max(rate), statistics.median(mbs),
                statistics.median(secs), statistics.median(cpu[name])))
        print()
        print("ratio moonpost / Dovecot (msgs/s): %.2fx" % (rates["moonpost"] / rates["dovecot"]))
        if use_c:
            cold(work, md, h, d)
    finally:
        if dv:
            dv.stop()
        d.stop()
        d.cleanup()
        if os.environ.get("KEEP") != "1":
            shutil.rmtree(work, ignore_errors=True)


main()
