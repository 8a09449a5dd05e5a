//! Alerts on significant change: which differences between a recurring experiment's finished
//! run and its previous run are real, and not sampling noise.
//!
//! # What is tested
//! For each provider, the newest finished run is compared with the previous finished run of the
//! same experiment (same prompt) with the pooled two-proportion z-test of
//! [`ProportionChange`]. The hypotheses of "no change" are
//! - the target's visibility ([`AlertKind::Visibility`]),
//! - the target's first-place rate ([`AlertKind::FirstPlace`]),
//! - each competitor's visibility, reported only as [`AlertKind::CompetitorOvertook`]: the
//!   competitor's visibility rose significantly **and** it is now above the target's when it was
//!   at or below it in the previous run.
//!
//! A change with no variation to test (both runs all-yes or all-no) has p = 1; a brand missing
//! from either run (added or removed since) is not tested.
//!
//! # Multiple comparisons
//! Every hypothesis of every provider compared for one execution is one family of
//! `m = providers × (2 + competitors)` tests, corrected with Benjamini–Hochberg (1995) at
//! `q = 0.05` ([`ALERT_FDR_Q`]): sort the p-values `p₍₁₎ ≤ … ≤ p₍ₘ₎`, find the largest `k` with
//! `p₍ₖ₎ ≤ k·q/m` and reject the `k` smallest. The adjusted p-value reported with each alert is
//! `min over j ≥ i of (m/j)·p₍ⱼ₎` (capped at 1), and a hypothesis is rejected exactly when it is
//! `≤ q`. Competitors' hypotheses count in `m` whether or not the ordering flipped, so the
//! family is fixed before the data are seen. When nothing changed (the complete null), BH
//! controls the chance of any alert at `q`.
//!
//! # Power
//! The test is honest, so small samples cannot see small changes. At n = 100 answers per run, a
//! drop of the target's visibility from 0.6 to 0.4 is caught about 81% of the time when tested
//! alone (expected z ≈ 2.83), and about 70% inside the three-test family of one provider; it
//! takes about 175 answers per run to catch it 90% of the time. The simulation and its
//! measurements are in `benches/README.md` ("Alerts").
//!
//! # Example
//! ```
//! use echo_core::analysis::alerts::{evaluate_alerts, RunComparison, ALERT_FDR_Q};
//! use echo_core::analysis::{AnswerRecord, RunMetrics, TrackedBrands};
//! use echo_core::model::{AlertKind, BrandMention, ProviderKind};
//!
//! let brands = TrackedBrands::from_names("Acme", ["Globex"]);
//! let named = |brand: &str| vec![BrandMention {
//!     brand: brand.into(), count: 1, first_offset: 0, rank: 1, list_position: None,
//! }];
//! let (acme, globex, none) = (named("Acme"), named("Globex"), Vec::new());
//! // Before: Acme in 60 of 100 answers. After: in 30 of 100.
//! let run = |k: usize| RunMetrics::compute(&brands, false, (0..100).map(|i| {
//!     AnswerRecord::Analysed(if i < k { &acme } else if i < 90 { &globex } else { &none })
//! }));
//! let (before, after) = (run(60), run(30));
//! let alerts = evaluate_alerts(
//!     &[RunComparison { provider: ProviderKind::Simulated, before: &before, after: &after }],
//!     ALERT_FDR_Q,
//! );
//! assert!(alerts.iter().any(|a| a.kind == AlertKind::Visibility && a.brand == "Acme"));
//! assert!(alerts.iter().any(|a| a.kind == AlertKind::CompetitorOvertook && a.brand == "Globex"));
//! ```

use serde::{Deserialize, Serialize};

use super::metrics::{BrandMetrics, RunMetrics};
use super::stats::ProportionChange;
use crate::model::{AlertKind, ProviderKind};

/// The false discovery rate at which alerts are raised (Benjamini–Hochberg `q`).
pub const ALERT_FDR_Q: f64 = 0.05;

/// One provider's pair of runs to compare: the previous finished run and the newest one.
#[derive(Debug, Clone, Copy)]
pub struct RunComparison<'a> {
    /// The provider both runs queried.
    pub provider: ProviderKind,
    /// The previous finished run's metrics.
    pub before: &'a RunMetrics,
    /// The newest finished run's metrics.
    pub after: &'a RunMetrics,
}

/// A change found significant after the Benjamini–Hochberg correction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertFinding {
    /// The provider whose runs changed.
    pub provider: ProviderKind,
    /// What changed.
    pub kind: AlertKind,
    /// The brand whose rate changed: the target, or the competitor that overtook it.
    pub brand: String,
    /// The target brand.
    pub target: String,
    /// The tested rate before and after, with the z-test and the Newcombe interval of the
    /// difference. For [`AlertKind::CompetitorOvertook`] it is the competitor's visibility.
    pub change: ProportionChange,
    /// The target's visibility rate in the previous and the newest run (context for an
    /// overtaking; the tested rate itself for [`AlertKind::Visibility`]).
    pub target_visibility: (Option<f64>, Option<f64>),
    /// The Benjamini–Hochberg adjusted p-value (`≤ q` for every finding).
    pub adjusted_p: f64,
}

struct Hypothesis<'a> {
    provider: ProviderKind,
    kind: AlertKind,
    brand: &'a str,
    target: &'a BrandMetrics,
    target_before: &'a BrandMetrics,
    change: ProportionChange,
    p: f64,
}

fn hypotheses<'a>(c: &RunComparison<'a>, out: &mut Vec<Hypothesis<'a>>) {
    let (Some(target_before), Some(target)) = (c.before.target(), c.after.target()) else {
        return;
    };
    let mut push = |kind, brand: &'a str, change: ProportionChange| {
        out.push(Hypothesis {
            provider: c.provider,
            kind,
            brand,
            target,
            target_before,
            p: change.p_value.unwrap_or(1.0),
            change,
        });
    };
    push(
        AlertKind::Visibility,
        &target.brand,
        ProportionChange::between(target_before.visibility, target.visibility),
    );
    push(
        AlertKind::FirstPlace,
        &target.brand,
        ProportionChange::between(target_before.first_place, target.first_place),
    );
    for after in c.after.brands.iter().filter(|b| !b.is_target) {
        let Some(before) = c.before.brand(&after.brand).filter(|b| !b.is_target) else {
            continue;
        };
        push(
            AlertKind::CompetitorOvertook,
            &after.brand,
            ProportionChange::between(before.visibility, after.visibility),
        );
    }
}

/// Benjamini–Hochberg adjusted p-values of `p`, in the same order: `min over j ≥ i of
/// (m/j)·p₍ⱼ₎` over the ascending order, capped at 1. A hypothesis is rejected at FDR `q`
/// exactly when its adjusted value is `≤ q`. NaN counts as 1.
///
/// ```
/// use echo_core::analysis::alerts::benjamini_hochberg;
/// let adj = benjamini_hochberg(&[0.01, 0.04, 0.03, 0.5]);
/// // Sorted: 0.01·4/1 = 0.04, 0.03·4/2 = 0.06, 0.04·4/3 ≈ 0.0533, 0.5·4/4 = 0.5;
/// // then the running minimum from the top: 0.04, 0.0533, 0.0533, 0.5.
/// let round = |x: f64| (x * 1e4).round() / 1e4;
/// assert_eq!(adj.iter().map(|&x| round(x)).collect::<Vec<_>>(), [0.04, 0.0533, 0.0533, 0.5]);
/// ```
pub fn benjamini_hochberg(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let clean = |x: f64| if x.is_nan() { 1.0 } else { x.clamp(0.0, 1.0) };
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| clean(p[a]).total_cmp(&clean(p[b])));
    let mut adjusted = vec![1.0; m];
    let mut running = 1.0_f64;
    for (rank, &i) in order.iter().enumerate().rev() {
        let scaled = clean(p[i]) * m as f64 / (rank + 1) as f64;
        running = running.min(scaled);
        if let Some(slot) = adjusted.get_mut(i) {
            *slot = running.min(1.0);
        }
    }
    adjusted
}

/// The alerts for one finished execution of a recurring experiment: every provider's newest run
/// against its previous one, as one Benjamini–Hochberg family at FDR `q` (see the module docs).
/// Findings come in the order of `comparisons`, then visibility, first place, competitors.
pub fn evaluate_alerts(comparisons: &[RunComparison<'_>], q: f64) -> Vec<AlertFinding> {
    let mut tests = Vec::new();
    for c in comparisons {
        hypotheses(c, &mut tests);
    }
    let p: Vec<f64> = tests.iter().map(|h| h.p).collect();
    let adjusted = benjamini_hochberg(&p);
    tests
        .into_iter()
        .zip(adjusted)
        .filter(|(h, adj)| *adj <= q && is_alert(h))
        .map(|(h, adjusted_p)| AlertFinding {
            provider: h.provider,
            kind: h.kind,
            brand: h.brand.to_owned(),
            target: h.target.brand.clone(),
            change: h.change,
            target_visibility: (h.target_before.visibility.rate, h.target.visibility.rate),
            adjusted_p,
        })
        .collect()
}

fn is_alert(h: &Hypothesis<'_>) -> bool {
    match h.kind {
        AlertKind::Visibility | AlertKind::FirstPlace => h.change.difference.is_some(),
        AlertKind::CompetitorOvertook => {
            let rose = h.change.difference.is_some_and(|d| d > 0.0);
            let (Some(c0), Some(c1)) = (h.change.before.rate, h.change.after.rate) else {
                return false;
            };
            let (Some(t0), Some(t1)) = (h.target_before.visibility.rate, h.target.visibility.rate)
            else {
                return false;
            };
            rose && c0 <= t0 && c1 > t1
        }
    }
}

#[cfg(test)]
mod tests;
