use async_trait::async_trait;
use echo_core::model::{ApiKeyId, ApiKeyRecord, Timestamp, UserId};
use echo_core::store::sql::found;
use echo_core::store::{ApiKeyAuth, ApiKeyStore, StoreError};
use rusqlite::params;

use crate::SqliteStore;
use crate::db::{execute, query_all, query_opt};
use crate::error::SqlResultExt;
use crate::queries as q;
use crate::rows::{self, opt_micros};

#[async_trait]
impl ApiKeyStore for SqliteStore {
    async fn create_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        let k = key.clone();
        self.db
            .write(move |tx| {
                execute(
                    tx,
                    q::API_KEY_INSERT,
                    params![
                        k.id.as_uuid().as_bytes(),
                        k.user_id.as_uuid().as_bytes(),
                        k.name.as_str(),
                        k.public_id,
                        k.secret_hash.0,
                        k.is_active,
                        k.created_at.unix_micros(),
                        opt_micros(k.last_used_at),
                        opt_micros(k.expires_at),
                        opt_micros(k.revoked_at),
                    ],
                )
                .db_parent("user")?;
                Ok(())
            })
            .await
    }

    async fn find_api_key(&self, public_id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let public_id = public_id.to_owned();
        self.db
            .read_single(move |conn| {
                query_opt(
                    conn,
                    q::API_KEY_BY_PUBLIC_ID,
                    [public_id],
                    rows::record::<ApiKeyRecord>,
                )
            })
            .await
    }

    async fn find_api_key_for_auth(
        &self,
        public_id: &str,
    ) -> Result<Option<ApiKeyAuth>, StoreError> {
        let public_id = public_id.to_owned();
        self.db
            .read_point(move |conn| {
                query_opt(
                    conn,
                    q::API_KEY_AUTH_BY_PUBLIC_ID,
                    [public_id.as_str()],
                    rows::record::<ApiKeyAuth>,
                )
            })
            .await
    }

    async fn list_api_keys(&self, owner: UserId) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.db
            .read_single(move |conn| {
                query_all(
                    conn,
                    q::API_KEYS_BY_USER,
                    [owner.as_uuid().as_bytes()],
                    rows::record::<ApiKeyRecord>,
                )
            })
            .await
    }

    async fn revoke_api_key(
        &self,
        owner: UserId,
        id: ApiKeyId,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        self.db
            .write(move |tx| {
                let changed = execute(
                    tx,
                    q::API_KEY_REVOKE,
                    params![
                        id.as_uuid().as_bytes(),
                        owner.as_uuid().as_bytes(),
                        at.unix_micros()
                    ],
                )
                .db()?;
                found(changed as u64, "API key")
            })
            .await
    }

    async fn set_api_key_expiry(
        &self,
        owner: UserId,
        id: ApiKeyId,
        expires_at: Option<Timestamp>,
    ) -> Result<(), StoreError> {
        self.db
            .write(move |tx| {
                let changed = execute(
                    tx,
                    q::API_KEY_SET_EXPIRY,
                    params![
                        id.as_uuid().as_bytes(),
                        owner.as_uuid().as_bytes(),
                        opt_micros(expires_at)
                    ],
                )
                .db()?;
                found(changed as u64, "API key")
            })
            .await
    }

    async fn touch_api_keys(&self, uses: &[(ApiKeyId, Timestamp)]) -> Result<(), StoreError> {
        if uses.is_empty() {
            return Ok(());
        }
        let uses = uses.to_vec();
        self.db
            .write(move |tx| {
                let mut touch = tx.prepare_cached(q::API_KEY_TOUCH).db()?;
                for (id, at) in &uses {
                    touch
                        .execute(params![id.as_uuid().as_bytes(), at.unix_micros()])
                        .db()?;
                }
                Ok(())
            })
            .await
    }
}
