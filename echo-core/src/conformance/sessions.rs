//! [`SessionStore`](crate::store::SessionStore): login sessions, the authentication lookup,
//! revocation, pruning, and deletion with their owner.

use std::collections::BTreeSet;

use super::fixtures::{
    assert_conflict, assert_not_found, at, at_micros, new_user, new_user_with, session,
};
use crate::model::{PricingTier, SessionId, SessionRecord, UserId};
use crate::store::{DynStore, SessionAuth};

/// The session with `id` as the authentication lookup returns it, without the owner's flags.
async fn find(store: &DynStore, id: SessionId) -> Option<SessionRecord> {
    store
        .find_session_for_auth(id)
        .await
        .expect("find_session_for_auth")
        .map(|auth| auth.session)
}

/// Stores a new [`session`] of `owner` after `edit` has changed it, and returns it.
async fn new_session(
    store: &DynStore,
    owner: UserId,
    edit: impl FnOnce(&mut SessionRecord),
) -> SessionRecord {
    let mut s = session(owner, at(0));
    edit(&mut s);
    store.create_session(&s).await.expect("create_session");
    s
}

/// A session reads back exactly through `find_session_for_auth` (microsecond timestamps, a
/// revocation time included), joined with its own owner's flags.
pub async fn session_round_trip_through_find_for_auth(store: &DynStore) {
    let u = new_user_with(store, |u| u.tier = PricingTier::Pro).await;
    let other = new_user_with(store, |u| {
        u.tier = PricingTier::Enterprise;
        u.is_admin = true;
    })
    .await;
    let mut s = session(u.id, at_micros(1_500_001));
    s.expires_at = at_micros(43_200_000_003);
    store.create_session(&s).await.expect("create_session");
    let revoked = new_session(store, u.id, |s| s.revoked_at = Some(at_micros(7_000_009))).await;
    let theirs = new_session(store, other.id, |_| {}).await;

    assert_eq!(
        store
            .find_session_for_auth(s.id)
            .await
            .expect("find_session_for_auth"),
        Some(SessionAuth {
            session: s.clone(),
            owner_active: true,
            owner_is_admin: false,
            owner_tier: PricingTier::Pro,
        })
    );
    assert_eq!(
        find(store, revoked.id).await,
        Some(revoked),
        "a revoked session is still found, exactly as written"
    );
    assert_eq!(
        store
            .find_session_for_auth(theirs.id)
            .await
            .expect("find theirs"),
        Some(SessionAuth {
            session: theirs,
            owner_active: true,
            owner_is_admin: true,
            owner_tier: PricingTier::Enterprise,
        }),
        "each session joins its own owner"
    );
}

/// An id no session has is `None`, even when other sessions exist.
pub async fn find_unknown_session_is_none(store: &DynStore) {
    assert_eq!(find(store, SessionId::new()).await, None, "empty store");
    let u = new_user(store).await;
    new_session(store, u.id, |_| {}).await;
    assert_eq!(find(store, SessionId::new()).await, None, "unknown id");
}

/// The owner's `is_active`, `is_admin` and tier are read at lookup time: changing them changes
/// them for every session of the user, and the session itself is untouched.
pub async fn find_session_for_auth_reflects_owner_changes(store: &DynStore) {
    let u = new_user(store).await;
    let s = new_session(store, u.id, |_| {}).await;

    store
        .request_deletion(u.id, at(1), at(100))
        .await
        .expect("request_deletion");
    store.set_admin(u.id, true, at(1)).await.expect("set_admin");
    store
        .set_tier(u.id, PricingTier::Enterprise, at(1))
        .await
        .expect("set_tier");
    assert_eq!(
        store.find_session_for_auth(s.id).await.expect("find"),
        Some(SessionAuth {
            session: s.clone(),
            owner_active: false,
            owner_is_admin: true,
            owner_tier: PricingTier::Enterprise,
        }),
        "deactivated, promoted, upgraded"
    );

    assert!(store.cancel_deletion(u.id, at(2)).await.expect("cancel"));
    store
        .set_admin(u.id, false, at(2))
        .await
        .expect("set_admin");
    store
        .set_tier(u.id, PricingTier::Free, at(2))
        .await
        .expect("set_tier");
    assert_eq!(
        store.find_session_for_auth(s.id).await.expect("find"),
        Some(SessionAuth {
            session: s,
            owner_active: true,
            owner_is_admin: false,
            owner_tier: PricingTier::Free,
        }),
        "reactivated, demoted, downgraded"
    );
}

/// A second session with a taken id (even for another user) is a Conflict; the first stays.
pub async fn create_session_duplicate_id_is_conflict(store: &DynStore) {
    let u = new_user(store).await;
    let other = new_user(store).await;
    let s = new_session(store, u.id, |_| {}).await;

    let mut clash = session(other.id, at(5));
    clash.id = s.id;
    assert_conflict(store.create_session(&clash).await, "taken session id");
    assert_eq!(
        find(store, s.id).await,
        Some(s.clone()),
        "the first is kept"
    );
    assert_conflict(store.create_session(&s).await, "the same record twice");
    assert_eq!(
        store
            .revoke_user_sessions(other.id, at(6))
            .await
            .expect("revoke_user_sessions"),
        0,
        "nothing was stored for the other user"
    );
}

/// A session of an unknown user is NotFound and nothing is stored.
pub async fn create_session_for_unknown_user_is_not_found(store: &DynStore) {
    let orphan = session(UserId::new(), at(1));
    assert_not_found(
        store.create_session(&orphan).await,
        "session of an unknown user",
    );
    assert_eq!(find(store, orphan.id).await, None);
}

/// Revocation: another user's or an unknown session is NotFound and untouched; revoking twice
/// keeps the first `revoked_at`; other sessions are untouched.
pub async fn revoke_session_is_scoped_and_idempotent(store: &DynStore) {
    let u = new_user(store).await;
    let other = new_user(store).await;
    let s = new_session(store, u.id, |_| {}).await;
    let sibling = new_session(store, u.id, |_| {}).await;

    assert_not_found(
        store.revoke_session(other.id, s.id, at(2)).await,
        "another user's session",
    );
    assert_eq!(find(store, s.id).await, Some(s.clone()), "nothing written");
    assert_not_found(
        store.revoke_session(u.id, SessionId::new(), at(2)).await,
        "unknown session",
    );

    store
        .revoke_session(u.id, s.id, at_micros(3_000_001))
        .await
        .expect("revoke_session");
    let mut revoked = s.clone();
    revoked.revoked_at = Some(at_micros(3_000_001));
    assert_eq!(find(store, s.id).await, Some(revoked.clone()));

    store
        .revoke_session(u.id, s.id, at(9))
        .await
        .expect("revoking again is a no-op");
    assert_eq!(
        find(store, s.id).await,
        Some(revoked),
        "first revoked_at kept"
    );
    assert_eq!(
        find(store, sibling.id).await,
        Some(sibling),
        "sibling untouched"
    );
}

/// `revoke_user_sessions` revokes exactly the owner's unrevoked sessions (expired ones
/// included), counts them, keeps earlier revocation times, and leaves other users alone.
pub async fn revoke_user_sessions_counts_and_is_scoped(store: &DynStore) {
    let u = new_user(store).await;
    let other = new_user(store).await;
    let live = new_session(store, u.id, |_| {}).await;
    let expired = new_session(store, u.id, |s| s.expires_at = at(1)).await;
    let already = new_session(store, u.id, |s| s.revoked_at = Some(at(5))).await;
    let theirs = new_session(store, other.id, |_| {}).await;

    assert_eq!(
        store
            .revoke_user_sessions(u.id, at(10))
            .await
            .expect("revoke_user_sessions"),
        2
    );
    for s in [&live, &expired] {
        let mut revoked = s.clone();
        revoked.revoked_at = Some(at(10));
        assert_eq!(find(store, s.id).await, Some(revoked));
    }
    assert_eq!(
        find(store, already.id).await,
        Some(already),
        "an earlier revocation is kept"
    );
    assert_eq!(
        find(store, theirs.id).await,
        Some(theirs),
        "other users untouched"
    );

    assert_eq!(
        store
            .revoke_user_sessions(u.id, at(20))
            .await
            .expect("again"),
        0,
        "nothing left to revoke"
    );
    assert_eq!(
        store
            .revoke_user_sessions(UserId::new(), at(20))
            .await
            .expect("unknown user"),
        0
    );
}

/// `prune_sessions` deletes, across users, exactly the sessions with `expires_at < before` or
/// `revoked_at < before` (both strict), and returns how many.
pub async fn prune_sessions_deletes_only_what_qualifies(store: &DynStore) {
    let u = new_user(store).await;
    let other = new_user(store).await;
    let before = at(200);
    let expired = new_session(store, u.id, |s| s.expires_at = at(100)).await;
    let revoked = new_session(store, u.id, |s| {
        s.expires_at = at(1_000);
        s.revoked_at = Some(at(150));
    })
    .await;
    let both = new_session(store, u.id, |s| {
        s.expires_at = at(50);
        s.revoked_at = Some(at(10));
    })
    .await;
    let theirs_expired = new_session(store, other.id, |s| s.expires_at = at(199)).await;
    let expires_at_before = new_session(store, u.id, |s| s.expires_at = before).await;
    let revoked_at_before = new_session(store, u.id, |s| {
        s.expires_at = at(1_000);
        s.revoked_at = Some(before);
    })
    .await;
    let revoked_later = new_session(store, u.id, |s| {
        s.expires_at = at(1_000);
        s.revoked_at = Some(at(300));
    })
    .await;
    let live = new_session(store, other.id, |s| s.expires_at = at(1_000)).await;

    assert_eq!(
        store
            .prune_sessions(before, 100)
            .await
            .expect("prune_sessions"),
        4
    );
    for gone in [&expired, &revoked, &both, &theirs_expired] {
        assert_eq!(find(store, gone.id).await, None, "{gone:?} pruned");
    }
    for kept in [expires_at_before, revoked_at_before, revoked_later, live] {
        assert_eq!(find(store, kept.id).await, Some(kept.clone()), "kept");
    }
    assert_eq!(
        store.prune_sessions(before, 100).await.expect("again"),
        0,
        "nothing left to prune"
    );
}

/// `prune_sessions` deletes at most `limit` sessions per call (none for 0), only qualifying
/// ones, until none are left.
pub async fn prune_sessions_honours_limit(store: &DynStore) {
    let u = new_user(store).await;
    let mut prunable = BTreeSet::new();
    for i in 0..5 {
        let s = new_session(store, u.id, |s| s.expires_at = at(i)).await;
        prunable.insert(s.id);
    }
    let live = new_session(store, u.id, |s| s.expires_at = at(1_000)).await;

    assert_eq!(store.prune_sessions(at(100), 0).await.expect("limit 0"), 0);
    for id in &prunable {
        assert!(find(store, *id).await.is_some(), "limit 0 deletes nothing");
    }
    let mut deleted = 0;
    for expected in [2, 2, 1, 0] {
        let n = store
            .prune_sessions(at(100), 2)
            .await
            .expect("prune_sessions");
        assert_eq!(n, expected, "a page of at most 2");
        deleted += n;
        let mut left = 0;
        for id in &prunable {
            left += u64::from(find(store, *id).await.is_some());
        }
        assert_eq!(left, 5 - deleted, "exactly the reported number deleted");
    }
    assert_eq!(
        find(store, live.id).await,
        Some(live),
        "never a live session"
    );
}

/// `delete_user` deletes the user's sessions and only theirs.
pub async fn delete_user_removes_sessions(store: &DynStore) {
    let u = new_user(store).await;
    let other = new_user(store).await;
    let a = new_session(store, u.id, |_| {}).await;
    let b = new_session(store, u.id, |s| s.revoked_at = Some(at(3))).await;
    let theirs = new_session(store, other.id, |_| {}).await;

    store.delete_user(u.id).await.expect("delete_user");
    assert_eq!(find(store, a.id).await, None);
    assert_eq!(find(store, b.id).await, None);
    assert_eq!(
        store
            .revoke_user_sessions(u.id, at(4))
            .await
            .expect("revoke_user_sessions of a deleted user"),
        0
    );
    assert_eq!(
        find(store, theirs.id).await,
        Some(theirs),
        "other users untouched"
    );
    assert_not_found(
        store.create_session(&session(u.id, at(5))).await,
        "a session for the deleted user",
    );
}
