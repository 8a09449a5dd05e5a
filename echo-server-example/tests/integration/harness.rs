//! A real server for tests: the router on a port-0 listener over a SQLite file, with the
//! worker pool available on demand.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use echo_core::auth::{PasswordParams, RateLimitConfig, ThrottleConfig};
use echo_core::model::ProviderKind;
use echo_core::provider::{Completion, CompletionRequest, PermanentKind, Provider, ProviderError};
use echo_core::runner::{
    ExperimentRunner, JobExecutor, RunnerConfig, WorkerPool, WorkerPoolConfig,
};
use echo_core::store::DynStore;
use echo_server_example::config::ServerConfig;
use echo_server_example::{AppState, StateOptions, StoreExtras};
use echo_store_sqlite::{SqliteConfig, SqliteStore};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// A provider that always fails permanently (a revoked upstream key): its runs fail and
/// refund their quota.
#[derive(Debug)]
pub struct BrokenProvider;

#[async_trait]
impl Provider for BrokenProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::OpenAi
    }
    async fn complete(&self, _: &CompletionRequest) -> Result<Completion, ProviderError> {
        Err(ProviderError::Permanent {
            kind: PermanentKind::Authentication,
            status: Some(401),
            message: "invalid upstream key".into(),
        })
    }
}

/// Which store the server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    #[cfg(feature = "postgres")]
    Postgres,
}

/// Test-server options.
pub struct Options {
    pub rate_limits: RateLimitConfig,
    pub throttle: ThrottleConfig,
    pub config: ServerConfig,
    pub backend: Backend,
}

impl Default for Options {
    fn default() -> Self {
        let mut config = ServerConfig::default();
        config.security.pepper = Some(echo_core::secret::Secret::new(
            "test pepper that is long enough for the check",
        ));
        Self {
            rate_limits: RateLimitConfig::default(),
            throttle: ThrottleConfig::default(),
            config,
            backend: Backend::Sqlite,
        }
    }
}

pub struct TestServer {
    pub base: String,
    pub state: AppState,
    pub store: Arc<DynStore>,
    pub client: reqwest::Client,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    /// A server on `backend`; `None` when PostgreSQL is not available outside CI.
    pub async fn on(backend: Backend) -> Option<Self> {
        Self::try_start_with(Options {
            backend,
            ..Options::default()
        })
        .await
    }

    pub async fn start_with(options: Options) -> Self {
        Self::try_start_with(options).await.unwrap()
    }

    async fn try_start_with(mut options: Options) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        options.config.privacy.outbox_dir = dir.path().join("outbox").display().to_string();
        let store: Arc<DynStore> = match options.backend {
            Backend::Sqlite => {
                let path = dir.path().join("echo.db");
                Arc::new(
                    SqliteStore::open(&path, SqliteConfig::default())
                        .await
                        .unwrap(),
                )
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres => Arc::new(postgres_store().await?),
        };
        let state = AppState::build(
            store.clone(),
            options.config,
            StateOptions {
                // Cheap argon2 for tests; production parameters are measured in the benches.
                password_params: PasswordParams {
                    memory_kib: 1024,
                    iterations: 1,
                    parallelism: 1,
                },
                rate_limits: options.rate_limits,
                throttle: options.throttle,
                providers: vec![ProviderKind::Simulated, ProviderKind::OpenAi],
                ..StateOptions::default()
            },
            StoreExtras::default(),
        )
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = echo_server_example::build_app(state.clone());
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        tokio::spawn(async move {
            echo_server_example::run(listener, app, async move { token.cancelled().await })
                .await
                .unwrap();
        });
        Some(Self {
            base,
            state,
            store,
            client: reqwest::Client::new(),
            shutdown,
            _dir: dir,
        })
    }

    /// Makes the account with `email` an administrator; returns it.
    pub async fn make_admin(&self, email: &str) -> echo_core::model::User {
        let user = self
            .store
            .find_user_by_email(&echo_core::model::Email::parse(email).unwrap())
            .await
            .unwrap()
            .unwrap();
        self.store
            .set_admin(user.id, true, echo_core::model::Timestamp::now())
            .await
            .unwrap();
        self.store.get_user(user.id).await.unwrap()
    }

    /// The messages the server mailed, oldest first.
    pub fn outbox(&self) -> Vec<String> {
        let dir = std::path::Path::new(&self.state.config.privacy.outbox_dir);
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        files.sort();
        files
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap())
            .collect()
    }

    /// The verification token in the newest message mailed to `email`.
    pub fn mailed_token(&self, email: &str) -> String {
        let mail = self.outbox();
        let message = mail
            .iter()
            .rev()
            .find(|m| m.contains(&format!("To: {email}\r\n")) && m.contains("token="))
            .unwrap_or_else(|| panic!("no verification mail to {email}: {mail:?}"));
        let token = message.split("token=").nth(1).unwrap();
        token.split_whitespace().next().unwrap().to_owned()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A worker pool over this server's store (simulated provider per experiment, and the
    /// broken "openai"); cancel the token to stop it.
    pub fn start_workers(
        &self,
        lease: Duration,
    ) -> (CancellationToken, tokio::task::JoinHandle<()>) {
        let runner = ExperimentRunner::new(self.store.clone(), RunnerConfig::default())
            .with_simulated_per_experiment(7)
            .with_provider(Arc::new(BrokenProvider));
        let transport = echo_server_example::webhook_transport::ReqwestWebhookTransport::new(
            echo_core::webhook::WebhookUrlPolicy::DEVELOPMENT,
        )
        .unwrap();
        let executor = Arc::new(
            JobExecutor::new(self.store.clone(), Arc::new(runner), lease)
                .with_webhook_transport(Arc::new(transport)),
        );
        let pool = WorkerPool::new(
            self.store.clone(),
            executor,
            WorkerPoolConfig {
                worker_id: format!("test-{}", uuid::Uuid::now_v7()),
                min_concurrency: 1,
                max_concurrency: 2,
                lease,
                poll_interval: Duration::from_millis(50),
                shutdown_grace: Duration::from_secs(5),
                ..WorkerPoolConfig::default()
            },
        );
        let token = CancellationToken::new();
        let t = token.clone();
        let handle = tokio::spawn(async move {
            pool.run(t).await.unwrap();
        });
        (token, handle)
    }

    /// Registers `email`, logs in and creates an API key; returns (key, session token, csrf).
    pub async fn user(&self, email: &str) -> Account {
        let r = self
            .client
            .post(self.url("/api/v1/auth/register"))
            .json(&json!({
                "email": email,
                "password": "correct horse battery",
                "privacy_policy_version": self.state.config.privacy.policy_version,
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
        let login: Value = self
            .client
            .post(self.url("/api/v1/auth/login"))
            .json(&json!({"email": email, "password": "correct horse battery"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = login["access_token"].as_str().unwrap().to_owned();
        let csrf = login["csrf_token"].as_str().unwrap().to_owned();
        let created: Value = self
            .client
            .post(self.url("/api/v1/auth/api-keys"))
            .bearer_auth(&token)
            .json(&json!({"name": "tests"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        Account {
            key: created["key"].as_str().unwrap().to_owned(),
            key_id: created["id"].as_str().unwrap().to_owned(),
            token,
            csrf,
        }
    }

    /// Polls the experiment until it leaves queued/running.
    pub async fn wait_finished(&self, key: &str, id: &str) -> Value {
        for _ in 0..600 {
            let v: Value = self
                .client
                .get(self.url(&format!("/api/v1/experiments/{id}")))
                .header("x-api-key", key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let status = v["experiment"]["status"].as_str().unwrap_or("").to_owned();
            if !matches!(status.as_str(), "queued" | "running" | "pending") {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("experiment {id} did not finish");
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub struct Account {
    pub key: String,
    pub key_id: String,
    pub token: String,
    pub csrf: String,
}

#[cfg(feature = "postgres")]
fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
}

/// A fresh, migrated PostgreSQL store in a database of its own on `DATABASE_URL`'s server.
/// Without the server it prints why and returns `None` (the test is skipped), except under
/// `CI=true`, where it fails.
#[cfg(feature = "postgres")]
async fn postgres_store() -> Option<echo_store_postgres::PgStore> {
    use sqlx::Connection;
    use std::sync::atomic::{AtomicU32, Ordering};
    let skip = |why: String| {
        assert!(
            !under_ci(),
            "CI=true but the PostgreSQL server tests cannot run: {why}"
        );
        eprintln!("SKIPPED: server test on PostgreSQL: {why}");
        None
    };
    let Some(admin) = std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
    else {
        return skip("DATABASE_URL is not set".into());
    };
    let mut conn = match sqlx::PgConnection::connect(&admin).await {
        Ok(c) => c,
        Err(e) => return skip(format!("the server is unreachable: {e}")),
    };
    static N: AtomicU32 = AtomicU32::new(0);
    // The store crate's tests drop `echo_test_<pid>_…` databases of dead processes.
    let name = format!(
        "echo_test_{}_srv{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        &uuid::Uuid::now_v7().simple().to_string()[24..]
    );
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let _ = conn.close().await;
    let url = match admin.rsplit_once('/') {
        Some((server, _)) if server.contains("://") && !server.ends_with('/') => {
            format!("{server}/{name}")
        }
        _ => panic!("DATABASE_URL must end with /DBNAME"),
    };
    let store = echo_store_postgres::PgStore::connect(
        &url,
        echo_store_postgres::PgConfig {
            pool_size: 2,
            max_overflow: 8,
            ..echo_store_postgres::PgConfig::default()
        },
    )
    .await
    .unwrap();
    store.migrate().await.unwrap();
    Some(store)
}

/// A typical experiment: 20 simulated answers, three brands.
pub fn experiment_body() -> Value {
    json!({
        "prompt": "Best CRM for startups?",
        "target_brand": "HubSpot",
        "target_aliases": ["HubSpot CRM"],
        "competitor_brands": ["Salesforce", {"name": "Pipedrive", "aliases": ["Pipedrive CRM"]}],
        "iterations": 20,
        "config": {"providers": ["simulated"], "temperature": 0.5}
    })
}

/// Sends and returns status, headers and the body as JSON (or a JSON string).
pub async fn send(r: reqwest::RequestBuilder) -> (StatusCode, HeaderMap, Value) {
    let r = r.send().await.unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, headers, body)
}

/// The `echoai` binary with an empty environment, so a provider key or `ECHO_ENV` on the machine
/// cannot leak into a test; only `LLVM_PROFILE_FILE` is kept, so a coverage run counts the child.
pub fn echoai_clean() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_echoai"));
    c.env_clear();
    if let Some(profile) = std::env::var_os("LLVM_PROFILE_FILE") {
        c.env("LLVM_PROFILE_FILE", profile);
    }
    c
}
