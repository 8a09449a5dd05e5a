//! The `echoai` commands driven through the library, against a real SQLite file.
use echo_core::model::{Email, ExperimentStatus};
use echo_core::store::ExperimentQuery;
use echo_server_example::cli::{Command, MigrateArgs, RunArgs};
use echo_server_example::commands::{CliError, dispatch};

fn run_args(database: &str) -> RunArgs {
    RunArgs {
        prompt: Some("Best CRM for startups".into()),
        prompt_set: None,
        set_version: None,
        brand: "HubSpot=HubSpot CRM".into(),
        competitors: vec!["Salesforce".into(), "Pipedrive".into()],
        iterations: 30,
        providers: vec!["simulated".into()],
        model: None,
        temperature: 0.7,
        database: database.into(),
        json: true,
        seed: 42,
        precision: None,
        concurrency: 8,
        timeout_secs: 60,
        user: "cli@echo.localhost".into(),
    }
}

#[tokio::test]
async fn run_stores_a_completed_experiment_with_metrics_and_settles_its_job() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("echo.db");
    let db = db.to_str().unwrap();
    dispatch(Command::Run(run_args(db)), None).await.unwrap();
    dispatch(Command::Run(run_args(db)), None).await.unwrap();

    let (store, _) = echo_server_example::open_store(db).await.unwrap();
    let user = store
        .find_user_by_email(&Email::parse("cli@echo.localhost").unwrap())
        .await
        .unwrap()
        .expect("the CLI account exists once");
    assert_eq!(user.quota.prompts_used, 60, "two runs of 30 debited");
    let page = store
        .list_experiments(user.id, &ExperimentQuery::default())
        .await
        .unwrap();
    assert_eq!(page.items.len(), 2);
    for e in &page.items {
        assert_eq!(e.status, ExperimentStatus::Completed);
        let runs = store.list_batch_runs(user.id, e.id).await.unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].iterations_recorded, 30);
        assert!(runs[0].metrics.is_some());
    }
    let stats = store
        .queue_stats(echo_core::model::Timestamp::now())
        .await
        .unwrap();
    assert_eq!(
        (stats.due, stats.running, stats.failed),
        (0, 0, 0),
        "jobs settled"
    );
}

#[tokio::test]
async fn bad_input_is_refused_before_anything_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("echo.db");
    let db = db.to_str().unwrap();
    let cases: Vec<(&str, RunArgs)> = vec![
        (
            "empty prompt",
            RunArgs {
                prompt: Some(" ".into()),
                ..run_args(db)
            },
        ),
        (
            "zero iterations",
            RunArgs {
                iterations: 0,
                ..run_args(db)
            },
        ),
        (
            "absurd iterations",
            RunArgs {
                iterations: 5_000_000,
                ..run_args(db)
            },
        ),
        (
            "unknown provider",
            RunArgs {
                providers: vec!["chatgpt".into()],
                ..run_args(db)
            },
        ),
        (
            "missing key",
            RunArgs {
                providers: vec!["openai".into()],
                ..run_args(db)
            },
        ),
        (
            "temperature",
            RunArgs {
                temperature: 9.0,
                ..run_args(db)
            },
        ),
        (
            "precision",
            RunArgs {
                precision: Some(0.9),
                ..run_args(db)
            },
        ),
        (
            "empty brand",
            RunArgs {
                brand: "=alias".into(),
                ..run_args(db)
            },
        ),
    ];
    for (what, args) in cases {
        if what == "missing key" && std::env::var_os("OPENAI_API_KEY").is_some() {
            continue;
        }
        let err = dispatch(Command::Run(args), None).await.expect_err(what);
        // Without the `providers` feature, "missing key" is refused for the missing client.
        assert!(
            matches!(
                err,
                CliError::Invalid(_) | CliError::Usage(_) | CliError::NotBuilt { .. }
            ),
            "{what}: {err:?}"
        );
    }
    // Nothing was stored: the database file was never even needed, or holds no experiment.
    if std::path::Path::new(db).exists() {
        let (store, _) = echo_server_example::open_store(db).await.unwrap();
        let user = store
            .find_user_by_email(&Email::parse("cli@echo.localhost").unwrap())
            .await
            .unwrap();
        if let Some(user) = user {
            let page = store
                .list_experiments(user.id, &ExperimentQuery::default())
                .await
                .unwrap();
            assert!(page.items.is_empty());
            assert_eq!(user.quota.prompts_used, 0);
        }
    }
}

#[tokio::test]
async fn migrate_is_idempotent_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db").to_str().unwrap().to_owned();
    for _ in 0..2 {
        dispatch(
            Command::Migrate(MigrateArgs {
                database: db.clone(),
                check: false,
            }),
            None,
        )
        .await
        .unwrap();
    }
}

/// The `echoai` binary itself, for the contracts scripts rely on.
fn echoai() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_echoai"))
}

#[tokio::test]
async fn user_create_prints_a_working_password_or_reads_one_from_stdin() {
    use echo_core::auth::{PasswordCheck, PasswordHasher, PasswordParams, PasswordPolicy};
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("u.db");
    let db = db.to_str().unwrap();

    let out = echoai()
        .args(["user", "create", "--email", "Root@Example.com", "--admin"])
        .args(["--tier", "pro", "--database", db])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let password = stdout
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .expect("a generated password is printed");
    assert!(!String::from_utf8_lossy(&out.stderr).contains(password));

    let mut child = echoai()
        .args([
            "user",
            "create",
            "--email",
            "ops@example.com",
            "--password-stdin",
        ])
        .args(["--database", db])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"a password from stdin\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).contains("password:"));

    let (store, _) = echo_server_example::open_store(db).await.unwrap();
    let hasher = PasswordHasher::new(PasswordParams::default(), PasswordPolicy::default()).unwrap();
    let root = store
        .find_user_by_email(&Email::parse("root@example.com").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(root.is_admin);
    assert_eq!(root.tier, echo_core::model::PricingTier::Pro);
    assert!(matches!(
        hasher.verify(password, &root.password_hash).unwrap(),
        PasswordCheck::Valid { .. }
    ));
    let ops = store
        .find_user_by_email(&Email::parse("ops@example.com").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(!ops.is_admin);
    assert!(matches!(
        hasher
            .verify("a password from stdin", &ops.password_hash)
            .unwrap(),
        PasswordCheck::Valid { .. }
    ));

    // A taken email fails with a message and a non-zero exit.
    let out = echoai()
        .args([
            "user",
            "create",
            "--email",
            "root@example.com",
            "--database",
            db,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("exists"));
}

#[test]
fn serve_answers_and_stops_cleanly_on_sigterm() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let mut child = echoai()
        .args(["serve", "--listen", "127.0.0.1:0", "--database"])
        .arg(&db)
        .env("ECHO_LOG_FORMAT", "json")
        .env("ECHO_PEPPER", "a test pepper of at least thirty-two bytes")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines.next().expect("the server logs its address").unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        if v["fields"]["message"] == "echoai serving" {
            break v["fields"]["addr"].as_str().unwrap().to_owned();
        }
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let body: serde_json::Value = rt.block_on(async {
        reqwest::get(format!("http://{addr}/healthz"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    assert_eq!(body["status"], "ok");
    let pid = child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l.contains("\"stopped\"")), "{rest:?}");
}

#[test]
fn a_bad_setting_stops_serve_with_its_name() {
    let out = echoai()
        .args(["serve", "--listen", "not-an-address"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ECHO_LISTEN"), "{stderr}");
    let out = echoai()
        .args(["serve", "--database", "/tmp/x.db"])
        .env("ECHO_WORKER_CONCURRENCY", "zero")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ECHO_WORKER_CONCURRENCY"));
}

/// An SQLite file with `n` audit events appended through a signing sink (every 5th event
/// checkpointed), and the key's public half.
async fn audited_file(db: &str, n: u64) -> String {
    use echo_core::audit::{AuditSink, CheckpointPolicy, CheckpointSigner, StoreAuditSink};
    let (store, _) = echo_server_example::open_store(db).await.unwrap();
    let signer = CheckpointSigner::from_seed(&[5; 32]);
    let public = hex_encode(&signer.verifying_key());
    let sink = StoreAuditSink::new(store.clone()).with_signer(
        signer,
        CheckpointPolicy {
            every_events: 5,
            ..CheckpointPolicy::default()
        },
    );
    for i in 0..n {
        sink.record(echo_core::model::NewAuditEvent {
            actor_user_id: None,
            action: format!("action_{i}"),
            resource_type: "user".into(),
            resource_id: None,
            ip: Some("192.0.2.1".into()),
            user_agent: None,
            request_id: None,
            details: serde_json::json!({"i": i}),
            created_at: echo_core::model::Timestamp::now(),
        })
        .await
        .unwrap();
    }
    public
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn verify(db: &str, key: &str) -> Result<(), CliError> {
    dispatch(
        Command::Audit(echo_server_example::cli::AuditCommand::Verify(
            echo_server_example::cli::AuditVerifyArgs {
                database: db.into(),
                archives: None,
                public_key: Some(key.into()),
            },
        )),
        None,
    )
    .await
}

#[tokio::test]
async fn audit_verify_names_the_first_altered_deleted_or_reordered_event() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &str, &str); 4] = [
        (
            "altered",
            "UPDATE audit_events SET action = 'forged' WHERE seq = 7",
            "seq 7",
        ),
        ("deleted", "DELETE FROM audit_events WHERE seq = 9", "seq 9"),
        (
            "reordered",
            "UPDATE audit_events SET details = (SELECT details FROM audit_events WHERE seq = 12) WHERE seq = 11",
            "seq 11",
        ),
        // The checkpoint of seq 16 no longer finds its event: truncation is caught up to the
        // last checkpoint (events after it are protected by the chain alone).
        (
            "tail truncated",
            "DELETE FROM audit_events WHERE seq > 13",
            "seq 14",
        ),
    ];
    for (what, sql, expected) in cases {
        let path = dir.path().join(format!("{}.db", what.replace(' ', "_")));
        let db = path.to_str().unwrap();
        let key = audited_file(db, 20).await;
        verify(db, &key)
            .await
            .unwrap_or_else(|e| panic!("{what}: intact log: {e}"));
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute(sql, [])
            .unwrap();
        let err = verify(db, &key).await.expect_err(what).to_string();
        assert!(
            err.contains("FAILED") && err.contains(expected),
            "{what}: {err}"
        );
    }
}

#[tokio::test]
async fn retention_run_and_export_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.db");
    let db = db.to_str().unwrap();
    dispatch(Command::Run(run_args(db)), None).await.unwrap();
    // SAFETY of the environment: these variables are read by the command in this process;
    // no other test reads ECHO_PEPPER.
    let args = |dry_run| {
        Command::Retention(echo_server_example::cli::RetentionCommand::Run(
            echo_server_example::cli::RetentionRunArgs {
                dry_run,
                database: Some(db.into()),
                config: None,
            },
        ))
    };
    dispatch(args(true), None).await.unwrap();

    let out = dir.path().join("export.json");
    dispatch(
        Command::Export(echo_server_example::cli::ExportArgs {
            user: "cli@echo.localhost".into(),
            output: Some(out.clone()),
            database: db.into(),
        }),
        None,
    )
    .await
    .unwrap();
    let export: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(export["user"]["email"], "cli@echo.localhost");
    assert_eq!(
        export["experiments"][0]["batch_runs"][0]["iterations"]
            .as_array()
            .unwrap()
            .len(),
        30
    );
    let err = dispatch(
        Command::Export(echo_server_example::cli::ExportArgs {
            user: "nobody@echo.localhost".into(),
            output: None,
            database: db.into(),
        }),
        None,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("no user"));
}

const ANSWER: &str = "For a startup, consider:\n1. Pipedrive for simple pipelines.\n2. HubSpot CRM, free to start.\nHubSpot also has marketing tools.\n";

fn assert_analysis(stdout: &[u8]) {
    let json: serde_json::Value = serde_json::from_slice(stdout).unwrap();
    let brands = json["brands"].as_array().unwrap();
    let hubspot = brands.iter().find(|b| b["brand"] == "HubSpot").unwrap();
    assert_eq!(hubspot["is_target"], true);
    assert_eq!(hubspot["count"], 2, "the alias and the name");
    assert_eq!(hubspot["rank"], 2);
    assert_eq!(hubspot["list_position"], 2);
    let pipedrive = brands.iter().find(|b| b["brand"] == "Pipedrive").unwrap();
    assert_eq!(pipedrive["rank"], 1);
    assert!(
        brands.iter().all(|b| b["brand"] != "Salesforce"),
        "a brand the answer never names has no hit"
    );
}

#[test]
fn analyze_reads_a_file_or_standard_input_and_prints_the_extraction() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("answer.txt");
    std::fs::write(&file, ANSWER).unwrap();
    let brand_args = [
        "analyze",
        "--brand",
        "HubSpot=HubSpot CRM",
        "--competitor",
        "Salesforce",
        "--competitor",
        "Pipedrive",
    ];
    let out = echoai().args(brand_args).arg(&file).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_analysis(&out.stdout);

    let mut child = echoai()
        .args(brand_args)
        .arg("-")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(ANSWER.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_analysis(&out.stdout);

    let out = echoai()
        .args(brand_args)
        .arg(dir.path().join("missing.txt"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "a missing file fails");
    assert!(out.stdout.is_empty());
}

#[test]
fn run_prints_a_table_or_json_and_announces_adaptive_sampling() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("echo.db");
    let base = |iterations: &str, extra: &[&str]| {
        let mut c = echoai();
        c.args([
            "run",
            "--prompt",
            "Best CRM for startups",
            "--brand",
            "HubSpot",
            "--competitor",
            "Salesforce",
            "--iterations",
            iterations,
            "--database",
        ])
        .arg(&db)
        .args(extra)
        .env_remove("ECHO_DATABASE")
        .env_remove("ECHO_CLI_USER");
        c
    };

    let out = base("20", &[]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("Echo report · experiment "), "{table}");
    assert_eq!(
        lines[1],
        "Prompt: \"Best CRM for startups\" · 20 iterations per provider"
    );
    assert!(
        table.contains("[SIMULATED: synthetic answers, not a real model]"),
        "{table}"
    );
    assert!(table.contains(" answers (0 failed) · "), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.trim_start().starts_with("HubSpot *")),
        "the target is starred: {table}"
    );
    assert!(!table.contains("All providers pooled"), "one provider");

    let out = base("200", &["--json", "--precision", "0.2"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("adaptive sampling: stops at ±0.2"),
        "{stderr}"
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["iterations"], 200);
    assert_eq!(json["target"], "HubSpot");
    assert_eq!(json["providers"][0]["simulated"], true);
    let recorded = json["providers"][0]["recorded"].as_u64().unwrap();
    assert!(
        recorded < 200,
        "±0.2 is reached long before 200 answers, recorded {recorded}"
    );

    let out = base("20", &["--precision", "0.7"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--precision must be a half-width"));

    let out = base("20", &["--provider", "nonsense"]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown provider \"nonsense\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn privacy_commands_explain_missing_keys_and_export_to_standard_output() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let db = db.to_str().unwrap();
    dispatch(Command::Run(run_args(db)), None).await.unwrap();
    let cmd = |args: &[&str]| {
        let mut c = echoai();
        c.args(args)
            .env("ECHO_DATABASE", db)
            .env_remove("ECHO_PEPPER")
            .env_remove("ECHO_CONFIG")
            .env_remove("ECHO_AUDIT_SIGNING_KEY")
            .env_remove("ECHO_AUDIT_ARCHIVE_DIR");
        c
    };

    let out = cmd(&["retention", "run"]).output().unwrap();
    assert!(!out.status.success(), "purging needs the pepper");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ECHO_PEPPER (security.pepper) must be set"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = cmd(&["audit", "verify"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["result"], "ok");
    assert_eq!(report["checkpoint_key"], false);
    assert!(
        stderr.contains("no checkpoint key given: only the chain was checked"),
        "{stderr}"
    );

    let out = cmd(&["audit", "verify"])
        .env("ECHO_AUDIT_SIGNING_KEY", "not-hex")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ECHO_AUDIT_SIGNING_KEY"),
        "a bad key names its setting: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = cmd(&["export", "--user", "cli@echo.localhost"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let export: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(export["user"]["email"], "cli@echo.localhost");
}

/// The binary with an empty environment (keys and settings on the machine must not leak in),
/// keeping the coverage profile path.
#[test]
fn commands_refuse_to_start_without_what_they_need_and_say_which_setting() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("e.db");
    let db = db.to_str().unwrap();

    // A real provider without its key names the variable and the simulator as a way out.
    let out = crate::harness::echoai_clean()
        .args(["run", "--prompt", "Best CRM", "--brand", "HubSpot"])
        .args(["--provider", "anthropic", "--database", db])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("needs an API key in ANTHROPIC_API_KEY"),
        "{stderr}"
    );

    // A key digested without the servers' pepper would never verify.
    let out = crate::harness::echoai_clean()
        .args([
            "user",
            "key",
            "--email",
            "a@echo.localhost",
            "--database",
            db,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("security.pepper (ECHO_PEPPER) must be set"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "no key printed");

    // An address already in use is named with its setting.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = crate::harness::echoai_clean()
        .args(["serve", "--listen", &addr, "--database", db])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {addr} (listen / ECHO_LISTEN)")),
        "{stderr}"
    );
}

#[tokio::test]
async fn run_asks_a_prompt_set_and_the_report_has_per_phrasing_and_pooled_rows() {
    use echo_core::service::{Accounts, BrandProfileDraft, BrandService, PromptSetDraft};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("echo.db");
    let db = db.to_str().unwrap();
    let (store, _) = echo_server_example::open_store(db).await.unwrap();
    let user = Accounts::from_store(&store)
        .local_user(&Email::parse("cli@echo.localhost").unwrap())
        .await
        .unwrap();
    let brand = BrandService::from_store(&store);
    let hubspot =
        echo_core::model::Brand::new(echo_core::model::BrandName::parse("HubSpot").unwrap());
    let now = echo_core::model::Timestamp::now();
    brand
        .put_profile(
            user.id,
            BrandProfileDraft {
                brand: hubspot,
                domain: None,
                default_competitors: vec![],
            },
            now,
        )
        .await
        .unwrap();
    let (set, _) = brand
        .create_set(
            user.id,
            PromptSetDraft {
                name: "CRM picks".into(),
                prompts: (0..6)
                    .map(|i| format!("Which CRM would you pick, take {i}?"))
                    .collect(),
            },
            now,
        )
        .await
        .unwrap();
    drop(store);
    let args = RunArgs {
        prompt: None,
        prompt_set: Some("CRM picks".into()),
        iterations: 3,
        ..run_args(db)
    };
    dispatch(Command::Run(args), None).await.unwrap();
    let (store, _) = echo_server_example::open_store(db).await.unwrap();
    let page = store
        .list_experiments(user.id, &ExperimentQuery::default())
        .await
        .unwrap();
    let e = &page.items[0];
    assert_eq!(e.iterations.get(), 18, "6 phrasings × 3");
    assert_eq!(
        e.prompt_set.as_ref().map(|s| (s.set_id, s.version)),
        Some((set.id, 1))
    );
    let runs = store.list_batch_runs(user.id, e.id).await.unwrap();
    let report = echo_server_example::report::Report::new(e, &runs).unwrap();
    let table = report.to_table();
    assert!(
        table.contains("Prompt set: \"CRM picks\" version 1 · 6 phrasings × 3"),
        "{table}"
    );
    assert!(
        table.contains("visibility per phrasing (set \"CRM picks\" v1)"),
        "{table}"
    );
    assert!(table.contains("pooled over 6 phrasings"), "{table}");
    assert!(table.contains("cluster-robust; naive binomial"), "{table}");
    let metrics = runs[0]
        .metrics
        .as_ref()
        .unwrap()
        .prompt_set
        .as_ref()
        .unwrap();
    assert_eq!(metrics.per_prompt.len(), 6);
    assert!(metrics.per_prompt.iter().all(|p| p.n == 3));

    // A set that does not exist is a usage error naming it.
    let err = dispatch(
        Command::Run(RunArgs {
            prompt: None,
            prompt_set: Some("nope".into()),
            ..run_args(db)
        }),
        None,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}

#[tokio::test]
async fn alerts_lists_a_users_alerts_as_sentences_or_json_with_filter_and_limit() {
    use echo_core::service::Accounts;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("echo.db");
    let db = db.to_str().unwrap();
    let (store, _) = echo_server_example::open_store(db).await.unwrap();
    let accounts = Accounts::from_store(&store);
    let owner = accounts
        .local_user(&Email::parse("alerts-owner@example.com").unwrap())
        .await
        .unwrap();
    let other = accounts
        .local_user(&Email::parse("alerts-other@example.com").unwrap())
        .await
        .unwrap();
    let (first, _, _) = crate::alerts::seed_alerts(&store, owner.id, &["Attio", "Zoho"]).await;
    let (second, runs, _) = crate::alerts::seed_alerts(&store, owner.id, &["Pipedrive"]).await;
    let (theirs, _, _) = crate::alerts::seed_alerts(&store, other.id, &["Secret"]).await;
    drop(store);
    let alerts = |args: &[&str]| {
        let out = crate::harness::echoai_clean()
            .args(["alerts", "--database", db])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };

    let (ok, text, err) = alerts(&["--user", "alerts-owner@example.com"]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].contains("Pipedrive"), "newest first: {text}");
    assert!(
        lines[0].contains(&format!("experiment {}", second.id)),
        "{text}"
    );
    assert!(
        lines[0].contains(
            "simulated: visibility of Pipedrive fell from 62% (62 of 100) to 41% (41 of 100) (adjusted p = 0.0030)"
        ),
        "describe_alert's sentence: {text}"
    );
    assert!(
        lines[1].contains("Zoho") && lines[2].contains("Attio"),
        "{text}"
    );
    assert!(!text.contains("Secret"), "{text}");

    let (ok, json, err) = alerts(&[
        "--user",
        "alerts-owner@example.com",
        "--json",
        "--limit",
        "2",
    ]);
    assert!(ok, "{err}");
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let items = json.as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["brand"], "Pipedrive");
    assert_eq!(items[0]["batch_run_id"], runs[1].id.to_string());
    assert_eq!(items[0]["previous_run_id"], runs[0].id.to_string());
    assert_eq!(items[0]["before"]["successes"], 62);
    assert_eq!(items[0]["after"]["n"], 100);
    assert_eq!(items[0]["adjusted_p"], 0.003);
    assert_eq!(items[1]["brand"], "Zoho");

    let id = first.id.to_string();
    let (ok, json, err) = alerts(&[
        "--user",
        "alerts-owner@example.com",
        "--experiment",
        &id,
        "--json",
    ]);
    assert!(ok, "{err}");
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let brands: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["brand"].as_str().unwrap())
        .collect();
    assert_eq!(brands, ["Zoho", "Attio"]);

    // Another user's experiment is unknown; a user without alerts is told where they come from.
    let their_id = theirs.id.to_string();
    let (ok, _, err) = alerts(&[
        "--user",
        "alerts-owner@example.com",
        "--experiment",
        &their_id,
    ]);
    assert!(!ok);
    assert!(err.contains("has no experiment"), "{err}");
    let (ok, _, err) = alerts(&["--user", "alerts-owner@example.com", "--experiment", "x"]);
    assert!(!ok);
    assert!(err.contains("not an experiment id"), "{err}");
    let (ok, _, err) = alerts(&["--user", "nobody@example.com"]);
    assert!(!ok);
    assert!(err.contains("no user with email"), "{err}");
    let (ok, _, err) = alerts(&["--user", "alerts-owner@example.com", "--limit", "0"]);
    assert!(!ok, "{err}");
}
