//! Clock policies: which clocks an item gets, and which department status events stop,
//! start, pause, resume or extend them. Built from config (`[[sla.clocks]]`); the defaults are
//! the plan's clocks (DOMAIN.md §2). Pure data, no I/O.

use super::due::DueRule;
use crate::envelope::{Category, Channel, Envelope};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Department status events (JSON Schema: `schema/status-event.v1.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Viewed,
    StatusMarked,
    SignedIn,
    Registered,
    Accepted,
    Rejected,
    Replied,
    Evaluated,
    Extended,
    Paused,
    Resumed,
}

impl EventKind {
    pub const ALL: [EventKind; 11] = [
        EventKind::Viewed,
        EventKind::StatusMarked,
        EventKind::SignedIn,
        EventKind::Registered,
        EventKind::Accepted,
        EventKind::Rejected,
        EventKind::Replied,
        EventKind::Evaluated,
        EventKind::Extended,
        EventKind::Paused,
        EventKind::Resumed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Viewed => "viewed",
            EventKind::StatusMarked => "status_marked",
            EventKind::SignedIn => "signed_in",
            EventKind::Registered => "registered",
            EventKind::Accepted => "accepted",
            EventKind::Rejected => "rejected",
            EventKind::Replied => "replied",
            EventKind::Evaluated => "evaluated",
            EventKind::Extended => "extended",
            EventKind::Paused => "paused",
            EventKind::Resumed => "resumed",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What starts a clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// The item is recorded (arrival).
    Received,
    /// A department status event.
    Event(EventKind),
}

/// A clock policy, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ClockPolicy {
    pub id: String,
    pub rule: DueRule,
    pub start: Trigger,
    /// Empty: every channel.
    pub channels: Vec<Channel>,
    /// Empty: every category.
    pub categories: Vec<Category>,
    /// Empty: no flag needed; otherwise the item must carry one of them.
    pub flags: Vec<String>,
    /// Empty: any; otherwise the starting event's verdict must be one of them (e.g. the
    /// revisit clock starts on `evaluated` only when it says `dissatisfied`; see
    /// `status::reply::VERDICTS`).
    pub verdicts: Vec<String>,
    pub stop_on: Vec<EventKind>,
    pub pause_on: Vec<EventKind>,
    pub resume_on: Vec<EventKind>,
    pub extend_on: Vec<EventKind>,
    /// Total extension allowed, in calendar days (0: none).
    pub max_extension_days: u32,
    /// Warnings at these percentages of the span (default 50 and 80).
    pub warn_at_percent: Vec<u8>,
    /// After breach, remind every N working days until stopped (0: never).
    pub remind_every_working_days: u32,
    /// Escalate once this many working days past the deadline.
    pub escalate_after_working_days: Option<u32>,
    /// Where the deadline comes from (plan, regulation article).
    pub citation: String,
}

impl ClockPolicy {
    /// Does an item with this envelope get this clock when `trigger` happens?
    pub fn applies(&self, e: &Envelope, trigger: &Trigger) -> bool {
        &self.start == trigger
            && (self.channels.is_empty() || self.channels.contains(&e.channel))
            && (self.categories.is_empty()
                || e.category.is_some_and(|c| self.categories.contains(&c)))
            && (self.flags.is_empty() || self.flags.iter().any(|f| e.flags.contains(f)))
    }

    /// Does the starting event's verdict (`None`: it has none) admit this clock?
    pub fn admits_verdict(&self, verdict: Option<&str>) -> bool {
        self.verdicts.is_empty() || verdict.is_some_and(|v| self.verdicts.iter().any(|x| x == v))
    }
}

fn policy(
    id: &str,
    rule: DueRule,
    start: Trigger,
    stop_on: &[EventKind],
    citation: &str,
) -> ClockPolicy {
    ClockPolicy {
        id: id.into(),
        rule,
        start,
        channels: Vec::new(),
        categories: Vec::new(),
        flags: Vec::new(),
        verdicts: Vec::new(),
        stop_on: stop_on.to_vec(),
        pause_on: vec![EventKind::Paused],
        resume_on: vec![EventKind::Resumed],
        extend_on: vec![EventKind::Extended],
        max_extension_days: 0,
        warn_at_percent: vec![50, 80],
        remind_every_working_days: 3,
        escalate_after_working_days: None,
        citation: citation.into(),
    }
}

/// The revisit clock's id in the defaults: an evaluation of 不满意 starts it, a new reply that
/// passes the check stops it.
pub const REVISIT_CLOCK: &str = "revisit";

/// The plan's clocks (DOMAIN.md §2, §6), used when config lists none.
pub fn defaults() -> Vec<ClockPolicy> {
    use EventKind::*;
    vec![
        ClockPolicy {
            channels: vec![Channel::Hotline],
            ..policy(
                "hotline.view",
                DueRule::WallClock { minutes: 30 },
                Trigger::Received,
                &[Viewed, StatusMarked],
                "plan: 政务热线工单30分钟内查看并标记处理状态",
            )
        },
        ClockPolicy {
            channels: vec![Channel::Portal],
            ..policy(
                "portal.sign_in",
                DueRule::WallClock { minutes: 120 },
                Trigger::Received,
                &[SignedIn],
                "plan: 网络信访件2小时内系统签收",
            )
        },
        ClockPolicy {
            channels: vec![Channel::Letter],
            ..policy(
                "letter.register",
                DueRule::SameWorkingDay,
                Trigger::Received,
                &[Registered],
                "plan: 纸质信件当日拆封登记",
            )
        },
        ClockPolicy {
            flags: vec!["needs_supplement".into()],
            ..policy(
                "intake.supplement",
                DueRule::WallClock { minutes: 24 * 60 },
                Trigger::Received,
                &[StatusMarked, Paused, Accepted, Rejected],
                "plan: 要素不全的信件24小时内联系群众补充信息",
            )
        },
        ClockPolicy {
            categories: vec![Category::Rights],
            ..policy(
                "rights.feedback",
                DueRule::WorkingDays { days: 5 },
                Trigger::Received,
                &[Accepted, Rejected],
                "plan: 权益维护类事项告知群众5个工作日内受理反馈",
            )
        },
        ClockPolicy {
            escalate_after_working_days: Some(10),
            ..policy(
                "statutory.accept",
                DueRule::CalendarDays {
                    days: 15,
                    roll_forward: true,
                },
                Trigger::Received,
                &[Accepted, Rejected],
                "信访工作条例 (2022) 第二十二、二十三条: 15日内决定是否受理或转送",
            )
        },
        ClockPolicy {
            max_extension_days: 30,
            escalate_after_working_days: Some(10),
            ..policy(
                "statutory.handle",
                DueRule::CalendarDays {
                    days: 60,
                    roll_forward: true,
                },
                Trigger::Event(Accepted),
                &[Replied],
                "信访工作条例 (2022) 第三十四条: 60日内办结, 可延长不超过30日",
            )
        },
        ClockPolicy {
            verdicts: vec!["dissatisfied".into()],
            ..policy(
                REVISIT_CLOCK,
                DueRule::WorkingDays { days: 10 },
                Trigger::Event(Evaluated),
                &[Replied],
                "plan: 评价“不满意”的事项触发回访, 重新办理并答复 (期限: 本地设定)",
            )
        },
    ]
}

/// The closed-loop stage (DOMAIN.md §6) an event moves its item to, if any: the office has
/// taken it in (受理: viewed, marked, signed in, registered), a department handles it (办理:
/// accepted, extended, paused, resumed), replied (反馈), evaluated (评价); a refusal closes
/// it. The stored stage only advances.
pub fn stage_after(kind: EventKind) -> Option<crate::envelope::Stage> {
    use crate::envelope::Stage;
    Some(match kind {
        EventKind::Viewed
        | EventKind::StatusMarked
        | EventKind::SignedIn
        | EventKind::Registered => Stage::Accepted,
        EventKind::Accepted | EventKind::Extended | EventKind::Paused | EventKind::Resumed => {
            Stage::Handling
        }
        EventKind::Replied => Stage::Replied,
        EventKind::Evaluated => Stage::Evaluated,
        EventKind::Rejected => Stage::Closed,
    })
}
