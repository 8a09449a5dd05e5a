//! The matcher's tests, and the brute-force oracles they hold the scan and extraction to.

use std::cmp::Reverse;

use super::collect::{Candidate, Folded, boundary_after, boundary_before, url_span};
use super::scan::Automaton;
use super::*;
use crate::analysis::text::TextSpan;
use crate::model::{BrandMention, BrandName};

fn brand(name: &str, aliases: &[&str], mode: MatchMode) -> Brand {
    Brand {
        name: BrandName::parse(name).unwrap(),
        aliases: aliases
            .iter()
            .map(|a| BrandName::parse(a).unwrap())
            .collect(),
        match_mode: mode,
    }
}

fn ci(name: &str) -> Brand {
    brand(name, &[], MatchMode::CaseInsensitive)
}

fn matcher(target: Brand, competitors: Vec<Brand>) -> BrandMatcher {
    BrandMatcher::new(&target, &competitors).unwrap()
}

/// (brand, count) in rank order.
fn counts(e: &Extraction) -> Vec<(&str, u32)> {
    e.brands
        .iter()
        .map(|h| (h.brand.as_str(), h.count))
        .collect()
}

fn spans<'t>(text: &'t str, e: &Extraction, brand: &str) -> Vec<&'t str> {
    e.brand(brand)
        .map(|h| h.spans.iter().map(|s| &text[s.start..s.end]).collect())
        .unwrap_or_default()
}

#[test]
fn matcher_is_send_sync_and_clone() {
    fn assert_traits<T: Send + Sync + Clone + std::fmt::Debug>() {}
    assert_traits::<BrandMatcher>();
}

#[test]
fn word_boundaries() {
    let m = matcher(ci("Notion"), vec![ci("Asana")]);
    let e = m.extract("Notional value; Asanas; notion-like Notion, (Notion) NOTION.");
    assert_eq!(counts(&e), [("Notion", 4)]);
    assert!(m.extract("Notion2 and 2Notion").brands.is_empty());
}

#[test]
fn possessive_case_and_aliases() {
    let hubspot = brand(
        "HubSpot",
        &["Hubspot Marketing Hub"],
        MatchMode::CaseInsensitive,
    );
    let m = matcher(hubspot, vec![]);
    let text = "HubSpot's CRM beats hubspot. The hubspot marketing hub and HubSpot’s API.";
    let e = m.extract(text);
    assert_eq!(counts(&e), [("HubSpot", 4)]);
    assert_eq!(
        spans(text, &e, "HubSpot"),
        ["HubSpot", "hubspot", "hubspot marketing hub", "HubSpot"]
    );
    assert_eq!(e.brands[0].spans[2].alias, Some(0));
    assert_eq!(e.brands[0].spans[0].alias, None);
}

#[test]
fn names_with_punctuation_and_spaces() {
    let m = matcher(
        ci("Monday.com"),
        vec![
            ci("C3.ai"),
            ci("Procter & Gamble"),
            ci("AT&T"),
            ci("Yahoo!"),
        ],
    );
    let text = "Use Monday.com. C3.ai, procter & gamble and AT&T's; Yahoo! too; monday.comfort no.";
    let e = m.extract(text);
    assert_eq!(
        counts(&e),
        [
            ("Monday.com", 1),
            ("C3.ai", 1),
            ("Procter & Gamble", 1),
            ("AT&T", 1),
            ("Yahoo!", 1)
        ]
    );
    assert_eq!(
        e.brand("C3.ai").unwrap().first_offset,
        text.find("C3.ai").unwrap()
    );
}

#[test]
fn markdown_emphasis_links_headings() {
    let m = matcher(
        ci("HubSpot"),
        vec![ci("Salesforce"), ci("Pipedrive"), ci("Zoho")],
    );
    let text =
        "## Salesforce\n**HubSpot** and __Pipedrive__ and [Zoho](https://zoho.com/crm) `HubSpot`";
    let e = m.extract(text);
    assert_eq!(
        counts(&e),
        [
            ("Salesforce", 1),
            ("HubSpot", 2),
            ("Pipedrive", 1),
            ("Zoho", 1)
        ]
    );
    assert_eq!(e.brand("Salesforce").unwrap().rank, 1);
    assert!(e.brand("Salesforce").unwrap().list_position.is_none());
    let snake = m.extract("set my_hubspot_key or hubspot_ and __hubspot__");
    assert_eq!(counts(&snake), [("HubSpot", 2)]);
}

#[test]
fn list_positions() {
    let m = matcher(
        ci("HubSpot"),
        vec![ci("Salesforce"), ci("Pipedrive"), ci("Zoho")],
    );
    let text = "Here are options:\n\n1. **Salesforce** for enterprise\n2) nothing\n\n\
                - Zoho\n- **HubSpot**: free\n\nPipedrive is also fine.";
    let e = m.extract(text);
    let lp = |b: &str| e.brand(b).unwrap().list_position;
    assert_eq!(lp("Salesforce"), Some(1));
    assert_eq!(lp("Zoho"), Some(1));
    assert_eq!(lp("HubSpot"), Some(2));
    assert_eq!(lp("Pipedrive"), None);
    let numbered = m.extract("1) Zoho\n2) Pipedrive\n3) HubSpot and Salesforce");
    let lp = |b: &str| numbered.brand(b).unwrap().list_position;
    assert_eq!(
        (lp("Zoho"), lp("Pipedrive"), lp("HubSpot"), lp("Salesforce")),
        (Some(1), Some(2), Some(3), Some(3))
    );
    let mentions = numbered.to_mentions();
    assert_eq!(mentions[3].brand, "Salesforce");
    assert_eq!(mentions[3].rank, 4);
    assert_eq!(mentions[3].list_position, Some(3));
}

#[test]
fn urls_are_not_mentions_but_link_text_is() {
    let m = matcher(ci("HubSpot"), vec![ci("Monday.com")]);
    let e = m.extract(
        "See https://www.hubspot.com/pricing, www.monday.com and <http://hubspot.com>. \
         [docs](hubspot.com/docs) (https://x.io/hubspot)",
    );
    assert!(e.brands.is_empty(), "{:?}", counts(&e));
    let text = "[HubSpot](https://www.hubspot.com) vs monday.com: HubSpot.";
    let e = m.extract(text);
    assert_eq!(counts(&e), [("HubSpot", 2), ("Monday.com", 1)]);
    assert_eq!(e.brands[0].first_offset, 1);
    assert_eq!(counts(&m.extract("awww. HubSpot")), [("HubSpot", 1)]);
}

#[test]
fn case_sensitive_mode() {
    let close = brand("Close", &[], MatchMode::CaseSensitive);
    let bear = brand("Bear", &["Bear Notes"], MatchMode::CaseSensitive);
    let m = matcher(close, vec![bear]);
    let text = "Stay close to the bear market. Close and Bear Notes work; CLOSE is shouting.";
    let e = m.extract(text);
    assert_eq!(counts(&e), [("Close", 1), ("Bear", 1)]);
    assert_eq!(spans(text, &e, "Bear"), ["Bear Notes"]);
}

#[test]
fn aliases_only_mode() {
    let monday = brand(
        "Monday",
        &["monday.com", "Monday CRM"],
        MatchMode::AliasesOnly,
    );
    let m = matcher(monday, vec![]);
    let text = "See you Monday. Monday.com and MONDAY CRM.";
    let e = m.extract(text);
    assert_eq!(spans(text, &e, "Monday"), ["Monday.com", "MONDAY CRM"]);
}

#[test]
fn overlapping_prefers_longest_and_first_brand() {
    let hubspot = brand("HubSpot", &["HubSpot CRM"], MatchMode::CaseInsensitive);
    let crm = ci("CRM");
    let m = matcher(
        hubspot,
        vec![crm, brand("Hub", &["HubSpot"], MatchMode::CaseInsensitive)],
    );
    let text = "HubSpot CRM, HubSpot CRMs, and a CRM.";
    let e = m.extract(text);
    assert_eq!(spans(text, &e, "HubSpot"), ["HubSpot CRM", "HubSpot"]);
    assert_eq!(spans(text, &e, "CRM"), ["CRM"]);
    assert!(
        e.brand("Hub").is_none(),
        "a shared alias counts for the first brand"
    );
}

#[test]
fn unicode_names_and_text() {
    let m = matcher(
        ci("Ørsted"),
        vec![ci("Société Générale"), ci("HubSpot"), ci("腾讯")],
    );
    let text = "İİ ØRSTED и SOCIÉTÉ GÉNÉRALE 🚀HubSpot🚀 我推荐HubSpot。腾讯云很好";
    let e = m.extract(text);
    assert_eq!(
        counts(&e),
        [
            ("Ørsted", 1),
            ("Société Générale", 1),
            ("HubSpot", 2),
            ("腾讯", 1)
        ]
    );
    assert_eq!(spans(text, &e, "Ørsted"), ["ØRSTED"]);
    assert_eq!(spans(text, &e, "Société Générale"), ["SOCIÉTÉ GÉNÉRALE"]);
    assert_eq!(spans(text, &e, "腾讯"), ["腾讯"]);
    for h in &e.brands {
        for s in &h.spans {
            assert!(text.is_char_boundary(s.start) && text.is_char_boundary(s.end));
        }
    }
}

#[test]
fn ascii_names_in_unicode_text() {
    let m = matcher(ci("HubSpot"), vec![ci("Notion")]);
    let text = "Ça dépend — “HubSpot” est très bien; Notion’s too. ÉNotion no.";
    let e = m.extract(text);
    assert_eq!(counts(&e), [("HubSpot", 1), ("Notion", 1)]);
    assert_eq!(e.brands[0].first_offset, text.find("HubSpot").unwrap());
}

#[test]
fn offsets_ranks_and_sentences() {
    let m = matcher(ci("HubSpot"), vec![ci("Salesforce"), ci("Notion")]);
    let text =
        "Salesforce is big. HubSpot is free and HubSpot is nice. Salesforce too.\nNone here.";
    let e = m.extract(text);
    assert_eq!(e.sentences.len(), 4);
    let sf = e.brand("Salesforce").unwrap();
    let hs = e.brand("HubSpot").unwrap();
    assert_eq!((sf.rank, sf.first_offset, sf.count), (1, 0, 2));
    assert_eq!((hs.rank, hs.first_offset, hs.count), (2, 19, 2));
    assert_eq!(sf.sentences().collect::<Vec<_>>(), [0, 2]);
    assert_eq!(hs.sentences().collect::<Vec<_>>(), [1]);
    assert_eq!(hs.spans[1].sentence, Some(1));
    assert!(!hs.is_target || e.mentions_target());
    let stored: Vec<BrandMention> = (&e).into();
    assert_eq!(stored[1].first_offset, 19);
    assert_eq!(stored[1].brand, "HubSpot");
}

#[test]
fn large_brand_sets_use_the_compact_automaton() {
    let aliases: Vec<String> = (0..100)
        .map(|i| format!("Acme {i} {}", "x".repeat(190)))
        .collect();
    let alias_refs: Vec<&str> = aliases.iter().map(String::as_str).collect();
    let acme = brand("Acme", &alias_refs, MatchMode::CaseInsensitive);
    let m = matcher(acme, vec![ci("Zoho")]);
    assert!(matches!(m.index.automaton, Automaton::Nfa(_)));
    let text = format!("Try ACME or {} and zoho.", aliases[7]);
    assert_eq!(m.find(&text), find_brute_force(&m, &text));
    assert_eq!(counts(&m.extract(&text)), [("Acme", 2), ("Zoho", 1)]);
}

#[test]
fn branded_prompt() {
    let m = matcher(ci("HubSpot"), vec![ci("Salesforce")]);
    assert!(m.is_branded("HubSpot vs Salesforce?"));
    assert!(!m.is_branded("Is Salesforce good?"));
    assert!(!m.is_branded("Read https://blog.example/hubspot-review"));
}

#[test]
fn empty_and_duplicate_brands() {
    let m = matcher(ci("HubSpot"), vec![ci("HubSpot"), ci("Zoho")]);
    assert_eq!(m.brands().names(), ["HubSpot", "Zoho"]);
    let e = m.extract("");
    assert_eq!(e, Extraction::default());
}

/// Every occurrence of every pattern at every character, compared byte by byte, then
/// validated and selected by sorting: an independent oracle for the scan and the streaming
/// [`Collector`].
fn find_brute_force(m: &BrandMatcher, text: &str) -> Vec<Candidate> {
    let folded = m.unicode_fold.then(|| Folded::new(text));
    let hay = folded.as_ref().map_or(text, |f| f.text.as_str());
    let mut candidates = Vec::new();
    let mut urls = Vec::new();
    for (p, needle) in m.needles.iter().enumerate() {
        for (start, _) in hay.char_indices() {
            let end = start + needle.len();
            let Some(window) = hay.as_bytes().get(start..end) else {
                continue;
            };
            let same = if m.unicode_fold {
                window == needle.as_bytes()
            } else {
                window.eq_ignore_ascii_case(needle.as_bytes())
            };
            if !same {
                continue;
            }
            let (start, end) = match &folded {
                Some(f) => f.original_range(text, start, end),
                None => (start, end),
            };
            match &m.patterns[p] {
                Pattern::Url(marker) => urls.extend(url_span(text, start, end, *marker)),
                Pattern::Name {
                    brand,
                    alias,
                    exact,
                    bounded_start,
                    bounded_end,
                } => {
                    let case_ok = exact.as_deref().is_none_or(|e| &text[start..end] == e);
                    let bounds_ok = (!bounded_start || boundary_before(text, start))
                        && (!bounded_end || boundary_after(text, end));
                    if case_ok && bounds_ok {
                        candidates.push(Candidate {
                            start,
                            end,
                            brand: *brand,
                            alias: *alias,
                        });
                    }
                }
            }
        }
    }
    candidates.sort_by_key(|c| (c.start, Reverse(c.end), c.brand, c.alias));
    let mut last_end = 0;
    candidates.retain(|c| {
        let in_url = urls
            .iter()
            .any(|u: &TextSpan| u.start <= c.start && c.start < u.end);
        if in_url || c.start < last_end {
            return false;
        }
        last_end = c.end;
        true
    });
    candidates
}

/// The extraction rebuilt from the plain oracles: [`find_brute_force`]'s matches, the
/// reference sentence splitter, a fresh list walk per brand and a linear search for each
/// span's sentence. The differential tests below hold [`BrandMatcher::extract`] to it.
fn extract_reference(m: &BrandMatcher, text: &str) -> Extraction {
    let sentences = crate::analysis::text::tests::reference_sentences(text);
    let mut brands: Vec<BrandHit> = Vec::new();
    for c in find_brute_force(m, text) {
        let name = &m.brands().names()[c.brand as usize];
        let span = MatchSpan {
            start: c.start,
            end: c.end,
            alias: c.alias,
            sentence: sentences
                .iter()
                .position(|s| s.start <= c.start && c.start < s.end)
                .map(|i| u32::try_from(i).unwrap()),
        };
        match brands.iter_mut().find(|h| &h.brand == name) {
            Some(hit) => {
                hit.count += 1;
                hit.spans.push(span);
            }
            None => brands.push(BrandHit {
                brand: name.clone(),
                is_target: c.brand == 0,
                count: 1,
                first_offset: c.start,
                rank: u32::try_from(brands.len() + 1).unwrap(),
                list_position: super::super::markdown::list_position(text, c.start),
                spans: vec![span],
            }),
        }
    }
    Extraction { brands, sentences }
}

mod props;
