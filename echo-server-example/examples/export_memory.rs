//! Peak memory of the GDPR export (the privacy issue's target: under 50 MB while exporting a
//! user with 100,000 iterations).
//!
//! Seeds a SQLite store, through the store traits, with one user owning 100 experiments × 1
//! batch run × 1,000 iterations of about 1 KB answers (`record_iterations` in batches of
//! 1,000), then streams `echo_core::privacy::export::export_user` into a channel of 4
//! chunks, as `GET /api/v1/user/data-export` does, whose receiver counts the bytes and drops each chunk
//! (as the HTTP body would once written to the socket). Memory is read from `/proc/self/status`:
//! `VmRSS` before and after seeding, and `VmHWM` (peak resident set) reset just before the
//! export by writing `5` to `/proc/self/clear_refs`, so the export's peak is not the seeding's.
//!
//! The export is then repeated in a fresh child process that only opens the store and exports
//! (`--export-only DB EMAIL`): its `VmHWM` is the whole process's peak, with nothing left over
//! from seeding in the allocator.
//!
//! ```sh
//! cargo run --release -p echo-server-example --example export_memory [-- EXPERIMENTS ITERATIONS]
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use echo_core::model::*;
use echo_core::privacy::export::export_user;
use echo_core::store::{DynStore, ExperimentStore, RunStore, UserStore};
use echo_store_sqlite::{SqliteConfig, SqliteStore};

const BATCH: u32 = 1_000;
/// The HTTP route's channel bound.
const CHANNEL: usize = 4;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    if let [flag, db, email] = args.as_slice()
        && flag == "--export-only"
    {
        let before = status_kib("VmRSS");
        let store = rt
            .block_on(SqliteStore::open(db, SqliteConfig::default()))
            .unwrap();
        let user = rt
            .block_on(store.find_user_by_email(&Email::parse(email).unwrap()))
            .unwrap()
            .expect("the user exists");
        let opened = status_kib("VmRSS");
        let (bytes, iterations, took) = rt.block_on(export(Arc::new(store), user));
        println!(
            "child: VmRSS {} at start, {} with the store open; export of {} ({iterations} \
             iterations) in {took:.2?}; VmHWM (whole process) {}; at the end VmRSS {} \
             (RssAnon {}, RssFile {})",
            mib(before),
            mib(opened),
            mib_bytes(bytes),
            mib(status_kib("VmHWM")),
            mib(status_kib("VmRSS")),
            mib(status_kib("RssAnon")),
            mib(status_kib("RssFile")),
        );
        return;
    }
    let experiments: u32 = args.first().map_or(100, |a| a.parse().unwrap());
    let per_run: u32 = args.get(1).map_or(1_000, |a| a.parse().unwrap());

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("export.db");
    let store = Arc::new(
        rt.block_on(SqliteStore::open(&db, SqliteConfig::default()))
            .unwrap(),
    );
    let rss_start = status_kib("VmRSS");
    let started = Instant::now();
    let user = rt.block_on(seed(&store, experiments, per_run));
    let seeding = started.elapsed();
    let rss_seeded = status_kib("VmRSS");
    let db_size = std::fs::metadata(&db).map_or(0, |m| m.len());
    println!(
        "seeded {experiments} experiments × 1 run × {per_run} iterations = {} iterations in \
         {seeding:.2?}; database {}",
        u64::from(experiments) * u64::from(per_run),
        mib_bytes(db_size),
    );
    println!(
        "VmRSS {} before seeding, {} after (VmHWM {} so far)",
        mib(rss_start),
        mib(rss_seeded),
        mib(status_kib("VmHWM")),
    );

    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let rss_before = status_kib("VmRSS");
    let (bytes, iterations, took) = rt.block_on(export(store.clone(), user.clone()));
    let hwm = status_kib("VmHWM");
    assert_eq!(iterations, u64::from(experiments) * u64::from(per_run));
    println!(
        "in process: exported {} ({iterations} iterations) in {took:.2?} ({:.0} MiB/s); VmRSS \
         {} before the export, {} after; VmHWM during the export {} ({}), growth {}",
        mib_bytes(bytes),
        bytes as f64 / took.as_secs_f64() / f64::from(1 << 20),
        mib(rss_before),
        mib(status_kib("VmRSS")),
        mib(hwm),
        if reset {
            "reset before the export"
        } else {
            "NOT reset: clear_refs unavailable, includes seeding"
        },
        mib(hwm.saturating_sub(rss_before)),
    );

    // The same export in a process that never seeded.
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .arg("--export-only")
        .arg(&db)
        .arg(user.email.as_str())
        .status()
        .unwrap();
    assert!(child.success());
}

/// One user with `experiments` experiments, each with one completed batch run of `per_run`
/// iterations.
async fn seed(store: &SqliteStore, experiments: u32, per_run: u32) -> User {
    let now = Timestamp::now();
    let user = echo_benches::user(now);
    store.create_user(&user).await.unwrap();
    for x in 0..experiments {
        let age = i64::from(x) * 60_000_000;
        let e = echo_benches::experiment(user.id, now, age, ExperimentStatus::Completed);
        let at = e.created_at;
        let debit = QuotaDebit {
            user_id: user.id,
            amount: per_run,
            limit: u32::MAX,
        };
        let job = echo_core::runner::RunExperimentPayload {
            user_id: e.user_id,
            experiment_id: e.id,
        }
        .into_job(at);
        store.create_experiment(&e, debit, &job).await.unwrap();
        let run = BatchRun::new(e.id, ProviderKind::OpenAi, "gpt-4o-mini", per_run, at);
        store.create_batch_run(&run).await.unwrap();
        for start in (0..per_run).step_by(BATCH as usize) {
            let rows: Vec<Iteration> = (start..per_run.min(start + BATCH))
                .map(|i| echo_benches::iteration_answering(run.id, i, at, ANSWER))
                .collect();
            store.record_iterations(&rows).await.unwrap();
        }
        let update = BatchRunUpdate {
            status: BatchRunStatus::Completed,
            metrics: Some(echo_core::conformance::fixtures::batch_metrics(1.0)),
            visibility_rate: Some(1.0),
            cost_micros_usd: u64::from(per_run) * 120,
            error: None,
            started_at: Some(at),
            completed_at: Some(at),
        };
        store.update_batch_run(run.id, &update).await.unwrap();
    }
    store.get_user(user.id).await.unwrap()
}

/// Runs the export as the HTTP route does (a task writing into a bounded channel) and reads
/// it as the body would, keeping nothing. Returns the bytes, the iterations seen (occurrences
/// of `"raw_response":`, counted across chunk boundaries) and the time.
async fn export(store: Arc<SqliteStore>, user: User) -> (u64, u64, Duration) {
    const NEEDLE: &[u8] = b"\"raw_response\":";
    let started = Instant::now();
    let (mut tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(CHANNEL);
    let task = tokio::spawn(async move {
        let store: Arc<DynStore> = store;
        export_user(store.as_ref(), &user, &mut tx).await
    });
    let (mut bytes, mut found) = (0u64, 0u64);
    // The last `NEEDLE.len() - 1` bytes seen: a match that straddles two chunks starts there.
    let mut tail: Vec<u8> = Vec::new();
    while let Some(chunk) = rx.recv().await {
        bytes += chunk.len() as u64;
        tail.extend_from_slice(&chunk[..chunk.len().min(NEEDLE.len() - 1)]);
        found += count(&tail, NEEDLE) + count(&chunk, NEEDLE);
        tail.clear();
        tail.extend_from_slice(&chunk[chunk.len().saturating_sub(NEEDLE.len() - 1)..]);
    }
    task.await.unwrap().unwrap();
    (bytes, found, started.elapsed())
}

fn count(haystack: &[u8], needle: &[u8]) -> u64 {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count() as u64
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn mib_bytes(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

/// About 1 KB (1,019 bytes) of markdown, as a provider answers.
const ANSWER: &str = "Here are some strong options for a 20-person B2B startup:\n\n\
1. **HubSpot** – known for its intuitive interface and a generous free tier; HubSpot's \
marketing tools integrate tightly with the CRM, and its sequences suit outbound teams.\n\
2. **Salesforce** – the most customisable option, though advanced features cost extra and \
setup often needs a consultant or a dedicated administrator.\n\
3. **Pipedrive** – a pipeline-first CRM that sales-led teams adopt quickly; reporting is \
simpler than Salesforce's, and automations cover the common follow-ups.\n\n\
If you want one all-in-one option, HubSpot is hard to beat. Consider how each one fits your \
sales process, your integrations and your budget before you commit, and try a free trial of \
two or three of them with real deals from your pipeline. Check data residency, seat pricing \
at your expected headcount in two years, and how easily you can export your data if you \
later decide to switch.";
