//! Who a petitioner is, as far as counting goes: normalised ID numbers and mobile numbers.
//!
//! Owns the normalisation of the two identifiers DOMAIN.md §7 names (the resident ID number
//! and the mobile number) and finding them in free text. It does not hash them (that is
//! `routing::repeat`, with a secret key) and never logs them: every function is pure and
//! returns the normalised value only to its caller.
//!
//! **Normalisation**, in this order: full-width characters become half-width (`１３８` →
//! `138`, `＋８６` → `+86`, `（` → `(`), dashes of every width become `-`, any whitespace
//! becomes a space. Then:
//!
//! - **ID number** (居民身份证号码, GB 11643): spaces and hyphens are dropped, `x` becomes
//!   `X`; the result must be 17 digits and a digit or `X`, with a real birth date (from 1900)
//!   at positions 7–14 and a valid ISO 7064 MOD 11-2 check digit. Anything else — a typo, a
//!   15-digit first-generation number, a bank card — is *not* an ID number: it is never used
//!   as a key, so a mistyped digit cannot link two different people.
//! - **Mobile**: `1[3-9]` and nine more digits, optionally after `+86`, `0086` or `86`, with
//!   spaces, hyphens, dots or parentheses anywhere people put them (`(+86) 138-0013-8000`,
//!   `138 0013 8000`). Landlines are not keys: a household or office line is shared.
//!
//! **In free text** ([`id_numbers_in`], [`mobiles_in`]) a number must stand alone: no ASCII
//! digit (or, after an ID number, letter) directly before or after it. `\b` cannot express
//! this — between a Chinese character and a digit there is no word boundary (both are word
//! characters), so `电话13800138000` would not match `\b1[3-9]\d{9}\b` — hence explicit checks.
//!
//! **Bounded work.** Text comes from outside (a portal form, a scanned letter's cover text), so
//! finding numbers in it is linear and capped: one regex pass (the `regex` crate never
//! backtracks), distinct values kept with a hash set, at most [`MAX_SCAN_BYTES`] of a text
//! read and at most [`MAX_NUMBERS`] distinct numbers returned. A crafted megabyte of
//! numbers costs one pass over its first [`MAX_SCAN_BYTES`] (`benches/person_numbers.rs`).

use regex::Regex;
use std::collections::HashSet;
use std::sync::OnceLock;

/// Bytes of one text searched for numbers; the rest is not read. A petitioner's numbers are
/// in the first pages of what they write, and 256 KiB is about 85,000 Chinese characters.
pub const MAX_SCAN_BYTES: usize = 256 * 1024;

/// Distinct numbers of one kind returned from one text: a person has a few; a text with more
/// is a list of someone's (a directory, a crafted text), and counting them all buys nothing.
pub const MAX_NUMBERS: usize = 8;

/// One character folded to half-width; dashes to `-`, whitespace to a space.
fn fold(c: char) -> char {
    match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{FE58}' | '\u{FE63}' => '-',
        c if c.is_whitespace() => ' ',
        c => c,
    }
}

/// `text` with full-width characters half-width, dashes `-` and whitespace a plain space.
pub fn half_width(text: &str) -> String {
    text.chars().map(fold).collect()
}

/// ISO 7064 MOD 11-2 check character for the first 17 digits of an ID number.
fn id_check_char(digits17: &[u8]) -> char {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];
    let sum: u32 = digits17
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    CHECK[(sum % 11) as usize]
}

/// An 18-character candidate (already without separators, upper case) is a valid ID number.
fn valid_id(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 18 || !b[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let num = |r: std::ops::Range<usize>| s[r].parse::<i16>().unwrap_or(0);
    let (y, m, d) = (num(6..10), num(10..12), num(12..14));
    if y < 1900 || jiff::civil::Date::new(y, m as i8, d as i8).is_err() {
        return false;
    }
    b[17] as char == id_check_char(&b[..17])
}

/// The normalised ID number in `value` (a whole field), or `None` when it is not a valid one.
pub fn normalize_id_number(value: &str) -> Option<String> {
    let s: String = half_width(value)
        .chars()
        .filter(|c| !matches!(c, ' ' | '-'))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    valid_id(&s).then_some(s)
}

/// The normalised mobile number in `value` (a whole field), or `None` when it is not one.
pub fn normalize_mobile(value: &str) -> Option<String> {
    let s: String = half_width(value)
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    let s = s
        .strip_prefix("+86")
        .or_else(|| s.strip_prefix("0086"))
        .or_else(|| s.strip_prefix("86").filter(|r| r.len() == 11))
        .unwrap_or(&s);
    let b = s.as_bytes();
    let ok = b.len() == 11
        && b.iter().all(u8::is_ascii_digit)
        && b[0] == b'1'
        && (b'3'..=b'9').contains(&b[1]);
    ok.then(|| s.to_string())
}

fn id_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    // 17 digits and a check character; one space or hyphen allowed between any two.
    RE.get_or_init(|| Regex::new(r"[0-9](?:[ \-]?[0-9]){16}[ \-]?[0-9Xx]").expect("valid regex"))
}

fn mobile_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"(?:\(?(?:\+|00)?86\)?[ \-.]?)?1[3-9][0-9](?:[ \-.]?[0-9]){8}")
            .expect("valid regex")
    })
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
pub fn prefix(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Candidates of `re` in `text` that stand alone (see the module docs), normalised by `norm`,
/// distinct, in order of appearance: one pass over the first [`MAX_SCAN_BYTES`] of `text`,
/// stopping at [`MAX_NUMBERS`] distinct values.
fn find_in(
    text: &str,
    re: &Regex,
    alone_after: fn(u8) -> bool,
    norm: fn(&str) -> Option<String>,
) -> Vec<String> {
    let scanned = prefix(text, MAX_SCAN_BYTES);
    let cut = scanned.len() < text.len();
    let text = half_width(scanned);
    let bytes = text.as_bytes();
    let mut out: Vec<String> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    for m in re.find_iter(&text) {
        let before = m.start().checked_sub(1).map(|i| bytes[i]);
        let after = bytes.get(m.end()).copied();
        // At the cut the next character is unknown: the run may go on.
        let at_cut = cut && m.end() == bytes.len();
        if before.is_some_and(|b| b.is_ascii_digit() || b == b'+')
            || after.is_some_and(alone_after)
            || at_cut
        {
            continue;
        }
        if let Some(v) = norm(m.as_str())
            && seen.insert(v.clone())
        {
            out.push(v);
            if out.len() == MAX_NUMBERS {
                break;
            }
        }
    }
    out
}

/// Valid ID numbers written in free text, normalised, distinct (at most [`MAX_NUMBERS`]).
pub fn id_numbers_in(text: &str) -> Vec<String> {
    find_in(
        text,
        id_regex(),
        |b| b.is_ascii_alphanumeric(),
        normalize_id_number,
    )
}

/// Mobile numbers written in free text, normalised, distinct (at most [`MAX_NUMBERS`]).
pub fn mobiles_in(text: &str) -> Vec<String> {
    find_in(
        text,
        mobile_regex(),
        |b| b.is_ascii_digit(),
        normalize_mobile,
    )
}

/// Test data shared with other crates' tests (not for production use).
#[doc(hidden)]
pub mod testing {
    use super::id_check_char;

    /// `n` distinct valid ID numbers separated by Chinese text (for the cap tests).
    pub fn crafted_ids(n: u32) -> String {
        let mut text = String::new();
        for k in 0..n {
            let first = format!("110105194901{:02}{:03}", 1 + k % 28, k / 28 % 1000);
            let check = id_check_char(first.as_bytes());
            text.push_str(&format!("身份证{first}{check}；"));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "11010519491231002X";

    #[test]
    fn id_numbers_are_normalised_and_checked() {
        let cases: &[(&str, Option<&str>)] = &[
            (ID, Some(ID)),
            ("11010519491231002x", Some(ID)),
            ("110105 19491231 002X", Some(ID)),
            ("110105-1949-1231-002X", Some(ID)),
            // Full-width digits and letter, an ideographic space.
            ("１１０１０５１９４９１２３１００２Ｘ", Some(ID)),
            ("１１０１０５\u{3000}１９４９１２３１００２ｘ", Some(ID)),
            // Another valid one (check digit a digit).
            ("440524198001010013", Some("440524198001010013")),
            // Wrong check digit: a typo is not a key.
            ("110105194912310021", None),
            ("110105194912310020", None),
            // A digit swapped.
            ("11010519491213002X", None),
            // Impossible birth date (valid check digit for the digits given).
            ("110105194913310021", None),
            // 15-digit first-generation number, 17 digits, 19 digits.
            ("110105491231002", None),
            ("11010519491231002", None),
            ("11010519491231002X1", None),
            ("", None),
            ("无", None),
        ];
        for (input, want) in cases {
            assert_eq!(
                normalize_id_number(input).as_deref(),
                *want,
                "input {input:?}"
            );
        }
        // The impossible-date case really has a valid check digit, so the date check matters.
        let b = b"11010519491331002";
        assert_eq!(id_check_char(b), '1');
    }

    #[test]
    fn mobiles_are_normalised() {
        let want = Some("13800138000");
        let cases: &[(&str, Option<&str>)] = &[
            ("13800138000", want),
            ("138 0013 8000", want),
            ("138-0013-8000", want),
            ("138.0013.8000", want),
            ("+86 138 0013 8000", want),
            ("+86-13800138000", want),
            ("(+86) 138-0013-8000", want),
            ("0086 13800138000", want),
            ("8613800138000", want),
            ("１３８００１３８０００", want),
            ("＋８６　１３８－００１３－８０００", want),
            ("138—0013—8000", want),
            // Not mobiles: second digit 2, landline, too short, too long, empty.
            ("12800138000", None),
            ("0571-88886666", None),
            ("1380013800", None),
            ("138001380001", None),
            ("86138001380", None),
            ("", None),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_mobile(input).as_deref(), *want, "input {input:?}");
        }
    }

    #[test]
    fn numbers_are_found_in_free_text_next_to_chinese() {
        let cases: &[(&str, &[&str], &[&str])] = &[
            // (text, ID numbers, mobiles)
            ("电话13800138000", &[], &["13800138000"]),
            ("联系电话：138 0013 8000。", &[], &["13800138000"]),
            (
                "手机+86-139-0000-1111，身份证号11010519491231002X",
                &[ID],
                &["13900001111"],
            ),
            (
                "身份证１１０１０５１９４９１２３１００２ｘ电话１３８００１３８０００",
                &[ID],
                &["13800138000"],
            ),
            // The same number twice is one; two numbers are two, in order.
            (
                "13800138000或13800138000或13900001111",
                &[],
                &["13800138000", "13900001111"],
            ),
            // A mobile-looking run inside a longer number is not a mobile; a bad check digit is
            // not an ID number; neither is a run glued to a letter.
            ("订单号9913800138000", &[], &[]),
            ("编号138001380001", &[], &[]),
            ("身份证110105194912310021", &[], &[]),
            ("11010519491231002XA", &[], &[]),
            ("A11010519491231002X", &[ID], &[]),
            // The digits inside a valid ID number are not a mobile.
            ("110105199003071239", &["110105199003071239"], &[]),
            ("拖欠工资三个月共计2万元", &[], &[]),
        ];
        for (text, ids, mobiles) in cases {
            assert_eq!(id_numbers_in(text), *ids, "ids in {text:?}");
            assert_eq!(mobiles_in(text), *mobiles, "mobiles in {text:?}");
        }
    }

    /// A crafted text of thousands of distinct valid numbers made `find_in` compare every new
    /// number with every one found before (quadratic) and return them all (a key and an index
    /// row each). Now: at most `MAX_NUMBERS` per kind, and nothing past `MAX_SCAN_BYTES`.
    #[test]
    fn crafted_text_with_thousands_of_numbers_is_capped() {
        let mut text = String::new();
        for n in 0..5000u32 {
            text.push_str(&format!("电话138{n:08}，"));
        }
        let found = mobiles_in(&text);
        assert_eq!(found.len(), MAX_NUMBERS, "{}", found.len());
        assert_eq!(found[0], "13800000000");
        assert_eq!(found[MAX_NUMBERS - 1], format!("138{:08}", MAX_NUMBERS - 1));
        let ids = testing::crafted_ids(5000);
        assert_eq!(id_numbers_in(&ids).len(), MAX_NUMBERS);
        // A number after the scanned prefix is not read.
        let late = format!("{}电话13900001111", "字".repeat(MAX_SCAN_BYTES / 3 + 1));
        assert!(mobiles_in(&late).is_empty());
        // A number cut by the scan limit is not taken for a shorter one.
        let cut = format!("{}{}", "a".repeat(MAX_SCAN_BYTES - 11), "13800138000123");
        assert!(mobiles_in(&cut).is_empty());
    }
}
