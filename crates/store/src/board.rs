//! What the SLA board and the summary read from the store: the query and its answer. Ids,
//! departments, categories, times and counts only, never petitioner data.

/// What the SLA board asks the store for: optional filters, the instant that decides overdue,
/// and row limits. Every query it causes is bounded by an index range and a LIMIT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardQuery {
    pub department: Option<String>,
    pub clock: Option<String>,
    pub now: jiff::Timestamp,
    /// Most rows in each clock list (overdue, due next).
    pub limit: usize,
    /// Most recent alerts shown.
    pub alerts_limit: usize,
    /// The configured clock ids: alerts filtered by department only are read per clock id
    /// (with the clock ids of open clocks), each from the (department, clock_id) index.
    pub clock_ids: Vec<String>,
}

/// Open clocks of one clock id. `overdue` and `warning` count running clocks only: a paused
/// clock has no due instant until it resumes (its due moves by the time held).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BoardCount {
    pub clock_id: String,
    pub running: u64,
    /// Running and past due.
    pub overdue: u64,
    /// Running, not yet due, and a warning alert has already fired.
    pub warning: u64,
    pub paused: u64,
    /// Waiting for a calendar year that is not loaded: no due instant, no alerts yet.
    pub pending: u64,
}

/// One open clock on the board. Deliberately no envelope field: the board shows ids,
/// departments, times and states only, never petitioner data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardClock {
    pub item_id: String,
    pub clock_id: String,
    pub department: String,
    pub state: petitiond_core::sla::clock::State,
    pub started_at: jiff::Timestamp,
    pub due_at: jiff::Timestamp,
    /// The due instant rests on a provisional calendar year.
    pub provisional: bool,
}

/// One recorded alert on the board (the alerts table holds no personal data either).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardAlert {
    pub kind: String,
    pub clock_id: String,
    pub item_id: String,
    pub department: String,
    pub due_at: jiff::Timestamp,
    pub fired_at: jiff::Timestamp,
    pub late: bool,
    /// Its instant rested on a provisional calendar year.
    pub provisional: bool,
}

/// One item waiting for the intake desk's review: routing was unsure of its category
/// (`needs_review`) and no status event has been applied to it since. Ids, the category
/// candidates and numbers only — the text that made routing unsure stays in `items`.
#[derive(Debug, Clone, PartialEq)]
pub struct BoardReview {
    pub item_id: String,
    /// The lead routing chose (the intake desk, under the shipped rules).
    pub lead: String,
    pub decided_at: jiff::Timestamp,
    /// `dictionary` or `model`: whose opinion was not sure enough.
    pub source: String,
    /// The top candidate's probability (below `routing.review_threshold`).
    pub confidence: f64,
    /// The two best categories, best first.
    pub candidates: Vec<petitiond_core::envelope::Candidate>,
}

/// What [`Store::summary`] counts. Every list is `(label, count)` sorted by label; an item
/// without a category counts as `unclassified`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub items: u64,
    pub by_channel: Vec<(String, u64)>,
    /// Items each department leads (主办).
    pub by_lead: Vec<(String, u64)>,
    /// Items each department assists (协办).
    pub by_assist: Vec<(String, u64)>,
    pub by_category: Vec<(String, u64)>,
    /// Items carrying each flag (`needs_supplement`, `repeat_petition`, `needs_review`, ...);
    /// `missing:*` flags included.
    pub by_flag: Vec<(String, u64)>,
    /// Per clock id, sorted by it.
    pub clocks: Vec<ClockSummary>,
    /// `(source, reason, count)`, sorted by source then reason.
    pub quarantined: Vec<(String, String, u64)>,
}

/// One clock id's clocks in [`Summary`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClockSummary {
    pub clock_id: String,
    /// Running, paused or pending.
    pub open: u64,
    /// Stopped by a status event (or a supplement).
    pub stopped: u64,
    /// Clocks that got a warning alert.
    pub warned: u64,
    /// Clocks that got a breach alert.
    pub breached: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct BoardData {
    /// By clock id.
    pub counts: Vec<BoardCount>,
    /// Running clocks past due, most overdue first.
    pub overdue: Vec<BoardClock>,
    /// Running clocks not yet due, soonest first.
    pub upcoming: Vec<BoardClock>,
    /// Newest first.
    pub alerts: Vec<BoardAlert>,
    /// Items waiting for review (under the department filter, on the lead), oldest first.
    pub review: Vec<BoardReview>,
    /// How many items wait for review in all (under the department filter).
    pub review_total: u64,
}
