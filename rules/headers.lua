-- rules/headers.lua - header structure: Message-ID, From, To, Reply-To,
-- Subject and the mailer. Each rule is a small, general signal; only a
-- combination of them (or one of them with body evidence) should reach the
-- add-header threshold (6). Date rules are in dates.lua, charset tricks in
-- charset.lua, mailer fingerprints (Outlook ids, MimeOLE) in mua.lua,
-- combinations of forgery tells in combined.lua.

local function lower(s) return s and s:lower() or "" end

-- The first address of a list field (ctx.msg.from etc.), or nil.
local function first(list)
  return type(list) == "table" and list[1] or nil
end

-- a and b are the same organisation: equal, or one a subdomain of the other
-- ("mail.example.com" and "example.com").
local function same_domain(a, b)
  a, b = lower(a), lower(b)
  if a == b then return true end
  local function under(x, y) return #x > #y and x:sub(-#y - 1) == "." .. y end
  return under(a, b) or under(b, a)
end

-- Free mailbox providers: anybody can open an address there, so a reply
-- address at one of them that differs from the sender's says "the replies
-- go elsewhere than the mail came from".
local FREEMAIL = {}
for d in ([[hotmail.com hotmail.co.uk msn.com live.com outlook.com yahoo.com
  yahoo.co.uk yahoo.fr yahoo.de yahoo.ca yahoo.com.au yahoo.co.in aol.com
  gmail.com googlemail.com mail.com email.com usa.net excite.com juno.com
  netscape.net lycos.com rediffmail.com eudoramail.com caramail.com
  mail.ru yandex.ru gmx.net gmx.de gmx.com web.de libero.it tiscali.it
  sify.com latinmail.com myway.com fastmail.fm hushmail.com zzn.com
  mailcity.com bigfoot.com flashmail.com btinternet.com earthlink.net
  icloud.com me.com protonmail.com qq.com 163.com 126.com sina.com
  naver.com daum.net hanmail.net]]):gmatch("%S+") do
  FREEMAIL[d] = true
end

local function is_freemail(domain)
  return FREEMAIL[lower(domain)] == true
end

-- MISSING_MID: RFC 5322 3.6.4 says every message SHOULD have a Message-ID;
-- every real MUA and MTA adds one, bulk tools sometimes do not.
rule{
  name = "MISSING_MID", score = 1.0, group = "headers",
  description = "No Message-ID header",
  check = function(ctx)
    return ctx.msg:header("Message-ID") == nil
  end,
}

-- INVALID_MID: a Message-ID that is not "<left@right>" (spaces inside, no
-- '@', no brackets): made up by a script, not by a mail program.
rule{
  name = "INVALID_MID", score = 2.5, group = "headers",
  description = "Message-ID is not <id@domain>",
  check = function(ctx)
    local v = ctx.msg:header("Message-ID")
    if v == nil then return false end
    v = v:gsub("^%s+", ""):gsub("%s+$", "")
    return not v:match("^<[^<>@%s]+@[^<>@%s]+>$"), v:sub(1, 60)
  end,
}

-- MID_RATWARE: an Outlook-style id "<hex$hex$hex@host>" whose three fields
-- are zero-padded ("<00004ee7187c$00004968$00001798@...>"): Outlook prints
-- them without padding; a famous bulk mailer pads them.
rule{
  name = "MID_RATWARE", score = 2.5, group = "headers",
  description = "Message-ID in a zero-padded fake Outlook format",
  check = function(ctx)
    local v = ctx.msg:header("Message-ID") or ""
    return v:match("^%s*<0000%x+%$0000%x+%$0000%x+@") ~= nil
  end,
}

-- FORGED_OUTLOOK: X-Mailer claims Windows Outlook (Express), which always
-- writes X-MimeOLE next to it; without it the X-Mailer line is fake.
rule{
  name = "FORGED_OUTLOOK", score = 3.0, group = "headers",
  description = "X-Mailer claims Outlook but X-MimeOLE is missing",
  check = function(ctx)
    local m = ctx.msg
    local xm = m:header("X-Mailer")
    if xm == nil or m:header("X-MimeOLE") ~= nil then return false end
    return xm:match("Outlook Express %d") ~= nil
      or xm:match("^Microsoft Outlook,? Build") ~= nil
      or xm:match("^Microsoft Outlook IMO") ~= nil, xm:sub(1, 50)
  end,
}

-- XMAILER_BAD_VERSION: a mailer version with more fields than the real
-- product ever had ("Outlook Express 6.00.2600.0000.213597") - a template
-- with a random tail.
rule{
  name = "XMAILER_BAD_VERSION", score = 1.5, group = "headers",
  description = "X-Mailer version string with a random tail",
  check = function(ctx)
    local xm = ctx.msg:header("X-Mailer") or ""
    return xm:match("%d+%.%d+%.%d+%.%d+%.%d+") ~= nil
  end,
}

-- FROM_NAME_SPOOF: the display name is (or ends in) an address, at another
-- domain than the real one ("paypal@paypal.com" <x@elsewhere.example>):
-- the reader sees the name, the reply goes elsewhere.
rule{
  name = "FROM_NAME_SPOOF", score = 2.0, group = "headers",
  description = "From display name is an address at a different domain",
  check = function(ctx)
    local f = first(ctx.msg.from)
    if not f or not f.name or f.domain == nil or f.domain == "" then return false end
    -- the address must end the name ("PayPal service@paypal.com"): one
    -- in the middle of a longer name is a description, not a disguise
    local dom = f.name:match("[%w.+_%-]+@([%w%-]+%.[%w.%-]*%a)[%s\"'>)%]]*$")
    if not dom then return false end
    return not same_domain(dom, f.domain), dom
  end,
}

-- FROM_NO_NAME_NUMERIC: no display name and a local part made mostly of
-- digits and random letters ("meg34807147238s03@"): generated throw-away
-- sender addresses.
rule{
  name = "FROM_NUMERIC_LOCAL", score = 2.0, group = "headers",
  description = "From has no name and a local part with a long digit run",
  check = function(ctx)
    local f = first(ctx.msg.from)
    if not f or (f.name and f.name ~= "") then return false end
    local user = f.user or (f.addr or ""):match("^(.*)@") or ""
    return user:match("%d%d%d%d%d") ~= nil
  end,
}

-- FROM_NAME_CAPS: a sender name of two or more words all in capitals
-- ("DR SAMUEL EBOKA"): people and companies write their names in mixed
-- case; shouting names come from advance-fee and bulk templates.
rule{
  name = "FROM_NAME_CAPS", score = 2.5, group = "headers",
  description = "From display name is several words in capitals",
  check = function(ctx)
    local f = first(ctx.msg.from)
    local n = f and f.name or ""
    if n:find("%l") then return false end
    local up = select(2, n:gsub("%u", ""))
    local words = select(2, n:gsub("%u%u+", ""))
    return up >= 6 and words >= 2, n:sub(1, 40)
  end,
}

-- MISSING_FROM: RFC 5322 requires From; only broken or hostile software
-- leaves it out.
rule{
  name = "MISSING_FROM", score = 2.0, group = "headers",
  description = "No From header (or no address in it)",
  check = function(ctx)
    local f = first(ctx.msg.from)
    return not f or not f.addr or not f.addr:find("@", 1, true)
  end,
}

-- MISSING_TO: no To header. Digests and some list software do this too, so
-- the score is small; it matters next to other signals.
rule{
  name = "MISSING_TO", score = 0.3, group = "headers",
  description = "No To header",
  check = function(ctx)
    return ctx.msg:header("To") == nil
  end,
}

-- TO_UNDISCLOSED: the real recipients are hidden (To: undisclosed-recipients
-- or an empty group), i.e. the message went out by Bcc to a list.
rule{
  name = "TO_UNDISCLOSED", score = 2.0, group = "headers",
  description = "To says undisclosed recipients (mass Bcc)",
  check = function(ctx)
    local m = ctx.msg
    local to = m:header("To")
    if to == nil then
      return false
    end
    local l = to:lower()
    if l:find("undisclosed", 1, true) or l:find("recipient list", 1, true)
      or l:find("recipients@", 1, true) then
      return true
    end
    -- an empty group "friends:;" and nothing else
    return to:match("^%s*[^:@<>]*:%s*;%s*$") ~= nil
  end,
}

-- MANY_RCPT_DOMAINS: To/Cc list many unrelated people at many domains -
-- a harvested list pasted into To.
rule{
  name = "MANY_RCPT_DOMAINS", score = 2.5, group = "headers",
  description = "To/Cc list 8+ addresses at 6+ domains",
  check = function(ctx)
    local m = ctx.msg
    local n, doms, nd = 0, {}, 0
    for _, list in ipairs({ m.to or {}, m.cc or {} }) do
      for _, a in ipairs(list) do
        n = n + 1
        local d = lower(a.domain)
        if d ~= "" and not doms[d] then doms[d] = true; nd = nd + 1 end
      end
    end
    return n >= 8 and nd >= 6, n .. " rcpts", nd .. " domains"
  end,
}

-- RCPT_HARVESTED: To/Cc read like a slice of a harvested address list:
-- the same mailbox name at four or more domains ("webmaster@a.example,
-- webmaster@b.example, ..."), or five or more addresses at four or more
-- domains in alphabetical order (the list was sorted, then cut into
-- batches). People address people, not sorted lists.
rule{
  name = "RCPT_HARVESTED", score = 1.5, group = "headers",
  description = "To/Cc look like a sorted or same-name harvested address list",
  check = function(ctx)
    local m = ctx.msg
    local addrs = {}
    for _, list in ipairs({ m.to or {}, m.cc or {} }) do
      for _, a in ipairs(list) do
        if a.addr and a.addr ~= "" then addrs[#addrs + 1] = a end
      end
    end
    if #addrs < 5 then return false end
    local by_user, doms, nd = {}, {}, 0
    local sorted = true
    for i, a in ipairs(addrs) do
      local user, dom = lower(a.user), lower(a.domain)
      if not doms[dom] then doms[dom] = true; nd = nd + 1 end
      local u = by_user[user] or {}
      by_user[user] = u
      if not u[dom] then u[dom] = true; u.n = (u.n or 0) + 1 end
      if u.n >= 4 and user ~= "" then return true, "same name " .. user end
      if i > 1 and lower(addrs[i - 1].addr) > lower(a.addr) then sorted = false end
    end
    return sorted and nd >= 4, #addrs .. " sorted"
  end,
}

-- FREEMAIL_REPLYTO: replies go to a free mailbox other than the sender's
-- domain - the sending domain is borrowed, the answer goes to a drop box.
rule{
  name = "FREEMAIL_REPLYTO", score = 1.5, group = "headers",
  description = "Reply-To is a freemail address at another domain than From",
  check = function(ctx)
    local f, r = first(ctx.msg.from), first(ctx.msg.reply_to)
    if not f or not r or not r.domain or r.domain == "" then return false end
    if same_domain(f.domain, r.domain) then return false end
    return is_freemail(r.domain), r.domain
  end,
}

-- REPLYTO_DIFF_FREEMAIL_FROM: both From and Reply-To are free mailboxes,
-- different ones: a typical advance-fee pattern.
rule{
  name = "FREEMAIL_FROM_REPLYTO", score = 1.0, group = "headers",
  description = "From and Reply-To are different freemail addresses",
  check = function(ctx)
    local f, r = first(ctx.msg.from), first(ctx.msg.reply_to)
    if not f or not r then return false end
    return is_freemail(f.domain) and is_freemail(r.domain)
      and lower(f.addr) ~= lower(r.addr)
  end,
}

-- Strips reply/forward prefixes and a leading list tag "[list] ".
local function subject_core(s)
  local prev
  repeat
    prev = s
    s = s:gsub("^%s*%[[^%]]*%]%s*", "")
    s = s:gsub("^%s*[Rr][Ee]%s*:%s*", ""):gsub("^%s*[Ff][Ww][Dd]?%s*:%s*", "")
    s = s:gsub("^%s*[Aa][Ww]%s*:%s*", "")
  until s == prev
  return s
end

-- SUBJ_ALL_CAPS: shouting. Needs some length so that "RE: FYI" or an
-- acronym does not count.
rule{
  name = "SUBJ_ALL_CAPS", score = 2.5, group = "headers",
  description = "Subject is all capitals",
  check = function(ctx)
    local s = subject_core(ctx.msg.subject or "")
    local up = select(2, s:gsub("%u", ""))
    local low = select(2, s:gsub("%l", ""))
    local words = select(2, s:gsub("%a%a+", ""))
    return up >= 10 and low == 0 and words >= 3
  end,
}

-- SUBJ_SYMBOLS: "!!!", "$$$", "***", or a subject where money signs,
-- exclamation and stars make up a good share of the characters.
rule{
  name = "SUBJ_SYMBOLS", score = 1.5, group = "headers",
  description = "Subject full of !, $, %, * and similar symbols",
  check = function(ctx)
    local s = ctx.msg.subject or ""
    if s:match("[!?$*]%s*[!?$*]%s*[!?$*]") then return true, "run" end
    local nonspace = select(2, s:gsub("%S", ""))
    local sym = select(2, s:gsub("[!$%%*#~^|+=<>_@]", ""))
    return sym >= 3 and sym / math.max(nonspace, 1) >= 0.1, sym .. "/" .. nonspace
  end,
}

-- SUBJ_MONEY: a money amount or a percentage in the Subject ("$500",
-- "50% off"): prices and discounts are what advertising puts first;
-- personal and list mail rarely leads with them. Weak alone.
rule{
  name = "SUBJ_MONEY", score = 1.0, group = "headers",
  description = "Subject contains a money amount or a percentage",
  check = function(ctx)
    local s = ctx.msg.subject or ""
    local re = regex.new([[/[$\x{20AC}\x{00A3}]\s?\d|\d\s?(?:%|\x{20AC})/]])
    return re:match(s)
  end,
}

-- SUBJ_PADDED_TOKEN: text, a long run of spaces, then a short random
-- token at the end ("Lower your rate         XGHTMTGGC"): the token makes
-- each copy unique for checksum filters, the spaces push it out of view.
rule{
  name = "SUBJ_PADDED_TOKEN", score = 2.5, group = "headers",
  description = "Subject padded with spaces before a trailing random token",
  check = function(ctx)
    local raw = ctx.msg:raw_header("Subject")
    if not raw then return false end
    -- a folded line's indentation is not padding: look at one line at a time
    for line in raw:gmatch("[^\r\n]+") do
      if line:match("%S[ \t][ \t][ \t][ \t]+[-#(]?%w+[)]?%s*$") then
        return true
      end
    end
    return false
  end,
}

-- MISSING_SUBJECT: RFC 5322 does not require it, but people write one.
rule{
  name = "MISSING_SUBJECT", score = 0.5, group = "headers",
  description = "No Subject header",
  check = function(ctx)
    return ctx.msg:header("Subject") == nil
  end,
}

-- CTYPE_NO_MIME_VERSION: an HTML or multipart Content-Type without the
-- MIME-Version header that must come with it (RFC 2045 4).
rule{
  name = "CTYPE_NO_MIME_VERSION", score = 2.5, group = "headers",
  description = "HTML or multipart Content-Type without MIME-Version",
  check = function(ctx)
    local m = ctx.msg
    if m:header("MIME-Version") ~= nil then return false end
    local ct = lower(m:header("Content-Type"))
    return ct:match("^%s*text/html") ~= nil or ct:match("^%s*multipart/") ~= nil
  end,
}

-- X_PRIORITY_HIGH: "urgent" priority flags (X-Priority: 1, X-MSMail-
-- Priority: High). People almost never set them; bulk tools set them to
-- stand out in the inbox.
rule{
  name = "X_PRIORITY_HIGH", score = 2.5, group = "headers",
  description = "Message marked high priority",
  check = function(ctx)
    local m = ctx.msg
    local xp = m:header("X-Priority") or ""
    local ms = lower(m:header("X-MSMail-Priority"))
    return xp:match("^%s*1") ~= nil or ms:match("^%s*high") ~= nil
  end,
}

-- SUBJ_ADV_TAG: "ADV:" at the start of the Subject is the label several
-- laws ask unsolicited advertising to carry.
rule{
  name = "SUBJ_ADV_TAG", score = 3.0, group = "headers",
  description = "Subject starts with the ADV: advertising label",
  check = function(ctx)
    local s = ctx.msg.subject or ""
    return s:match("^%s*[Aa][Dd][Vv]%s*[:%-]") ~= nil
  end,
}

test{
  name = "headers: a plain personal message fires nothing here",
  message = [[
From: Alice Example <alice@example.net>
To: Bob <bob@example.org>
Subject: Re: lunch on Friday?
Date: Tue, 03 Sep 2002 10:00:00 +0200
Message-ID: <20020903100000.A1234@example.net>
X-Mailer: Mutt 1.4i

Friday at noon works for me.
]],
  expect = { "!MISSING_MID", "!INVALID_MID", "!MID_RATWARE", "!MID_OUTLOOK_NO_MUA",
             "!FORGED_OUTLOOK", "!XMAILER_BAD_VERSION", "!FROM_NAME_SPOOF",
             "!FROM_NUMERIC_LOCAL", "!FROM_NAME_CAPS", "!MISSING_FROM", "!MISSING_TO", "!TO_UNDISCLOSED",
             "!MANY_RCPT_DOMAINS", "!RCPT_HARVESTED", "!FREEMAIL_REPLYTO", "!FREEMAIL_FROM_REPLYTO",
             "!SUBJ_ALL_CAPS", "!SUBJ_SYMBOLS", "!SUBJ_PADDED_TOKEN", "!MISSING_SUBJECT", "!SUBJ_MONEY",
             "!CTYPE_NO_MIME_VERSION", "!X_PRIORITY_HIGH", "!SUBJ_ADV_TAG" },
  action = "no action",
}

test{
  name = "headers: a real Outlook message with a mailing-list tag in caps",
  message = [[
From: "Carol" <carol@example.com>
To: list@lists.example.org
Reply-To: list@lists.example.org
Subject: [ILUG] RE: NFS
Date: Tue, 03 Sep 2002 10:00:00 +0100
Message-ID: <001a01c2534e$6c2f8f40$0200a8c0@carol>
X-Mailer: Microsoft Outlook Express 6.00.2600.0000
X-MimeOLE: Produced By Microsoft MimeOLE V6.00.2600.0000
MIME-Version: 1.0
Content-Type: text/plain; charset="iso-8859-1"

Try mounting with -o nolock.
]],
  expect = { "!MID_OUTLOOK_NO_MUA", "!FORGED_OUTLOOK", "!SUBJ_ALL_CAPS",
             "!FREEMAIL_REPLYTO", "!XMAILER_BAD_VERSION" },
}

test{
  name = "headers: ratware ids, forged mailer, spoofed name, padded caps subject",
  message = [[
From: "service@bank.example" <xk29@mailer.example.net>
To: undisclosed-recipients:;
Reply-To: payments4u@hotmail.com
Subject: ACT NOW TO SAVE YOUR ACCOUNT!!!          XGHTMTG
Date: Tue, 03 Sep 2002 10:00:00 +0000
Message-ID: <00004ee7187c$00004968$00001798@mail.example.net>
X-Mailer: Microsoft Outlook Express 6.00.2600.0000.213597
X-Priority: 1 (Highest)
Content-Type: text/html

<p>hello</p>
]],
  expect = { "MID_RATWARE", "MID_OUTLOOK_NO_MUA", "!INVALID_MID", "FORGED_OUTLOOK",
             "XMAILER_BAD_VERSION", "FROM_NAME_SPOOF", "TO_UNDISCLOSED", "FREEMAIL_REPLYTO",
             "SUBJ_ALL_CAPS", "SUBJ_SYMBOLS", "SUBJ_PADDED_TOKEN", "CTYPE_NO_MIME_VERSION",
             "X_PRIORITY_HIGH", "!SUBJ_ADV_TAG", "!SUBJ_MONEY" },
}

test{
  name = "headers: no ids, no name, numeric sender, many recipients",
  message = [[
From: 33981726@freebies.example
To: a@one.example, b@two.example, c@three.example, d@four.example,
 e@five.example, f@six.example, g@seven.example, h@eight.example
Reply-To: other@yahoo.com
Message-ID: <no id here>

hi
]],
  expect = { "INVALID_MID", "FROM_NUMERIC_LOCAL", "MANY_RCPT_DOMAINS", "RCPT_HARVESTED",
             "FREEMAIL_REPLYTO", "MISSING_SUBJECT", "!MISSING_MID", "!FREEMAIL_FROM_REPLYTO" },
}

test{
  name = "headers: no From, no To, no Message-ID; two freemail boxes",
  message = [[
Subject: ADV: save 50% today
Date: Tue, 03 Sep 2002 10:00:00 +0000

hi
]],
  expect = { "MISSING_FROM", "MISSING_TO", "MISSING_MID", "!MISSING_SUBJECT", "SUBJ_ADV_TAG",
             "SUBJ_MONEY" },
}

test{
  name = "headers: From and Reply-To at two different freemail boxes",
  message = [[
From: MR IKE EJOH <ike.ejoh@yahoo.com>
Reply-To: ike_private@hotmail.com
To: friend@example.org
Subject: Business proposal
Message-ID: <001a01c2534e$6c2f8f40$0200a8c0@yahoo.com>

hi
]],
  expect = { "FREEMAIL_FROM_REPLYTO", "FREEMAIL_REPLYTO", "!FROM_NAME_SPOOF", "FROM_NAME_CAPS",
             "MID_OUTLOOK_NO_MUA", "!MID_RATWARE" },
}

test{
  name = "headers: the same mailbox name at many domains; a team in To",
  message = [[
From: a@example.net
To: webmaster@one.example, webmaster@two.example, webmaster@three.example,
 webmaster@four.example, webmaster@five.example
Cc: carol@example.org
Subject: hello
Date: Tue, 03 Sep 2002 10:00:00 +0000
Message-ID: <h7@example.net>

hi
]],
  expect = { "RCPT_HARVESTED" },
}

test{
  name = "headers: a meeting invitation to colleagues is no harvested list",
  message = [[
From: Alice <alice@example.net>
To: bob@example.org, zoe@example.com, carol@example.net, dave@example.edu,
 erin@example.de
Subject: meeting
Date: Tue, 03 Sep 2002 10:00:00 +0000
Message-ID: <h8@example.net>

hi
]],
  expect = { "!RCPT_HARVESTED" },
}
