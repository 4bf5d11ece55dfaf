-- GET /api/v1/messages?limit=50, the newest page of the client's messages:
-- wrk ... -s bench/wrk/list_messages.lua URL
package.path = "bench/wrk/?.lua;" .. package.path
local common = require("common")
common.authorize()

wrk.path = "/api/v1/messages?limit=50"

done = common.done
