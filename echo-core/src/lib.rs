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
//!   confirmations, alerts).
//! - [`webhook`]: the HMAC-SHA256 signature of webhook deliveries and the receiver's
//!   [`webhook::verify`].
//! - [`retention`]: the [`retention::RetentionPolicy`] and the pass that anonymizes old
//!   answers, purges deleted accounts (pseudonymizing their audit events) and archives old
//!   audit events.
//! - [`privacy`]: redaction of personal data (emails, phone numbers, IBANs, card numbers, IP
//!   addresses) in answers before they are stored, and the GDPR export
//!   ([`privacy::export::export_user`]), streamed to any `io::Write` or async writer.
//!
//! ## Quick start
//! Measure a brand on the simulated provider. [`Echo`] submits the experiment (quota debit,
//! experiment and job in one transaction), runs it in-process and settles its job; the batch
//! runs come back with their typed metrics. The same program on a SQLite file is
//! `echo-store-sqlite/examples/embed_sqlite.rs`.
//!
//! ```
//! use echo_core::prelude::*;
//! use echo_core::service::ExperimentDraft;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let echo = Echo::builder(Arc::new(MemoryStore::new())).simulated(42).build();
//! let me = echo.local_user("ada@example.com").await?;
//! let draft = ExperimentDraft::new(
//!     Prompt::parse("Best CRM for startups?")?,
//!     Brand::new(BrandName::parse("HubSpot")?),
//! )
//! .competitor(Brand::new(BrandName::parse("Salesforce")?))
//! .iterations(40)?;
//! let outcome = echo.run(me.id, draft).await?;
//! assert_eq!(outcome.status, ExperimentStatus::Completed);
//!
//! let measured = outcome.batch_runs[0].metrics.as_ref().ok_or("no metrics")?;
//! for brand in &measured.metrics.brands {
//!     let v = &brand.visibility;
//!     println!("{}: {:?} of n = {}, 95% CI {:?}", brand.brand, v.rate, v.n, v.ci95);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Lower down, [`service::ExperimentService`] holds the business rules (submit, re-run,
//! cancel, delete) that the reference server, its CLI and the scheduler share, and
//! [`runner::JobExecutor`] and [`runner::WorkerPool`] execute queued jobs.
//!
//! ## The traits
//! Storage is split into [`store::UserStore`], [`store::ApiKeyStore`],
//! [`store::SessionStore`], [`store::ExperimentStore`], [`store::RunStore`],
//! [`store::AuditStore`] and [`store::JobQueue`]; [`store::Store`] is all of them and services hold an
//! `Arc<`[`store::DynStore`]`>`. The module docs of [`store`] state the contract shared by every
//! method (tenant isolation, atomicity, explicit time); each method documents its own.
//!
//! ## Re-exports
//! Foreign types in the public API are re-exported ([`macro@async_trait`], [`CancellationToken`],
//! and [`reexports`]), so embedders need no extra dependency lines to use them.
//!
//! ## Feature flags
//! - `testkit`: the storage conformance suite (module `conformance`) and the
//!   `store_conformance_tests!` macro, for backend crates and custom stores.
//! - `sql`: what SQL backends share (module `store::sql`, macro `sql_columns!`): a column
//!   reader to implement for a driver's rows, the record decoders written over it, the column
//!   lists and the unique-key messages. No database driver.
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
#[cfg_attr(docsrs, doc(cfg(feature = "testkit")))]
pub mod conformance;
mod embed;
pub mod mail;
pub mod model;
pub mod privacy;
pub mod provider;
pub mod retention;
mod rng;
pub mod runner;
pub mod secret;
pub mod service;
pub mod store;
pub mod webhook;

pub use embed::{Echo, EchoBuilder, EchoError};

/// Foreign crates whose types appear in Echo's public API, re-exported so embedders use the
/// same versions without adding them to their own `Cargo.toml`.
pub mod reexports {
    pub use async_trait::async_trait;
    pub use serde_json;
    pub use time;
    pub use tokio_util::sync::CancellationToken;
    pub use uuid;
}
pub use async_trait::async_trait;
pub use tokio_util::sync::CancellationToken;

/// The names most programs need: `use echo_core::prelude::*;`.
pub mod prelude {
    pub use crate::analysis::{BrandMetrics, Interval, Proportion, RunMetrics};
    pub use crate::auth::{ApiKeyVerifier, KeyAuth, KeyEnvironment, Pepper};
    pub use crate::embed::{Echo, EchoError};
    pub use crate::model::{
        BatchRun, BatchRunMetrics, Brand, BrandName, Email, Experiment, ExperimentId,
        ExperimentStatus, Iterations, Label, MatchMode, Prompt, ProviderKind, Timestamp, User,
        UserId,
    };
    pub use crate::provider::{
        Completion, CompletionRequest, DynProvider, Provider, ProviderError,
    };
    pub use crate::runner::{ExperimentOutcome, RunnerConfig};
    pub use crate::service::{ExperimentDraft, ExperimentService, ServiceError, Submitted};
    pub use crate::store::{DynStore, Store, StoreError, memory::MemoryStore};
    pub use async_trait::async_trait;
    pub use std::sync::Arc;
    pub use tokio_util::sync::CancellationToken;
}
