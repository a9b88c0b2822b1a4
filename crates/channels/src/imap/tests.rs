use super::conn::greeting;
use super::*;

#[test]
fn folder_names_are_encoded_in_modified_utf7() {
    // RFC 3501 §5.1.3's example, and the usual cases.
    assert_eq!(
        mailbox_name("~peter/mail/台北/日本語").unwrap(),
        "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
    );
    assert_eq!(mailbox_name("INBOX").unwrap(), "INBOX");
    assert_eq!(mailbox_name("A&B").unwrap(), "A&-B");
    assert_eq!(mailbox_name("扫描来信").unwrap(), "&Ymtjz2dlT+E-");
    assert!(mailbox_name("").is_err());
    assert!(mailbox_name("a\r\nb").is_err());
}

#[test]
fn flags_must_be_atoms_and_not_destructive() {
    assert!(flag_name("$PetitiondRecorded").is_ok());
    assert!(flag_name("\\Flagged").is_ok());
    assert!(
        flag_name("\\Deleted").is_err(),
        "would lose mail on expunge"
    );
    assert!(flag_name("two words").is_err());
    assert!(flag_name("a)b").is_err());
    assert!(flag_name("").is_err());
}

#[test]
fn backoff_doubles_with_jitter_up_to_the_cap_and_resets() {
    let mut b = Backoff::new(Duration::from_millis(1000), Duration::from_millis(5000));
    let bounds = [
        (500, 1000),
        (1000, 2000),
        (2000, 4000),
        (2500, 5000),
        (2500, 5000),
    ];
    for (lo, hi) in bounds {
        let d = b.delay().as_millis() as u64;
        assert!((lo..=hi).contains(&d), "{d} not in {lo}..={hi}");
    }
    b.reset();
    assert!(b.delay() <= Duration::from_millis(1000));
}

#[test]
fn plain_auth_answers_with_nul_separated_credentials() {
    use async_imap::Authenticator;
    let mut a = PlainAuth {
        username: "u".into(),
        password: "p".into(),
    };
    assert_eq!(a.process(b""), b"\0u\0p");
}

#[test]
fn cursor_round_trips_as_json() {
    let c = Cursor {
        mailbox: "INBOX".into(),
        uidvalidity: 1_700_000_000,
        uid: 42,
    };
    let s = serde_json::to_string(&c).unwrap();
    assert_eq!(
        s,
        r#"{"mailbox":"INBOX","uidvalidity":1700000000,"uid":42}"#
    );
    assert_eq!(serde_json::from_str::<Cursor>(&s).unwrap(), c);
}

/// A scripted IMAP server on a loopback port, for what Dovecot does not do on demand (a
/// flags-only FETCH with the UID before the answer, a refused body). Every connection is
/// greeted; each command line gets `answer(command)` with `{tag}` replaced by its tag, and
/// a tagged OK unless the answer has its own tagged line. Returns the port and a count of
/// connections.
async fn scripted(
    answer: impl Fn(&str) -> String + Send + Sync + 'static,
) -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let answer = Arc::new(answer);
    let connections = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&connections);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let answer = Arc::clone(&answer);
            tokio::spawn(async move {
                let (r, mut w) = tcp.into_split();
                let mut lines = BufReader::new(r).lines();
                w.write_all(b"* OK scripted\r\n").await.unwrap();
                while let Ok(Some(line)) = lines.next_line().await {
                    let (tag, command) = line.split_once(' ').unwrap_or((&line, ""));
                    let mut reply = answer(command).replace("{tag}", tag);
                    if !reply.contains(&format!("{tag} ")) {
                        reply.push_str(&format!("{tag} OK done\r\n"));
                    }
                    if w.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                    if command.starts_with("LOGOUT") {
                        return;
                    }
                }
            });
        }
    });
    (port, connections)
}

/// The answers every scripted session needs: login, capabilities (no IDLE), select.
fn common(command: &str) -> Option<String> {
    let c = command.to_ascii_uppercase();
    if c.starts_with("LOGIN") || c.starts_with("NOOP") {
        Some(String::new())
    } else if c.starts_with("CAPABILITY") {
        Some("* CAPABILITY IMAP4rev1 UIDPLUS\r\n".into())
    } else if c.starts_with("SELECT") {
        Some("* 2 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n{tag} OK [READ-WRITE] ok\r\n".into())
    } else if c.starts_with("LOGOUT") {
        Some("* BYE\r\n".into())
    } else {
        None
    }
}

async fn session_on(port: u16) -> Session<Conn> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut c = Client::new(Conn::Plain(tcp));
    greeting(&mut c).await.unwrap();
    c.login("u", "p").await.map_err(|(e, _)| e).unwrap()
}

const MAIL: &str = "From: a@b.cn\r\nSubject: x\r\n\r\nhello\r\n";

/// Regression: the body FETCH was matched by UID alone, so a flags-only FETCH for the same
/// UID arriving first (another session flagging the mail, QRESYNC-style with the UID) read
/// as "no body", and the mail was skipped as expunged.
#[tokio::test]
async fn a_flags_only_fetch_with_the_same_uid_is_not_the_body() {
    let (port, _) = scripted(|c| {
        common(c).unwrap_or_else(|| {
            assert!(c.starts_with("UID FETCH 7 "), "{c}");
            format!(
                "* 3 FETCH (UID 7 FLAGS (\\Flagged))\r\n* 3 FETCH (UID 7 BODY[] {{{}}}\r\n{MAIL})\r\n* 3 FETCH (UID 7 MODSEQ (9) FLAGS ())\r\n",
                MAIL.len()
            )
        })
    })
    .await;
    let mut s = session_on(port).await;
    assert_eq!(
        fetch_body(&mut s, 7).await.unwrap(),
        Body::Bytes(MAIL.as_bytes().to_vec())
    );
}

/// No body in the answer: expunged only if `UID SEARCH` no longer finds the mail;
/// otherwise an error (tried again), never a skip.
#[tokio::test]
async fn no_body_is_expunged_only_when_search_no_longer_finds_the_mail() {
    for (search, expect_gone) in [("* SEARCH 7\r\n", false), ("* SEARCH\r\n", true)] {
        let (port, _) = scripted(move |c| {
            common(c).unwrap_or_else(|| {
                if c.starts_with("UID SEARCH") {
                    search.into()
                } else {
                    "* 3 FETCH (UID 7 FLAGS (\\Seen))\r\n".into()
                }
            })
        })
        .await;
        let mut s = session_on(port).await;
        let r = fetch_body(&mut s, 7).await;
        if expect_gone {
            assert_eq!(r.unwrap(), Body::Gone);
        } else {
            assert!(matches!(r, Err(ImapError::NoBody)), "{r:?}");
        }
    }
}

/// Regression: async-imap ends a FETCH quietly on a tagged NO, and the empty answer read
/// as "expunged"; a refusal is an error (tried again), never a skip.
#[tokio::test]
async fn a_refused_body_fetch_is_an_error_not_an_expunge() {
    let (port, _) =
        scripted(|c| common(c).unwrap_or_else(|| "{tag} NO [UNAVAILABLE] try later\r\n".into()))
            .await;
    let mut s = session_on(port).await;
    let r = fetch_body(&mut s, 7).await;
    assert!(
        matches!(&r, Err(ImapError::No(m)) if m.contains("try later")),
        "{r:?}"
    );
}

/// A response async-imap cannot parse is `Parse`, and the error's text does not quote it
/// (async-imap's own I/O error carries the whole buffer: here a FETCH with mail text).
#[tokio::test]
async fn an_unparsable_answer_is_a_parse_error_that_quotes_nothing() {
    let (port, _) = scripted(|c| {
        common(c).unwrap_or_else(|| "* 3 FETCH (UID 7 BODY[] 张三 13812345678 ((\r\n".into())
    })
    .await;
    let mut s = session_on(port).await;
    let e = fetch_body(&mut s, 7).await.unwrap_err();
    assert!(matches!(e, ImapError::Parse), "{e:?}");
    let shown = format!("{:#}", anyhow::Error::new(e).context("fetch body"));
    assert!(
        !shown.contains("13812345678") && !shown.contains("张三"),
        "{shown}"
    );
    assert!(unreadable(
        &anyhow::Error::new(ImapError::Parse).context("fetch body")
    ));
}

/// One mail the server refuses to send (Dovecot: `NO [SERVERBUG]` for a damaged file) is
/// tried on READ_ATTEMPTS connections, then quarantined as `unreadable`; the mail after it
/// is read, and the cursor passes both.
#[tokio::test]
async fn a_mail_the_server_will_not_send_is_quarantined_and_the_next_is_read() {
    let (port, connections) = scripted(|c| {
        common(c).unwrap_or_else(|| {
            if c.starts_with("UID FETCH 1:* ") {
                "* 1 FETCH (UID 1 RFC822.SIZE 30 INTERNALDATE \"02-Mar-2026 09:16:00 +0800\")\r\n\
                 * 2 FETCH (UID 2 RFC822.SIZE 30 INTERNALDATE \"02-Mar-2026 09:16:00 +0800\")\r\n"
                    .into()
            } else if c.starts_with("UID FETCH 3:* ") {
                "* 2 FETCH (UID 2 RFC822.SIZE 30 INTERNALDATE \"02-Mar-2026 09:16:00 +0800\")\r\n"
                    .into()
            } else if c.starts_with("UID FETCH 1 ") {
                "{tag} NO [SERVERBUG] Internal error occurred\r\n".into()
            } else if c.starts_with("UID FETCH 2 ") {
                format!("* 2 FETCH (UID 2 BODY[] {{{}}}\r\n{MAIL})\r\n", MAIL.len())
            } else {
                format!("{{tag}} BAD unexpected {c}\r\n")
            }
        })
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(
        petitiond_store::SqliteStore::open(&dir.path().join("p.db"), Duration::from_secs(5))
            .unwrap(),
    );
    let (tx, mut rx) = mpsc::channel::<Incoming>(4);
    let channel = ImapChannel {
        source: "mailbox".into(),
        imap: ImapConfig {
            host: "127.0.0.1".into(),
            port,
            tls: ImapTls::None,
            tls_ca_file: None,
            username: "u".into(),
            password: petitiond_core::diag::Secret::from("p"),
            mailbox: "INBOX".into(),
            auth: ImapAuth::Login,
            after_commit: AfterCommit::None,
            idle: false,
            timeout: Duration::from_secs(5),
            reconnect_initial: Duration::from_millis(10),
            reconnect_max: Duration::from_millis(20),
            allow_plaintext_auth: true,
        },
        max_message_bytes: 1024 * 1024,
        poll_interval: Duration::from_millis(50),
        spool: dir.path().join("spool"),
        intake: tx,
        store: Arc::clone(&store),
        metrics: Metrics::new(),
        lease: None,
    };
    let stop = CancellationToken::new();
    let running = tokio::spawn(channel.run(stop.clone()));
    let mut got = Vec::new();
    for _ in 0..2 {
        let inc = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("intake got nothing")
            .unwrap();
        let (what, answer) = match &inc.payload {
            Payload::Rejected { reason, raw, .. } => {
                let note = String::from_utf8_lossy(raw).into_owned();
                assert!(note.contains(&inc.reference), "{note}");
                (format!("rejected {reason}"), Disposition::Quarantined(1))
            }
            Payload::Mail { raw, .. } => {
                assert_eq!(raw, MAIL.as_bytes());
                ("mail".to_string(), Disposition::Recorded("x".into()))
            }
            other => panic!("{other:?}"),
        };
        got.push((inc.reference.clone(), what));
        inc.done.send(Ok(answer)).unwrap();
    }
    assert_eq!(
        got,
        [
            (
                "imap:INBOX/7/1".to_string(),
                format!("rejected {UNREADABLE}")
            ),
            ("imap:INBOX/7/2".to_string(), "mail".to_string()),
        ]
    );
    assert!(
        connections.load(std::sync::atomic::Ordering::SeqCst) >= READ_ATTEMPTS as usize,
        "tried on {READ_ATTEMPTS} connections"
    );
    // The cursor passes both mails.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let c = store.cursor("mailbox").unwrap();
        if c.as_deref().is_some_and(|c| c.contains("\"uid\":2")) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "cursor: {c:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    running.await.unwrap().unwrap();
}
