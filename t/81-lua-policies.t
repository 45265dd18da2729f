#!/usr/bin/env python3
# Lua policy hooks end to end (docs/LUA.md "Policies"), against the real
# daemon over SMTP, LMTP and submission, each site with a policies/ dir
# written here:
#  * connect reject (554 greeting) / tempfail (421), both closing; helo
#    reject; mail_from reject; rcpt_to reject and tempfail while the other
#    recipients of the transaction are accepted and delivered; route
#    mailbox() sending an unknown address to another local mailbox;
#  * data hook reject / tempfail / discard (250, no file, logged) /
#    quarantine(folder) (file in Maildir/.Folder/new); over LMTP one reply
#    per recipient for each of them;
#  * deliver hook: fileinto("Lists.lua") + addflag("\\Flagged") (a file in
#    .Lists.lua/cur/ named ...:2,F, as Dovecot's own LDA stores flagged
#    mail; new/ is for mail without flags), discard() for one recipient
#    while another gets the message, redirect recorded in the log;
#  * the ctx fields hooks see (conn.ip/helo/tls/user/protocol, env.from/
#    rcpts/params, notes kept from MAIL to DATA and fresh per transaction,
#    msg.subject), recorded by a data hook into a log line;
#  * the shipped rules + policies/deliver-junk.lua: spam in .Junk/new with
#    X-Spam-* headers, ham in INBOX with "X-Spam-Status: No", a score at
#    the reject threshold "554 5.7.1" at the end of DATA;
#  * auth hook: deny() turns a right password into 535; the shipped
#    policies/auth-throttle.lua delays one login's answers after 5 failures
#    and refuses every login (even a right one) from an IP past 30 failures.
import base64
import glob
import os
import re
import shutil
import smtplib
import ssl
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

import mail  # noqa: E402
import mpd  # noqa: E402
import tap  # noqa: E402
from mail import lf, qid_of, stuff  # noqa: E402

mpd.require_binary()

JOHN, JANE, BOX = "john@example.org", "jane@example.org", "box@catch.test"
SENDER = "sender@remote.test"
REPO = mpd.REPO


STARTTLS_PORT = mpd.free_port()


def write_policies(files, starttls_listener=False):
    """setup() for mail.Site: the given policies/ files (name -> Lua); and
    a submission listener with STARTTLS and plaintext AUTH on
    STARTTLS_PORT."""
    def setup(d):
        for name, text in files.items():
            with open(os.path.join(d.policies_dir, name), "w") as f:
                f.write(text)
        if starttls_listener:
            d.config["listen"].append({"address": "127.0.0.1", "port": STARTTLS_PORT,
                                       "protocol": "submission", "tls": "starttls",
                                       "plaintext_auth": True})
            d.write_config()
    return setup


def clear(site):
    for p in site.all_files():
        os.unlink(p)


def msg(subject, body=b"body line\r\n"):
    return ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n\r\n" % (SENDER, JOHN, subject)
            ).encode() + body


def send(site, rcpts, message, sender=SENDER, helo="smtplib.test", mail_options=(),
         source=None):
    """smtplib step by step: (MAIL code, [RCPT codes], (DATA code, text))."""
    s = smtplib.SMTP("127.0.0.1", site.port, local_hostname=helo, timeout=30,
                     source_address=(source, 0) if source else None)
    try:
        s.ehlo()
        code, _ = s.mail(sender, list(mail_options))
        if code != 250:
            return code, [], (None, b"")
        codes = [s.rcpt(r)[0] for r in rcpts]
        data = s.data(message) if 250 in codes else (None, b"")
        s.quit()
        return code, codes, data
    finally:
        s.close()


def folder_files(site, email, folder, sub="new"):
    d = os.path.join(site.maildir(email), "." + folder if folder else "", sub)
    try:
        return sorted(os.path.join(d, n) for n in os.listdir(d))
    except FileNotFoundError:
        return []


def read(path):
    with open(path, "rb") as f:
        return f.read()


# ------------------------------------------------------------ the hooks --

CONN = r'''
hook("connect", function(ctx)
  if ctx.conn.ip == "127.0.0.2" then return reject("5.7.1 You are not welcome here") end
  if ctx.conn.ip == "127.0.0.3" then return tempfail("4.7.0 Come back later") end
end)
hook("helo", function(ctx)
  if ctx.conn.helo == "bad.helo.test" then return reject(550, "5.7.1 Bad HELO") end
end)
hook("mail_from", function(ctx)
  if ctx.env.from == "spammer@remote.test" then return reject(553, "5.7.1 Sender refused") end
  ctx.notes.mark = "m:" .. ctx.env.from
end)
'''

RCPT = r'''
hook("route", function(ctx, rcpt)
  if rcpt.addr == "help@example.org" then return mailbox("jane@example.org") end
end)
hook("route", function(ctx, rcpt)
  if rcpt.addr == "far@catch.test" then return relay("mx.far.test") end
end)
hook("rcpt_to", function(ctx, rcpt)
  ctx.notes.n = (ctx.notes.n or 0) + 1
  if rcpt.addr == "nobody@catch.test" then return reject(550, "5.7.1 Not this one") end
  if rcpt.addr == "later@catch.test" then return tempfail("4.7.1 Greylisted, try later") end
end)
'''

DATA = r'''
hook("data", function(ctx)
  local c, e = ctx.conn, ctx.env
  local p = {}
  for k, v in pairs(e.params) do p[#p + 1] = k .. "=" .. tostring(v) end
  table.sort(p)
  log("info", "ctx ip=%s helo=%s tls=%s user=%s proto=%s from=%s rcpts=%s params=%s notes=%s,%s subject=%s",
      c.ip, tostring(c.helo), tostring(c.tls), tostring(c.user), c.protocol, e.from,
      table.concat(e.rcpts, ","), table.concat(p, ","), tostring(ctx.notes.mark),
      tostring(ctx.notes.n), tostring(ctx.msg.subject))
  local s = ctx.msg.subject
  if s == "reject me" then return reject(550, "5.7.1 Content refused") end
  if s == "tempfail me" then return tempfail("4.7.1 Content later") end
  if s == "discard me" then return discard() end
  if s == "quarantine me" then return quarantine("Quarantine") end
end)
'''

DELIVER = r'''
hook("deliver", function(ctx, rcpt)
  if ctx.msg.subject ~= "deliver test" then return end
  if rcpt.mailbox == "jane@example.org" then
    fileinto("Lists.lua")
    addflag("\\Flagged")
  elseif rcpt.mailbox == "box@catch.test" then
    discard()
  elseif rcpt.mailbox == "john@example.org" then
    redirect("john@elsewhere.test")
  end
end)
'''

AUTH = r'''
hook("auth", function(ctx)
  if ctx.auth.user == "jane@example.org" and ctx.auth.result == "ok" then
    return deny("5.7.8 Jane may not log in today")
  end
end)
'''


def connection_hooks(site):
    for ip, code, text in (("127.0.0.2", 554, "5.7.1 You are not welcome here"),
                           ("127.0.0.3", 421, "4.7.0 Come back later")):
        mark = site.d.mark()
        with mail.Client(site.port, source=ip) as c:
            r = c.reply()
            tap.is_(r.text, "%d %s" % (code, text), "connect hook from %s: %d greeting" % (ip, code))
            tap.ok(c.wait_eof(5), "connect %d: the server closes the connection" % code)
        tap.ok(site.d.wait_log(r"event=policy hook=connect verdict=%s"
                               % ("reject" if code == 554 else "tempfail"), 5, since=mark),
               "connect %d: logged" % code)
    try:
        smtplib.SMTP("127.0.0.1", site.port, timeout=10, source_address=("127.0.0.2", 0))
        tap.ok(False, "smtplib: connect refused with 554")
    except smtplib.SMTPConnectError as e:
        tap.is_(e.smtp_code, 554, "smtplib: SMTPConnectError 554 for a rejected client")

    with site.client() as c:
        tap.is_(c.reply().code, 220, "127.0.0.1 is greeted")
        r = c.cmd("EHLO bad.helo.test")
        tap.is_(r.text, "550 5.7.1 Bad HELO", "helo hook: reject")
        tap.is_(c.cmd("MAIL FROM:<%s>" % SENDER).code, 503, "no MAIL after a refused EHLO")
        tap.is_(c.cmd("EHLO good.helo.test").code, 250, "another EHLO is accepted")
        r = c.cmd("MAIL FROM:<spammer@remote.test>")
        tap.is_(r.text, "553 5.7.1 Sender refused", "mail_from hook: reject with its code")
        tap.is_(c.cmd("RCPT TO:<%s>" % JOHN).code, 503, "no transaction after a refused MAIL")
        tap.is_(c.cmd("MAIL FROM:<%s>" % SENDER).code, 250, "another MAIL is accepted")
        tap.is_(c.cmd("QUIT").code, 221, "QUIT")


def rcpt_hooks(site):
    clear(site)
    mark = site.d.mark()
    code, codes, data = send(site, ["nobody@catch.test", JOHN, "later@catch.test",
                                    "help@example.org"], msg("several"))
    tap.is_(codes, [550, 250, 451, 250],
            "rcpt_to: reject 550 and tempfail 451, john and help@ (routed) accepted")
    tap.is_(data[0], 250, "the message is accepted for the others")
    tap.is_(len(site.files(JOHN)), 1, "john got it")
    tap.is_(len(site.files(BOX)), 0, "the refused catch-all recipients got nothing")
    files = site.files(JANE)
    tap.is_(len(files), 1, "route: help@ (unknown in the directory) delivered to jane")
    if files:
        tap.like(read(files[0]).decode(), r"(?m)^Delivered-To: jane@example\.org$",
                 "route: Delivered-To is the routed mailbox")
    log = site.d.log_text(mark)
    log_like(site, r"event=route from=<help@example\.org> to=<jane@example\.org>",
             "route logged")
    log_like(site, r"event=policy verdict=reject text=\"5\.7\.1 Not this one\"",
             "rcpt_to reject logged")
    with site.session("raw.test") as c:
        c.cmd("MAIL FROM:<%s>" % SENDER)
        tap.like(c.cmd("RCPT TO:<far@catch.test>").text,
                 r"^451 4\.4\.0 <far@catch\.test>: Relaying to mx\.far\.test not available yet",
                 "route relay(): 451 until the outbound queue exists")
        tap.like(c.cmd("RCPT TO:<later@catch.test>").text,
                 r"^451 4\.7\.1 Greylisted, try later$", "rcpt_to tempfail text")
        tap.like(c.cmd("RCPT TO:<Nobody@Catch.Test>").text, r"^250 ",
                 "the hook sees the address as given (local part case kept)")


def data_hooks(site):
    for subject, want in (("reject me", r"^550 5\.7\.1 Content refused$"),
                          ("tempfail me", r"^451 4\.7\.1 Content later$")):
        clear(site)
        code, codes, data = send(site, [JOHN], msg(subject))
        tap.like("%s %s" % (data[0], data[1].decode()), want, "data hook: %s" % subject)
        tap.is_(site.all_files(), [], "%s: nothing stored" % subject)

    clear(site)
    mark = site.d.mark()
    code, codes, data = send(site, [JOHN, JANE], msg("discard me"))
    tap.is_(data[0], 250, "data hook discard: 250")
    qid = qid_of(mpd.Reply(["%d %s" % (data[0], data[1].decode())]))
    tap.ok(site.d.wait_log(r"event=discarded qid=%s by=data" % re.escape(qid or "?"), 5,
                           since=mark), "discard logged with the qid")
    time.sleep(0.2)
    tap.is_(site.all_files(), [], "discard: no file in any Maildir")

    clear(site)
    code, codes, data = send(site, [JOHN, JANE], msg("quarantine me"))
    tap.is_(data[0], 250, "data hook quarantine: 250")
    for who in (JOHN, JANE):
        q = folder_files(site, who, "Quarantine")
        tap.is_((len(q), len(site.files(who))), (1, 0),
                "quarantine: %s's copy in .Quarantine/new, not in INBOX" % who)
        tap.ok(os.path.exists(os.path.join(site.maildir(who), ".Quarantine", "maildirfolder")),
               "quarantine: .Quarantine is a Maildir++ folder (maildirfolder file)")
        if q:
            tap.ok(read(q[0]).endswith(lf(msg("quarantine me"))), "quarantine: content intact")


def lmtp_hooks(site):
    for subject, want in (("reject me", "550 5.7.1 Content refused"),
                          ("tempfail me", "451 4.7.1 Content later"),
                          ("discard me", None), ("quarantine me", None), ("plain", None)):
        clear(site)
        with mail.Client(site.lmtp_port) as c:
            c.reply()
            c.cmd("LHLO lmtp.test")
            c.cmd("MAIL FROM:<%s>" % SENDER)
            rc = [c.cmd("RCPT TO:<%s>" % a).code for a in (JOHN, "nobody@catch.test", JANE)]
            c.cmd("DATA")
            c.send(stuff(msg(subject)))
            rs = [r.text for r in c.replies(2)]
            quiet = c.quiet()
        if want:
            ok = rs == [want, want]
        else:
            ok = all(re.match(r"^250 2\.0\.0 <%s> Ok: delivered as " % re.escape(a), t)
                     for a, t in zip((JOHN, JANE), rs))
        tap.ok(ok and quiet and rc == [250, 550, 250],
               "LMTP %s: one reply per accepted recipient" % subject, repr(rc), repr(rs))
        stored = [len(site.files(JOHN)), len(site.files(JANE)),
                  len(folder_files(site, JOHN, "Quarantine")),
                  len(folder_files(site, JANE, "Quarantine"))]
        tap.is_(stored, {"plain": [1, 1, 0, 0], "quarantine me": [0, 0, 1, 1]}.get(subject, [0] * 4),
                "LMTP %s: files stored" % subject)


def deliver_hooks(site):
    clear(site)
    mark = site.d.mark()
    code, codes, data = send(site, [JOHN, JANE, BOX], msg("deliver test"))
    tap.is_((codes, data[0]), ([250, 250, 250], 250), "deliver hooks: accepted for all three")
    qid = qid_of(mpd.Reply(["%d %s" % (data[0], data[1].decode())]))
    tap.is_(len(site.files(JOHN)), 1, "john: kept in INBOX (redirect is recorded only)")
    cur = folder_files(site, JANE, "Lists.lua", "cur")
    new = folder_files(site, JANE, "Lists.lua", "new")
    tap.is_((len(cur), len(new), len(site.files(JANE))), (1, 0, 0),
            "jane: fileinto Lists.lua with a flag -> .Lists.lua/cur (not INBOX)")
    if cur:
        name = os.path.basename(cur[0])
        data_ = read(cur[0])
        # Maildir: cur/ names end in ":2,FLAGS", flags in ASCII order
        # (F = \Flagged); S= and W= as for new/ (Dovecot's fast sizes).
        m = re.match(r"^\d+\.M\d+P\d+Q\d+\.[^,:/]+,S=(\d+),W=(\d+):2,F$", name)
        tap.ok(m is not None, "flagged file name is BASE,S=..,W=..:2,F", name)
        if m:
            tap.is_((int(m.group(1)), int(m.group(2))),
                    (len(data_), len(data_) + data_.count(b"\n")), "S= and W= are right")
        tap.ok(data_.endswith(lf(msg("deliver test"))), "jane's copy: content intact")
    tap.ok(os.path.exists(os.path.join(site.maildir(JANE), ".Lists.lua", "maildirfolder")),
           ".Lists.lua is a Maildir++ folder")
    tap.is_(site.all_files() and [p for p in site.all_files() if "/catch.test/" in p], [],
            "box: discarded by its deliver hook, nothing stored")
    log = site.d.log_text(mark)
    log_like(site, r"event=discarded qid=%s to=<box@catch\.test> by=deliver" % re.escape(qid or "?"),
             "the per-recipient discard is logged")
    log_like(site, r"event=lua_redirect .*redirect to john@elsewhere\.test recorded for "
             r"john@example\.org", "the redirect is recorded in the log")
    log_like(site, r"event=delivered qid=%s .*to=<jane@example\.org>.*folder=Lists\.lua"
             % re.escape(qid or "?"), "jane's delivery is logged with its folder")
    tap.ok(dovecot_sees_flagged(site, JANE), "Dovecot reads the message as \\Flagged in Lists.lua")


def dovecot_sees_flagged(site, email):
    """doveadm, on a copy of the Maildir (owned by nobody: Dovecot refuses
    mail access as root): the message in Lists.lua has \\Flagged. Skipped
    when doveadm is not installed."""
    doveadm = shutil.which("doveadm")
    if doveadm is None or os.geteuid() != 0:
        tap.diag("doveadm not installed or not root: the flag is checked by name only")
        return True
    tmp = tempfile.mkdtemp(prefix="moonpost-dove-")
    try:
        os.chmod(tmp, 0o755)
        md = os.path.join(tmp, "Maildir")
        shutil.copytree(site.maildir(email), md)
        for root, dirs, names in os.walk(md):
            for n in dirs + names + ["."]:
                os.chown(os.path.join(root, n), 65534, 65534)
        conf = os.path.join(tmp, "dovecot.conf")
        with open(conf, "w") as f:
            f.write("mail_location = maildir:%s\nlog_path = %s/log\nbase_dir = %s/run\n"
                    "ssl = no\nmail_uid = 65534\nmail_gid = 65534\n" % (md, tmp, tmp))
        env = dict(os.environ, HOME=tmp, USER="nobody")
        r = subprocess.run([doveadm, "-c", conf, "fetch", "flags mailbox", "mailbox",
                            "Lists.lua", "all"], capture_output=True, text=True, timeout=30,
                           env=env, cwd=tmp)
        if "\\Flagged" in r.stdout:
            return True
        tap.diag("doveadm: %s %s" % (r.stdout, r.stderr))
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def log_like(site, regex, desc, since=0):
    """Like tap.like on the daemon log, without dumping the whole log."""
    text = site.d.log_text(since)
    m = re.search(regex, text, re.M)
    return tap.ok(m is not None, desc, "no match for %r in the log since offset %d" % (regex, since))


def ctx_fields(site):
    mark = site.d.mark()
    with site.session("ctx.test") as c:
        c.cmd("MAIL FROM:<%s> SIZE=120 BODY=8BITMIME" % SENDER)
        c.cmd("RCPT TO:<%s>" % JOHN)
        c.cmd("RCPT TO:<team@example.org>")
        c.cmd("DATA")
        c.send(stuff(msg("ctx one")))
        tap.is_(c.reply().code, 250, "ctx: first message")
        # A second transaction in the same session: fresh notes.
        c.cmd("MAIL FROM:<>")
        c.cmd("RCPT TO:<%s>" % JANE)
        c.cmd("DATA")
        c.send(stuff(msg("ctx two")))
        tap.is_(c.reply().code, 250, "ctx: second message")
    log = site.d.log_text(mark)
    log_like(site, r'msg="ctx ip=127\.0\.0\.1 helo=ctx\.test tls=false user=nil proto=smtp '
             r'from=sender@remote\.test rcpts=john@example\.org,team@example\.org '
             r'params=BODY=8BITMIME,SIZE=120 notes=m:sender@remote\.test,2 subject=ctx one"',
             "ctx seen by the data hook: conn, env (from, rcpts, params), notes from "
             "mail_from and rcpt_to, msg.subject")
    log_like(site, r'msg="ctx ip=127\.0\.0\.1 helo=ctx\.test tls=false user=nil proto=smtp '
             r'from= rcpts=jane@example\.org params= notes=m:,1 subject=ctx two"',
             "second transaction: its own env and fresh notes")

    # Submission: implicit TLS, AUTH; ctx.conn.tls and ctx.conn.user.
    mark = site.d.mark()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s = smtplib.SMTP_SSL("127.0.0.1", site.d.ports["submission"], local_hostname="sub.test",
                         context=ctx, timeout=30)
    try:
        s.ehlo()
        s.login(JOHN, "secret")
        s.mail(JOHN, ["SIZE=99"])
        s.rcpt(JANE)
        code = s.data(msg("ctx sub"))[0]
        s.quit()
    finally:
        s.close()
    tap.is_(code, 250, "submission: message accepted")
    log_like(site,
             r'msg="ctx ip=127\.0\.0\.1 helo=sub\.test tls=true user=john@example\.org '
             r'proto=submission from=john@example\.org rcpts=jane@example\.org params=SIZE=99 ',
             "ctx over submission: tls=true, user, protocol")


def ctx_after_starttls(site):
    """RFC 3207 4.2: STARTTLS forgets the login made before it; so does
    ctx.conn.user (a hook must not see a stale login)."""
    mark = site.d.mark()
    with mail.Client(STARTTLS_PORT) as c:
        c.reply()
        c.cmd("EHLO plain.test")
        r = c.cmd("AUTH PLAIN %s" % base64.b64encode(b"\0" + JOHN.encode() + b"\0secret").decode())
        tap.is_(r.code, 235, "plaintext AUTH before STARTTLS (plaintext_auth listener)")
        tap.is_(c.cmd("STARTTLS").code, 220, "STARTTLS")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        c.starttls(ctx)
        c.cmd("EHLO tls.test")
        c.cmd("MAIL FROM:<%s>" % SENDER)
        c.cmd("RCPT TO:<%s>" % JOHN)
        c.cmd("DATA")
        c.send(stuff(msg("ctx starttls")))
        tap.is_(c.reply().code, 250, "message after STARTTLS accepted")
    log_like(site, r'msg="ctx ip=127\.0\.0\.1 helo=tls\.test tls=true user=nil proto=submission .*'
             r'subject=ctx starttls"', "after STARTTLS: ctx.conn.tls true, the old login gone", mark)


def auth_hook(site):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    mark = site.d.mark()
    for user, want in ((JANE, 535), (JOHN, 235)):
        s = smtplib.SMTP_SSL("127.0.0.1", site.d.ports["submission"], context=ctx, timeout=30)
        try:
            s.ehlo()
            s.user, s.password = user, "secret"
            try:
                code, text = s.auth("PLAIN", s.auth_plain)
            except smtplib.SMTPAuthenticationError as e:
                code, text = e.smtp_code, e.smtp_error
            tap.is_(code, want, "auth hook: %s with the right password -> %d" % (user, want))
            if user == JANE:
                tap.is_(text, b"5.7.8 Jane may not log in today", "deny() text in the 535")
        finally:
            s.close()
    log_like(site, r'event=auth result=denied user="jane@example\.org" .*by=policy',
             "the denial is logged")


# ---------------------------------------------------------- spam rules --

def corpus_scores():
    """Scores of the corpus spam under the shipped rules (CLI, no server)."""
    tmp = tempfile.mkdtemp(prefix="moonpost-score-")
    try:
        conf = os.path.join(tmp, "moonpost.conf")
        os.mkdir(os.path.join(tmp, "state"))
        os.mkdir(os.path.join(tmp, "policies"))
        with open(conf, "w") as f:
            f.write(mpd.lua_config({
                "state_dir": os.path.join(tmp, "state"),
                "lua": {"lib_dir": os.path.join(REPO, "lua"), "rules_dir": os.path.join(REPO, "rules"),
                        "policies_dir": os.path.join(tmp, "policies")},
                "directory": {"backend": "none"},
                "listen": [{"address": "127.0.0.1", "port": 25, "protocol": "smtp", "tls": "none"}]}))
        files = sorted(glob.glob(os.path.join(REPO, "t", "corpus", "*.eml")))
        r = subprocess.run([mail.cli(), "-c", conf, "rules", "test", "--json"] + files,
                           capture_output=True, text=True, timeout=60)
        scores = {}
        for line in r.stdout.splitlines():
            m = re.search(r'"file":"([^"]+)".*?"score":([-\d.e]+)', line) or \
                re.search(r'"score":([-\d.e]+).*?"file":"([^"]+)"', line)
            if m:
                f, s = (m.group(1), m.group(2)) if m.re.pattern.startswith('"file"') else \
                    (m.group(2), m.group(1))
                scores[os.path.basename(f)] = float(s)
        return scores
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def crlf(data):
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def spam(scores):
    spams = sorted((s, f) for f, s in scores.items() if f.startswith("spam-") and s >= 6)
    ham = [f for f, s in scores.items() if f.startswith("ham-") and s < 6]
    if len(spams) < 2 or not ham or spams[0][0] >= spams[-1][0]:
        tap.ok(False, "corpus has two spam scores >= 6 and a ham", repr(scores))
        return
    (junk_score, junk), (rej_score, rej) = spams[0], spams[-1]
    mids = [(sc, f) for sc, f in spams if junk_score < sc < rej_score]
    soft_score, soft = mids[len(mids) // 2] if mids else (0, None)
    ham = "ham-plain.eml" if "ham-plain.eml" in ham else sorted(ham)[0]
    tap.diag("junk: %s (%.2f), reject: %s (%.2f), ham: %s" % (junk, junk_score, rej, rej_score, ham))
    with open(os.path.join(REPO, "policies", "deliver-junk.lua")) as f:
        junk_policy = f.read()
    friend = 'hook("data", function(ctx)\n' \
             '  if ctx.env.from == "friend@remote.test" then return accept() end\nend)\n'
    site = mail.Site(config={"lua": {"rules_dir": os.path.join(REPO, "rules"),
                                     "actions": {"reject": rej_score, "add_header": 6,
                                                 "soft_reject": soft_score}}},
                     setup=write_policies({"deliver-junk.lua": junk_policy,
                                           "friend.lua": friend}))
    try:
        def corpus(name):
            with open(os.path.join(REPO, "t", "corpus", name), "rb") as f:
                return crlf(f.read())

        code, codes, data = send(site, [JOHN], corpus(junk), sender="spammer@remote.test")
        tap.is_(data[0], 250, "spam (score %.2f): accepted" % junk_score)
        j = folder_files(site, JOHN, "Junk")
        tap.is_((len(j), len(site.files(JOHN))), (1, 0), "spam: in john's .Junk/new, not INBOX")
        if j:
            head = read(j[0]).split(b"\n\n", 1)[0].decode("utf-8", "replace")
            tap.like(head, r"(?m)^X-Spam-Status: Yes, score=%.2f required=6\.00$" % junk_score,
                     "spam: X-Spam-Status: Yes with score and required")
            tap.like(head, r"(?m)^X-Spam: Yes$", "spam: X-Spam: Yes")
            tap.like(head, r"(?m)^X-Spam-Score: %.2f$" % junk_score, "spam: X-Spam-Score")
            tap.like(head, r"(?m)^X-Spam-Symbols: [A-Z0-9_]+\([-\d.]+\)", "spam: X-Spam-Symbols")
            tap.ok(read(j[0]).endswith(lf(corpus(junk))), "spam: content intact after the headers")

        clear(site)
        code, codes, data = send(site, [JOHN], corpus(ham))
        tap.is_(data[0], 250, "ham: accepted")
        files = site.files(JOHN)
        tap.is_((len(files), len(folder_files(site, JOHN, "Junk"))), (1, 0), "ham: in INBOX")
        if files:
            head = read(files[0]).split(b"\n\n", 1)[0].decode("utf-8", "replace")
            tap.like(head, r"(?m)^X-Spam-Status: No, score=[\d.]+ required=6\.00$",
                     "ham: X-Spam-Status: No")
            tap.unlike(head, r"(?m)^X-Spam: ", "ham: no X-Spam: Yes")

        clear(site)
        mark = site.d.mark()
        code, codes, data = send(site, [JOHN, JANE], corpus(rej))
        tap.is_((codes, data[0]), ([250, 250], 554),
                "score %.2f at the reject threshold: 554 at the end of DATA" % rej_score)
        tap.like(data[1].decode(), r"^5\.7\.1 ", "reject: enhanced code 5.7.1")
        tap.is_(site.all_files(), [], "reject: nothing stored")
        log_like(site, r'event=scan qid=\S+ score=%.2f required=6\.00 action="reject"'
                 % rej_score, "the scan is logged")
        m = re.search(r'event=scan qid=\S+ score=%.2f required=6\.00 action="reject" '
                      r'time_us=\d+ symbols="([^"]*)"' % rej_score, site.d.log_text(mark))
        tap.ok(m is not None, "the log line explains it: scan time and every symbol")
        fired = re.findall(r"([A-Z0-9_]+)\((-?[\d.]+)\)", m.group(1) if m else "")
        tap.ok(fired and abs(sum(float(x) for _, x in fired) - rej_score) < 0.05,
               "the logged symbols' scores add up to the total", m.group(1) if m else "")

        clear(site)
        code, codes, data = send(site, [JOHN], corpus(rej), sender="friend@remote.test")
        tap.is_(data[0], 250, "a data hook's accept() overrides the reject action")
        j = folder_files(site, JOHN, "Junk")
        tap.is_(len(j) + len(site.files(JOHN)), 1, "accept(): delivered (once)")
        if soft:
            clear(site)
            code, codes, data = send(site, [JOHN], corpus(soft))
            tap.like("%s %s" % (data[0], data[1].decode()), r"^451 4\.7\.1 ",
                     "score %.2f at the soft_reject threshold: 451 4.7.1" % soft_score)
            tap.is_(site.all_files(), [], "soft reject: nothing stored")

        # A message over the spool's memory part (256 KiB): scanned from
        # the file, stored intact.
        clear(site)
        big = corpus(ham).replace(b"\r\n\r\n", b"\r\n\r\n" + b"".join(
            b"line %06d of a long but harmless message, nothing to see\r\n" % i
            for i in range(12000)), 1)
        code, codes, data = send(site, [JOHN], big)
        tap.is_(data[0], 250, "a %d KiB message: accepted" % (len(big) // 1024))
        files = site.files(JOHN)
        if tap.is_(len(files), 1, "big message in INBOX"):
            stored = read(files[0])
            tap.ok(stored.endswith(lf(big)), "big message: content intact")
            tap.like(stored.split(b"\n\n", 1)[0].decode("utf-8", "replace"),
                     r"(?m)^X-Spam-Status: No, score=", "big message: scanned")
    finally:
        site.stop()


# ------------------------------------------------------ auth throttling --

def plain_login(port, user, pw, source="127.0.0.1"):
    """One AUTH PLAIN on a fresh implicit-TLS connection: (code, seconds)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s = smtplib.SMTP_SSL("127.0.0.1", port, context=ctx, timeout=60,
                         source_address=(source, 0))
    try:
        s.ehlo()
        t0 = time.monotonic()
        # s.auth(), not s.login(): login() tries LOGIN after a failed PLAIN,
        # two attempts where we count one.
        s.user, s.password = user, pw
        try:
            code = s.auth("PLAIN", s.auth_plain)[0]
        except smtplib.SMTPAuthenticationError as e:
            code = e.smtp_code
        return code, time.monotonic() - t0
    finally:
        s.close()


def throttle():
    with open(os.path.join(REPO, "policies", "auth-throttle.lua")) as f:
        policy = f.read()
    # One worker: the policy's per-user counters are per process. The C
    # penalty is off so only the policy's delays show.
    site = mail.Site(config={"workers": 1, "directory": {"penalty_max": 0}},
                     setup=write_policies({"auth-throttle.lua": policy}))
    try:
        port = site.d.ports["submission"]
        mark = site.d.mark()
        times = [plain_login(port, JOHN, "wrong")[1] for _ in range(5)]
        tap.ok(max(times) < 1.0, "5 failures for one login: answered without delay",
               repr(times))
        code, t = plain_login(port, JOHN, "wrong")
        tap.ok(code == 535 and t >= 0.9, "the 6th failure: 535 after the policy's 1 s delay (%.2fs)"
               % t)
        tap.ok(site.d.wait_log(r"event=auth_policy_delay delay_ms=1000", 5, since=mark),
               "the policy delay is logged")
        code, t = plain_login(port, JOHN, "secret")
        tap.ok(code == 235 and t >= 0.9, "the right password works, after the same delay: the "
               "answer time does not tell a guesser it was right (%.2fs)" % t)
        code, t = plain_login(port, JOHN, "wrong")
        tap.ok(code == 535 and t < 1.0, "a success reset the user's count (%.2fs)" % t)

        # Per IP: past 30 failures every login is refused, even a right one.
        src = "127.0.0.5"
        codes = [plain_login(port, "guess%d@example.org" % i, "x", src)[0] for i in range(30)]
        tap.is_(set(codes), {535}, "30 failures from %s (different logins)" % src)
        code, _ = plain_login(port, JANE, "secret", src)
        tap.is_(code, 535, "then the right password from that IP: 535")
        log_like(site, r'event=auth result=denied user="jane@example\.org" '
                 r'client=127\.0\.0\.5 by=policy', "logged as denied by policy")
        code, _ = plain_login(port, JANE, "secret")
        tap.is_(code, 235, "the same login from another IP works")
    finally:
        site.stop()


# ------------------------------------------------- waits and aborts --

ASYNC = r'''
hook("connect", function(ctx)
  if ctx.conn.ip == "127.0.0.4" then sleep(0.3) end
end)
hook("rcpt_to", function(ctx, rcpt)
  if rcpt.addr == "slow@catch.test" then sleep(0.3) end
  if rcpt.addr == "lookup@catch.test" then
    local r = dir.lookup("team@example.org")
    log("info", "lookup result=%s local=%s mailboxes=%s", r.result, tostring(r.local_domain),
        table.concat(r.mailboxes or {}, ","))
  end
end)
hook("data", function(ctx)
  local s = ctx.msg.subject
  if s == "slow data" then sleep(0.3) end
  if s == "sleep over budget" then sleep(5) end
  if s == "loop in hook" then while true do end end
  if s == "error in hook" then error("hook failed on purpose") end
end)
hook("auth", function(ctx) sleep(0.3) end)
'''


def timed_send(site, subject, rcpts=(JOHN,)):
    t0 = time.monotonic()
    code, codes, data = send(site, list(rcpts), msg(subject))
    return data[0], time.monotonic() - t0


def async_hooks():
    site = mail.Site(config={"lua": {"budget": 0.5}}, setup=write_policies({"async.lua": ASYNC}))
    try:
        code, t = timed_send(site, "slow data")
        tap.ok(code == 250 and t >= 0.3 and len(site.files(JOHN)) == 1,
               "a data hook that sleeps 0.3s: delivered after the wait (%.2fs)" % t)
        for subject, why in (("sleep over budget", "a wait outlived the budget"),
                             ("loop in hook", "budget"),
                             ("error in hook", "hook failed on purpose")):
            clear(site)
            mark = site.d.mark()
            code, t = timed_send(site, subject)
            tap.ok(code == 250 and t < 1.5 and len(site.files(JOHN)) == 1,
                   "data hook %s: aborted, message delivered (%.2fs)" % (subject, t))
            log_like(site, r"event=lua_error .*%s" % re.escape(why), "%s: logged" % subject, mark)

        # Clients that leave while a hook waits: the late completion finds
        # nobody and changes nothing.
        clear(site)
        with site.session("gone.test") as c:
            c.cmd("MAIL FROM:<%s>" % SENDER)
            c.send("RCPT TO:<slow@catch.test>\r\n")
        with site.session("gone.test") as c:
            c.cmd("MAIL FROM:<%s>" % SENDER)
            c.cmd("RCPT TO:<%s>" % JOHN)
            c.cmd("DATA")
            c.send(stuff(msg("slow data")))
        with site.session("gone.test") as c:
            c.cmd("MAIL FROM:<%s>" % SENDER)
            c.cmd("RCPT TO:<%s>" % JOHN)
            c.cmd("DATA")
            c.send(stuff(msg("sleep over budget")))
        mail.Client(site.port, source="127.0.0.4").close()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with mpd.SMTPClient(site.d.ports["submission"], tls_ctx=ctx) as c:
            c.reply()
            c.cmd("EHLO gone.test")
            c.send("AUTH PLAIN %s\r\n" % base64.b64encode(b"\0" + JOHN.encode() + b"\0secret").decode())
        time.sleep(0.8)
        # The two complete messages (end of data sent) may be delivered:
        # the client left before the reply, as it might during the fsync
        # (RFC 1047 duplicates are the lesser evil), but once at most.
        subjects = sorted(re.search(rb"(?m)^Subject: (.*)$", read(p)).group(1).decode()
                          for p in site.all_files())
        tap.ok(set(subjects) <= {"slow data", "sleep over budget"} and
               len(subjects) == len(set(subjects)),
               "clients gone during a hook: nothing else delivered, no duplicates", repr(subjects))
        t0 = time.monotonic()
        with mail.Client(site.port, source="127.0.0.4") as c:
            r = c.reply()
            took = time.monotonic() - t0
            tap.ok(r.code == 220 and took >= 0.25,
                   "a connect hook that sleeps delays the greeting (%.2fs)" % took, repr(r))
        t0 = time.monotonic()
        tap.is_(plain_login(site.d.ports["submission"], JOHN, "secret")[0], 235,
                "an auth hook that sleeps: the login goes through")

        # Pipelined commands behind a message whose hook waits: answered
        # in order once it is done (DATA, then BDAT LAST).
        clear(site)
        with site.session("pipe.test") as c:
            c.cmd("MAIL FROM:<%s>" % SENDER)
            c.cmd("RCPT TO:<%s>" % JOHN)
            c.cmd("DATA")
            c.send(stuff(msg("slow data")) + b"MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\n" % (
                SENDER.encode(), JANE.encode()))
            codes = c.codes(3)
            body = msg("slow data")
            c.send(b"BDAT %d LAST\r\n" % len(body) + body + b"NOOP\r\n")
            codes += c.codes(2)
        tap.is_(codes, [250, 250, 250, 250, 250],
                "pipelined MAIL/RCPT after a slow DATA hook, NOOP after BDAT LAST: in order")
        tap.is_((len(site.files(JOHN)), len(site.files(JANE))), (1, 1), "both messages stored")

        mark = site.d.mark()
        code, codes, data = send(site, ["lookup@catch.test"], msg("lookup"))
        tap.is_(codes, [250], "dir.lookup in rcpt_to: recipient accepted")
        log_like(site, r'msg="lookup result=found local=true mailboxes=john@example\.org,'
                 r'jane@example\.org"', "dir.lookup answers from the directory", mark)
        tap.unlike(site.d.log_text(), r"event=worker_exit", "no worker died")
    finally:
        site.stop()


def main():
    site = mail.Site(lmtp=True, setup=write_policies({
        "10-conn.lua": CONN, "20-rcpt.lua": RCPT, "30-data.lua": DATA,
        "40-deliver.lua": DELIVER, "50-auth.lua": AUTH}, starttls_listener=True))
    try:
        for name, fn in (("connection", connection_hooks), ("rcpt", rcpt_hooks),
                         ("data", data_hooks), ("lmtp", lmtp_hooks), ("deliver", deliver_hooks),
                         ("ctx", ctx_fields), ("ctx starttls", ctx_after_starttls),
                         ("auth", auth_hook)):
            with tap.section(name):
                fn(site)
    finally:
        site.stop()
    with tap.section("spam"):
        spam(corpus_scores())
    with tap.section("auth-throttle"):
        throttle()
    with tap.section("waits"):
        async_hooks()


main()
tap.done()
