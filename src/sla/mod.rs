//! SLA: the working-day calendar, due-time rules, clock policies and clock state.
//!
//! `calendar`, `due`, `policy` and `clock` are pure; the timer engine that fires alerts lives
//! in `engine` (I/O: the store and the alert outbox).

pub mod calendar;
pub mod clock;
pub mod due;
pub mod engine;
pub mod policy;
pub mod provisional;

use calendar::CalendarError;
use jiff::Timestamp;

/// Days before the last loaded calendar year ends from which operators are told to add the
/// next one (the State Council publishes it in November or December).
const CALENDAR_NOTICE_DAYS: i64 = 60;

/// What an operator must know about calendar coverage at `now`: clocks that, started now,
/// cannot be computed (they would wait as pending), and a calendar that ends soon. Printed by
/// `petitiond check` and logged at start.
pub fn calendar_warnings(sla: &crate::config::SlaConfig, now: Timestamp) -> Vec<String> {
    let cal = &sla.calendar;
    let mut out = Vec::new();
    for p in &sla.clocks {
        let started = clock::Clock::start(p, "probe", "", now, cal);
        if let Err(CalendarError::YearNotLoaded(y)) = started {
            out.push(format!(
                "clock `{}` started now needs the {y} working-day calendar, which is not loaded: such clocks wait as `pending` (no alerts) until its file is added to sla.calendar_files and petitiond restarts",
                p.id
            ));
        }
    }
    if let Some(last) = cal.years().max() {
        let today = cal.local_date(now);
        let end = jiff::civil::date(last, 12, 31);
        if let Ok(left) = today.until((jiff::Unit::Day, end)).map(|s| s.get_days())
            && (0..=CALENDAR_NOTICE_DAYS).contains(&i64::from(left))
        {
            out.push(format!(
                "the working-day calendars end on {end} ({left} days from today): add the {} file from the State Council's notice to sla.calendar_files",
                last + 1
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_warnings_name_the_missing_year_and_the_clocks_it_holds_up() {
        let cfg = crate::config::Config::parse(
            "[kafka]\nbrokers = \"127.0.0.1:9\"\n[[departments]]\nid = \"hrss\"\nname = \"hrss\"\ntopic = \"t.hrss\"\n[routing]\ndefault_lead = \"hrss\"\n",
            "t.toml",
            std::path::Path::new("."),
        )
        .unwrap();
        let w = calendar_warnings(&cfg.sla, "2026-06-01T02:00:00Z".parse().unwrap());
        assert!(w.is_empty(), "{w:?}");
        // 2026-12-02: 29 days left; the 60-day handling clock already needs 2027.
        let w = calendar_warnings(&cfg.sla, "2026-12-02T02:00:00Z".parse().unwrap());
        assert!(
            w.iter()
                .any(|m| m.contains("`statutory.handle`") && m.contains("2027")),
            "{w:?}"
        );
        assert!(
            !w.iter().any(|m| m.contains("`hotline.view`")),
            "wall-clock clocks need no calendar: {w:?}"
        );
        assert!(
            w.iter()
                .any(|m| m.contains("end on 2026-12-31 (29 days") && m.contains("2027 file")),
            "{w:?}"
        );
    }
}
