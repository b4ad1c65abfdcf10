-- wrk script: each request a new 1-unit hold on one of N SKUs ("Z-0".."Z-<N-1>") picked with
-- Zipf skew (exponent s), a unique Idempotency-Key per request.
-- wrk ... -s wrk-hold-zipf.lua URL -- <api key> <N> <s> [run id, default: the clock]
-- `tid` is a global set per thread by setup(), and the fixed parts of the request are built
-- once in init(); wrk-hold.lua says why.
local counter, threads_started = 0, 0
function setup(thread) threads_started = threads_started + 1; thread:set("tid", threads_started) end
function init(args)
  local key = args[1]; n = tonumber(args[2] or "1000"); local s = tonumber(args[3] or "1.1")
  local run = args[4] or tostring(os.time())
  math.randomseed(os.time() * 100 + tid)
  cdf, total = {}, 0
  for i = 1, n do total = total + 1 / (i ^ s); cdf[i] = total end
  for i = 1, n do cdf[i] = cdf[i] / total end
  head = "POST /v1/holds HTTP/1.1\r\nHost: " .. wrk.host .. ":" .. wrk.port ..
    "\r\nContent-Type: application/json\r\nAuthorization: Bearer " .. key ..
    "\r\nIdempotency-Key: z" .. run .. "-" .. tid .. "-"
end
local function pick()
  local u, lo, hi = math.random(), 1, n
  while lo < hi do local mid = math.floor((lo + hi) / 2); if cdf[mid] < u then lo = mid + 1 else hi = mid end end
  return lo - 1
end
function request()
  counter = counter + 1
  local body = '{"lines":[{"sku":"Z-' .. pick() .. '","quantity":1}],"customer_id":"c' .. tid .. "-" .. counter .. '"}'
  return head .. counter .. "\r\nContent-Length: " .. #body .. "\r\n\r\n" .. body
end
