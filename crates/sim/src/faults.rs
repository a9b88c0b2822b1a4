//! The fault schedule: what [`Faults`] a caller switches on, and the per-request [`Plan`] the
//! [`FaultClock`] derives from them (every Nth API request, counted since the last
//! `set_faults`), plus [`arrange`], which applies the record-level order faults to a response.

use crate::rng::Rng;
use std::time::Duration;

/// Faults both simulators can inject, switchable at run time with `set_faults`.
///
/// "Every Nth request" means API request number `k` (counted from 1 since the last
/// `set_faults`, see the module docs) is hit when `k % N == 0`; `Some(0)` and `None` are off.
/// When several hit the same request: `error_500` wins over `rate_limit`, which wins over
/// `garbage`, which wins over `truncate`; `slow` combines with any of them.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Every Nth request answers `500 Internal Server Error` with the API's error body
    /// (hotline: `[{"code":500,"description":"internal server error"}]`, portal:
    /// `{"code":500,"msg":"系统繁忙，请稍后重试"}`), before authentication is checked.
    pub error_500_every: Option<u32>,
    /// Every Nth request answers `429 Too Many Requests` with `Retry-After: retry_after_secs`
    /// and the API's error body (code 429), before authentication is checked.
    pub rate_limit_every: Option<u32>,
    /// The `Retry-After` value (seconds) of the 429 answers.
    pub retry_after_secs: u64,
    /// Every Nth request sleeps `slow_ms` before it is answered (whatever the answer).
    pub slow_every: Option<u32>,
    pub slow_ms: u64,
    /// Every Nth request, if it would have answered 200, answers 200 with the first half of the
    /// body's bytes (possibly cutting a UTF-8 character); `Content-Length` matches what is sent,
    /// `Content-Type` and any `Link` header stay as they were. A 4xx answer is left whole.
    pub truncate_every: Option<u32>,
    /// Every Nth request, if it would have answered 200, answers 200 with an HTML error page
    /// (`Content-Type: text/html; charset=utf-8`) instead of JSON, as a misbehaving gateway does.
    pub garbage_every: Option<u32>,
    /// Records repeat, with no record lost: in every response or page the 1st, 6th, 11th...
    /// record is sent twice (the copy right after it), so even a one-record page has a
    /// duplicate; and every portal page after the first starts with the last record of the
    /// previous page again (so a page may hold more than `page_size` items). The hotline's
    /// 1000-record cap counts the array's elements, copies included.
    pub duplicate_records: bool,
    /// The records of each response/page (copies included) are shuffled, deterministically for
    /// a given page. The hotline's cap is applied before the shuffle, so a full response still
    /// holds every record up to its latest one.
    pub out_of_order: bool,
    /// Every Nth *created* record (creation number `seq % N == 0`, counted over the sim's life;
    /// read when the record is created) is bad, rotating through [`BadKind`](crate::BadKind): no id, an
    /// unparsable date, not an object, oversize. Bad records sit in the index like any other
    /// and are served inside otherwise-valid responses.
    pub bad_record_every: Option<u32>,
    /// Every Nth *created* record (read when it is created, counted like `bad_record_every`)
    /// has malformed optional fields while its id, a time and its text stay good (each sim's
    /// docs say which fields): a client must make an item of it, not quarantine it.
    pub malformed_optional_every: Option<u32>,
    /// Every Nth *created* record (read when it is created) that has attachments links them
    /// with `?status=500`: files that always fail (see [`file_body`](crate::media::file_body) for the file server's
    /// switches).
    pub broken_media_every: Option<u32>,
    /// Every Nth API request that *writes* (the portal's status API) is applied, then its
    /// answer is lost: the server waits `slow_ms` and answers `504 Gateway Timeout` (a client
    /// whose timeout is shorter sees a timeout). A client that retries must send the same
    /// `Idempotency-Key`, or the write is applied twice. Counted like the others; a request
    /// that is not a write is not hit.
    pub lost_answer_every: Option<u32>,
}

/// The fault schedule and its request counter (reset by `set_faults`).
#[derive(Debug, Default)]
pub(crate) struct FaultClock {
    faults: Faults,
    n: u64,
}

/// What happens to one API request.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    pub slow: Option<Duration>,
    pub fail: Option<Fail>,
    pub garbage: bool,
    pub truncate: bool,
    pub duplicate: bool,
    pub out_of_order: bool,
    /// A write is applied, then answered 504 (`Faults::lost_answer_every`).
    pub lost_answer: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fail {
    Internal,
    RateLimited { retry_after_secs: u64 },
}

/// Whether `n` is hit by "every `e`th" (`Some(0)` and `None` are off).
pub(crate) fn every(n: u64, e: Option<u32>) -> bool {
    matches!(e, Some(e) if e > 0 && n.is_multiple_of(u64::from(e)))
}

impl FaultClock {
    /// The faults in force.
    pub(crate) fn faults(&self) -> &Faults {
        &self.faults
    }

    pub(crate) fn set(&mut self, faults: Faults) {
        self.faults = faults;
        self.n = 0;
    }

    pub(crate) fn next(&mut self) -> Plan {
        self.n += 1;
        let (n, f) = (self.n, &self.faults);
        let fail = if every(n, f.error_500_every) {
            Some(Fail::Internal)
        } else if every(n, f.rate_limit_every) {
            Some(Fail::RateLimited {
                retry_after_secs: f.retry_after_secs,
            })
        } else {
            None
        };
        let garbage = fail.is_none() && every(n, f.garbage_every);
        Plan {
            slow: every(n, f.slow_every).then(|| Duration::from_millis(f.slow_ms)),
            fail,
            garbage,
            truncate: fail.is_none() && !garbage && every(n, f.truncate_every),
            duplicate: f.duplicate_records,
            out_of_order: f.out_of_order,
            lost_answer: fail.is_none() && every(n, f.lost_answer_every),
        }
    }
}

/// Applies `duplicate_records` and `out_of_order` to one response's records (sorted): copies
/// first, then the cap (so a capped response is still a sorted prefix — no record before the
/// last one is left out), then the shuffle. `key` makes the shuffle depend on the page, so a
/// re-fetch of the same page is shuffled alike.
pub(crate) fn arrange<T: Clone>(items: Vec<T>, plan: &Plan, key: u64, cap: usize) -> Vec<T> {
    let mut out = if plan.duplicate {
        let mut out = Vec::with_capacity(items.len() + items.len() / 5 + 1);
        for (i, it) in items.into_iter().enumerate() {
            if i % 5 == 0 {
                out.push(it.clone());
            }
            out.push(it);
        }
        out
    } else {
        items
    };
    out.truncate(cap);
    if plan.out_of_order {
        Rng::new(key ^ 0x005E_ED0F_0DE5).shuffle(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(duplicate: bool, out_of_order: bool) -> Plan {
        Plan {
            slow: None,
            fail: None,
            garbage: false,
            truncate: false,
            duplicate,
            out_of_order,
            lost_answer: false,
        }
    }

    #[test]
    fn fault_schedule_hits_every_nth_request_with_precedence() {
        let mut c = FaultClock::default();
        c.set(Faults {
            error_500_every: Some(6),
            rate_limit_every: Some(3),
            retry_after_secs: 7,
            garbage_every: Some(2),
            truncate_every: Some(5),
            slow_every: Some(4),
            slow_ms: 10,
            ..Faults::default()
        });
        let plans: Vec<Plan> = (0..6).map(|_| c.next()).collect();
        assert!(plans[0].fail.is_none() && !plans[0].garbage && !plans[0].truncate);
        assert!(plans[1].garbage);
        assert_eq!(
            plans[2].fail,
            Some(Fail::RateLimited {
                retry_after_secs: 7
            })
        );
        assert!(plans[3].garbage && plans[3].slow == Some(Duration::from_millis(10)));
        assert!(plans[4].truncate);
        assert_eq!(plans[5].fail, Some(Fail::Internal));
        assert!(!plans[5].garbage, "a 500 is not also garbled");
        c.set(Faults::default());
        assert!(c.next().fail.is_none(), "set_faults restarts the count");
    }

    #[test]
    fn arrange_duplicates_every_fifth_from_the_first_and_shuffles_deterministically() {
        let items: Vec<u32> = (0..11).collect();
        assert_eq!(
            arrange(items.clone(), &plan(true, false), 1, usize::MAX),
            vec![0, 0, 1, 2, 3, 4, 5, 5, 6, 7, 8, 9, 10, 10]
        );
        let a = arrange(items.clone(), &plan(false, true), 9, usize::MAX);
        assert_eq!(a, arrange(items.clone(), &plan(false, true), 9, usize::MAX));
        assert_ne!(a, items);
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, items);
    }
}
