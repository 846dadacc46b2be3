"""Numbered schema migrations of the PostgreSQL store, applied in order at start."""

from __future__ import annotations

__all__ = ["MIGRATIONS", "SCHEMA_VERSION"]

MIGRATIONS: dict[int, str] = {
    1: """
CREATE TABLE messages (
    id           BIGSERIAL PRIMARY KEY,
    sender       TEXT NOT NULL,
    control_id   TEXT NOT NULL,
    adapter      TEXT NOT NULL,
    message_type TEXT NOT NULL,
    peer         TEXT NOT NULL DEFAULT '',
    received_at  DOUBLE PRECISION NOT NULL,
    raw          BYTEA NOT NULL,
    UNIQUE (sender, control_id)
);
CREATE TABLE events (
    seq          BIGSERIAL PRIMARY KEY,
    event_id     TEXT NOT NULL UNIQUE,
    message_id   BIGINT NOT NULL REFERENCES messages(id),
    hospital_id  TEXT NOT NULL,
    kind         TEXT NOT NULL,
    occurred_at  TEXT NOT NULL,
    held         SMALLINT NOT NULL DEFAULT 0,
    body         BYTEA NOT NULL
);
CREATE INDEX events_held ON events (seq) WHERE held = 1;
CREATE TABLE outbox (
    id              BIGSERIAL PRIMARY KEY,
    destination     TEXT NOT NULL,
    event_seq       BIGINT NOT NULL REFERENCES events(seq),
    unit            INTEGER NOT NULL DEFAULT 0,
    hospital_id     TEXT NOT NULL,
    stream          TEXT NOT NULL,
    msgid           TEXT NOT NULL,
    state           SMALLINT NOT NULL DEFAULT 0,
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_at      DOUBLE PRECISION NOT NULL,
    next_attempt_at DOUBLE PRECISION NOT NULL DEFAULT 0,
    delivered_at    DOUBLE PRECISION,
    last_error      TEXT NOT NULL DEFAULT '',
    platform_ref    TEXT NOT NULL DEFAULT '',
    UNIQUE (destination, msgid)
);
CREATE INDEX outbox_group_pending ON outbox (destination, hospital_id, stream, id)
    WHERE state = 0;
CREATE INDEX outbox_msgid ON outbox (hospital_id, msgid);
CREATE TABLE outbox_groups (
    destination  TEXT NOT NULL,
    hospital_id  TEXT NOT NULL,
    stream       TEXT NOT NULL,
    owner        TEXT NOT NULL DEFAULT '',
    lease_until  DOUBLE PRECISION NOT NULL DEFAULT 0,
    PRIMARY KEY (destination, hospital_id, stream)
);
CREATE TABLE msgid_counter (
    hospital_id  TEXT PRIMARY KEY,
    last_second  BIGINT NOT NULL,
    last_seq     INTEGER NOT NULL
);
CREATE TABLE quarantine (
    id           BIGSERIAL PRIMARY KEY,
    received_at  DOUBLE PRECISION NOT NULL,
    peer         TEXT NOT NULL,
    adapter      TEXT NOT NULL,
    reason       TEXT NOT NULL,
    raw          BYTEA NOT NULL
);
CREATE TABLE unmapped (
    hospital_id   TEXT NOT NULL,
    item_code     TEXT NOT NULL,
    item_name     TEXT NOT NULL,
    specification TEXT NOT NULL,
    manufacturer  TEXT NOT NULL,
    occurrences   INTEGER NOT NULL,
    first_seen    DOUBLE PRECISION NOT NULL,
    last_seen     DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (hospital_id, item_code)
);
""",
    # which replica delivered a row: takeover after a crash is visible in the data
    2: "ALTER TABLE outbox ADD COLUMN delivered_by TEXT NOT NULL DEFAULT '';",
    # live replicas, so that each claims a fair share of the groups
    3: "CREATE TABLE replicas (owner TEXT PRIMARY KEY,"
       " seen_until DOUBLE PRECISION NOT NULL);",
    # when an event's delivery first failed (charged): the time-based retry budget
    4: "ALTER TABLE outbox ADD COLUMN first_failed_at DOUBLE PRECISION;",
    # one source of truth: crosswalk, catalogs, ledger and CDS state move into the store
    5: """
CREATE TABLE state_heads (topic TEXT PRIMARY KEY, version BIGINT NOT NULL);
INSERT INTO state_heads VALUES ('crosswalk', 0), ('catalog', 0), ('ledger', 0);
CREATE TABLE crosswalk_entries (
    hospital_id   TEXT NOT NULL,
    item_code     TEXT NOT NULL,
    valid_from    TEXT NOT NULL,
    national_code TEXT NOT NULL,
    item_name     TEXT NOT NULL,
    hospital_unit TEXT NOT NULL,
    national_unit TEXT NOT NULL,
    factor        TEXT NOT NULL,
    valid_to      TEXT NOT NULL,
    PRIMARY KEY (hospital_id, item_code, valid_from)
);
CREATE INDEX crosswalk_entries_code ON crosswalk_entries (national_code);
CREATE TABLE crosswalk_audit (
    id          BIGSERIAL PRIMARY KEY,
    at          TEXT NOT NULL,
    user_name   TEXT NOT NULL,
    action      TEXT NOT NULL,
    hospital_id TEXT NOT NULL,
    item_code   TEXT NOT NULL,
    record      BYTEA NOT NULL
);
CREATE INDEX crosswalk_audit_item ON crosswalk_audit (hospital_id, item_code, id);
CREATE TABLE catalog_versions (
    kind        TEXT NOT NULL,
    version     TEXT NOT NULL,
    position    BIGINT NOT NULL,
    imported_at TEXT NOT NULL,
    entries     INTEGER NOT NULL,
    source      TEXT NOT NULL,
    body        BYTEA NOT NULL,
    PRIMARY KEY (kind, version)
);
CREATE TABLE ledger_pending (seq BIGINT PRIMARY KEY);
INSERT INTO ledger_pending SELECT seq FROM events WHERE held = 0;
-- events the ledger could not fold, with the reason, until an operator folds them again
CREATE TABLE ledger_poison (
    seq BIGINT PRIMARY KEY, reason TEXT NOT NULL, at DOUBLE PRECISION NOT NULL);
CREATE TABLE ledger_contracts (
    contract_id TEXT PRIMARY KEY, body BYTEA NOT NULL, imported_at TEXT NOT NULL);
CREATE TABLE ledger_daily (
    hospital_id TEXT NOT NULL, national_code TEXT NOT NULL, kind TEXT NOT NULL,
    day TEXT NOT NULL, online SMALLINT NOT NULL, qty BIGINT NOT NULL, amount BIGINT NOT NULL,
    PRIMARY KEY (hospital_id, national_code, kind, day, online));
CREATE TABLE ledger_stock (
    hospital_id TEXT NOT NULL, national_code TEXT NOT NULL, qty BIGINT NOT NULL,
    PRIMARY KEY (hospital_id, national_code));
CREATE TABLE ledger_deadlines (
    hospital_id TEXT NOT NULL, kind TEXT NOT NULL, ref TEXT NOT NULL,
    opened_at TEXT NOT NULL, due_at TEXT NOT NULL, closed_at TEXT, reminded_at TEXT,
    detail BYTEA NOT NULL, PRIMARY KEY (hospital_id, kind, ref));
CREATE TABLE ledger_price_flags (
    event_id TEXT NOT NULL, seq INTEGER NOT NULL, hospital_id TEXT NOT NULL,
    national_code TEXT NOT NULL, day TEXT NOT NULL, price TEXT NOT NULL,
    winning_price TEXT NOT NULL, PRIMARY KEY (event_id, seq));
CREATE TABLE ledger_trace (
    hospital_id TEXT NOT NULL, code TEXT NOT NULL, event_id TEXT NOT NULL,
    national_code TEXT NOT NULL, day TEXT NOT NULL, PRIMARY KEY (hospital_id, code));
CREATE TABLE ledger_trace_flags (
    hospital_id TEXT NOT NULL, code TEXT NOT NULL, first_event TEXT NOT NULL,
    first_day TEXT NOT NULL, event_id TEXT NOT NULL, day TEXT NOT NULL,
    national_code TEXT NOT NULL, PRIMARY KEY (hospital_id, code, event_id));
-- notices (webhooks) already sent by some replica: each is sent once
CREATE TABLE ledger_notices (
    kind TEXT NOT NULL, key TEXT NOT NULL, at DOUBLE PRECISION NOT NULL, PRIMARY KEY (kind, key));
CREATE TABLE ledger_changes (
    version BIGINT PRIMARY KEY, at DOUBLE PRECISION NOT NULL, body BYTEA NOT NULL);
CREATE TABLE cds_cards (
    uuid TEXT PRIMARY KEY, service TEXT NOT NULL, hospital_id TEXT NOT NULL,
    doctor TEXT NOT NULL, department TEXT NOT NULL, rule_id TEXT NOT NULL,
    national_code TEXT NOT NULL, suggestions BYTEA NOT NULL, issued_at TEXT NOT NULL);
CREATE TABLE cds_feedback (
    card TEXT NOT NULL, outcome TEXT NOT NULL, reason_code TEXT NOT NULL,
    reason_display TEXT NOT NULL, comment TEXT NOT NULL, accepted BYTEA NOT NULL,
    at TEXT NOT NULL, PRIMARY KEY (card, outcome));
CREATE TABLE cds_jti (
    iss TEXT NOT NULL, jti TEXT NOT NULL, exp DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (iss, jti));
CREATE INDEX cds_jti_exp ON cds_jti (exp);
""",
    # who changed what: append-only, each entry hash-chained to the one before it
    6: """
CREATE TABLE audit_log (
    id          BIGINT PRIMARY KEY,  -- set by the appender under its lock: no gaps
    at          TEXT NOT NULL,       -- UTC, fixed width (text order is time order)
    identity    TEXT NOT NULL,
    role        TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    hospital_id TEXT NOT NULL,
    before      TEXT,                -- JSON, NULL where there was nothing
    after       TEXT,
    detail      TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);
""",
    # a message's SHA-256: the same control id with other bytes is refused, not a resend
    7: "ALTER TABLE messages ADD COLUMN raw_sha256 BYTEA;"
       " UPDATE messages SET raw_sha256 = sha256(raw);",
    # retention: raw bytes dropped once every event of the message is delivered (the row
    # stays for duplicate detection); a quarantined message's size before truncation
    8: """
ALTER TABLE messages ADD COLUMN raw_purged_at DOUBLE PRECISION;
CREATE INDEX messages_unpurged ON messages (received_at) WHERE raw_purged_at IS NULL;
CREATE INDEX events_message ON events (message_id);
CREATE INDEX outbox_unfinished ON outbox (event_seq) WHERE state <> 1;
ALTER TABLE quarantine ADD COLUMN original_size BIGINT;
UPDATE quarantine SET original_size = octet_length(raw);
CREATE INDEX quarantine_received ON quarantine (received_at);
""",
    # CDS feedback is each card's history: a later answer no longer replaces an earlier one
    # (an override's reason stays); an identical resend is kept once
    9: """
CREATE TABLE cds_feedback_history (
    id BIGSERIAL PRIMARY KEY, card TEXT NOT NULL, outcome TEXT NOT NULL,
    reason_code TEXT NOT NULL, reason_display TEXT NOT NULL, comment TEXT NOT NULL,
    accepted BYTEA NOT NULL, at TEXT NOT NULL,
    UNIQUE (card, outcome, at, reason_code, reason_display, comment));
INSERT INTO cds_feedback_history
    (card, outcome, reason_code, reason_display, comment, accepted, at)
    SELECT card, outcome, reason_code, reason_display, comment, accepted, at
    FROM cds_feedback ORDER BY at, card;
DROP TABLE cds_feedback;
ALTER TABLE cds_feedback_history RENAME TO cds_feedback;
""",
    # the message browser: each request to a platform and its answer (the newest 50 per
    # outbox row), and messages found by control id whatever their sender
    10: """
CREATE TABLE delivery_attempts (
    id          BIGSERIAL PRIMARY KEY,
    outbox_id   BIGINT NOT NULL,
    at          DOUBLE PRECISION NOT NULL,
    outcome     TEXT NOT NULL,      -- delivered | retry | rejected
    http_status INTEGER,            -- NULL: no HTTP answer (timeout, refused connection)
    code        TEXT NOT NULL,      -- the platform's business code (infcode …)
    message     TEXT NOT NULL,
    latency_ms  DOUBLE PRECISION NOT NULL
);
CREATE INDEX delivery_attempts_outbox ON delivery_attempts (outbox_id, id);
CREATE INDEX messages_control ON messages (control_id);
""",
    # ordering as data: rows with the same key (per destination and hospital) go out in
    # order, others concurrently. Leases are taken on lanes (a key's rows share a lane)
    # instead of streams; rows queued before keep FIFO per stream in lane 0.
    # Stop every replica of the old version before this runs.
    11: """
ALTER TABLE outbox ADD COLUMN order_key TEXT NOT NULL DEFAULT '';
ALTER TABLE outbox ADD COLUMN order_scope TEXT NOT NULL DEFAULT '';
ALTER TABLE outbox ADD COLUMN lane SMALLINT NOT NULL DEFAULT 0;
UPDATE outbox SET order_key = stream, order_scope = stream;
CREATE INDEX outbox_key_open ON outbox (destination, hospital_id, order_scope, id)
    WHERE state <> 1;
CREATE INDEX outbox_lane_pending ON outbox (destination, hospital_id, lane, id)
    WHERE state = 0;
CREATE TABLE outbox_lanes (
    destination  TEXT NOT NULL,
    hospital_id  TEXT NOT NULL,
    lane         SMALLINT NOT NULL,
    owner        TEXT NOT NULL DEFAULT '',
    lease_until  DOUBLE PRECISION NOT NULL DEFAULT 0,
    PRIMARY KEY (destination, hospital_id, lane)
);
INSERT INTO outbox_lanes (destination, hospital_id, lane)
    SELECT DISTINCT destination, hospital_id, 0 FROM outbox WHERE state = 0;
DROP TABLE outbox_groups;
-- held = 2: mapped, waiting for a platform's mandatory data (already in the ledger)
DROP INDEX IF EXISTS events_held;
CREATE INDEX events_held ON events (seq) WHERE held <> 0;
""",
    # R14: every sale and return of a traceability code, with the part of its package
    # (millionths of minimum units; a return below zero), numbered in the order folded,
    # not only the first sale: a return gives the code back and a split package is sold
    # in parts. Codes stored before were sold whole.
    12: """
CREATE TABLE ledger_trace_parts (
    n BIGSERIAL, hospital_id TEXT NOT NULL, code TEXT NOT NULL, event_id TEXT NOT NULL,
    national_code TEXT NOT NULL, day TEXT NOT NULL, qty BIGINT NOT NULL,
    package BIGINT NOT NULL, PRIMARY KEY (hospital_id, code, event_id));
INSERT INTO ledger_trace_parts (hospital_id, code, event_id, national_code, day, qty, package)
    SELECT hospital_id, code, event_id, national_code, day, 1000000, 1000000
    FROM ledger_trace ORDER BY day, code;
DROP TABLE ledger_trace;
ALTER TABLE ledger_trace_parts RENAME TO ledger_trace;
""",
    # a close (payment, supplier's answer, filing) folded before the event that opens its
    # deadline, e.g. a receipt held for 对码: the deadline opens closed at this time
    13: """
CREATE TABLE ledger_early_closes (
    hospital_id TEXT NOT NULL, kind TEXT NOT NULL, ref TEXT NOT NULL,
    closed_at TEXT NOT NULL, PRIMARY KEY (hospital_id, kind, ref));
""",
    # drug sales without traceability codes once they were mandatory (ledger report)
    14: """
CREATE TABLE ledger_untraced (
    event_id TEXT NOT NULL, line INTEGER NOT NULL, hospital_id TEXT NOT NULL,
    national_code TEXT NOT NULL, day TEXT NOT NULL, PRIMARY KEY (event_id, line));
CREATE INDEX ledger_untraced_hospital ON ledger_untraced (hospital_id, day);
""",
    # the rows that may hold others of their scope up (gateway.store.query.UNBLOCKED)
    15: """
CREATE INDEX outbox_blocking ON outbox (destination, hospital_id, order_scope, id)
    WHERE state = 2 OR (state = 0 AND next_attempt_at > 0);
""",
}
SCHEMA_VERSION = max(MIGRATIONS)
