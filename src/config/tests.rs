use super::*;

fn parse(text: &str) -> Result<Config, ConfigErrors> {
    Config::parse(text, "test.toml", Path::new("/cfg"))
}

const MINIMAL: &str = r#"
[kafka]
brokers = "127.0.0.1:9092"

[[departments]]
id = "intake-desk"
name = "接待科"
topic = "t.intake"

[routing]
default_lead = "intake-desk"
"#;

#[test]
fn shipped_example_config_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/petitiond.toml");
    let c = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.departments.len(), 8);
    assert!(c.routing.rules.is_some(), "the example ships routing rules");
    let mb = c.mailbox.as_ref().unwrap();
    assert!(
        matches!(mb.kind, MailboxKind::Maildir { .. }),
        "the example stays Maildir"
    );
    let re = mb.letter_reference.as_ref().unwrap();
    assert_eq!(
        re.captures("来信扫描 信件编号：XF-2026-000123")
            .unwrap()
            .get(1)
            .unwrap()
            .as_str(),
        "XF-2026-000123"
    );
    assert_eq!(c.kafka.delivery_timeout, None);
    // The example lists the plan's clocks: exactly the built-in defaults.
    assert_eq!(c.sla.clocks, crate::sla::policy::defaults());
    assert!(c.email.is_none(), "e-mail is disabled in the example");
    assert_eq!(
        c.topics(),
        vec![
            "petitiond.alerts",
            "petitiond.dead-letter",
            "petitiond.dept.civil-affairs",
            "petitiond.dept.health",
            "petitiond.dept.housing",
            "petitiond.dept.hrss",
            "petitiond.dept.intake-desk",
            "petitiond.dept.key-cases",
            "petitiond.dept.natural-resources",
            "petitiond.dept.policy-desk",
            "petitiond.status"
        ]
    );
}

#[test]
fn minimal_config_gets_defaults() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.data_dir, Path::new("/cfg/data"));
    assert_eq!(c.store.path, Path::new("/cfg/data/petitiond.db"));
    assert_eq!(c.kafka.partitions, 3);
    assert_eq!(c.shutdown_deadline, Duration::from_secs(30));
    assert!(c.mailbox.is_none());
}

#[test]
fn misspelled_key_and_bad_value_are_both_reported_with_lines() {
    let text = "[daemon]\nshutdown_deadline_secs = 5\nlog_formt = \"json\"\n\n[kafka]\nbrokers = \"b:9092\"\npartitions = \"three\"\n\n[[departments]]\nid = \"a\"\nname = \"A\"\ntopic = \"t\"\n\n[routing]\ndefault_lead = \"a\"\n";
    let errs = parse(text).unwrap_err().0;
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert_eq!(errs[0].line, Some(3));
    assert_eq!(errs[0].path, "daemon.log_formt");
    assert!(
        errs[0].message.contains("unknown field"),
        "{}",
        errs[0].message
    );
    assert_eq!(errs[1].line, Some(7));
    assert_eq!(errs[1].path, "kafka.partitions");
}

#[test]
fn semantic_errors_are_all_reported() {
    let text = r#"
[daemon]
log_format = "xml"

[kafka]
brokers = "b:9092"
partitions = 0
dead_letter_topic = "bad topic"

[kafka.properties]
acks = "1"
"sasl.password" = "hunter2"

[[departments]]
id = "a"
name = "A"
topic = "t"

[[departments]]
id = "a"
name = "B"
topic = "t2"

[routing]
default_lead = "nobody"
"#;
    let errs = parse(text).unwrap_err().0;
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    for want in [
        "daemon.log_format",
        "kafka.partitions",
        "kafka.dead_letter_topic",
        "kafka.properties.acks",
        "kafka.properties.\"sasl.password\"",
        "departments[1].id",
        "routing.default_lead",
    ] {
        assert!(paths.contains(&want), "missing {want} in {paths:?}");
    }
    let dup = errs.iter().find(|e| e.path == "departments[1].id").unwrap();
    assert_eq!(dup.line, Some(20));
    // The secret's value never appears in an error.
    assert!(!errs.iter().any(|e| e.to_string().contains("hunter2")));
}

#[test]
fn syntax_error_names_the_line() {
    let errs = parse("[kafka]\nbrokers = \n").unwrap_err().0;
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].line, Some(2));
    assert!(errs[0].message.starts_with("TOML syntax"));
}

#[test]
fn missing_required_section_is_reported() {
    let errs = parse("[routing]\ndefault_lead = \"a\"\n").unwrap_err().0;
    assert!(
        errs[0].message.contains("missing field `kafka`"),
        "{errs:?}"
    );
}

#[test]
fn secrets_come_from_env_or_file_never_the_toml() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pw"), "s3cret\n").unwrap();
    let with = |secrets: &str| {
        MINIMAL.replace(
            "[[departments]]",
            &format!("[kafka.secret_properties]\n{secrets}\n[[departments]]"),
        )
    };
    let bad = with(
        "\"sasl.password\" = { file = \"pw\" }\n\"ssl.key.password\" = { env = \"PETITIOND_TEST_UNSET_VAR\" }\n",
    );
    let errs = Config::parse(&bad, "t.toml", dir.path()).unwrap_err().0;
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].path, "kafka.secret_properties.\"ssl.key.password\"");
    assert_eq!(errs[0].line, Some(7), "the secret's own line");
    assert!(errs[0].message.contains("PETITIOND_TEST_UNSET_VAR"));

    let good = with("\"sasl.password\" = { file = \"pw\" }\n");
    let c = Config::parse(&good, "t.toml", dir.path()).unwrap();
    assert_eq!(
        c.kafka.secret_properties["sasl.password"].expose(),
        "s3cret"
    );
    assert!(!format!("{c:?}").contains("s3cret"));
}

#[test]
fn a_credential_name_must_be_a_plain_file_name_and_not_mixed_with_env_or_file() {
    // Checked before $CREDENTIALS_DIRECTORY is looked at, so this holds with or without it.
    for (secret, want) in [
        (
            "{ credential = \"../etc/shadow\" }",
            "is not a credential name",
        ),
        ("{ credential = \"a/b\" }", "is not a credential name"),
        ("{ credential = \"..\" }", "is not a credential name"),
        ("{ credential = \"\" }", "is not a credential name"),
        (
            "{ credential = \"kafka\", env = \"X\" }",
            "exactly one of `env`, `file` or `credential`",
        ),
        ("{}", "exactly one of `env`, `file` or `credential`"),
        ("\"plain\"", "{ credential = \"NAME\" }"),
    ] {
        let text = MINIMAL.replace(
            "[[departments]]",
            &format!("[kafka.secret_properties]\n\"sasl.password\" = {secret}\n[[departments]]"),
        );
        let errs = parse(&text).unwrap_err().0;
        assert_eq!(errs.len(), 1, "{secret}: {errs:?}");
        assert_eq!(errs[0].path, "kafka.secret_properties.\"sasl.password\"");
        assert_eq!(errs[0].line, Some(6), "{secret}");
        assert!(
            errs[0].message.contains(want),
            "{secret}: {}",
            errs[0].message
        );
        assert!(
            !errs[0].message.contains("plain"),
            "a value is never echoed"
        );
    }
}

#[test]
fn errors_inside_arrays_of_tables_name_index_and_line() {
    let text = MINIMAL.replace("topic = \"t.intake\"", "topc = \"t.intake\"");
    let errs = parse(&text).unwrap_err().0;
    let typo = errs
        .iter()
        .find(|e| e.path == "departments[0].topc")
        .expect("typo reported");
    assert_eq!(typo.line, Some(8));
    // Without `topic` the entry is incomplete: reported too, at the table's header.
    let missing = errs
        .iter()
        .find(|e| e.message.contains("missing field `topic`"))
        .unwrap();
    assert_eq!(
        (missing.path.as_str(), missing.line),
        ("departments[0]", Some(5))
    );
}

#[test]
fn shipped_http_channel_sections_parse_when_enabled() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/petitiond.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    // Enable the two HTTP channel sections only.
    let text = text
        .replacen(
            "[channels.hotline]\nenabled = false",
            "[channels.hotline]\nenabled = true",
            1,
        )
        .replacen(
            "[channels.portal]\nenabled = false",
            "[channels.portal]\nenabled = true",
            1,
        )
        .replace("PETITIOND_PORTAL_SECRET", "PATH");
    let c = Config::parse(&text, "petitiond.toml", path.parent().unwrap())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.http_sources.len(), 2);
    let hotline = &c.http_sources[0];
    assert_eq!(hotline.name, "hotline");
    assert!(matches!(
        hotline.protocol,
        http::Protocol::Open311 {
            updated_after: true,
            max_per_response: 1000,
            ..
        }
    ));
    let portal = &c.http_sources[1];
    assert_eq!(portal.mapping.id, vec!["/petitionNo".to_string()]);
    let http::Auth::Hmac(h) = &portal.auth else {
        panic!("hmac auth expected")
    };
    assert_eq!(h.canonical, http::DEFAULT_CANONICAL);
}

#[test]
fn http_channel_errors_name_their_keys_and_lines() {
    let text = format!(
        "{MINIMAL}\n[channels.portal]\nprotocol = \"paged\"\nbase_url = \"ftp://x\"\npath = \"/p\"\n\
         [channels.portal.pagination]\nkind = \"pages\"\n[channels.portal.mapping]\nid = \"petitionNo\"\n\
         [channels.portal.auth]\nkind = \"hmac\"\napp_key = \"k\"\nsecret = {{ env = \"PETITIOND_NO_SUCH_VAR\" }}\n"
    );
    let e = parse(&text).unwrap_err().to_string();
    for needle in [
        "channels.portal.base_url",
        "not an http(s) URL",
        "channels.portal.pagination.kind",
        "channels.portal.mapping.id",
        "not a JSON pointer",
        "channels.portal.mapping.content",
        "PETITIOND_NO_SUCH_VAR",
    ] {
        assert!(e.contains(needle), "{needle} missing in:\n{e}");
    }
    assert!(e.contains("test.toml:"), "errors carry file:line\n{e}");
}

#[test]
fn imap_mailbox_is_validated_with_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("imap-password");
    std::fs::write(&pw, "s3cret\n").unwrap();
    let text = format!(
        "{MINIMAL}\n[channels.mailbox]\nkind = \"imap\"\nhost = \"imap.example.gov.cn\"\nusername = \"scans\"\npassword = {{ file = \"{}\" }}\nletter_reference_pattern = '信件编号[:：]\\s*([A-Z0-9-]+)'\n",
        pw.display()
    );
    let c = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    let m = c.mailbox.unwrap();
    let MailboxKind::Imap(i) = &m.kind else {
        panic!("not imap: {:?}", m.kind)
    };
    assert_eq!((i.port, i.tls), (993, ImapTls::Tls));
    assert_eq!(i.mailbox, "INBOX");
    assert_eq!(i.auth, ImapAuth::Login);
    assert_eq!(i.after_commit, AfterCommit::None);
    assert!(i.idle);
    assert_eq!(i.password.expose(), "s3cret");
    assert!(
        !format!("{i:?}").contains("s3cret"),
        "Debug hides the password"
    );
    assert_eq!(m.max_decoded_bytes, m.max_message_bytes);
    assert!(m.letter_reference.is_some());
}

#[test]
fn imap_mailbox_errors_are_all_reported_with_lines() {
    let text = format!(
        "{MINIMAL}
[channels.mailbox]
kind = \"imap\"
tls = \"ssl\"
auth = \"cram-md5\"
after_commit = \"move\"
commit_flag = \"$Done\"
path = \"mail\"
letter_reference_pattern = \"([A-Z\"
password = \"plain-text-password\"
"
    );
    let errs = parse(&text).unwrap_err().0;
    let got: Vec<(&str, Option<usize>)> = errs.iter().map(|e| (e.path.as_str(), e.line)).collect();
    for want in [
        ("channels.mailbox.tls", Some(15)),
        ("channels.mailbox.auth", Some(16)),
        ("channels.mailbox.commit_flag", Some(18)),
        ("channels.mailbox.path", Some(19)),
        ("channels.mailbox.letter_reference_pattern", Some(20)),
        ("channels.mailbox.password", Some(21)),
        ("channels.mailbox.host", None),
        ("channels.mailbox.username", None),
        ("channels.mailbox.move_to", None),
    ] {
        assert!(
            got.iter()
                .any(|(p, l)| *p == want.0 && (want.1.is_none() || *l == want.1)),
            "missing {want:?} in {got:?}"
        );
    }
    // A password in the TOML text is refused and never echoed.
    assert!(
        !errs
            .iter()
            .any(|e| e.to_string().contains("plain-text-password"))
    );
}

#[test]
fn imap_keys_on_a_maildir_mailbox_are_errors() {
    let text = format!(
        "{MINIMAL}\n[channels.mailbox]\npath = \"mail\"\nhost = \"imap.example.gov.cn\"\nidle = false\n"
    );
    let errs = parse(&text).unwrap_err().0;
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        ["channels.mailbox.host", "channels.mailbox.idle"],
        "{errs:#?}"
    );
    // And a Maildir without a path.
    let errs = parse(&format!(
        "{MINIMAL}\n[channels.mailbox]\nkind = \"maildir\"\n"
    ))
    .unwrap_err()
    .0;
    assert_eq!(errs[0].path, "channels.mailbox.path");
}
