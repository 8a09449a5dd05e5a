//! Cited-source capture (issue #15): what the simulated provider's sources and the citation
//! normaliser cost per answer.
//! - `simulated_answer` / `simulated_answer_and_sources`: the simulator's text alone (the
//!   baseline) and with its sources (pool draws, brand sentences, normalisation), for the four
//!   CRM brands the runner bench uses.
//! - `normalize_typical`: `normalize_sources` on a 2 KB answer with 12 sources, 3 of them
//!   duplicates, each with a span and a title: what a search-backed API returns.
//! - `normalize_hostile`: 10,000 entries (bad schemes, duplicates, reversed spans); the cap
//!   keeps 50.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use echo_core::model::{Brand, BrandName};
use echo_core::provider::simulated::{SimulatedConfig, SimulatedProvider};
use echo_core::provider::{CitedSource, CompletionRequest, SourceSpan, normalize_sources};

fn request(i: u32) -> CompletionRequest {
    CompletionRequest {
        prompt: "What is the best CRM for a startup?".into(),
        model: String::new(),
        temperature: 0.7,
        max_tokens: None,
        system_prompt: None,
        sample_index: i,
    }
}

fn bench_sources(c: &mut Criterion) {
    let brand = |n: &str| Brand::new(BrandName::parse(n).unwrap());
    let sim = SimulatedProvider::new(SimulatedConfig::for_brands(
        7,
        &brand("HubSpot"),
        &[brand("Salesforce"), brand("Pipedrive"), brand("Zoho CRM")],
    ));
    let mut i = 0u32;
    c.bench_function("simulated_answer", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            black_box(sim.answer(&request(i)))
        })
    });
    let mut i = 0u32;
    c.bench_function("simulated_answer_and_sources", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            let req = request(i);
            let text = sim.answer(&req);
            black_box(sim.sources(&req, &text))
        })
    });

    let text = "HubSpot is free to start and scales well. ".repeat(48);
    let typical: Vec<CitedSource> = (0..12u32)
        .map(|k| {
            CitedSource::from_url(format!("https://www.site{}.example/best-crm", k % 9))
                .with_title(format!("Best CRM software in 2026 | Site {k}"))
                .with_span(SourceSpan {
                    start: 42 * k,
                    end: 42 * k + 41,
                })
        })
        .collect();
    c.bench_function("normalize_typical", |b| {
        b.iter(|| black_box(normalize_sources(&text, typical.clone())))
    });
    let hostile: Vec<CitedSource> = (0..10_000u32)
        .map(|k| {
            let url = match k % 4 {
                0 => format!("javascript:alert({k})"),
                1 => format!("https://dup{}.example/", k % 7),
                2 => format!("/relative/{k}"),
                _ => format!("https://flood{k}.example/page"),
            };
            CitedSource::from_url(url).with_span(SourceSpan {
                start: k % 100 + 10,
                end: k % 100,
            })
        })
        .collect();
    c.bench_function("normalize_hostile", |b| {
        b.iter(|| black_box(normalize_sources(&text, hostile.clone())))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = bench_sources
}
criterion_main!(benches);
