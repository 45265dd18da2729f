#!/usr/bin/env python3
# The per-folder cache (src/store/mcache.c, src/imap/imap_cache.c): FETCH
# ENVELOPE / BODYSTRUCTURE / INTERNALDATE fill moonpost.cache; a second
# session answers from it without opening the messages (proved by changing
# a message file behind the server's back: the cached answer stays until
# the cache is deleted); a deleted, corrupt, truncated or foreign cache file
# gives the same answers as a fresh one; a new UIDVALIDITY empties it; a
# SELECT after most messages were expunged compacts it; a FETCH of FLAGS
# opens no message at all.
import imaplib
import os
import re
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

import mpd  # noqa: E402
import tap  # noqa: E402

mpd.require_binary()
CLI = os.path.join(os.path.dirname(mpd.binary()), "moonpost")
N = 40
BIG = 600
ITEMS = "(UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE BODY)"


def put(md, n, subject, extra=b""):
    for d in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(md, d), exist_ok=True)
    content = (b"From: Sender %d <s%d@example.net>\nTo: a@example.org\nSubject: %s\n"
               b"Date: Sat, 05 Dec 2026 10:%02d:00 +0100\nMessage-ID: <%d@example.net>\n%s\nbody %d\n"
               % (n, n, subject, n % 60, n, extra, n))
    w = len(content) + content.count(b"\n")
    name = "%d.M%dP1.cache,S=%d,W=%d" % (1700000000 + n, n, len(content), w)
    path = os.path.join(md, "new", name)
    with open(path, "wb") as f:
        f.write(content)
    os.utime(path, (1700000000 + n, 1700000000 + n))
    return name


def login(port, box="INBOX"):
    c = imaplib.IMAP4("127.0.0.1", port)
    c.login("a@example.org", "secret")
    c.select(box)
    return c


def fetch_all(port, items=ITEMS):
    c = login(port)
    typ, data = c.fetch("1:*", items)
    c.logout()
    # \Recent belongs to the first session only (RFC 3501 2.3.2)
    return typ, [(d if isinstance(d, bytes) else d[0] + d[1]).replace(b"\\Recent", b"")
                 for d in data if d != b")"]


def cache_path(md):
    return os.path.join(md, "moonpost.cache")


def find_file(md, n):
    for sub in ("cur", "new"):
        for f in os.listdir(os.path.join(md, sub)):
            if ".M%dP1." % n in f:
                return os.path.join(md, sub, f)
    return None


def rewrite_subject(md, n, subject):
    """Changes a message behind the server's back (never done to a real
    Maildir: files are immutable), keeping its size and mtime."""
    p = find_file(md, n)
    st = os.stat(p)
    with open(p, "rb") as f:
        data = f.read()
    new = re.sub(rb"Subject: [^\n]*", b"Subject: " + subject, data, count=1)
    with open(p, "wb") as f:
        f.write(new)
    os.utime(p, (st.st_atime, st.st_mtime))


def fill_and_reuse(port, md):
    tap.section("the cache is filled and then answers")
    typ, first = fetch_all(port)
    tap.is_(typ, "OK", "FETCH of every cached item: OK")
    tap.is_(len(first), N, "%d messages answered" % N)
    tap.ok(os.path.exists(cache_path(md)) and os.path.getsize(cache_path(md)) > N * 100,
           "moonpost.cache written next to dovecot-uidlist")
    tap.like(first[0].decode(), r'ENVELOPE \("Sat, 05 Dec 2026 10:01:00 \+0100" "message 1" ',
             "the ENVELOPE is right", first[0])
    tap.like(first[0].decode(), r'INTERNALDATE "14-Nov-2023 22:13:21 \+0000"', "INTERNALDATE is the mtime",
             first[0])
    rewrite_subject(md, 1, b"changed behind the server")
    typ, second = fetch_all(port)
    tap.is_(second, first, "a second session gets the same answers ...")
    tap.ok(b"changed behind" not in b"".join(second), "... from the cache (the file was not read)")
    c = login(port)
    typ, data = c.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    c.logout()
    tap.ok(b"changed behind" in data[0][1], "a body section still reads the file", data)
    return first


def rebuilt(port, md, first):
    tap.section("a lost or broken cache is rebuilt")
    os.unlink(cache_path(md))
    typ, data = fetch_all(port)
    tap.ok(b"changed behind the server" in data[0], "a deleted cache: the file is read again", data[0])
    expect = [d.replace(b"changed behind the server", b"message 1") for d in data]
    tap.is_(expect, first, "... and every other answer is the same")
    tap.ok(os.path.exists(cache_path(md)), "... and the cache is written again")
    size = os.path.getsize(cache_path(md))
    for what, mangle in (("truncated in a record", lambda b: b[:size - 37]),
                         ("a flipped byte in the middle", lambda b: b[:size // 2] + bytes([b[size // 2] ^ 0xff]) +
                          b[size // 2 + 1:]),
                         ("garbage appended", lambda b: b + b"\x99\x00\x00\x00garbage"),
                         ("not a cache at all", lambda b: b"hello, I am not a cache\n" * 10)):
        with open(cache_path(md), "rb") as f:
            b = f.read()
        with open(cache_path(md), "wb") as f:
            f.write(mangle(b))
        typ, again = fetch_all(port)
        tap.is_(again, data, "a cache %s: the same answers" % what)
    typ, again = fetch_all(port)
    tap.is_(again, data, "and once more after the repairs")


def new_uidvalidity(port, md):
    tap.section("a new UIDVALIDITY empties the cache")
    ul = os.path.join(md, "dovecot-uidlist")
    with open(ul) as f:
        lines = f.read().split("\n")
    lines[0] = re.sub(r" V\d+", " V12345", lines[0])
    with open(ul, "w") as f:
        f.write("\n".join(lines))
    rewrite_subject(md, 2, b"second change")
    typ, data = fetch_all(port)
    tap.ok(b"second change" in b"".join(data), "the messages are read again")
    with open(cache_path(md), "rb") as f:
        hdr = f.read(16)
    tap.is_(int.from_bytes(hdr[8:12], "little"), 12345, "the cache is for the new UIDVALIDITY")


def flags_only(port, md):
    tap.section("FETCH FLAGS opens no message")
    c = login(port)
    p = find_file(md, 3)
    away = os.path.join(md, "..", "away")
    os.rename(p, away)      # gone behind the session's back
    typ, data = c.fetch("1:*", "(UID FLAGS RFC822.SIZE ENVELOPE)")
    tap.is_(typ, "OK", "UID FLAGS RFC822.SIZE ENVELOPE with a vanished (cached) message: OK")
    tap.is_(len([d for d in data if d != b")"]), N, "... every message answered")
    typ, data = c.fetch("3", "(BODY.PEEK[])")
    tap.is_(typ, "NO", "its body cannot be read: NO [EXPUNGEISSUED]", data)
    c.logout()
    os.rename(away, p)


def compaction(port, md):
    tap.section("compaction after expunges")
    for n in range(N + 1, N + BIG + 1):
        put(md, n, b"filler %d" % n, b"X-Pad: " + b"p" * 400 + b"\n")
    fetch_all(port)
    before = os.path.getsize(cache_path(md))
    tap.ok(before > 256 * 1024, "the cache holds %d messages (%d bytes)" % (N + BIG, before))
    c = login(port)
    c.store("11:*", "+FLAGS.SILENT", "(\\Deleted)")
    c.expunge()
    c.logout()
    c = login(port)     # SELECT compacts
    typ, data = c.fetch("1:*", ITEMS)
    c.logout()
    after = os.path.getsize(cache_path(md))
    tap.ok(after < before / 4, "SELECT compacted the cache (%d -> %d bytes)" % (before, after))
    tap.is_(len([d for d in data if d != b")"]), 10, "the 10 messages left are answered")
    tap.ok(all(b"ENVELOPE" in (d if isinstance(d, bytes) else d[0]) for d in data if d != b")"),
           "from the compacted cache")


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
    for n in range(1, N + 1):
        put(md, n, b"message %d" % n)
    d.write_config({"directory": {"backend": "file", "file": dirfile, "cache_ttl": 60,
                                  "maildir": vmail + "/%d/%n/Maildir"}})
    d.start()
    try:
        first = fill_and_reuse(port, md)
        rebuilt(port, md, first)
        new_uidvalidity(port, md)
        flags_only(port, md)
        compaction(port, md)
    finally:
        d.stop()
        d.cleanup()
    tap.done()


main()
