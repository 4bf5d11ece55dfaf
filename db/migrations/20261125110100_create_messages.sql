-- migrate:up
CREATE TABLE messages (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    client_id       TEXT NOT NULL,
    event           TEXT NOT NULL,
    payload         JSONB NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'delivering', 'delivered', 'failed', 'partially_failed')),
    idempotency_key TEXT,
    request_hash    TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One message per (client, Idempotency-Key).
CREATE UNIQUE INDEX messages_client_idempotency_key_idx ON messages (client_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- Listing a client's messages newest first, optionally filtered by event or status.
CREATE INDEX messages_client_page_idx ON messages (client_id, created_at DESC, id DESC);
CREATE INDEX messages_client_event_page_idx ON messages (client_id, event, created_at DESC, id DESC);
CREATE INDEX messages_client_status_page_idx ON messages (client_id, status, created_at DESC, id DESC);
-- Housekeeping: messages whose fan-out never ran.
CREATE INDEX messages_unfinished_idx ON messages (status, updated_at) WHERE status IN ('pending', 'delivering');

-- migrate:down
DROP TABLE messages;
