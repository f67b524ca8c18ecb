-- wrk script for scripts/bench: every request POSTs the signed WeChat text message a reader sends
-- for ISBN 9787121139512, each with its own MsgId. The gateway remembers MsgIds for minutes to
-- de-duplicate WeChat's retries; a repeated MsgId would be answered from memory, not measured.
--
-- Environment (set by scripts/bench for each wrk run):
--   DOUMI_BENCH_QUERY  signature=..&timestamp=..&nonce=.. signed just before wrk starts (the
--                      gateway refuses timestamps older than 5 minutes)
--   DOUMI_BENCH_RUN    a number per wrk run, so warm-ups and rounds never share a MsgId
--
-- done() prints one line scripts/bench parses:
--   doumi-bench requests duration_us p50_us p99_us connect read write status timeout
-- (status = responses wrk counts as errors: HTTP status above 399)

local query = assert(os.getenv("DOUMI_BENCH_QUERY"), "DOUMI_BENCH_QUERY is not set")
local run = tonumber(os.getenv("DOUMI_BENCH_RUN") or "0") % 10000
local created = os.time()
local head = "<xml><ToUserName><![CDATA[gh_bench]]></ToUserName>"
  .. "<FromUserName><![CDATA[oBenchReader]]></FromUserName>"
  .. "<CreateTime>" .. created .. "</CreateTime><MsgType><![CDATA[text]]></MsgType>"
  .. "<Content><![CDATA[9787121139512]]></Content><MsgId>"
local tail = "</MsgId></xml>"
local headers = { ["Content-Type"] = "text/xml" }

-- setup() runs in the main Lua state once per thread; tid lands in that thread's own state.
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

-- MsgId: 1, the run (4 digits), the thread (2), a per-thread counter (10): 17 digits, unique
-- within one scripts/bench run and well inside WeChat's signed 64-bit range.
local path = nil
local n = 0
function request()
  path = path or (wrk.path .. "?" .. query)
  n = n + 1
  local id = string.format("1%04d%02d%010d", run, tid or 0, n)
  return wrk.format("POST", path, headers, head .. id .. tail)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("doumi-bench %d %d %.0f %.0f %d %d %d %d %d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
