#!/usr/bin/env python3
# BINARY (RFC 3516): FETCH BINARY[part] decodes base64 to the exact bytes
# (literal8 "~{n}" when they hold NUL), quoted-printable to text with CRLF;
# BINARY.SIZE[part] is the decoded size; partials; BINARY[] is the whole
# message; a part in an unknown encoding is NO [UNKNOWN-CTE]; BINARY sets
# \Seen, BINARY.PEEK does not; bad sections are BAD; APPEND takes a
# literal8.
import base64
import os
import re
import socket
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

import mpd  # noqa: E402
import tap  # noqa: E402

mpd.require_binary()
CLI = os.path.join(os.path.dirname(mpd.binary()), "moonpost")
BLOB = bytes(range(256)) * 3 + b"\x00\r\n\x00end"
TEXT = "Grüße, café! " * 3 + "\n"


class Raw:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.buf, self.n = b"", 0
        self.line()

    def _more(self):
        d = self.sock.recv(65536)
        if not d:
            raise EOFError
        self.buf += d

    def line(self):
        while b"\r\n" not in self.buf:
            self._more()
        ln, self.buf = self.buf.split(b"\r\n", 1)
        return ln

    def cmd(self, text):
        self.n += 1
        tag = b"b%d" % self.n
        self.sock.sendall(tag + b" " + (text if isinstance(text, bytes) else text.encode()) + b"\r\n")
        out = []
        while True:
            ln = self.line()
            if ln.startswith(tag + b" "):
                return out, ln.decode()
            m = re.search(rb"(~?)\{(\d+)\}$", ln)
            if m:
                n = int(m.group(2))
                while len(self.buf) < n:
                    self._more()
                out.append((ln, self.buf[:n]))
                self.buf = self.buf[n:]
                continue
            out.append((ln, None))


def message():
    b64 = base64.encodebytes(BLOB).decode()
    qp = "Gr=C3=BC=C3=9Fe, caf=C3=A9! " * 3 + "\n"
    return ("From: a@example.net\nSubject: binary\nMIME-Version: 1.0\n"
            "Content-Type: multipart/mixed; boundary=B\n\n"
            "--B\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n"
            + qp +
            "--B\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n" + b64 +
            "--B\nContent-Type: application/x-odd\nContent-Transfer-Encoding: x-uuencode\n\nbegin 644 x\n`\nend\n"
            "--B--\n").encode()


def main():
    d = mpd.Daemon(start=False)
    h = subprocess.run([CLI, "pw", "hash", "-s", "SHA512-CRYPT"], input="secret\n",
                       capture_output=True, text=True, check=True).stdout.strip()
    dirfile = os.path.join(d.dir, "directory")
    with open(dirfile, "w") as f:
        f.write("domain example.org\nuser a@example.org %s\n" % h)
    port = mpd.free_port()
    d.config["listen"].append({"address": "127.0.0.1", "port": port, "protocol": "imap",
                               "tls": "none", "plaintext_auth": True})
    vmail = os.path.join(d.dir, "vmail")
    md = os.path.join(vmail, "example.org", "a", "Maildir")
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(md, sub), exist_ok=True)
    data = message()
    with open(os.path.join(md, "new", "1700000001.M1P1.bin,S=%d" % len(data)), "wb") as f:
        f.write(data)
    d.write_config({"directory": {"backend": "file", "file": dirfile, "cache_ttl": 60,
                                  "maildir": vmail + "/%d/%n/Maildir"}})
    d.start()
    try:
        c = Raw(port)
        u, t = c.cmd("LOGIN a@example.org secret")
        tap.ok("BINARY" in t.split(), "BINARY in the login CAPABILITY", t)
        c.cmd("SELECT INBOX")
        u, t = c.cmd("FETCH 1 (BINARY.PEEK[2])")
        tap.ok(u and u[0][0].endswith(b"BINARY[2] ~{%d}" % len(BLOB)), "BINARY[2]: a literal8 of the decoded size",
               u[0][0] if u else u)
        tap.is_(u[0][1] if u else None, BLOB, "BINARY[2]: the exact bytes, NUL and CR LF included")
        u, t = c.cmd("FETCH 1 (BINARY.SIZE[2] BINARY.SIZE[1])")
        # the line break before "--B" belongs to the boundary (RFC 2046
        # 5.1.1), and quoted-printable drops trailing blanks (RFC 2045 6.7)
        want1 = TEXT.rstrip().encode()
        tap.like(u[0][0].decode() if u else "", r"BINARY\.SIZE\[2\] %d BINARY\.SIZE\[1\] %d\)" % (len(BLOB), len(want1)),
                 "BINARY.SIZE: the decoded sizes")
        u, t = c.cmd("FETCH 1 (BINARY.PEEK[1])")
        tap.ok(u and u[0][0].endswith(b"BINARY[1] {%d}" % len(want1)) and u[0][1] == want1,
               "BINARY[1]: quoted-printable decoded to UTF-8, an ordinary literal (no NUL)", u)
        u, t = c.cmd("FETCH 1 (BINARY.PEEK[2]<256.10>)")
        tap.ok(u and u[0][0].endswith(b"BINARY[2]<256> ~{10}") and u[0][1] == BLOB[256:266],
               "BINARY[2]<256.10>: a partial of the decoded bytes (a NUL in it: literal8)", u)
        u, t = c.cmd("FETCH 1 (BINARY.PEEK[2]<1.10>)")
        tap.ok(u and u[0][0].endswith(b"BINARY[2]<1> {10}") and u[0][1] == BLOB[1:11],
               "BINARY[2]<1.10>: no NUL in the slice: an ordinary literal", u)
        u, t = c.cmd("FETCH 1 (BINARY.PEEK[])")
        tap.ok(u and u[0][1] == data.replace(b"\n", b"\r\n"), "BINARY[]: the whole message", t)
        u, t = c.cmd("FETCH 1 (BINARY.PEEK[3])")
        tap.like(t, r"^b\d+ NO \[UNKNOWN-CTE\]", "a part in x-uuencode: NO [UNKNOWN-CTE]")
        for bad in ("BINARY[1.HEADER]", "BINARY[TEXT]", "BINARY.SIZE[1]<0.5>", "BINARY[1", "BINARY.PEEK[x]"):
            u, t = c.cmd("FETCH 1 (%s)" % bad)
            tap.like(t, r"^b\d+ BAD ", "FETCH %s: BAD" % bad)
        u, t = c.cmd("FETCH 1 (FLAGS)")
        tap.ok(b"\\Seen" not in u[0][0], "BINARY.PEEK and BINARY.SIZE leave \\Seen alone", u)
        u, t = c.cmd("FETCH 1 (BINARY[1])")
        tap.ok(u and b"\\Seen" in u[0][0], "BINARY[1] sets \\Seen and sends FLAGS", u)
        msg = b"Subject: l8\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\nab\x00cd\r\n"
        c.sock.sendall(b"b99 APPEND INBOX ~{%d}\r\n" % len(msg))
        tap.like(c.line().decode(), r"^\+ ", "APPEND with a literal8: continuation")
        c.sock.sendall(msg + b"\r\n")
        ln = c.line().decode()
        while not ln.startswith("b99 "):
            ln = c.line().decode()
        tap.like(ln, r"^b99 OK \[APPENDUID \d+ 2\]", "APPEND with a literal8: stored")
        u, t = c.cmd("FETCH 2 (BINARY.PEEK[1])")
        tap.ok(u and u[0][1] == b"ab\x00cd\r\n" and b"~{" in u[0][0], "the NUL byte comes back, as a literal8", u)
        c.cmd("LOGOUT")
    finally:
        d.stop()
        d.cleanup()
    tap.done()


main()
