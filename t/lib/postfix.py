"""A private Postfix instance for integration tests (needs root and the
Debian `postfix` package).

Everything lives in a temp dir under /tmp: main.cf/master.cf (config and
meta directory), the queue, data_directory (owned by postfix), the mail log.
Nothing under /etc is read as config or written; chroot is off; smtpd
listens on 127.0.0.1 only, on a free port; nothing can leave the box
(default/relay/local transports are `error:`).  Virtual mailboxes go to
`virtual_transport` (e.g. "lmtp:inet:127.0.0.1:PORT" or "lmtp:unix:/path").
Stopped with `postfix -c DIR stop` at the end, and every process the
instance ran is killed by pid (never by name) at exit if it is still there.

    pf = postfix.Postfix(transport="lmtp:inet:127.0.0.1:%d" % port,
                         mailboxes=["john@example.org"])
    pf.start()
    smtplib.SMTP("127.0.0.1", pf.port).sendmail(...)
    pf.wait_log(r"status=sent")
    pf.stop()
"""

import atexit
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import mpd
import tap

ETC_POSTFIX = "/etc/postfix"
_live = []


class PostfixError(Exception):
    pass


def missing():
    """None if the Postfix package is there, else what is missing (the
    caller must also be root: `postfix -c DIR start` needs it)."""
    for path in ("/usr/sbin/postfix", "/usr/sbin/postqueue", "/usr/lib/postfix/sbin/master",
                 os.path.join(ETC_POSTFIX, "postfix-files")):
        if not os.path.exists(path):
            return "%s missing (apt-get install postfix)" % path
    try:
        import pwd
        import grp
        pwd.getpwnam("postfix")
        grp.getgrnam("postdrop")
    except (KeyError, ImportError):
        return "user postfix / group postdrop missing"
    return None


MAIN_CF = """\
# main.cf of a private test instance (t/lib/postfix.py)
compatibility_level = 3.6
config_directory = {etc}
meta_directory = {etc}
queue_directory = {spool}
data_directory = {data}
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
syslog_name = {syslog_name}
maillog_file = {log}
maillog_file_prefixes = {logdir}

myhostname = {hostname}
mydomain = postfix.test
myorigin = $myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
biff = no
append_dot_mydomain = no
readme_directory = no
smtpd_banner = $myhostname ESMTP
smtputf8_enable = no

# Nothing may leave the box; no /etc/aliases.
alias_maps =
alias_database =
local_recipient_maps =
local_transport = error:local delivery disabled (test rig)
default_transport = error:outbound delivery disabled (test rig)
relay_transport = error:relay disabled (test rig)

virtual_mailbox_domains = {domains}
virtual_mailbox_maps = texthash:{etc}/vmailbox
virtual_alias_maps =
virtual_transport = {transport}

smtpd_relay_restrictions = permit_mynetworks defer_unauth_destination
smtpd_recipient_restrictions =
# Fast retries, so a test can watch a deferral turn into a delivery.
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
lmtp_connect_timeout = 5s
# A delivery that failed must not be retried into the next test for ages.
bounce_queue_lifetime = 1h
maximal_queue_lifetime = 1h
"""

MASTER_CF = """\
# master.cf of a private test instance: loopback smtpd, no chroot.
127.0.0.1:{port} inet n  -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def _cleanup_all():
    for p in list(_live):
        p.cleanup()


tap.before_done(_cleanup_all)
atexit.register(_cleanup_all)


class Postfix:
    """One Postfix instance in its own temp dir (see the module docstring).

    transport: virtual_transport; mailboxes: addresses Postfix accepts (the
    texthash virtual_mailbox_maps); domains: virtual_mailbox_domains."""

    def __init__(self, transport, mailboxes, domains=("example.org",),
                 hostname="relay.postfix.test"):
        self.dir = tempfile.mkdtemp(prefix="mp-postfix-", dir="/tmp")
        _live.append(self)
        os.chmod(self.dir, 0o755)
        self.etc = os.path.join(self.dir, "etc")
        self.spool = os.path.join(self.dir, "spool")
        self.data = os.path.join(self.dir, "data")
        self.logdir = os.path.join(self.dir, "log")
        self.log_path = os.path.join(self.logdir, "postfix.log")
        self.hostname = hostname
        self.port = mpd.free_port()
        self.syslog_name = "mptest-postfix-%d" % self.port
        self._pids = {}          # pid -> starttime of every process seen
        for d in (self.etc, self.spool, self.logdir):
            os.mkdir(d, 0o755)
        os.mkdir(self.data, 0o700)
        shutil.chown(self.data, "postfix", "postfix")
        # Package metadata post-install needs (file list, dynamic map types).
        for name in ("postfix-files", "dynamicmaps.cf"):
            shutil.copy(os.path.join(ETC_POSTFIX, name), self.etc)
        for name in ("postfix-files.d", "dynamicmaps.cf.d"):
            src = os.path.join(ETC_POSTFIX, name)
            if os.path.isdir(src):
                shutil.copytree(src, os.path.join(self.etc, name))
        with open(os.path.join(self.etc, "vmailbox"), "w") as f:
            f.write("".join("%s OK\n" % m for m in mailboxes))
        self.write_main(transport, domains)
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(port=self.port))

    def write_main(self, transport, domains=("example.org",)):
        self.transport = transport
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write(MAIN_CF.format(etc=self.etc, spool=self.spool, data=self.data,
                                   log=self.log_path, logdir=self.logdir,
                                   syslog_name=self.syslog_name, hostname=self.hostname,
                                   domains=", ".join(domains), transport=transport))

    # -- commands --

    def run(self, *args, timeout=60, check=True):
        """Run a Postfix command with `-c DIR`; CompletedProcess (text)."""
        cmd = [args[0], "-c", self.etc] + list(args[1:])
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise PostfixError("%s failed (%d):\n%s\n%s"
                               % (" ".join(cmd), r.returncode, r.stdout, self.log_tail()))
        return r

    def master_pid(self):
        try:
            with open(os.path.join(self.spool, "pid", "master.pid")) as f:
                digits = re.sub(r"\D", "", f.read())
            return int(digits) if digits else None
        except OSError:
            return None

    def _remember(self):
        """Record the master and its descendants (for the final cleanup)."""
        pid = self.master_pid()
        if pid is None or not mpd.alive(pid):
            return
        for p in [pid] + mpd.descendants(pid):
            st = mpd._stat(p)
            if st is not None:
                self._pids.setdefault(p, st[2])

    def start(self, timeout=30):
        """`postfix check` + `postfix start`; waits for the smtpd greeting."""
        self.run("postfix", "check")
        self.run("postfix", "start")
        deadline = time.monotonic() + timeout
        last = None
        while True:
            try:
                with mpd.SMTPClient(self.port, timeout=5) as c:
                    r = c.reply()
                    if r.code == 220:
                        self._remember()
                        return self
                    last = repr(r)
            except (OSError, EOFError) as e:
                last = "%s: %s" % (type(e).__name__, e)
            if time.monotonic() > deadline:
                raise PostfixError("postfix smtpd not answering on %d (%s)\n%s"
                                   % (self.port, last, self.log_tail()))
            time.sleep(0.05)

    def reload(self):
        self.run("postfix", "reload")

    def running(self):
        pid = self.master_pid()
        return pid is not None and mpd.alive(pid)

    def stop(self, timeout=30):
        """`postfix stop`; True when the master and all its processes are
        gone within timeout."""
        self._remember()
        pid = self.master_pid()
        if pid is None or not mpd.alive(pid):
            return True
        self.run("postfix", "stop", check=False)
        return bool(mpd.poll(lambda: not any(mpd.alive(p, st) for p, st in self._pids.items()),
                             timeout))

    def cleanup(self):
        if self not in _live:
            return
        _live.remove(self)
        try:
            if not self.stop(timeout=20):
                tap.diag("postfix did not stop; killing its processes")
        except Exception as e:  # noqa: BLE001 - cleanup must go on
            tap.diag("postfix stop failed: %s" % e)
        for pid, st in self._pids.items():
            if mpd.alive(pid, st):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        mpd.poll(lambda: not any(mpd.alive(p, st) for p, st in self._pids.items()), 5)
        if os.environ.get("MOONPOST_KEEP_TMP") == "1":
            tap.diag("kept %s" % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- queue and log --

    def queue(self):
        """`postqueue -p` output."""
        return self.run("postqueue", "-p", check=False).stdout

    def queue_empty(self):
        return "Mail queue is empty" in self.queue()

    def flush(self):
        self.run("postqueue", "-f", check=False)

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_tail(self, n=30):
        return "\n".join(self.log_text().splitlines()[-n:])

    def wait_log(self, regex, timeout=20):
        """re.Match of regex (multiline) in the mail log, polled; None."""
        pat = re.compile(regex, re.M)
        return mpd.poll(lambda: pat.search(self.log_text()), timeout)

    def deliveries(self, rcpt):
        """Postfix log lines `to=<rcpt>, ... status=...` for one recipient."""
        return [ln for ln in self.log_text().splitlines()
                if "to=<%s>" % rcpt in ln and "status=" in ln]
