//! The account an embedded program or a command-line run works under.

use std::sync::Arc;

use super::ServiceError;
use crate::model::{ConsentChange, Email, PasswordHash, PricingTier, Timestamp, User};
use crate::store::{DynStore, StoreError, UserStore};

/// Account operations that embedders need without an HTTP layer.
#[derive(Debug, Clone)]
pub struct Accounts {
    users: Arc<dyn UserStore>,
}

impl Accounts {
    /// Accounts over a user store.
    pub fn new(users: Arc<dyn UserStore>) -> Self {
        Self { users }
    }

    /// Accounts over a whole store.
    pub fn from_store(store: &Arc<DynStore>) -> Self {
        Self::new(store.clone())
    }

    /// The local account with this email, created on first use: enterprise tier (the
    /// operator's own machine, not a customer), with a password that never verifies, so it
    /// cannot log in to a server sharing the database. Monthly quotas that are due are reset
    /// first, so a long-lived local account keeps running. Safe to call from several processes
    /// at once: the one that loses the race to create it reads the winner's.
    ///
    /// The local account consents to data processing: the operator runs their own
    /// experiments on their own machine. A local account made before consent was enforced is
    /// given it here; an account that can log in (a registered user who happens to share the
    /// email) keeps its own choice.
    pub async fn local_user(&self, email: &Email) -> Result<User, ServiceError> {
        let now = Timestamp::now();
        self.users.reset_due_quotas(now).await?;
        let user = match self.users.find_user_by_email(email).await? {
            Some(user) => user,
            None => {
                let mut user = User::new(
                    email.clone(),
                    PasswordHash::unusable(),
                    PricingTier::Enterprise,
                    now,
                );
                user.consents.data_processing_consent_at = Some(now);
                match self.users.create_user(&user).await {
                    Ok(()) => return Ok(user),
                    Err(StoreError::Conflict { .. }) => self
                        .users
                        .find_user_by_email(email)
                        .await?
                        .ok_or(ServiceError::Store(StoreError::not_found("user")))?,
                    Err(e) => return Err(e.into()),
                }
            }
        };
        self.with_local_consent(user, now).await
    }

    /// Gives a local account that predates consent enforcement its data-processing consent.
    async fn with_local_consent(
        &self,
        mut user: User,
        now: Timestamp,
    ) -> Result<User, ServiceError> {
        if user.consents.allows_processing() || user.password_hash != PasswordHash::unusable() {
            return Ok(user);
        }
        let change = ConsentChange {
            data_processing: Some(true),
            ..ConsentChange::default()
        };
        user.consents = self.users.update_consents(user.id, &change, now).await?;
        Ok(user)
    }
}
