"""Harness for the `moonpost` command (directory admin, pw, lookup).

The CLI is the `moonpost` file next to the daemon under test (MOONPOSTD), so
the ASan suite runs the ASan CLI.  A Workspace owns a temp dir with a config
for one directory backend; every run gets the same sanitizer environment as
the daemon (mpd.daemon_env) with reports going into the workspace, and
check_sanitizers() turns any report into a failed assertion.

    ws = mpcli.Workspace("file")
    r = ws.run("lookup", "john@example.org")
    r.rc, r.out, r.err, r.elapsed
"""

import atexit
import base64
import copy
import os
import re
import shutil
import subprocess
import tempfile
import time

import mpd
import tap

EX_TEMPFAIL = 75

_live = []


def binary():
    return os.path.join(os.path.dirname(mpd.binary()), "moonpost")


def require_binary():
    """Fail the script (not skip) when the CLI is not built."""
    path = binary()
    if not os.access(path, os.X_OK):
        tap.ok(False, "moonpost CLI is built",
               "%s is missing or not executable; run make build-all" % path)
        tap.done()
    return path


class Result:
    def __init__(self, argv, rc, out, err, elapsed):
        self.argv, self.rc, self.out, self.err, self.elapsed = argv, rc, out, err, elapsed

    @property
    def lines(self):
        return self.out.splitlines()

    def __repr__(self):
        return "Result(argv=%r, rc=%r, out=%r, err=%r, %.2fs)" % (
            self.argv, self.rc, self.out, self.err, self.elapsed)


def _cleanup_all():
    for w in list(_live):
        w.cleanup()


tap.before_done(_cleanup_all)
atexit.register(_cleanup_all)


class Workspace:
    """A temp dir with moonpost.conf for one backend ("file" or "mariadb").

    mariadb: the dict create_ispmail() returns (directory.mariadb settings).
    directory: extra directory.* keys merged over the test defaults.
    """

    def __init__(self, backend, mariadb=None, directory=None, name="cli"):
        self.binary = binary()
        self.dir = tempfile.mkdtemp(prefix="moonpost-%s-" % name, dir="/tmp")
        _live.append(self)
        os.chmod(self.dir, 0o755)
        self.san_dir = os.path.join(self.dir, "san")
        os.mkdir(self.san_dir)
        os.chmod(self.san_dir, 0o1777)
        self._reported = set()
        self._san_checked = False
        self.backend = backend
        self.conf = os.path.join(self.dir, "moonpost.conf")
        self.dirfile = os.path.join(self.dir, "directory.txt")
        self.vmail = os.path.join(self.dir, "vmail")
        self.directory = {
            "backend": backend,
            "file": self.dirfile,
            "maildir": self.vmail + "/%d/%n/Maildir",
            "cache_ttl": 0,
            "negative_ttl": 0,
        }
        if backend == "mariadb":
            m = {"connect_timeout": 2, "query_timeout": 2}
            m.update(mariadb or {})
            self.directory["mariadb"] = m
        if directory:
            mpd.merge(self.directory, directory)
        if backend == "file":
            with open(self.dirfile, "w") as f:
                f.write("# moonpost test directory\n")
        self.write_config()

    def config_dict(self):
        return {
            "listen": [{"address": "127.0.0.1", "port": mpd.free_port(),
                        "protocol": "smtp"}],
            "directory": self.directory,
        }

    def write_config(self, path=None, directory=None):
        """(Re)write the config; directory overrides go to a copy when path
        is given (an alternative config), else into this workspace's."""
        cfg = self.config_dict()
        if directory:
            if path:
                cfg["directory"] = mpd.merge(copy.deepcopy(self.directory), directory)
            else:
                mpd.merge(self.directory, directory)
                cfg["directory"] = self.directory
        path = path or self.conf
        with open(path, "w") as f:
            f.write(mpd.lua_config(cfg))
        return path

    def maildir(self, email):
        local, domain = email.rsplit("@", 1)
        return "%s/%s/%s/Maildir" % (self.vmail, domain, local)

    def env(self, conf_env=None):
        e = mpd.daemon_env(self.san_dir)
        e.pop("MOONPOST_CONF", None)
        if conf_env is not None:
            e["MOONPOST_CONF"] = conf_env
        return e

    def run(self, *args, input=None, conf=True, conf_env=None, timeout=60):
        """Run `moonpost [-c CONF] ARGS`; input (str) goes to stdin."""
        argv = [self.binary] + (["-c", conf if isinstance(conf, str) else self.conf]
                                if conf else []) + list(args)
        t0 = time.monotonic()
        p = subprocess.run(argv, input=input if input is not None else "",
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout, env=self.env(conf_env), cwd=self.dir,
                           text=True, errors="replace")
        return Result(argv[1:], p.returncode, p.stdout, p.stderr, time.monotonic() - t0)

    # -- assertions shared by the tests --

    def ok_run(self, desc, *args, **kw):
        """Run and assert exit 0 with nothing on stderr; returns the Result."""
        r = self.run(*args, **kw)
        tap.ok(r.rc == 0 and r.err == "", desc, repr(r))
        return r

    def fail_run(self, desc, *args, rc=None, err_like=None, **kw):
        """Run and assert a failure: non-zero exit (or exactly rc), and one
        `moonpost: ...` line on stderr (matching err_like when given)."""
        r = self.run(*args, **kw)
        good = (r.rc != 0 if rc is None else r.rc == rc)
        errs = r.err.splitlines()
        good = good and len(errs) == 1 and errs[0].startswith("moonpost: ")
        if err_like is not None and good:
            good = re.search(err_like, r.err) is not None
        tap.ok(good, desc, repr(r),
               "  want: exit %s, one 'moonpost: ...' stderr line%s"
               % ("!= 0" if rc is None else rc,
                  "" if err_like is None else " matching %r" % err_like))
        return r

    def check_sanitizers(self):
        """One assertion per workspace when sanitizers are on (failures always show)."""
        if not mpd.sanitized():
            return True
        try:
            names = os.listdir(self.san_dir)
        except OSError:
            names = []
        files = sorted(f for f in names if (f.startswith("asan.") or f.startswith("ubsan."))
                       and f not in self._reported)
        self._reported.update(files)
        checked, self._san_checked = self._san_checked, True
        if not files:
            if not checked:
                tap.ok(True, "no sanitizer reports from the CLI (%s)" % self.backend)
            return True
        notes = []
        for f in files:
            with open(os.path.join(self.san_dir, f), errors="replace") as fh:
                notes.append("--- %s\n%s" % (f, fh.read()[-20000:]))
        return tap.ok(False, "no sanitizer reports from the CLI (%s)" % self.backend, *notes)

    def cleanup(self):
        if self not in _live:
            return
        _live.remove(self)
        self.check_sanitizers()
        if os.environ.get("MOONPOST_KEEP_TMP") == "1":
            tap.diag("kept %s" % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def todo(cond, desc, reason, *diags):
    """A TAP TODO assertion: a known, reported bug.  prove does not count a
    failing TODO as a failure, and reports it as 'unexpectedly succeeded'
    once fixed (then turn it into a plain tap.ok)."""
    # tap.py has no TODO support; keep its numbering in step.
    tap._count += 1
    tap._out("%s %d - %s # TODO %s" % ("ok" if cond else "not ok", tap._count,
                                        tap._clean(desc), tap._clean(reason)))
    if not cond:
        for d in diags:
            tap.diag(d)
    return bool(cond)


# ------------------------------------------- daemon: submission + AUTH --

def auth_daemon(directory, start=True, config=None):
    """A moonpostd with the given directory table and, besides the default
    listeners, a plaintext submission listener that allows AUTH before TLS
    (d.ports["auth"]).  Failed-login penalties are off so 535s are quick.
    config: other top-level settings merged in (e.g. {"workers": 1})."""
    d = mpd.Daemon(config, start=False)
    try:
        d.ports["auth"] = mpd.free_port()
        d.config["listen"].append({"address": "127.0.0.1", "port": d.ports["auth"],
                                   "protocol": "submission", "tls": "none",
                                   "plaintext_auth": True})
        dircfg = copy.deepcopy(directory)
        dircfg.setdefault("penalty_max", 0)
        d.config["directory"] = dircfg
        d.write_config()
        if start:
            d.start()
    except BaseException:
        d.cleanup()
        raise
    return d


def ehlo(port, timeout=10):
    """The EHLO reply (mpd.Reply) of a fresh connection."""
    with mpd.SMTPClient(port, timeout=timeout) as c:
        c.reply()
        r = c.cmd("EHLO client.test")
        c.send("QUIT\r\n")
        return r


def auth_mechanisms(reply):
    """Upper-case mechanisms of the EHLO AUTH line, or [] when not offered."""
    for line in reply.lines[1:]:
        words = line[4:].split()
        if words and words[0].upper() == "AUTH":
            return [w.upper() for w in words[1:]]
    return []


def auth_plain(port, user, password, timeout=20):
    """AUTH PLAIN with an initial response on a fresh connection.
    Returns (reply, seconds the AUTH took)."""
    token = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
    with mpd.SMTPClient(port, timeout=timeout) as c:
        c.reply()
        c.cmd("EHLO client.test")
        t0 = time.monotonic()
        r = c.cmd("AUTH PLAIN " + token)
        took = time.monotonic() - t0
        try:
            c.send("QUIT\r\n")
        except OSError:
            pass
        return r, took
