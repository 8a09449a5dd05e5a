use async_trait::async_trait;
use echo_core::model::{
    BrandProfile, ConsentChange, Consents, Email, EmailVerificationRedemption,
    EmailVerificationToken, PasswordHash, PricingTier, QuotaDebit, QuotaUsage, SecretDigest,
    Timestamp, User, UserId,
};
use echo_core::store::sql::{ColumnReader, debit_refused, found, to_json};
use echo_core::store::{StoreError, UserStore};
use rusqlite::{Transaction, params};

use crate::SqliteStore;
use crate::db::{execute, query_opt};
use crate::error::SqlResultExt;
use crate::queries as q;
use crate::rows::{self, Cols, opt_micros};

/// Takes `debit.amount` from the user's quota or explains why not: [`StoreError::NotFound`]
/// for an unknown user, [`StoreError::QuotaExceeded`] with the figures otherwise.
pub(crate) fn debit_quota(tx: &Transaction<'_>, debit: QuotaDebit) -> Result<(), StoreError> {
    let id = debit.user_id.as_uuid().as_bytes();
    if execute(
        tx,
        q::USER_DEBIT_QUOTA,
        params![id, debit.amount, debit.limit],
    )
    .db()?
        == 1
    {
        return Ok(());
    }
    let used = query_opt(tx, q::USER_QUOTA_USED, [id], |row| {
        Cols::new(row).u32("users.prompts_used")
    })?;
    Err(debit_refused(debit, used))
}

/// The answer of a conditional update: `true` when it changed the row, `false` when the
/// condition refused it, [`StoreError::NotFound`] when there is no such user.
fn applied_or_missing(tx: &Transaction<'_>, id: &[u8], changed: usize) -> Result<bool, StoreError> {
    if changed > 0 {
        return Ok(true);
    }
    query_opt(tx, q::USER_EXISTS, [id], |_| Ok(()))?
        .map(|()| false)
        .ok_or(StoreError::not_found("user"))
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        let u = user.clone();
        self.db
            .write(move |tx| {
                let c = &u.consents;
                execute(
                    tx,
                    q::USER_INSERT,
                    params![
                        u.id.as_uuid().as_bytes(),
                        u.email.as_str(),
                        u.password_hash.expose(),
                        u.tier.as_str(),
                        u.quota.prompts_used,
                        u.quota.resets_at.unix_micros(),
                        u.is_active,
                        u.is_admin,
                        c.privacy_policy_version,
                        opt_micros(c.privacy_policy_accepted_at),
                        opt_micros(c.data_processing_consent_at),
                        opt_micros(c.marketing_consent_at),
                        opt_micros(u.scheduled_deletion_at),
                        u.created_at.unix_micros(),
                        u.updated_at.unix_micros(),
                        u.email_verification_required,
                        opt_micros(u.email_verified_at),
                    ],
                )
                .db()?;
                Ok(())
            })
            .await
    }

    async fn get_user(&self, id: UserId) -> Result<User, StoreError> {
        self.db
            .read_single(move |conn| {
                query_opt(
                    conn,
                    q::USER_BY_ID,
                    [id.as_uuid().as_bytes()],
                    rows::record::<User>,
                )
            })
            .await?
            .ok_or(StoreError::not_found("user"))
    }

    async fn find_user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        let email = email.clone();
        self.db
            .read_single(move |conn| {
                query_opt(
                    conn,
                    q::USER_BY_EMAIL,
                    [email.as_str()],
                    rows::record::<User>,
                )
            })
            .await
    }

    async fn request_deletion(
        &self,
        id: UserId,
        at: Timestamp,
        purge_after: Timestamp,
    ) -> Result<(), StoreError> {
        self.db
            .write(move |tx| {
                let changed = execute(
                    tx,
                    q::USER_REQUEST_DELETION,
                    params![
                        id.as_uuid().as_bytes(),
                        at.unix_micros(),
                        purge_after.unix_micros()
                    ],
                )
                .db()?;
                found(changed as u64, "user")
            })
            .await
    }

    async fn cancel_deletion(&self, id: UserId, at: Timestamp) -> Result<bool, StoreError> {
        self.db
            .write(move |tx| {
                let id = id.as_uuid().as_bytes();
                let changed =
                    execute(tx, q::USER_CANCEL_DELETION, params![id, at.unix_micros()]).db()?;
                applied_or_missing(tx, id, changed)
            })
            .await
    }

    async fn update_consents(
        &self,
        id: UserId,
        change: &ConsentChange,
        at: Timestamp,
    ) -> Result<Consents, StoreError> {
        let change = change.clone();
        self.db
            .write(move |tx| {
                let id = id.as_uuid().as_bytes();
                let mut consents = query_opt(
                    tx,
                    q::USER_CONSENTS_FOR_UPDATE,
                    [id],
                    rows::record::<Consents>,
                )?
                .ok_or(StoreError::not_found("user"))?;
                consents.apply(&change, at);
                execute(
                    tx,
                    q::USER_SET_CONSENTS,
                    params![
                        id,
                        consents.privacy_policy_version,
                        opt_micros(consents.privacy_policy_accepted_at),
                        opt_micros(consents.data_processing_consent_at),
                        opt_micros(consents.marketing_consent_at),
                        at.unix_micros(),
                    ],
                )
                .db()?;
                Ok(consents)
            })
            .await
    }

    async fn set_password_hash(
        &self,
        id: UserId,
        expected: &PasswordHash,
        new: &PasswordHash,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let (expected, new) = (expected.clone(), new.clone());
        self.db
            .write(move |tx| {
                let id = id.as_uuid().as_bytes();
                let changed = execute(
                    tx,
                    q::USER_SET_PASSWORD_HASH,
                    params![id, expected.expose(), new.expose(), at.unix_micros()],
                )
                .db()?;
                applied_or_missing(tx, id, changed)
            })
            .await
    }

    async fn set_tier(
        &self,
        id: UserId,
        tier: PricingTier,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        self.db
            .write(move |tx| {
                let changed = execute(
                    tx,
                    q::USER_SET_TIER,
                    params![id.as_uuid().as_bytes(), tier.as_str(), at.unix_micros()],
                )
                .db()?;
                found(changed as u64, "user")
            })
            .await
    }

    async fn set_admin(&self, id: UserId, is_admin: bool, at: Timestamp) -> Result<(), StoreError> {
        self.db
            .write(move |tx| {
                let changed = execute(
                    tx,
                    q::USER_SET_ADMIN,
                    params![id.as_uuid().as_bytes(), is_admin, at.unix_micros()],
                )
                .db()?;
                found(changed as u64, "user")
            })
            .await
    }

    async fn put_email_verification_token(
        &self,
        token: &EmailVerificationToken,
    ) -> Result<(), StoreError> {
        let t = token.clone();
        self.db
            .write(move |tx| {
                let user = t.user_id.as_uuid().as_bytes();
                query_opt(tx, q::USER_EXISTS, [user], |_| Ok(()))?
                    .ok_or(StoreError::not_found("user"))?;
                execute(
                    tx,
                    q::VERIFICATION_TOKEN_UPSERT,
                    params![
                        user,
                        &t.token_hash.0[..],
                        t.created_at.unix_micros(),
                        t.expires_at.unix_micros()
                    ],
                )
                .db()?;
                Ok(())
            })
            .await
    }

    async fn redeem_email_verification_token(
        &self,
        token_hash: &SecretDigest,
        now: Timestamp,
    ) -> Result<EmailVerificationRedemption, StoreError> {
        let hash = token_hash.0;
        self.db
            .write(move |tx| {
                let (user, expires_at) =
                    query_opt(tx, q::VERIFICATION_TOKEN_BY_HASH, [&hash[..]], |row| {
                        let mut c = Cols::new(row);
                        Ok((
                            c.id::<UserId>("email_verification_tokens.user_id")?,
                            c.ts("email_verification_tokens.expires_at")?,
                        ))
                    })?
                    .ok_or(StoreError::not_found("verification token"))?;
                if expires_at <= now {
                    return Ok(EmailVerificationRedemption::Expired);
                }
                execute(tx, q::VERIFICATION_TOKEN_DELETE, [&hash[..]]).db()?;
                let changed = execute(
                    tx,
                    q::USER_SET_EMAIL_VERIFIED,
                    params![user.as_uuid().as_bytes(), now.unix_micros()],
                )
                .db()?;
                found(changed as u64, "verification token")?;
                Ok(EmailVerificationRedemption::Verified(user))
            })
            .await
    }

    async fn delete_user(&self, id: UserId) -> Result<(), StoreError> {
        self.db
            .write(move |tx| {
                let changed = execute(tx, q::USER_DELETE, [id.as_uuid().as_bytes()]).db()?;
                found(changed as u64, "user")?;
                // Jobs have no foreign key to their user (payloads are free-form), so the
                // cascade does not reach them.
                execute(tx, q::JOBS_DELETE_BY_PAYLOAD_USER, [id.to_string()]).db()?;
                Ok(())
            })
            .await
    }

    async fn users_due_for_deletion(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<UserId>, StoreError> {
        self.db
            .read_single(move |conn| {
                crate::db::query_all(
                    conn,
                    q::USERS_DUE_FOR_DELETION,
                    params![now.unix_micros(), limit],
                    |row| Cols::new(row).id("users.id"),
                )
            })
            .await
    }

    async fn refund_quota(&self, user: UserId, amount: u32) -> Result<(), StoreError> {
        self.db
            .write(move |tx| {
                let changed = execute(
                    tx,
                    q::USER_REFUND_QUOTA,
                    params![user.as_uuid().as_bytes(), amount],
                )
                .db()?;
                found(changed as u64, "user")
            })
            .await
    }

    async fn reset_due_quotas(&self, now: Timestamp) -> Result<u64, StoreError> {
        self.db
            .write(move |tx| {
                let due = crate::db::query_all(
                    tx,
                    q::USERS_DUE_QUOTA_RESET,
                    [now.unix_micros()],
                    |row| {
                        let mut c = Cols::new(row);
                        Ok((c.id::<UserId>("users.id")?, c.ts("users.quota_reset_at")?))
                    },
                )?;
                let mut reset = tx.prepare_cached(q::USER_RESET_QUOTA).db()?;
                for (id, resets_at) in &due {
                    // The month arithmetic is the model's, so every backend agrees on the day.
                    let next = QuotaUsage {
                        prompts_used: 0,
                        resets_at: *resets_at,
                    }
                    .next_reset_after(now);
                    reset
                        .execute(params![id.as_uuid().as_bytes(), next.unix_micros()])
                        .db()?;
                }
                Ok(due.len() as u64)
            })
            .await
    }

    async fn get_brand_profile(&self, owner: UserId) -> Result<BrandProfile, StoreError> {
        self.db
            .read(move |tx| {
                query_opt(
                    tx,
                    q::BRAND_PROFILE_BY_USER,
                    [owner.as_uuid().as_bytes()],
                    rows::record::<BrandProfile>,
                )
            })
            .await?
            .ok_or(StoreError::not_found("brand profile"))
    }

    async fn put_brand_profile(&self, profile: &BrandProfile) -> Result<(), StoreError> {
        let brand = to_json("brand", &profile.brand)?;
        let competitors = to_json("default competitors", &profile.default_competitors)?;
        let p = profile.clone();
        self.db
            .write(move |tx| {
                execute(
                    tx,
                    q::BRAND_PROFILE_UPSERT,
                    params![
                        p.user_id.as_uuid().as_bytes(),
                        brand,
                        p.domain,
                        competitors,
                        p.updated_at.unix_micros(),
                    ],
                )
                .db_parent("user")?;
                Ok(())
            })
            .await
    }
}
