//! Mail → envelope for the scanned-letter mailbox: parsing with mail-parser, the scans into
//! the blob store, and the checks that send a mail to quarantine instead.
//!
//! Pure apart from the blob writes; no sockets, no store.

use crate::envelope::{Attachment, Channel, Envelope, Personal, Request, Upstream};
use crate::store::blobs::BlobStore;
use jiff::Timestamp;
use mail_parser::{MessageParser, MimeHeaders};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_parts: usize,
}

/// Why a mail was quarantined. `reason()` is a metric label; `Display` is for the operator.
#[derive(Debug, thiserror::Error)]
pub enum BadMail {
    #[error("not a MIME message: {0}")]
    NotMime(&'static str),
    #[error("{parts} MIME parts, more than the limit of {max}")]
    TooManyParts { parts: usize, max: usize },
    #[error("{size} bytes, more than the limit of {limit}")]
    Oversize { size: u64, limit: u64 },
    #[error("cannot store attachment: {0}")]
    Blob(String),
}

impl BadMail {
    pub fn reason(&self) -> &'static str {
        match self {
            BadMail::NotMime(_) => "malformed_mime",
            BadMail::TooManyParts { .. } => "too_many_parts",
            BadMail::Oversize { .. } => "oversize",
            BadMail::Blob(_) => "blob_store",
        }
    }
}

/// The upstream id of a mail: the SHA-256 of its bytes. Stable across re-reads after a crash
/// and across the new/ → cur/ move, and the same mail delivered twice is recognised.
pub fn upstream_id(raw: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(raw)))
}

/// Parses a scanned-letter mail into an envelope; the raw mail and its scans go to `blobs`.
pub fn normalize(
    raw: &[u8],
    arrival: Timestamp,
    source: &str,
    limits: Limits,
    blobs: &dyn BlobStore,
) -> Result<Envelope, BadMail> {
    let msg = MessageParser::default()
        .parse(raw)
        .ok_or(BadMail::NotMime("no message could be parsed"))?;
    if msg.parts.len() > limits.max_parts {
        return Err(BadMail::TooManyParts {
            parts: msg.parts.len(),
            max: limits.max_parts,
        });
    }
    if msg.from().is_none() || msg.date().is_none() {
        return Err(BadMail::NotMime("no From or Date header"));
    }
    let blob = |b: &[u8]| blobs.put(b).map_err(|e| BadMail::Blob(e.to_string()));
    let raw_ref = blob(raw)?;
    let mut attachments = Vec::new();
    for part in msg.attachments() {
        let bytes = part.contents();
        let r = blob(bytes)?;
        let media_type = part
            .content_type()
            .map(|ct| match ct.subtype() {
                Some(sub) => format!("{}/{}", ct.ctype(), sub),
                None => ct.ctype().to_string(),
            })
            .unwrap_or_else(|| "application/octet-stream".into());
        attachments.push(Attachment {
            name: part.attachment_name().map(Personal::new),
            media_type: media_type.to_ascii_lowercase(),
            size: r.size,
            sha256: r.sha256.clone(),
            dataref: blobs.dataref(&r),
        });
    }
    let text = msg
        .body_text(0)
        .map(|t| t.trim().to_string())
        .unwrap_or_default();
    let mut env = Envelope::new(
        Channel::Letter,
        Upstream {
            id: upstream_id(raw),
            url: None,
            source: source.to_string(),
            raw_ref: raw_ref.claim(),
            ..Default::default()
        },
        arrival,
        Request {
            title: msg.subject().map(|s| Personal::new(s.trim())),
            content: Personal::new(text),
        },
    );
    env.upstream_created_at = msg
        .date()
        .and_then(|d| Timestamp::from_second(d.to_timestamp()).ok());
    env.attachments = attachments;
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::blobs::FsBlobStore;

    const LETTER: &str = "From: scanner@xfj.example.gov.cn\r\nTo: intake@xfj.example.gov.cn\r\nDate: Mon, 2 Mar 2026 09:15:00 +0800\r\nSubject: =?UTF-8?B?5p2l5L+h5omr5o+P77ya5YWz5LqO5ouW5qyg5bel6LWE?=\r\nMessage-ID: <scan-1@xfj.example.gov.cn>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n来信人反映某公司拖欠工资。\r\n--b1\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"scan-0001.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQKJcOkw7zDtsOfCg==\r\n--b1--\r\n";

    fn blobs() -> (tempfile::TempDir, FsBlobStore) {
        let d = tempfile::tempdir().unwrap();
        let b = FsBlobStore::open(d.path()).unwrap();
        (d, b)
    }

    #[test]
    fn letter_becomes_envelope_with_scan_as_claim_check() {
        let (_d, b) = blobs();
        let at: Timestamp = "2026-03-02T01:16:00Z".parse().unwrap();
        let e = normalize(
            LETTER.as_bytes(),
            at,
            "mailbox",
            Limits { max_parts: 10 },
            &b,
        )
        .unwrap();
        assert_eq!(e.channel, Channel::Letter);
        assert_eq!(
            e.received_at, at,
            "clock starts at arrival, not the Date header"
        );
        assert_eq!(
            e.upstream_created_at,
            Some("2026-03-02T01:15:00Z".parse().unwrap())
        );
        assert_eq!(
            e.request.title.as_ref().unwrap().expose(),
            "来信扫描：关于拖欠工资"
        );
        assert!(e.request.content.expose().contains("拖欠工资"));
        assert_eq!(e.attachments.len(), 1);
        let a = &e.attachments[0];
        assert_eq!(a.media_type, "application/pdf");
        assert_eq!(a.name.as_ref().unwrap().expose(), "scan-0001.pdf");
        assert!(b.get(&a.sha256).unwrap().starts_with(b"%PDF"));
        assert!(a.dataref.ends_with(&a.sha256));
        assert_eq!(
            e.id,
            crate::envelope::ItemId::derive(Channel::Letter, &upstream_id(LETTER.as_bytes()))
        );
    }

    #[test]
    fn bad_mails_are_rejected_with_a_reason() {
        let (_d, b) = blobs();
        let at = Timestamp::UNIX_EPOCH;
        let garbage: &[u8] = b"\x00\x01\x02 this is not a mail \xff\xfe";
        let e = normalize(garbage, at, "m", Limits { max_parts: 10 }, &b).unwrap_err();
        assert_eq!(e.reason(), "malformed_mime", "{e}");
        let no_headers = b"just some text\nwithout any header\n";
        assert_eq!(
            normalize(no_headers, at, "m", Limits { max_parts: 10 }, &b)
                .unwrap_err()
                .reason(),
            "malformed_mime"
        );
        let e = normalize(LETTER.as_bytes(), at, "m", Limits { max_parts: 2 }, &b).unwrap_err();
        assert_eq!(e.reason(), "too_many_parts");
    }

    #[test]
    fn crlf_and_lf_give_the_same_envelope_content() {
        let (_d, b) = blobs();
        let at = Timestamp::UNIX_EPOCH;
        let lf = LETTER.replace("\r\n", "\n");
        let a = normalize(LETTER.as_bytes(), at, "m", Limits { max_parts: 10 }, &b).unwrap();
        let c = normalize(lf.as_bytes(), at, "m", Limits { max_parts: 10 }, &b).unwrap();
        assert_eq!(a.request, c.request);
        assert_eq!(a.attachments, c.attachments);
    }
}
