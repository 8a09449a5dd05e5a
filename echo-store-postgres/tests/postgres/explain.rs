//! `EXPLAIN (FORMAT JSON)` of the critical queries on a realistically sized, vacuumed and
//! analysed database (over 10,000 experiments, 100,000 iterations, 20,000 users and API keys):
//! each uses its intended index and none sequentially scans a large table.

use echo_core::conformance::fixtures::{
    api_key, at, batch_run, busy_log_event, completed_update, failed_iteration, iteration,
    mixed_queue_job, new_user, session, skewed_experiments,
};
use echo_core::model::{BatchRun, ProviderKind, UserId};
use echo_core::store::{AuditQuery, AuditStore, RunStore, SessionStore};
use echo_store_postgres::PgStore;
use echo_store_postgres::queries::{self as q, AuditArg};
use serde_json::Value;
use sqlx::PgConnection;

/// Tables big enough here (and in production) that a sequential scan is a bug.
const LARGE_TABLES: &[&str] = &[
    "users",
    "api_keys",
    "experiments",
    "batch_runs",
    "iterations",
    "jobs",
    "audit_events",
    "sessions",
    "audit_erasures",
    "audit_checkpoints",
];

struct Seeded {
    store: PgStore,
    heavy: UserId,
    experiment: uuid::Uuid,
    run: uuid::Uuid,
    public_id: String,
    /// The id and owner of the key with `public_id`.
    key: (uuid::Uuid, uuid::Uuid),
    /// A session of the heavy user.
    session: uuid::Uuid,
}

async fn seeded() -> Option<Seeded> {
    let store = crate::fresh_store().await?;
    let mut raw = crate::raw(&store).await;
    // 20,000 users in bulk, spread over tiers and reset days.
    sqlx::query(
        "INSERT INTO users (id, email, password_hash, pricing_tier, prompts_used, quota_reset_at, \
         is_active, is_admin, created_at, updated_at) \
         SELECT gen_random_uuid(), 'bulk-' || g || '@example.com', '$argon2id$x', \
         (ARRAY['free', 'pro', 'enterprise'])[1 + g % 3], 0, \
         now() + make_interval(hours => g % 720), true, false, now(), now() \
         FROM generate_series(1, 20000) AS g",
    )
    .execute(&mut raw)
    .await
    .unwrap();

    let mut owners = Vec::new();
    for _ in 0..21 {
        owners.push(new_user(&store).await.id);
    }
    let heavy = owners[0];
    let experiments = skewed_experiments(&owners, 10_000, 250);
    store.import_experiments(&experiments).await.unwrap();

    // 10,000 runs of the heavy user with 10 iterations each: 100,000 iterations.
    let runs: Vec<BatchRun> = experiments
        .iter()
        .filter(|e| e.user_id == heavy)
        .take(5_000)
        .flat_map(|e| {
            [ProviderKind::OpenAi, ProviderKind::Anthropic].map(|p| {
                let mut run = batch_run(e, p, e.created_at);
                let done = completed_update(Some(0.5), e.created_at);
                run.status = done.status;
                run.visibility_rate = done.visibility_rate;
                run.metrics = done.metrics;
                run.completed_at = done.completed_at;
                run
            })
        })
        .collect();
    store.import_batch_runs(&runs).await.unwrap();
    // The other users' runs: 100,000 more, so the heavy user's are a tenth of the table.
    let light_runs: Vec<BatchRun> = experiments
        .iter()
        .filter(|e| e.user_id != heavy)
        .flat_map(|e| {
            (0..20).map(|i| {
                let mut run = batch_run(e, ProviderKind::ALL[i % 6], e.created_at);
                run.status = echo_core::model::BatchRunStatus::Completed;
                run.visibility_rate = Some(0.25);
                run.completed_at = Some(e.created_at);
                run
            })
        })
        .collect();
    store.import_batch_runs(&light_runs).await.unwrap();
    let iterations: Vec<_> = runs
        .iter()
        .flat_map(|run| {
            (0..10).map(move |i| {
                if i % 4 == 0 {
                    failed_iteration(run.id, i, run.created_at)
                } else {
                    iteration(run.id, i, run.created_at)
                }
            })
        })
        .collect();
    for chunk in iterations.chunks(10_000) {
        store.record_iterations(chunk).await.unwrap();
    }

    let keys: Vec<_> = (0..20_000)
        .map(|i| api_key(owners[i % owners.len()], at(i as i64)))
        .collect();
    store.import_api_keys(&keys).await.unwrap();
    let jobs: Vec<_> = (0..10_000).map(mixed_queue_job).collect();
    store.enqueue_many(&jobs).await.unwrap();
    for i in 0..20 {
        let event = busy_log_event(i, &owners);
        store.append_audit(&event).await.unwrap();
    }
    // 20,000 more events in bulk (their hashes are not a chain: only the plans matter here).
    sqlx::query(
        "INSERT INTO audit_events (seq, actor_user_id, action, resource_type, resource_id, \
         details, created_at, prev_hash, hash) \
         SELECT 100 + g, (SELECT id FROM users ORDER BY id OFFSET g % 1000 LIMIT 1), \
         (ARRAY['login', 'create_experiment', 'delete_key', 'update_profile'])[1 + g % 4], \
         'experiment', 'res-' || g, '{}', now(), \
         decode(repeat('00', 32), 'hex'), decode(repeat('00', 32), 'hex') \
         FROM generate_series(1, 20000) AS g",
    )
    .execute(&mut raw)
    .await
    .unwrap();
    // A live session per user in bulk (a tenth of them revoked), then a few of the heavy
    // user's through the store.
    sqlx::query(
        "INSERT INTO sessions (id, user_id, secret_hash, created_at, expires_at, revoked_at) \
         SELECT gen_random_uuid(), id, decode(repeat('00', 32), 'hex'), now(), \
         now() + interval '12 hours', CASE WHEN random() < 0.1 THEN now() END FROM users",
    )
    .execute(&mut raw)
    .await
    .unwrap();
    let mut heavy_session = None;
    for i in 0..5 {
        let s = session(heavy, at(i));
        store.create_session(&s).await.unwrap();
        heavy_session = Some(*s.id.as_uuid());
    }
    // Retention half done: the heavy user's older half of iterations anonymized (out of the
    // partial index), and the light users' runs given old iterations of every tier.
    sqlx::query(
        "UPDATE iterations SET raw_response = NULL, is_anonymized = true, anonymized_at = now() \
         WHERE created_at < $1",
    )
    .bind(at(150_000).as_datetime())
    .execute(&mut raw)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO iterations (id, batch_run_id, idx, raw_response, mentions, is_success, \
         latency_ms, input_tokens, output_tokens, created_at, is_anonymized) \
         SELECT gen_random_uuid(), b.id, g, 'an answer', '[]', true, 100, 10, 20, \
         b.created_at - interval '100 days', false \
         FROM (SELECT id, created_at FROM batch_runs WHERE user_id <> $1 LIMIT 20000) AS b, \
         generate_series(0, 4) AS g",
    )
    .bind(*heavy.as_uuid())
    .execute(&mut raw)
    .await
    .unwrap();
    // A few hundred bulk users inactive and due for deletion.
    sqlx::query(
        "UPDATE users SET is_active = false, \
         scheduled_deletion_at = now() - make_interval(hours => (random() * 1000)::int) \
         WHERE email LIKE 'bulk-%' AND random() < 0.02",
    )
    .execute(&mut raw)
    .await
    .unwrap();
    // Half the jobs name a user in their payload, as run_experiment jobs do.
    sqlx::query(
        "UPDATE jobs SET payload = jsonb_build_object('user_id', \
         (SELECT id FROM users ORDER BY id OFFSET (abs(hashtext(jobs.id::text)) % 1000) LIMIT 1)::text) \
         WHERE random() < 0.5",
    )
    .execute(&mut raw)
    .await
    .unwrap();
    // Erasure records and checkpoints in bulk, as years of operation leave them.
    sqlx::query(
        "INSERT INTO audit_erasures (seq, erased_at, pseudonym) \
         SELECT g, now(), 'hmac:' || (g % 100) FROM generate_series(101, 20100) AS g",
    )
    .execute(&mut raw)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO audit_checkpoints (seq, head_hash, created_at, signature) \
         SELECT g * 10, decode(repeat('07', 32), 'hex'), now(), decode(repeat('01', 64), 'hex') \
         FROM generate_series(1, 20000) AS g",
    )
    .execute(&mut raw)
    .await
    .unwrap();
    // What autovacuum does on a live database: statistics for the planner and a visibility map
    // for index-only scans.
    sqlx::query("VACUUM ANALYZE")
        .execute(&mut raw)
        .await
        .unwrap();

    Some(Seeded {
        store,
        heavy,
        experiment: *experiments[0].id.as_uuid(),
        run: *runs[0].id.as_uuid(),
        public_id: keys[12_345].public_id.clone(),
        key: (*keys[12_345].id.as_uuid(), *keys[12_345].user_id.as_uuid()),
        session: heavy_session.unwrap(),
    })
}

/// One plan node: its type, table and index.
#[derive(Debug)]
struct Node {
    kind: String,
    relation: Option<String>,
    index: Option<String>,
}

fn walk(plan: &Value, out: &mut Vec<Node>) {
    let text = |k: &str| plan.get(k).and_then(Value::as_str).map(str::to_owned);
    out.push(Node {
        kind: text("Node Type").unwrap_or_default(),
        relation: text("Relation Name"),
        index: text("Index Name"),
    });
    if let Some(children) = plan.get("Plans").and_then(Value::as_array) {
        for child in children {
            walk(child, out);
        }
    }
}

async fn plan(conn: &mut PgConnection, sql: &str, args: &[AuditArg]) -> (Vec<Node>, Value) {
    let explain = format!("EXPLAIN (FORMAT JSON) {sql}");
    let mut query = sqlx::query_scalar::<_, sqlx::types::Json<Value>>(sqlx::AssertSqlSafe(explain));
    for arg in args {
        query = match arg.clone() {
            AuditArg::Int(i) => query.bind(i),
            AuditArg::Uuid(u) => query.bind(u),
            AuditArg::Text(t) => query.bind(t),
            AuditArg::Time(t) => query.bind(t),
        };
    }
    let json = query.fetch_one(conn).await.unwrap().0;
    let root = &json[0]["Plan"];
    let mut nodes = Vec::new();
    walk(root, &mut nodes);
    (nodes, json)
}

struct Case {
    name: &'static str,
    sql: String,
    args: Vec<AuditArg>,
    /// Each entry: at least one of these indexes appears in the plan.
    uses: Vec<&'static [&'static str]>,
    /// Listings: the index delivers the order, so no Sort node.
    no_sort: bool,
    /// Large tables this query may read whole (a count over most of a table's rows).
    may_scan: &'static [&'static str],
}

impl Case {
    fn may_scan(mut self, tables: &'static [&'static str]) -> Self {
        self.may_scan = tables;
        self
    }
}

fn case(
    name: &'static str,
    sql: &str,
    args: Vec<AuditArg>,
    uses: &[&'static [&'static str]],
    no_sort: bool,
) -> Case {
    Case {
        name,
        sql: sql.to_owned(),
        args,
        uses: uses.to_vec(),
        no_sort,
        may_scan: &[],
    }
}

fn cases(s: &Seeded) -> Vec<Case> {
    use AuditArg::{Int, Text, Time, Uuid};
    let heavy = Uuid(*s.heavy.as_uuid());
    let cursor_at = Time(at(5_000 * 60).as_datetime());
    let cursor_id = Uuid(s.experiment);
    let audit = |query: AuditQuery| q::audit_list(&query);
    let (by_actor, by_actor_args) = audit(AuditQuery {
        actor_user_id: Some(s.heavy),
        ..AuditQuery::default()
    });
    let (by_action, by_action_args) = audit(AuditQuery {
        action: Some("login".into()),
        ..AuditQuery::default()
    });
    vec![
        case(
            "experiments page",
            q::EXPERIMENTS_PAGE,
            vec![heavy.clone(), Int(21)],
            &[&["experiments_user_created_idx"]],
            true,
        ),
        case(
            "experiments page after cursor",
            q::EXPERIMENTS_PAGE_AFTER,
            vec![heavy.clone(), Int(21), cursor_at.clone(), cursor_id.clone()],
            &[&["experiments_user_created_idx"]],
            true,
        ),
        case(
            "experiments page by status",
            q::EXPERIMENTS_PAGE_BY_STATUS,
            vec![heavy.clone(), Int(21), Text("completed".into())],
            &[&["experiments_user_status_created_idx"]],
            true,
        ),
        case(
            "experiments page by status after cursor",
            q::EXPERIMENTS_PAGE_BY_STATUS_AFTER,
            vec![
                heavy.clone(),
                Int(21),
                Text("completed".into()),
                cursor_at,
                cursor_id,
            ],
            &[&["experiments_user_status_created_idx"]],
            true,
        ),
        case(
            "dashboard experiments by status",
            q::DASHBOARD_EXPERIMENTS_BY_STATUS,
            vec![heavy.clone()],
            &[&["experiments_user_status_created_idx"]],
            false,
        ),
        case(
            "dashboard runs",
            q::DASHBOARD_RUNS,
            vec![heavy.clone()],
            &[&["batch_runs_dashboard_idx"]],
            false,
        ),
        case(
            "dashboard trend",
            q::DASHBOARD_TREND,
            vec![heavy.clone(), Time(at(-86_400).as_datetime())],
            &[&["batch_runs_trend_idx"]],
            false,
        ),
        case(
            "latest completed runs",
            q::RECENT_COMPLETED_RUNS,
            vec![heavy.clone(), Int(200)],
            &[&["batch_runs_trend_idx"]],
            true,
        ),
        case(
            "latest completed runs, narrowly for the charts",
            q::RECENT_TREND_RUNS,
            vec![heavy.clone(), Int(200)],
            &[&["batch_runs_trend_idx"]],
            true,
        ),
        case(
            "API key lookup",
            q::API_KEY_BY_PUBLIC_ID,
            vec![Text(s.public_id.clone())],
            &[&["api_keys_public_id_key", "api_keys_active_public_id_idx"]],
            true,
        ),
        case(
            "API key lookup with its owner's status",
            q::API_KEY_AUTH_BY_PUBLIC_ID,
            vec![Text(s.public_id.clone())],
            &[
                &["api_keys_public_id_key", "api_keys_active_public_id_idx"],
                &["users_pkey"],
            ],
            true,
        ),
        case(
            "API key expiry",
            q::API_KEY_SET_EXPIRY,
            vec![Uuid(s.key.0), Uuid(s.key.1), Time(at(9).as_datetime())],
            &[&["api_keys_pkey"]],
            true,
        ),
        case(
            "API keys of a user",
            q::API_KEYS_BY_USER,
            vec![heavy.clone()],
            &[&["api_keys_user_created_idx"]],
            // Every key of the user, unlimited: sorting a few hundred rows may be cheaper.
            false,
        ),
        case(
            "session lookup with its owner's status",
            q::SESSION_AUTH_BY_ID,
            vec![Uuid(s.session)],
            &[&["sessions_pkey"], &["users_pkey"]],
            true,
        ),
        case(
            "revoke a session",
            q::SESSION_REVOKE,
            vec![Uuid(s.session), heavy.clone(), Time(at(9).as_datetime())],
            &[&["sessions_pkey"]],
            true,
        ),
        case(
            "revoke a user's sessions",
            q::SESSIONS_REVOKE_BY_USER,
            vec![heavy.clone(), Time(at(9).as_datetime())],
            &[&["sessions_user_idx"]],
            true,
        ),
        case(
            "prune sessions",
            q::SESSIONS_PRUNE,
            vec![Time(at(500).as_datetime()), Int(100)],
            &[&["sessions_expires_idx"], &["sessions_revoked_idx"]],
            false,
        ),
        case(
            "due recurring experiments",
            q::EXPERIMENTS_DUE_RECURRING,
            vec![Time(at(7_200).as_datetime()), Int(100)],
            &[&["experiments_due_recurring_idx"]],
            // Few rows due: the planner may fetch them by bitmap and sort them.
            false,
        ),
        case(
            "batch runs of an experiment",
            q::BATCH_RUNS_BY_EXPERIMENT,
            vec![Uuid(s.experiment)],
            &[&[
                "batch_runs_experiment_created_idx",
                "batch_runs_experiment_provider_status_idx",
            ]],
            false,
        ),
        case(
            "iteration analysis",
            q::ITERATIONS_FOR_ANALYSIS,
            vec![Uuid(s.run)],
            &[&["iterations_analysis_idx"]],
            false,
        ),
        case(
            "iterations page",
            q::ITERATIONS_PAGE,
            vec![Uuid(s.run), Int(0), Int(100)],
            &[&["iterations_run_idx_key"]],
            true,
        ),
        case(
            "sources of an iterations page",
            q::ITERATION_SOURCES_PAGE,
            vec![Uuid(s.run), Int(0), Int(99)],
            &[&["iterations_run_idx_key"], &["iteration_sources_pkey"]],
            // An incremental sort: rows come by idx, and only one iteration's few sources are
            // ordered by position at a time.
            false,
        ),
        case(
            "recorded indexes",
            q::ITERATION_INDEXES,
            vec![Uuid(s.run)],
            &[&["iterations_run_idx_key"]],
            true,
        ),
        case(
            "quota reset sweep",
            q::USERS_DUE_QUOTA_RESET,
            vec![Time(at(-86_400 * 400).as_datetime())],
            &[&["users_quota_reset_idx", "users_tier_quota_reset_idx"]],
            false,
        ),
        case(
            // Billing's query (not a store method): a tier's users whose period ends soon.
            "users of a tier by reset",
            "SELECT id FROM users WHERE pricing_tier = $1 AND quota_reset_at < $2",
            vec![
                Text("enterprise".into()),
                Time(at(-86_400 * 400).as_datetime()),
            ],
            &[&["users_tier_quota_reset_idx"]],
            false,
        ),
        case(
            "claim",
            q::JOBS_CLAIM,
            vec![
                Time(at(500).as_datetime()),
                Int(10),
                Text("w".into()),
                Time(at(530).as_datetime()),
            ],
            &[&["jobs_claimable_idx"], &["jobs_lease_expiry_idx"]],
            false,
        ),
        case(
            "queue stats",
            q::JOB_STATS,
            vec![Time(at(200).as_datetime())],
            &[
                &["jobs_claimable_idx"],
                &["jobs_lease_expiry_idx"],
                &["jobs_failed_idx"],
            ],
            false,
        ),
        case(
            "prune jobs",
            q::JOB_PRUNE,
            vec![Time(at(200).as_datetime()), Int(100)],
            &[&["jobs_finished_idx"]],
            false,
        ),
        case(
            "anonymize iterations",
            q::ITERATIONS_ANONYMIZE,
            vec![
                Text("free".into()),
                Time(at(250_000).as_datetime()),
                Int(2_000),
                Time(at(300_000).as_datetime()),
            ],
            &[
                &["iterations_anonymize_idx"],
                &["batch_runs_pkey"],
                &["users_pkey"],
                &["iterations_pkey"],
            ],
            true,
        ),
        case(
            "count anonymizable iterations",
            q::ITERATIONS_ANONYMIZABLE_COUNT,
            vec![Text("pro".into()), Time(at(250_000).as_datetime())],
            &[&["iterations_anonymize_idx"]],
            false,
        )
        // A dry run counts every qualifying row: hashing the runs (and the tier's users) once
        // beats probing them once per iteration, and the iterations are still read from the
        // partial index only.
        .may_scan(&["batch_runs", "users"]),
        case(
            "users due for deletion",
            q::USERS_DUE_FOR_DELETION,
            vec![Time(at(0).as_datetime()), Int(100)],
            &[&["users_scheduled_deletion_idx"]],
            true,
        ),
        case(
            "delete a user's jobs",
            q::JOBS_DELETE_BY_PAYLOAD_USER,
            vec![Text(s.heavy.to_string())],
            &[&["jobs_payload_user_idx"]],
            false,
        ),
        case(
            "erase an actor",
            q::AUDIT_ERASE_ACTOR,
            vec![
                heavy.clone(),
                Text("hmac:heavy".into()),
                Time(at(9).as_datetime()),
            ],
            &[&["audit_events_actor_idx"]],
            false,
        ),
        case(
            "audit erasures from a seq",
            q::AUDIT_ERASURES_RANGE,
            vec![Int(10_000), Int(100)],
            &[&["audit_erasures_pkey"]],
            true,
        ),
        case(
            "latest audit checkpoint",
            q::AUDIT_CHECKPOINT_LATEST,
            vec![],
            &[&["audit_checkpoints_pkey"]],
            true,
        ),
        case(
            "audit checkpoints from a seq",
            q::AUDIT_CHECKPOINTS_RANGE,
            vec![Int(100_000), Int(100)],
            &[&["audit_checkpoints_pkey"]],
            true,
        ),
        case(
            "delete archived audit events",
            q::AUDIT_DELETE_THROUGH,
            vec![Int(5_000)],
            &[&["audit_events_pkey"]],
            false,
        ),
        case(
            "audit bounds",
            q::AUDIT_BOUNDS,
            vec![],
            &[&["audit_events_pkey"]],
            false,
        ),
        case(
            "audit listing by actor",
            &by_actor,
            by_actor_args,
            &[&["audit_events_actor_idx"]],
            // An actor's few events may be fetched by bitmap and sorted.
            false,
        ),
        case(
            "audit listing by action",
            &by_action,
            by_action_args,
            // A common action: walking the log newest first and filtering reaches a page sooner.
            &[&["audit_events_action_idx", "audit_events_pkey"]],
            true,
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn critical_queries_use_their_indexes() {
    let Some(s) = seeded().await else {
        return;
    };
    // The seed really is of the promised size.
    let dashboard = s.store.dashboard(s.heavy, at(0)).await.unwrap();
    assert_eq!(dashboard.iterations_total, 100_000);
    assert_eq!(dashboard.experiments_total, 10_000);

    let mut conn = crate::raw(&s.store).await;
    let mut failures = Vec::new();
    for c in cases(&s) {
        let (nodes, json) = plan(&mut conn, &c.sql, &c.args).await;
        let shown = || serde_json::to_string_pretty(&json).unwrap_or_default();
        for alternatives in &c.uses {
            if !nodes.iter().any(|n| {
                n.index
                    .as_deref()
                    .is_some_and(|i| alternatives.contains(&i))
            }) {
                failures.push(format!(
                    "{}: uses none of {alternatives:?}:\n{}",
                    c.name,
                    shown()
                ));
            }
        }
        for n in &nodes {
            if n.kind == "Seq Scan"
                && n.relation
                    .as_deref()
                    .is_some_and(|r| LARGE_TABLES.contains(&r) && !c.may_scan.contains(&r))
            {
                failures.push(format!(
                    "{}: sequential scan of {:?}:\n{}",
                    c.name,
                    n.relation,
                    shown()
                ));
            }
            if c.no_sort && n.kind.contains("Sort") {
                failures.push(format!("{}: sorts:\n{}", c.name, shown()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Prints every plan's nodes; run with `--ignored --nocapture` when changing queries or
/// indexes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "diagnostic output, not a check"]
async fn print_plans() {
    let Some(s) = seeded().await else {
        return;
    };
    let mut conn = crate::raw(&s.store).await;
    for c in cases(&s) {
        let (nodes, _) = plan(&mut conn, &c.sql, &c.args).await;
        println!("{}:", c.name);
        for n in nodes {
            println!(
                "  {} {} {}",
                n.kind,
                n.relation.unwrap_or_default(),
                n.index.unwrap_or_default()
            );
        }
    }
}
