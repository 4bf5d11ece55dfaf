-- POST /api/v1/messages with a small JSON message: wrk ... -s bench/wrk/post_message.lua URL
package.path = "bench/wrk/?.lua;" .. package.path
local common = require("common")
common.authorize()

wrk.method = "POST"
wrk.path = "/api/v1/messages"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"event":"order.created","payload":{"order_id":42,"amount_cents":1999,"currency":"EUR"}}'

done = common.done
