use async_trait::async_trait;
use echo_core::model::{ApiKeyId, ApiKeyRecord, Timestamp, UserId};
use echo_core::store::sql::found;
use echo_core::store::{ApiKeyAuth, ApiKeyStore, StoreError};
use sqlx::PgConnection;

use crate::PgStore;
use crate::db::{commit, execute, fetch_all, fetch_opt};
use crate::queries as q;
use crate::rows::{self, dt, opt_dt};

/// Rows per statement of the bulk loaders: big enough to amortise the round trip, small enough
/// to keep each statement's arrays a few MiB.
pub(crate) const BULK_CHUNK: usize = 5_000;

async fn insert_api_keys(conn: &mut PgConnection, keys: &[ApiKeyRecord]) -> Result<(), StoreError> {
    let n = keys.len();
    let (mut ids, mut users, mut names, mut public_ids, mut hashes) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut active, mut created, mut used, mut expires, mut revoked) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for k in keys {
        ids.push(*k.id.as_uuid());
        users.push(*k.user_id.as_uuid());
        names.push(k.name.as_str());
        public_ids.push(k.public_id.as_str());
        hashes.push(k.secret_hash.0.to_vec());
        active.push(k.is_active);
        created.push(dt(k.created_at));
        used.push(opt_dt(k.last_used_at));
        expires.push(opt_dt(k.expires_at));
        revoked.push(opt_dt(k.revoked_at));
    }
    execute(
        conn,
        sqlx::query(q::API_KEYS_INSERT)
            .bind(ids)
            .bind(users)
            .bind(names)
            .bind(public_ids)
            .bind(hashes)
            .bind(active)
            .bind(created)
            .bind(used)
            .bind(expires)
            .bind(revoked),
    )
    .await?;
    Ok(())
}

impl PgStore {
    /// Bulk-loads API-key records as they are, in one transaction of multi-row statements: for
    /// imports and benchmark seeding (a million keys take seconds).
    ///
    /// All or nothing: [`StoreError::NotFound`] when an owner does not exist,
    /// [`StoreError::Conflict`] when an id or public id is taken.
    pub async fn import_api_keys(&self, keys: &[ApiKeyRecord]) -> Result<(), StoreError> {
        let mut tx = self.db().begin().await?;
        for chunk in keys.chunks(BULK_CHUNK) {
            insert_api_keys(&mut tx, chunk).await?;
        }
        commit(tx).await
    }
}

#[async_trait]
impl ApiKeyStore for PgStore {
    async fn create_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        let mut conn = self.db().conn().await?;
        insert_api_keys(&mut conn, std::slice::from_ref(key)).await
    }

    async fn find_api_key(&self, public_id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let mut conn = self.db().conn().await?;
        fetch_opt(
            &mut conn,
            sqlx::query(q::API_KEY_BY_PUBLIC_ID).bind(public_id),
            rows::record::<ApiKeyRecord>,
        )
        .await
    }

    async fn find_api_key_for_auth(
        &self,
        public_id: &str,
    ) -> Result<Option<ApiKeyAuth>, StoreError> {
        let mut conn = self.db().conn().await?;
        fetch_opt(
            &mut conn,
            sqlx::query(q::API_KEY_AUTH_BY_PUBLIC_ID).bind(public_id),
            rows::record::<ApiKeyAuth>,
        )
        .await
    }

    async fn list_api_keys(&self, owner: UserId) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let mut conn = self.db().conn().await?;
        fetch_all(
            &mut conn,
            sqlx::query(q::API_KEYS_BY_USER).bind(*owner.as_uuid()),
            rows::record::<ApiKeyRecord>,
        )
        .await
    }

    async fn revoke_api_key(
        &self,
        owner: UserId,
        id: ApiKeyId,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let mut conn = self.db().conn().await?;
        let changed = execute(
            &mut conn,
            sqlx::query(q::API_KEY_REVOKE)
                .bind(*id.as_uuid())
                .bind(*owner.as_uuid())
                .bind(dt(at)),
        )
        .await?;
        found(changed, "API key")
    }

    async fn set_api_key_expiry(
        &self,
        owner: UserId,
        id: ApiKeyId,
        expires_at: Option<Timestamp>,
    ) -> Result<(), StoreError> {
        let mut conn = self.db().conn().await?;
        let changed = execute(
            &mut conn,
            sqlx::query(q::API_KEY_SET_EXPIRY)
                .bind(*id.as_uuid())
                .bind(*owner.as_uuid())
                .bind(opt_dt(expires_at)),
        )
        .await?;
        found(changed, "API key")
    }

    async fn touch_api_keys(&self, uses: &[(ApiKeyId, Timestamp)]) -> Result<(), StoreError> {
        if uses.is_empty() {
            return Ok(());
        }
        let (ids, ats): (Vec<_>, Vec<_>) =
            uses.iter().map(|(id, at)| (*id.as_uuid(), dt(*at))).unzip();
        let mut conn = self.db().conn().await?;
        execute(
            &mut conn,
            sqlx::query(q::API_KEYS_TOUCH).bind(ids).bind(ats),
        )
        .await?;
        Ok(())
    }
}
