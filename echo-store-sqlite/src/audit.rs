use async_trait::async_trait;
use echo_core::audit::chain_hash;
use echo_core::model::{
    AuditCheckpoint, AuditErasure, AuditEvent, AuditLink, NewAuditEvent, Timestamp, UserId,
};
use echo_core::store::sql::{ColumnReader, to_i64, to_json};
use echo_core::store::{AuditQuery, AuditStore, Page, StoreError};
use rusqlite::{Row, params, params_from_iter};

use crate::SqliteStore;
use crate::db::{execute, query_all, query_opt};
use crate::error::{SqlResultExt, invalid};
use crate::queries as q;
use crate::rows::{self, Cols};

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append_audit(&self, event: &NewAuditEvent) -> Result<AuditEvent, StoreError> {
        let details = to_json("audit details", &event.details)?;
        let event = event.clone();
        // The write lock taken by BEGIN IMMEDIATE serialises appenders between reading the
        // head and moving it, so the chain cannot fork. In place: every audited request waits
        // for this commit.
        self.db
            .write_in_place(move |tx| {
                let (prev_seq, prev_hash) = query_opt(tx, q::AUDIT_HEAD, [], |row| {
                    let mut c = Cols::new(row);
                    Ok((
                        c.u64("audit_chain_head.seq")?,
                        c.blob::<32>("audit_chain_head.hash")?,
                    ))
                })?
                .ok_or_else(|| invalid("audit_chain_head", "is missing its row"))?;
                let seq = prev_seq + 1;
                let seq_i = to_i64("audit sequence", seq)?;
                let hash = chain_hash(&prev_hash, seq, &event);
                let e = &event;
                execute(
                    tx,
                    q::AUDIT_INSERT,
                    params![
                        seq_i,
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
                execute(tx, q::AUDIT_HEAD_SET, params![seq_i, hash]).db()?;
                Ok(AuditEvent {
                    seq,
                    event,
                    actor_pseudonym: None,
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
            .read(move |tx| query_all(tx, &sql, params_from_iter(args), rows::record::<AuditEvent>))
            .await?;
        Ok(Page::from_overfetch(items, limit, |e| e.seq))
    }

    async fn audit_range(&self, from_seq: u64, limit: u32) -> Result<Vec<AuditEvent>, StoreError> {
        self.audit_range_as(from_seq, limit, rows::record::<AuditEvent>)
            .await
    }

    async fn audit_links(&self, from_seq: u64, limit: u32) -> Result<Vec<AuditLink>, StoreError> {
        self.audit_range_as(from_seq, limit, rows::audit_link).await
    }

    async fn pseudonymize_actor(
        &self,
        user: UserId,
        pseudonym: &str,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let pseudonym = pseudonym.to_owned();
        self.db
            .write(move |tx| {
                let actor = user.as_uuid().as_bytes();
                execute(
                    tx,
                    q::AUDIT_ERASURES_RECORD,
                    params![actor, now.unix_micros(), pseudonym],
                )
                .db()?;
                let erased = execute(tx, q::AUDIT_ERASE_ACTOR, params![actor, pseudonym]).db()?;
                Ok(erased as u64)
            })
            .await
    }

    async fn audit_erasures(
        &self,
        from_seq: u64,
        limit: u32,
    ) -> Result<Vec<AuditErasure>, StoreError> {
        self.db
            .read_single(move |conn| {
                query_all(
                    conn,
                    q::AUDIT_ERASURES_RANGE,
                    params![q::seq_bound(from_seq), limit],
                    rows::record::<AuditErasure>,
                )
            })
            .await
    }

    async fn put_audit_checkpoint(&self, checkpoint: &AuditCheckpoint) -> Result<(), StoreError> {
        let seq = to_i64("audit checkpoint sequence", checkpoint.seq)?;
        let cp = checkpoint.clone();
        self.db
            .write(move |tx| {
                execute(
                    tx,
                    q::AUDIT_CHECKPOINT_INSERT,
                    params![seq, cp.head_hash, cp.created_at.unix_micros(), cp.signature],
                )
                .db()?;
                Ok(())
            })
            .await
    }

    async fn latest_audit_checkpoint(&self) -> Result<Option<AuditCheckpoint>, StoreError> {
        self.db
            .read_single(|conn| {
                query_opt(
                    conn,
                    q::AUDIT_CHECKPOINT_LATEST,
                    [],
                    rows::record::<AuditCheckpoint>,
                )
            })
            .await
    }

    async fn audit_checkpoints(
        &self,
        from_seq: u64,
        limit: u32,
    ) -> Result<Vec<AuditCheckpoint>, StoreError> {
        self.db
            .read_single(move |conn| {
                query_all(
                    conn,
                    q::AUDIT_CHECKPOINTS_RANGE,
                    params![q::seq_bound(from_seq), limit],
                    rows::record::<AuditCheckpoint>,
                )
            })
            .await
    }

    async fn delete_audit_through(&self, seq: u64) -> Result<u64, StoreError> {
        self.db
            .write(move |tx| {
                let deleted = execute(tx, q::AUDIT_DELETE_THROUGH, [q::seq_bound(seq)]).db()?;
                Ok(deleted as u64)
            })
            .await
    }

    async fn audit_bounds(&self) -> Result<Option<(u64, u64)>, StoreError> {
        self.db
            .read_single(|conn| {
                query_opt(conn, q::AUDIT_BOUNDS, [], |row| {
                    let mut c = Cols::new(row);
                    Ok(c.opt_u64("first audit seq")?
                        .zip(c.opt_u64("last audit seq")?))
                })
            })
            .await
            .map(Option::flatten)
    }
}

impl SqliteStore {
    /// The events with `seq >= from_seq`, ascending, at most `limit`, each decoded by
    /// `decode`. One statement: autocommit's implicit read transaction is its snapshot.
    async fn audit_range_as<T: Send + 'static>(
        &self,
        from_seq: u64,
        limit: u32,
        decode: fn(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        self.db
            .read_single(move |conn| {
                query_all(
                    conn,
                    q::AUDIT_RANGE,
                    params![q::seq_bound(from_seq), limit],
                    decode,
                )
            })
            .await
    }
}
