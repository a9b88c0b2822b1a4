//! Folder names (modified UTF-7 on the wire) and flags to set after commit, checked for the
//! config.

/// Checks a folder name and encodes it for the wire (RFC 3501 §5.1.3 modified UTF-7), so an
/// office can name its folder `扫描来信`.
pub fn mailbox_name(name: &str) -> Result<String, String> {
    if name.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if name.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    let mut out = String::new();
    let mut pending: Vec<u16> = Vec::new();
    let flush = |pending: &mut Vec<u16>, out: &mut String| {
        if pending.is_empty() {
            return;
        }
        let bytes: Vec<u8> = pending.iter().flat_map(|u| u.to_be_bytes()).collect();
        out.push('&');
        out.push_str(&modified_base64(&bytes));
        out.push('-');
        pending.clear();
    };
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut pending, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut buf = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush(&mut pending, &mut out);
    Ok(out)
}

/// Base64 with `,` for `/` and no padding (modified UTF-7).
pub(super) fn modified_base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..=chunk.len() {
            out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Checks a flag or keyword to set after commit.
pub fn flag_name(f: &str) -> Result<(), String> {
    let body = f.strip_prefix('\\').unwrap_or(f);
    let atom = !body.is_empty()
        && body
            .chars()
            .all(|c| c.is_ascii_graphic() && !"(){%*\"\\]".contains(c));
    if !atom {
        return Err(format!(
            "`{f}` is not an IMAP flag or keyword (letters, digits and $, no spaces or brackets)"
        ));
    }
    if f.starts_with('\\')
        && !["\\Seen", "\\Flagged", "\\Answered"]
            .iter()
            .any(|s| s.eq_ignore_ascii_case(f))
    {
        return Err(format!(
            "`{f}` cannot be set after commit: use \\Flagged, \\Seen, \\Answered or a keyword such as $PetitiondRecorded"
        ));
    }
    Ok(())
}
