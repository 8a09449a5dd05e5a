//! Email verification in the [`UserStore`](crate::store::UserStore): the account's
//! verification fields, and one-time, expiring tokens stored as digests.

use super::fixtures::{
    assert_conflict, assert_not_found, at, at_micros, new_user, new_user_with, unique,
};
use crate::model::{EmailVerificationRedemption, EmailVerificationToken, SecretDigest, UserId};
use crate::store::DynStore;

/// A digest no other call returns (tokens are looked up by digest, so each needs its own).
fn digest() -> SecretDigest {
    use sha2::Digest as _;
    SecretDigest(sha2::Sha256::digest(unique().as_bytes()).into())
}

/// A new token of `user`, issued at `at(0)` and valid for an hour (not stored).
fn unstored_token(user: UserId) -> EmailVerificationToken {
    EmailVerificationToken {
        user_id: user,
        token_hash: digest(),
        created_at: at(0),
        expires_at: at(3_600),
    }
}

/// Stores a new token of `user` ([`unstored_token`]) and returns it.
async fn put_token(store: &DynStore, user: UserId) -> EmailVerificationToken {
    let token = unstored_token(user);
    store
        .put_email_verification_token(&token)
        .await
        .expect("put_email_verification_token");
    token
}

/// Both verification fields round-trip through `create_user`, exactly (microseconds kept).
pub async fn verification_fields_round_trip(store: &DynStore) {
    let pending = new_user_with(store, |u| u.email_verification_required = true).await;
    let verified = new_user_with(store, |u| {
        u.email_verification_required = true;
        u.email_verified_at = Some(at_micros(1_234_567));
    })
    .await;
    let plain = new_user(store).await;
    for u in [&pending, &verified, &plain] {
        assert_eq!(&store.get_user(u.id).await.expect("get_user"), u);
    }
    assert!(pending.email_verification_pending());
    assert!(!verified.email_verification_pending());
    assert!(!plain.email_verification_pending());
}

/// A valid token verifies its owner once: it sets `email_verified_at` and `updated_at` to the
/// redemption time, and the same digest is unknown afterwards.
pub async fn verification_token_redeems_once_and_marks_user(store: &DynStore) {
    let u = new_user_with(store, |u| u.email_verification_required = true).await;
    let token = put_token(store, u.id).await;
    assert_eq!(
        store
            .redeem_email_verification_token(&token.token_hash, at(60))
            .await
            .expect("redeem"),
        EmailVerificationRedemption::Verified(u.id)
    );
    let got = store.get_user(u.id).await.expect("get_user");
    assert_eq!(got.email_verified_at, Some(at(60)));
    assert_eq!(got.updated_at, at(60));
    assert!(!got.email_verification_pending());
    assert_not_found(
        store
            .redeem_email_verification_token(&token.token_hash, at(61))
            .await,
        "a redeemed token",
    );
    assert_not_found(
        store
            .redeem_email_verification_token(&digest(), at(61))
            .await,
        "a digest never issued",
    );
    // A second token verifies again without moving the first verification time.
    let again = put_token(store, u.id).await;
    store
        .redeem_email_verification_token(&again.token_hash, at(120))
        .await
        .expect("redeem");
    let got = store.get_user(u.id).await.expect("get_user");
    assert_eq!(got.email_verified_at, Some(at(60)));
}

/// A token is refused from its `expires_at` on, and the refusal writes nothing: the user stays
/// unverified and the token stays (still expired) until it is replaced.
pub async fn verification_token_expiry_writes_nothing(store: &DynStore) {
    let u = new_user_with(store, |u| u.email_verification_required = true).await;
    let token = put_token(store, u.id).await;
    for now in [at(3_600), at(7_200)] {
        assert_eq!(
            store
                .redeem_email_verification_token(&token.token_hash, now)
                .await
                .expect("redeem"),
            EmailVerificationRedemption::Expired
        );
    }
    let got = store.get_user(u.id).await.expect("get_user");
    assert_eq!(got, u);
    // One microsecond before the expiry it still works.
    let fresh = put_token(store, u.id).await;
    assert_eq!(
        store
            .redeem_email_verification_token(&fresh.token_hash, at_micros(3_600_000_000 - 1))
            .await
            .expect("redeem"),
        EmailVerificationRedemption::Verified(u.id)
    );
}

/// A user has one pending token: a new one replaces the old, whose digest is then unknown.
pub async fn verification_token_replaced_by_newer(store: &DynStore) {
    let u = new_user_with(store, |u| u.email_verification_required = true).await;
    let old = put_token(store, u.id).await;
    let new = put_token(store, u.id).await;
    assert_not_found(
        store
            .redeem_email_verification_token(&old.token_hash, at(1))
            .await,
        "a replaced token",
    );
    assert_eq!(
        store
            .get_user(u.id)
            .await
            .expect("get_user")
            .email_verified_at,
        None
    );
    store
        .redeem_email_verification_token(&new.token_hash, at(1))
        .await
        .expect("redeem the newer token");
}

/// Tokens are per user: issuing one for a user leaves other users' tokens working, redeeming
/// one verifies only its owner, a digest already held by another user is a conflict, and a
/// token for an unknown user is not found. Nothing is written on either error.
pub async fn verification_tokens_are_tenant_isolated(store: &DynStore) {
    let a = new_user_with(store, |u| u.email_verification_required = true).await;
    let b = new_user_with(store, |u| u.email_verification_required = true).await;
    let ta = put_token(store, a.id).await;
    let tb = put_token(store, b.id).await;
    assert_conflict(
        store
            .put_email_verification_token(&EmailVerificationToken {
                user_id: b.id,
                ..ta.clone()
            })
            .await,
        "another user's digest",
    );
    assert_not_found(
        store
            .put_email_verification_token(&unstored_token(UserId::new()))
            .await,
        "a token for an unknown user",
    );
    assert_eq!(
        store
            .redeem_email_verification_token(&ta.token_hash, at(10))
            .await
            .expect("redeem a"),
        EmailVerificationRedemption::Verified(a.id)
    );
    assert_eq!(
        store.get_user(b.id).await.expect("get b").email_verified_at,
        None,
        "redeeming a's token verified b"
    );
    assert_eq!(
        store
            .redeem_email_verification_token(&tb.token_hash, at(10))
            .await
            .expect("b's token survived the refused writes"),
        EmailVerificationRedemption::Verified(b.id)
    );
}

/// Deleting a user removes their pending token (account erasure leaves no token behind).
pub async fn delete_user_removes_verification_tokens(store: &DynStore) {
    let u = new_user_with(store, |u| u.email_verification_required = true).await;
    let token = put_token(store, u.id).await;
    store.delete_user(u.id).await.expect("delete_user");
    assert_not_found(
        store
            .redeem_email_verification_token(&token.token_hash, at(1))
            .await,
        "the token of a deleted user",
    );
}

/// Of concurrent redemptions of one token, exactly one verifies; the others find nothing.
pub async fn concurrent_redemptions_have_one_winner(store: &DynStore) {
    for round in 0..20 {
        let u = new_user_with(store, |u| u.email_verification_required = true).await;
        let token = put_token(store, u.id).await;
        let results = futures::future::join_all(
            (0..4).map(|_| store.redeem_email_verification_token(&token.token_hash, at(round))),
        )
        .await;
        let wins = results
            .iter()
            .filter(|r| matches!(r, Ok(EmailVerificationRedemption::Verified(_))))
            .count();
        assert_eq!(wins, 1, "round {round}: {results:?}");
        assert!(
            results
                .iter()
                .filter(|r| !matches!(r, Ok(EmailVerificationRedemption::Verified(_))))
                .all(|r| matches!(r, Err(crate::store::StoreError::NotFound { .. }))),
            "round {round}: {results:?}"
        );
    }
}
