-- auth-throttle.lua - slows down password guessing, per client IP and per user.
-- The C core already delays logins from an IP with recent failures (a penalty
-- shared by all workers, like Dovecot's auth_penalty). This policy adds:
--  * per IP: past IP_DENY failures in the window, every attempt is refused,
--    even with the right password, until the window has passed;
--  * per user: past USER_DELAY failures for one login (from any IP, e.g. a
--    botnet), answers are delayed, doubling up to USER_DELAY_MAX seconds.
--    The right password waits as long as a wrong one: a delay on failures
--    only would tell the guesser "fast answer = right password", and it
--    would just stop waiting for slow answers.
-- Counters are per worker process and start again on a reload.
local IP_DENY = 30
local USER_DELAY = 5
local USER_DELAY_MAX = 15
local WINDOW = 900

local users = {}   -- login -> { n = failures, t = last failure }

-- Failures of login in the window, before this attempt.
local function user_failures(login)
  local u = users[login]
  if u and os.time() - u.t > WINDOW then
    users[login] = nil
    return 0
  end
  return u and u.n or 0
end

local function user_record(login, result)
  if result == "fail" then
    local u = users[login] or { n = 0 }
    u.n, u.t = u.n + 1, os.time()
    users[login] = u
  elseif result == "ok" then
    users[login] = nil
  end
end

hook("auth", function(ctx)
  local a = ctx.auth
  local login = a.user or ""
  local n = user_failures(login) + (a.result == "fail" and 1 or 0)
  user_record(login, a.result)
  if a.failures_ip >= IP_DENY then
    return deny("5.7.8 Too many failed logins from your address, try later")
  end
  if n > USER_DELAY then
    return delay(math.min(USER_DELAY_MAX, 2 ^ (n - USER_DELAY - 1)))
  end
end)
