//! Deployment: environment profiles, start-up refusal, `config check`, `probe`, `smoke` and
//! `migrate --check`.

use std::time::Duration;

use echo_server_example::commands::smoke::{SmokeOptions, StepStatus, run_smoke};
use echo_server_example::config::{Environment, ServerConfig};
use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{Options, TestServer, send};

use crate::harness::echoai_clean as echoai;

async fn server_in(env: Environment, accept_test_keys: bool) -> TestServer {
    let mut options = Options::default();
    options.config.env = env;
    options.config.security.accept_test_keys = accept_test_keys;
    TestServer::start_with(options).await
}

#[tokio::test]
async fn every_response_names_the_environment() {
    for env in [
        Environment::Development,
        Environment::Staging,
        Environment::Production,
    ] {
        let s = server_in(env, false).await;
        for path in ["/healthz", "/api/v1/experiments", "/no-such-route"] {
            let (_, headers, _) = send(s.client.get(s.url(path))).await;
            assert_eq!(headers["echo-environment"], env.as_str(), "{path}");
        }
    }
}

/// Creates a key with `environment` (or the server's default) from a session; returns it.
async fn new_key(s: &TestServer, token: &str, environment: Option<&str>) -> String {
    let mut body = json!({"name": "deploy"});
    if let Some(e) = environment {
        body["environment"] = json!(e);
    }
    let (status, _, created) = send(
        s.client
            .post(s.url("/api/v1/auth/api-keys"))
            .bearer_auth(token)
            .json(&body),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["key"].as_str().unwrap().to_owned()
}

async fn key_works(s: &TestServer, key: &str) -> StatusCode {
    send(
        s.client
            .get(s.url("/api/v1/experiments"))
            .header("x-api-key", key),
    )
    .await
    .0
}

#[tokio::test]
async fn staging_issues_test_keys_and_production_refuses_them_even_when_configured() {
    let staging = server_in(Environment::Staging, false).await;
    let a = staging.user("stage@example.com").await;
    assert!(a.key.starts_with("echo1_test_"), "{}", a.key);
    assert_eq!(key_works(&staging, &a.key).await, StatusCode::OK);
    let live = new_key(&staging, &a.token, Some("live")).await;
    assert!(live.starts_with("echo1_live_"));
    assert_eq!(key_works(&staging, &live).await, StatusCode::OK);

    // A production server built around the start-up check still accepts live keys only.
    let production = server_in(Environment::Production, true).await;
    let b = production.user("prod@example.com").await;
    assert!(b.key.starts_with("echo1_live_"), "{}", b.key);
    assert_eq!(key_works(&production, &b.key).await, StatusCode::OK);
    let test_key = new_key(&production, &b.token, Some("test")).await;
    assert_eq!(
        key_works(&production, &test_key).await,
        StatusCode::UNAUTHORIZED
    );

    // Development keeps today's behaviour: test keys only when asked for.
    let dev = server_in(Environment::Development, true).await;
    let c = dev.user("dev@example.com").await;
    assert!(c.key.starts_with("echo1_live_"));
    let test_key = new_key(&dev, &c.token, Some("test")).await;
    assert_eq!(key_works(&dev, &test_key).await, StatusCode::OK);
}

const PEPPER: &str = "a deployment pepper of at least thirty-two bytes";

#[test]
fn staging_and_production_refuse_to_start_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("refuse.db");
    for env in ["staging", "production"] {
        for command in ["serve", "worker"] {
            let out = echoai()
                .args([command, "--database"])
                .arg(&db)
                .env("ECHO_ENV", env)
                .env("ECHO_PEPPER", PEPPER)
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(1), "{env} {command}");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.contains("ECHO_AUDIT_SIGNING_KEY") && !stderr.contains("ECHO_PEPPER)"),
                "{env} {command}: {stderr}"
            );
        }
    }
    // Refused before the database is touched.
    assert!(!db.exists());

    let out = echoai()
        .args(["serve", "--listen", "0.0.0.0:0", "--database"])
        .arg(&db)
        .env("ECHO_ENV", "production")
        .env("ECHO_PEPPER", PEPPER)
        .env("ECHO_AUDIT_SIGNING_KEY", "ab".repeat(32))
        .env("ECHO_ACCEPT_TEST_KEYS", "true")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for setting in [
        "ECHO_TRUST_FORWARDED_FOR",
        "ECHO_ACCEPT_TEST_KEYS",
        "ECHO_ALLOW_SIMULATED",
    ] {
        assert!(stderr.contains(setting), "{setting}: {stderr}");
    }
}

#[test]
fn config_check_prints_settings_masked_and_exits_by_violations() {
    let out = echoai().args(["config", "check"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("listen = \"127.0.0.1:8080\""), "{stdout}");

    let out = echoai()
        .args(["config", "check", "--env", "production", "--json"])
        .env("ECHO_PEPPER", PEPPER)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("deployment pepper"), "{stdout}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["environment"], "production");
    let pepper = report["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == "security.pepper")
        .unwrap();
    assert_eq!(pepper["value"], "<redacted>");
    assert_eq!(pepper["source"], "env ECHO_PEPPER");
    let violations: Vec<&str> = report["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["setting"].as_str().unwrap())
        .collect();
    assert_eq!(violations.len(), 2, "{violations:?}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("echo.toml");
    std::fs::write(
        &file,
        "env = \"production\"\nlisten = \"0.0.0.0:8080\"\n[security]\ntrust_forwarded_for = true\n",
    )
    .unwrap();
    let out = echoai()
        .args(["config", "check", "--config"])
        .arg(&file)
        .env("ECHO_PEPPER", PEPPER)
        .env("ECHO_AUDIT_SIGNING_KEY", "ab".repeat(32))
        .env("ECHO_ALLOW_SIMULATED", "true")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("environment: production"), "{stdout}");
    assert!(
        stdout.contains("security.trust_forwarded_for = true [ECHO_TRUST_FORWARDED_FOR] (file)"),
        "{stdout}"
    );
}

/// `config check` names the providers whose answers cite sources: Perplexity always, the
/// others when their web search variable is on; a non-boolean value is refused by name.
#[test]
fn config_check_lists_the_providers_that_capture_sources() {
    let out = echoai()
        .args(["config", "check", "--json"])
        .env("OPENAI_API_KEY", "sk-test")
        .env("ANTHROPIC_API_KEY", "sk-ant-test")
        .env("ECHO_OPENAI_WEB_SEARCH", "true")
        .env_remove("ECHO_ANTHROPIC_WEB_SEARCH")
        .env_remove("PERPLEXITY_API_KEY")
        .env_remove("GEMINI_API_KEY")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    if cfg!(feature = "providers") {
        assert_eq!(report["citing_sources"], serde_json::json!(["openai"]));
    } else {
        assert_eq!(report["citing_sources"], serde_json::json!([]));
    }

    let out = echoai()
        .args(["config", "check"])
        .env("ANTHROPIC_API_KEY", "sk-ant-test")
        .env("ECHO_ANTHROPIC_WEB_SEARCH", "maybe")
        .output()
        .unwrap();
    if cfg!(feature = "providers") {
        assert_ne!(out.status.code(), Some(0));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("ECHO_ANTHROPIC_WEB_SEARCH"), "{stderr}");
    }
}

/// `config check` shows whether email verification is required: the value in force, which
/// follows the environment unless `ECHO_REQUIRE_EMAIL_VERIFICATION` sets it.
#[test]
fn config_check_shows_the_email_verification_setting() {
    let line = |args: &[&str], env: Option<&str>| {
        let mut cmd = echoai();
        cmd.args(["config", "check"]).args(args);
        if let Some(value) = env {
            cmd.env("ECHO_REQUIRE_EMAIL_VERIFICATION", value);
        }
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        stdout
            .lines()
            .find(|l| l.starts_with("security.require_email_verification = "))
            .unwrap_or_else(|| panic!("setting not shown: {stdout}"))
            .to_owned()
    };
    assert_eq!(
        line(&[], None),
        "security.require_email_verification = false [ECHO_REQUIRE_EMAIL_VERIFICATION] (default)"
    );
    assert_eq!(
        line(&["--env", "staging"], None),
        "security.require_email_verification = false [ECHO_REQUIRE_EMAIL_VERIFICATION] (default)"
    );
    assert_eq!(
        line(&["--env", "production"], None),
        "security.require_email_verification = true [ECHO_REQUIRE_EMAIL_VERIFICATION] (default)"
    );
    assert_eq!(
        line(&["--env", "production"], Some("false")),
        "security.require_email_verification = false [ECHO_REQUIRE_EMAIL_VERIFICATION] (env ECHO_REQUIRE_EMAIL_VERIFICATION)"
    );
    assert_eq!(
        line(&[], Some("true")),
        "security.require_email_verification = true [ECHO_REQUIRE_EMAIL_VERIFICATION] (env ECHO_REQUIRE_EMAIL_VERIFICATION)"
    );
}

/// Runs `echoai probe url` off the runtime (the test server lives on it).
async fn probe(url: String) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        echoai()
            .args(["probe", &url, "--timeout-secs", "10"])
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn probe_exits_zero_on_a_live_server_and_one_on_a_dead_address() {
    let s = TestServer::start().await;
    let out = probe(s.url("/healthz")).await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);

    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    for url in [format!("http://{dead}/healthz"), s.url("/no-such-route")] {
        let out = probe(url).await;
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("probe failed"), "{stderr}");
    }
}

fn options(base_url: &str, key: Option<&str>, create: bool) -> SmokeOptions {
    SmokeOptions {
        base_url: base_url.to_owned(),
        api_key: key.map(str::to_owned),
        create,
        timeout: Duration::from_secs(60),
    }
}

fn names(report: &echo_server_example::commands::smoke::SmokeReport) -> Vec<&str> {
    report.steps.iter().map(|s| s.name).collect()
}

#[tokio::test]
async fn smoke_passes_read_only_and_with_an_experiment_it_deletes() {
    let s = TestServer::start().await;
    let a = s.user("smoke@example.com").await;

    let report = run_smoke(&options(&s.base, Some(&a.key), false)).await;
    assert!(report.passed, "{report:#?}");
    assert_eq!(
        names(&report),
        [
            "healthz",
            "readyz",
            "security-headers",
            "good-key",
            "bad-key"
        ]
    );

    let (workers, handle) = s.start_workers(Duration::from_secs(30));
    let report = run_smoke(&options(&s.base, Some(&a.key), true)).await;
    workers.cancel();
    handle.await.unwrap();
    assert!(report.passed, "{report:#?}");
    assert_eq!(
        names(&report)[5..],
        ["create", "finish", "metrics", "delete"]
    );
    // The experiment is gone again.
    let (_, _, list) = send(
        s.client
            .get(s.url("/api/v1/experiments"))
            .header("x-api-key", &a.key),
    )
    .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "{list}");
}

#[tokio::test]
async fn smoke_names_the_failed_step() {
    let s = TestServer::start().await;
    // A key that is not the account's: good-key fails, and the steps after it are skipped.
    let a = s.user("wrong@example.com").await;
    let mut other = a.key.clone();
    other.pop();
    other.push('A');
    let report = run_smoke(&options(&s.base, Some(&other), true)).await;
    assert!(!report.passed);
    assert_eq!(report.first_failure().unwrap().name, "good-key");
    assert!(
        report.steps[4..]
            .iter()
            .all(|s| s.status == StepStatus::Skipped),
        "{report:#?}"
    );
    // No key at all is a failure, not a silent pass.
    let report = run_smoke(&options(&s.base, None, false)).await;
    assert_eq!(report.first_failure().unwrap().name, "good-key");

    // A server without the security headers (and accepting any key).
    let app = axum::Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route("/readyz", axum::routing::get(|| async { "ok" }))
        .route("/api/v1/experiments", axum::routing::get(|| async { "[]" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let report = run_smoke(&options(&base, Some(&a.key), false)).await;
    let failed = report.first_failure().unwrap();
    assert_eq!(failed.name, "security-headers");
    assert!(
        failed.detail.contains("content-security-policy"),
        "{failed:?}"
    );

    // The binary exits 1 naming the step, and --json lists every step.
    let out = tokio::task::spawn_blocking(move || {
        echoai()
            .args(["smoke", "--json", "--base-url", &base, "--api-key", "x"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("security-headers"));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let steps = json["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 5);
    assert_eq!(steps[0]["status"], "passed");
    assert!(steps[0]["duration_ms"].is_u64());
    assert_eq!(steps[2]["status"], "failed");
}

#[test]
fn the_default_configuration_stays_valid_in_development() {
    let c = ServerConfig::load(None, |_| None).unwrap();
    assert_eq!(c.env, Environment::Development);
    assert!(c.violations(&[]).is_empty());
}

/// `echoai migrate --check` on `database`: exit code and standard output.
async fn migrate_check(database: &str) -> (Option<i32>, String) {
    let database = database.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        echoai()
            .args(["migrate", "--check", "--database", &database])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

async fn migrate(database: &str) {
    let database = database.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        echoai()
            .args(["migrate", "--database", &database])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[tokio::test]
async fn migrate_check_lists_pending_migrations_and_changes_nothing_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("check.db");
    let db = path.to_str().unwrap();
    let (code, stdout) = migrate_check(db).await;
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("0001_init"), "{stdout}");
    assert!(!path.exists(), "--check created the database");
    migrate(db).await;
    let (code, stdout) = migrate_check(&format!("sqlite://{db}")).await;
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("up to date"), "{stdout}");
}

/// `/readyz` of a server over `opened` (with its backend's readiness check); a 503 must be
/// problem+json.
async fn ready_status(opened: echo_server_example::database::OpenedStore) -> StatusCode {
    let mut config = ServerConfig::default();
    config.security.pepper = Some(echo_core::secret::Secret::new(PEPPER));
    let state = echo_server_example::AppState::build(
        opened.store,
        config,
        echo_server_example::StateOptions::default(),
        opened.extras,
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = echo_server_example::build_app(state);
    let server = tokio::spawn(echo_server_example::run(
        listener,
        app,
        std::future::pending(),
    ));
    let r = reqwest::get(format!("{base}/readyz")).await.unwrap();
    let status = r.status();
    if status != StatusCode::OK {
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/problem+json")
        );
    }
    server.abort();
    status
}

#[tokio::test]
async fn readyz_is_unavailable_while_migrations_are_pending_on_sqlite() {
    use echo_server_example::database::{PoolSizing, open};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ready.db");
    let db = path.to_str().unwrap();
    assert_eq!(
        ready_status(open(db, PoolSizing::COMMAND).await.unwrap()).await,
        StatusCode::OK
    );
    let opened = open(db, PoolSizing::COMMAND).await.unwrap();
    // The file is put back one migration behind under the running server.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    conn.execute_batch(&format!("PRAGMA user_version = {}", version - 1))
        .unwrap();
    assert_eq!(ready_status(opened).await, StatusCode::SERVICE_UNAVAILABLE);
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn migrate_check_and_readyz_on_postgres() {
    use echo_server_example::database::{PoolSizing, open};
    use sqlx::Connection;
    let Some(admin) = std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
    else {
        assert!(
            std::env::var("CI").is_err(),
            "CI=true but DATABASE_URL is not set"
        );
        eprintln!("SKIPPED: migrate --check on PostgreSQL: DATABASE_URL is not set");
        return;
    };
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    let name = format!(
        "echo_test_{}_deploy_{}",
        std::process::id(),
        &uuid::Uuid::now_v7().simple().to_string()[24..]
    );
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);

    let (code, stdout) = migrate_check(&url).await;
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("0001_init"), "{stdout}");
    migrate(&url).await;
    let (code, stdout) = migrate_check(&url).await;
    assert_eq!(code, Some(0), "{stdout}");

    // A newer release migrated the database (expand-only): this build still calls it current
    // and ready, and its `migrate` is a no-op.
    let mut db = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99990001, 'from a newer release', true, '\\x00', 0)",
    )
    .execute(&mut db)
    .await
    .unwrap();
    let (code, stdout) = migrate_check(&url).await;
    assert_eq!(
        code,
        Some(0),
        "a database that is ahead is current: {stdout}"
    );
    migrate(&url).await;
    let ahead = open(&url, PoolSizing::COMMAND).await.unwrap();
    assert_eq!(ready_status(ahead).await, StatusCode::OK);
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 99990001")
        .execute(&mut db)
        .await
        .unwrap();

    let opened = open(&url, PoolSizing::COMMAND).await.unwrap();
    sqlx::query(
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT max(version) FROM _sqlx_migrations)",
    )
    .execute(&mut db)
    .await
    .unwrap();
    db.close().await.unwrap();
    assert_eq!(ready_status(opened).await, StatusCode::SERVICE_UNAVAILABLE);
    let (code, _) = migrate_check(&url).await;
    assert_eq!(code, Some(1));

    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await;
}

/// `echoai user key` issues a staging (test) key digested with the configured pepper, printed
/// once; without a pepper it refuses, naming the setting.
#[tokio::test]
async fn user_key_issues_a_key_the_servers_pepper_verifies() {
    use echo_core::auth::{ApiKey, KeyHasher, Pepper};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("keys.db");
    let out = echoai()
        .args([
            "user",
            "create",
            "--email",
            "smoke@example.com",
            "--database",
        ])
        .arg(&db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let key_for = |pepper: Option<&str>| {
        let mut c = echoai();
        c.args([
            "user",
            "key",
            "--email",
            "smoke@example.com",
            "--label",
            "smoke",
        ])
        .arg("--database")
        .arg(&db)
        .env("ECHO_ENV", "staging")
        .env("ECHO_AUDIT_SIGNING_KEY", "ab".repeat(32));
        if let Some(p) = pepper {
            c.env("ECHO_PEPPER", p);
        }
        c.output().unwrap()
    };
    let refused = key_for(None);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("ECHO_PEPPER"));

    let out = key_for(Some(PEPPER));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let key = stdout.trim();
    assert!(
        key.starts_with("echo1_test_"),
        "staging issues test keys: {key}"
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains(key));

    let parsed = ApiKey::parse(key).unwrap();
    let (store, _) = echo_server_example::open_store(db.to_str().unwrap())
        .await
        .unwrap();
    let record = store
        .find_api_key(parsed.public_id())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.name.as_str(), "smoke");
    let hasher = KeyHasher::new(Pepper::new(PEPPER.as_bytes().to_vec()).unwrap());
    assert!(
        hasher
            .verify(parsed.secret(), Some(&record.secret_hash))
            .matched()
    );
}
