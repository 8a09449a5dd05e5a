//! [`UserStore`](crate::store::UserStore): accounts, quota counters and brand profiles.

use time::macros::datetime;

use super::fixtures::{
    api_key, assert_conflict, assert_not_found, at, at_micros, audit_event, base_time, brand,
    email, experiment, failed_iteration, iteration, name, new_batch_run, new_experiment, new_user,
    new_user_with, store_experiment, unique, user,
};
use crate::model::{
    Brand, BrandProfile, ConsentChange, Consents, Email, MatchMode, PasswordHash, PricingTier,
    QuotaUsage, Timestamp, UserId,
};
use crate::store::{DynStore, StoreError};

/// A user with every field set reads back equal, by id and by email.
pub async fn create_get_round_trip(store: &DynStore) {
    let mut u = user();
    u.tier = PricingTier::Pro;
    u.is_admin = true;
    u.quota = QuotaUsage {
        prompts_used: 7,
        resets_at: at_micros(20 * 86_400_000_000 + 123_457),
    };
    u.consents = Consents {
        privacy_policy_version: Some("2026-01".into()),
        privacy_policy_accepted_at: Some(at_micros(-100_000_001)),
        data_processing_consent_at: Some(at_micros(-99_999_999)),
        marketing_consent_at: None,
    };
    u.scheduled_deletion_at = Some(at(3_600));
    u.created_at = at_micros(-1);
    u.updated_at = at_micros(999_999);
    store.create_user(&u).await.expect("create_user");
    assert_eq!(store.get_user(u.id).await.expect("get_user"), u);
    assert_eq!(
        store
            .find_user_by_email(&u.email)
            .await
            .expect("find_user_by_email"),
        Some(u)
    );
}

/// `get_user` of an unknown id is NotFound.
pub async fn get_missing_user_is_not_found(store: &DynStore) {
    new_user(store).await;
    assert_not_found(
        store.get_user(UserId::new()).await,
        "get_user of an unknown id",
    );
}

/// `find_user_by_email` matches whatever the case of the address; unknown addresses are `None`.
pub async fn find_user_by_email_ignores_case(store: &DynStore) {
    let local = format!("Mixed.Case-{}", unique());
    let u = new_user_with(store, |u| {
        u.email = Email::parse(format!("{local}@Example.COM")).expect("valid email");
    })
    .await;
    let shouted =
        Email::parse(format!("{}@EXAMPLE.com", local.to_uppercase())).expect("valid email");
    assert_eq!(
        store
            .find_user_by_email(&shouted)
            .await
            .expect("find_user_by_email"),
        Some(u),
        "lookup with another case finds the user"
    );
    assert_eq!(
        store
            .find_user_by_email(&email())
            .await
            .expect("find_user_by_email of unknown"),
        None
    );
}

/// A second user with the same email in another case, or with the same id, is a Conflict and is
/// not stored.
pub async fn duplicate_email_or_id_is_conflict(store: &DynStore) {
    let first = new_user(store).await;

    let mut same_email = user();
    same_email.email = Email::parse(first.email.as_str().to_uppercase()).expect("valid email");
    assert_conflict(
        store.create_user(&same_email).await,
        "create_user with a taken email",
    );
    assert_not_found(store.get_user(same_email.id).await, "the refused user");

    let mut same_id = user();
    same_id.id = first.id;
    assert_conflict(
        store.create_user(&same_id).await,
        "create_user with a taken id",
    );
    assert_eq!(
        store
            .find_user_by_email(&same_id.email)
            .await
            .expect("find"),
        None
    );

    assert_eq!(
        store.get_user(first.id).await.expect("get_user"),
        first,
        "first user unchanged"
    );
}

/// The stored user with the fields a targeted update may write (`updated_at` and `$fields`)
/// copied from `got`: what the user must equal when nothing else was written.
macro_rules! only_changed {
    ($before:expr, $got:expr, $($field:ident),*) => {{
        let mut expected = $before.clone();
        expected.updated_at = $got.updated_at;
        $(expected.$field = $got.$field.clone();)*
        expected
    }};
}

/// `request_deletion` deactivates and schedules the purge, writing nothing else; repeating it
/// moves the date; an unknown user is NotFound.
pub async fn request_deletion_deactivates_and_schedules(store: &DynStore) {
    let u = new_user_with(store, |u| u.consents.marketing_consent_at = Some(at(-5))).await;
    store
        .request_deletion(u.id, at(10), at(30 * 86_400))
        .await
        .expect("request_deletion");
    let got = store.get_user(u.id).await.expect("get_user");
    assert!(!got.is_active, "deactivated");
    assert_eq!(got.scheduled_deletion_at, Some(at(30 * 86_400)));
    assert_eq!(got.updated_at, at(10));
    assert_eq!(
        got,
        only_changed!(u, got, is_active, scheduled_deletion_at),
        "no other field written"
    );
    store
        .request_deletion(u.id, at(11), at(40 * 86_400))
        .await
        .expect("request_deletion again");
    let again = store.get_user(u.id).await.expect("get_user");
    assert_eq!(again.scheduled_deletion_at, Some(at(40 * 86_400)));
    assert_not_found(
        store.request_deletion(user().id, at(1), at(2)).await,
        "request_deletion of an unknown user",
    );
}

/// `cancel_deletion` restores only an inactive account whose purge is scheduled after `at`;
/// active accounts, accounts deactivated without a deletion and accounts whose purge is due
/// stay as they are.
pub async fn cancel_deletion_restores_only_pending(store: &DynStore) {
    let pending = new_user(store).await;
    store
        .request_deletion(pending.id, at(1), at(100))
        .await
        .expect("request_deletion");
    assert!(
        store
            .cancel_deletion(pending.id, at(99))
            .await
            .expect("cancel")
    );
    let got = store.get_user(pending.id).await.expect("get_user");
    assert!(got.is_active && got.scheduled_deletion_at.is_none());
    assert_eq!(got.updated_at, at(99));
    assert_eq!(
        got,
        only_changed!(pending, got, is_active),
        "no other field"
    );
    assert!(
        !store
            .cancel_deletion(pending.id, at(99))
            .await
            .expect("cancel again"),
        "nothing left to cancel"
    );

    let due = new_user(store).await;
    store
        .request_deletion(due.id, at(1), at(100))
        .await
        .expect("request_deletion");
    let before = store.get_user(due.id).await.expect("get_user");
    assert!(
        !store
            .cancel_deletion(due.id, at(100))
            .await
            .expect("cancel"),
        "a purge that is due is not cancelled"
    );
    assert_eq!(store.get_user(due.id).await.expect("get_user"), before);

    let deactivated = new_user_with(store, |u| u.is_active = false).await;
    assert!(
        !store
            .cancel_deletion(deactivated.id, at(1))
            .await
            .expect("cancel")
    );
    assert_eq!(
        store.get_user(deactivated.id).await.expect("get_user"),
        deactivated,
        "deactivated without a deletion: stays inactive"
    );
    assert_not_found(
        store.cancel_deletion(user().id, at(1)).await,
        "cancel_deletion of an unknown user",
    );
}

/// `update_consents` applies the change to the consents stored at that moment: giving again
/// keeps the first time, withdrawing clears, absent fields stay; no other field is written.
pub async fn update_consents_applies_to_stored_consents(store: &DynStore) {
    let u = new_user(store).await;
    let give = ConsentChange {
        privacy_policy_version: Some("2026-02".into()),
        data_processing: Some(true),
        marketing: Some(true),
    };
    let first = store
        .update_consents(u.id, &give, at(10))
        .await
        .expect("give");
    assert_eq!(
        first,
        Consents {
            privacy_policy_version: Some("2026-02".into()),
            privacy_policy_accepted_at: Some(at(10)),
            data_processing_consent_at: Some(at(10)),
            marketing_consent_at: Some(at(10)),
        }
    );
    let withdraw_marketing = ConsentChange {
        marketing: Some(false),
        data_processing: Some(true),
        ..ConsentChange::default()
    };
    let second = store
        .update_consents(u.id, &withdraw_marketing, at(20))
        .await
        .expect("withdraw");
    assert_eq!(
        second,
        Consents {
            marketing_consent_at: None,
            ..first.clone()
        },
        "data processing keeps its first time, marketing is cleared, the policy stays"
    );
    let got = store.get_user(u.id).await.expect("get_user");
    assert_eq!(
        got.consents, second,
        "returned consents are the stored ones"
    );
    assert_eq!(got.updated_at, at(20));
    assert_eq!(got, only_changed!(u, got, consents), "no other field");

    // A change made by a caller holding an old copy still lands on the stored consents, and a
    // pending deletion is left alone.
    store
        .request_deletion(u.id, at(30), at(1000))
        .await
        .expect("request_deletion");
    store
        .update_consents(
            u.id,
            &ConsentChange {
                data_processing: Some(false),
                ..ConsentChange::default()
            },
            at(31),
        )
        .await
        .expect("withdraw processing");
    let got = store.get_user(u.id).await.expect("get_user");
    assert!(!got.is_active, "still deactivated");
    assert_eq!(got.scheduled_deletion_at, Some(at(1000)), "purge still due");
    assert_eq!(got.consents.data_processing_consent_at, None);
    assert_eq!(
        got.consents.privacy_policy_version.as_deref(),
        Some("2026-02")
    );
    assert_not_found(
        store.update_consents(user().id, &give, at(1)).await,
        "update_consents of an unknown user",
    );
}

/// `set_password_hash` replaces the hash only while the stored one is `expected`.
pub async fn set_password_hash_compares_and_sets(store: &DynStore) {
    let u = new_user(store).await;
    let rehashed =
        PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$b3RoZXJzYWx0$bmV3aGFzaA").expect("phc");
    let changed_meanwhile =
        PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$Y2hhbmdlZA").expect("phc");
    assert!(
        store
            .set_password_hash(u.id, &u.password_hash, &changed_meanwhile, at(5))
            .await
            .expect("set")
    );
    let got = store.get_user(u.id).await.expect("get_user");
    assert_eq!(got.password_hash, changed_meanwhile);
    assert_eq!(got, only_changed!(u, got, password_hash), "no other field");
    assert!(
        !store
            .set_password_hash(u.id, &u.password_hash, &rehashed, at(6))
            .await
            .expect("stale set"),
        "a stale expected hash is refused"
    );
    assert_eq!(
        store.get_user(u.id).await.expect("get_user"),
        got,
        "nothing written"
    );
    assert_not_found(
        store
            .set_password_hash(user().id, &u.password_hash, &rehashed, at(1))
            .await,
        "set_password_hash of an unknown user",
    );
}

/// `set_tier` and `set_admin` write their own column (and `updated_at`) only; the quota
/// counter, debited after the caller's copy was read, survives.
pub async fn set_tier_and_admin_write_only_their_columns(store: &DynStore) {
    let u = new_user(store).await;
    let e = experiment(u.id, at(1));
    store_experiment(store, &e).await;
    let debited = store.get_user(u.id).await.expect("get_user");

    store
        .set_tier(u.id, PricingTier::Enterprise, at(2))
        .await
        .expect("set_tier");
    store.set_admin(u.id, true, at(3)).await.expect("set_admin");
    let got = store.get_user(u.id).await.expect("get_user");
    assert_eq!((got.tier, got.is_admin), (PricingTier::Enterprise, true));
    assert_eq!(got.updated_at, at(3));
    assert_eq!(
        got,
        only_changed!(debited, got, tier, is_admin),
        "no other field"
    );
    assert_eq!(got.quota.prompts_used, e.prompts_per_run(), "debit kept");
    store
        .set_admin(u.id, false, at(4))
        .await
        .expect("revoke admin");
    assert!(!store.get_user(u.id).await.expect("get_user").is_admin);

    let ghost = user().id;
    assert_not_found(
        store.set_tier(ghost, PricingTier::Pro, at(1)).await,
        "set_tier of an unknown user",
    );
    assert_not_found(
        store.set_admin(ghost, true, at(1)).await,
        "set_admin of an unknown user",
    );
}

/// A consent update racing a deletion request, 200 times: the account always ends
/// deactivated with its purge scheduled, and the consent lands too. (A read-modify-write of
/// the whole row reactivated the deleted account, about 1 race in 15.)
pub async fn consent_racing_deletion_never_reactivates(store: &DynStore) {
    for round in 0..200 {
        let u = new_user(store).await;
        let purge = at(30 * 86_400 + round);
        let change = ConsentChange {
            data_processing: Some(true),
            ..ConsentChange::default()
        };
        let (consent, deletion) = futures::future::join(
            store.update_consents(u.id, &change, at(round)),
            store.request_deletion(u.id, at(round), purge),
        )
        .await;
        consent.expect("update_consents");
        deletion.expect("request_deletion");
        let got = store.get_user(u.id).await.expect("get_user");
        assert!(!got.is_active, "round {round}: deleted account left active");
        assert_eq!(
            got.scheduled_deletion_at,
            Some(purge),
            "round {round}: purge not scheduled"
        );
        assert!(
            got.consents.data_processing_consent_at.is_some(),
            "round {round}: consent lost"
        );
    }
}

/// Deleting a user removes everything they own (profile, keys, experiments, runs, iterations)
/// and frees the email, keeps the audit log, and leaves other users alone.
pub async fn delete_user_cascades_and_keeps_audit(store: &DynStore) {
    let u = new_user(store).await;
    let other = new_user(store).await;
    let profile = BrandProfile {
        user_id: u.id,
        brand: brand("HubSpot"),
        domain: Some("hubspot.com".into()),
        default_competitors: vec![brand("Salesforce")],
        updated_at: at(1),
    };
    store
        .put_brand_profile(&profile)
        .await
        .expect("put_brand_profile");
    let key = api_key(u.id, at(2));
    store.create_api_key(&key).await.expect("create_api_key");
    let e = new_experiment(store, u.id, at(3)).await;
    let run = new_batch_run(store, &e, at(4)).await;
    let outcome = store
        .record_iterations(&[
            iteration(run.id, 0, at(5)),
            failed_iteration(run.id, 1, at(6)),
        ])
        .await
        .expect("record_iterations");
    assert_eq!(outcome.inserted, 2);
    let mut event = audit_event("create_experiment", at(7));
    event.actor_user_id = Some(u.id);
    let appended = store.append_audit(&event).await.expect("append_audit");

    let other_e = new_experiment(store, other.id, at(8)).await;
    let other_run = new_batch_run(store, &other_e, at(9)).await;
    store
        .record_iterations(&[iteration(other_run.id, 0, at(10))])
        .await
        .expect("record_iterations of the other user");

    store.delete_user(u.id).await.expect("delete_user");

    assert_not_found(store.get_user(u.id).await, "deleted user");
    assert_eq!(
        store.find_user_by_email(&u.email).await.expect("find"),
        None
    );
    assert_not_found(
        store.get_brand_profile(u.id).await,
        "deleted user's profile",
    );
    assert_eq!(
        store
            .find_api_key(&key.public_id)
            .await
            .expect("find_api_key"),
        None
    );
    assert_not_found(
        store.get_experiment(u.id, e.id).await,
        "deleted user's experiment",
    );
    assert_not_found(
        store.get_batch_run(u.id, run.id).await,
        "deleted user's run",
    );
    assert_not_found(
        store.list_batch_runs(u.id, e.id).await,
        "deleted user's run list",
    );
    assert_not_found(
        store.list_iterations(u.id, run.id, 0, 100).await,
        "deleted iterations",
    );
    match store.recorded_indexes(run.id).await {
        Ok(indexes) => assert!(indexes.is_empty(), "iterations survived: {indexes:?}"),
        Err(StoreError::NotFound { .. }) => {}
        Err(e) => panic!("recorded_indexes of a deleted run: {e:?}"),
    }

    let log = store.audit_range(1, 100).await.expect("audit_range");
    assert_eq!(log, vec![appended], "audit events are kept");

    let mut other_now = other.clone();
    other_now.quota.prompts_used = other_e.prompts_per_run();
    assert_eq!(
        store.get_user(other.id).await.expect("other user"),
        other_now
    );
    assert_eq!(
        store
            .get_experiment(other.id, other_e.id)
            .await
            .expect("other experiment"),
        other_e
    );
    assert_eq!(
        store
            .recorded_indexes(other_run.id)
            .await
            .expect("other iterations"),
        vec![0]
    );

    assert_not_found(store.delete_user(u.id).await, "deleting twice");
    let mut again = user();
    again.email = u.email.clone();
    store
        .create_user(&again)
        .await
        .expect("the freed email can be reused");
}

/// `delete_user` of an unknown id is NotFound.
pub async fn delete_missing_user_is_not_found(store: &DynStore) {
    let u = new_user(store).await;
    assert_not_found(
        store.delete_user(UserId::new()).await,
        "delete_user of an unknown id",
    );
    assert_eq!(store.get_user(u.id).await.expect("get_user"), u);
}

/// `refund_quota` gives prompts back and saturates at zero, leaving `resets_at` and other users
/// alone.
pub async fn refund_quota_saturates_at_zero(store: &DynStore) {
    let u = new_user(store).await;
    let other = new_user(store).await;
    for owner in [u.id, other.id] {
        let e = experiment(owner, at(1));
        store_experiment(store, &e).await;
    }
    let used = |n| QuotaUsage {
        prompts_used: n,
        resets_at: u.quota.resets_at,
    };
    assert_eq!(
        store.get_user(u.id).await.expect("get_user").quota,
        used(10)
    );

    store.refund_quota(u.id, 4).await.expect("refund 4");
    assert_eq!(store.get_user(u.id).await.expect("get_user").quota, used(6));
    store.refund_quota(u.id, 0).await.expect("refund 0");
    assert_eq!(store.get_user(u.id).await.expect("get_user").quota, used(6));
    store
        .refund_quota(u.id, 100)
        .await
        .expect("refund more than used");
    assert_eq!(store.get_user(u.id).await.expect("get_user").quota, used(0));
    store
        .refund_quota(u.id, u32::MAX)
        .await
        .expect("refund u32::MAX");
    assert_eq!(store.get_user(u.id).await.expect("get_user").quota, used(0));

    assert_eq!(
        store
            .get_user(other.id)
            .await
            .expect("other")
            .quota
            .prompts_used,
        10,
        "other user's counter untouched"
    );
}

/// `reset_due_quotas` zeroes due counters (including `resets_at == now`), moves `resets_at` by
/// whole months past `now`, leaves the rest alone and returns the count.
pub async fn reset_due_quotas_by_whole_months(store: &DynStore) {
    let now = base_time(); // 2026-03-15 12:00 UTC
    let ts = |dt: time::OffsetDateTime| Timestamp::from_datetime(dt);
    let with_quota = |used: u32, resets_at: Timestamp| {
        move |u: &mut crate::model::User| {
            u.quota = QuotaUsage {
                prompts_used: used,
                resets_at,
            }
        }
    };
    let yesterday = new_user_with(store, with_quota(40, ts(datetime!(2026-03-14 12:00 UTC)))).await;
    let long_ago = new_user_with(store, with_quota(90, ts(datetime!(2026-01-12 12:00 UTC)))).await;
    let exactly_now = new_user_with(store, with_quota(15, now)).await;
    let unused = new_user_with(store, with_quota(0, ts(datetime!(2026-03-01 00:00 UTC)))).await;
    let not_due = new_user_with(store, with_quota(5, at_micros(1))).await;
    // Missed two resets from a month end: whole months counted from the original instant land
    // on the 31st again (`QuotaUsage::next_reset_after`), not on the clamped 28th.
    let month_end = new_user_with(store, with_quota(3, ts(datetime!(2026-01-31 12:00 UTC)))).await;

    assert_eq!(
        store.reset_due_quotas(now).await.expect("reset_due_quotas"),
        5
    );

    let expect = |id: UserId, quota: QuotaUsage| async move {
        assert_eq!(
            store.get_user(id).await.expect("get_user").quota,
            quota,
            "quota of {id}"
        );
    };
    let reset_to = |dt| QuotaUsage {
        prompts_used: 0,
        resets_at: ts(dt),
    };
    expect(yesterday.id, reset_to(datetime!(2026-04-14 12:00 UTC))).await;
    expect(long_ago.id, reset_to(datetime!(2026-04-12 12:00 UTC))).await;
    expect(exactly_now.id, reset_to(datetime!(2026-04-15 12:00 UTC))).await;
    expect(unused.id, reset_to(datetime!(2026-04-01 00:00 UTC))).await;
    expect(not_due.id, not_due.quota).await;
    expect(month_end.id, reset_to(datetime!(2026-03-31 12:00 UTC))).await;
    assert_eq!(
        month_end.quota.next_reset_after(now),
        ts(datetime!(2026-03-31 12:00 UTC))
    );

    assert_eq!(
        store.reset_due_quotas(now).await.expect("second reset"),
        0,
        "nothing left due"
    );
    expect(yesterday.id, reset_to(datetime!(2026-04-14 12:00 UTC))).await;
    expect(not_due.id, not_due.quota).await;
}

/// Brand profiles: NotFound before the first put, then put, read back, replaced; NotFound for a
/// missing user and per user.
pub async fn brand_profile_put_get_replace(store: &DynStore) {
    let u = new_user(store).await;
    let other = new_user(store).await;
    assert_not_found(store.get_brand_profile(u.id).await, "profile before put");

    let first = BrandProfile {
        user_id: u.id,
        brand: Brand {
            name: name("Close"),
            aliases: vec![name("Close CRM"), name("close.com")],
            match_mode: MatchMode::CaseSensitive,
        },
        domain: Some("close.com".into()),
        default_competitors: vec![brand("Pipedrive"), brand("HubSpot")],
        updated_at: at_micros(1_000_001),
    };
    store
        .put_brand_profile(&first)
        .await
        .expect("put_brand_profile");
    assert_eq!(store.get_brand_profile(u.id).await.expect("get"), first);

    let second = BrandProfile {
        user_id: u.id,
        brand: brand("Attio"),
        domain: None,
        default_competitors: vec![],
        updated_at: at(2),
    };
    store
        .put_brand_profile(&second)
        .await
        .expect("replace brand profile");
    assert_eq!(store.get_brand_profile(u.id).await.expect("get"), second);
    assert_not_found(
        store.get_brand_profile(other.id).await,
        "another user's profile",
    );

    let ghost = BrandProfile {
        user_id: UserId::new(),
        ..second
    };
    assert_not_found(
        store.put_brand_profile(&ghost).await,
        "profile of a missing user",
    );
    assert_not_found(
        store.get_brand_profile(ghost.user_id).await,
        "missing user's profile",
    );
}
