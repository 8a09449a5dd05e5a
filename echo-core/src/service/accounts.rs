//! The account an embedded program or a command-line run works under.

use std::sync::Arc;

use super::ServiceError;
use crate::model::{Email, PasswordHash, PricingTier, Timestamp, User};
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
    pub async fn local_user(&self, email: &Email) -> Result<User, ServiceError> {
        let now = Timestamp::now();
        self.users.reset_due_quotas(now).await?;
        if let Some(user) = self.users.find_user_by_email(email).await? {
            return Ok(user);
        }
        let user = User::new(
            email.clone(),
            PasswordHash::unusable(),
            PricingTier::Enterprise,
            now,
        );
        match self.users.create_user(&user).await {
            Ok(()) => Ok(user),
            Err(StoreError::Conflict { .. }) => self
                .users
                .find_user_by_email(email)
                .await?
                .ok_or(ServiceError::Store(StoreError::not_found("user"))),
            Err(e) => Err(e.into()),
        }
    }
}
