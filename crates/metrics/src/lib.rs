//! Prometheus metrics. Labels are channels, sources, topics and reasons — never personal data.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChannelLabel {
    pub channel: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    pub source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QuarantineLabels {
    pub source: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlertLabels {
    pub clock: String,
    pub kind: String,
    pub late: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClockLabel {
    pub clock: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub event: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerdictLabel {
    pub verdict: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UnitLabel {
    pub unit: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UnitChange {
    pub unit: String,
    /// acquired, revoked, fenced
    pub change: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceOutcome {
    pub source: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceField {
    pub source: String,
    pub field: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceKind {
    pub source: String,
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabel {
    pub topic: String,
}

/// Cheap to clone: every metric is an `Arc` inside.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    pub items_received: Family<ChannelLabel, Counter>,
    pub items_duplicate: Family<ChannelLabel, Counter>,
    pub quarantined: Family<QuarantineLabels, Counter>,
    pub delivered: Family<TopicLabel, Counter>,
    pub dead_lettered: Family<TopicLabel, Counter>,
    pub delivery_retries: Counter,
    pub recovered_in_flight: Counter,
    pub producer_recreated: Counter,
    pub kafka_client_errors: Counter,
    pub outbox_pending: Gauge,
    /// Alerts recorded, by clock, kind (warning_50, breach, ...) and whether late.
    pub alerts: Family<AlertLabels, Counter>,
    /// Seconds between an alert's scheduled instant and its firing.
    pub alert_lateness: Histogram,
    /// New items per intake commit (group commit).
    pub intake_group_size: Histogram,
    pub open_timers: Gauge,
    /// Clocks still waiting for a calendar year after the last start's computation. New
    /// pending clocks during a run count in `clock_errors`; the board shows the live number.
    pub pending_clocks: Gauge,
    /// Clocks that could not start or be computed (e.g. a calendar year not loaded).
    pub clock_errors: Family<ClockLabel, Counter>,
    /// Open clocks whose due instant rests on a provisional calendar year (refreshed by the
    /// SLA engine every minute).
    pub provisional_clocks: Gauge,
    /// Due-update records queued (a pending clock computed, or a calendar change moved a due).
    pub due_updates: Counter,
    pub status_events: Family<StatusLabels, Counter>,
    /// Replies checked (`ok`, `bounced`; see `status::reply`).
    pub reply_checks: Family<ResultLabel, Counter>,
    /// Evaluations recorded, by verdict (`none`: the event carried none).
    pub evaluations: Family<VerdictLabel, Counter>,
    pub mail_sent: Counter,
    pub mail_failed: Counter,
    /// Mails interrupted mid-send by a stop: not re-sent (no duplicates), counted here.
    pub mail_unknown: Counter,
    pub rules_reloaded: Counter,
    pub rules_reload_failed: Counter,
    /// Upstream changes to known items, recorded as update events, by channel.
    pub items_updated: Family<ChannelLabel, Counter>,
    /// HTTP requests to upstreams, by source and outcome (ok, http_5xx, http_429, ...).
    pub upstream_requests: Family<SourceOutcome, Counter>,
    /// Unix time of each source's last successful poll.
    pub upstream_last_success: Family<SourceLabel, Gauge>,
    /// 1 while a source is stale (no successful poll for its `stale_after`).
    pub channel_stale: Family<SourceLabel, Gauge>,
    /// Attachments fetched by URL, by source and outcome (stored, too_large, bad_type, ...).
    pub attachments: Family<SourceOutcome, Counter>,
    /// New items flagged `needs_supplement` (sent to the intake desk), by channel.
    pub needs_supplement: Family<ChannelLabel, Counter>,
    /// New items linked to earlier items of the same petitioner on the same matter, by channel.
    pub items_linked: Family<ChannelLabel, Counter>,
    /// New items flagged `repeat_petition`, by channel.
    pub repeat_petitions: Family<ChannelLabel, Counter>,
    /// IMAP connections or sessions that failed (connect, TLS, login, select, a dropped link).
    pub mailbox_connection_failures: Family<SourceLabel, Counter>,
    /// 1 while an IMAP session is logged in with its folder selected.
    pub mailbox_connected: Family<SourceLabel, Gauge>,
    /// UIDVALIDITY changes seen (each one re-scans the folder from UID 1).
    pub mailbox_uidvalidity_changes: Family<SourceLabel, Counter>,
    /// Flag or move after commit refused by the server (the mail is recorded all the same).
    pub mailbox_after_commit_failed: Family<SourceLabel, Counter>,
    /// Records read by the relay's recovery scans.
    pub recovery_scanned: Counter,
    /// Recovery scans that could not run (metadata, broker): the topic is held, by topic.
    pub recovery_failures: Family<TopicLabel, Counter>,
    /// Recovery scans cut at `kafka.recovery_scan_max_records`, by topic.
    pub recovery_capped: Family<TopicLabel, Counter>,
    /// Topics nothing is sent to until their in-flight rows are checked.
    pub outbox_held_topics: Gauge,
    /// Status consumer failures (each followed by a retry with back-off).
    pub status_consumer_failures: Counter,
    /// Malformed optional fields left out of HTTP records (the item flows, flagged), by source
    /// and field.
    pub fields_dropped: Family<SourceField, Counter>,
    /// Upstream misbehaviour the HTTP channels worked around, by source and kind
    /// (cursor_clamped, bound_ignored, withheld_records).
    pub upstream_anomalies: Family<SourceOutcome, Counter>,
    /// 1 while `/readyz` would answer 200 (topics verified, brokers reachable); sampled.
    pub ready: Gauge,
    /// Age in seconds of the oldest record waiting in the outbox (0 when empty); sampled.
    pub outbox_oldest_pending_age: Gauge,
    /// Unix time at which the loaded working-day calendars stop covering the days from the
    /// start-up year on without a gap (the first instant of the first missing year).
    pub sla_calendar_end: Gauge,
    /// Items whose `needs_supplement` flag an upstream update cleared, by channel.
    pub items_supplemented: Family<ChannelLabel, Counter>,
    /// Status write-back attempts, by source and outcome (delivered, retry, dead).
    pub writeback_requests: Family<SourceOutcome, Counter>,
    /// Status write-backs given up (dead), by source and kind (acknowledged, due, completed).
    pub writeback_dead: Family<SourceKind, Counter>,
    /// Status write-backs waiting to be sent, by source; refreshed by each source's worker.
    pub writeback_pending: Family<SourceLabel, Gauge>,
    /// Several instances: 1 while this instance owns the unit (a channel or a singleton task).
    pub unit_owned: Family<UnitLabel, Gauge>,
    /// Several instances: ownership changes of this instance, by unit and change (acquired,
    /// revoked, fenced).
    pub unit_ownership_changes: Family<UnitChange, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("petitiond");
        let m = Metrics {
            registry: Arc::new(Registry::default()),
            items_received: Family::default(),
            items_duplicate: Family::default(),
            quarantined: Family::default(),
            delivered: Family::default(),
            dead_lettered: Family::default(),
            delivery_retries: Counter::default(),
            recovered_in_flight: Counter::default(),
            producer_recreated: Counter::default(),
            kafka_client_errors: Counter::default(),
            outbox_pending: Gauge::default(),
            alerts: Family::default(),
            alert_lateness: Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 60.0]),
            intake_group_size: Histogram::new([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0]),
            open_timers: Gauge::default(),
            pending_clocks: Gauge::default(),
            clock_errors: Family::default(),
            provisional_clocks: Gauge::default(),
            due_updates: Counter::default(),
            status_events: Family::default(),
            reply_checks: Family::default(),
            evaluations: Family::default(),
            mail_sent: Counter::default(),
            mail_failed: Counter::default(),
            mail_unknown: Counter::default(),
            rules_reloaded: Counter::default(),
            rules_reload_failed: Counter::default(),
            items_updated: Family::default(),
            upstream_requests: Family::default(),
            upstream_last_success: Family::default(),
            channel_stale: Family::default(),
            attachments: Family::default(),
            needs_supplement: Family::default(),
            items_linked: Family::default(),
            repeat_petitions: Family::default(),
            mailbox_connection_failures: Family::default(),
            mailbox_connected: Family::default(),
            mailbox_uidvalidity_changes: Family::default(),
            mailbox_after_commit_failed: Family::default(),
            recovery_scanned: Counter::default(),
            recovery_failures: Family::default(),
            recovery_capped: Family::default(),
            outbox_held_topics: Gauge::default(),
            status_consumer_failures: Counter::default(),
            fields_dropped: Family::default(),
            upstream_anomalies: Family::default(),
            ready: Gauge::default(),
            outbox_oldest_pending_age: Gauge::default(),
            sla_calendar_end: Gauge::default(),
            items_supplemented: Family::default(),
            writeback_requests: Family::default(),
            writeback_dead: Family::default(),
            writeback_pending: Family::default(),
            unit_owned: Family::default(),
            unit_ownership_changes: Family::default(),
        };
        r.register(
            "items_received",
            "New items recorded, by channel",
            m.items_received.clone(),
        );
        r.register(
            "items_duplicate",
            "Items seen again and recognised by id",
            m.items_duplicate.clone(),
        );
        r.register(
            "quarantined",
            "Bad inputs quarantined, by source and reason",
            m.quarantined.clone(),
        );
        r.register(
            "outbox_delivered",
            "Records acknowledged by Kafka, by topic",
            m.delivered.clone(),
        );
        r.register(
            "outbox_dead_lettered",
            "Records sent to the dead-letter topic, by original topic",
            m.dead_lettered.clone(),
        );
        r.register(
            "delivery_retries",
            "Retriable delivery failures",
            m.delivery_retries.clone(),
        );
        r.register(
            "recovered_in_flight",
            "In-flight records found already on Kafka after a crash",
            m.recovered_in_flight.clone(),
        );
        r.register(
            "producer_recreated",
            "Producers recreated after a fatal error",
            m.producer_recreated.clone(),
        );
        r.register(
            "kafka_client_errors",
            "Errors reported by the Kafka client",
            m.kafka_client_errors.clone(),
        );
        r.register(
            "outbox_pending",
            "Outbox records not yet acknowledged",
            m.outbox_pending.clone(),
        );
        r.register(
            "sla_alerts",
            "SLA alerts recorded, by clock, kind and lateness",
            m.alerts.clone(),
        );
        r.register(
            "intake_group_size",
            "New items made durable per intake transaction (group commit)",
            m.intake_group_size.clone(),
        );
        r.register(
            "sla_alert_lateness_seconds",
            "Delay between an alert's scheduled instant and its firing",
            m.alert_lateness.clone(),
        );
        r.register(
            "sla_open_timers",
            "Clocks with an alert still to come",
            m.open_timers.clone(),
        );
        r.register(
            "sla_pending_clocks",
            "Clocks still waiting for a calendar year that is not loaded, as of the last start (new ones count in sla_clock_errors; the board shows the live number)",
            m.pending_clocks.clone(),
        );
        r.register(
            "sla_clock_errors",
            "Clocks that could not be computed, by clock",
            m.clock_errors.clone(),
        );
        r.register(
            "sla_provisional_clocks",
            "Open clocks whose due instant rests on a provisional calendar year (no official file)",
            m.provisional_clocks.clone(),
        );
        r.register(
            "sla_due_updates",
            "Due-update records queued: a pending clock computed, or a calendar change moved a due instant",
            m.due_updates.clone(),
        );
        r.register(
            "status_events",
            "Department status events, by event and outcome",
            m.status_events.clone(),
        );
        r.register(
            "reply_checks",
            "Department replies checked for the four elements and banned phrases, by result (ok, bounced)",
            m.reply_checks.clone(),
        );
        r.register(
            "evaluations",
            "Petitioner evaluations recorded, by verdict (satisfied, basically_satisfied, dissatisfied, none)",
            m.evaluations.clone(),
        );
        r.register(
            "alert_mail_sent",
            "Alert mails accepted by the SMTP server",
            m.mail_sent.clone(),
        );
        r.register(
            "alert_mail_failed",
            "Alert mails the SMTP server refused for good",
            m.mail_failed.clone(),
        );
        r.register(
            "alert_mail_unknown",
            "Alert mails whose sending was interrupted, not re-sent",
            m.mail_unknown.clone(),
        );
        r.register(
            "rules_reloaded",
            "Routing rules reloaded and in force",
            m.rules_reloaded.clone(),
        );
        r.register(
            "rules_reload_failed",
            "Routing rules reloads rejected (old rules kept)",
            m.rules_reload_failed.clone(),
        );
        r.register(
            "items_updated",
            "Upstream changes to known items, recorded as update events, by channel",
            m.items_updated.clone(),
        );
        r.register(
            "upstream_requests",
            "HTTP requests to upstream systems, by source and outcome",
            m.upstream_requests.clone(),
        );
        r.register(
            "upstream_last_success_timestamp_seconds",
            "Unix time of each source's last successful poll",
            m.upstream_last_success.clone(),
        );
        r.register(
            "channel_stale",
            "1 while a source has had no successful poll for its stale_after",
            m.channel_stale.clone(),
        );
        r.register(
            "attachments_fetched",
            "Attachments fetched by URL, by source and outcome",
            m.attachments.clone(),
        );
        r.register(
            "items_needs_supplement",
            "New items flagged needs_supplement and sent to the intake desk, by channel",
            m.needs_supplement.clone(),
        );
        r.register(
            "items_linked",
            "New items linked to the same petitioner's earlier items on the same matter, by channel",
            m.items_linked.clone(),
        );
        r.register(
            "repeat_petitions",
            "New items flagged repeat_petition, by channel",
            m.repeat_petitions.clone(),
        );
        r.register(
            "mailbox_connection_failures",
            "IMAP connection or session failures, by source",
            m.mailbox_connection_failures.clone(),
        );
        r.register(
            "mailbox_connected",
            "1 while the IMAP session is up, by source",
            m.mailbox_connected.clone(),
        );
        r.register(
            "mailbox_uidvalidity_changes",
            "IMAP UIDVALIDITY changes (folder re-scanned), by source",
            m.mailbox_uidvalidity_changes.clone(),
        );
        r.register(
            "mailbox_after_commit_failed",
            "IMAP flag/move after commit refused by the server, by source",
            m.mailbox_after_commit_failed.clone(),
        );
        r.register(
            "outbox_recovery_scanned_records",
            "Records read by the relay's recovery scans",
            m.recovery_scanned.clone(),
        );
        r.register(
            "outbox_recovery_failures",
            "Recovery scans that could not run (the topic is held until one does), by topic",
            m.recovery_failures.clone(),
        );
        r.register(
            "outbox_recovery_capped",
            "Recovery scans cut at kafka.recovery_scan_max_records, by topic",
            m.recovery_capped.clone(),
        );
        r.register(
            "outbox_held_topics",
            "Topics nothing is sent to until their in-flight records are checked",
            m.outbox_held_topics.clone(),
        );
        r.register(
            "status_consumer_failures",
            "Status consumer failures, each followed by a retry",
            m.status_consumer_failures.clone(),
        );
        r.register(
            "http_fields_dropped",
            "Malformed optional fields left out of upstream records, by source and field",
            m.fields_dropped.clone(),
        );
        r.register(
            "upstream_anomalies",
            "Upstream misbehaviour worked around (cursor_clamped, bound_ignored, withheld_records), by source",
            m.upstream_anomalies.clone(),
        );
        r.register(
            "ready",
            "1 while /readyz answers 200 (topics verified, brokers reachable), sampled every 5 s",
            m.ready.clone(),
        );
        r.register(
            "outbox_oldest_pending_age_seconds",
            "Age of the oldest record not yet acknowledged by Kafka (0 when the outbox is empty), sampled every 5 s",
            m.outbox_oldest_pending_age.clone(),
        );
        r.register(
            "sla_calendar_end_timestamp_seconds",
            "Unix time at which the loaded working-day calendars stop covering the days from the start-up year on",
            m.sla_calendar_end.clone(),
        );
        r.register(
            "items_supplemented",
            "Items whose needs_supplement flag an upstream update cleared (supplement clock stopped), by channel",
            m.items_supplemented.clone(),
        );
        r.register(
            "writeback_requests",
            "Status write-back attempts to upstreams, by source and outcome (delivered, retry, dead)",
            m.writeback_requests.clone(),
        );
        r.register(
            "writeback_dead",
            "Status write-backs given up after max_attempts or a permanent refusal, by source and kind",
            m.writeback_dead.clone(),
        );
        r.register(
            "writeback_pending",
            "Status write-backs waiting to be sent, by source",
            m.writeback_pending.clone(),
        );
        r.register(
            "unit_owned",
            "1 while this instance owns the unit (several instances; a channel or a singleton task)",
            m.unit_owned.clone(),
        );
        r.register(
            "unit_ownership_changes",
            "Ownership changes of this instance, by unit and change (acquired, revoked, fenced)",
            m.unit_ownership_changes.clone(),
        );
        Metrics {
            registry: Arc::new(r),
            ..m
        }
    }

    pub fn quarantine(&self, source: &str, reason: &str) {
        self.quarantined
            .get_or_create(&QuarantineLabels {
                source: source.into(),
                reason: reason.into(),
            })
            .inc();
    }

    /// An SLA clock that could not be started, moved or scheduled.
    pub fn clock_error(&self, clock: &str) {
        self.clock_errors
            .get_or_create(&ClockLabel {
                clock: clock.into(),
            })
            .inc();
    }

    pub fn upstream_request(&self, source: &str, outcome: &str) {
        self.upstream_requests
            .get_or_create(&SourceOutcome {
                source: source.into(),
                outcome: outcome.into(),
            })
            .inc();
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_exported() {
        let m = Metrics::new();
        // Label families print only once they have a sample.
        m.quarantine("mailbox", "malformed_mime");
        let clock = ClockLabel { clock: "c".into() };
        m.clock_errors.get_or_create(&clock).inc();
        m.status_events
            .get_or_create(&StatusLabels {
                event: "viewed".into(),
                outcome: "applied".into(),
            })
            .inc();
        m.reply_checks
            .get_or_create(&ResultLabel {
                result: "bounced".into(),
            })
            .inc();
        m.evaluations
            .get_or_create(&VerdictLabel {
                verdict: "dissatisfied".into(),
            })
            .inc();
        m.alerts
            .get_or_create(&AlertLabels {
                clock: "c".into(),
                kind: "breach".into(),
                late: "false".into(),
            })
            .inc();
        let source = SourceLabel {
            source: "mailbox".into(),
        };
        m.mailbox_connection_failures.get_or_create(&source).inc();
        m.mailbox_connected.get_or_create(&source).set(1);
        m.mailbox_uidvalidity_changes.get_or_create(&source).inc();
        m.mailbox_after_commit_failed.get_or_create(&source).inc();
        m.fields_dropped
            .get_or_create(&SourceField {
                source: "portal".into(),
                field: "address".into(),
            })
            .inc();
        m.upstream_anomalies
            .get_or_create(&SourceOutcome {
                source: "hotline".into(),
                outcome: "bound_ignored".into(),
            })
            .inc();
        m.items_supplemented
            .get_or_create(&ChannelLabel {
                channel: "portal".into(),
            })
            .inc();
        m.writeback_requests
            .get_or_create(&SourceOutcome {
                source: "portal".into(),
                outcome: "delivered".into(),
            })
            .inc();
        m.writeback_dead
            .get_or_create(&SourceKind {
                source: "portal".into(),
                kind: "due".into(),
            })
            .inc();
        m.writeback_pending
            .get_or_create(&SourceLabel {
                source: "portal".into(),
            })
            .set(2);
        let text = m.encode();
        for name in [
            "petitiond_quarantined_total",
            "petitiond_outbox_pending",
            "petitiond_sla_alerts_total",
            "petitiond_sla_alert_lateness_seconds",
            "petitiond_intake_group_size",
            "petitiond_sla_open_timers",
            "petitiond_sla_pending_clocks",
            "petitiond_sla_clock_errors_total",
            "petitiond_sla_provisional_clocks",
            "petitiond_sla_due_updates_total",
            "petitiond_status_events_total",
            "petitiond_reply_checks_total{result=\"bounced\"} 1",
            "petitiond_evaluations_total{verdict=\"dissatisfied\"} 1",
            "petitiond_alert_mail_sent_total",
            "petitiond_alert_mail_failed_total",
            "petitiond_alert_mail_unknown_total",
            "petitiond_mailbox_connection_failures_total{source=\"mailbox\"} 1",
            "petitiond_mailbox_connected{source=\"mailbox\"} 1",
            "petitiond_mailbox_uidvalidity_changes_total{source=\"mailbox\"} 1",
            "petitiond_mailbox_after_commit_failed_total{source=\"mailbox\"} 1",
            "petitiond_http_fields_dropped_total{source=\"portal\",field=\"address\"} 1",
            "petitiond_upstream_anomalies_total{source=\"hotline\",outcome=\"bound_ignored\"} 1",
            "petitiond_ready 0",
            "petitiond_outbox_oldest_pending_age_seconds 0",
            "petitiond_sla_calendar_end_timestamp_seconds 0",
            "petitiond_items_supplemented_total{channel=\"portal\"} 1",
            "petitiond_writeback_requests_total{source=\"portal\",outcome=\"delivered\"} 1",
            "petitiond_writeback_dead_total{source=\"portal\",kind=\"due\"} 1",
            "petitiond_writeback_pending{source=\"portal\"} 2",
        ] {
            assert!(text.contains(name), "{name} missing from /metrics:\n{text}");
        }
    }
}
