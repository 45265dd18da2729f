"""A private Dovecot POP3 or IMAP server for comparison tests and benchmarks.

Runs /usr/sbin/dovecot -F with its own config in a temp dir (base_dir,
state, log), one user whose mail is a given Maildir, passwords in a
passwd-file with the same scheme string moonpost's directory holds. One
protocol ("pop3" or "imap") is served, on a free loopback port, plaintext
allowed (loopback); IMAP folders use Maildir++'s "." separator.

    with dovecot.Dovecot(maildir, "john@example.org", "{PLAIN}secret") as dv:
        p = poplib.POP3("127.0.0.1", dv.port)

More users (users=[(name, hash), ...]) share the passwd-file; with
mail_location (e.g. "maildir:/tmp/x/%n/Maildir") each gets its own Maildir,
which the caller makes readable and writable for MAIL_UID. extra is config
text appended at the end (settings the template does not set, e.g.
"default_client_limit" or "service imap { process_limit }").
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

DOVECOT = "/usr/sbin/dovecot"
# Dovecot refuses uid 0 for mail: Maildirs go to the "mail" user (moonpost,
# as root in the tests, still reads and writes them).
MAIL_UID = MAIL_GID = 8


def available(protocol="pop3"):
    return os.access(DOVECOT, os.X_OK) and os.path.exists("/usr/lib/dovecot/" + protocol)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CONF = """\
base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/dovecot.log
info_log_path = {dir}/dovecot.log
protocols = {proto}
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
default_login_user = dovenull
default_internal_user = dovecot
first_valid_uid = 0
mail_location = {mail_location}
pop3_uidl_format = %08Xu%08Xv
namespace inbox {{
  inbox = yes
  separator = .
}}
passdb {{
  driver = passwd-file
  args = {dir}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={dir}/home
}}
service {proto}-login {{
  inet_listener {proto} {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener {proto}s {{
    port = 0
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""


class Dovecot:
    GREETING = {"pop3": b"+OK", "imap": b"* OK"}

    def __init__(self, maildir, user, password_hash, extra="", protocol="pop3",
                 users=(), mail_location=None):
        self.dir = tempfile.mkdtemp(prefix="dovecot-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.port = _free_port()
        uid, gid = MAIL_UID, MAIL_GID
        for root, dirs, files in os.walk(maildir):
            for n in dirs + files:
                os.lchown(os.path.join(root, n), uid, gid)
        os.chown(maildir, uid, gid)
        os.chown(os.path.dirname(os.path.abspath(maildir)), uid, gid)
        with open(os.path.join(self.dir, "passwd"), "w") as f:
            f.write("%s:%s\n" % (user, password_hash))
            for name, h in users:
                f.write("%s:%s\n" % (name, h))
        os.chmod(os.path.join(self.dir, "passwd"), 0o644)
        self.conf = os.path.join(self.dir, "dovecot.conf")
        with open(self.conf, "w") as f:
            loc = mail_location or "maildir:" + os.path.abspath(maildir)
            f.write(CONF.format(dir=self.dir, mail_location=loc,
                                uid=uid, gid=gid, port=self.port, proto=protocol) + extra)
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", self.conf],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                    if s.recv(100).startswith(self.GREETING[protocol]):
                        break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = self.log()
                self.stop()
                raise RuntimeError("dovecot did not start:\n" + log)
            time.sleep(0.1)

    def log(self):
        try:
            with open(os.path.join(self.dir, "dovecot.log"), errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=10)
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False
