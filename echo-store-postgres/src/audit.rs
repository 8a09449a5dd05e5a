use async_trait::async_trait;
use echo_core::audit::chain_hash;
use echo_core::model::{
    AuditCheckpoint, AuditErasure, AuditEvent, NewAuditEvent, Timestamp, UserId,
};
use echo_core::store::sql::{ColumnReader, to_i64, to_json};
use echo_core::store::{AuditQuery, AuditStore, Page, StoreError};

use crate::PgStore;
use crate::db::{commit, execute, fetch_all, fetch_opt};
use crate::error::invalid;
use crate::queries::{self as q, AuditArg};
use crate::rows::{self, Cols, dt};

#[async_trait]
impl AuditStore for PgStore {
    async fn append_audit(&self, event: &NewAuditEvent) -> Result<AuditEvent, StoreError> {
        // Hash what jsonb will give back: its numbers have no negative zero.
        let mut owned;
        let event = if has_negative_zero(&event.details) {
            owned = event.clone();
            zero_negative_zeros(&mut owned.details);
            &owned
        } else {
            event
        };
        let details = to_json("audit details", &event.details)?;
        let mut tx = self.db().begin().await?;
        // The head's row lock is held until commit: the next appender reads this append's
        // head, so the chain cannot fork even across servers.
        let (prev_seq, prev_hash) =
            fetch_opt(&mut tx, sqlx::query(q::AUDIT_HEAD_FOR_UPDATE), |row| {
                let mut c = Cols::new(row);
                Ok((
                    c.u64("audit_chain_head.seq")?,
                    c.blob::<32>("audit_chain_head.hash")?,
                ))
            })
            .await?
            .ok_or_else(|| invalid("audit_chain_head", "is missing its row"))?;
        let seq = prev_seq + 1;
        let hash = chain_hash(&prev_hash, seq, event);
        let seq_i = to_i64("audit sequence", seq)?;
        let e = event;
        execute(
            &mut tx,
            sqlx::query(q::AUDIT_INSERT)
                .bind(seq_i)
                .bind(e.actor_user_id.map(|id| *id.as_uuid()))
                .bind(e.action.as_str())
                .bind(e.resource_type.as_str())
                .bind(e.resource_id.as_deref())
                .bind(e.ip.as_deref())
                .bind(e.user_agent.as_deref())
                .bind(e.request_id.as_deref())
                .bind(details)
                .bind(dt(e.created_at))
                .bind(prev_hash.to_vec())
                .bind(hash.to_vec()),
        )
        .await?;
        execute(
            &mut tx,
            sqlx::query(q::AUDIT_HEAD_SET)
                .bind(seq_i)
                .bind(hash.to_vec()),
        )
        .await?;
        commit(tx).await?;
        Ok(AuditEvent {
            seq,
            event: event.clone(),
            actor_pseudonym: None,
            prev_hash,
            hash,
        })
    }

    async fn list_audit(&self, query: &AuditQuery) -> Result<Page<AuditEvent, u64>, StoreError> {
        let limit = query.limit.get() as usize;
        let (sql, args) = q::audit_list(query);
        // Built only from this crate's constant fragments and `$n` placeholders.
        let mut statement = sqlx::query(sqlx::AssertSqlSafe(sql));
        for arg in args {
            statement = match arg {
                AuditArg::Int(i) => statement.bind(i),
                AuditArg::Uuid(u) => statement.bind(u),
                AuditArg::Text(t) => statement.bind(t),
                AuditArg::Time(t) => statement.bind(t),
            };
        }
        let mut conn = self.db().conn().await?;
        let items = fetch_all(&mut conn, statement, rows::record::<AuditEvent>).await?;
        Ok(Page::from_overfetch(items, limit, |e| e.seq))
    }

    async fn audit_range(&self, from_seq: u64, limit: u32) -> Result<Vec<AuditEvent>, StoreError> {
        let mut conn = self.db().conn().await?;
        fetch_all(
            &mut conn,
            sqlx::query(q::AUDIT_RANGE)
                .bind(q::seq_bound(from_seq))
                .bind(i64::from(limit)),
            rows::record::<AuditEvent>,
        )
        .await
    }

    async fn pseudonymize_actor(
        &self,
        user: UserId,
        pseudonym: &str,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let mut tx = self.db().begin().await?;
        execute(&mut tx, sqlx::query(q::AUDIT_MAINTENANCE_ON)).await?;
        // One statement: the erased events and their records cannot part, and a concurrent
        // erasure of the same user waits on the rows, then finds no actor left to erase.
        let erased = execute(
            &mut tx,
            sqlx::query(q::AUDIT_ERASE_ACTOR)
                .bind(*user.as_uuid())
                .bind(pseudonym)
                .bind(dt(now)),
        )
        .await?;
        commit(tx).await?;
        Ok(erased)
    }

    async fn audit_erasures(
        &self,
        from_seq: u64,
        limit: u32,
    ) -> Result<Vec<AuditErasure>, StoreError> {
        let mut conn = self.db().conn().await?;
        fetch_all(
            &mut conn,
            sqlx::query(q::AUDIT_ERASURES_RANGE)
                .bind(q::seq_bound(from_seq))
                .bind(i64::from(limit)),
            rows::record::<AuditErasure>,
        )
        .await
    }

    async fn put_audit_checkpoint(&self, checkpoint: &AuditCheckpoint) -> Result<(), StoreError> {
        let seq = to_i64("audit checkpoint sequence", checkpoint.seq)?;
        let mut conn = self.db().conn().await?;
        execute(
            &mut conn,
            sqlx::query(q::AUDIT_CHECKPOINT_INSERT)
                .bind(seq)
                .bind(checkpoint.head_hash.to_vec())
                .bind(dt(checkpoint.created_at))
                .bind(checkpoint.signature.as_slice()),
        )
        .await?;
        Ok(())
    }

    async fn latest_audit_checkpoint(&self) -> Result<Option<AuditCheckpoint>, StoreError> {
        let mut conn = self.db().conn().await?;
        fetch_opt(
            &mut conn,
            sqlx::query(q::AUDIT_CHECKPOINT_LATEST),
            rows::record::<AuditCheckpoint>,
        )
        .await
    }

    async fn audit_checkpoints(
        &self,
        from_seq: u64,
        limit: u32,
    ) -> Result<Vec<AuditCheckpoint>, StoreError> {
        let mut conn = self.db().conn().await?;
        fetch_all(
            &mut conn,
            sqlx::query(q::AUDIT_CHECKPOINTS_RANGE)
                .bind(q::seq_bound(from_seq))
                .bind(i64::from(limit)),
            rows::record::<AuditCheckpoint>,
        )
        .await
    }

    async fn delete_audit_through(&self, seq: u64) -> Result<u64, StoreError> {
        let mut tx = self.db().begin().await?;
        execute(&mut tx, sqlx::query(q::AUDIT_MAINTENANCE_ON)).await?;
        let deleted = execute(
            &mut tx,
            sqlx::query(q::AUDIT_DELETE_THROUGH).bind(q::seq_bound(seq)),
        )
        .await?;
        commit(tx).await?;
        Ok(deleted)
    }

    async fn audit_bounds(&self) -> Result<Option<(u64, u64)>, StoreError> {
        let mut conn = self.db().conn().await?;
        fetch_opt(&mut conn, sqlx::query(q::AUDIT_BOUNDS), |row| {
            let mut c = Cols::new(row);
            Ok(c.opt_u64("first audit seq")?
                .zip(c.opt_u64("last audit seq")?))
        })
        .await
        .map(Option::flatten)
    }
}

/// Whether `value` holds a `-0.0`, which jsonb stores as `0.0`.
fn has_negative_zero(value: &serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::Number(n) => n.as_f64().is_some_and(|f| f == 0.0 && f.is_sign_negative()),
        Value::Array(items) => items.iter().any(has_negative_zero),
        Value::Object(map) => map.values().any(has_negative_zero),
        _ => false,
    }
}

/// Replaces every `-0.0` in `value` by `0.0`, as jsonb would.
fn zero_negative_zeros(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(n) if n.as_f64().is_some_and(|f| f == 0.0 && f.is_sign_negative()) => {
            *value = Value::from(0.0);
        }
        Value::Array(items) => items.iter_mut().for_each(zero_negative_zeros),
        Value::Object(map) => map.values_mut().for_each(zero_negative_zeros),
        _ => {}
    }
}
