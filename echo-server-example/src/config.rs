//! Server configuration: typed defaults, then an optional TOML file, then environment
//! variables, then command-line flags; validated once at start, with errors that name the
//! setting.
//!
//! | setting | env | default |
//! |---|---|---|
//! | `env` | `ECHO_ENV` (`development`, `staging`, `production`) | `development`: see below |
//! | `listen` | `ECHO_LISTEN` | `127.0.0.1:8080` |
//! | `database` | `ECHO_DATABASE` | `./echo.db` |
//! | `security.pepper` | `ECHO_PEPPER` | none: an ephemeral one is generated with a warning |
//! | `security.previous_pepper` | `ECHO_PREVIOUS_PEPPER` | none |
//! | `security.dev_insecure_cookies` | `ECHO_DEV_INSECURE_COOKIES` | `false`; refused at start unless `listen` is a loopback address |
//! | `security.hsts` | `ECHO_HSTS` | `true` |
//! | `security.cors_origins` | `ECHO_CORS_ORIGINS` (comma-separated) | none: CORS off |
//! | `security.trust_forwarded_for` | `ECHO_TRUST_FORWARDED_FOR` | `false` |
//! | `security.accept_test_keys` | `ECHO_ACCEPT_TEST_KEYS` | `false` |
//! | `security.metrics_token` | `ECHO_METRICS_TOKEN` (at least 16 characters) | none: `/metrics` is open; with it, `/metrics` needs `Authorization: Bearer <token>` (401 otherwise) |
//! | `security.require_email_verification` | `ECHO_REQUIRE_EMAIL_VERIFICATION` | on in production, off in development and staging: new accounts verify their email (a mailed one-time link, valid 24 h) before they create or run experiments |
//! | `security.max_api_keys` | `ECHO_MAX_API_KEYS` | 25 active API keys per account (1 to 10,000); past it creating one answers 409 |
//! | `http.public_base_url` | `ECHO_PUBLIC_BASE_URL` | `http://` + `listen`: the address users reach the server at, for links in mail (set it behind a proxy) |
//! | `http.body_limit_bytes` | `ECHO_BODY_LIMIT_BYTES` | 1 MiB |
//! | `http.request_timeout_secs` | `ECHO_REQUEST_TIMEOUT_SECS` | 30 |
//! | `http.header_read_timeout_secs` | `ECHO_HEADER_READ_TIMEOUT_SECS` | 10: a connection sending no complete request head for this long (including an idle keep-alive one) is closed (1 to 3,600) |
//! | `http.max_connections` | `ECHO_MAX_CONNECTIONS` | 1,024 connections served at once; past it new ones wait in the listen backlog (1 to 1,000,000) |
//! | `http.event_streams_per_account` | `ECHO_EVENT_STREAMS_PER_ACCOUNT` | 4 progress streams (`GET …/events`) open per account; past it 429 (1 to 1,000) |
//! | `sessions.ttl_secs` | `ECHO_SESSION_TTL_SECS` | 43,200 (12 h) |
//! | `workers.concurrency` | `ECHO_WORKER_CONCURRENCY` | the machine's cores |
//! | `workers.min_concurrency` | `ECHO_WORKER_MIN_CONCURRENCY` | 1 |
//! | `workers.lease_secs` | `ECHO_WORKER_LEASE_SECS` | 30 |
//! | `workers.shutdown_grace_secs` | `ECHO_SHUTDOWN_GRACE_SECS` | 30 |
//! | `workers.hard_time_limit_secs` | `ECHO_JOB_HARD_LIMIT_SECS` | 7,200 |
//! | `workers.run_timeout_secs` | `ECHO_RUN_TIMEOUT_SECS` | 1,800 (the soft limit) |
//! | `scheduler.interval_secs` | `ECHO_SCHEDULER_INTERVAL_SECS` | 10 |
//! | `simulated.seed` | `ECHO_SIMULATED_SEED` | 42 |
//! | `simulated.latency_ms` | `ECHO_SIMULATED_LATENCY_MS` | 0: each simulated call's delay (rehearsals need runs in flight) |
//! | `simulated.allow_in_production` | `ECHO_ALLOW_SIMULATED` | `false`: production needs a real provider |
//! | `postgres.pool_size` / `max_overflow` | `ECHO_PG_POOL_SIZE` / `ECHO_PG_MAX_OVERFLOW` | 20 / 10 |
//! | `postgres.acquire_timeout_secs` | `ECHO_PG_ACQUIRE_TIMEOUT_SECS` | 3: while the database is down, a request fails with 503 after this |
//! | `log.format` | `ECHO_LOG_FORMAT` (`auto`, `json`, `pretty`) | `auto`: JSON unless on a terminal |
//! | `rate_limits.free` / `pro` / `enterprise` | `ECHO_RATE_LIMIT_FREE` / `_PRO` / `_ENTERPRISE` | 60 / 600 / 3,000 requests per minute per account (all its keys and sessions together) |
//! | `privacy.policy_version` | `ECHO_PRIVACY_POLICY_VERSION` | `2026-12-01` |
//! | `privacy.deletion_grace_days` | `ECHO_DELETION_GRACE_DAYS` | 30 |
//! | `privacy.retention_days_free` / `_pro` / `_enterprise` | `ECHO_RETENTION_DAYS_FREE` / `_PRO` / `_ENTERPRISE` | 90 |
//! | `privacy.redaction` | `ECHO_REDACTION` (`off`, `redact`) | `off` |
//! | `privacy.outbox_dir` | `ECHO_OUTBOX_DIR` | `./echo-outbox` |
//! | `privacy.smtp_url` | `ECHO_SMTP_URL` (`smtps://user:password@host`, feature `smtp`) | none: mail goes to the outbox |
//! | `privacy.audit_signing_key` | `ECHO_AUDIT_SIGNING_KEY` (64 hex characters) | none: checkpoints unsigned, with a warning |
//! | `privacy.audit_retention_days` | `ECHO_AUDIT_RETENTION_DAYS` | 730 |
//! | `privacy.audit_archive_dir` | `ECHO_AUDIT_ARCHIVE_DIR` | `./echo-audit-archive` |
//! | `rate_limits.experiments` | `ECHO_RATE_LIMIT_EXPERIMENTS` | 10 experiment creations per minute per account |
//! | `rate_limits.auth_failures` | `ECHO_RATE_LIMIT_AUTH_FAILURES` | 30 failed authentications (bad key, invalid session) per minute per client address (IPv6 per /64); past it every request from the address, even with a good key, is refused with 429 before the key is looked up |
//!
//! Staging and production refuse to start (`serve`, `worker`) with an unsafe configuration,
//! naming each setting ([`ServerConfig::violations`], also printed by `echoai config check`):
//! no pepper, insecure cookies, no audit signing key, or a non-loopback `listen` without
//! `trust_forwarded_for`; production also refuses `accept_test_keys` and a server with no real
//! provider unless `simulated.allow_in_production`. Staging accepts test keys and issues them
//! by default; production accepts live keys only.
//!
//! Secrets (the peppers, the SMTP URL, the audit signing key, the metrics token) are held in
//! [`Secret`], whose `Debug` and `Display` are redacted. The database URL is logged only
//! through [`crate::server::redact_url`].
//!
//! The variables are read from one table (`ENV`), one line per variable with its field and
//! parser, so a new setting cannot be read under one name and reported under another.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use echo_core::secret::Secret;
use serde::{Deserialize, Serialize};

mod environment;

use environment::environment;
pub use environment::{Environment, Violation};

/// A configuration error, naming the setting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A setting has a bad value.
    #[error("invalid setting {setting}: {reason}")]
    Invalid {
        /// The setting's name (file key or environment variable).
        setting: String,
        /// What is wrong.
        reason: String,
    },
    /// The configuration file could not be read.
    #[error("cannot read configuration file {path}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The configuration file is not valid TOML for these settings.
    #[error("configuration file {path} is invalid: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message (names the key and line).
        message: String,
    },
}

fn invalid(setting: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting: setting.into(),
        reason: reason.into(),
    }
}

/// Everything the server reads at start.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// The deployment environment: staging and production refuse unsafe settings at start.
    pub env: Environment,
    /// Address to listen on.
    pub listen: String,
    /// SQLite path / `sqlite://` URL or `postgres://` URL.
    pub database: String,
    /// Security settings.
    pub security: SecurityConfig,
    /// HTTP limits.
    pub http: HttpConfig,
    /// Login sessions.
    pub sessions: SessionsConfig,
    /// The job workers.
    pub workers: WorkersConfig,
    /// The recurring-experiment scheduler.
    pub scheduler: SchedulerSettings,
    /// The simulated provider.
    pub simulated: SimulatedSettings,
    /// The PostgreSQL pool (ignored on SQLite).
    pub postgres: PostgresSettings,
    /// Logging.
    pub log: LogConfig,
    /// Per-account rate limits (requests per minute), per replica.
    pub rate_limits: RateLimitSettings,
    /// Privacy: policy version, consent, deletion, retention, redaction, audit signing.
    pub privacy: PrivacySettings,
}

/// Privacy and accountability settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacySettings {
    /// The current privacy-policy version: registration must accept exactly it, and users who
    /// accepted another are asked to accept again (`consent_required`).
    pub policy_version: String,
    /// Where the policy is published.
    pub policy_url: Option<String>,
    /// Whether registration requires `privacy_policy_version`.
    pub require_policy_on_register: bool,
    /// Days between an account-deletion request and the purge (logging in before cancels it).
    pub deletion_grace_days: u32,
    /// Raw answers older than this many days are anonymized (per tier).
    pub retention_days_free: u32,
    /// Retention of raw answers, pro tier (days).
    pub retention_days_pro: u32,
    /// Retention of raw answers, enterprise tier (days).
    pub retention_days_enterprise: u32,
    /// `off` or `redact`: replace emails, phone numbers, IBANs, card numbers and IP
    /// addresses in answers before storage.
    pub redaction: echo_core::privacy::RedactionMode,
    /// Directory the default mailer writes messages to.
    pub outbox_dir: String,
    /// Sender of outgoing mail.
    pub mail_from: String,
    /// SMTP relay URL (`smtps://user:password@host`); needs the `smtp` feature. Without it
    /// mail goes to `outbox_dir`.
    #[serde(serialize_with = "masked")]
    pub smtp_url: Option<Secret>,
    /// Hex of a 32-byte Ed25519 seed that signs audit checkpoints; without it checkpoints are
    /// not signed (a warning says so).
    #[serde(serialize_with = "masked")]
    pub audit_signing_key: Option<Secret>,
    /// Days audit events are kept in the database before they are archived.
    pub audit_retention_days: u32,
    /// Directory of audit archives (JSON Lines).
    pub audit_archive_dir: String,
}

impl Default for PrivacySettings {
    fn default() -> Self {
        Self {
            policy_version: "2026-12-01".into(),
            policy_url: None,
            require_policy_on_register: true,
            deletion_grace_days: 30,
            retention_days_free: 90,
            retention_days_pro: 90,
            retention_days_enterprise: 90,
            redaction: echo_core::privacy::RedactionMode::Off,
            outbox_dir: "./echo-outbox".into(),
            mail_from: "Echo <no-reply@echo.localhost>".into(),
            smtp_url: None,
            audit_signing_key: None,
            audit_retention_days: 730,
            audit_archive_dir: "./echo-audit-archive".into(),
        }
    }
}

impl PrivacySettings {
    /// Retention of raw answers for `tier`.
    pub fn retention_days(&self, tier: echo_core::model::PricingTier) -> u32 {
        use echo_core::model::PricingTier;
        match tier {
            PricingTier::Free => self.retention_days_free,
            PricingTier::Pro => self.retention_days_pro,
            PricingTier::Enterprise => self.retention_days_enterprise,
        }
    }

    /// The audit signing seed, when configured.
    pub fn signing_seed(&self) -> Result<Option<[u8; 32]>, ConfigError> {
        let Some(key) = &self.audit_signing_key else {
            return Ok(None);
        };
        let bad = || {
            invalid(
                "privacy.audit_signing_key (ECHO_AUDIT_SIGNING_KEY)",
                "must be 64 hex characters (32 bytes, e.g. `openssl rand -hex 32`)",
            )
        };
        let bytes = hex::decode(key.expose().trim()).map_err(|_| bad())?;
        bytes.try_into().map(Some).map_err(|_| bad())
    }
}

/// Per-account rate limits in requests per minute (GCRA, burst = the per-minute figure): all
/// of a user's keys and sessions share them. They are per replica: with N replicas behind a
/// non-sticky balancer, divide by N.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitSettings {
    /// Every authenticated request, free tier.
    pub free: u32,
    /// Every authenticated request, pro tier.
    pub pro: u32,
    /// Every authenticated request, enterprise tier.
    pub enterprise: u32,
    /// Experiment creation and re-runs, every tier.
    pub experiments: u32,
    /// Failed authentications per client address.
    pub auth_failures: u32,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            free: 60,
            pro: 600,
            enterprise: 3_000,
            experiments: 10,
            auth_failures: 30,
        }
    }
}

impl RateLimitSettings {
    /// The limiter configuration.
    pub fn to_config(&self) -> Result<echo_core::auth::RateLimitConfig, ConfigError> {
        use echo_core::auth::{Quota, RateLimitConfig, TierQuotas};
        let q = |name: &str, n: u32| Quota::per_minute(n).map_err(|e| invalid(name, e.to_string()));
        Ok(RateLimitConfig {
            general: TierQuotas {
                free: q("rate_limits.free (ECHO_RATE_LIMIT_FREE)", self.free)?,
                pro: q("rate_limits.pro (ECHO_RATE_LIMIT_PRO)", self.pro)?,
                enterprise: q(
                    "rate_limits.enterprise (ECHO_RATE_LIMIT_ENTERPRISE)",
                    self.enterprise,
                )?,
            },
            experiment_creation: TierQuotas::uniform(q(
                "rate_limits.experiments (ECHO_RATE_LIMIT_EXPERIMENTS)",
                self.experiments,
            )?),
            ..RateLimitConfig::default()
        })
    }
}

/// Security settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// Server-side secret mixed into API-key and session digests (at least 32 bytes).
    #[serde(serialize_with = "masked")]
    pub pepper: Option<Secret>,
    /// The pepper before a rotation: keys digested with it keep working.
    #[serde(serialize_with = "masked")]
    pub previous_pepper: Option<Secret>,
    /// Plain-HTTP localhost development: the session cookie drops `Secure` and the `__Host-`
    /// prefix, and HSTS is not sent. Never in production.
    pub dev_insecure_cookies: bool,
    /// Send `Strict-Transport-Security`.
    pub hsts: bool,
    /// HSTS max-age in seconds.
    pub hsts_max_age_secs: u64,
    /// Origins allowed by CORS; empty turns CORS off.
    pub cors_origins: Vec<String>,
    /// Take the client IP from the last `X-Forwarded-For` entry, as appended by one trusted
    /// proxy in front of the server (never enable it without such a proxy).
    pub trust_forwarded_for: bool,
    /// Accept `echo1_test_` keys as well as live ones.
    pub accept_test_keys: bool,
    /// Most active API keys one account may hold.
    pub max_api_keys: usize,
    /// Bearer token `/metrics` requires; without it `/metrics` is open.
    #[serde(serialize_with = "masked")]
    pub metrics_token: Option<Secret>,
    /// New accounts verify their email before they create or run experiments; unset: on in
    /// production only (see [`ServerConfig::require_email_verification`]).
    pub require_email_verification: Option<bool>,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        Self {
            pepper: None,
            previous_pepper: None,
            dev_insecure_cookies: false,
            hsts: true,
            hsts_max_age_secs: 31_536_000,
            cors_origins: Vec::new(),
            trust_forwarded_for: false,
            accept_test_keys: false,
            max_api_keys: 25,
            metrics_token: None,
            require_email_verification: None,
        }
    }
}

/// HTTP limits.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Largest request body accepted (bytes); larger ones get 413.
    pub body_limit_bytes: usize,
    /// Per-request time limit (seconds); slower requests get 408.
    pub request_timeout_secs: u64,
    /// Seconds a connection has to send a complete request head; also the idle keep-alive
    /// limit (see [`crate::connections`]).
    pub header_read_timeout_secs: u64,
    /// Connections served at once; past it new ones wait in the listen backlog.
    pub max_connections: usize,
    /// Progress streams open per account (each holds a connection); past it 429.
    pub event_streams_per_account: u32,
    /// The URL users reach the server at (`https://echo.example.com`), for links in mail;
    /// unset: `http://` and the listen address.
    pub public_base_url: Option<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            body_limit_bytes: 1024 * 1024,
            request_timeout_secs: 30,
            header_read_timeout_secs: 10,
            max_connections: 1024,
            event_streams_per_account: 4,
            public_base_url: None,
        }
    }
}

/// Login sessions.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionsConfig {
    /// Lifetime of a session (seconds).
    pub ttl_secs: u64,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        Self {
            ttl_secs: 12 * 3600,
        }
    }
}

/// Job workers.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkersConfig {
    /// Most jobs executed at once (the pool scales up to it with queue depth).
    pub concurrency: usize,
    /// Fewest job slots kept open.
    pub min_concurrency: usize,
    /// Lease length (seconds); heartbeats renew it every third of it.
    pub lease_secs: u64,
    /// On shutdown, how long in-flight jobs may finish before they are released (seconds).
    pub shutdown_grace_secs: u64,
    /// A job running longer is stopped and failed (seconds).
    pub hard_time_limit_secs: u64,
    /// A batch run running longer fails and refunds its unrun iterations (seconds).
    pub run_timeout_secs: u64,
    /// Provider calls in flight per provider, across the jobs of this process.
    pub provider_concurrency: usize,
}

impl Default for WorkersConfig {
    fn default() -> Self {
        Self {
            concurrency: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            min_concurrency: 1,
            lease_secs: 30,
            shutdown_grace_secs: 30,
            hard_time_limit_secs: 2 * 3600,
            run_timeout_secs: 30 * 60,
            provider_concurrency: 16,
        }
    }
}

/// The scheduler.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerSettings {
    /// Seconds between scheduler ticks.
    pub interval_secs: u64,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        Self { interval_secs: 10 }
    }
}

/// The simulated provider.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimulatedSettings {
    /// Seed: same seed, same answers.
    pub seed: u64,
    /// Delay of every simulated call (milliseconds).
    pub latency_ms: u64,
    /// Let production start with only the simulated provider (a demo deployment); without it,
    /// production refuses to start when no real provider is configured.
    pub allow_in_production: bool,
}

impl Default for SimulatedSettings {
    fn default() -> Self {
        Self {
            seed: 42,
            latency_ms: 0,
            allow_in_production: false,
        }
    }
}

/// PostgreSQL pool settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresSettings {
    /// Connections kept open.
    pub pool_size: u32,
    /// Extra connections opened under load.
    pub max_overflow: u32,
    /// How long a call waits for a connection (seconds). Short, so that while the database is
    /// unreachable API calls fail fast with 503 instead of hanging into the request timeout.
    pub acquire_timeout_secs: u64,
}

impl Default for PostgresSettings {
    fn default() -> Self {
        Self {
            pool_size: 20,
            max_overflow: 10,
            acquire_timeout_secs: 3,
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// JSON lines, unless standard error is a terminal.
    Auto,
    /// JSON lines.
    Json,
    /// Human-readable.
    Pretty,
}

/// Logging.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Output format.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Auto,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            env: Environment::Development,
            listen: "127.0.0.1:8080".into(),
            database: "./echo.db".into(),
            security: SecurityConfig::default(),
            http: HttpConfig::default(),
            sessions: SessionsConfig::default(),
            workers: WorkersConfig::default(),
            scheduler: SchedulerSettings::default(),
            simulated: SimulatedSettings::default(),
            postgres: PostgresSettings::default(),
            log: LogConfig::default(),
            rate_limits: RateLimitSettings::default(),
            privacy: PrivacySettings::default(),
        }
    }
}

fn parse_env<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, ConfigError>
where
    T::Err: fmt::Display,
{
    value
        .trim()
        .parse()
        .map_err(|e: T::Err| invalid(name, format!("{value:?}: {e}")))
}

/// A boolean setting: `1/true/yes/on` or `0/false/no/off`, any case; anything else is an error
/// naming the setting.
pub(crate) fn parse_bool(name: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        other => Err(invalid(name, format!("{other:?} is not a boolean"))),
    }
}

/// Sets one field from its environment variable's value (never empty), or says what is wrong
/// with it, naming the variable.
type ApplyEnv = fn(&mut ServerConfig, name: &str, value: &str) -> Result<(), ConfigError>;

/// `ENV_NAME => field.path: parser` for each variable; the parser is called as
/// `parser(name, value)` and its result assigned to the field. The field's path is kept as
/// text so `config check` can say where each effective value came from.
macro_rules! env_table {
    ($($name:literal => $($field:ident).+ : $parse:expr),* $(,)?) => {
        &[$((
            $name,
            stringify!($($field).+),
            |config: &mut ServerConfig, name: &str, value: &str| {
                config.$($field).+ = $parse(name, value)?;
                Ok(())
            },
        )),*]
    };
}

/// Every environment variable the server reads, each declared once with its field and parser.
/// They are applied in this order, so when several are bad the first one here is reported.
const ENV: &[(&str, &str, ApplyEnv)] = env_table! {
    "ECHO_ENV" => env: environment,
    "ECHO_LISTEN" => listen: text,
    "ECHO_DATABASE" => database: text,
    "ECHO_PEPPER" => security.pepper: secret,
    "ECHO_PREVIOUS_PEPPER" => security.previous_pepper: secret,
    "ECHO_DEV_INSECURE_COOKIES" => security.dev_insecure_cookies: parse_bool,
    "ECHO_HSTS" => security.hsts: parse_bool,
    "ECHO_TRUST_FORWARDED_FOR" => security.trust_forwarded_for: parse_bool,
    "ECHO_ACCEPT_TEST_KEYS" => security.accept_test_keys: parse_bool,
    "ECHO_MAX_API_KEYS" => security.max_api_keys: parse_env,
    "ECHO_METRICS_TOKEN" => security.metrics_token: secret,
    "ECHO_REQUIRE_EMAIL_VERIFICATION" => security.require_email_verification: opt_bool,
    "ECHO_PUBLIC_BASE_URL" => http.public_base_url: opt_text,
    "ECHO_CORS_ORIGINS" => security.cors_origins: comma_list,
    "ECHO_REQUEST_TIMEOUT_SECS" => http.request_timeout_secs: parse_env,
    "ECHO_HEADER_READ_TIMEOUT_SECS" => http.header_read_timeout_secs: parse_env,
    "ECHO_MAX_CONNECTIONS" => http.max_connections: parse_env,
    "ECHO_EVENT_STREAMS_PER_ACCOUNT" => http.event_streams_per_account: parse_env,
    "ECHO_SESSION_TTL_SECS" => sessions.ttl_secs: parse_env,
    "ECHO_WORKER_LEASE_SECS" => workers.lease_secs: parse_env,
    "ECHO_SHUTDOWN_GRACE_SECS" => workers.shutdown_grace_secs: parse_env,
    "ECHO_JOB_HARD_LIMIT_SECS" => workers.hard_time_limit_secs: parse_env,
    "ECHO_RUN_TIMEOUT_SECS" => workers.run_timeout_secs: parse_env,
    "ECHO_SCHEDULER_INTERVAL_SECS" => scheduler.interval_secs: parse_env,
    "ECHO_SIMULATED_SEED" => simulated.seed: parse_env,
    "ECHO_SIMULATED_LATENCY_MS" => simulated.latency_ms: parse_env,
    "ECHO_ALLOW_SIMULATED" => simulated.allow_in_production: parse_bool,
    "ECHO_BODY_LIMIT_BYTES" => http.body_limit_bytes: parse_env,
    "ECHO_WORKER_CONCURRENCY" => workers.concurrency: parse_env,
    "ECHO_WORKER_MIN_CONCURRENCY" => workers.min_concurrency: parse_env,
    "ECHO_PROVIDER_CONCURRENCY" => workers.provider_concurrency: parse_env,
    "ECHO_PG_POOL_SIZE" => postgres.pool_size: parse_env,
    "ECHO_PG_MAX_OVERFLOW" => postgres.max_overflow: parse_env,
    "ECHO_PG_ACQUIRE_TIMEOUT_SECS" => postgres.acquire_timeout_secs: parse_env,
    "ECHO_RATE_LIMIT_FREE" => rate_limits.free: parse_env,
    "ECHO_RATE_LIMIT_PRO" => rate_limits.pro: parse_env,
    "ECHO_RATE_LIMIT_ENTERPRISE" => rate_limits.enterprise: parse_env,
    "ECHO_RATE_LIMIT_EXPERIMENTS" => rate_limits.experiments: parse_env,
    "ECHO_RATE_LIMIT_AUTH_FAILURES" => rate_limits.auth_failures: parse_env,
    "ECHO_PRIVACY_POLICY_VERSION" => privacy.policy_version: text,
    "ECHO_AUDIT_SIGNING_KEY" => privacy.audit_signing_key: secret,
    "ECHO_SMTP_URL" => privacy.smtp_url: secret,
    "ECHO_OUTBOX_DIR" => privacy.outbox_dir: text,
    "ECHO_AUDIT_ARCHIVE_DIR" => privacy.audit_archive_dir: text,
    "ECHO_REDACTION" => privacy.redaction: redaction_mode,
    "ECHO_DELETION_GRACE_DAYS" => privacy.deletion_grace_days: parse_env,
    "ECHO_RETENTION_DAYS_FREE" => privacy.retention_days_free: parse_env,
    "ECHO_RETENTION_DAYS_PRO" => privacy.retention_days_pro: parse_env,
    "ECHO_RETENTION_DAYS_ENTERPRISE" => privacy.retention_days_enterprise: parse_env,
    "ECHO_AUDIT_RETENTION_DAYS" => privacy.audit_retention_days: parse_env,
    "ECHO_LOG_FORMAT" => log.format: log_format,
};

fn text(_name: &str, value: &str) -> Result<String, ConfigError> {
    Ok(value.to_owned())
}

fn opt_text(_name: &str, value: &str) -> Result<Option<String>, ConfigError> {
    Ok(Some(value.trim().to_owned()))
}

fn opt_bool(name: &str, value: &str) -> Result<Option<bool>, ConfigError> {
    parse_bool(name, value).map(Some)
}

fn secret(_name: &str, value: &str) -> Result<Option<Secret>, ConfigError> {
    Ok(Some(Secret::new(value)))
}

fn comma_list(_name: &str, value: &str) -> Result<Vec<String>, ConfigError> {
    Ok(value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect())
}

fn redaction_mode(
    name: &str,
    value: &str,
) -> Result<echo_core::privacy::RedactionMode, ConfigError> {
    match value.trim() {
        "off" => Ok(echo_core::privacy::RedactionMode::Off),
        "redact" => Ok(echo_core::privacy::RedactionMode::Redact),
        other => Err(invalid(
            name,
            format!("{other:?} is not one of off, redact"),
        )),
    }
}

fn log_format(name: &str, value: &str) -> Result<LogFormat, ConfigError> {
    match value.trim() {
        "auto" => Ok(LogFormat::Auto),
        "json" => Ok(LogFormat::Json),
        "pretty" => Ok(LogFormat::Pretty),
        other => Err(invalid(
            name,
            format!("{other:?} is not one of auto, json, pretty"),
        )),
    }
}

impl ServerConfig {
    /// Defaults, then the TOML file (if any), then the environment (`env` looks a variable
    /// up; pass `|k| std::env::var(k).ok()`), validated.
    pub fn load(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.display().to_string(),
                    source,
                })?;
                Self::from_toml(&text).map_err(|message| ConfigError::Parse {
                    path: path.display().to_string(),
                    message,
                })?
            }
            None => Self::default(),
        };
        config.apply_env(env)?;
        config.validate()?;
        Ok(config)
    }

    /// Parses a TOML document over the defaults.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        for (name, _, apply) in ENV {
            if let Some(value) = env(name).filter(|v| !v.trim().is_empty()) {
                apply(self, name, &value)?;
            }
        }
        Ok(())
    }

    /// Checks every setting; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let listen = self.listen_addr()?;
        if self.security.dev_insecure_cookies && !listen.ip().is_loopback() {
            // Cookies without `Secure` over plain HTTP are for a developer's own machine; on
            // any other interface they would travel in clear text.
            return Err(invalid(
                "security.dev_insecure_cookies (ECHO_DEV_INSECURE_COOKIES)",
                format!(
                    "is only allowed when listening on a loopback address (127.0.0.1 or ::1), not {listen}"
                ),
            ));
        }
        if let Some(token) = &self.security.metrics_token
            && token.expose().trim().len() < 16
        {
            return Err(invalid(
                "security.metrics_token (ECHO_METRICS_TOKEN)",
                "must be at least 16 characters (e.g. `openssl rand -hex 16`)",
            ));
        }
        if self.database.trim().is_empty() {
            return Err(invalid("database (ECHO_DATABASE)", "must not be empty"));
        }
        if self.postgres.acquire_timeout_secs == 0 {
            return Err(invalid(
                "postgres.acquire_timeout_secs (ECHO_PG_ACQUIRE_TIMEOUT_SECS)",
                "must be at least 1",
            ));
        }
        for (name, pepper) in [
            ("security.pepper (ECHO_PEPPER)", &self.security.pepper),
            (
                "security.previous_pepper (ECHO_PREVIOUS_PEPPER)",
                &self.security.previous_pepper,
            ),
        ] {
            if let Some(p) = pepper
                && p.expose().len() < echo_core::auth::MIN_PEPPER_LEN
            {
                return Err(invalid(
                    name,
                    format!(
                        "must be at least {} bytes (e.g. `openssl rand -base64 48`)",
                        echo_core::auth::MIN_PEPPER_LEN
                    ),
                ));
            }
        }
        for origin in &self.security.cors_origins {
            let ok = (origin.starts_with("https://") || origin.starts_with("http://"))
                && !origin.ends_with('/')
                && origin.parse::<axum::http::HeaderValue>().is_ok();
            if !ok {
                return Err(invalid(
                    "security.cors_origins (ECHO_CORS_ORIGINS)",
                    format!("{origin:?} is not an origin like https://app.example.com"),
                ));
            }
        }
        let ranges: [(&str, u64, u64, u64); 12] = [
            (
                "http.event_streams_per_account (ECHO_EVENT_STREAMS_PER_ACCOUNT)",
                u64::from(self.http.event_streams_per_account),
                1,
                1000,
            ),
            (
                "http.header_read_timeout_secs (ECHO_HEADER_READ_TIMEOUT_SECS)",
                self.http.header_read_timeout_secs,
                1,
                3600,
            ),
            (
                "http.max_connections (ECHO_MAX_CONNECTIONS)",
                self.http.max_connections as u64,
                1,
                1_000_000,
            ),
            (
                "security.max_api_keys (ECHO_MAX_API_KEYS)",
                self.security.max_api_keys as u64,
                1,
                10_000,
            ),
            (
                "http.body_limit_bytes (ECHO_BODY_LIMIT_BYTES)",
                self.http.body_limit_bytes as u64,
                1024,
                1 << 30,
            ),
            (
                "http.request_timeout_secs (ECHO_REQUEST_TIMEOUT_SECS)",
                self.http.request_timeout_secs,
                1,
                3600,
            ),
            (
                "sessions.ttl_secs (ECHO_SESSION_TTL_SECS)",
                self.sessions.ttl_secs,
                60,
                90 * 86_400,
            ),
            (
                "workers.concurrency (ECHO_WORKER_CONCURRENCY)",
                self.workers.concurrency as u64,
                1,
                1024,
            ),
            (
                "workers.lease_secs (ECHO_WORKER_LEASE_SECS)",
                self.workers.lease_secs,
                3,
                3600,
            ),
            (
                "workers.hard_time_limit_secs (ECHO_JOB_HARD_LIMIT_SECS)",
                self.workers.hard_time_limit_secs,
                1,
                7 * 86_400,
            ),
            (
                "scheduler.interval_secs (ECHO_SCHEDULER_INTERVAL_SECS)",
                self.scheduler.interval_secs,
                1,
                3600,
            ),
            (
                "workers.provider_concurrency (ECHO_PROVIDER_CONCURRENCY)",
                self.workers.provider_concurrency as u64,
                1,
                10_000,
            ),
        ];
        for (name, value, min, max) in ranges {
            if !(min..=max).contains(&value) {
                return Err(invalid(name, format!("must be between {min} and {max}")));
            }
        }
        if self.workers.min_concurrency > self.workers.concurrency {
            return Err(invalid(
                "workers.min_concurrency (ECHO_WORKER_MIN_CONCURRENCY)",
                "must not exceed workers.concurrency",
            ));
        }
        self.rate_limits.to_config()?;
        echo_core::auth::Quota::per_minute(self.rate_limits.auth_failures).map_err(|e| {
            invalid(
                "rate_limits.auth_failures (ECHO_RATE_LIMIT_AUTH_FAILURES)",
                e.to_string(),
            )
        })?;
        self.privacy.signing_seed()?;
        let p = &self.privacy;
        if p.policy_version.trim().is_empty() || p.policy_version.len() > 64 {
            return Err(invalid(
                "privacy.policy_version (ECHO_PRIVACY_POLICY_VERSION)",
                "must be 1 to 64 characters",
            ));
        }
        for (name, days, min) in [
            (
                "privacy.deletion_grace_days (ECHO_DELETION_GRACE_DAYS)",
                p.deletion_grace_days,
                0,
            ),
            (
                "privacy.retention_days_free (ECHO_RETENTION_DAYS_FREE)",
                p.retention_days_free,
                1,
            ),
            (
                "privacy.retention_days_pro (ECHO_RETENTION_DAYS_PRO)",
                p.retention_days_pro,
                1,
            ),
            (
                "privacy.retention_days_enterprise (ECHO_RETENTION_DAYS_ENTERPRISE)",
                p.retention_days_enterprise,
                1,
            ),
            (
                "privacy.audit_retention_days (ECHO_AUDIT_RETENTION_DAYS)",
                p.audit_retention_days,
                1,
            ),
        ] {
            if !(min..=36_500).contains(&days) {
                return Err(invalid(
                    name,
                    format!("must be between {min} and 36500 days"),
                ));
            }
        }
        if let Some(url) = &self.http.public_base_url
            && (!(url.starts_with("https://") || url.starts_with("http://"))
                || url.chars().any(|c| c.is_whitespace() || c.is_control())
                || url.contains(['?', '#']))
        {
            return Err(invalid(
                "http.public_base_url (ECHO_PUBLIC_BASE_URL)",
                format!("{url:?} is not an http:// or https:// URL without query or fragment"),
            ));
        }
        if self.postgres.pool_size == 0 {
            return Err(invalid(
                "postgres.pool_size (ECHO_PG_POOL_SIZE)",
                "must be at least 1",
            ));
        }
        Ok(())
    }

    /// Every setting's effective value with where it came from, sorted by file key; secrets
    /// show as `<redacted>`. `file` is the configuration file's text, if one was read; `env`
    /// looks a variable up as for [`ServerConfig::load`].
    pub fn effective(
        &self,
        file: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Vec<EffectiveSetting> {
        let file: Option<toml::Table> = file.and_then(|t| t.parse().ok());
        let mut flat = Vec::new();
        flatten(
            "",
            &serde_json::to_value(self).unwrap_or(serde_json::Value::Null),
            &mut flat,
        );
        flat.into_iter()
            .map(|(key, value)| {
                let variable = ENV.iter().find(|(_, path, _)| *path == key).map(|e| e.0);
                let from_env = variable.filter(|v| env(v).is_some_and(|x| !x.trim().is_empty()));
                let in_file = file.as_ref().is_some_and(|t| {
                    let mut parts = key.split('.');
                    let first = parts.next().and_then(|p| t.get(p));
                    parts
                        .try_fold(first, |node, part| Some(node?.get(part)))
                        .flatten()
                        .is_some()
                });
                let source = match (from_env, in_file) {
                    (Some(v), _) => Source::Env(v),
                    (None, true) => Source::File,
                    (None, false) => Source::Default,
                };
                // Defaults that depend on the environment show the value in force, not "unset".
                let value = match key.as_str() {
                    "security.require_email_verification" => {
                        serde_json::Value::Bool(self.require_email_verification())
                    }
                    "http.public_base_url" => serde_json::Value::String(self.public_base_url()),
                    _ => value,
                };
                EffectiveSetting {
                    key,
                    variable,
                    value,
                    source,
                }
            })
            .collect()
    }

    /// Whether new accounts must verify their email: as set, else on in production only (so
    /// development keeps its two-command start, and staging its scripted rehearsal).
    pub fn require_email_verification(&self) -> bool {
        self.security
            .require_email_verification
            .unwrap_or(self.env == Environment::Production)
    }

    /// The base of links in mail: `http.public_base_url` without a trailing slash, else
    /// `http://` and the listen address.
    pub fn public_base_url(&self) -> String {
        match &self.http.public_base_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.listen),
        }
    }

    /// The parsed listen address.
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.listen.parse().map_err(|_| {
            invalid(
                "listen (ECHO_LISTEN)",
                format!("{:?} is not an address like 127.0.0.1:8080", self.listen),
            )
        })
    }
}

/// Where an effective setting's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The built-in default.
    Default,
    /// The configuration file.
    File,
    /// This environment variable.
    Env(&'static str),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File => f.write_str("file"),
            Source::Env(name) => write!(f, "env {name}"),
        }
    }
}

impl Serialize for Source {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One setting as `echoai config check` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct EffectiveSetting {
    /// The file key, e.g. `security.pepper`.
    pub key: String,
    /// The environment variable that sets it, when there is one.
    pub variable: Option<&'static str>,
    /// The effective value (secrets redacted).
    pub value: serde_json::Value,
    /// Where the value came from.
    pub source: Source,
}

/// Serializes a secret as `<redacted>` (its `Display`), so printing the configuration can
/// never print a secret.
fn masked<S: serde::Serializer>(secret: &Option<Secret>, s: S) -> Result<S::Ok, S::Error> {
    match secret {
        Some(secret) => s.collect_str(secret),
        None => s.serialize_none(),
    }
}

/// `{"a": {"b": 1}}` becomes `[("a.b", 1)]`; arrays and scalars are leaves.
fn flatten(prefix: &str, value: &serde_json::Value, out: &mut Vec<(String, serde_json::Value)>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        leaf => out.push((prefix.to_owned(), leaf.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    /// Each out-of-range or malformed value is refused with the setting's name and the rule.
    #[test]
    fn every_validation_rule_names_its_setting() {
        let long_version = "v".repeat(65);
        // (environment, the setting the error names, the rule it states)
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
        let cases: [Case<'_>; 11] = [
            (
                &[("ECHO_EVENT_STREAMS_PER_ACCOUNT", "0")],
                "ECHO_EVENT_STREAMS_PER_ACCOUNT",
                "must be between 1 and 1000",
            ),
            (
                &[("ECHO_CORS_ORIGINS", "https://app.example.com/")],
                "ECHO_CORS_ORIGINS",
                "is not an origin",
            ),
            (
                &[("ECHO_CORS_ORIGINS", "ftp://files.example.com")],
                "ECHO_CORS_ORIGINS",
                "is not an origin",
            ),
            (
                &[("ECHO_SCHEDULER_INTERVAL_SECS", "0")],
                "ECHO_SCHEDULER_INTERVAL_SECS",
                "must be between 1 and 3600",
            ),
            (
                &[
                    ("ECHO_WORKER_CONCURRENCY", "2"),
                    ("ECHO_WORKER_MIN_CONCURRENCY", "3"),
                ],
                "ECHO_WORKER_MIN_CONCURRENCY",
                "must not exceed workers.concurrency",
            ),
            (
                &[("ECHO_RATE_LIMIT_AUTH_FAILURES", "0")],
                "ECHO_RATE_LIMIT_AUTH_FAILURES",
                "",
            ),
            (
                &[("ECHO_AUDIT_SIGNING_KEY", "abcd")],
                "ECHO_AUDIT_SIGNING_KEY",
                "must be 64 hex characters",
            ),
            (
                &[("ECHO_PRIVACY_POLICY_VERSION", &long_version)],
                "ECHO_PRIVACY_POLICY_VERSION",
                "must be 1 to 64 characters",
            ),
            (
                &[("ECHO_RETENTION_DAYS_FREE", "0")],
                "ECHO_RETENTION_DAYS_FREE",
                "must be between 1 and 36500 days",
            ),
            (
                &[("ECHO_DELETION_GRACE_DAYS", "40000")],
                "ECHO_DELETION_GRACE_DAYS",
                "must be between 0 and 36500 days",
            ),
            (
                &[("ECHO_PG_POOL_SIZE", "0")],
                "ECHO_PG_POOL_SIZE",
                "must be at least 1",
            ),
        ];
        for (vars, setting, reason) in cases {
            let e = ServerConfig::load(None, env(vars)).unwrap_err().to_string();
            assert!(e.contains(setting), "{vars:?}: {e}");
            assert!(e.contains(reason), "{vars:?}: {e}");
        }
        let seed = "ab".repeat(32);
        let c = ServerConfig::load(None, env(&[("ECHO_AUDIT_SIGNING_KEY", &seed)])).unwrap();
        assert_eq!(c.privacy.signing_seed().unwrap(), Some([0xab; 32]));
    }

    #[test]
    fn file_errors_name_the_file_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.toml");
        let e = ServerConfig::load(Some(&missing), env(&[])).unwrap_err();
        assert!(matches!(e, ConfigError::Read { .. }), "{e:?}");
        assert!(e.to_string().contains("missing.toml"), "{e}");

        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "listen = \"127.0.0.1:1\"\nno_such_setting = 1\n").unwrap();
        let e = ServerConfig::load(Some(&bad), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("bad.toml") && e.contains("no_such_setting"),
            "{e}"
        );

        let empty_db = dir.path().join("empty.toml");
        std::fs::write(&empty_db, "database = \"\"\n").unwrap();
        let e = ServerConfig::load(Some(&empty_db), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ECHO_DATABASE") && e.contains("must not be empty"),
            "{e}"
        );
    }

    #[test]
    fn defaults_validate() {
        let c = ServerConfig::load(None, env(&[])).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8080");
        assert!(c.security.hsts);
        assert!(c.workers.concurrency >= 1);
    }

    /// A zero acquire timeout would fail every PostgreSQL call; it is refused by name.
    #[test]
    fn pool_acquire_timeout_is_short_by_default_and_never_zero() {
        let c = ServerConfig::load(None, env(&[])).unwrap();
        assert!(
            c.postgres.acquire_timeout_secs <= 5,
            "API calls must fail fast"
        );
        let e = ServerConfig::load(None, env(&[("ECHO_PG_ACQUIRE_TIMEOUT_SECS", "0")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("ECHO_PG_ACQUIRE_TIMEOUT_SECS"), "{e}");
    }

    #[test]
    fn env_overrides_file_and_bad_values_name_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("echo.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\n[workers]\nconcurrency = 3\n",
        )
        .unwrap();
        let c = ServerConfig::load(Some(&path), env(&[("ECHO_WORKER_CONCURRENCY", "5")])).unwrap();
        assert_eq!(c.listen, "127.0.0.1:9000");
        assert_eq!(c.workers.concurrency, 5);

        let e = ServerConfig::load(None, env(&[("ECHO_WORKER_CONCURRENCY", "many")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("ECHO_WORKER_CONCURRENCY"), "{e}");
        let e = ServerConfig::load(None, env(&[("ECHO_PEPPER", "short")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("ECHO_PEPPER") && !e.contains("short"), "{e}");
        let e = ServerConfig::load(None, env(&[("ECHO_LISTEN", "nowhere")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("ECHO_LISTEN"), "{e}");
        let e = ServerConfig::load(None, env(&[("ECHO_HSTS", "perhaps")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("ECHO_HSTS"), "{e}");

        std::fs::write(&path, "[workers]\nconcurency = 3\n").unwrap();
        let e = ServerConfig::load(Some(&path), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("concurency"), "{e}");
    }

    #[test]
    fn every_variable_sets_its_field_and_names_itself_when_bad() {
        let mut seen = std::collections::HashSet::new();
        let default = format!("{:?}", ServerConfig::default());
        for (name, _, _) in ENV {
            assert!(seen.insert(*name), "{name} is declared twice");
            let apply = |value: &str| {
                let mut c = ServerConfig::default();
                c.apply_env(|k| (k == *name).then(|| value.to_owned()))
                    .map(|()| format!("{c:?}"))
            };
            let changes = [
                "7",
                "true",
                "false",
                "redact",
                "json",
                "https://a.example",
                "production",
            ]
            .into_iter()
            .filter_map(|v| apply(v).ok())
            .any(|c| c != default);
            assert!(changes, "{name} sets nothing");
            if let Err(e) = apply("not a value") {
                assert!(e.to_string().contains(name), "{name}: {e}");
            }
        }
    }

    #[test]
    fn insecure_cookies_need_a_loopback_listener() {
        for listen in ["127.0.0.1:8080", "[::1]:8080"] {
            let c = ServerConfig::load(
                None,
                env(&[
                    ("ECHO_DEV_INSECURE_COOKIES", "true"),
                    ("ECHO_LISTEN", listen),
                ]),
            );
            assert!(c.is_ok(), "{listen}");
        }
        for listen in ["0.0.0.0:8080", "192.0.2.1:8080", "[::]:8080"] {
            let e = ServerConfig::load(
                None,
                env(&[
                    ("ECHO_DEV_INSECURE_COOKIES", "true"),
                    ("ECHO_LISTEN", listen),
                ]),
            )
            .unwrap_err()
            .to_string();
            assert!(
                e.contains("ECHO_DEV_INSECURE_COOKIES") && e.contains("loopback"),
                "{e}"
            );
        }
        assert!(ServerConfig::load(None, env(&[("ECHO_LISTEN", "0.0.0.0:8080")])).is_ok());
    }

    #[test]
    fn metrics_token_is_a_redacted_secret_of_16_characters() {
        let c = ServerConfig::load(
            None,
            env(&[("ECHO_METRICS_TOKEN", "metrics-token-0123456789")]),
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("metrics-token-0123456789"));
        let e = ServerConfig::load(None, env(&[("ECHO_METRICS_TOKEN", "short")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ECHO_METRICS_TOKEN") && !e.contains("short"),
            "{e}"
        );
    }

    #[test]
    fn pepper_is_redacted() {
        let c = ServerConfig::load(
            None,
            env(&[("ECHO_PEPPER", "a-very-secret-pepper-of-at-least-32-bytes")]),
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("very-secret"));
    }

    #[test]
    fn effective_settings_say_where_each_value_came_from_and_hide_secrets() {
        let text = "[workers]\nconcurrency = 3\n";
        let vars = env(&[
            ("ECHO_PEPPER", "a-very-secret-pepper-of-at-least-32-bytes"),
            ("ECHO_ENV", "staging"),
        ]);
        let mut c = ServerConfig::from_toml(text).unwrap();
        c.apply_env(&vars).unwrap();
        let all = c.effective(Some(text), &vars);
        let get = |k: &str| all.iter().find(|s| s.key == k).unwrap();
        assert_eq!(get("workers.concurrency").source, Source::File);
        assert_eq!(get("workers.concurrency").value, 3);
        assert_eq!(get("env").source, Source::Env("ECHO_ENV"));
        assert_eq!(get("env").value, "staging");
        assert_eq!(get("listen").source, Source::Default);
        assert_eq!(get("security.pepper").value, "<redacted>");
        assert_eq!(
            get("security.previous_pepper").value,
            serde_json::Value::Null
        );
        let printed = serde_json::to_string(&all).unwrap();
        assert!(!printed.contains("very-secret"), "{printed}");
        // Every variable of the table names a setting that is printed.
        for (name, path, _) in ENV {
            assert!(all.iter().any(|s| s.key == *path), "{name} -> {path}");
        }
    }
}
