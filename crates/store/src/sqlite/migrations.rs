//! The SQLite schema: every migration in order, applied by `rusqlite_migration` (versioned
//! through `PRAGMA user_version`). A migration is never edited once released; a change is a
//! new one at the end, with a comment saying what it is for.

use rusqlite_migration::M;

pub(super) const MIGRATIONS: &[M<'static>] = &[
    M::up(
        r#"
CREATE TABLE items (
    id TEXT PRIMARY KEY,
    channel TEXT NOT NULL,
    upstream_id TEXT NOT NULL,
    source TEXT NOT NULL,
    received_at TEXT NOT NULL,
    category TEXT,
    stage TEXT NOT NULL,
    envelope TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
CREATE TABLE cursors (
    source TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
CREATE TABLE routing_decisions (
    item_id TEXT NOT NULL REFERENCES items(id),
    rule_id TEXT NOT NULL,
    rules_version TEXT NOT NULL,
    lead TEXT NOT NULL,
    assists TEXT NOT NULL,
    decided_at TEXT NOT NULL,
    PRIMARY KEY (item_id, decided_at)
);
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    msg_key TEXT NOT NULL,
    ce_id TEXT NOT NULL,
    headers TEXT NOT NULL,
    payload BLOB NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending','delivered','dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    partition INTEGER,
    offset INTEGER,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    done_at TEXT,
    UNIQUE (topic, ce_id)
);
CREATE INDEX outbox_pending ON outbox(seq) WHERE state = 'pending';
CREATE TABLE topic_positions (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
);
CREATE TABLE sla_clocks (
    item_id TEXT NOT NULL REFERENCES items(id),
    clock_id TEXT NOT NULL,
    state TEXT NOT NULL,
    started_at TEXT NOT NULL,
    due_at TEXT NOT NULL,
    paused_at TEXT,
    remaining_secs INTEGER,
    PRIMARY KEY (item_id, clock_id)
);
CREATE TABLE quarantine (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    reference TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    raw_ref TEXT NOT NULL,
    size INTEGER NOT NULL,
    at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
"#,
    ),
    M::up(
        r#"
ALTER TABLE sla_clocks ADD COLUMN department TEXT NOT NULL DEFAULT '';
ALTER TABLE sla_clocks ADD COLUMN extended_days INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sla_clocks ADD COLUMN last_alert_at TEXT;
ALTER TABLE sla_clocks ADD COLUMN next_alert_ms INTEGER;
CREATE INDEX sla_clocks_next ON sla_clocks(next_alert_ms) WHERE next_alert_ms IS NOT NULL;
CREATE TABLE alerts (
    id TEXT PRIMARY KEY,
    item_id TEXT NOT NULL,
    clock_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    department TEXT NOT NULL,
    due_at TEXT NOT NULL,
    scheduled_at TEXT NOT NULL,
    fired_at TEXT NOT NULL,
    late INTEGER NOT NULL
);
CREATE TABLE mail_outbox (
    alert_id TEXT PRIMARY KEY,
    recipients TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending','sending','sent','unknown','failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    sent_at TEXT
);
CREATE TABLE status_events (
    event_id TEXT PRIMARY KEY,
    item_id TEXT NOT NULL,
    event TEXT NOT NULL,
    at TEXT NOT NULL,
    applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
"#,
    ),
    // v3: the upstream version of an item (HTTP channels), to tell an update from a re-poll.
    M::up(
        r#"
ALTER TABLE items ADD COLUMN upstream_version TEXT;
CREATE INDEX quarantine_source_raw ON quarantine(source, raw_ref);
"#,
    ),
    // v4: the repeat-petition index. person_key is a keyed hash (HMAC-SHA256, hex) of a
    // normalised ID number or mobile, never the value; one row per (key, item).
    M::up(
        r#"
CREATE TABLE person_items (
    person_key TEXT NOT NULL,
    item_id TEXT NOT NULL REFERENCES items(id),
    matter TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    PRIMARY KEY (person_key, item_id)
);
CREATE INDEX person_items_matter ON person_items(person_key, matter, received_ms);
"#,
    ),
    // v5: the SLA board. `due_ms` (the due instant in ms: exact order, where RFC 3339 text
    // with a varying number of fraction digits is not) and `alerted` (`last_alert_at` is set)
    // are plain columns written with every clock (SQLite does not treat an index on virtual
    // generated columns as covering, and the counts must not touch the table); existing rows
    // are filled here from the same values. The partial indexes hold open clocks only
    // (stopped ones, the majority over time, cost nothing) and cover the board's counts; the
    // clock lists are read per clock id from them, so every read is an index range + LIMIT.
    // Alerts are read newest first by rowid (insertion order), filtered as read: no index on
    // alerts, which the timer engine would maintain on every alert.
    M::up(
        r#"
ALTER TABLE sla_clocks ADD COLUMN due_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sla_clocks ADD COLUMN alerted INTEGER NOT NULL DEFAULT 0;
UPDATE sla_clocks SET
    due_ms = CAST(round((julianday(due_at) - 2440587.5) * 86400000.0) AS INTEGER),
    alerted = (last_alert_at IS NOT NULL);
CREATE INDEX sla_clocks_board_clock
    ON sla_clocks(clock_id, state, due_ms, department, alerted) WHERE state <> 'stopped';
CREATE INDEX sla_clocks_board_department
    ON sla_clocks(department, clock_id, state, due_ms, alerted) WHERE state <> 'stopped';
"#,
    ),
    // v6: clocks waiting for a calendar year (state 'pending') are found at start without a
    // scan of every clock.
    M::up(
        r#"
CREATE INDEX sla_clocks_pending ON sla_clocks(state) WHERE state = 'pending';
"#,
    ),
    // v7: `alerted` leaves the board's two indexes over every open clock. Firing a clock's
    // first alert sets it, and SQLite rewrites every index holding a column of the SET list:
    // with a million open clocks that was a delete and an insert in two large indexes per
    // alert, on random pages: the likely cause of benches/sla_timers.rs's max lateness going
    // from 0.6 s to 0.8-2.4 s with the board (not yet re-measured since). The warned count reads a partial index of the alerted running clocks instead,
    // which the first alert enters once (one insert into a small index); firing later alerts
    // touches only `sla_clocks_next`.
    M::up(
        r#"
DROP INDEX sla_clocks_board_clock;
DROP INDEX sla_clocks_board_department;
CREATE INDEX sla_clocks_board_clock
    ON sla_clocks(clock_id, state, due_ms, department) WHERE state <> 'stopped';
CREATE INDEX sla_clocks_board_department
    ON sla_clocks(department, clock_id, state, due_ms) WHERE state <> 'stopped';
CREATE INDEX sla_clocks_board_alerted
    ON sla_clocks(clock_id, due_ms, department) WHERE state = 'running' AND alerted = 1;
"#,
    ),
    // v8: provisional calendars (issue 14). `provisional`: the due instant rests on a year
    // without an official calendar file; `next_provisional`: so may the stored next alert
    // instant (a reminder counted in such a year); `held_ns`: time held by pauses (exact, in ns), to replay
    // the due instant on the official file. The partial index holds the open clocks to look
    // at again when a calendar changes (few: those whose span crosses into such a year).
    // `calendar_state` remembers each year's day kinds as clocks were last computed, so that
    // a start with the same calendars recomputes nothing. Alerts keep their provisional mark.
    M::up(
        r#"
ALTER TABLE sla_clocks ADD COLUMN provisional INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sla_clocks ADD COLUMN next_provisional INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sla_clocks ADD COLUMN held_ns INTEGER NOT NULL DEFAULT 0;
CREATE INDEX sla_clocks_provisional ON sla_clocks(state, provisional)
    WHERE state <> 'stopped' AND (provisional = 1 OR next_provisional = 1);
ALTER TABLE alerts ADD COLUMN provisional INTEGER NOT NULL DEFAULT 0;
CREATE TABLE calendar_state (
    year INTEGER PRIMARY KEY,
    basis TEXT NOT NULL,
    digest TEXT NOT NULL
);
"#,
    ),
    // v9: how each decision's category was decided (JSON: source, confidence, candidates,
    // needs_review), and the intake desk's corrections (a status event re-routing an item),
    // keyed by the event id so a redelivered event is recorded once. Corrections hold ids,
    // categories and department ids; the text stays in `items`.
    M::up(
        r#"
ALTER TABLE routing_decisions ADD COLUMN classification TEXT;
CREATE TABLE corrections (
    event_id TEXT PRIMARY KEY,
    item_id TEXT NOT NULL REFERENCES items(id),
    at TEXT NOT NULL,
    actor TEXT,
    from_category TEXT,
    from_lead TEXT,
    category TEXT,
    department TEXT,
    recorded_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
"#,
    ),
    // v10: status write-back to upstreams (issue 14): one row per request, queued in the
    // transaction of the change that causes it (`writeback.rs`). `idem_key` is the
    // Idempotency-Key sent with every attempt; the partial indexes hold pending rows only:
    // the worker's look-up by source and time, and the per-item order check.
    M::up(
        r#"
CREATE TABLE writeback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id TEXT NOT NULL REFERENCES items(id),
    source TEXT NOT NULL,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    idem_key TEXT NOT NULL UNIQUE,
    body BLOB NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending','delivered','dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL DEFAULT 0,
    last_status INTEGER,
    last_error TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    done_at TEXT
);
CREATE INDEX writeback_due ON writeback(source, next_attempt_ms) WHERE state = 'pending';
CREATE INDEX writeback_item ON writeback(item_id, id) WHERE state = 'pending';
"#,
    ),
    // v11: the intake desk's review queue for the SLA board (issue 20): an item whose
    // routing was unsure of its category (`needs_review`) waits here, inserted in the
    // transaction that records the item, until a status event is applied to it (the desk
    // has taken it in hand), deleted in the transaction that applies the event. Ids,
    // categories and numbers only. Filled from the decisions already recorded.
    M::up(
        r#"
CREATE TABLE review_queue (
    item_id TEXT PRIMARY KEY REFERENCES items(id),
    lead TEXT NOT NULL,
    decided_ms INTEGER NOT NULL,
    classification TEXT NOT NULL
);
CREATE INDEX review_queue_decided ON review_queue(decided_ms, item_id);
CREATE INDEX review_queue_lead ON review_queue(lead, decided_ms, item_id);
INSERT OR REPLACE INTO review_queue (item_id, lead, decided_ms, classification)
SELECT d.item_id, d.lead,
       CAST(ROUND((julianday(d.decided_at) - 2440587.5) * 86400000) AS INTEGER),
       d.classification
FROM routing_decisions d
WHERE json_valid(d.classification)
  AND json_extract(d.classification, '$.needs_review') = 1
  AND d.item_id NOT IN (SELECT item_id FROM status_events)
ORDER BY d.decided_at;
"#,
    ),
    // v12: the closed loop (issue 17). A status event keeps whose it is (`department`), who
    // handles the item (`person`, a staff id) and what it said where the loop needs it
    // (`verdict`: a reply's check, an evaluation); `items.stage` advances with the events
    // (`stage_rank` orders it). The ledger and the monthly report read these.
    M::up(
        r#"
ALTER TABLE status_events ADD COLUMN department TEXT;
ALTER TABLE status_events ADD COLUMN person TEXT;
ALTER TABLE status_events ADD COLUMN verdict TEXT;
ALTER TABLE items ADD COLUMN stage_rank INTEGER NOT NULL DEFAULT 0;
CREATE INDEX status_events_item ON status_events(item_id, at);
CREATE INDEX items_received ON items(received_at);
"#,
    ),
    // v13: report runs (issue 17): one row per scheduled report and period that was queued
    // (`monthly`/`2026-10`, `key_case_reminder`/`2026-12-07T09:00`), so that a restart neither
    // sends a report twice nor misses one (see `report::schedule`).
    M::up(
        r#"
CREATE TABLE report_runs (
    kind TEXT NOT NULL,
    period TEXT NOT NULL,
    ran_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    PRIMARY KEY (kind, period)
) WITHOUT ROWID;
"#,
    ),
    // v14: the monthly report and the key-case list (issue 17, `sqlite/report.rs`).
    // `items_month` covers the month's counts by channel, category and (through the id)
    // lead, and the join to the repeat index (it replaces
    // `items_received`, its prefix); `status_events_event` finds a month's stops and
    // evaluations; `person_items_item` goes from the month's items to their repeat-index
    // rows; `alerts_escalation` holds escalations only (the timer engine's other alerts do not
    // enter it); `items_unreplied` holds items before `replied` only (each leaves it once).
    M::up(
        r#"
CREATE INDEX items_month ON items(received_at, channel, category, id);
DROP INDEX items_received;
CREATE INDEX status_events_event ON status_events(event, at);
CREATE INDEX person_items_item ON person_items(item_id);
CREATE INDEX alerts_escalation ON alerts(item_id) WHERE kind = 'escalation';
CREATE INDEX items_unreplied ON items(received_at) WHERE stage_rank < 3;
"#,
    ),
    // v15: leases of units run by one of several instances (`sqlite/leases.rs`): a unit's
    // newest epoch and its owner; a cursor written under a lease keeps the epoch that wrote
    // it, so an older owner cannot move it back.
    M::up(
        r#"
CREATE TABLE leases (
    unit TEXT PRIMARY KEY,
    epoch INTEGER NOT NULL,
    instance TEXT NOT NULL,
    since TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
) WITHOUT ROWID;
ALTER TABLE cursors ADD COLUMN epoch INTEGER;
"#,
    ),
    // v16: raw upstream records (and small attachments) as rows instead of a file each
    // (`sqlite/blobs.rs`): the B-tree is the blobs' persisted index.
    M::up(
        r#"
CREATE TABLE blobs (
    sha256 TEXT PRIMARY KEY,
    bytes BLOB NOT NULL
);
"#,
    ),
];
