//! [`ApiKeyStore`](crate::store::ApiKeyStore): key records, lookup, listing, revocation, use.

use super::fixtures::{
    api_key, assert_conflict, assert_not_found, at, at_micros, new_user, new_user_with,
};
use crate::model::{ApiKeyId, PricingTier, UserId};
use crate::store::{ApiKeyAuth, DynStore};

/// A key record reads back equal through `find_api_key`; unknown public ids are `None`; an
/// unknown owner is NotFound.
pub async fn api_key_create_and_find(store: &DynStore) {
    let u = new_user(store).await;
    let mut key = api_key(u.id, at_micros(1_500_001));
    key.last_used_at = Some(at_micros(1_600_002));
    store.create_api_key(&key).await.expect("create_api_key");
    assert_eq!(
        store
            .find_api_key(&key.public_id)
            .await
            .expect("find_api_key"),
        Some(key.clone())
    );
    assert_eq!(
        store
            .find_api_key("ek_unknown")
            .await
            .expect("find unknown"),
        None
    );

    let orphan = api_key(UserId::new(), at(2));
    assert_not_found(
        store.create_api_key(&orphan).await,
        "key of an unknown owner",
    );
    assert_eq!(
        store
            .find_api_key(&orphan.public_id)
            .await
            .expect("find orphan"),
        None
    );
}

/// A second key with a taken public id (even for another user) is a Conflict; the first stays.
pub async fn api_key_duplicate_public_id_is_conflict(store: &DynStore) {
    let u = new_user(store).await;
    let other = new_user(store).await;
    let key = api_key(u.id, at(1));
    store.create_api_key(&key).await.expect("create_api_key");

    let mut clash = api_key(other.id, at(2));
    clash.public_id = key.public_id.clone();
    assert_conflict(store.create_api_key(&clash).await, "taken public id");
    assert_eq!(
        store.find_api_key(&key.public_id).await.expect("find"),
        Some(key)
    );
    assert!(
        store
            .list_api_keys(other.id)
            .await
            .expect("list other")
            .is_empty()
    );
}

/// `list_api_keys` returns only the owner's keys, newest first, revoked ones included.
pub async fn api_keys_listed_newest_first_and_scoped(store: &DynStore) {
    let u = new_user(store).await;
    let other = new_user(store).await;
    let k1 = api_key(u.id, at(10));
    let k2 = api_key(u.id, at(20));
    let k3 = api_key(u.id, at(30));
    let theirs = api_key(other.id, at(25));
    for k in [&k2, &k3, &theirs, &k1] {
        store.create_api_key(k).await.expect("create_api_key");
    }
    store
        .revoke_api_key(u.id, k2.id, at(40))
        .await
        .expect("revoke");
    let mut k2_revoked = k2.clone();
    k2_revoked.is_active = false;
    k2_revoked.revoked_at = Some(at(40));

    assert_eq!(
        store.list_api_keys(u.id).await.expect("list"),
        vec![k3, k2_revoked, k1]
    );
    assert_eq!(
        store.list_api_keys(other.id).await.expect("list other"),
        vec![theirs]
    );
    let nobody = new_user(store).await;
    assert!(
        store
            .list_api_keys(nobody.id)
            .await
            .expect("list empty")
            .is_empty()
    );
}

/// Revocation: another user's or an unknown key is NotFound and untouched; revoking twice keeps
/// the first `revoked_at`.
pub async fn revoke_api_key_is_scoped_and_idempotent(store: &DynStore) {
    let u = new_user(store).await;
    let other = new_user(store).await;
    let key = api_key(u.id, at(1));
    store.create_api_key(&key).await.expect("create_api_key");

    assert_not_found(
        store.revoke_api_key(other.id, key.id, at(2)).await,
        "another user's key",
    );
    assert_eq!(
        store.find_api_key(&key.public_id).await.expect("find"),
        Some(key.clone())
    );
    assert_not_found(
        store.revoke_api_key(u.id, ApiKeyId::new(), at(2)).await,
        "unknown key",
    );

    store
        .revoke_api_key(u.id, key.id, at(3))
        .await
        .expect("revoke");
    let mut revoked = key.clone();
    revoked.is_active = false;
    revoked.revoked_at = Some(at(3));
    assert_eq!(
        store.find_api_key(&key.public_id).await.expect("find"),
        Some(revoked.clone())
    );

    store
        .revoke_api_key(u.id, key.id, at(9))
        .await
        .expect("revoke again is a no-op");
    assert_eq!(
        store.find_api_key(&key.public_id).await.expect("find"),
        Some(revoked),
        "first revoked_at kept"
    );
}

/// `touch_api_keys` records the latest use, never moves `last_used_at` backwards, and ignores
/// unknown ids.
pub async fn touch_api_keys_never_moves_backwards(store: &DynStore) {
    let u = new_user(store).await;
    let k1 = api_key(u.id, at(0));
    let k2 = api_key(u.id, at(0));
    let untouched = api_key(u.id, at(0));
    for k in [&k1, &k2, &untouched] {
        store.create_api_key(k).await.expect("create_api_key");
    }
    let last_used = |public_id: String| async move {
        store
            .find_api_key(&public_id)
            .await
            .expect("find_api_key")
            .expect("key exists")
            .last_used_at
    };

    store
        .touch_api_keys(&[(k1.id, at(50)), (k2.id, at(30)), (ApiKeyId::new(), at(90))])
        .await
        .expect("touch");
    assert_eq!(last_used(k1.public_id.clone()).await, Some(at(50)));
    assert_eq!(last_used(k2.public_id.clone()).await, Some(at(30)));
    assert_eq!(last_used(untouched.public_id.clone()).await, None);

    store
        .touch_api_keys(&[(k1.id, at(20))])
        .await
        .expect("touch older");
    assert_eq!(
        last_used(k1.public_id.clone()).await,
        Some(at(50)),
        "not moved backwards"
    );

    store
        .touch_api_keys(&[(k1.id, at_micros(70_000_001)), (k1.id, at(60))])
        .await
        .expect("touch twice in one batch");
    assert_eq!(
        last_used(k1.public_id.clone()).await,
        Some(at_micros(70_000_001))
    );

    store.touch_api_keys(&[]).await.expect("empty touch");
    assert_eq!(last_used(k2.public_id.clone()).await, Some(at(30)));

    let mut k1_now = k1.clone();
    k1_now.last_used_at = Some(at_micros(70_000_001));
    assert_eq!(
        store.find_api_key(&k1.public_id).await.expect("find"),
        Some(k1_now),
        "touch changes only last_used_at"
    );
}

/// `find_api_key_for_auth` returns the key exactly as `find_api_key` does, with its owner's
/// `is_active` and tier, whatever the key's state; an unknown public id is `None`.
pub async fn find_api_key_for_auth_joins_owner(store: &DynStore) {
    let u = new_user_with(store, |u| u.tier = PricingTier::Pro).await;
    let other = new_user_with(store, |u| u.tier = PricingTier::Enterprise).await;
    let mut key = api_key(u.id, at_micros(1_500_001));
    key.last_used_at = Some(at_micros(1_600_002));
    let theirs = api_key(other.id, at(2));
    for k in [&key, &theirs] {
        store.create_api_key(k).await.expect("create_api_key");
    }

    let found = store
        .find_api_key_for_auth(&key.public_id)
        .await
        .expect("find_api_key_for_auth");
    assert_eq!(
        found,
        Some(ApiKeyAuth {
            key: key.clone(),
            owner_active: true,
            owner_tier: PricingTier::Pro,
        })
    );
    assert_eq!(
        found.map(|a| a.key),
        store
            .find_api_key(&key.public_id)
            .await
            .expect("find_api_key"),
        "same record as find_api_key"
    );
    assert_eq!(
        store
            .find_api_key_for_auth(&theirs.public_id)
            .await
            .expect("find theirs")
            .map(|a| (a.key, a.owner_tier)),
        Some((theirs, PricingTier::Enterprise)),
        "each key joins its own owner"
    );

    store
        .revoke_api_key(u.id, key.id, at(3))
        .await
        .expect("revoke");
    let revoked = store
        .find_api_key_for_auth(&key.public_id)
        .await
        .expect("find revoked")
        .expect("a revoked key is still found");
    assert!(!revoked.key.is_active);
    assert_eq!(revoked.key.revoked_at, Some(at(3)));
    assert!(revoked.owner_active, "the owner is untouched");

    assert_eq!(
        store
            .find_api_key_for_auth("ek_unknown")
            .await
            .expect("find unknown"),
        None
    );
}

/// `find_api_key_for_auth` reflects the owner's current `is_active` and tier; a deleted owner's
/// keys are gone.
pub async fn find_api_key_for_auth_reflects_owner_changes(store: &DynStore) {
    let u = new_user(store).await;
    let key = api_key(u.id, at(1));
    store.create_api_key(&key).await.expect("create_api_key");

    store
        .request_deletion(u.id, at(2), at(100))
        .await
        .expect("request_deletion");
    store
        .set_tier(u.id, PricingTier::Enterprise, at(2))
        .await
        .expect("set_tier");
    assert_eq!(
        store
            .find_api_key_for_auth(&key.public_id)
            .await
            .expect("find"),
        Some(ApiKeyAuth {
            key: key.clone(),
            owner_active: false,
            owner_tier: PricingTier::Enterprise,
        }),
        "inactive owner reflected"
    );

    store.delete_user(u.id).await.expect("delete_user");
    assert_eq!(
        store
            .find_api_key_for_auth(&key.public_id)
            .await
            .expect("find after delete"),
        None
    );
}

/// `set_api_key_expiry` sets (and clears) only `expires_at` of the owner's key, whatever its
/// state; another user's or an unknown key is NotFound and untouched.
pub async fn set_api_key_expiry_is_scoped(store: &DynStore) {
    let u = new_user(store).await;
    let other = new_user(store).await;
    let key = api_key(u.id, at(1));
    let sibling = api_key(u.id, at(2));
    for k in [&key, &sibling] {
        store.create_api_key(k).await.expect("create_api_key");
    }
    let find = |public_id: String| async move {
        store
            .find_api_key(&public_id)
            .await
            .expect("find_api_key")
            .expect("key exists")
    };

    store
        .set_api_key_expiry(u.id, key.id, Some(at_micros(5_000_001)))
        .await
        .expect("set expiry");
    let mut expected = key.clone();
    expected.expires_at = Some(at_micros(5_000_001));
    assert_eq!(find(key.public_id.clone()).await, expected);
    assert_eq!(
        find(sibling.public_id.clone()).await,
        sibling,
        "other keys untouched"
    );

    assert_not_found(
        store
            .set_api_key_expiry(other.id, key.id, Some(at(9)))
            .await,
        "another user's key",
    );
    assert_not_found(
        store
            .set_api_key_expiry(u.id, ApiKeyId::new(), Some(at(9)))
            .await,
        "unknown key",
    );
    assert_eq!(
        find(key.public_id.clone()).await,
        expected,
        "refused calls write nothing"
    );

    store
        .set_api_key_expiry(u.id, key.id, None)
        .await
        .expect("clear expiry");
    expected.expires_at = None;
    assert_eq!(find(key.public_id.clone()).await, expected);

    store
        .revoke_api_key(u.id, key.id, at(3))
        .await
        .expect("revoke");
    store
        .set_api_key_expiry(u.id, key.id, Some(at(4)))
        .await
        .expect("set expiry of a revoked key");
    expected.is_active = false;
    expected.revoked_at = Some(at(3));
    expected.expires_at = Some(at(4));
    assert_eq!(
        store
            .find_api_key_for_auth(&key.public_id)
            .await
            .expect("find_api_key_for_auth")
            .map(|a| a.key),
        Some(expected),
        "revocation kept"
    );
}
