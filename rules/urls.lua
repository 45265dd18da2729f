-- rules/urls.lua - URLs written to hide where they go: bare or numeric IP
-- hosts, "user@host" prefixes, %-encoded host names, odd ports.

local function lower(s) return s and s:lower() or "" end

local function is_web(u)
  local s = lower(u.scheme)
  return s == "http" or s == "https"
end

-- 10/8, 127/8, 169.254/16, 172.16/12, 192.168/16: addresses of one's own
-- network (intranet links in mailing-list posts), not a hidden web site.
local function private_ip(a, b)
  return a == 10 or a == 127 or (a == 169 and b == 254)
    or (a == 172 and b >= 16 and b <= 31) or (a == 192 and b == 168)
end

-- The authority ("user@host:port") of a URL string.
local function authority(url)
  return url:match("^%a[%w+.%-]*://([^/?#]*)") or ""
end

-- The message's web links (is_web), in msg:urls() order, each as
-- { u = the URL, auth = its authority }: worked out once per message for
-- the rules below (weak keys: an entry goes with the message's URL list).
local WEB = setmetatable({}, { __mode = "k" })
local function web_urls(msg)
  local all = msg:urls()
  local w = WEB[all]
  if not w then
    w = {}
    for _, u in ipairs(all) do
      if is_web(u) then w[#w + 1] = { u = u, auth = authority(u.url or "") } end
    end
    WEB[all] = w
  end
  return w
end

-- URL_BARE_IP: a web link to a public IP address: a site without a name,
-- usually a compromised machine or one that changes every day.
rule{
  name = "URL_BARE_IP", score = 2.5, group = "urls",
  description = "Link to a bare IP address instead of a host name",
  check = function(ctx)
    for _, w in ipairs(web_urls(ctx.msg)) do
      local u = w.u
      local a, b = (u.host or ""):match("^(%d+)%.(%d+)%.%d+%.%d+$")
      if a and not private_ip(tonumber(a), tonumber(b)) then return true, u.host end
    end
    return false
  end,
}

-- URL_NUMERIC_HOST: an IP written as one decimal, hex or octal number
-- (http://3232235777/, http://0xC0.0xA8.1.1/): only ever used to obscure.
rule{
  name = "URL_NUMERIC_HOST", score = 3.0, group = "urls",
  description = "Link host is an IP written as a number, in hex or octal",
  check = function(ctx)
    for _, w in ipairs(web_urls(ctx.msg)) do
      local h = lower(w.auth):gsub("^.*@", ""):gsub(":%d*$", "")
      if h:match("^%d+$") and #h >= 8 then return true, h end
      if h:match("^0x%x+") or h:match("%.0x%x+") then return true, h end
      if h:match("^0%d+%.") then return true, h end
    end
    return false
  end,
}

-- URL_USERINFO: "http://www.bank.example@evil.example/": everything before
-- the '@' is a user name the browser ignores; it is there to be misread.
rule{
  name = "URL_USERINFO", score = 2.5, group = "urls",
  description = "Link with a user@ part before the host",
  check = function(ctx)
    for _, w in ipairs(web_urls(ctx.msg)) do
      local auth = w.auth
      if auth:find("@", 1, true) then return true, auth:sub(1, 60) end
    end
    return false
  end,
}

-- URL_ENCODED_HOST: %-escapes in the host name: browsers decode them,
-- humans and simple filters cannot read them.
rule{
  name = "URL_ENCODED_HOST", score = 2.0, group = "urls",
  description = "Link host name written with %-escapes",
  check = function(ctx)
    for _, w in ipairs(web_urls(ctx.msg)) do
      local host = w.auth:gsub("^.*@", "")
      if host:find("%%%x%x") then return true, host:sub(1, 60) end
    end
    return false
  end,
}

-- URL_ODD_PORT: a web link on a port other than 80, 443 or 8080: a web
-- server started by something other than its owner, or a tracking box.
rule{
  name = "URL_ODD_PORT", score = 1.0, group = "urls",
  description = "Link on an unusual port",
  check = function(ctx)
    for _, w in ipairs(web_urls(ctx.msg)) do
      if w.u.href then
        local port = tonumber(w.auth:match(":(%d+)$"))
        if port and port ~= 80 and port ~= 443 and port ~= 8080 then
          return true, tostring(port)
        end
      end
    end
    return false
  end,
}

-- URL_DOMAIN_IN_SUBDOMAIN: a host that spells another domain in front of
-- its real one ("www.paypal.com.account-check.example.net"): the reader sees
-- the familiar name at the start, the browser goes to example.net.
local GTLD = {}
for w in ("com net org edu gov mil info biz"):gmatch("%S+") do GTLD[w] = true end
rule{
  name = "URL_DOMAIN_IN_SUBDOMAIN", score = 2.0, group = "urls",
  description = "Link host has another domain name as its subdomain",
  check = function(ctx)
    for _, w in ipairs(web_urls(ctx.msg)) do
      local h = w.u.host or ""
      if h:find("%.%a+%.") then
        local labels = {}
        for l in h:gmatch("[^.]+") do labels[#labels + 1] = l end
        -- a generic TLD label that is neither of the last two labels
        -- ("example.com.au" and "com.example.net" stay out: the name
        -- before the TLD label must have a label of its own in front)
        for i = 2, #labels - 2 do
          if GTLD[labels[i]] and not labels[i - 1]:match("^www%d*$") then
            return true, h
          end
        end
      end
    end
    return false
  end,
}

test{
  name = "urls: ordinary links, an intranet IP",
  message = [[
From: Alice <alice@example.net>
To: list@example.org
Subject: the patch
Date: Tue, 03 Sep 2002 10:00:00 +0200
Message-ID: <u1@example.net>

The patch is at http://www.example.net/patches/fix.diff (mirror on
http://www.example.com.au/fix.diff and http://com.example.org/) and the test box
is http://192.168.1.20/ (only from the office), docs on
https://docs.example.net:443/guide and http://localhost:8080/admin
]],
  expect = { "!URL_BARE_IP", "!URL_NUMERIC_HOST", "!URL_USERINFO", "!URL_ENCODED_HOST",
             "!URL_ODD_PORT", "!URL_DOMAIN_IN_SUBDOMAIN" },
  action = "no action",
}

test{
  name = "urls: every trick at once",
  message = [[
From: a@example.net
To: bob@example.org
Subject: hi
Date: Tue, 03 Sep 2002 10:00:00 +0200
Message-ID: <u2@example.net>
MIME-Version: 1.0
Content-Type: text/html; charset=us-ascii

<a href="http://203.0.113.9/buy">shop</a>
<a href="http://3405803785/x">more</a>
<a href="http://www.bank.example@evil.example.net/login">log in</a>
<a href="http://%65%76%69%6c.example.net/">here</a>
<a href="http://evil.example.net:8765/">there</a>
<a href="https://www.bank.com.login-check.example.net/">sign in</a>
]],
  expect = { "URL_BARE_IP", "URL_NUMERIC_HOST", "URL_USERINFO", "URL_ENCODED_HOST",
             "URL_ODD_PORT", "URL_DOMAIN_IN_SUBDOMAIN" },
}
