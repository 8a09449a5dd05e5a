use async_trait::async_trait;
use echo_core::model::{PromptSet, PromptSetId, PromptSetVersion, UserId};
use echo_core::sql_columns;
use echo_core::store::sql::{found, to_json};
use echo_core::store::{PromptSetStore, StoreError, check_prompt_set_version};

use crate::PgStore;
use crate::db::{commit, execute, fetch_all, fetch_opt};
use crate::rows::{self, dt};

const SET_INSERT: &str = concat!(
    "INSERT INTO prompt_sets (",
    sql_columns!(prompt_set),
    ") VALUES ($1, $2, $3, $4, $5, $5)"
);
const VERSION_INSERT: &str = concat!(
    "INSERT INTO prompt_set_versions (",
    sql_columns!(prompt_set_version),
    ") VALUES ($1, $2, $3, $4::jsonb, $5)"
);
/// Moves the set to the new version only if it is still at the one before. Under READ
/// COMMITTED a concurrent edit waits for the row lock and then re-checks the condition against
/// the committed row, so exactly one edit of a version wins.
const SET_ADVANCE: &str = "UPDATE prompt_sets SET name = $3, latest_version = $4, updated_at = $5 \
     WHERE id = $1 AND user_id = $2 AND latest_version = $4 - 1";
const SET_OWNED: &str = "SELECT 1::bigint FROM prompt_sets WHERE id = $1 AND user_id = $2";
const SET_BY_ID: &str = concat!(
    "SELECT ",
    sql_columns!(prompt_set),
    " FROM prompt_sets WHERE id = $1 AND user_id = $2"
);
const VERSION_BY_ID: &str = "SELECT v.set_id, v.version, v.name, v.prompts, v.created_at \
     FROM prompt_set_versions v JOIN prompt_sets s ON s.id = v.set_id \
     WHERE v.set_id = $1 AND s.user_id = $2 AND v.version = $3";
const SETS_BY_OWNER: &str = concat!(
    "SELECT ",
    sql_columns!(prompt_set),
    " FROM prompt_sets WHERE user_id = $1 ORDER BY created_at DESC, id DESC"
);
const SET_DELETE: &str = "DELETE FROM prompt_sets WHERE id = $1 AND user_id = $2";

#[async_trait]
impl PromptSetStore for PgStore {
    async fn create_prompt_set(
        &self,
        owner: UserId,
        first: &PromptSetVersion,
    ) -> Result<(), StoreError> {
        check_prompt_set_version(first, Some(1))?;
        let prompts = to_json("prompts", &first.prompts)?;
        let id = *first.set_id.as_uuid();
        let mut tx = self.db().begin().await?;
        execute(
            &mut tx,
            sqlx::query(SET_INSERT)
                .bind(id)
                .bind(*owner.as_uuid())
                .bind(first.name.as_str())
                .bind(i64::from(first.version))
                .bind(dt(first.created_at)),
        )
        .await?;
        execute(
            &mut tx,
            sqlx::query(VERSION_INSERT)
                .bind(id)
                .bind(i64::from(first.version))
                .bind(first.name.as_str())
                .bind(prompts)
                .bind(dt(first.created_at)),
        )
        .await?;
        commit(tx).await
    }

    async fn add_prompt_set_version(
        &self,
        owner: UserId,
        next: &PromptSetVersion,
    ) -> Result<(), StoreError> {
        check_prompt_set_version(next, None)?;
        let prompts = to_json("prompts", &next.prompts)?;
        let id = *next.set_id.as_uuid();
        let mut tx = self.db().begin().await?;
        let moved = execute(
            &mut tx,
            sqlx::query(SET_ADVANCE)
                .bind(id)
                .bind(*owner.as_uuid())
                .bind(next.name.as_str())
                .bind(i64::from(next.version))
                .bind(dt(next.created_at)),
        )
        .await?;
        if moved == 0 {
            let owned = fetch_opt(
                &mut tx,
                sqlx::query(SET_OWNED).bind(id).bind(*owner.as_uuid()),
                |_| Ok(()),
            )
            .await?;
            // Dropping the transaction rolls it back; it wrote nothing anyway.
            return Err(match owned {
                None => StoreError::not_found("prompt set"),
                Some(()) => StoreError::conflict("the prompt set has changed since it was read"),
            });
        }
        execute(
            &mut tx,
            sqlx::query(VERSION_INSERT)
                .bind(id)
                .bind(i64::from(next.version))
                .bind(next.name.as_str())
                .bind(prompts)
                .bind(dt(next.created_at)),
        )
        .await?;
        commit(tx).await
    }

    async fn get_prompt_set(
        &self,
        owner: UserId,
        id: PromptSetId,
    ) -> Result<PromptSet, StoreError> {
        let mut conn = self.db().conn().await?;
        fetch_opt(
            &mut conn,
            sqlx::query(SET_BY_ID)
                .bind(*id.as_uuid())
                .bind(*owner.as_uuid()),
            rows::record::<PromptSet>,
        )
        .await?
        .ok_or(StoreError::not_found("prompt set"))
    }

    async fn get_prompt_set_version(
        &self,
        owner: UserId,
        id: PromptSetId,
        version: u32,
    ) -> Result<PromptSetVersion, StoreError> {
        let mut conn = self.db().conn().await?;
        fetch_opt(
            &mut conn,
            sqlx::query(VERSION_BY_ID)
                .bind(*id.as_uuid())
                .bind(*owner.as_uuid())
                .bind(i64::from(version)),
            rows::record::<PromptSetVersion>,
        )
        .await?
        .ok_or(StoreError::not_found("prompt set version"))
    }

    async fn list_prompt_sets(&self, owner: UserId) -> Result<Vec<PromptSet>, StoreError> {
        let mut conn = self.db().conn().await?;
        fetch_all(
            &mut conn,
            sqlx::query(SETS_BY_OWNER).bind(*owner.as_uuid()),
            rows::record::<PromptSet>,
        )
        .await
    }

    async fn delete_prompt_set(&self, owner: UserId, id: PromptSetId) -> Result<(), StoreError> {
        let mut conn = self.db().conn().await?;
        let n = execute(
            &mut conn,
            sqlx::query(SET_DELETE)
                .bind(*id.as_uuid())
                .bind(*owner.as_uuid()),
        )
        .await?;
        found(n, "prompt set")
    }
}
