-- The fingerprint of a message queued with an idempotency key: the SHA-256 of what it
-- sends (recipient, text, quote, mentions, reaction, media), so that the key reused
-- for a different message is refused (422) instead of silently answering the first
-- message's id. '' for rows queued before: their repeats are taken as they were.
ALTER TABLE outgoing ADD COLUMN fingerprint TEXT NOT NULL DEFAULT '';
