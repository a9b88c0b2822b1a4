//! What the monthly report and the key-case list read from the store (`report::figures`):
//! counts and ids, never petitioner data, except the key-case rows' envelopes, which
//! `report::figures` masks and cuts before anything leaves it.

use jiff::Timestamp;
use petitiond_core::envelope::Envelope;

/// Items received in a range, per (channel, category, lead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemCount {
    pub channel: String,
    /// `None`: unclassified.
    pub category: Option<String>,
    /// The lead routing chose; `None` when not asked for (or no decision recorded).
    pub lead: Option<String>,
    pub items: u64,
}

/// One row of the repeat-petition index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonItem {
    /// The keyed hash (never a personal value).
    pub person_key: String,
    pub matter: String,
    pub item_id: String,
    pub received_ms: i64,
}

/// A clock with its stop instant: the item's first status event among the clock's
/// `stop_on` events that is not a bounced reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockSpan {
    pub item_id: String,
    pub clock_id: String,
    pub department: String,
    pub started_at: Timestamp,
    pub due_at: Timestamp,
    /// `None`: open (running or paused) now.
    pub stopped_at: Option<Timestamp>,
}

/// An `evaluated` status event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    pub item_id: String,
    pub at: Timestamp,
    pub verdict: Option<String>,
    /// The verdict of the item's first evaluation (earliest `at`).
    pub first_verdict: Option<String>,
    /// The item has a `replied` event with verdict `bounced`.
    pub bounced: bool,
}

/// The key-case candidates to read: items not yet replied (stage before `replied`) that
/// meet one of the conditions. A superset filter: `report::figures` decides the reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyCaseQuery {
    /// Received at or before this instant (three months before now).
    pub received_by: Timestamp,
    /// The matter's first item (or the upstream record) at or before this (five years).
    pub matter_by: Timestamp,
    /// Items of this category are key cases (`historical`: the key-case ledger). An escalation
    /// is an alert of kind `escalation` (a literal in the query: see its index).
    pub key_category: String,
    /// The completion clock whose open due instant is the deadline.
    pub deadline_clock: String,
}

/// A key-case candidate with what decides its reasons.
#[derive(Debug, Clone)]
pub struct KeyCaseRow {
    pub envelope: Envelope,
    pub lead: Option<String>,
    pub assists: Vec<String>,
    /// An escalation alert was recorded on one of its clocks.
    pub escalation_alert: bool,
    /// The earliest item of any (person key, matter) the item is indexed under.
    pub first_on_matter: Option<Timestamp>,
    /// The deadline clock's due instant, if that clock is open (running or paused).
    pub deadline: Option<Timestamp>,
}
