-- rules/body.lua - the shape of the visible text: shouting, exclamation
-- runs, markup in a part that says it is plain text. No phrase lists: only
-- how the text is written, not what it says.

local function lower(s) return s and s:lower() or "" end

-- BODY_SHOUTING: most letters of a longer text in capitals.
rule{
  name = "BODY_SHOUTING", score = 1.5, group = "body",
  description = "Over 40% of the body's letters are capitals",
  check = function(ctx)
    local st = ctx.msg:text_stats()
    local up, all = st.upper, st.letters
    return all >= 200 and up / all > 0.4, string.format("%.0f%%", 100 * up / math.max(all, 1))
  end,
}

-- BODY_EXCLAIM: "!!" runs or a pile of exclamation marks: selling, not
-- writing.
rule{
  name = "BODY_EXCLAIM", score = 1.0, group = "body",
  description = "Many exclamation marks in the body",
  check = function(ctx)
    local st = ctx.msg:text_stats()
    local n, runs = st.exclaim, st.exclaim_runs
    return n >= 10 or runs >= 2, n .. " marks"
  end,
}

-- MIME_HTML_IN_PLAIN: a part labelled text/plain that is HTML source: a
-- template sent with the wrong Content-Type by a bulk tool.
rule{
  name = "MIME_HTML_IN_PLAIN", score = 1.5, group = "mime",
  description = "text/plain part that contains HTML markup",
  check = function(ctx)
    for _, t in ipairs(ctx.msg:text()) do
      local s = not t.html and (t.text or ""):sub(1, 4000)
      -- every pattern below starts with "<": no copy in lower case without
      if s and s:find("<", 1, true) then
        s = lower(s)
        -- tags counted only when the text has one of these at all
        if (s:find("<html", 1, true) or s:find("<body", 1, true)
            or s:find("<a%s+href"))
            and select(2, s:gsub("<%s*/?%s*[abfhpt][a-z0-9]*[%s>]", "")) >= 3 then
          return true
        end
      end
    end
    return false
  end,
}

-- BULK_NO_LIST_UNSUB: the text offers a way off a mailing list
-- ("unsubscribe", "opt out", "to be removed from our list") but the message
-- has none of the list headers (List-Unsubscribe, List-Id, RFC 2369) that
-- list software and honest bulk senders add, and is no reply. Bulk mail
-- sent by something that is not a list manager; the big mailbox providers
-- ask every bulk sender for List-Unsubscribe.
local LIST_HEADERS = { "List-Unsubscribe", "List-Id", "List-Post", "X-Mailman-Version",
                       "Mailing-List", "In-Reply-To", "References" }
rule{
  name = "BULK_NO_LIST_UNSUB", score = 1.0, group = "body",
  description = "Opt-out text without List-Unsubscribe or other list headers",
  check = function(ctx)
    local m = ctx.msg
    for _, h in ipairs(LIST_HEADERS) do
      if m:header(h) ~= nil then return false end
    end
    -- /\bunsubscri|\bopt[- ]?out\b|\bremoved?\b.{0,40}\b(?:list|...)/is
    -- as three regexes: the same yes or no, five times faster (the engine
    -- searches each for its own first letter instead of trying every u, o
    -- and r with all three).
    local unsub = regex.new([[/\bunsubscri/is]])
    local optout = regex.new([[/\bopt[- ]?out\b/is]])
    local removed = regex.new([[/\bremoved?\b.{0,40}\b(?:list|mailing|e-?mail|address)/is]])
    for _, t in ipairs(m:text()) do
      local s = t.text or ""
      if unsub:match(s) or optout:match(s) or removed:match(s) then return true end
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
  expect = { "!BODY_SHOUTING", "!BODY_EXCLAIM", "!MIME_HTML_IN_PLAIN", "!BULK_NO_LIST_UNSUB" },
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

test{
  name = "body: opt-out text with and without list headers",
  message = [[
From: offers@example.net
To: bob@example.org
Subject: hi
Date: Tue, 03 Sep 2002 10:00:00 +0200
Message-ID: <b3@example.net>

Great deals this week. To be removed from our mailing list, reply with REMOVE.
]],
  expect = { "BULK_NO_LIST_UNSUB" },
}

test{
  name = "body: a list post with its footer",
  message = [[
From: Dave <dave@example.net>
To: dev@lists.example.org
Subject: release
Date: Tue, 03 Sep 2002 10:00:00 +0200
Message-ID: <b4@example.net>
List-Id: <dev.lists.example.org>
List-Unsubscribe: <mailto:dev-request@lists.example.org?subject=unsubscribe>

Release is out.
--
To unsubscribe, e-mail dev-request@lists.example.org
]],
  expect = { "!BULK_NO_LIST_UNSUB" },
}
