"""A private Roundcube webmail (Debian's roundcube packages) for end-to-end
tests against moonpost's IMAP, and the headless-Chromium driver for it.

Nothing under /etc is read for configuration or changed: Roundcube runs from
a tree in its own temp dir, PHP's built-in web server on a free loopback
port serving it:

    DIR/rc/                 INSTALL_PATH
        index.php program SQL skins  -> /usr/share/roundcube/...
        plugins/NAME        -> /usr/share/roundcube/plugins/NAME (each)
        config/             config.inc.php (ours), defaults.inc.php, mimetypes.php
        public_html/        the document root (as Debian's /var/lib/roundcube)
        temp/ logs/         Roundcube's temp files and logs (imap.log etc.)
    DIR/db/roundcube.sqlite Roundcube's own state

    with roundcube.Roundcube(imap_port, password_dsn=...) as rc:
        with roundcube.Browser(rc, shots_dir) as b:
            b.call("login", user="john@example.org", password="secret")

Roundcube talks to IMAP with STARTTLS ("tls://127.0.0.1:PORT"), certificate
checks off (the test cert is self-signed). The password plugin, when a DSN
is given, uses its SQL driver to write the new hash into the ISPmail
virtual_users table.

Browser drives Debian's /usr/bin/chromium through playwright-core (npm),
installed on first use into build/npm/node_modules (git-ignored) with
`npm install`. t/lib/roundcube_drive.js reads one JSON request per line on
stdin and answers one JSON line on stdout, so a test makes one assertion per
step and keeps its SMTP and IMAP checks in Python.
"""

import atexit
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
SHARE = "/usr/share/roundcube"
ETC = "/etc/roundcube"
PHP = "/usr/bin/php"
SQLITE3 = "/usr/bin/sqlite3"
CHROMIUM = "/usr/bin/chromium"
NPM_PREFIX = os.path.join(REPO, "build", "npm")
# pinned: a later 1.x may want a newer Node.js than the machine's 20
PLAYWRIGHT = "playwright-core@1.65.2"
NODE_MODULES = os.path.join(NPM_PREFIX, "node_modules")
DRIVER = os.path.join(HERE, "roundcube_drive.js")

_live = []


class RoundcubeError(Exception):
    pass


def missing():
    """What is not installed, as a list of names ([] = all there)."""
    out = []
    for path, name in ((os.path.join(SHARE, "index.php"), "roundcube"),
                       (os.path.join(SHARE, "plugins", "password", "password.php"),
                        "roundcube-plugins"),
                       (PHP, "php-cli"), (SQLITE3, "sqlite3"), (CHROMIUM, "chromium")):
        if not os.path.exists(path):
            out.append(name)
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            out.append(tool)
    return out


def install():
    """Try tools/deps.sh test (as root, like `make test`); returns its output."""
    r = subprocess.run([os.path.join(REPO, "tools", "deps.sh"), "test"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=1200)
    return r.stdout


def php_has_argon2id():
    r = subprocess.run([PHP, "-r", "echo defined('PASSWORD_ARGON2ID') ? 1 : 0;"],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                       timeout=30)
    return r.stdout.strip() == "1"


def ensure_playwright():
    """playwright-core in build/npm/node_modules (npm install on first use).
    Returns None when it is there, else the npm output."""
    if os.path.exists(os.path.join(NODE_MODULES, "playwright-core", "package.json")):
        return None
    os.makedirs(NPM_PREFIX, exist_ok=True)
    r = subprocess.run(["npm", "install", "--prefix", NPM_PREFIX, "--no-save",
                        "--no-package-lock", "--no-audit", "--no-fund", PLAYWRIGHT],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=300, stdin=subprocess.DEVNULL)
    if os.path.exists(os.path.join(NODE_MODULES, "playwright-core", "package.json")):
        return None
    return "npm install playwright-core failed (%d):\n%s" % (r.returncode, r.stdout[-3000:])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def php_str(value):
    """A Python value as a PHP literal (str, bool, int, None, list, dict)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return "'%s'" % value.replace("\\", "\\\\").replace("'", "\\'")
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(php_str(v) for v in value) + "]"
    if isinstance(value, dict):
        return "[" + ", ".join("%s => %s" % (php_str(k), php_str(v))
                               for k, v in value.items()) + "]"
    raise TypeError("no PHP literal for %r" % (value,))


def _cleanup_all():
    for rc in list(_live):
        rc.cleanup()


atexit.register(_cleanup_all)


class Roundcube:
    """Roundcube on http://127.0.0.1:PORT/ against IMAP STARTTLS on imap_port.

    password_dsn: e.g. "mysql://user:pw@127.0.0.1:3306/mailserver" turns on
    the password plugin's SQL driver with password_query; password_algorithm
    ("hash-argon2id" or "blowfish-crypt") and its prefix go with it.
    config: more $config entries (dict), written after ours.
    workers: PHP_CLI_SERVER_WORKERS. One (the default) serializes requests:
    Roundcube keeps its session in the database without locking, and two
    requests in parallel (the message list and the unread counts at login)
    can overwrite each other's session data (e.g. the folder's last UID,
    which "refresh" compares against), so a test would see a race of
    Roundcube's, not the server's behaviour.
    """

    def __init__(self, imap_port, password_dsn=None,
                 password_query="UPDATE virtual_users SET password=%P WHERE email=%u",
                 password_algorithm=None, config=None, workers=1):
        self.dir = tempfile.mkdtemp(prefix="moonpost-rc-", dir="/tmp")
        _live.append(self)
        self.imap_port = imap_port
        self.port = free_port()
        self.url = "http://127.0.0.1:%d/" % self.port
        self.root = os.path.join(self.dir, "rc")
        self.logs = os.path.join(self.root, "logs")
        self.db = os.path.join(self.dir, "db", "roundcube.sqlite")
        self.server_log = os.path.join(self.dir, "php-server.log")
        self.proc = None
        self._log_file = None
        if password_algorithm is None:
            password_algorithm = "hash-argon2id" if php_has_argon2id() else "blowfish-crypt"
        self.password_algorithm = password_algorithm
        self.password_prefix = {"hash-argon2id": "{ARGON2ID}", "blowfish-crypt": "{BLF-CRYPT}",
                                "hash-bcrypt": "{BLF-CRYPT}"}.get(password_algorithm, True)
        try:
            self._tree()
            self._config(password_dsn, password_query, config or {})
            self._initdb()
            self._start(workers)
        except BaseException:
            self.cleanup()
            raise

    # -- the private tree --

    def _tree(self):
        r = self.root
        for d in ("config", "plugins", "public_html/program", "temp", "logs"):
            os.makedirs(os.path.join(r, d))
        os.makedirs(os.path.dirname(self.db))
        for name in ("index.php", "program", "SQL", "skins"):
            os.symlink(os.path.join(SHARE, name), os.path.join(r, name))
        for name in sorted(os.listdir(os.path.join(SHARE, "plugins"))):
            os.symlink(os.path.join(SHARE, "plugins", name), os.path.join(r, "plugins", name))
        for name in ("defaults.inc.php", "mimetypes.php"):
            src = os.path.join(ETC, name)
            if os.path.exists(src):
                shutil.copy(src, os.path.join(r, "config", name))
        # Debian's public_html: index.php defines INSTALL_PATH as the parent
        # (realpath, so this dir must be real, not a symlink).
        pub = os.path.join(r, "public_html")
        with open(os.path.join(pub, "index.php"), "w") as f:
            f.write("<?php\ndefine('INSTALL_PATH', realpath(__DIR__ . '/..') . '/');\n"
                    "include INSTALL_PATH . 'index.php';\n")
        os.symlink("../plugins", os.path.join(pub, "plugins"))
        os.symlink("../skins", os.path.join(pub, "skins"))
        for name in ("js", "resources"):
            os.symlink(os.path.join("..", "..", "program", name),
                       os.path.join(pub, "program", name))

    def _config(self, password_dsn, password_query, extra):
        cfg = {
            "db_dsnw": "sqlite:///%s?mode=0640" % self.db,
            "imap_host": "tls://127.0.0.1:%d" % self.imap_port,
            "imap_conn_options": {"ssl": {"verify_peer": False, "verify_peer_name": False,
                                          "allow_self_signed": True}},
            "imap_timeout": 15,
            "smtp_host": "",
            "des_key": secrets.token_urlsafe(18)[:24],
            "product_name": "moonpost test",
            "skin": "elastic",
            "language": "en_US",
            "timezone": "UTC",
            "date_format": "Y-m-d",
            "time_format": "H:i",
            "date_long": "Y-m-d H:i",
            "pretty_date": False,
            "temp_dir": os.path.join(self.root, "temp") + "/",
            "log_dir": self.logs + "/",
            "log_driver": "file",
            "imap_debug": True,
            "sql_debug": False,
            "log_logins": True,
            "enable_installer": False,
            "enable_spellcheck": False,
            "create_default_folders": False,
            # Names that do not exist: the Drafts/Sent/Junk/Trash roles (and
            # their icons) can only come from the server's SPECIAL-USE.
            "drafts_mbox": "NoSuchDrafts",
            "sent_mbox": "NoSuchSent",
            "junk_mbox": "NoSuchJunk",
            "trash_mbox": "NoSuchTrash",
            "delete_junk": False,
            "flag_for_deletion": False,
            "skip_deleted": False,
            "refresh_interval": 0,
            "session_lifetime": 30,
            "login_rate_limit": 0,
            "mail_pagesize": 50,
            "message_show_email": True,
            "show_images": 0,
            "prefer_html": False,
            "plugins": ["password"] if password_dsn else [],
        }
        if password_dsn:
            cfg.update({
                "password_driver": "sql",
                "password_db_dsn": password_dsn,
                "password_query": password_query,
                "password_algorithm": self.password_algorithm,
                "password_algorithm_prefix": self.password_prefix,
                "password_confirm_current": True,
                "password_minimum_length": 8,
                "password_minimum_score": 0,
                "password_require_nonalpha": False,
                "password_log": True,
            })
        cfg.update(extra)
        self.config = cfg
        text = "<?php\n// generated by t/lib/roundcube.py\n$config = [];\n" + "".join(
            "$config[%s] = %s;\n" % (php_str(k), php_str(v)) for k, v in cfg.items())
        with open(os.path.join(self.root, "config", "config.inc.php"), "w") as f:
            f.write(text)

    def _initdb(self):
        schema = os.path.join(SHARE, "SQL", "sqlite.initial.sql")
        with open(schema) as f:
            r = subprocess.run([SQLITE3, self.db], stdin=f, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, timeout=60)
        if r.returncode != 0:
            raise RoundcubeError("sqlite3 < %s failed:\n%s" % (schema, r.stdout))

    def _start(self, workers, timeout=20):
        env = dict(os.environ)
        env["PHP_CLI_SERVER_WORKERS"] = str(workers)
        env["ROUNDCUBE_CONFIG_DIR"] = os.path.join(self.root, "config")
        self._log_file = open(self.server_log, "ab")
        self.proc = subprocess.Popen(
            [PHP, "-S", "127.0.0.1:%d" % self.port, "-t", os.path.join(self.root, "public_html"),
             "-d", "display_errors=stderr", "-d", "log_errors=1",
             "-d", "error_log=" + os.path.join(self.logs, "php-errors.log"),
             "-d", "upload_max_filesize=20M", "-d", "post_max_size=20M",
             "-d", "memory_limit=256M", "-d", "session.gc_probability=0"],
            cwd=self.root, stdin=subprocess.DEVNULL, stdout=self._log_file,
            stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + timeout
        last = None
        while True:
            if self.proc.poll() is not None:
                raise RoundcubeError("php -S exited with %s\n%s"
                                     % (self.proc.returncode, self.log("php-server")))
            try:
                with urllib.request.urlopen(self.url, timeout=5) as resp:
                    body = resp.read().decode("utf-8", "replace")
                if 'name="_user"' in body:
                    return
                last = "no login form in the page:\n" + body[:2000]
            except (OSError, urllib.error.URLError) as e:
                last = "%s: %s" % (type(e).__name__, e)
            if time.monotonic() > deadline:
                raise RoundcubeError("Roundcube did not show its login page within %ss "
                                     "(last: %s)\n%s" % (timeout, last, self.log("errors")))
            time.sleep(0.1)

    # -- logs --

    def log(self, name, tail=60):
        """Tail of a log: "imap", "errors", "userlogins", "password",
        "php-errors", "php-server" (the built-in server's own output)."""
        path = (self.server_log if name == "php-server"
                else os.path.join(self.logs, name + ".log"))
        try:
            with open(path, errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            return "(no %s)" % path
        return "\n".join(lines[-tail:])

    def log_text(self, name):
        try:
            with open(os.path.join(self.logs, name + ".log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    # -- lifecycle --

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=10)
        if self._log_file:
            self._log_file.close()
            self._log_file = None

    def cleanup(self, keep=False):
        """Stop the server, drop the dir (kept with keep=True or
        MOONPOST_KEEP_TMP=1)."""
        self.stop()
        if self in _live:
            _live.remove(self)
        if keep or os.environ.get("MOONPOST_KEEP_TMP") == "1":
            return
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()
        return False


class BrowserError(Exception):
    pass


class Browser:
    """node t/lib/roundcube_drive.js: headless Chromium on Roundcube.

    call(op, **args) sends {"op": op, ...} and returns the answer dict;
    an answer with "error" raises BrowserError (with the driver's stderr tail).
    Screenshots go to shots_dir (NN-name.png, numbered in order).
    """

    def __init__(self, rc, shots_dir, timeout=20):
        self.rc = rc
        self.shots_dir = shots_dir
        os.makedirs(shots_dir, exist_ok=True)
        self.stderr_path = os.path.join(rc.dir, "driver.stderr")
        self._stderr = open(self.stderr_path, "wb")
        env = dict(os.environ)
        env["NODE_PATH"] = NODE_MODULES
        self.proc = subprocess.Popen(
            ["node", DRIVER, json.dumps({"url": rc.url, "shots": shots_dir,
                                         "chromium": CHROMIUM,
                                         "timeout": timeout * 1000})],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            env=env, text=True, bufsize=1, start_new_session=True)
        try:
            self.call("ping")
        except BaseException:
            self.close()
            raise

    def stderr_tail(self, n=40):
        try:
            with open(self.stderr_path, errors="replace") as f:
                return "\n".join(f.read().splitlines()[-n:])
        except OSError:
            return ""

    def call(self, op, **args):
        if self.proc.poll() is not None:
            raise BrowserError("driver exited with %s\n%s" % (self.proc.returncode,
                                                              self.stderr_tail()))
        req = dict(args, op=op)
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        # The driver answers every request (it catches its own errors); a
        # hung browser is caught by Playwright's own timeouts, and a dead
        # driver gives EOF here.
        line = self.proc.stdout.readline()
        if not line:
            raise BrowserError("driver died during %r\n%s" % (op, self.stderr_tail()))
        ans = json.loads(line)
        if ans.get("error"):
            raise BrowserError("%s: %s\n(screenshot: %s)\n%s" % (op, ans["error"], ans.get("shot"),
                                                               self.stderr_tail(10)))
        return ans

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=15)
            except (OSError, subprocess.TimeoutExpired, ValueError):
                pass
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)
        else:
            # Chromium children left in the group, if any.
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self._stderr.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
