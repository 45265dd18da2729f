#!/usr/bin/env python3
# Password hashes interoperate with Dovecot both ways: what `doveadm pw`
# makes, `moonpost pw verify` accepts (and rejects wrong passwords), and what
# `moonpost pw hash` makes, `doveadm pw -t` accepts, for every scheme.
# Malformed hashes are an error with a message, not a "no match".  On
# MariaDB: doveadm-made hashes stored in virtual_users (as an ISPmail site
# has them) verify, CLI-stored hashes verify with doveadm, and - once the
# daemon offers AUTH - they log in over SMTP AUTH.
import os
import shutil
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

import mariadb  # noqa: E402
import mpcli  # noqa: E402
import mpd  # noqa: E402
import tap  # noqa: E402

mpcli.require_binary()
DOVEADM = shutil.which("doveadm")
if DOVEADM is None:
    tap.skip_all("doveadm not installed (Debian package dovecot-core)")

SCHEMES = ["ARGON2ID", "ARGON2I", "BLF-CRYPT", "SHA512-CRYPT", "SHA256-CRYPT",
           "SSHA512", "SSHA256"]
PW = "secret"
# Non-ASCII, blanks, a colon, braces, a dollar and a backslash: bytes must
# reach both implementations unchanged.
ODD = "p\u00e4ss w\u00f6rd:{x}$1\\ \u20ac"
ODD_SCHEMES = ["ARGON2ID", "BLF-CRYPT", "SHA512-CRYPT", "SSHA512"]

ws = mpcli.Workspace("file", name="pw")
# doveadm reads a config even for `pw`; an empty one keeps the system's
# /etc/dovecot out of it.
DOVECONF = os.path.join(ws.dir, "dovecot-empty.conf")
open(DOVECONF, "w").close()


def doveadm(*args):
    return subprocess.run([DOVEADM, "-c", DOVECONF, "pw"] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=60, cwd=ws.dir)


def dove_hash(scheme, password, *extra):
    r = doveadm("-s", scheme, "-p", password, *extra)
    if r.returncode != 0:
        raise RuntimeError("doveadm pw -s %s failed: %s" % (scheme, r.stderr))
    return r.stdout.strip()


def dove_verifies(h, password):
    return doveadm("-t", h, "-p", password)


def mp_verify(h, password, **kw):
    return ws.run("pw", "verify", h, input=password + "\n", **kw)


def mp_hash(scheme, password, **kw):
    args = ["pw", "hash"] + (["-s", scheme] if scheme else [])
    return ws.run(*args, input=password + "\n", **kw)


def verify_ok(h, password, desc):
    r = mp_verify(h, password)
    tap.ok(r.rc == 0 and r.out == "match\n" and r.err == "", desc, repr(r))


def verify_no(h, password, desc):
    r = mp_verify(h, password)
    tap.ok(r.rc == 1 and r.out == "no match\n" and r.err == "", desc, repr(r))


def verify_bad(h, desc):
    r = mp_verify(h, PW)
    tap.ok(r.rc == 1 and r.out == "" and len(r.err.splitlines()) == 1
           and r.err.startswith("moonpost: "), desc, repr(r))


with tap.section("doveadm -> moonpost"):
    for s in SCHEMES:
        h = dove_hash(s, PW)
        tap.ok(h.startswith("{%s}" % s), "doveadm made a %s hash" % s, h)
        verify_ok(h, PW, "moonpost pw verify accepts doveadm's %s" % s)
        verify_no(h, "wrong", "moonpost pw verify rejects a wrong password (%s)" % s)
        verify_no(h, PW + " ", "and one with a trailing blank (%s)" % s)
    for s in ODD_SCHEMES:
        h = dove_hash(s, ODD)
        verify_ok(h, ODD, "non-ASCII password, doveadm %s -> moonpost" % s)
        verify_no(h, ODD[:-1], "non-ASCII password one char short fails (%s)" % s)
    # Variants real sites have: other costs/rounds, other encodings, other
    # bcrypt prefixes, lower-case scheme names, the default scheme (no {}).
    variants = [
        ("BLF-CRYPT cost 6", dove_hash("BLF-CRYPT", PW, "-r", "6")),
        ("SHA512-CRYPT rounds=10000", dove_hash("SHA512-CRYPT", PW, "-r", "10000")),
        ("SHA256-CRYPT rounds=6000", dove_hash("SHA256-CRYPT", PW, "-r", "6000")),
        ("SSHA512.HEX", dove_hash("SSHA512.HEX", PW)),
        ("SHA512 (unsalted)", dove_hash("SHA512", PW)),
        ("SHA256.HEX", dove_hash("SHA256.HEX", PW)),
        ("MD5-CRYPT", dove_hash("MD5-CRYPT", PW)),
        ("ISPmail guide example", "{BLF-CRYPT}$2y$05$m.GdQNMyUFNG0vPsaXxSB.0ZQqZhe1e9Un841oBcWi6U6HRF2Kmky"),
    ]
    blf = dove_hash("BLF-CRYPT", PW)
    variants += [
        ("BLF-CRYPT with $2b$", blf.replace("$2y$", "$2b$", 1)),
        ("BLF-CRYPT with $2a$", blf.replace("$2y$", "$2a$", 1)),
        ("lower-case scheme name", "{blf-crypt}" + blf[len("{BLF-CRYPT}"):]),
        ("no {SCHEME}: CRYPT, as Dovecot's default", blf[len("{BLF-CRYPT}"):]),
    ]
    for name, h in variants:
        if name == "ISPmail guide example":
            # The guide's hash is of an unknown password: only "no match" is certain,
            # and it must parse.
            verify_no(h, "wrong", "moonpost parses the %s (no match for a wrong one)" % name)
            continue
        verify_ok(h, PW, "moonpost pw verify accepts %s" % name)
        verify_no(h, "wrong", "and rejects a wrong password (%s)" % name)

with tap.section("moonpost -> doveadm"):
    for s in SCHEMES:
        r = mp_hash(s, PW)
        h = r.out.strip()
        tap.ok(r.rc == 0 and r.err == "" and len(r.lines) == 1 and h.startswith("{%s}" % s),
               "moonpost pw hash -s %s prints one {%s} line" % (s, s), repr(r))
        d = dove_verifies(h, PW)
        tap.ok(d.returncode == 0 and "(verified)" in d.stdout,
               "doveadm pw -t accepts moonpost's %s" % s, h, d.stdout, d.stderr)
        d = dove_verifies(h, "wrong")
        tap.ok(d.returncode != 0, "doveadm rejects a wrong password for moonpost's %s" % s,
               d.stdout, d.stderr)
        verify_ok(h, PW, "moonpost verifies its own %s" % s)
        r2 = mp_hash(s, PW)
        tap.ok(r2.rc == 0 and r2.out.strip() != h, "two %s hashes differ (salted)" % s,
               h, r2.out)
    for s in ODD_SCHEMES:
        h = mp_hash(s, ODD).out.strip()
        d = dove_verifies(h, ODD)
        tap.ok(d.returncode == 0, "non-ASCII password, moonpost %s -> doveadm" % s,
               h, d.stdout, d.stderr)
    r = ws.run("pw", "hash", input=PW + "\r\n")
    h = r.out.strip()
    tap.ok(r.rc == 0 and h.startswith("{ARGON2ID}$argon2id$"),
           "pw hash defaults to ARGON2ID", repr(r))
    tap.ok(dove_verifies(h, PW).returncode == 0, "a CRLF-terminated password is read "
           "without the CR")
    r = ws.run("pw", "hash", input=PW + "\n", conf=False,
               conf_env=os.path.join(ws.dir, "no-such.conf"))
    tap.ok(r.rc == 0 and r.out.startswith("{ARGON2ID}"),
           "pw hash works without a config file", repr(r))
    alt = ws.write_config(os.path.join(ws.dir, "sha.conf"),
                          directory={"password_scheme": "SHA512-CRYPT"})
    r = ws.run("pw", "hash", input=PW + "\n", conf=alt)
    tap.ok(r.rc == 0 and r.out.startswith("{SHA512-CRYPT}$6$"),
           "pw hash follows directory.password_scheme", repr(r))

with tap.section("malformed and refused"):
    verify_bad("{BLF-CRYPT}$2y$05$short", "truncated bcrypt: error with a message")
    verify_bad("{NOSUCH}abcdef", "unknown scheme: error with a message")
    verify_bad("{SSHA512}!!!not base64!!!", "SSHA512 that is not base64: error")
    verify_bad("{SSHA512}c2hvcnQ=", "SSHA512 shorter than a digest: error")
    verify_bad("{SHA512-CRYPT}$2y$05$m.GdQNMyUFNG0vPsaXxSB.0ZQqZhe1e9Un841oBcWi6U6HRF2Kmky",
               "SHA512-CRYPT holding a bcrypt hash: error, not a silent match")
    verify_bad("{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$bm9zYWx0$",
               "argon2 without a digest: error")
    verify_bad("{ARGON2ID}" + "x" * 5000, "over-long stored hash: error")
    verify_bad("{PLAIN}secret", "{PLAIN} is refused by default")
    r = ws.run("pw", "hash", "-s", "PLAIN", input=PW + "\n")
    tap.ok(r.rc != 0 and r.err.startswith("moonpost: "), "pw hash -s PLAIN refused by default",
           repr(r))
    r = ws.run("pw", "hash", "-s", "NOSUCH", input=PW + "\n")
    tap.ok(r.rc != 0 and r.out == "" and r.err.startswith("moonpost: "),
           "pw hash -s NOSUCH: error with a message", repr(r))
    plain = ws.write_config(os.path.join(ws.dir, "plain.conf"),
                            directory={"allow_plaintext_passwords": True})
    r = ws.run("pw", "verify", "{PLAIN}secret", input=PW + "\n", conf=plain)
    tap.ok(r.rc == 0 and r.out == "match\n", "{PLAIN} verifies with allow_plaintext_passwords",
           repr(r))
    verify_no(dove_hash("BLF-CRYPT", PW), "", "an empty password is no match")
    r = ws.run("pw", "verify", dove_hash("SHA512-CRYPT", PW), input="")
    tap.ok(r.rc != 0 and r.out == "", "no password on stdin: error, not a match", repr(r))
    r = ws.run("pw", "verify", input=PW + "\n")
    tap.ok(r.rc != 0, "pw verify without a hash is a usage error", repr(r))

ws.check_sanitizers()


# ------------------------------------------------------------------ MariaDB --

def store_raw_user(db, email, h):
    db.sql("INSERT INTO virtual_users (domain_id, email, password) SELECT id, %s, %s "
           "FROM virtual_domains WHERE name=%s"
           % (mariadb.sql_quote(email), mariadb.sql_quote(h),
              mariadb.sql_quote(email.rsplit("@", 1)[1])), db="mailserver")


def daemon_logins(mws, settings, logins):
    """logins: [(email, password, code, desc)]; SKIP until the daemon offers AUTH."""
    directory = {"backend": "mariadb", "mariadb": settings, "cache_ttl": 0,
                 "negative_ttl": 0, "maildir": mws.vmail + "/%d/%n/Maildir"}
    with mpcli.auth_daemon(directory) as d:
        port = d.ports["auth"]
        if "PLAIN" not in mpcli.auth_mechanisms(mpcli.ehlo(port)):
            for _, _, _, desc in logins:
                tap.skip("daemon: " + desc, "moonpostd does not offer AUTH PLAIN yet")
            return
        for email, pw, code, desc in logins:
            r, took = mpcli.auth_plain(port, email, pw)
            tap.ok(r.code == code, "daemon: " + desc, "%r after %.2fs" % (r.lines, took))


if not mariadb.available():
    tap.skip("mariadb: stored hashes", "MariaDB server/client not installed")
else:
    with tap.section("mariadb"):
        with mariadb.MariaDB() as db:
            settings = db.create_ispmail()
            mws = mpcli.Workspace("mariadb", mariadb=settings, name="pw-mdb")
            mws.ok_run("mariadb: domain add", "domain", "add", "example.org")
            dove = {}
            for s in ODD_SCHEMES:
                email = "dv-%s@example.org" % s.lower()
                dove[email] = dove_hash(s, PW)
                store_raw_user(db, email, dove[email])
            # jane as in the ISPmail anchor: doveadm's BLF-CRYPT of "secret".
            store_raw_user(db, "jane@example.org", dove_hash("BLF-CRYPT", PW))
            for email, h in sorted(dove.items()):
                rows = db.sql("SELECT password FROM virtual_users WHERE email=%s"
                              % mariadb.sql_quote(email), db="mailserver",
                              user=settings["user"], password=settings["password"], tcp=True)
                tap.is_(rows, [[h]], "mariadb: %s read back unchanged by the read-only "
                        "user" % email)
                verify_ok(rows[0][0] if rows else "", PW,
                          "mariadb: stored doveadm hash of %s verifies" % email)
                r = mws.run("lookup", email)
                tap.ok(r.rc == 0 and r.out.startswith(email + ": mailbox "),
                       "mariadb: lookup finds %s" % email, repr(r))
            cli_users = {}
            for s in SCHEMES:
                email = "mp-%s@example.org" % s.lower()
                mws.ok_run("mariadb: user add %s --scheme %s" % (email, s),
                           "user", "add", email, "--scheme", s, input=PW + "\n")
                rows = db.sql("SELECT password FROM virtual_users WHERE email=%s"
                              % mariadb.sql_quote(email), db="mailserver")
                h = rows[0][0] if rows else ""
                cli_users[email] = h
                d = dove_verifies(h, PW)
                tap.ok(d.returncode == 0, "mariadb: doveadm verifies the CLI-stored %s hash" % s,
                       h, d.stdout, d.stderr)
            mws.ok_run("mariadb: user passwd to an odd password", "user", "passwd",
                       "mp-blf-crypt@example.org", "--scheme", "BLF-CRYPT", input=ODD + "\n")
            h = db.sql("SELECT password FROM virtual_users WHERE email='mp-blf-crypt@example.org'",
                       db="mailserver")[0][0]
            tap.ok(dove_verifies(h, ODD).returncode == 0,
                   "mariadb: doveadm verifies the odd password set by user passwd", h)
            logins = [("jane@example.org", PW, 235, "doveadm BLF-CRYPT (jane) logs in"),
                      ("jane@example.org", "wrong", 535, "jane with a wrong password: 535"),
                      ("mp-blf-crypt@example.org", ODD, 235, "non-ASCII password logs in")]
            logins += [(e, PW, 235, "doveadm-made %s logs in" % e) for e in sorted(dove)]
            logins += [(e, PW, 235, "CLI-made %s logs in" % e) for e in sorted(cli_users)
                       if "blf" not in e]
            with tap.section("mariadb: daemon AUTH"):
                daemon_logins(mws, settings, logins)
            mws.cleanup()

tap.done()
