//! The GDPR export (Art. 15 and 20): everything Echo holds about one user, as one JSON
//! document, produced page by page so that memory stays flat however many answers the user
//! has. `GET /api/v1/user/data-export` streams it; `echoai export --user EMAIL` writes it.
//!
//! The document: `{"format", "exported_at", "user", "consents", "brand_profile", "api_keys",
//! "experiments": [{…experiment, "batch_runs": [{…run, "iterations": […]}]}], "audit_events"}`.
//! API keys appear as metadata only (never a secret or digest), the password hash never.

use std::collections::HashSet;

use echo_core::auth::ApiKeySummary;
use echo_core::model::{Timestamp, User, UserId};
use echo_core::store::{
    AuditQuery, DynStore, ExperimentCursor, ExperimentQuery, PageSize, StoreError,
};
use serde::Serialize;
use tokio::sync::mpsc;

/// Iterations read per page.
const ITERATION_PAGE: u32 = 500;

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A record could not be encoded.
    #[error("encoding failed")]
    Json(#[from] serde_json::Error),
    /// The reader went away (client disconnected).
    #[error("the export was abandoned by its reader")]
    Closed,
}

/// The user's own account fields: everything but the password hash.
#[derive(Serialize)]
struct UserRecord<'a> {
    id: UserId,
    email: &'a str,
    tier: echo_core::model::PricingTier,
    prompts_used: u32,
    quota_resets_at: Timestamp,
    is_active: bool,
    is_admin: bool,
    scheduled_deletion_at: Option<Timestamp>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

/// Writes JSON text into the channel in chunks of about 64 KiB.
struct Out {
    tx: mpsc::Sender<Vec<u8>>,
    buf: Vec<u8>,
}

impl Out {
    async fn raw(&mut self, s: &str) -> Result<(), ExportError> {
        self.buf.extend_from_slice(s.as_bytes());
        self.flush_if_full().await
    }

    async fn value<T: Serialize>(&mut self, v: &T) -> Result<(), ExportError> {
        serde_json::to_writer(&mut self.buf, v)?;
        self.flush_if_full().await
    }

    async fn flush_if_full(&mut self) -> Result<(), ExportError> {
        if self.buf.len() >= 64 * 1024 {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), ExportError> {
        if !self.buf.is_empty() {
            let chunk = std::mem::take(&mut self.buf);
            self.tx.send(chunk).await.map_err(|_| ExportError::Closed)?;
        }
        Ok(())
    }
}

/// Streams the export of `user` into `tx` (chunks of JSON text; the concatenation is one
/// document). The channel's bound is the backpressure: a slow reader slows the reads.
pub async fn export_user(
    store: &DynStore,
    user: &User,
    tx: mpsc::Sender<Vec<u8>>,
) -> Result<(), ExportError> {
    let mut out = Out {
        tx,
        buf: Vec::with_capacity(64 * 1024),
    };
    let now = Timestamp::now();
    out.raw("{\"format\":\"echo.export.v1\",\"exported_at\":")
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
    out.raw(",\"api_keys\":[").await?;
    for (i, key) in store.list_api_keys(user.id).await?.iter().enumerate() {
        if i > 0 {
            out.raw(",").await?;
        }
        out.value(&ApiKeySummary::from_record(key, now)).await?;
    }
    out.raw("],\"experiments\":[").await?;
    let mut after: Option<ExperimentCursor> = None;
    let mut first = true;
    loop {
        let page = store
            .list_experiments(
                user.id,
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
            // The experiment's fields, then its runs, without holding either page in memory
            // longer than needed.
            let mut value = serde_json::to_value(experiment)?;
            if let Some(obj) = value.as_object_mut() {
                obj.remove("batch_runs");
            }
            let text = value.to_string();
            out.raw(text.strip_suffix('}').unwrap_or(&text)).await?;
            out.raw(",\"batch_runs\":[").await?;
            for (r, run) in store
                .list_batch_runs(user.id, experiment.id)
                .await?
                .iter()
                .enumerate()
            {
                if r > 0 {
                    out.raw(",").await?;
                }
                let text = serde_json::to_value(run)?.to_string();
                out.raw(text.strip_suffix('}').unwrap_or(&text)).await?;
                out.raw(",\"iterations\":[").await?;
                let mut from = 0u32;
                let mut n = 0usize;
                loop {
                    let its = store
                        .list_iterations(user.id, run.id, from, ITERATION_PAGE)
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
            None => break,
        }
    }
    out.raw("],\"audit_events\":[").await?;
    // Events the user did, then events about the user's account done by others (an
    // administrator viewing it), each once.
    let mut seen: HashSet<u64> = HashSet::new();
    let queries = [
        AuditQuery {
            actor_user_id: Some(user.id),
            ..AuditQuery::default()
        },
        AuditQuery {
            resource_type: Some("user".into()),
            resource_id: Some(user.id.to_string()),
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
                    out.value(event).await?;
                }
            }
            match page.next_cursor {
                Some(seq) => before = Some(seq),
                None => break,
            }
        }
    }
    out.raw("]}").await?;
    out.flush().await
}
