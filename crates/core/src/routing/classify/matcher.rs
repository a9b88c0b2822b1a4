//! Keyword matching: normalisation fused with a compact code ([`Alphabet`]), a start filter,
//! and Aho-Corasick automata run anchored from the possible starts ([`Matcher`]).

use super::*;

// ---------------------------------------------------------------------------------------------
// Keyword matching: normalisation fused with a compact code, a start filter, Aho-Corasick

/// Only the characters that occur in some keyword can be part of a match, so the automata
/// need not see any other character, nor the three UTF-8 bytes of each Chinese one.
/// [`Alphabet::codes_item`] normalises an item and turns it, in one pass, into a sequence of
/// codes: one per keyword character and 0 for any other character. A keyword character's
/// code `k` stands for 1-3 bytes (the most frequent characters get one byte), which is what
/// the Aho-Corasick automata read.
///
/// The byte encoding is self-synchronising (single bytes `01-7F`, lead bytes `C0-FF`, trail
/// bytes `80-BF`): a keyword's bytes can only match whole characters, so a match is exactly a
/// substring match in the normalised text. Whitespace follows [`normalize`]: dropped between
/// two non-ASCII characters, a space otherwise (0, unless some keyword contains a space). The
/// naive evaluator checks all this against `str::contains` on the normalised text, and a test
/// does on random text.
#[derive(Clone)]
pub struct Alphabet {
    /// For every BMP code point: its code, 0 (in no keyword) or one of `DROP`, `SPACE`, `WIDE`.
    /// 128 KB; a petition touches the lines of its own characters only. An array, so that a
    /// 16-bit index needs no bounds check.
    table: Box<[u16; 0x10000]>,
    /// Code → its bytes (bits 0-23), length (bits 24-25) and the ASCII flag.
    entries: Vec<u32>,
    /// Codes of characters outside the BMP, or too large for the table (never in practice),
    /// by folded character.
    wide: HashMap<char, u32>,
    /// The code of `' '` when a keyword contains a space, else 0.
    space: u32,
}

impl fmt::Debug for Alphabet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Alphabet({} characters)", self.entries.len() - 1)
    }
}

pub(super) const DROP: u16 = 0xFFFF;
pub(super) const SPACE: u16 = 0xFFFE;
pub(super) const WIDE: u16 = 0xFFFD;
pub(super) const LEN_SHIFT: u32 = 24;
pub(super) const ASCII: u32 = 1 << 26;

impl Alphabet {
    /// Most distinct keyword characters the byte encoding can hold.
    pub const MAX_CHARS: usize = 127 + 3072 + 65536;

    /// An alphabet of every character of `keywords` (already normalised); `Err` when they use
    /// more than [`Alphabet::MAX_CHARS`] distinct characters.
    pub fn build<'k>(keywords: impl IntoIterator<Item = &'k str>) -> Result<Alphabet, String> {
        let mut freq: HashMap<char, usize> = HashMap::new();
        for k in keywords {
            for c in k.chars() {
                *freq.entry(c).or_default() += 1;
            }
        }
        let mut chars: Vec<(char, usize)> = freq.into_iter().collect();
        if chars.len() > Self::MAX_CHARS {
            return Err(format!(
                "keywords use {} distinct characters; at most {} are supported",
                chars.len(),
                Self::MAX_CHARS
            ));
        }
        // ASCII first, then the most frequent: they get the one-byte codes.
        chars.sort_unstable_by(|a, b| {
            b.0.is_ascii()
                .cmp(&a.0.is_ascii())
                .then(b.1.cmp(&a.1))
                .then(a.0.cmp(&b.0))
        });
        let mut entries = vec![0u32];
        let mut code_of: HashMap<char, u32> = HashMap::new();
        for (c, _) in &chars {
            let k = entries.len() as u32;
            entries.push(Self::entry(k, c.is_ascii()));
            code_of.insert(*c, k);
        }
        let mut table: Box<[u16; 0x10000]> = vec![0u16; 0x10000]
            .into_boxed_slice()
            .try_into()
            .expect("0x10000 entries");
        let mut wide = HashMap::new();
        for (cp, slot) in table.iter_mut().enumerate() {
            let Some(c) = char::from_u32(cp as u32) else {
                continue;
            };
            let f = fold(c);
            *slot = if f == '\0' {
                DROP
            } else if f.is_whitespace() {
                SPACE
            } else {
                match code_of.get(&f) {
                    None => 0,
                    Some(&k) if k < u32::from(WIDE) => k as u16,
                    Some(&k) => {
                        wide.insert(f, k);
                        WIDE
                    }
                }
            };
        }
        for (c, k) in &code_of {
            if (*c as u32) >= 0x10000 {
                wide.insert(*c, *k);
            }
        }
        let space = code_of.get(&' ').copied().unwrap_or(0);
        Ok(Alphabet {
            table,
            entries,
            wide,
            space,
        })
    }

    /// Code `k`'s bytes: single bytes `01-7F`, then two (lead `C0-EF`, trail `80-BF`), then
    /// three (lead `F0-FF`, two trails).
    fn entry(k: u32, ascii: bool) -> u32 {
        let (bytes, len) = if k < 128 {
            (k, 1)
        } else if k < 3200 {
            let i = k - 128;
            ((0xC0 | (i >> 6)) | ((0x80 | (i & 63)) << 8), 2)
        } else {
            let i = k - 3200;
            (
                (0xF0 | ((i >> 12) & 15))
                    | ((0x80 | ((i >> 6) & 63)) << 8)
                    | ((0x80 | (i & 63)) << 16),
                3,
            )
        };
        bytes | (len << LEN_SHIFT) | if ascii { ASCII } else { 0 }
    }

    /// The code of a character outside the table (rare).
    fn wide_code(&self, cp: u32) -> u32 {
        char::from_u32(cp)
            .map(fold)
            .and_then(|c| self.wide.get(&c).copied())
            .unwrap_or(0)
    }

    /// Appends the codes of `text` to `codes`.
    ///
    /// One table load and one store per character, and no data-dependent branch on the
    /// common path: petition text alternates at random between keyword characters and others.
    /// The vector is worked on as a local (taken and put back), so its length and capacity
    /// stay in registers instead of being reloaded through the reference at every push.
    pub fn codes_into(&self, text: &str, codes: &mut Vec<u32>) {
        let mut out = std::mem::take(codes);
        out.reserve(text.len() + 1);
        let mut prev = 0u32;
        let mut space = false;
        // Slice patterns decode without bounds checks (the text is valid UTF-8, so a lead
        // byte is always followed by its continuation bytes). Chinese text is almost all
        // three-byte sequences: that arm comes first.
        let mut rest = text.as_bytes();
        loop {
            let (t, cp, tail) = match *rest {
                [b0 @ 0xE0..=0xEF, b1, b2, ref tail @ ..] => {
                    let cp = (u16::from(b0 & 0x0F) << 12)
                        | (u16::from(b1 & 0x3F) << 6)
                        | u16::from(b2 & 0x3F);
                    (self.table[usize::from(cp)], u32::from(cp), tail)
                }
                [b0 @ 0..=0x7F, ref tail @ ..] => {
                    (self.table[usize::from(b0)], u32::from(b0), tail)
                }
                [b0 @ 0xC0..=0xDF, b1, ref tail @ ..] => {
                    let cp = (u16::from(b0 & 0x1F) << 6) | u16::from(b1 & 0x3F);
                    (self.table[usize::from(cp)], u32::from(cp), tail)
                }
                [b0, b1, b2, b3, ref tail @ ..] => {
                    let cp = (u32::from(b0 & 0x07) << 18)
                        | (u32::from(b1 & 0x3F) << 12)
                        | (u32::from(b2 & 0x3F) << 6)
                        | u32::from(b3 & 0x3F);
                    (WIDE, cp, tail)
                }
                _ => break,
            };
            rest = tail;
            let code = if t >= WIDE {
                match t {
                    DROP => continue,
                    SPACE => {
                        space = true;
                        continue;
                    }
                    _ => self.wide_code(cp),
                }
            } else {
                u32::from(t)
            };
            if space {
                // Whitespace between two keyword characters: nothing between two non-ASCII
                // ones, else a space. Next to anything else the 0 says it all.
                space = false;
                let ascii = |k: u32| self.entries[k as usize] & ASCII != 0;
                if prev != 0 && code != 0 && (ascii(prev) || ascii(code)) {
                    out.push(self.space);
                }
            }
            out.push(code);
            prev = code;
        }
        *codes = out;
    }

    /// The codes of an item's title and content, with a 0 between them.
    pub fn codes_item(&self, title: &str, content: &str, codes: &mut Vec<u32>) {
        self.codes_into(title, codes);
        codes.push(0);
        self.codes_into(content, codes);
    }

    /// One normalised keyword, as the bytes the automaton matches.
    pub fn encode(&self, keyword: &str) -> Vec<u8> {
        let mut codes = Vec::with_capacity(keyword.len());
        self.codes_into(keyword, &mut codes);
        let mut out = Vec::with_capacity(keyword.len());
        for k in codes {
            let e = self.entries[k as usize];
            for j in 0..(e >> LEN_SHIFT) & 3 {
                out.push((e >> (8 * j)) as u8);
            }
        }
        out
    }
}

/// Where a keyword may start: for every hashed pair of adjacent codes, one bit per group of
/// keywords (at most two: the dictionaries' and the rules'), set when the pair begins some
/// keyword of that group (and likewise for one-character keywords, hashed alone). A petition's
/// characters are tested independently of each other (no chain of dependent loads, unlike an
/// automaton walk), and the automata then run only from the few positions that pass. The two
/// groups' bits of a pair sit side by side, so one hash and one load answer for both.
#[derive(Clone)]
pub(super) struct StartFilter {
    /// Two bits per slot: bit 0 for group 0, bit 1 for group 1.
    bits: Box<[u64]>,
    /// `64 - log2(slots)`: a hash is the top bits of one multiplication.
    shift: u32,
    /// Some keyword is one character long (then every character is tested alone too).
    singles: bool,
}

impl StartFilter {
    /// Most groups one filter holds.
    const GROUPS: usize = 2;

    /// About 32 slots per keyword (2^14 at least, 2^22 at most): 10,000 rules' and the
    /// dictionaries' ~20,000 first pairs take 2^20 slots (256 KB) and set ~2% of them. A false
    /// start costs one short walk.
    fn build(groups: &[&[Vec<u32>]]) -> StartFilter {
        assert!(groups.len() <= Self::GROUPS, "at most two keyword groups");
        let total: usize = groups.iter().map(|g| g.len()).sum();
        let log = (total * 32)
            .next_power_of_two()
            .trailing_zeros()
            .clamp(14, 22);
        let mut f = StartFilter {
            bits: vec![0u64; (1usize << log) * 2 / 64].into_boxed_slice(),
            shift: 64 - log,
            singles: false,
        };
        for (g, keywords) in groups.iter().enumerate() {
            for k in *keywords {
                let h = match k.as_slice() {
                    [] => continue,
                    [one] => {
                        f.singles = true;
                        Self::hash(*one, u32::MAX)
                    }
                    [a, b, ..] => Self::hash(*a, *b),
                };
                let i = f.slot(h);
                f.bits[i / 32] |= 1 << (2 * (i % 32) + g);
            }
        }
        f
    }

    #[inline(always)]
    fn hash(a: u32, b: u32) -> u64 {
        ((u64::from(a) << 32) | u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    #[inline(always)]
    fn slot(&self, h: u64) -> usize {
        (h >> self.shift) as usize
    }

    /// The two group bits of a hash (bit 0: group 0, bit 1: group 1).
    #[inline(always)]
    fn test(&self, h: u64) -> u64 {
        let i = self.slot(h);
        (self.bits[i / 32] >> (2 * (i % 32))) & 3
    }

    /// Writes to `out[g]` every index of `codes` where a keyword of group `g` may start (a
    /// superset of the real starts, ascending, each once) and returns how many per group;
    /// each `out[g]` is grown to `codes.len()` when shorter and never shrunk, and what lies
    /// past its count is stale.
    ///
    /// A pass of its own over the codes, after encoding: a tight loop without calls or
    /// data-dependent branches, where a candidate is written unconditionally and kept by
    /// advancing the count by the test's outcome. (Testing inside the encoding loop, with a
    /// branch and a push per hit, was slower: petition text passes and fails the test at
    /// random, so those branches were mispredicted; see BENCHMARKS.md, "Routing throughput on an idle machine", for the figures.)
    fn starts(&self, codes: &[u32], out: &mut [Vec<u32>; 2]) -> [usize; 2] {
        for o in out.iter_mut() {
            if o.len() < codes.len() {
                o.resize(codes.len(), 0);
            }
        }
        let [o0, o1] = out;
        if self.singles {
            self.starts_imp::<true>(codes, o0, o1)
        } else {
            self.starts_imp::<false>(codes, o0, o1)
        }
    }

    #[inline(always)]
    fn starts_imp<const SINGLES: bool>(
        &self,
        codes: &[u32],
        o0: &mut [u32],
        o1: &mut [u32],
    ) -> [usize; 2] {
        let (o0, o1) = (&mut o0[..codes.len()], &mut o1[..codes.len()]);
        let (mut m0, mut m1) = (0, 0);
        let Some((&first, rest)) = codes.split_first() else {
            return [0, 0];
        };
        let mut a = first;
        for (i, &b) in rest.iter().enumerate() {
            let both = u64::from((a != 0) & (b != 0));
            let mut hit = self.test(Self::hash(a, b)) & (both | (both << 1));
            if SINGLES {
                let one = u64::from(a != 0);
                hit |= self.test(Self::hash(a, u32::MAX)) & (one | (one << 1));
            }
            // m0, m1 <= i < codes.len()
            o0[m0] = i as u32;
            o1[m1] = i as u32;
            m0 += (hit & 1) as usize;
            m1 += (hit >> 1) as usize;
            a = b;
        }
        if SINGLES && a != 0 {
            let hit = self.test(Self::hash(a, u32::MAX));
            let last = (codes.len() - 1) as u32;
            o0[m0] = last;
            o1[m1] = last;
            m0 += (hit & 1) as usize;
            m1 += (hit >> 1) as usize;
        }
        [m0, m1]
    }
}

/// Largest DFA built; beyond, the contiguous NFA. A DFA row holds every byte class (hundreds
/// of bytes per state), so even a few hundred keywords make a DFA that falls out of L1/L2
/// cache, while the NFA's sparse states stay in it: walks are short, and a cache miss costs
/// more than the NFA's extra instructions.
pub(super) const DFA_MAX_BYTES: usize = 64 << 10;

/// An automaton, walked anchored from each candidate start: a DFA while tiny, else the
/// contiguous NFA (memory linear in the keywords).
#[derive(Clone, Debug)]
pub(super) enum Engine {
    Dfa(aho_corasick::dfa::DFA),
    Nfa(aho_corasick::nfa::contiguous::NFA),
}

impl Engine {
    fn build(encoded: &[Vec<u8>]) -> Result<Engine, aho_corasick::BuildError> {
        use aho_corasick::{MatchKind, StartKind};
        let states: usize = encoded.iter().map(Vec::len).sum::<usize>() + 1;
        let mut seen = [false; 256];
        for p in encoded {
            for &b in p {
                seen[b as usize] = true;
            }
        }
        let classes = seen.iter().filter(|b| **b).count() + 1;
        if states.saturating_mul(classes).saturating_mul(4) <= DFA_MAX_BYTES {
            aho_corasick::dfa::DFA::builder()
                .match_kind(MatchKind::Standard)
                .start_kind(StartKind::Anchored)
                .prefilter(false)
                .build(encoded)
                .map(Engine::Dfa)
        } else {
            aho_corasick::nfa::contiguous::NFA::builder()
                .match_kind(MatchKind::Standard)
                .prefilter(false)
                .build(encoded)
                .map(Engine::Nfa)
        }
    }

    /// Every keyword starting at code `start`: `f(pattern, index after its last code)`.
    #[inline]
    fn walk(&self, entries: &[u32], codes: &[u32], start: usize, f: &mut impl FnMut(u32, usize)) {
        match self {
            Engine::Dfa(a) => walk(a, entries, codes, start, f),
            Engine::Nfa(a) => walk(a, entries, codes, start, f),
        }
    }

    fn memory_usage(&self) -> usize {
        use aho_corasick::automaton::Automaton;
        match self {
            Engine::Dfa(a) => a.memory_usage(),
            Engine::Nfa(a) => a.memory_usage(),
        }
    }
}

#[inline]
pub(super) fn walk<A: aho_corasick::automaton::Automaton>(
    a: &A,
    entries: &[u32],
    codes: &[u32],
    start: usize,
    f: &mut impl FnMut(u32, usize),
) {
    use aho_corasick::Anchored;
    let Ok(mut sid) = a.start_state(Anchored::Yes) else {
        return;
    };
    let mut consumed = 0;
    for (off, &code) in codes[start..].iter().enumerate() {
        if code == 0 {
            return; // no keyword spans a non-keyword character
        }
        let e = entries[code as usize];
        let n = ((e >> LEN_SHIFT) & 3) as usize;
        for j in 0..n {
            sid = a.next_state(Anchored::Yes, sid, (e >> (8 * j)) as u8);
            if a.is_special(sid) && a.is_dead(sid) {
                return;
            }
        }
        consumed += n;
        if a.is_special(sid) && a.is_match(sid) {
            // A match state also reports the keywords that end here but start later
            // (suffixes, through the failure links): those are found from their own start.
            for i in 0..a.match_len(sid) {
                let p = a.match_pattern(sid, i);
                if a.pattern_len(p) == consumed {
                    f(p.as_u32(), start + off + 1);
                }
            }
        }
    }
}

/// One group of keywords: its automaton and its first pattern id.
#[derive(Clone)]
pub(super) struct Part {
    engine: Engine,
    offset: u32,
}

/// Every keyword, compiled once: one alphabet, and one Aho-Corasick automaton per group of
/// keywords (two for the rules engine: the dictionaries', small and hot in cache, walked from
/// the many places a dictionary word occurs; the rules', possibly large, walked only from the
/// few places one of its keywords may start). [`Matcher::find`] reports every (overlapping)
/// occurrence of every keyword in an item's normalised title and content; the pattern id is
/// the keyword's index.
#[derive(Clone)]
pub struct Matcher {
    alphabet: Alphabet,
    filter: StartFilter,
    parts: Vec<Part>,
}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Matcher({} bytes of automata)", self.automaton_bytes())
    }
}

/// Reusable per-thread buffers: the hot path allocates nothing in the steady state.
#[derive(Default)]
pub(super) struct Scratch {
    codes: Vec<u32>,
    starts: [Vec<u32>; 2],
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
}

impl Matcher {
    /// Compiles normalised keywords, in groups: `groups` are the ends of consecutive ranges
    /// of `keywords` (e.g. `[dictionary_count, keywords.len()]`); empty groups are skipped.
    pub fn new(keywords: &[String], groups: &[usize]) -> Result<Matcher, String> {
        let alphabet = Alphabet::build(keywords.iter().map(String::as_str))?;
        let mut parts = Vec::new();
        let mut group_codes: Vec<Vec<Vec<u32>>> = Vec::new();
        let mut from = 0;
        for &to in groups {
            let group = &keywords[from..to.min(keywords.len())];
            if !group.is_empty() {
                if parts.len() == StartFilter::GROUPS {
                    return Err(format!(
                        "at most {} keyword groups are supported",
                        StartFilter::GROUPS
                    ));
                }
                let encoded: Vec<Vec<u8>> = group.iter().map(|k| alphabet.encode(k)).collect();
                group_codes.push(
                    group
                        .iter()
                        .map(|k| {
                            let mut c = Vec::new();
                            alphabet.codes_into(k, &mut c);
                            c
                        })
                        .collect(),
                );
                parts.push(Part {
                    engine: Engine::build(&encoded)
                        .map_err(|e| format!("keyword automaton: {e}"))?,
                    offset: from as u32,
                });
            }
            from = to;
        }
        let refs: Vec<&[Vec<u32>]> = group_codes.iter().map(Vec::as_slice).collect();
        let filter = StartFilter::build(&refs);
        Ok(Matcher {
            alphabet,
            filter,
            parts,
        })
    }

    /// Calls `f(pattern, start, end)` for every keyword occurrence in the item (offsets are
    /// code indices: only their order and containment mean anything). Not re-entrant: `f`
    /// must not call `find`.
    pub fn find(&self, title: &str, content: &str, mut f: impl FnMut(u32, u32, u32)) {
        SCRATCH.with(|s| {
            let mut guard = s.borrow_mut();
            let Scratch { codes, starts } = &mut *guard;
            codes.clear();
            let a = &self.alphabet;
            a.codes_item(title, content, codes);
            let counts = self.filter.starts(codes, starts);
            for ((part, st), n) in self.parts.iter().zip(starts.iter()).zip(counts) {
                for &s in &st[..n] {
                    part.engine
                        .walk(&a.entries, codes, s as usize, &mut |p, end| {
                            f(p + part.offset, s, end as u32)
                        });
                }
            }
        });
    }

    /// Every keyword occurring inside a normalised keyword (for validation), with repeats.
    pub fn find_in_keyword(&self, keyword: &str) -> Vec<u32> {
        let mut codes = Vec::new();
        self.alphabet.codes_into(keyword, &mut codes);
        let mut out = Vec::new();
        for part in &self.parts {
            for s in 0..codes.len() {
                part.engine
                    .walk(&self.alphabet.entries, &codes, s, &mut |p, _| {
                        out.push(p + part.offset)
                    });
            }
        }
        out
    }

    /// Bytes of automata.
    pub fn automaton_bytes(&self) -> usize {
        self.parts.iter().map(|p| p.engine.memory_usage()).sum()
    }

    /// The alphabet (for benchmarks).
    pub fn alphabet(&self) -> &Alphabet {
        &self.alphabet
    }
}
