//! A stand-alone process for the multi-process tests (`tests/postgres/multiprocess.rs`); not
//! meant for production use. The database URL comes from `ECHO_PG_TEST_URL`.
//!
//! - `work NAME LEASE_MS WORK_MS`: drains the queue. Each job's effect is a row in
//!   `job_effects`, inserted in the same transaction as `complete_in`, so it commits exactly
//!   when the fenced completion does. Waits on `LISTEN echo_jobs` with a polling fallback when
//!   the queue is empty but jobs are still running elsewhere; exits when nothing is left.
//! - `schedule NAME START_AT_MS`: from the given instant (Unix ms, so that several processes
//!   start together), claims every due recurring experiment with `claim_schedule`.
//! - `create USER_ID COUNT ITERATIONS LIMIT START_AT_MS`: creates `COUNT` experiments of the
//!   user concurrently, each debiting `ITERATIONS` prompts under `LIMIT`.
//!
//! Each mode prints one line of counts on stdout.

use std::error::Error;
use std::time::Duration;

use echo_core::model::{
    Brand, BrandName, Experiment, ExperimentId, ExperimentStatus, Iterations, Job, Prompt,
    ProviderConfig, ProviderKind, QuotaDebit, Timestamp, UserId,
};
use echo_core::runner::RunExperimentPayload;
use echo_core::store::{ExperimentStore, JobQueue, ScheduleClaim, StoreError};
use echo_store_postgres::{PgConfig, PgStore};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let url = std::env::var("ECHO_PG_TEST_URL")?;
    let config = PgConfig {
        pool_size: 1,
        max_overflow: 7,
        ..PgConfig::default()
    };
    let store = PgStore::connect(&url, config).await?;
    let arg = |i: usize| -> Result<&str> {
        args.get(i)
            .map(String::as_str)
            .ok_or_else(|| format!("missing argument {i}").into())
    };
    match arg(0)? {
        "work" => {
            let lease = Duration::from_millis(arg(2)?.parse()?);
            let work = Duration::from_millis(arg(3)?.parse()?);
            work_loop(&store, arg(1)?, lease, work).await
        }
        "schedule" => {
            wait_until(arg(2)?.parse()?).await;
            schedule(&store).await
        }
        "create" => {
            let user = UserId::from_uuid(arg(1)?.parse()?);
            let count: u32 = arg(2)?.parse()?;
            let iterations: u32 = arg(3)?.parse()?;
            let limit: u32 = arg(4)?.parse()?;
            wait_until(arg(5)?.parse()?).await;
            create(&store, user, count, iterations, limit).await
        }
        other => Err(format!("unknown mode {other:?}").into()),
    }
}

async fn wait_until(unix_ms: i64) {
    let now = Timestamp::now().unix_micros() / 1_000;
    if unix_ms > now {
        let wait = u64::try_from(unix_ms - now).unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
}

async fn work_loop(store: &PgStore, name: &str, lease: Duration, work: Duration) -> Result<()> {
    let mut wakeups = store.job_notifications().await?;
    let (mut completed, mut lost) = (0u64, 0u64);
    loop {
        let jobs = store.claim(name, 5, lease, Timestamp::now()).await?;
        if jobs.is_empty() {
            let stats = store.queue_stats(Timestamp::now()).await?;
            if stats.due + stats.scheduled + stats.running == 0 {
                break;
            }
            // Jobs held by others (perhaps a dead worker's, until its lease expires).
            wakeups.wait(Duration::from_millis(200)).await?;
            continue;
        }
        for job in jobs {
            let mut tx = store.begin().await?;
            sqlx::query("INSERT INTO job_effects (job_id, worker, token) VALUES ($1, $2, $3)")
                .bind(*job.id.as_uuid())
                .bind(name)
                .bind(i64::try_from(job.lease_token)?)
                .execute(&mut *tx)
                .await?;
            // The "work", inside the transaction: a kill here loses the attempt, not the job.
            tokio::time::sleep(work).await;
            match store
                .complete_in(&mut tx, job.lease(), Timestamp::now())
                .await
            {
                Ok(()) => {
                    tx.commit().await?;
                    completed += 1;
                }
                Err(StoreError::LeaseLost) => {
                    tx.rollback().await?;
                    lost += 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    println!("completed {completed} lost {lost}");
    Ok(())
}

fn run_job(experiment: &Experiment, now: Timestamp) -> Job {
    RunExperimentPayload {
        user_id: experiment.user_id,
        experiment_id: experiment.id,
    }
    .into_job(now)
}

async fn schedule(store: &PgStore) -> Result<()> {
    let (mut enqueued, mut lost, mut skipped) = (0u64, 0u64, 0u64);
    loop {
        let now = Timestamp::now();
        let due = store.due_recurring(now, 20).await?;
        if due.is_empty() {
            break;
        }
        for e in due {
            let Some(expected) = e.recurrence.as_ref().and_then(|r| r.next_run_at) else {
                continue;
            };
            let debit = QuotaDebit {
                user_id: e.user_id,
                amount: e.prompts_per_run(),
                limit: u32::MAX,
            };
            let next = Some(expected + time::Duration::days(1));
            match store
                .claim_schedule(e.id, expected, next, debit, &run_job(&e, now))
                .await?
            {
                ScheduleClaim::Enqueued => enqueued += 1,
                ScheduleClaim::Lost => lost += 1,
                ScheduleClaim::SkippedOverQuota => skipped += 1,
            }
        }
    }
    println!("enqueued {enqueued} lost {lost} skipped {skipped}");
    Ok(())
}

async fn create(
    store: &PgStore,
    user: UserId,
    count: u32,
    iterations: u32,
    limit: u32,
) -> Result<()> {
    let now = Timestamp::now();
    let mut experiments = Vec::new();
    for _ in 0..count {
        experiments.push(Experiment {
            id: ExperimentId::new(),
            user_id: user,
            prompt: Prompt::parse("Which CRM would you recommend?")?,
            target: Brand::new(BrandName::parse("HubSpot")?),
            competitors: vec![],
            iterations: Iterations::new(iterations)?,
            providers: vec![ProviderConfig {
                provider: ProviderKind::Simulated,
                model: "sim-1".into(),
                temperature: 0.7,
            }],
            status: ExperimentStatus::Pending,
            recurrence: None,
            prompt_set: None,
            precision: None,
            created_at: now,
            updated_at: now,
        });
    }
    let results = futures::future::join_all(experiments.iter().map(|e| async move {
        let debit = QuotaDebit {
            user_id: user,
            amount: e.prompts_per_run(),
            limit,
        };
        store.create_experiment(e, debit, &run_job(e, now)).await
    }))
    .await;
    let (mut created, mut refused) = (0u64, 0u64);
    for r in results {
        match r {
            Ok(()) => created += 1,
            Err(StoreError::QuotaExceeded { .. }) => refused += 1,
            Err(e) => return Err(e.into()),
        }
    }
    println!("created {created} refused {refused}");
    Ok(())
}
