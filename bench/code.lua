-- wrk script for the authorization-code exchange workload (bench/code_exchange.sh drives it):
-- every request redeems a fresh, pre-seeded code with its PKCE verifier, exactly once.
--   BENCH_CODES   file with one "CODE VERIFIER" pair per line (bench/seed_codes.mjs)
--   BENCH_PREFIX  form body before "&code=...&code_verifier=..." (grant_type, client_id,
--                 redirect_uri, resource...)
--   BENCH_AUTH    Authorization header value (confidential client; optional)
-- One wrk thread. The pool is finite (codes expire after 60 s, and the peer keeps only ~1000
-- objects in memory), so the run ends when the pool is empty, not after wrk's -d: the thread
-- stops itself, and the rate is computed here from a monotonic clock (LuaJIT FFI) between
-- the first request and the last real response. wrk calls request() once before the run to
-- check the script (never sent): the seeder makes one spare code for it.
-- Output: one BENCHJSON line in the format of ../shared/peers/load/bench.lua, workload "code",
-- with duration_s = that active time, so the shared summarize.py reads it like the others.
local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clk_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

wrk.method = "POST"
wrk.headers["Accept"] = "application/json"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
local auth = os.getenv("BENCH_AUTH")
if auth and auth ~= "" then wrk.headers["Authorization"] = auth end

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

-- per-thread state
ok = 0
non2xx = 0
badbody = 0
with_id_token = 0
with_refresh = 0
sent = 0
answered = 0
t_first = 0
t_last = 0
errsample = ""
local pool = {}
local prefix = ""
local filler = nil
local stopping = false

local function urlencode(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

function init(args)
  prefix = os.getenv("BENCH_PREFIX") or "grant_type=authorization_code"
  local f = assert(io.open(os.getenv("BENCH_CODES"), "r"))
  for line in f:lines() do
    local code, verifier = line:match("^(%S+)%s+(%S+)")
    if code then table.insert(pool, { code, verifier }) end
  end
  f:close()
  -- sent only if the pool runs dry while the thread is stopping; recognised and not counted
  filler = wrk.format("GET", "/.well-known/openid-configuration", { ["Accept"] = "application/json" }, "")
end

function request()
  local c = table.remove(pool)
  if c == nil then
    if not stopping then
      stopping = true
      -- let the requests in flight finish: stop once every real request is answered
    end
    return filler
  end
  if t_first == 0 then t_first = now() end
  sent = sent + 1
  return wrk.format(nil, nil, nil, prefix .. "&code=" .. urlencode(c[1]) .. "&code_verifier=" .. urlencode(c[2]))
end

function response(status, headers, body)
  if string.find(body or "", '"jwks_uri"', 1, true) then
    -- a filler (discovery document): not part of the workload
    if stopping and answered >= sent - 1 then wrk.thread:stop() end
    return
  end
  answered = answered + 1
  t_last = now()
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    if #errsample < 600 then
      errsample = errsample .. string.format("[%d] %s\n", status, string.sub(body or "", 1, 200))
    end
  elseif not string.find(body, '"access_token"', 1, true) then
    badbody = badbody + 1
  else
    ok = ok + 1
    if string.find(body, '"id_token"', 1, true) then with_id_token = with_id_token + 1 end
    if string.find(body, '"refresh_token"', 1, true) then with_refresh = with_refresh + 1 end
  end
  if stopping and answered >= sent - 1 then wrk.thread:stop() end
end

function done(summary, latency, requests)
  local t = { ok = 0, non2xx = 0, badbody = 0, with_id_token = 0, with_refresh = 0, answered = 0 }
  local t0, t1 = nil, nil
  for _, thread in ipairs(threads) do
    for k, _ in pairs(t) do t[k] = t[k] + (tonumber(thread:get(k)) or 0) end
    local a, b = tonumber(thread:get("t_first")) or 0, tonumber(thread:get("t_last")) or 0
    if a > 0 and (t0 == nil or a < t0) then t0 = a end
    if b > 0 and (t1 == nil or b > t1) then t1 = b end
    local es = thread:get("errsample")
    if es and #es > 0 then io.stderr:write("sample non-2xx responses:\n" .. es) end
  end
  local secs = (t0 and t1 and t1 > t0) and (t1 - t0) or (summary.duration / 1e6)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"workload":"code","requests":%d,"duration_s":%.3f,"rps":%.1f,"ok_rps":%.1f,' ..
    '"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,"mean_ms":%.3f,' ..
    '"non2xx":%d,"bad_body":%d,"ok":%d,"chains_broken":0,"starved":0,"with_id_token":%d,"with_refresh_token":%d,' ..
    '"wrk_requests":%d,"wrk_duration_s":%.3f,' ..
    '"err_connect":%d,"err_read":%d,"err_write":%d,"err_timeout":%d,"bytes":%d}\n',
    t.answered, secs, t.answered / secs, t.ok / secs,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, latency.mean / 1000,
    t.non2xx, t.badbody, t.ok, t.with_id_token, t.with_refresh,
    summary.requests, summary.duration / 1e6,
    e.connect, e.read, e.write, e.timeout, summary.bytes))
end
