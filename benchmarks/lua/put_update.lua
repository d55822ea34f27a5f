-- PUT a new name on a panel, rotating over many ids so that concurrent requests do not queue
-- on one row's lock. BENCH_DATA lines: <path>\t<token>. Every request carries a new name
-- (thread index and a counter), so no update is a no-op even when the rotation wraps.

local common = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local targets_ = {}
local next_target
local sequence = 0
local index = 0

setup = common.setup

function init(args)
  for i, row in ipairs(common.load_lines()) do
    targets_[i] = { row[1], common.headers(row[2], true) }
  end
  index = tonumber(thread_index) or 0
  next_target = common.cycle(targets_)
end

function request()
  local target = next_target()
  sequence = sequence + 1
  local body = string.format('{"name":"Bench panel t%d r%d"}', index, sequence)
  return wrk.format("PUT", target[1], target[2], body)
end

done = common.done
