//! The GDPR export (Art. 15 and 20): everything Echo holds about one user, as one JSON
//! document, written page by page so that memory stays flat however many answers the user has.
//!
//! The document: `{"format", "exported_at", "user", "consents", "brand_profile",
//! "prompt_sets": [{…set, "versions": […]}], "api_keys",
//! "webhooks": [{"webhook", "deliveries": […]}],
//! "experiments": [{…experiment, "batch_runs": [{…run, "iterations": […]}]}], "audit_events"}`.
//! API keys appear as metadata only (never a secret or digest), the password hash never.
//! Audit events about the user done by someone else (an administrator, an anonymous login
//! attempt) keep their actor id but not that person's IP address and user agent.
//! Webhook endpoints appear without their signing secret, with every delivery of their log.
//! `"format"` is `"echo.export.v3"` (v2 added `"prompt_sets"`, v3 `"webhooks"`); a change to
//! the document's
//! shape gets a new format name.
//!
//! [`export_user`] writes into any [`ExportSink`]: a blocking [`std::io::Write`] through
//! [`WriteSink`], a [`tokio::io::AsyncWrite`] through [`AsyncWriteSink`], or a bounded
//! [`tokio::sync::mpsc::Sender`] of chunks (what a streamed HTTP body reads from), whose bound
//! is the backpressure.
//!
//! ```
//! use echo_core::prelude::*;
//! use echo_core::privacy::export::{WriteSink, export_user};
//! use echo_core::reexports::serde_json;
//! use echo_core::service::ExperimentDraft;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let echo = Echo::builder(Arc::new(MemoryStore::new())).simulated(7).build();
//! let ada = echo.local_user("ada@example.com").await?;
//! let draft = ExperimentDraft::new(
//!     Prompt::parse("Best CRM for startups?")?,
//!     Brand::new(BrandName::parse("HubSpot")?),
//! )
//! .iterations(3)?;
//! echo.run(ada.id, draft).await?;
//!
//! // Any `std::io::Write`: a file, stdout, or here a `Vec<u8>`.
//! let mut document = Vec::new();
//! export_user(echo.store().as_ref(), &ada, &mut WriteSink::new(&mut document)).await?;
//!
//! let export: serde_json::Value = serde_json::from_slice(&document)?;
//! assert_eq!(export["user"]["email"], "ada@example.com");
//! let runs = &export["experiments"][0]["batch_runs"];
//! assert_eq!(runs[0]["iterations"].as_array().map(Vec::len), Some(3));
//! # Ok(())
//! # }
//! ```

use std::collections::HashSet;
use std::future::Future;
use std::io;

use serde::Serialize;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::auth::ApiKeySummary;
use crate::model::{PricingTier, Timestamp, User, UserId};
use crate::store::{
    ApiKeyStore, AuditQuery, AuditStore, DeliveryQuery, ExperimentCursor, ExperimentQuery,
    ExperimentStore, PageSize, PromptSetStore, RunStore, StoreError, UserStore, WebhookStore,
};

/// Iterations read per page.
const ITERATION_PAGE: u32 = 500;

/// Bytes gathered before they are handed to the sink.
const CHUNK: usize = 64 * 1024;

/// Why an export stopped. What was written before it is a truncated document.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// The store failed, with its meaning and source kept.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A record could not be encoded as JSON.
    #[error("a record of the export could not be encoded")]
    Encode(#[from] serde_json::Error),
    /// The sink refused a chunk: the writer failed, or the reader went away
    /// ([`io::ErrorKind::BrokenPipe`] from a channel whose receiver was dropped).
    #[error("writing the export failed")]
    Write(#[source] io::Error),
}

/// Where [`export_user`] writes the document: chunks of JSON text (about 64 KiB each) whose
/// concatenation, in order, is one document.
///
/// Implementors must write each chunk completely or return an error; after an error the export
/// stops and writes nothing more. Implemented by [`WriteSink`], [`AsyncWriteSink`] and
/// `tokio::sync::mpsc::Sender<Vec<u8>>`.
pub trait ExportSink: Send {
    /// Writes one chunk.
    fn write_chunk(&mut self, chunk: &[u8]) -> impl Future<Output = io::Result<()>> + Send;

    /// Called once after the last chunk: pushes buffered bytes on. The default does nothing.
    fn flush(&mut self) -> impl Future<Output = io::Result<()>> + Send {
        async { Ok(()) }
    }
}

/// An [`ExportSink`] over a blocking [`io::Write`] (a file, stdout, a `Vec<u8>`). Writes block
/// the task that runs the export, so use it where that is acceptable (a command-line program,
/// a test) and [`AsyncWriteSink`] on a shared runtime.
#[derive(Debug)]
pub struct WriteSink<W>(W);

impl<W: io::Write + Send> WriteSink<W> {
    /// A sink writing into `writer`.
    pub fn new(writer: W) -> Self {
        Self(writer)
    }

    /// The writer back.
    pub fn into_inner(self) -> W {
        self.0
    }
}

impl<W: io::Write + Send> ExportSink for WriteSink<W> {
    async fn write_chunk(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.0.write_all(chunk)
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// An [`ExportSink`] over a [`tokio::io::AsyncWrite`] (a `tokio::fs::File`, a socket, one end
/// of `tokio::io::duplex`).
#[derive(Debug)]
pub struct AsyncWriteSink<W>(W);

impl<W: AsyncWrite + Unpin + Send> AsyncWriteSink<W> {
    /// A sink writing into `writer`.
    pub fn new(writer: W) -> Self {
        Self(writer)
    }

    /// The writer back.
    pub fn into_inner(self) -> W {
        self.0
    }
}

impl<W: AsyncWrite + Unpin + Send> ExportSink for AsyncWriteSink<W> {
    async fn write_chunk(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.0.write_all(chunk).await
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.0.flush().await
    }
}

/// Each chunk is sent as one message; a full channel makes the export wait, and a dropped
/// receiver stops it with [`io::ErrorKind::BrokenPipe`].
impl ExportSink for mpsc::Sender<Vec<u8>> {
    async fn write_chunk(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.send(chunk.to_vec())
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the export's reader went away"))
    }
}

/// The user's own account fields: everything but the password hash.
#[derive(Serialize)]
struct UserRecord<'a> {
    id: UserId,
    email: &'a str,
    tier: PricingTier,
    prompts_used: u32,
    quota_resets_at: Timestamp,
    is_active: bool,
    is_admin: bool,
    scheduled_deletion_at: Option<Timestamp>,
    /// The verification state (never a token: those are stored only as digests).
    email_verification_required: bool,
    email_verified_at: Option<Timestamp>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

/// Gathers JSON text and hands it to the sink in chunks of about [`CHUNK`] bytes.
struct Out<'w, W> {
    sink: &'w mut W,
    buf: Vec<u8>,
}

impl<W: ExportSink> Out<'_, W> {
    async fn raw(&mut self, s: &str) -> Result<(), ExportError> {
        self.buf.extend_from_slice(s.as_bytes());
        self.flush_if_full().await
    }

    async fn value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), ExportError> {
        serde_json::to_writer(&mut self.buf, v)?;
        self.flush_if_full().await
    }

    /// An object's fields without its closing brace, so that more fields can follow.
    async fn open_object(&mut self, value: &serde_json::Value) -> Result<(), ExportError> {
        let text = value.to_string();
        self.raw(text.strip_suffix('}').unwrap_or(&text)).await
    }

    async fn flush_if_full(&mut self) -> Result<(), ExportError> {
        if self.buf.len() >= CHUNK {
            self.send().await?;
        }
        Ok(())
    }

    async fn send(&mut self) -> Result<(), ExportError> {
        if !self.buf.is_empty() {
            self.sink
                .write_chunk(&self.buf)
                .await
                .map_err(ExportError::Write)?;
            self.buf.clear();
        }
        Ok(())
    }
}

/// Writes the export of `user` into `out`, then flushes it.
///
/// Reads from the store a page at a time (experiments, iterations and audit events in pages),
/// so memory holds one page and one chunk, whatever the size of the history. Only records
/// owned by `user` are read, plus the audit events the user did or that are about their
/// account; the password hash, key secrets and digests are never written. On error, what was
/// written is a truncated (invalid) document.
///
/// Takes any store that implements the six traits it reads, such as a whole
/// [`DynStore`](crate::store::DynStore) or [`MemoryStore`](crate::store::memory::MemoryStore).
pub async fn export_user<S, W>(store: &S, user: &User, out: &mut W) -> Result<(), ExportError>
where
    S: UserStore
        + ApiKeyStore
        + ExperimentStore
        + RunStore
        + AuditStore
        + PromptSetStore
        + WebhookStore
        + ?Sized,
    W: ExportSink,
{
    let mut out = Out {
        sink: out,
        buf: Vec::with_capacity(CHUNK),
    };
    let now = Timestamp::now();
    out.raw("{\"format\":\"echo.export.v3\",\"exported_at\":")
        .await?;
    out.value(&now).await?;
    out.raw(",\"user\":").await?;
    out.value(&UserRecord {
        id: user.id,
        email: user.email.as_str(),
        tier: user.tier,
        prompts_used: user.quota.prompts_used,
        quota_resets_at: user.quota.resets_at,
        is_active: user.is_active,
        is_admin: user.is_admin,
        scheduled_deletion_at: user.scheduled_deletion_at,
        email_verification_required: user.email_verification_required,
        email_verified_at: user.email_verified_at,
        created_at: user.created_at,
        updated_at: user.updated_at,
    })
    .await?;
    out.raw(",\"consents\":").await?;
    out.value(&user.consents).await?;
    out.raw(",\"brand_profile\":").await?;
    match store.get_brand_profile(user.id).await {
        Ok(p) => out.value(&p).await?,
        Err(StoreError::NotFound { .. }) => out.raw("null").await?,
        Err(e) => return Err(e.into()),
    }
    out.raw(",\"prompt_sets\":[").await?;
    for (i, set) in store.list_prompt_sets(user.id).await?.iter().enumerate() {
        if i > 0 {
            out.raw(",").await?;
        }
        out.raw("{\"set\":").await?;
        out.value(set).await?;
        out.raw(",\"versions\":[").await?;
        for version in 1..=set.latest_version {
            if version > 1 {
                out.raw(",").await?;
            }
            let v = store
                .get_prompt_set_version(user.id, set.id, version)
                .await?;
            out.value(&v).await?;
        }
        out.raw("]}").await?;
    }
    out.raw("]").await?;
    out.raw(",\"api_keys\":[").await?;
    for (i, key) in store.list_api_keys(user.id).await?.iter().enumerate() {
        if i > 0 {
            out.raw(",").await?;
        }
        out.value(&ApiKeySummary::from_record(key, now)).await?;
    }
    out.raw("],\"webhooks\":[").await?;
    write_webhooks(store, user.id, &mut out).await?;
    out.raw("],\"experiments\":[").await?;
    write_experiments(store, user.id, &mut out).await?;
    out.raw("],\"audit_events\":[").await?;
    write_audit_events(store, user.id, &mut out).await?;
    out.raw("]}").await?;
    out.send().await?;
    out.sink.flush().await.map_err(ExportError::Write)
}

/// An endpoint as exported: everything but the signing secret.
#[derive(Serialize)]
struct WebhookRecord<'a> {
    id: crate::model::WebhookId,
    url: &'a str,
    description: &'a str,
    created_at: Timestamp,
}

/// Each endpoint (without its secret), then its whole delivery log, a page at a time.
async fn write_webhooks<S, W>(
    store: &S,
    owner: UserId,
    out: &mut Out<'_, W>,
) -> Result<(), ExportError>
where
    S: WebhookStore + ?Sized,
    W: ExportSink,
{
    for (i, w) in store.list_webhooks(owner).await?.iter().enumerate() {
        if i > 0 {
            out.raw(",").await?;
        }
        out.raw("{\"webhook\":").await?;
        out.value(&WebhookRecord {
            id: w.id,
            url: w.url.as_str(),
            description: &w.description,
            created_at: w.created_at,
        })
        .await?;
        out.raw(",\"deliveries\":[").await?;
        let mut query = DeliveryQuery {
            after: None,
            limit: PageSize::new(PageSize::MAX).unwrap_or_default(),
        };
        let mut first = true;
        loop {
            let page = store.list_deliveries(owner, w.id, &query).await?;
            for d in &page.items {
                if !first {
                    out.raw(",").await?;
                }
                first = false;
                out.value(d).await?;
            }
            match page.next_cursor {
                Some(c) => query.after = Some(c),
                None => break,
            }
        }
        out.raw("]}").await?;
    }
    Ok(())
}

/// Each experiment's fields, then its runs, each run followed by its iterations.
async fn write_experiments<S, W>(
    store: &S,
    owner: UserId,
    out: &mut Out<'_, W>,
) -> Result<(), ExportError>
where
    S: ExperimentStore + RunStore + ?Sized,
    W: ExportSink,
{
    let mut after: Option<ExperimentCursor> = None;
    let mut first = true;
    loop {
        let page = store
            .list_experiments(
                owner,
                &ExperimentQuery {
                    status: None,
                    after,
                    limit: PageSize::new(PageSize::MAX).unwrap_or_default(),
                },
            )
            .await?;
        for experiment in &page.items {
            if !first {
                out.raw(",").await?;
            }
            first = false;
            let mut value = serde_json::to_value(experiment)?;
            if let Some(obj) = value.as_object_mut() {
                obj.remove("batch_runs");
            }
            out.open_object(&value).await?;
            out.raw(",\"batch_runs\":[").await?;
            for (r, run) in store
                .list_batch_runs(owner, experiment.id)
                .await?
                .iter()
                .enumerate()
            {
                if r > 0 {
                    out.raw(",").await?;
                }
                out.open_object(&serde_json::to_value(run)?).await?;
                out.raw(",\"iterations\":[").await?;
                let mut from = 0u32;
                let mut n = 0usize;
                loop {
                    let its = store
                        .list_iterations(owner, run.id, from, ITERATION_PAGE)
                        .await?;
                    for it in &its {
                        if n > 0 {
                            out.raw(",").await?;
                        }
                        n += 1;
                        out.value(it).await?;
                    }
                    match its.last() {
                        Some(last) if its.len() == ITERATION_PAGE as usize => {
                            from = last.index.saturating_add(1);
                        }
                        _ => break,
                    }
                }
                out.raw("]}").await?;
            }
            out.raw("]}").await?;
        }
        match page.next_cursor {
            Some(c) => after = Some(c),
            None => return Ok(()),
        }
    }
}

/// Events the user did, then events about the user's account done by others (an
/// administrator viewing it, an anonymous failed login), each once. The address and user
/// agent of an event the user did not do are someone else's personal data and are left out
/// (written as `null`); the event itself, its actor id included, is kept.
async fn write_audit_events<S, W>(
    store: &S,
    user: UserId,
    out: &mut Out<'_, W>,
) -> Result<(), ExportError>
where
    S: AuditStore + ?Sized,
    W: ExportSink,
{
    let mut seen: HashSet<u64> = HashSet::new();
    let queries = [
        AuditQuery {
            actor_user_id: Some(user),
            ..AuditQuery::default()
        },
        AuditQuery {
            resource_type: Some("user".into()),
            resource_id: Some(user.to_string()),
            ..AuditQuery::default()
        },
    ];
    for base in queries {
        let mut before = None;
        loop {
            let page = store
                .list_audit(&AuditQuery {
                    before_seq: before,
                    limit: PageSize::new(PageSize::MAX).unwrap_or_default(),
                    ..base.clone()
                })
                .await?;
            for event in &page.items {
                if seen.insert(event.seq) {
                    if seen.len() > 1 {
                        out.raw(",").await?;
                    }
                    if event.event.actor_user_id == Some(user) {
                        out.value(event).await?;
                    } else {
                        let mut theirs = event.clone();
                        theirs.event.ip = None;
                        theirs.event.user_agent = None;
                        out.value(&theirs).await?;
                    }
                }
            }
            match page.next_cursor {
                Some(seq) => before = Some(seq),
                None => break,
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
