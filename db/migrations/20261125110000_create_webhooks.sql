-- migrate:up
CREATE TABLE webhooks (
    id          UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    client_id   TEXT NOT NULL,
    url         TEXT NOT NULL,
    events      TEXT[] NOT NULL,
    description TEXT,
    active      BOOLEAN NOT NULL DEFAULT TRUE,
    secret      TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at  TIMESTAMPTZ
);

-- Listing a client's webhooks, newest first (keyset pagination).
CREATE INDEX webhooks_client_page_idx ON webhooks (client_id, created_at DESC, id DESC)
    WHERE deleted_at IS NULL;
-- Fan-out: a client's live webhooks subscribed to an event.
CREATE INDEX webhooks_client_live_idx ON webhooks (client_id) WHERE deleted_at IS NULL AND active;

-- migrate:down
DROP TABLE webhooks;
