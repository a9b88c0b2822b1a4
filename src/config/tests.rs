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
    assert_eq!(c.sla.clocks, petitiond_core::sla::policy::defaults());
    // And the reply check's default lists, written out.
    let d = petitiond_core::reply::defaults();
    assert!(c.replies.enabled);
    assert_eq!(c.replies.phrases, d.elements);
    assert_eq!(c.replies.banned, d.banned);
    assert!(c.email.is_none(), "e-mail is disabled in the example");
    assert_eq!(
        c.topics(),
        vec![
            "petitiond.alerts",
            "petitiond.dead-letter",
            "petitiond.dept.civil-affairs",
            "petitiond.dept.civil-affairs.status",
            "petitiond.dept.health",
            "petitiond.dept.health.status",
            "petitiond.dept.housing",
            "petitiond.dept.housing.status",
            "petitiond.dept.hrss",
            "petitiond.dept.hrss.status",
            "petitiond.dept.intake-desk",
            "petitiond.dept.intake-desk.status",
            "petitiond.dept.key-cases",
            "petitiond.dept.key-cases.status",
            "petitiond.dept.natural-resources",
            "petitiond.dept.natural-resources.status",
            "petitiond.dept.policy-desk",
            "petitiond.dept.policy-desk.status",
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
            // SASL secrets need TLS (the properties follow, so the secrets keep their lines).
            &format!("[kafka.secret_properties]\n{secrets}\n[kafka.properties]\n\"security.protocol\" = \"SASL_SSL\"\n[[departments]]"),
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

/// `admin.listen = "0.0.0.0:..."` started an admin API without authentication on every
/// interface. Now off loopback a token is required (run and `check` both refuse), a token is
/// a secret like the others (env, file, systemd credential), never a TOML value, and short
/// tokens are refused.
#[test]
fn a_non_loopback_admin_listener_without_a_token_is_refused() {
    let with = |admin: &str| MINIMAL.replace("[kafka]", &format!("[admin]\n{admin}\n\n[kafka]"));
    let errs = parse(&with("listen = \"0.0.0.0:9464\"")).unwrap_err().0;
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(
        (errs[0].path.as_str(), errs[0].line),
        ("admin.listen", Some(3))
    );
    assert!(
        errs[0].message.contains("not a loopback address"),
        "{}",
        errs[0]
    );
    assert!(errs[0].message.contains("admin.token"), "{}", errs[0]);
    for listen in ["127.0.0.1:9464", "[::1]:9464"] {
        let c = parse(&with(&format!("listen = \"{listen}\""))).unwrap();
        assert!(
            c.admin.token.is_none(),
            "loopback without a token: closed, not refused"
        );
    }
    assert!(parse(&with("enabled = false\nlisten = \"0.0.0.0:9464\"")).is_ok());

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("admin.token"), "0123456789abcdef0123\n").unwrap();
    std::fs::write(dir.path().join("short"), "abc\n").unwrap();
    let at = |admin: &str| Config::parse(&with(admin), "t.toml", dir.path());
    let c = at("listen = \"0.0.0.0:9464\"\ntoken = { file = \"admin.token\" }").unwrap();
    assert_eq!(
        c.admin.token.as_ref().unwrap().expose(),
        "0123456789abcdef0123"
    );
    let errs = at("token = { file = \"short\" }").unwrap_err().0;
    assert!(errs[0].message.contains("too short"), "{errs:?}");
    // A token written into the TOML is an error that does not repeat it.
    let errs = at("token = \"0123456789abcdef-in-the-toml\"")
        .unwrap_err()
        .0;
    assert_eq!(errs[0].path, "admin.token");
    assert!(!errs[0].message.contains("in-the-toml"), "{}", errs[0]);
    assert!(errs[0].message.contains("credential"), "{}", errs[0]);
    // A systemd credential: $CREDENTIALS_DIRECTORY/<name>; without it, a clear error.
    let errs = at("token = { credential = \"petitiond-admin\" }")
        .unwrap_err()
        .0;
    assert!(
        errs[0]
            .message
            .contains("$CREDENTIALS_DIRECTORY is not set"),
        "{errs:?}"
    );
    let errs = at("token = { credential = \"../x\" }").unwrap_err().0;
    assert!(
        errs[0].message.contains("not a credential name"),
        "{errs:?}"
    );
}

/// Each department reports on its own status topic (`<topic>.status` unless given); a status
/// topic shared with anything else, or a trusted department that does not exist, is an error.
#[test]
fn each_department_has_its_own_status_topic() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.departments[0].status_topic, "t.intake.status");
    assert_eq!(
        c.status_topics(),
        vec![
            (
                "t.intake.status".to_string(),
                StatusSource::Department("intake-desk".into())
            ),
            ("petitiond.status".to_string(), StatusSource::Shared),
        ]
    );
    assert!(
        c.sla.shared_status_departments.is_empty(),
        "none trusted by default"
    );
    let two = MINIMAL.replace(
        "[routing]",
        "status_topic = \"t.hrss\"\n\n[[departments]]\nid = \"hrss\"\nname = \"H\"\ntopic = \"t.hrss\"\n\n[routing]",
    );
    let errs = parse(&two).unwrap_err().0;
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].path, "departments[0].status_topic");
    assert!(errs[0].message.contains("`t.hrss`"), "{}", errs[0]);
    let trusted = format!(
        "{MINIMAL}\n[sla]\nshared_status_departments = [\"intake-desk\", \"nobody\"]\nstatus_max_future_skew_secs = 60\n"
    );
    let errs = parse(&trusted).unwrap_err().0;
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].path, "sla.shared_status_departments[1]");
}

/// A password over a plaintext transport is refused, with its key and line, unless
/// `allow_plaintext_auth = true`: IMAP `tls = "none"`, SMTP `tls = "none"` with a password,
/// Kafka SASL secrets without SASL_SSL, an HTTP source's key or token over `http://`.
#[test]
fn passwords_over_plaintext_are_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pw"), "s3cret\n").unwrap();
    let cases: [(&str, &str, &str); 5] = [
        (
            "channels.mailbox.tls",
            "[channels.mailbox]\nkind = \"imap\"\nhost = \"imap.example.gov.cn\"\ntls = \"none\"\nusername = \"scans\"\npassword = { file = \"pw\" }\n",
            "allow_plaintext_auth = true\n",
        ),
        (
            "alerts.email.tls",
            "[alerts.email]\nsmtp_host = \"smtp.example.gov.cn\"\ntls = \"none\"\nusername = \"u\"\npassword = { file = \"pw\" }\nfrom = \"petitiond@example.gov.cn\"\n",
            "allow_plaintext_auth = true\n",
        ),
        (
            "kafka.secret_properties.\"sasl.password\"",
            "[kafka.secret_properties]\n\"sasl.password\" = { file = \"pw\" }\n",
            "[kafka]\nallow_plaintext_auth = true\n",
        ),
        (
            "channels.hotline.base_url",
            "[channels.hotline]\nprotocol = \"open311\"\nbase_url = \"http://hotline.example.gov.cn/v2\"\napi_key = { file = \"pw\" }\n",
            "allow_plaintext_auth = true\n",
        ),
        (
            "channels.portal.base_url",
            "[channels.portal]\nprotocol = \"paged\"\nbase_url = \"http://xf.example.gov.cn/api\"\npath = \"/p\"\nitems_pointer = \"/items\"\n[channels.portal.mapping]\nid = \"/id\"\ncontent = \"/text\"\n[channels.portal.auth]\nkind = \"bearer\"\ntoken = { file = \"pw\" }\n",
            "",
        ),
    ];
    for (path, section, allow) in cases {
        // The `[kafka]` table is MINIMAL's; its flag goes there.
        let refused = format!("{MINIMAL}\n{section}");
        let errs = Config::parse(&refused, "t.toml", dir.path()).unwrap_err().0;
        let e = errs
            .iter()
            .find(|e| e.path == path)
            .unwrap_or_else(|| panic!("{path} not refused: {errs:?}"));
        assert!(e.line.is_some(), "{e}");
        assert!(e.message.contains("allow_plaintext_auth"), "{e}");
        assert!(!e.to_string().contains("s3cret"), "{e}");
        if allow.is_empty() {
            continue;
        }
        let allowed = if let Some(k) = allow.strip_prefix("[kafka]\n") {
            format!(
                "{}\n{section}",
                MINIMAL.replace("[kafka]\n", &format!("[kafka]\n{k}"))
            )
        } else {
            let (head, tail) = section.split_once('\n').unwrap();
            format!("{MINIMAL}\n{head}\n{allow}{tail}")
        };
        if let Err(e) = Config::parse(&allowed, "t.toml", dir.path()) {
            assert!(
                !e.0.iter()
                    .any(|e| e.message.contains("allow_plaintext_auth")),
                "{path}: still refused with the flag: {e}"
            );
        }
    }
    // TLS, or no password: no flag needed.
    let fine = format!(
        "{MINIMAL}\n[channels.mailbox]\nkind = \"imap\"\nhost = \"h\"\ntls = \"starttls\"\nusername = \"u\"\npassword = {{ file = \"pw\" }}\n[alerts.email]\nsmtp_host = \"s\"\ntls = \"none\"\nfrom = \"p@example.gov.cn\"\n"
    );
    Config::parse(&fine, "t.toml", dir.path()).unwrap_or_else(|e| panic!("{e}"));
}

/// Credentials in a base URL are refused without echoing them; URLs in logs lose user,
/// password, query and fragment.
#[test]
fn urls_never_show_credentials_or_query_strings() {
    let text = format!(
        "{MINIMAL}\n[channels.hotline]\nprotocol = \"open311\"\nbase_url = \"https://u:hunter2@h.example.gov.cn/v2\"\n"
    );
    let errs = parse(&text).unwrap_err().0;
    assert!(
        errs.iter().any(|e| e.path == "channels.hotline.base_url"),
        "{errs:?}"
    );
    assert!(!errs.iter().any(|e| e.to_string().contains("hunter2")));
    let text = format!(
        "{MINIMAL}\n[channels.hotline]\nprotocol = \"open311\"\nbase_url = \"htps//u:hunter2@h?token=abc\"\n"
    );
    let errs = parse(&text).unwrap_err().0;
    assert!(
        !errs
            .iter()
            .any(|e| e.to_string().contains("hunter2") || e.to_string().contains("abc")),
        "{errs:?}"
    );
    for (url, shown) in [
        (
            "https://u:p%40ss@h.example.gov.cn:8443/a/b?token=1&sig=2#f",
            "https://h.example.gov.cn:8443/a/b",
        ),
        ("http://h/x?api_key=k", "http://h/x"),
        (
            "https://h/files/扫描.pdf",
            "https://h/files/%E6%89%AB%E6%8F%8F.pdf",
        ),
        ("/files/1.pdf?X-Amz-Signature=s", "/files/1.pdf"),
        ("ftp//user:pw@host/x?q", "…@host/x"),
        ("weird//user:pw@host/x", "…@host/x"),
        ("中文://用户:密码@主机/路径?令牌", "中文://…@主机/路径"),
    ] {
        assert_eq!(url_for_log(url), shown, "{url}");
    }
}

/// `[replies]`: a list replaces its default, the others stay; an empty element list (every
/// reply would bounce), an empty or repeated phrase are errors with their lines.
#[test]
fn reply_phrase_lists_replace_defaults_and_bad_ones_are_reported_with_lines() {
    let ok = format!("{MINIMAL}\n[replies]\nbanned = [\"再议\"]\n");
    let c = parse(&ok).unwrap();
    assert_eq!(c.replies.banned, vec!["再议"]);
    assert_eq!(
        c.replies.phrases,
        petitiond_core::reply::defaults().elements
    );
    assert_eq!(c.replies.check(Some("此事再议")).banned, vec!["再议"]);
    let text = format!(
        "{MINIMAL}\n[replies]\nfacts = []\nremedy = [\"如不服\", \" \", \"如不服\"]\nresults = [\"x\"]\n"
    );
    let errs = parse(&text).unwrap_err().0;
    let got: Vec<(Option<usize>, &str)> = errs.iter().map(|e| (e.line, e.path.as_str())).collect();
    let line_of = |text: &str, start: &str| {
        text.lines()
            .position(|l| l.starts_with(start))
            .map(|i| i + 1)
    };
    assert!(
        got.contains(&(line_of(&text, "results"), "replies.results")),
        "{errs:#?}"
    );
    let text =
        format!("{MINIMAL}\n[replies]\nfacts = []\nremedy = [\"如不服\", \" \", \"如不服\"]\n");
    let errs = parse(&text).unwrap_err().0;
    let got: Vec<(Option<usize>, &str)> = errs.iter().map(|e| (e.line, e.path.as_str())).collect();
    assert_eq!(
        got,
        vec![
            (line_of(&text, "facts"), "replies.facts"),
            (line_of(&text, "remedy"), "replies.remedy[1]"),
            (line_of(&text, "remedy"), "replies.remedy[2]"),
        ],
        "{errs:#?}"
    );
    assert!(errs[0].message.contains("every reply would be bounced"));
}

/// `[[sla.clocks]].verdicts` only on a clock that starts on `replied` or `evaluated`, and only
/// that event's verdicts.
#[test]
fn clock_verdict_filters_are_validated() {
    let clock = |start: &str, verdicts: &str| {
        format!(
            "{MINIMAL}\n[[sla.clocks]]\nid = \"r\"\nrule = {{ kind = \"working_days\", days = 10 }}\nstart_on = \"{start}\"\nverdicts = {verdicts}\nstop_on = [\"replied\"]\ncitation = \"local\"\n"
        )
    };
    let c = parse(&clock("evaluated", "[\"dissatisfied\"]")).unwrap();
    assert_eq!(c.sla.clocks[0].verdicts, vec!["dissatisfied"]);
    assert!(c.sla.clocks[0].admits_verdict(Some("dissatisfied")));
    assert!(!c.sla.clocks[0].admits_verdict(Some("satisfied")));
    assert!(!c.sla.clocks[0].admits_verdict(None));
    parse(&clock("replied", "[\"bounced\"]")).unwrap();
    for (start, verdicts, path, says) in [
        (
            "evaluated",
            "[\"ok\"]",
            "sla.clocks[0].verdicts[0]",
            "not one of satisfied",
        ),
        (
            "replied",
            "[\"unhappy\"]",
            "sla.clocks[0].verdicts[0]",
            "not one of ok, bounced",
        ),
        (
            "received",
            "[\"dissatisfied\"]",
            "sla.clocks[0].verdicts",
            "only a clock with start_on",
        ),
    ] {
        let errs = parse(&clock(start, verdicts)).unwrap_err().0;
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert_eq!(errs[0].path, path);
        assert!(errs[0].line.is_some());
        assert!(errs[0].message.contains(says), "{}", errs[0].message);
    }
}
