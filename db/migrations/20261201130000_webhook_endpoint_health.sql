-- migrate:up
-- Endpoint health: the service disables a webhook whose endpoint answers 410 Gone, or whose every attempt
-- has failed for WEBHOOK_DISABLE_AFTER_FAILING_DAYS; the client re-enables it (PATCH {"active": true}).
ALTER TABLE webhooks
    -- The first failed attempt since the last successful one; NULL while the endpoint answers 2xx.
    ADD COLUMN failing_since   TIMESTAMPTZ,
    -- Why and since when the webhook is inactive: disabled by the service ('gone', 'failing') or by the
    -- client ('manual'); both NULL while it is active.
    ADD COLUMN disabled_reason TEXT CHECK (disabled_reason IN ('gone', 'failing', 'manual')),
    ADD COLUMN disabled_at     TIMESTAMPTZ;

-- Webhooks the clients had deactivated before the service kept reasons.
UPDATE webhooks SET disabled_reason = 'manual', disabled_at = updated_at WHERE NOT active;

ALTER TABLE webhooks ADD CONSTRAINT webhooks_disabled_check
    CHECK ((disabled_reason IS NULL) = active AND (disabled_at IS NULL) = active);

-- The fan-out reads a client's disabled webhooks too (their messages are recorded as not sent), through
-- webhooks_client_page_idx; the index of active ones alone serves nothing any more.
DROP INDEX webhooks_client_live_idx;

-- migrate:down
CREATE INDEX webhooks_client_live_idx ON webhooks (client_id) WHERE deleted_at IS NULL AND active;
ALTER TABLE webhooks
    DROP CONSTRAINT webhooks_disabled_check,
    DROP COLUMN disabled_at,
    DROP COLUMN disabled_reason,
    DROP COLUMN failing_since;
