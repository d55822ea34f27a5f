-- POST a new panel (or, for the ceiling, one INSERT ... RETURNING).
-- BENCH_DATA lines: <path>\t<token or ->; the body is BENCH_BODY (a JSON object), the same
-- for every request; the token (and so the tenant) rotates with the lines.

local common = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local requests_ = {}
local next_request

setup = common.setup

function init(args)
  local body = os.getenv("BENCH_BODY")
  assert(body, "BENCH_BODY is not set")
  local rows = common.load_lines()
  for i, row in ipairs(rows) do
    requests_[i] = wrk.format("POST", row[1], common.headers(row[2], true), body)
  end
  next_request = common.cycle(requests_)
end

function request()
  return next_request()
end

done = common.done
