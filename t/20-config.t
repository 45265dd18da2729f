#!/usr/bin/env python3
# `moonpostd -t -c FILE`: good configs pass; every kind of mistake fails with
# exit 1 and `FILE:LINE: message`, LINE being the line of the offending key,
# so an admin can jump straight to it.
import os
import re
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

import mpd  # noqa: E402
import tap  # noqa: E402

mpd.require_binary()

MARK = "--!"  # a Lua comment: marks the line(s) an error must point at


def good(d, name, text):
    path = d.write_raw(text, os.path.join(d.dir, name + ".conf"))
    r = d.check(path)
    tap.is_(r.returncode, 0, "%s: -t exits 0" % name, "stderr: " + r.stderr)
    tap.like(r.stdout + r.stderr, r"moonpostd: configuration %s ok" % re.escape(path),
             "%s: -t says 'configuration FILE ok'" % name)


def bad(d, name, text):
    """Check that -t fails and reports exactly the lines marked with MARK."""
    path = d.write_raw(text, os.path.join(d.dir, name + ".conf"))
    want = [i + 1 for i, line in enumerate(text.splitlines()) if MARK in line]
    r = d.check(path)
    out = r.stdout + r.stderr
    tap.is_(r.returncode, 1, "%s: -t exits 1" % name, "output: " + out)
    for n in want:
        tap.like(r.stderr, r"^%s:%d: \S" % (re.escape(path), n),
                 "%s: error reported as FILE:%d: message" % (name, n))
    got = sorted({int(m) for m in re.findall(r"^%s:(\d+):" % re.escape(path),
                                             r.stderr, re.M)})
    tap.is_(got, want, "%s: no error at other lines" % name, "stderr: " + r.stderr)
    tap.unlike(out, r"configuration .* ok", "%s: does not claim ok" % name)
    return r


def config(d, top=(), listener=None, workers="2", extra_listener=()):
    """Config text with one multi-line listener; top/listener lines are
    inserted as given (listener lines go after `address`, i.e. at the 3rd
    line of the entry)."""
    lines = [
        '-- moonpost test config',
        'hostname = "mx.config.test"',
        'workers = %s' % workers,
        'state_dir = %s' % mpd.lua(d.state_dir),
        'tls = { cert = %s, key = %s }' % (mpd.lua(d.cert), mpd.lua(d.key)),
    ]
    lines += list(top)
    lines += ['listen = {', '  {', '    address = "127.0.0.1",']
    lines += list(listener or [])
    body = {"port": "    port = %d," % d.ports["smtp"],
            "protocol": '    protocol = "smtp",',
            "tls": '    tls = "starttls",'}
    for line in listener or []:
        key = line.split("=")[0].strip()
        body.pop(key, None)
    lines += list(body.values())
    lines += ['  },'] + list(extra_listener) + ['}']
    return "\n".join(lines) + "\n"


d = mpd.Daemon(start=False)
with d:
    with tap.section("good configs"):
        good(d, "harness-default", open(d.conf).read())
        full = """\
-- every key, defaults as documented
hostname = "mx.example.org"
user = ""
group = ""
workers = 0
state_dir = %(state)s
shutdown_timeout = 30
log = { level = "info", syslog = false }
tls = { cert = %(cert)s, key = %(key)s }
smtp = { line_max = 512, errors_max = 20, idle_timeout = 300 }
listen = {
  { address = "127.0.0.1", port = %(p1)d, protocol = "smtp", tls = "starttls" },
  { address = "127.0.0.1", port = %(p2)d, protocol = "submission", tls = "implicit" },
}
""" % {"state": mpd.lua(d.state_dir), "cert": mpd.lua(d.cert), "key": mpd.lua(d.key),
       "p1": d.ports["smtp"], "p2": d.ports["submission"]}
        good(d, "full-example", full)
        protos = ["smtp", "submission", "lmtp", "imap", "pop3", "managesieve"]
        tlses = ["starttls", "implicit", "none"]
        entries = "".join(
            '  { address = "127.0.0.1", port = %d, protocol = "%s", tls = "%s" },\n'
            % (mpd.free_port(), p, tlses[i % 3]) for i, p in enumerate(protos))
        good(d, "all-protocols", full.split("listen = {")[0] + "listen = {\n" + entries + "}\n")
        for lvl in ["debug", "info", "notice", "warn", "error"]:
            r = d.check(d.write_raw(full.replace('level = "info"', 'level = "%s"' % lvl),
                                    os.path.join(d.dir, "lvl.conf")))
            tap.is_(r.returncode, 0, "log level %s is accepted" % lvl, r.stderr)

    with tap.section("shipped config"):
        # conf/moonpost.conf as installed, with only what points outside the
        # test (certificate, rule dirs) reassigned after it, Lua-style.
        cert, key = mpd.make_cert(d.dir, name="shipped")
        text = open(os.path.join(mpd.REPO, "conf", "moonpost.conf")).read()
        text += "\n".join([
            "tls.cert = %s" % mpd.lua(cert), "tls.key = %s" % mpd.lua(key),
            "lua.rules_dir = %s" % mpd.lua(os.path.join(mpd.REPO, "rules")),
            "lua.policies_dir = %s" % mpd.lua(os.path.join(mpd.REPO, "policies")),
            "lua.lib_dir = %s" % mpd.lua(os.path.join(mpd.REPO, "lua")), ""])
        good(d, "conf-moonpost.conf", text)

    with tap.section("bad configs"):
        bad(d, "unknown-top-level-key", config(d, top=['colour = "blue" ' + MARK]))
        bad(d, "unknown-listener-key",
            config(d, listener=['    colour = "blue", ' + MARK]))
        bad(d, "port-wrong-type", config(d, listener=['    port = "abc", ' + MARK]))
        bad(d, "port-out-of-range", config(d, listener=['    port = 70000, ' + MARK]))
        bad(d, "workers-negative", config(d, workers="-1 " + MARK))
        bad(d, "protocol-enum", config(d, listener=['    protocol = "gopher", ' + MARK]))
        bad(d, "tls-enum", config(d, listener=['    tls = "maybe", ' + MARK]))
        bad(d, "log-level-enum", config(d, top=['log = { level = "loud" } ' + MARK]))
        bad(d, "smtp-line-max-type", config(d, top=['smtp = { line_max = "big" } ' + MARK]))
        bad(d, "second-listener-bad-port", config(d, extra_listener=[
            '  {',
            '    address = "127.0.0.1",',
            '    port = 99999, ' + MARK,
            '    protocol = "submission",',
            '  },']))
        bad(d, "lua-syntax-error", config(d, top=['shutdown_timeout = = 3 ' + MARK]))
        bad(d, "lua-unterminated-string", config(d, top=['hostname = "oops ' + MARK]))
        # The sandbox has no os/io/require: a config must not run anything.
        pwned = os.path.join(d.dir, "pwned")
        bad(d, "runtime-os-execute",
            config(d, top=['os.execute("touch %s") %s' % (pwned, MARK)]))
        tap.ok(not os.path.exists(pwned), "os.execute did not run")
        bad(d, "runtime-io-open",
            config(d, top=['local f = io.open("%s", "w") %s' % (pwned, MARK)]))
        tap.ok(not os.path.exists(pwned), "io.open did not run")
        bad(d, "runtime-require", config(d, top=['local m = require("os") ' + MARK]))
        r = bad(d, "two-errors", config(d, top=['colour = "blue" ' + MARK],
                                        listener=['    port = 70000, ' + MARK]))
        tap.is_(len([ln for ln in r.stderr.splitlines() if ln.startswith(d.dir)]), 2,
                "two-errors: each error on its own line", r.stderr)

    with tap.section("missing file"):
        missing = os.path.join(d.dir, "no-such.conf")
        r = d.check(missing)
        tap.is_(r.returncode, 1, "missing file: -t exits 1")
        tap.like(r.stderr, re.escape(missing), "missing file: message names the file")
        tap.like(r.stderr, r"(?i)no such file|not found|cannot|can't|unable|failed",
                 "missing file: message says why")
        tap.unlike(r.stdout + r.stderr, r"configuration .* ok", "missing file: not ok")

tap.done()
