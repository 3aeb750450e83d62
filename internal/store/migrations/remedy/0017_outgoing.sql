-- Messages the bot sends through the send API (issue 17): one row per accepted
-- message, written in the transaction that queues it (queue_items, queue "outbound").
-- The outbound pipeline (internal/chat) owns the rows. A failed send is not a status
-- here: it is the message's pending dead letter (dead_letters, payload $.id), so a
-- replay makes it queued again without touching this table.
CREATE TABLE outgoing (
  id        TEXT PRIMARY KEY,      -- the WhatsApp message id, chosen before the first try
  idem_key  TEXT UNIQUE,           -- the client's idempotency key (NULL: none)
  chat      TEXT    NOT NULL,      -- the recipient JID
  status    TEXT    NOT NULL DEFAULT 'queued', -- queued | sent | delivered | read
  created   INTEGER NOT NULL,
  updated   INTEGER NOT NULL,
  sent_at   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX outgoing_chat ON outgoing(chat, created);
