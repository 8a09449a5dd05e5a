//! `echoai serve` and `echoai worker`: the store, the runner, the worker pool, the scheduler
//! and the HTTP API in one process (or workers alone), with graceful shutdown.
//!
//! On SIGTERM or SIGINT the API stops accepting connections and finishes in-flight requests,
//! the pool stops claiming and gives in-flight jobs `workers.shutdown_grace_secs` to finish
//! before releasing them to other workers, and the last `last_used_at` uses are flushed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use echo_core::model::ProviderKind;
use echo_core::runner::{
    ExperimentRunner, JobEvent, JobExecutor, RunnerConfig, Scheduler, SchedulerConfig, WorkerPool,
    WorkerPoolConfig,
};
use echo_core::store::DynStore;
use tokio_util::sync::CancellationToken;

use crate::commands::CliError;
use crate::config::ServerConfig;
use crate::database::{OpenedStore, PoolSizing};
use crate::metrics::Metrics;
use crate::state::{AppState, StateOptions};

/// What this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    /// The HTTP API.
    pub api: bool,
    /// Job workers.
    pub workers: bool,
    /// The recurring-experiment scheduler (and quota resets, job pruning).
    pub scheduler: bool,
}

/// Opens (and migrates) the store `config.database` names, with the configured pool size.
pub async fn open(config: &ServerConfig) -> Result<OpenedStore, CliError> {
    let sizing = PoolSizing {
        pool_size: config.postgres.pool_size,
        max_overflow: config.postgres.max_overflow,
        acquire_timeout: Duration::from_secs(config.postgres.acquire_timeout_secs),
    };
    crate::database::open(&config.database, sizing).await
}

/// Builds the runner with every provider this process can call: the simulator (seeded per
/// experiment) and each real provider whose key is in the environment.
pub fn build_runner(
    store: Arc<DynStore>,
    config: &ServerConfig,
) -> Result<(ExperimentRunner, Vec<ProviderKind>), CliError> {
    let runner_config = RunnerConfig {
        provider_concurrency: config.workers.provider_concurrency,
        run_timeout: Some(Duration::from_secs(config.workers.run_timeout_secs)),
        ..RunnerConfig::default()
    };
    let mut runner = ExperimentRunner::new(store, runner_config)
        .with_simulated_per_experiment(config.simulated.seed)
        .with_simulated_latency(Duration::from_millis(config.simulated.latency_ms));
    if config.privacy.redaction == echo_core::privacy::RedactionMode::Redact {
        // Refusing to start beats storing unredacted answers against the configuration.
        let redactor = echo_core::privacy::Redactor::new()
            .map_err(|e| CliError::Usage(format!("privacy.redaction: {e}")))?;
        runner = runner.with_redaction(Arc::new(redactor));
    }
    let mut kinds = vec![ProviderKind::Simulated];
    for client in crate::providers::from_environment() {
        kinds.push(client.kind());
        runner = runner.with_provider(client);
    }
    Ok((runner, kinds))
}

/// The pool observer: job metrics and the `run_completed` / `run_failed` business events.
fn observer(metrics: Arc<Metrics>) -> Arc<dyn Fn(JobEvent) + Send + Sync> {
    Arc::new(move |event: JobEvent| {
        let outcome = event.outcome.as_str();
        metrics.observe_job(&event.kind, outcome, event.duration);
        let request_id = event.request_id.as_deref().unwrap_or("");
        match outcome {
            "succeeded" => {
                tracing::info!(event = "run_completed", job_id = %event.job_id, request_id, duration_ms = event.duration.as_millis() as u64, "job completed")
            }
            "failed" | "retrying" => {
                tracing::warn!(event = "run_failed", job_id = %event.job_id, request_id, outcome, "job failed")
            }
            _ => {
                tracing::info!(event = "job_settled", job_id = %event.job_id, request_id, outcome, "job settled")
            }
        }
    })
}

/// Waits for SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested");
}

/// Runs the roles until `shutdown` is cancelled. With the API, `listener` must be bound.
pub async fn serve(
    config: ServerConfig,
    roles: Roles,
    listener: Option<tokio::net::TcpListener>,
    shutdown: CancellationToken,
) -> Result<(), CliError> {
    let opened = open(&config).await?;
    let store = opened.store.clone();
    let (runner, providers) = build_runner(store.clone(), &config)?;
    let state = AppState::build(
        store.clone(),
        config.clone(),
        StateOptions {
            providers,
            rate_limits: config.rate_limits.to_config().map_err(CliError::from)?,
            ..StateOptions::default()
        },
        opened.extras.clone(),
    )
    .map_err(CliError::from)?;
    let mut tasks = tokio::task::JoinSet::new();

    if roles.workers {
        let executor = Arc::new(
            JobExecutor::new(
                store.clone(),
                Arc::new(runner),
                Duration::from_secs(config.workers.lease_secs),
            )
            .with_alert_mailer(state.mailer.clone())
            .with_webhook_transport(Arc::new(
                crate::webhook_transport::ReqwestWebhookTransport::new(
                    crate::webhook_transport::policy_for(config.env),
                )
                .map_err(CliError::Webhooks)?,
            )),
        );
        let worker_id = format!("{}-{}", hostname(), std::process::id());
        let mut pool = WorkerPool::new(
            store.clone(),
            executor,
            WorkerPoolConfig {
                worker_id,
                min_concurrency: config.workers.min_concurrency,
                max_concurrency: config.workers.concurrency,
                lease: Duration::from_secs(config.workers.lease_secs),
                shutdown_grace: Duration::from_secs(config.workers.shutdown_grace_secs),
                hard_time_limit: Some(Duration::from_secs(config.workers.hard_time_limit_secs)),
                ..WorkerPoolConfig::default()
            },
        )
        .with_observer(observer(state.metrics.clone()));
        if let Some(signal) = opened.job_signal.clone() {
            pool = pool.with_signal(signal);
        }
        let pool = Arc::new(pool);
        let stats = pool.clone();
        state.set_worker_stats(Arc::new(move || stats.stats()));
        let token = shutdown.clone();
        tasks.spawn(async move {
            if let Err(e) = pool.run(token).await {
                crate::error::log_chain("worker pool stopped", Some(&e));
            }
        });
    }
    if roles.scheduler {
        // Data retention, daily (first a minute after start, so a restart loop does not
        // hammer the database).
        let task = retention_task(&state, &config);
        let token = shutdown.clone();
        tasks.spawn(async move {
            let mut wait = Duration::from_secs(60);
            loop {
                tokio::select! {
                    () = token.cancelled() => break,
                    () = tokio::time::sleep(wait) => {}
                }
                wait = Duration::from_secs(24 * 3600);
                match task.run(echo_core::model::Timestamp::now(), false).await {
                    Ok(report) => tracing::info!(
                        event = "retention_run",
                        anonymized = report.anonymized.values().sum::<u64>(),
                        purged_users = report.purged_users,
                        archived_audit_events = report.archived_audit_events,
                        "retention pass"
                    ),
                    Err(e) => crate::error::log_chain("retention pass failed", Some(&e)),
                }
            }
        });
        let scheduler = Scheduler::new(
            store.clone(),
            SchedulerConfig {
                interval: Duration::from_secs(config.scheduler.interval_secs),
                ..SchedulerConfig::default()
            },
        );
        let token = shutdown.clone();
        tasks.spawn(async move { scheduler.run(token).await });
    }
    {
        // Housekeeping: coalesced last-used writes, in-memory limiter and throttle pruning.
        let verifier = state.verifier.clone();
        let token = shutdown.clone();
        tasks.spawn(async move {
            verifier
                .run_last_used_flusher(Duration::from_secs(30), token.cancelled_owned())
                .await;
        });
        let state = state.clone();
        let token = shutdown.clone();
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    () = token.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_secs(60)) => {}
                }
                state.limiter.prune(Instant::now());
                if let Err(e) = state
                    .audit_sink
                    .checkpoint_if_due(echo_core::model::Timestamp::now())
                    .await
                {
                    crate::error::log_chain("audit checkpoint failed", Some(&e));
                }
                state.account_limiter.prune(Instant::now());
                state.auth_failure_limiter.prune(Instant::now());
                state.throttle.prune(Instant::now());
                let now = echo_core::model::Timestamp::now();
                if let Err(e) = state.store.prune_sessions(now, 1_000).await {
                    crate::error::log_chain("session pruning failed", Some(&e));
                }
            }
        });
    }

    {
        // Progress streams last as long as their experiment runs: end them at shutdown so
        // the graceful drain does not wait for them.
        let streams = state.event_streams.clone();
        let token = shutdown.clone();
        tasks.spawn(async move {
            token.cancelled().await;
            streams.close_all();
        });
    }
    if roles.api {
        let listener = listener.ok_or_else(|| CliError::Usage("no listener".into()))?;
        let addr = listener.local_addr()?;
        tracing::info!(%addr, database = %redact_url(&config.database), "echoai serving");
        let app = crate::build_app(state.clone());
        let token = shutdown.clone();
        let limits = crate::connections::ConnectionLimits::from_config(&config.http);
        crate::connections::serve(
            listener,
            app,
            async move { token.cancelled().await },
            limits,
        )
        .await?;
    } else {
        tracing::info!(database = %redact_url(&config.database), "echoai worker running");
        shutdown.cancelled().await;
    }
    // The API has drained; wait for the pool's grace period and the final flush.
    while tasks.join_next().await.is_some() {}
    tracing::info!("stopped");
    Ok(())
}

/// The retention pass as configured: per-tier answer retention, account purge, and audit
/// archiving into `privacy.audit_archive_dir` with checkpoints signed by the audit key.
pub fn retention_task(
    state: &AppState,
    config: &ServerConfig,
) -> echo_core::retention::RetentionTask {
    use echo_core::model::PricingTier;
    use echo_core::retention::{DefaultRetentionPolicy, RetentionTask};
    let day = Duration::from_secs(86_400);
    let policy = DefaultRetentionPolicy {
        raw_answers: PricingTier::ALL
            .iter()
            .map(|&t| (t, day * config.privacy.retention_days(t)))
            .collect(),
        audit_events: Some(day * config.privacy.audit_retention_days),
    };
    let signer = config
        .privacy
        .signing_seed()
        .ok()
        .flatten()
        .map(|seed| echo_core::audit::CheckpointSigner::from_seed(&seed));
    let sink: Arc<dyn echo_core::audit::AuditSink> = state.audit_sink.clone();
    RetentionTask::new(
        state.store.clone(),
        Arc::new(policy),
        state.pseudonym_key.clone(),
    )
    .with_audit_archive(config.privacy.audit_archive_dir.clone().into(), signer)
    .with_audit(sink)
}

/// A database URL without its passwords, for logs and output: the userinfo password
/// (`postgres://user:***@host/db`) and the `password` and `sslpassword` query parameters
/// (`?password=***`, any case). Everything that logs or prints a database URL goes through
/// this function.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned(); // a file path
    };
    let (before_query, query) = match url[scheme_end..].find('?') {
        Some(q) => url.split_at(scheme_end + q),
        None => (url, ""),
    };
    let mut out = String::with_capacity(url.len());
    // The last `@` before the query ends the userinfo (an unencoded `@` in a password is
    // then still hidden).
    match before_query[scheme_end..].rfind('@') {
        Some(at) => {
            let userinfo = &before_query[scheme_end..scheme_end + at];
            out.push_str(&before_query[..scheme_end]);
            match userinfo.split_once(':') {
                Some((user, _)) => {
                    out.push_str(user);
                    out.push_str(":***");
                }
                None => out.push_str(userinfo),
            }
            out.push_str(&before_query[scheme_end + at..]);
        }
        None => out.push_str(before_query),
    }
    if let Some(params) = query.strip_prefix('?') {
        let (params, fragment) = match params.split_once('#') {
            Some((p, f)) => (p, Some(f)),
            None => (params, None),
        };
        out.push('?');
        for (i, param) in params.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            match param.split_once('=') {
                Some((key, _))
                    if key.eq_ignore_ascii_case("password")
                        || key.eq_ignore_ascii_case("sslpassword") =>
                {
                    out.push_str(key);
                    out.push_str("=***");
                }
                _ => out.push_str(param),
            }
        }
        if let Some(f) = fragment {
            out.push('#');
            out.push_str(f);
        }
    }
    out
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "echo".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("./echo.db"), "./echo.db");
    }

    #[test]
    fn query_string_and_awkward_passwords_are_redacted() {
        let cases = [
            (
                "postgres://h/db?user=u&password=hunter2&sslmode=require",
                "postgres://h/db?user=u&password=***&sslmode=require",
            ),
            (
                "postgresql://u:pw@h/db?PASSWORD=hunter2&sslpassword=k3y#x",
                "postgresql://u:***@h/db?PASSWORD=***&sslpassword=***#x",
            ),
            (
                "postgres://u:p@ss:w/rd@h:5432/db?application_name=a@b",
                "postgres://u:***@h:5432/db?application_name=a@b",
            ),
            (
                "postgres://h/db?sslmode=disable",
                "postgres://h/db?sslmode=disable",
            ),
            ("sqlite://./echo.db", "sqlite://./echo.db"),
        ];
        for (url, redacted) in cases {
            assert_eq!(redact_url(url), redacted, "{url}");
            for secret in ["hunter2", "k3y", "p@ss", "w/rd"] {
                assert!(!redact_url(url).contains(secret), "{url}");
            }
        }
    }
}
