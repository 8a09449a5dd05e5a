//! Helpers shared by the services' unit tests.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use crate::model::{Email, PasswordHash, PricingTier, Timestamp, User, UserId};
use crate::store::DynStore;

/// Stores a new pro-tier user, with data-processing consent when `consent`.
pub(crate) async fn user(store: &Arc<DynStore>, consent: bool) -> User {
    let now = Timestamp::now();
    let mut user = User::new(
        Email::parse(format!("{}@example.com", UserId::new())).unwrap(),
        PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA").unwrap(),
        PricingTier::Pro,
        now,
    );
    if consent {
        user.consents.data_processing_consent_at = Some(now);
    }
    store.create_user(&user).await.unwrap();
    user
}
