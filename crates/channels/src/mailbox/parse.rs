//! Mail → envelope for the scanned-letter mailbox: parsing with mail-parser, the scans into
//! the blob store, and the checks that send a mail to quarantine instead.
//!
//! Pure apart from the blob writes; no sockets, no store.

use crate::config::MailboxConfig;
use jiff::Timestamp;
use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::{Encoding, Message, MessageParser, MessagePart, MimeHeaders, PartType};
use petitiond_core::envelope::{Attachment, Channel, Envelope, Personal, Request, Upstream};
use petitiond_store::blobs::BlobStore;
use sha2::{Digest, Sha256};

/// Flag set on a mail that carries no scan (no PDF or image): it is still an item (a clerk must
/// register it), and routing rules can match the flag.
pub const NO_SCAN: &str = "no_scan";

/// Bounds on what one mail may make the parser do, from `[channels.mailbox]`.
#[derive(Debug, Clone)]
pub struct Limits {
    /// MIME parts, nested messages' parts included.
    pub max_parts: usize,
    /// Multipart and message/rfc822 levels (a plain one-part mail is depth 1).
    pub max_depth: usize,
    /// Decoded bytes of every leaf part together, nested messages included.
    pub max_decoded_bytes: u64,
    /// Finds the letter's reference (barcode) number in the subject, else the body.
    pub letter_reference: Option<regex::Regex>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_parts: 200,
            max_depth: 10,
            max_decoded_bytes: 25 * 1024 * 1024,
            letter_reference: None,
        }
    }
}

impl Limits {
    pub fn of(config: Option<&MailboxConfig>) -> Limits {
        match config {
            Some(m) => Limits {
                max_parts: m.max_parts,
                max_depth: m.max_nesting_depth,
                max_decoded_bytes: m.max_decoded_bytes,
                letter_reference: m.letter_reference.clone(),
            },
            None => Limits::default(),
        }
    }
}

/// Why a mail was quarantined. `reason()` is a metric label; `Display` is for the operator and
/// never carries the mail's text (subject, body, names).
#[derive(Debug, thiserror::Error)]
pub enum BadMail {
    #[error("not a MIME message: {0}")]
    NotMime(&'static str),
    #[error("{parts} MIME parts, more than the limit of {max}")]
    TooManyParts { parts: usize, max: usize },
    #[error("MIME parts nested {depth} deep, more than the limit of {max}")]
    TooDeep { depth: usize, max: usize },
    #[error("{size} bytes once decoded, more than the limit of {limit}")]
    DecodedTooLarge { size: u64, limit: u64 },
    #[error("{0}")]
    BadCharset(String),
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
            BadMail::TooDeep { .. } => "too_deep",
            BadMail::DecodedTooLarge { .. } => "decoded_too_large",
            BadMail::BadCharset(_) => "bad_charset",
            BadMail::Oversize { .. } => "oversize",
            BadMail::Blob(_) => "blob_store",
        }
    }
}

/// The upstream id of a mail: the SHA-256 of its bytes. Stable across re-reads after a crash,
/// across the Maildir new/ → cur/ move and across an IMAP re-scan after a UIDVALIDITY change
/// (IMAP keeps a message's bytes), and the same mail delivered twice is recognised. Not the
/// Message-ID: scanners reuse them, and two different letters must never share an id.
pub fn upstream_id(raw: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(raw)))
}

/// Parses a scanned-letter mail into an envelope; the raw mail and its scans go to `blobs`.
pub fn normalize(
    raw: &[u8],
    arrival: Timestamp,
    source: &str,
    limits: &Limits,
    blobs: &dyn BlobStore,
) -> Result<Envelope, BadMail> {
    let msg = MessageParser::default()
        .parse(raw)
        .ok_or(BadMail::NotMime("no message could be parsed"))?;
    check_shape(&msg, limits)?;
    let sender = msg
        .from()
        .or_else(|| msg.sender())
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .map(|a| a.trim().to_ascii_lowercase())
        .filter(|a| a.contains('@'));
    if sender.is_none() || msg.date().is_none() {
        return Err(BadMail::NotMime("no From or Date header"));
    }
    check_charsets(&msg)?;
    let title = subject(&msg)?;
    let content = body_text(&msg)?;

    let blob = |b: &[u8]| blobs.put(b).map_err(|e| BadMail::Blob(e.to_string()));
    let raw_ref = blob(raw)?;
    let mut attachments = Vec::new();
    let mut scans = 0;
    for (owner, part) in leaf_attachments(&msg) {
        let bytes = part.contents();
        let media_type = part
            .content_type()
            .map(|ct| match ct.subtype() {
                Some(sub) => format!("{}/{}", ct.ctype(), sub),
                None => ct.ctype().to_string(),
            })
            .unwrap_or_else(|| "application/octet-stream".into())
            .to_ascii_lowercase();
        if is_scan(&media_type, bytes) {
            scans += 1;
        }
        let r = blob(bytes)?;
        attachments.push(Attachment {
            name: attachment_name(owner, part).map(Personal::new),
            media_type,
            size: r.size,
            sha256: r.sha256.clone(),
            dataref: blobs.dataref(&r),
        });
    }
    // The mail's subject, its text, then a forwarded letter's subject and text.
    let reference = limits.letter_reference.as_ref().and_then(|re| {
        title
            .as_deref()
            .and_then(|t| find_reference(re, t))
            .or_else(|| find_reference(re, &content))
            .or_else(|| {
                messages(&msg)
                    .into_iter()
                    .filter(|(_, depth)| *depth > 1)
                    .find_map(|(m, _)| {
                        m.subject()
                            .and_then(|t| find_reference(re, t))
                            .or_else(|| find_reference(re, &text_of(m).ok()?))
                    })
            })
    });
    let mut env = Envelope::new(
        Channel::Letter,
        Upstream {
            id: upstream_id(raw),
            url: None,
            source: source.to_string(),
            raw_ref: raw_ref.claim(),
            reference,
            sender: sender.map(Personal::new),
            ..Default::default()
        },
        arrival,
        Request {
            title: title.map(Personal::new),
            content: Personal::new(content),
        },
    );
    env.upstream_created_at = msg
        .date()
        .and_then(|d| Timestamp::from_second(d.to_timestamp()).ok());
    env.attachments = attachments;
    if scans == 0 {
        env.flags.push(NO_SCAN.into());
    }
    Ok(env)
}

/// The reference number: the regex's first capture group if it has one, else the whole match.
fn find_reference(re: &regex::Regex, text: &str) -> Option<String> {
    let caps = re.captures(text)?;
    let m = caps.get(1).or_else(|| caps.get(0))?;
    let r = m.as_str().trim();
    (!r.is_empty()).then(|| r.chars().take(64).collect())
}

/// A scan is a PDF or an image, by declared type or by its first bytes (scanners often send
/// `application/octet-stream`).
fn is_scan(media_type: &str, bytes: &[u8]) -> bool {
    media_type == "application/pdf"
        || media_type.starts_with("image/")
        || bytes.starts_with(b"%PDF-")
        || bytes.starts_with(b"\xff\xd8\xff")
        || bytes.starts_with(b"\x89PNG\r\n\x1a\n")
        || bytes.starts_with(b"II*\0")
        || bytes.starts_with(b"MM\0*")
}

/// Every message of the tree: the mail and each message/rfc822 inside it, with its depth.
fn messages<'a>(msg: &'a Message<'a>) -> Vec<(&'a Message<'a>, usize)> {
    let mut out = vec![(msg, 1)];
    let mut i = 0;
    while i < out.len() {
        let (m, depth) = out[i];
        let depths = part_depths(m);
        for (idx, part) in m.parts.iter().enumerate() {
            if let PartType::Message(inner) = &part.body {
                out.push((inner, depth + depths[idx] + 1));
            }
        }
        i += 1;
    }
    out
}

/// Depth of each part within its message (root part = 0), walking multipart children.
fn part_depths(m: &Message<'_>) -> Vec<usize> {
    let mut depths = vec![0; m.parts.len()];
    for (idx, part) in m.parts.iter().enumerate() {
        if let PartType::Multipart(children) = &part.body {
            for &c in children {
                let below = depths[idx] + 1;
                if let Some(d) = depths.get_mut(c as usize) {
                    *d = below;
                }
            }
        }
    }
    depths
}

/// Parts, nesting depth and decoded size, before anything is stored.
fn check_shape(msg: &Message<'_>, limits: &Limits) -> Result<(), BadMail> {
    let all = messages(msg);
    let parts: usize = all.iter().map(|(m, _)| m.parts.len()).sum();
    if parts > limits.max_parts {
        return Err(BadMail::TooManyParts {
            parts,
            max: limits.max_parts,
        });
    }
    let mut depth = 0;
    let mut decoded = 0u64;
    for (m, base) in &all {
        let depths = part_depths(m);
        for (idx, part) in m.parts.iter().enumerate() {
            depth = depth.max(base + depths[idx]);
            match &part.body {
                PartType::Text(_)
                | PartType::Html(_)
                | PartType::Binary(_)
                | PartType::InlineBinary(_) => decoded += part.len() as u64,
                PartType::Message(_) | PartType::Multipart(_) => {}
            }
        }
    }
    if depth > limits.max_depth {
        return Err(BadMail::TooDeep {
            depth,
            max: limits.max_depth,
        });
    }
    if decoded > limits.max_decoded_bytes {
        return Err(BadMail::DecodedTooLarge {
            size: decoded,
            limit: limits.max_decoded_bytes,
        });
    }
    Ok(())
}

fn is_utf8_label(l: &str) -> bool {
    matches!(
        l,
        "utf-8"
            | "utf8"
            | "unicode-1-1-utf-8"
            | "unicode11utf8"
            | "unicode20utf8"
            | "x-unicode20utf8"
    )
}

fn known_charset(label: &str) -> bool {
    let l = label.trim().trim_matches('"').to_ascii_lowercase();
    is_utf8_label(&l) || charset_decoder(l.as_bytes()).is_some() || alias_encoding(&l).is_some()
}

/// A charset label mail-parser does not know that encoding_rs does once normalised, or a
/// common alias (Python's mail library writes its codec names, e.g. `big5_tw`).
fn alias_encoding(label: &str) -> Option<&'static encoding_rs::Encoding> {
    let l = label
        .trim()
        .trim_matches('"')
        .to_ascii_lowercase()
        .replace('_', "-");
    let l = match l.as_str() {
        "big5-tw" | "big5tw" | "cp950" | "ms950" => "big5",
        "gb2312-80" | "euc-cn" | "euccn" => "gbk",
        other => other,
    };
    encoding_rs::Encoding::for_label(l.as_bytes())
}

/// Decodes `bytes` in charset `label`: mail-parser's decoders, else an alias; `None` if the
/// label is unknown or the bytes do not decode cleanly.
fn decode_charset(label: &str, bytes: &[u8]) -> Option<String> {
    let l = label.trim().trim_matches('"').to_ascii_lowercase();
    let text = if is_utf8_label(&l) {
        String::from_utf8(bytes.to_vec()).ok()?
    } else if let Some(enc) = alias_encoding(&l) {
        enc.decode_without_bom_handling_and_without_replacement(bytes)?
            .into_owned()
    } else {
        charset_decoder(l.as_bytes())?(bytes)
    };
    (!text.contains(REPLACEMENT)).then_some(text)
}

/// RFC 2047 decoding of a raw header value, for the charsets mail-parser lacks; `None` if a
/// word cannot be decoded.
fn decode_encoded_words(raw: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    let unfolded: String = text.chars().filter(|c| *c != '\r' && *c != '\n').collect();
    let mut out = String::new();
    let mut rest = unfolded.as_str();
    let mut pending_space = String::new();
    let mut after_word = false;
    while let Some(start) = rest.find("=?") {
        let before = &rest[..start];
        let word = &rest[start + 2..];
        let mut parts = word.splitn(3, '?');
        let (Some(cs), Some(enc), Some(tail)) = (parts.next(), parts.next(), parts.next()) else {
            break;
        };
        let Some(end) = tail.find("?=") else {
            break;
        };
        let data = &tail[..end];
        if !(after_word && before.trim().is_empty()) {
            out.push_str(&pending_space);
            out.push_str(before);
        }
        pending_space.clear();
        let bytes = match enc {
            "B" | "b" => mail_parser::decoders::base64::base64_decode(data.as_bytes())?,
            "Q" | "q" => q_decode(data),
            _ => return None,
        };
        out.push_str(&decode_charset(
            cs.split('*').next().unwrap_or_default(),
            &bytes,
        )?);
        after_word = true;
        rest = &tail[end + 2..];
        if rest.trim().is_empty() {
            rest = "";
        } else {
            let trimmed = rest.trim_start();
            pending_space = rest[..rest.len() - trimmed.len()].to_string();
            rest = trimmed;
        }
    }
    out.push_str(&pending_space);
    out.push_str(rest);
    (!out.contains(REPLACEMENT)).then(|| out.trim().to_string())
}

/// The `Q` encoding of RFC 2047 (`_` is a space).
fn q_decode(data: &str) -> Vec<u8> {
    percent_decode(&data.replace('_', " ").replace('=', "%"))
}

/// The charset label for an operator: short and printable (it comes from the mail).
fn shown(label: &str) -> String {
    label
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(40)
        .collect()
}

/// Every declared charset must be one we can decode: text parts' `charset=` and the RFC 2047
/// encoded words of Subject and From.
fn check_charsets(msg: &Message<'_>) -> Result<(), BadMail> {
    for (m, _) in messages(msg) {
        for part in &m.parts {
            if !part.is_text() {
                continue;
            }
            if let Some(cs) = part.content_type().and_then(|ct| ct.attribute("charset"))
                && !known_charset(cs)
            {
                return Err(BadMail::BadCharset(format!(
                    "text part in unknown charset `{}`",
                    shown(cs)
                )));
            }
        }
    }
    for name in ["Subject", "From"] {
        let Some(raw) = raw_header(msg, name) else {
            continue;
        };
        let text = String::from_utf8_lossy(raw);
        for word in text.split("=?").skip(1) {
            let Some((label, rest)) = word.split_once('?') else {
                continue;
            };
            // RFC 2231 language suffix: =?charset*lang?...
            let label = label.split('*').next().unwrap_or_default();
            // Bytes, not `&rest[..2]`: the text after the label may start with a multi-byte
            // character (`=?gbk?中文?=`), and slicing a `str` inside one panics.
            let is_word = rest.len() > 2
                && matches!(
                    rest.as_bytes().get(..2),
                    Some(b"B?" | b"b?" | b"Q?" | b"q?")
                );
            if is_word && !known_charset(label) {
                return Err(BadMail::BadCharset(format!(
                    "{name} header in unknown charset `{}`",
                    shown(label)
                )));
            }
        }
    }
    Ok(())
}

/// The raw bytes of the mail's own header `name` (value only, folded as sent).
fn raw_header<'a>(msg: &'a Message<'a>, name: &str) -> Option<&'a [u8]> {
    let h = msg
        .root_part()
        .headers
        .iter()
        .find(|h| h.name().eq_ignore_ascii_case(name))?;
    msg.raw_message()
        .get(h.offset_start() as usize..h.offset_end() as usize)
}

/// Unencoded 8-bit text that is not UTF-8: Chinese mail clients still send GB 18030 (GBK,
/// GB 2312) without labelling it. Decoded only if it is valid GB 18030 throughout.
fn gb18030_fallback(bytes: &[u8]) -> Option<String> {
    if std::str::from_utf8(bytes).is_ok() {
        return None;
    }
    encoding_rs::GB18030
        .decode_without_bom_handling_and_without_replacement(bytes)
        .map(|s| s.into_owned())
}

const REPLACEMENT: char = '\u{FFFD}';

fn subject(msg: &Message<'_>) -> Result<Option<String>, BadMail> {
    let Some(s) = msg.subject() else {
        return Ok(None);
    };
    let s = if s.contains(REPLACEMENT) {
        let raw = raw_header(msg, "Subject");
        let fixed = raw
            .and_then(decode_encoded_words)
            .or_else(|| raw.and_then(gb18030_fallback));
        match fixed {
            Some(f) => unfold(&f),
            None => {
                return Err(BadMail::BadCharset(
                    "Subject does not decode in its charset".into(),
                ));
            }
        }
    } else {
        s.trim().to_string()
    };
    Ok((!s.is_empty()).then_some(s))
}

fn unfold(s: &str) -> String {
    s.split(['\r', '\n'])
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The cover text: the mail's first text body, else a forwarded message's. Text that does not
/// decode in its charset (replacement characters) is a bad mail, unless it is unlabelled 8-bit
/// GB 18030.
fn body_text(msg: &Message<'_>) -> Result<String, BadMail> {
    let own = text_of(msg)?;
    if !own.is_empty() {
        return Ok(own);
    }
    for (m, depth) in messages(msg) {
        if depth > 1 {
            let t = text_of(m)?;
            if !t.is_empty() {
                return Ok(t);
            }
        }
    }
    Ok(String::new())
}

fn text_of(m: &Message<'_>) -> Result<String, BadMail> {
    let Some(text) = m.body_text(0) else {
        return Ok(String::new());
    };
    if !text.contains(REPLACEMENT) {
        // One line ending whatever the transport used (Maildir files vs IMAP's CRLF).
        return Ok(text.replace("\r\n", "\n").trim().to_string());
    }
    let part: Option<&MessagePart<'_>> = m.text_bodies().next();
    let fixed = part.and_then(|p| {
        if !matches!(p.body, PartType::Text(_)) {
            return None;
        }
        let raw = m
            .raw_message()
            .get(p.raw_body_offset() as usize..p.raw_end_offset() as usize)?;
        let label = p
            .content_type()
            .and_then(|ct| ct.attribute("charset"))
            .map(|c| c.trim().to_ascii_lowercase());
        match label.as_deref() {
            None | Some("us-ascii" | "ascii") if p.encoding == Encoding::None => {
                gb18030_fallback(raw)
            }
            // A label only our aliases know: mail-parser decoded it as UTF-8.
            Some(l) if charset_decoder(l.as_bytes()).is_none() && !is_utf8_label(l) => {
                let bytes = match p.encoding {
                    Encoding::Base64 => mail_parser::decoders::base64::base64_decode(raw)?,
                    Encoding::QuotedPrintable => {
                        mail_parser::decoders::quoted_printable::quoted_printable_decode(raw)?
                    }
                    Encoding::None => raw.to_vec(),
                };
                decode_charset(l, &bytes)
            }
            _ => None,
        }
    });
    match fixed {
        Some(t) => Ok(t.replace("\r\n", "\n").trim().to_string()),
        None => Err(BadMail::BadCharset(
            "text body does not decode in its charset".into(),
        )),
    }
}

/// Attachments of the mail and of every message forwarded inside it (each with the message it
/// belongs to), without the forwarded messages themselves (their bytes are in the raw mail).
fn leaf_attachments<'a>(msg: &'a Message<'a>) -> Vec<(&'a Message<'a>, &'a MessagePart<'a>)> {
    let mut out = Vec::new();
    for (m, _) in messages(msg) {
        for part in m.attachments() {
            if !matches!(part.body, PartType::Message(_)) {
                out.push((m, part));
            }
        }
    }
    out
}

/// The file name of an attachment. RFC 2231 parameters (`filename*=`, and continuations
/// `filename*0*=`, `filename*1*=` whose charset is named once, in the first piece, and which
/// mailers split anywhere, even inside a character) are put together from the raw header
/// here; otherwise mail-parser's reading (RFC 2047 or plain).
fn attachment_name(owner: &Message<'_>, part: &MessagePart<'_>) -> Option<String> {
    let from_raw = |header: &str, param: &str| {
        let h = part
            .headers
            .iter()
            .find(|h| h.name().eq_ignore_ascii_case(header))?;
        let raw = owner
            .raw_message()
            .get(h.offset_start() as usize..h.offset_end() as usize)?;
        rfc2231_param(raw, param)
    };
    from_raw("Content-Disposition", "filename")
        .or_else(|| from_raw("Content-Type", "name"))
        .or_else(|| part.attachment_name().map(str::to_string))
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
}

/// An RFC 2231 extended parameter (`param*=` or `param*0*=`, `param*1=`, ...) of a raw header
/// value; `None` when the parameter is not in that form.
pub fn rfc2231_param(raw: &[u8], param: &str) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    let unfolded: String = text.chars().filter(|c| *c != '\r' && *c != '\n').collect();
    let mut pieces: Vec<(usize, bool, String)> = Vec::new();
    for item in split_params(&unfolded) {
        let Some((name, value)) = item.split_once('=') else {
            continue;
        };
        let name = name.trim().to_ascii_lowercase();
        let Some(rest) = name.strip_prefix(&param.to_ascii_lowercase()) else {
            continue;
        };
        let Some(rest) = rest.strip_prefix('*') else {
            continue;
        };
        let value = value.trim().trim_matches('"').to_string();
        if rest.is_empty() {
            pieces.push((0, true, value));
        } else {
            let (index, extended) = match rest.strip_suffix('*') {
                Some(i) => (i, true),
                None => (rest, false),
            };
            pieces.push((index.parse().ok()?, extended, value));
        }
    }
    if pieces.is_empty() {
        return None;
    }
    pieces.sort_by_key(|p| p.0);
    let mut charset = String::new();
    let mut bytes = Vec::new();
    for (i, (_, extended, value)) in pieces.iter().enumerate() {
        let mut v = value.as_str();
        if i == 0 && *extended {
            // charset'language'value
            let mut it = v.splitn(3, '\'');
            if let (Some(cs), Some(_lang), Some(rest)) = (it.next(), it.next(), it.next()) {
                charset = cs.to_string();
                v = rest;
            }
        }
        if *extended {
            bytes.extend(percent_decode(v));
        } else {
            bytes.extend_from_slice(v.as_bytes());
        }
    }
    let label = if charset.is_empty() {
        "utf-8"
    } else {
        &charset
    };
    let enc = encoding_rs::Encoding::for_label(label.as_bytes()).unwrap_or(encoding_rs::UTF_8);
    Some(enc.decode_without_bom_handling(&bytes).0.into_owned())
}

/// `a; b="x;y"; c` → the items after the first `;`, quotes respected.
fn split_params(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in value.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ';' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter().skip(1).collect()
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(h) = b.get(i + 1..i + 3)
            && let Ok(v) = u8::from_str_radix(std::str::from_utf8(h).unwrap_or("zz"), 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use petitiond_store::blobs::FsBlobStore;

    const LETTER: &str = "From: scanner@xfj.example.gov.cn\r\nTo: intake@xfj.example.gov.cn\r\nDate: Mon, 2 Mar 2026 09:15:00 +0800\r\nSubject: =?UTF-8?B?5p2l5L+h5omr5o+P77ya5YWz5LqO5ouW5qyg5bel6LWE?=\r\nMessage-ID: <scan-1@xfj.example.gov.cn>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n来信人反映某公司拖欠工资。\r\n--b1\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"scan-0001.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQKJcOkw7zDtsOfCg==\r\n--b1--\r\n";

    fn blobs() -> (tempfile::TempDir, FsBlobStore) {
        let d = tempfile::tempdir().unwrap();
        let b = FsBlobStore::open(d.path()).unwrap();
        (d, b)
    }

    /// Found by fuzzing (`mail_letter`): a message/rfc822 part whose inner multipart is cut by
    /// the outer boundary tripped a `debug_assert!` inside mail-parser ("Invalid part ID,
    /// could not find multipart") in debug builds only. Its debug assertions are off in every
    /// build now (Cargo.toml), so the mail gets the shipped binary's outcome everywhere.
    #[test]
    fn mime_parse_does_not_panic_on_a_forwarded_message_cut_by_the_outer_boundary() {
        let raw = std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(
            "../../fuzz/regressions/mail_letter/forwarded-message-outlives-its-boundary.eml",
        ))
        .unwrap();
        let at: Timestamp = "2026-03-02T01:16:00Z".parse().unwrap();
        let got = normalize(
            &raw,
            at,
            "mailbox",
            &Limits::default(),
            &petitiond_store::blobs::DryRunBlobStore,
        );
        // No Date header: quarantined as malformed MIME, not a panic.
        let bad = got.expect_err("the mail has no Date header");
        assert_eq!(bad.reason(), "malformed_mime", "{bad}");
    }

    #[test]
    fn letter_becomes_envelope_with_scan_as_claim_check() {
        let (_d, b) = blobs();
        let at: Timestamp = "2026-03-02T01:16:00Z".parse().unwrap();
        let e = normalize(
            LETTER.as_bytes(),
            at,
            "mailbox",
            &Limits {
                max_parts: 10,
                ..Limits::default()
            },
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
            petitiond_core::envelope::ItemId::derive(
                Channel::Letter,
                &upstream_id(LETTER.as_bytes())
            )
        );
    }

    #[test]
    fn bad_mails_are_rejected_with_a_reason() {
        let (_d, b) = blobs();
        let at = Timestamp::UNIX_EPOCH;
        let garbage: &[u8] = b"\x00\x01\x02 this is not a mail \xff\xfe";
        let e = normalize(
            garbage,
            at,
            "m",
            &Limits {
                max_parts: 10,
                ..Limits::default()
            },
            &b,
        )
        .unwrap_err();
        assert_eq!(e.reason(), "malformed_mime", "{e}");
        let no_headers = b"just some text\nwithout any header\n";
        assert_eq!(
            normalize(
                no_headers,
                at,
                "m",
                &Limits {
                    max_parts: 10,
                    ..Limits::default()
                },
                &b
            )
            .unwrap_err()
            .reason(),
            "malformed_mime"
        );
        let e = normalize(
            LETTER.as_bytes(),
            at,
            "m",
            &Limits {
                max_parts: 2,
                ..Limits::default()
            },
            &b,
        )
        .unwrap_err();
        assert_eq!(e.reason(), "too_many_parts");
    }

    #[test]
    fn crlf_and_lf_give_the_same_envelope_content() {
        let (_d, b) = blobs();
        let at = Timestamp::UNIX_EPOCH;
        let lf = LETTER.replace("\r\n", "\n");
        let a = normalize(
            LETTER.as_bytes(),
            at,
            "m",
            &Limits {
                max_parts: 10,
                ..Limits::default()
            },
            &b,
        )
        .unwrap();
        let c = normalize(
            lf.as_bytes(),
            at,
            "m",
            &Limits {
                max_parts: 10,
                ..Limits::default()
            },
            &b,
        )
        .unwrap();
        assert_eq!(a.request, c.request);
        assert_eq!(a.attachments, c.attachments);
    }
}
