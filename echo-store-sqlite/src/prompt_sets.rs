use async_trait::async_trait;
use echo_core::model::{PromptSet, PromptSetId, PromptSetVersion, UserId};
use echo_core::sql_columns;
use echo_core::store::sql::{found, to_json};
use echo_core::store::{PromptSetStore, StoreError, check_prompt_set_version};
use rusqlite::params;

use crate::SqliteStore;
use crate::db::{execute, query_all, query_opt};
use crate::error::SqlResultExt;
use crate::rows;

const SET_INSERT: &str = concat!(
    "INSERT INTO prompt_sets (",
    sql_columns!(prompt_set),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
);
const VERSION_INSERT: &str = concat!(
    "INSERT INTO prompt_set_versions (",
    sql_columns!(prompt_set_version),
    ") VALUES (?1, ?2, ?3, ?4, ?5)"
);
/// Moves the set to the new version only if it is still at the one before: the guard that
/// makes a concurrent edit of the same version a conflict.
const SET_ADVANCE: &str = "UPDATE prompt_sets SET name = ?3, latest_version = ?4, updated_at = ?5 \
     WHERE id = ?1 AND user_id = ?2 AND latest_version = ?4 - 1";
const SET_OWNED: &str = "SELECT 1 FROM prompt_sets WHERE id = ?1 AND user_id = ?2";
const SET_BY_ID: &str = concat!(
    "SELECT ",
    sql_columns!(prompt_set),
    " FROM prompt_sets WHERE id = ?1 AND user_id = ?2"
);
const VERSION_BY_ID: &str = "SELECT v.set_id, v.version, v.name, v.prompts, v.created_at \
     FROM prompt_set_versions v JOIN prompt_sets s ON s.id = v.set_id \
     WHERE v.set_id = ?1 AND s.user_id = ?2 AND v.version = ?3";
const SETS_BY_OWNER: &str = concat!(
    "SELECT ",
    sql_columns!(prompt_set),
    " FROM prompt_sets WHERE user_id = ?1 ORDER BY created_at DESC, id DESC"
);
const SET_DELETE: &str = "DELETE FROM prompt_sets WHERE id = ?1 AND user_id = ?2";

#[async_trait]
impl PromptSetStore for SqliteStore {
    async fn create_prompt_set(
        &self,
        owner: UserId,
        first: &PromptSetVersion,
    ) -> Result<(), StoreError> {
        check_prompt_set_version(first, Some(1))?;
        let prompts = to_json("prompts", &first.prompts)?;
        let v = first.clone();
        self.db
            .write(move |tx| {
                let id = v.set_id.as_uuid().as_bytes().to_vec();
                let at = v.created_at.unix_micros();
                execute(
                    tx,
                    SET_INSERT,
                    params![
                        id,
                        owner.as_uuid().as_bytes(),
                        v.name.as_str(),
                        v.version,
                        at,
                        at
                    ],
                )
                .db_parent("user")?;
                execute(
                    tx,
                    VERSION_INSERT,
                    params![id, v.version, v.name.as_str(), prompts, at],
                )
                .db()?;
                Ok(())
            })
            .await
    }

    async fn add_prompt_set_version(
        &self,
        owner: UserId,
        next: &PromptSetVersion,
    ) -> Result<(), StoreError> {
        check_prompt_set_version(next, None)?;
        let prompts = to_json("prompts", &next.prompts)?;
        let v = next.clone();
        self.db
            .write(move |tx| {
                let id = v.set_id.as_uuid().as_bytes().to_vec();
                let owner = owner.as_uuid().as_bytes().to_vec();
                let at = v.created_at.unix_micros();
                let moved = execute(
                    tx,
                    SET_ADVANCE,
                    params![id, owner, v.name.as_str(), v.version, at],
                )
                .db()?;
                if moved == 0 {
                    let owned = query_opt(tx, SET_OWNED, params![id, owner], |_| Ok(()))?;
                    return Err(match owned {
                        None => StoreError::not_found("prompt set"),
                        Some(()) => {
                            StoreError::conflict("the prompt set has changed since it was read")
                        }
                    });
                }
                execute(
                    tx,
                    VERSION_INSERT,
                    params![id, v.version, v.name.as_str(), prompts, at],
                )
                .db()?;
                Ok(())
            })
            .await
    }

    async fn get_prompt_set(
        &self,
        owner: UserId,
        id: PromptSetId,
    ) -> Result<PromptSet, StoreError> {
        self.db
            .read_single(move |conn| {
                query_opt(
                    conn,
                    SET_BY_ID,
                    params![id.as_uuid().as_bytes(), owner.as_uuid().as_bytes()],
                    rows::record::<PromptSet>,
                )
            })
            .await?
            .ok_or(StoreError::not_found("prompt set"))
    }

    async fn get_prompt_set_version(
        &self,
        owner: UserId,
        id: PromptSetId,
        version: u32,
    ) -> Result<PromptSetVersion, StoreError> {
        self.db
            .read_single(move |conn| {
                query_opt(
                    conn,
                    VERSION_BY_ID,
                    params![id.as_uuid().as_bytes(), owner.as_uuid().as_bytes(), version],
                    rows::record::<PromptSetVersion>,
                )
            })
            .await?
            .ok_or(StoreError::not_found("prompt set version"))
    }

    async fn list_prompt_sets(&self, owner: UserId) -> Result<Vec<PromptSet>, StoreError> {
        self.db
            .read_single(move |conn| {
                query_all(
                    conn,
                    SETS_BY_OWNER,
                    [owner.as_uuid().as_bytes()],
                    rows::record::<PromptSet>,
                )
            })
            .await
    }

    async fn delete_prompt_set(&self, owner: UserId, id: PromptSetId) -> Result<(), StoreError> {
        self.db
            .write(move |tx| {
                let n = execute(
                    tx,
                    SET_DELETE,
                    params![id.as_uuid().as_bytes(), owner.as_uuid().as_bytes()],
                )
                .db()?;
                found(n as u64, "prompt set")
            })
            .await
    }
}
