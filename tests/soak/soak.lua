-- The load of `make soak` (tests/soak/soak.sh): a mix of every way in and out of sesame,
-- plus bad inputs, each request checked against the answer it must get.
--
-- wrk can only tell which request a response answers when a thread has exactly one
-- connection (`wrk -tN -cN`): request() and response() then alternate strictly, so the
-- thread-local `last` below is always the request being answered. soak.sh runs it so.
-- A request left unanswered (socket error, reconnect) is counted as sent and never as
-- answered.
--
-- Kinds and the statuses they must get:
--   login            POST /login JSON email+password     200, Set-Cookie and csrf_token;
--                                                        the session joins this thread's pool
--   me_cookie        GET /me, a pooled session cookie    200 naming that session (its
--                                                        csrf_token); a 401 is a *lost session*
--   exchange         POST /login client_credentials      200 with access_token; joins the
--                    (form, HTTP Basic)                  token pool
--   me_bearer        GET /me, a pooled bearer token      200 naming that client
--   logout           POST /logout, oldest pooled         204; the session leaves the pool
--                    session, X-CSRF-Token
--   me_after_logout  GET /me with the cookie just        401 (sent right after each logout)
--                    logged out
--   bad_json         POST /login, malformed JSON         400
--   bad_password     POST /login, wrong password for a   401, or 429 once a decoy's
--                    decoy account, or an unknown email  budget is spent
--   bad_path         GET an unknown path                 404
--   bad_method       DELETE /login                       405
--   bad_media        POST /login, JSON, no Content-Type  415
--   bad_bearer       GET /me, garbage or tampered JWT    401
--   bad_large        POST /login, body over the limit    413
--   bad_key          exchange: decoy client + wrong key, 401, or 429 once that
--                    an unknown client_id, or a          client_id's budget is spent
--                    malformed one
-- Decoy accounts and the decoy client only ever get wrong credentials, so their spent
-- budgets never touch the good logins. Every request carries a random X-Forwarded-For
-- (sesame runs with SESAME_TRUST_PROXY=true), so the per-IP budgets are not spent either
-- and the throttle log sees many keys.
--
-- Configured by the environment (soak.sh sets it):
--   SOAK_USERS_FILE      file of "email password" lines: the good accounts
--   SOAK_DECOYS_FILE     file of decoy emails, one a line
--   SOAK_CLIENTS_FILE    file of "client_id basic" lines (basic: the base64 of
--                        urlencoded(client_id):urlencoded(api_key))
--   SOAK_BAD_BASICS_FILE file of Basic credentials that must fail, one a line
--   SOAK_COOKIE          session cookie name (default sesame_session)
--   SOAK_BODY_LIMIT      bytes; bad_large sends this plus 1 KiB (default 65536)
--   SOAK_MIX             weights overriding MIX below: "kind=weight,kind=weight"
--   SOAK_POOL_SESSIONS   sessions kept per thread (default 32)
--   SOAK_POOL_TOKENS     tokens kept per thread (default 8)
--   SOAK_TOKEN_MAX_AGE   seconds a pooled token is used (default 600; sesame's TTL is 15m)
-- done() prints machine-readable lines for report.py:
--   SOAK_KIND kind=… sent=… ok=… unexpected=… statuses=200:…,401:…
--   SOAK_EXAMPLE kind=… status=… detail=…     (the first few unexpected answers)
--   SOAK_TOTAL duration_s=… requests=… rps=… fivexx=… lost_sessions=… sockerr_*=… …
-- Its only latency figure is the slowest answer: wrk corrects its histogram for
-- coordinated omission against the mean request interval, which a mix of 0.3 ms reads
-- and 20 ms password logins turns into fiction, but leaves the maximum alone.

-- Relative weights. Logins and bad_password cost an argon2 verification each (about
-- 90/s per core); with one connection per thread at most one is in flight per thread,
-- so the hashing queue stays short whatever the weights.
local MIX = {
  me_cookie = 300, me_bearer = 300, exchange = 100,
  login = 8, logout = 8,
  bad_json = 10, bad_password = 2, bad_path = 10, bad_method = 10, bad_media = 10,
  bad_bearer = 10, bad_large = 4, bad_key = 5,
}
local ORDER = {
  "login", "me_cookie", "exchange", "me_bearer", "logout", "me_after_logout",
  "bad_json", "bad_password", "bad_path", "bad_method", "bad_media", "bad_bearer",
  "bad_large", "bad_key",
}
local EXPECT = {
  login = { [200] = true }, me_cookie = { [200] = true }, exchange = { [200] = true },
  me_bearer = { [200] = true }, logout = { [204] = true }, me_after_logout = { [401] = true },
  bad_json = { [400] = true }, bad_password = { [401] = true, [429] = true },
  bad_path = { [404] = true }, bad_method = { [405] = true }, bad_media = { [415] = true },
  bad_bearer = { [401] = true }, bad_large = { [413] = true },
  bad_key = { [401] = true, [429] = true },
}
local MAX_EXAMPLES = 5

-- ---- the main state: one thread object per wrk thread ----
local threads = {}

function setup(thread)
  thread:set("thread_no", #threads)
  table.insert(threads, thread)
end

-- ---- per-thread state (each wrk thread has its own Lua state) ----
-- Read by done() through thread:get, so these are globals of the thread's state.
counts = {}     -- "kind sent" / "kind status" -> n
examples = {}   -- strings "kind|status|detail"
lost = 0
pooled = 0

local users, decoys, clients, bad_basics = {}, {}, {}, {}
local cookie_pattern, large_body, pool_max, token_max, token_age
local sessions = { first = 1, last = 0 } -- FIFO of {cookie=, csrf=}
local tokens = {}                         -- {token=, client=, at=}
local total_weight, weights = 0, {}
local last                                -- the request awaiting its answer
local after_logout                        -- cookie to check right after a logout

local function read_lines(path)
  local t = {}
  if path then
    for line in io.lines(path) do
      if #line > 0 then table.insert(t, line) end
    end
  end
  return t
end

local function bump(key)
  counts[key] = (counts[key] or 0) + 1
end

function init(args)
  math.randomseed(os.time() * 1000 + (thread_no or 0) * 7919)
  for _, line in ipairs(read_lines(os.getenv("SOAK_USERS_FILE"))) do
    local email, password = line:match("^(%S+) (%S+)$")
    table.insert(users, { email = email, password = password })
  end
  decoys = read_lines(os.getenv("SOAK_DECOYS_FILE"))
  for _, line in ipairs(read_lines(os.getenv("SOAK_CLIENTS_FILE"))) do
    local id, basic = line:match("^(%S+) (%S+)$")
    table.insert(clients, { id = id, basic = basic })
  end
  bad_basics = read_lines(os.getenv("SOAK_BAD_BASICS_FILE"))
  assert(#users > 0 and #decoys > 0 and #clients > 0 and #bad_basics > 0,
    "SOAK_{USERS,DECOYS,CLIENTS,BAD_BASICS}_FILE must name non-empty files")
  local cookie_name = os.getenv("SOAK_COOKIE") or "sesame_session"
  cookie_pattern = "^(" .. cookie_name:gsub("(%W)", "%%%1") .. "=[^;]+)"
  local limit = tonumber(os.getenv("SOAK_BODY_LIMIT") or "") or 65536
  large_body = '{"email":"big@soak.test","password":"' .. string.rep("a", limit + 1024) .. '"}'
  pool_max = tonumber(os.getenv("SOAK_POOL_SESSIONS") or "") or 32
  token_max = tonumber(os.getenv("SOAK_POOL_TOKENS") or "") or 8
  token_age = tonumber(os.getenv("SOAK_TOKEN_MAX_AGE") or "") or 600
  for pair in (os.getenv("SOAK_MIX") or ""):gmatch("[^,]+") do
    local k, v = pair:match("^%s*([%w_]+)%s*=%s*(%d+)%s*$")
    assert(k and MIX[k], "SOAK_MIX: cannot read '" .. pair .. "'")
    MIX[k] = tonumber(v)
  end
  for _, kind in ipairs(ORDER) do
    if MIX[kind] and MIX[kind] > 0 then
      total_weight = total_weight + MIX[kind]
      table.insert(weights, { kind = kind, upto = total_weight })
    end
  end
  assert(total_weight > 0, "SOAK_MIX leaves nothing to send")
end

-- ---- pools ----
local function session_count() return sessions.last - sessions.first + 1 end

local function push_session(s)
  sessions.last = sessions.last + 1
  sessions[sessions.last] = s
end

local function pop_oldest_session()
  local s = sessions[sessions.first]
  sessions[sessions.first] = nil
  sessions.first = sessions.first + 1
  return s
end

local function random_session()
  return sessions[math.random(sessions.first, sessions.last)]
end

local function drop_session(s)
  for i = sessions.first, sessions.last do
    if sessions[i] == s then
      sessions[i] = sessions[sessions.first]
      pop_oldest_session()
      return
    end
  end
end

local function fresh_token()
  while #tokens > 0 do
    local i = math.random(#tokens)
    if os.time() - tokens[i].at < token_age then return tokens[i] end
    table.remove(tokens, i)
  end
  return nil
end

-- ---- requests ----
local function xff()
  return string.format("10.%d.%d.%d", math.random(0, 255), math.random(0, 255), math.random(1, 254))
end

local function fmt(method, path, headers, body)
  headers["X-Forwarded-For"] = xff()
  headers["User-Agent"] = "sesame-soak"
  return wrk.format(method, path, headers, body)
end

local function json_login(email, password)
  return string.format('{"email":"%s","password":"%s"}', email, password)
end

local function tamper(token)
  -- Change one character in the middle of the signature: real bits, not padding.
  local head, sig = token:match("^(.*%.)([^.]+)$")
  if not sig or #sig < 20 then return "soak-garbage-" .. math.random(1e9) end
  local i = 10
  local c = sig:sub(i, i) == "A" and "B" or "A"
  return head .. sig:sub(1, i - 1) .. c .. sig:sub(i + 1)
end

local function pick_kind()
  local r = math.random() * total_weight
  for _, w in ipairs(weights) do
    if r < w.upto then return w.kind end
  end
  return weights[#weights].kind
end

local build = {}

build.login = function()
  local u = users[math.random(#users)]
  local h = { ["Content-Type"] = "application/json" }
  return fmt("POST", "/login", h, json_login(u.email, u.password)), { user = u }
end

build.me_cookie = function()
  local s = random_session()
  return fmt("GET", "/me", { Cookie = s.cookie }), { session = s }
end

build.exchange = function()
  local c = clients[math.random(#clients)]
  return fmt("POST", "/login", {
    Authorization = "Basic " .. c.basic,
    ["Content-Type"] = "application/x-www-form-urlencoded",
  }, "grant_type=client_credentials"), { client = c }
end

build.me_bearer = function(t)
  return fmt("GET", "/me", { Authorization = "Bearer " .. t.token }), { token = t }
end

build.logout = function()
  local s = pop_oldest_session()
  after_logout = s
  return fmt("POST", "/logout", { Cookie = s.cookie, ["X-CSRF-Token"] = s.csrf }), { session = s }
end

build.me_after_logout = function(s)
  return fmt("GET", "/me", { Cookie = s.cookie }), { session = s }
end

build.bad_json = function()
  return fmt("POST", "/login", { ["Content-Type"] = "application/json" },
    '{"email":"a@soak.test","password":'), {}
end

build.bad_password = function()
  local email
  if math.random(2) == 1 then
    email = decoys[math.random(#decoys)]
  else
    email = string.format("nobody-%d@soak.test", math.random(1e9))
  end
  return fmt("POST", "/login", { ["Content-Type"] = "application/json" },
    json_login(email, "not-the-password-" .. math.random(1e9))), {}
end

build.bad_path = function()
  return fmt("GET", "/soak/nowhere/" .. math.random(1e9), {}), {}
end

build.bad_method = function()
  return fmt("DELETE", "/login", {}), {}
end

build.bad_media = function()
  local u = users[math.random(#users)]
  return fmt("POST", "/login", {}, json_login(u.email, u.password)), {}
end

build.bad_bearer = function()
  local t = fresh_token()
  local bearer
  if t and math.random(2) == 1 then
    bearer = tamper(t.token)
  else
    bearer = "soak-garbage-" .. math.random(1e9)
  end
  return fmt("GET", "/me", { Authorization = "Bearer " .. bearer }), {}
end

build.bad_large = function()
  return fmt("POST", "/login", { ["Content-Type"] = "application/json" }, large_body), {}
end

build.bad_key = function()
  return fmt("POST", "/login", {
    Authorization = "Basic " .. bad_basics[math.random(#bad_basics)],
    ["Content-Type"] = "application/x-www-form-urlencoded",
  }, "grant_type=client_credentials"), {}
end

function request()
  local kind, arg
  if after_logout then
    kind, arg, after_logout = "me_after_logout", after_logout, nil
  else
    kind = pick_kind()
    -- Keep the pools between a few and pool_max entries: a kind that needs an empty
    -- pool fills it instead, a login into a full pool ends the oldest session instead.
    if kind == "me_cookie" and session_count() == 0 then kind = "login" end
    if kind == "logout" and session_count() < 2 then kind = "login" end
    if kind == "login" and session_count() >= pool_max then kind = "logout" end
    if kind == "me_bearer" then
      arg = fresh_token()
      if not arg then kind = "exchange" end
    end
  end
  local req, ctx = build[kind](arg)
  ctx.kind = kind
  last = ctx
  bump(kind .. " sent")
  return req
end

-- ---- responses ----
local function header(headers, name)
  return headers[name] or headers[name:lower()]
end

local function note(kind, status, detail)
  if #examples < MAX_EXAMPLES then
    detail = (detail or ""):gsub("[\r\n]+", " "):sub(1, 200)
    table.insert(examples, kind .. "|" .. status .. "|" .. detail)
  end
end

function response(status, headers, body)
  local ctx = last
  last = nil
  if not ctx then return end
  local kind = ctx.kind
  local label = tostring(status)
  local ok = EXPECT[kind][status] == true

  if kind == "login" and status == 200 then
    local set = header(headers, "Set-Cookie") or ""
    local cookie = set:match(cookie_pattern)
    local csrf = body:match('"csrf_token"%s*:%s*"([^"]+)"')
    if cookie and csrf then
      push_session({ cookie = cookie, csrf = csrf })
    else
      ok, label = false, "200 without cookie or csrf_token"
    end
  elseif kind == "me_cookie" then
    if status == 200 and not body:find(ctx.session.csrf, 1, true) then
      ok, label = false, "200 for another session"
    elseif status == 401 then
      lost = lost + 1
      drop_session(ctx.session)
    end
  elseif kind == "exchange" and status == 200 then
    local token = body:match('"access_token"%s*:%s*"([^"]+)"')
    if token then
      local t = { token = token, client = ctx.client, at = os.time() }
      if #tokens >= token_max then tokens[math.random(#tokens)] = t else table.insert(tokens, t) end
    else
      ok, label = false, "200 without access_token"
    end
  elseif kind == "me_bearer" then
    if status == 200 and not body:find('"' .. ctx.token.client.id .. '"', 1, true) then
      ok, label = false, "200 for another client"
    end
  end

  bump(kind .. " " .. label)
  if ok then
    bump(kind .. " ok")
  else
    bump(kind .. " unexpected")
    note(kind, label, body)
  end
  pooled = session_count()
end

-- ---- the summary ----
function done(summary, latency, requests_)
  local total = {}
  local all_examples = {}
  local lost_sessions, live_sessions = 0, 0
  for _, thread in ipairs(threads) do
    for k, v in pairs(thread:get("counts") or {}) do
      total[k] = (total[k] or 0) + v
    end
    for _, e in ipairs(thread:get("examples") or {}) do
      table.insert(all_examples, e)
    end
    lost_sessions = lost_sessions + (thread:get("lost") or 0)
    live_sessions = live_sessions + (thread:get("pooled") or 0)
  end

  local fivexx, answered = 0, 0
  for _, kind in ipairs(ORDER) do
    local statuses = {}
    for k, v in pairs(total) do
      local kk, st = k:match("^(%S+) (.+)$")
      if kk == kind and st ~= "sent" and st ~= "ok" and st ~= "unexpected" then
        table.insert(statuses, { st, v })
        answered = answered + v
        local code = tonumber(st:match("^(%d+)"))
        if code and code >= 500 then fivexx = fivexx + v end
      end
    end
    table.sort(statuses, function(a, b) return a[1] < b[1] end)
    local parts = {}
    for _, s in ipairs(statuses) do
      table.insert(parts, (s[1]:gsub(" ", "_")) .. ":" .. s[2])
    end
    io.write(string.format("SOAK_KIND kind=%s sent=%d ok=%d unexpected=%d statuses=%s\n",
      kind, total[kind .. " sent"] or 0, total[kind .. " ok"] or 0,
      total[kind .. " unexpected"] or 0, table.concat(parts, ",")))
  end
  for _, e in ipairs(all_examples) do
    local kind, status, detail = e:match("^([^|]*)|([^|]*)|(.*)$")
    io.write(string.format("SOAK_EXAMPLE kind=%s status=%s detail=%s\n",
      kind, (status:gsub(" ", "_")), detail))
  end
  local seconds = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "SOAK_TOTAL duration_s=%.1f requests=%d answered=%d rps=%.1f fivexx=%d lost_sessions=%d " ..
    "live_sessions=%d sockerr_connect=%d sockerr_read=%d sockerr_write=%d sockerr_timeout=%d " ..
    "max_ms=%.1f\n",
    seconds, summary.requests, answered, summary.requests / seconds, fivexx, lost_sessions,
    live_sessions, e.connect, e.read, e.write, e.timeout, latency.max / 1000))
end
