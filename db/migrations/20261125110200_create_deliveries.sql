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
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- A message's attempts, newest first (keyset pagination).
CREATE INDEX deliveries_message_page_idx ON deliveries (message_id, created_at DESC, id DESC);
CREATE INDEX deliveries_webhook_idx ON deliveries (webhook_id);
-- Housekeeping: purge rows past the retention period.
CREATE INDEX deliveries_created_at_idx ON deliveries (created_at);

-- migrate:down
DROP TABLE deliveries;
