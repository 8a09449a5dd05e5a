//! What extraction returns, and its stored summary. Apart from the matcher because other
//! modules (metrics, storage) depend on these types, not on how they are found.

use serde::{Deserialize, Serialize};

use crate::analysis::text::TextSpan;
use crate::model::BrandMention;

/// One match: a byte range of the original answer and the spelling that matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchSpan {
    /// First byte (a char boundary).
    pub start: usize,
    /// One past the last byte (a char boundary).
    pub end: usize,
    /// Which alias matched (index into the brand's aliases); `None` for the canonical name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<u32>,
    /// Index into [`Extraction::sentences`] of the sentence holding the match; `None` only
    /// when the match lies in a segment without letters or digits (a name made of symbols).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sentence: Option<u32>,
}

/// Everything found about one brand in one answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrandHit {
    /// Canonical brand name.
    pub brand: String,
    /// Whether this is the experiment's target.
    pub is_target: bool,
    /// Matches (name and aliases), at least 1.
    pub count: u32,
    /// Byte offset of the first match in the original answer (a char boundary).
    pub first_offset: usize,
    /// 1-based rank among the brands of this answer by first appearance (1..=k, no gaps).
    pub rank: u32,
    /// When the first match lies in a markdown list item: the item's number as rendered (an
    /// ordered list's start number plus the items before it; the ordinal in a bulleted list).
    /// A match inside a nested list counts as the top-level item it sits under: the position a
    /// reader sees ("2. Salesforce" with a sub-bullet "- Slack" puts Slack at 2).
    pub list_position: Option<u32>,
    /// Every match, in text order, so each number can be audited against the answer.
    pub spans: Vec<MatchSpan>,
}

impl BrandHit {
    /// The sentences that mention the brand: indices into [`Extraction::sentences`], ascending,
    /// each once.
    pub fn sentences(&self) -> impl Iterator<Item = u32> + '_ {
        let mut last = None;
        self.spans.iter().filter_map(move |s| {
            let i = s.sentence?;
            (last != Some(i)).then(|| {
                last = Some(i);
                i
            })
        })
    }
}

/// The brands one answer mentions, in rank order, and the answer's sentences.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Extraction {
    /// Mentioned brands, rank 1 first.
    pub brands: Vec<BrandHit>,
    /// Every sentence of the answer (see [`text::sentences`](crate::analysis::text::sentences)), for the position-adjusted word
    /// count.
    pub sentences: Vec<TextSpan>,
}

impl Extraction {
    /// The hit for `brand`, if the answer mentions it.
    pub fn brand(&self, brand: &str) -> Option<&BrandHit> {
        self.brands.iter().find(|h| h.brand == brand)
    }

    /// Whether the answer mentions the target.
    pub fn mentions_target(&self) -> bool {
        self.brands.iter().any(|h| h.is_target)
    }

    /// The compact per-answer summary stored with each iteration, in rank order. Offsets beyond
    /// `u32::MAX` (answers over 4 GiB) saturate.
    ///
    /// ```
    /// # use echo_core::analysis::BrandMatcher;
    /// # use echo_core::model::{Brand, BrandName};
    /// let m = BrandMatcher::new(&Brand::new(BrandName::parse("Notion")?), &[])?;
    /// let stored = m.extract("- Notion, then notion again").to_mentions();
    /// assert_eq!((stored[0].count, stored[0].first_offset, stored[0].list_position), (2, 2, Some(1)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to_mentions(&self) -> Vec<BrandMention> {
        self.brands
            .iter()
            .map(|h| BrandMention {
                brand: h.brand.clone(),
                count: h.count,
                first_offset: u32::try_from(h.first_offset).unwrap_or(u32::MAX),
                rank: h.rank,
                list_position: h.list_position,
            })
            .collect()
    }
}

impl From<&Extraction> for Vec<BrandMention> {
    fn from(e: &Extraction) -> Self {
        e.to_mentions()
    }
}
