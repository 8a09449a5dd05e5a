//! # Echo core
//!
//! The embeddable library behind Echo, the open tool that measures how AI assistants talk about
//! brands: the domain model, the storage traits with an in-memory implementation, and the
//! algorithms. It contains no database driver and no HTTP client; those live in adapter crates
//! (`echo-store-sqlite`, …) that implement the traits defined here.
//!
//! ## Overview
//! - [`model`]: typed ids, validated values ([`model::Email`], [`model::Prompt`],
//!   [`model::Iterations`]…) and the records Echo stores.
//! - [`store`]: the storage traits ([`store::Store`] and its parts) and their shared contract;
//!   [`store::memory::MemoryStore`] implements them in memory.
//! - [`provider`]: the [`provider::Provider`] trait, classified errors, retries with full
//!   jitter, per-model prices, and the seeded [`provider::simulated`] provider.
//! - [`analysis`]: brand extraction and the metrics, each with its unit, denominator and
//!   confidence interval.
//! - [`runner`]: the [`runner::ExperimentRunner`] (concurrency and rate limits, idempotent
//!   resumable writes, cancellation, refunds), the [`runner::JobExecutor`] for queue jobs, the
//!   [`runner::WorkerPool`] that claims and runs them (scaling, graceful shutdown, time
//!   limits), and the [`runner::Scheduler`] for recurring experiments
//!   ([`runner::CronSchedule`]), quota resets and job pruning.
//! - [`auth`]: API-key format and verification, server-side login sessions
//!   ([`auth::SessionService`]: revocable session tokens and CSRF tokens), password hashing,
//!   login throttling and per-key rate limits.
//! - [`audit`]: the audit log's hash chain, its streaming verifier, Ed25519-signed checkpoints
//!   and JSON Lines archives.
//! - [`mail`]: the [`mail::Mailer`] trait and an outbox-directory mailer (account-deletion
//!   confirmations).
//! - [`retention`]: the [`retention::RetentionPolicy`] and the pass that anonymizes old
//!   answers, purges deleted accounts (pseudonymizing their audit events) and archives old
//!   audit events.
//! - [`privacy`]: redaction of personal data (emails, phone numbers, IBANs, card numbers, IP
//!   addresses) in answers before they are stored.
//!
//! ## Quick start
//! Create a user and an experiment, debiting the quota and enqueueing the run job in one
//! transaction, against the in-memory store:
//!
//! ```
//! use std::sync::Arc;
//! use echo_core::model::*;
//! use echo_core::store::{memory::MemoryStore, DynStore, ExperimentQuery};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store: Arc<DynStore> = Arc::new(MemoryStore::new());
//! let now = Timestamp::now();
//! let user = User::new(
//!     Email::parse("ada@example.com")?,
//!     PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA")?,
//!     PricingTier::Free,
//!     now,
//! );
//! store.create_user(&user).await?;
//!
//! let experiment = Experiment {
//!     id: ExperimentId::new(),
//!     user_id: user.id,
//!     prompt: Prompt::parse("Best CRM for startups?")?,
//!     target: Brand::new(BrandName::parse("HubSpot")?),
//!     competitors: vec![Brand::new(BrandName::parse("Salesforce")?)],
//!     iterations: Iterations::new(10)?,
//!     providers: vec![ProviderConfig {
//!         provider: ProviderKind::Simulated,
//!         model: "sim-1".into(),
//!         temperature: 0.7,
//!     }],
//!     status: ExperimentStatus::Queued,
//!     recurrence: None,
//!     created_at: now,
//!     updated_at: now,
//! };
//! let debit = QuotaDebit {
//!     user_id: user.id,
//!     amount: experiment.prompts_per_run(),
//!     limit: user.tier.default_monthly_quota(),
//! };
//! let job = Job::new("run_experiment", serde_json::json!({"experiment_id": experiment.id}), now, 3, now);
//! store.create_experiment(&experiment, debit, &job).await?;
//!
//! let page = store.list_experiments(user.id, &ExperimentQuery::default()).await?;
//! assert_eq!(page.items.len(), 1);
//! assert_eq!(store.get_user(user.id).await?.quota.prompts_used, 10);
//! # Ok(())
//! # }
//! ```
//!
//! ## The traits
//! Storage is split into [`store::UserStore`], [`store::ApiKeyStore`],
//! [`store::SessionStore`], [`store::ExperimentStore`], [`store::RunStore`],
//! [`store::AuditStore`] and [`store::JobQueue`]; [`store::Store`] is all of them and services hold an
//! `Arc<`[`store::DynStore`]`>`. The module docs of [`store`] state the contract shared by every
//! method (tenant isolation, atomicity, explicit time); each method documents its own.
//!
//! ## Feature flags
//! - `testkit`: the storage conformance suite (module `conformance`) and the
//!   `store_conformance_tests!` macro, for backend crates and custom stores.
//!
//! ## Implementing a custom store
//! Implement the seven traits for your type (it then implements [`store::Store`]), map your
//! database's errors onto [`store::StoreError`]'s meanings keeping the source, and run the
//! conformance suite from an integration test:
//!
//! ```ignore
//! async fn fresh_store() -> std::sync::Arc<echo_core::store::DynStore> {
//!     std::sync::Arc::new(MyStore::connect_to_a_new_database().await)
//! }
//! echo_core::store_conformance_tests!(fresh_store);
//! ```
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod analysis;
pub mod audit;
pub mod auth;
#[cfg(feature = "testkit")]
pub mod conformance;
pub mod mail;
pub mod model;
pub mod privacy;
pub mod provider;
pub mod retention;
mod rng;
pub mod runner;
pub mod secret;
pub mod store;
