use async_trait::async_trait;
use echo_core::audit::chain_hash;
use echo_core::model::{AuditEvent, NewAuditEvent};
use echo_core::store::{AuditQuery, AuditStore, Page, StoreError};

use crate::PgStore;
use crate::db::{commit, execute, fetch_all, fetch_opt};
use crate::error::invalid;
use crate::queries::{self as q, AuditArg};
use crate::rows::{self, Cols, dt, to_i64, to_json};

#[async_trait]
impl AuditStore for PgStore {
    async fn append_audit(&self, event: &NewAuditEvent) -> Result<AuditEvent, StoreError> {
        let details = to_json("audit details", &event.details)?;
        let mut tx = self.db().begin().await?;
        // The head's row lock is held until commit: the next appender reads this append's
        // head, so the chain cannot fork even across servers.
        let (prev_seq, prev_hash) =
            fetch_opt(&mut tx, sqlx::query(q::AUDIT_HEAD_FOR_UPDATE), |row| {
                let mut c = Cols::new(row);
                Ok((
                    c.u64("audit_chain_head.seq")?,
                    c.bytes::<32>("audit_chain_head.hash")?,
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
        let items = fetch_all(&mut conn, statement, rows::audit_event).await?;
        Ok(Page::from_overfetch(items, limit, |e| e.seq))
    }

    async fn audit_range(&self, from_seq: u64, limit: u32) -> Result<Vec<AuditEvent>, StoreError> {
        let mut conn = self.db().conn().await?;
        fetch_all(
            &mut conn,
            sqlx::query(q::AUDIT_RANGE)
                .bind(q::seq_bound(from_seq))
                .bind(i64::from(limit)),
            rows::audit_event,
        )
        .await
    }
}
