//! Issue an API key, verify it, revoke it, and watch verification fail.
//!
//! ```sh
//! cargo run -p echo-core --example verify_api_key
//! ```

use echo_core::auth::{ApiKeyVerifier, AuthError, KeyAuth, KeyEnvironment, Pepper};
use echo_core::model::{Email, Label, Timestamp};
use echo_core::prelude::*;
use echo_core::service::Accounts;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store: Arc<DynStore> = Arc::new(MemoryStore::new());
    let owner = Accounts::from_store(&store)
        .local_user(&Email::parse("ops@example.com")?)
        .await?;
    // In a real deployment the pepper is a secret from configuration (at least 32 bytes).
    let auth = KeyAuth::new(
        store,
        Pepper::new(b"an example pepper of 32+ bytes!!".to_vec())?,
    );

    let now = Timestamp::now();
    let created = auth
        .keys
        .create(
            owner.id,
            Label::parse("deploy bot")?,
            KeyEnvironment::Live,
            None,
            now,
        )
        .await?;
    // The full key exists only here: the store keeps its public id and an HMAC of the secret.
    println!("issued key {}…", created.summary.start);

    let verified = auth.verifier.verify(created.key.expose(), now).await?;
    assert_eq!(verified.user_id, owner.id);
    println!("verified: belongs to {}", verified.user_id);

    auth.keys.revoke(owner.id, created.summary.id, now).await?;
    match auth.verifier.verify(created.key.expose(), now).await {
        Err(e @ AuthError::InvalidKey) => println!("after revoking: refused ({e})"),
        other => return Err(format!("a revoked key must be refused, got {other:?}").into()),
    }
    Ok(())
}
