#!/usr/bin/env python3
# The minimal SMTP session: greeting, EHLO/HELO/NOOP/RSET/QUIT, error
# handling and limits, pipelining, STARTTLS (incl. the plaintext-injection
# attack), implicit TLS, idle timeout, 200 concurrent sessions, and TLS < 1.2
# being refused.
import os
import re
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import threading
import time
import warnings

# ssl.TLSVersion.TLSv1_1 is deprecated; we use it on purpose (must be refused).
warnings.simplefilter("ignore", DeprecationWarning)
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

import mpd  # noqa: E402
import tap  # noqa: E402
from mpd import SMTPClient  # noqa: E402

mpd.require_binary()

HOST = "mx.smtp.test"
ERRORS_MAX = 3


def ehlo_keywords(reply):
    return {line[4:].split()[0].upper() for line in reply.lines[1:] if len(line) > 4}


def tls11_ctx():
    # Old protocols need SECLEVEL 0 in OpenSSL 3 even to be offered.
    ctx = mpd.client_ctx(min_version=ssl.TLSVersion.TLSv1,
                         max_version=ssl.TLSVersion.TLSv1_1)
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    return ctx


def local_tls11_works(cert, key):
    """Can this Python/OpenSSL speak TLS 1.1 at all (to a local server that
    allows it)?  If not, a refused 1.1 handshake would prove nothing."""
    try:
        sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        sctx.minimum_version = ssl.TLSVersion.TLSv1_1
        sctx.maximum_version = ssl.TLSVersion.TLSv1_1
        sctx.set_ciphers("ALL:@SECLEVEL=0")
        sctx.load_cert_chain(cert, key)
        cctx = tls11_ctx()
    except (ssl.SSLError, ValueError, AttributeError):
        return False
    a, b = socket.socketpair()
    a.settimeout(5)
    b.settimeout(5)

    def serve():
        try:
            with sctx.wrap_socket(b, server_side=True):
                pass
        except (ssl.SSLError, OSError):
            pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        with cctx.wrap_socket(a) as s:
            return s.version() == "TLSv1.1"
    except (ssl.SSLError, OSError):
        return False
    finally:
        t.join(5)
        b.close()


def _greets(port):
    try:
        with SMTPClient(port, timeout=5) as c:
            return c.reply().code == 220
    except (OSError, EOFError):
        return False


with tap.section("main daemon"):
    with mpd.Daemon({"hostname": HOST, "smtp": {"errors_max": ERRORS_MAX,
                                                "connections_per_ip": 1000}}) as d:
        smtp_port = d.ports["smtp"]
        sub_port = d.ports["submission"]
        verify = mpd.client_ctx(cafile=d.cert)  # our cert must be what is served

        with tap.section("basic commands"):
            with SMTPClient(smtp_port) as c:
                g = c.reply()
                tap.like(g.text, r"^220 %s ESMTP moonpost" % re.escape(HOST),
                         "greeting: 220 <hostname> ESMTP moonpost")
                r = c.cmd("EHLO client.test")
                tap.is_(r.code, 250, "EHLO: 250")
                tap.like(r.lines[0], r"^250[- ]%s\b" % re.escape(HOST), "EHLO: names the host")
                kw = ehlo_keywords(r)
                for ext in ("PIPELINING", "ENHANCEDSTATUSCODES", "STARTTLS"):
                    tap.ok(ext in kw, "EHLO advertises %s" % ext, r.text)
                tap.is_(c.cmd("HELO client.test").code, 250, "HELO: 250")
                tap.like(c.cmd("NOOP").text, r"^250 2\.0\.0 OK", "NOOP: 250 2.0.0 OK")
                tap.like(c.cmd("RSET").text, r"^250 2\.0\.0 OK", "RSET: 250 2.0.0 OK")
                tap.like(c.cmd("noop").text, r"^250 2\.0\.0", "commands are case-insensitive")
                tap.like(c.cmd("NOOP " + "y" * 400).text, r"^250 ",
                         "a 405-byte line is within line_max")
                r = c.cmd("QUIT")
                tap.like(r.text, r"^221 2\.0\.0 Bye", "QUIT: 221 2.0.0 Bye")
                tap.ok(c.wait_eof(), "QUIT: server closes the connection")
            # No directory in this daemon: the transaction starts, but no
            # recipient can be accepted (the receive tests cover the rest).
            with SMTPClient(smtp_port) as c:
                c.reply()
                c.cmd("EHLO client.test")
                tap.like(c.cmd("DATA").text, r"^503 5\.5\.1", "DATA before MAIL: 503 5.5.1")
                tap.like(c.cmd("RCPT TO:<b@example.org>").text, r"^503 5\.5\.1",
                         "RCPT before MAIL: 503 5.5.1")
                tap.like(c.cmd("MAIL FROM:<a@example.org>").text, r"^250 2\.1\.0", "MAIL: 250")
                tap.like(c.cmd("RCPT TO:<b@example.org>").text, r"^451 4\.3\.0",
                         "RCPT without a directory: 451 4.3.0, never 'unknown'")
                tap.like(c.cmd("DATA").text, r"^554 5\.5\.1", "DATA without recipients: 554 5.5.1")

        with tap.section("errors and limits"):
            with SMTPClient(smtp_port) as c:
                c.reply()
                tap.like(c.cmd("XYZZY").text, r"^500 5\.5\.2", "unknown command: 500 5.5.2")
                tap.like(c.cmd("NOOP " + "x" * 595).text, r"^500 5\.5\.6",
                         "600-byte line: 500 5.5.6")
                tap.like(c.cmd("NOOP").text, r"^250 ", "session goes on after a long line")
            with SMTPClient(smtp_port) as c:
                # A huge line must give one reply, not one per chunk, and no crash.
                c.reply()
                c.send(b"NOOP " + b"z" * 100000 + b"\r\n")
                tap.like(c.reply().text, r"^500 5\.5\.6", "100 KB line: 500 5.5.6")
                tap.like(c.cmd("NOOP").text, r"^250 ", "100 KB line: one reply, session goes on")
            with SMTPClient(smtp_port) as c:
                c.reply()
                replies, closed = [], False
                for i in range(ERRORS_MAX + 2):
                    try:
                        c.send("BOGUS%d\r\n" % i)
                        r = c.reply()
                    except (EOFError, ConnectionError):
                        closed = True
                        break
                    replies.append(r)
                    if r.code == 421:
                        break
                    if len(replies) >= ERRORS_MAX and c.pending(0.5):
                        # The 421 may come right after the last 500, unasked.
                        replies.append(c.reply())
                        if replies[-1].code == 421:
                            break
                codes = [r.code for r in replies]
                tap.ok(replies and replies[-1].code == 421
                       and replies[-1].lines[-1].startswith("421 4.7.0"),
                       "errors_max=%d: 421 4.7.0 after too many errors" % ERRORS_MAX,
                       "replies: %r closed-early: %s" % (replies, closed))
                tap.ok(codes.count(500) in (ERRORS_MAX - 1, ERRORS_MAX),
                       "errors_max=%d: the 421 comes at the limit, not before/after" % ERRORS_MAX,
                       "codes: %r" % codes)
                tap.ok(c.wait_eof(), "errors_max: server closes after 421")

        with tap.section("pipelining"):
            with SMTPClient(smtp_port) as c:
                c.reply()
                c.cmd("EHLO client.test")
                c.send("NOOP\r\nNOOP\r\nNOOP\r\n")
                tap.is_([c.reply().code for _ in range(3)], [250, 250, 250],
                        "three pipelined NOOPs: three 250 replies")
                c.send("RSET\r\nXYZZY\r\nNOOP\r\n")
                got = [c.reply().lines[-1][:9] for _ in range(3)]
                tap.is_(got, ["250 2.0.0", "500 5.5.2", "250 2.0.0"],
                        "pipelined RSET/XYZZY/NOOP: replies in order")
                tap.is_(c.pending(0.2), b"", "no extra replies")
                # A command split across TCP segments is reassembled.
                for part in (b"NO", b"OP\r", b"\nNO", b"OP\r\n"):
                    c.send(part)
                    time.sleep(0.02)
                tap.is_([c.reply().code, c.reply().code], [250, 250],
                        "commands split across writes are reassembled")
                tap.like(c.cmd("QUIT").text, r"^221 ", "QUIT after pipelining")

        with tap.section("STARTTLS (smtplib)"):
            # Connecting via the constructor makes smtplib verify the cert for the
            # IP it connected to (the cert has an IP SAN for 127.0.0.1).
            s = smtplib.SMTP("127.0.0.1", smtp_port, timeout=10)
            tap.is_(s.noop()[0], 250, "smtplib connects")
            s.ehlo("client.test")
            tap.ok(s.has_extn("starttls"), "smtplib sees STARTTLS")
            code, msg = s.starttls(context=verify)
            tap.is_((code, msg), (220, b"2.0.0 Ready to start TLS"),
                    "STARTTLS: 220 2.0.0 Ready to start TLS; cert verifies")
            code, _ = s.ehlo("client.test")
            tap.is_(code, 250, "EHLO over TLS: 250")
            tap.ok(not s.has_extn("starttls"), "STARTTLS not advertised once TLS is on",
                   str(s.esmtp_features))
            tap.ok(s.has_extn("pipelining"), "PIPELINING still advertised over TLS")
            tap.ok(s.sock.version() in ("TLSv1.2", "TLSv1.3"), "TLS >= 1.2 negotiated",
                   s.sock.version())
            tap.is_(s.noop()[0], 250, "NOOP over TLS")
            code, _ = s.docmd("STARTTLS")
            tap.ok(code >= 400, "STARTTLS inside TLS is refused", "got %d" % code)
            tap.is_(s.quit()[0], 221, "QUIT over TLS: 221")

        with tap.section("implicit TLS (smtplib)"):
            with SMTPClient(sub_port, tls_ctx=verify) as c:
                tap.like(c.reply().text, r"^220 %s ESMTP moonpost" % re.escape(HOST),
                         "implicit TLS: greeting names the host; cert verifies")
                tap.like(c.cmd("QUIT").text, r"^221 ", "implicit TLS: raw QUIT")
            # smtplib checks the cert against the host it connects to (IP SAN).
            s = smtplib.SMTP_SSL("127.0.0.1", sub_port, timeout=10, context=verify)
            code, _ = s.ehlo("client.test")
            tap.is_(code, 250, "implicit TLS: EHLO 250")
            tap.ok(not s.has_extn("starttls"), "implicit TLS: no STARTTLS advertised")
            tap.is_(s.noop()[0], 250, "implicit TLS: NOOP")
            tap.is_(s.quit()[0], 221, "implicit TLS: QUIT 221")
            with SMTPClient(sub_port) as c:
                tap.unlike(c.pending(1.0).decode("latin-1"), r"^220",
                           "implicit TLS port sends no plaintext greeting")

        with tap.section("openssl s_client"):
            r = subprocess.run(["openssl", "s_client", "-starttls", "smtp", "-connect",
                                "127.0.0.1:%d" % smtp_port, "-CAfile", d.cert,
                                "-verify_return_error", "-quiet", "-crlf"],
                               input="QUIT\n", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, timeout=30)
            tap.like(r.stdout, r"^221 2\.0\.0", "s_client -starttls smtp: QUIT gets 221 over TLS",
                     "stderr: " + r.stderr)

        with tap.section("STARTTLS plaintext injection"):
            with SMTPClient(smtp_port) as c:
                c.reply()
                # One write: the NOOP sits in the server's buffer when TLS starts.
                c.send("EHLO x\r\nSTARTTLS\r\nNOOP\r\n")
                tap.is_(c.reply().code, 250, "injection: EHLO answered")
                tap.like(c.reply().text, r"^220 2\.0\.0", "injection: 220 Ready to start TLS")
                tap.is_(c.pending(0.3), b"", "injection: NOOP not answered in plaintext")
                c.starttls(mpd.client_ctx())
                r = c.cmd("EHLO y")
                tap.like(r.lines[0], r"^250[- ]%s\b" % re.escape(HOST),
                         "injection: first reply inside TLS is the EHLO, not the NOOP",
                         repr(r))
                tap.is_(c.pending(0.3), b"", "injection: nothing else pending")
                tap.like(c.cmd("NOOP").text, r"^250 2\.0\.0", "NOOP over TLS after injection")
                tap.like(c.cmd("QUIT").text, r"^221 ", "QUIT")

        with tap.section("TLS versions"):
            with SMTPClient(sub_port, tls_ctx=mpd.client_ctx(
                    max_version=ssl.TLSVersion.TLSv1_2)) as c:
                tap.is_(c.sock.version(), "TLSv1.2", "TLS 1.2 is accepted")
                tap.is_(c.reply().code, 220, "TLS 1.2: greeting")
            if local_tls11_works(d.cert, d.key):
                for name, port, starttls in (("implicit", sub_port, False),
                                             ("STARTTLS", smtp_port, True)):
                    try:
                        with SMTPClient(port) as c:
                            if starttls:
                                c.reply()
                                c.cmd("EHLO client.test")
                                c.cmd("STARTTLS")
                            c.starttls(tls11_ctx())
                            version = c.sock.version()
                        tap.ok(False, "TLS 1.1 refused (%s)" % name, "negotiated " + version)
                    except (ssl.SSLError, OSError, EOFError) as e:
                        tap.ok(True, "TLS 1.1 refused (%s)" % name)
                        tap.diag("  %s" % e)
            else:
                tap.skip("TLS 1.1 refused", "local OpenSSL cannot offer TLS 1.1")

        with tap.section("200 concurrent sessions"):
            clients = []
            try:
                for _ in range(200):
                    clients.append(SMTPClient(smtp_port, timeout=30))
                greeted = sum(1 for c in clients if c.reply().code == 220)
                tap.is_(greeted, 200, "200 concurrent connections all get 220")
                for c in clients:
                    c.send("QUIT\r\n")
                byes = sum(1 for c in clients if c.reply().code == 221 and c.wait_eof())
                tap.is_(byes, 200, "all 200 QUIT cleanly (221 and close)")
            finally:
                for c in clients:
                    c.close()
            with SMTPClient(smtp_port) as c:
                tap.is_(c.reply().code, 220, "still serving after the burst")

        with tap.section("connection limits"):
            # Per client IP, counted across both workers.
            d.write_config({"smtp": {"connections_per_ip": 5, "connections_max": 8}})
            d.signal(signal.SIGHUP)
            tap.ok(d.wait_log(r"event=reload status=ok", 10), "reload with tight limits")
            time.sleep(0.5)   # the old generation drains its listeners
            held = []
            try:
                for _ in range(5):
                    c = SMTPClient(smtp_port, timeout=10)
                    tap.is_(c.reply().code, 220, "connection within the per-IP limit")
                    held.append(c)
                c = SMTPClient(smtp_port, timeout=10)
                tap.like(c.reply().text, r"^421 4\.7\.0", "6th connection from one IP: 421 4.7.0")
                tap.ok(c.wait_eof(), "and the server closes it")
                c.close()
                # One at a time: two workers admitting at the same instant may
                # both see 7 of 8 (the limit is approximate by design).
                others, first = [], []
                for i in range(4):
                    s = socket.create_connection(("127.0.0.1", smtp_port), timeout=10,
                                                 source_address=("127.0.0.%d" % (2 + i), 0))
                    others.append(s)
                    first.append(s.recv(512).decode(errors="replace"))
                tap.ok(all(f.startswith("220") for f in first[:3]),
                       "other IPs still admitted up to the total (8)", repr(first))
                tap.like(first[3], r"^421 4\.7\.0", "9th connection overall: 421 4.7.0 (connections_max 8)")
                for s in others:
                    s.close()
            finally:
                for c in held:
                    c.close()
            ok = mpd.poll(lambda: _greets(smtp_port), timeout=10)
            tap.ok(ok, "slots are released when clients leave")

        tap.is_(d.stop(), 0, "SIGTERM: exit 0")

with tap.section("second daemon"):
    with mpd.Daemon({"hostname": HOST, "workers": 1,
                     "smtp": {"idle_timeout": 1, "line_max": 1000}}) as d:
        with tap.section("line_max is configurable"):
            with SMTPClient(d.ports["smtp"]) as c:
                c.reply()
                tap.like(c.cmd("NOOP " + "a" * 795).text, r"^250 ",
                         "line_max=1000: 800-byte line ok")
                tap.like(c.cmd("NOOP " + "b" * 1095).text, r"^500 5\.5\.6",
                         "line_max=1000: 1100-byte line gets 500 5.5.6")
                tap.like(c.cmd("QUIT").text, r"^221 ", "QUIT")
        with tap.section("idle timeout"):
            with SMTPClient(d.ports["smtp"]) as c:
                c.reply()
                # Activity keeps the session alive past the timeout.
                codes = []
                for _ in range(8):
                    time.sleep(0.25)
                    codes.append(c.cmd("NOOP").code)
                tap.is_(codes, [250] * 8, "active session outlives idle_timeout (2 s of NOOPs)")
                t0 = time.monotonic()
                r = c.reply()  # socket timeout 10 s bounds the wait
                waited = time.monotonic() - t0
                tap.like(r.text, r"^421 4\.4\.2", "idle session: 421 4.4.2")
                tap.ok(waited >= 0.5, "421 only after about idle_timeout",
                       "came after %.2fs" % waited)
                tap.ok(c.wait_eof(), "idle session: server closes after 421")
        tap.is_(d.stop(), 0, "SIGTERM: exit 0")

tap.done()
