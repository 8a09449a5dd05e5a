//! [`PromptSetStore`]: prompt sets and their immutable versions.

use std::fmt::Debug;

use async_trait::async_trait;

use super::StoreError;
use crate::model::{PromptSet, PromptSetId, PromptSetVersion, UserId, ValidationError};

/// Prompt sets (one topic in 5 to 50 phrasings) and their versions.
///
/// Contract, beyond the [shared one](crate::store):
/// - **Immutable versions.** A stored version is never changed; editing a set appends version
///   `latest + 1`. Versions of a set are numbered 1, 2, 3… without gaps.
/// - **Validated.** A version that fails [`PromptSetVersion::validate`] is
///   [`StoreError::Invalid`] and nothing is written.
/// - **No half-written version.** Appending a version and moving the set's `latest_version`,
///   `name` and `updated_at` to it is one atomic step.
/// - **Tenant isolation.** Another user's set answers [`StoreError::NotFound`].
#[async_trait]
pub trait PromptSetStore: Send + Sync + Debug + 'static {
    /// Stores a new set owned by `owner` with `first` as its version 1
    /// ([`StoreError::Invalid`] unless `first.version == 1`). [`StoreError::NotFound`] for an
    /// unknown owner, [`StoreError::Conflict`] when the id is taken.
    async fn create_prompt_set(
        &self,
        owner: UserId,
        first: &PromptSetVersion,
    ) -> Result<(), StoreError>;

    /// Appends `next` to the set `next.set_id` of `owner`. It must be the version after the
    /// newest stored one at the moment of writing: otherwise (a concurrent edit stored that
    /// number first, or a gap) [`StoreError::Conflict`] and nothing is written.
    async fn add_prompt_set_version(
        &self,
        owner: UserId,
        next: &PromptSetVersion,
    ) -> Result<(), StoreError>;

    /// The set, with its newest version's number and name.
    async fn get_prompt_set(&self, owner: UserId, id: PromptSetId)
    -> Result<PromptSet, StoreError>;

    /// One version of the set; [`StoreError::NotFound`] for a version never stored.
    async fn get_prompt_set_version(
        &self,
        owner: UserId,
        id: PromptSetId,
        version: u32,
    ) -> Result<PromptSetVersion, StoreError>;

    /// The owner's sets, newest first (by `created_at`, then id).
    async fn list_prompt_sets(&self, owner: UserId) -> Result<Vec<PromptSet>, StoreError>;

    /// Deletes the set and every version of it. Experiments that ran it keep their own copy
    /// of the phrasings they were pinned to.
    async fn delete_prompt_set(&self, owner: UserId, id: PromptSetId) -> Result<(), StoreError>;
}

/// Checks `v` before any write: valid, and `version == expected` where given. Every store
/// calls it first, so an invalid version is refused the same way everywhere.
pub fn check_prompt_set_version(
    v: &PromptSetVersion,
    expected: Option<u32>,
) -> Result<(), StoreError> {
    v.validate()?;
    if let Some(expected) = expected
        && v.version != expected
    {
        return Err(StoreError::Invalid(ValidationError::new(
            "version",
            format!("must be {expected} (got {})", v.version),
        )));
    }
    Ok(())
}

/// The set after `next` was appended to `set`.
pub fn after_version(set: &PromptSet, next: &PromptSetVersion) -> PromptSet {
    PromptSet {
        name: next.name.clone(),
        latest_version: next.version,
        updated_at: next.created_at,
        ..set.clone()
    }
}
