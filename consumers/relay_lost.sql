-- What the reconciler publishes again for one consumer group: events of its types that were
-- published before %(before)s and that it has not recorded in consumed_event (Redis lost them:
-- an empty restart, or a trimmed entry), oldest first, from %(after)s on (a cursor).
-- Parameters: %(consumer)s text (consumed_event.consumer), %(types)s text[], %(before)s and
--   %(after)s timestamptz, %(limit)s rows at most.
-- Output: id uuid, type text, version smallint, payload jsonb, created_at timestamptz,
--   published_at timestamptz (the cursor of the next call).
-- Index: ix_outbox_published (published_at) WHERE published_at IS NOT NULL (migration 0008),
--   and pk_consumed_event (consumer, event_id) for the anti-join.
SELECT o.id, o.type, o.version, o.payload, o.created_at, o.published_at
  FROM outbox AS o
 WHERE o.published_at IS NOT NULL
   AND o.published_at < %(before)s
   AND o.published_at >= %(after)s
   AND o.type = ANY(%(types)s::text[])
   AND NOT EXISTS (
         SELECT 1 FROM consumed_event AS c
          WHERE c.consumer = %(consumer)s AND c.event_id = o.id)
 ORDER BY o.published_at
 LIMIT %(limit)s
