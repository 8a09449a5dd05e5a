//! The experiment report printed by `echoai run`: one section per provider, as a table for
//! people or JSON for scripts. The JSON fields are documented in the README.

use std::fmt::Write as _;

use echo_core::analysis::{
    Caveat, ExperimentMetrics, PromptSetMetrics, Proportion, ProviderRun, RunMetrics, SourceMetrics,
};
use echo_core::model::{BatchRun, BatchRunStatus, Experiment, ExperimentStatus, ProviderKind};
use echo_core::service::ExperimentSources;
use serde::Serialize;

use crate::commands::CliError;

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The experiment's id.
    pub experiment_id: String,
    /// Final status of the experiment.
    pub status: ExperimentStatus,
    /// The prompt sent.
    pub prompt: String,
    /// The brand measured.
    pub target: String,
    /// The competitors measured alongside.
    pub competitors: Vec<String>,
    /// Samples per provider.
    pub iterations: u32,
    /// Whether the prompt itself names the target (which inflates visibility).
    pub branded_prompt: bool,
    /// The prompt set version the experiment runs, when it runs one: every figure of the
    /// report comes from this version's phrasings.
    pub prompt_set: Option<PromptSetLabel>,
    /// One section per provider.
    pub providers: Vec<ProviderSection>,
    /// Across providers: the pooled sample and the unweighted mean of provider visibilities.
    pub overall: Option<ExperimentMetrics>,
    /// The web sources the answers cite: per run and pooled (absent when not read).
    pub sources: Option<ExperimentSources>,
}

/// The prompt set version a report covers.
#[derive(Debug, Clone, Serialize)]
pub struct PromptSetLabel {
    /// The set's id.
    pub id: String,
    /// The version pinned.
    pub version: u32,
    /// Its name.
    pub name: String,
    /// Its phrasings, in order (the index of `per_prompt` rows).
    pub prompts: Vec<String>,
    /// Answers per phrasing per provider.
    pub iterations_per_prompt: u32,
}
/// Domains listed per table in the text report (the JSON has them all).
const TOP_DOMAINS: usize = 5;

/// One provider's part of the report.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderSection {
    /// The service.
    pub provider: ProviderKind,
    /// True for the seeded simulator: its answers are synthetic.
    pub simulated: bool,
    /// Model requested.
    pub model: String,
    /// Models the API reported.
    pub models_reported: Vec<String>,
    /// The batch run's id.
    pub batch_run_id: String,
    /// Its final status.
    pub status: BatchRunStatus,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// Iterations planned.
    pub planned: u32,
    /// Iterations stored.
    pub recorded: u32,
    /// Cost in US dollars (0 for unpriced models and the simulator).
    pub cost_usd: f64,
    /// The run's metrics (absent when the run stored none).
    pub metrics: Option<RunMetrics>,
    /// With a prompt set: the target's visibility per phrasing and pooled over the set with
    /// its cluster-robust interval.
    pub prompt_set: Option<PromptSetMetrics>,
}

impl Report {
    /// Builds the report from the stored experiment and its batch runs.
    pub fn new(experiment: &Experiment, runs: &[BatchRun]) -> Result<Self, CliError> {
        let mut providers = Vec::with_capacity(runs.len());
        let mut provider_runs = Vec::new();
        let mut branded_prompt = false;
        for run in runs {
            let stored = run.metrics.as_ref();
            if let Some(s) = &stored {
                branded_prompt |= s.metrics.branded_prompt;
                provider_runs.push(ProviderRun {
                    provider: run.provider,
                    model: run.model.clone(),
                    metrics: s.metrics.clone(),
                });
            }
            providers.push(ProviderSection {
                provider: run.provider,
                simulated: run.provider == ProviderKind::Simulated,
                model: run.model.clone(),
                models_reported: stored
                    .as_ref()
                    .map(|s| s.reproducibility.models_reported.clone())
                    .unwrap_or_default(),
                batch_run_id: run.id.to_string(),
                status: run.status,
                error: run.error.clone(),
                planned: run.iterations_planned,
                recorded: run.iterations_recorded,
                cost_usd: run.cost_micros_usd as f64 / 1e6,
                metrics: stored.map(|s| s.metrics.clone()),
                prompt_set: stored.and_then(|s| s.prompt_set.clone()),
            });
        }
        Ok(Self {
            experiment_id: experiment.id.to_string(),
            status: experiment.status,
            prompt: experiment.prompt.as_str().to_owned(),
            target: experiment.target.name.as_str().to_owned(),
            competitors: experiment
                .competitors
                .iter()
                .map(|c| c.name.as_str().to_owned())
                .collect(),
            iterations: experiment.iterations.get(),
            branded_prompt,
            prompt_set: experiment.prompt_set.as_ref().map(|s| PromptSetLabel {
                id: s.set_id.to_string(),
                version: s.version,
                name: s.name.as_str().to_owned(),
                prompts: s.prompts.iter().map(|p| p.as_str().to_owned()).collect(),
                iterations_per_prompt: s.iterations_per_prompt,
            }),
            overall: (!provider_runs.is_empty()).then(|| ExperimentMetrics::new(provider_runs)),
            providers,
            sources: None,
        })
    }

    /// The report with the experiment's cited-source metrics.
    pub fn with_sources(mut self, sources: ExperimentSources) -> Self {
        self.sources = Some(sources);
        self
    }

    fn run_sources(&self, batch_run_id: &str) -> Option<&SourceMetrics> {
        self.sources
            .as_ref()?
            .runs
            .iter()
            .find(|r| r.run_id.to_string() == batch_run_id)
            .map(|r| &r.metrics)
    }

    /// The report as an aligned text table.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "Echo report · experiment {}", self.experiment_id);
        match &self.prompt_set {
            Some(set) => {
                let _ = writeln!(
                    out,
                    "Prompt set: {:?} version {} · {} phrasings × {} iterations per provider",
                    set.name,
                    set.version,
                    set.prompts.len(),
                    set.iterations_per_prompt
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "Prompt: {:?} · {} iterations per provider",
                    self.prompt, self.iterations
                );
            }
        }
        if self.branded_prompt {
            let _ = writeln!(
                out,
                "Note: the prompt names {} itself, which inflates its visibility.",
                self.target
            );
        }
        for p in &self.providers {
            let _ = writeln!(out);
            let label = if p.simulated {
                format!(
                    "{} · {} [SIMULATED: synthetic answers, not a real model]",
                    p.provider, p.model
                )
            } else {
                format!(
                    "{} · {}",
                    p.provider,
                    p.models_reported.first().unwrap_or(&p.model)
                )
            };
            let _ = writeln!(out, "{label}");
            if let Some(error) = &p.error {
                let _ = writeln!(out, "  run {}: {error}", p.status);
            }
            let Some(m) = &p.metrics else {
                let _ = writeln!(out, "  no metrics stored");
                continue;
            };
            let _ = writeln!(
                out,
                "  {} answers ({} failed) · {} named a tracked brand ({}) · cost ${:.4}",
                m.n,
                m.failures,
                m.informative.successes,
                pct(m.informative.rate),
                p.cost_usd
            );
            write_brand_table(&mut out, m, &self.target);
            if let (Some(ps), Some(set)) = (&p.prompt_set, &self.prompt_set) {
                write_prompt_rows(&mut out, ps, set, &self.target);
            }
            for caveat in &m.caveats {
                let _ = writeln!(out, "  caution: {}", describe_caveat(caveat));
            }
            if let Some(sources) = self.run_sources(&p.batch_run_id) {
                write_sources(&mut out, sources);
            }
        }
        if let Some(overall) = self.overall.as_ref().filter(|_| self.providers.len() > 1) {
            let _ = writeln!(out);
            let _ = writeln!(out, "All providers pooled");
            write_brand_table(&mut out, &overall.pooled, &self.target);
            if let Some(mean) = overall.provider_mean_visibility {
                let _ = writeln!(
                    out,
                    "  {} visibility, mean over providers (each provider weighs the same): {}",
                    self.target,
                    pct(Some(mean))
                );
            }
            if let Some(sources) = &self.sources {
                write_sources(&mut out, &sources.pooled);
            }
        }
        out
    }
}

/// The cited-source lines of one section: totals, the owned domain's rate, the top domains.
fn write_sources(out: &mut String, m: &SourceMetrics) {
    if m.citations == 0 {
        let _ = writeln!(out, "  Sources: none cited in {} answers", m.n);
        return;
    }
    let _ = writeln!(
        out,
        "  Sources: {} citations in {}/{} answers",
        m.citations, m.answers_with_sources, m.n
    );
    if let (Some(domain), Some(rate)) = (&m.owned_domain, &m.owned_citation_rate) {
        let _ = writeln!(
            out,
            "  Own domain {domain} cited in {} {}",
            fraction(rate),
            interval(rate)
        );
    }
    let _ = writeln!(
        out,
        "  {:<28} {:>16} {:>16} {:>8} {:>8} {:>8}",
        "Domain", "Cited by", "95% CI", "Share", "Words", "PAWC"
    );
    for d in m.top_domains(TOP_DOMAINS) {
        let owned = if d.is_owned { " (own)" } else { "" };
        let _ = writeln!(
            out,
            "  {:<28} {:>16} {:>16} {:>8} {:>8} {:>8}",
            format!("{}{owned}", d.domain),
            fraction(&d.citation_rate),
            interval(&d.citation_rate),
            pct(d.citation_share),
            pct(d.word_impression),
            pct(d.position_adjusted_impression)
        );
    }
    if m.domains.len() > TOP_DOMAINS {
        let _ = writeln!(
            out,
            "  … and {} more domains (--json lists them all)",
            m.domains.len() - TOP_DOMAINS
        );
    }
}

fn write_brand_table(out: &mut String, m: &RunMetrics, target: &str) {
    let name_width = m
        .brands
        .iter()
        .map(|b| b.brand.chars().count() + if b.is_target { 2 } else { 0 })
        .max()
        .unwrap_or(5)
        .max(5);
    let _ = writeln!(
        out,
        "  {:<name_width$}  {:>16}  {:>15}  {:>8}  {:>8}  {:>8}  {:>11}",
        "brand", "visibility", "95% CI", "SoV(m)", "SoV(a)", "avg rank", "first place"
    );
    for b in &m.brands {
        let name = if b.is_target || b.brand == target {
            format!("{} *", b.brand)
        } else {
            b.brand.clone()
        };
        let _ = writeln!(
            out,
            "  {:<name_width$}  {:>16}  {:>15}  {:>8}  {:>8}  {:>8}  {:>11}",
            name,
            fraction(&b.visibility),
            interval(&b.visibility),
            pct(b.mention_share_of_voice),
            pct(b.answer_share_of_voice),
            b.average_rank.map_or("–".to_owned(), |r| format!("{r:.2}")),
            pct(b.first_place.rate),
        );
    }
    let _ = writeln!(
        out,
        "  * target · SoV(m): share of brand mentions · SoV(a): share of answers naming any tracked brand"
    );
}

/// The target's visibility per phrasing, then pooled over the set with both intervals.
fn write_prompt_rows(out: &mut String, m: &PromptSetMetrics, set: &PromptSetLabel, target: &str) {
    let _ = writeln!(
        out,
        "  {target} visibility per phrasing (set {:?} v{}):",
        m.name, m.version
    );
    for (i, p) in m.per_prompt.iter().enumerate() {
        let text: String = set
            .prompts
            .get(i)
            .map(|t| t.chars().take(48).collect())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {:>3}. {:<48}  {:>16}  {:>15}",
            i + 1,
            text,
            fraction(p),
            interval(p)
        );
    }
    let pooled = &m.pooled;
    let ci = |c: Option<echo_core::analysis::Interval>| {
        c.map_or("–".to_owned(), |ci| {
            format!("[{:.1}, {:.1}]%", ci.lower * 100.0, ci.upper * 100.0)
        })
    };
    let _ = writeln!(
        out,
        "  pooled over {} phrasings: {} · 95% CI {} (cluster-robust; naive binomial {}) · design effect {}",
        pooled.prompts,
        pct(pooled.rate),
        ci(pooled.ci95),
        ci(pooled.naive_ci95),
        pooled
            .design_effect
            .map_or("–".to_owned(), |d| format!("{d:.2}")),
    );
}

fn pct(x: Option<f64>) -> String {
    x.map_or("–".to_owned(), |v| format!("{:.1}%", v * 100.0))
}

fn fraction(p: &Proportion) -> String {
    format!("{}/{} {}", p.successes, p.n, pct(p.rate))
}

fn interval(p: &Proportion) -> String {
    p.ci95.map_or("–".to_owned(), |ci| {
        format!("[{:.1}, {:.1}]%", ci.lower * 100.0, ci.upper * 100.0)
    })
}

fn describe_caveat(caveat: &Caveat) -> String {
    match caveat {
        Caveat::NoAnswers => "no successful answers: every rate is undefined".to_owned(),
        Caveat::FewInformativeAnswers { informative, n } => format!(
            "only {informative} of {n} answers name any tracked brand; share of voice and rank rest on few answers"
        ),
        Caveat::BrandedPrompt => {
            "the prompt names the target: report it apart from non-branded prompts".to_owned()
        }
        Caveat::Unanalysed { count } => {
            format!("{count} answers were not analysed and are left out of every rate")
        }
        _ => "see the JSON output".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use echo_core::analysis::{AnswerRecord, TrackedBrands};
    use echo_core::model::BrandMention;

    use super::*;

    fn mention(brand: &str, rank: u32) -> BrandMention {
        BrandMention {
            brand: brand.to_owned(),
            count: 1,
            first_offset: 0,
            rank,
            list_position: None,
        }
    }

    fn section(provider: ProviderKind, metrics: Option<RunMetrics>) -> ProviderSection {
        ProviderSection {
            provider,
            simulated: provider == ProviderKind::Simulated,
            model: "requested-model".to_owned(),
            models_reported: Vec::new(),
            batch_run_id: "run".to_owned(),
            status: BatchRunStatus::Completed,
            error: None,
            planned: 6,
            recorded: 6,
            cost_usd: 0.0,
            metrics,
            prompt_set: None,
        }
    }

    /// Two providers with metrics (one simulated, one real that failed part-way), one whose
    /// answers all failed and one that stored no metrics, for a branded prompt.
    fn report() -> Report {
        let brands = TrackedBrands::from_names("HubSpot", ["Salesforce"]);
        let both = [mention("HubSpot", 1), mention("Salesforce", 2)];
        let hubspot = [mention("HubSpot", 1)];
        let salesforce = [mention("Salesforce", 1)];
        let simulated = RunMetrics::compute(
            &brands,
            true,
            [
                AnswerRecord::Analysed(&both),
                AnswerRecord::Analysed(&hubspot),
                AnswerRecord::Analysed(&salesforce),
                AnswerRecord::Analysed(&[]),
                AnswerRecord::Failed,
                AnswerRecord::Unanalysed,
            ],
        );
        let openai = RunMetrics::compute(
            &brands,
            true,
            [AnswerRecord::Analysed(&[]), AnswerRecord::Analysed(&[])],
        );
        let all_failed = RunMetrics::compute(&brands, true, [AnswerRecord::Failed]);
        let overall = ExperimentMetrics::new(vec![
            ProviderRun {
                provider: ProviderKind::Simulated,
                model: "sim".to_owned(),
                metrics: simulated.clone(),
            },
            ProviderRun {
                provider: ProviderKind::OpenAi,
                model: "gpt-4o-mini".to_owned(),
                metrics: openai.clone(),
            },
        ]);
        let mut real = section(ProviderKind::OpenAi, Some(openai));
        real.models_reported = vec!["gpt-4o-mini-2024-07-18".to_owned()];
        real.status = BatchRunStatus::Failed;
        real.error = Some("rate limited".to_owned());
        real.cost_usd = 0.0123;
        Report {
            experiment_id: "exp-1".to_owned(),
            status: ExperimentStatus::Completed,
            prompt: "Is HubSpot a good CRM?".to_owned(),
            target: "HubSpot".to_owned(),
            competitors: vec!["Salesforce".to_owned()],
            iterations: 6,
            branded_prompt: true,
            prompt_set: None,
            providers: vec![
                section(ProviderKind::Simulated, Some(simulated)),
                real,
                section(ProviderKind::Anthropic, Some(all_failed)),
                section(ProviderKind::Gemini, None),
            ],
            overall: Some(overall),
            sources: None,
        }
    }

    fn lines_after<'a>(table: &'a str, heading: &str) -> Vec<&'a str> {
        table
            .lines()
            .skip_while(|l| !l.starts_with(heading))
            .skip(1)
            .take_while(|l| !l.is_empty())
            .collect()
    }

    #[test]
    fn the_table_has_a_header_the_branded_note_and_one_section_per_provider() {
        let table = report().to_table();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "Echo report · experiment exp-1");
        assert_eq!(
            lines[1],
            "Prompt: \"Is HubSpot a good CRM?\" · 6 iterations per provider"
        );
        assert_eq!(
            lines[2],
            "Note: the prompt names HubSpot itself, which inflates its visibility."
        );

        let sim = lines_after(
            &table,
            "simulated · requested-model [SIMULATED: synthetic answers, not a real model]",
        );
        assert_eq!(
            sim[0],
            "  4 answers (1 failed) · 3 named a tracked brand (75.0%) · cost $0.0000"
        );
        assert!(sim[1].trim_start().starts_with("brand"), "{}", sim[1]);
        let target_row: Vec<&str> = sim[2].split_whitespace().collect();
        assert_eq!(&target_row[..4], ["HubSpot", "*", "2/4", "50.0%"]);
        assert_eq!(target_row.last(), Some(&"50.0%"), "first place in 2 of 4");
        let competitor_row: Vec<&str> = sim[3].split_whitespace().collect();
        assert_eq!(&competitor_row[..3], ["Salesforce", "2/4", "50.0%"]);
        assert!(sim[4].starts_with("  * target · SoV(m)"));
        assert!(
            sim.contains(&"  caution: 1 answers were not analysed and are left out of every rate")
        );
        assert!(sim.contains(
            &"  caution: the prompt names the target: report it apart from non-branded prompts"
        ));
    }

    #[test]
    fn a_real_provider_shows_the_reported_model_its_error_and_its_caveats() {
        let table = report().to_table();
        let real = lines_after(&table, "openai · gpt-4o-mini-2024-07-18");
        assert_eq!(real[0], "  run failed: rate limited");
        assert_eq!(
            real[1],
            "  2 answers (0 failed) · 0 named a tracked brand (0.0%) · cost $0.0123"
        );
        assert!(real.contains(
            &"  caution: only 0 of 2 answers name any tracked brand; share of voice and rank rest on few answers"
        ));

        let failed = lines_after(&table, "anthropic · requested-model");
        let row: Vec<&str> = failed[2].split_whitespace().collect();
        assert_eq!(
            &row[..5],
            ["HubSpot", "*", "0/0", "–", "–"],
            "undefined rates"
        );
        assert!(failed.contains(&"  caution: no successful answers: every rate is undefined"));

        let none = lines_after(&table, "gemini · requested-model");
        assert_eq!(none, ["  no metrics stored"]);
    }

    #[test]
    fn several_providers_add_a_pooled_table_and_the_mean_visibility() {
        let table = report().to_table();
        let pooled = lines_after(&table, "All providers pooled");
        let row: Vec<&str> = pooled[1].split_whitespace().collect();
        assert_eq!(&row[..4], ["HubSpot", "*", "2/6", "33.3%"]);
        assert_eq!(
            pooled.last(),
            Some(
                &"  HubSpot visibility, mean over providers (each provider weighs the same): 25.0%"
            )
        );

        let mut single = report();
        single.providers.truncate(1);
        assert!(!single.to_table().contains("All providers pooled"));
    }

    #[test]
    fn the_json_form_carries_every_section_and_the_overall_metrics() {
        let json = serde_json::to_value(report()).unwrap();
        assert_eq!(json["experiment_id"], "exp-1");
        assert_eq!(json["branded_prompt"], true);
        assert_eq!(json["competitors"], serde_json::json!(["Salesforce"]));
        let providers = json["providers"].as_array().unwrap();
        assert_eq!(providers.len(), 4);
        assert_eq!(providers[0]["simulated"], true);
        assert_eq!(providers[1]["provider"], "openai");
        assert_eq!(providers[1]["status"], "failed");
        assert_eq!(providers[1]["error"], "rate limited");
        assert_eq!(providers[3]["metrics"], serde_json::Value::Null);
        assert_eq!(json["overall"]["provider_mean_visibility"], 0.25);
        assert_eq!(json["overall"]["pooled"]["n"], 6);
    }

    #[test]
    fn cited_sources_show_per_run_and_pooled_with_the_own_domain() {
        use echo_core::analysis::SourceAnswer;
        use echo_core::model::{BatchRunId, ExperimentId, IterationSource};
        use echo_core::service::RunSources;

        let src = |position: u32, domain: &str| IterationSource {
            position,
            url: format!("https://{domain}/"),
            domain: domain.to_owned(),
            title: None,
            spans: vec![],
        };
        let a = [src(1, "hubspot.com"), src(2, "g2.com")];
        let b = [src(1, "g2.com")];
        let answers = [
            SourceAnswer {
                text: "HubSpot is free [1]. Reviews agree [2].",
                sources: &a,
            },
            SourceAnswer {
                text: "Reviews agree [1].",
                sources: &b,
            },
        ];
        let metrics = SourceMetrics::compute(answers, Some("hubspot.com"));
        let run_id = BatchRunId::new();
        let mut r = report();
        r.providers[0].batch_run_id = run_id.to_string();
        let r = r.with_sources(ExperimentSources {
            experiment_id: ExperimentId::new(),
            runs: vec![RunSources {
                run_id,
                provider: ProviderKind::Simulated,
                model: "sim".to_owned(),
                metrics: metrics.clone(),
            }],
            pooled: metrics,
        });
        let table = r.to_table();
        assert_eq!(
            table.matches("Sources: 3 citations in 2/2 answers").count(),
            2,
            "{table}"
        );
        assert!(
            table.contains("Own domain hubspot.com cited in 1/2 50.0%"),
            "{table}"
        );
        let g2 = table
            .lines()
            .find(|l| l.trim_start().starts_with("g2.com"))
            .unwrap();
        assert!(g2.contains("2/2 100.0%") && g2.contains("66.7%"), "{g2}");
        assert!(table.contains("hubspot.com (own)"), "{table}");

        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["sources"]["pooled"]["citations"], 3);
        assert_eq!(
            json["sources"]["runs"][0]["metrics"]["domains"][0]["domain"],
            "g2.com"
        );
        assert_eq!(
            json["sources"]["pooled"]["owned_citation_rate"]["successes"],
            1
        );
    }
}
