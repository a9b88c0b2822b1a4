//! `[channels.mailbox]`: the scanned-letter mailbox (a local directory or IMAP) and its
//! connection settings, validated.

use super::*;

/// Validates `[channels.mailbox]` (enabled); pushes every error found.
pub fn mailbox(v: &mut Validator<'_>, m: &super::RawMailbox) -> Option<MailboxConfig> {
    const AT: &str = "channels.mailbox";
    let at = |k: &str| format!("{AT}.{k}");
    v.positive(&at("poll_interval_ms"), m.poll_interval_ms);
    v.positive(&at("max_message_bytes"), m.max_message_bytes);
    v.positive(&at("max_parts"), m.max_parts as u64);
    v.positive(&at("max_nesting_depth"), m.max_nesting_depth as u64);
    if let Some(d) = m.max_decoded_bytes {
        v.positive(&at("max_decoded_bytes"), d);
    }
    let letter_reference = m.letter_reference_pattern.as_ref().and_then(|p| {
        match regex::RegexBuilder::new(p).size_limit(1 << 20).build() {
            Ok(r) => Some(r),
            Err(e) => {
                v.err(
                    &at("letter_reference_pattern"),
                    format!("not a valid regex: {e}"),
                );
                None
            }
        }
    });
    let imap_keys: [(&str, bool); 16] = [
        ("allow_plaintext_auth", m.allow_plaintext_auth.is_some()),
        ("host", m.host.is_some()),
        ("port", m.port.is_some()),
        ("tls", m.tls.is_some()),
        ("tls_ca_file", m.tls_ca_file.is_some()),
        ("username", m.username.is_some()),
        ("password", m.password.is_some()),
        ("mailbox", m.mailbox.is_some()),
        ("auth", m.auth.is_some()),
        ("after_commit", m.after_commit.is_some()),
        ("commit_flag", m.commit_flag.is_some()),
        ("move_to", m.move_to.is_some()),
        ("idle", m.idle.is_some()),
        ("timeout_secs", m.timeout_secs.is_some()),
        ("reconnect_initial_ms", m.reconnect_initial_ms.is_some()),
        ("reconnect_max_ms", m.reconnect_max_ms.is_some()),
    ];
    let kind = match m.kind.as_str() {
        "maildir" => {
            for (k, set) in imap_keys {
                if set {
                    v.err(
                        &at(k),
                        "is an IMAP key; this mailbox has kind = \"maildir\"",
                    );
                }
            }
            match &m.path {
                Some(p) => Some(MailboxKind::Maildir { path: v.path(p) }),
                None => {
                    v.err(&at("path"), "kind = \"maildir\" needs `path`");
                    None
                }
            }
        }
        "imap" => {
            if m.path.is_some() {
                v.err(
                    &at("path"),
                    "is a Maildir key; this mailbox has kind = \"imap\"",
                );
            }
            imap(v, m).map(MailboxKind::Imap)
        }
        other => {
            v.err(
                &at("kind"),
                format!("`{other}` is not one of maildir, imap"),
            );
            None
        }
    };
    Some(MailboxConfig {
        kind: kind?,
        poll_interval: Duration::from_millis(m.poll_interval_ms),
        max_message_bytes: m.max_message_bytes,
        max_parts: m.max_parts,
        max_nesting_depth: m.max_nesting_depth,
        max_decoded_bytes: m.max_decoded_bytes.unwrap_or(m.max_message_bytes),
        letter_reference,
    })
}

pub(super) fn imap(v: &mut Validator<'_>, m: &super::RawMailbox) -> Option<ImapConfig> {
    let at = |k: &str| format!("channels.mailbox.{k}");
    let tls = match m.tls.as_deref().unwrap_or("tls") {
        "none" => ImapTls::None,
        "starttls" => ImapTls::StartTls,
        "tls" => ImapTls::Tls,
        other => {
            v.err(
                &at("tls"),
                format!("`{other}` is not one of none, starttls, tls"),
            );
            ImapTls::Tls
        }
    };
    let auth = match m.auth.as_deref().unwrap_or("login") {
        "login" => ImapAuth::Login,
        "plain" => ImapAuth::Plain,
        other => {
            v.err(&at("auth"), format!("`{other}` is not one of login, plain"));
            ImapAuth::Login
        }
    };
    let host = m.host.clone().unwrap_or_default();
    if host.trim().is_empty() {
        v.err(&at("host"), "kind = \"imap\" needs `host`");
    }
    let username = m.username.clone().unwrap_or_default();
    if username.is_empty() {
        v.err(&at("username"), "kind = \"imap\" needs `username`");
    }
    let password = match &m.password {
        Some(r) => v.secret(&at("password"), r),
        None => {
            v.err(
                &at("password"),
                "kind = \"imap\" needs `password = { env = \"VAR\" }`, `{ file = \"PATH\" }` or `{ credential = \"NAME\" }`",
            );
            None
        }
    };
    let mailbox = m.mailbox.clone().unwrap_or_else(|| "INBOX".into());
    if let Err(e) = super::imap_names::mailbox_name(&mailbox) {
        v.err(&at("mailbox"), e);
    }
    let after_commit = match m.after_commit.as_deref().unwrap_or("none") {
        "none" => AfterCommit::None,
        "flag" => {
            let f = m
                .commit_flag
                .clone()
                .unwrap_or_else(|| "$PetitiondRecorded".into());
            if let Err(e) = super::imap_names::flag_name(&f) {
                v.err(&at("commit_flag"), e);
            }
            AfterCommit::Flag(f)
        }
        "move" => match &m.move_to {
            Some(t) => {
                if let Err(e) = super::imap_names::mailbox_name(t) {
                    v.err(&at("move_to"), e);
                } else if *t == mailbox {
                    v.err(&at("move_to"), "must differ from `mailbox`");
                }
                AfterCommit::Move(t.clone())
            }
            None => {
                v.err(&at("move_to"), "after_commit = \"move\" needs `move_to`");
                AfterCommit::None
            }
        },
        other => {
            v.err(
                &at("after_commit"),
                format!("`{other}` is not one of none, flag, move"),
            );
            AfterCommit::None
        }
    };
    if m.commit_flag.is_some() && !matches!(after_commit, AfterCommit::Flag(_)) {
        v.err(&at("commit_flag"), "only used with after_commit = \"flag\"");
    }
    if m.move_to.is_some() && !matches!(after_commit, AfterCommit::Move(_)) {
        v.err(&at("move_to"), "only used with after_commit = \"move\"");
    }
    let timeout_secs = m.timeout_secs.unwrap_or(60);
    v.positive(&at("timeout_secs"), timeout_secs);
    let initial = m.reconnect_initial_ms.unwrap_or(1000);
    let max = m.reconnect_max_ms.unwrap_or(60_000);
    v.positive(&at("reconnect_initial_ms"), initial);
    if max < initial {
        v.err(
            &at("reconnect_max_ms"),
            "must be at least reconnect_initial_ms",
        );
    }
    if m.port == Some(0) {
        v.err(&at("port"), "must be greater than 0");
    }
    let tls_ca_file = m.tls_ca_file.as_ref().map(|f| v.path(f));
    if let Some(p) = &tls_ca_file
        && !p.is_file()
    {
        v.err(
            &at("tls_ca_file"),
            format!("{} is not a readable file", p.display()),
        );
    }
    if tls == ImapTls::None && m.allow_plaintext_auth != Some(true) {
        v.err(&at("tls"), format!("`none`: {PLAINTEXT_AUTH}"));
    }
    if tls_ca_file.is_some() && tls == ImapTls::None {
        v.err(
            &at("tls_ca_file"),
            "only used with tls = \"starttls\" or \"tls\"",
        );
    }
    Some(ImapConfig {
        host,
        port: m
            .port
            .unwrap_or(if tls == ImapTls::Tls { 993 } else { 143 }),
        tls,
        tls_ca_file,
        username,
        password: password?,
        mailbox,
        auth,
        after_commit,
        idle: m.idle.unwrap_or(true),
        timeout: Duration::from_secs(timeout_secs),
        reconnect_initial: Duration::from_millis(initial),
        reconnect_max: Duration::from_millis(max),
        allow_plaintext_auth: m.allow_plaintext_auth == Some(true),
    })
}
