-- One wrk script for every scenario of tests/bench/run.sh, so that each pays the same
-- per-request Lua cost: all requests are formatted once in init(), and request() only
-- hands the next one out. Configured by environment variables:
--   BENCH_METHOD    GET (default) or POST
--   BENCH_BODY      request body (with -H 'Content-Type: ...')
--   BENCH_HANDLES   file of session handles, one per line: one request per handle,
--                   each with `Cookie: <BENCH_COOKIE>=<handle>`, cycled in order
--   BENCH_COOKIE    cookie name (default sesame_session)
--   BENCH_BODIES    file of form bodies, one per line: one request per body, cycled
--                   in order (a refresh grant spends each token once)
--   BENCH_USERS     N: one JSON password login per user user0..user{N-1}@bench.test
--   BENCH_PASSWORD  their (shared) password
--   BENCH_DELAY_MS  wait this long before each request on a connection (a scraper)
--   BENCH_ONCE=T    with BENCH_BODIES and -tT: each thread sends its share of the bodies once,
--                   then stops (a GET /healthz goes out in place of the next, its answer
--                   never read); the run's -d only bounds it. For latency, not req/s.
-- Headers given with -H are sent on every request. done() prints one line:
--   BENCH requests=… rps=… p50_ms=… p99_ms=… non2xx=… sockerr=…
-- where non2xx is wrk's count of responses with status >= 400.

local threads = {}

function setup(thread)
  thread:set("thread_no", #threads)
  table.insert(threads, thread)
end

local function format(extra_headers, body)
  local headers = {}
  for k, v in pairs(wrk.headers) do headers[k] = v end
  for k, v in pairs(extra_headers or {}) do headers[k] = v end
  return wrk.format(wrk.method, wrk.path, headers, body or wrk.body)
end

local requests, next_index, delay_ms, last_index, filler

function init(args)
  wrk.method = os.getenv("BENCH_METHOD") or "GET"
  wrk.body = os.getenv("BENCH_BODY")
  requests = {}
  local handles = os.getenv("BENCH_HANDLES")
  local users = tonumber(os.getenv("BENCH_USERS") or "")
  local bodies = os.getenv("BENCH_BODIES")
  if bodies then
    local form = { ["Content-Type"] = "application/x-www-form-urlencoded" }
    for line in io.lines(bodies) do
      if #line > 0 then
        table.insert(requests, format(form, line))
      end
    end
  elseif handles then
    local cookie = os.getenv("BENCH_COOKIE") or "sesame_session"
    for line in io.lines(handles) do
      if #line > 0 then
        table.insert(requests, format({ Cookie = cookie .. "=" .. line }))
      end
    end
  elseif users then
    local password = os.getenv("BENCH_PASSWORD")
    for i = 0, users - 1 do
      local body = string.format('{"email":"user%d@bench.test","password":"%s"}', i, password)
      table.insert(requests, format({ ["Content-Type"] = "application/json" }, body))
    end
  else
    table.insert(requests, format())
  end
  -- Threads start at different places in the list, so they do not walk it in step.
  next_index = ((thread_no or 0) * math.floor(#requests / 2)) % #requests + 1
  local once = tonumber(os.getenv("BENCH_ONCE") or "")
  if once then
    local share = math.floor(#requests / once)
    next_index = (thread_no or 0) * share + 1
    last_index = next_index + share - 1
    filler = wrk.format("GET", "/healthz", {}, "")
  end
  delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "")
end

function request()
  if last_index and next_index > last_index then
    wrk.thread:stop()
    return filler
  end
  local r = requests[next_index]
  if last_index then
    next_index = next_index + 1
  else
    next_index = next_index % #requests + 1
  end
  return r
end

if os.getenv("BENCH_DELAY_MS") then
  function delay()
    return delay_ms
  end
end

function done(summary, latency, requests_)
  local seconds = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d rps=%.1f p50_ms=%.3f p99_ms=%.3f non2xx=%d sockerr=%d\n",
    summary.requests, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    e.status, e.connect + e.read + e.write + e.timeout))
end
