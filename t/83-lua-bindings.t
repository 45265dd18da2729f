#!/usr/bin/env python3
# The Lua bindings and the loader, through `moonpost rules test` (no server):
#  - t/lua/rules/bindings.lua: cases written in Lua (ctx.msg headers,
#    addresses, dates, parts, text, urls, flags; env and conn; regex; dir;
#    the sandbox) over t/lua/*.eml, each case a T_<MESSAGE>_<WHAT> symbol that
#    must fire; a failing case raises with file:line, shown here;
#  - a rule that raises is listed with file:line and the scan goes on;
#  - what makes a set refuse to load, each with file:line in the message: a
#    syntax error, a forbidden library at load time, an endless loop at load
#    time (load budget), a failing test{}, a composite over an unknown
#    symbol, a duplicate rule name;
#  - an endless loop inside a rule is cut by the hook budget, the scan ends
#    and the other rules' results stand.
import json
import os
import re
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

import mpcli  # noqa: E402
import mpd  # noqa: E402
import tap  # noqa: E402

LUA_T = os.path.join(mpd.REPO, "t", "lua")
ENVELOPE = ["--from", "sender@bindings.test", "--rcpt", "bob@example.org",
            "--ip", "192.0.2.55", "--helo", "helo.bindings.test"]


class LuaWorkspace(mpcli.Workspace):
    """A CLI workspace whose config loads the repository's library and a
    rules dir of the test's choosing."""

    def __init__(self, rules_dir=None, budget=0.5, load_budget=10):
        self.rules_dir = rules_dir
        self.budget = budget
        self.load_budget = load_budget
        super().__init__("file", name="lua")

    def config_dict(self):
        cfg = super().config_dict()
        rules = self.rules_dir or os.path.join(self.dir, "rules")
        policies = os.path.join(self.dir, "policies")
        os.makedirs(rules, exist_ok=True)
        os.makedirs(policies, exist_ok=True)
        cfg["lua"] = {"lib_dir": os.path.join(mpd.REPO, "lua"), "rules_dir": rules,
                      "policies_dir": policies, "watch": False,
                      "budget": self.budget, "load_budget": self.load_budget}
        return cfg

    def write_rule(self, name, text):
        with open(os.path.join(self.dir, "rules", name), "w") as f:
            f.write(text)


def scan(ws, *files):
    r = ws.run("rules", "test", "--json", *ENVELOPE, *files, timeout=120)
    out = {}
    for line in r.out.splitlines():
        if line.startswith("{"):
            o = json.loads(line)
            out[os.path.basename(o["file"])] = o
    return r, out


def declared_cases():
    """T_ symbol names per message, read from bindings.lua."""
    with open(os.path.join(LUA_T, "rules", "bindings.lua")) as f:
        src = f.read()
    cases = {}
    for name, msg in re.findall(r'case\("(T_[A-Z0-9_]+)", "([a-z0-9]+)"', src):
        cases.setdefault(msg, []).append(name)
    return cases


def test_bindings():
    ws = LuaWorkspace(rules_dir=os.path.join(LUA_T, "rules"))
    cases = declared_cases()
    files = [os.path.join(LUA_T, m + ".eml") for m in sorted(cases)]
    r, res = scan(ws, *files)
    tap.is_(sorted(res), sorted(m + ".eml" for m in cases), "every message scanned", repr(r))
    for msg, names in sorted(cases.items()):
        o = res.get(msg + ".eml", {})
        errors = {e["rule"]: e["error"] for e in o.get("errors", [])}
        for name in names:
            tap.ok(name in o.get("symbols", {}), "%s: %s" % (msg, name),
                   errors.get(name, "did not fire"))
        unexpected = {k: v for k, v in errors.items() if k != "X_RAISES"}
        tap.is_(unexpected, {}, "%s: no case raised" % msg)
    full = res.get("full.eml", {})
    raised = [e for e in full.get("errors", []) if e["rule"] == "X_RAISES"]
    tap.ok(len(raised) == 1 and re.search(r"bindings\.lua:\d+: deliberate failure", raised[0]["error"]),
           "a rule that raises is listed with file:line", json.dumps(full.get("errors")))
    tap.ok("X_RAISES" not in full.get("symbols", {}), "and does not fire (its score is not added)")
    tap.is_(full.get("score"), 0, "the total has only the cases' zero scores")
    ws.check_sanitizers()


BAD_SETS = [
    ("syntax error", "ok.lua", 'rule{ name = "A", score = 1, check = function() return end }\n'
     "rule{ name = \"B\", score = 1, check = function( return true end }\n",
     r"rules/ok\.lua:2:"),
    ("io at load time", "evil.lua", '\nlocal f = io.open("/etc/passwd")\n', r"rules/evil\.lua:2:.*io"),
    ("os.execute at load time", "evil.lua", 'os.execute("touch /tmp/pwned-by-rule")\n',
     r"rules/evil\.lua:1:.*execute"),
    ("endless loop at load time", "loop.lua", "local x = 0\nwhile true do x = x + 1 end\n",
     r"rules/loop\.lua.*load budget"),
    ("failing self-test", "t.lua",
     'rule{ name = "SUBJ_X", score = 1, check = function(ctx) return ctx.msg.subject == "x" end }\n'
     'test{ name = "fires", message = "Subject: y\\n\\nbody\\n", expect = { "SUBJ_X" } }\n',
     r'rules/t\.lua:2: test "fires": SUBJ_X did not fire'),
    ("composite over an unknown symbol", "c.lua",
     'rule{ name = "A", score = 1, check = function() return true end }\n'
     'composite{ name = "C", expression = "A & !NOPE", score = 1 }\n',
     r"rules/c\.lua:2: composite C: unknown symbol NOPE"),
    ("duplicate rule name", "d.lua",
     'rule{ name = "A", score = 1, check = function() return true end }\n'
     'rule{ name = "A", score = 2, check = function() return true end }\n',
     r"rules/d\.lua:2:.*A"),
    ("rule without a check or a pattern", "e.lua", 'rule{ name = "E", score = 1 }\n',
     r"rules/e\.lua:1:"),
]


def test_refusals():
    msg = os.path.join(LUA_T, "broken.eml")
    for desc, fname, text, want in BAD_SETS:
        ws = LuaWorkspace(load_budget=1)
        ws.write_rule(fname, text)
        r = ws.run("rules", "test", msg, timeout=60)
        tap.ok(r.rc != 0 and re.search(want, r.err), "a set with a %s does not load" % desc,
               repr(r), "  want stderr matching %r" % want)
        ws.check_sanitizers()
        ws.cleanup()
    tap.ok(not os.path.exists("/tmp/pwned-by-rule"), "os.execute never ran")


def test_budget():
    ws = LuaWorkspace(budget=0.3)
    ws.write_rule("a.lua", 'rule{ name = "AA_FIRST", score = 1, check = function() return true end }\n')
    ws.write_rule("b.lua", 'rule{ name = "BB_LOOP", score = 1, check = function()\n'
                  '  local x = 0\n  while true do x = x + 1 end\nend }\n')
    ws.write_rule("c.lua", 'rule{ name = "CC_AFTER", score = 1, check = function()\n'
                  '  local s = 0\n  for i = 1, 1e12 do s = s + i end\n  return true\nend }\n')
    r, res = scan(ws, os.path.join(LUA_T, "full.eml"))
    o = res.get("full.eml", {})
    errs = {e["rule"]: e["error"] for e in o.get("errors", [])}
    tap.ok(r.elapsed < 10, "a scan with endless rules ends (%.1f s)" % r.elapsed, repr(r))
    tap.ok("budget" in errs.get("BB_LOOP", ""), "the endless while loop is cut by the budget", json.dumps(errs))
    tap.ok("AA_FIRST" in o.get("symbols", {}), "the rule before it still counts", json.dumps(o))
    tap.ok("BB_LOOP" not in o.get("symbols", {}) and "CC_AFTER" not in o.get("symbols", {}),
           "rules over budget do not fire", json.dumps(o))
    ws.check_sanitizers()


with tap.section("bindings"):
    mpcli.require_binary()
    test_bindings()
with tap.section("refusals"):
    test_refusals()
with tap.section("budget"):
    test_budget()
tap.done()
