-- Shared helpers for the benchmark scripts (loaded by each scenario script with dofile).
--
-- Every scenario reads its inputs from a tab-separated file named by BENCH_DATA (one request
-- per line), gives each wrk thread its own starting offset in that file (so threads do not
-- hit the same ids at the same time), and prints its figures as one JSON line from done():
-- `BENCH_JSON {...}`; the runner parses that line rather than wrk's human-readable summary.

local M = {}

local counter = 0

function M.split(line)
  local fields = {}
  for field in string.gmatch(line, "[^\t]+") do
    fields[#fields + 1] = field
  end
  return fields
end

function M.load_lines()
  local path = os.getenv("BENCH_DATA")
  assert(path, "BENCH_DATA is not set")
  local rows = {}
  for line in io.lines(path) do
    if #line > 0 then
      rows[#rows + 1] = M.split(line)
    end
  end
  assert(#rows > 0, "no rows in " .. path)
  return rows
end

-- Called in the main Lua state once per thread, before the threads start.
function M.setup(thread)
  thread:set("thread_index", counter)
  counter = counter + 1
end

-- The first row this thread uses: threads start evenly spread over the rows
-- (BENCH_THREADS is wrk's -t, set by the runner).
function M.start_offset(rows)
  local count = tonumber(os.getenv("BENCH_THREADS")) or 1
  local index = tonumber(thread_index) or 0
  return math.floor(#rows * index / count)
end

-- Hands out the items one after another from this thread's start row, round and round.
function M.cycle(items)
  local position = M.start_offset(items) + 1
  return function()
    local item = items[position]
    position = position % #items + 1
    return item
  end
end

function M.headers(token, with_body)
  local headers = { ["Accept"] = "application/json" }
  if token and token ~= "-" then
    headers["Authorization"] = "Bearer " .. token
  end
  if with_body then
    headers["Content-Type"] = "application/json"
  end
  return headers
end

-- Runs once in the main state after the run: one machine-readable line.
function M.done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"latency_us":{"min":%d,"max":%d,"mean":%.2f,"stdev":%.2f,'
      .. '"p50":%d,"p75":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.max, latency.mean, latency.stdev,
    latency:percentile(50), latency:percentile(75), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9)
  ))
end

return M
