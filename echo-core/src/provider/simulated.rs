//! A seeded provider that writes realistic answers without a network or a key.
//!
//! It exists for demos, tests and benchmarks. Its answers look like real assistants' output
//! (markdown numbered lists with bold names, bulleted lists, headings, prose paragraphs,
//! possessives, lower-case and alias spellings, the odd bare URL) and each brand appears with a
//! configurable probability and a tendency to come early or late. Everything is derived from
//! `(seed, sample_index, prompt)`, so the same seed gives the same answers in any execution
//! order. Its [`ProviderKind`] is always [`ProviderKind::Simulated`]: reports label it as such.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{Completion, CompletionRequest, FinishReason, Provider, ProviderError};
use crate::model::{Brand, ProviderKind};
use crate::rng::{SplitMix64, mix};

/// The model name reported when the request names none.
pub const SIMULATED_MODEL: &str = "echo-simulated-1";

/// How one brand behaves in simulated answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimulatedBrand {
    /// Canonical spelling.
    pub name: String,
    /// Other spellings the simulator sometimes uses.
    pub aliases: Vec<String>,
    /// Probability (0..=1) that an answer mentions the brand.
    pub mention_probability: f64,
    /// Tendency (0..=1) to be named early: 1 = usually first, 0 = usually last.
    pub prominence: f64,
}

/// Simulator settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimulatedConfig {
    /// Seed: same seed, same answers.
    pub seed: u64,
    /// Brands the answers may mention.
    pub brands: Vec<SimulatedBrand>,
    /// Base latency of a call.
    pub latency: Duration,
    /// Extra latency drawn uniformly from `[0, latency_jitter]`.
    pub latency_jitter: Duration,
    /// Probability of a transient failure (HTTP 503-like).
    pub failure_rate: f64,
    /// Probability of a rate-limit failure (429 with `Retry-After: 1`).
    pub rate_limit_rate: f64,
}

impl SimulatedConfig {
    /// A configuration for an experiment's brands: each brand gets a mention probability
    /// between 0.25 and 0.85 and a prominence, both derived from the seed and the brand name,
    /// so different brands behave differently but reproducibly. No latency, no failures.
    pub fn for_brands(seed: u64, target: &Brand, competitors: &[Brand]) -> Self {
        let brands = std::iter::once(target)
            .chain(competitors)
            .map(|b| {
                let mut rng = SplitMix64::new(mix(&[seed, hash_str(b.name.as_str())]));
                SimulatedBrand {
                    name: b.name.as_str().to_owned(),
                    aliases: b.aliases.iter().map(|a| a.as_str().to_owned()).collect(),
                    mention_probability: 0.25 + 0.6 * rng.next_f64(),
                    prominence: rng.next_f64(),
                }
            })
            .collect();
        Self {
            seed,
            brands,
            latency: Duration::ZERO,
            latency_jitter: Duration::ZERO,
            failure_rate: 0.0,
            rate_limit_rate: 0.0,
        }
    }
}

/// The simulated provider.
///
/// ```
/// use echo_core::model::{Brand, BrandName};
/// use echo_core::provider::{CompletionRequest, Provider};
/// use echo_core::provider::simulated::{SimulatedConfig, SimulatedProvider};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let target = Brand::new(BrandName::parse("HubSpot").unwrap());
/// let sim = SimulatedProvider::new(SimulatedConfig::for_brands(7, &target, &[]));
/// let request = CompletionRequest {
///     prompt: "Best CRM for startups?".into(),
///     model: "sim".into(),
///     temperature: 0.7,
///     max_tokens: None,
///     system_prompt: None,
///     sample_index: 0,
/// };
/// let a = sim.complete(&request).await.unwrap();
/// let b = sim.complete(&request).await.unwrap();
/// assert_eq!(a.text, b.text); // same seed and index, same answer
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct SimulatedProvider {
    config: SimulatedConfig,
}

impl SimulatedProvider {
    /// A simulator with `config`.
    pub fn new(config: SimulatedConfig) -> Self {
        Self { config }
    }

    /// The configuration.
    pub fn config(&self) -> &SimulatedConfig {
        &self.config
    }

    /// The answer for a request, without latency or failure injection.
    pub fn answer(&self, request: &CompletionRequest) -> String {
        let mut rng = self.rng_for(request, 1);
        write_answer(&mut rng, &self.config.brands, &request.prompt)
    }

    fn rng_for(&self, request: &CompletionRequest, stream: u64) -> SplitMix64 {
        SplitMix64::new(mix(&[
            self.config.seed,
            u64::from(request.sample_index),
            hash_str(&request.prompt),
            stream,
        ]))
    }
}

#[async_trait]
impl Provider for SimulatedProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Simulated
    }

    async fn complete(&self, request: &CompletionRequest) -> Result<Completion, ProviderError> {
        let started = Instant::now();
        let mut faults = self.rng_for(request, 0);
        let jitter = self.config.latency_jitter.mul_f64(faults.next_f64());
        let delay = self.config.latency + jitter;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if faults.chance(self.config.failure_rate) {
            return Err(ProviderError::Transient {
                status: Some(503),
                message: "simulated overload".into(),
            });
        }
        if faults.chance(self.config.rate_limit_rate) {
            return Err(ProviderError::RateLimited {
                retry_after: Some(Duration::from_secs(1)),
                message: "simulated rate limit".into(),
            });
        }
        let text = self.answer(request);
        let model = if request.model.trim().is_empty() {
            SIMULATED_MODEL.to_owned()
        } else {
            request.model.clone()
        };
        Ok(Completion {
            input_tokens: approx_tokens(&request.prompt),
            output_tokens: approx_tokens(&text),
            text,
            model,
            latency: started.elapsed(),
            finish_reason: FinishReason::Stop,
            citations: Vec::new(),
        })
    }
}

fn hash_str(s: &str) -> u64 {
    let mut h = DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

/// About 4 tokens per 3 words, the usual rule of thumb for English BPE tokenizers.
fn approx_tokens(text: &str) -> u32 {
    let words = text.split_whitespace().count();
    u32::try_from(words.saturating_mul(4) / 3).unwrap_or(u32::MAX)
}

const PRAISE: &[&str] = &[
    "is known for its intuitive interface",
    "offers strong automation features",
    "scales well as a team grows",
    "has a generous free tier",
    "integrates with hundreds of other tools",
    "is popular with sales-led startups",
    "provides robust reporting and analytics",
    "stands out for its customer support",
    "keeps pricing simple and transparent",
    "is quick to set up without consultants",
];

const CAVEATS: &[&str] = &[
    "although advanced features cost extra",
    "though some users find the reporting limited",
    "but it can feel complex at first",
    "while its mobile app is less polished",
    "even if customisation takes some effort",
];

const CLOSINGS: &[&str] = &[
    "The right choice depends on your budget, team size and existing tools.",
    "Try a free trial of two or three before you commit.",
    "Consider how each one fits your sales process and integrations.",
    "Start with your must-have features and compare pricing tiers.",
];

/// Picks the spelling an answer uses for a brand this time.
fn spelling(rng: &mut SplitMix64, brand: &SimulatedBrand, allow_possessive: bool) -> String {
    let roll = rng.next_f64();
    if roll < 0.12
        && let Some(alias) = rng.pick(&brand.aliases)
    {
        return alias.clone();
    }
    if roll < 0.2 {
        return brand.name.to_lowercase();
    }
    if allow_possessive && roll < 0.3 {
        return format!("{}'s", brand.name);
    }
    brand.name.clone()
}

fn topic(prompt: &str) -> String {
    let t = prompt.trim().trim_end_matches(['?', '.', '!']).trim();
    if t.is_empty() {
        "this".to_owned()
    } else {
        t.to_lowercase()
    }
}

fn write_answer(rng: &mut SplitMix64, brands: &[SimulatedBrand], prompt: &str) -> String {
    let mut chosen: Vec<(f64, &SimulatedBrand)> = Vec::new();
    for brand in brands {
        if rng.chance(brand.mention_probability) {
            chosen.push((brand.prominence + 0.6 * rng.next_f64(), brand));
        }
    }
    chosen.sort_by(|a, b| b.0.total_cmp(&a.0));
    let chosen: Vec<&SimulatedBrand> = chosen.into_iter().map(|(_, b)| b).collect();
    let topic = topic(prompt);

    if chosen.is_empty() {
        return format!(
            "There is no single best answer to \"{topic}\". Look for a tool that matches your \
             workflow, offers a free trial and integrates with what you already use.\n\n{}",
            rng.pick(CLOSINGS).copied().unwrap_or_default()
        );
    }

    let mut out = String::with_capacity(1024);
    out.push_str(&format!("Here are some strong options for {topic}:\n\n"));
    let style = rng.below(4);
    for (i, brand) in chosen.iter().enumerate() {
        let praise = rng.pick(PRAISE).copied().unwrap_or_default();
        let caveat = if rng.chance(0.4) {
            format!(", {}", rng.pick(CAVEATS).copied().unwrap_or_default())
        } else {
            String::new()
        };
        match style {
            0 => {
                let name = spelling(rng, brand, false);
                out.push_str(&format!("{}. **{name}** – {praise}{caveat}.\n", i + 1));
            }
            1 => {
                let name = spelling(rng, brand, false);
                out.push_str(&format!("- **{name}**: {praise}{caveat}.\n"));
            }
            2 => {
                let name = spelling(rng, brand, false);
                out.push_str(&format!(
                    "### {}. {name}\n{name} {praise}{caveat}.\n\n",
                    i + 1
                ));
            }
            _ => {
                let name = spelling(rng, brand, true);
                let lead = if name.ends_with("'s") {
                    format!("{name} platform {praise}")
                } else {
                    format!("{name} {praise}")
                };
                out.push_str(&format!("{lead}{caveat}. "));
                if rng.chance(0.5) {
                    out.push('\n');
                    out.push('\n');
                }
            }
        }
        if rng.chance(0.08) {
            let domain: String = brand
                .name
                .to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric())
                .collect();
            out.push_str(&format!(
                "See https://www.{domain}.com/pricing for current plans.\n"
            ));
        }
    }
    out.push('\n');
    if let Some(favourite) = chosen.first().filter(|_| rng.chance(0.3)) {
        let name = spelling(rng, favourite, false);
        out.push_str(&format!(
            "If you want one all-in-one option, {name} is hard to beat. "
        ));
    }
    out.push_str(rng.pick(CLOSINGS).copied().unwrap_or_default());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::BrandName;

    fn request(i: u32) -> CompletionRequest {
        CompletionRequest {
            prompt: "Best CRM for startups?".into(),
            model: String::new(),
            temperature: 0.7,
            max_tokens: None,
            system_prompt: None,
            sample_index: i,
        }
    }

    fn sim(seed: u64) -> SimulatedProvider {
        let target = Brand::new(BrandName::parse("HubSpot").unwrap());
        let competitors: Vec<Brand> = ["Salesforce", "Pipedrive", "Zoho CRM"]
            .iter()
            .map(|n| Brand::new(BrandName::parse(n).unwrap()))
            .collect();
        SimulatedProvider::new(SimulatedConfig::for_brands(seed, &target, &competitors))
    }

    #[tokio::test]
    async fn same_seed_same_answers_and_labelled() {
        let (a, b) = (sim(1), sim(1));
        for i in 0..20 {
            assert_eq!(a.answer(&request(i)), b.answer(&request(i)));
        }
        let c = a.complete(&request(0)).await.unwrap();
        assert_eq!(c.model, SIMULATED_MODEL);
        assert!(c.output_tokens > 0);
        assert_eq!(a.kind(), ProviderKind::Simulated);
    }

    #[test]
    fn answers_vary_and_mention_rates_follow_probabilities() {
        let s = sim(3);
        let texts: Vec<String> = (0..400).map(|i| s.answer(&request(i))).collect();
        let distinct: std::collections::HashSet<&String> = texts.iter().collect();
        assert!(
            distinct.len() > 300,
            "answers should vary: {}",
            distinct.len()
        );
        for brand in &s.config().brands {
            let hits = texts
                .iter()
                .filter(|t| t.to_lowercase().contains(&brand.name.to_lowercase()))
                .count() as f64;
            let rate = hits / texts.len() as f64;
            assert!(
                (rate - brand.mention_probability).abs() < 0.1,
                "{}: {rate} vs {}",
                brand.name,
                brand.mention_probability
            );
        }
    }

    #[tokio::test]
    async fn injected_failures_happen_at_the_configured_rate() {
        let mut config = sim(5).config().clone();
        config.failure_rate = 0.5;
        let s = SimulatedProvider::new(config);
        let mut failures = 0;
        for i in 0..200 {
            if let Err(e) = s.complete(&request(i)).await {
                assert!(e.is_retryable());
                failures += 1;
            }
        }
        assert!((70..130).contains(&failures), "{failures}");
    }
}
