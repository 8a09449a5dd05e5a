//! Execution of one batch run (one provider, one execution of an experiment).

use std::borrow::Cow;
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::{ProgressEvent, ProgressFn, ProviderSlot, RunError, RunnerConfig};
use crate::analysis::{BrandMatcher, should_continue};
use crate::model::{
    BatchRun, BatchRunStatus, BatchRunUpdate, Experiment, Iteration, IterationId, IterationSource,
    Precision, ProviderConfig, Timestamp,
};
use crate::provider::{CompletionRequest, PriceTable, ProviderError};
use crate::store::DynStore;

/// How one batch run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Final status.
    pub status: BatchRunStatus,
    /// Iterations that never ran, whose quota is given back.
    pub refunded: u32,
}

pub(super) struct BatchContext<'a> {
    pub store: &'a Arc<DynStore>,
    pub slot: &'a ProviderSlot,
    pub global: &'a Arc<Semaphore>,
    pub config: &'a RunnerConfig,
    pub prices: &'a PriceTable,
    pub experiment: &'a Experiment,
    pub provider_config: &'a ProviderConfig,
    pub cancel: CancellationToken,
    pub stop: CancellationToken,
    /// The hard limit of the whole execution (see `RunOptions::deadline`).
    pub deadline: Option<tokio::time::Instant>,
    pub progress: Option<ProgressFn>,
    /// Redacts personal data from answers before they are stored (extraction sees the
    /// original).
    pub redactor: Option<&'a crate::privacy::Redactor>,
}

enum Stop {
    /// Adaptive sampling reached the requested precision.
    Precise,
    Cancelled,
    /// Abandoned for a later execution to resume.
    Stopped,
    TimedOut,
    HardLimit,
    Permanent(String),
}

struct CallResult {
    iteration: Iteration,
    permanent: Option<ProviderError>,
    model: Option<String>,
}

pub(super) async fn execute(
    ctx: BatchContext<'_>,
    run: BatchRun,
) -> Result<BatchOutcome, RunError> {
    let started_at = run.started_at.unwrap_or_else(Timestamp::now);
    ctx.store
        .update_batch_run(
            run.id,
            &BatchRunUpdate {
                status: BatchRunStatus::Running,
                metrics: None,
                visibility_rate: None,
                cost_micros_usd: run.cost_micros_usd,
                error: None,
                started_at: Some(started_at),
                completed_at: None,
            },
        )
        .await?;
    let done: HashSet<u32> = ctx
        .store
        .recorded_indexes(run.id)
        .await?
        .into_iter()
        .collect();
    // The experiment's own target wins over the server-wide one.
    let precision = ctx
        .experiment
        .precision
        .map(Precision::get)
        .or(ctx.config.precision);
    let mut sample = match precision {
        Some(_) if !done.is_empty() => Sample::from_stored(&ctx, &run).await?,
        _ => Sample::default(),
    };
    emit(
        &ctx,
        ProgressEvent::RunStarted {
            batch_run_id: run.id,
            provider: run.provider,
            planned: run.iterations_planned,
            already_recorded: u32::try_from(done.len()).unwrap_or(u32::MAX),
        },
    );

    let matcher = BrandMatcher::new(&ctx.experiment.target, &ctx.experiment.competitors)?;
    let pending = (0..run.iterations_planned).filter(|i| !done.contains(i));
    // Boxed (not stack-pinned) so it can be dropped early: dropping it cancels the calls in
    // flight and frees their concurrency permits before the summary work below.
    let mut calls = Box::pin(
        futures::stream::iter(pending)
            .map(|index| call_one(&ctx, &matcher, &run, index))
            .buffer_unordered(ctx.config.provider_concurrency.max(1)),
    );

    let deadline = ctx
        .config
        .run_timeout
        .map(|d| tokio::time::Instant::now() + d);
    let write_batch = ctx.config.write_batch.max(1);
    let mut buffer: Vec<Iteration> = Vec::with_capacity(write_batch);
    let mut models = BTreeSet::new();
    let mut stop = None;
    loop {
        let next = tokio::select! {
            biased;
            () = ctx.cancel.cancelled() => { stop = Some(Stop::Cancelled); break; }
            () = ctx.stop.cancelled() => { stop = Some(Stop::Stopped); break; }
            () = super::sleep_until(ctx.deadline) => { stop = Some(Stop::HardLimit); break; }
            () = super::sleep_until(deadline) => { stop = Some(Stop::TimedOut); break; }
            next = calls.next() => next,
        };
        let Some(result) = next else { break };
        emit(
            &ctx,
            ProgressEvent::IterationFinished {
                batch_run_id: run.id,
                provider: run.provider,
                success: result.iteration.is_success,
            },
        );
        models.extend(result.model);
        sample.add(&result.iteration, ctx.experiment.target.name.as_str());
        buffer.push(result.iteration);
        if let Some(e) = result.permanent {
            stop = Some(Stop::Permanent(e.to_string()));
            break;
        }
        if let Some(target) = precision
            && !should_continue(
                sample.target_named,
                sample.analysed,
                target,
                run.iterations_planned,
            )
        {
            // Precise enough (or at the cap): the calls still in flight are dropped below and
            // their quota refunded, which is the point of adaptive sampling.
            stop = Some(Stop::Precise);
            break;
        }
        if buffer.len() >= write_batch {
            ctx.store.record_iterations(&buffer).await?;
            buffer.clear();
        }
    }
    // Dropping the stream cancels the calls still in flight: they never ran to completion, so
    // they are refunded below rather than recorded (or, after a stop, run again by the
    // execution that resumes this run).
    drop(calls);
    if !buffer.is_empty() {
        ctx.store.record_iterations(&buffer).await?;
    }

    let ran_everything = stop.is_none();
    let (status, error) = match stop {
        None | Some(Stop::Precise) => (BatchRunStatus::Completed, None),
        Some(Stop::Cancelled) => (BatchRunStatus::Cancelled, Some("cancelled".to_owned())),
        Some(Stop::TimedOut) => (
            BatchRunStatus::Failed,
            Some(format!(
                "time limit of {}s exceeded",
                ctx.config.run_timeout.map_or(0, |d| d.as_secs())
            )),
        ),
        Some(Stop::HardLimit) => (
            BatchRunStatus::Failed,
            Some("hard time limit of the job exceeded".to_owned()),
        ),
        Some(Stop::Permanent(message)) => (BatchRunStatus::Failed, Some(message)),
        // The answers paid for are stored above; the run stays `running` for the next
        // execution to resume.
        Some(Stop::Stopped) => return Err(RunError::Stopped),
    };
    let stored = ctx
        .store
        .get_batch_run(ctx.experiment.user_id, run.id)
        .await?;
    let summary = super::report::summarize(&ctx, &stored, &matcher, models).await?;
    let cost = ctx
        .prices
        .cost_micros(
            run.provider,
            &run.model,
            stored.input_tokens,
            stored.output_tokens,
        )
        .unwrap_or(0);
    ctx.store
        .update_batch_run(
            run.id,
            &BatchRunUpdate {
                status,
                visibility_rate: summary.visibility_rate,
                metrics: Some(summary.metrics),
                cost_micros_usd: cost,
                error,
                started_at: Some(started_at),
                completed_at: Some(Timestamp::now()),
            },
        )
        .await?;
    emit(
        &ctx,
        ProgressEvent::RunFinished {
            batch_run_id: run.id,
            provider: run.provider,
            status,
        },
    );
    let refunded = if ran_everything {
        0
    } else {
        stored
            .iterations_planned
            .saturating_sub(stored.iterations_recorded)
    };
    Ok(BatchOutcome { status, refunded })
}

/// The running tally adaptive sampling decides on: analysed answers and those naming the
/// target (the numerator and denominator of visibility).
#[derive(Debug, Default)]
struct Sample {
    analysed: u32,
    target_named: u32,
}

impl Sample {
    fn add(&mut self, iteration: &Iteration, target: &str) {
        if let (true, Some(mentions)) = (iteration.is_success, &iteration.mentions) {
            self.analysed += 1;
            self.target_named += u32::from(mentions.iter().any(|m| m.brand == target));
        }
    }

    /// The tally of the iterations an earlier attempt stored, so a resumed run stops where
    /// an uninterrupted one would.
    async fn from_stored(ctx: &BatchContext<'_>, run: &BatchRun) -> Result<Self, RunError> {
        let target = ctx.experiment.target.name.as_str();
        let mut sample = Self::default();
        let mut pages = IterationPages::new(run);
        while let Some(page) = pages.next(ctx).await? {
            for it in &page {
                sample.add(it, target);
            }
        }
        Ok(sample)
    }
}

/// Reads a run's stored iterations in index order, a page at a time, so large runs never sit
/// in memory whole. Without their sources: the tally and the metrics use only answers and
/// mentions, and reading 8 source rows per answer back was most of a cited run's slowdown.
pub(super) struct IterationPages {
    run: crate::model::BatchRunId,
    from: u32,
    done: bool,
}

impl IterationPages {
    /// Rows per page: bounds memory while keeping round trips few.
    const PAGE: u32 = 500;

    pub(super) fn new(run: &BatchRun) -> Self {
        Self {
            run: run.id,
            from: 0,
            done: false,
        }
    }

    /// The next page, or `None` after the last.
    pub(super) async fn next(
        &mut self,
        ctx: &BatchContext<'_>,
    ) -> Result<Option<Vec<Iteration>>, RunError> {
        if self.done {
            return Ok(None);
        }
        let page = ctx
            .store
            .list_iterations_without_sources(
                ctx.experiment.user_id,
                self.run,
                self.from,
                Self::PAGE,
            )
            .await?;
        match page.last() {
            Some(last) if page.len() == Self::PAGE as usize && last.index < u32::MAX => {
                self.from = last.index + 1;
            }
            Some(_) => self.done = true,
            None => return Ok(None),
        }
        Ok(Some(page))
    }
}

fn emit(ctx: &BatchContext<'_>, event: ProgressEvent) {
    if let Some(progress) = &ctx.progress {
        progress(event);
    }
}

async fn call_one(
    ctx: &BatchContext<'_>,
    matcher: &BrandMatcher,
    run: &BatchRun,
    index: u32,
) -> CallResult {
    // Semaphores here are never closed, so acquiring cannot fail; holding `None` would only
    // lift the limit, never deadlock.
    let _global = ctx.global.acquire().await.ok();
    let _provider = ctx.slot.concurrency.acquire().await.ok();
    if let Some(rate) = &ctx.slot.rate {
        rate.until_ready().await;
    }
    let request = CompletionRequest {
        prompt: ctx.experiment.prompt_for(index).as_str().to_owned(),
        model: ctx.provider_config.model.clone(),
        temperature: ctx.provider_config.temperature,
        max_tokens: ctx.config.max_tokens,
        system_prompt: ctx.config.system_prompt.clone(),
        sample_index: index,
    };
    let started = Instant::now();
    let result = ctx.slot.client.complete(&request).await;
    let elapsed_ms = u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX);
    let mut iteration = Iteration {
        id: IterationId::new(),
        batch_run_id: run.id,
        index,
        raw_response: None,
        mentions: None,
        is_success: false,
        error: None,
        latency_ms: elapsed_ms,
        input_tokens: 0,
        output_tokens: 0,
        created_at: Timestamp::now(),
        is_anonymized: false,
        anonymized_at: None,
        sources: Vec::new(),
    };
    match result {
        Ok(completion) => {
            iteration.mentions = Some(matcher.extract(&completion.text).to_mentions());
            let redacted = ctx.redactor.and_then(|r| match r.redact(&completion.text) {
                Cow::Owned(redacted) => Some(redacted),
                Cow::Borrowed(_) => None,
            });
            // The provider's span offsets point into the answer as it was; once redaction
            // changed the text they would mark the wrong words.
            let (answer, spans_valid) = match redacted {
                Some(redacted) => (redacted, false),
                None => (completion.text, true),
            };
            iteration.sources =
                IterationSource::from_citations(&completion.citations, &answer, spans_valid);
            iteration.raw_response = Some(answer);
            iteration.is_success = true;
            iteration.input_tokens = completion.input_tokens;
            iteration.output_tokens = completion.output_tokens;
            CallResult {
                iteration,
                permanent: None,
                model: Some(completion.model),
            }
        }
        Err(e) => {
            iteration.error = Some(e.to_string());
            let permanent = (!e.is_retryable()).then_some(e);
            CallResult {
                iteration,
                permanent,
                model: None,
            }
        }
    }
}
