-- 0018's first version indexed json_extract(payload, '$.chat') unguarded, which made a
-- row with a damaged payload impossible to insert or delete. Rebuilt with the guard
-- (a no-op where 0018 already made the guarded index).
DROP INDEX IF EXISTS queue_items_chat;
CREATE INDEX queue_items_chat ON queue_items(queue, (CASE WHEN json_valid(payload) THEN json_extract(payload, '$.chat') END), id);
