#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::analysis::{AnswerRecord, TrackedBrands};
use crate::model::BrandMention;
use crate::rng::SplitMix64;

fn mention(brand: &str, rank: u32) -> BrandMention {
    BrandMention {
        brand: brand.to_owned(),
        count: 1,
        first_offset: rank * 10,
        rank,
        list_position: None,
    }
}

/// A run of `n` answers built from exact counts: `target` answers name Acme, `competitor` name
/// Globex (the first ones alongside Acme, after it), and Acme is named first in `first` of its
/// answers (Globex before it in the rest it shares).
fn run(n: usize, target: usize, first: usize, competitor: usize) -> RunMetrics {
    let brands = TrackedBrands::from_names("Acme", ["Globex"]);
    let answers: Vec<Vec<BrandMention>> = (0..n)
        .map(|i| {
            let mut m = Vec::new();
            let has_t = i < target;
            let has_c = i < competitor;
            match (has_t, has_c) {
                (true, true) if i < first => m.extend([mention("Acme", 1), mention("Globex", 2)]),
                (true, true) => m.extend([mention("Globex", 1), mention("Acme", 2)]),
                (true, false) => m.push(mention("Acme", if i < first { 1 } else { 2 })),
                (false, true) => m.push(mention("Globex", 1)),
                (false, false) => {}
            }
            m
        })
        .collect();
    RunMetrics::compute(
        &brands,
        false,
        answers.iter().map(|a| AnswerRecord::Analysed(a)),
    )
}

fn eval(before: &RunMetrics, after: &RunMetrics) -> Vec<AlertFinding> {
    evaluate_alerts(
        &[RunComparison {
            provider: ProviderKind::Simulated,
            before,
            after,
        }],
        ALERT_FDR_Q,
    )
}

#[test]
fn an_unchanged_run_raises_nothing() {
    let before = run(100, 50, 30, 30);
    assert!(eval(&before, &before.clone()).is_empty());
}

#[test]
fn a_large_drop_raises_visibility_and_first_place_with_their_direction() {
    let before = run(100, 70, 60, 20);
    let after = run(100, 30, 10, 20);
    let alerts = eval(&before, &after);
    let kinds: Vec<_> = alerts.iter().map(|a| a.kind).collect();
    assert_eq!(kinds, [AlertKind::Visibility, AlertKind::FirstPlace]);
    let vis = &alerts[0];
    assert_eq!(vis.brand, "Acme");
    assert_eq!(vis.target, "Acme");
    assert!((vis.change.difference.unwrap() + 0.4).abs() < 1e-12);
    assert_eq!(vis.target_visibility, (Some(0.7), Some(0.3)));
    assert!(vis.adjusted_p <= ALERT_FDR_Q);
    assert!(vis.adjusted_p >= vis.change.p_value.unwrap());
}

#[test]
fn a_competitor_overtaking_needs_the_flip_and_a_significant_rise() {
    // Globex 20% → 60% while Acme stays at 50%: overtook.
    let alerts = eval(&run(100, 50, 50, 20), &run(100, 50, 50, 60));
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].kind, AlertKind::CompetitorOvertook);
    assert_eq!(alerts[0].brand, "Globex");
    assert_eq!(alerts[0].target, "Acme");
    // A significant rise that stays below the target is no overtaking.
    assert!(eval(&run(100, 90, 90, 10), &run(100, 90, 90, 60)).is_empty());
    // Already ahead before: no overtaking either, however much it rose.
    assert!(eval(&run(100, 20, 20, 30), &run(100, 20, 20, 80)).is_empty());
    // A flip by noise (48% → 52% against 50%) is not significant.
    assert!(eval(&run(100, 50, 50, 48), &run(100, 50, 50, 52)).is_empty());
}

#[test]
fn brands_missing_from_a_run_and_empty_runs_are_not_tested() {
    let only_target = TrackedBrands::from_names("Acme", Vec::<String>::new());
    let none: Vec<BrandMention> = Vec::new();
    let before = RunMetrics::compute(
        &only_target,
        false,
        (0..100).map(|_| AnswerRecord::Analysed(&none)),
    );
    // Globex is new: only Acme is compared (0/100 both times), so nothing fires.
    assert!(eval(&before, &run(100, 0, 0, 90)).is_empty());
    let empty = RunMetrics::compute(&only_target, false, std::iter::empty());
    assert!(eval(&empty, &run(100, 90, 90, 0)).is_empty());
    assert!(evaluate_alerts(&[], ALERT_FDR_Q).is_empty());
}

#[test]
fn the_family_spans_providers() {
    // Acme 50% → 32%: p ≈ 0.0097. One provider is a family of three tests (first place and
    // Globex never vary: p = 1), so the adjusted p is 3p ≈ 0.029, an alert. With a second,
    // unchanged provider the family has six tests and 6p ≈ 0.058 is not.
    let before = run(100, 50, 0, 0);
    let after = run(100, 32, 0, 0);
    let p = ProportionChange::between(
        before.target().unwrap().visibility,
        after.target().unwrap().visibility,
    )
    .p_value
    .unwrap();
    assert!(p * 3.0 <= ALERT_FDR_Q && p * 6.0 > ALERT_FDR_Q, "p = {p}");
    let alerts = eval(&before, &after);
    assert_eq!(alerts.len(), 1);
    assert!((alerts[0].adjusted_p - 3.0 * p).abs() < 1e-12);
    let same = run(100, 50, 0, 0);
    let pairs = [
        RunComparison {
            provider: ProviderKind::Simulated,
            before: &before,
            after: &after,
        },
        RunComparison {
            provider: ProviderKind::OpenAi,
            before: &same,
            after: &same,
        },
    ];
    assert!(evaluate_alerts(&pairs, ALERT_FDR_Q).is_empty());
}

#[test]
fn benjamini_hochberg_rejects_exactly_the_step_up_set() {
    // m = 5, q = 0.05: thresholds 0.01, 0.02, 0.03, 0.04, 0.05. p₍₃₎ = 0.029 ≤ 0.03 is the
    // largest below its line, so the three smallest are rejected, 0.021 included although it
    // is above its own line (0.02).
    let p = [0.5, 0.021, 0.009, 0.029, 0.045];
    let adj = benjamini_hochberg(&p);
    let rejected: Vec<bool> = adj.iter().map(|&a| a <= 0.05).collect();
    assert_eq!(rejected, [false, true, true, true, false]);
    assert_eq!(benjamini_hochberg(&[]), Vec::<f64>::new());
    assert_eq!(benjamini_hochberg(&[f64::NAN]), [1.0]);
}

/// One simulated run of `n` answers: Acme named with probability `pt`, Globex with `pc`, and
/// when both are named either comes first with equal chance.
fn simulate(rng: &mut SplitMix64, n: usize, pt: f64, pc: f64) -> RunMetrics {
    let brands = TrackedBrands::from_names("Acme", ["Globex"]);
    let answers: Vec<Vec<BrandMention>> = (0..n)
        .map(|_| {
            let t = rng.next_f64() < pt;
            let c = rng.next_f64() < pc;
            let acme_first = rng.next_f64() < 0.5;
            match (t, c) {
                (true, true) if acme_first => vec![mention("Acme", 1), mention("Globex", 2)],
                (true, true) => vec![mention("Globex", 1), mention("Acme", 2)],
                (true, false) => vec![mention("Acme", 1)],
                (false, true) => vec![mention("Globex", 1)],
                (false, false) => Vec::new(),
            }
        })
        .collect();
    RunMetrics::compute(
        &brands,
        false,
        answers.iter().map(|a| AnswerRecord::Analysed(a)),
    )
}

/// Share of `pairs` simulated pairs of runs in which `hit` holds for the alerts.
fn rate(
    seed: u64,
    pairs: usize,
    n: usize,
    (t0, t1): (f64, f64),
    pc: f64,
    hit: impl Fn(&[AlertFinding]) -> bool,
) -> f64 {
    let mut rng = SplitMix64::new(seed);
    let mut hits = 0;
    for _ in 0..pairs {
        let before = simulate(&mut rng, n, t0, pc);
        let after = simulate(&mut rng, n, t1, pc);
        if hit(&eval(&before, &after)) {
            hits += 1;
        }
    }
    hits as f64 / pairs as f64
}

fn caught_drop(alerts: &[AlertFinding]) -> bool {
    alerts
        .iter()
        .any(|a| a.kind == AlertKind::Visibility && a.change.difference.is_some_and(|d| d < 0.0))
}

/// The noise test: 1,000 pairs of runs at the same true rates raise an alert (any
/// kind) in at most 5% of pairs.
#[test]
fn noise_false_alert_rate_is_at_most_five_percent() {
    for (seed, pt, pc) in [(1, 0.6, 0.3), (2, 0.5, 0.5), (3, 0.2, 0.15)] {
        let false_alerts = rate(seed, 1000, 100, (pt, pt), pc, |a| !a.is_empty());
        println!("false alert rate at target {pt}, competitor {pc}, n = 100: {false_alerts}");
        assert!(false_alerts <= 0.05, "{false_alerts} at {pt}/{pc}");
    }
}

/// The issue asked that a drop 0.6 → 0.4 at n = 100 per run be caught ≥ 90% of the time. No
/// honest test at α = 0.05 can: the two-sided z-test's power there is about 0.80 before any
/// multiple-comparison correction. This pins what is achievable (see `benches/README.md`,
/// "Alerts"): the measured power at n = 100 stays well under 0.9 (about 0.7 within the
/// three-test family), and at n = 175 per run it is above it.
#[test]
fn noise_power_of_a_real_drop() {
    let at_100 = rate(10, 1000, 100, (0.6, 0.4), 0.3, caught_drop);
    let at_175 = rate(11, 1000, 175, (0.6, 0.4), 0.3, caught_drop);
    println!("power 0.6 → 0.4: n = 100: {at_100}, n = 175: {at_175}");
    assert!((0.6..0.85).contains(&at_100), "{at_100}");
    assert!(at_175 >= 0.9, "{at_175}");
}

/// Measurement only (`cargo test -p echo-core --lib alerts::tests::power_curve -- --ignored
/// --nocapture`): power by n, for the README's table.
#[test]
#[ignore = "measurement: prints the power curve"]
fn power_curve() {
    for n in [50, 100, 110, 120, 130, 140, 150, 175, 200] {
        let p = rate(20 + n as u64, 2000, n, (0.6, 0.4), 0.3, caught_drop);
        let f = rate(40 + n as u64, 2000, n, (0.6, 0.6), 0.3, |a| !a.is_empty());
        // The same drop tested alone, uncorrected: the ceiling any correction starts from.
        let mut rng = SplitMix64::new(60 + n as u64);
        let alone = (0..2000)
            .filter(|_| {
                let before = simulate(&mut rng, n, 0.6, 0.3);
                let after = simulate(&mut rng, n, 0.4, 0.3);
                let c = ProportionChange::between(
                    before.target().unwrap().visibility,
                    after.target().unwrap().visibility,
                );
                c.p_value.unwrap_or(1.0) <= 0.05
            })
            .count() as f64
            / 2000.0;
        println!("n = {n}: power {p:.3} (alone, uncorrected {alone:.3}), false alert rate {f:.3}");
    }
}
