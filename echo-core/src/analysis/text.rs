//! Text primitives shared by extraction and metrics: word characters, sentence splitting and the
//! GEO paper's word tokens.
//!
//! Sentence boundaries are decided locally (by the characters around a candidate full stop), so
//! the same text always splits the same way wherever the split is computed.

use serde::{Deserialize, Serialize};

/// A byte range `start..end` of the original text; both ends are char boundaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TextSpan {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl TextSpan {
    /// The spanned text, or `None` when the span does not fit `text` (a different text).
    ///
    /// ```
    /// use echo_core::analysis::TextSpan;
    /// assert_eq!(TextSpan { start: 4, end: 9 }.text("Try Notion."), Some("Notio"));
    /// assert_eq!(TextSpan { start: 4, end: 99 }.text("Try Notion."), None);
    /// ```
    pub fn text<'t>(&self, text: &'t str) -> Option<&'t str> {
        text.get(self.start..self.end)
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.end.saturating_sub(self.start)
    }

    /// Whether the span is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Letters and digits of any script (and combining marks, which belong to the letter before).
/// `_` is not here: extraction treats it as markdown emphasis unless it joins two words.
pub(crate) fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || is_combining_mark(c)
}

fn is_combining_mark(c: char) -> bool {
    matches!(c, '\u{0300}'..='\u{036F}' | '\u{1AB0}'..='\u{1AFF}' | '\u{1DC0}'..='\u{1DFF}'
        | '\u{20D0}'..='\u{20FF}' | '\u{FE20}'..='\u{FE2F}')
}

/// Scripts written without spaces between words (Han, kana, Hangul with attached particles, Thai
/// and neighbours). Next to these a word boundary cannot be required, or "我推荐HubSpot" and
/// "腾讯云" would never match "HubSpot" and "腾讯".
pub(crate) fn is_unspaced_script(c: char) -> bool {
    matches!(c,
        '\u{0E00}'..='\u{0EFF}'   // Thai, Lao
        | '\u{1000}'..='\u{109F}' // Myanmar
        | '\u{1100}'..='\u{11FF}' // Hangul Jamo
        | '\u{1780}'..='\u{17FF}' // Khmer
        | '\u{2E80}'..='\u{2FDF}' // CJK radicals
        | '\u{3005}'..='\u{3007}'
        | '\u{3040}'..='\u{30FF}' // Hiragana, Katakana
        | '\u{3130}'..='\u{318F}' // Hangul compatibility Jamo
        | '\u{31F0}'..='\u{31FF}'
        | '\u{3400}'..='\u{4DBF}'
        | '\u{4E00}'..='\u{9FFF}'
        | '\u{AC00}'..='\u{D7AF}' // Hangul syllables
        | '\u{F900}'..='\u{FAFF}'
        | '\u{FF66}'..='\u{FF9F}' // half-width Katakana
        | '\u{20000}'..='\u{3FFFF}')
}

/// Sentences of `text`, in order, as trimmed byte spans.
///
/// A sentence ends at a line break (so headings, list items and paragraphs are sentences of their
/// own), after `。`, `！` or `？`, or after `.`, `!` or `?` followed by whitespace or the end of the text (closing quotes,
/// brackets and emphasis markers stay with the sentence). A full stop does not end a sentence
/// when it belongs to a list marker at the start of a line (`1. `), an initial (`J. Smith`), a
/// dotted abbreviation of single letters (`e.g.`, `i.e.`, `U.S.`), a title or Latin abbreviation
/// (`Mr.`, `Dr.`, `vs.`, `cf.`, `approx.`, `et al.`), a numbering abbreviation before a digit
/// (`No. 1`, `Fig. 2`) or a company suffix not followed by a capital (`Inc.`, `Ltd.`, `etc.`).
/// Without whitespace after it, a full stop never ends a sentence, so `Monday.com`, `C3.ai` and
/// `3.5` stay whole. Segments without a letter or digit (`---`, `**`) are not sentences.
///
/// ```
/// use echo_core::analysis::text::sentences;
/// let text = "Try Monday.com, e.g. for teams. C3.ai costs $3.5k!\n- Notion";
/// let got: Vec<&str> = sentences(text).iter().filter_map(|s| s.text(text)).collect();
/// assert_eq!(got, ["Try Monday.com, e.g. for teams.", "C3.ai costs $3.5k!", "- Notion"]);
/// ```
pub fn sentences(text: &str) -> Vec<TextSpan> {
    // Prose averages a sentence per 60 bytes or so; one allocation covers most answers.
    let mut out = Vec::with_capacity(text.len() / 48 + 1);
    out.extend(Sentences::new(text));
    out
}

/// [`sentences`], and the offsets of the text's line feeds: every one ends a sentence, so the
/// splitter finds them all on the way.
pub(crate) fn sentences_and_newlines(text: &str) -> (Vec<TextSpan>, Vec<usize>) {
    let mut out = Vec::with_capacity(text.len() / 48 + 1);
    let mut iter = Sentences::new(text);
    iter.newlines = Some(Vec::with_capacity(text.len() / 48 + 1));
    out.extend(&mut iter);
    (out, iter.newlines.unwrap_or_default())
}

/// Iterator behind [`sentences`], for callers that do not need a vector.
#[derive(Debug, Clone)]
pub struct Sentences<'a> {
    text: &'a str,
    pos: usize,
    /// Candidate terminators of the block at `base` not looked at yet ([`flags_at`] of
    /// [`may_end`]): positions only grow, so each block is read once.
    pending: u32,
    base: usize,
    /// Start of the next block to read.
    next_block: usize,
    /// Where to record the line feeds met, if anywhere.
    newlines: Option<Vec<usize>>,
}

impl<'a> Sentences<'a> {
    /// Sentences of `text`; see [`sentences`] for the rules.
    pub fn new(text: &'a str) -> Self {
        Self {
            text,
            pos: 0,
            pending: 0,
            base: 0,
            next_block: 0,
            newlines: None,
        }
    }

    /// The first byte at or after `from` that may end a sentence ([`may_end`]). Each call's
    /// `from` must be past the position the previous call returned: that one is consumed.
    fn next_may_end(&mut self, from: usize) -> Option<usize> {
        let bytes = self.text.as_bytes();
        loop {
            while self.pending != 0 {
                let p = self.base + self.pending.trailing_zeros() as usize;
                self.pending &= self.pending - 1;
                if p >= from {
                    return Some(p);
                }
            }
            // Blocks before `from` hold nothing to look at.
            let mut base = self.next_block.max(from);
            loop {
                let flags = flags_at(bytes, base, may_end)?;
                base += BLOCK;
                if flags != 0 {
                    self.pending = flags;
                    self.base = base - BLOCK;
                    self.next_block = base;
                    break;
                }
            }
        }
    }
}

/// Bytes at which a sentence may end: `.`, `!`, `?`, line feed, and the lead bytes of `。`, `！`
/// and `？`. Bitwise `|`, not `matches!`: LLVM vectorises comparisons, not the jump table.
fn may_end(b: u8) -> bool {
    (b == b'.') | (b == b'!') | (b == b'?') | (b == b'\n') | (b == 0xE3) | (b == 0xEF)
}

/// Bytes per block of the byte-class scans ([`block_flags`]). Prose has a sentence terminator
/// every 35 bytes or so and a word start every 6: a byte-by-byte loop made sentence splitting
/// cost as much as brand matching.
pub(crate) const BLOCK: usize = 32;

/// Bit `k` set where byte `base + k` passes `test`, for the [`BLOCK`] bytes from `base` (a
/// short last block is padded with zero bytes, which no test here passes); `None` from the end
/// of `bytes` on.
#[inline]
pub(crate) fn flags_at(bytes: &[u8], base: usize, test: impl Fn(u8) -> bool) -> Option<u32> {
    let rest = bytes.get(base..).filter(|r| !r.is_empty())?;
    // Two calls, not one on a copied block: LLVM vectorises loads straight from the text.
    let words = match rest.first_chunk::<BLOCK>() {
        Some(block) => block_flags(block, test),
        None => {
            let mut block = [0u8; BLOCK];
            for (d, &b) in block.iter_mut().zip(rest) {
                *d = b;
            }
            block_flags(&block, test)
        }
    };
    Some(
        words
            .iter()
            .enumerate()
            .fold(0, |mask, (j, &w)| mask | pack_bytes(w) << (8 * j)),
    )
}

/// The first byte at or after `from` that passes `test`, searched a block at a time.
pub(crate) fn find_flagged(
    bytes: &[u8],
    from: usize,
    test: impl Fn(u8) -> bool + Copy,
) -> Option<usize> {
    let mut base = from;
    while let Some(flags) = flags_at(bytes, base, test) {
        if flags != 0 {
            return Some(base + flags.trailing_zeros() as usize);
        }
        base += BLOCK;
    }
    None
}

/// `test` of every byte of `block`, as words whose byte `k` of word `j` is 1 when the test
/// holds for byte `8j + k`. Written as a plain loop over a fixed-size array so that LLVM compiles
/// the tests to SSE2 byte compares, sixteen bytes per instruction, in safe code. Not inlined:
/// where LLVM could see how the flags are used it computed them byte by byte instead.
#[inline(never)]
fn block_flags(block: &[u8; BLOCK], test: impl Fn(u8) -> bool) -> [u64; BLOCK / 8] {
    let mut flags = [0u8; BLOCK];
    for (f, &b) in flags.iter_mut().zip(block) {
        *f = u8::from(test(b));
    }
    let mut words = [0u64; BLOCK / 8];
    for (w, chunk) in words.iter_mut().zip(flags.chunks_exact(8)) {
        *w = chunk.try_into().map_or(0, u64::from_le_bytes);
    }
    words
}

/// Bit `k` of the result is byte `k` of `word`, whose bytes are each 0 or 1: the multiplication
/// adds every byte into the top byte, each at its own bit, without carries.
fn pack_bytes(word: u64) -> u32 {
    (word.wrapping_mul(0x0102_0408_1020_4080) >> 56) as u32
}

impl Sentences<'_> {
    /// Where the sentence starting at `from` ends, and where the next one starts.
    fn boundary(&mut self, from: usize) -> (usize, usize) {
        let bytes = self.text.as_bytes();
        let mut i = from;
        while let Some(at) = self.next_may_end(i) {
            i = at;
            match bytes.get(i) {
                Some(b'\n') => {
                    if let Some(newlines) = &mut self.newlines {
                        newlines.push(i);
                    }
                    return (i, i + 1);
                }
                Some(b'.' | b'!' | b'?') => {
                    if let Some(after) = sentence_end_after(self.text, i) {
                        return (after, after);
                    }
                }
                _ => {
                    if let Some(t) = self.text.get(i..).and_then(cjk_terminator_len) {
                        return (i + t, i + t);
                    }
                }
            }
            i += 1;
        }
        (bytes.len(), bytes.len())
    }
}

impl Iterator for Sentences<'_> {
    type Item = TextSpan;

    fn next(&mut self) -> Option<TextSpan> {
        while self.pos < self.text.len() {
            let start = self.pos;
            let (end, next) = self.boundary(start);
            self.pos = next;
            if let Some(span) = trim_span(self.text, start, end) {
                return Some(span);
            }
        }
        None
    }
}

/// Ideographic full stop and full-width `!`/`?`: they end a sentence without a following space.
fn cjk_terminator_len(rest: &str) -> Option<usize> {
    ["。", "！", "？"]
        .into_iter()
        .find(|t| rest.starts_with(t))
        .map(str::len)
}

/// Trims whitespace; `None` unless the segment holds a letter or digit.
fn trim_span(text: &str, start: usize, end: usize) -> Option<TextSpan> {
    let seg = text.get(start..end)?;
    let lead = seg.len() - trim_start(seg).len();
    let trimmed = trim_end(seg.get(lead..)?);
    // ASCII first: a Unicode letter test per character is the slow path.
    if !trimmed.bytes().any(|b| b.is_ascii_alphanumeric())
        && (trimmed.is_ascii() || !trimmed.chars().any(char::is_alphanumeric))
    {
        return None;
    }
    Some(TextSpan {
        start: start + lead,
        end: start + lead + trimmed.len(),
    })
}

/// `char::is_whitespace` for ASCII bytes.
fn is_ascii_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t'..=b'\r')
}

/// `str::trim_start`, without decoding while the text is ASCII.
fn trim_start(s: &str) -> &str {
    let n = s.bytes().take_while(|&b| is_ascii_space(b)).count();
    let rest = s.get(n..).unwrap_or_default();
    if rest.as_bytes().first().is_some_and(|&b| b >= 0x80) {
        rest.trim_start()
    } else {
        rest
    }
}

/// `str::trim_end`, without decoding while the text is ASCII.
fn trim_end(s: &str) -> &str {
    let n = s.bytes().rev().take_while(|&b| is_ascii_space(b)).count();
    let rest = s.get(..s.len() - n).unwrap_or_default();
    if rest.as_bytes().last().is_some_and(|&b| b >= 0x80) {
        rest.trim_end()
    } else {
        rest
    }
}

fn is_closer(c: char) -> bool {
    matches!(
        c,
        '"' | '\'' | ')' | ']' | '*' | '_' | '`' | '”' | '’' | '»' | '）' | '」' | '』'
    )
}

/// Where the sentence ends if the terminator at byte `i` ends one: just after the terminator and
/// any closing marks. `None` when it does not end a sentence.
fn sentence_end_after(text: &str, i: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let after = match bytes.get(i + 1) {
        // The common cases without decoding: a space or the end, or a letter, digit or `.`.
        None | Some(b' ' | b'\n' | b'\t' | b'\r') => i + 1,
        Some(b) if b.is_ascii_alphanumeric() || matches!(b, b'.' | b',' | b'/' | b'-') => {
            return None;
        }
        Some(_) => {
            let rest = text.get(i + 1..)?;
            let mut after = i + 1;
            let mut following = None;
            for c in rest.chars() {
                if is_closer(c) {
                    after += c.len_utf8();
                } else {
                    following = Some(c);
                    break;
                }
            }
            if following.is_some_and(|c| !c.is_whitespace()) {
                return None;
            }
            after
        }
    };
    if bytes.get(i) == Some(&b'.') && !full_stop_ends_sentence(text, i, after) {
        return None;
    }
    Some(after)
}

const NEVER_FINAL: &[&str] = &[
    "mr", "mrs", "ms", "dr", "prof", "st", "vs", "cf", "approx", "al", "jr", "sr", "viz",
];
const BEFORE_NUMBER: &[&str] = &["no", "nos", "fig", "vol", "pp", "p", "nr"];
const COMPANY_OR_LIST: &[&str] = &["etc", "inc", "ltd", "corp", "co", "llc"];

fn full_stop_ends_sentence(text: &str, dot: usize, after: usize) -> bool {
    let Some(before) = text.get(..dot) else {
        return true;
    };
    let ascii_start = before
        .bytes()
        .rposition(|b| !(b.is_ascii_alphanumeric() || b == b'.'))
        .map_or(0, |p| p + 1);
    let token_start = if ascii_start > 0
        && before
            .as_bytes()
            .get(ascii_start - 1)
            .is_some_and(|b| *b >= 0x80)
    {
        // The token may continue with non-ASCII letters: decode.
        before
            .char_indices()
            .rev()
            .take_while(|&(_, c)| c.is_alphanumeric() || c == '.')
            .last()
            .map_or(dot, |(p, _)| p)
    } else {
        ascii_start
    };
    let token = &before[token_start..];
    if token.is_empty() {
        return true;
    }
    if token.len() <= 9 && token.bytes().all(|b| b.is_ascii_digit()) {
        // "1. " opening a line is a list marker; any other number ends the sentence.
        let line_start = before[..token_start].rfind('\n').map_or(0, |p| p + 1);
        return !before[line_start..token_start].trim().is_empty();
    }
    let mut chars = token.chars();
    if let (Some(c), None) = (chars.next(), chars.next())
        && c.is_uppercase()
    {
        return false;
    }
    if token.contains('.')
        && token
            .split('.')
            .all(|part| part.chars().count() == 1 && part.chars().all(char::is_alphabetic))
    {
        return false;
    }
    if token.len() > 6 {
        return true;
    }
    let listed = |list: &[&str]| list.iter().any(|w| w.eq_ignore_ascii_case(token));
    let next_visible = || {
        text.get(after..)
            .and_then(|rest| rest.chars().find(|c| !c.is_whitespace()))
    };
    if listed(NEVER_FINAL) {
        return false;
    }
    if listed(BEFORE_NUMBER) {
        return !next_visible().is_some_and(|c| c.is_ascii_digit());
    }
    if listed(COMPANY_OR_LIST) {
        return next_visible().is_none_or(char::is_uppercase);
    }
    true
}

/// Word tokens of `text` as the GEO reference code counts them (`len(token) > 2` after NLTK
/// tokenisation): a token is a run of letters and digits, joined across single inner `'`, `’`,
/// `-`, `.` or `_` ("HubSpot's", "state-of-the-art", "e.g", "3.5" are one token each), and only
/// tokens longer than two characters count. This approximates NLTK's tokenizer without its data
/// files; like it, it drops "is", "a", punctuation, list numbers and `[1]` citation markers.
///
/// ```
/// use echo_core::analysis::text::count_words;
/// // HubSpot, CRM, e.g, for, teams
/// assert_eq!(count_words("HubSpot is a CRM, e.g. for 10 teams [1]."), 5);
/// ```
pub fn count_words(text: &str) -> u32 {
    let mut count = 0u32;
    let mut token_chars = 0usize;
    let mut pending_joiner = false;
    for c in text.chars() {
        if is_word_char(c) {
            if pending_joiner {
                token_chars += 1;
                pending_joiner = false;
            }
            token_chars += 1;
        } else if token_chars > 0 && !pending_joiner && matches!(c, '\'' | '’' | '-' | '.' | '_')
        {
            pending_joiner = true;
        } else {
            if token_chars > 2 {
                count = count.saturating_add(1);
            }
            token_chars = 0;
            pending_joiner = false;
        }
    }
    if token_chars > 2 {
        count = count.saturating_add(1);
    }
    count
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn split(text: &str) -> Vec<&str> {
        sentences(text)
            .iter()
            .map(|s| s.text(text).unwrap())
            .collect()
    }

    #[test]
    fn splits_on_terminators_and_lines() {
        assert_eq!(
            split("HubSpot is good. Salesforce is big! Why? Because.\nNotion"),
            [
                "HubSpot is good.",
                "Salesforce is big!",
                "Why?",
                "Because.",
                "Notion"
            ]
        );
    }

    #[test]
    fn keeps_domains_decimals_and_abbreviations() {
        assert_eq!(
            split(
                "Monday.com and C3.ai cost 3.5 times more, e.g. Mr. Smith said, i.e. a lot. Next."
            ),
            [
                "Monday.com and C3.ai cost 3.5 times more, e.g. Mr. Smith said, i.e. a lot.",
                "Next."
            ]
        );
        assert_eq!(
            split("Ranked No. 1 by J. Smith. Done"),
            ["Ranked No. 1 by J. Smith.", "Done"]
        );
        assert_eq!(split("Say no. Then go."), ["Say no.", "Then go."]);
        assert_eq!(
            split("Acme Inc. makes tools, etc. Then Salesforce Inc. Again."),
            [
                "Acme Inc. makes tools, etc.",
                "Then Salesforce Inc.",
                "Again."
            ]
        );
    }

    #[test]
    fn list_markers_and_markdown() {
        let text = "## Best CRMs\n\n1. **HubSpot.** Free tier.\n2) Salesforce\n- Notion\n---\n";
        assert_eq!(
            split(text),
            [
                "## Best CRMs",
                "1. **HubSpot.**",
                "Free tier.",
                "2) Salesforce",
                "- Notion"
            ]
        );
        assert_eq!(split("It costs 5. Then 10."), ["It costs 5.", "Then 10."]);
    }

    #[test]
    fn closers_stay_with_sentence() {
        assert_eq!(
            split("He said \"use HubSpot.\" Then (he left.) End"),
            ["He said \"use HubSpot.\"", "Then (he left.)", "End"]
        );
        assert_eq!(split("Wait... what?! Ok"), ["Wait...", "what?!", "Ok"]);
    }

    #[test]
    fn unicode_text() {
        assert_eq!(
            split("我推荐HubSpot。很好\n🚀 Notion! 👍"),
            ["我推荐HubSpot。", "很好", "🚀 Notion!"]
        );
        assert!(sentences("").is_empty());
        assert!(sentences("  \n\n ** \n").is_empty());
    }

    /// The bytes that may end a sentence, as a table: the specification [`may_end`] follows.
    static MAY_END: [bool; 256] = {
        let mut t = [false; 256];
        t[b'.' as usize] = true;
        t[b'!' as usize] = true;
        t[b'?' as usize] = true;
        t[b'\n' as usize] = true;
        t[0xE3] = true;
        t[0xEF] = true;
        t
    };

    /// The first byte of `bytes` that may end a sentence, found by the block scan.
    fn find_may_end(bytes: &[u8]) -> Option<usize> {
        find_flagged(bytes, 0, may_end)
    }

    #[test]
    fn terminator_search_matches_bytewise() {
        let text = "abcdefgh.ijklmnopqrstuvw!xyz?\n0123456789éñ 。!";
        let bytes = text.as_bytes();
        for from in 0..bytes.len() {
            let expected = bytes[from..].iter().position(|&b| MAY_END[usize::from(b)]);
            assert_eq!(find_may_end(&bytes[from..]), expected, "from {from}");
        }
    }

    #[test]
    fn terminator_cursor_matches_bytewise() {
        let text =
            "abcdefgh.ijklmnopqrstuvw!xyz?\n0123456789éñ 。!abcdefghijklmnopqrstuvwxyz0123456789.";
        let bytes = text.as_bytes();
        let bytewise = |from: usize| (from..bytes.len()).find(|&i| may_end(bytes[i]));
        for from in 0..=bytes.len() + 1 {
            assert_eq!(
                Sentences::new(text).next_may_end(from),
                bytewise(from),
                "{from}"
            );
        }
        for step in 1..40 {
            let mut shared = Sentences::new(text);
            let mut from = 0;
            while let Some(p) = bytewise(from) {
                assert_eq!(
                    shared.next_may_end(from),
                    Some(p),
                    "step {step}, from {from}"
                );
                from = (p + 1).max(from + step);
            }
            assert_eq!(shared.next_may_end(from), None);
        }
    }

    #[test]
    fn block_flags_match_bytewise() {
        let bytes: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
        for start in 0..bytes.len() {
            let flags = flags_at(&bytes, start, may_end).unwrap();
            for k in 0..BLOCK {
                let expected = bytes.get(start + k).is_some_and(|&b| may_end(b));
                assert_eq!(flags >> k & 1 == 1, expected, "{start} + {k}");
            }
        }
        for byte in 0..=255u8 {
            let word = (0..8).fold(0u64, |w, k| w | u64::from(byte >> k & 1) << (8 * k));
            assert_eq!(pack_bytes(word), u32::from(byte));
        }
        assert!(!may_end(0), "padding is never flagged");
        assert_eq!(flags_at(&bytes, bytes.len(), may_end), None);
    }

    /// The splitting rules written plainly (character by character, allocating), as an oracle
    /// for the optimised [`sentences`] (and, from extraction's tests, for [`super::extract`]).
    pub(crate) fn reference_sentences(text: &str) -> Vec<TextSpan> {
        fn ends_after(text: &str, i: usize) -> Option<usize> {
            let mut after = i + 1;
            let mut following = None;
            for c in text[i + 1..].chars() {
                if is_closer(c) {
                    after += c.len_utf8();
                } else {
                    following = Some(c);
                    break;
                }
            }
            if following.is_some_and(|c| !c.is_whitespace()) {
                return None;
            }
            if text.as_bytes()[i] == b'.' {
                let before = &text[..i];
                let token_start = before
                    .char_indices()
                    .rev()
                    .take_while(|&(_, c)| c.is_alphanumeric() || c == '.')
                    .last()
                    .map_or(i, |(p, _)| p);
                let token = &before[token_start..];
                let line_start = before[..token_start].rfind('\n').map_or(0, |p| p + 1);
                let at_line_start = before[line_start..token_start].trim().is_empty();
                let lower = token.to_ascii_lowercase();
                let next = text[after..].chars().find(|c| !c.is_whitespace());
                let mut chars = token.chars();
                let single_upper =
                    matches!((chars.next(), chars.next()), (Some(c), None) if c.is_uppercase());
                let keeps = if token.is_empty() {
                    false
                } else if token.len() <= 9 && token.bytes().all(|b| b.is_ascii_digit()) {
                    at_line_start
                } else if single_upper
                    || (token.contains('.')
                        && token
                            .split('.')
                            .all(|p| p.chars().count() == 1 && p.chars().all(char::is_alphabetic)))
                {
                    true
                } else if token.len() > 6 {
                    false
                } else if NEVER_FINAL.contains(&lower.as_str()) {
                    true
                } else if BEFORE_NUMBER.contains(&lower.as_str()) {
                    next.is_some_and(|c| c.is_ascii_digit())
                } else if COMPANY_OR_LIST.contains(&lower.as_str()) {
                    !next.is_none_or(char::is_uppercase)
                } else {
                    false
                };
                if keeps {
                    return None;
                }
            }
            Some(after)
        }
        let mut out = Vec::new();
        let mut start = 0;
        let mut i = 0;
        let bytes = text.as_bytes();
        while i < bytes.len() {
            let cut = match bytes[i] {
                b'\n' => Some((i, i + 1)),
                b'.' | b'!' | b'?' => ends_after(text, i).map(|a| (a, a)),
                _ => text
                    .get(i..)
                    .and_then(|rest| rest.chars().next())
                    .filter(|c| matches!(c, '。' | '！' | '？'))
                    .map(|c| (i + c.len_utf8(), i + c.len_utf8())),
            };
            match cut {
                Some((end, next)) => {
                    let seg = &text[start..end];
                    let t = seg.trim();
                    if t.chars().any(char::is_alphanumeric) {
                        let s = start + (seg.len() - seg.trim_start().len());
                        out.push(TextSpan {
                            start: s,
                            end: s + t.len(),
                        });
                    }
                    start = next;
                    i = next;
                }
                None => i += 1,
            }
        }
        let seg = &text[start..];
        let t = seg.trim();
        if t.chars().any(char::is_alphanumeric) {
            let s = start + (seg.len() - seg.trim_start().len());
            out.push(TextSpan {
                start: s,
                end: s + t.len(),
            });
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn matches_reference(parts in proptest::collection::vec(proptest::prop_oneof![
            proptest::strategy::Just("Word"), proptest::strategy::Just(" "), proptest::strategy::Just(". "),
            proptest::strategy::Just("."), proptest::strategy::Just("!"), proptest::strategy::Just("?"),
            proptest::strategy::Just("\n"), proptest::strategy::Just("1. "), proptest::strategy::Just("e.g"),
            proptest::strategy::Just("Inc"), proptest::strategy::Just("etc"), proptest::strategy::Just("No"),
            proptest::strategy::Just("J"), proptest::strategy::Just("3"), proptest::strategy::Just("\""),
            proptest::strategy::Just(")"), proptest::strategy::Just("**"), proptest::strategy::Just("”"),
            proptest::strategy::Just("é"), proptest::strategy::Just("café"), proptest::strategy::Just("。"),
            proptest::strategy::Just("！"), proptest::strategy::Just("—"), proptest::strategy::Just("\t"),
            proptest::strategy::Just("\r\n"), proptest::strategy::Just(","), proptest::strategy::Just("Dr"),
        ], 0..60)) {
            let text: String = parts.concat();
            proptest::prop_assert_eq!(sentences(&text), reference_sentences(&text));
        }

        #[test]
        fn matches_reference_on_any_text(text in "\\PC*") {
            proptest::prop_assert_eq!(sentences(&text), reference_sentences(&text));
        }

        #[test]
        fn newlines_and_sentences_on_any_text(text in "\\PC*") {
            check_against_reference(&text)?;
        }

        #[test]
        fn matches_reference_on_long_text(chars in proptest::collection::vec(proptest::prop_oneof![
            proptest::arbitrary::any::<char>(), proptest::strategy::Just('.'),
            proptest::strategy::Just('\n'), proptest::strategy::Just(' '),
            proptest::strategy::Just('a'), proptest::strategy::Just('。'),
        ], 0..400)) {
            check_against_reference(&chars.into_iter().collect::<String>())?;
        }
    }

    fn check_against_reference(text: &str) -> Result<(), proptest::test_runner::TestCaseError> {
        let expected = reference_sentences(text);
        proptest::prop_assert_eq!(sentences(text), expected.clone());
        let newlines: Vec<usize> = text.match_indices('\n').map(|(i, _)| i).collect();
        proptest::prop_assert_eq!(sentences_and_newlines(text), (expected, newlines));
        Ok(())
    }

    #[test]
    fn word_tokens_longer_than_two() {
        assert_eq!(count_words(""), 0);
        assert_eq!(count_words("a an the"), 1);
        assert_eq!(count_words("HubSpot's state-of-the-art CRM"), 3);
        assert_eq!(count_words("1. **Monday.com** [2] -- ok"), 1);
        assert_eq!(count_words("don't it's"), 2);
        assert_eq!(count_words("très élevé"), 2);
        assert_eq!(count_words("x--y"), 0);
    }
}
