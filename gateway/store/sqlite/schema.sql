-- version 1
CREATE TABLE IF NOT EXISTS messages (
    id           INTEGER PRIMARY KEY,
    sender       TEXT NOT NULL,
    control_id   TEXT NOT NULL,
    adapter      TEXT NOT NULL,
    message_type TEXT NOT NULL,
    peer         TEXT NOT NULL DEFAULT '',
    received_at  REAL NOT NULL,
    raw          BLOB NOT NULL,
    UNIQUE (sender, control_id)
);
CREATE TABLE IF NOT EXISTS events (
    seq          INTEGER PRIMARY KEY,
    event_id     TEXT NOT NULL UNIQUE,
    message_id   INTEGER NOT NULL REFERENCES messages(id),
    hospital_id  TEXT NOT NULL,
    kind         TEXT NOT NULL,
    occurred_at  TEXT NOT NULL,
    held         INTEGER NOT NULL DEFAULT 0,
    body         BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS events_held ON events (seq) WHERE held = 1;
CREATE TABLE IF NOT EXISTS outbox (
    id              INTEGER PRIMARY KEY,
    destination     TEXT NOT NULL,
    event_seq       INTEGER NOT NULL REFERENCES events(seq),
    unit            INTEGER NOT NULL DEFAULT 0,
    hospital_id     TEXT NOT NULL,
    stream          TEXT NOT NULL,
    msgid           TEXT NOT NULL,
    state           INTEGER NOT NULL DEFAULT 0,  -- 0 pending, 1 delivered, 2 dead letter
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_at      REAL NOT NULL,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    delivered_at    REAL,
    last_error      TEXT NOT NULL DEFAULT '',
    platform_ref    TEXT NOT NULL DEFAULT '',
    UNIQUE (destination, msgid)
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (destination, id) WHERE state = 0;
CREATE INDEX IF NOT EXISTS outbox_msgid ON outbox (hospital_id, msgid);
CREATE TABLE IF NOT EXISTS quarantine (
    id           INTEGER PRIMARY KEY,
    received_at  REAL NOT NULL,
    peer         TEXT NOT NULL,
    adapter      TEXT NOT NULL,
    reason       TEXT NOT NULL,
    raw          BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS unmapped (
    hospital_id   TEXT NOT NULL,
    item_code     TEXT NOT NULL,
    item_name     TEXT NOT NULL,
    specification TEXT NOT NULL,
    manufacturer  TEXT NOT NULL,
    occurrences   INTEGER NOT NULL,
    first_seen    REAL NOT NULL,
    last_seen     REAL NOT NULL,
    PRIMARY KEY (hospital_id, item_code)
);
