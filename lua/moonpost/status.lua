-- status.lua - formats `moonpost status` from the JSON status files that the
-- workers (lua-PID.json) and the parent (parent.json) keep in state_dir/status.
-- Runs in the CLI's own Lua state; input: a list of JSON texts.
local texts = ...

-- A small JSON decoder: the files are ours (src/lua/script_engine.c and
-- boot.lua's json()), so objects, arrays, strings, numbers, booleans, null.
local function decode(s)
  local pos = 1
  local function ws() pos = s:find("[^ \t\r\n]", pos) or #s + 1 end
  local value
  local function str()
    local out, i = {}, pos + 1
    while true do
      local c = s:sub(i, i)
      if c == "" then error("unterminated string") end
      if c == '"' then pos = i + 1; return table.concat(out) end
      if c == "\\" then
        local n = s:sub(i + 1, i + 1)
        if n == "u" then
          local cp = tonumber(s:sub(i + 2, i + 5), 16) or 63
          out[#out + 1] = cp < 128 and string.char(cp) or "?"
          i = i + 6
        else
          out[#out + 1] = ({ n = "\n", t = "\t", r = "\r", b = "\b", f = "\f" })[n] or n
          i = i + 2
        end
      else
        out[#out + 1] = c
        i = i + 1
      end
    end
  end
  function value()
    ws()
    local c = s:sub(pos, pos)
    if c == "{" then
      local t = {}
      pos = pos + 1
      ws()
      if s:sub(pos, pos) == "}" then pos = pos + 1; return t end
      while true do
        ws()
        local k = str()
        ws()
        pos = pos + 1 -- ':'
        t[k] = value()
        ws()
        local d = s:sub(pos, pos)
        pos = pos + 1
        if d == "}" then return t end
      end
    elseif c == "[" then
      local t = {}
      pos = pos + 1
      ws()
      if s:sub(pos, pos) == "]" then pos = pos + 1; return t end
      while true do
        t[#t + 1] = value()
        ws()
        local d = s:sub(pos, pos)
        pos = pos + 1
        if d == "]" then return t end
      end
    elseif c == '"' then
      return str()
    elseif s:sub(pos, pos + 3) == "true" then pos = pos + 4; return true
    elseif s:sub(pos, pos + 4) == "false" then pos = pos + 5; return false
    elseif s:sub(pos, pos + 3) == "null" then pos = pos + 4; return nil
    end
    local num = s:match("^-?[%d.eE+-]+", pos)
    if not num then error("bad JSON at " .. pos) end
    pos = pos + #num
    return tonumber(num)
  end
  return value()
end

local out, workers, parent = {}, {}, nil
for _, t in ipairs(texts) do
  local ok, v = pcall(decode, t)
  if ok and type(v) == "table" then
    if v.set then workers[#workers + 1] = v else parent = v end
  end
end
table.sort(workers, function(a, b) return (a.pid or 0) < (b.pid or 0) end)

local function when(t) return t and os.date("%Y-%m-%d %H:%M:%S", t) or "-" end

if parent then
  out[#out + 1] = string.format("daemon: last config reload %s at %s%s", parent.last_result or "?",
    when(parent.time), (parent.last_error or "") ~= "" and ("\n  error: " .. parent.last_error) or "")
end
local totals, hooks = {}, {}
for _, w in ipairs(workers) do
  local set = w.set or {}
  out[#out + 1] = string.format("worker %d: scripts %s loaded %s (%d files), reloads %d (%d failed), last reload %s",
    w.pid or 0, set.hash or "?", when(set.loaded), #(set.files or {}), w.reloads or 0, w.failures or 0,
    w.last_result or "?")
  if (w.last_error or "") ~= "" then
    out[#out + 1] = "  last error (old set kept): " .. w.last_error
  end
  for name, r in pairs(set.rules or {}) do
    local t = totals[name] or { hits = 0, errors = 0, time_ms = 0, file = r.file, score = r.score }
    t.hits, t.errors, t.time_ms = t.hits + (r.hits or 0), t.errors + (r.errors or 0), t.time_ms + (r.time_ms or 0)
    totals[name] = t
  end
  for name, h in pairs(set.hooks or {}) do
    local t = hooks[name] or { calls = 0, errors = 0, time_ms = 0 }
    t.calls, t.errors, t.time_ms = t.calls + (h.calls or 0), t.errors + (h.errors or 0), t.time_ms + (h.time_ms or 0)
    hooks[name] = t
  end
end
local names = {}
for n in pairs(totals) do names[#names + 1] = n end
table.sort(names, function(a, b)
  if totals[a].hits ~= totals[b].hits then return totals[a].hits > totals[b].hits end
  return a < b
end)
out[#out + 1] = string.format("%-28s %8s %7s %10s  %s", "rule", "hits", "errors", "time ms", "defined at")
for _, n in ipairs(names) do
  local t = totals[n]
  out[#out + 1] = string.format("%-28s %8d %7d %10.2f  %s", n, t.hits, t.errors, t.time_ms, t.file or "")
end
local hn = {}
for n in pairs(hooks) do hn[#hn + 1] = n end
table.sort(hn)
if #hn > 0 then
  out[#out + 1] = string.format("%-28s %8s %7s %10s", "hook", "calls", "errors", "time ms")
  for _, n in ipairs(hn) do
    local t = hooks[n]
    out[#out + 1] = string.format("%-28s %8d %7d %10.2f", n, t.calls, t.errors, t.time_ms)
  end
end
return table.concat(out, "\n") .. "\n"
