use crate::helpers::*;
use std::time::Duration;

fn schema() -> jsonschema::Validator {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schema/envelope.v1.json"
    ))
    .unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
}

#[test]
fn n_mails_become_n_cloudevents_with_headers_key_and_valid_data() {
    let Some(brokers) = broker() else { return };
    let mut app = TestApp::new(&brokers, "");
    app.start();
    const N: usize = 25;
    let ids: Vec<String> = (0..N).map(|i| app.deliver(&letter(i))).collect();
    let records = consume(
        &brokers,
        &app.topic,
        N,
        Duration::from_secs(90),
        Duration::from_secs(2),
    );
    assert_exactly_once(&records, &ids);

    let schema = schema();
    for r in &records {
        let h = &r.headers;
        assert_eq!(h["ce_specversion"], "1.0");
        assert_eq!(h["ce_type"], "cn.gov.petition.item.routed.v1");
        assert_eq!(h["ce_source"], "urn:petitiond:letter:mailbox");
        assert_eq!(h["ce_subject"], r.key, "key and subject are the item id");
        assert_eq!(h["ce_channel"], "letter");
        assert_eq!(h["ce_role"], "lead");
        assert_eq!(h["ce_department"], "intake-desk");
        assert_eq!(h["content-type"], "application/json");
        assert!(
            h["ce_time"].parse::<jiff::Timestamp>().is_ok(),
            "ce_time {}",
            h["ce_time"]
        );
        assert!(h["ce_dataref"].starts_with("urn:petitiond:blob:sha256:"));
        assert_eq!(h["ce_id"].len(), 36);
        let data: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
        let errors: Vec<String> = schema
            .iter_errors(&data)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "record does not match schema/envelope.v1.json: {errors:?}"
        );
        assert_eq!(data["id"], r.key.as_str());
        assert_eq!(data["attachments"][0]["media_type"], "application/pdf");
        assert_eq!(data["routing"]["lead"], "intake-desk");
        // Arrival time is the Maildir delivery time, not the Date: header.
        assert!(
            data["received_at"]
                .as_str()
                .unwrap()
                .starts_with("2026-03-02T01:0")
        );
    }
    let ce_ids: std::collections::HashSet<_> =
        records.iter().map(|r| r.headers["ce_id"].clone()).collect();
    assert_eq!(ce_ids.len(), N, "ce_id is unique per record");

    // Cursor: every mail moved to cur/ once durable.
    let new = std::fs::read_dir(app.maildir.join("new")).unwrap().count();
    let cur = std::fs::read_dir(app.maildir.join("cur")).unwrap().count();
    assert_eq!((new, cur), (0, N));

    let (status, metrics) = app.http_get("/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains(&format!(
            "petitiond_items_received_total{{channel=\"letter\"}} {N}"
        )),
        "{metrics}"
    );
    assert!(!metrics.contains("13812345678"), "personal data in metrics");
    assert_eq!(app.http_get("/readyz").0, 200);

    assert_eq!(
        app.terminate(Duration::from_secs(30)),
        Some(0),
        "clean stop exits 0"
    );
    let logs = app.logs();
    assert!(logs.contains("stopped cleanly"), "{logs}");
    for raw in ["13812345678", "供暖不足", "scan-1.pdf"] {
        assert!(!logs.contains(raw), "personal data `{raw}` in the logs");
    }
}

#[test]
fn a_mail_seen_again_is_not_routed_twice() {
    let Some(brokers) = broker() else { return };
    let mut app = TestApp::new(&brokers, "");
    app.start();
    let id = app.deliver(&letter(1));
    // The scanner sends the very same mail again (a retry after a lost acknowledgement).
    let again = app.deliver(&letter(1));
    assert_eq!(id, again);
    let other = app.deliver(&letter(2));
    let records = consume(
        &brokers,
        &app.topic,
        2,
        Duration::from_secs(60),
        Duration::from_secs(3),
    );
    assert_exactly_once(&records, &[id, other]);
    let (_, metrics) = app.http_get("/metrics");
    assert!(
        metrics.contains("petitiond_items_duplicate_total{channel=\"letter\"} 1"),
        "{metrics}"
    );
}
