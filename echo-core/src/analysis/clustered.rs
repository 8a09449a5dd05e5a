//! A rate pooled over the phrasings of a prompt set, with an interval that treats phrasings as
//! clusters.
//!
//! # Why not the binomial interval
//! A prompt set asks one question in many phrasings, and answers to the same phrasing are far
//! more alike than answers to different ones: one phrasing may name the brand 70% of the time,
//! another 10%. What a user wants to know is the brand's visibility for the *topic*, over the
//! ways buyers phrase it, of which the set's phrasings are a sample. Pooling every answer into
//! one binomial count ignores the phrasing-to-phrasing spread, so its interval is too narrow:
//! in the simulation below (10 phrasings × 20 answers) it covers the topic's rate only about
//! 70% of the time instead of 95%.
//!
//! # What is used instead: the cluster-robust (between-phrasing) variance
//! The pooled rate is the mean of the per-phrasing rates, `p̄ = (1/K) Σ p̂ₖ`, so each phrasing
//! weighs the same however many of its answers succeeded. Its variance is estimated from the
//! spread of the per-phrasing rates, `s² / K` with `s²` their sample variance: the
//! cluster-robust ("sandwich") variance of a mean over clusters of equal weight (Miller, "Adding
//! Error Bars to Evals", arXiv 2411.00640, §2.2). `s²` already contains the within-phrasing
//! binomial noise (`E[s²] = Var(pₖ) + E[pₖ(1−pₖ)/n]`), so nothing is added to it. The interval
//! is `p̄ ± t₀.₉₇₅,K−1 · √(s²/K)`, with Student's t on `K − 1` degrees of freedom because a
//! set has as few as 5 phrasings, clamped to `[0, 1]`.
//!
//! The variance is never taken below the binomial variance of the pooled answers: with few
//! phrasings the sample variance can come out near zero by chance (every phrasing 0 of 20), and
//! an interval narrower than the one that ignores clustering would claim a precision the
//! answers do not have. The ratio of the two variances is reported as the design effect.
//!
//! A cluster bootstrap was the alternative; with 5 to 50 clusters it needs thousands of
//! resamples per figure to give the same interval less exactly, so the closed form is used.
//! The coverage of both intervals is checked by a seeded simulation in this module's tests.

use serde::{Deserialize, Serialize};

use super::stats::{Interval, Z_95, wilson_interval};

/// Successes out of `n` answers to one phrasing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptCount {
    /// Answers that counted (e.g. named the target brand).
    pub successes: u32,
    /// Answers.
    pub n: u32,
}

/// A rate pooled over a prompt set's phrasings (see the [module docs](self)).
///
/// Unit: a share in `[0, 1]`; `None` where undefined (no phrasing with answers).
///
/// ```
/// use echo_core::analysis::clustered::{PooledRate, PromptCount};
/// let counts = [(14, 20), (2, 20), (8, 20), (10, 20), (6, 20)]
///     .map(|(successes, n)| PromptCount { successes, n });
/// let pooled = PooledRate::over(&counts);
/// assert_eq!(pooled.rate, Some(0.4));
/// let (cluster, naive) = (pooled.ci95.unwrap(), pooled.naive_ci95.unwrap());
/// // The phrasings disagree (10% to 70%), so the cluster interval is much wider.
/// assert!(cluster.half_width() > 2.0 * naive.half_width());
/// assert!(pooled.design_effect.unwrap() > 1.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PooledRate {
    /// Phrasings with at least one answer (the clusters).
    pub prompts: u32,
    /// Successes over all those answers.
    pub successes: u32,
    /// Answers over all phrasings.
    pub n: u32,
    /// Mean of the per-phrasing rates.
    pub rate: Option<f64>,
    /// Cluster-robust 95% interval; `None` with fewer than 2 phrasings, where the spread
    /// between phrasings cannot be estimated.
    pub ci95: Option<Interval>,
    /// The Wilson interval of all answers pooled as one binomial count, which ignores
    /// clustering; shown for comparison, too narrow when phrasings differ.
    pub naive_ci95: Option<Interval>,
    /// Cluster-robust variance ÷ binomial variance of the pooled mean (≥ 1); how many times
    /// more answers the set needs than independent answers would for the same precision.
    pub design_effect: Option<f64>,
}

impl PooledRate {
    /// Pools `counts`, one per phrasing. Phrasings with no answers are left out; a count with
    /// `successes > n` is invalid and left out too.
    pub fn over(counts: &[PromptCount]) -> Self {
        let valid: Vec<PromptCount> = counts
            .iter()
            .copied()
            .filter(|c| c.n > 0 && c.successes <= c.n)
            .collect();
        let successes = valid
            .iter()
            .map(|c| c.successes)
            .fold(0u32, u32::saturating_add);
        let n = valid.iter().map(|c| c.n).fold(0u32, u32::saturating_add);
        let prompts = u32::try_from(valid.len()).unwrap_or(u32::MAX);
        let naive_ci95 = wilson_interval(successes, n);
        if valid.is_empty() {
            return Self {
                prompts,
                successes,
                n,
                rate: None,
                ci95: None,
                naive_ci95,
                design_effect: None,
            };
        }
        let k = valid.len() as f64;
        let rates: Vec<f64> = valid
            .iter()
            .map(|c| f64::from(c.successes) / f64::from(c.n))
            .collect();
        let mean = rates.iter().sum::<f64>() / k;
        let mut pooled = Self {
            prompts,
            successes,
            n,
            rate: Some(mean),
            ci95: None,
            naive_ci95,
            design_effect: None,
        };
        if valid.len() < 2 {
            return pooled;
        }
        let s2 = rates.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (k - 1.0);
        let cluster_var = s2 / k;
        // Binomial variance of the mean of per-phrasing rates: Σ p̄(1−p̄)/nₖ / K².
        let binomial_var = valid
            .iter()
            .map(|c| mean * (1.0 - mean) / f64::from(c.n))
            .sum::<f64>()
            / (k * k);
        let var = cluster_var.max(binomial_var);
        let half = t_975(valid.len() - 1) * var.sqrt();
        pooled.ci95 = Some(Interval {
            lower: (mean - half).clamp(0.0, 1.0),
            upper: (mean + half).clamp(0.0, 1.0),
        });
        pooled.design_effect = (binomial_var > 0.0).then(|| var / binomial_var);
        pooled
    }
}

/// Student's t quantile t₀.₉₇₅ on `df` degrees of freedom: exact table values to 30, then the
/// Cornish–Fisher expansion around the normal quantile (error below 10⁻⁴ there).
fn t_975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::INFINITY,
        1..=30 => TABLE[df - 1],
        _ => {
            let (z, d) = (Z_95, df as f64);
            z + (z.powi(3) + z) / (4.0 * d)
                + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * d * d)
        }
    }
}

/// A run's target visibility per phrasing of its prompt set, and pooled over the set with the
/// cluster-robust interval of [`PooledRate`]. Stored with the run's metrics, so a report
/// always names the set version its numbers come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptSetMetrics {
    /// The set.
    pub set_id: crate::model::PromptSetId,
    /// The version the run asked.
    pub version: u32,
    /// Its name.
    pub name: String,
    /// Target visibility per phrasing, in the set's order (index 0 first): successful answers
    /// to that phrasing naming the target ÷ successful answers to it, with its Wilson interval.
    pub per_prompt: Vec<super::Proportion>,
    /// Target visibility pooled over the phrasings (mean of the per-phrasing rates) with the
    /// cluster-robust interval, beside the naive pooled-binomial one.
    pub pooled: PooledRate,
}

impl PromptSetMetrics {
    /// The metrics of `per_prompt` (one visibility per phrasing) for `set`.
    pub fn new(set: &crate::model::PinnedPromptSet, per_prompt: Vec<super::Proportion>) -> Self {
        let counts: Vec<PromptCount> = per_prompt
            .iter()
            .map(|p| PromptCount {
                successes: p.successes,
                n: p.n,
            })
            .collect();
        Self {
            set_id: set.set_id,
            version: set.version,
            name: set.name.as_str().to_owned(),
            pooled: PooledRate::over(&counts),
            per_prompt,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SplitMix64: a small seeded generator, so the simulation is the same on every run.
    struct SplitMix(u64);

    impl SplitMix {
        fn next_f64(&mut self) -> f64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// Coverage of the cluster and the naive interval over `sets` simulated prompt sets of
    /// `k` phrasings × `n` answers, whose phrasings' true rates are uniform on
    /// `[lo, hi]`: the topic's true rate is `(lo + hi) / 2`.
    fn coverage(seed: u64, sets: u32, k: usize, n: u32, lo: f64, hi: f64) -> (f64, f64) {
        let mut rng = SplitMix(seed);
        let truth = (lo + hi) / 2.0;
        let (mut cluster, mut naive) = (0u32, 0u32);
        for _ in 0..sets {
            let counts: Vec<PromptCount> = (0..k)
                .map(|_| {
                    let p = lo + (hi - lo) * rng.next_f64();
                    let successes = (0..n).filter(|_| rng.next_f64() < p).count() as u32;
                    PromptCount { successes, n }
                })
                .collect();
            let pooled = PooledRate::over(&counts);
            cluster += u32::from(pooled.ci95.unwrap().contains(truth));
            naive += u32::from(pooled.naive_ci95.unwrap().contains(truth));
        }
        (
            f64::from(cluster) / f64::from(sets),
            f64::from(naive) / f64::from(sets),
        )
    }

    #[test]
    fn cluster_interval_covers_the_topic_rate_and_the_naive_one_does_not() {
        // 1,000 sets of 10 phrasings × 20 answers, true rates spread over 10%..70%.
        let (cluster, naive) = coverage(15, 1000, 10, 20, 0.1, 0.7);
        println!("10 × 20: cluster {cluster:.3}, naive {naive:.3}");
        assert!(
            (0.93..=0.97).contains(&cluster),
            "cluster coverage {cluster}"
        );
        assert!(naive < 0.85, "naive coverage {naive}");
        // The smallest set allowed: 5 phrasings × 10 answers, rates over 20%..80%.
        let (cluster, naive) = coverage(12, 1000, 5, 10, 0.2, 0.8);
        println!("5 × 10: cluster {cluster:.3}, naive {naive:.3}");
        assert!(
            (0.93..=0.97).contains(&cluster),
            "cluster coverage {cluster}"
        );
        assert!(naive < 0.85, "naive coverage {naive}");
    }

    #[test]
    fn identical_phrasings_are_no_wider_than_needed() {
        // Every phrasing at the same true rate: the design effect stays near 1 and the
        // cluster interval still covers (the floor at the binomial variance keeps it honest).
        let (cluster, _) = coverage(7, 1000, 10, 20, 0.4, 0.4);
        assert!(cluster >= 0.93, "cluster coverage {cluster}");
    }

    #[test]
    fn worked_example() {
        // Rates 0.7, 0.1, 0.4, 0.5, 0.3: mean 0.4, s² = 0.05, s²/K = 0.01, t₄ = 2.776.
        let counts = [(14, 20), (2, 20), (8, 20), (10, 20), (6, 20)]
            .map(|(successes, n)| PromptCount { successes, n });
        let p = PooledRate::over(&counts);
        let ci = p.ci95.unwrap();
        assert!((ci.lower - (0.4 - 0.2776)).abs() < 1e-9);
        assert!((ci.upper - (0.4 + 0.2776)).abs() < 1e-9);
        // Binomial variance 0.24 / 100 = 0.0024: design effect 0.01 / 0.0024.
        assert!((p.design_effect.unwrap() - 0.01 / 0.0024).abs() < 1e-9);
        assert_eq!((p.successes, p.n, p.prompts), (40, 100, 5));
    }

    #[test]
    fn edge_cases() {
        let none = PooledRate::over(&[]);
        assert_eq!((none.rate, none.ci95, none.naive_ci95), (None, None, None));
        let one = PooledRate::over(&[PromptCount {
            successes: 3,
            n: 10,
        }]);
        assert_eq!((one.rate, one.ci95), (Some(0.3), None));
        assert!(one.naive_ci95.is_some());
        // Empty and invalid phrasings are left out.
        let skipped = PooledRate::over(&[
            PromptCount { successes: 0, n: 0 },
            PromptCount { successes: 5, n: 4 },
            PromptCount {
                successes: 0,
                n: 10,
            },
            PromptCount {
                successes: 0,
                n: 10,
            },
        ]);
        assert_eq!(skipped.prompts, 2);
        // All zero: s² = 0 and the binomial variance is 0 too; the interval is the point.
        let ci = skipped.ci95.unwrap();
        assert_eq!((ci.lower, ci.upper), (0.0, 0.0));
        assert_eq!(skipped.design_effect, None);
        // t quantiles: the table's end meets the expansion.
        assert!((t_975(31) - 2.040).abs() < 1e-3);
        assert!((t_975(120) - 1.980).abs() < 1e-3);
        crate::analysis::assert_json_round_trip(&PooledRate::over(&[
            PromptCount {
                successes: 3,
                n: 10,
            },
            PromptCount {
                successes: 6,
                n: 10,
            },
        ]));
    }
}
