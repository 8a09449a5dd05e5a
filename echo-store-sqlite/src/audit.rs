use async_trait::async_trait;
use echo_core::audit::{GENESIS_HASH, chain_hash};
use echo_core::model::{AuditEvent, NewAuditEvent};
use echo_core::store::{AuditQuery, AuditStore, Page, StoreError};
use rusqlite::{params, params_from_iter};

use crate::SqliteStore;
use crate::db::{execute, query_all, query_opt};
use crate::error::SqlResultExt;
use crate::queries as q;
use crate::rows::{self, Cols, to_i64, to_json};

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append_audit(&self, event: &NewAuditEvent) -> Result<AuditEvent, StoreError> {
        let details = to_json("audit details", &event.details)?;
        let event = event.clone();
        // The write lock taken by BEGIN IMMEDIATE serialises appenders between reading the
        // head and inserting after it, so the chain cannot fork.
        self.db
            .write(move |tx| {
                let head = query_opt(tx, q::AUDIT_LAST, [], |row| {
                    let mut c = Cols::new(row);
                    Ok((
                        c.u64("audit_events.seq")?,
                        c.blob::<32>("audit_events.hash")?,
                    ))
                })?;
                let (prev_seq, prev_hash) = head.unwrap_or((0, GENESIS_HASH));
                let seq = prev_seq + 1;
                let hash = chain_hash(&prev_hash, seq, &event);
                let e = &event;
                execute(
                    tx,
                    q::AUDIT_INSERT,
                    params![
                        to_i64("audit sequence", seq)?,
                        e.actor_user_id.map(|id| *id.as_uuid().as_bytes()),
                        e.action,
                        e.resource_type,
                        e.resource_id,
                        e.ip,
                        e.user_agent,
                        e.request_id,
                        details,
                        e.created_at.unix_micros(),
                        prev_hash,
                        hash,
                    ],
                )
                .db()?;
                Ok(AuditEvent {
                    seq,
                    event,
                    prev_hash,
                    hash,
                })
            })
            .await
    }

    async fn list_audit(&self, query: &AuditQuery) -> Result<Page<AuditEvent, u64>, StoreError> {
        let limit = query.limit.get() as usize;
        let (sql, args) = q::audit_list(query);
        let items = self
            .db
            .read(move |tx| query_all(tx, &sql, params_from_iter(args), rows::audit_event))
            .await?;
        Ok(Page::from_overfetch(items, limit, |e| e.seq))
    }

    async fn audit_range(&self, from_seq: u64, limit: u32) -> Result<Vec<AuditEvent>, StoreError> {
        self.db
            .read(move |tx| {
                query_all(
                    tx,
                    q::AUDIT_RANGE,
                    params![q::seq_bound(from_seq), limit],
                    rows::audit_event,
                )
            })
            .await
    }
}
