"""Helpers of bench/imap_fetch.py and bench/imap_sort.py: the test
Maildirs (and a threaded folder), a raw IMAP client, the two servers
(moonpost, a private Dovecot), login bursts, idle connections and process
memory. See bench/imap-fetch.sh and bench/imap-sort.sh for what is measured.
"""
import base64
import concurrent.futures
import datetime
import os
import random
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


# ------------------------------------- threaded folder (imap_sort.py) --
# A mailing-list-and-colleagues folder: N messages in ~N/5 threads, with
# Message-ID / In-Reply-To / References chains, Re:/Fwd:/[list] subject
# prefixes, RFC 2047 subjects and names, dates over 2026 in the senders'
# own zones. Files go to cur/ (an old folder: no uidlist, no index yet)
# with the arrival time as mtime (INTERNALDATE for both servers) and as the
# name's time (UID order), except the messages "moved in" later, whose
# names carry the later time. Deterministic for a given (n, seed).

YEAR_START = 1767225600         # 2026-01-01 00:00:00 UTC
YEAR_END = 1798761600           # 2027-01-01
MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
WDAYS = "Thu Fri Sat Sun Mon Tue Wed".split()       # 1970-01-01 was a Thursday
FIRST = ("Anna Ben Carla David Elena Frank Greta Hugo Ines Jonas Katja Lars Mia Nils Olga "
         "Paul Rosa Sven Tina Uwe Vera Walter Yusuf Zoe Aisha Bruno Chen Dmitri Emma "
         "Farid Gabriel Hana Ivan Julia Kenji Lena Marco Nora Oscar Priya").split()
LAST = ("Meyer Schmidt Novak Rossi Dubois Garcia Smith Jones Tanaka Kim Ivanova Larsen "
        "Silva Costa Weber Fischer Wagner Becker Hoffmann Klein Wolf Neumann Braun Zimmermann "
        "Kowalski Nielsen Jansen Moreau Lambert Russo").split()
NONASCII_NAMES = ["Jürgen Müller", "Zoë Françoise", "Søren Kierkegård", "José Núñez",
                  "Łukasz Wiśniewski", "Åsa Öberg", "Ángel Pérez", "Dvořák Antonín",
                  "Иван Петров", "山田 太郎", "Émilie Lefèvre", "Ğül Şahin"]
DOMAINS = ("example.net example.com mail.example.de uni-example.edu example.co.uk "
           "lists.example.org corp.example.fr example.io example.nl example.jp "
           "example.se example.pl example.es example.it example.ch").split()
ZONES = [0, 0, 60, 60, 60, 120, 120, -300, -240, -480, -420, -360, 330, 540, 600, -180,
         480, 180, 0, 60]
OBS_ZONES = {-300: "EST", -240: "EDT", -360: "CST", -480: "PST", -420: "PDT", 0: "GMT"}
LISTS = ["[dev]", "[users]", "[moonpost-dev]", "[announce]", "[ops-team]", "[Bug 4711]"]
TOPIC_HEAD = ["Question about", "Problem with", "Update on", "Meeting:", "Draft of",
              "Feedback on", "Invoice for", "Build failure in", "Patch:", "Proposal:",
              "Minutes of", "Reminder:", "Help with", "Release notes for", "Review of",
              "Outage of", "Migration to", "Benchmark of", "Thoughts on", "RFC:"]
TOPIC_BODY = ["the quarterly report", "kernel 6.8", "the login page", "budget 2027",
              "the build server", "Dovecot config", "the SMTP relay", "IMAP SORT",
              "the new office", "the staging cluster", "TLS certificates", "the mail queue",
              "the Berlin workshop", "customer 1042", "the backup job", "spam scores",
              "the release branch", "DNS records", "the onboarding docs", "Sieve filters",
              "the Q3 roadmap", "disk quotas", "the holiday schedule", "LMTP delivery",
              "the database upgrade", "password hashing", "the web frontend", "API v2"]
TOPIC_TAIL = ["", "", "", "", " (v2)", " - urgent", " #%d", " [draft]", " today?",
              " (follow-up)", " in production", " for next week"]
PLAIN_SUBJECTS = ["Hello", "Question", "Meeting", "Lunch?", "Quick question", "FYI",
                  "Thanks!", "Update", "Invoice", "Test"]
NONASCII_SUBJECTS = ["Überweisung für März", "Café à Paris demain?", "Réunion de l'équipe",
                     "Nächste Woche: Grüße aus Köln", "Привет, вопрос по серверу",
                     "日本語のテスト", "Søndag i København", "Señal débil en la oficina",
                     "Zażółć gęślą jaźń", "Ärger mit dem Drucker", "Größenänderung der Postfächer",
                     "Café, crème brûlée et déjà-vu: ¿qué pasó con el servidor de correo?"]
LOREM = ("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
         "incididunt ut labore et dolore magna aliqua enim ad minim veniam quis nostrud "
         "exercitation ullamco laboris nisi aliquip ex ea commodo consequat duis aute irure "
         "in reprehenderit voluptate velit esse cillum fugiat nulla pariatur excepteur sint "
         "occaecat cupidatat non proident sunt culpa qui officia deserunt mollit anim id est "
         "laborum server mailbox folder thread deploy patch review release").split()
MAILERS = ["User-Agent: Mozilla Thunderbird 115.4", "X-Mailer: Apple Mail (2.3774)",
           "User-Agent: mutt/2.2.12", "X-Mailer: Microsoft Outlook 16.0", "User-Agent: Roundcube"]
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def rfc2047(text, rng):
    """text as RFC 2047 encoded words (B or Q, UTF-8 or Latin-1), each
    under 75 characters, folded onto continuation lines."""
    charset = "ISO-8859-1" if max(map(ord, text)) < 256 and rng.random() < 0.5 else "UTF-8"
    b = rng.random() < 0.5
    words = []
    for k in range(0, len(text), 14):
        raw = text[k:k + 14].encode(charset)
        if b:
            words.append("=?%s?B?%s?=" % (charset, base64.b64encode(raw).decode()))
        else:
            words.append("=?%s?Q?%s?=" % (charset, "".join(
                chr(c) if c < 128 and chr(c).isalnum() else "_" if c == 32 else "=%02X" % c
                for c in raw)))
    return "\n ".join(words)


def rfc5322_date(t, zone, style):
    """t (UTC seconds) shown in zone (minutes east) in one of the styles
    clients use."""
    days, sec = divmod(t + zone * 60, 86400)
    d = datetime.date(1970, 1, 1) + datetime.timedelta(days=days)
    hms = "%02d:%02d:%02d" % (sec // 3600, sec // 60 % 60, sec % 60)
    z = "%s%02d%02d" % ("-" if zone < 0 else "+", abs(zone) // 60, abs(zone) % 60)
    wd, mon = WDAYS[days % 7], MONTHS[d.month - 1]
    if style == "noday":
        return "%d %s %d %s %s" % (d.day, mon, d.year, hms, z)
    if style == "comment":
        return "%s, %d %s %d %s %s (%s)" % (wd, d.day, mon, d.year, hms, z,
                                            OBS_ZONES.get(zone, "UTC%+d" % (zone // 60)))
    if style == "obs" and zone in OBS_ZONES:
        return "%s, %02d %s %d %s %s" % (wd, d.day, mon, d.year, hms, OBS_ZONES[zone])
    return "%s, %02d %s %d %s %s" % (wd, d.day, mon, d.year, hms, z)


def _senders(rng, count=400):
    out = []
    for i in range(count):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        dom = rng.choice(DOMAINS)
        addr = "%s.%s%s@%s" % (first.lower(), last.lower(), "" if i < 200 else str(i), dom)
        shown = rng.choices(["%s <%s>" % (rfc2047(rng.choice(NONASCII_NAMES), rng), addr),
                             '"%s, %s" <%s>' % (last, first, addr), addr, "<%s>" % addr,
                             "%s %s <%s>" % (first, last, addr)], [8, 10, 7, 5, 70])[0]
        out.append({"from": shown, "addr": addr, "dom": dom, "zone": rng.choice(ZONES),
                    "style": rng.choices(["plain", "noday", "comment", "obs"], [80, 6, 10, 4])[0],
                    "skew": rng.choice([-5400, -600, 300, 3600]) if rng.random() < 0.02 else 0,
                    "nodate": rng.random() < 0.004})
    return out


def _thread_subject(rng):
    """A thread's subject as its first message has it (None: no header)."""
    r = rng.random()
    if r < 0.005:
        return None
    if r < 0.01:
        return ""
    if r < 0.10:
        return rng.choice(NONASCII_SUBJECTS)
    if r < 0.16:
        return rng.choice(PLAIN_SUBJECTS)
    tail = rng.choice(TOPIC_TAIL)
    if "%d" in tail:
        tail = tail % rng.randrange(1, 999)
    return "%s %s%s" % (rng.choice(TOPIC_HEAD), rng.choice(TOPIC_BODY), tail)


def _subject_line(rng, base, tag, reply, fwd):
    """The Subject: value of a message in a thread (None: no header)."""
    if base is None:
        return None
    enc = not base.isascii()
    text = base
    if fwd:
        if rng.random() < 0.1:
            return "[Fwd: %s]" % (rfc2047(text, rng) if enc else text)
        lead = rng.choice(["Fwd: ", "Fwd: ", "FW: ", "Fw: "])
    elif reply:
        lead = rng.choices(["Re: ", "RE: ", "Re: Re: ", "Re[2]: ", "re: ", "AW: "],
                           [75, 10, 5, 3, 2, 5])[0]
    else:
        lead = ""
    if enc:
        if lead and rng.random() < 0.3:
            return rfc2047(lead + text, rng)     # the leader inside the encoded word
        text = rfc2047(text, rng)
    if tag:
        if lead and rng.random() < 0.6:
            return "%s %s%s" % (tag, lead, text)   # "[dev] Re: x" (list software)
        return "%s%s %s" % (lead, tag, text)        # "Re: [dev] x"
    s = lead + text
    cut = s.rfind(" ", 0, 60) if len(s) > 70 and "\n" not in s else -1
    return s[:cut] + "\n" + s[cut:] if cut > 0 else s


def _msgid(rng, dom, t):
    r = rng.random()
    if r < 0.3:
        return "<CA%s@mail.gmail.com>" % "".join(rng.choice(B64) for _ in range(40))
    if r < 0.5:
        return "<%d.%d.JavaMail.app@%s>" % (t, rng.randrange(1 << 30), dom)
    if r < 0.7:
        return "<%08x-%04x-%04x-%04x-%012x@%s>" % (rng.getrandbits(32), rng.getrandbits(16),
                                                  rng.getrandbits(16), rng.getrandbits(16),
                                                  rng.getrandbits(48), dom)
    return "<%x.%x@%s>" % (t, rng.getrandbits(40), dom)


def _thread_sizes(rng, n, nthreads):
    """How many of the n messages each thread gets: every thread one, the
    rest mostly to threads that already have many (a few long threads,
    many short ones)."""
    owner = list(range(nthreads))
    while len(owner) < n:
        owner.append(owner[rng.randrange(len(owner))] if rng.random() < 0.75
                     else rng.randrange(nthreads))
    sizes = [0] * nthreads
    for t in owner:
        sizes[t] += 1
    return sizes


def _threading(rng, parent, refs, fwd):
    """In-Reply-To / References lines of a reply, as clients write them."""
    if parent is None or (fwd and rng.random() < 0.5):
        return []
    if fwd:
        return ["References: " + parent[0]]
    irt, ref = "In-Reply-To: " + parent[0], "References: " + "\n ".join(refs)
    r = rng.random()
    if r < 0.01:
        return []                                # a client that keeps neither
    if r < 0.05:
        return [irt]
    if r < 0.06:
        return ["%s (message of %s)" % (irt, rfc5322_date(parent[2], 0, "plain")), ref]
    if r < 0.08:
        return [ref]
    return [irt, ref]


def _message(rng, snd, senders, m, parent, tag):
    """One message's bytes (LF). m: msgid, subject, when, arrive, refs,
    fwd, body; parent: (msgid, refs, time, body lines) or None."""
    hdr = ["Return-Path: <%s>" % snd["addr"], "Delivered-To: john@example.org"]
    for hop in range(rng.randrange(2, 5)):
        hdr.append("Received: from mx%d.%s (mx%d.%s [192.0.2.%d])\n\tby mail.example.org"
                   " (moonpost) with ESMTPS id %x\n\tfor <john@example.org>; %s"
                   % (hop, snd["dom"], hop, snd["dom"], hop + 10, rng.getrandbits(48),
                      rfc5322_date(m["arrive"] - hop, 0, "plain")))
    if rng.random() < 0.4:
        sig = "".join(rng.choice(B64) for _ in range(344))
        hdr.append("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=%s; s=s1;\n"
                   "\th=from:to:subject:date:message-id; bh=%s;\n\tb=%s\n\t %s"
                   % (snd["dom"], sig[:44], sig[:172], sig[172:]))
    lst = tag[1:-1].replace(" ", "-").lower() if tag else None
    hdr.append("From: " + snd["from"])
    hdr.append("To: " + ("%s@lists.example.org" % lst if tag else "John Doe <john@example.org>"))
    if rng.random() < 0.2:
        hdr.append("Cc: %s, john@example.org" % rng.choice(senders)["from"])
    if m["subject"] is not None:
        hdr.append("Subject: " + m["subject"])
    if m["sent"] is not None:
        hdr.append("Date: " + rfc5322_date(m["sent"], snd["zone"], snd["style"]))
    hdr.append("Message-ID: " + m["msgid"])
    hdr += _threading(rng, parent, m["refs"], m["fwd"])
    hdr += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8; format=flowed",
            "Content-Transfer-Encoding: 8bit"]
    if tag:
        hdr.append("List-Id: %s <%s.lists.example.org>" % (lst.capitalize(), lst))
        hdr.append("List-Unsubscribe: <mailto:%s-leave@lists.example.org>" % lst)
    hdr.append(rng.choice(MAILERS))
    quote = ["> " + ln for ln in parent[3][:rng.randrange(0, 8)]] if parent else []
    sig = snd["from"].split("<")[0].strip()
    text = ["Hi,", ""] + m["body"] + [""] + quote + ["", "-- ", sig]
    return ("\n".join(hdr) + "\n\n" + "\n".join(text) + "\n").encode()


def _thread(rng, senders, lorem, size, out):
    """Appends one thread's size messages to out (dicts, see
    thread_messages). Some threads lost their first message, some a reply
    in between: their references name messages not in the folder."""
    base = _thread_subject(rng)
    tag = rng.choice(LISTS) if rng.random() < 0.3 else None
    start = rng.randrange(YEAR_START, YEAR_END - 20 * 86400)
    sent_ = []                               # (msgid, refs, time, body lines)
    if size > 1 and rng.random() < 0.08:
        sent_.append((_msgid(rng, rng.choice(DOMAINS), start), [], start - 3600, []))
    k = 0
    while k < size:
        snd = rng.choice(senders)
        parent, when = None, start
        if sent_:
            parent = sent_[-1 - min(len(sent_) - 1, int(rng.expovariate(0.6)))]
            when = parent[2] + 60 + int(rng.expovariate(1 / 20000.0))
            if rng.random() < 0.02:
                lost = (_msgid(rng, rng.choice(DOMAINS), when), parent[1] + [parent[0]],
                        when, [])
                sent_.append(lost)
                parent, when = lost, when + 600
        refs = (parent[1] + [parent[0]]) if parent else []
        if len(refs) > 12:
            refs = refs[:1] + refs[-11:]
        fwd = parent is not None and rng.random() < 0.04
        m = {"msgid": _msgid(rng, snd["dom"], when), "refs": refs, "fwd": fwd,
             "subject": _subject_line(rng, base, tag, parent is not None, fwd),
             "arrive": when + rng.randrange(2, 600),
             "body": lorem[rng.randrange(350):][:rng.randrange(3, 50)],
             "sent": None if snd["nodate"] else when + snd["skew"]}
        out.append({"msgid": m["msgid"].encode(),
                    "data": _message(rng, snd, senders, m, parent, tag),
                    "mtime": m["arrive"], "sent": m["sent"],
                    "flags": rng.choices(["S", "RS", "FS", "", "FRS"], [83, 6, 3, 7, 1])[0],
                    "ascii_subject": base is None or base.isascii()})
        sent_.append((m["msgid"], refs, when, m["body"]))
        k += 1
        if k < size and rng.random() < 0.004:  # delivered twice (list + Cc)
            out.append(dict(out[-1], mtime=m["arrive"] + rng.randrange(1, 30)))
            k += 1


def thread_messages(n, seed=8):
    """The folder's n messages as dicts in UID order: msgid, data (bytes,
    LF), mtime (arrival, INTERNALDATE), sent (Date: in UTC seconds, None
    when missing), flags, fname_time (the Maildir name's time),
    ascii_subject (the decoded Subject: is ASCII)."""
    rng = random.Random(seed)
    senders = _senders(rng)
    lorem = []
    for _ in range(400):
        lorem.append(" ".join(rng.choice(LOREM) for _ in range(rng.randrange(8, 14)))
                     .capitalize() + ".")
    nthreads = max(1, n // 5)
    msgs = []
    for size in _thread_sizes(rng, n, nthreads):
        _thread(rng, senders, lorem, size, msgs)
    for m in msgs:                              # moved in from another folder later
        m["fname_time"] = m["mtime"] + (rng.randrange(86400, 90 * 86400) if rng.random() < 0.04
                                        else 0)
    msgs.sort(key=lambda m: m["fname_time"])
    for i in range(1, len(msgs)):              # unique name times: a UID order both agree on
        if msgs[i]["fname_time"] <= msgs[i - 1]["fname_time"]:
            msgs[i]["fname_time"] = msgs[i - 1]["fname_time"] + 1
    return msgs


def write_thread_maildir(md, msgs):
    """msgs (thread_messages) as md/cur files, mtime = arrival."""
    for d in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(md, d), exist_ok=True)
    for i, m in enumerate(msgs):
        data = m["data"]
        name = "%d.M%dP%dQ%d.mail.example.org,S=%d,W=%d:2,%s" % (
            m["fname_time"], 100000 + i * 37 % 900000, 4000 + i % 3000, i + 1, len(data),
            len(data) + data.count(b"\n"), m["flags"])
        path = os.path.join(md, "cur", name)
        with open(path, "wb") as f:
            f.write(data)
        os.utime(path, (m["mtime"], m["mtime"]))


def link_maildir(src, dst):
    """A copy of the Maildir src at dst made of hard links: the servers
    only rename and unlink message files, never write them."""
    for d in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(dst, d))
        for nm in os.listdir(os.path.join(src, d)):
            os.link(os.path.join(src, d, nm), os.path.join(dst, d, nm))
