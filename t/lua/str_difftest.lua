-- str_difftest.lua - differential test of src/lua/script_str.c: every
-- string.find/match/gmatch/gsub call is made with LuaJIT's own functions
-- (ORIG) and ours (FAST) and the results, errors included, must be equal.
-- Fixed patterns the shipped rules use and edge cases, over hand-made,
-- random and corpus subjects; then random patterns. Run by
-- t/unit/test_script_str.c; returns tests, mismatches, the first mismatch.
local files = {}  -- subjects: the files named in arg
for i = 1, #arg do local f = io.open(arg[i]); files[#files+1] = f:read("*a"); f:close() end
local function pack(...) return { n = select("#", ...), ... } end
local function ser(t)
  local o = {}
  for i = 1, t.n do o[i] = type(t[i]) .. ":" .. tostring(t[i]) end
  return table.concat(o, "|")
end
local function call(f, ...)
  local r = pack(pcall(f, ...))
  if not r[1] then r[2] = tostring(r[2]):gsub("^[^:]*:%d+: ", "") end
  return ser(r)
end
local function gm(g, s, p)
  local ok, it = pcall(g, s, p)
  if not ok then return "err:" .. tostring(it) end
  local out, n = {}, 0
  local ok2, e = pcall(function()
    for a, b, c in it do n = n + 1; out[#out+1] = tostring(a) .. "," .. tostring(b) .. "," .. tostring(c); if n > 2000 then break end end
  end)
  if not ok2 then out[#out+1] = "ERR " .. tostring(e):gsub("^[^:]*:%d+: ", "") end
  return table.concat(out, ";")
end
local bad, first = 0, nil
local function check(what, a, b, s, p, x)
  if a ~= b then
    bad = bad + 1
    if bad < 20 then
      local m = ("MISMATCH %s pat=%q x=%s subj(%d)=%q\n  orig=%s\n  fast=%s"):format(what, p, tostring(x), #s, s:sub(1, 80), a:sub(1, 300), b:sub(1, 300))
      first = first or m
      io.stderr:write(m, "\n")
    end
  end
end
local repl_fn = function(a, b) if a == "x" then return nil end if b then return "[" .. tostring(a) .. tostring(b) .. "]" end return "<" .. tostring(a) .. ">" end
local repl_t = { a = "A", e = false, ["<"] = "LT" }
local function test(s, p)
  for _, init in ipairs({ 1, 5, -3, 100000, 0 }) do
    check("find", call(ORIG.find, s, p, init), call(FAST.find, s, p, init), s, p, init)
    check("match", call(ORIG.match, s, p, init), call(FAST.match, s, p, init), s, p, init)
  end
  check("findplain", call(ORIG.find, s, p, 1, true), call(FAST.find, s, p, 1, true), s, p)
  check("gmatch", gm(ORIG.gmatch, s, p), gm(FAST.gmatch, s, p), s, p)
  for _, r in ipairs({ "", "X", "%0%0", "%1", "%%", "<%2>", 7, repl_fn, repl_t }) do
    for _, m in ipairs({ nil, 0, 1, 3 }) do
      check("gsub", call(ORIG.gsub, s, p, r, m), call(FAST.gsub, s, p, r, m), s, p, tostring(r) .. "/" .. tostring(m))
    end
  end
end
local pats = {
  "display%s*:%s*none", "<form[%s>]", "font%-size%s*:%s*[01]px", "<font[^>]-size%s*=%s*[\"']?%+?[5-7]",
  "font%-size%s*:%s*(%d+)%s*(p[xt])", "%u", "%a", "%a%a+", "!", "!!+", "%a<!%-%-[^>]*%-%->%a", "=\r?\n", "=(%x%x)",
  "^%s+", "%s+$", "^<[^<>@%s]+@[^<>@%s]+>$", "<%s*/?%s*[abfhpt][a-z0-9]*[%s>]", "<a%s+href", "color%s*[=:]%s*[\"']?#?ff0000",
  "%d%d%d%d%d", "[%w.+_%-]+@([%w%-]+%.[%w.%-]*%a)", "^%s*<0000%x+%$0000%x+%$0000%x+@", "()", "(a)(b)()", "%f[%a]%a+", "%b()", "%b<>",
  "(%a+)%s*=%s*%1", "a-b", "a?b", "x*", ".-", "$", "^", "^$", "a$", "$a", "[", "%", "[a", "%g+", "%z", "[^%s]+", "[]]", "[^]]", "[a-]", "(", ")", "%1",
  "(()", "%f", "%fx", "%b", "%bx", "e", "ee", "(e)+", "[%a-z]", "[a-%%]", ".", "..", "a.b", "%.", "%%", "^(%w+)", "(.)%1", "((a)(b))",
  "\0", "a\0b", "%x%x", "[\128-\255]+", "%c", "%p+", "%S+", "%W", "%A%A", "^From ", "=\n", "%?", "http://([^/]+)", "%s", "(%s*)x",
}
local alphabet = { "a", "b", "e", "x", "<", ">", "!", " ", "\n", "=", "3", "D", "%", "(", ")", "[", "]", "-", "^", "$", ".", "\0", "\200", "A", "f" }
math.randomseed(tonumber(os.getenv("SEED") or 42))
local function rnd_str(n)
  local t = {}
  for i = 1, n do t[i] = alphabet[math.random(#alphabet)] end
  return table.concat(t)
end
local specials = { "%a", "%d", "%s", "%u", ".", "[ab]", "[^a]", "%%", "%<", "(", ")", "()", "*", "+", "-", "?", "^", "$", "%b<>", "%f[%a]", "%1", "[a-e]", "%x" }
local function rnd_pat()
  local t, n = {}, math.random(1, 7)
  for i = 1, n do
    if math.random() < 0.5 then t[#t+1] = alphabet[math.random(#alphabet)] else t[#t+1] = specials[math.random(#specials)] end
  end
  return table.concat(t)
end
local subjects = { "", "a", "abc", "aaa", "e=3D=\nx", "<!-- x -->", "V<!-- x -->iagra Fr<b></b>ee" }
for _, f in ipairs(files) do
  subjects[#subjects+1] = f
  subjects[#subjects+1] = f:lower()
  subjects[#subjects+1] = f:sub(1, 300)
end
for i = 1, 200 do subjects[#subjects+1] = rnd_str(math.random(0, 60)) end
local nt = 0
for _, p in ipairs(pats) do for _, s in ipairs(subjects) do test(s, p); nt = nt + 1 end end
local small = {}
for _, s in ipairs(subjects) do if #s <= 300 then small[#small+1] = s end end
for i = 1, tonumber(os.getenv("STR_RANDOM") or 2000) do
  local p = rnd_pat()
  for j = 1, 8 do test(small[math.random(#small)], p); nt = nt + 1 end
end
return nt, bad, first
