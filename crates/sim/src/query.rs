//! Query strings: `application/x-www-form-urlencoded` decoding (`+` is a space) and RFC 3986
//! percent-encoding.

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes one `application/x-www-form-urlencoded` component: `%XX` and `+` as a space. A `%`
/// not followed by two hex digits is kept as it is; invalid UTF-8 is replaced.
pub(crate) fn form_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex_val(b[i + 1]), hex_val(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The decoded `(name, value)` pairs of a raw query string, in order; `k` alone is `("k", "")`.
pub(crate) fn parse_query(raw: Option<&str>) -> Vec<(String, String)> {
    raw.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (form_decode(k), form_decode(v)),
            None => (form_decode(p), String::new()),
        })
        .collect()
}

/// The first value of `name`.
pub(crate) fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// RFC 3986 percent-encoding: unreserved characters (`A-Z a-z 0-9 - . _ ~`) are kept, every
/// other byte of the UTF-8 form becomes `%XX` (upper-case hex).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding_and_encoding() {
        assert_eq!(
            parse_query(Some("a=1+2&b=%2B08%3A00&c&&d=%zz&e=%E8%A5%BF")),
            vec![
                ("a".to_string(), "1 2".to_string()),
                ("b".into(), "+08:00".into()),
                ("c".into(), "".into()),
                ("d".into(), "%zz".into()),
                ("e".into(), "西".into()),
            ]
        );
        assert_eq!(form_decode("%4"), "%4");
        assert_eq!(
            percent_encode("a-b_c.d~e f+g:西"),
            "a-b_c.d~e%20f%2Bg%3A%E8%A5%BF"
        );
    }
}
