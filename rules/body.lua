-- rules/body.lua - the shape of the visible text: shouting, exclamation
-- runs, markup in a part that says it is plain text. No phrase lists: only
-- how the text is written, not what it says.

local function lower(s) return s and s:lower() or "" end

-- BODY_SHOUTING: most letters of a longer text in capitals.
rule{
  name = "BODY_SHOUTING", score = 1.0, group = "body",
  description = "Over 40% of the body's letters are capitals",
  check = function(ctx)
    local up, all = 0, 0
    for _, t in ipairs(ctx.msg:text() or {}) do
      local s = t.text or ""
      up = up + select(2, s:gsub("%u", ""))
      all = all + select(2, s:gsub("%a", ""))
    end
    return all >= 200 and up / all > 0.4, string.format("%.0f%%", 100 * up / math.max(all, 1))
  end,
}

-- BODY_EXCLAIM: "!!" runs or a pile of exclamation marks: selling, not
-- writing.
rule{
  name = "BODY_EXCLAIM", score = 0.5, group = "body",
  description = "Many exclamation marks in the body",
  check = function(ctx)
    local n, runs = 0, 0
    for _, t in ipairs(ctx.msg:text() or {}) do
      local s = t.text or ""
      n = n + select(2, s:gsub("!", ""))
      runs = runs + select(2, s:gsub("!!+", ""))
    end
    return n >= 10 or runs >= 2, n .. " marks"
  end,
}

-- MIME_HTML_IN_PLAIN: a part labelled text/plain that is HTML source: a
-- template sent with the wrong Content-Type by a bulk tool.
rule{
  name = "MIME_HTML_IN_PLAIN", score = 1.0, group = "mime",
  description = "text/plain part that contains HTML markup",
  check = function(ctx)
    for _, t in ipairs(ctx.msg:text() or {}) do
      if not t.html then
        local s = lower((t.text or ""):sub(1, 4000))
        local tags = select(2, s:gsub("<%s*/?%s*[abfhpt][a-z0-9]*[%s>]", ""))
        if (s:find("<html", 1, true) or s:find("<body", 1, true)
            or s:find("<a%s+href")) and tags >= 3 then
          return true
        end
      end
    end
    return false
  end,
}

test{
  name = "body: an ordinary message",
  message = [[
From: Alice <alice@example.net>
To: bob@example.org
Subject: notes
Date: Tue, 03 Sep 2002 10:00:00 +0200
Message-ID: <b1@example.net>

Hi Bob! The notes from today's meeting are below. NASA and the ESA will
send their figures by Friday; the HTML version is on the wiki, see the
<a> and <p> tags discussion there. Thanks!
]],
  expect = { "!BODY_SHOUTING", "!BODY_EXCLAIM", "!MIME_HTML_IN_PLAIN" },
  action = "no action",
}

test{
  name = "body: shouting, exclamations and HTML source in text/plain",
  message = [[
From: a@example.net
To: bob@example.org
Subject: hi
Date: Tue, 03 Sep 2002 10:00:00 +0200
Message-ID: <b2@example.net>
Content-Type: text/plain

<html><body><p>THIS IS THE OFFER YOU HAVE BEEN WAITING FOR!!! ACT NOW BEFORE IT
IS TOO LATE!!! YOU WILL NOT SEE THIS AGAIN, EVERY ORDER SHIPS TODAY, CALL US
OR CLICK THE LINK BELOW TO GET STARTED, THOUSANDS OF HAPPY CUSTOMERS CANNOT
BE WRONG!!! <a href="http://x.example/">HERE</a></p></body></html>
]],
  expect = { "BODY_SHOUTING", "BODY_EXCLAIM", "MIME_HTML_IN_PLAIN" },
}
