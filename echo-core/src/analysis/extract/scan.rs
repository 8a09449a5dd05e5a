//! The scan: where in an answer the automaton runs, and the walk that reports each name
//! beginning there. Kept apart from the matching rules because it is the hot loop, tuned
//! against the benches: the layout of its state and what is inlined matter here and nowhere
//! else.

use aho_corasick::automaton::{Automaton as AcAutomaton, StateID};
use aho_corasick::{Anchored, MatchKind, StartKind};

use super::MatcherError;
use crate::analysis::text;

/// Above this many pattern bytes the dense DFA's memory stops paying for its speed.
const DFA_MAX_PATTERN_BYTES: usize = 16 * 1024;

#[derive(Debug)]
pub(super) enum Automaton {
    Dfa(aho_corasick::dfa::DFA),
    Nfa(aho_corasick::nfa::contiguous::NFA),
}

/// Per-byte flags of [`Index::class`]: an ASCII letter or digit that some name needing a word
/// boundary begins with, to be tried where a word starts.
const AT_WORD_START: u8 = 1;
/// An ASCII letter or digit, which continues a word.
const ASCII_WORD: u8 = 2;
/// A byte some name begins with that is tried at every occurrence: the first byte of `](`, of a
/// name needing no boundary ("腾讯"), or of a multi-byte character.
const ANYWHERE: u8 = 4;

/// The automaton with the tables that decide where it is worth running.
///
/// Names mostly begin with a letter that must start a word, so instead of feeding every byte of
/// the answer through the automaton (a dependent table load per byte, about twice as slow), the
/// scan runs it anchored from the starts of words, and from every occurrence of the few other
/// bytes a name can begin with, once the first four bytes there pass a small table built
/// from the names (`prefixes`). On a typical answer that rejects nine in ten words
/// without touching the automaton. Word starts and the other bytes are found a block at a time
/// with vectorised byte compares (a per-byte table loop cost more than everything else in the
/// scan). The scan does not decode UTF-8: every non-ASCII byte counts as a word separator, which can
/// only add candidates, and the boundary rules are checked on each match afterwards.
#[derive(Debug)]
pub(super) struct Index {
    pub(super) automaton: Automaton,
    class: [u8; 256],
    /// The distinct ASCII bytes flagged [`ANYWHERE`], ascending; at least `]` (from `](`).
    pub(super) anywhere_ascii: Vec<u8>,
    /// Whether some non-ASCII byte is flagged [`ANYWHERE`].
    anywhere_high: bool,
    /// The anchored automaton's state after each first byte.
    first_state: [StateID; 256],
    /// Bit [`prefix_key`] is set for the first four bytes of every name (for every byte after
    /// the end of a shorter one).
    prefixes: Box<[u64; PREFIX_WORDS]>,
}

const PREFIX_BITS: u32 = 15;
/// `u64` words of [`Index::prefixes`]: 4 KiB, one bit per key.
const PREFIX_WORDS: usize = (1 << PREFIX_BITS) / 64;

/// A hash of the low five bits of four bytes (little-endian in `word`): ASCII case folds away.
/// Other bytes, and other prefixes, share keys, which only lets more places through to the
/// automaton, never fewer.
fn prefix_key(word: u32) -> usize {
    ((word & 0x1F1F_1F1F).wrapping_mul(0x9E37_79B1) >> (32 - PREFIX_BITS)) as usize
}

impl Index {
    pub(super) fn new(
        needles: &[String],
        ascii_case_insensitive: bool,
    ) -> Result<Self, MatcherError> {
        let total: usize = needles.iter().map(String::len).sum();
        let dfa = (total <= DFA_MAX_PATTERN_BYTES)
            .then(|| {
                aho_corasick::dfa::DFA::builder()
                    .match_kind(MatchKind::Standard)
                    .ascii_case_insensitive(ascii_case_insensitive)
                    .start_kind(StartKind::Anchored)
                    .prefilter(false)
                    .build(needles)
                    .ok()
            })
            .flatten();
        let automaton = match dfa {
            Some(dfa) => Automaton::Dfa(dfa),
            None => Automaton::Nfa(
                aho_corasick::nfa::contiguous::NFA::builder()
                    .match_kind(MatchKind::Standard)
                    .ascii_case_insensitive(ascii_case_insensitive)
                    .prefilter(false)
                    .build(needles)
                    .map_err(|source| MatcherError::TooLarge { source })?,
            ),
        };
        let start_state = match &automaton {
            Automaton::Dfa(a) => a.start_state(Anchored::Yes),
            Automaton::Nfa(a) => a.start_state(Anchored::Yes),
        }
        .map_err(|source| MatcherError::Unsupported { source })?;
        let mut first_state = [start_state; 256];
        let mut class = [0u8; 256];
        for b in 0..=255u8 {
            let (sid, dead) = match &automaton {
                Automaton::Dfa(a) => {
                    let sid = a.next_state(Anchored::Yes, start_state, b);
                    (sid, a.is_dead(sid))
                }
                Automaton::Nfa(a) => {
                    let sid = a.next_state(Anchored::Yes, start_state, b);
                    (sid, a.is_dead(sid))
                }
            };
            let i = usize::from(b);
            first_state[i] = sid;
            if b.is_ascii_alphanumeric() {
                class[i] |= ASCII_WORD;
            }
            if !dead {
                class[i] |= if b.is_ascii_alphanumeric() {
                    AT_WORD_START
                } else {
                    ANYWHERE
                };
            }
        }
        let mut prefixes = Box::new([0u64; PREFIX_WORDS]);
        for needle in needles {
            let bytes = needle.as_bytes();
            let Some(known) = bytes.get(..bytes.len().min(4)).filter(|k| !k.is_empty()) else {
                continue;
            };
            // Past a name's end any byte may follow (the end of the answer reads as zero): all
            // 32 values of its low five bits, for each missing byte.
            let head = known
                .iter()
                .enumerate()
                .fold(0u32, |w, (k, &b)| w | u32::from(b) << (8 * k));
            let missing = 4 - known.len();
            for rest in 0..1u32 << (5 * missing) {
                let word = (0..missing).fold(head, |w, m| {
                    w | ((rest >> (5 * m)) & 0x1F) << (8 * (known.len() + m))
                });
                let k = prefix_key(word);
                if let Some(w) = prefixes.get_mut(k >> 6) {
                    *w |= 1 << (k & 63);
                }
            }
        }
        let anywhere_ascii = (0..0x80u8)
            .filter(|&b| class[usize::from(b)] & ANYWHERE != 0)
            .collect();
        let anywhere_high = (0x80..=0xFFu8).any(|b| class[usize::from(b)] & ANYWHERE != 0);
        Ok(Self {
            automaton,
            class,
            anywhere_ascii,
            anywhere_high,
            first_state,
            prefixes,
        })
    }

    /// Calls `found(pattern, start, end)` for every occurrence of a name in `hay` that starts
    /// where `class` allows, in order of start; the caller checks the boundaries.
    pub(super) fn scan(&self, hay: &str, found: &mut impl FnMut(usize, usize, usize)) {
        match &self.automaton {
            Automaton::Dfa(a) => self.scan_with(a, hay, found),
            Automaton::Nfa(a) => self.scan_with(a, hay, found),
        }
    }

    fn scan_with<A: AcAutomaton>(
        &self,
        a: &A,
        hay: &str,
        found: &mut impl FnMut(usize, usize, usize),
    ) {
        // One comparison per distinct byte and block, monomorphised for the usual one (`]`);
        // names starting with many kinds of punctuation are classified byte by byte.
        let bytes = hay.as_bytes();
        match *self.anywhere_ascii.as_slice() {
            [x] => self.scan_words(a, bytes, [x], found),
            [x, y] => self.scan_words(a, bytes, [x, y], found),
            [x, y, z] => self.scan_words(a, bytes, [x, y, z], found),
            [x, y, z, w] => self.scan_words(a, bytes, [x, y, z, w], found),
            _ => self.scan_bytes(a, bytes, found),
        }
    }

    /// The scan a block at a time: bit `k` of a block's hits is set at an ASCII letter or digit
    /// after a byte that is not one, or at one of the `anywhere` bytes. The places that pass
    /// the prefix table are collected without a branch each (most fail, unpredictably), then
    /// walked.
    fn scan_words<A: AcAutomaton, const N: usize>(
        &self,
        a: &A,
        bytes: &[u8],
        anywhere: [u8; N],
        found: &mut impl FnMut(usize, usize, usize),
    ) {
        let is_word = |b: u8| (b.wrapping_sub(b'0') < 10) | ((b | 0x20).wrapping_sub(b'a') < 26);
        let is_anywhere = |b: u8| anywhere.iter().fold(false, |o, &x| o | (x == b));
        let mut after_word = 0u32;
        let mut base = 0;
        while let Some(words) = text::flags_at(bytes, base, is_word) {
            let mut hits = (words & !((words << 1) | after_word))
                | text::flags_at(bytes, base, is_anywhere).unwrap_or(0);
            after_word = words >> 31;
            if self.anywhere_high {
                let high = text::flags_at(bytes, base, |b| b >= 0x80).unwrap_or(0);
                hits |= self.high_anywhere(bytes, base, high);
            }
            let mut passed = [0u8; text::BLOCK];
            let mut n = 0;
            while hits != 0 {
                let k = hits.trailing_zeros();
                hits &= hits - 1;
                if let Some(slot) = passed.get_mut(n) {
                    *slot = k as u8;
                }
                n += usize::from(self.may_start(bytes, base + k as usize));
            }
            for &k in passed.get(..n).unwrap_or_default() {
                let i = base + usize::from(k);
                if let Some(&b) = bytes.get(i) {
                    walk(a, self.first_state[usize::from(b)], bytes, i, found);
                }
            }
            base += text::BLOCK;
        }
    }

    /// Which of the non-ASCII bytes flagged in `high` (bit `k` for byte `base + k`) some name
    /// begins with.
    fn high_anywhere(&self, bytes: &[u8], base: usize, mut high: u32) -> u32 {
        let mut hits = 0;
        while high != 0 {
            let k = high.trailing_zeros();
            high &= high - 1;
            if bytes
                .get(base + k as usize)
                .is_some_and(|&b| self.class[usize::from(b)] & ANYWHERE != 0)
            {
                hits |= 1 << k;
            }
        }
        hits
    }

    /// The scan byte by byte, for matchers with many kinds of leading punctuation.
    fn scan_bytes<A: AcAutomaton>(
        &self,
        a: &A,
        bytes: &[u8],
        found: &mut impl FnMut(usize, usize, usize),
    ) {
        let class_of = &self.class;
        let mut prev_word = false;
        for (i, &b) in bytes.iter().enumerate() {
            let class = class_of[usize::from(b)];
            let word = class & ASCII_WORD != 0;
            // Bitwise `&`/`|`, not `&&`/`||`: about half the bytes are letters some name starts
            // with, and a branch on each would be mispredicted that often.
            let worth = ((class & AT_WORD_START != 0) & !prev_word) | (class & ANYWHERE != 0);
            prev_word = word;
            if worth {
                self.try_at(a, bytes, i, found);
            }
        }
    }

    /// Runs the automaton from `i` if the first four bytes there may begin a name.
    fn try_at<A: AcAutomaton>(
        &self,
        a: &A,
        bytes: &[u8],
        i: usize,
        found: &mut impl FnMut(usize, usize, usize),
    ) {
        if self.may_start(bytes, i)
            && let Some(&b) = bytes.get(i)
        {
            walk(a, self.first_state[usize::from(b)], bytes, i, found);
        }
    }

    /// Whether the first four bytes from `i` pass [`Index::prefixes`].
    fn may_start(&self, bytes: &[u8], i: usize) -> bool {
        let word = match bytes.get(i..).and_then(<[u8]>::first_chunk::<4>) {
            Some(&four) => u32::from_le_bytes(four),
            None => (0..4).fold(0, |w, k| {
                w | u32::from(bytes.get(i + k).copied().unwrap_or(0)) << (8 * k)
            }),
        };
        let k = prefix_key(word);
        self.prefixes
            .get(k >> 6)
            .is_some_and(|w| w & (1 << (k & 63)) != 0)
    }
}

/// Runs the anchored automaton from `sid` (the state after the byte at `start`) and reports the
/// names that begin exactly at `start`. Kept out of line, like the reporting: the scan loop that
/// calls it and its own inner loop must keep their few variables in registers (with the
/// reporting inlined, the state went through the stack on every byte).
#[inline(never)]
fn walk<A: AcAutomaton>(
    a: &A,
    mut sid: StateID,
    bytes: &[u8],
    start: usize,
    found: &mut impl FnMut(usize, usize, usize),
) {
    let mut end = start + 1;
    loop {
        while !a.is_special(sid) {
            let Some(&b) = bytes.get(end) else {
                return;
            };
            sid = a.next_state(Anchored::Yes, sid, b);
            end += 1;
        }
        if a.is_dead(sid) {
            return;
        }
        if a.is_match(sid) {
            report(a, sid, start, end, found);
        }
        let Some(&b) = bytes.get(end) else {
            return;
        };
        sid = a.next_state(Anchored::Yes, sid, b);
        end += 1;
    }
}

/// Reports the names of match state `sid` that span `start..end`: match states also carry names
/// that are suffixes of the path walked.
#[inline(never)]
fn report<A: AcAutomaton>(
    a: &A,
    sid: StateID,
    start: usize,
    end: usize,
    found: &mut impl FnMut(usize, usize, usize),
) {
    for k in 0..a.match_len(sid) {
        let pid = a.match_pattern(sid, k);
        if end.checked_sub(a.pattern_len(pid)) == Some(start) {
            found(pid.as_usize(), start, end);
        }
    }
}
