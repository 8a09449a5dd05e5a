//! Tests of run and experiment metrics: hand-checked samples and properties of any run.

use super::*;
use crate::analysis::BrandMatcher;
use crate::analysis::extract::{Extraction, TrackedBrands};
use crate::model::ProviderKind;
use crate::model::{Brand, BrandName};
use proptest::prelude::*;

pub(super) fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

fn mention(brand: &str, count: u32, rank: u32, list_position: Option<u32>) -> BrandMention {
    BrandMention {
        brand: brand.into(),
        count,
        first_offset: 0,
        rank,
        list_position,
    }
}

fn brands() -> TrackedBrands {
    TrackedBrands::from_names("HubSpot", ["Salesforce", "Pipedrive"])
}

/// 10 answers + 2 failures; hand-checked in the assertions below.
fn sample() -> Vec<Vec<BrandMention>> {
    vec![
        vec![
            mention("HubSpot", 2, 1, Some(1)),
            mention("Salesforce", 1, 2, Some(2)),
        ],
        vec![
            mention("Salesforce", 3, 1, None),
            mention("HubSpot", 1, 2, None),
        ],
        vec![mention("HubSpot", 1, 1, Some(1))],
        vec![
            mention("Pipedrive", 1, 1, Some(1)),
            mention("Salesforce", 1, 2, Some(2)),
            mention("HubSpot", 3, 3, Some(3)),
        ],
        vec![mention("Salesforce", 2, 1, None)],
        vec![mention("Salesforce", 1, 1, None)],
        vec![
            mention("Unknown", 5, 1, None),
            mention("Salesforce", 1, 2, None),
        ],
        vec![mention("Pipedrive", 1, 1, None)],
        vec![],
        vec![],
    ]
}

fn sample_metrics() -> RunMetrics {
    let answers = sample();
    let records = answers
        .iter()
        .map(|a| AnswerRecord::Analysed(a))
        .chain([AnswerRecord::Failed, AnswerRecord::Failed]);
    RunMetrics::compute(&brands(), false, records)
}

#[test]
fn run_metrics_hand_checked() {
    let m = sample_metrics();
    assert_eq!((m.answers, m.n, m.failures, m.unanalysed), (12, 10, 2, 0));
    assert_eq!(m.informative.successes, 8);
    assert_eq!(m.informative.rate, Some(0.8));
    assert_eq!(m.mentions, 18, "2+1+3+1+1+1+1+3+2+1+1+1, Unknown excluded");
    let hs = m.target().unwrap();
    assert_eq!(hs.brand, "HubSpot");
    assert_eq!(hs.visibility.successes, 4);
    assert_eq!(hs.visibility.rate, Some(0.4));
    let ci = hs.visibility.ci95.unwrap();
    assert_eq!((round4(ci.lower), round4(ci.upper)), (0.1682, 0.6873));
    assert_eq!(hs.mentions, 7);
    assert_eq!(hs.mention_share_of_voice, Some(7.0 / 18.0));
    assert_eq!(hs.answer_share_of_voice, Some(0.5));
    assert_eq!(hs.average_rank, Some(7.0 / 4.0));
    assert_eq!(hs.first_place.successes, 2);
    assert_eq!(hs.first_place.rate, Some(0.2));
    assert_eq!(
        (hs.list_answers, hs.average_list_position),
        (3, Some(5.0 / 3.0))
    );

    let sf = m.brand("Salesforce").unwrap();
    assert_eq!(sf.visibility.successes, 6);
    assert_eq!(sf.mentions, 9);
    assert_eq!(sf.answer_share_of_voice, Some(6.0 / 8.0));
    assert_eq!(sf.average_rank, Some(1.5), "(2+1+2+1+1+2)/6");
    assert_eq!(sf.first_place.successes, 3);
    let pd = m.brand("Pipedrive").unwrap();
    assert_eq!((pd.visibility.successes, pd.first_place.successes), (2, 2));
    assert!(!pd.is_target);
    // First places add up to the informative answers, except where an untracked brand was
    // first (answer 7): 2 + 3 + 2 = 7 of 8.
    let firsts: u32 = m.brands.iter().map(|b| b.first_place.successes).sum();
    assert_eq!(firsts, 7);
    let sov: f64 = m
        .brands
        .iter()
        .filter_map(|b| b.mention_share_of_voice)
        .sum();
    assert!((sov - 1.0).abs() < 1e-12);
    assert!(m.caveats.is_empty());
}

#[test]
fn empty_and_all_failed_runs_are_defined() {
    for records in [vec![], vec![AnswerRecord::Failed; 3]] {
        let m = RunMetrics::compute(&brands(), false, records);
        assert_eq!(m.n, 0);
        assert_eq!(m.informative.rate, None);
        for b in &m.brands {
            assert_eq!(b.visibility.rate, None);
            assert_eq!(b.visibility.ci95, None);
            assert_eq!(b.mention_share_of_voice, None);
            assert_eq!(b.answer_share_of_voice, None);
            assert_eq!(b.average_rank, None);
        }
        assert_eq!(m.caveats, [Caveat::NoAnswers]);
        crate::analysis::assert_json_round_trip(&m);
    }
}

#[test]
fn answers_naming_nobody() {
    let records = vec![AnswerRecord::Analysed(&[]); 4];
    let m = RunMetrics::compute(&brands(), true, records);
    assert_eq!(m.informative.rate, Some(0.0));
    let hs = m.target().unwrap();
    assert_eq!(hs.visibility.rate, Some(0.0));
    assert_eq!(hs.mention_share_of_voice, None);
    assert_eq!(hs.answer_share_of_voice, None);
    assert_eq!(
        m.caveats,
        [
            Caveat::FewInformativeAnswers {
                informative: 0,
                n: 4
            },
            Caveat::BrandedPrompt
        ]
    );
}

#[test]
fn records_from_stored_iterations() {
    let m = [mention("HubSpot", 1, 1, None)];
    assert_eq!(
        AnswerRecord::from_stored(false, Some(&m)),
        AnswerRecord::Failed
    );
    assert_eq!(
        AnswerRecord::from_stored(true, None),
        AnswerRecord::Unanalysed
    );
    let r = RunMetrics::compute(
        &brands(),
        false,
        [
            AnswerRecord::from_stored(true, Some(&m)),
            AnswerRecord::Unanalysed,
        ],
    );
    assert_eq!((r.n, r.unanalysed, r.answers), (1, 1, 2));
    assert_eq!(r.caveats, [Caveat::Unanalysed { count: 1 }]);
    let dup = [
        mention("HubSpot", 1, 1, None),
        mention("HubSpot", 2, 1, None),
    ];
    let r = RunMetrics::compute(&brands(), false, [AnswerRecord::Analysed(&dup)]);
    let hs = r.target().unwrap();
    assert_eq!(
        (hs.visibility.successes, hs.mentions, hs.rank_sum),
        (1, 3, 1)
    );
}

#[test]
fn from_extractions_matches_stored_path() {
    let target = Brand::new(BrandName::parse("HubSpot").unwrap());
    let comps = [
        Brand::new(BrandName::parse("Salesforce").unwrap()),
        Brand::new(BrandName::parse("Pipedrive").unwrap()),
    ];
    let m = BrandMatcher::new(&target, &comps).unwrap();
    let texts = [
        "1. HubSpot\n2. Salesforce\nHubSpot again.",
        "Salesforce, then Pipedrive.",
        "Nothing here.",
    ];
    let ex: Vec<Extraction> = texts.iter().map(|t| m.extract(t)).collect();
    let stored: Vec<Vec<BrandMention>> = ex.iter().map(Extraction::to_mentions).collect();
    let a = RunMetrics::from_extractions(m.brands(), false, ex.iter().map(Some).chain([None]));
    let b = RunMetrics::compute(
        m.brands(),
        false,
        stored
            .iter()
            .map(|s| AnswerRecord::Analysed(s))
            .chain([AnswerRecord::Failed]),
    );
    assert_eq!(a, b);
    assert_eq!(a.target().unwrap().mentions, 2);
    assert_eq!(a.target().unwrap().average_list_position, Some(1.0));
}

#[test]
fn pooling_and_provider_mean() {
    let brands = TrackedBrands::from_names("HubSpot", ["Salesforce"]);
    let named = [mention("HubSpot", 1, 1, None)];
    let run = |hits: usize, n: usize| {
        let records = (0..n).map(|i| {
            if i < hits {
                AnswerRecord::Analysed(&named)
            } else {
                AnswerRecord::Analysed(&[])
            }
        });
        RunMetrics::compute(&brands, false, records)
    };
    let e = ExperimentMetrics::new(vec![
        ProviderRun {
            provider: ProviderKind::OpenAi,
            model: "gpt".into(),
            metrics: run(8, 10),
        },
        ProviderRun {
            provider: ProviderKind::Anthropic,
            model: "claude".into(),
            metrics: run(20, 100),
        },
        ProviderRun {
            provider: ProviderKind::Gemini,
            model: "gemini".into(),
            metrics: run(0, 0),
        },
    ]);
    let v = e.pooled.target().unwrap().visibility;
    assert_eq!((v.successes, v.n), (28, 110));
    assert_eq!(round4(v.rate.unwrap()), 0.2545);
    assert_eq!(e.provider_mean_visibility, Some(0.5));
    assert_eq!(e.pooled.brands.len(), 2);
    assert_eq!(e.pooled.brands[0].average_rank, Some(1.0));
    let none = ExperimentMetrics::new(vec![]);
    assert_eq!(none.provider_mean_visibility, None);
    assert_eq!(none.pooled.n, 0);
}

/// `FewInformativeAnswers` is "fewer than half": 1 of 2 is half and carries no caveat, 1 of 3
/// does.
#[test]
fn few_informative_answers_is_strictly_below_half() {
    let named = [mention("HubSpot", 1, 1, None)];
    let run = |n: usize| {
        let records = (0..n).map(|i| AnswerRecord::Analysed(if i == 0 { &named } else { &[] }));
        RunMetrics::compute(&brands(), false, records)
    };
    assert!(run(2).caveats.is_empty());
    assert_eq!(
        run(3).caveats,
        [Caveat::FewInformativeAnswers {
            informative: 1,
            n: 3
        }]
    );
}

#[test]
fn pooling_keeps_branded_prompts_and_unmarked_targets() {
    let named = [mention("HubSpot", 1, 1, None)];
    let plain = RunMetrics::compute(&brands(), false, [AnswerRecord::Analysed(&named)]);
    let branded = RunMetrics::compute(&brands(), true, [AnswerRecord::Analysed(&named)]);
    let pooled = RunMetrics::pooled([&plain, &branded]);
    assert!(pooled.branded_prompt);
    assert_eq!(pooled.caveats, [Caveat::BrandedPrompt]);
    assert!(!RunMetrics::pooled([&plain, &plain]).branded_prompt);

    // Rows from a source that marked no target: pooling does not promote the first one.
    let mut untargeted = plain.clone();
    for b in &mut untargeted.brands {
        b.is_target = false;
    }
    let pooled = RunMetrics::pooled([&untargeted]);
    assert_eq!(pooled.brands.len(), 3);
    assert_eq!(pooled.target(), None);
    assert_eq!(pooled.brands[0].brand, "HubSpot");
}

#[test]
fn visibility_change_between_runs() {
    let named = [mention("HubSpot", 1, 1, None)];
    let run = |hits: usize| {
        let records = (0..100).map(|i| AnswerRecord::Analysed(if i < hits { &named } else { &[] }));
        RunMetrics::compute(&brands(), false, records)
    };
    // 40/100 then 55/100: the worked example of `ProportionChange`.
    let change = run(55).visibility_change(&run(40)).unwrap();
    assert_eq!((change.before.successes, change.after.successes), (40, 55));
    assert_eq!(round4(change.p_value.unwrap()), 0.0337);
    let mut no_target = run(40);
    no_target.brands.clear();
    assert_eq!(run(55).visibility_change(&no_target), None);
}

fn arb_mentions() -> impl Strategy<Value = Option<Vec<BrandMention>>> {
    let one = (
        prop::sample::select(vec!["HubSpot", "Salesforce", "Pipedrive", "Other"]),
        0u32..5,
        0u32..6,
        prop::option::of(0u32..10),
    )
        .prop_map(|(b, c, r, l)| mention(b, c, r, l));
    prop::option::of(prop::collection::vec(one, 0..5))
}

proptest! {
    #[test]
    fn metrics_are_finite_and_round_trip(
        answers in prop::collection::vec(arb_mentions(), 0..30),
        branded: bool,
    ) {
        let records = answers.iter().map(|a| match a {
            None => AnswerRecord::Failed,
            Some(m) => AnswerRecord::Analysed(m),
        });
        let m = RunMetrics::compute(&brands(), branded, records);
        let e = ExperimentMetrics::new(vec![ProviderRun {
            provider: ProviderKind::Simulated,
            model: "sim".into(),
            metrics: m.clone(),
        }]);
        prop_assert_eq!(&e.pooled, &m);
        crate::analysis::assert_json_round_trip(&e);
        for b in &m.brands {
            for p in [b.visibility, b.first_place] {
                if let (Some(r), Some(ci)) = (p.rate, p.ci95) {
                    prop_assert!(ci.contains(r) && 0.0 <= ci.lower && ci.upper <= 1.0);
                }
            }
        }
    }
}
