-- migrate:up
CREATE TABLE deliveries (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    message_id      UUID NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    webhook_id      UUID NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    attempt         INTEGER NOT NULL CHECK (attempt >= 1),
    status          TEXT NOT NULL CHECK (status IN ('succeeded', 'failed')),
    response_status INTEGER,
    error           TEXT,
    duration_ms     INTEGER NOT NULL,
    -- Set while a retry of this failed attempt is scheduled, on the webhook's latest attempt only;
    -- NULL once the outcome is final or a later attempt has been recorded.
    next_attempt_at TIMESTAMPTZ,
    -- The last attempt number the scheduled retries may reach (the retry budget), so that housekeeping
    -- re-queues a lost retry with the budget it was scheduled with; NULL when no retry was scheduled.
    last_attempt    INTEGER,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT deliveries_last_attempt_check CHECK (last_attempt > attempt)
);

-- A message's attempts, newest first (keyset pagination).
CREATE INDEX deliveries_message_page_idx ON deliveries (message_id, created_at DESC, id DESC);
-- Each webhook's latest attempt for a message (status summary, retries); an attempt is recorded once.
CREATE UNIQUE INDEX deliveries_message_webhook_attempt_idx ON deliveries (message_id, webhook_id, attempt DESC);
CREATE INDEX deliveries_webhook_idx ON deliveries (webhook_id);
-- Housekeeping: retries whose task was lost.
CREATE INDEX deliveries_next_attempt_idx ON deliveries (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
-- Housekeeping: purge rows past the retention period.
CREATE INDEX deliveries_created_at_idx ON deliveries (created_at);

-- migrate:down
DROP TABLE deliveries;
