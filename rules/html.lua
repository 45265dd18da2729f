-- rules/html.lua - what the reader sees versus what the message is: link
-- text that lies about its target, bodies that are one link or one
-- picture, HTML markup used to hide or split words.

local function lower(s) return s and s:lower() or "" end

-- "www.a.example.co.uk" -> "example.co.uk": the part an organisation
-- registers (approximation: two labels, three under a short second-level
-- label such as co.uk or com.au).
local function base_domain(host)
  host = lower(host):gsub("%.$", "")
  if host:match("^%d+%.%d+%.%d+%.%d+$") then return host end
  local labels = {}
  for l in host:gmatch("[^.]+") do labels[#labels + 1] = l end
  local n = #labels
  if n <= 2 then return host end
  local sld = labels[n - 1]
  if #labels[n] == 2 and (#sld <= 3 or sld == "gouv") then
    return table.concat(labels, ".", n - 2)
  end
  return labels[n - 1] .. "." .. labels[n]
end

local TLDS, FILE_EXT = {}, {}
for w in ("com net org edu gov mil info biz"):gmatch("%S+") do TLDS[w] = true end
for w in ("js py sh gz pl rb cs ps md so ai hh cc pm xz bz"):gmatch("%S+") do
  FILE_EXT[w] = true
end

-- The host an anchor text names, when the text looks like a URL or a bare
-- domain ("http://www.bank.example/login", "www.bank.example", "bank.example").
local function text_host(text)
  local t = lower(text):gsub("^%s+", ""):gsub("%s+$", "")
  local h = t:match("^https?://([%w%.%-]+)")
  if h then return h end
  h = t:match("^(www%.[%w%.%-]+%.%a%a+)")
  if h then return h end
  -- a bare "name.tld": only well-known TLDs, so "report.pdf" is no domain
  local tld = t:match("^[%w%-]+%.[%w%.%-]-%.?(%a+)$")
  if tld and (TLDS[tld] or (#tld == 2 and not FILE_EXT[tld])) then return t end
  return nil
end

-- Words (runs of 2+ letters) in the displayable text, and whether any
-- text part is HTML (counted in C, once per message: msg:text_stats()).
local function text_stats(msg)
  local st = msg:text_stats()
  return st.words, st.html ~= nil
end

-- The raw body with quoted-printable undone (enough to look at HTML tags;
-- base64 parts stay opaque), as is and in lower case: msg:body_qp(),
-- decoded in C once per message. Only when the message has an HTML part at
-- all: the other rules here have nothing to look at.
local function raw_html(msg)
  local _, html = text_stats(msg)
  if not html then return "", "" end
  local b = msg:body_qp()
  return b.text, b.lower
end

local function raw_html_lower(msg)
  return select(2, raw_html(msg))
end

-- HTML_LINK_MISMATCH: the anchor text is a URL or domain, the link goes to
-- another domain: the classic phishing trick. A link to the sender's own
-- domain is not counted: newsletters send their readers through their own
-- click-tracking host ("dilbert.com" -> unitedmedia.com, From unitedmedia).
rule{
  name = "HTML_LINK_MISMATCH", score = 2.5, group = "html",
  description = "Link text shows one domain, the link goes to another",
  check = function(ctx)
    local from = (ctx.msg.from or {})[1]
    local fdom = from and from.domain and base_domain(from.domain) or ""
    for _, u in ipairs(ctx.msg:urls()) do
      local s = lower(u.scheme)
      if u.href and u.text and u.host and u.host ~= "" and (s == "http" or s == "https") then
        -- the link's domain only when the text names one (most say "click here")
        local th = text_host(u.text)
        local hb = th and base_domain(u.host)
        if th and base_domain(th) ~= hb and hb ~= fdom then
          return true, base_domain(th) .. "->" .. hb
        end
      end
    end
    return false
  end,
}

-- BODY_SINGLE_LINK: almost no text, and the little there is points at one
-- site: "click here" mail whose whole content is the link.
rule{
  name = "BODY_SINGLE_LINK", score = 1.5, group = "html",
  description = "Body is little more than a single link",
  check = function(ctx)
    local msg = ctx.msg
    local words, html = text_stats(msg)
    if words >= 40 then return false end
    -- in HTML only the links count (the anchor texts are in the text too)
    local hosts, n = {}, 0
    for _, u in ipairs(msg:urls()) do
      local s = lower(u.scheme)
      if (s == "http" or s == "https") and u.host and u.host ~= "" and (u.href or not html) then
        local b = base_domain(u.host)
        if not hosts[b] then hosts[b] = true; n = n + 1 end
      end
    end
    if n ~= 1 then return false end
    -- plain text: only when the URL is most of it (a bare link), since
    -- short personal notes with a link are common
    if html then return true, (next(hosts)) end
    return words < 15, (next(hosts))
  end,
}

-- HTML_IMAGE_ONLY: an HTML body that is a picture and a few words: the
-- message is in the image, where text filters cannot read it.
rule{
  name = "HTML_IMAGE_ONLY", score = 2.5, group = "html",
  description = "HTML with images and fewer than 40 words of text",
  check = function(ctx)
    local words, html = text_stats(ctx.msg)
    if not html or words >= 40 then return false end
    return raw_html_lower(ctx.msg):find("<img", 1, true) ~= nil, words .. " words"
  end,
}

-- HTML_WORD_SPLIT: words broken up by comments or empty tags
-- ("V<!-- x -->iagra", "Fr<b></b>ee") to get past word filters; no editor
-- writes that.
rule{
  name = "HTML_WORD_SPLIT", score = 2.5, group = "html",
  description = "HTML comments or empty tags inside words",
  check = function(ctx)
    local h = raw_html(ctx.msg)
    -- Both patterns try every letter of the body: each only where its
    -- literal part is there at all. The empty-tag regex then only if the
    -- same pattern anchored on its "<" (first letter as a lookbehind: the
    -- same match exists or not) finds one: the engine searches that by "<".
    local n = 0
    if h:find("<!--", 1, true) then
      n = select(2, h:gsub("%a<!%-%-[^>]*%-%->%a", ""))
    end
    local m = 0
    if h:find("></", 1, true)
        and regex.new("/(?<=[a-z])<(\\w+)[^>]*><\\/\\1>[a-z]/i"):match(h) then
      m = regex.new("/[a-z]<(\\w+)[^>]*><\\/\\1>[a-z]/i"):count(h, 10)
    end
    return n + m >= 3, (n + m) .. " splits"
  end,
}

-- HTML_HIDDEN_TEXT: text the reader does not see (display:none, zero or
-- 1px fonts, visibility:hidden) - filler for statistical filters.
rule{
  name = "HTML_HIDDEN_TEXT", score = 1.5, group = "html",
  description = "HTML with invisible text (display:none, font-size:0/1px)",
  check = function(ctx)
    local h = raw_html_lower(ctx.msg)
    if not h:find("<", 1, true) then return false end
    if h:find("display%s*:%s*none") then return true, "display:none" end
    if h:find("visibility%s*:%s*hidden") then return true, "visibility:hidden" end
    if h:find("font%-size%s*:%s*[01]px") or h:find("font%-size%s*:%s*0[;\"']") then
      return true, "font-size"
    end
    return false
  end,
}

-- HTML_FORM: a form in a mail body - asks for data to be typed into the
-- message and sent elsewhere.
rule{
  name = "HTML_FORM", score = 0.5, group = "html",
  description = "HTML body contains a form",
  check = function(ctx)
    local h = raw_html_lower(ctx.msg)
    return h:find("<form[%s>]") ~= nil and h:find("<input[%s>]") ~= nil
  end,
}

-- HTML_SCRIPT: script in a mail body: no mail client runs it, so it is
-- only there for the browsers of webmail users.
rule{
  name = "HTML_SCRIPT", score = 0.3, group = "html",
  description = "HTML body contains script",
  check = function(ctx)
    local h = raw_html_lower(ctx.msg)
    if h:find("<script[%s>]") then return true, "<script>" end
    for _, u in ipairs(ctx.msg:urls()) do
      if lower(u.scheme) == "javascript" then return true, "javascript:" end
    end
    return false
  end,
}

-- HTML_FONT_BIG: huge font sizes (<font size=5..7 or +2..>, font-size
-- of 24px/18pt and up): advertising layout, rare in correspondence.
rule{
  name = "HTML_FONT_BIG", score = 0.8, group = "html",
  description = "HTML with very large fonts",
  check = function(ctx)
    local h = raw_html_lower(ctx.msg)
    -- h:find("<font[^>]-size%s*=%s*[\"']?%+?[5-7]") or the same with
    -- "%+[2-9]", as one regex over bytes (r: as Lua patterns, \s is %s):
    -- the Lua matcher retried "size" at every byte of every <font> tag.
    if regex.new([[/<font[^>]*?size\s*=\s*["']?(?:\+?[5-7]|\+[2-9])/r]]):match(h) then
      return true, "font size"
    end
    for n, unit in h:gmatch("font%-size%s*:%s*(%d+)%s*(p[xt])") do
      if (unit == "px" and tonumber(n) >= 24) or (unit == "pt" and tonumber(n) >= 18) then
        return true, n .. unit
      end
    end
    return false
  end,
}

-- HTML_FONT_RED: red text (color=red / #ff0000): the "act now" colour.
-- Weak alone; it adds to other signs of an advertisement.
rule{
  name = "HTML_FONT_RED", score = 0.5, group = "html",
  description = "HTML with red text",
  check = function(ctx)
    local h = raw_html_lower(ctx.msg)
    -- h:find("color%s*[=:]%s*[\"']?#?ff0000") or
    -- h:find("color%s*=%s*[\"']?red[\"'%s>]"), as one regex over bytes
    return regex.new([[/color\s*[=:]\s*["']?#?ff0000|color\s*=\s*["']?red["'\s>]/r]]):match(h)
  end,
}

test{
  name = "html: a newsletter with honest links and alternative text",
  message = [[
From: News <news@example.com>
To: bob@example.org
Subject: Example weekly
Date: Tue, 03 Sep 2002 10:00:00 +0200
Message-ID: <h1@example.com>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="b"

--b
Content-Type: text/plain; charset=us-ascii

This week: three new articles on gardening, cooking and travel.
Read them at http://www.example.com/weekly and tell us what you think.
--b
Content-Type: text/html; charset=us-ascii

<html><body><p>This week: three new articles on gardening, cooking and
travel. Read them at <a href="http://www.example.com/weekly">www.example.com</a>
and tell us what you think, or visit <a href="http://shop.example.com/">our shop</a>.
<img src="http://www.example.com/logo.gif"></p></body></html>
--b--
]],
  expect = { "!HTML_LINK_MISMATCH", "!BODY_SINGLE_LINK", "!HTML_IMAGE_ONLY",
             "!HTML_WORD_SPLIT", "!HTML_HIDDEN_TEXT", "!HTML_FORM", "!HTML_SCRIPT",
             "!HTML_FONT_BIG", "!HTML_FONT_RED" },
}

test{
  name = "html: a lying link, an image and little text",
  message = [[
From: Bank <service@bank.example>
To: bob@example.org
Subject: verify
Date: Tue, 03 Sep 2002 10:00:00 +0200
Message-ID: <h2@bank.example>
MIME-Version: 1.0
Content-Type: text/html; charset=us-ascii

<html><body><img src="http://evil.example.net/b.gif">
<p>Please log in at <a href="http://evil.example.net/login">https://www.bank.example/login</a></p>
<div style="display:none">random words for filters</div>
<form action="http://evil.example.net/x"><input name=pw></form>
<script>x()</script>
</body></html>
]],
  expect = { "HTML_LINK_MISMATCH", "BODY_SINGLE_LINK", "HTML_IMAGE_ONLY",
             "HTML_HIDDEN_TEXT", "HTML_FORM", "HTML_SCRIPT", "!HTML_WORD_SPLIT" },
}

test{
  name = "html: words split by comments and empty tags",
  message = [[
From: a@example.net
To: bob@example.org
Subject: hi
Date: Tue, 03 Sep 2002 10:00:00 +0200
Message-ID: <h3@example.net>
MIME-Version: 1.0
Content-Type: text/html; charset=us-ascii

<html><body><font size="+3" color="#FF0000">SALE</font><p>V<!-- x -->iagra and Ci<!-- y -->alis, fr<b></b>ee
sh<i></i>ipping, best pr<!-- z -->ices on the whole internet today,
order now from our friendly pharmacy team and save a lot of money on
every order you place with us this month only</p></body></html>
]],
  expect = { "HTML_WORD_SPLIT", "!BODY_SINGLE_LINK", "!HTML_LINK_MISMATCH",
             "HTML_FONT_BIG", "HTML_FONT_RED" },
}
