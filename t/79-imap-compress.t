#!/usr/bin/env python3
# COMPRESS=DEFLATE (RFC 4978): advertised after login only, the tagged OK
# in clear, then raw DEFLATE both ways (over plaintext and over TLS); a
# 1 MB body and 300 messages' FETCH come through byte for byte; a second
# COMPRESS is NO [COMPRESSIONACTIVE]; an unknown mechanism NO; a broken
# DEFLATE stream from the client closes the connection (no crash, the
# daemon keeps serving).
import os
import socket
import ssl
import subprocess
import sys
import zlib

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

import mpd  # noqa: E402
import tap  # noqa: E402

mpd.require_binary()
CLI = os.path.join(os.path.dirname(mpd.binary()), "moonpost")


class Z:
    """A raw IMAP client that can switch to DEFLATE."""

    def __init__(self, port, tls=False):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            self.sock = ctx.wrap_socket(self.sock)
        self.buf, self.n, self.z = b"", 0, None
        self.line()

    def compress_on(self):
        self.zc = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.zd = zlib.decompressobj(-15)
        self.z = True

    def send(self, data):
        if self.z:
            data = self.zc.compress(data) + self.zc.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)

    def _more(self):
        d = self.sock.recv(65536)
        if not d:
            raise EOFError("closed")
        self.buf += self.zd.decompress(d) if self.z else d

    def line(self):
        while b"\r\n" not in self.buf:
            self._more()
        ln, self.buf = self.buf.split(b"\r\n", 1)
        return ln

    def cmd(self, text):
        """Sends a command; returns (untagged lines with literals, tagged)."""
        self.n += 1
        tag = b"z%d" % self.n
        self.send(tag + b" " + text.encode() + b"\r\n")
        out = []
        while True:
            ln = self.line()
            if ln.startswith(tag + b" "):
                return out, ln.decode()
            if ln.endswith(b"}") and b"{" in ln:
                n = int(ln[ln.rindex(b"{") + 1:-1])
                while len(self.buf) < n:
                    self._more()
                ln, self.buf = ln + b"\r\n" + self.buf[:n], self.buf[n:]
            out.append(ln)


def put(md, n, body):
    for d in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(md, d), exist_ok=True)
    data = b"Subject: m%d\n\n" % n + body
    with open(os.path.join(md, "new", "%d.M%dP1.z,S=%d" % (1700000000 + n, n, len(data))), "wb") as f:
        f.write(data)
    return data


def session(port, tls, big):
    label = "TLS" if tls else "plaintext"
    c = Z(port, tls)
    u, t = c.cmd("CAPABILITY")
    tap.ok("COMPRESS=DEFLATE" not in u[0].decode(), "%s: not advertised before login" % label, u)
    c.cmd("LOGIN a@example.org secret")
    u, t = c.cmd("CAPABILITY")
    tap.ok("COMPRESS=DEFLATE" in u[0].decode(), "%s: COMPRESS=DEFLATE after login" % label, u)
    u, t = c.cmd("COMPRESS LZMA")
    tap.like(t, r"^z\d+ NO ", "%s: an unknown mechanism: NO" % label)
    u, t = c.cmd("COMPRESS DEFLATE")
    tap.like(t, r"^z\d+ OK ", "%s: COMPRESS DEFLATE: OK, in clear" % label)
    c.compress_on()
    u, t = c.cmd("NOOP")
    tap.like(t, r"^z\d+ OK ", "%s: NOOP over DEFLATE" % label)
    u, t = c.cmd("CAPABILITY")
    tap.ok("COMPRESS=DEFLATE" not in u[0].decode(), "%s: not advertised once active" % label, u)
    u, t = c.cmd("COMPRESS DEFLATE")
    tap.like(t, r"^z\d+ NO \[COMPRESSIONACTIVE\]", "%s: a second COMPRESS: NO [COMPRESSIONACTIVE]" % label)
    c.cmd("SELECT INBOX")
    u, t = c.cmd("FETCH 1 BODY.PEEK[]")
    body = u[0].split(b"\r\n", 1)[1] if u else b""
    tap.is_(body, big.replace(b"\n", b"\r\n"), "%s: a 1 MB body through DEFLATE, byte for byte" % label)
    u, t = c.cmd("FETCH 1:* (UID RFC822.SIZE ENVELOPE)")
    tap.is_((len(u), t.split()[1]), (301, "OK"), "%s: 301 FETCH responses through DEFLATE" % label)
    u, t = c.cmd("LOGOUT")
    tap.ok(any(x.startswith(b"* BYE") for x in u) and " OK " in t, "%s: LOGOUT over DEFLATE" % label)


def broken(port):
    c = Z(port)
    c.cmd("LOGIN a@example.org secret")
    c.cmd("COMPRESS DEFLATE")
    c.sock.sendall(b"\xff\xff\xff this is not deflate at all \x00\x01\x02" * 10)
    closed = False
    try:
        c.sock.settimeout(10)
        while c.sock.recv(4096):
            pass
        closed = True
    except (OSError, EOFError):
        closed = True
    tap.ok(closed, "a broken DEFLATE stream: the connection is closed")


def main():
    d = mpd.Daemon(start=False)
    h = subprocess.run([CLI, "pw", "hash", "-s", "SHA512-CRYPT"], input="secret\n",
                       capture_output=True, text=True, check=True).stdout.strip()
    dirfile = os.path.join(d.dir, "directory")
    with open(dirfile, "w") as f:
        f.write("domain example.org\nuser a@example.org %s\n" % h)
    port, tport = mpd.free_port(), mpd.free_port()
    d.config["listen"].append({"address": "127.0.0.1", "port": port, "protocol": "imap",
                               "tls": "none", "plaintext_auth": True})
    d.config["listen"].append({"address": "127.0.0.1", "port": tport, "protocol": "imap", "tls": "implicit"})
    vmail = os.path.join(d.dir, "vmail")
    md = os.path.join(vmail, "example.org", "a", "Maildir")
    line = b"The quick brown fox jumps over the lazy dog, again and again.\n"
    big = put(md, 1, line * (1 << 20 // len(line)))
    big = big.split(b"\n\n", 1)[0] + b"\n\n" + big.split(b"\n\n", 1)[1]
    for n in range(2, 302):
        put(md, n, b"body %d\n" % n)
    d.write_config({"directory": {"backend": "file", "file": dirfile, "cache_ttl": 60,
                                  "maildir": vmail + "/%d/%n/Maildir"}})
    d.start()
    try:
        session(port, False, big)
        session(tport, True, big)
        broken(port)
        c = Z(port)
        u, t = c.cmd("NOOP")
        tap.like(t, r"^z\d+ OK ", "the daemon still serves")
    finally:
        d.stop()
        d.cleanup()
    tap.done()


main()
