-- bindings.lua - tests of the Lua bindings (ctx.msg, ctx.env, ctx.conn,
-- regex, dir, the sandbox), written in Lua and run by t/83-lua-bindings.t
-- through `moonpost rules test --json`.
--
-- Every case is a rule named T_<MESSAGE>_<WHAT> that only looks at the
-- message whose Message-ID is <message@bindings.test> (t/lua/MESSAGE.eml,
-- lower-cased). A case that holds returns true (the symbol fires); one that
-- does not raises an error with file:line, which the scan lists under
-- "errors". The runner expects every T_ symbol of a message to fire and no
-- error apart from X_RAISES (a rule that fails on purpose).

local function fail(what, got, want, level)
  error(string.format("%s: got %s, want %s", what, tostring(got), tostring(want)), level + 1)
end

local function eq(got, want, what)
  if got ~= want then fail(what, got, want, 2) end
end

local function truthy(v, what)
  if not v then fail(what, v, "a true value", 2) end
end

local function case(name, message, fn)
  rule{
    name = name, score = 0, group = "test", description = "binding test " .. name,
    check = function(ctx)
      if ctx.msg.message_id ~= "<" .. message .. "@bindings.test>" then return false end
      fn(ctx, ctx.msg)
      return true
    end,
  }
end

-- ---- headers -------------------------------------------------------------

case("T_FULL_SUBJECT", "full", function(_, m)
  -- RFC 2047 6.2: adjacent encoded-words join without the space between.
  eq(m.subject, "Grüße aus München", "decoded subject")
  eq(m:header("subject"), m.subject, "header() is case-insensitive and decoded")
  truthy(m:raw_header("Subject"):find("=?UTF-8?B?", 1, true), "raw_header keeps encoded-words")
end)

case("T_FULL_HEADER_LISTS", "full", function(_, m)
  local v = m:headers("X-Multi")
  eq(#v, 2, "headers(name) count")
  eq(v[1], "first", "first X-Multi")
  eq(v[2], "second folded", "second X-Multi, unfolded (RFC 5322 2.2.3)")
  eq(#m:headers("Received"), 2, "two Received")
  eq(m:header("X-Absent"), nil, "missing header")
  eq(#m:headers("X-Absent"), 0, "missing header list")
  local all = m:headers()
  eq(all[1].name, "Received", "headers() in order: first name")
  eq(all[#all].name, "Content-Type", "headers() in order: last name")
  local raw = m:raw_headers("Received")
  truthy(raw[1]:find("\n", 1, true), "raw Received keeps its folding")
end)

case("T_FULL_ADDRESSES", "full", function(_, m)
  eq(#m.from, 1, "one From")
  eq(m.from[1].name, "Jörg Müller", "From display name decoded")
  eq(m.from[1].addr, "Joerg@Example.DE", "From address as written")
  eq(m.from[1].user, "Joerg", "From local part")
  eq(m.from[1].domain, "Example.DE", "From domain")
  eq(#m.to, 2, "two To")
  eq(m.to[1].name, "Bob Smith", "quoted display name")
  eq(m.to[2].addr, "carol@example.org", "bare address")
  eq(m.to[2].name, "", "bare address has no name")
  eq(m.cc[1].addr, "dave@example.com", "Cc")
  eq(#m.reply_to, 0, "no Reply-To")
end)

case("T_FULL_DATE_ID_SIZE", "full", function(_, m)
  -- Tue, 03 Sep 2002 10:00:00 +0200 = 08:00:00 UTC
  eq(m.date, 1031040000, "Date as Unix time")
  eq(m.message_id, "<full@bindings.test>", "Message-ID")
  truthy(m.size > 1000 and m.size < 3000, "size in bytes")
  eq(#m:body() < m.size, true, "body() is smaller than the message")
  truthy(m:body():find("^This is a multi%-part"), "body() starts after the header block")
end)

-- ---- MIME structure ----------------------------------------------------------

case("T_FULL_PARTS", "full", function(_, m)
  local p = m:parts()
  eq(#p, 5, "parts: mixed, alternative, plain, html, pdf")
  eq(p[1].content_type, "multipart/mixed", "part 1")
  eq(p[1].is_multipart, true, "part 1 is multipart")
  eq(p[2].content_type, "multipart/alternative", "part 2")
  eq(p[2].depth, 1, "part 2 depth")
  eq(p[3].content_type, "text/plain", "part 3")
  eq(p[3].charset, "iso-8859-1", "part 3 charset")
  eq(p[3].charset_known, true, "iso-8859-1 is known")
  eq(p[3].encoding, "quoted-printable", "part 3 encoding")
  eq(p[3].is_text, true, "part 3 is text")
  eq(p[4].subtype, "html", "part 4 subtype")
  eq(p[5].filename, "report.pdf", "attachment filename")
  eq(p[5].is_attachment, true, "attachment")
  eq(p[5].disposition, "attachment", "disposition")
  eq(p[5].encoding, "base64", "attachment encoding")
  eq(p[5].is_text, false, "a PDF is not text")
  eq(next(m:flags()), nil, "a well-formed message has no MIME flags")
end)

case("T_FULL_TEXT", "full", function(_, m)
  local t = m:text()
  eq(#t, 2, "two displayable text parts")
  eq(t[1].html, false, "plain first")
  truthy(t[1].text:find("Grüße!", 1, true), "quoted-printable Latin-1 decoded to UTF-8")
  eq(t[2].html, true, "then the HTML")
  truthy(t[2].text:find("Grüße!", 1, true), "HTML entities decoded, tags gone")
  eq(t[2].text:find("<p>", 1, true), nil, "no tags in the HTML text")
  eq(#t[2].links, 1, "one link")
  eq(t[2].links[1].href, "http://evil.example.net/x", "link href")
  eq(t[2].links[1].text, "www.example.com", "link text")
end)

case("T_FULL_URLS", "full", function(_, m)
  local hosts, href = {}, nil
  for _, u in ipairs(m:urls()) do
    hosts[u.host] = true
    if u.href then href = u end
  end
  truthy(hosts["www.example.com"], "URL in the plain text, host lower-cased")
  truthy(hosts["evil.example.net"], "href host")
  eq(href.text, "www.example.com", "the href's anchor text")
  eq(href.scheme, "http", "scheme")
end)

case("T_BROKEN_FLAGS", "broken", function(_, m)
  local f = m:flags()
  truthy(f.no_end_boundary, "no closing boundary flagged")
  local p = m:parts()
  eq(#p, 3, "parts of a broken multipart still listed")
  eq(p[3].charset_known, false, "x-nonexistent-charset is unknown")
  m:text()   -- decoding sets the decoder flags
  truthy(m:flags().bad_base64, "bad base64 flagged")
  eq(m.from[1].domain, "", "an address without a domain")
  eq(m.from[1].bad, true, "and it is marked bad")
  eq(m.date, nil, "no Date")
end)

case("T_FULL_TEXT_STATS", "full", function(_, m)
  -- The counts are those of Lua patterns over m:text() (ASCII classes: the
  -- bytes of "ü" and "ß" are no letters, so "Grüße" holds one word, "Gr").
  local function count(s, pat) return select(2, s:gsub(pat, "")) end
  local function want(kind)
    local w = { letters = 0, upper = 0, lower = 0, digits = 0, words = 0, nonspace = 0,
                exclaim = 0, exclaim_runs = 0 }
    local pats = { letters = "%a", upper = "%u", lower = "%l", digits = "%d", words = "%a%a+",
                   nonspace = "%S", exclaim = "!", exclaim_runs = "!!+" }
    for _, t in ipairs(m:text()) do
      if kind == "all" or t.html == (kind == "html") then
        for k, pat in pairs(pats) do w[k] = w[k] + count(t.text, pat) end
      end
    end
    return w
  end
  local st = m:text_stats()
  for name, got in pairs { all = st, plain = st.plain, html = st.html } do
    local w = want(name)
    for k, v in pairs(w) do eq(got[k], v, "text_stats " .. name .. "." .. k) end
  end
  eq(st.plain.exclaim, 3, "plain: three '!'")
  eq(st.plain.exclaim_runs, 1, "plain: one run of '!!'")
  eq(st.html.exclaim_runs, 0, "html: no run")
  eq(st.letters, st.upper + st.lower, "letters = upper + lower")
  eq(m:text_stats(), st, "the same table for every rule")
end)

case("T_FULL_BODY_QP", "full", function(_, m)
  local b = m:body_qp()
  truthy(b.text:find("soft line break; 2+2=4.", 1, true), "soft line break and =3D undone")
  truthy(b.text:find("Gr\252\223e!", 1, true), "=XX to the byte (no charset conversion)")
  truthy(b.text:find("JVBERi0xLjQK", 1, true), "base64 left as it is")
  truthy(b.text:find("^This is a multi%-part"), "the body after the header block")
  eq(b.lower, b.text:lower(), "lower: the same in lower case")
  eq(m:body_qp(), b, "the same table for every rule")
end)

-- ---- envelope and connection (from `rules test --from --rcpt --ip --helo`) ---

case("T_FULL_ENVELOPE", "full", function(ctx)
  eq(ctx.env.from, "sender@bindings.test", "env.from")
  eq(ctx.env.rcpts[1], "bob@example.org", "env.rcpts")
  eq(ctx.conn.ip, "192.0.2.55", "conn.ip")
  eq(ctx.conn.helo, "helo.bindings.test", "conn.helo")
  eq(type(ctx.notes), "table", "ctx.notes")
  ctx.notes.seen = true
end)

-- ---- library -------------------------------------------------------------------

case("T_FULL_REGEX", "full", function(_, m)
  local re = regex.new("/m(ü)nchen/i")
  eq(re:match(m.subject), true, "UTF-8 caseless match")
  local s, e = re:find(m.subject)
  eq(s, 13, "find start (1-based, bytes)")
  eq(e, 20, "find end")
  local c = re:capture(m.subject)
  eq(c[1], "München", "whole match first")
  eq(c[2], "ü", "then the group")
  eq(regex.new("a", "i"):count("AaBa"), 3, "count")
  eq(regex.new("x"):match("abc"), false, "no match")
  eq(regex.new("/a+b/") == regex.new("/a+b/"), true, "compiled once per set")
  local ok, err = pcall(regex.new, "/(unclosed/")
  eq(ok, false, "a bad pattern raises")
  truthy(tostring(err):find("unclosed", 1, true) or tostring(err):find("missing", 1, true),
         "with PCRE2's reason")
end)

case("T_FULL_SANDBOX", "full", function()
  for _, name in ipairs { "io", "loadfile", "dofile", "load", "loadstring", "ffi", "debug",
                          "jit", "package", "collectgarbage", "module" } do
    eq(_G[name] or rawget(_G, name), nil, name .. " is not reachable")
  end
  eq(os.execute, nil, "os.execute")
  eq(os.exit, nil, "os.exit")
  eq(os.remove, nil, "os.remove")
  eq(os.getenv, nil, "os.getenv")
  eq(type(os.time()), "number", "os.time is there")
  for _, mod in ipairs { "io", "ffi", "os", "../../../etc/passwd", "moonpost.nonexistent" } do
    eq(pcall(require, mod), false, "require " .. mod)
  end
  eq(type(string.format), "function", "string library")
end)

case("T_FULL_DIR", "full", function()
  -- No directory in `rules test`: lookups answer tempfail at once.
  local r = dir.lookup("bob@example.org")
  eq(r.result, "tempfail", "dir.lookup without a directory")
end)

-- A rule that fails on purpose: listed under errors, never fires, and the
-- scan goes on (the T_ rules after it still run).
rule{
  name = "X_RAISES", score = 5, group = "test", description = "raises an error",
  check = function(ctx)
    if ctx.msg.message_id == "<full@bindings.test>" then error("deliberate failure") end
    return false
  end,
}

case("T_FULL_AFTER_ERROR", "full", function(ctx)
  eq(ctx.notes.seen, true, "ctx.notes is shared by the rules of one scan")
end)
