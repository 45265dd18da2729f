-- rules/mime.lua - the MIME structure: broken multiparts and encodings,
-- HTML without a text alternative, attachments that run code, attachments
-- with nothing around them.

local function lower(s) return s and s:lower() or "" end

-- Extensions Windows runs (or hands to a script host) on a double-click.
local EXEC = {}
for e in ([[exe scr js jse vbs vbe bat com pif cmd cpl hta msi msp wsf wsh
  lnk reg jar ps1 scf]]):gmatch("%S+") do EXEC[e] = true end

-- Extensions of harmless-looking documents, used as the decoy first half of
-- "invoice.pdf.exe".
local DECOY = {}
for e in ([[pdf doc docx xls xlsx ppt pptx txt rtf jpg jpeg gif png bmp
  zip rar htm html mp3 avi mpg wav]]):gmatch("%S+") do DECOY[e] = true end

-- The file name of a part: the decoded filename, or a name= in the raw
-- Content-Type (some senders only put it there).
local function part_name(p)
  if p.filename and p.filename ~= "" then return p.filename end
  local n = lower(p.content_type):match('name%s*=%s*"?([^";]+)')
  return n
end

-- Number of non-space characters in the displayable text.
local function text_size(msg)
  return msg:text_stats().nonspace
end

-- MIME_HTML_ONLY: HTML with no text/plain alternative. Legitimate mailers
-- send multipart/alternative; bulk tools often send bare HTML.
rule{
  name = "MIME_HTML_ONLY", score = 1.0, group = "mime",
  description = "HTML body without a text/plain alternative",
  check = function(ctx)
    local html, plain = false, false
    for _, p in ipairs(ctx.msg:parts()) do
      if p.is_text and not p.is_attachment then
        local st = lower(p.subtype)
        if st == "html" then html = true elseif st == "plain" then plain = true end
      end
    end
    return html and not plain
  end,
}

-- MIME_ALT_EMPTY_TEXT: multipart/alternative whose text/plain is (almost)
-- empty while the HTML has content: the text part exists only to look
-- legitimate to filters.
rule{
  name = "MIME_ALT_EMPTY_TEXT", score = 2.0, group = "mime",
  description = "text/plain alternative is empty, the HTML is not",
  check = function(ctx)
    local st = ctx.msg:text_stats()
    local plain = st.plain and st.plain.letters + st.plain.digits
    local html = st.html and st.html.letters + st.html.digits
    return plain ~= nil and html ~= nil and plain < 10 and html >= 60
  end,
}

-- MIME_EXE_ATTACH: an attachment Windows would execute. Nobody sends
-- programs by mail any more; this is how mail worms travel.
rule{
  name = "MIME_EXE_ATTACH", score = 5.0, group = "mime",
  description = "Executable attachment (.exe .scr .js .vbs .bat .com .pif .cmd ...)",
  check = function(ctx)
    for _, p in ipairs(ctx.msg:parts()) do
      local n = part_name(p)
      local ext = n and lower(n):match("%.([%w]+)%s*$")
      if ext and EXEC[ext] then return true, n end
    end
    return false
  end,
}

-- MIME_DOUBLE_EXT: "invoice.pdf.exe", "photo.jpg      .scr": a decoy
-- extension before the real one, often padded with spaces so that the
-- real one is cut off in the attachment list.
rule{
  name = "MIME_DOUBLE_EXT", score = 3.0, group = "mime",
  description = "Attachment with a decoy double extension (name.pdf.exe)",
  check = function(ctx)
    for _, p in ipairs(ctx.msg:parts()) do
      local n = part_name(p)
      if n then
        local a, b = lower(n):match("%.(%w+)[%s_.]*%.(%w+)%s*$")
        if a and DECOY[a] and EXEC[b] then return true, n end
      end
    end
    return false
  end,
}

-- MIME_EMPTY_BODY_ATTACH: an attachment and (almost) no text: "see the
-- attached" with nothing said is how malware and image spam arrive.
rule{
  name = "MIME_EMPTY_BODY_ATTACH", score = 1.5, group = "mime",
  description = "Attachment with an empty or near-empty body",
  check = function(ctx)
    local att = false
    for _, p in ipairs(ctx.msg:parts()) do
      if p.is_attachment and not p.is_multipart then att = true; break end
    end
    return att and text_size(ctx.msg) < 20
  end,
}

-- MIME_BAD_STRUCTURE: a multipart the parser had to guess at (no boundary,
-- boundary never used, no closing delimiter, nesting or part-count limits,
-- unparsable Content-Type). MUAs write these right; spam tools do not.
local STRUCT_FLAGS = { "no_boundary", "boundary_missing", "no_end_boundary",
                       "depth_limit", "parts_limit", "bad_ctype" }
rule{
  name = "MIME_BAD_STRUCTURE", score = 1.5, group = "mime",
  description = "Invalid MIME structure (boundaries, nesting, Content-Type)",
  check = function(ctx)
    local f = ctx.msg:flags() or {}
    local hit = {}
    for _, k in ipairs(STRUCT_FLAGS) do
      if f[k] then hit[#hit + 1] = k end
    end
    if #hit == 0 then return false end
    return true, unpack(hit)
  end,
}

-- MIME_BAD_ENCODING: transfer encodings that do not decode (unknown CTE,
-- base64 with junk, broken quoted-printable) or bad Content-* parameters.
local ENC_FLAGS = { "bad_encoding", "bad_base64", "bad_qp", "bad_params" }
rule{
  name = "MIME_BAD_ENCODING", score = 1.0, group = "mime",
  description = "Broken transfer encoding or Content-* parameters",
  check = function(ctx)
    local f = ctx.msg:flags() or {}
    local hit = {}
    for _, k in ipairs(ENC_FLAGS) do
      if f[k] then hit[#hit + 1] = k end
    end
    if #hit == 0 then return false end
    return true, unpack(hit)
  end,
}

-- MIME_BASE64_TEXT: a text part in base64 although it is plain 7-bit
-- text: the encoding is there to hide the words from simple filters.
rule{
  name = "MIME_BASE64_TEXT", score = 1.0, group = "mime",
  description = "7-bit text part needlessly encoded in base64",
  check = function(ctx)
    local msg = ctx.msg
    local b64 = {}
    for _, p in ipairs(msg:parts()) do
      if p.is_text and not p.is_attachment and lower(p.encoding) == "base64" then
        b64[p.index] = true
      end
    end
    if next(b64) == nil then return false end
    for _, t in ipairs(msg:text()) do
      if b64[t.part] and #(t.text or "") > 0 and not (t.text):find("[\128-\255]") then
        return true
      end
    end
    return false
  end,
}

-- MIME_MA_MISSING_TEXT: a multipart/alternative without a text/plain
-- alternative. The point of the container is to offer plain text next to
-- HTML; one built without it was assembled by a tool imitating the format.
rule{
  name = "MIME_MA_MISSING_TEXT", score = 3.0, group = "mime",
  description = "multipart/alternative without a text/plain part",
  check = function(ctx)
    local parts = ctx.msg:parts()
    for i, p in ipairs(parts) do
      if p.content_type == "multipart/alternative" then
        local plain = false
        for k = i + 1, #parts do
          local c = parts[k]
          if c.depth <= p.depth then break end
          if c.depth == p.depth + 1 and (c.content_type == "text/plain" or c.is_multipart) then
            plain = true
            break
          end
        end
        if not plain then return true end
      end
    end
    return false
  end,
}

-- MIME_MIXED_BOGUS: multipart/mixed (the container for attachments) that
-- holds one or two text parts and nothing else: no MUA builds that, a
-- template generator does.
rule{
  name = "MIME_MIXED_BOGUS", score = 1.0, group = "mime",
  description = "multipart/mixed with no attachment, only text",
  check = function(ctx)
    local parts = ctx.msg:parts()
    if not parts[1] or parts[1].content_type ~= "multipart/mixed" then return false end
    local ntext = 0
    for i = 2, #parts do
      local p = parts[i]
      if p.type == "text" and not p.is_attachment then
        ntext = ntext + 1
        if ntext > 2 then return false end
      elseif not p.is_multipart then
        return false
      end
    end
    return true
  end,
}

test{
  name = "mime: multipart/alternative with a PDF attachment is clean",
  message = [[
From: Alice <alice@example.net>
To: bob@example.org
Subject: the report
Date: Tue, 03 Sep 2002 10:00:00 +0200
Message-ID: <m1@example.net>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer"

--outer
Content-Type: multipart/alternative; boundary="inner"

--inner
Content-Type: text/plain; charset=us-ascii

Here is the quarterly report we talked about on Monday.
--inner
Content-Type: text/html; charset=us-ascii

<p>Here is the quarterly report we talked about on Monday.</p>
--inner--

--outer
Content-Type: application/pdf; name="report.pdf"
Content-Disposition: attachment; filename="report.pdf"
Content-Transfer-Encoding: base64

JVBERi0xLjQKJcOkw7zDtsOfCjIgMCBvYmoKPDwvTGVuZ3RoIDMgMCBSPj4Kc3RyZWFtCg==
--outer--
]],
  expect = { "!MIME_HTML_ONLY", "!MIME_ALT_EMPTY_TEXT", "!MIME_EXE_ATTACH",
             "!MIME_DOUBLE_EXT", "!MIME_EMPTY_BODY_ATTACH", "!MIME_BAD_STRUCTURE",
             "!MIME_BAD_ENCODING", "!MIME_BASE64_TEXT", "!MIME_MA_MISSING_TEXT",
             "!MIME_MIXED_BOGUS" },
  action = "no action",
}

test{
  name = "mime: invoice.pdf.exe with no text, no closing boundary",
  message = [[
From: billing@example.net
To: bob@example.org
Subject: invoice
Date: Tue, 03 Sep 2002 10:00:00 +0200
Message-ID: <m2@example.net>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b1"

--b1
Content-Type: text/plain

--b1
Content-Type: application/octet-stream; name="invoice.pdf.exe"
Content-Disposition: attachment; filename="invoice.pdf.exe"
Content-Transfer-Encoding: base64

TVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAAAAAAA
]],
  expect = { "MIME_EXE_ATTACH", "MIME_DOUBLE_EXT", "MIME_EMPTY_BODY_ATTACH",
             "MIME_BAD_STRUCTURE", "!MIME_HTML_ONLY" },
}

test{
  name = "mime: bare HTML; a base64 plain-ASCII text part; an empty alternative",
  message = [[
From: news@example.net
To: bob@example.org
Subject: offer
Date: Tue, 03 Sep 2002 10:00:00 +0200
Message-ID: <m3@example.net>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="b2"

--b2
Content-Type: text/plain; charset=us-ascii
Content-Transfer-Encoding: base64

IA==
--b2
Content-Type: text/html; charset=us-ascii
Content-Transfer-Encoding: base64

PGh0bWw+PGJvZHk+PHA+VGhpcyBpcyB0aGUgYmVzdCBvZmZlciB5b3Ugd2lsbCBldmVyIHNlZSBp
biB5b3VyIHdob2xlIGxpZmUsIGFuZCBpdCBpcyBvbmx5IGZvciB0b2RheS4gQ2xpY2sgYmVsb3cg
dG8gZ2V0IHN0YXJ0ZWQgcmlnaHQgbm93LjwvcD48L2JvZHk+PC9odG1sPg==
--b2--
]],
  expect = { "MIME_ALT_EMPTY_TEXT", "MIME_BASE64_TEXT", "!MIME_HTML_ONLY",
             "!MIME_BAD_STRUCTURE", "!MIME_MA_MISSING_TEXT", "!MIME_MIXED_BOGUS" },
}

test{
  name = "mime: HTML only, broken base64",
  message = [[
From: news@example.net
To: bob@example.org
Subject: offer
Date: Tue, 03 Sep 2002 10:00:00 +0200
Message-ID: <m4@example.net>
MIME-Version: 1.0
Content-Type: text/html; charset=us-ascii
Content-Transfer-Encoding: base64

PGh0bWw+PGJvZHk+aGVsbG8gd29ybGQ8L2JvZHk+PC9odG1sPg=!*=
]],
  expect = { "MIME_HTML_ONLY", "MIME_BAD_ENCODING", "!MIME_ALT_EMPTY_TEXT" },
}

test{
  name = "mime: an alternative of HTML alone inside a mixed of text only",
  message = [[
From: news@example.net
To: bob@example.org
Subject: offer
Date: Tue, 03 Sep 2002 10:00:00 +0200
Message-ID: <m5@example.net>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b3"

--b3
Content-Type: multipart/alternative; boundary="b4"

--b4
Content-Type: text/html; charset=us-ascii

<p>This is the best offer you will ever see in your whole life.</p>
--b4--

--b3--
]],
  expect = { "MIME_MA_MISSING_TEXT", "MIME_MIXED_BOGUS" },
}
