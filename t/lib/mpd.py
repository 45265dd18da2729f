"""Harness that runs the real moonpostd for integration tests.

A Daemon owns a temp dir holding its config, a self-signed cert, the state
dir and the log (stdout+stderr of the daemon).  It listens on free loopback
ports and is always killed at exit, whatever the test did.  Under sanitizers
(ASAN_OPTIONS set, or "asan" in the binary path) reports are written into the
temp dir and turned into a failed "no sanitizer reports" assertion.

    with mpd.Daemon({"hostname": "mx.test"}) as d:
        c = mpd.SMTPClient(d.ports["smtp"])
        print(c.reply())
"""

import atexit
import hashlib
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

import tap

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

_live = []


class DaemonError(Exception):
    pass


# ---------------------------------------------------------------- binary --

def binary():
    path = os.environ.get("MOONPOSTD") or os.path.join(REPO, "build", "moonpostd")
    return os.path.abspath(path)


def require_binary():
    """Fail the script (not skip: a missing build must not look green)."""
    path = binary()
    if not os.access(path, os.X_OK):
        tap.ok(False, "moonpostd binary is built",
               "%s is missing or not executable; run make (or set MOONPOSTD)" % path)
        tap.done()
    return path


def sanitized():
    return ("ASAN_OPTIONS" in os.environ or os.environ.get("MP_SANITIZE") == "1"
            or "asan" in binary())


def daemon_env(san_dir):
    """Environment for moonpostd; routes sanitizer reports to san_dir."""
    env = dict(os.environ)
    if sanitized():
        # The caller's own options first, so ours (later) win.
        user = os.environ.get("ASAN_OPTIONS", "")
        ours = "log_path=%s/asan:halt_on_error=1:detect_leaks=1" % san_dir
        env["ASAN_OPTIONS"] = (user + ":" + ours) if user else ours
        env["UBSAN_OPTIONS"] = ("print_stacktrace=1:halt_on_error=1:log_path=%s/ubsan"
                                % san_dir)
    return env


# ------------------------------------------------------------ utilities --

def free_port():
    """A port nobody listens on right now (tiny race accepted for tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_cert(directory, name="cert", cn="localhost", kind="ec"):
    """Self-signed cert for localhost/127.0.0.1; returns (cert_path, key_path).
    Each call makes a new key, so two calls give two distinct certs."""
    cert = os.path.join(directory, name + ".pem")
    key = os.path.join(directory, name + ".key")
    newkey = (["-newkey", "rsa:2048"] if kind == "rsa" else
              ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
    r = subprocess.run(["openssl", "req", "-x509", "-nodes", "-days", "30"] + newkey
                       + ["-keyout", key, "-out", cert, "-subj", "/CN=" + cn,
                          "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=60)
    if r.returncode != 0:
        raise DaemonError("openssl req failed:\n" + r.stdout)
    return cert, key


def cert_digest_file(pem_path):
    with open(pem_path) as f:
        return hashlib.sha256(ssl.PEM_cert_to_DER_cert(f.read())).hexdigest()


def client_ctx(cafile=None, min_version=None, max_version=None):
    """TLS client context; verifies against cafile when given, else trusts all."""
    if cafile:
        ctx = ssl.create_default_context(cafile=cafile)
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if min_version is not None:
        ctx.minimum_version = min_version
    if max_version is not None:
        ctx.maximum_version = max_version
    return ctx


def lua(value, indent=""):
    """Python value -> Lua constructor text (dicts keep their key order)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"%s"' % (value.replace("\\", "\\\\").replace('"', '\\"')
                         .replace("\n", "\\n").replace("\r", "\\r"))
    if isinstance(value, (list, tuple)):
        inner = indent + "  "
        items = "".join("%s%s,\n" % (inner, lua(v, inner)) for v in value)
        return "{\n%s%s}" % (items, indent)
    if isinstance(value, dict):
        parts = []
        for k, v in value.items():
            key = k if re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", k) else "[%s]" % lua(k)
            parts.append("%s = %s" % (key, lua(v, indent)))
        return "{ %s }" % ", ".join(parts) if parts else "{}"
    raise TypeError("cannot express %r in Lua" % (value,))


def lua_config(cfg):
    """Top-level dict -> config file text, one `key = value` per line."""
    return "".join("%s = %s\n" % (k, lua(v)) for k, v in cfg.items())


def merge(base, over):
    """Deep-merge over into base (in place); a None value deletes the key."""
    for k, v in over.items():
        if v is None:
            base.pop(k, None)
        elif isinstance(v, dict) and isinstance(base.get(k), dict):
            merge(base[k], v)
        else:
            base[k] = v
    return base


def _stat(pid):
    """(ppid, state, starttime) of a process, or None if it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return None
    # comm may hold spaces and parens: split after the last ')'.
    rest = data[data.rindex(")") + 2:].split()
    return int(rest[1]), rest[0], int(rest[19])


def proc_status(pid):
    """/proc/PID/status as a dict of str -> str ({} if the process is gone)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    except OSError:
        return {}


def alive(pid, starttime=None):
    """True if pid runs (zombies count as dead); starttime guards pid reuse."""
    st = _stat(pid)
    if st is None or st[1] == "Z":
        return False
    return starttime is None or st[2] == starttime


def descendants(root):
    """Live (non-zombie) descendants of root, found through /proc ppid links."""
    children = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _stat(int(name))
            if st is not None and st[1] != "Z":
                children.setdefault(st[0], []).append(int(name))
    out, todo = [], [root]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return sorted(out)


def poll(fn, timeout=10, interval=0.05):
    """Call fn until it returns something truthy or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        r = fn()
        if r or time.monotonic() > deadline:
            return r
        time.sleep(interval)


# ---------------------------------------------------------- SMTP client --

class Reply:
    def __init__(self, lines):
        self.lines = lines
        self.code = int(lines[-1][:3]) if lines and lines[-1][:3].isdigit() else None

    @property
    def text(self):
        return "\n".join(self.lines)

    def __repr__(self):
        return "Reply(%r)" % self.lines


class SMTPClient:
    """Raw line-level client: we need to see exactly what the server sends,
    which smtplib hides (e.g. pipelining, replies after STARTTLS)."""

    def __init__(self, port, host="127.0.0.1", tls_ctx=None, timeout=10):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        if tls_ctx is not None:
            self.sock = tls_ctx.wrap_socket(self.sock, server_hostname="localhost")
        self.buf = b""

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed by server")
        self.buf += data

    def readline(self):
        while b"\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def reply(self):
        """One (possibly multi-line 250-...) reply."""
        lines = [self.readline()]
        while len(lines[-1]) > 3 and lines[-1][3] == "-":
            lines.append(self.readline())
        return Reply(lines)

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def starttls(self, ctx):
        """Start TLS on the socket (caller has read the 220 already)."""
        if self.buf:
            raise DaemonError("plaintext left unread before TLS: %r" % self.buf)
        self.sock = ctx.wrap_socket(self.sock, server_hostname="localhost")

    def pending(self, timeout):
        """Bytes that arrive within timeout (b"" if none); kept for reply()."""
        old = self.sock.gettimeout()
        self.sock.settimeout(timeout)
        try:
            self._fill()
        except (socket.timeout, EOFError, ConnectionError, ssl.SSLError):
            pass
        finally:
            self.sock.settimeout(old)
        return self.buf

    def wait_eof(self, timeout=10):
        """True if the server closes within timeout (stray data -> False)."""
        old = self.sock.gettimeout()
        self.sock.settimeout(timeout)
        try:
            if self.buf:
                return False
            return self.sock.recv(4096) == b""
        except (ConnectionResetError, BrokenPipeError):
            return True
        except ssl.SSLError as e:
            # A TLS peer may close without close_notify: still EOF.
            return "EOF" in str(e) or "UNEXPECTED" in str(e).upper()
        except socket.timeout:
            return False
        finally:
            try:
                self.sock.settimeout(old)
            except OSError:
                pass

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def tls_peer_digest(port, starttls=False, ctx=None, timeout=10):
    """sha256 of the DER cert the server presents on a fresh connection."""
    ctx = ctx or client_ctx()
    with SMTPClient(port, timeout=timeout) as c:
        if starttls:
            c.reply()
            c.cmd("EHLO digest.test")
            r = c.cmd("STARTTLS")
            if r.code != 220:
                raise DaemonError("STARTTLS refused: %r" % r)
        c.starttls(ctx)
        return hashlib.sha256(c.sock.getpeercert(binary_form=True)).hexdigest()


# ---------------------------------------------------------------- Daemon --

def _cleanup_all():
    for d in list(_live):
        d.cleanup()


# Before the plan is printed (so sanitizer assertions still count), and again
# at exit for scripts that die early.
tap.before_done(_cleanup_all)
atexit.register(_cleanup_all)


def _on_sigterm(signum, frame):
    # prove's timeout or a Ctrl-C: turn it into an exit so atexit cleans up.
    raise SystemExit(128 + signum)


if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
    signal.signal(signal.SIGTERM, _on_sigterm)


class Daemon:
    """One moonpostd with its own temp dir, cert, ports, config and log.

    config: dict deep-merged over the defaults (None deletes a key);
    raw: config text written as is instead (then pass probe_port to start()).
    """

    def __init__(self, config=None, raw=None, start=True):
        self.binary = binary()
        self.dir = tempfile.mkdtemp(prefix="moonpost-", dir="/tmp")
        _live.append(self)
        self.proc = None
        self._seen = {}          # pid -> starttime of every process we saw
        self._reported = set()   # sanitizer files already reported
        self._san_passed = False  # an assertion was already emitted
        self._san_log_seen = 0     # bytes of the log scanned for reports
        self._log_file = None
        self._failed_at_start = tap.failed()
        self.state_dir = os.path.join(self.dir, "state")
        self.rules_dir = os.path.join(self.dir, "rules")
        self.policies_dir = os.path.join(self.dir, "policies")
        self.san_dir = os.path.join(self.dir, "san")
        self.conf = os.path.join(self.dir, "moonpost.conf")
        self.log_path = os.path.join(self.dir, "moonpostd.log")
        try:
            # Workers may drop to nobody: they must reach the dir and write reports.
            os.chmod(self.dir, 0o755)
            os.mkdir(self.state_dir, 0o755)
            os.mkdir(self.rules_dir, 0o755)
            os.mkdir(self.policies_dir, 0o755)
            os.mkdir(self.san_dir)
            os.chmod(self.san_dir, 0o1777)
            self.cert, self.key = make_cert(self.dir)
            self.ports = {"smtp": free_port(), "submission": free_port()}
            self.config = self.default_config()
            if config:
                merge(self.config, config)
            if raw is not None:
                self.write_raw(raw)
            else:
                self.write_config()
            if start:
                self.start()
        except BaseException:
            self.cleanup()
            raise

    # -- config --

    def default_config(self):
        return {
            "hostname": "mx.moonpost.test",
            "user": "",
            "group": "",
            "workers": 2,
            "state_dir": self.state_dir,
            "shutdown_timeout": 5,
            "log": {"level": "info", "syslog": False},
            "tls": {"cert": self.cert, "key": self.key},
            "smtp": {"line_max": 512, "errors_max": 20, "idle_timeout": 300},
            # Empty rules/policies dirs of our own: tests drop files in them.
            "lua": {"lib_dir": os.path.join(REPO, "lua"), "rules_dir": self.rules_dir,
                    "policies_dir": self.policies_dir},
            "listen": [
                {"address": "127.0.0.1", "port": self.ports["smtp"],
                 "protocol": "smtp", "tls": "starttls"},
                {"address": "127.0.0.1", "port": self.ports["submission"],
                 "protocol": "submission", "tls": "implicit"},
            ],
        }

    def write_config(self, overrides=None):
        """Merge overrides into the current config (cumulative) and write it."""
        if overrides:
            merge(self.config, overrides)
        self.write_raw(lua_config(self.config))

    def write_raw(self, text, path=None):
        """Write config text; atomically, so a reload never sees half a file."""
        path = path or self.conf
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)
        return path

    def replace_cert(self, kind="ec"):
        """Put a new, distinct cert+key where the config points; returns the
        new cert's sha256 (DER), to compare with tls_peer_digest()."""
        new_cert, new_key = make_cert(self.dir, "cert-next", kind=kind)
        os.replace(new_key, self.key)
        os.replace(new_cert, self.cert)
        return cert_digest_file(self.cert)

    def check(self, path=None):
        """Run `moonpostd -t -c path` -> CompletedProcess (text stdout/stderr)."""
        return subprocess.run([self.binary, "-t", "-c", path or self.conf],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=30,
                              env=daemon_env(self.san_dir), cwd=self.dir)

    # -- lifecycle --

    def _probe_target(self):
        """First smtp/submission listener of the current config: (port, implicit_tls)."""
        for lst in self.config.get("listen", []):
            if lst.get("protocol") in ("smtp", "submission"):
                return lst["port"], lst.get("tls") == "implicit"
        return self.ports["smtp"], False

    def start(self, timeout=10, probe_port=None, probe_tls=False):
        """Start moonpostd and wait until it greets with 220 (or raise with
        the log tail)."""
        if self.running():
            raise DaemonError("already running")
        if probe_port is None:
            probe_port, probe_tls = self._probe_target()
        if self._log_file:
            self._log_file.close()
        self._log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen([self.binary, "-c", self.conf],
                                     stdin=subprocess.DEVNULL, stdout=self._log_file,
                                     stderr=subprocess.STDOUT, cwd=self.dir,
                                     env=daemon_env(self.san_dir),
                                     start_new_session=True)
        self._remember(self.proc.pid)
        deadline = time.monotonic() + timeout
        last = None
        while True:
            if self.proc.poll() is not None:
                raise DaemonError("moonpostd exited with %s during start\n%s"
                                  % (self.proc.returncode, self.log_tail()))
            try:
                with SMTPClient(probe_port, timeout=2,
                                tls_ctx=client_ctx() if probe_tls else None) as c:
                    r = c.reply()
                    if r.code == 220:
                        return self
                    last = "greeting %r" % r
            except (OSError, EOFError, ssl.SSLError) as e:
                last = "%s: %s" % (type(e).__name__, e)
            if time.monotonic() > deadline:
                raise DaemonError("no 220 on port %d within %ss (last: %s)\n%s"
                                  % (probe_port, timeout, last, self.log_tail()))
            time.sleep(0.05)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def signal(self, sig):
        os.kill(self.proc.pid, sig)

    def wait(self, timeout):
        """Exit status, or None if still running after timeout."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout=None):
        """SIGTERM and wait; SIGKILL everything if it hangs.  Returns the exit
        status (None if it had to be killed), then checks sanitizer reports."""
        rc = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.pids()  # remember the workers, to kill them if it hangs
                self.signal(signal.SIGTERM)
                if timeout is None:
                    timeout = float(self.config.get("shutdown_timeout", 30)) + 10
                rc = self.wait(timeout)
                if rc is None:
                    tap.diag("moonpostd did not exit %ss after SIGTERM; killing it"
                             % timeout)
                    self.kill()
            else:
                rc = self.proc.returncode
        self.check_sanitizers()
        return rc

    def kill(self):
        """SIGKILL the process group and any process of ours that left it."""
        if self.proc is not None and self.proc.poll() is None:
            self.pids()
        for pid, start in list(self._seen.items()):
            if alive(pid, start):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        # SIGKILL is asynchronous: wait until they are really gone (or zombies),
        # so their ports and files are free for whatever runs next.
        poll(lambda: not any(alive(p, st) for p, st in self._seen.items()), 5)

    def cleanup(self):
        """Kill leftovers, report sanitizer output, drop the temp dir (unless
        MOONPOST_KEEP_TMP=1).  On failed assertions, show the log tail."""
        self.kill()
        if self in _live:
            _live.remove(self)
            self.check_sanitizers()
            if tap.failed() > self._failed_at_start:
                tap.diag("moonpostd log tail (%s):\n%s" % (self.log_path, self.log_tail()))
        if self._log_file:
            self._log_file.close()
            self._log_file = None
        if os.environ.get("MOONPOST_KEEP_TMP") == "1":
            tap.diag("kept %s" % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.running():
            self.stop()
        self.cleanup()
        return False

    # -- processes --

    def _remember(self, pid):
        st = _stat(pid)
        if st is not None:
            self._seen.setdefault(pid, st[2])

    def pids(self):
        """[parent, *descendants] while the parent runs, else []."""
        if not self.running():
            return []
        out = [self.proc.pid] + descendants(self.proc.pid)
        for p in out:
            self._remember(p)
        return out

    def children(self):
        return self.pids()[1:]

    def workers(self):
        """Live children the parent logged as `event=worker_start pid=N`
        (other helper processes it may fork are not workers)."""
        logged = {int(p) for p in re.findall(r"\bevent=worker_start\b.*?\bpid=(\d+)",
                                             self.log_text())}
        return [p for p in self.children() if p in logged]

    def seen_pids(self):
        """Every daemon pid observed so far, with start times (for 'all gone')."""
        return dict(self._seen)

    # -- log --

    def log_text(self, since=0):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(since)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def mark(self):
        """Log offset now: pass as since= to only look at later lines."""
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def log_tail(self, n=30):
        return "\n".join(self.log_text().splitlines()[-n:])

    def wait_log(self, regex, timeout=10, since=0):
        """re.Match of regex in the log (from offset since), polling until
        timeout; None if it never shows up."""
        pat = re.compile(regex, re.M)
        deadline = time.monotonic() + timeout
        while True:
            dead = not self.running()
            m = pat.search(self.log_text(since))
            if m or dead or time.monotonic() > deadline:
                if not m and dead:
                    # One last look: the final lines may land just before exit.
                    m = pat.search(self.log_text(since))
                return m
            time.sleep(0.05)

    # -- sanitizers --

    _SAN_LOG_RE = re.compile(r"^.*(?:: runtime error: |ERROR: AddressSanitizer|"
                             r"ERROR: LeakSanitizer|SUMMARY: (?:Address|UndefinedBehavior)Sanitizer).*$",
                             re.M)

    def _san_log_reports(self):
        """Sanitizer report lines in the daemon log not yet reported."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._san_log_seen)
                raw = f.read()
        except OSError:
            return ""
        self._san_log_seen += len(raw)
        text = raw.decode("utf-8", "replace")
        return "\n".join(self._SAN_LOG_RE.findall(text))[-20000:]

    def check_sanitizers(self):
        """One assertion per check when sanitizers are on; reports go to diag."""
        if not sanitized():
            return True
        try:
            names = os.listdir(self.san_dir)
        except OSError:
            names = []
        files = sorted(f for f in names
                       if (f.startswith("asan.") or f.startswith("ubsan."))
                       and f not in self._reported)
        self._reported.update(files)
        checked, self._san_passed = self._san_passed, True
        # A report that did not reach log_path (UBSan's "runtime error:"
        # can be printed to the process's stderr, i.e. our log) counts too.
        in_log = self._san_log_reports()
        if in_log:
            return tap.ok(False, "no sanitizer reports", "--- in moonpostd.log\n" + in_log)
        if not files:
            # One passing assertion per daemon is enough; failures always show.
            if not checked:
                tap.ok(True, "no sanitizer reports")
            return True
        notes = []
        for f in files:
            with open(os.path.join(self.san_dir, f), errors="replace") as fh:
                notes.append("--- %s\n%s" % (f, fh.read()[-20000:]))
        return tap.ok(False, "no sanitizer reports", *notes)
