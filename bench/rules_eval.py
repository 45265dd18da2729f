#!/usr/bin/env python3
"""Helper for bench/rules-eval.sh (stdlib only; see lib_corpus.py).

  rules_eval.py prepare ROOT WORKDIR SET...
      Writes the corpus copies (no mbox "From " line) and WORKDIR/files.json.
  rules_eval.py moonpost ROOT WORKDIR BINARY CONF REPEAT OUT.json
      `moonpost rules test --json --repeat REPEAT` over every file: per
      message, the first (cold) scan and REPEAT more scans of fresh copies
      of the message in the same process; we keep their median. Times are
      taken inside the Lua state around the scan (MIME parsing, every rule,
      composites; not the X-Spam header formatting); no process start, no
      file reading.
  rules_eval.py rspamd WORKDIR HOST:PORT PASSES OUT.json [MAX_S]
      POST /checkv2 of every file (header "IP: 127.0.0.1", see
      HEADERS_RSPAMD), one at a time (no concurrency, so one scan never
      waits for another), PASSES times (each at most MAX_S seconds, default
      300); per message the median
      over the passes of rspamd's own time_real (its scan, from the request
      being read to the reply; DNS to a loopback NXDOMAIN stub and redis
      included: they are part of what rspamd does per message) and of the
      round trip seen by the client.
  rules_eval.py report WORKDIR MOONPOST.json RSPAMD.json SUMMARY.json
      Prints the table; exit 1 if a side is missing or moonpost misses the
      target (median < 200 us per 10 KB).

Timing only: no symbols or verdicts are looked at.
"""
import http.client
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib_corpus as L  # noqa: E402

TARGET_US_PER_10KB = 200.0


def HEADERS_RSPAMD(n):
    # "IP: 127.0.0.1": the client rspamd sees is the local MTA, as in the
    # anchor's SMTP path (smtp-source from 127.0.0.1 through the milter):
    # the IP-based checks (SPF, RBLs, greylisting, HFILTER on the client)
    # are skipped. Without it rspamd takes an address from the Received
    # headers and waits on DNS the loopback stub does not answer (SPF), up
    # to its 8 s task timeout. Content rules (regexps, MIME, HTML, URLs,
    # bayes) all run. moonpost's rules do no DNS at all.
    return {"Content-Length": str(n), "Connection": "keep-alive", "IP": "127.0.0.1"}
KB10 = 10 * 1024


def say(msg):
    print("[rules-eval] %s" % msg, file=sys.stderr, flush=True)


def load_files(work):
    with open(os.path.join(work, "files.json")) as f:
        return json.load(f)


def cmd_prepare(argv):
    root, work, sets = argv[0], argv[1], argv[2:]
    files = L.prepare(root, sets, os.path.join(work, "corpus"))
    with open(os.path.join(work, "files.json"), "w") as f:
        json.dump([{"set": s, "file": p, "size": n, "kind": L.kind_of(s)} for s, p, n in files], f)
    for s in sets:
        sz = [x[2] for x in files if x[0] == s]
        say("%s: %d messages, median %.1f KB" % (s, len(sz), statistics.median(sz) / 1024))
    return 0


def cmd_moonpost(argv):
    root, work, binary, conf, repeat, out = argv[:6]
    files = load_files(work)
    paths = [x["file"] for x in files]
    res, fails, wall = L.moonpost_scan(binary, conf, paths, cwd=root, batch=250, log=say,
                                       extra=("--repeat", str(repeat)))
    say("moonpost: %d results, %d failures, %.1f s" % (len(res), len(fails), wall))
    rows = []
    for x in files:
        o = res.get(x["file"])
        if not o:
            continue
        b = o.get("bench") or {}
        rows.append({"file": x["file"], "set": x["set"], "size": x["size"],
                     "first_us": o.get("time_us"), "us": b.get("median_us"),
                     "min_us": b.get("min_us"), "p90_us": b.get("p90_us"),
                     "repeat": b.get("repeat"), "errors": len(o.get("errors") or [])})
    with open(out, "w") as f:
        json.dump({"scanner": "moonpost", "repeat": int(repeat), "wall_s": round(wall, 3),
                   "failures": fails, "results": rows}, f)
    return 0 if rows else 1


def rspamd_pass(host, port, files, max_s):
    """One sequential pass over one keep-alive connection, for at most
    max_s seconds (the rest of the files is left out of this pass)."""
    out = {}
    conn = http.client.HTTPConnection(host, port, timeout=60)
    end = time.monotonic() + max_s
    for x in files:
        if time.monotonic() > end:
            say("rspamd: pass stopped after %d s (RSPAMD_PASS_MAX): %d of %d messages" % (max_s, len(out), len(files)))
            break
        with open(x["file"], "rb") as fh:
            body = fh.read()
        for attempt in (1, 2):
            try:
                t0 = time.monotonic()
                conn.request("POST", "/checkv2", body=body, headers=HEADERS_RSPAMD(len(body)))
                r = conn.getresponse()
                data = r.read()
                rtt = time.monotonic() - t0
                break
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=60)
                if attempt == 2:
                    say("rspamd: %s: %s" % (x["file"], e))
                    data = None
        if data is None or r.status != 200:
            continue
        o = json.loads(data)
        tr = o.get("time_real")
        out[x["file"]] = {"us": tr * 1e6 if isinstance(tr, (int, float)) else None,
                          "rtt_us": rtt * 1e6, "skipped": bool(o.get("is_skipped"))}
    conn.close()
    return out


def cmd_rspamd(argv):
    work, hp, passes, out = argv[:4]
    max_s = float(argv[4]) if len(argv) > 4 else 300
    host, port = hp.rsplit(":", 1)
    files = load_files(work)
    say("rspamd: warm-up pass over the first 200 messages (not counted)")
    rspamd_pass(host, int(port), files[:200], max_s)
    runs = []
    t0 = time.monotonic()
    for i in range(int(passes)):
        t1 = time.monotonic()
        runs.append(rspamd_pass(host, int(port), files, max_s))
        say("rspamd: pass %d/%s: %d results, %.1f s" % (i + 1, passes, len(runs[-1]), time.monotonic() - t1))
    rows = []
    for x in files:
        got = [r[x["file"]] for r in runs if x["file"] in r]
        if not got:
            continue
        us = [g["us"] for g in got if g["us"] is not None]
        rows.append({"file": x["file"], "set": x["set"], "size": x["size"],
                     "us": statistics.median(us) if us else None,
                     "rtt_us": statistics.median(g["rtt_us"] for g in got),
                     "skipped": any(g["skipped"] for g in got)})
    with open(out, "w") as f:
        json.dump({"scanner": "rspamd", "passes": int(passes), "wall_s": round(time.monotonic() - t0, 3),
                   "results": rows}, f)
    return 0 if rows else 1


# ---------------------------------------------------------------- report --

def stats(rows, key="us"):
    xs = [r[key] for r in rows if r.get(key) is not None]
    if not xs:
        return None
    per10 = [r[key] * KB10 / r["size"] for r in rows if r.get(key) is not None and r["size"] > 0]
    mid = [r[key] for r in rows if r.get(key) is not None and 8 * 1024 <= r["size"] <= 12 * 1024]
    tot_us = sum(xs)
    tot_b = sum(r["size"] for r in rows if r.get(key) is not None)
    return {
        "n": len(xs),
        "median_us": statistics.median(xs),
        "p90_us": L.pctl(xs, 90),
        "p99_us": L.pctl(xs, 99),
        "max_us": max(xs),
        "mean_us": tot_us / len(xs),
        "median_us_per_10kb": statistics.median(per10) if per10 else None,
        "total_us_per_10kb": tot_us * KB10 / tot_b if tot_b else None,
        "n_8_12kb": len(mid),
        "median_us_8_12kb": statistics.median(mid) if mid else None,
        "msgs_per_s_one_core": 1e6 / (tot_us / len(xs)),
    }


def cmd_report(argv):
    work, mp_json, rs_json, out = argv[:4]
    files = load_files(work)
    docs = {}
    for name, path in (("moonpost", mp_json), ("rspamd", rs_json)):
        try:
            with open(path) as f:
                docs[name] = json.load(f)
        except (OSError, ValueError):
            docs[name] = None
    sets = []
    for x in files:
        if x["set"] not in sets:
            sets.append(x["set"])
    sizes = [x["size"] for x in files]
    summary = {"corpus": {"sets": sets, "messages": len(files),
                          "median_size": statistics.median(sizes) if sizes else None,
                          "mean_size": statistics.mean(sizes) if sizes else None}}
    groups = [("all", None)] + [(s, s) for s in sets]
    for name, doc in docs.items():
        if not doc:
            continue
        rows = doc["results"]
        summary[name] = {g: stats([r for r in rows if s is None or r["set"] == s]) for g, s in groups}
        if name == "moonpost":
            summary[name + "_first"] = {g: stats([r for r in rows if s is None or r["set"] == s], "first_us")
                                        for g, s in groups}
        if name == "rspamd":
            summary[name + "_rtt"] = {g: stats([r for r in rows if s is None or r["set"] == s], "rtt_us")
                                      for g, s in groups}
        summary[name]["meta"] = {k: doc.get(k) for k in ("repeat", "passes", "wall_s", "failures")}

    mp, rs, rt = summary.get("moonpost"), summary.get("rspamd"), summary.get("rspamd_rtt")
    print("Rule evaluation time per message: SpamAssassin public corpus %s, %d messages, "
          "median %.1f KB, mean %.1f KB" % (" + ".join(sets), len(files),
                                            (summary["corpus"]["median_size"] or 0) / 1024,
                                            (summary["corpus"]["mean_size"] or 0) / 1024))
    if mp:
        print("moonpost: default rules (rules/), `moonpost rules test --json --repeat %s`: per message the "
              "median of %s scans of fresh copies after a first one, in-process" % (
                  mp["meta"]["repeat"], mp["meta"]["repeat"]))
    if rs:
        print("rspamd 3.4 (anchor, stock Debian rules, no greylisting, DNS -> NXDOMAIN stub, client IP 127.0.0.1 "
              "as behind the milter): own time_real per scan via /checkv2, sequential, median of %s passes; "
              "'rtt' = as seen by the client" % rs["meta"]["passes"])
    print()

    def f(v, nd=1):
        return L.fmt(v, nd) if v is not None else "-"

    def ratio(a, b):
        return f(a / b, 1) if a and b else "-"

    metrics = [("median us/msg", "median_us"), ("p90 us/msg", "p90_us"), ("p99 us/msg", "p99_us"),
               ("mean us/msg", "mean_us"), ("median us per 10 KB (time x 10 KB / size)", "median_us_per_10kb"),
               ("total time per 10 KB of corpus, us", "total_us_per_10kb"),
               ("median us/msg, messages of 8-12 KB", "median_us_8_12kb"),
               ("msgs/s on one core (1 / mean)", "msgs_per_s_one_core")]
    for g, _ in groups:
        m = (mp or {}).get(g)
        r = (rs or {}).get(g)
        t = (rt or {}).get(g)
        print("[%s]%s" % (g, "" if not m else "  (%d msgs; %d of 8-12 KB)" % (m["n"], m["n_8_12kb"])))
        rows = []
        for label, k in metrics:
            rows.append([label, f((m or {}).get(k)), f((r or {}).get(k)), f((t or {}).get(k)),
                         ratio((r or {}).get(k), (m or {}).get(k)) if k != "msgs_per_s_one_core"
                         else ratio((m or {}).get(k), (r or {}).get(k))])
        fm = (summary.get("moonpost_first") or {}).get(g) or {}
        rows.append(["first scan of each message (cold): median us", f(fm.get("median_us")), "-", "-",
                     ratio((r or {}).get("median_us"), fm.get("median_us"))])
        rows.append(["first scan of each message (cold): p99 us", f(fm.get("p99_us")), "-", "-",
                     ratio((r or {}).get("p99_us"), fm.get("p99_us"))])
        L.table(["", "moonpost", "rspamd", "rspamd rtt", "rspamd/moonpost"], rows)
        print()
    ok = True
    if mp and mp["all"]:
        v = mp["all"]["median_us_per_10kb"]
        ok = v is not None and v < TARGET_US_PER_10KB
        print("target: moonpost median < %.0f us per 10 KB message: %s us -> %s" % (
            TARGET_US_PER_10KB, f(v), "met" if ok else "MISSED"))
        v2 = mp["all"]["median_us_8_12kb"]
        if v2 is not None:
            print("        (messages of 8-12 KB: median %s us -> %s)" % (
                f(v2), "met" if v2 < TARGET_US_PER_10KB else "MISSED"))
    else:
        print("moonpost: no results")
        ok = False
    if not rs:
        print("rspamd: no results")
        ok = False
    summary["target_us_per_10kb"] = TARGET_US_PER_10KB
    summary["target_met"] = ok
    with open(out, "w") as fh:
        json.dump(summary, fh, indent=1)
    print("raw numbers: %s (per message: %s, %s)" % (out, mp_json, rs_json))
    return 0 if ok else 1


def main():
    cmds = {"prepare": cmd_prepare, "moonpost": cmd_moonpost, "rspamd": cmd_rspamd, "report": cmd_report}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        print(__doc__, file=sys.stderr)
        return 2
    return cmds[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
