//! The PostgreSQL schema: SQLite's final schema (`sqlite/migrations.rs`, v1–v15) translated,
//! with the same table and column names so queries port line by line. Instants stay RFC 3339
//! text (`petitiond_now()` writes SQLite's `strftime('%Y-%m-%dT%H:%M:%fZ','now')` format);
//! every text column compares bytewise (`COLLATE "C"`, SQLite's BINARY) whatever the
//! cluster's locale, so instants and ids order as they do in SQLite;
//! integers are BIGINT (Rust `i64`) except Kafka partitions (INTEGER, `i32`) and calendar years
//! (SMALLINT, `i16`); flags are BOOLEAN; SQLite's `rowid` becomes an explicit `id` column
//! where code addresses rows by it (`sla_clocks`, `alerts`). Blobs (`blobs.rs`) are rows
//! too, in chunks, so every instance sees every scan.
//!
//! Versioned in `schema_version` (one row): each migration runs in one transaction under an
//! advisory lock, so instances starting together migrate once. A migration is never edited
//! once released; a change is a new one at the end.

use super::StoreError;

/// Migrations in order; `MIGRATIONS[i]` brings the schema to version `i + 1`.
pub(super) const MIGRATIONS: &[&str] = &[V1];

const V1: &str = r#"
CREATE FUNCTION petitiond_now() RETURNS TEXT LANGUAGE SQL VOLATILE AS
$$ SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') $$;

CREATE TABLE items (
    id TEXT COLLATE "C" PRIMARY KEY,
    channel TEXT COLLATE "C" NOT NULL,
    upstream_id TEXT COLLATE "C" NOT NULL,
    source TEXT COLLATE "C" NOT NULL,
    received_at TEXT COLLATE "C" NOT NULL,
    category TEXT COLLATE "C",
    stage TEXT COLLATE "C" NOT NULL,
    envelope TEXT COLLATE "C" NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL DEFAULT petitiond_now(),
    updated_at TEXT COLLATE "C" NOT NULL DEFAULT petitiond_now(),
    upstream_version TEXT COLLATE "C",
    stage_rank BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX items_month ON items(received_at, channel, category, id);
CREATE INDEX items_unreplied ON items(received_at) WHERE stage_rank < 3;

CREATE TABLE cursors (
    source TEXT COLLATE "C" PRIMARY KEY,
    value TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C" NOT NULL DEFAULT petitiond_now(),
    epoch BIGINT
);

CREATE TABLE routing_decisions (
    item_id TEXT COLLATE "C" NOT NULL REFERENCES items(id),
    rule_id TEXT COLLATE "C" NOT NULL,
    rules_version TEXT COLLATE "C" NOT NULL,
    lead TEXT COLLATE "C" NOT NULL,
    assists TEXT COLLATE "C" NOT NULL,
    decided_at TEXT COLLATE "C" NOT NULL,
    classification TEXT COLLATE "C",
    PRIMARY KEY (item_id, decided_at)
);

CREATE TABLE outbox (
    seq BIGSERIAL PRIMARY KEY,
    item_id TEXT COLLATE "C" NOT NULL,
    topic TEXT COLLATE "C" NOT NULL,
    msg_key TEXT COLLATE "C" NOT NULL,
    ce_id TEXT COLLATE "C" NOT NULL,
    headers TEXT COLLATE "C" NOT NULL,
    payload BYTEA NOT NULL,
    state TEXT COLLATE "C" NOT NULL DEFAULT 'pending' CHECK (state IN ('pending','delivered','dead')),
    attempts BIGINT NOT NULL DEFAULT 0,
    last_error TEXT COLLATE "C",
    "partition" INTEGER,
    "offset" BIGINT,
    created_at TEXT COLLATE "C" NOT NULL DEFAULT petitiond_now(),
    done_at TEXT COLLATE "C",
    UNIQUE (topic, ce_id)
);
CREATE INDEX outbox_pending ON outbox(seq) WHERE state = 'pending';

CREATE TABLE topic_positions (
    topic TEXT COLLATE "C" NOT NULL,
    "partition" INTEGER NOT NULL,
    next_offset BIGINT NOT NULL,
    PRIMARY KEY (topic, "partition")
);

CREATE TABLE sla_clocks (
    id BIGSERIAL UNIQUE,
    item_id TEXT COLLATE "C" NOT NULL REFERENCES items(id),
    clock_id TEXT COLLATE "C" NOT NULL,
    state TEXT COLLATE "C" NOT NULL,
    started_at TEXT COLLATE "C" NOT NULL,
    due_at TEXT COLLATE "C" NOT NULL,
    paused_at TEXT COLLATE "C",
    remaining_secs BIGINT,
    department TEXT COLLATE "C" NOT NULL DEFAULT '',
    extended_days BIGINT NOT NULL DEFAULT 0,
    last_alert_at TEXT COLLATE "C",
    next_alert_ms BIGINT,
    due_ms BIGINT NOT NULL DEFAULT 0,
    alerted BOOLEAN NOT NULL DEFAULT FALSE,
    provisional BOOLEAN NOT NULL DEFAULT FALSE,
    next_provisional BOOLEAN NOT NULL DEFAULT FALSE,
    held_ns BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (item_id, clock_id)
);
CREATE INDEX sla_clocks_next ON sla_clocks(next_alert_ms) WHERE next_alert_ms IS NOT NULL;
CREATE INDEX sla_clocks_pending ON sla_clocks(state) WHERE state = 'pending';
CREATE INDEX sla_clocks_board_clock
    ON sla_clocks(clock_id, state, due_ms, department) WHERE state <> 'stopped';
CREATE INDEX sla_clocks_board_department
    ON sla_clocks(department, clock_id, state, due_ms) WHERE state <> 'stopped';
CREATE INDEX sla_clocks_board_alerted
    ON sla_clocks(clock_id, due_ms, department) WHERE state = 'running' AND alerted;
CREATE INDEX sla_clocks_provisional ON sla_clocks(state, provisional)
    WHERE state <> 'stopped' AND (provisional OR next_provisional);

CREATE TABLE quarantine (
    id BIGSERIAL PRIMARY KEY,
    source TEXT COLLATE "C" NOT NULL,
    reference TEXT COLLATE "C" NOT NULL,
    reason TEXT COLLATE "C" NOT NULL,
    detail TEXT COLLATE "C" NOT NULL,
    raw_ref TEXT COLLATE "C" NOT NULL,
    size BIGINT NOT NULL,
    at TEXT COLLATE "C" NOT NULL DEFAULT petitiond_now()
);
CREATE INDEX quarantine_source_raw ON quarantine(source, raw_ref);

CREATE TABLE alerts (
    seq BIGSERIAL UNIQUE,
    id TEXT COLLATE "C" PRIMARY KEY,
    item_id TEXT COLLATE "C" NOT NULL,
    clock_id TEXT COLLATE "C" NOT NULL,
    kind TEXT COLLATE "C" NOT NULL,
    department TEXT COLLATE "C" NOT NULL,
    due_at TEXT COLLATE "C" NOT NULL,
    scheduled_at TEXT COLLATE "C" NOT NULL,
    fired_at TEXT COLLATE "C" NOT NULL,
    late BOOLEAN NOT NULL,
    provisional BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX alerts_escalation ON alerts(item_id) WHERE kind = 'escalation';

CREATE TABLE mail_outbox (
    alert_id TEXT COLLATE "C" PRIMARY KEY,
    recipients TEXT COLLATE "C" NOT NULL,
    subject TEXT COLLATE "C" NOT NULL,
    body TEXT COLLATE "C" NOT NULL,
    state TEXT COLLATE "C" NOT NULL DEFAULT 'pending' CHECK (state IN ('pending','sending','sent','unknown','failed')),
    attempts BIGINT NOT NULL DEFAULT 0,
    last_error TEXT COLLATE "C",
    created_at TEXT COLLATE "C" NOT NULL DEFAULT petitiond_now(),
    sent_at TEXT COLLATE "C"
);
CREATE INDEX mail_outbox_pending ON mail_outbox(created_at, alert_id) WHERE state = 'pending';

CREATE TABLE status_events (
    event_id TEXT COLLATE "C" PRIMARY KEY,
    item_id TEXT COLLATE "C" NOT NULL,
    event TEXT COLLATE "C" NOT NULL,
    at TEXT COLLATE "C" NOT NULL,
    applied_at TEXT COLLATE "C" NOT NULL DEFAULT petitiond_now(),
    department TEXT COLLATE "C",
    person TEXT COLLATE "C",
    verdict TEXT COLLATE "C"
);
CREATE INDEX status_events_item ON status_events(item_id, at);
CREATE INDEX status_events_event ON status_events(event, at);

CREATE TABLE person_items (
    person_key TEXT COLLATE "C" NOT NULL,
    item_id TEXT COLLATE "C" NOT NULL REFERENCES items(id),
    matter TEXT COLLATE "C" NOT NULL,
    received_ms BIGINT NOT NULL,
    PRIMARY KEY (person_key, item_id)
);
CREATE INDEX person_items_matter ON person_items(person_key, matter, received_ms);
CREATE INDEX person_items_item ON person_items(item_id);

CREATE TABLE calendar_state (
    year SMALLINT PRIMARY KEY,
    basis TEXT COLLATE "C" NOT NULL,
    digest TEXT COLLATE "C" NOT NULL
);

CREATE TABLE corrections (
    event_id TEXT COLLATE "C" PRIMARY KEY,
    item_id TEXT COLLATE "C" NOT NULL REFERENCES items(id),
    at TEXT COLLATE "C" NOT NULL,
    actor TEXT COLLATE "C",
    from_category TEXT COLLATE "C",
    from_lead TEXT COLLATE "C",
    category TEXT COLLATE "C",
    department TEXT COLLATE "C",
    recorded_at TEXT COLLATE "C" NOT NULL DEFAULT petitiond_now()
);

CREATE TABLE writeback (
    id BIGSERIAL PRIMARY KEY,
    item_id TEXT COLLATE "C" NOT NULL REFERENCES items(id),
    source TEXT COLLATE "C" NOT NULL,
    kind TEXT COLLATE "C" NOT NULL,
    value TEXT COLLATE "C" NOT NULL,
    idem_key TEXT COLLATE "C" NOT NULL UNIQUE,
    body BYTEA NOT NULL,
    state TEXT COLLATE "C" NOT NULL DEFAULT 'pending' CHECK (state IN ('pending','delivered','dead')),
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_ms BIGINT NOT NULL DEFAULT 0,
    last_status BIGINT,
    last_error TEXT COLLATE "C",
    created_at TEXT COLLATE "C" NOT NULL DEFAULT petitiond_now(),
    done_at TEXT COLLATE "C"
);
CREATE INDEX writeback_due ON writeback(source, next_attempt_ms) WHERE state = 'pending';
CREATE INDEX writeback_item ON writeback(item_id, id) WHERE state = 'pending';

CREATE TABLE review_queue (
    item_id TEXT COLLATE "C" PRIMARY KEY REFERENCES items(id),
    lead TEXT COLLATE "C" NOT NULL,
    decided_ms BIGINT NOT NULL,
    classification TEXT COLLATE "C" NOT NULL
);
CREATE INDEX review_queue_decided ON review_queue(decided_ms, item_id);
CREATE INDEX review_queue_lead ON review_queue(lead, decided_ms, item_id);

CREATE TABLE report_runs (
    kind TEXT COLLATE "C" NOT NULL,
    period TEXT COLLATE "C" NOT NULL,
    ran_at TEXT COLLATE "C" NOT NULL DEFAULT petitiond_now(),
    PRIMARY KEY (kind, period)
);

CREATE TABLE leases (
    unit TEXT COLLATE "C" PRIMARY KEY,
    epoch BIGINT NOT NULL,
    instance TEXT COLLATE "C" NOT NULL,
    since TEXT COLLATE "C" NOT NULL DEFAULT petitiond_now()
);

CREATE TABLE blobs (
    sha256 TEXT COLLATE "C" PRIMARY KEY,
    size BIGINT NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL DEFAULT petitiond_now()
);
CREATE TABLE blob_chunks (
    sha256 TEXT COLLATE "C" NOT NULL REFERENCES blobs(sha256),
    n BIGINT NOT NULL,
    bytes BYTEA NOT NULL,
    PRIMARY KEY (sha256, n)
);
"#;

/// Brings the schema in the connection's `search_path` to the newest version; a database
/// newer than this build is refused (an older binary would misread it).
pub(super) fn migrate(client: &mut ::postgres::Client) -> Result<(), StoreError> {
    let mut tx = client.transaction()?;
    // One migrator per schema at a time; the lock ends with the transaction.
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('petitiond.migrate.' || current_schema()))",
        &[],
    )?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")?;
    let version: Option<i64> = tx
        .query_opt("SELECT version FROM schema_version", &[])?
        .map(|r| r.get(0));
    let version = version.unwrap_or(0);
    let newest = MIGRATIONS.len() as i64;
    if version > newest {
        return Err(StoreError::Corrupt(format!(
            "the PostgreSQL schema is at version {version}, newer than this build's {newest}: \
             run the newer petitiond"
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.batch_execute(sql)?;
        tracing::info!(version = i + 1, "PostgreSQL schema migrated");
    }
    tx.execute("DELETE FROM schema_version", &[])?;
    tx.execute(
        "INSERT INTO schema_version (version) VALUES ($1)",
        &[&newest],
    )?;
    tx.commit()?;
    Ok(())
}
