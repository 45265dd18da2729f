#!/usr/bin/env python3
"""Helper for bench/smtp-rules.sh (stdlib only).

  smtp_rules.py message ROOT OUT.eml [BYTES]
      Writes the test message: a multipart/alternative newsletter-style ham
      of about BYTES (default 10240) bytes, text/plain + quoted-printable
      text/html with links, Received/Date/Message-ID/From/To/Subject, its
      words taken from the SpamAssassin corpus' easy-ham-1 set (the timing
      set, see rules-eval.sh) in a fixed order, so every run sends the same
      bytes. LF line ends (smtp-source -F adds the CR).

  smtp_rules.py report RESULTS.jsonl OUT.json
      Median (and range) over the rounds of each side (lines written by
      smtp_inbound.py run), the ratios against the targets, the table.
"""
import glob
import json
import os
import quopri
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib_corpus as LC  # noqa: E402
import smtp_inbound as SI  # noqa: E402

TARGET_RULES_ON_OFF = 0.80
TARGET_VS_ANCHOR = 5.0


def corpus_paragraphs(root, want):
    """Plain-text paragraphs of easy-ham-1 bodies (no quotes, no
    signatures, printable ASCII), in file name order, until `want` bytes."""
    out, have = [], 0
    files = sorted(glob.glob(os.path.join(LC.corpus_data(root), "easy-ham-1", "*.txt")))
    for f in files:
        with open(f, "rb") as fh:
            data = fh.read().decode("latin-1")
        head, _, body = data.partition("\n\n")
        if "content-type: text/plain" not in head.lower() and "content-type:" in head.lower():
            continue
        for para in body.split("\n\n"):
            lines = [ln.rstrip() for ln in para.splitlines()]
            if not lines or any(ln.startswith((">", "--", "_", "http", "URL:")) or len(ln) > 78 for ln in lines):
                continue
            text = " ".join(ln.strip() for ln in lines)
            if len(text) < 120 or "@" in text or not all(32 <= ord(c) < 127 for c in text):
                continue
            out.append(text)
            have += len(text)
            if have >= want:
                return out
    return out


def wrap(text, width=72):
    words, lines, cur = text.split(), [], ""
    for w in words:
        if cur and len(cur) + 1 + len(w) > width:
            lines.append(cur)
            cur = w
        else:
            cur = (cur + " " + w) if cur else w
    if cur:
        lines.append(cur)
    return "\n".join(lines)


def html_escape(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def build(paras):
    links = ["https://www.example.com/news/2026/issue-%d" % i for i in range(1, 6)]
    text = ["Hello John,", ""]
    html = ['<html><head><meta http-equiv="Content-Type" content="text/html; charset=us-ascii">',
            "<title>Weekly digest</title></head>",
            '<body style="font-family: Arial, sans-serif; color: #333333">',
            "<p>Hello John,</p>"]
    for i, p in enumerate(paras):
        text.append(wrap(p))
        text.append("")
        h = html_escape(p)
        if i < len(links):
            text.append("Read more: %s" % links[i])
            text.append("")
            h += ' <a href="%s">Read more</a>' % links[i]
        html.append('<p style="margin: 0 0 12px 0">%s</p>' % h)
    text += ["Best regards,", "The example.com team"]
    html += ["<p>Best regards,<br>The example.com team</p>",
             '<p style="font-size: 11px; color: #888888">You get this digest because you subscribed at '
             '<a href="https://www.example.com/account">example.com</a>.</p></body></html>']
    qp = quopri.encodestring("\n".join(html).encode("ascii")).decode("ascii")
    b = "=_moonpost_bench_boundary_0001"
    head = "\n".join([
        "Received: from mail.example.com (mail.example.com [198.51.100.25])",
        "\tby mx.example.net with ESMTPS id 4Q1bX2y3zKz1xyz",
        "\tfor <john@example.org>; Tue, 24 Nov 2026 09:59:58 +0000 (UTC)",
        "Received: from app01.internal.example.com (app01.internal.example.com [10.1.2.3])",
        "\tby mail.example.com with ESMTP id 1a2b3c4d5e",
        "\tfor <john@example.org>; Tue, 24 Nov 2026 09:59:57 +0000",
        "Date: Tue, 24 Nov 2026 09:59:57 +0000",
        "From: Example News <news@example.com>",
        "To: John <john@example.org>",
        "Subject: Your weekly digest: notes from the community",
        "Message-ID: <20261124095957.1a2b3c4d5e@mail.example.com>",
        "MIME-Version: 1.0",
        'Content-Type: multipart/alternative; boundary="%s"' % b,
    ])
    return "\n".join([
        head, "", "This is a multi-part message in MIME format.", "",
        "--" + b, "Content-Type: text/plain; charset=us-ascii", "Content-Transfer-Encoding: 7bit", "",
        "\n".join(text), "",
        "--" + b, "Content-Type: text/html; charset=us-ascii", "Content-Transfer-Encoding: quoted-printable", "",
        qp.rstrip("\n"), "",
        "--" + b + "--", "",
    ])


def cmd_message(argv):
    root, out = argv[0], argv[1]
    want = int(argv[2]) if len(argv) > 2 else 10240
    paras = corpus_paragraphs(root, want)
    if not paras:
        raise SystemExit("no usable paragraphs in the corpus (easy-ham-1)")
    # grow or shrink the paragraph list to land near the wanted size
    n = 1
    while n < len(paras) and len(build(paras[:n + 1])) <= want:
        n += 1
    msg = build(paras[:n])
    with open(out, "w") as f:
        f.write(msg)
    print(len(msg))
    return 0


def cmd_report(argv):
    results, out_json = argv[:2]
    meta, runs = {}, []
    with open(results) as f:
        for ln in f:
            ln = ln.strip()
            if not ln:
                continue
            o = json.loads(ln)
            if o.get("kind") == "meta":
                meta.update(o)
            elif "side" in o:
                runs.append(o)
    sides = [("anchor", "anchor: Postfix + rspamd milter + Dovecot LMTP"),
             ("rules", "moonpost, rules on (rules/)"),
             ("norules", "moonpost, rules off (empty rules dir)")]
    summary = {}
    for side, _ in sides:
        rs = [r for r in runs if r["side"] == side]
        good = [r for r in rs if r.get("ok")]
        summary[side] = {
            "runs": len(rs), "complete": len(good),
            "delivered_per_s": SI.med([r.get("delivered_per_s") for r in good]),
            "machine_cpu_ms_per_msg": SI.med([r.get("machine_cpu_ms_per_msg") for r in good]),
            "server_cpu_ms_per_msg": SI.med([r.get("server_cpu_ms_per_msg") for r in good]),
            "client_cpu_ms_per_msg": SI.med([r.get("client_cpu_ms_per_msg") for r in good]),
            "machine_cpu_busy_pct": SI.med([r.get("machine_cpu_busy_pct") for r in good]),
            "idle_check_busy_pct": SI.med([r.get("idle_check_busy_pct") for r in rs]),
        }
        names = sorted({k for r in good for k, v in (r.get("proc") or {}).items() if v})
        summary[side]["proc_cpu_ms_per_msg"] = {
            k: SI.med([(r["proc"].get(k) or {}).get("cpu_ms_per_msg") for r in good]) for k in names}

    def v(side, key):
        return summary[side][key][0]

    def ratio(a, b, key="delivered_per_s"):
        x, y = v(a, key), v(b, key)
        return x / y if x and y else None

    r_onoff = ratio("rules", "norules")
    r_anchor = ratio("rules", "anchor")
    r_anchor_off = ratio("norules", "anchor")
    print("SMTP end to end with spam rules: %s msgs x the same %s-byte message (%s), %s sessions, "
          "1 msg/connection, to one mailbox, until every file is on disk"
          % (meta.get("n"), meta.get("msg_bytes"), meta.get("msg_desc"), meta.get("sessions")))
    print("median of %s round(s) (min-max), sides alternating; machine: %s CPUs; moonpost workers: %s"
          % (meta.get("rounds"), SI.NCPU, meta.get("moonpost_workers")))
    print()
    w0, wc = 44, 22
    print("".ljust(w0) + "".join(s.rjust(wc) for s in ("msg/s delivered", "CPU-ms/msg machine", "CPU-ms/msg server")))
    for side, label in sides:
        s = summary[side]
        print(label.ljust(w0) + SI.cell(s["delivered_per_s"]).rjust(wc) +
              SI.cell(s["machine_cpu_ms_per_msg"], 2).rjust(wc) + SI.cell(s["server_cpu_ms_per_msg"], 2).rjust(wc))
    print()
    print("ratio rules on / rules off (target >= %.2f)".ljust(w0) % TARGET_RULES_ON_OFF + SI.fmt(r_onoff, 2).rjust(wc))
    print("ratio rules on / anchor (target >= %.0f)".ljust(w0) % TARGET_VS_ANCHOR + SI.fmt(r_anchor, 2).rjust(wc))
    print("ratio rules off / anchor".ljust(w0) + SI.fmt(r_anchor_off, 2).rjust(wc))
    print()
    print("breakdown, CPU-ms per message (median):")
    for side, label in sides:
        parts = ", ".join("%s %s" % (k, SI.cell(m, 2)) for k, m in summary[side]["proc_cpu_ms_per_msg"].items())
        print("  %-9s %s; client %s; machine busy %s %%" % (
            side, parts or "-", SI.cell(summary[side]["client_cpu_ms_per_msg"], 2),
            SI.cell(summary[side]["machine_cpu_busy_pct"])))
    bad = [r for r in runs if not r.get("ok")]
    for r in bad:
        print("INCOMPLETE: %s round %s: delivered %s of %s, smtp-source rc %s: %s"
              % (r["side"], r["round"], r.get("delivered"), r.get("n"), r.get("smtp_source_rc"),
                 (r.get("smtp_source_stderr") or "")[-200:]))

    def js(s):
        o = {}
        for k, x in s.items():
            if isinstance(x, tuple):
                o[k] = {"median": x[0], "min": x[1], "max": x[2]}
            elif isinstance(x, dict):
                o[k] = js(x)
            else:
                o[k] = x
        return o

    ok = not bad and r_onoff is not None and r_anchor is not None
    met = ok and r_onoff >= TARGET_RULES_ON_OFF and r_anchor >= TARGET_VS_ANCHOR
    doc = {"meta": meta, "summary": {k: js(s) for k, s in summary.items()},
           "ratios": {"rules_on_over_off": r_onoff, "rules_on_over_anchor": r_anchor,
                      "rules_off_over_anchor": r_anchor_off},
           "targets": {"rules_on_over_off_min": TARGET_RULES_ON_OFF, "rules_on_over_anchor_min": TARGET_VS_ANCHOR},
           "targets_met": met, "runs": runs}
    os.makedirs(os.path.dirname(os.path.abspath(out_json)), exist_ok=True)
    with open(out_json, "w") as f:
        json.dump(doc, f, indent=1)
    print()
    print("targets: %s" % ("met" if met else "MISSED" if ok else "not measured (incomplete runs)"))
    print("raw numbers: %s" % out_json)
    return 0 if met else 1


def main():
    cmds = {"message": cmd_message, "report": cmd_report}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        print(__doc__, file=sys.stderr)
        return 2
    return cmds[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
