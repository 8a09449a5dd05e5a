//! `EXPLAIN QUERY PLAN` of the critical queries, on a seeded and analysed database: each uses
//! its intended index, none scans a large table, and listings never sort.

use echo_core::conformance::fixtures::{
    api_key, at, batch_run, busy_log_event, completed_update, failed_iteration, iteration,
    mixed_queue_job, session, skewed_experiments, user,
};
use echo_core::model::{AuditCheckpoint, PricingTier, ProviderKind, UserId};
use echo_core::store::{
    ApiKeyStore, AuditQuery, AuditStore, JobQueue, RunStore, SessionStore, UserStore,
};
use echo_store_sqlite::SqliteStore;
use echo_store_sqlite::queries as q;
use rusqlite::types::Value;

/// What the seeded database looks like to a query.
struct Seeded {
    store: SqliteStore,
    heavy: UserId,
    experiment: Value,
    run: Value,
    public_id: String,
    /// The id and owner of the key with `public_id`.
    key: (Value, Value),
    /// The id and owner of a session.
    session: (Value, Value),
}

/// One heavy user (2,000 experiments, two runs on 200 of them) among 20 light ones, plus keys,
/// jobs in every state and audit events; with `analyze`, statistics as a long-running database
/// has them (the planner then weighs the real, skewed distribution).
async fn seeded(analyze: bool) -> Seeded {
    let store = crate::temp_store().await;
    let mut owners = Vec::new();
    for n in 0..21 {
        let mut u = user();
        // The heavy user is on the free tier; the light ones are spread over all three, and a
        // few are inactive and due for deletion.
        u.tier = [PricingTier::Free, PricingTier::Pro, PricingTier::Enterprise][n % 3];
        if n % 7 == 6 {
            u.is_active = false;
            u.scheduled_deletion_at = Some(at(n as i64 * 3_600));
        }
        store.create_user(&u).await.unwrap();
        owners.push(u.id);
    }
    let heavy = owners[0];
    let experiments = skewed_experiments(&owners, 2_000, 50);
    store.import_experiments(&experiments).await.unwrap();

    let mut first_run = None;
    for e in experiments.iter().filter(|e| e.user_id == heavy).take(200) {
        for provider in [ProviderKind::OpenAi, ProviderKind::Anthropic] {
            let run = batch_run(e, provider, e.created_at);
            store.create_batch_run(&run).await.unwrap();
            let its: Vec<_> = (0..10)
                .map(|i| {
                    if i % 4 == 0 {
                        failed_iteration(run.id, i, e.created_at)
                    } else {
                        iteration(run.id, i, e.created_at)
                    }
                })
                .collect();
            store.record_iterations(&its).await.unwrap();
            store
                .update_batch_run(run.id, &completed_update(Some(0.5), e.created_at))
                .await
                .unwrap();
            first_run.get_or_insert(run.id);
        }
    }

    // The light users' old iterations: a run each, of other tiers than the heavy user's.
    for e in experiments
        .iter()
        .filter(|e| e.user_id != heavy && e.created_at == at(0))
    {
        let run = batch_run(e, ProviderKind::Gemini, e.created_at);
        store.create_batch_run(&run).await.unwrap();
        let its: Vec<_> = (0..20).map(|i| iteration(run.id, i, at(-86_400))).collect();
        store.record_iterations(&its).await.unwrap();
    }
    // A retention pass half done: the oldest half of the heavy user's iterations anonymized,
    // so the partial index holds the remaining work and the recent rows.
    while store
        .anonymize_iterations(PricingTier::Free, at(100 * 60), 500, at(1))
        .await
        .unwrap()
        > 0
    {}

    let mut public_id = String::new();
    let mut last_key = (Value::Null, Value::Null);
    for (n, owner) in owners.iter().enumerate() {
        for i in 0..5 {
            let key = api_key(*owner, at(n as i64 * 10 + i));
            public_id.clone_from(&key.public_id);
            last_key = (
                Value::Blob(key.id.as_uuid().as_bytes().to_vec()),
                blob(owner),
            );
            store.create_api_key(&key).await.unwrap();
        }
    }
    let mut last_session = (Value::Null, Value::Null);
    for (n, owner) in owners.iter().enumerate() {
        for i in 0..10 {
            let mut s = session(*owner, at(n as i64 * 100 + i));
            if i % 5 == 0 {
                s.revoked_at = Some(at(n as i64 * 100 + i + 1));
            }
            last_session = (Value::Blob(s.id.as_uuid().as_bytes().to_vec()), blob(owner));
            store.create_session(&s).await.unwrap();
        }
    }
    for i in 0..400 {
        let mut j = mixed_queue_job(i);
        if i % 2 == 0 {
            j.payload = serde_json::json!({ "user_id": owners[i as usize % owners.len()] });
        }
        store.enqueue(&j).await.unwrap();
    }
    for i in 0..200 {
        let event = busy_log_event(i, &owners);
        store.append_audit(&event).await.unwrap();
    }
    store
        .pseudonymize_actor(owners[1], "hmac:one", at(300))
        .await
        .unwrap();
    for seq in (10..200).step_by(10) {
        let cp = AuditCheckpoint {
            seq,
            head_hash: [7; 32],
            created_at: at(seq as i64),
            signature: vec![1; 64],
        };
        store.put_audit_checkpoint(&cp).await.unwrap();
    }
    if analyze {
        crate::raw(&store).execute_batch("ANALYZE").unwrap();
    }

    Seeded {
        store,
        heavy,
        experiment: Value::Blob(experiments[0].id.as_uuid().as_bytes().to_vec()),
        run: Value::Blob(first_run.unwrap().as_uuid().as_bytes().to_vec()),
        public_id,
        key: last_key,
        session: last_session,
    }
}

fn blob(id: &UserId) -> Value {
    Value::Blob(id.as_uuid().as_bytes().to_vec())
}

/// The plan's detail lines, with realistic parameter values bound (STAT4 plans can depend on
/// them).
fn plan(store: &SqliteStore, sql: &str, params: Vec<Value>) -> Vec<String> {
    let conn = crate::raw(store);
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    stmt.query_map(rusqlite::params_from_iter(params), |r| {
        r.get::<_, String>(3)
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// Partial indexes of small sets, which a count may read whole: the scan visits only the rows
/// the count is about.
const SMALL_PARTIAL_INDEXES: &[&str] = &["jobs_lease_expiry_idx"];

/// Asserts that every `uses` fragment appears in the plan, that no table (or whole index) is
/// scanned, and, for listings, that no sort is needed.
fn assert_plan(name: &str, plan: &[String], uses: &[&str], may_sort: bool) {
    let text = plan.join("\n");
    for fragment in uses {
        assert!(
            text.contains(fragment),
            "{name}: plan lacks {fragment:?}:\n{text}"
        );
    }
    for line in plan {
        assert!(
            !line.starts_with("SCAN ")
                || line == "SCAN CONSTANT ROW"
                || SMALL_PARTIAL_INDEXES.iter().any(|i| line.ends_with(i)),
            "{name}: full scan {line:?}:\n{text}"
        );
        if !may_sort {
            assert!(!line.contains("TEMP B-TREE"), "{name}: sorts:\n{text}");
        }
    }
}

fn int(i: i64) -> Value {
    Value::Integer(i)
}

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

/// A critical query, realistic parameters, and what its plan must show.
struct Case {
    name: &'static str,
    sql: String,
    params: Vec<Value>,
    uses: Vec<&'static str>,
    may_sort: bool,
}

impl Case {
    fn new(
        name: &'static str,
        sql: &str,
        params: Vec<Value>,
        uses: &[&'static str],
        may_sort: bool,
    ) -> Self {
        Self {
            name,
            sql: sql.to_owned(),
            params,
            uses: uses.to_vec(),
            may_sort,
        }
    }
}

fn cases(s: &Seeded) -> Vec<Case> {
    let heavy = blob(&s.heavy);
    let cursor_at = int(at(1_000 * 60).unix_micros());
    let cursor_id = s.experiment.clone();
    let (audit_by_actor, audit_by_actor_params) = q::audit_list(&AuditQuery {
        actor_user_id: Some(s.heavy),
        ..AuditQuery::default()
    });
    let (audit_by_action, audit_by_action_params) = q::audit_list(&AuditQuery {
        action: Some("login".into()),
        ..AuditQuery::default()
    });
    let (audit_by_resource, audit_by_resource_params) = q::audit_list(&AuditQuery {
        resource_type: Some("experiment".into()),
        resource_id: Some("x".into()),
        ..AuditQuery::default()
    });
    vec![
        Case::new(
            "experiments page",
            q::EXPERIMENTS_PAGE,
            vec![heavy.clone(), int(21)],
            &["USING INDEX experiments_user_created_idx (user_id=?)"],
            false,
        ),
        Case::new(
            "experiments page after cursor",
            q::EXPERIMENTS_PAGE_AFTER,
            vec![heavy.clone(), int(21), cursor_at.clone(), cursor_id.clone()],
            &["USING INDEX experiments_user_created_idx (user_id=? AND (created_at,id)<(?,?))"],
            false,
        ),
        Case::new(
            "experiments page by status",
            q::EXPERIMENTS_PAGE_BY_STATUS,
            vec![heavy.clone(), int(21), text("completed")],
            &["USING INDEX experiments_user_status_created_idx (user_id=? AND status=?)"],
            false,
        ),
        Case::new(
            "experiments page by status after cursor",
            q::EXPERIMENTS_PAGE_BY_STATUS_AFTER,
            vec![
                heavy.clone(),
                int(21),
                text("completed"),
                cursor_at,
                cursor_id,
            ],
            &["USING INDEX experiments_user_status_created_idx \
             (user_id=? AND status=? AND (created_at,id)<(?,?))"],
            false,
        ),
        Case::new(
            "dashboard experiments by status",
            q::DASHBOARD_EXPERIMENTS_BY_STATUS,
            vec![heavy.clone()],
            &["USING COVERING INDEX experiments_user_status_created_idx (user_id=?)"],
            false,
        ),
        Case::new(
            "dashboard runs",
            q::DASHBOARD_RUNS,
            vec![heavy.clone()],
            &["USING COVERING INDEX batch_runs_dashboard_idx (user_id=?)"],
            false,
        ),
        Case::new(
            "dashboard trend",
            q::DASHBOARD_TREND,
            vec![
                heavy.clone(),
                int(at(0).unix_micros()),
                int(at(0).unix_micros().div_euclid(86_400_000_000)),
            ],
            &["USING COVERING INDEX batch_runs_trend_idx (user_id=? AND <expr>>?)"],
            false,
        ),
        Case::new(
            "latest completed runs",
            q::RECENT_COMPLETED_RUNS,
            vec![heavy.clone(), int(200)],
            &["SEARCH batch_runs USING INDEX batch_runs_trend_idx (user_id=?)"],
            false,
        ),
        Case::new(
            "latest completed runs, narrowly for the charts",
            q::RECENT_TREND_RUNS,
            vec![heavy.clone(), int(200)],
            &["SEARCH batch_runs USING INDEX batch_runs_trend_idx (user_id=?)"],
            false,
        ),
        Case::new(
            "API key lookup",
            q::API_KEY_BY_PUBLIC_ID,
            vec![text(&s.public_id)],
            &["USING INDEX api_keys_public_id_key (public_id=?)"],
            false,
        ),
        Case::new(
            "API key lookup with its owner's status",
            q::API_KEY_AUTH_BY_PUBLIC_ID,
            vec![text(&s.public_id)],
            &[
                "SEARCH k USING INDEX api_keys_public_id_key (public_id=?)",
                "SEARCH u USING INDEX sqlite_autoindex_users_1 (id=?)",
            ],
            false,
        ),
        Case::new(
            "API key expiry",
            q::API_KEY_SET_EXPIRY,
            vec![s.key.0.clone(), s.key.1.clone(), int(at(9).unix_micros())],
            &["SEARCH api_keys USING INDEX sqlite_autoindex_api_keys_1 (id=?)"],
            false,
        ),
        Case::new(
            "API keys of a user",
            q::API_KEYS_BY_USER,
            vec![heavy.clone()],
            &["USING INDEX api_keys_user_created_idx (user_id=?)"],
            false,
        ),
        Case::new(
            "session lookup with its owner's status",
            q::SESSION_AUTH_BY_ID,
            vec![s.session.0.clone()],
            &[
                "SEARCH s USING INDEX sqlite_autoindex_sessions_1 (id=?)",
                "SEARCH u USING INDEX sqlite_autoindex_users_1 (id=?)",
            ],
            false,
        ),
        Case::new(
            "revoke a session",
            q::SESSION_REVOKE,
            vec![
                s.session.0.clone(),
                s.session.1.clone(),
                int(at(9).unix_micros()),
            ],
            &["SEARCH sessions USING INDEX sqlite_autoindex_sessions_1 (id=?)"],
            false,
        ),
        Case::new(
            "revoke a user's sessions",
            q::SESSIONS_REVOKE_BY_USER,
            vec![heavy.clone(), int(at(9).unix_micros())],
            &["SEARCH sessions USING INDEX sessions_user_idx (user_id=?)"],
            false,
        ),
        Case::new(
            "prune sessions",
            q::SESSIONS_PRUNE,
            vec![int(at(500).unix_micros()), int(100)],
            &[
                "USING INDEX sessions_expires_idx (expires_at<?)",
                "USING INDEX sessions_revoked_idx (revoked_at<?)",
            ],
            false,
        ),
        Case::new(
            "due recurring experiments",
            q::EXPERIMENTS_DUE_RECURRING,
            vec![int(at(7_200).unix_micros()), int(100)],
            &["USING INDEX experiments_due_recurring_idx (next_run_at<?)"],
            false,
        ),
        Case::new(
            "batch runs of an experiment",
            q::BATCH_RUNS_BY_EXPERIMENT,
            vec![s.experiment.clone()],
            &["USING INDEX batch_runs_experiment_created_idx (experiment_id=?)"],
            false,
        ),
        Case::new(
            "iteration analysis",
            q::ITERATIONS_FOR_ANALYSIS,
            vec![s.run.clone()],
            &["USING INDEX iterations_analysis_idx (batch_run_id=? AND is_success=?)"],
            false,
        ),
        Case::new(
            "iterations page",
            q::ITERATIONS_PAGE,
            vec![s.run.clone(), int(0), int(100)],
            &["USING INDEX iterations_run_idx_key (batch_run_id=? AND idx>?)"],
            false,
        ),
        Case::new(
            "sources of an iterations page",
            q::ITERATION_SOURCES_PAGE,
            vec![s.run.clone(), int(0), int(99)],
            &[
                "USING INDEX iterations_run_idx_key (batch_run_id=? AND idx>? AND idx<?)",
                "USING PRIMARY KEY (iteration_id=?)",
            ],
            false,
        ),
        Case::new(
            "recorded indexes",
            q::ITERATION_INDEXES,
            vec![s.run.clone()],
            &["USING COVERING INDEX iterations_run_idx_key (batch_run_id=?)"],
            false,
        ),
        Case::new(
            "run counters",
            q::BATCH_RUN_ADD_COUNTS,
            vec![s.run.clone(), int(1), int(1), int(1), int(1)],
            &["USING INDEX sqlite_autoindex_batch_runs_1 (id=?)"],
            false,
        ),
        Case::new(
            "quota debit",
            q::USER_DEBIT_QUOTA,
            vec![heavy.clone(), int(10), int(500)],
            &["USING INDEX sqlite_autoindex_users_1 (id=?)"],
            false,
        ),
        Case::new(
            "quota reset sweep",
            q::USERS_DUE_QUOTA_RESET,
            vec![int(at(0).unix_micros())],
            &["USING INDEX users_quota_reset_idx (quota_reset_at<?)"],
            false,
        ),
        Case::new(
            "claim candidates",
            q::JOB_CLAIM_CANDIDATES,
            vec![
                int(at(500).unix_micros()),
                int(i64::MIN),
                Value::Blob(vec![]),
                int(10),
            ],
            &[
                "USING INDEX jobs_claimable_idx",
                "USING INDEX jobs_lease_expiry_idx (lease_expires_at<?)",
            ],
            // The two arms are merged in claim order; only the small expired-lease arm is sorted.
            true,
        ),
        Case::new(
            "queue stats",
            q::JOB_STATS,
            vec![int(at(200).unix_micros())],
            &[
                "USING COVERING INDEX jobs_claimable_idx (run_at<?)",
                "USING COVERING INDEX jobs_claimable_idx (run_at>?)",
                "USING COVERING INDEX jobs_failed_idx (status=?)",
            ],
            false,
        ),
        Case::new(
            "prune jobs",
            q::JOB_PRUNE,
            vec![int(at(200).unix_micros()), int(100)],
            &["USING INDEX jobs_finished_idx (updated_at<?)"],
            false,
        ),
        Case::new(
            "audit chain head",
            q::AUDIT_HEAD,
            vec![],
            &["SEARCH audit_chain_head USING INTEGER PRIMARY KEY (rowid=?)"],
            false,
        ),
        Case::new(
            "move the audit chain head",
            q::AUDIT_HEAD_SET,
            vec![int(201), Value::Blob(vec![0; 32])],
            &["SEARCH audit_chain_head USING INTEGER PRIMARY KEY (rowid=?)"],
            false,
        ),
        Case::new(
            "record an actor's erasures",
            q::AUDIT_ERASURES_RECORD,
            vec![
                heavy.clone(),
                int(at(400).unix_micros()),
                text("hmac:heavy"),
            ],
            &["SEARCH audit_events USING COVERING INDEX audit_events_actor_idx (actor_user_id=?)"],
            false,
        ),
        Case::new(
            "erase an actor",
            q::AUDIT_ERASE_ACTOR,
            vec![heavy.clone(), text("hmac:heavy")],
            &["SEARCH audit_events USING INDEX audit_events_actor_idx (actor_user_id=?)"],
            false,
        ),
        Case::new(
            "audit erasures from a seq",
            q::AUDIT_ERASURES_RANGE,
            vec![int(50), int(100)],
            &["SEARCH audit_erasures USING INTEGER PRIMARY KEY (rowid>?)"],
            false,
        ),
        Case::new(
            "latest audit checkpoint",
            q::AUDIT_CHECKPOINT_LATEST,
            vec![],
            &["SEARCH audit_checkpoints USING INTEGER PRIMARY KEY (rowid=?)"],
            false,
        ),
        Case::new(
            "audit checkpoints from a seq",
            q::AUDIT_CHECKPOINTS_RANGE,
            vec![int(50), int(100)],
            &["SEARCH audit_checkpoints USING INTEGER PRIMARY KEY (rowid>?)"],
            false,
        ),
        Case::new(
            "delete archived audit events",
            q::AUDIT_DELETE_THROUGH,
            vec![int(100)],
            &["SEARCH audit_events USING INTEGER PRIMARY KEY (rowid<?)"],
            false,
        ),
        Case::new(
            "audit bounds",
            q::AUDIT_BOUNDS,
            vec![],
            &["SEARCH audit_events"],
            false,
        ),
        Case::new(
            "retention batch",
            q::ITERATIONS_ANONYMIZABLE,
            vec![text("free"), int(at(1_000 * 60).unix_micros()), int(2_000)],
            &[
                "SEARCH i USING COVERING INDEX iterations_anonymize_idx (created_at<?)",
                "SEARCH b USING INDEX sqlite_autoindex_batch_runs_1 (id=?)",
                "SEARCH u USING INDEX sqlite_autoindex_users_1 (id=?)",
            ],
            false,
        ),
        Case::new(
            "anonymize an iteration of the batch",
            q::ITERATION_ANONYMIZE,
            vec![
                int(1),
                int(at(2).unix_micros()),
                text("free"),
                int(at(1_000 * 60).unix_micros()),
            ],
            &[
                "SEARCH iterations USING INTEGER PRIMARY KEY (rowid=?)",
                "SEARCH b USING INDEX sqlite_autoindex_batch_runs_1 (id=?)",
                "SEARCH u USING INDEX sqlite_autoindex_users_1 (id=?)",
            ],
            false,
        ),
        Case::new(
            "count anonymizable iterations",
            q::ITERATIONS_ANONYMIZABLE_COUNT,
            vec![text("pro"), int(at(1_000 * 60).unix_micros())],
            &[
                "SEARCH i USING COVERING INDEX iterations_anonymize_idx (created_at<?)",
                "SEARCH b USING INDEX sqlite_autoindex_batch_runs_1 (id=?)",
                "SEARCH u USING INDEX sqlite_autoindex_users_1 (id=?)",
            ],
            false,
        ),
        Case::new(
            "users due for deletion",
            q::USERS_DUE_FOR_DELETION,
            vec![int(at(86_400).unix_micros()), int(100)],
            &["SEARCH users USING INDEX users_scheduled_deletion_idx (scheduled_deletion_at<?)"],
            false,
        ),
        Case::new(
            "delete a user's jobs",
            q::JOBS_DELETE_BY_PAYLOAD_USER,
            vec![text(&s.heavy.to_string())],
            &["SEARCH jobs USING INDEX jobs_payload_user_idx (<expr>=?)"],
            false,
        ),
        Case::new(
            "audit listing by actor",
            &audit_by_actor,
            audit_by_actor_params,
            &["USING INDEX audit_events_actor_idx (actor_user_id=?)"],
            false,
        ),
        Case::new(
            "audit listing by action",
            &audit_by_action,
            audit_by_action_params,
            &["USING INDEX audit_events_action_idx (action=?)"],
            false,
        ),
        Case::new(
            "audit listing by resource",
            &audit_by_resource,
            audit_by_resource_params,
            &["USING INDEX audit_events_resource_idx (resource_type=? AND resource_id=?)"],
            false,
        ),
    ]
}

async fn check_all(analyze: bool) {
    let s = seeded(analyze).await;
    for c in cases(&s) {
        let plan = plan(&s.store, &c.sql, c.params);
        assert_plan(c.name, &plan, &c.uses, c.may_sort);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn critical_queries_use_their_indexes_with_statistics() {
    check_all(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn critical_queries_use_their_indexes_without_statistics() {
    check_all(false).await;
}

/// Prints every plan; run with `--ignored --nocapture` when changing queries or indexes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "diagnostic output, not a check"]
async fn print_plans() {
    let s = seeded(true).await;
    for c in cases(&s) {
        println!(
            "{}:\n  {}",
            c.name,
            plan(&s.store, &c.sql, c.params).join("\n  ")
        );
    }
}
