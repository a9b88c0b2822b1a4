//! Times on the wire: one-second resolution, Asia/Shanghai (+08:00) local time, the formats
//! the sims write ([`TimeStyle`]) and the time query parameters they read.

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::Offset;

/// Asia/Shanghai: no daylight saving time since 1991, so a fixed +08:00 is exact.
const SHANGHAI: Offset = Offset::constant(8);

pub(crate) fn local_datetime(secs: i64) -> DateTime {
    SHANGHAI.to_datetime(Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH))
}

fn utc_datetime(secs: i64) -> DateTime {
    Offset::UTC.to_datetime(Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH))
}

fn fmt_dt(dt: DateTime, sep: char) -> String {
    format!(
        "{:04}-{:02}-{:02}{sep}{:02}:{:02}:{:02}",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

/// How a time is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TimeStyle {
    /// `2026-11-28T10:00:00+08:00`
    Offset,
    /// `2026-11-28T02:00:00Z`
    Utc,
    /// `2026-11-28T10:00:00` (Asia/Shanghai local, no offset)
    Naive,
    /// `2026-11-28 10:00:00` (Asia/Shanghai local, the portal's `yyyy-MM-dd HH:mm:ss`)
    LocalSpace,
}

pub(crate) fn fmt_time(secs: i64, style: TimeStyle) -> String {
    match style {
        TimeStyle::Offset => fmt_dt(local_datetime(secs), 'T') + "+08:00",
        TimeStyle::Utc => fmt_dt(utc_datetime(secs), 'T') + "Z",
        TimeStyle::Naive => fmt_dt(local_datetime(secs), 'T'),
        TimeStyle::LocalSpace => fmt_dt(local_datetime(secs), ' '),
    }
}

/// A time query parameter, in unix milliseconds: RFC 3339 with an offset (`Z`, `+08:00`), or
/// without one (`2026-11-28T10:00:00`, `2026-11-28 10:00:00`: Asia/Shanghai local time), or a
/// bare date (its local midnight).
pub(crate) fn parse_time_param(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(ts) = s.parse::<Timestamp>() {
        return Some(ts.as_millisecond());
    }
    if let Ok(dt) = s.parse::<DateTime>() {
        return SHANGHAI.to_timestamp(dt).ok().map(|t| t.as_millisecond());
    }
    if let Ok(d) = s.parse::<jiff::civil::Date>() {
        return SHANGHAI
            .to_timestamp(d.to_datetime(jiff::civil::Time::midnight()))
            .ok()
            .map(|t| t.as_millisecond());
    }
    None
}

/// The first whole second `s` with `s * 1000 >= ms`.
pub(crate) fn secs_at_or_after(ms: i64) -> i64 {
    ms.div_euclid(1000) + i64::from(ms.rem_euclid(1000) != 0)
}

/// The last whole second `s` with `s * 1000 <= ms`.
pub(crate) fn secs_at_or_before(ms: i64) -> i64 {
    ms.div_euclid(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_params_and_formats() {
        let t = 1_795_831_200; // 2026-11-28T10:00:00+08:00
        for s in [
            "2026-11-28T10:00:00+08:00",
            "2026-11-28T02:00:00Z",
            "2026-11-28T10:00:00",
            "2026-11-28 10:00:00",
        ] {
            assert_eq!(parse_time_param(s), Some(t * 1000), "{s}");
        }
        assert_eq!(parse_time_param("2026-11-28"), Some((t - 36_000) * 1000));
        assert_eq!(parse_time_param("yesterday"), None);
        assert_eq!(fmt_time(t, TimeStyle::Offset), "2026-11-28T10:00:00+08:00");
        assert_eq!(fmt_time(t, TimeStyle::Utc), "2026-11-28T02:00:00Z");
        assert_eq!(fmt_time(t, TimeStyle::Naive), "2026-11-28T10:00:00");
        assert_eq!(fmt_time(t, TimeStyle::LocalSpace), "2026-11-28 10:00:00");
        assert_eq!(secs_at_or_after(1_500), 2);
        assert_eq!(secs_at_or_after(2_000), 2);
        assert_eq!(secs_at_or_before(2_999), 2);
        assert_eq!(secs_at_or_before(-1), -1);
    }
}
