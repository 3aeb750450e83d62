-- The engine's input history (for replay) and its decisions.
CREATE TABLE events (
  id      INTEGER PRIMARY KEY,
  ts      INTEGER NOT NULL,            -- unix milliseconds
  code    TEXT    NOT NULL,
  source  TEXT    NOT NULL DEFAULT '',
  labels  TEXT    NOT NULL DEFAULT '{}', -- JSON object
  message TEXT    NOT NULL DEFAULT '',
  value   REAL    NOT NULL DEFAULT 0
);
CREATE INDEX events_ts ON events(ts);
CREATE INDEX events_code_ts ON events(code, ts);

CREATE TABLE decisions (
  id          INTEGER PRIMARY KEY,
  decision_id INTEGER NOT NULL,
  ts          INTEGER NOT NULL,
  kind        TEXT    NOT NULL,
  policy      TEXT    NOT NULL,
  instance    TEXT    NOT NULL DEFAULT '',
  state       TEXT    NOT NULL DEFAULT '',
  severity    TEXT    NOT NULL DEFAULT '',
  reason      TEXT    NOT NULL DEFAULT '',
  payload     TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX decisions_ts ON decisions(ts);
CREATE INDEX decisions_policy ON decisions(policy, ts);

-- One row per recovery attempt.
CREATE TABLE audit (
  id          INTEGER PRIMARY KEY,
  ts          INTEGER NOT NULL,
  policy      TEXT    NOT NULL,
  instance    TEXT    NOT NULL DEFAULT '',
  decision_id INTEGER NOT NULL DEFAULT 0,
  action      TEXT    NOT NULL,
  step        INTEGER NOT NULL DEFAULT 0,
  attempt     INTEGER NOT NULL DEFAULT 0,
  params      TEXT    NOT NULL DEFAULT '{}',
  duration_ms INTEGER NOT NULL DEFAULT 0,
  outcome     TEXT    NOT NULL DEFAULT '',
  error       TEXT    NOT NULL DEFAULT '',
  output      TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX audit_ts ON audit(ts);

CREATE TABLE alerts (
  id          INTEGER PRIMARY KEY,
  fingerprint TEXT    NOT NULL,
  ts          INTEGER NOT NULL,
  policy      TEXT    NOT NULL,
  instance    TEXT    NOT NULL DEFAULT '',
  severity    TEXT    NOT NULL,
  state       TEXT    NOT NULL,
  summary     TEXT    NOT NULL DEFAULT '',
  labels      TEXT    NOT NULL DEFAULT '{}',
  annotations TEXT    NOT NULL DEFAULT '{}',
  suppressed  INTEGER NOT NULL DEFAULT 0,
  acked_by    TEXT    NOT NULL DEFAULT '',
  acked_at    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX alerts_fp ON alerts(fingerprint, ts);

-- Alerts waiting for a channel; a row stays until it is delivered.
CREATE TABLE alert_outbox (
  id           INTEGER PRIMARY KEY,
  alert_id     INTEGER NOT NULL REFERENCES alerts(id),
  channel      TEXT    NOT NULL,
  payload      TEXT    NOT NULL DEFAULT '{}',
  attempts     INTEGER NOT NULL DEFAULT 0,
  next_attempt INTEGER NOT NULL DEFAULT 0,
  last_error   TEXT    NOT NULL DEFAULT '',
  created      INTEGER NOT NULL,
  delivered    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX alert_outbox_pending ON alert_outbox(delivered, next_attempt);

CREATE TABLE silences (
  id       INTEGER PRIMARY KEY,
  matchers TEXT    NOT NULL DEFAULT '{}',
  starts   INTEGER NOT NULL,
  ends     INTEGER NOT NULL,
  author   TEXT    NOT NULL DEFAULT '',
  reason   TEXT    NOT NULL DEFAULT '',
  created  INTEGER NOT NULL
);

-- AUTOINCREMENT: an item id is never reused, so handlers can use it as an idempotency
-- key and dead letters can name the item they came from.
CREATE TABLE queue_items (
  id           INTEGER PRIMARY KEY AUTOINCREMENT,
  queue        TEXT    NOT NULL,
  payload      TEXT    NOT NULL DEFAULT '{}',
  state        TEXT    NOT NULL DEFAULT 'ready', -- ready | working
  attempts     INTEGER NOT NULL DEFAULT 0,
  enqueued     INTEGER NOT NULL,
  updated      INTEGER NOT NULL,
  available_at INTEGER NOT NULL DEFAULT 0,
  last_error   TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX queue_items_next ON queue_items(queue, state, available_at, id);

CREATE TABLE dead_letters (
  id       INTEGER PRIMARY KEY AUTOINCREMENT,
  queue    TEXT    NOT NULL,
  item_id  INTEGER NOT NULL,
  payload  TEXT    NOT NULL DEFAULT '{}',
  reason   TEXT    NOT NULL DEFAULT '',
  attempts INTEGER NOT NULL DEFAULT 0,
  enqueued INTEGER NOT NULL,
  dead_at  INTEGER NOT NULL,
  replayed INTEGER NOT NULL DEFAULT 0
);

-- Bot conversation and session state.
CREATE TABLE state (
  key     TEXT PRIMARY KEY,
  kind    TEXT    NOT NULL DEFAULT '',
  data    TEXT    NOT NULL DEFAULT '{}',
  updated INTEGER NOT NULL
);

-- Rows that could not be kept where they were (unparseable JSON, rows salvaged from a
-- corrupt file that no longer fit). Never deleted by remedy.
CREATE TABLE quarantine (
  id     INTEGER PRIMARY KEY,
  ts     INTEGER NOT NULL,
  tbl    TEXT    NOT NULL,
  row_id INTEGER NOT NULL,
  data   TEXT    NOT NULL,
  reason TEXT    NOT NULL
);
