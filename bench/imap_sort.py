#!/usr/bin/env python3
"""IMAP SORT, THREAD and a QRESYNC resync, moonpost vs Dovecot: see
imap-sort.sh. Helpers (the threaded folder, client, servers):
imap_bench_lib.py."""
import bisect
import collections
import os
import re
import shutil
import statistics
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import imap_bench_lib as lib  # noqa: E402

N = int(os.environ.get("N", "10000"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
SEED = int(os.environ.get("SEED", "8"))
CHANGES = 100                   # QRESYNC: half flag changes, half expunges

# Each timed command gets its own user, i.e. its own fresh copy of the
# folder, so that its first run is cold (no cache file of either server).
TIMED = [("arrival", "SORT (ARRIVAL) UTF-8 ALL", "SORT (ARRIVAL)"),
         ("subject", "SORT (SUBJECT) UTF-8 ALL", "SORT (SUBJECT)"),
         ("date", "SORT (DATE) UTF-8 ALL", "SORT (DATE)"),
         ("thread", "THREAD REFERENCES UTF-8 ALL", "THREAD REFERENCES")]
QRESYNC_USER = "qresync"

failures = []


def fail(text):
    failures.append(text)
    print("FAIL: " + text, file=sys.stderr)


def user(local):
    return "%s@%s" % (local, lib.DOMAIN)


def timed(c, text):
    t = time.perf_counter()
    r = c.cmd(text, keep=True)
    return time.perf_counter() - t, r


def answer(r, word):
    """The text after "* WORD " of a kept response (SORT, THREAD)."""
    head = b"* " + word + b" "
    for text, _ in r[3]:
        if text.startswith(head):
            return text[len(head):]
        if text == head.rstrip():
            return b""
    raise RuntimeError("no * %s response" % word.decode())


def message_ids(c):
    """seq -> Message-ID (index seq - 1) of the selected folder."""
    r = c.cmd("FETCH 1:* (BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])", keep=True)
    ids = {}
    for text, lits in r[3]:
        m = re.match(rb"\* (\d+) FETCH", text)
        if m and lits:
            found = re.findall(rb"<[^>]+>", lits[0])
            ids[int(m.group(1))] = found[0] if found else None
    return [ids.get(i) for i in range(1, len(ids) + 1)]


def cache_size(md):
    """Bytes of the folder's cache file, the server's own: (moonpost, Dovecot)."""
    sizes = []
    for nm in ("moonpost.cache", "dovecot.index.cache"):
        try:
            sizes.append(os.path.getsize(os.path.join(md, nm)))
        except OSError:
            sizes.append(0)
    return sizes


def sort_session(srv, md, key, cmd, out):
    c = lib.Client(srv.port)
    c.cmd("LOGIN %s %s" % (user("s" + key), lib.PASSWORD))
    t = time.perf_counter()
    r = c.cmd("SELECT INBOX", keep=True)
    out["select_" + key] = time.perf_counter() - t
    exists = [int(x.split()[1]) for x, _ in r[3] if x.endswith(b" EXISTS")]
    if exists != [N]:
        fail("%s: SELECT said EXISTS %s, not %d" % (srv.name, exists, N))
    word = cmd.split()[0].encode()
    before = cache_size(md)
    out[key], r1 = timed(c, cmd)
    out[key + "_warm"], r2 = timed(c, cmd)
    out["cache_" + key] = (before, cache_size(md))
    a1, a2 = answer(r1, word), answer(r2, word)
    if a1 != a2:
        fail("%s: %s answered differently cold and warm" % (srv.name, cmd))
    out["ans_" + key] = a1
    if key == "arrival":                        # after the timings: what seq means
        out["ids"] = message_ids(c)
    c.cmd("LOGOUT")
    c.close()


def parse_set(spec):
    uids = set()
    for part in spec.split(b","):
        a, _, b = part.partition(b":")
        lo, hi = int(a), int(b or a)
        uids.update(range(min(lo, hi), max(lo, hi) + 1))
    return uids


def resync_answer(r):
    """(VANISHED UIDs, {UID: FLAGS} of the FETCH responses) of a kept response."""
    vanished, changed = set(), {}
    for text, _ in r[3]:
        m = re.match(rb"\* VANISHED (?:\(EARLIER\) )?([0-9:,]+)$", text)
        if m:
            vanished |= parse_set(m.group(1))
            continue
        if re.match(rb"\* \d+ FETCH ", text):
            uid = re.search(rb"\bUID (\d+)", text)
            flags = re.search(rb"\bFLAGS \(([^)]*)\)", text)
            if uid:
                changed[int(uid.group(1))] = set(flags.group(1).split()) if flags else None
    return vanished, changed


def change_uids():
    step = N // CHANGES
    flag = [1 + 2 * i * step for i in range(CHANGES // 2)]
    gone = [1 + (2 * i + 1) * step for i in range(CHANGES // 2)]
    return flag, gone


def qresync_note(port, who):
    """Session A's first visit: (UIDVALIDITY, HIGHESTMODSEQ)."""
    a = lib.Client(port)
    a.cmd("LOGIN %s %s" % (who, lib.PASSWORD))
    a.cmd("ENABLE QRESYNC")
    r = a.cmd("SELECT INBOX", keep=True)
    text = b"\n".join(x for x, _ in r[3]) + b"\n" + r[0]
    uv = int(re.search(rb"\[UIDVALIDITY (\d+)\]", text).group(1))
    ms = int(re.search(rb"\[HIGHESTMODSEQ (\d+)\]", text).group(1))
    a.cmd("LOGOUT")
    a.close()
    return uv, ms


def qresync_change(port, who, flag, gone):
    """Session B: one UID STORE per UID in flag toggling \\Flagged, then
    the UIDs in gone expunged. Returns {UID: \\Flagged now}."""
    b = lib.Client(port)
    b.cmd("LOGIN %s %s" % (who, lib.PASSWORD))
    b.cmd("SELECT INBOX")
    _, before = resync_answer(b.cmd("UID FETCH %s (FLAGS)" % ",".join(map(str, flag)), keep=True))
    want = {}
    for u in flag:
        had = b"\\Flagged" in (before.get(u) or set())
        b.cmd("UID STORE %d %sFLAGS.SILENT (\\Flagged)" % (u, "-" if had else "+"))
        want[u] = not had
    b.cmd("UID STORE %s +FLAGS.SILENT (\\Deleted)" % ",".join(map(str, gone)))
    b.cmd("EXPUNGE")
    b.cmd("LOGOUT")
    b.close()
    return want


def qresync_check(name, what, ans, want, gone):
    vanished, changed = ans
    flag = set(want)
    if vanished != set(gone):
        fail("%s: %s: VANISHED %d UIDs, want the %d expunged; missing %s, extra %s"
             % (name, what, len(vanished), len(gone), sorted(set(gone) - vanished)[:8],
                sorted(vanished - set(gone))[:8]))
    if set(changed) != flag:
        fail("%s: %s: FETCH for %d UIDs, want the %d changed; missing %s, extra %s"
             % (name, what, len(changed), len(flag), sorted(flag - set(changed))[:8],
                sorted(set(changed) - flag)[:8]))
    wrong = [u for u in sorted(flag) if changed.get(u) is not None
             and (b"\\Flagged" in changed[u]) != want[u]]
    if wrong:
        fail("%s: %s: \\Flagged wrong for UIDs %s" % (name, what, wrong[:8]))


def qresync_session(srv, out):
    """A notes UIDVALIDITY/HIGHESTMODSEQ; B makes the changes; A comes
    back: the timed SELECT (QRESYNC) and UID FETCH CHANGEDSINCE VANISHED."""
    who = user(QRESYNC_USER)
    uv, ms = qresync_note(srv.port, who)
    flag, gone = change_uids()
    want = qresync_change(srv.port, who, flag, gone)
    a = lib.Client(srv.port)
    a.cmd("LOGIN %s %s" % (who, lib.PASSWORD))
    a.cmd("ENABLE QRESYNC")
    out["qr_select"], r = timed(a, "SELECT INBOX (QRESYNC (%d %d))" % (uv, ms))
    out["qr_sel_ans"] = resync_answer(r)
    out["qr_fetch"], r = timed(a, "UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % ms)
    out["qr_fetch_ans"] = resync_answer(r)
    a.cmd("LOGOUT")
    a.close()
    qresync_check(srv.name, "SELECT (QRESYNC)", out["qr_sel_ans"], want, gone)
    qresync_check(srv.name, "UID FETCH CHANGEDSINCE", out["qr_fetch_ans"], want, gone)


def run_round(work, master, cls, r, h):
    root = os.path.join(work, "%s-%d" % (cls.name, r))
    locals_ = ["s" + k for k, _, _ in TIMED] + [QRESYNC_USER]
    for loc in locals_:
        lib.link_maildir(master, os.path.join(root, loc, "Maildir"))
    srv = cls(root, [(user(loc), h) for loc in locals_])
    out = {}
    try:
        for key, cmd, _ in TIMED:
            sort_session(srv, os.path.join(root, "s" + key, "Maildir"), key, cmd, out)
        qresync_session(srv, out)
        out["problems"] = srv.problems()
    finally:
        srv.stop()
        shutil.rmtree(root, ignore_errors=True)
    return out


# ------------------------------------------------------------ checking --

def thread_tree(text):
    """THREAD answer -> list of top-level threads, each a nested list."""
    stack, top = [[]], None
    for tok in re.findall(rb"\(|\)|\d+", text):
        if tok == b"(":
            stack.append([])
        elif tok == b")":
            top = stack.pop()
            stack[-1].append(top)
        else:
            stack[-1].append(int(tok))
    return stack[0]


def flat(tree):
    out = []
    for x in tree:
        if isinstance(x, list):
            out += flat(x)
        else:
            out.append(x)
    return out


def seqs(ans):
    return [int(x) for x in ans.split()]


def differ(a, b):
    return sum(1 for x, y in zip(a, b) if x != y) + abs(len(a) - len(b))


def out_of_place(a, b):
    """How many of a's items must move to turn a into b (a permutation of
    it): len - the longest common subsequence (patience sorting)."""
    pos = {x: i for i, x in enumerate(b)}
    tails = []
    for x in a:
        i = bisect.bisect_left(tails, pos[x])
        tails[i:i + 1] = [pos[x]]
    return len(a) - len(tails)


def subject_of(msgs, seq):
    hdr = msgs[seq - 1]["data"].split(b"\n\n", 1)[0]
    m = re.search(rb"^Subject:(.*(?:\n[ \t].*)*)", hdr, re.M | re.I)
    return m.group(1).strip().decode(errors="replace").replace("\n", "") if m else "(none)"


def sent_of(msgs, seq):
    m = msgs[seq - 1]
    return m["sent"] if m["sent"] is not None else m["mtime"]


def check(res, msgs):
    """Correctness of every round's answers; returns the report lines."""
    lines = []
    want_ids = [m["msgid"] for m in msgs]
    for name in ("moonpost", "dovecot"):
        for i, x in enumerate(res[name]):
            if x["ids"] != want_ids:
                bad = [k + 1 for k, (p, q) in enumerate(zip(x["ids"], want_ids)) if p != q]
                fail("%s round %d: seq -> Message-ID is not the folder's name order at %d seqs,"
                     " first %s" % (name, i + 1, len(bad), bad[:5]))
    for name in ("moonpost", "dovecot"):                     # stable across rounds
        for key, _, label in TIMED:
            if any(x["ans_" + key] != res[name][0]["ans_" + key] for x in res[name]):
                fail("%s: %s answered differently between rounds" % (name, label))
    lines += check_sorts(res, msgs)
    lines += check_subject(res, msgs)
    lines += check_thread(res, msgs)
    lines += check_qresync(res)
    return lines


def check_sorts(res, msgs):
    """SORT (ARRIVAL) and SORT (DATE): both servers, and the order the
    generator's own data gives."""
    lines, n = [], len(msgs)
    expected = {"arrival": sorted(range(1, n + 1), key=lambda s: (msgs[s - 1]["mtime"], s)),
                "date": sorted(range(1, n + 1), key=lambda s: (sent_of(msgs, s), s))}
    rule = {"arrival": "INTERNALDATE = mtime",
            "date": "Date: in UTC, INTERNALDATE for the %d without Date:"
            % sum(1 for x in msgs if x["sent"] is None)}
    for key in ("arrival", "date"):
        want = expected[key]
        for name in ("moonpost", "dovecot"):
            for i, x in enumerate(res[name]):
                got = seqs(x["ans_" + key])
                if got != want:
                    k = next((j for j, (p, q) in enumerate(zip(got, want)) if p != q),
                             min(len(got), len(want)))
                    fail("%s round %d: SORT (%s): %d of %d positions differ from the expected"
                         " order (%s, then seq); first at position %d: got %s, want %s"
                         % (name, i + 1, key.upper(), differ(got, want), n, rule[key], k + 1,
                            got[k:k + 3], want[k:k + 3]))
        m, d = res["moonpost"][0]["ans_" + key], res["dovecot"][0]["ans_" + key]
        if m != d:
            fail("SORT (%s): moonpost and Dovecot differ at %d of %d positions"
                 % (key.upper(), differ(seqs(m), seqs(d)), n))
        lines.append("  SORT (%s): moonpost %s Dovecot; %s the order computed from the generated"
                     " folder (%s; ties by seq)"
                     % (key.upper(), "=" if m == d else "!=",
                        "both equal to" if seqs(m) == seqs(d) == want else "NOT both equal to",
                        rule[key]))
    return lines


def check_subject(res, msgs):
    m, d = seqs(res["moonpost"][0]["ans_subject"]), seqs(res["dovecot"][0]["ans_subject"])
    n = len(msgs)
    if sorted(m) != list(range(1, n + 1)) or sorted(d) != list(range(1, n + 1)):
        fail("SORT (SUBJECT): an answer does not list every message once")
        return []
    if m == d:
        return ["  SORT (SUBJECT): identical (%d positions)" % n]
    k = next(j for j, (p, q) in enumerate(zip(m, d)) if p != q)
    asc = [s for s in m if msgs[s - 1]["ascii_subject"]]
    asc_d = [s for s in d if msgs[s - 1]["ascii_subject"]]
    return ["  SORT (SUBJECT): differs at %d of %d positions; %d messages out of place (N - the"
            " longest common subsequence); first at position %d: moonpost seq %d %r, Dovecot"
            " seq %d %r" % (differ(m, d), n, out_of_place(m, d), k + 1, m[k],
                            subject_of(msgs, m[k]), d[k], subject_of(msgs, d[k])),
            "    restricted to the %d messages whose decoded Subject: is ASCII: %s"
            % (len(asc), "identical (the difference is the order of non-ASCII subjects)"
               if asc == asc_d else "%d positions differ, %d out of place"
               % (differ(asc, asc_d), out_of_place(asc, asc_d)))]


def first_seq(t):
    return first_seq(t[0]) if isinstance(t[0], list) else t[0]


def check_thread(res, msgs):
    m_ans, d_ans = res["moonpost"][0]["ans_thread"], res["dovecot"][0]["ans_thread"]
    n = len(msgs)
    trees = {"moonpost": thread_tree(m_ans), "dovecot": thread_tree(d_ans)}
    lines = []
    for name, tree in trees.items():
        f = flat(tree)
        if sorted(f) != list(range(1, n + 1)):
            twice = sorted(s for s, k in collections.Counter(f).items() if k > 1)
            again = [fmt_thread(t) for t in tree if set(flat([t])) & set(twice)]
            fail("THREAD REFERENCES: %s lists %d numbers for %d messages; missing %s, more than"
                 " once %s, in the threads %s; subject(s) %s"
                 % (name, len(f), n, sorted(set(range(1, n + 1)) - set(f))[:8], twice[:8],
                    " ".join(again[:4]), sorted({subject_of(msgs, s) for s in twice})[:3]))
    if m_ans == d_ans:
        return ["  THREAD REFERENCES: identical (%d threads)" % len(trees["moonpost"])]
    tm, td = trees["moonpost"], trees["dovecot"]
    sm, sd = {frozenset(flat([t])) for t in tm}, {frozenset(flat([t])) for t in td}
    fm, fd = flat(tm), flat(td)
    same_shape = sum(1 for t in tm if t in td)
    lines.append("  THREAD REFERENCES: differs: threads moonpost %d, Dovecot %d; %d thread member"
                 " sets in both, %d moonpost threads also in Dovecot's answer as they are; the"
                 " message numbers in order differ at %d of %d/%d positions"
                 % (len(tm), len(td), len(sm & sd), same_shape, differ(fm, fd), len(fm), len(fd)))
    uniq, seen = [], set()                       # moonpost's threads, each once, by date
    for t in tm:
        if repr(t) not in seen:
            seen.add(repr(t))
            uniq.append(t)
    for name, tree in (("moonpost", tm), ("dovecot", td)):
        keys = [(sent_of(msgs, first_seq(t)), first_seq(t)) for t in tree]
        lines.append("    %s: %d top-level threads out of order by (sent date of their first"
                     " message, seq), the order RFC 5256 4 step 6 gives"
                     % (name, sum(1 for a, b in zip(keys, keys[1:]) if a > b)))
    resorted = sorted(uniq, key=lambda t: (sent_of(msgs, first_seq(t)), first_seq(t)))
    lines.append("    moonpost's threads, each once and sorted that way, %s Dovecot's answer"
                 % ("equal" if resorted == td else "still differ from"))
    return lines


def check_qresync(res):
    lines = []
    for name in ("moonpost", "dovecot"):
        x = res[name][0]
        lines.append("  QRESYNC %s: SELECT (QRESYNC) gave %d VANISHED + %d FETCH, UID FETCH"
                     " CHANGEDSINCE %d VANISHED + %d FETCH (want %d + %d), in every round"
                     % (name, len(x["qr_sel_ans"][0]), len(x["qr_sel_ans"][1]),
                        len(x["qr_fetch_ans"][0]), len(x["qr_fetch_ans"][1]),
                        CHANGES // 2, CHANGES // 2))
    for i, (ms, ds) in enumerate(zip(res["moonpost"], res["dovecot"])):
        for k in ("qr_sel_ans", "qr_fetch_ans"):
            if ms[k][0] != ds[k][0] or set(ms[k][1]) != set(ds[k][1]):
                fail("round %d QRESYNC %s: moonpost and Dovecot report different UIDs"
                     % (i + 1, k))
    return lines


def fmt_thread(t):
    s = "(" + " ".join(fmt_thread(x) if isinstance(x, list) else str(x) for x in t) + ")"
    return s if len(s) < 160 else s[:157] + "..."


# ------------------------------------------------------------- report --

def med(res, name, key):
    return statistics.median(x[key] for x in res[name])


def report(res, msgs, corr):
    print("IMAP SORT / THREAD / QRESYNC, moonpost vs Dovecot %s, same machine, one run (%d CPUs);"
          " medians of %d rounds" % (lib.version_of_dovecot(), os.cpu_count(), ROUNDS))
    print("%-46s %10s %10s %8s" % ("", "moonpost", "dovecot", "ratio"))
    rows = []
    for key, _, label in TIMED:
        rows.append((key, "%s, %d msgs, cold (ms)" % (label, N)))
        rows.append((key + "_warm", "  same, again, warm (ms)"))
    rows.append(("qr_select", "SELECT (QRESYNC) after %d changes (ms)" % CHANGES))
    rows.append(("qr_fetch", "UID FETCH 1:* CHANGEDSINCE VANISHED (ms)"))
    for k, label in rows:
        m, d = med(res, "moonpost", k) * 1000, med(res, "dovecot", k) * 1000
        print("%-46s %10.2f %10.2f %7.2fx" % (label, m, d, d / m if m else 0))
    print("ratio: Dovecot time / moonpost time, i.e. >1 = moonpost faster.")
    nodate = sum(1 for m in msgs if m["sent"] is None)
    moved = sum(1 for m in msgs if m["fname_time"] != m["mtime"])
    dups = len(msgs) - len({m["msgid"] for m in msgs})
    print("notes:")
    print("  folder: %d messages (~%d bytes, LF) in cur/ (no uidlist, no index, no cache), %d"
          " threads started (some lost their first message or a reply in between: references"
          " to messages not in the folder); Message-ID, In-Reply-To, References (up to 12"
          " ids, folded); a few replies with In-Reply-To only, References only, neither, or a"
          " comment after the id; %d Message-IDs delivered twice. Subjects with Re:/RE:/Re[2]:/"
          "AW:/Fwd:/FW:/[Fwd: ...], [list] tags before or after the Re:, RFC 2047 (B and Q,"
          " UTF-8 and Latin-1, folded) in ~10%% of threads, some with the Re: inside the"
          " encoded word, some empty or missing. Dates over 2026 in 17 zones, also without"
          " weekday, with a (zone) comment, obsolete names (EST, GMT); %d without Date:."
          " INTERNALDATE = mtime = delivery (2..600 s after sending); %d messages \"moved in\""
          " later (name time later than mtime: UID order != arrival order). SEED=%d."
          % (N, sum(len(m["data"]) for m in msgs) // N, N // 5, dups, nodate, moved, SEED))
    print("  SORT / THREAD: each command on its own fresh copy (hard links to the same files,"
          " so the page cache is warm for both): LOGIN, SELECT INBOX (untimed: UIDs assigned,"
          " Dovecot builds its index; moonpost %.0f ms, Dovecot %.0f ms), then the command"
          " timed from sending it to its tagged OK (cold: each server parses the headers of"
          " all %d messages and fills its cache: moonpost.cache, dovecot.index.cache), then"
          " the same command again in the same session (warm). Charset UTF-8, search ALL."
          % (med(res, "moonpost", "select_arrival") * 1000,
             med(res, "dovecot", "select_arrival") * 1000, N))
    sizes = []
    for key, _, label in TIMED:
        (mb, _), (ma, _) = res["moonpost"][0]["cache_" + key]
        (_, db), (_, da) = res["dovecot"][0]["cache_" + key]
        sizes.append("%s %d -> %d / %d -> %d" % (label, mb >> 10, ma >> 10, db >> 10, da >> 10))
    print("  cache file KB before the cold command -> after the warm one, moonpost.cache /"
          " dovecot.index.cache: " + "; ".join(sizes) + ".")
    print("  QRESYNC: session A: ENABLE QRESYNC, SELECT INBOX on a fresh copy, notes"
          " UIDVALIDITY and HIGHESTMODSEQ, LOGOUT; session B: %d x UID STORE toggling \\Flagged"
          " (one command each), UID STORE +FLAGS.SILENT (\\Deleted) on %d others, EXPUNGE,"
          " LOGOUT; session A again: LOGIN, ENABLE QRESYNC, then timed: SELECT INBOX (QRESYNC"
          " (uidvalidity modseq)) up to its tagged OK, and UID FETCH 1:* (FLAGS) (CHANGEDSINCE"
          " modseq VANISHED), with modseq the HIGHESTMODSEQ of the first SELECT. Changed:"
          " every %dth UID from 1, expunged: every %dth from %d. One sample per round."
          % (CHANGES // 2, CHANGES // 2, 2 * (N // CHANGES), 2 * (N // CHANGES),
             1 + N // CHANGES))
    print("  both: moonpost %s (workers = 2), Dovecot private instance (t/lib/dovecot.py),"
          " defaults; rounds alternate which server goes first; the Python client shares the"
          " CPUs." % os.path.relpath(lib.mpd.binary()))
    print("correctness (round 1; every round's answers are checked and compared):")
    for ln in corr:
        print(ln)
    if os.environ.get("VERBOSE") == "1":
        for name in ("moonpost", "dovecot"):
            for k in ["select_arrival"] + [x for key, _, _ in TIMED for x in (key, key + "_warm")] \
                    + ["qr_select", "qr_fetch"]:
                print("    %s %s per round (ms): %s"
                      % (name, k, " ".join("%.2f" % (x[k] * 1000) for x in res[name])))
    for name in ("moonpost", "dovecot"):
        probs = [p for x in res[name] for p in x["problems"]]
        for p in probs[:4]:
            print("    %s log: %s" % (name, p[:200]))


def main():
    if not lib.dvlib.available("imap"):
        sys.exit("dovecot-imapd is not installed")
    if not os.access(lib.mpd.binary(), os.X_OK):
        sys.exit("%s is missing: run make" % lib.mpd.binary())
    if N < CHANGES:
        sys.exit("N must be at least %d" % CHANGES)
    h = lib.bcrypt_hash()
    work = tempfile.mkdtemp(prefix="imapsort-", dir="/tmp")
    os.chmod(work, 0o755)
    master = os.path.join(work, "master")
    msgs = lib.thread_messages(N, SEED)
    lib.write_thread_maildir(master, msgs)
    res = {"moonpost": [], "dovecot": []}
    try:
        for r in range(ROUNDS):
            order = [lib.Moonpost, lib.Dovecot]
            if r % 2:
                order.reverse()
            for cls in order:
                res[cls.name].append(run_round(work, master, cls, r, h))
    finally:
        if os.environ.get("KEEP") == "1":
            print("kept " + work, file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    dump = os.environ.get("DUMP")
    if dump:
        os.makedirs(dump, exist_ok=True)
        for name in res:
            for key, _, _ in TIMED:
                with open(os.path.join(dump, "%s-%s.txt" % (name, key)), "wb") as f:
                    f.write(res[name][0]["ans_" + key] + b"\n")
    corr = check(res, msgs)
    report(res, msgs, corr)
    if failures:
        print("FAILED checks (%d):" % len(failures))
        for f in failures:
            print("  " + f)
        sys.exit(1)


main()
