#!/usr/bin/env python3
# SEARCH string keys on decoded text (src/imap/imap_search_text.c): BODY
# and TEXT find words inside base64 and quoted-printable parts, in
# iso-8859-1 and koi8-r text, in HTML as text (not in its tags), not in
# binary attachments; TEXT also matches headers, BODY does not; SUBJECT /
# FROM / HEADER match RFC 2047 decoded values; case folding covers
# non-ASCII letters (MÜLLER / müller, ПРИВЕТ / привет); and the date keys
# give the same answers from the folder cache as from the files.
import base64
import imaplib
import os
import quopri
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

import mpd  # noqa: E402
import tap  # noqa: E402

mpd.require_binary()
CLI = os.path.join(os.path.dirname(mpd.binary()), "moonpost")


def b64(s):
    return base64.encodebytes(s).decode()


MESSAGES = [
    # 1: plain ASCII
    "From: Alice <alice@example.net>\nSubject: lunch plans\nDate: Mon, 01 Dec 2026 23:30:00 -0500\n\n"
    "Shall we meet at the harbour cafe?\n",
    # 2: base64 text, iso-8859-1
    "From: Bob <bob@example.net>\nSubject: =?iso-8859-1?q?Gr=FC=DFe_von_M=FCller?=\n"
    "Date: Tue, 02 Dec 2026 00:30:00 +0100\nMIME-Version: 1.0\n"
    "Content-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: base64\n\n"
    + b64("Herzliche Grüße, Ihr MÜLLER vom Zollamt\n".encode("latin-1")),
    # 3: quoted-printable, UTF-8, Cyrillic
    "From: =?utf-8?b?0JjQstCw0L0=?= <ivan@example.net>\nSubject: news\n"
    "Date: Wed, 03 Dec 2026 12:00:00 +0000\nMIME-Version: 1.0\n"
    "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n"
    + quopri.encodestring("ПРИВЕТ из Москвы, soft=line breaks are joined here\n".encode()).decode(),
    # 4: HTML only, with a word in a tag attribute and one as text
    "From: shop@example.com\nSubject: offer\nDate: Thu, 04 Dec 2026 12:00:00 +0000\nMIME-Version: 1.0\n"
    "Content-Type: text/html; charset=us-ascii\n\n"
    "<html><body><a href=\"http://tracker.example/zebrastripe\">Buy</a> <b>pineapple</b>split</body></html>\n",
    # 5: multipart with a text part and a binary attachment holding a word
    "From: carol@example.net\nSubject: report\nDate: Fri, 05 Dec 2026 12:00:00 +0000\nMIME-Version: 1.0\n"
    "Content-Type: multipart/mixed; boundary=XX\n\n--XX\nContent-Type: text/plain\n\nsee the attached report\n"
    "--XX\nContent-Type: application/octet-stream; name=r.bin\nContent-Transfer-Encoding: base64\n\n"
    + b64(b"\x00\x01secretbinaryword\x02") + "--XX--\n",
    # 6: koi8-r text
    "From: dmitri@example.net\nSubject: koi\nDate: Sat, 06 Dec 2026 12:00:00 +0000\nMIME-Version: 1.0\n"
    "Content-Type: text/plain; charset=koi8-r\nContent-Transfer-Encoding: 8bit\n\n",
]


def put(md, n, content):
    for d in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(md, d), exist_ok=True)
    w = len(content) + content.count(b"\n")
    name = "%d.M%dP1.search,S=%d,W=%d" % (1700000000 + n, n, len(content), w)
    p = os.path.join(md, "new", name)
    with open(p, "wb") as f:
        f.write(content)
    os.utime(p, (1764892800 + n * 86400, 1764892800 + n * 86400))   # 2025-12-05 + n days


def search(c, *crit, charset=None):
    typ, data = c.search(charset, *crit)
    if typ != "OK":
        return typ
    return [int(x) for x in data[0].split()]


def checks(c, label):
    tap.section("SEARCH %s" % label)
    t = lambda *a, **k: search(c, *a, **k)  # noqa: E731
    tap.is_(t("BODY", "harbour"), [1], "plain body")
    tap.is_(t("BODY", "zollamt"), [2], "a word inside base64, iso-8859-1")
    tap.is_(t("BODY", '"M\xfcller"'.encode("utf-8"), charset="UTF-8"), [2],
            "a non-ASCII word in another case (MÜLLER) in a base64 iso-8859-1 body")
    tap.is_(t("BODY", '"привет"'.encode("utf-8"), charset="UTF-8"), [3], "Cyrillic, folded, quoted-printable")
    tap.is_(t("BODY", '"soft=line"'), [3], "quoted-printable decoded (=3D)")
    tap.is_(t("BODY", "pineapple"), [4], "HTML: its text")
    tap.is_(t("BODY", "zebrastripe"), [], "HTML: not its tags")
    tap.is_(t("BODY", "secretbinaryword"), [], "a binary attachment is not searched")
    tap.is_(t("BODY", "attached"), [5], "the text part of a multipart")
    tap.is_(t("BODY", '"здравствуйте"'.encode("utf-8"), charset="UTF-8"), [6], "koi8-r converted")
    tap.is_(t("BODY", "lunch"), [], "BODY does not match a header")
    tap.is_(t("TEXT", "lunch"), [1], "TEXT matches a header")
    tap.is_(t("TEXT", "HARBOUR"), [1], "TEXT matches the body, any case")
    tap.is_(t("SUBJECT", '"grüße"'.encode("utf-8"), charset="UTF-8"), [2], "SUBJECT: RFC 2047 decoded, folded")
    tap.is_(t("FROM", '"иван"'.encode("utf-8"), charset="UTF-8"), [3], "FROM: an encoded display name")
    tap.is_(t("HEADER", "Content-Transfer-Encoding", "BASE64"), [2], "HEADER: the top-level header only (5 has it in a part)")
    tap.is_(t("OR", "BODY", "harbour", "BODY", "pineapple"), [1, 4], "OR of two BODY keys")
    tap.is_(t("NOT", "TEXT", "example.net"), [4], "NOT TEXT")
    # dates: the internal dates are 2025-12-06 .. 2025-12-11 (mtime)
    tap.is_(t("ON", "07-Dec-2025"), [2], "ON (internal date)")
    tap.is_(t("SINCE", "10-Dec-2025"), [5, 6], "SINCE")
    tap.is_(t("BEFORE", "08-Dec-2025"), [1, 2], "BEFORE")
    # sent dates in their own zone: 1 is Dec 1 (-0500), 2 is Dec 2 (+0100)
    tap.is_(t("SENTON", "01-Dec-2026"), [1], "SENTON: the sender's day (-0500)")
    tap.is_(t("SENTON", "02-Dec-2026"), [2], "SENTON: the sender's day (+0100)")
    tap.is_(t("SENTBEFORE", "03-Dec-2026"), [1, 2], "SENTBEFORE")
    tap.is_(t("SENTSINCE", "05-Dec-2026"), [5, 6], "SENTSINCE")


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
    for i, m in enumerate(MESSAGES):
        data = m.encode("utf-8")
        if i == 5:
            data += "Здравствуйте, друзья\n".encode("koi8-r")
        put(md, i + 1, data)
    d.write_config({"directory": {"backend": "file", "file": dirfile, "cache_ttl": 60,
                                  "maildir": vmail + "/%d/%n/Maildir"}})
    d.start()
    try:
        c = imaplib.IMAP4("127.0.0.1", port)
        c.login("a@example.org", "secret")
        c.select("INBOX")
        checks(c, "from the files")
        c.fetch("1:*", "(ENVELOPE)")         # fills the folder cache
        c.select("INBOX")
        tap.ok(os.path.getsize(os.path.join(md, "moonpost.cache")) > 100, "the folder cache is filled")
        checks(c, "with the folder cache")
        try:
            typ = c._simple_command("SEARCH", "BODY")
        except imaplib.IMAP4.error as e:
            typ = "BAD " + str(e)
        tap.like(str(typ), r"BAD", "SEARCH BODY without its string: BAD")
        c.logout()
    finally:
        d.stop()
        d.cleanup()
    tap.done()


main()
