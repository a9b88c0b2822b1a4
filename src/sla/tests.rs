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
    // Issue 14: the handling clock gets a provisional due time, and says so.
    assert!(
        w.iter()
            .any(|m| m.contains("`statutory.handle` started now gets a provisional due time")),
        "{w:?}"
    );
    // After the end: running on a provisional 2027, still warned.
    let w = calendar_warnings(&cfg.sla, "2027-01-05T02:00:00Z".parse().unwrap());
    assert!(
        w.iter()
            .any(|m| m.contains("no official working-day calendar for 2027")),
        "{w:?}"
    );
    assert!(
        w.iter()
            .any(|m| m.contains("`letter.register` started now gets a provisional due time")),
        "{w:?}"
    );
}
