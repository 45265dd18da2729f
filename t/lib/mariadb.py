"""A private, throw-away MariaDB server for integration tests.

Everything (datadir, socket, pid, error log) lives in one temp dir, it listens
on 127.0.0.1 and a free port, and it never reads /etc/mysql (--no-defaults).
The datadir survives stop()/start() so later tests can simulate an outage
and a recovery; cleanup() (also run at exit) kills the server and removes
the dir.  Real grant tables are kept so tests can create real users.
"""

import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

INSTALL_DB = "mariadb-install-db"
MARIADBD = "/usr/sbin/mariadbd"
CLIENT = "mariadb"
ADMIN = "mariadb-admin"

_live = []


class MariaDBError(Exception):
    pass


def available():
    """True when the server and client binaries are installed."""
    return (os.access(MARIADBD, os.X_OK)
            and shutil.which(INSTALL_DB) is not None
            and shutil.which(CLIENT) is not None
            and shutil.which(ADMIN) is not None)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sql_quote(value):
    """A string as a MariaDB literal (default sql_mode: backslash escapes)."""
    return "'%s'" % (str(value).replace("\\", "\\\\").replace("'", "''")
                     .replace("\0", "\\0"))


def _cleanup_all():
    for db in list(_live):
        db.cleanup()


atexit.register(_cleanup_all)


def _on_sigterm(signum, frame):
    # prove's timeout or a Ctrl-C: turn it into an exit so atexit cleans up.
    raise SystemExit(128 + signum)


if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
    signal.signal(signal.SIGTERM, _on_sigterm)


class MariaDB:
    """with MariaDB() as db: db.create_db("mailserver"); db.sql("select 1")"""

    def __init__(self, start=True, extra_args=()):
        self.dir = tempfile.mkdtemp(prefix="moonpost-mdb-", dir="/tmp")
        # mariadbd as root needs --user=root, else it refuses to run.
        self.as_root = os.geteuid() == 0
        self.datadir = os.path.join(self.dir, "data")
        self.socket = os.path.join(self.dir, "mysqld.sock")
        self.pidfile = os.path.join(self.dir, "mysqld.pid")
        self.errlog = os.path.join(self.dir, "mysqld.err")
        self.host = "127.0.0.1"
        self.port = free_port()
        self.extra_args = list(extra_args)
        self.proc = None
        _live.append(self)
        try:
            self._install()
            if start:
                self.start()
        except BaseException:
            self.cleanup()
            raise

    def _install(self):
        cmd = [INSTALL_DB, "--no-defaults", "--datadir=" + self.datadir,
               "--auth-root-authentication-method=normal", "--skip-test-db"]
        if self.as_root:
            cmd.append("--user=root")
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=120)
        if r.returncode != 0:
            raise MariaDBError("mariadb-install-db failed (%d):\n%s"
                               % (r.returncode, r.stdout[-4000:]))

    def _admin(self, *args, timeout=10):
        return subprocess.run([ADMIN, "--no-defaults", "--socket=" + self.socket,
                               "-uroot", "--connect-timeout=2"] + list(args),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, timeout=timeout)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout=60):
        """Start (or restart, keeping the datadir) and wait until it answers."""
        if self.running():
            return
        cmd = [MARIADBD, "--no-defaults", "--datadir=" + self.datadir,
               "--socket=" + self.socket, "--port=%d" % self.port,
               "--bind-address=127.0.0.1", "--pid-file=" + self.pidfile,
               "--log-error=" + self.errlog, "--skip-name-resolve",
               "--character-set-server=utf8mb4",
               "--collation-server=utf8mb4_general_ci",
               "--innodb-buffer-pool-size=64M"] + self.extra_args
        if self.as_root:
            cmd.append("--user=root")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise MariaDBError("mariadbd exited with %s during start:\n%s"
                                   % (self.proc.returncode, self.log_tail()))
            try:
                if self._admin("ping", timeout=5).returncode == 0:
                    return
            except subprocess.TimeoutExpired:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise MariaDBError("mariadbd did not answer within %ds:\n%s"
                                   % (timeout, self.log_tail()))
            time.sleep(0.1)

    def stop(self, timeout=30):
        """Clean shutdown; SIGKILL if it hangs.  Returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self._admin("shutdown", timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def kill(self):
        """Hard crash (SIGKILL), e.g. to test the mail server's outage handling."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()

    def pause(self):
        """SIGSTOP the server: its port stays open (the kernel still accepts
        into the backlog) but nothing answers, like a hung database host.
        resume() undoes it; kill()/cleanup() work on a paused server."""
        if self.running():
            os.killpg(self.proc.pid, signal.SIGSTOP)

    def resume(self):
        if self.running():
            os.killpg(self.proc.pid, signal.SIGCONT)

    def log_tail(self, n=40):
        try:
            with open(self.errlog, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError as e:
            return "(no error log: %s)" % e

    def client_cmd(self, db=None, user="root", password=None, tcp=False):
        """argv for the mariadb CLI: batch mode, tab-separated, no headers."""
        cmd = [CLIENT, "--no-defaults", "--batch", "--skip-column-names",
               "--connect-timeout=5", "-u" + user]
        if tcp:
            cmd += ["--protocol=TCP", "-h", self.host, "-P", str(self.port)]
        else:
            cmd += ["--socket=" + self.socket]
        if password is not None:
            cmd.append("--password=" + password)
        if db:
            cmd.append(db)
        return cmd

    def sql(self, text, db=None, user="root", password=None, tcp=False, timeout=60):
        """Run SQL; returns the result rows as lists of strings (NULL is 'NULL').
        Raises MariaDBError carrying the client's stderr on failure."""
        r = subprocess.run(self.client_cmd(db, user, password, tcp), input=text,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=timeout)
        if r.returncode != 0:
            raise MariaDBError("mariadb failed (%d): %s\nSQL: %s"
                               % (r.returncode, r.stderr.strip(), text[:2000]))
        return [line.split("\t") for line in r.stdout.splitlines()]

    def load_file(self, path, db):
        with open(path) as f:
            return self.sql(f.read(), db=db)

    def create_db(self, name):
        self.sql("CREATE DATABASE IF NOT EXISTS `%s` CHARACTER SET utf8mb4;" % name)

    def create_ispmail(self, db="mailserver", schema=None,
                       user="mailserver", password="ro-secret",
                       admin_user="mailadmin", admin_password="rw-secret"):
        """The ISPmail database: schema loaded, a read-only user (SELECT,
        what Postfix/Dovecot use) and an admin user (all privileges on the
        database), both for TCP from 127.0.0.1.  Returns the settings as a
        dict for moonpost's directory.mariadb config table."""
        schema = schema or os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                        "..", "..", "conf", "schema.sql")
        self.create_db(db)
        self.load_file(schema, db)
        self.sql("CREATE USER IF NOT EXISTS %s@'127.0.0.1' IDENTIFIED BY %s;"
                 "GRANT SELECT ON `%s`.* TO %s@'127.0.0.1';"
                 "CREATE USER IF NOT EXISTS %s@'127.0.0.1' IDENTIFIED BY %s;"
                 "GRANT ALL PRIVILEGES ON `%s`.* TO %s@'127.0.0.1';"
                 % (sql_quote(user), sql_quote(password), db, sql_quote(user),
                    sql_quote(admin_user), sql_quote(admin_password), db,
                    sql_quote(admin_user)))
        return {"host": self.host, "port": self.port, "socket": "",
                "user": user, "password": password, "database": db,
                "admin_user": admin_user, "admin_password": admin_password}

    def cleanup(self):
        """Kill the server and remove everything; safe to call twice."""
        self.kill()
        if self.dir and os.environ.get("MOONPOST_KEEP_TMP") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)
        if self in _live:
            _live.remove(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()
        return False
