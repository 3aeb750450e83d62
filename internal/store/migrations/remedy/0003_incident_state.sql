-- Acknowledgements belong to an incident (policy + instance labels): one row per open
-- incident, deleted when the incident resolves, so an ack never outlives it.
CREATE TABLE acks (
  fingerprint TEXT    PRIMARY KEY,
  alert_id    INTEGER NOT NULL,
  severity    TEXT    NOT NULL,
  acked_by    TEXT    NOT NULL,
  ts          INTEGER NOT NULL
);
-- The acks of incidents still open when this migration runs (the latest alert of the
-- fingerprint is not a resolution); severities compared by rank.
INSERT OR IGNORE INTO acks(fingerprint, alert_id, severity, acked_by, ts)
  SELECT a.fingerprint, a.id, a.severity, a.acked_by, a.acked_at FROM alerts a
  WHERE a.acked_at > 0
    AND NOT EXISTS (SELECT 1 FROM alerts r WHERE r.fingerprint = a.fingerprint AND r.state = 'resolved' AND r.id > a.id)
  ORDER BY CASE a.severity WHEN 'critical' THEN 4 WHEN 'error' THEN 3 WHEN 'warning' THEN 2 ELSE 1 END DESC;

-- An instant policy's alert is an occurrence, not an incident: it never gets a resolution.
ALTER TABLE alerts ADD COLUMN instant INTEGER NOT NULL DEFAULT 0;
CREATE INDEX alerts_state ON alerts(fingerprint, state, id);

-- The engine's state (engine.Snapshot as JSON), one row, written by the daemon's state
-- writer and read at start.
CREATE TABLE engine_state (
  id    INTEGER PRIMARY KEY CHECK (id = 1),
  ts    INTEGER NOT NULL,
  body  TEXT    NOT NULL
);

-- Alerts stored before this version are history only: their incidents are not known
-- (the engine kept no state across restarts either), so none is taken for open.
UPDATE alerts SET instant = 1;
