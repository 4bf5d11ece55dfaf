-- migrate:up transaction:false
-- Retention: housekeeping deletes finished messages by age, a batch at a time. CONCURRENTLY builds the index
-- without blocking writes to messages; it cannot run in a transaction, so this file holds this one statement.
CREATE INDEX CONCURRENTLY messages_finished_idx ON messages (updated_at)
    WHERE status IN ('delivered', 'failed', 'partially_failed');

-- migrate:down transaction:false
DROP INDEX CONCURRENTLY messages_finished_idx;
