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

local function provider_of(host)
  host = lower(host)
  for _, p in ipairs(PROVIDERS) do
    if host == p or host:sub(-#p - 1) == "." .. p then return p end
  end
  return nil
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

-- RCVD_BAD_IP: an IPv4 address with an octet over 255: made up.
rule{
  name = "RCVD_BAD_IP", score = 2.0, group = "received",
  description = "Received header with an impossible IP address",
  check = function(ctx)
    for _, v in ipairs(received(ctx.msg)) do
      for a, b, c, d in v:gmatch("%f[%d.](%d+)%.(%d+)%.(%d+)%.(%d+)%f[^%d.]") do
        if tonumber(a) > 255 or tonumber(b) > 255 or tonumber(c) > 255 or tonumber(d) > 255 then
          return true, a .. "." .. b .. "." .. c .. "." .. d
        end
      end
    end
    return false
  end,
}

-- RCVD_FORGED_PROVIDER: "from mx1.mail.yahoo.com ([172.191.119.34])": the
-- client called itself a big provider's relay, but its address does not
-- resolve to that provider (no reverse name, or another one).
rule{
  name = "RCVD_FORGED_PROVIDER", score = 2.0, group = "received",
  description = "Received from a host claiming to be a big provider, not resolving to it",
  check = function(ctx)
    for _, v in ipairs(received(ctx.msg)) do
      -- sendmail/Postfix: "from HELO (RDNS [IP])" or "from HELO ([IP])"
      local helo, inner = v:match("^%s*from%s+([%w.%-]+)%s+%(([^)]*)%)")
      if helo and not inner:find("HELO", 1, true) and not inner:find("helo=", 1, true) then
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

-- RCVD_ODD_PROTOCOL: "with NNFMP", or "with local" from a remote address:
-- protocol names no MTA uses, from the same fake-relay templates.
rule{
  name = "RCVD_ODD_PROTOCOL", score = 1.5, group = "received",
  description = "Received with a protocol name no MTA writes",
  check = function(ctx)
    for _, v in ipairs(received(ctx.msg)) do
      local proto = v:match("%swith%s+([%w%-]+)")
      if proto then
        local p = proto:upper()
        if p == "NNFMP" then return true, proto end
        if p == "LOCAL" and v:match("^%s*from%s+%[?%d+%.%d+%.%d+%.%d+") then
          return true, "local from an IP"
        end
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
  name = "received: a fake relay path",
  message = [[
Received: from mx1.mail.yahoo.com ([172.191.119.34]) by relay.example.net
	with ESMTP id 2001; Tue, 3 Sep 2002 15:58:46 +0500
Received: from [106.226.127.61] by n7.groups.yahoo.com with local;
	Aug, 22 2002 5:50:53 AM +0300
Received: from mailout2 ([110.320.177.171]) by rly-xr01.mx.aol.com with NNFMP;
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
