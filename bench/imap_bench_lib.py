"""Helpers of bench/imap_fetch.py: the test Maildirs, a raw IMAP client,
the two servers (moonpost, a private Dovecot), login bursts, idle
connections and process memory. See bench/imap-fetch.sh for what is measured.
"""
import concurrent.futures
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "t", "lib"))

import dovecot as dvlib  # noqa: E402
import mpd  # noqa: E402

DOMAIN = "example.org"
USER = "john@" + DOMAIN
PASSWORD = "secret"
WORD = "quokkafish"             # SEARCH TEXT finds it in ~1% of the messages
DECOY = b"quokkafis"            # a prefix of WORD: must not match


# ------------------------------------------------------------- Maildirs --

def planted(i):
    """Where message i carries WORD: "body", "subject" or None."""
    if i % 100 == 37:
        return "body"
    if i % 1000 == 500:
        return "subject"
    return None


def message(i, size):
    subject = b"message %d" % i
    if planted(i) == "subject":
        subject += b" about Quokkafish"
    hdr = (b"From: Sender %d <s%d@example.net>\nTo: john@example.org\nSubject: %s\n"
           b"Date: Sat, 05 Dec 2026 10:%02d:00 +0000\nMessage-ID: <%d@example.net>\n\n"
           % (i, i, subject, i % 60, i))
    line = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\n"
    lines = [line] * max(1, (size - len(hdr)) // len(line))
    if planted(i) == "body":
        lines[len(lines) // 2] = b"Lorem ipsum dolor sit amet, a QuokkaFish adipiscing elit, sed do.\n"
    elif i % 100 == 71:
        lines[len(lines) // 2] = b"Lorem ipsum dolor sit amet, a quokkafis adipiscing elit, sed do.\n"
    return hdr + b"".join(lines)


def expected_ids(n):
    return {b"<%d@example.net>" % i for i in range(n) if planted(i)}


def maildir_name(i, data):
    return "%d.M%dP1.bench,S=%d,W=%d" % (1700000000 + i, i, len(data),
                                         len(data) + data.count(b"\n"))


def make_maildir(md, n, size):
    """n messages in md/new (LF line ends, names with S= and W=)."""
    for d in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(md, d), exist_ok=True)
    for i in range(n):
        data = message(i, size)
        with open(os.path.join(md, "new", maildir_name(i, data)), "wb") as f:
            f.write(data)


def idle_user(i):
    return "idle%04d@%s" % (i, DOMAIN)


def make_idle_maildirs(root, master, users, msgs):
    """One Maildir per idle user under root/LOCALPART/Maildir, holding the
    first msgs messages of master/new (hard links: nobody rewrites them)."""
    names = sorted(os.listdir(os.path.join(master, "new")))[:msgs]
    for u in users:
        md = os.path.join(root, u.split("@")[0], "Maildir")
        for d in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(md, d))
        for nm in names:
            src = os.path.join(master, "new", nm)
            dst = os.path.join(md, "new", nm)
            try:
                os.link(src, dst)
            except OSError:
                shutil.copyfile(src, dst)


def chown_tree(path, uid, gid):
    os.lchown(path, uid, gid)
    for r, dirs, files in os.walk(path):
        for n in dirs + files:
            os.lchown(os.path.join(r, n), uid, gid)


def bcrypt_hash():
    """One {BLF-CRYPT} cost-5 hash of PASSWORD, as ISPmail makes them."""
    try:
        r = subprocess.run(["doveadm", "pw", "-s", "BLF-CRYPT", "-r", "5", "-p", PASSWORD],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=30)
        h = r.stdout.strip()
        if r.returncode == 0 and h.startswith("{BLF-CRYPT}$2"):
            return h
    except OSError:
        pass
    import crypt  # deprecated since 3.11, still there
    return "{BLF-CRYPT}" + crypt.crypt(PASSWORD, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=32))


# ------------------------------------------------------------ IMAP client --

class Client:
    """Raw IMAP client: reads every response, literals included, in O(bytes)."""

    def __init__(self, port, timeout=120):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.pos = 0
        self.n = 0
        g = self.line()
        if not g.startswith(b"* OK"):
            raise RuntimeError("greeting: %r" % g)

    def _fill(self):
        if self.pos and self.pos >= len(self.buf) // 2:
            del self.buf[:self.pos]
            self.pos = 0
        d = self.s.recv(1 << 20)
        if not d:
            raise EOFError("the server closed the connection")
        self.buf += d

    def line(self):
        scanned = 0                     # bytes after pos known to hold no CRLF
        while True:
            i = self.buf.find(b"\r\n", self.pos + scanned)
            if i >= 0:
                ln = bytes(self.buf[self.pos:i])
                self.pos = i + 2
                return ln
            scanned = max(0, len(self.buf) - self.pos - 1)
            self._fill()

    def literal(self, n, keep):
        while len(self.buf) - self.pos < n:
            self._fill()
        data = bytes(self.buf[self.pos:self.pos + n]) if keep else None
        self.pos += n
        return data

    def send(self, text):
        self.s.sendall(text.encode() + b"\r\n")

    def response(self, tag, keep=False):
        """Reads up to the tagged line: (tagged line, bytes read, untagged
        responses, [(text, [literals])] if keep)."""
        total = untagged = 0
        kept = []
        parts, lits, fresh = [], [], True
        while True:
            ln = self.line()
            total += len(ln) + 2
            if fresh and ln.startswith(tag + b" "):
                return ln, total, untagged, kept
            if fresh:
                untagged += 1
            i = ln.rfind(b"{")
            if ln.endswith(b"}") and i >= 0 and ln[i + 1:-1].isdigit():
                n = int(ln[i + 1:-1])
                lit = self.literal(n, keep)
                total += n
                if keep:
                    parts.append(ln)
                    lits.append(lit)
                fresh = False
                continue
            if keep:
                parts.append(ln)
                kept.append((b"".join(parts), lits))
                parts, lits = [], []
            fresh = True

    def cmd(self, text, keep=False):
        self.n += 1
        tag = b"b%d" % self.n
        self.send(tag.decode() + " " + text)
        r = self.response(tag, keep)
        if not r[0].startswith(tag + b" OK"):
            raise RuntimeError("%s: %r" % (text.split(" ")[0], r[0]))
        return r

    def idle(self):
        """IDLE: returns once the server sent its continuation."""
        self.n += 1
        self.idle_tag = b"b%d" % self.n
        self.send(self.idle_tag.decode() + " IDLE")
        while True:
            ln = self.line()
            if ln.startswith(b"+"):
                return
            if ln.startswith(self.idle_tag + b" "):
                raise RuntimeError("IDLE: %r" % ln)

    def done(self):
        self.send("DONE")
        r = self.response(self.idle_tag)
        if not r[0].startswith(self.idle_tag + b" OK"):
            raise RuntimeError("DONE: %r" % r[0])

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


# --------------------------------------------------------------- servers --

class Moonpost:
    """build/moonpostd with an IMAP listener (plaintext LOGIN allowed, as
    the bench's loopback listener), a file directory with the given
    (user, hash) pairs and Maildirs at root/LOCALPART/Maildir."""
    name = "moonpost"

    def __init__(self, root, users, conns_max=1000):
        self.d = mpd.Daemon(start=False)
        path = os.path.join(self.d.dir, "directory")
        with open(path, "w") as f:
            f.write("domain %s\n" % DOMAIN)
            for u, h in users:
                f.write("user %s %s\n" % (u, h))
        self.port = mpd.free_port()
        self.d.config["listen"].append({"address": "127.0.0.1", "port": self.port,
                                        "protocol": "imap", "tls": "none",
                                        "plaintext_auth": True})
        # smtp.connections_max / connections_per_ip count IMAP connections too.
        self.d.write_config({"workers": 2,
                             "smtp": {"connections_max": conns_max,
                                      "connections_per_ip": conns_max},
                             "directory": {"backend": "file", "file": path,
                                           "maildir": os.path.join(root, "%n", "Maildir")}})
        try:
            self.d.start()
        except BaseException:
            self.d.cleanup()
            raise

    def pids(self):
        return self.d.pids()

    def problems(self):
        return [ln for ln in self.d.log_text().splitlines()
                if " level=error" in ln or " level=crit" in ln or "fatal" in ln.lower()]

    def stop(self):
        try:
            self.d.stop()
        finally:
            self.d.cleanup()


class Dovecot:
    """The private Dovecot of t/lib/dovecot.py with the same users and
    Maildirs; defaults except the limits 1,000 connections need."""
    name = "dovecot"

    def __init__(self, root, users, conns_max=1000):
        extra = ("default_client_limit = %d\n"
                 "mail_max_userip_connections = %d\n"
                 "service imap {\n  process_limit = %d\n}\n" % (conns_max * 2, conns_max, conns_max))
        (u0, h0), rest = users[0], users[1:]
        for u, _ in rest:
            home = os.path.join(root, u.split("@")[0])
            if os.path.isdir(home):
                chown_tree(home, dvlib.MAIL_UID, dvlib.MAIL_GID)
        self.dv = dvlib.Dovecot(os.path.join(root, u0.split("@")[0], "Maildir"), u0, h0,
                                extra=extra, protocol="imap", users=rest,
                                mail_location="maildir:%s/%%n/Maildir" % root)
        self.port = self.dv.port

    def pids(self):
        if self.dv.proc is None or self.dv.proc.poll() is not None:
            return []
        return [self.dv.proc.pid] + mpd.descendants(self.dv.proc.pid)

    def problems(self):
        try:
            with open(os.path.join(self.dv.dir, "dovecot.log"), errors="replace") as f:
                return [ln.rstrip("\n") for ln in f
                        if "Error:" in ln or "Fatal:" in ln or "Warning:" in ln or "Panic:" in ln]
        except OSError:
            return []

    def stop(self):
        self.dv.stop()


def version_of_dovecot():
    try:
        return subprocess.run([dvlib.DOVECOT, "--version"], stdout=subprocess.PIPE,
                              text=True, timeout=10).stdout.split()[0]
    except (OSError, IndexError):
        return "?"


# ---------------------------------------------------------------- phases --

def login_burst(port, count, clients, user=USER):
    """count x (connect, LOGIN, LOGOUT) from `clients` threads at once:
    (logins/s, median latency s)."""
    left = [count]
    lock = threading.Lock()
    lat, errors = [], []

    def worker():
        while True:
            with lock:
                if left[0] == 0 or errors:
                    return
                left[0] -= 1
            t = time.perf_counter()
            try:
                c = Client(port, timeout=60)
                c.cmd("LOGIN %s %s" % (user, PASSWORD))
                c.cmd("LOGOUT")
                c.close()
            except Exception as e:  # noqa: BLE001 - reported below
                with lock:
                    errors.append(e)
                return
            with lock:
                lat.append(time.perf_counter() - t)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    if errors:
        raise RuntimeError("login burst: %d errors, first: %r" % (len(errors), errors[0]))
    lat.sort()
    return count / wall, lat[len(lat) // 2]


def idle_open(port, users, clients=16):
    """Each user: connect, LOGIN, SELECT INBOX, IDLE. Returns the clients."""
    def one(u):
        c = Client(port, timeout=120)
        c.cmd("LOGIN %s %s" % (u, PASSWORD))
        c.cmd("SELECT INBOX")
        c.idle()
        return c
    with concurrent.futures.ThreadPoolExecutor(clients) as ex:
        return list(ex.map(one, users))


def idle_close(conns):
    """DONE + LOGOUT on each: how many were still answering."""
    ok = 0
    for c in conns:
        try:
            c.done()
            c.cmd("LOGOUT")
            ok += 1
        except (OSError, EOFError, RuntimeError):
            pass
        c.close()
    return ok


def cpu_seconds(pids):
    """utime + stime of pids, and of their reaped children (cutime, cstime)."""
    ticks = 0
    for p in pids:
        try:
            with open("/proc/%d/stat" % p) as f:
                rest = f.read().rsplit(")", 1)[1].split()
            ticks += sum(int(x) for x in rest[11:15])
        except (OSError, IndexError, ValueError):
            pass
    return ticks / os.sysconf("SC_CLK_TCK")


def memory(pids):
    """(Pss kB, Rss kB, processes) summed over pids (smaps_rollup)."""
    pss = rss = n = 0
    for p in pids:
        try:
            with open("/proc/%d/smaps_rollup" % p) as f:
                for ln in f:
                    if ln.startswith("Pss:"):
                        pss += int(ln.split()[1])
                    elif ln.startswith("Rss:"):
                        rss += int(ln.split()[1])
            n += 1
        except (OSError, ValueError):
            pass                        # gone meanwhile
    return pss, rss, n
