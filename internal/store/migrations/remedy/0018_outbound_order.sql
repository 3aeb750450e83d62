-- The outbound queue keeps each chat's order (queue.Options.Group = "chat"): a claim
-- asks whether an earlier item of the same chat is still queued. This index answers
-- that in one lookup instead of a scan of the queue per candidate (with 2,000 items
-- queued, a scan made a claim take about a second). The expression never fails: a row
-- whose payload is not JSON (damaged; recovery quarantines it) must stay writable and
-- deletable, and json_extract alone would refuse it.
CREATE INDEX queue_items_chat ON queue_items(queue, (CASE WHEN json_valid(payload) THEN json_extract(payload, '$.chat') END), id);
