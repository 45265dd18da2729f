"""Minimal TAP producer for moonpost's integration tests (run by `prove`).

Tests call plan(n) up front, or leave it and let done() print the plan at the
end (valid TAP, and it spares counting assertions by hand).  done() exits 1
if any assertion failed, so a script's exit status always tells the truth.
"""

import contextlib
import re
import sys
import traceback

_count = 0
_failed = 0
_planned = None
_before_done = []


def _out(line):
    # Flush at once: diagnostics interleave with daemon output in prove -v.
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def plan(n):
    global _planned
    _planned = n
    _out("1..%d" % n)


def skip_all(reason):
    """Skip the whole script (only before any assertion)."""
    _out("1..0 # SKIP %s" % reason)
    sys.exit(0)


def bail_out(reason):
    """Abort the whole prove run: for a broken environment, not a failing test."""
    _out("Bail out! %s" % reason)
    sys.exit(255)


def diag(msg):
    for line in str(msg).splitlines() or [""]:
        _out("# " + line)


def _clean(desc):
    # '#' starts a directive in TAP; newlines would break the line format.
    return " ".join(str(desc).replace("#", "\\#").split())


def ok(cond, desc, *diags):
    """Record one assertion; extra args are printed as diagnostics on failure."""
    global _count, _failed
    _count += 1
    if cond:
        _out("ok %d - %s" % (_count, _clean(desc)))
    else:
        _failed += 1
        _out("not ok %d - %s" % (_count, _clean(desc)))
        # Point at the first frame outside this module (the test line).
        here = __file__.rstrip("c")
        frames = [f for f in traceback.extract_stack()[:-1]
                  if f.filename.rstrip("c") != here]
        if frames:
            diag("  Failed test '%s' at %s line %d."
                 % (_clean(desc), frames[-1].filename, frames[-1].lineno))
        for d in diags:
            diag(d)
    return bool(cond)


def is_(got, want, desc, *diags):
    return ok(got == want, desc, "       got: %r" % (got,),
              "  expected: %r" % (want,), *diags)


def isnt(got, unwanted, desc, *diags):
    return ok(got != unwanted, desc, "       got: %r" % (got,),
              "  expected anything else", *diags)


def like(text, regex, desc, *diags):
    m = re.search(regex, text or "", re.M) if text is not None else None
    ok(m is not None, desc, "  %r" % (text,),
       "  doesn't match %r" % (regex,), *diags)
    return m


def unlike(text, regex, desc, *diags):
    m = re.search(regex, text or "", re.M)
    return ok(m is None, desc, "  %r" % (text,), "  matches %r" % (regex,), *diags)


def todo(cond, desc, reason, *diags):
    """A TAP TODO assertion ("not ok N - desc # TODO reason"): a known gap,
    e.g. a step that needs an extension moonpost does not have yet.  prove
    does not count a failing TODO as a failure, and reports it as
    'unexpectedly succeeded' once it passes (then make it a plain ok).
    Diagnostics are printed when it fails, as for ok()."""
    global _count
    _count += 1
    _out("%s %d - %s # TODO %s" % ("ok" if cond else "not ok", _count,
                                    _clean(desc), _clean(reason)))
    if not cond:
        for d in diags:
            diag(d)
    return bool(cond)


def skip(desc, reason):
    """Record a skipped assertion (counts as passed)."""
    global _count
    _count += 1
    _out("ok %d - %s # SKIP %s" % (_count, _clean(desc), _clean(reason)))


def failed():
    return _failed


@contextlib.contextmanager
def section(name):
    """Run a block of assertions; an unexpected exception inside it becomes
    one failed assertion with its traceback, and the script goes on with the
    next section instead of dying with a bad plan."""
    try:
        yield
    except SystemExit:
        raise
    except BaseException as e:  # noqa: B902 - KeyboardInterrupt too: record it
        ok(False, "%s: no unexpected exception" % name,
           "%s: %s" % (type(e).__name__, e), traceback.format_exc())
        if isinstance(e, KeyboardInterrupt):
            raise


def before_done(fn):
    """Register fn to run at the start of done(), while assertions still
    count (the harness uses it to stop daemons a test forgot)."""
    _before_done.append(fn)


def done():
    """Print the plan if none was given, then exit 0 if all passed, else 1."""
    while _before_done:
        _before_done.pop()()
    if _planned is None:
        _out("1..%d" % _count)
    elif _planned != _count:
        diag("planned %d tests but ran %d" % (_planned, _count))
    if _failed:
        diag("failed %d/%d tests" % (_failed, _count))
    sys.exit(1 if _failed or (_planned is not None and _planned != _count) else 0)
