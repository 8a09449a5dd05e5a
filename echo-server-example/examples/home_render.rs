//! Server render time of the home dashboard (issue #12's budget: p99 < 20 ms on SQLite for a
//! user with 10,000 experiments and 100,000 iterations).
//!
//! Seeds a SQLite file through the store traits (not HTTP): one user owning 10,000 completed
//! experiments, each with one completed batch run of 10 iterations (`record_iterations` in one
//! call per run) and its metrics, completions one minute apart and four providers in turn.
//! Then serves the real router (`build_app` + `run`) on a loopback port and sends `GET /` with
//! an API key, sequentially: 50 warm-up requests, then the measured ones. Prints p50, p90, p99
//! and the maximum of the whole response (headers and body read), as a client sees it, and
//! the page's size (plain and brotli-compressed: the drawn charts at their full 200 runs).
//! Before serving, it times the render's fixed phases in-process (see `phases`).
//!
//! ```sh
//! cargo run --release -p echo-server-example --example home_render [-- EXPERIMENTS REQUESTS]
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use echo_core::auth::{KeyEnvironment, Quota, RateLimitConfig, TierQuotas};
use echo_core::model::*;
use echo_core::service::{BrandTrend, TREND_RUNS};
use echo_core::store::{DynStore, ExperimentStore, RunStore, UserStore};
use echo_server_example::config::ServerConfig;
use echo_server_example::state::{AppState, StateOptions, StoreExtras};
use echo_server_example::web::chart;
use echo_store_sqlite::{SqliteConfig, SqliteStore};
use tokio_util::sync::CancellationToken;

const ITERATIONS_PER_RUN: u32 = 10;

fn main() {
    let args: Vec<u32> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect();
    let experiments = args.first().copied().unwrap_or(10_000);
    let requests = args.get(1).copied().unwrap_or(1_000);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ServerConfig::default();
        config.privacy.outbox_dir = dir.path().join("outbox").display().to_string();
        let store = SqliteStore::open(dir.path().join("echo.db"), SqliteConfig::default())
            .await
            .unwrap();
        let started = Instant::now();
        let user = seed(&store, experiments).await;
        println!(
            "seeded {experiments} experiments × 1 run × {ITERATIONS_PER_RUN} iterations = {} \
             iterations in {:.1?}",
            u64::from(experiments) * u64::from(ITERATIONS_PER_RUN),
            started.elapsed()
        );
        phases(&store, user.id).await;
        let store: Arc<DynStore> = Arc::new(store);
        let many = Quota::new(10_000_000, Duration::from_secs(60)).unwrap();
        let state = AppState::build(
            store,
            config,
            StateOptions {
                rate_limits: RateLimitConfig {
                    general: TierQuotas::uniform(many),
                    ..RateLimitConfig::default()
                },
                ..StateOptions::default()
            },
            StoreExtras::default(),
        )
        .unwrap();
        let key = state
            .keys
            .create(
                user.id,
                Label::parse("bench").unwrap(),
                KeyEnvironment::Live,
                None,
                Timestamp::now(),
            )
            .await
            .unwrap()
            .key
            .expose()
            .to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let app = echo_server_example::build_app(state);
        let stop = CancellationToken::new();
        let token = stop.clone();
        let server = tokio::spawn(async move {
            echo_server_example::run(listener, app, async move { token.cancelled().await }).await
        });
        let client = reqwest::Client::new();
        let get = || async {
            let t = Instant::now();
            let r = client
                .get(&url)
                .header("x-api-key", &key)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let body = r.text().await.unwrap();
            (t.elapsed(), body.len())
        };
        let (_, size) = get().await;
        // This build's reqwest does not decompress, so the body read is what went over the wire.
        let brotli = client
            .get(&url)
            .header("x-api-key", &key)
            .header("accept-encoding", "br")
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .len();
        for _ in 0..50 {
            get().await;
        }
        // The baseline, interleaved so both see the same load on a shared machine: `/healthz`
        // (the router, the middleware and the HTTP round trip, no store read and no page).
        let health = format!("{url}healthz");
        let mut times = Vec::with_capacity(requests as usize);
        let mut base = Vec::with_capacity(requests as usize);
        for _ in 0..requests {
            times.push(get().await.0);
            let t = Instant::now();
            let r = client.get(&health).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.bytes().await.unwrap();
            base.push(t.elapsed());
        }
        times.sort();
        base.sort();
        let q = |v: &[Duration], q: f64| v[((v.len() as f64 * q).ceil() as usize).saturating_sub(1)];
        let at = |p: f64| q(&times, p);
        println!(
            "baseline GET /healthz: p50 {:.2?}, p90 {:.2?}, p99 {:.2?}, max {:.2?}",
            q(&base, 0.5),
            q(&base, 0.9),
            q(&base, 0.99),
            base[base.len() - 1]
        );
        println!(
            "GET / ({size} B of HTML, {brotli} B with br), {requests} sequential requests: p50 {:.2?}, p90 {:.2?}, \
             p99 {:.2?}, max {:.2?}",
            at(0.50),
            at(0.90),
            at(0.99),
            times[times.len() - 1]
        );
        stop.cancel();
        server.await.unwrap().unwrap();
    });
}

/// Where a render's fixed cost goes, in-process: the charts' store read and decode, the
/// whole-run read it replaced (`recent_completed_runs` + `BrandTrend::from_runs`, kept to
/// compare in the same run and checked to give the same charts), and the SVG geometry.
/// The reads alternate so both see the same load.
async fn phases(store: &SqliteStore, owner: UserId) {
    const ROUNDS: usize = 200;
    let mut whole = Vec::with_capacity(ROUNDS);
    let mut narrow = Vec::with_capacity(ROUNDS);
    let mut charts = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let runs = store
            .recent_completed_runs(owner, TREND_RUNS)
            .await
            .unwrap();
        let before = BrandTrend::from_runs(&runs, runs.len() >= TREND_RUNS as usize);
        whole.push(t.elapsed());
        let t = Instant::now();
        let runs = store.recent_trend_runs(owner, TREND_RUNS).await.unwrap();
        let after = BrandTrend::from_trend_runs(&runs, runs.len() >= TREND_RUNS as usize);
        narrow.push(t.elapsed());
        assert_eq!(before, after);
        let t = Instant::now();
        let lines = chart::visibility_lines(&after.series);
        let bars = chart::share_bars(&after.share_of_voice);
        charts.push(t.elapsed());
        assert!(lines.is_some() && !bars.bars.is_empty());
    }
    for (name, v) in [
        ("trend read, whole runs (before)", &mut whole),
        ("trend read, narrow (after)", &mut narrow),
        ("chart geometry", &mut charts),
    ] {
        v.sort();
        println!(
            "{name}: p50 {:.2?}, p99 {:.2?} ({ROUNDS} rounds)",
            v[ROUNDS / 2 - 1],
            v[ROUNDS * 99 / 100 - 1]
        );
    }
}

/// One user with `experiments` completed experiments, each with one completed run.
async fn seed(store: &SqliteStore, experiments: u32) -> User {
    let now = Timestamp::now();
    let user = echo_benches::user(now);
    store.create_user(&user).await.unwrap();
    let providers = [
        ProviderKind::OpenAi,
        ProviderKind::Anthropic,
        ProviderKind::Gemini,
        ProviderKind::Simulated,
    ];
    for x in 0..experiments {
        let age = i64::from(experiments - x) * 60_000_000;
        let e = echo_benches::experiment(user.id, now, age, ExperimentStatus::Completed);
        let at = e.created_at;
        let debit = QuotaDebit {
            user_id: user.id,
            amount: ITERATIONS_PER_RUN,
            limit: u32::MAX,
        };
        let job = echo_core::runner::RunExperimentPayload {
            user_id: e.user_id,
            experiment_id: e.id,
        }
        .into_job(at);
        store.create_experiment(&e, debit, &job).await.unwrap();
        let provider = providers[x as usize % providers.len()];
        let run = BatchRun::new(e.id, provider, "model", ITERATIONS_PER_RUN, at);
        store.create_batch_run(&run).await.unwrap();
        let rows: Vec<Iteration> = (0..ITERATIONS_PER_RUN)
            .map(|i| echo_benches::iteration(run.id, i, at))
            .collect();
        store.record_iterations(&rows).await.unwrap();
        let visibility = f64::from(x % 11) / 10.0;
        let update = BatchRunUpdate {
            status: BatchRunStatus::Completed,
            metrics: Some(echo_core::conformance::fixtures::batch_metrics(visibility)),
            visibility_rate: Some(visibility),
            cost_micros_usd: 1_200,
            error: None,
            started_at: Some(at),
            completed_at: Some(at),
        };
        store.update_batch_run(run.id, &update).await.unwrap();
    }
    store.get_user(user.id).await.unwrap()
}
