use async_trait::async_trait;
use echo_core::model::{SessionId, SessionRecord, Timestamp, UserId};
use echo_core::store::sql::found;
use echo_core::store::{SessionAuth, SessionStore, StoreError};

use crate::PgStore;
use crate::db::{execute, fetch_opt};
use crate::queries as q;
use crate::rows::{self, dt, opt_dt};

#[async_trait]
impl SessionStore for PgStore {
    async fn create_session(&self, session: &SessionRecord) -> Result<(), StoreError> {
        let mut conn = self.db().conn().await?;
        execute(
            &mut conn,
            sqlx::query(q::SESSION_INSERT)
                .bind(*session.id.as_uuid())
                .bind(*session.user_id.as_uuid())
                .bind(session.secret_hash.0.to_vec())
                .bind(dt(session.created_at))
                .bind(dt(session.expires_at))
                .bind(opt_dt(session.revoked_at)),
        )
        .await?;
        Ok(())
    }

    async fn find_session_for_auth(
        &self,
        id: SessionId,
    ) -> Result<Option<SessionAuth>, StoreError> {
        let mut conn = self.db().conn().await?;
        fetch_opt(
            &mut conn,
            sqlx::query(q::SESSION_AUTH_BY_ID).bind(*id.as_uuid()),
            rows::record::<SessionAuth>,
        )
        .await
    }

    async fn revoke_session(
        &self,
        owner: UserId,
        id: SessionId,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let mut conn = self.db().conn().await?;
        let changed = execute(
            &mut conn,
            sqlx::query(q::SESSION_REVOKE)
                .bind(*id.as_uuid())
                .bind(*owner.as_uuid())
                .bind(dt(at)),
        )
        .await?;
        found(changed, "session")
    }

    async fn revoke_user_sessions(&self, owner: UserId, at: Timestamp) -> Result<u64, StoreError> {
        let mut conn = self.db().conn().await?;
        execute(
            &mut conn,
            sqlx::query(q::SESSIONS_REVOKE_BY_USER)
                .bind(*owner.as_uuid())
                .bind(dt(at)),
        )
        .await
    }

    async fn prune_sessions(&self, before: Timestamp, limit: u32) -> Result<u64, StoreError> {
        let mut conn = self.db().conn().await?;
        execute(
            &mut conn,
            sqlx::query(q::SESSIONS_PRUNE)
                .bind(dt(before))
                .bind(i64::from(limit)),
        )
        .await
    }
}
