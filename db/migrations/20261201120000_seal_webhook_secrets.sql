-- migrate:up
-- Signing secrets are stored sealed (AES-256-GCM, app/core/encryption.py) with the id of the key that sealed
-- them, and a rotated-out secret is kept, sealed too, until its overlap window ends.
ALTER TABLE webhooks
    ADD COLUMN secret_key_id               TEXT,
    ADD COLUMN secret_ciphertext           BYTEA,
    ADD COLUMN previous_secret_key_id      TEXT,
    ADD COLUMN previous_secret_ciphertext  BYTEA,
    ADD COLUMN previous_secret_expires_at  TIMESTAMPTZ;

-- SQL cannot seal (the key is the application's): secrets stored before this migration are marked
-- 'unsealed' and sealed under the current key by `python -m scripts.reseal_webhook_secrets` (run it next).
UPDATE webhooks SET secret_key_id = 'unsealed', secret_ciphertext = convert_to(secret, 'UTF8');

ALTER TABLE webhooks
    ALTER COLUMN secret_key_id SET NOT NULL,
    ALTER COLUMN secret_ciphertext SET NOT NULL,
    DROP COLUMN secret,
    ADD CONSTRAINT webhooks_previous_secret_complete CHECK (
        (previous_secret_key_id IS NULL) = (previous_secret_ciphertext IS NULL)
        AND (previous_secret_key_id IS NULL) = (previous_secret_expires_at IS NULL)
    );

-- migrate:down
ALTER TABLE webhooks ADD COLUMN secret TEXT;
-- Only values never sealed can be given back; sealed ones need the application key, so the way down refuses
-- them rather than lose every webhook's secret.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM webhooks WHERE secret_key_id <> 'unsealed') THEN
        RAISE EXCEPTION 'webhooks hold sealed secrets: going down would lose them';
    END IF;
END $$;
UPDATE webhooks SET secret = convert_from(secret_ciphertext, 'UTF8');
ALTER TABLE webhooks
    ALTER COLUMN secret SET NOT NULL,
    DROP CONSTRAINT webhooks_previous_secret_complete,
    DROP COLUMN secret_key_id,
    DROP COLUMN secret_ciphertext,
    DROP COLUMN previous_secret_key_id,
    DROP COLUMN previous_secret_ciphertext,
    DROP COLUMN previous_secret_expires_at;
