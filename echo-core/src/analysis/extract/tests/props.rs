//! Property tests: invariants of every extraction, and differential tests against the oracles.

use super::*;
use proptest::prelude::*;

fn fixture() -> BrandMatcher {
    matcher(
        brand(
            "HubSpot",
            &["HubSpot CRM", "hub"],
            MatchMode::CaseInsensitive,
        ),
        vec![
            ci("Notion"),
            ci("Ørsted"),
            ci("C3.ai"),
            brand("Close", &[], MatchMode::CaseSensitive),
            brand("İstanbul Air", &["ß"], MatchMode::AliasesOnly),
            ci("腾讯"),
        ],
    )
}

fn ascii_fixture() -> BrandMatcher {
    matcher(
        brand(
            "HubSpot",
            &["HubSpot CRM", "hub"],
            MatchMode::CaseInsensitive,
        ),
        vec![
            ci("Notion"),
            ci("C3.ai"),
            brand("Close", &["Close.com"], MatchMode::CaseSensitive),
            brand("Monday", &["monday.com"], MatchMode::AliasesOnly),
            ci("X"),
            ci("AT&T"),
        ],
    )
}

/// Names starting with ASCII punctuation: tried at every occurrence of their first byte.
fn punct_fixture() -> BrandMatcher {
    matcher(
        ci("HubSpot"),
        vec![
            ci(".NET"),
            brand("@acme", &["C#"], MatchMode::CaseInsensitive),
        ],
    )
}

fn check(m: &BrandMatcher, text: &str) {
    assert_eq!(
        m.find(text),
        find_brute_force(m, text),
        "scan misses or adds a match"
    );
    let e = m.extract(text);
    let ranks: Vec<u32> = e.brands.iter().map(|h| h.rank).collect();
    let expected: Vec<u32> = (1..=u32::try_from(e.brands.len()).unwrap()).collect();
    assert_eq!(ranks, expected);
    let mut last_end = 0;
    let mut all: Vec<MatchSpan> = e.brands.iter().flat_map(|h| h.spans.clone()).collect();
    all.sort_by_key(|s| s.start);
    for s in &all {
        assert!(s.start < s.end && s.end <= text.len());
        assert!(text.is_char_boundary(s.start) && text.is_char_boundary(s.end));
        assert!(s.start >= last_end, "spans overlap");
        last_end = s.end;
    }
    for (i, h) in e.brands.iter().enumerate() {
        assert!(h.count >= 1);
        assert_eq!(h.count as usize, h.spans.len());
        assert_eq!(h.first_offset, h.spans[0].start);
        assert!(text.is_char_boundary(h.first_offset));
        if i > 0 {
            assert!(e.brands[i - 1].first_offset < h.first_offset);
        }
        assert!(h.list_position.is_none_or(|p| p >= 1));
        for si in h.sentences() {
            assert!((si as usize) < e.sentences.len());
        }
    }
    for s in &e.sentences {
        assert!(s.text(text).is_some());
    }
}

proptest! {
    #[test]
    fn never_panics_and_keeps_invariants(text in "\\PC*") {
        check(&fixture(), &text);
        check(&ascii_fixture(), &text);
        check(&punct_fixture(), &text);
    }

    #[test]
    fn brand_heavy_text(parts in proptest::collection::vec(prop_oneof![
        Just("HubSpot"), Just("hubspot crm"), Just("Notion"), Just("ØRSTED"), Just("C3.ai"),
        Just("Close"), Just("İ"), Just("ß"), Just("SS"), Just("腾讯"), Just(" "), Just("\n"),
        Just("1. "), Just("- "), Just("**"), Just("_"), Just("."), Just("https://"),
        Just("www."), Just("]("), Just(")"), Just("é"), Just("🚀"), Just("Σ"), Just("x"),
        Just("CLOSE"), Just("close.com"), Just("Monday.com"), Just("at&t"), Just("荐"),
        Just(".net"), Just("@ACME"), Just("c#"), Just("#"),
    ], 0..40)) {
        let text: String = parts.concat();
        check(&fixture(), &text);
        check(&ascii_fixture(), &text);
        check(&punct_fixture(), &text);
    }
}

/// More kinds of leading punctuation than the block scan compares: scanned byte by byte.
fn many_punct_fixture() -> BrandMatcher {
    matcher(
        brand("HubSpot", &["hub"], MatchMode::CaseInsensitive),
        vec![
            ci(".NET"),
            ci("@acme"),
            ci("#hash"),
            ci("+plus"),
            brand("(paren)", &["-dash"], MatchMode::CaseInsensitive),
        ],
    )
}

/// `extract` and `find` against the oracles, for every fixture.
fn differential(text: &str) -> Result<(), TestCaseError> {
    let many = many_punct_fixture();
    prop_assert!(
        many.index.anywhere_ascii.len() > 4,
        "exercises the byte scan"
    );
    for m in [fixture(), ascii_fixture(), punct_fixture(), many] {
        prop_assert_eq!(m.find(text), find_brute_force(&m, text));
        prop_assert_eq!(m.extract(text), extract_reference(&m, text));
    }
    Ok(())
}

proptest! {
    #[test]
    fn extract_matches_reference_on_any_text(text in "\\PC*") {
        differential(&text)?;
    }

    #[test]
    fn extract_matches_reference_on_long_text(
        chars in proptest::collection::vec(any::<char>(), 0..300)
    ) {
        differential(&chars.into_iter().collect::<String>())?;
    }

    #[test]
    fn extract_matches_reference_on_markdown(parts in proptest::collection::vec(prop_oneof![
        Just("HubSpot"), Just("hubspot crm"), Just("HUB"), Just("Notion"), Just("ØRSTED"),
        Just("C3.ai"), Just("Close"), Just("close.com"), Just("Monday.com"), Just("monday"),
        Just("AT&T"), Just("X"), Just("İstanbul Air"), Just("ß"), Just("腾讯"), Just(".NET"),
        Just("@acme"), Just("#hash"), Just("+plus"), Just("(paren)"), Just("-dash"),
        Just("c#"), Just("word"), Just("x"), Just("é"), Just("🚀"), Just("İ"), Just("Σ"),
        Just(" "), Just("  "), Just("    "), Just("\t"), Just("\n"), Just("\n\n"),
        Just("\r\n"), Just("1. "), Just("2) "), Just("10. "), Just("- "), Just("* "),
        Just("+ "), Just("# "), Just("## "), Just("```"), Just("~~~"), Just("---"),
        Just("***"), Just("> "), Just("| "), Just("**"), Just("__"), Just("_"), Just("`"),
        Just("["), Just("]("), Just(")"), Just("https://"), Just("www."),
        Just("http://x.io/"), Just(". "), Just("! "), Just("? "), Just("."), Just("e.g. "),
        Just("Inc. "), Just("No. 1"), Just("。"), Just("”"), Just("’s"),
    ], 0..80)) {
        differential(&parts.concat())?;
    }
}
