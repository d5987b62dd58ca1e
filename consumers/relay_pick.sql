-- The relay's next batch: the oldest unpublished outbox rows, locked, skipping rows another
-- relay holds (several relays may run; each row goes out in one of their transactions).
-- Parameters: %(limit)s rows at most.
-- Output: id uuid, type text, version smallint, payload jsonb, created_at timestamptz.
-- Index: ix_outbox_unpublished (created_at) WHERE published_at IS NULL.
SELECT id, type, version, payload, created_at
  FROM outbox
 WHERE published_at IS NULL
 ORDER BY created_at
 LIMIT %(limit)s
   FOR UPDATE SKIP LOCKED
