-- rules/mua.lua - mailer fingerprints that do not fit together. Every real
-- mail program writes a recognisable set of headers: Outlook and Outlook
-- Express a "<hex$hex$hex@host>" Message-ID together with X-MimeOLE, The Bat!
-- a "<digits.date@host>" id, Exchange's Internet Mail Service its own
-- Received line. Bulk tools copy one piece of such a set (the X-Mailer, the
-- priority headers, the id format) and not the rest; the missing piece is the
-- tell. Pure header checks: cheap, and independent of what the text says.
-- (FORGED_OUTLOOK, MID_RATWARE and XMAILER_BAD_VERSION are in headers.lua.)

local function lower(s) return s and s:lower() or "" end

-- Received lines of Yahoo Groups' list servers: they rewrite the mail and
-- keep the poster's X-Mailer, so the fingerprints below do not apply.
local function via_yahoo_groups(msg)
  for _, v in ipairs(msg:headers("Received") or {}) do
    if v:find("with NNFMP", 1, true) then return true end
  end
  return false
end

local function ms_mimeole(msg)
  local v = msg:header("X-MimeOLE")
  return v ~= nil and v:match("^%s*Produced By Microsoft MimeOLE") ~= nil
end

local function via_exchange(msg)
  for _, v in ipairs(msg:headers("Received") or {}) do
    if v:find("with Microsoft Exchange", 1, true) or v:find("with Internet Mail Service", 1, true) then
      return true
    end
  end
  return false
end

-- MID_OUTLOOK_NO_MUA: a Microsoft-style Message-ID "<hex$hex$hex@host>" on
-- a message that neither Outlook (it writes X-MimeOLE) nor an Exchange
-- server (its Received line) produced: the id format was copied.
rule{
  name = "MID_OUTLOOK_NO_MUA", score = 2.5, group = "mua",
  description = "Outlook-style Message-ID without Outlook's MimeOLE or an Exchange hop",
  check = function(ctx)
    local m = ctx.msg
    local v = m:header("Message-ID") or ""
    local re = regex.new([[/[0-9a-f]{4,}\$[0-9a-f]{4,}\$[0-9a-f]{4,}@\S+/]])
    if not re:match(v) then return false end
    return not ms_mimeole(m) and not via_exchange(m)
  end,
}

-- MISSING_MIMEOLE: X-MSMail-Priority is written only by Microsoft's mail
-- programs, which write X-MimeOLE with it (SquirrelMail and the newest
-- Outlook versions are the known exceptions).
rule{
  name = "MISSING_MIMEOLE", score = 2.0, group = "mua",
  description = "X-MSMail-Priority without the X-MimeOLE that comes with it",
  check = function(ctx)
    local m = ctx.msg
    if m:header("X-MSMail-Priority") == nil or m:header("X-MimeOLE") ~= nil then return false end
    local xm = m:header("X-Mailer") or ""
    if xm:find("SquirrelMail", 1, true) then return false end
    if xm:match("^%s*Microsoft Office Outlook [12]%d%.0") or xm:match("^%s*Microsoft Outlook [12]%d%.0") then
      return false
    end
    return true
  end,
}

-- FORGED_OUTLOOK_HTML: X-Mailer says Microsoft Outlook, the body is HTML
-- alone. Outlook always sends HTML as multipart/alternative with a text
-- part; a bare HTML body under its name is a template.
rule{
  name = "FORGED_OUTLOOK_HTML", score = 2.5, group = "mua",
  description = "Claims Microsoft Outlook but sends HTML without a text part",
  check = function(ctx)
    local m = ctx.msg
    local xm = m:header("X-Mailer") or ""
    if not xm:match("^%s*Microsoft Outlook") then return false end
    local html, plain = false, false
    for _, p in ipairs(m:parts()) do
      if p.is_text and not p.is_attachment then
        if p.subtype == "html" then html = true elseif p.subtype == "plain" then plain = true end
      end
    end
    return html and not plain and not via_yahoo_groups(m)
  end,
}

-- FORGED_IMS: X-Mailer "Internet Mail Service (5.x)" is Exchange 5.x's
-- gateway, which also writes its own "by HOST with Internet Mail Service"
-- Received line; without that line the X-Mailer was typed by someone else.
rule{
  name = "FORGED_IMS", score = 2.5, group = "mua",
  description = "X-Mailer claims Exchange's Internet Mail Service, no Exchange hop",
  check = function(ctx)
    local m = ctx.msg
    local xm = m:header("X-Mailer") or ""
    if not xm:match("^%s*Internet Mail Service %(5%.") then return false end
    return not via_exchange(m)
  end,
}

-- FORGED_THEBAT: X-Mailer "The Bat!" but a Message-ID The Bat! never
-- writes (it writes "<digits.YYYYMMDDhhmmss@host>").
rule{
  name = "FORGED_THEBAT", score = 2.0, group = "mua",
  description = "X-Mailer claims The Bat! but the Message-ID is not its format",
  check = function(ctx)
    local m = ctx.msg
    local xm = m:header("X-Mailer") or ""
    if not xm:match("^%s*The Bat!") then return false end
    local v = m:header("Message-ID") or ""
    return not v:match("^%s*<?%d+%.[12]%d%d%d%d%d%d%d%d%d%d%d%d%d@"), v:sub(1, 50)
  end,
}

-- FORGED_OUTLOOK_MID: X-Mailer says Outlook Express, but the Message-ID
-- is not the "<12 hex$8 hex$8 hex@host>" every Outlook Express writes.
-- Hotmail's servers replace the id of mail sent through them
-- ("<OE12abc...@hotmail.com>", "<DAV...@hotmail.com>"); those are allowed.
rule{
  name = "FORGED_OUTLOOK_MID", score = 2.5, group = "mua",
  description = "Claims Outlook Express but the Message-ID is not its format",
  check = function(ctx)
    local m = ctx.msg
    local xm = m:header("X-Mailer") or ""
    if not xm:match("^%s*Microsoft Outlook Express %d") then return false end
    local v = m:header("Message-ID") or ""
    local re = regex.new([[/^\s*<[0-9a-f]{12}\$[0-9a-f]{8}\$[0-9a-f]{8}@|^\s*<(?:OE|DAV|BAY|SEA|LAW|PAW)\w+@(?:hotmail|msn)\.com>/i]])
    return not re:match(v), v:sub(1, 50)
  end,
}

test{
  name = "mua: genuine Outlook Express and Exchange messages",
  message = [[
Received: by exchange.example.com with Internet Mail Service (5.5.2653.19)
	id <R3XX>; Tue, 3 Sep 2002 05:59:00 -0400
From: "Carol" <carol@example.com>
To: bob@example.org
Subject: NFS
Date: Tue, 03 Sep 2002 10:00:00 +0100
Message-ID: <001a01c2534e$6c2f8f40$0200a8c0@carol>
X-Mailer: Microsoft Outlook Express 6.00.2600.0000
X-MSMail-Priority: Normal
X-MimeOLE: Produced By Microsoft MimeOLE V6.00.2600.0000
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="b"

--b
Content-Type: text/plain; charset="iso-8859-1"

Try mounting with -o nolock.
--b
Content-Type: text/html; charset="iso-8859-1"

<p>Try mounting with -o nolock.</p>
--b--
]],
  expect = { "!MID_OUTLOOK_NO_MUA", "!MISSING_MIMEOLE", "!FORGED_OUTLOOK_HTML", "!FORGED_IMS",
             "!FORGED_THEBAT", "!FORGED_OUTLOOK_MID" },
  action = "no action",
}

test{
  name = "mua: Outlook pieces without the rest",
  message = [[
From: sales@example.biz
To: bob@example.org
Subject: offer
Date: Tue, 03 Sep 2002 10:00:00 +0100
Message-ID: <a1b2c3d4e5f6$0a0b0c0d$11223344@example.biz>
X-Mailer: Microsoft Outlook Express 6.00.2600.0000
X-MSMail-Priority: Normal
MIME-Version: 1.0
Content-Type: text/html; charset="iso-8859-1"

<p>Buy now.</p>
]],
  expect = { "MID_OUTLOOK_NO_MUA", "MISSING_MIMEOLE", "FORGED_OUTLOOK_HTML", "!FORGED_IMS",
             "!FORGED_OUTLOOK_MID" },
}

test{
  name = "mua: Internet Mail Service and The Bat! with foreign ids",
  message = [[
From: sales@example.biz
To: bob@example.org
Subject: offer
Date: Tue, 03 Sep 2002 10:00:00 +0100
Message-ID: <XYZ123@example.biz>
X-Mailer: Internet Mail Service (5.5.2653.19)

hi
]],
  expect = { "FORGED_IMS", "!MID_OUTLOOK_NO_MUA", "!FORGED_THEBAT" },
}

test{
  name = "mua: The Bat! id checks",
  message = [[
From: sales@example.biz
To: bob@example.org
Subject: offer
Date: Tue, 03 Sep 2002 10:00:00 +0100
Message-ID: <5412.ab@example.biz>
X-Mailer: The Bat! (v1.61)

hi
]],
  expect = { "FORGED_THEBAT" },
}

test{
  name = "mua: a real The Bat! id",
  message = [[
From: Ann <ann@example.net>
To: bob@example.org
Subject: hi
Date: Tue, 03 Sep 2002 10:00:00 +0100
Message-ID: <1634171870.20020903100000@example.net>
X-Mailer: The Bat! (v1.61)

hi
]],
  expect = { "!FORGED_THEBAT" },
}

test{
  name = "mua: Outlook Express with a foreign id, and one rewritten by Hotmail",
  message = [[
From: sales@example.biz
To: bob@example.org
Subject: offer
Date: Tue, 03 Sep 2002 10:00:00 +0100
Message-ID: <200209031000.KAA12345@example.biz>
X-Mailer: Microsoft Outlook Express 6.00.2600.0000

hi
]],
  expect = { "FORGED_OUTLOOK_MID" },
}

test{
  name = "mua: Outlook Express through Hotmail",
  message = [[
From: Ann <ann@hotmail.com>
To: bob@example.org
Subject: hi
Date: Tue, 03 Sep 2002 10:00:00 +0100
Message-ID: <OE17BcN7DaJHFzrK0pW0001e900@hotmail.com>
X-Mailer: Microsoft Outlook Express 6.00.2600.0000
X-MimeOLE: Produced By Microsoft MimeOLE V6.00.2600.0000

hi
]],
  expect = { "!FORGED_OUTLOOK_MID", "!FORGED_OUTLOOK" },
}
