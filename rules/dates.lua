-- rules/dates.lua - the Date header and the times in the Received chain.
--
-- "Now" for a message is the time of the newest Received header (the hop
-- that handed it to us, or our own when rescanning stored mail); only a
-- message without any dated Received is compared with the clock. That keeps
-- the rules right for old mail scanned today (archives, the test corpus).

local MONTHS = { jan = 1, feb = 2, mar = 3, apr = 4, may = 5, jun = 6,
                 jul = 7, aug = 8, sep = 9, oct = 10, nov = 11, dec = 12 }

-- RFC 5322 4.3 obsolete zone names, in minutes east of UTC.
local ZONES = { ut = 0, utc = 0, gmt = 0, z = 0, est = -300, edt = -240,
                cst = -360, cdt = -300, mst = -420, mdt = -360, pst = -480,
                pdt = -420, bst = 60, cet = 60, cest = 120, met = 60, mest = 120,
                eet = 120, eest = 180, jst = 540, kst = 540, hkt = 480, sgt = 480,
                ist = 60, wet = 0, west = 60, aest = 600, nzst = 720 }

-- Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant).
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

-- Parses "[Day,] DD Mon YYYY HH:MM[:SS] [zone]" anywhere in s.
-- Returns unix time (UTC), zone text ("" when none) and the offset in
-- minutes (nil when the zone is missing or unknown); nil when no date.
local function parse_date(s)
  local d, mon, y, hh, mm, rest =
    s:match("(%d%d?)[%s%-]+(%a%a%a)%a*%.?[%s%-]+(%d%d%d?%d?)%s+(%d%d?):(%d%d)(.*)")
  if not d then return nil end
  local m = MONTHS[mon:lower()]
  if not m then return nil end
  d, y, hh, mm = tonumber(d), tonumber(y), tonumber(hh), tonumber(mm)
  if y < 50 then y = y + 2000 elseif y < 1000 then y = y + 1900 end
  local ss = tonumber(rest:match("^:(%d%d)")) or 0
  rest = rest:gsub("^:%d%d", "")
  local zone = rest:match("^%s*([+-]+%d+)") or rest:match("^%s*(%a+)") or ""
  local off
  local sign, zh, zm = zone:match("^([+-])(%d%d)(%d%d)$")
  if sign then
    off = (tonumber(zh) * 60 + tonumber(zm)) * (sign == "-" and -1 or 1)
  else
    off = ZONES[zone:lower()]
  end
  local t = (days_from_civil(y, m, d) * 24 + hh) * 3600 + mm * 60 + ss - (off or 0) * 60
  return t, zone, off
end

-- Times of the Received headers, newest (top) first; undated ones skipped.
local TIMES = setmetatable({}, { __mode = "k" })  -- per message (weak keys)
local function received_times(msg)
  if TIMES[msg] then return TIMES[msg] end
  local out = {}
  for _, v in ipairs(msg:headers("Received") or {}) do
    local semi = v:match(";([^;]*)$")   -- after the last ";" (no backtracking from the end)
    local t = semi and parse_date(semi)
    if t then out[#out + 1] = t end
  end
  TIMES[msg] = out
  return out
end

local function reference_time(msg)
  return received_times(msg)[1] or os.time()
end

local HOUR = 3600

-- MISSING_DATE: RFC 5322 3.6 requires Date; every MUA writes one.
rule{
  name = "MISSING_DATE", score = 1.0, group = "dates",
  description = "No Date header",
  check = function(ctx)
    return ctx.msg:header("Date") == nil
  end,
}

-- INVALID_DATE: a Date that no parser understands (or a year like 0102):
-- hand-made by a script.
rule{
  name = "INVALID_DATE", score = 1.5, group = "dates",
  description = "Date header cannot be parsed",
  check = function(ctx)
    local v = ctx.msg:header("Date")
    if v == nil then return false end
    local y = v:match("%a%a%a%a*%.?%s+(%d+)%s+%d%d?:")
    if y and #y == 3 then return true, "year " .. y end
    return ctx.msg.date == nil or parse_date(v) == nil, v:sub(1, 40)
  end,
}

-- DATE_BAD_ZONE: a numeric zone that does not exist (-1600, +-0500, minutes
-- not 00/30/45): bulk tools that compute the zone wrongly.
rule{
  name = "DATE_BAD_ZONE", score = 2.5, group = "dates",
  description = "Date has an impossible time zone",
  check = function(ctx)
    local v = ctx.msg:header("Date")
    if v == nil then return false end
    local z = v:match("%d%d?:%d%d:?%d?%d?%s*([+-]+%d+)")
    if not z then return false end
    local sign, h, m = z:match("^([+-])(%d%d)(%d%d)$")
    if not sign then return true, z end
    h, m = tonumber(h), tonumber(m)
    return h > 14 or (m ~= 0 and m ~= 30 and m ~= 45), z
  end,
}

-- DATE_NO_ZONE: a time without any zone: MUAs always write one.
rule{
  name = "DATE_NO_ZONE", score = 1.5, group = "dates",
  description = "Date has no time zone",
  check = function(ctx)
    local v = ctx.msg:header("Date")
    if v == nil then return false end
    local t, zone = parse_date(v)
    return t ~= nil and zone == ""
  end,
}

-- DATE_IN_FUTURE: dated more than 12 hours after it reached us: a wrong
-- clock or zone on purpose, to stay at the top of a date-sorted inbox.
-- A wrong zone is off by a day at most; three days or more ahead is a
-- date made up on purpose, and scores half as much again.
rule{
  name = "DATE_IN_FUTURE", score = 2.0, group = "dates",
  description = "Date is more than 12 hours after the message arrived",
  check = function(ctx)
    local d = ctx.msg.date
    if not d then return false end
    local diff = d - reference_time(ctx.msg)
    if diff > 72 * HOUR then return 1.5, string.format("%.0fh", diff / HOUR) end
    return diff > 12 * HOUR, string.format("%.0fh", diff / HOUR)
  end,
}

-- DATE_IN_PAST: dated more than 4 days before it arrived. Queued or
-- resent mail does this too, so it scores little; over a year it is a
-- template date or a broken clock, and scores more.
rule{
  name = "DATE_IN_PAST", score = 0.5, group = "dates",
  description = "Date is more than 4 days before the message arrived",
  check = function(ctx)
    local d = ctx.msg.date
    if not d then return false end
    local diff = reference_time(ctx.msg) - d
    if diff > 365 * 24 * HOUR then return 3, string.format("%.0fd", diff / 24 / HOUR) end
    return diff > 96 * HOUR, string.format("%.0fd", diff / 24 / HOUR)
  end,
}

-- RCVD_DATE_DISORDER: a Received header that claims a time more than 12
-- hours after the hop that came after it: headers written by the sender
-- to look like a relay path.
rule{
  name = "RCVD_DATE_DISORDER", score = 1.5, group = "received",
  description = "Received times go backwards by more than 12 hours",
  check = function(ctx)
    local ts = received_times(ctx.msg)
    for i = 1, #ts - 1 do
      if ts[i + 1] - ts[i] > 12 * HOUR then
        return true, string.format("%.0fh", (ts[i + 1] - ts[i]) / HOUR)
      end
    end
    return false
  end,
}

test{
  name = "dates: a correct Date one minute before the relay",
  message = [[
Received: from mail.example.net (mail.example.net [192.0.2.1])
	by mx.example.org with ESMTP id 1234; Tue, 3 Sep 2002 10:01:00 +0200
Received: from [10.0.0.5] by mail.example.net with ESMTP id 99;
	Tue, 3 Sep 2002 08:00:40 +0000
From: Alice <alice@example.net>
To: bob@example.org
Subject: minutes
Date: Tue, 03 Sep 2002 10:00:00 +0200
Message-ID: <1@example.net>

see you
]],
  expect = { "!MISSING_DATE", "!INVALID_DATE", "!DATE_BAD_ZONE", "!DATE_NO_ZONE",
             "!DATE_IN_FUTURE", "!DATE_IN_PAST", "!RCVD_DATE_DISORDER" },
  action = "no action",
}

test{
  name = "dates: impossible zone, far future, Received times reversed",
  message = [[
Received: from mail.example.net (mail.example.net [192.0.2.1])
	by mx.example.org with ESMTP id 1234; Tue, 3 Sep 2002 10:01:00 +0000
Received: from dd_it7 by relay.example.com; Fri, 6 Sep 2002 09:42:10 +0900
From: a@example.net
To: bob@example.org
Subject: hello
Date: Wed, 04 Sep 2002 20:31:57 -1600
Message-ID: <2@example.net>

hi
]],
  expect = { "DATE_BAD_ZONE", "DATE_IN_FUTURE", "RCVD_DATE_DISORDER", "!DATE_NO_ZONE",
             "!DATE_IN_PAST" },
}

test{
  name = "dates: no zone and two weeks old; a missing Date",
  message = [[
Received: from mail.example.net (mail.example.net [192.0.2.1])
	by mx.example.org with ESMTP id 1234; Tue, 17 Sep 2002 10:01:00 +0000
From: a@example.net
To: bob@example.org
Subject: hello
Date: Tue, 3 Sep 2002 23:43:57
Message-ID: <3@example.net>

hi
]],
  expect = { "DATE_NO_ZONE", "DATE_IN_PAST", "!DATE_IN_FUTURE", "!MISSING_DATE" },
}

test{
  name = "dates: Date missing, or not a date at all",
  message = [[
From: a@example.net
To: bob@example.org
Subject: hello
Message-ID: <4@example.net>

hi
]],
  expect = { "MISSING_DATE", "!INVALID_DATE" },
}

test{
  name = "dates: a three-digit year",
  message = [[
From: a@example.net
To: bob@example.org
Subject: hello
Date: Thu, 18 Jul 0102 19:51:35 -0100
Message-ID: <5@example.net>

hi
]],
  expect = { "INVALID_DATE", "!MISSING_DATE" },
}
