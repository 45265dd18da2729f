-- boot.lua - builds one script set: the allow-listed environment, every file
-- of rules/ and policies/, composites, self-tests. It runs with the full
-- standard library (it is shipped with moonpost, not admin code); the scripts
-- it loads never see _mp, io, os.execute, ffi, debug or the loaders.
-- Returns the API the C side calls (src/lua/script_call.c):
--   hook(name, ctx, arg)      -> { verdict, code, text, arg, delay, failed }
--   message(ctx, targets)     -> { verdict..., scan = {...}, dlv = { per target } }
--   report(raw, opts, format) -> text or JSON of one scan (moonpost rules test)
--   stats_json()              -> per-rule and per-hook counters
--   hooks, hash
local mp, conf = ...

local getinfo, traceback = debug.getinfo, debug.traceback
local now, BUDGET = mp.now, mp.BUDGET_ERROR
local fmt, concat, sort = string.format, table.concat, table.sort

local API = { hooks = {} }
local rules, rules_by_name, composites, prefilters, tests = {}, {}, {}, {}, {}
local hooks, hook_stats, files = {}, {}, {}
local STOP = setmetatable({}, { __tostring = function() return "stop()" end })

local HOOKS = {
  connect = { reject = true, tempfail = true, accept = true },
  helo = { reject = true, tempfail = true, accept = true },
  mail_from = { reject = true, tempfail = true, accept = true },
  route = { mailbox = true, relay = true, reject = true, tempfail = true, accept = true },
  rcpt_to = { reject = true, tempfail = true, accept = true },
  data = { accept = true, reject = true, tempfail = true, discard = true, quarantine = true },
  deliver = {},
  auth = { allow = true, deny = true, delay = true },
}

-- ---- errors -----------------------------------------------------------------

local function over_budget(err)
  return mp.over_budget() or (type(err) == "string" and err:find(BUDGET, 1, true) ~= nil)
end

-- xpcall handler: keeps stop() and the budget abort recognisable.
local function handler(e)
  if e == STOP then return STOP end
  if over_budget(e) then return BUDGET end
  return traceback(tostring(e), 2)
end

local function first_line(e)
  e = tostring(e)
  return (e:match("^[^\n]*"))
end

local function where(level)
  local i = getinfo(level, "Sl")
  if not i then return "?", 0 end
  return i.short_src, i.currentline
end

-- ---- the environment --------------------------------------------------------

local function copy(t, skip)
  local r = {}
  for k, v in pairs(t) do
    if not (skip and skip[k]) then r[k] = v end
  end
  return r
end

local base = {}
for _, k in ipairs { "assert", "error", "ipairs", "next", "pairs", "pcall", "xpcall", "select",
  "tonumber", "tostring", "type", "unpack", "rawequal", "rawget", "rawset", "setmetatable",
  "getmetatable" } do
  base[k] = _G[k]
end
base.rawlen = function(t) return #t end
base.string = copy(string, { dump = true })
base.table = copy(table)
base.math = copy(math)
base.os = { time = os.time, clock = os.clock, date = os.date, difftime = os.difftime }
base.regex = { new = function(p, f) return mp.regex_new(p, f) end }
base.dir = { lookup = function(addr) return mp.dir_lookup(tostring(addr)) end }
base.sleep = function(s) return mp.sleep(tonumber(s) or 0) end

function base.log(level, f, ...)
  local file, line = where(3)
  local msg = select("#", ...) > 0 and fmt(f, ...) or tostring(f)
  mp.log(tostring(level), file .. ":" .. line, msg)
end

local function new_env()
  local env = setmetatable({}, { __index = base })
  env._G = env
  return env
end

local loaded = {}
function base.require(name)
  if type(name) ~= "string" or not name:match("^[%a_][%w_]*[%w_.]*$") or name:match("^moonpost%.boot") then
    error("require: bad module name " .. tostring(name), 2)
  end
  if loaded[name] ~= nil then return loaded[name] end
  local rel = name:gsub("%.", "/") .. ".lua"
  local src, err = mp.readfile(conf.lib_dir .. "/" .. rel)
  if not src then error("require " .. name .. ": " .. err, 2) end
  local chunk, cerr = loadstring(src, "@lua/" .. rel)
  if not chunk then error(cerr, 0) end
  setfenv(chunk, new_env())
  local r = chunk(name)
  if r == nil then r = true end
  loaded[name] = r
  return r
end

-- ---- rules ------------------------------------------------------------------

local function check_name(kind, def)
  if type(def) ~= "table" then error(kind .. ": expected a table { name = ..., ... }", 3) end
  local name = def.name
  if type(name) ~= "string" or not name:match("^[%w_]+$") then
    error(kind .. ": name must be letters, digits and _", 3)
  end
  local old = rules_by_name[name]
  if old then error(fmt("%s %s: already defined at %s:%d", kind, name, old.file, old.line), 3) end
  return name
end

local function regex_rule(def)
  local function re_of(v)
    local ok, r = pcall(mp.regex_new, v)
    if not ok then error(fmt("rule %s: %s", def.name, tostring(r)), 4) end
    return r
  end
  if def.header or def.raw_header then
    local re, name = re_of(def.re), def.header or def.raw_header
    local raw = def.raw_header ~= nil
    return function(ctx)
      local vals = raw and ctx.msg:raw_headers(name) or ctx.msg:headers(name)
      for _, v in ipairs(vals) do
        if re:match(v) then return true end
      end
    end
  elseif def.body then
    local re = re_of(def.body)
    return function(ctx)
      for _, t in ipairs(ctx.msg:text()) do
        if re:match(t.text) then return true end
      end
    end
  elseif def.url then
    local re = re_of(def.url)
    return function(ctx)
      for _, u in ipairs(ctx.msg:urls()) do
        if re:match(u.host) then return true, u.host end
      end
    end
  end
  error(fmt("rule %s: needs check = function(ctx) or header/raw_header + re, body or url", def.name), 3)
end

function base.rule(def)
  local name = check_name("rule", def)
  if type(def.score) ~= "number" then error("rule " .. name .. ": score must be a number", 2) end
  local check = def.check
  if check == nil then check = regex_rule(def) end
  if type(check) ~= "function" then error("rule " .. name .. ": check must be a function", 2) end
  local file, line = where(3)
  local r = { name = name, score = def.score, group = def.group or "misc",
              description = def.description or "", check = check, file = file, line = line,
              hits = 0, errors = 0, time = 0 }
  rules[#rules + 1] = r
  rules_by_name[name] = r
end

-- Composite expressions: atoms are symbol names; ! binds tighter than &,
-- & tighter than |. Compiled to a closure over the symbol table.
local function parse_expr(src)
  local toks, i = {}, 1
  while i <= #src do
    local c = src:sub(i, i)
    if c:match("%s") then
      i = i + 1
    elseif c:match("[&|!()]") then
      toks[#toks + 1], i = c, i + 1
    else
      local w = src:match("^[%w_]+", i)
      if not w then error("unexpected " .. c) end
      toks[#toks + 1], i = w, i + #w
    end
  end
  local pos, expr = 1, nil
  local function peek() return toks[pos] end
  local function take() pos = pos + 1; return toks[pos - 1] end
  local function atom()
    local t = take()
    if t == "!" then local a = atom(); return function(s) return not a(s) end end
    if t == "(" then
      local e = expr()
      if take() ~= ")" then error("missing )") end
      return e
    end
    if not t or not t:match("^[%w_]+$") then error("unexpected " .. tostring(t)) end
    return function(s) return s[t] ~= nil end, t
  end
  local function conj()
    local a = atom()
    while peek() == "&" do take(); local l, r = a, atom(); a = function(s) return l(s) and r(s) end end
    return a
  end
  function expr()
    local a = conj()
    while peek() == "|" do take(); local l, r = a, conj(); a = function(s) return l(s) or r(s) end end
    return a
  end
  local e = expr()
  if pos <= #toks then error("unexpected " .. toks[pos]) end
  local names = {}
  for _, t in ipairs(toks) do if t:match("^[%w_]+$") then names[#names + 1] = t end end
  return e, names
end

function base.composite(def)
  local name = check_name("composite", def)
  if type(def.expression) ~= "string" then error("composite " .. name .. ": expression must be a string", 2) end
  local ok, e, atoms = pcall(parse_expr, def.expression)
  if not ok then error(fmt("composite %s: %s in %q", name, first_line(e), def.expression), 2) end
  local file, line = where(3)
  local c = { name = name, score = tonumber(def.score) or 0, group = def.group or "composite",
              description = def.description or "", eval = e, atoms = atoms, file = file,
              line = line, hits = 0, errors = 0, time = 0 }
  composites[#composites + 1] = c
  rules_by_name[name] = c
end

function base.prefilter(def)
  local name = check_name("prefilter", def)
  if type(def.check) ~= "function" then error("prefilter " .. name .. ": check must be a function", 2) end
  local file, line = where(3)
  local p = { name = name, score = 0, group = "prefilter", check = def.check, file = file,
              line = line, hits = 0, errors = 0, time = 0 }
  prefilters[#prefilters + 1] = p
  rules_by_name[name] = p
end

function base.test(def)
  if type(def) ~= "table" or type(def.message) ~= "string" then
    error("test: expected { message = \"...\", expect = {...} }", 2)
  end
  local file, line = where(3)
  def.file, def.line = file, line
  tests[#tests + 1] = def
end

-- ---- verdicts and delivery actions -------------------------------------------

local function clean_text(t, default, class)
  t = t == nil and default or tostring(t)
  t = t:gsub("[%c]", " "):sub(1, 400)
  if not t:match("^%d%.%d%d?%d?%.%d%d?%d? ") then t = class .. " " .. t end
  return t
end

function base.accept() return { verdict = "accept" } end
function base.allow() return { verdict = "allow" } end
function base.reject(code, text)
  if type(code) == "string" then code, text = 550, code end
  code = tonumber(code) or 550
  if code < 500 or code > 599 then error("reject: the code must be 5xx", 2) end
  return { verdict = "reject", code = code, text = clean_text(text, "Rejected by policy", "5.7.1") }
end
function base.tempfail(text)
  return { verdict = "tempfail", code = 451, text = clean_text(text, "Try again later", "4.7.1") }
end
function base.deny(text)
  return { verdict = "deny", text = clean_text(text, "Authentication refused", "5.7.8") }
end
function base.delay(secs) return { verdict = "delay", delay = math.max(0, tonumber(secs) or 0) } end
function base.mailbox(addr) return { verdict = "mailbox", arg = tostring(addr) } end
function base.relay(host) return { verdict = "relay", arg = tostring(host) } end

local cur   -- the delivery being decided (deliver hooks only)

local function folder_name(f)
  f = tostring(f)
  if f == "INBOX" or f == "" then return "" end
  -- Maildir++ (Dovecot's default layout): "Lists/lua" is stored as .Lists.lua
  local n = f:gsub("/", ".")
  if #n > 200 or n:find("%.%.") or n:match("^%.") or n:match("%.$") or n:find("[%z\1-\31]") then
    error("fileinto: bad folder name " .. fmt("%q", f), 3)
  end
  return n
end

function base.quarantine(folder) return { verdict = "quarantine", arg = folder_name(folder or "Junk") } end

function base.discard()
  if cur then cur.cancel, cur.discarded = true, true end
  return { verdict = "discard" }
end

function base.fileinto(folder)
  if not cur then error("fileinto: only in a deliver hook", 2) end
  local n = folder_name(folder)
  for _, f in ipairs(cur.folders) do if f == n then return end end
  cur.folders[#cur.folders + 1] = n
  cur.cancel = true
end

function base.keep()
  if not cur then error("keep: only in a deliver hook", 2) end
  cur.keep = true
end

local FLAGS = { ["\\seen"] = "S", ["\\flagged"] = "F", ["\\answered"] = "R", ["\\deleted"] = "T",
                ["\\draft"] = "D" }
function base.addflag(flag)
  if not cur then error("addflag: only in a deliver hook", 2) end
  local l = FLAGS[tostring(flag):lower()]
  if not l then error("addflag: only system flags (\\Seen \\Flagged \\Answered \\Deleted \\Draft) for now", 2) end
  cur.flags[l] = true
end

function base.redirect(addr)
  if not cur then error("redirect: only in a deliver hook", 2) end
  cur.redirects[#cur.redirects + 1] = tostring(addr):gsub("[,%s%c]", "")
end

function base.stop() error(STOP, 0) end

function base.hook(name, fn)
  if not HOOKS[name] then error("hook: unknown hook " .. tostring(name), 2) end
  if type(fn) ~= "function" then error("hook " .. name .. ": expected a function", 2) end
  local file, line = where(3)
  hooks[name] = hooks[name] or {}
  local list = hooks[name]
  list[#list + 1] = { fn = fn, file = file, line = line }
  API.hooks[name] = true
end

-- ---- running hooks -------------------------------------------------------------

local function stat(name)
  local s = hook_stats[name]
  if not s then s = { calls = 0, errors = 0, time = 0 }; hook_stats[name] = s end
  return s
end

local function hook_error(name, h, err)
  stat(name).errors = stat(name).errors + 1
  mp.log("error", h.file .. ":" .. h.line, "hook " .. name .. ": " .. tostring(err), "lua_error")
end

-- Runs the hooks registered for name until one returns a verdict.
local function run_hooks(name, ctx, arg)
  local list = hooks[name]
  if not list then return nil end
  local st = stat(name)
  for _, h in ipairs(list) do
    local t0 = now()
    st.calls = st.calls + 1
    local ok, v = xpcall(h.fn, handler, ctx, arg)
    st.time = st.time + (now() - t0)
    if not ok then
      if v == BUDGET then error(BUDGET, 0) end
      if v ~= STOP then hook_error(name, h, v) end
      return nil, not (v == STOP)
    end
    if v ~= nil then
      if type(v) == "table" and HOOKS[name][v.verdict] then return v end
      hook_error(name, h, "returned something that is not a verdict for this hook")
    end
  end
end

function API.hook(name, ctx, arg)
  if name == "auth" then ctx.auth = arg end
  local v, failed = run_hooks(name, ctx, arg)
  if name == "auth" then ctx.auth = nil end
  local r = v and copy(v) or {}
  r.failed = failed
  return r
end

-- ---- scanning ------------------------------------------------------------------

local function opts_of(...)
  local n = select("#", ...)
  if n == 0 then return nil end
  local o = {}
  for i = 1, n do
    local v = select(i, ...)
    if v ~= nil then o[#o + 1] = tostring(v) end
  end
  return o
end

-- One rule: its own xpcall, so an error counts as "not fired". Returns
-- the time it ended: the next rule's start (one clock read per rule).
local function finish_rule(s, r, t0, ok, v, ...)
  local t1 = now()
  local dt = t1 - t0
  r.time = r.time + dt
  if not ok then
    -- A rule over budget: the scan keeps what it has and skips the rest,
    -- if the grace to finish is granted (once per call).
    if v == BUDGET then
      if not mp.budget_grace() then error(BUDGET, 0) end
      s.budget_hit = true
      v = r.file .. ":" .. r.line .. ": budget exceeded (lua.budget)"
    end
    r.errors = r.errors + 1
    s.errors[#s.errors + 1] = { rule = r.name, error = first_line(v) }
    mp.log("warn", r.file .. ":" .. r.line, "rule " .. r.name .. ": " .. first_line(v), "lua_error")
    return t1
  end
  if not v then return t1 end
  local w = v == true and 1 or tonumber(v)
  if not w or w == 0 then return t1 end
  r.hits = r.hits + 1
  local score = r.score * w
  s.symbols[r.name] = { score = score, options = opts_of(...), group = r.group,
                        file = r.file, line = r.line, time_us = dt * 1e6 }
  s.score = s.score + score
  return t1
end

local ACTIONS = { ["reject"] = true, ["soft reject"] = true, ["add header"] = true, ["no action"] = true }

local function action_for(score)
  if conf.reject > 0 and score >= conf.reject then return "reject" end
  if conf.soft_reject > 0 and score >= conf.soft_reject then return "soft reject" end
  if conf.add_header > 0 and score >= conf.add_header then return "add header" end
  return "no action"
end

local function hdr_safe(s)
  return (tostring(s):gsub("[^\32-\126]", "?"):gsub("[%[%],]", "_"):sub(1, 80))
end

-- rspamd milter style headers; X-Spam-Symbols folded (RFC 5322 2.2.3).
local function make_headers(s)
  local names = {}
  for n in pairs(s.symbols) do names[#names + 1] = n end
  sort(names)
  local parts = {}
  for _, n in ipairs(names) do
    local sym = s.symbols[n]
    local p = fmt("%s(%.2f)", n, sym.score)
    if sym.options and #sym.options > 0 then
      local o = {}
      for i = 1, math.min(#sym.options, 5) do o[i] = hdr_safe(sym.options[i]) end
      p = p .. "[" .. concat(o, ",") .. "]"
    end
    parts[#parts + 1] = p
  end
  -- for the log line of the verdict (explainable without the message)
  s.summary = concat(parts, ",")
  local lines, line = {}, "X-Spam-Symbols: "
  for i, p in ipairs(parts) do
    local sep = i < #parts and "," or ""
    if #line + #p + #sep > 78 and line ~= "X-Spam-Symbols: " then
      lines[#lines + 1] = line
      line = "\t"
    end
    line = line .. p .. sep
  end
  lines[#lines + 1] = line
  local yes = s.action == "add header" and "Yes" or "No"
  local h = fmt("X-Spam-Status: %s, score=%.2f required=%.2f\nX-Spam-Score: %.2f\n%s\n",
                yes, s.score, s.required, s.score, concat(lines, "\n"))
  if yes == "Yes" then h = h .. "X-Spam: Yes\n" end
  return h
end

local function scan(ctx)
  local s = { score = 0, symbols = {}, errors = {}, required = conf.add_header, action = "no action" }
  local t0 = now()
  for _, p in ipairs(prefilters) do
    local pt = now()
    local ok, a, text = xpcall(p.check, handler, ctx)
    p.time = p.time + (now() - pt)
    if not ok then
      if a == BUDGET then error(BUDGET, 0) end
      p.errors = p.errors + 1
      s.errors[#s.errors + 1] = { rule = p.name, error = first_line(a) }
      mp.log("warn", p.file .. ":" .. p.line, "prefilter " .. p.name .. ": " .. first_line(a), "lua_error")
    elseif a ~= nil and ACTIONS[a] then
      p.hits = p.hits + 1
      s.action, s.forced, s.forced_text = a, p.name, text and tostring(text) or nil
      break
    end
  end
  if not s.forced then
    local t = now()
    for _, r in ipairs(rules) do
      t = finish_rule(s, r, t, xpcall(r.check, handler, ctx))
      if s.budget_hit then break end
    end
    for _, c in ipairs(composites) do
      if c.eval(s.symbols) then
        c.hits = c.hits + 1
        s.symbols[c.name] = { score = c.score, group = c.group, file = c.file, line = c.line, time_us = 0 }
        s.score = s.score + c.score
      end
    end
    s.score = math.floor(s.score * 100 + 0.5) / 100
    s.action = action_for(s.score)
  end
  s.time_us = (now() - t0) * 1e6
  s.headers = make_headers(s)
  return s
end

-- ---- the message call -----------------------------------------------------------

local function deliver_one(ctx, t)
  cur = { folders = {}, flags = {}, redirects = {} }
  local list = hooks.deliver or {}
  local st = stat("deliver")
  local failed = false
  for _, h in ipairs(list) do
    local t0 = now()
    st.calls = st.calls + 1
    local ok, e = xpcall(h.fn, handler, ctx, t)
    st.time = st.time + (now() - t0)
    if not ok then
      if e == BUDGET then cur = nil; error(BUDGET, 0) end
      if e == STOP then break end
      hook_error("deliver", h, e)
      failed = true
      break
    end
  end
  local d = cur
  cur = nil
  -- RFC 5228 2.10.6: a runtime error means implicit keep, nothing else.
  if failed then return { folders = { "" } } end
  local out = { folders = {}, redirects = concat(d.redirects, ",") }
  for _, f in ipairs(d.folders) do out.folders[#out.folders + 1] = f end
  -- Implicit keep (RFC 5228 2.10.2) unless fileinto/discard cancelled it.
  -- redirect does not cancel it until the outbound queue exists.
  if d.keep or not d.cancel then
    local have = false
    for _, f in ipairs(out.folders) do have = have or f == "" end
    if not have then table.insert(out.folders, 1, "") end
  end
  out.discard = #out.folders == 0
  local fl = {}
  for l in pairs(d.flags) do fl[#fl + 1] = l end
  sort(fl)
  out.flags = concat(fl)
  if out.redirects ~= "" then
    mp.log("notice", "deliver", "redirect to " .. out.redirects .. " recorded for " ..
      tostring(t.mailbox) .. " (no outbound queue yet: the message is also kept)", "lua_redirect")
  end
  return out
end

local has_rules = false

function API.message(ctx, targets)
  local out = { dlv = {} }
  if has_rules then
    if ctx.msg.size <= conf.scan_max then
      ctx.scan = scan(ctx)
    else
      ctx.scan = { score = 0, symbols = {}, errors = {}, required = conf.add_header,
                   action = "no action", skipped = true,
                   headers = fmt("X-Spam-Status: No, score=0.00 required=%.2f (not scanned: over %d bytes)\n",
                                 conf.add_header, conf.scan_max) }
    end
    out.scan = ctx.scan
  end
  local v, failed = run_hooks("data", ctx)
  out.failed = failed
  if v == nil and ctx.scan then
    if ctx.scan.action == "reject" then
      v = { verdict = "reject", code = 554, text = "5.7.1 " .. (ctx.scan.forced_text or "Spam message rejected") }
    elseif ctx.scan.action == "soft reject" then
      v = { verdict = "tempfail", code = 451, text = "4.7.1 " .. (ctx.scan.forced_text or "Try again later") }
    end
  end
  if v then
    for k, x in pairs(v) do out[k] = x end
    if v.verdict == "reject" or v.verdict == "tempfail" or v.verdict == "discard" then return out end
    if v.verdict == "quarantine" then
      for i = 1, #targets do out.dlv[i] = { folders = { v.arg }, flags = "", redirects = "" } end
      return out
    end
  end
  for i, t in ipairs(targets) do out.dlv[i] = deliver_one(ctx, t) end
  return out
end

-- ---- rules test / self-tests -----------------------------------------------------

local function test_ctx(raw, o)
  o = o or {}
  raw = raw:gsub("\r\n", "\n")
  return {
    conn = { ip = o.ip or "192.0.2.1", port = 25, helo = o.helo or "client.example.net",
             protocol = "smtp", tls = false, sid = "test" },
    env = { from = o.from or "sender@example.net", rcpts = { o.rcpt or "user@example.org" },
            params = {}, qid = "TEST" },
    notes = {},
    msg = mp.msg_new(raw),
  }
end

local function run_test(t)
  local raw = t.message:gsub("^\n", "")
  local s = scan(test_ctx(raw, t))
  local label = fmt("%s:%d: test%s", t.file, t.line, t.name and (" " .. fmt("%q", t.name)) or "")
  for _, e in ipairs(t.expect or {}) do
    local neg, name = e:match("^(!?)([%w_]+)$")
    if not name or not rules_by_name[name] then error(fmt("%s: unknown symbol %q in expect", label, e), 0) end
    local fired = s.symbols[name] ~= nil
    if neg == "" and not fired then
      local why = ""
      for _, x in ipairs(s.errors) do
        if x.rule == name then why = ": it raised " .. x.error end
      end
      error(fmt("%s: %s did not fire (score %.2f)%s", label, name, s.score, why), 0)
    end
    if neg == "!" and fired then error(fmt("%s: %s fired but must not", label, name), 0) end
  end
  if t.action and t.action ~= s.action then
    error(fmt("%s: action %q, expected %q (score %.2f)", label, s.action, t.action, s.score), 0)
  end
end

local function json(v)
  local tv = type(v)
  if tv == "table" then
    if #v > 0 then
      local a = {}
      for i = 1, #v do a[i] = json(v[i]) end
      return "[" .. concat(a, ",") .. "]"
    end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = tostring(k) end
    sort(keys)
    local a = {}
    for _, k in ipairs(keys) do
      local x = v[k]
      if x == nil then x = v[tonumber(k)] end
      a[#a + 1] = json(k) .. ":" .. json(x)
    end
    return "{" .. concat(a, ",") .. "}"
  elseif tv == "string" then
    return '"' .. v:gsub('[%c"\\\128-\255]', function(c)
      local b = c:byte()
      if b >= 128 then return c end
      return fmt("\\u%04x", b)
    end) .. '"'
  elseif tv == "number" then
    if v ~= v or v == math.huge or v == -math.huge then return "0" end
    -- Integers (times, counts) exactly; %.6g would round a Unix time.
    if v == math.floor(v) and math.abs(v) < 2 ^ 53 then return fmt("%d", v) end
    return fmt("%.10g", v)
  elseif tv == "boolean" then
    return tostring(v)
  end
  return "null"
end
API.json = json

function API.report(raw, o, format)
  local s = scan(test_ctx(raw, o))
  if format == "json" then
    return json { file = o.file, score = s.score, action = s.action, required = s.required,
                  forced = s.forced, symbols = s.symbols, errors = s.errors, time_us = s.time_us }
  end
  local names = {}
  for n in pairs(s.symbols) do names[#names + 1] = n end
  sort(names, function(a, b)
    local x, y = s.symbols[a].score, s.symbols[b].score
    if x ~= y then return x > y end
    return a < b
  end)
  local out = {}
  for _, n in ipairs(names) do
    local sym = s.symbols[n]
    out[#out + 1] = fmt("  %-28s %6.2f  %-28s %8.1f us  %s", n, sym.score, sym.file .. ":" .. sym.line,
                        sym.time_us or 0, sym.options and concat(sym.options, ", ") or "")
  end
  for _, e in ipairs(s.errors) do out[#out + 1] = fmt("  error in %s: %s", e.rule, e.error) end
  out[#out + 1] = fmt("total %.2f / %.2f -> %s%s (%.0f us)", s.score, s.required, s.action,
                      s.forced and (" (forced by " .. s.forced .. ")") or "", s.time_us)
  return concat(out, "\n")
end

-- moonpost rules test --repeat: one more scan of a fresh copy of the
-- message (nothing cached from earlier scans); its time in µs.
function API.bench(raw, o)
  return scan(test_ctx(raw, o)).time_us
end

function API.stats_json()
  local r = {}
  for _, x in ipairs(rules) do r[x.name] = x end
  for _, x in ipairs(composites) do r[x.name] = x end
  for _, x in ipairs(prefilters) do r[x.name] = x end
  local rs = {}
  for n, x in pairs(r) do
    rs[n] = { hits = x.hits, errors = x.errors, time_ms = x.time * 1000, file = x.file .. ":" .. x.line,
              score = x.score, group = x.group }
  end
  local hs = {}
  for n, x in pairs(hook_stats) do hs[n] = { calls = x.calls, errors = x.errors, time_ms = x.time * 1000 } end
  return json { hash = API.hash, loaded = API.loaded_at, files = files, rules = rs, hooks = hs }
end

-- ---- loading -------------------------------------------------------------------------

local hash_parts = {}

-- What was loaded, for the last good copy (src/lua/script_snapshot.c):
-- { kind = "rules" | "policies", name, src } in load order.
API.sources = {}

local function load_dir(dir, kind)
  local label = dir:match("([^/]+)/*$") or dir
  local names, err = mp.listdir(dir)
  if not names then error(err, 0) end
  for _, n in ipairs(names) do
    local path = dir .. "/" .. n
    local src, rerr = mp.readfile(path)
    if not src then error(rerr, 0) end
    hash_parts[#hash_parts + 1] = label .. "/" .. n .. "\0" .. src .. "\0"
    API.sources[#API.sources + 1] = { kind = kind, name = n, src = src }
    files[#files + 1] = label .. "/" .. n
    local chunk, cerr = loadstring(src, "@" .. label .. "/" .. n)
    if not chunk then error(cerr, 0) end
    setfenv(chunk, new_env())
    local ok, e = xpcall(chunk, handler)
    if not ok then
      if e == BUDGET then error(label .. "/" .. n .. ": loading ran over the load budget", 0) end
      error(first_line(e), 0)
    end
  end
end

load_dir(conf.rules_dir, "rules")
load_dir(conf.policies_dir, "policies")
for _, c in ipairs(composites) do
  for _, a in ipairs(c.atoms) do
    if not rules_by_name[a] then error(fmt("%s:%d: composite %s: unknown symbol %s", c.file, c.line, c.name, a), 0) end
  end
end
has_rules = #rules > 0 or #prefilters > 0
API.hooks.rules = has_rules
for _, t in ipairs(tests) do run_test(t) end
-- self-tests must not count as traffic
for _, x in ipairs(rules) do x.hits, x.errors, x.time = 0, 0, 0 end
for _, x in ipairs(composites) do x.hits = 0 end
for _, x in ipairs(prefilters) do x.hits, x.errors, x.time = 0, 0, 0 end
API.hash = mp.sha256(concat(hash_parts)):sub(1, 16)
API.loaded_at = os.time()

return API
