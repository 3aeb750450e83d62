-- Raw samples, kept for 48 hours by default.
CREATE TABLE samples (
  ts    INTEGER NOT NULL, -- unix milliseconds
  name  TEXT    NOT NULL,
  value REAL    NOT NULL
);
CREATE INDEX samples_ts ON samples(ts);

-- One-minute rollups of older samples, kept for 30 days by default.
CREATE TABLE samples_1m (
  minute INTEGER NOT NULL, -- unix milliseconds at the start of the minute
  name   TEXT    NOT NULL,
  avg    REAL    NOT NULL,
  min    REAL    NOT NULL,
  max    REAL    NOT NULL,
  n      INTEGER NOT NULL,
  PRIMARY KEY (minute, name)
);
