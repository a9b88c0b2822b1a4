//! The closed loop's reports (DOMAIN.md §5–6, issue 17): the monthly analysis report and the
//! key-case list (季度攻坚清单), computed from the store.
//!
//! [`MonthlyReport`] is the data; `figures` computes it from the store, `render` writes it as
//! HTML (with SVG charts) and CSV, `schedule` runs it on the configured cron expressions. A
//! report carries ids, labels, counts and masked text only: no petitioner name, ID number or
//! phone, and a key case's background and request are masked and cut short.
//!
//! Definitions (recorded in ARCHITECTURE.md, "Closed loop"):
//! - a month is a calendar month in `sla.time_zone`; an item belongs to the month it was
//!   received in;
//! - a complaint type is an item's matter: its category and the lead department routing chose
//!   (`rights/hrss`), the same "matter" as repeat-petition detection (`routing::repeat::matter`);
//! - a repeat petition: the same person (keyed hash) on the same matter 3+ times, counting
//!   the items of the month and the 12 months before it, with at least one item in the month;
//! - overdue: a statutory clock (`statutory.*`) whose stop came, or has not come by the end of
//!   the month, more than 10 working days after its due instant (working days in `(due date,
//!   stop date]`, local dates on `sla.calendar`). The store keeps no stop instant: a clock's
//!   stop is its item's first status event among the policy's `stop_on` that is not a bounced
//!   reply. In the current month "the end" is `now`; a clock stopped after the month counts
//!   as open at its end;
//! - on-time completion: items whose completion clock (`statutory.handle`) stopped in the
//!   month, stopped by its due instant;
//! - satisfaction: evaluations recorded in the month that were `satisfied` or
//!   `basically_satisfied`;
//! - one-time resolution: items evaluated in the month whose first evaluation was not
//!   `dissatisfied` and that had no bounced reply;
//! - the key-case list (at `now`) holds items not yet replied (stage before `replied`; a
//!   rejected item is closed), each with at least one [`KeyReason`]: an escalated or old
//!   case that has been replied to is off the list.

pub mod config;
pub mod figures;
pub mod ledger;
pub mod render;
pub mod schedule;
#[cfg(test)]
#[path = "tests/testdata.rs"]
mod testdata;

use jiff::Timestamp;
use serde::Serialize;

/// Targets the office tracks (DOMAIN.md §6): on-time completion 100%, satisfaction ≥ 88%
/// (letters), one-time resolution ≥ 85%.
pub const TARGET_ON_TIME: f64 = 1.0;
pub const TARGET_SATISFACTION: f64 = 0.88;
pub const TARGET_ONE_TIME: f64 = 0.85;

/// The monthly analysis report: everything the HTML and CSV show.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MonthlyReport {
    /// `YYYY-MM`.
    pub month: String,
    pub time_zone: String,
    pub generated_at: Timestamp,
    /// Items received in the month.
    pub items: u64,
    /// (channel, count), every channel (zeros included), in `Channel` order.
    pub by_channel: Vec<(String, u64)>,
    /// (category, count), the four categories then `unclassified`.
    pub by_category: Vec<(String, u64)>,
    /// (channel, category, count), non-zero cells only.
    pub by_channel_category: Vec<(String, String, u64)>,
    /// The month's complaint types, most items first (ties by name), at most 10.
    pub top_types: Vec<TypeCount>,
    /// Complaint types in the top 3 in this month and each of the two months before.
    pub top3_three_months: Vec<String>,
    /// Items per month for this month and the five before, oldest first (`YYYY-MM`, count).
    pub trend: Vec<(String, u64)>,
    pub repeat_petitions: Vec<RepeatPetition>,
    pub overdue: Vec<Overdue>,
    pub on_time: Rate,
    pub satisfaction: Rate,
    pub one_time_resolution: Rate,
    pub key_cases: Vec<KeyCase>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TypeCount {
    /// The matter, `category/department`.
    pub matter: String,
    pub items: u64,
}

/// The same person 3+ times on the same matter.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RepeatPetition {
    /// A short prefix of the keyed hash: tells people apart, names no one.
    pub person: String,
    pub matter: String,
    /// Items in the counting window, oldest first.
    pub item_ids: Vec<String>,
    pub first_received: Timestamp,
    pub last_received: Timestamp,
}

/// A statutory clock more than 10 working days past its due instant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Overdue {
    pub item_id: String,
    pub clock: String,
    pub department: String,
    pub due_at: Timestamp,
    /// When it stopped; `None`: still open at the end of the month.
    pub stopped_at: Option<Timestamp>,
    /// Working days from the due instant to the stop (or the end of the month).
    pub working_days_late: u32,
}

/// A rate against its target; `value` is `None` when there is nothing to count.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rate {
    pub numerator: u64,
    pub denominator: u64,
    pub target: f64,
}

impl Rate {
    pub fn value(&self) -> Option<f64> {
        (self.denominator > 0).then(|| self.numerator as f64 / self.denominator as f64)
    }

    /// Whether the target is met; `None` with nothing to count.
    pub fn met(&self) -> Option<bool> {
        self.value().map(|v| v + 1e-9 >= self.target)
    }
}

/// Why an item is on the key-case list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyReason {
    /// Not replied (or refused) three months after it was received.
    Unresolved3Months,
    /// Escalated: an escalation alert fired on one of its clocks, or routed to the key-case
    /// ledger (category historical).
    Escalated,
    /// The matter is over five years old (the person's first item on it, or the item's own
    /// upstream creation date).
    Over5Years,
}

/// One entry of the key-case list (季度攻坚清单).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyCase {
    pub item_id: String,
    pub channel: String,
    pub category: Option<String>,
    pub received_at: Timestamp,
    pub reasons: Vec<KeyReason>,
    /// Masked (ID numbers, phones) and cut to a short length: the title, or else the start
    /// of the content.
    pub background: String,
    /// Masked and cut: the request's content.
    pub core_request: String,
    /// The lead department and the assists.
    pub department: String,
    pub assists: Vec<String>,
    /// The open completion clock's due instant, if any.
    pub deadline: Option<Timestamp>,
}
