-- The session (WhatsApp number) that queued the message, so that its status names it
-- once it left every queue, or when its session was removed by a reload. '' for rows
-- queued before sessions: the session "default".
ALTER TABLE outgoing ADD COLUMN session TEXT NOT NULL DEFAULT '';
