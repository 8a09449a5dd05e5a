//! Reading a run back: its answers with every matched span (so each number can be audited
//! against the text), and the progress of an experiment's latest execution.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use super::ServiceError;
use crate::analysis::BrandMatcher;
use crate::model::{
    BatchRun, BatchRunId, BatchRunStatus, Brand, BrandMention, Experiment, ExperimentId,
    ExperimentStatus, Iteration, IterationId, ProviderKind, Timestamp, UserId, ValidationError,
};
use crate::store::{DynStore, ExperimentStore, Page, PageSize, RunStore, StoreError};

/// Position in a run's answers (ascending by iteration index): the index the next page starts
/// at. Clients see it as an opaque string ([`AnswerCursor::encode`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AnswerCursor {
    next_index: u32,
}

impl AnswerCursor {
    /// The cursor that continues after the answer with index `index`; `None` after the last
    /// representable index (no answer can follow it).
    pub fn after(index: u32) -> Option<Self> {
        index.checked_add(1).map(|next_index| Self { next_index })
    }

    /// The opaque string form.
    pub fn encode(&self) -> String {
        format!("i{:x}", self.next_index)
    }

    /// Parses [`AnswerCursor::encode`]'s output.
    pub fn decode(s: &str) -> Result<Self, ValidationError> {
        s.strip_prefix('i')
            .filter(|hex| !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|hex| u32::from_str_radix(hex, 16).ok())
            .map(|next_index| Self { next_index })
            .ok_or_else(|| ValidationError::new("cursor", "is not a valid cursor"))
    }
}

/// Which page of a run's answers to read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AnswerQuery {
    /// Continue from this cursor; `None`: the first page.
    pub after: Option<AnswerCursor>,
    /// Answers per page.
    pub limit: PageSize,
}

/// One matched span of an answer: where it is, which brand it counted for, and through which
/// spelling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnswerSpan {
    /// First byte in the answer (UTF-8; a char boundary).
    pub start: usize,
    /// One past the last byte (a char boundary).
    pub end: usize,
    /// The same start counted in Unicode scalar values (what JavaScript's `Array.from(text)`
    /// indexes; not UTF-16 units).
    pub char_start: usize,
    /// The same end counted in Unicode scalar values.
    pub char_end: usize,
    /// Canonical name of the brand the span counted for.
    pub brand: String,
    /// The configured alias that matched; `None` when the brand's own name matched.
    pub alias: Option<String>,
    /// Whether the brand is the experiment's target (otherwise a competitor).
    pub is_target: bool,
}

/// One answer of a run, with its spans.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Answer {
    /// The iteration's id.
    pub id: IterationId,
    /// 0-based index within the run.
    pub index: u32,
    /// For an experiment that runs a prompt set: the 0-based index of the phrasing this
    /// answer responds to (see [`Experiment::phrasing_of`]).
    pub phrasing: Option<u32>,
    /// The provider asked.
    pub provider: ProviderKind,
    /// The model requested.
    pub model: String,
    /// When the answer was stored.
    pub created_at: Timestamp,
    /// Whether the provider answered.
    pub success: bool,
    /// Why the call failed, when it did.
    pub error: Option<String>,
    /// The answer as stored (after redaction, when the server redacts); `None` for a failed
    /// call or once retention anonymized it.
    pub text: Option<String>,
    /// Whether the retention policy erased the text. The stored mention summary stays, so the
    /// run's numbers still add up, but the spans cannot be shown.
    pub anonymized: bool,
    /// The compact per-brand summary stored when the answer was analysed (what the run's
    /// metrics were computed from); empty for failed calls.
    pub mentions: Vec<BrandMention>,
    /// Every matched span of [`Answer::text`], in text order; empty without text.
    pub spans: Vec<AnswerSpan>,
}

/// Progress of one batch run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunProgress {
    /// The run.
    pub run_id: BatchRunId,
    /// Its provider.
    pub provider: ProviderKind,
    /// Iterations recorded so far (successful or not).
    pub completed: u32,
    /// Iterations planned.
    pub total: u32,
    /// The run's status.
    pub status: BatchRunStatus,
}

impl RunProgress {
    fn of(run: &BatchRun) -> Self {
        Self {
            run_id: run.id,
            provider: run.provider,
            completed: run.iterations_recorded,
            total: run.iterations_planned,
            status: run.status,
        }
    }
}

/// Progress of an experiment's latest execution, read from the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExperimentProgress {
    /// The experiment.
    pub experiment_id: ExperimentId,
    /// Its status.
    pub status: ExperimentStatus,
    /// The newest run of each provider, ordered by provider name.
    pub runs: Vec<RunProgress>,
}

impl ExperimentProgress {
    /// Whether nothing is queued or running any more: the runs shown are final.
    pub fn is_done(&self) -> bool {
        !self.status.is_active()
    }
}

/// Reads runs back for their owner: another user's experiment or run is
/// [`StoreError::NotFound`], as a missing one is.
#[derive(Debug, Clone)]
pub struct RunService {
    experiments: Arc<dyn ExperimentStore>,
    runs: Arc<dyn RunStore>,
}

impl RunService {
    /// A service over the two store parts it uses.
    pub fn new(experiments: Arc<dyn ExperimentStore>, runs: Arc<dyn RunStore>) -> Self {
        Self { experiments, runs }
    }

    /// A service over a whole store.
    pub fn from_store(store: &Arc<DynStore>) -> Self {
        Self::new(store.clone(), store.clone())
    }

    /// One page of the answers of `owner`'s run `run` of experiment `experiment`, ascending by
    /// index, with `next_cursor` set when more follow. Paging with the returned cursors visits
    /// every stored iteration once, also while the run is still recording (later answers
    /// appear on later pages).
    ///
    /// The stored mentions keep only a count and the first offset per brand, so the spans are
    /// found again by running the experiment's [`BrandMatcher`] (the extraction that produced
    /// the stored mentions) over the stored text. Where the server redacts answers before
    /// storing them, this is the redacted text, and a span that lay inside a redacted part
    /// is not found again (the stored mentions still count it).
    ///
    /// Errors: `NotFound` when the experiment is not the owner's, or the run is not one of
    /// its runs; [`ServiceError::Matcher`] when the brands cannot be indexed (which validated
    /// experiments never reach).
    pub async fn answers(
        &self,
        owner: UserId,
        experiment: ExperimentId,
        run: BatchRunId,
        query: AnswerQuery,
    ) -> Result<Page<Answer, AnswerCursor>, ServiceError> {
        let experiment = self.experiments.get_experiment(owner, experiment).await?;
        let run = self.runs.get_batch_run(owner, run).await?;
        if run.experiment_id != experiment.id {
            return Err(StoreError::not_found("batch run").into());
        }
        let limit = query.limit.get();
        let from = query.after.map_or(0, |c| c.next_index);
        // One more than asked tells whether another page follows.
        let rows = self
            .runs
            .list_iterations(owner, run.id, from, limit.saturating_add(1))
            .await?;
        let matcher = BrandMatcher::new(&experiment.target, &experiment.competitors)?;
        let answers = rows
            .into_iter()
            .map(|it| answer(&experiment, &run, &matcher, it))
            .collect();
        let page = Page::from_overfetch(answers, limit as usize, |a: &Answer| {
            AnswerCursor::after(a.index)
        });
        Ok(Page {
            items: page.items,
            next_cursor: page.next_cursor.flatten(),
        })
    }

    /// The progress of `owner`'s experiment: its status and the newest run of each provider.
    /// `NotFound` when the experiment is not the owner's.
    pub async fn progress(
        &self,
        owner: UserId,
        experiment: ExperimentId,
    ) -> Result<ExperimentProgress, ServiceError> {
        let found = self.experiments.get_experiment(owner, experiment).await?;
        let runs = self.runs.list_batch_runs(owner, experiment).await?;
        // Runs come oldest first, so the last one seen per provider is the newest.
        let mut latest: BTreeMap<&'static str, &BatchRun> = BTreeMap::new();
        for run in &runs {
            latest.insert(run.provider.as_str(), run);
        }
        Ok(ExperimentProgress {
            experiment_id: found.id,
            status: found.status,
            runs: latest.into_values().map(RunProgress::of).collect(),
        })
    }
}

fn answer(
    experiment: &Experiment,
    run: &BatchRun,
    matcher: &BrandMatcher,
    it: Iteration,
) -> Answer {
    let text = if it.is_anonymized {
        None
    } else {
        it.raw_response
    };
    let spans = text
        .as_deref()
        .map(|t| spans(experiment, matcher, t))
        .unwrap_or_default();
    Answer {
        id: it.id,
        index: it.index,
        phrasing: experiment.phrasing_of(it.index),
        provider: run.provider,
        model: run.model.clone(),
        created_at: it.created_at,
        success: it.is_success,
        error: it.error,
        text,
        anonymized: it.is_anonymized,
        mentions: it.mentions.unwrap_or_default(),
        spans,
    }
}

/// Every span the matcher finds in `text`, in text order, with char offsets.
fn spans(experiment: &Experiment, matcher: &BrandMatcher, text: &str) -> Vec<AnswerSpan> {
    let extraction = matcher.extract(text);
    let mut found: Vec<AnswerSpan> = extraction
        .brands
        .iter()
        .flat_map(|hit| {
            hit.spans.iter().map(move |s| AnswerSpan {
                start: s.start,
                end: s.end,
                char_start: 0,
                char_end: 0,
                brand: hit.brand.clone(),
                alias: s.alias.and_then(|i| {
                    alias_spelling(experiment, &hit.brand, i, text.get(s.start..s.end))
                }),
                is_target: hit.is_target,
            })
        })
        .collect();
    found.sort_by_key(|s| s.start);
    // Spans do not overlap, so one walk over the text counts chars up to every offset.
    let (mut chars, mut at) = (0usize, 0usize);
    let mut char_offset = |offset: usize| {
        chars += text.get(at..offset).map_or(0, |t| t.chars().count());
        at = offset;
        chars
    };
    for span in &mut found {
        span.char_start = char_offset(span.start);
        span.char_end = char_offset(span.end);
    }
    found
}

/// The configured spelling of alias `index` of brand `name`. The matcher numbers aliases per
/// brand entry, and an experiment may list one name twice (a competitor repeating the target
/// merges into it), so among the entries of that name the one whose alias spells the matched
/// text wins.
fn alias_spelling(
    experiment: &Experiment,
    name: &str,
    index: u32,
    matched: Option<&str>,
) -> Option<String> {
    let candidates: Vec<&str> = std::iter::once(&experiment.target)
        .chain(&experiment.competitors)
        .filter(|b: &&Brand| b.name.as_str() == name)
        .filter_map(|b| b.aliases.get(index as usize).map(|a| a.as_str()))
        .collect();
    let spelled = |a: &&str| matched.is_some_and(|m| m.to_lowercase() == a.to_lowercase());
    candidates
        .iter()
        .copied()
        .find(spelled)
        .or(candidates.first().copied())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests;
