use async_trait::async_trait;
use echo_core::model::{SessionId, SessionRecord, Timestamp, UserId};
use echo_core::store::sql::found;
use echo_core::store::{SessionAuth, SessionStore, StoreError};
use rusqlite::params;

use crate::SqliteStore;
use crate::db::{execute, query_opt};
use crate::error::SqlResultExt;
use crate::queries as q;
use crate::rows::{self, opt_micros};

#[async_trait]
impl SessionStore for SqliteStore {
    async fn create_session(&self, session: &SessionRecord) -> Result<(), StoreError> {
        let s = session.clone();
        self.db
            .write(move |tx| {
                execute(
                    tx,
                    q::SESSION_INSERT,
                    params![
                        s.id.as_uuid().as_bytes(),
                        s.user_id.as_uuid().as_bytes(),
                        s.secret_hash.0,
                        s.created_at.unix_micros(),
                        s.expires_at.unix_micros(),
                        opt_micros(s.revoked_at),
                    ],
                )
                .db_parent("user")?;
                Ok(())
            })
            .await
    }

    async fn find_session_for_auth(
        &self,
        id: SessionId,
    ) -> Result<Option<SessionAuth>, StoreError> {
        self.db
            .read_point(move |conn| {
                query_opt(
                    conn,
                    q::SESSION_AUTH_BY_ID,
                    [id.as_uuid().as_bytes()],
                    rows::record::<SessionAuth>,
                )
            })
            .await
    }

    async fn revoke_session(
        &self,
        owner: UserId,
        id: SessionId,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        self.db
            .write(move |tx| {
                let changed = execute(
                    tx,
                    q::SESSION_REVOKE,
                    params![
                        id.as_uuid().as_bytes(),
                        owner.as_uuid().as_bytes(),
                        at.unix_micros()
                    ],
                )
                .db()?;
                found(changed as u64, "session")
            })
            .await
    }

    async fn revoke_user_sessions(&self, owner: UserId, at: Timestamp) -> Result<u64, StoreError> {
        self.db
            .write(move |tx| {
                let changed = execute(
                    tx,
                    q::SESSIONS_REVOKE_BY_USER,
                    params![owner.as_uuid().as_bytes(), at.unix_micros()],
                )
                .db()?;
                Ok(changed as u64)
            })
            .await
    }

    async fn prune_sessions(&self, before: Timestamp, limit: u32) -> Result<u64, StoreError> {
        self.db
            .write(move |tx| {
                let deleted =
                    execute(tx, q::SESSIONS_PRUNE, params![before.unix_micros(), limit]).db()?;
                Ok(deleted as u64)
            })
            .await
    }
}
