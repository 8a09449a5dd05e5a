//! What a batch run stores as its metrics: the run's metrics, the GEO word-count metrics and
//! the reproducibility record, computed from the stored iterations (so a resumed run's numbers
//! include the answers of every attempt).

use std::collections::BTreeSet;

use super::RunError;
use super::batch::{BatchContext, IterationPages};
use crate::analysis::{
    AnswerPawc, AnswerRecord, BrandMatcher, PawcSummary, PromptSetMetrics, Proportion,
    ReproducibilityRecord, RunMetrics, position_adjusted_word_count,
};
use crate::model::{BatchRun, BatchRunMetrics};

pub(super) struct Summary {
    pub metrics: BatchRunMetrics,
    pub visibility_rate: Option<f64>,
}

pub(super) async fn summarize(
    ctx: &BatchContext<'_>,
    run: &BatchRun,
    matcher: &BrandMatcher,
    models: BTreeSet<String>,
) -> Result<Summary, RunError> {
    let set = ctx.experiment.prompt_set.as_ref();
    // A set is branded when any phrasing names a tracked brand.
    let branded = match set {
        Some(s) => s.prompts.iter().any(|p| matcher.is_branded(p.as_str())),
        None => matcher.is_branded(ctx.experiment.prompt.as_str()),
    };
    let mut per_phrasing: Vec<Vec<RunMetrics>> =
        vec![Vec::new(); set.map_or(0, |s| s.prompts.len())];
    let mut pages = Vec::new();
    let mut pawc: Vec<AnswerPawc> = Vec::new();
    let mut record = ReproducibilityRecord::new(
        ctx.provider_config,
        ctx.config.system_prompt.as_deref(),
        ctx.experiment.prompt.as_str(),
    );
    record.models_reported = models.into_iter().collect();
    let mut iterations = IterationPages::new(run);
    while let Some(page) = iterations.next(ctx).await? {
        // Per-page metrics pool exactly (counts add up), so pages never need to coexist.
        pages.push(RunMetrics::compute(
            matcher.brands(),
            branded,
            page.iter().map(AnswerRecord::from_iteration),
        ));
        if let Some(s) = set {
            for (k, pages) in per_phrasing.iter_mut().enumerate() {
                let answers = page
                    .iter()
                    .filter(|it| s.phrasing_of(it.index) as usize == k)
                    .map(AnswerRecord::from_iteration);
                pages.push(RunMetrics::compute(matcher.brands(), branded, answers));
            }
        }
        for it in &page {
            record.record_answer(it.index, None, it.raw_response.as_deref());
            if let Some(text) = it.raw_response.as_deref().filter(|_| it.is_success) {
                pawc.push(position_adjusted_word_count(text, &matcher.extract(text)));
            }
        }
    }
    let metrics = if pages.is_empty() {
        RunMetrics::compute(matcher.brands(), branded, std::iter::empty())
    } else {
        RunMetrics::pooled(&pages)
    };
    let prompt_set = set.map(|s| {
        let visibility = per_phrasing
            .iter()
            .map(|pages| {
                RunMetrics::pooled(pages)
                    .target()
                    .map_or(Proportion::new(0, 0), |t| t.visibility)
            })
            .collect();
        PromptSetMetrics::new(s, visibility)
    });
    let stored = BatchRunMetrics {
        word_count: PawcSummary::mean(matcher.brands(), &pawc),
        metrics,
        reproducibility: record,
        prompt_set,
    };
    let visibility_rate = stored.metrics.target().and_then(|t| t.visibility.rate);
    Ok(Summary {
        metrics: stored,
        visibility_rate,
    })
}
