//! `echoai run`: create an experiment, execute it right away in this process, print the report.
//!
//! The run goes through the same path as the server's: the experiment, its quota debit and its
//! job commit together, then this process claims that job under a lease and executes it like a
//! worker would. Everything is stored, so the run shows up in the server and the dashboard.

use std::sync::Arc;
use std::time::Duration;

use echo_core::analysis::stats::iterations_for_half_width;
use echo_core::model::{
    Email, Experiment, ExperimentId, ExperimentStatus, Iterations, PinnedPromptSet, Precision,
    Prompt, ProviderConfig, ProviderKind, Timestamp,
};
use echo_core::runner::{
    ExecuteOptions, ExperimentRunner, JobExecutor, JobOutcome, ProgressFn, RunnerConfig,
};
use echo_core::service::{Accounts, BrandService, ExperimentService, SourceService, SubmitOptions};
use tokio_util::sync::CancellationToken;

use super::{CliError, parse_brand};
use crate::cli::RunArgs;
use crate::progress::ProgressBar;
use crate::{providers, report};

/// Executes `echoai run`.
pub async fn run(args: RunArgs) -> Result<(), CliError> {
    // Validate every input before anything is stored.
    let prompt = args.prompt.as_deref().map(Prompt::parse).transpose()?;
    let target = parse_brand(&args.brand)?;
    let competitors = args
        .competitors
        .iter()
        .map(|c| parse_brand(c))
        .collect::<Result<Vec<_>, _>>()?;
    let iterations = Iterations::new(args.iterations)?;
    let precision = args
        .precision
        .map(|p| {
            Precision::new(p).map_err(|_| {
                CliError::Usage(format!(
                    "--precision must be a half-width from {} to {} (e.g. 0.05)",
                    Precision::MIN,
                    Precision::MAX
                ))
            })
        })
        .transpose()?;
    if let Some(p) = precision.map(Precision::get) {
        let worst = iterations_for_half_width(p).unwrap_or(u32::MAX);
        eprintln!(
            "adaptive sampling: stops at ±{p} (at worst, p = 0.5, that takes {worst} answers per provider{})",
            if worst > iterations.get() {
                format!("; --iterations {} caps it", iterations.get())
            } else {
                String::new()
            }
        );
    }
    let mut kinds: Vec<ProviderKind> = Vec::new();
    for name in &args.providers {
        let kind = providers::parse_kind(name)?;
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    let provider_configs: Vec<ProviderConfig> = kinds
        .iter()
        .map(|&provider| ProviderConfig {
            provider,
            model: args
                .model
                .clone()
                .unwrap_or_else(|| providers::default_model(provider).to_owned()),
            temperature: args.temperature,
        })
        .collect();
    let clients = kinds
        .iter()
        .map(|&kind| providers::build(kind, args.seed, &target, &competitors))
        .collect::<Result<Vec<_>, _>>()?;

    let (store, _) = crate::open_store(&args.database).await?;
    let user = Accounts::from_store(&store)
        .local_user(&Email::parse(&args.user)?)
        .await?;
    let pinned = match &args.prompt_set {
        Some(choice) => Some(pin_set(&store, user.id, choice, &args).await?),
        None => None,
    };
    let prompt = match (prompt, &pinned) {
        (Some(p), _) => p,
        (None, Some(set)) => set
            .prompts
            .first()
            .cloned()
            .ok_or_else(|| CliError::Usage("the prompt set has no phrasings".into()))?,
        (None, None) => return Err(CliError::Usage("give --prompt or --prompt-set".into())),
    };
    let now = Timestamp::now();
    let mut experiment = Experiment {
        id: ExperimentId::new(),
        user_id: user.id,
        prompt,
        target,
        competitors,
        iterations,
        providers: provider_configs,
        status: ExperimentStatus::Queued,
        recurrence: None,
        prompt_set: None,
        // Stored with the experiment, so its page and report say how it was sampled.
        precision,
        created_at: now,
        updated_at: now,
    };
    if let Some(set) = pinned {
        experiment.run_prompt_set(set)?;
    }
    let submitted = ExperimentService::from_store(&store)
        .submit_experiment(experiment, SubmitOptions::default())
        .await?;
    let experiment = submitted.experiment;

    let config = RunnerConfig {
        provider_concurrency: args.concurrency.max(1),
        run_timeout: Some(Duration::from_secs(args.timeout_secs.max(1))),
        ..RunnerConfig::default()
    };
    let runner = clients
        .into_iter()
        .fold(ExperimentRunner::new(store.clone(), config), |r, c| {
            r.with_provider(c)
        });
    let executor = JobExecutor::new(store.clone(), Arc::new(runner), Duration::from_secs(60));

    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\ninterrupted: stopping the run (answers so far are kept)");
            on_signal.cancel();
        }
    });
    let total = u64::from(experiment.prompts_per_run());
    let bar = Arc::new(ProgressBar::new(total));
    let sink = bar.clone();
    let progress: ProgressFn = Arc::new(move |event| sink.on_event(&event));

    let worker = format!("echoai-run-{}", std::process::id());
    let options = ExecuteOptions {
        cancel,
        progress: Some(progress),
        ..ExecuteOptions::default()
    };
    let execution = executor
        .run_now(submitted.job_id, &worker, options)
        .await?
        .ok_or_else(|| CliError::Usage("the run's job was taken by another worker".into()))?;
    bar.finish();
    if !matches!(
        execution.outcome,
        JobOutcome::Succeeded | JobOutcome::Cancelled
    ) {
        return Err(CliError::Usage(format!(
            "the run did not finish: {}",
            execution
                .error
                .unwrap_or_else(|| execution.outcome.to_string())
        )));
    }

    let experiment = store.get_experiment(user.id, experiment.id).await?;
    let runs = store.list_batch_runs(user.id, experiment.id).await?;
    let sources = SourceService::from_store(&store)
        .experiment_sources(user.id, experiment.id, None)
        .await?;
    let report = report::Report::new(&experiment, &runs)?.with_sources(sources);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_table());
    }
    Ok(())
}

/// The user's prompt set named by `choice` (its id, or else its newest version's name),
/// pinned at `--set-version` or its newest version with `--iterations` answers per phrasing.
async fn pin_set(
    store: &std::sync::Arc<echo_core::store::DynStore>,
    owner: echo_core::model::UserId,
    choice: &str,
    args: &RunArgs,
) -> Result<PinnedPromptSet, CliError> {
    let brand = BrandService::from_store(store);
    let id = match choice.parse() {
        Ok(id) => id,
        Err(_) => brand
            .sets(owner)
            .await?
            .into_iter()
            .find(|s| s.name.as_str() == choice)
            .map(|s| s.id)
            .ok_or_else(|| {
                CliError::Usage(format!("no prompt set named {choice:?} for {}", args.user))
            })?,
    };
    Ok(brand
        .pin(owner, id, args.set_version, args.iterations)
        .await?)
}
