-- rules/charset.lua - character set tricks: labels that do not match the
-- bytes, charsets nobody has heard of, look-alike letters from another
-- script, and RFC 2047 encoded-words used to hide an address or plain words.

local function lower(s) return s and s:lower() or "" end

-- True when s is valid UTF-8 (RFC 3629: no overlongs, no surrogates).
local function valid_utf8(s)
  local i, n = 1, #s
  while i <= n do
    local c = s:byte(i)
    local len
    if c < 0x80 then len = 1
    elseif c >= 0xC2 and c <= 0xDF then len = 2
    elseif c >= 0xE0 and c <= 0xEF then len = 3
    elseif c >= 0xF0 and c <= 0xF4 then len = 4
    else return false end
    for k = i + 1, i + len - 1 do
      local b = s:byte(k)
      if not b or b < 0x80 or b > 0xBF then return false end
    end
    local c2 = s:byte(i + 1)
    if (c == 0xE0 and c2 < 0xA0) or (c == 0xED and c2 > 0x9F)
      or (c == 0xF0 and c2 < 0x90) or (c == 0xF4 and c2 > 0x8F) then
      return false
    end
    i = i + len
  end
  return true
end

-- FROM_ENCODED_ADDR: an encoded-word in From that decodes to an address,
-- or an address that exists only inside encoded-words: the real sender is
-- hidden from anything that does not decode RFC 2047.
rule{
  name = "FROM_ENCODED_ADDR", score = 2.0, group = "charset",
  description = "From hides an address inside RFC 2047 encoded-words",
  check = function(ctx)
    local raw = ctx.msg:raw_header("From")
    if not raw or not raw:find("=?", 1, true) then return false end
    local outside = raw:gsub("=%?[^?]*%?[bBqQ]%?[^?]*%?=", "")
    if not outside:find("@", 1, true) then return true, "address encoded" end
    local f = (ctx.msg.from or {})[1]
    if f and f.name and f.name:find("[%w.]@[%w%-]+%.%a") then return true, "address in name" end
    return false
  end,
}

-- ADDR_ENCODED_WORD: an encoded-word inside the address itself
-- ("=?iso-2022-jp?B?...?=@example.jp"): RFC 2047 5 allows them only in
-- the display name; no mail program puts one in an address, bulk tools
-- that encode whole header lines do.
rule{
  name = "ADDR_ENCODED_WORD", score = 2.0, group = "charset",
  description = "RFC 2047 encoded-word inside a From/To address",
  check = function(ctx)
    for _, h in ipairs({ "From", "To" }) do
      local raw = ctx.msg:raw_header(h)
      if raw and raw:find("?=@", 1, true) then return true, h end
    end
    return false
  end,
}

-- SUBJ_MIXED_SCRIPT: a word mixing Latin letters with Cyrillic or Greek
-- ones ("Pаypal" with a Cyrillic a): look-alike spelling that defeats word
-- filters and fools readers. Real Russian or Greek text keeps words whole.
rule{
  name = "SUBJ_MIXED_SCRIPT", score = 2.0, group = "charset",
  description = "Subject word mixes Latin with Cyrillic or Greek letters",
  check = function(ctx)
    local s = ctx.msg.subject or ""
    for word in s:gmatch("[^%s%p]+") do
      -- Cyrillic U+0400-04FF = D0-D3 xx; Greek U+0370-03FF = CD-CF xx
      if word:find("%a") and (word:find("[\208-\211][\128-\191]")
        or word:find("[\205-\207][\128-\191]")) then
        return true, word
      end
    end
    return false
  end,
}

-- MIME_UNKNOWN_CHARSET: a charset label no converter knows
-- ("DEFAULT_CHARSET", "x-user-defined"): a broken template.
rule{
  name = "MIME_UNKNOWN_CHARSET", score = 1.0, group = "charset",
  description = "Text in a charset nobody knows",
  check = function(ctx)
    if (ctx.msg:flags() or {}).unknown_charset then return true end
    for _, p in ipairs(ctx.msg:parts()) do
      if p.is_text and not p.charset_known then return true, p.charset end
    end
    return false
  end,
}

-- MIME_BAD_CHARSET: bytes invalid in their declared charset (e.g. Latin-1
-- bytes labelled UTF-8): the label was not written by the program that
-- wrote the text.
rule{
  name = "MIME_BAD_CHARSET", score = 0.5, group = "charset",
  description = "Text bytes invalid in the declared charset",
  check = function(ctx)
    return (ctx.msg:flags() or {}).bad_charset == true
  end,
}

-- CHARSET_ASCII_8BIT: a text part labelled us-ascii (or not labelled) that
-- holds 8-bit characters: the declared charset does not match the text.
rule{
  name = "CHARSET_ASCII_8BIT", score = 0.5, group = "charset",
  description = "Text labelled US-ASCII contains 8-bit characters",
  check = function(ctx)
    local msg = ctx.msg
    local ascii = {}
    for _, p in ipairs(msg:parts()) do
      local cs = lower(p.charset)
      if p.is_text and (cs == "" or cs == "us-ascii") then ascii[p.index] = true end
    end
    if next(ascii) == nil then return false end
    for _, t in ipairs(msg:text()) do
      if ascii[t.part] and (t.text or ""):find("[\128-\255]") then return true end
    end
    return false
  end,
}

-- HDR_8BIT: raw 8-bit bytes in Subject or From that are not UTF-8
-- (RFC 6532 allows UTF-8 only): the reader's client has to guess the
-- charset; bulk tools in other locales do this.
rule{
  name = "HDR_8BIT", score = 1.5, group = "charset",
  description = "Unencoded non-UTF-8 8-bit bytes in Subject or From",
  check = function(ctx)
    for _, h in ipairs({ "Subject", "From" }) do
      local raw = ctx.msg:raw_header(h)
      if raw and raw:find("[\128-\255]") and not valid_utf8(raw) then return true, h end
    end
    return false
  end,
}

-- HDR_BAD_2047: malformed encoded-words in headers.
rule{
  name = "HDR_BAD_2047", score = 0.5, group = "charset",
  description = "Malformed RFC 2047 encoded-words",
  check = function(ctx)
    return (ctx.msg:flags() or {}).bad_2047 == true
  end,
}

-- SUBJ_ENCODED_ASCII: a Subject in base64 encoded-words that decodes to
-- plain ASCII: nothing needed encoding, so it was done to hide the words.
rule{
  name = "SUBJ_ENCODED_ASCII", score = 1.0, group = "charset",
  description = "Subject base64-encoded although it is plain ASCII",
  check = function(ctx)
    local raw = ctx.msg:raw_header("Subject")
    if not raw or not raw:find("=%?[^?]*%?[bB]%?") then return false end
    local s = ctx.msg.subject or ""
    return #s > 0 and not s:find("[\128-\255]")
  end,
}

test{
  name = "charset: Latin-1 and UTF-8 mail from real clients",
  message = [[
From: =?ISO-8859-1?Q?J=F6rg_M=FCller?= <joerg@example.de>
To: bob@example.org
Subject: =?ISO-8859-1?Q?=DCbersicht_f=FCr_M=E4rz?=
Date: Tue, 03 Sep 2002 10:00:00 +0200
Message-ID: <c1@example.de>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Grüße aus München, привет из Москвы.
]],
  expect = { "!FROM_ENCODED_ADDR", "!SUBJ_MIXED_SCRIPT", "!MIME_UNKNOWN_CHARSET",
             "!MIME_BAD_CHARSET", "!CHARSET_ASCII_8BIT", "!HDR_8BIT", "!HDR_BAD_2047",
             "!SUBJ_ENCODED_ASCII", "!ADDR_ENCODED_WORD" },
  action = "no action",
}

test{
  name = "charset: hidden address, mixed scripts, unknown charset",
  message = [[
From: =?UTF-8?B?c2VydmljZUBwYXlwYWwuY29tIDxzZXJ2aWNlQHBheXBhbC5jb20+?= <x@evil.example>
To: bob@example.org
Subject: =?UTF-8?B?WW91ciBQ0LB5cGFsIGFjY291bnQ=?=
Date: Tue, 03 Sep 2002 10:00:00 +0200
Message-ID: <c2@evil.example>
MIME-Version: 1.0
Content-Type: text/plain; charset="DEFAULT_CHARSET"

Please confirm your account.
]],
  expect = { "FROM_ENCODED_ADDR", "SUBJ_MIXED_SCRIPT", "MIME_UNKNOWN_CHARSET",
             "!SUBJ_ENCODED_ASCII" },
}

test{
  name = "charset: base64 ASCII subject, raw Latin-1 header bytes, 8-bit in us-ascii",
  message = "From: Jos\233 <jose@example.net>\n" ..
    "To: bob@example.org\n" ..
    "Subject: =?us-ascii?B?RnJlZSBvZmZlciBmb3IgeW91?=\n" ..
    "Date: Tue, 03 Sep 2002 10:00:00 +0200\n" ..
    "Message-ID: <c3@example.net>\n" ..
    "MIME-Version: 1.0\n" ..
    "Content-Type: text/plain; charset=us-ascii\n\n" ..
    "Caf\195\169 ol\195\169\n",
  expect = { "SUBJ_ENCODED_ASCII", "HDR_8BIT", "CHARSET_ASCII_8BIT", "!SUBJ_MIXED_SCRIPT" },
}

test{
  name = "charset: an encoded-word as the local part of an address",
  message = [[
From: =?iso-2022-jp?B?am9rb0Bycy4xMjgubmUuanA=?=@example.jp
To: =?iso-2022-jp?B?MTIx?=@example.org
Subject: hello
Date: Tue, 03 Sep 2002 10:00:00 +0200
Message-ID: <c4@example.jp>

hi
]],
  expect = { "ADDR_ENCODED_WORD" },
}
