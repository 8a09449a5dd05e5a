//! The experiment report printed by `echoai run`: one section per provider, as a table for
//! people or JSON for scripts. The JSON fields are documented in the README.

use std::fmt::Write as _;

use echo_core::analysis::{Caveat, ExperimentMetrics, Proportion, ProviderRun, RunMetrics};
use echo_core::model::{BatchRun, BatchRunStatus, Experiment, ExperimentStatus, ProviderKind};
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
    /// One section per provider.
    pub providers: Vec<ProviderSection>,
    /// Across providers: the pooled sample and the unweighted mean of provider visibilities.
    pub overall: Option<ExperimentMetrics>,
}

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
            overall: (!provider_runs.is_empty()).then(|| ExperimentMetrics::new(provider_runs)),
            providers,
        })
    }

    /// The report as an aligned text table.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "Echo report · experiment {}", self.experiment_id);
        let _ = writeln!(
            out,
            "Prompt: {:?} · {} iterations per provider",
            self.prompt, self.iterations
        );
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
            for caveat in &m.caveats {
                let _ = writeln!(out, "  caution: {}", describe_caveat(caveat));
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
        }
        out
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
