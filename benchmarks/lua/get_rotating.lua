-- GET over a rotating list of paths. BENCH_DATA lines: <path>\t<token or ->.
-- Used for: GET one panel (cached / cache off), GET the panel list, and the ceilings
-- "constant JSON" and "SELECT by id" (same request headers, so request parsing costs match).

local common = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local requests_ = {}
local position = 1

setup = common.setup

function init(args)
  local rows = common.load_lines()
  -- Pre-format every request once; request() only hands out the next one.
  for i, row in ipairs(rows) do
    requests_[i] = wrk.format("GET", row[1], common.headers(row[2], false))
  end
  position = common.start_offset(requests_) + 1
end

function request()
  local r = requests_[position]
  position = position + 1
  if position > #requests_ then
    position = 1
  end
  return r
end

done = common.done
