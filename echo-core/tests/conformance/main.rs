//! The storage conformance suite against the in-memory store, plus a check that the suite's
//! scenario list is complete.

use std::collections::BTreeSet;
use std::sync::Arc;

use echo_core::store::DynStore;
use echo_core::store::memory::MemoryStore;

async fn fresh_store() -> Arc<DynStore> {
    Arc::new(MemoryStore::new())
}

echo_core::store_conformance_tests!(fresh_store);

/// The scenario modules' sources, by module name.
const SOURCES: &[(&str, &str)] = &[
    (
        "api_keys",
        include_str!("../../src/conformance/api_keys.rs"),
    ),
    ("alerts", include_str!("../../src/conformance/alerts.rs")),
    ("audit", include_str!("../../src/conformance/audit.rs")),
    ("edge", include_str!("../../src/conformance/edge.rs")),
    (
        "experiments",
        include_str!("../../src/conformance/experiments.rs"),
    ),
    ("jobs", include_str!("../../src/conformance/jobs.rs")),
    (
        "prompt_sets",
        include_str!("../../src/conformance/prompt_sets.rs"),
    ),
    (
        "retention",
        include_str!("../../src/conformance/retention.rs"),
    ),
    ("runs", include_str!("../../src/conformance/runs.rs")),
    ("sources", include_str!("../../src/conformance/sources.rs")),
    (
        "sessions",
        include_str!("../../src/conformance/sessions.rs"),
    ),
    ("users", include_str!("../../src/conformance/users.rs")),
    (
        "verification",
        include_str!("../../src/conformance/verification.rs"),
    ),
    (
        "webhooks",
        include_str!("../../src/conformance/webhooks.rs"),
    ),
];

/// Every `pub async fn` of every scenario module is in the macro's list (and so runs for every
/// backend), every listed name exists, and no name is listed twice.
#[test]
fn every_scenario_is_listed() {
    let mod_rs = include_str!("../../src/conformance/mod.rs");
    let declared: BTreeSet<&str> = mod_rs
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod ")?.strip_suffix(';'))
        // Builders, the SQL stores' raw-SQL scenarios (outside the macro by design) and their
        // migration-file checks (no store involved).
        .filter(|m| !matches!(*m, "fixtures" | "corrupt" | "migrations"))
        .collect();
    let scanned: BTreeSet<&str> = SOURCES.iter().map(|(m, _)| *m).collect();
    assert_eq!(
        declared, scanned,
        "scenario modules declared in mod.rs vs scanned here"
    );

    let defined: BTreeSet<String> = SOURCES
        .iter()
        .flat_map(|(module, source)| {
            source.lines().filter_map(move |line| {
                let rest = line.strip_prefix("pub async fn ")?;
                let name = rest.split(['(', '<']).next()?;
                Some(format!("{module}::{name}"))
            })
        })
        .collect();
    let listed: BTreeSet<String> = echo_core::conformance::SCENARIOS
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    assert_eq!(
        listed.len(),
        echo_core::conformance::SCENARIOS.len(),
        "a scenario is listed twice"
    );
    let unlisted: Vec<_> = defined.difference(&listed).collect();
    let unknown: Vec<_> = listed.difference(&defined).collect();
    assert!(
        unlisted.is_empty(),
        "scenarios missing from store_conformance_tests!: {unlisted:?}"
    );
    assert!(
        unknown.is_empty(),
        "listed scenarios with no pub async fn: {unknown:?}"
    );
}
