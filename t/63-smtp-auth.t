#!/usr/bin/env python3
# SMTP AUTH (RFC 4954) on submission listeners against the file directory:
# PLAIN and LOGIN, every refusal code, pipelining across the asynchronous
# password check, a client vanishing mid-check, and the per-IP login penalty
# (20 wrong passwords slow that IP down, not others).
import base64
import os
import socket
import subprocess
import sys
import time
import threading

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

import mpd  # noqa: E402
import tap  # noqa: E402
from mpd import SMTPClient  # noqa: E402

mpd.require_binary()
CLI = os.path.join(os.path.dirname(mpd.binary()), "moonpost")


def b64(s):
    return base64.b64encode(s.encode()).decode()


def plain(user, pw, authz=""):
    return b64("%s\0%s\0%s" % (authz, user, pw))


def make_directory(path):
    h = subprocess.run([CLI, "pw", "hash", "-s", "BLF-CRYPT"], input="secret\n",
                       capture_output=True, text=True, check=True).stdout.strip()
    with open(path, "w") as f:
        f.write("domain example.org\nuser john@example.org %s\n"
                "user jane@example.org %s\n" % (h, h))


class Client(SMTPClient):
    """SMTPClient from a chosen loopback source address."""

    def __init__(self, port, source="127.0.0.1", timeout=15):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                             source_address=(source, 0))
        self.buf = b""


def ehlo(c):
    c.reply()
    return c.cmd("EHLO client.test")


def main():
    d = mpd.Daemon(start=False)
    dirfile = os.path.join(d.dir, "directory")
    make_directory(dirfile)
    plain_port, tls_port = mpd.free_port(), mpd.free_port()
    d.config["listen"].extend([
        {"address": "127.0.0.1", "port": plain_port, "protocol": "submission",
         "tls": "none", "plaintext_auth": True},
        {"address": "127.0.0.1", "port": tls_port, "protocol": "submission",
         "tls": "starttls"},
    ])
    d.write_config({"directory": {"backend": "file", "file": dirfile, "penalty_max": 1,
                                  "maildir": os.path.join(d.dir, "vmail/%d/%n/Maildir")}})
    d.start()
    try:
        conversation(d, plain_port, tls_port)
        penalty(plain_port)
    finally:
        d.stop()
        d.cleanup()


def conversation(d, port, tls_port):
    with Client(port) as c:
        c.reply()
        tap.is_(c.cmd("AUTH PLAIN " + plain("john@example.org", "secret")).code, 503,
                "AUTH before EHLO: 503")
        r = c.cmd("EHLO client.test")
        tap.ok("AUTH PLAIN LOGIN" in r.text, "EHLO advertises AUTH PLAIN LOGIN (plaintext allowed here)")
        tap.is_(c.cmd("AUTH CRAM-MD5").code, 504, "unknown mechanism: 504")
        tap.is_(c.cmd("AUTH PLAIN !!!!").code, 501, "bad base64: 501")
        tap.is_(c.cmd("AUTH PLAIN " + plain("john@example.org", "wrong")).code, 535,
                "wrong password: 535 5.7.8")
        tap.is_(c.cmd("AUTH PLAIN " + plain("nobody@example.org", "secret")).code, 535,
                "unknown user: the same 535")
        tap.is_(c.cmd("AUTH PLAIN " + plain("john@example.org", "secret", "jane@example.org")).code,
                535, "authzid other than authcid refused")
        r = c.cmd("AUTH PLAIN")
        tap.is_(r.lines, ["334 "], "PLAIN without initial response: 334")
        tap.is_(c.cmd("*").code, 501, "client cancels with *: 501")
        r = c.cmd("AUTH PLAIN " + plain("JOHN@Example.ORG", "secret"))
        tap.is_(r.lines, ["235 2.7.0 Authentication successful"], "PLAIN succeeds (login case-insensitive)")
        tap.is_(c.cmd("AUTH PLAIN " + plain("john@example.org", "secret")).code, 503,
                "second AUTH: 503")
        c.cmd("QUIT")

    with Client(port) as c:
        ehlo(c)
        tap.is_(c.cmd("AUTH LOGIN").lines, ["334 VXNlcm5hbWU6"], "LOGIN asks Username:")
        tap.is_(c.cmd(b64("jane@example.org")).lines, ["334 UGFzc3dvcmQ6"], "then Password:")
        tap.is_(c.cmd(b64("secret")).code, 235, "LOGIN succeeds")

    with Client(port) as c:
        ehlo(c)
        tap.is_(c.cmd("AUTH LOGIN " + b64("jane@example.org")).lines, ["334 UGFzc3dvcmQ6"],
                "LOGIN with initial response goes straight to Password:")
        tap.is_(c.cmd(b64("nope")).code, 535, "LOGIN with a wrong password: 535")

    with Client(port) as c:
        ehlo(c)
        # The check runs on a pool thread; the NOOP pipelined behind it must
        # be answered after it, in order.
        c.send("AUTH PLAIN %s\r\nNOOP\r\n" % plain("john@example.org", "secret"))
        tap.is_([c.reply().code, c.reply().code], [235, 250], "pipelined AUTH then NOOP answered in order")

    # A client that leaves while its password is being checked.
    for _ in range(5):
        c = Client(port)
        ehlo(c)
        c.send("AUTH PLAIN %s\r\n" % plain("john@example.org", "secret"))
        c.close()
    with Client(port) as c:
        ehlo(c)
        tap.is_(c.cmd("AUTH PLAIN " + plain("john@example.org", "secret")).code, 235,
                "server fine after clients vanished mid-check")

    with Client(tls_port) as c:
        r = ehlo(c)
        tap.ok("AUTH" not in r.text, "no AUTH advertised before STARTTLS")
        tap.is_(c.cmd("AUTH PLAIN " + plain("john@example.org", "secret")).code, 538,
                "AUTH before TLS: 538 5.7.11")
        tap.is_(c.cmd("STARTTLS").code, 220, "STARTTLS")
        c.starttls(mpd.client_ctx())
        r = c.cmd("EHLO client.test")
        tap.ok("AUTH PLAIN LOGIN" in r.text, "AUTH advertised after STARTTLS")
        tap.is_(c.cmd("AUTH PLAIN " + plain("john@example.org", "secret")).code, 235,
                "AUTH over TLS succeeds")

    with Client(d.ports["smtp"]) as c:
        ehlo(c)
        tap.is_(c.cmd("AUTH PLAIN " + plain("john@example.org", "secret")).code, 502,
                "AUTH on the MX listener: 502")
    tap.ok(d.wait_log(r"event=auth result=fail user=\"john@example.org\"", 5),
           "failures are logged with the user")
    tap.ok("secret" not in open(d.log_path).read(), "the password never reaches the log")


def attempt(port, source, pw):
    """One AUTH from source; returns (code, seconds for the AUTH reply)."""
    with Client(port, source=source, timeout=30) as c:
        ehlo(c)
        t = time.monotonic()
        code = c.cmd("AUTH PLAIN " + plain("john@example.org", pw)).code
        return code, time.monotonic() - t


def penalty(port):
    # 20 wrong passwords from 127.0.0.2, five connections at a time so the
    # growing delays overlap.
    codes = []

    def hammer():
        with Client(port, source="127.0.0.2", timeout=60) as c:
            ehlo(c)
            for _ in range(4):
                codes.append(c.cmd("AUTH PLAIN " + plain("john@example.org", "bad")).code)

    threads = [threading.Thread(target=hammer) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    tap.is_(codes, [535] * 20, "20 wrong passwords from 127.0.0.2 all refused")
    code, slow = attempt(port, "127.0.0.2", "secret")
    tap.ok(slow >= 0.9, "127.0.0.2 is now slowed down (%.2fs, penalty_max 1s)" % slow)
    tap.is_(code, 235, "a right password still works after the penalty")
    code, fast = attempt(port, "127.0.0.3", "secret")
    tap.ok(code == 235 and fast < 0.5, "127.0.0.3 is not slowed down (%.2fs)" % fast)
    code, after = attempt(port, "127.0.0.2", "secret")
    tap.ok(code == 235 and after < 0.5, "a successful login clears the IP's penalty (%.2fs)" % after)


main()
tap.done()
