-- migrate:up
-- A fan-out in progress holds a claim with a lease: a worker that dies mid-delivery stops renewing it,
-- and any worker takes the message over once the lease has lapsed (app/api/messaging/delivery_service.py).
ALTER TABLE messages
    -- The claim of the worker delivering the message right now; NULL while nobody holds it.
    ADD COLUMN claim_token UUID,
    -- Set while the fan-out is unfinished: until then the holder renews it; past it, anyone may take over.
    -- Without a holder (deferred first attempts), the time they are due.
    ADD COLUMN claimed_until TIMESTAMPTZ,
    -- The fan-out's webhooks without a recorded attempt yet (in flight, or deferred); NULL once none is left.
    ADD COLUMN unattempted_webhook_ids UUID[];

-- Workers' takeover sweep: unfinished fan-outs whose lease has lapsed.
CREATE INDEX messages_claimed_until_idx ON messages (claimed_until) WHERE claimed_until IS NOT NULL;

-- migrate:down
DROP INDEX messages_claimed_until_idx;
ALTER TABLE messages
    DROP COLUMN unattempted_webhook_ids,
    DROP COLUMN claimed_until,
    DROP COLUMN claim_token;
