//! Alert evaluation (#15 item 4): `evaluate_alerts` for one finished execution of a recurring
//! experiment, excluding storage and delivery. Workload: a target and 9 competitors, 4
//! providers, 100 answers per run, so one Benjamini–Hochberg family of 4 × (2 + 9) = 44 tests;
//! the previous runs and the new ones differ (the target drops, one competitor overtakes), so
//! findings are built too. Target: under 1 ms median.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use echo_core::analysis::alerts::{ALERT_FDR_Q, RunComparison, evaluate_alerts};
use echo_core::analysis::{AnswerRecord, RunMetrics, TrackedBrands};
use echo_core::model::{BrandMention, ProviderKind};

const BRANDS: usize = 10;
const N: usize = 100;

/// A run where brand `b` is named in the answers `i` with `(i * 7 + b * 13) % 100 < rate(b)`,
/// in brand order (so ranks are deterministic).
fn run(brands: &TrackedBrands, names: &[String], rate: impl Fn(usize) -> usize) -> RunMetrics {
    let answers: Vec<Vec<BrandMention>> = (0..N)
        .map(|i| {
            let mut rank = 0;
            names
                .iter()
                .enumerate()
                .filter(|(b, _)| (i * 7 + b * 13) % 100 < rate(*b))
                .map(|(_, name)| {
                    rank += 1;
                    BrandMention {
                        brand: name.clone(),
                        count: 1,
                        first_offset: rank * 20,
                        rank,
                        list_position: Some(rank),
                    }
                })
                .collect()
        })
        .collect();
    RunMetrics::compute(
        brands,
        false,
        answers.iter().map(|a| AnswerRecord::Analysed(a)),
    )
}

fn bench_alerts(c: &mut Criterion) {
    let names: Vec<String> = (0..BRANDS).map(|b| format!("Brand{b}")).collect();
    let brands = TrackedBrands::from_names(&names[0], &names[1..]);
    let before = run(&brands, &names, |b| if b == 0 { 60 } else { 20 + b * 3 });
    let after = run(&brands, &names, |b| match b {
        0 => 35,
        1 => 70,
        _ => 20 + b * 3,
    });
    let providers = [
        ProviderKind::OpenAi,
        ProviderKind::Anthropic,
        ProviderKind::Gemini,
        ProviderKind::Perplexity,
    ];
    let comparisons: Vec<RunComparison<'_>> = providers
        .iter()
        .map(|&provider| RunComparison {
            provider,
            before: &before,
            after: &after,
        })
        .collect();
    let found = evaluate_alerts(&comparisons, ALERT_FDR_Q);
    eprintln!("{} findings from 44 tests", found.len());
    assert!(!found.is_empty());

    let mut group = c.benchmark_group("alerts");
    group
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    group.bench_function("evaluate_4_providers_10_brands", |b| {
        b.iter(|| evaluate_alerts(black_box(&comparisons), ALERT_FDR_Q))
    });
    group.finish();
}

criterion_group!(benches, bench_alerts);
criterion_main!(benches);
