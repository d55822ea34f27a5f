-- GET over a rotating list of paths. BENCH_DATA lines: <path>\t<token or ->.
-- Used for: GET one panel (cached / cache off), GET the panel list, and the ceilings
-- "constant JSON" and "SELECT by id" (same request headers, so request parsing costs match).

local common = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local requests_ = {}
local next_request

setup = common.setup

function init(args)
  local rows = common.load_lines()
  -- Pre-format every request once; request() only hands out the next one.
  for i, row in ipairs(rows) do
    requests_[i] = wrk.format("GET", row[1], common.headers(row[2], false))
  end
  next_request = common.cycle(requests_)
end

function request()
  return next_request()
end

done = common.done
