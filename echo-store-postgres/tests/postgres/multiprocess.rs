//! Correctness across processes: each test starts copies of the `echo-pg-test-worker` binary
//! against one database (separate processes, pools and connections, as separate machines
//! would have) and checks the database afterwards. Every wait is bounded.

use std::collections::HashSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use echo_core::conformance::fixtures::NoopPayload;
use echo_core::conformance::fixtures::{new_user, recurring};
use echo_core::model::{Job, JobStatus, Timestamp};
use echo_core::store::{ExperimentStore, UserStore};
use echo_store_postgres::PgStore;
use sqlx::ConnectOptions;
use tokio::process::{Child, Command};

const WORKER: &str = env!("CARGO_BIN_EXE_echo-pg-test-worker");

fn spawn(url: &str, args: &[&str]) -> Child {
    Command::new(WORKER)
        .args(args)
        .env("ECHO_PG_TEST_URL", url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the test worker")
}

/// Waits (bounded) for a child to exit successfully and returns its stdout line.
async fn finish(child: Child, what: &str) -> String {
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within 120 s"))
        .expect("wait for the worker");
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The number after `key` in a worker's output line (`completed 12 lost 0`).
fn count(line: &str, key: &str) -> u64 {
    let words: Vec<&str> = line.split_whitespace().collect();
    words
        .windows(2)
        .find(|w| w[0] == key)
        .and_then(|w| w[1].parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {line:?}"))
}

async fn url_of(store: &PgStore) -> String {
    store.pool().connect_options().to_url_lossy().to_string()
}

fn now_ms() -> i64 {
    Timestamp::now().unix_micros() / 1_000
}

/// Three workers drain 1,000 jobs while one is killed with SIGKILL in the middle of a job: no
/// job is lost, and each job's committed effect exists exactly once, written under the lease
/// (fencing token) that completed it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_job_loses_nothing_and_commits_once() {
    let Some(store) = crate::fresh_store().await else {
        return;
    };
    let url = url_of(&store).await;
    let mut raw = crate::raw(&store).await;
    sqlx::query("CREATE TABLE job_effects (job_id uuid NOT NULL, worker text NOT NULL, token bigint NOT NULL)")
        .execute(&mut raw)
        .await
        .unwrap();
    let now = Timestamp::now();
    let jobs: Vec<Job> = (0..1_000)
        .map(|i| Job::new(&NoopPayload { n: i }, now, 10, now).unwrap())
        .collect();
    store.enqueue_many(&jobs).await.unwrap();

    // A lease of 1.5 s: the killed worker's jobs come back quickly. The victim works slowly
    // (100 ms a job, claims of 5) so that it still holds jobs when the kill lands: on a loaded
    // machine the time between seeing it hold one and the kill can exceed a fast job.
    let mut victim = spawn(&url, &["work", "w0", "1500", "100"]);
    let w1 = spawn(&url, &["work", "w1", "1500", "3"]);
    let w2 = spawn(&url, &["work", "w2", "1500", "3"]);

    let start = Instant::now();
    loop {
        let (effects, held): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM job_effects), \
             (SELECT count(*) FROM jobs WHERE status = 'running' AND lease_owner = 'w0')",
        )
        .fetch_one(&mut raw)
        .await
        .unwrap();
        if effects >= 300 && held > 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the workers made no progress ({effects} effects)"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    victim.start_kill().expect("SIGKILL the victim");
    let status = victim.wait().await.unwrap();
    assert!(!status.success(), "the victim was killed: {status}");

    let l1 = finish(w1, "worker w1").await;
    let l2 = finish(w2, "worker w2").await;

    let (succeeded, other): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'succeeded'), \
         count(*) FILTER (WHERE status <> 'succeeded') FROM jobs",
    )
    .fetch_one(&mut raw)
    .await
    .unwrap();
    assert_eq!((succeeded, other), (1_000, 0), "every job succeeded");
    let (effects, distinct, fenced): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT e.job_id), \
         count(*) FILTER (WHERE e.token = j.lease_token) \
         FROM job_effects AS e JOIN jobs AS j ON j.id = e.job_id",
    )
    .fetch_one(&mut raw)
    .await
    .unwrap();
    assert_eq!(
        effects, 1_000,
        "one committed effect per job (no duplicates)"
    );
    assert_eq!(distinct, 1_000, "no job without its effect");
    assert_eq!(
        fenced, 1_000,
        "each effect was committed under the final lease"
    );
    let reclaimed: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE attempts > 1")
        .fetch_one(&mut raw)
        .await
        .unwrap();
    println!(
        "kill -9 chaos: w1 [{l1}], w2 [{l2}], {reclaimed} jobs re-claimed after the kill, \
         {:?} in all",
        start.elapsed()
    );
    assert!(reclaimed >= 1, "the victim's held jobs were taken over");
    assert!(
        count(&l1, "completed") + count(&l2, "completed") <= 1_000,
        "completions never exceed the jobs"
    );
}

/// Two scheduler processes racing over 100 due recurring experiments enqueue each exactly once
/// and debit each run once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_schedulers_enqueue_each_occurrence_once() {
    let Some(store) = crate::fresh_store().await else {
        return;
    };
    let url = url_of(&store).await;
    let u = new_user(&store).await;
    let now = Timestamp::now();
    let due_at = now - time::Duration::minutes(1);
    let experiments: Vec<_> = (0..100)
        .map(|i| {
            recurring(
                u.id,
                now - time::Duration::days(1) + time::Duration::seconds(i),
                Some(due_at),
            )
        })
        .collect();
    store.import_experiments(&experiments).await.unwrap();

    let start_at = now_ms() + 1_500;
    let a = spawn(&url, &["schedule", "a", &start_at.to_string()]);
    let b = spawn(&url, &["schedule", "b", &start_at.to_string()]);
    let la = finish(a, "scheduler a").await;
    let lb = finish(b, "scheduler b").await;
    println!("schedulers: a [{la}], b [{lb}]");
    assert_eq!(count(&la, "enqueued") + count(&lb, "enqueued"), 100);
    assert_eq!(count(&la, "skipped") + count(&lb, "skipped"), 0);

    let mut raw = crate::raw(&store).await;
    let (jobs, distinct): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT payload->>'experiment_id') FROM jobs")
            .fetch_one(&mut raw)
            .await
            .unwrap();
    assert_eq!((jobs, distinct), (100, 100), "one job per experiment");
    let ids: HashSet<String> =
        sqlx::query_scalar::<_, String>("SELECT payload->>'experiment_id' FROM jobs")
            .fetch_all(&mut raw)
            .await
            .unwrap()
            .into_iter()
            .collect();
    for e in &experiments {
        assert!(ids.contains(&e.id.to_string()), "job of {}", e.id);
        let got = store.get_experiment(u.id, e.id).await.unwrap();
        assert_eq!(
            got.recurrence.and_then(|r| r.next_run_at),
            Some(due_at + time::Duration::days(1)),
            "advanced once"
        );
    }
    let used = store.get_user(u.id).await.unwrap().quota.prompts_used;
    assert_eq!(
        used,
        100 * experiments[0].prompts_per_run(),
        "debited once each"
    );
    assert!(store.due_recurring(now, 10).await.unwrap().is_empty());
}

/// Two processes creating experiments for one user at the edge of the quota never overspend:
/// exactly the creations that fit succeed, and the counter equals their sum.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creations_across_processes_never_overspend() {
    let Some(store) = crate::fresh_store().await else {
        return;
    };
    let url = url_of(&store).await;
    let u = new_user(&store).await;
    let user = u.id.to_string();
    let start_at = (now_ms() + 1_500).to_string();
    // 2 × 30 creations of 20 prompts against a limit of 1,000: exactly 50 fit.
    let args = [
        "create",
        user.as_str(),
        "30",
        "20",
        "1000",
        start_at.as_str(),
    ];
    let a = spawn(&url, &args);
    let b = spawn(&url, &args);
    let la = finish(a, "creator a").await;
    let lb = finish(b, "creator b").await;
    println!("creators: a [{la}], b [{lb}]");
    let created = count(&la, "created") + count(&lb, "created");
    assert_eq!(created, 50, "exactly the creations that fit");
    assert_eq!(count(&la, "refused") + count(&lb, "refused"), 10);
    let used = store.get_user(u.id).await.unwrap().quota.prompts_used;
    assert_eq!(
        u64::from(used),
        created * 20,
        "the counter equals the successful debits"
    );
    let mut raw = crate::raw(&store).await;
    let (experiments, jobs): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM experiments), (SELECT count(*) FROM jobs WHERE status = $1)",
    )
    .bind(JobStatus::Queued.as_str())
    .fetch_one(&mut raw)
    .await
    .unwrap();
    assert_eq!(
        (experiments, jobs),
        (50, 50),
        "one experiment and one job per success"
    );
}
