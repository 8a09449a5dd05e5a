//! A seeded provider that writes realistic answers without a network or a key.
//!
//! It exists for demos, tests and benchmarks. Its answers look like real assistants' output
//! (markdown numbered lists with bold names, bulleted lists, headings, prose paragraphs,
//! possessives, lower-case and alias spellings, the odd bare URL) and each brand appears with a
//! configurable probability and a tendency to come early or late. Everything is derived from
//! `(seed, sample_index, prompt)`, so the same seed gives the same answers in any execution
//! order. Its [`ProviderKind`] is always [`ProviderKind::Simulated`]: reports label it as such.
//!
//! Answers also cite web sources, as search-backed assistants do: one to four pages from a
//! pool of review and news sites, and each named brand's own site with probability
//! [`SimulatedConfig::own_domain_citation_rate`] (default
//! [`DEFAULT_OWN_DOMAIN_CITATION_RATE`]). Each source has a title and, as its span, the
//! sentence that names the brand it supports. Sources come from their own random stream, so
//! the answer texts are the same as before sources existed.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{
    CitedSource, Completion, CompletionRequest, FinishReason, Provider, ProviderError, SourceSpan,
    normalize_sources,
};
use crate::model::{Brand, ProviderKind};
use crate::rng::{SplitMix64, mix};

/// The model name reported when the request names none.
pub const SIMULATED_MODEL: &str = "echo-simulated-1";

/// How often a simulated answer that names a brand cites the brand's own site, by default:
/// about one answer in four, in the range that studies of AI search citations report for
/// a brand's own domain (it is usually outnumbered by review sites and media).
pub const DEFAULT_OWN_DOMAIN_CITATION_RATE: f64 = 0.25;

/// The random stream sources are drawn from (0 is faults and latency, 1 the answer text).
const SOURCE_STREAM: u64 = 2;

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
    /// The brand's own site (`hubspot.com`); when `None` it is derived from the name (see
    /// [`SimulatedBrand::own_domain`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
}

impl SimulatedBrand {
    /// The brand's own domain: [`domain`](Self::domain) when set, else the name's letters and
    /// digits, lower-cased, plus `.com` ("HubSpot" gives `hubspot.com`, "Zoho CRM"
    /// `zohocrm.com`). `None` for a name with no letter or digit.
    pub fn own_domain(&self) -> Option<String> {
        if let Some(domain) = &self.domain {
            let domain = domain
                .trim()
                .trim_start_matches("www.")
                .to_ascii_lowercase();
            return (!domain.is_empty()).then_some(domain);
        }
        let stem: String = self
            .name
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .collect();
        (!stem.is_empty()).then(|| format!("{stem}.com"))
    }
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
    /// Probability (0..=1) that an answer naming a brand cites the brand's own site; default
    /// [`DEFAULT_OWN_DOMAIN_CITATION_RATE`].
    #[serde(default = "default_own_domain_citation_rate")]
    pub own_domain_citation_rate: f64,
}

fn default_own_domain_citation_rate() -> f64 {
    DEFAULT_OWN_DOMAIN_CITATION_RATE
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
                    domain: None,
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
            own_domain_citation_rate: DEFAULT_OWN_DOMAIN_CITATION_RATE,
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

    /// The sources cited by `text`, the answer to `request`: deterministic in the seed, the
    /// sample index and the prompt, and drawn from a stream of their own.
    pub fn sources(&self, request: &CompletionRequest, text: &str) -> Vec<CitedSource> {
        let mut rng = self.rng_for(request, SOURCE_STREAM);
        let raw = write_sources(
            &mut rng,
            &self.config.brands,
            text,
            &request.prompt,
            self.config.own_domain_citation_rate,
        );
        normalize_sources(text, raw)
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
        let citations = self.sources(request, &text);
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
            citations,
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

/// Review and news sites that search-backed answers cite: host, path prefix, site name.
const REVIEW_SITES: &[(&str, &str, &str)] = &[
    ("www.g2.com", "/articles/", "G2"),
    ("www.capterra.com", "/resources/", "Capterra"),
    ("www.trustradius.com", "/buyer-blog/", "TrustRadius"),
    ("www.techradar.com", "/best/", "TechRadar"),
    ("www.pcmag.com", "/picks/", "PCMag"),
    (
        "www.forbes.com",
        "/advisor/business/software/",
        "Forbes Advisor",
    ),
    ("zapier.com", "/blog/", "Zapier"),
    ("www.theverge.com", "/guides/", "The Verge"),
    ("www.reddit.com", "/r/smallbusiness/comments/", "Reddit"),
    (
        "www.gartner.com",
        "/reviews/market/",
        "Gartner Peer Insights",
    ),
];

/// The byte range of the sentence around byte `at`: from after the previous line break or
/// sentence end (". " not after a list number) to the next one, the full stop included.
fn sentence_around(text: &str, at: usize) -> (usize, usize) {
    let bytes = text.as_bytes();
    let is_stop = |i: usize| {
        bytes.get(i) == Some(&b'.')
            && bytes.get(i + 1) == Some(&b' ')
            && !i
                .checked_sub(1)
                .and_then(|j| bytes.get(j))
                .is_some_and(u8::is_ascii_digit)
    };
    let at = at.min(bytes.len());
    let start = (0..at)
        .rev()
        .find_map(|i| match bytes.get(i) {
            Some(b'\n') => Some(i + 1),
            _ if is_stop(i) => Some(i + 2),
            _ => None,
        })
        .unwrap_or(0);
    let end = (at..bytes.len())
        .find_map(|i| match bytes.get(i) {
            Some(b'\n') => Some(i),
            _ if is_stop(i) => Some(i + 1),
            _ => None,
        })
        .unwrap_or(bytes.len());
    (start, end)
}

/// Where `text` first names `brand` (name or alias, ASCII case-insensitive), in bytes.
fn first_mention(lower: &str, brand: &SimulatedBrand) -> Option<usize> {
    std::iter::once(&brand.name)
        .chain(&brand.aliases)
        .map(|n| n.to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .filter_map(|n| lower.find(&n))
        .min()
}

/// A URL path segment from the prompt: lower-case words joined by `-`.
fn slug(prompt: &str) -> String {
    let words: Vec<String> = prompt
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(8)
        .map(str::to_ascii_lowercase)
        .collect();
    if words.is_empty() {
        "guide".to_owned()
    } else {
        words.join("-")
    }
}

fn write_sources(
    rng: &mut SplitMix64,
    brands: &[SimulatedBrand],
    text: &str,
    prompt: &str,
    own_rate: f64,
) -> Vec<CitedSource> {
    let lower = text.to_ascii_lowercase();
    let mut named: Vec<(usize, &SimulatedBrand)> = brands
        .iter()
        .filter_map(|b| Some((first_mention(&lower, b)?, b)))
        .collect();
    named.sort_by_key(|(at, _)| *at);
    let sentence = |at: usize| {
        let (start, end) = sentence_around(text, at);
        SourceSpan::from_bytes(start, end)
    };
    let heading = prompt.trim().trim_end_matches(['?', '.', '!']).trim();
    let heading = if heading.is_empty() {
        "Buyer's guide"
    } else {
        heading
    };
    let slug = slug(prompt);

    // (position in the answer, source): sources are listed in the order of what they support.
    let mut cited: Vec<(usize, CitedSource)> = Vec::new();
    let reviews = 1 + rng.below(4);
    let mut sites: Vec<&(&str, &str, &str)> = REVIEW_SITES.iter().collect();
    for _ in 0..reviews {
        if sites.is_empty() {
            break;
        }
        let (host, path, site) = sites.remove(rng.below(sites.len()));
        let mut source = CitedSource::from_url(format!("https://{host}{path}{slug}"))
            .with_title(format!("{heading} | {site}"));
        let mut at = text.len();
        if let Some(&(mention, _)) = rng.pick(&named) {
            at = mention;
            source.spans.extend(sentence(mention));
        }
        cited.push((at, source));
    }
    for &(mention, brand) in &named {
        if !rng.chance(own_rate) {
            continue;
        }
        let Some(domain) = brand.own_domain() else {
            continue;
        };
        let (path, title) = if rng.chance(0.5) {
            ("/", format!("{} | Official site", brand.name))
        } else {
            ("/pricing", format!("{} pricing and plans", brand.name))
        };
        let mut source =
            CitedSource::from_url(format!("https://www.{domain}{path}")).with_title(title);
        source.spans.extend(sentence(mention));
        cited.push((mention, source));
    }
    cited.sort_by_key(|(at, _)| *at);
    cited.into_iter().map(|(_, source)| source).collect()
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
    async fn sources_are_deterministic_and_leave_the_answer_unchanged() {
        let (a, b) = (sim(11), sim(11));
        let mut differing = 0;
        for i in 0..50 {
            let ca = a.complete(&request(i)).await.unwrap();
            let cb = b.complete(&request(i)).await.unwrap();
            assert_eq!(ca.citations, cb.citations);
            // Sources come from their own stream: the text is what `answer` always gave.
            assert_eq!(ca.text, a.answer(&request(i)));
            assert!(!ca.citations.is_empty());
            assert_eq!(
                super::super::normalize_sources(&ca.text, ca.citations.clone()),
                ca.citations
            );
            let next = a.complete(&request(i + 1)).await.unwrap();
            differing += usize::from(next.citations != ca.citations);
        }
        assert!(differing > 40, "sources should vary by sample: {differing}");
    }

    #[test]
    fn own_domains_are_derived_or_configured() {
        let brand = |name: &str, domain: Option<&str>| SimulatedBrand {
            name: name.into(),
            aliases: Vec::new(),
            mention_probability: 1.0,
            prominence: 0.5,
            domain: domain.map(str::to_owned),
        };
        assert_eq!(
            brand("HubSpot", None).own_domain().as_deref(),
            Some("hubspot.com")
        );
        assert_eq!(
            brand("Zoho CRM", None).own_domain().as_deref(),
            Some("zohocrm.com")
        );
        assert_eq!(
            brand("Zoho CRM", Some("www.Zoho.com"))
                .own_domain()
                .as_deref(),
            Some("zoho.com")
        );
        assert_eq!(brand("Ωμέγα", None).own_domain(), None);
    }

    /// Over many answers, the share of answers naming a brand that cite its own site is the
    /// configured rate, and every own-site source supports a sentence that names the brand.
    #[test]
    fn own_domain_citation_rate_follows_the_setting() {
        for rate in [DEFAULT_OWN_DOMAIN_CITATION_RATE, 0.7, 0.0] {
            let mut config = sim(21).config().clone();
            config.own_domain_citation_rate = rate;
            let s = SimulatedProvider::new(config);
            let (mut named, mut cited) = (0u32, 0u32);
            for i in 0..1500 {
                let req = request(i);
                let text = s.answer(&req);
                let sources = s.sources(&req, &text);
                let lower = text.to_ascii_lowercase();
                for brand in &s.config().brands {
                    if first_mention(&lower, brand).is_none() {
                        continue;
                    }
                    named += 1;
                    let domain = brand.own_domain().unwrap();
                    let own: Vec<&CitedSource> = sources
                        .iter()
                        .filter(|c| c.url.starts_with(&format!("https://www.{domain}/")))
                        .collect();
                    assert!(own.len() <= 1);
                    if let Some(source) = own.first() {
                        cited += 1;
                        let sentence = source.spans[0].slice(&text).unwrap().to_lowercase();
                        let names = std::iter::once(&brand.name).chain(&brand.aliases);
                        assert!(
                            names
                                .into_iter()
                                .any(|n| sentence.contains(&n.to_lowercase())),
                            "{sentence:?} does not name {}",
                            brand.name
                        );
                        assert!(source.title.as_deref().unwrap().contains(&brand.name));
                    }
                }
            }
            let observed = f64::from(cited) / f64::from(named);
            // n is in the thousands: 0.04 is over four standard errors at any rate.
            assert!(
                (observed - rate).abs() < 0.04,
                "rate {rate}: observed {observed} over {named} answers naming a brand"
            );
        }
    }

    #[test]
    fn review_sources_come_from_the_pool_with_titles() {
        let s = sim(4);
        for i in 0..200 {
            let req = request(i);
            let text = s.answer(&req);
            let sources = s.sources(&req, &text);
            let reviews: Vec<&CitedSource> = sources
                .iter()
                .filter(|c| REVIEW_SITES.iter().any(|(host, ..)| c.url.contains(host)))
                .collect();
            assert!((1..=4).contains(&reviews.len()), "{sources:?}");
            for r in reviews {
                assert!(r.url.ends_with("best-crm-for-startups"), "{}", r.url);
                assert!(
                    r.title
                        .as_deref()
                        .unwrap()
                        .starts_with("Best CRM for startups | ")
                );
            }
        }
    }

    #[test]
    fn sentences_are_cut_at_stops_and_line_breaks() {
        let text = "Intro line.\n1. **HubSpot** – fast. Then more. Pipedrive is good.\nEnd";
        let at = text.find("HubSpot").unwrap();
        let (start, end) = sentence_around(text, at);
        // A list number is not a sentence end: the item is the sentence.
        assert_eq!(&text[start..end], "1. **HubSpot** – fast.");
        let at = text.find("Pipedrive").unwrap();
        let (start, end) = sentence_around(text, at);
        assert_eq!(&text[start..end], "Pipedrive is good.");
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
