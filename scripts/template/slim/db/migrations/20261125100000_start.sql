-- migrate:up
-- The schema starts empty: `make domain name=...` and `make migration name=...` add the tables.
SELECT 1;

-- migrate:down
SELECT 1;
