-- PUT a new name on a panel, rotating over many ids so that concurrent requests do not queue
-- on one row's lock. BENCH_DATA lines: <path>\t<token>. Every request carries a new name
-- (thread index and a counter), so no update is a no-op even when the rotation wraps.

local common = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local rows = {}
local position = 1
local sequence = 0
local index = 0
local headers_ = {}

setup = common.setup

function init(args)
  rows = common.load_lines()
  for i, row in ipairs(rows) do
    headers_[i] = common.headers(row[2], true)
  end
  index = tonumber(thread_index) or 0
  position = common.start_offset(rows) + 1
end

function request()
  local row = rows[position]
  local headers = headers_[position]
  position = position + 1
  if position > #rows then
    position = 1
  end
  sequence = sequence + 1
  local body = string.format('{"name":"Bench panel t%d r%d"}', index, sequence)
  return wrk.format("PUT", row[1], headers, body)
end

done = common.done
