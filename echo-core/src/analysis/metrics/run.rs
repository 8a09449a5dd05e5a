//! How a run's metrics are computed: answers are folded into plain counts, and every rate is
//! derived from the counts at the end, so that pooling runs is adding counts, never averaging
//! rates.

use super::{AnswerRecord, BrandMetrics, Caveat, RunMetrics};
use crate::analysis::extract::{Extraction, TrackedBrands};
use crate::analysis::stats::{Proportion, ProportionChange};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct BrandTally {
    answers: u32,
    mentions: u64,
    rank_sum: u64,
    first_place: u32,
    list_answers: u32,
    list_position_sum: u64,
}

/// Plain counts: what pooling adds up and what every rate is derived from.
#[derive(Debug, Clone, Default)]
struct Tally {
    answers: u32,
    n: u32,
    failures: u32,
    unanalysed: u32,
    informative: u32,
    mentions: u64,
    brands: Vec<BrandTally>,
}

/// One brand as named in one answer.
#[derive(Debug, Clone, Copy)]
struct Named {
    brand: usize,
    count: u32,
    rank: u32,
    list_position: Option<u32>,
}

impl Tally {
    fn new(brands: usize) -> Self {
        Self {
            brands: vec![BrandTally::default(); brands],
            ..Self::default()
        }
    }

    fn failed(&mut self) {
        self.answers = self.answers.saturating_add(1);
        self.failures = self.failures.saturating_add(1);
    }

    fn unanalysed(&mut self) {
        self.answers = self.answers.saturating_add(1);
        self.unanalysed = self.unanalysed.saturating_add(1);
    }

    /// A successful answer. `seen` is scratch space (one flag per brand) so a brand listed twice
    /// in one answer still counts once.
    fn analysed(&mut self, named: impl Iterator<Item = Named>, seen: &mut [bool]) {
        self.answers = self.answers.saturating_add(1);
        self.n = self.n.saturating_add(1);
        seen.fill(false);
        let mut any = false;
        for m in named {
            let (Some(b), Some(flag)) = (self.brands.get_mut(m.brand), seen.get_mut(m.brand))
            else {
                continue;
            };
            if m.count == 0 {
                continue;
            }
            self.mentions = self.mentions.saturating_add(u64::from(m.count));
            b.mentions = b.mentions.saturating_add(u64::from(m.count));
            if *flag {
                continue;
            }
            *flag = true;
            any = true;
            b.answers = b.answers.saturating_add(1);
            b.rank_sum = b.rank_sum.saturating_add(u64::from(m.rank));
            if m.rank == 1 {
                b.first_place = b.first_place.saturating_add(1);
            }
            if let Some(p) = m.list_position {
                b.list_answers = b.list_answers.saturating_add(1);
                b.list_position_sum = b.list_position_sum.saturating_add(u64::from(p));
            }
        }
        if any {
            self.informative = self.informative.saturating_add(1);
        }
    }

    fn finish(&self, names: &[String], branded_prompt: bool) -> RunMetrics {
        let ratio = |num: u64, den: u64| (den > 0).then(|| num as f64 / den as f64);
        let brands = names
            .iter()
            .zip(&self.brands)
            .enumerate()
            .map(|(i, (name, t))| BrandMetrics {
                brand: name.clone(),
                is_target: i == 0,
                visibility: Proportion::new(t.answers, self.n),
                mentions: t.mentions,
                mention_share_of_voice: ratio(t.mentions, self.mentions),
                answer_share_of_voice: ratio(u64::from(t.answers), u64::from(self.informative)),
                rank_sum: t.rank_sum,
                average_rank: ratio(t.rank_sum, u64::from(t.answers)),
                first_place: Proportion::new(t.first_place, self.n),
                list_answers: t.list_answers,
                list_position_sum: t.list_position_sum,
                average_list_position: ratio(t.list_position_sum, u64::from(t.list_answers)),
            })
            .collect();
        let mut caveats = Vec::new();
        if self.n == 0 {
            caveats.push(Caveat::NoAnswers);
        } else if u64::from(self.informative) * 2 < u64::from(self.n) {
            caveats.push(Caveat::FewInformativeAnswers {
                informative: self.informative,
                n: self.n,
            });
        }
        if branded_prompt {
            caveats.push(Caveat::BrandedPrompt);
        }
        if self.unanalysed > 0 {
            caveats.push(Caveat::Unanalysed {
                count: self.unanalysed,
            });
        }
        RunMetrics {
            answers: self.answers,
            n: self.n,
            failures: self.failures,
            unanalysed: self.unanalysed,
            informative: Proportion::new(self.informative, self.n),
            mentions: self.mentions,
            branded_prompt,
            brands,
            caveats,
        }
    }
}

impl RunMetrics {
    /// Metrics of a run from its stored iterations. Mentions of brands that are not in `brands`
    /// (e.g. a competitor removed since) are ignored; `branded_prompt` comes from
    /// [`BrandMatcher::is_branded`](crate::analysis::BrandMatcher::is_branded) on the prompt.
    pub fn compute<'a>(
        brands: &TrackedBrands,
        branded_prompt: bool,
        answers: impl IntoIterator<Item = AnswerRecord<'a>>,
    ) -> Self {
        let names = brands.names();
        let mut tally = Tally::new(names.len());
        let mut seen = vec![false; names.len()];
        for answer in answers {
            match answer {
                AnswerRecord::Failed => tally.failed(),
                AnswerRecord::Unanalysed => tally.unanalysed(),
                AnswerRecord::Analysed(mentions) => {
                    let named = mentions.iter().filter_map(|m| {
                        Some(Named {
                            brand: brands.index_of(&m.brand)?,
                            count: m.count,
                            rank: m.rank,
                            list_position: m.list_position,
                        })
                    });
                    tally.analysed(named, &mut seen);
                }
            }
        }
        tally.finish(names, branded_prompt)
    }

    /// The same from fresh extractions; `None` is a failed call.
    pub fn from_extractions<'a>(
        brands: &TrackedBrands,
        branded_prompt: bool,
        answers: impl IntoIterator<Item = Option<&'a Extraction>>,
    ) -> Self {
        let names = brands.names();
        let mut tally = Tally::new(names.len());
        let mut seen = vec![false; names.len()];
        for answer in answers {
            match answer {
                None => tally.failed(),
                Some(e) => {
                    let named = e.brands.iter().filter_map(|h| {
                        Some(Named {
                            brand: brands.index_of(&h.brand)?,
                            count: h.count,
                            rank: h.rank,
                            list_position: h.list_position,
                        })
                    });
                    tally.analysed(named, &mut seen);
                }
            }
        }
        tally.finish(names, branded_prompt)
    }

    /// The target's row.
    pub fn target(&self) -> Option<&BrandMetrics> {
        self.brands.iter().find(|b| b.is_target)
    }

    /// The row of `brand`.
    pub fn brand(&self, brand: &str) -> Option<&BrandMetrics> {
        self.brands.iter().find(|b| b.brand == brand)
    }

    /// The change of the target's visibility from `before` to `self`, with its significance
    /// (see [`ProportionChange`]); `None` when either run has no target row.
    ///
    /// ```
    /// use echo_core::analysis::{AnswerRecord, RunMetrics, TrackedBrands};
    /// use echo_core::model::BrandMention;
    ///
    /// let brands = TrackedBrands::from_names("HubSpot", Vec::<String>::new());
    /// let named = [BrandMention {
    ///     brand: "HubSpot".into(), count: 1, first_offset: 0, rank: 1, list_position: None,
    /// }];
    /// let run = |hits: usize| {
    ///     let answers = (0..100).map(|i| AnswerRecord::Analysed(if i < hits { &named } else { &[] }));
    ///     RunMetrics::compute(&brands, false, answers)
    /// };
    /// let change = run(55).visibility_change(&run(40)).unwrap();
    /// assert!((change.p_value.unwrap() - 0.0337).abs() < 1e-4);
    /// ```
    pub fn visibility_change(&self, before: &RunMetrics) -> Option<ProportionChange> {
        Some(ProportionChange::between(
            before.target()?.visibility,
            self.target()?.visibility,
        ))
    }

    /// Runs pooled as one sample: counts add up and every rate is recomputed, so pooled rates
    /// weight each answer equally (a provider with more answers weighs more). Brands are matched
    /// by name, in order of first appearance with the target first. The Wilson intervals treat
    /// answers from different providers as exchangeable, which understates uncertainty when
    /// providers differ; compare providers through their own rows.
    pub fn pooled<'a>(runs: impl IntoIterator<Item = &'a RunMetrics>) -> Self {
        let runs: Vec<&RunMetrics> = runs.into_iter().collect();
        let mut names: Vec<String> = Vec::new();
        let mut target_first = true;
        for b in runs.iter().flat_map(|r| &r.brands) {
            if !names.contains(&b.brand) {
                if b.is_target && target_first {
                    names.insert(0, b.brand.clone());
                    target_first = false;
                } else {
                    names.push(b.brand.clone());
                }
            }
        }
        let mut tally = Tally::new(names.len());
        let mut branded = false;
        for r in &runs {
            tally.answers = tally.answers.saturating_add(r.answers);
            tally.n = tally.n.saturating_add(r.n);
            tally.failures = tally.failures.saturating_add(r.failures);
            tally.unanalysed = tally.unanalysed.saturating_add(r.unanalysed);
            tally.informative = tally.informative.saturating_add(r.informative.successes);
            tally.mentions = tally.mentions.saturating_add(r.mentions);
            branded |= r.branded_prompt;
            for b in &r.brands {
                let Some(t) = names
                    .iter()
                    .position(|n| *n == b.brand)
                    .and_then(|i| tally.brands.get_mut(i))
                else {
                    continue;
                };
                t.answers = t.answers.saturating_add(b.visibility.successes);
                t.mentions = t.mentions.saturating_add(b.mentions);
                t.rank_sum = t.rank_sum.saturating_add(b.rank_sum);
                t.first_place = t.first_place.saturating_add(b.first_place.successes);
                t.list_answers = t.list_answers.saturating_add(b.list_answers);
                t.list_position_sum = t.list_position_sum.saturating_add(b.list_position_sum);
            }
        }
        let mut pooled = tally.finish(&names, branded);
        if target_first {
            // No run marked a target: the first name is not one either.
            if let Some(first) = pooled.brands.first_mut() {
                first.is_target = false;
            }
        }
        pooled
    }
}
