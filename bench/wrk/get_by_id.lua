-- GET /api/v1/messages/{id}, cycling through seeded ids: wrk ... -s bench/wrk/get_by_id.lua URL -- IDS_FILE
-- (one id a line). Every request is built once in init(); request() only picks the next one.
package.path = "bench/wrk/?.lua;" .. package.path
local common = require("common")
common.authorize()

local requests = {}
local next_index = 1
local threads = 0
thread_number = 0

function setup(thread)
   thread:set("thread_number", threads)
   threads = threads + 1
end

function init(args)
   local ids_file = args[1] or error("usage: -- IDS_FILE")
   for id in io.lines(ids_file) do
      requests[#requests + 1] = wrk.format("GET", "/api/v1/messages/" .. id)
   end
   if #requests == 0 then
      error("no ids in " .. ids_file)
   end
   -- Threads start at different ids, so they do not ask for the same row at the same time.
   next_index = (thread_number * 997) % #requests + 1
end

function request()
   local r = requests[next_index]
   next_index = next_index % #requests + 1
   return r
end

done = common.done
