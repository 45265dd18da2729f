-- rules/received.lua - Received headers the sender wrote itself to fake a
-- relay path (RFC 5321 4.4: each relay prepends one; everything below the
-- first hop we trust was written by the sender). Time order is checked in
-- dates.lua (RCVD_DATE_DISORDER).

local function lower(s) return s and s:lower() or "" end

local function received(msg)
  return msg:headers("Received") or {}
end

-- Big mail providers whose name is borrowed in fake Received lines; their
-- real relays always resolve back to their own domain.
local PROVIDERS = { "yahoo.com", "hotmail.com", "aol.com", "msn.com", "gmail.com",
                    "excite.com", "juno.com", "netscape.net", "earthlink.net",
                    "compuserve.com", "outlook.com", "live.com" }

local PROVIDER = {}
for _, p in ipairs(PROVIDERS) do PROVIDER[p] = true end

-- The provider when host is one of PROVIDERS or a name under it. Every
-- provider is two labels, so that is the host's last two labels (the
-- host itself when it has only those) being a provider: one lookup
-- instead of a string built per provider and header.
local function provider_of(host)
  local tail = lower(host):match("[^.]*%.[^.]*$")
  return PROVIDER[tail] and tail or nil
end

-- RCVD_AMPM_DATE: "Aug, 22 2002 5:50:53 AM +0300": no MTA writes a 12-hour
-- clock or a comma after the month in a Received date (RFC 5322 3.3); a
-- well-known bulk tool fakes its relay path in this format.
rule{
  name = "RCVD_AMPM_DATE", score = 3.0, group = "received",
  description = "Received header with a fake (12-hour clock) date",
  check = function(ctx)
    for _, v in ipairs(received(ctx.msg)) do
      local date = v:match(";([^;]*)$") or ""
      if date:match("%d:%d%d:%d%d%s+[AaPp][Mm]") or date:match("^%s*%a%a%a,%s+%d%d?%s+%d%d%d%d") then
        return true, date:sub(1, 40)
      end
    end
    return false
  end,
}

-- RCVD_BAD_IP: an IPv4 address with an octet over 255 where a relay writes
-- the client's address ("[110.320.177.171]", "from 300.1.2.3"): made up.
-- Only bracketed or "from" addresses count: Exchange writes its version in
-- the same shape ("Internet Mail Service (5.5.2653.19)").
rule{
  name = "RCVD_BAD_IP", score = 2.0, group = "received",
  description = "Received header with an impossible IP address",
  check = function(ctx)
    local re = regex.new([[/(?:\[|\bfrom\s+)(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?![\d.])/]])
    for _, v in ipairs(received(ctx.msg)) do
      if v:find("%d%d%d") then
        local init = 1
        while true do
          local s, e = re:find(v, init)
          if not s then break end
          local ip = v:sub(s, e):match("([%d.]+)$")
          for o in ip:gmatch("%d+") do
            if tonumber(o) > 255 then return true, ip end
          end
          init = e + 1
        end
      end
    end
    return false
  end,
}

-- RCVD_FORGED_PROVIDER: "from mx1.mail.yahoo.com ([172.191.119.34])": the
-- client called itself a big provider's relay, but its address does not
-- resolve to that provider (no reverse name, or another one). Exim's
-- "from HOST ([IP])" means the reverse name was HOST, so it is not counted.
rule{
  name = "RCVD_FORGED_PROVIDER", score = 3.0, group = "received",
  description = "Received from a host claiming to be a big provider, not resolving to it",
  check = function(ctx)
    for _, v in ipairs(received(ctx.msg)) do
      -- sendmail/Postfix: "from HELO (RDNS [IP])" or "from HELO ([IP])"
      local helo, inner = v:match("^%s*from%s+([%w.%-]+)%s+%(([^)]*)%)")
      -- Exim leaves the reverse name out when it equals the HELO name
      if helo and not inner:find("HELO", 1, true) and not inner:find("helo=", 1, true)
        and not v:find("Exim", 1, true) then
        local p = provider_of(helo)
        if p then
          local rdns = inner:match("^%s*([%w.%-]+)%s*%[")
          if not rdns or not provider_of(rdns) then
            return true, helo
          end
        end
      end
    end
    return false
  end,
}

-- RCVD_ODD_PROTOCOL: "with local" from a remote IP address: a local
-- submission cannot come from the network; the line comes from a fake-relay
-- template. ("with NNFMP" looks odd but is what Yahoo Groups really writes.)
rule{
  name = "RCVD_ODD_PROTOCOL", score = 1.5, group = "received",
  description = "Received says local submission from a remote address",
  check = function(ctx)
    for _, v in ipairs(received(ctx.msg)) do
      local proto = v:match("%swith%s+([%w%-]+)")
      if proto and proto:upper() == "LOCAL" and v:match("^%s*from%s+%[?%d+%.%d+%.%d+%.%d+") then
        return true, "local from an IP"
      end
    end
    return false
  end,
}

test{
  name = "received: an ordinary two-hop path",
  message = [[
Received: from hotmail.com (dav39.law15.hotmail.com [64.4.22.96])
	by mx.example.org (Postfix) with ESMTP id 38E4D29; Mon, 2 Sep 2002 17:41:26 -0700 (PDT)
Received: from unknown (HELO carbon) (194.73.73.92)
	by mta1.grp.scd.yahoo.com with SMTP; 28 Aug 2002 08:29:26 -0000
Received: from snipe.mail.pas.earthlink.net ([207.217.120.62]) by
	usw-sf-list1.sourceforge.net with esmtp (Exim 3.31-VA-mm2 #1 (Debian)) id
	17kmAm-0008KI-00 for <talk@lists.sourceforge.net>; Thu, 22 Aug 2002 16:24:58 -0300
Received: from [192.168.123.179] (helo=permafrost.net) by sunserver.permafrost.net
	with esmtp (Exim 3.35 #1 (Debian)) id 17hxYk-00009P-00; Thu, 22 Aug 2002 16:23:58 -0300
From: Alice <alice@hotmail.com>
To: bob@example.org
Subject: hi
Date: Mon, 02 Sep 2002 17:40:00 -0700
Message-ID: <r1@hotmail.com>

hi
]],
  expect = { "!RCVD_AMPM_DATE", "!RCVD_BAD_IP", "!RCVD_FORGED_PROVIDER", "!RCVD_ODD_PROTOCOL" },
}

test{
  name = "received: Exchange versions and Yahoo Groups' NNFMP are not forgeries",
  message = [[
Received: from n21.grp.scd.yahoo.com (n21.grp.scd.yahoo.com [66.218.66.77])
	by mx.example.org with SMTP; 3 Sep 2002 10:00:10 -0000
Received: from [66.218.67.192] by n21.grp.scd.yahoo.com with NNFMP;
	03 Sep 2002 10:00:05 -0000
Received: by exchange.example.com with Internet Mail Service (5.5.2653.19)
	id <R3XX>; Tue, 3 Sep 2002 05:59:00 -0400
From: Alice <alice@example.com>
To: list@yahoogroups.com
Subject: hi
Date: Tue, 03 Sep 2002 05:58:00 -0400
Message-ID: <r3@example.com>

hi
]],
  expect = { "!RCVD_BAD_IP", "!RCVD_ODD_PROTOCOL", "!RCVD_FORGED_PROVIDER", "!RCVD_AMPM_DATE" },
}

test{
  name = "received: a fake relay path",
  message = [[
Received: from mx1.mail.yahoo.com ([172.191.119.34]) by relay.example.net
	with ESMTP id 2001; Tue, 3 Sep 2002 15:58:46 +0500
Received: from [106.226.127.61] by n7.groups.yahoo.com with local;
	Aug, 22 2002 5:50:53 AM +0300
Received: from mailout2 ([110.320.177.171]) by rly-xr01.mx.aol.com with SMTP;
	Sep, 17 2002 7:00:20 PM +1200
From: a@example.net
To: bob@example.org
Subject: hi
Date: Tue, 03 Sep 2002 10:00:00 +0000
Message-ID: <r2@example.net>

hi
]],
  expect = { "RCVD_AMPM_DATE", "RCVD_BAD_IP", "RCVD_FORGED_PROVIDER", "RCVD_ODD_PROTOCOL" },
}
