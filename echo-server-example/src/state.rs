//! The shared state handlers see: the store and the services built on it, all behind `Arc`.

use std::net::IpAddr;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use echo_core::auth::{
    ApiKeyService, ApiRateLimiter, CacheConfig, KeyAuth, KeyHasher, KeyServiceConfig, KeyedGcra,
    LoginThrottle, PasswordHasher, PasswordParams, PasswordPolicy, Pepper, Quota, RateLimitConfig,
    SessionConfig, SessionService, StoreKeyVerifier, ThrottleConfig, VerifierConfig,
};
use echo_core::model::ProviderKind;
use echo_core::model::UserId;
use echo_core::service::{ExperimentService, Registration, RunService, VerificationSettings};
use echo_core::store::DynStore;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::config::ServerConfig;
use crate::metrics::Metrics;

/// Reads a connection pool's statistics for `/metrics` (the PostgreSQL store has them).
#[cfg(feature = "postgres")]
pub type PoolStatsFn = Arc<dyn Fn() -> echo_store_postgres::PoolStats + Send + Sync>;

/// Checks that the store's schema is the one this build expects (readiness).
pub type SchemaCheckFn =
    Arc<dyn Fn() -> futures::future::BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// What a backend can offer beyond the store traits.
#[derive(Clone, Default)]
pub struct StoreExtras {
    /// Connection-pool statistics.
    #[cfg(feature = "postgres")]
    pub pool_stats: Option<PoolStatsFn>,
    /// Schema check for `/readyz`.
    pub schema_check: Option<SchemaCheckFn>,
}

impl std::fmt::Debug for StoreExtras {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = f.debug_struct("StoreExtras");
        #[cfg(feature = "postgres")]
        s.field("pool_stats", &self.pool_stats.is_some());
        s.field("schema_check", &self.schema_check.is_some())
            .finish()
    }
}

/// Reads the worker pool's counters for `/metrics`, when this process runs workers.
pub type WorkerStatsFn = Arc<dyn Fn() -> echo_core::runner::PoolSnapshot + Send + Sync>;

/// Everything the handlers share.
pub struct Services {
    /// The store.
    pub store: Arc<DynStore>,
    /// Submit, re-run, cancel and delete experiments (the rules shared with the CLI and the
    /// scheduler).
    pub experiments: ExperimentService,
    /// A run's answers with their spans, and an experiment's progress.
    pub runs: RunService,
    /// The open progress streams per account, and their limits.
    pub event_streams: Arc<crate::events::EventStreams>,
    /// API-key verification (with the verified-key cache).
    pub verifier: Arc<StoreKeyVerifier>,
    /// API-key lifecycle.
    pub keys: ApiKeyService,
    /// Login sessions and CSRF tokens.
    pub sessions: SessionService,
    /// Password hashing (argon2id).
    pub passwords: Arc<PasswordHasher>,
    /// Failed-login backoff per account and IP.
    pub throttle: LoginThrottle,
    /// Per-account rate limits (every key and session of a user share them).
    pub limiter: ApiRateLimiter,
    /// Per-IP limit of the unauthenticated account routes (register, login): each costs an
    /// argon2 hash, so unlimited calls would be a cheap CPU denial of service.
    pub account_limiter: KeyedGcra<IpAddr>,
    /// The quota of [`Services::account_limiter`].
    pub account_quota: Quota,
    /// Failed authentications (bad API keys, invalid sessions) per client address block:
    /// once over the limit, requests from that address are refused before any store lookup.
    pub auth_failure_limiter: KeyedGcra<IpAddr>,
    /// The quota of [`Services::auth_failure_limiter`].
    pub auth_failure_quota: Quota,
    /// Request, job and pool metrics.
    pub metrics: Arc<Metrics>,
    /// The validated configuration.
    pub config: ServerConfig,
    /// Providers experiments may use on this server.
    pub providers: Vec<ProviderKind>,
    /// Connection-pool statistics, when the store has them.
    #[cfg(feature = "postgres")]
    pub pool_stats: Option<PoolStatsFn>,
    /// Schema check for readiness, when the store has one.
    pub schema_check: Option<SchemaCheckFn>,
    /// The audit log: appends and signed checkpoints.
    pub audit_sink: Arc<echo_core::audit::StoreAuditSink>,
    /// Keys the pseudonyms of purged accounts in audit events (derived from the pepper).
    pub pseudonym_key: Vec<u8>,
    /// Outgoing mail (account-deletion confirmations, email verification, registration
    /// notices).
    pub mailer: Arc<echo_core::mail::DynMailer>,
    /// Registration and email verification (the rules live in echo-core).
    pub registration: Registration,
    /// Verification-mail resends per account: each sends a message, so they are few.
    pub resend_limiter: KeyedGcra<UserId>,
    /// The quota of [`Services::resend_limiter`].
    pub resend_quota: Quota,
    /// Worker-pool counters, when this process runs workers.
    pub worker_stats: std::sync::RwLock<Option<WorkerStatsFn>>,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("store", &self.store)
            .field("config", &self.config)
            .field("providers", &self.providers)
            .finish_non_exhaustive()
    }
}

/// The state handed to every handler: cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Services>);

impl Deref for AppState {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.0
    }
}

/// Why the state could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A secret is unusable.
    #[error("invalid security.pepper: {0}")]
    Pepper(#[from] echo_core::auth::PepperError),
    /// Password parameters are invalid.
    #[error("invalid password parameters")]
    Password(#[from] echo_core::auth::PasswordError),
    /// A setting is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The mailer cannot be built.
    #[error("{0}")]
    Mail(String),
    /// A rate-limit quota is invalid.
    #[error("invalid rate limit")]
    Quota(#[from] echo_core::auth::QuotaError),
    /// No randomness for an ephemeral pepper.
    #[error("cannot read the OS random number generator")]
    Entropy(#[source] getrandom::Error),
}

/// Options beyond the configuration file (for tests and embedders).
#[derive(Debug, Clone)]
pub struct StateOptions {
    /// argon2id parameters (tests use cheap ones).
    pub password_params: PasswordParams,
    /// Rate limits.
    pub rate_limits: RateLimitConfig,
    /// Login throttle.
    pub throttle: ThrottleConfig,
    /// Providers experiments may use.
    pub providers: Vec<ProviderKind>,
    /// Register and login calls per client IP and minute.
    pub account_per_minute: u32,
    /// The mailer; default: an outbox directory (`privacy.outbox_dir`).
    pub mailer: Option<Arc<echo_core::mail::DynMailer>>,
    /// Progress streams: poll and keep-alive intervals.
    pub event_streams: crate::events::EventStreamConfig,
}

impl Default for StateOptions {
    fn default() -> Self {
        Self {
            password_params: PasswordParams::default(),
            rate_limits: RateLimitConfig::default(),
            throttle: ThrottleConfig::default(),
            providers: vec![ProviderKind::Simulated],
            // Generous for people behind one NAT, and it caps the argon2 work one address can
            // demand at about a hundredth of a core.
            account_per_minute: 30,
            mailer: None,
            event_streams: crate::events::EventStreamConfig::default(),
        }
    }
}

impl AppState {
    /// Builds the services over `store` from `config`.
    ///
    /// Without a configured pepper an ephemeral one is drawn (with a warning): keys and
    /// sessions then stop working at restart, which is right for a throwaway local server and
    /// wrong for production, where `ECHO_PEPPER` must be set.
    pub fn build(
        store: Arc<DynStore>,
        config: ServerConfig,
        options: StateOptions,
        extras: StoreExtras,
    ) -> Result<Self, StateError> {
        let pepper_bytes = match &config.security.pepper {
            Some(p) => p.expose().as_bytes().to_vec(),
            None => {
                tracing::warn!(
                    "ECHO_PEPPER is not set: using an ephemeral pepper, so API keys and sessions will not survive a restart"
                );
                let mut bytes = vec![0u8; 48];
                getrandom::fill(&mut bytes).map_err(StateError::Entropy)?;
                bytes
            }
        };
        // Separate keys per purpose, derived from the one configured secret, so a CSRF token
        // can never be mistaken for a digest and vice versa.
        let csrf_key = derive(&pepper_bytes, b"echo.csrf-key.v1");
        let pseudonym_key = derive(&pepper_bytes, b"echo.pseudonym-key.v1");
        let mut audit_sink = echo_core::audit::StoreAuditSink::new(store.clone());
        match config.privacy.signing_seed() {
            Ok(Some(seed)) => {
                audit_sink = audit_sink.with_signer(
                    echo_core::audit::CheckpointSigner::from_seed(&seed),
                    echo_core::audit::CheckpointPolicy::default(),
                );
            }
            Ok(None) => tracing::warn!(
                "ECHO_AUDIT_SIGNING_KEY is not set: audit checkpoints are not signed, so a rewrite of the whole log tail would go unnoticed"
            ),
            Err(e) => return Err(StateError::Config(e)),
        }
        let mut hasher = KeyHasher::new(Pepper::new(pepper_bytes)?);
        if let Some(previous) = &config.security.previous_pepper {
            hasher = hasher.with_previous(Pepper::new(previous.expose().as_bytes().to_vec())?);
        }
        let hasher = Arc::new(hasher);
        let verifier_config = VerifierConfig {
            environments: config.accepted_key_environments(),
            ..VerifierConfig::default()
        };
        let KeyAuth { keys, verifier } = KeyAuth::with_config(
            store.clone(),
            hasher.clone(),
            verifier_config,
            KeyServiceConfig {
                max_active_keys: config.security.max_api_keys,
                ..KeyServiceConfig::default()
            },
            CacheConfig::default(),
        );
        let sessions = SessionService::new(
            store.clone(),
            hasher,
            Pepper::new(csrf_key)?,
            SessionConfig {
                ttl: Duration::from_secs(config.sessions.ttl_secs),
            },
        );
        let passwords = Arc::new(PasswordHasher::new(
            options.password_params,
            PasswordPolicy::default(),
        )?);
        let mailer = match (options.mailer, &config.privacy.smtp_url) {
            (Some(m), _) => m,
            #[cfg(feature = "smtp")]
            (None, Some(url)) => Arc::new(
                crate::smtp::SmtpMailer::from_url(url.expose(), &config.privacy.mail_from)
                    .map_err(|e| StateError::Mail(e.to_string()))?,
            ),
            #[cfg(not(feature = "smtp"))]
            (None, Some(_)) => {
                return Err(StateError::Mail(
                    "ECHO_SMTP_URL is set but this build has no SMTP support (build with --features smtp)".into(),
                ));
            }
            (None, None) => Arc::new(echo_core::mail::OutboxMailer::new(
                &config.privacy.outbox_dir,
                config.privacy.mail_from.clone(),
            )),
        };
        let registration = Registration::new(
            store.clone(),
            mailer.clone(),
            VerificationSettings {
                required: config.require_email_verification(),
                public_base_url: config.public_base_url(),
                ..VerificationSettings::default()
            },
        );
        Ok(Self(Arc::new(Services {
            mailer,
            registration,
            resend_limiter: KeyedGcra::new(100_000),
            // Three at once, then one every 20 minutes: enough for a lost message, too few
            // to flood an inbox.
            resend_quota: Quota::new(3, Duration::from_secs(3_600))?,
            audit_sink: Arc::new(audit_sink),
            pseudonym_key,
            experiments: ExperimentService::from_store(&store),
            runs: RunService::from_store(&store),
            event_streams: Arc::new(crate::events::EventStreams::new(
                config.http.event_streams_per_account,
                options.event_streams,
            )),
            store,
            verifier,
            keys,
            sessions,
            passwords,
            throttle: LoginThrottle::new(options.throttle),
            limiter: ApiRateLimiter::new(options.rate_limits),
            account_limiter: KeyedGcra::new(100_000),
            account_quota: Quota::per_minute(options.account_per_minute)?,
            auth_failure_limiter: KeyedGcra::new(100_000),
            auth_failure_quota: Quota::per_minute(config.rate_limits.auth_failures)?,
            metrics: Arc::new(Metrics::new()),
            config,
            providers: options.providers,
            #[cfg(feature = "postgres")]
            pool_stats: extras.pool_stats,
            schema_check: extras.schema_check,
            worker_stats: std::sync::RwLock::new(None),
        })))
    }

    /// Lets `/metrics` report this process's worker pool.
    pub fn set_worker_stats(&self, f: WorkerStatsFn) {
        if let Ok(mut slot) = self.worker_stats.write() {
            *slot = Some(f);
        }
    }
}

fn derive(secret: &[u8], purpose: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail; an empty result would be caught
    // by `Pepper::new`.
    match <Hmac<Sha256> as KeyInit>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(purpose);
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}
