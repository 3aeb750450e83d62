-- Why an alert was not sent (silenced by #id, inhibited by policy, acknowledged); the
-- alert row is kept either way, so the dashboard shows everything that happened.
ALTER TABLE alerts ADD COLUMN held TEXT NOT NULL DEFAULT '';
ALTER TABLE alerts ADD COLUMN reason TEXT NOT NULL DEFAULT '';
ALTER TABLE alerts ADD COLUMN repeat INTEGER NOT NULL DEFAULT 0;

-- The daily reports, for the dashboard.
CREATE TABLE reports (
  id      INTEGER PRIMARY KEY AUTOINCREMENT,
  ts      INTEGER NOT NULL,
  since   INTEGER NOT NULL,
  body    TEXT    NOT NULL
);
