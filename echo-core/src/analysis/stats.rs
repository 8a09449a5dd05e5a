//! Statistics for repeated sampling: proportions with Wilson intervals, the comparison of two
//! runs, and sample-size planning.
//!
//! Each answer is treated as an independent Bernoulli trial. Answers to one prompt from one
//! provider are close to that; pooling prompts or days adds between-cluster variance these
//! intervals do not include (Miller, "Adding Error Bars to Evals", arXiv 2411.00640).
//!
//! Undefined values are `None`, never NaN, so results serialize to JSON faithfully.

use serde::{Deserialize, Serialize};

/// The standard normal quantile for a two-sided 95% interval, Φ⁻¹(0.975).
pub const Z_95: f64 = 1.959_963_984_540_054;

/// A closed interval `[lower, upper]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Lower bound.
    pub lower: f64,
    /// Upper bound.
    pub upper: f64,
}

impl Interval {
    /// Half the width: the "±" of a report.
    pub fn half_width(&self) -> f64 {
        (self.upper - self.lower) / 2.0
    }

    /// Whether `x` lies in the interval.
    pub fn contains(&self, x: f64) -> bool {
        self.lower <= x && x <= self.upper
    }
}

/// A count of successes out of `n` trials, with its rate and Wilson 95% interval.
///
/// Unit: a share in `[0, 1]`. `rate` and `ci95` are `None` when `n = 0` (or when
/// `successes > n`, which is invalid input).
///
/// ```
/// use echo_core::analysis::Proportion;
/// let p = Proportion::new(32, 50);
/// assert_eq!(p.rate, Some(0.64));
/// let ci = p.ci95.unwrap();
/// assert_eq!((round4(ci.lower), round4(ci.upper)), (0.5014, 0.7586));
/// assert_eq!(Proportion::new(0, 0).rate, None);
/// # fn round4(x: f64) -> f64 { (x * 1e4).round() / 1e4 }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Proportion {
    /// Trials that succeeded.
    pub successes: u32,
    /// Trials.
    pub n: u32,
    /// `successes / n`.
    pub rate: Option<f64>,
    /// Wilson score 95% interval (see [`wilson_interval`]).
    pub ci95: Option<Interval>,
}

impl Proportion {
    /// `successes` out of `n`.
    pub fn new(successes: u32, n: u32) -> Self {
        let valid = n > 0 && successes <= n;
        Self {
            successes,
            n,
            rate: valid.then(|| f64::from(successes) / f64::from(n)),
            ci95: wilson_interval(successes, n),
        }
    }
}

/// Wilson score 95% interval for `successes` out of `n` (Wilson 1927; recommended over the Wald
/// interval for small samples and rates near 0 or 1, e.g. Brown, Cai & DasGupta 2001).
///
/// `(p̂ + z²/2n ± z·√(p̂(1−p̂)/n + z²/4n²)) / (1 + z²/n)` with `z = 1.95996`; `None` when `n = 0`
/// or `successes > n`. The bounds lie in `[0, 1]` and contain `p̂`; they are exactly 0 (1) when
/// `successes` is 0 (`n`).
///
/// ```
/// use echo_core::analysis::stats::wilson_interval;
/// let ci = wilson_interval(3, 10).unwrap();
/// assert!((ci.lower - 0.1078).abs() < 5e-5 && (ci.upper - 0.6032).abs() < 5e-5);
/// assert_eq!(wilson_interval(0, 10).unwrap().lower, 0.0);
/// ```
pub fn wilson_interval(successes: u32, n: u32) -> Option<Interval> {
    wilson_interval_z(successes, n, Z_95)
}

/// [`wilson_interval`] for another confidence level, given its two-sided normal quantile `z`
/// (`None` unless `z` is finite and positive).
pub fn wilson_interval_z(successes: u32, n: u32, z: f64) -> Option<Interval> {
    if n == 0 || successes > n || !(z.is_finite() && z > 0.0) {
        return None;
    }
    let nf = f64::from(n);
    let p = f64::from(successes) / nf;
    let z2 = z * z;
    let denom = 1.0 + z2 / nf;
    let center = (p + z2 / (2.0 * nf)) / denom;
    let half = z * (p * (1.0 - p) / nf + z2 / (4.0 * nf * nf)).sqrt() / denom;
    let lower = if successes == 0 {
        0.0
    } else {
        (center - half).clamp(0.0, p)
    };
    let upper = if successes == n {
        1.0
    } else {
        (center + half).clamp(p, 1.0)
    };
    Some(Interval { lower, upper })
}

/// Standard normal cumulative distribution Φ(x), by Abramowitz & Stegun, *Handbook of
/// Mathematical Functions* (1964), formula 26.2.17 (Hastings' rational approximation), absolute
/// error below 7.5·10⁻⁸. NaN in, NaN out.
///
/// ```
/// use echo_core::analysis::stats::normal_cdf;
/// assert!((normal_cdf(1.959964) - 0.975).abs() < 1e-7);
/// assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
/// ```
pub fn normal_cdf(x: f64) -> f64 {
    let tail = normal_upper_tail(x.abs());
    if x >= 0.0 { 1.0 - tail } else { tail }
}

/// `1 − Φ(x)` for `x ≥ 0` without the cancellation of computing `1 − normal_cdf(x)`.
fn normal_upper_tail(x: f64) -> f64 {
    const P: f64 = 0.231_641_9;
    const B: [f64; 5] = [
        0.319_381_530,
        -0.356_563_782,
        1.781_477_937,
        -1.821_255_978,
        1.330_274_429,
    ];
    if x.is_nan() {
        return f64::NAN;
    }
    if x == f64::INFINITY {
        return 0.0;
    }
    let t = 1.0 / (1.0 + P * x);
    let poly = t * (B[0] + t * (B[1] + t * (B[2] + t * (B[3] + t * B[4]))));
    let density = (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
    density * poly
}

/// Two-sided p-value of a standard normal test statistic: `2·(1 − Φ(|z|))`.
pub fn two_sided_p_value(z: f64) -> f64 {
    (2.0 * normal_upper_tail(z.abs())).min(1.0)
}

/// The change of a proportion between two runs ("before" and "after"), with its significance.
///
/// - `difference`: `after.rate − before.rate`, a share in `[−1, 1]` (× 100 for percentage
///   points).
/// - `z`, `p_value`: the pooled two-proportion z-test of "no change":
///   `z = (p̂₂ − p̂₁) / √(p̄(1−p̄)(1/n₁ + 1/n₂))`, `p̄ = (x₁ + x₂)/(n₁ + n₂)`, two-sided p from
///   [`normal_cdf`]. `None` when a run has no answers, or when every answer of both runs agrees
///   (p̄ is 0 or 1: there is no variation to test and the difference is 0).
/// - `difference_ci95`: Newcombe's hybrid score interval (Newcombe 1998, *Statistics in
///   Medicine* 17:873–890, method 10), built from the two Wilson intervals `(l₁, u₁)`, `(l₂, u₂)`:
///   `[d − √((p̂₂−l₂)² + (u₁−p̂₁)²), d + √((u₂−p̂₂)² + (p̂₁−l₁)²)]`.
///
/// Worked example: 40/100 then 55/100 → difference +0.15, z = 2.124, p = 0.0337, 95% interval
/// [+0.012, +0.280]:
///
/// ```
/// use echo_core::analysis::{Proportion, ProportionChange};
/// let c = ProportionChange::between(Proportion::new(40, 100), Proportion::new(55, 100));
/// assert!((c.z.unwrap() - 2.124).abs() < 5e-4);
/// assert!((c.p_value.unwrap() - 0.0337).abs() < 5e-5);
/// let ci = c.difference_ci95.unwrap();
/// assert!((ci.lower - 0.012).abs() < 5e-4 && (ci.upper - 0.280).abs() < 5e-4);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ProportionChange {
    /// The earlier run.
    pub before: Proportion,
    /// The later run.
    pub after: Proportion,
    /// `after.rate − before.rate`.
    pub difference: Option<f64>,
    /// Pooled two-proportion z statistic (positive when the rate rose).
    pub z: Option<f64>,
    /// Two-sided p-value of `z`.
    pub p_value: Option<f64>,
    /// Newcombe hybrid score 95% interval for `difference`.
    pub difference_ci95: Option<Interval>,
}

impl ProportionChange {
    /// Compares `after` with `before`.
    pub fn between(before: Proportion, after: Proportion) -> Self {
        let mut change = Self {
            before,
            after,
            difference: None,
            z: None,
            p_value: None,
            difference_ci95: None,
        };
        let (Some(p1), Some(p2)) = (before.rate, after.rate) else {
            return change;
        };
        let d = p2 - p1;
        change.difference = Some(d);
        let (n1, n2) = (f64::from(before.n), f64::from(after.n));
        let pooled = (f64::from(before.successes) + f64::from(after.successes)) / (n1 + n2);
        let se = (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt();
        if se > 0.0 {
            let z = d / se;
            change.z = Some(z);
            change.p_value = Some(two_sided_p_value(z));
        }
        if let (Some(w1), Some(w2)) = (before.ci95, after.ci95) {
            let lower = d - ((p2 - w2.lower).powi(2) + (w1.upper - p1).powi(2)).sqrt();
            let upper = d + ((w2.upper - p2).powi(2) + (p1 - w1.lower).powi(2)).sqrt();
            change.difference_ci95 = Some(Interval {
                lower: lower.max(-1.0),
                upper: upper.min(1.0),
            });
        }
        change
    }
}

/// Iterations needed so that a 95% interval's half-width is at most `half_width` in the worst
/// case, p = 0.5: `⌈z²·p(1−p)/E²⌉` (normal approximation; Wilson's interval is narrower at
/// p = 0.5, so this is enough for it too). ±0.10 → 97, ±0.05 → 385, ±0.03 → 1,068.
///
/// `None` unless `0 < half_width` and the answer fits a `u32`.
///
/// ```
/// use echo_core::analysis::stats::iterations_for_half_width;
/// assert_eq!(iterations_for_half_width(0.10), Some(97));
/// assert_eq!(iterations_for_half_width(0.05), Some(385));
/// ```
pub fn iterations_for_half_width(half_width: f64) -> Option<u32> {
    iterations_for_half_width_at(0.5, half_width)
}

/// [`iterations_for_half_width`] at an expected rate `p` (from a previous run) instead of the
/// worst case; at least 1. `None` unless `p` is in `[0, 1]` and `0 < half_width`.
pub fn iterations_for_half_width_at(p: f64, half_width: f64) -> Option<u32> {
    if !(0.0..=1.0).contains(&p)
        || half_width.is_nan()
        || half_width <= 0.0
        || half_width.is_infinite()
    {
        return None;
    }
    // The tolerance keeps an exact integer from rounding up through floating-point noise.
    let n = (Z_95 * Z_95 * p * (1.0 - p) / (half_width * half_width) - 1e-9).ceil();
    if n > f64::from(u32::MAX) {
        return None;
    }
    // n is finite, non-negative and below u32::MAX here, so the cast is exact.
    Some((n as u32).max(1))
}

/// Adaptive sampling: whether to request another iteration after `successes` out of `n`.
///
/// Stops at `cap` iterations, or once the Wilson 95% interval's half-width at the observed rate
/// is at most `target_half_width`. Before any answer it continues (if `cap > 0`); a target that
/// is not a positive number is never met, so sampling runs to `cap`. Stopping on the data biases
/// the estimate slightly towards extreme rates; with targets of ±0.05 or wider and caps of a few
/// hundred the effect is small next to the interval itself.
///
/// ```
/// use echo_core::analysis::stats::should_continue;
/// assert!(should_continue(5, 10, 0.10, 200));
/// assert!(!should_continue(48, 97, 0.10, 200));
/// assert!(!should_continue(5, 10, 0.10, 10));
/// ```
pub fn should_continue(successes: u32, n: u32, target_half_width: f64, cap: u32) -> bool {
    if n >= cap {
        return false;
    }
    match wilson_interval(successes, n) {
        Some(ci) if target_half_width > 0.0 => ci.half_width() > target_half_width,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round4(x: f64) -> f64 {
        (x * 1e4).round() / 1e4
    }

    fn wilson4(s: u32, n: u32) -> (f64, f64) {
        let ci = wilson_interval(s, n).unwrap();
        (round4(ci.lower), round4(ci.upper))
    }

    #[test]
    fn wilson_reference_vectors() {
        assert_eq!(wilson4(32, 50), (0.5014, 0.7586));
        assert_eq!(wilson4(3, 10), (0.1078, 0.6032));
        assert_eq!(wilson4(0, 10), (0.0, 0.2775));
        assert_eq!(wilson4(5, 5), (0.5655, 1.0));
        assert_eq!(wilson4(50, 100), (0.4038, 0.5962));
        assert_eq!(wilson_interval(0, 0), None);
        assert_eq!(wilson_interval(3, 2), None);
        assert_eq!(wilson_interval_z(1, 2, f64::NAN), None);
    }

    #[test]
    fn proportion_undefined_without_trials() {
        let p = Proportion::new(0, 0);
        assert_eq!((p.rate, p.ci95), (None, None));
        assert_eq!(
            serde_json::to_value(p).unwrap()["rate"],
            serde_json::Value::Null
        );
        assert_eq!(Proportion::new(4, 10).rate, Some(0.4));
    }

    #[test]
    fn normal_cdf_known_values() {
        // Φ values from standard tables (to 7 decimals).
        let table = [
            (0.0, 0.5),
            (1.0, 0.841_344_7),
            (1.959_964, 0.975),
            (2.575_829, 0.995),
            (-1.644_854, 0.05),
            (3.0, 0.998_650_1),
            (-6.0, 0.000_000_001),
        ];
        for (x, want) in table {
            assert!(
                (normal_cdf(x) - want).abs() < 1e-7,
                "Φ({x}) = {}",
                normal_cdf(x)
            );
        }
        assert_eq!(normal_cdf(f64::INFINITY), 1.0);
        assert_eq!(normal_cdf(f64::NEG_INFINITY), 0.0);
        assert!(normal_cdf(f64::NAN).is_nan());
        // Two tails, each within 7.5e-8.
        assert!((two_sided_p_value(1.959_964) - 0.05).abs() < 1.5e-7);
        assert!((two_sided_p_value(0.0) - 1.0).abs() < 1.5e-7);
    }

    #[test]
    fn two_run_comparison_reference() {
        let c = ProportionChange::between(Proportion::new(40, 100), Proportion::new(55, 100));
        assert_eq!(round4(c.difference.unwrap()), 0.15);
        assert_eq!((c.z.unwrap() * 1000.0).round() / 1000.0, 2.124);
        assert_eq!(round4(c.p_value.unwrap()), 0.0337);
        let ci = c.difference_ci95.unwrap();
        assert_eq!(
            ((ci.lower * 1000.0).round(), (ci.upper * 1000.0).round()),
            (12.0, 280.0)
        );
        let back = ProportionChange::between(Proportion::new(55, 100), Proportion::new(40, 100));
        assert_eq!(round4(back.z.unwrap()), -round4(c.z.unwrap()));
        assert_eq!(round4(back.p_value.unwrap()), 0.0337);
    }

    #[test]
    fn comparison_degenerate_cases() {
        let empty = ProportionChange::between(Proportion::new(0, 0), Proportion::new(3, 10));
        assert_eq!(
            (
                empty.difference,
                empty.z,
                empty.p_value,
                empty.difference_ci95
            ),
            (None, None, None, None)
        );
        let same = ProportionChange::between(Proportion::new(0, 50), Proportion::new(0, 20));
        assert_eq!(
            (same.difference, same.z, same.p_value),
            (Some(0.0), None, None)
        );
        let ci = same.difference_ci95.unwrap();
        assert!(ci.lower < 0.0 && ci.upper > 0.0);
        let all = ProportionChange::between(Proportion::new(10, 10), Proportion::new(10, 10));
        assert_eq!(all.z, None);
    }

    #[test]
    fn planner_reference_vectors() {
        assert_eq!(iterations_for_half_width(0.20), Some(25));
        assert_eq!(iterations_for_half_width(0.14), Some(49));
        assert_eq!(iterations_for_half_width(0.10), Some(97));
        assert_eq!(iterations_for_half_width(0.05), Some(385));
        assert_eq!(iterations_for_half_width(0.03), Some(1068));
        assert_eq!(iterations_for_half_width(0.0), None);
        assert_eq!(iterations_for_half_width(f64::NAN), None);
        assert_eq!(iterations_for_half_width(1e-9), None);
        assert_eq!(iterations_for_half_width_at(0.0, 0.1), Some(1));
        assert_eq!(iterations_for_half_width_at(0.2, 0.05), Some(246));
        assert_eq!(iterations_for_half_width_at(1.5, 0.05), None);
        // Wilson at the planned n meets the target.
        for e in [0.2, 0.1, 0.05, 0.03] {
            let n = iterations_for_half_width(e).unwrap();
            assert!(wilson_interval(n / 2, n).unwrap().half_width() <= e);
        }
    }

    #[test]
    fn adaptive_sampling() {
        assert!(should_continue(0, 0, 0.1, 10));
        assert!(!should_continue(0, 0, 0.1, 0));
        assert!(should_continue(40, 80, 0.1, 500), "5/10 of 80: ±0.107");
        assert!(!should_continue(49, 97, 0.1, 500));
        assert!(
            !should_continue(0, 20, 0.1, 500),
            "0/20: Wilson [0, 0.161], ±0.08"
        );
        assert!(should_continue(0, 20, 0.05, 500));
        assert!(should_continue(10, 20, -1.0, 500));
        assert!(!should_continue(10, 20, -1.0, 20));
        assert!(
            should_continue(30, 20, 0.1, 500),
            "invalid input samples on"
        );
    }

    #[test]
    fn interval_contains_its_closed_bounds_only() {
        let ci = Interval {
            lower: 0.25,
            upper: 0.75,
        };
        assert_eq!(ci.half_width(), 0.25);
        for inside in [0.25, 0.5, 0.75] {
            assert!(ci.contains(inside), "{inside} is inside [0.25, 0.75]");
        }
        for outside in [0.2, 0.8, f64::NAN] {
            assert!(!ci.contains(outside), "{outside} is outside [0.25, 0.75]");
        }
    }

    #[test]
    fn wilson_needs_a_finite_positive_quantile() {
        for z in [0.0, -Z_95, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(wilson_interval_z(32, 50, z), None, "z = {z}");
        }
        assert_eq!(wilson_interval_z(32, 50, Z_95), wilson_interval(32, 50));
    }

    #[test]
    fn planner_edges() {
        // z²·¼ / (z/20)² is exactly 100.0: the tolerance must not round it up to 101.
        assert_eq!(iterations_for_half_width(Z_95 / 20.0), Some(100));
        assert_eq!(iterations_for_half_width(-0.1), None);
        assert_eq!(iterations_for_half_width(f64::INFINITY), None);
        assert_eq!(iterations_for_half_width_at(-0.1, 0.05), None);
        // z²·¼ / E² = 4,294,967,294.5 rounds up to u32::MAX, which still fits; just above
        // it, 4,294,967,295.5 does not.
        assert_eq!(
            iterations_for_half_width(1.495_333_850_770_804_4e-5),
            Some(u32::MAX)
        );
        assert_eq!(iterations_for_half_width(1.495_333_850_596_724_7e-5), None);
    }

    #[test]
    fn adaptive_sampling_stops_on_a_target_met_exactly() {
        let reached = wilson_interval(48, 97).unwrap().half_width();
        assert!(!should_continue(48, 97, reached, 500));
        assert!(should_continue(48, 97, reached / 2.0, 500));
        // A target that is not a number is never met.
        assert!(should_continue(48, 97, f64::NAN, 500));
        assert!(should_continue(48, 97, 0.0, 500));
    }

    proptest! {
        #[test]
        fn wilson_bounds_are_valid(n in 1u32..100_000, frac in 0.0f64..=1.0) {
            let s = (f64::from(n) * frac).floor() as u32;
            let ci = wilson_interval(s, n).unwrap();
            let p = f64::from(s) / f64::from(n);
            prop_assert!(0.0 <= ci.lower && ci.lower <= p && p <= ci.upper && ci.upper <= 1.0);
        }

        #[test]
        fn comparison_is_finite(s1 in 0u32..300, n1 in 0u32..300, s2 in 0u32..300, n2 in 0u32..300) {
            let c = ProportionChange::between(Proportion::new(s1, n1), Proportion::new(s2, n2));
            crate::analysis::assert_json_round_trip(&c);
            if let Some(p) = c.p_value { prop_assert!((0.0..=1.0).contains(&p)); }
            if let (Some(d), Some(ci)) = (c.difference, c.difference_ci95) {
                prop_assert!(ci.lower <= d + 1e-12 && d <= ci.upper + 1e-12);
            }
        }
    }
}
