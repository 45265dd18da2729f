#!/usr/bin/env python3
# The default spam rules (rules/*.lua) against the hand-written messages in
# t/corpus/: `moonpost rules test --json` over every file, then each line of
# t/corpus/expect.txt is checked one expectation at a time - the action, every
# symbol that must fire and every one that must not - so a rule change that
# breaks one message says exactly which rule and which message. Also: the set
# loads (its test{} blocks pass), no rule raises an error on any message, and
# every corpus file has an expectation line.
import json
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

import mpcli  # noqa: E402
import mpd  # noqa: E402
import tap  # noqa: E402

CORPUS = os.path.join(mpd.REPO, "t", "corpus")
EXPECT = os.path.join(CORPUS, "expect.txt")
ACTIONS = ("no action", "add header", "soft reject", "reject")


def read_expect(path):
    """expect.txt: `FILE | ACTION | SYMBOL ...` per line; SYMBOL must fire,
    !SYMBOL must not; '#' starts a comment. Returns [(lineno, file, action,
    [symbols])]."""
    out = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            fields = [x.strip() for x in line.split("|")]
            if len(fields) != 3 or fields[1] not in ACTIONS:
                tap.ok(False, "expect.txt:%d is FILE | ACTION | SYMBOLS" % n, line)
                continue
            out.append((n, fields[0], fields[1], fields[2].split()))
    return out


def symbol_names(result):
    """The fired symbols of one JSON result, whatever the container shape."""
    syms = result.get("symbols") or {}
    if isinstance(syms, dict):
        return set(syms)
    return {s.get("name") if isinstance(s, dict) else s for s in syms}


class RulesWorkspace(mpcli.Workspace):
    """A CLI workspace whose config loads the repository's library and rules
    (and no policies: they do not take part in `rules test`)."""

    def config_dict(self):
        cfg = super().config_dict()
        policies = os.path.join(self.dir, "policies")
        os.makedirs(policies, exist_ok=True)
        cfg["lua"] = {
            "lib_dir": os.path.join(mpd.REPO, "lua"),
            "rules_dir": os.path.join(mpd.REPO, "rules"),
            "policies_dir": policies,
            "watch": False,
        }
        return cfg


def main():
    mpcli.require_binary()
    expect = read_expect(EXPECT)
    files = sorted(f for f in os.listdir(CORPUS) if f.endswith(".eml"))
    listed = {e[1] for e in expect}
    tap.is_(sorted(set(files) - listed), [], "every t/corpus/*.eml has a line in expect.txt")
    tap.is_(sorted(listed - set(files)), [], "every expect.txt line names an existing file")

    ws = RulesWorkspace("file", name="rules")
    paths = [os.path.join(CORPUS, f) for f in files]
    r = ws.run("rules", "test", "--json", *paths, timeout=120)
    results = {}
    bad_lines = []
    for line in r.out.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            o = json.loads(line)
        except ValueError:
            bad_lines.append(line)
            continue
        results[os.path.basename(o.get("file", ""))] = o
    tap.ok(r.rc in (0, 1) and not bad_lines,
           "rules test --json runs and prints JSON lines (the set loaded, its tests passed)",
           repr(r), *bad_lines[:3])
    tap.is_(sorted(results), files, "one result per corpus file", "stderr: " + r.err)

    for n, name, action, symbols in expect:
        res = results.get(name)
        if res is None:
            tap.ok(False, "%s: scanned" % name, "no result for %s (expect.txt:%d)" % (name, n))
            continue
        fired = symbol_names(res)
        detail = "score %s, symbols %s" % (res.get("score"), " ".join(sorted(fired)))
        tap.is_(res.get("action"), action, "%s: action %s" % (name, action), detail)
        for s in symbols:
            if s.startswith("!"):
                tap.ok(s[1:] not in fired, "%s: %s does not fire" % (name, s[1:]), detail)
            else:
                tap.ok(s in fired, "%s: %s fires" % (name, s), detail)
        tap.is_(res.get("errors") or [], [], "%s: no rule raised an error" % name)
    ws.check_sanitizers()


with tap.section("rules corpus"):
    main()
tap.done()
