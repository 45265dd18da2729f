#!/usr/bin/env python3
"""Helper for bench/smtp-inbound.sh (stdlib only).

  smtp_inbound.py run RESULTS.jsonl SIDE LABEL ROUND PIDSPEC -- SMTP_BENCH_CMD...
      Runs the anchor's tools/smtp_bench.py (smtp-source + Maildir poller)
      as a child and adds to its JSON line:
        - machine-wide CPU (/proc/stat, all CPUs, busy = not idle/iowait)
          over the child's whole life, in ms per message;
        - CPU of the server's process trees (PIDSPEC: "name=PID,name=PID";
          each tree = the live processes under PID, utime+stime+cutime+
          cstime, so workers that exit and are reaped by their parent are
          still counted, and threads are included);
        - CPU of the client: smtp_bench.py itself (the Maildir poller) plus
          smtp-source (its reaped child), from wait4()'s rusage;
        - load average before the run.
      Appends the merged object to RESULTS.jsonl and prints it.

  smtp_inbound.py maildir-ceiling DIR THREADS SECONDS [BYTES]
      The disk's rate for the Maildir delivery syscalls alone (no SMTP).

  smtp_inbound.py quiet MAX_PCT TIMEOUT_S
      Waits until the machine is idle enough (1 s samples of /proc/stat).

  smtp_inbound.py report RESULTS.jsonl OUT.json
      Median (and range) over the rounds per side and mode; prints the table
      and writes OUT.json.
"""
import json
import os
import statistics
import subprocess
import sys
import time

HZ = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1


def stat_cpu():
    """(total jiffies, idle+iowait jiffies) over all CPUs."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v[:8]), v[3] + v[4]   # user..steal; guest is inside user


def proc_table():
    """pid -> (ppid, utime+stime+cutime+cstime in ticks) for every process."""
    t = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                s = f.read()
        except OSError:
            continue
        rest = s[s.rindex(")") + 2:].split()
        # rest[0] = state (field 3); utime = field 14 -> rest[11]
        ppid = int(rest[1])
        ticks = int(rest[11]) + int(rest[12]) + int(rest[13]) + int(rest[14])
        t[int(d)] = (ppid, ticks)
    return t


def tree_ticks(table, root):
    if root not in table:
        return None
    kids = {}
    for pid, (ppid, _) in table.items():
        kids.setdefault(ppid, []).append(pid)
    total, todo = 0, [root]
    while todo:
        p = todo.pop()
        total += table[p][1]
        todo.extend(kids.get(p, ()))
    return total


def trees(spec):
    out = {}
    for item in filter(None, spec.split(",")):
        name, pid = item.split("=")
        out[name] = int(pid) if pid else 0
    return out


def cmd_run(argv):
    results, side, label, rnd, spec = argv[:5]
    assert argv[5] == "--"
    cmd = argv[6:]
    roots = trees(spec)
    load = os.getloadavg()
    # How busy the machine is with nothing of ours running: 1 s sample
    # (the load average is no use here: our own threads blocked in fsync
    # count in it, and it decays over minutes).
    q0 = stat_cpu()
    time.sleep(1.0)
    q1 = stat_cpu()
    pre_busy = 100.0 * (1 - (q1[1] - q0[1]) / ((q1[0] - q0[0]) or 1))
    t0 = stat_cpu()
    p0 = proc_table()
    before = {n: tree_ticks(p0, pid) for n, pid in roots.items()}
    w0 = time.monotonic()
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    out = child.stdout.read()
    _, status, ru = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - w0
    t1 = stat_cpu()
    p1 = proc_table()
    after = {n: tree_ticks(p1, pid) for n, pid in roots.items()}
    try:
        r = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        r = {"error": "smtp_bench.py printed no JSON", "stdout": out[-500:]}
    n = r.get("n") or 1
    ok = child.returncode == 0 and r.get("delivered", 0) >= n
    busy_ms = ((t1[0] - t0[0]) - (t1[1] - t0[1])) * 1000.0 / HZ
    r.update({
        "side": side, "label": label, "round": int(rnd), "ok": ok,
        "loadavg_before": [round(x, 2) for x in load],
        "idle_check_busy_pct": round(pre_busy, 1),
        "wall_s": round(wall, 3),
        "machine_busy_ms": round(busy_ms, 1),
        # Machine-wide CPU over the child's whole life (smtp-source start to
        # the poller's last scan) per message; the anchor tool's own figure
        # (machine_cpu_ms_per_msg) uses the time until the last file only.
        "machine_cpu_ms_per_msg_wall": round(busy_ms / n, 3),
        "client_cpu_ms": round((ru.ru_utime + ru.ru_stime) * 1000.0, 1),
        "client_cpu_ms_per_msg": round((ru.ru_utime + ru.ru_stime) * 1000.0 / n, 3),
        "client_maxrss_kb": ru.ru_maxrss,
    })
    proc = {}
    for name in roots:
        if before[name] is None or after[name] is None:
            proc[name] = None
            continue
        ms = (after[name] - before[name]) * 1000.0 / HZ
        proc[name] = {"cpu_ms": round(ms, 1), "cpu_ms_per_msg": round(ms / n, 3)}
    r["proc"] = proc
    servers = [v["cpu_ms"] for k, v in proc.items() if v]
    r["server_cpu_ms_per_msg"] = round(sum(servers) / n, 3)
    # Everything else the machine did meanwhile: kernel threads (jbd2,
    # kworkers, softirq), and any neighbour.
    r["other_cpu_ms_per_msg"] = round((busy_ms - sum(servers) - r["client_cpu_ms"]) / n, 3)
    line = json.dumps(r)
    with open(results, "a") as f:
        f.write(line + "\n")
    print(line)
    return 0 if ok else 1


def cmd_quiet(argv):
    """quiet MAX_PCT TIMEOUT_S: waits until one second of machine CPU is
    below MAX_PCT busy; prints the last sample; exit 1 on timeout."""
    limit, timeout = float(argv[0]), float(argv[1])
    end = time.monotonic() + timeout
    while True:
        a = stat_cpu()
        time.sleep(1.0)
        b = stat_cpu()
        busy = 100.0 * (1 - (b[1] - a[1]) / ((b[0] - a[0]) or 1))
        if busy <= limit or time.monotonic() >= end:
            print("%.1f" % busy)
            return 0 if busy <= limit else 1


def cmd_maildir_ceiling(argv):
    """maildir-ceiling DIR THREADS SECONDS [BYTES]: the disk's rate for the
    durable Maildir delivery pattern alone, no SMTP: each thread loops
    create tmp/F (O_EXCL) + write BYTES + fdatasync + close, rename to
    new/F, open + fsync + close new/ (what maildir_deliver() does). All
    threads share one Maildir, as the benchmark's one recipient. Prints
    JSON; the files are left in place (deleting them would slow the next
    creates on a journal-less ext4, see smtp-inbound.sh)."""
    import threading
    root, nthreads, secs = argv[0], int(argv[1]), float(argv[2])
    size = int(argv[3]) if len(argv) > 3 else 4400
    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    buf = b"X" * size
    counts = [0] * nthreads
    lat = [[] for _ in range(nthreads)]
    start = threading.Barrier(nthreads + 1)
    deadline = [0.0]

    def worker(k):
        start.wait()
        i = 0
        while time.monotonic() < deadline[0]:
            a = time.monotonic()
            name = "t%d.%d" % (k, i)
            tmp = os.path.join(root, "tmp", name)
            fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o600)
            os.write(fd, buf)
            os.fdatasync(fd)
            os.close(fd)
            os.rename(tmp, os.path.join(root, "new", name))
            dfd = os.open(os.path.join(root, "new"), os.O_RDONLY | os.O_DIRECTORY)
            os.fsync(dfd)
            os.close(dfd)
            lat[k].append(time.monotonic() - a)
            i += 1
        counts[k] = i

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(nthreads)]
    for t in ts:
        t.start()
    os.sync()
    time.sleep(1.0)
    t0 = time.monotonic()
    deadline[0] = t0 + secs
    start.wait()
    for t in ts:
        t.join()
    el = time.monotonic() - t0
    all_lat = sorted(x for l in lat for x in l)
    n = sum(counts)
    out = {"threads": nthreads, "seconds": round(el, 3), "deliveries": n,
           "per_s": round(n / el, 1) if el else None,
           "lat_p50_ms": round(all_lat[len(all_lat) // 2] * 1000, 3) if all_lat else None,
           "lat_p99_ms": round(all_lat[int(len(all_lat) * 0.99)] * 1000, 3) if all_lat else None}
    print(json.dumps(out))
    return 0


def med(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None, None, None
    return statistics.median(xs), min(xs), max(xs)


def fmt(v, nd=1):
    if v is None:
        return "-"
    if abs(v) >= 100:
        return "{:,.0f}".format(v)
    return "{:.{}f}".format(v, nd)


def cell(m, nd=1):
    v, lo, hi = m
    if v is None:
        return "-"
    if lo == hi:
        return fmt(v, nd)
    return "%s (%s-%s)" % (fmt(v, nd), fmt(lo, nd), fmt(hi, nd))


def cmd_report(argv):
    results, out_json = argv[:2]
    meta, fsync, runs, ceil = {}, None, [], {}
    with open(results) as f:
        for ln in f:
            ln = ln.strip()
            if not ln:
                continue
            o = json.loads(ln)
            k = o.get("kind")
            if k == "meta":
                meta.update(o)
            elif k == "fsync":
                fsync = o
            elif k == "ceiling":
                ceil[o["threads"]] = o
            elif "side" in o:
                runs.append(o)
    modes = [m for m in ("plain", "keepalive") if any(r["label"] == m for r in runs)]
    summary = {}
    for m in modes:
        for side in ("anchor", "moonpost"):
            rs = [r for r in runs if r["label"] == m and r["side"] == side]
            good = [r for r in rs if r.get("ok")]
            s = {
                "runs": len(rs), "complete": len(good),
                "delivered_per_s": med([r.get("delivered_per_s") for r in good]),
                "accepted_per_s": med([r.get("accepted_per_s") for r in good]),
                "machine_cpu_ms_per_msg": med([r.get("machine_cpu_ms_per_msg") for r in good]),
                "machine_cpu_ms_per_msg_wall": med([r.get("machine_cpu_ms_per_msg_wall") for r in good]),
                "machine_cpu_busy_pct": med([r.get("machine_cpu_busy_pct") for r in good]),
                "server_cpu_ms_per_msg": med([r.get("server_cpu_ms_per_msg") for r in good]),
                "client_cpu_ms_per_msg": med([r.get("client_cpu_ms_per_msg") for r in good]),
                "other_cpu_ms_per_msg": med([r.get("other_cpu_ms_per_msg") for r in good]),
                "idle_check_busy_pct": med([r.get("idle_check_busy_pct") for r in rs]),
                "load1_before": med([r["loadavg_before"][0] for r in rs]),
            }
            names = sorted({k for r in good for k, v in (r.get("proc") or {}).items() if v})
            s["proc_cpu_ms_per_msg"] = {
                k: med([(r["proc"].get(k) or {}).get("cpu_ms_per_msg") for r in good]) for k in names}
            if side == "anchor":
                s["queue_delay_p50_s"] = med([r.get("queue_delay_p50_s") for r in good])
            summary[(m, side)] = s

    def ratio(m, key):
        a = summary[(m, "anchor")][key][0]
        b = summary[(m, "moonpost")][key][0]
        return b / a if a and b else None

    title = {"plain": "1 msg/connection", "keepalive": "smtp-source -d"}
    cols = modes
    w0 = 44
    wc = 26

    def row(name, vals):
        print(name.ljust(w0) + "".join(v.rjust(wc) for v in vals))

    print("SMTP inbound, %s msgs x %s B body, %s sessions, to one mailbox, until every file is on disk"
          % (meta.get("n"), meta.get("msglen"), meta.get("sessions")))
    print("median of %s round(s), (min-max); machine: %s CPUs; CPU busy in the 1 s before each run: %s %%"
          % (meta.get("rounds"), NCPU, cell(med([r.get("idle_check_busy_pct") for r in runs]))))
    print("load average at start %s, at end %s (our own threads blocked in fsync count in it)"
          % (meta.get("loadavg_start"), meta.get("loadavg_end")))
    print()
    row("", [title[m] for m in cols])
    if fsync:
        v = fsync.get("newfile_fsync_per_s")
        row("disk: new 4 KiB file + fsync /s, 1 writer",
            ["%s (%s-%s)" % (fmt(v), fmt(fsync.get("newfile_fsync_per_s_min")),
                             fmt(fsync.get("newfile_fsync_per_s_max")))] + [""] * (len(cols) - 1))
    for t in sorted(ceil):
        c = ceil[t]
        row("disk: Maildir delivery syscalls /s, %d wr." % t,
            ["%s (p50 %s ms)" % (fmt(c.get("per_s")), fmt(c.get("lat_p50_ms"), 2))] + [""] * (len(cols) - 1))
    row("anchor msg/s (delivered)", [cell(summary[(m, "anchor")]["delivered_per_s"]) for m in cols])
    row("moonpost msg/s (delivered)", [cell(summary[(m, "moonpost")]["delivered_per_s"]) for m in cols])
    row("ratio moonpost/anchor (target >= 3)", [fmt(ratio(m, "delivered_per_s"), 2) for m in cols])
    row("anchor CPU-ms/msg (machine)", [cell(summary[(m, "anchor")]["machine_cpu_ms_per_msg"], 2) for m in cols])
    row("moonpost CPU-ms/msg (machine)", [cell(summary[(m, "moonpost")]["machine_cpu_ms_per_msg"], 2) for m in cols])
    row("ratio moonpost/anchor (target <= 0.20)", [fmt(ratio(m, "machine_cpu_ms_per_msg"), 2) for m in cols])
    print()
    print("breakdown, CPU-ms per message (median):")
    row("anchor: machine busy %", [cell(summary[(m, "anchor")]["machine_cpu_busy_pct"]) for m in cols])
    row("anchor: servers (postfix+dovecot+mariadb)", [cell(summary[(m, "anchor")]["server_cpu_ms_per_msg"], 2) for m in cols])
    for k in sorted({k for m in cols for k in summary[(m, "anchor")]["proc_cpu_ms_per_msg"]}):
        row("  " + k, [cell(summary[(m, "anchor")]["proc_cpu_ms_per_msg"].get(k, (None,) * 3), 2) for m in cols])
    row("anchor: client (smtp-source + poller)", [cell(summary[(m, "anchor")]["client_cpu_ms_per_msg"], 2) for m in cols])
    row("anchor: other (kernel threads, neighbours)", [cell(summary[(m, "anchor")]["other_cpu_ms_per_msg"], 2) for m in cols])
    row("moonpost: machine busy %", [cell(summary[(m, "moonpost")]["machine_cpu_busy_pct"]) for m in cols])
    row("moonpost: servers (moonpostd+mariadb)", [cell(summary[(m, "moonpost")]["server_cpu_ms_per_msg"], 2) for m in cols])
    for k in sorted({k for m in cols for k in summary[(m, "moonpost")]["proc_cpu_ms_per_msg"]}):
        row("  " + k, [cell(summary[(m, "moonpost")]["proc_cpu_ms_per_msg"].get(k, (None,) * 3), 2) for m in cols])
    row("moonpost: client (smtp-source + poller)", [cell(summary[(m, "moonpost")]["client_cpu_ms_per_msg"], 2) for m in cols])
    row("moonpost: other (kernel threads, neighbours)", [cell(summary[(m, "moonpost")]["other_cpu_ms_per_msg"], 2) for m in cols])
    row("ratio moonpostd / anchor servers", [
        fmt((summary[(m, "moonpost")]["proc_cpu_ms_per_msg"].get("moonpostd", (None,))[0] or 0) /
            summary[(m, "anchor")]["server_cpu_ms_per_msg"][0], 2)
        if summary[(m, "anchor")]["server_cpu_ms_per_msg"][0] else "-" for m in cols])
    if any(summary[(m, "anchor")].get("queue_delay_p50_s", (None,))[0] for m in cols):
        row("anchor: Postfix queue delay p50 s", [cell(summary[(m, "anchor")]["queue_delay_p50_s"], 2) for m in cols])
    bad = [r for r in runs if not r.get("ok")]
    if bad:
        print()
        for r in bad:
            print("INCOMPLETE: %s %s round %s: delivered %s of %s, smtp-source rc %s: %s"
                  % (r["side"], r["label"], r["round"], r.get("delivered"), r.get("n"),
                     r.get("smtp_source_rc"), (r.get("smtp_source_stderr") or "")[-200:]))

    def js(s):
        o = {}
        for k, v in s.items():
            if isinstance(v, tuple):
                o[k] = {"median": v[0], "min": v[1], "max": v[2]}
            elif isinstance(v, dict):
                o[k] = js(v)
            else:
                o[k] = v
        return o

    doc = {
        "meta": meta, "fsync": fsync, "maildir_ceiling": [ceil[t] for t in sorted(ceil)],
        "summary": {m: {side: js(summary[(m, side)]) for side in ("anchor", "moonpost")} for m in modes},
        "ratios": {m: {"msgs_per_s": ratio(m, "delivered_per_s"),
                       "machine_cpu_ms_per_msg": ratio(m, "machine_cpu_ms_per_msg")} for m in modes},
        "targets": {"msgs_per_s_ratio_min": 3.0, "cpu_ratio_max": 0.2},
        "runs": runs,
    }
    os.makedirs(os.path.dirname(os.path.abspath(out_json)), exist_ok=True)
    with open(out_json, "w") as f:
        json.dump(doc, f, indent=1)
    print()
    print("raw numbers: %s" % out_json)
    return 0 if not bad else 1


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    if sys.argv[1] == "run":
        return cmd_run(sys.argv[2:])
    if sys.argv[1] == "maildir-ceiling":
        return cmd_maildir_ceiling(sys.argv[2:])
    if sys.argv[1] == "quiet":
        return cmd_quiet(sys.argv[2:])
    if sys.argv[1] == "report":
        return cmd_report(sys.argv[2:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
