use async_trait::async_trait;
use echo_core::model::{
    BrandProfile, ConsentChange, Consents, Email, EmailVerificationRedemption,
    EmailVerificationToken, PasswordHash, PricingTier, QuotaDebit, QuotaUsage, SecretDigest,
    Timestamp, User, UserId,
};
use echo_core::store::sql::{ColumnReader, debit_refused, found, to_json};
use echo_core::store::{StoreError, UserStore};
use sqlx::PgConnection;

use crate::PgStore;
use crate::db::{commit, execute, fetch_all, fetch_opt};
use crate::queries as q;
use crate::rows::{self, Cols, dt, opt_dt};

/// Takes `debit.amount` from the user's quota or explains why not: [`StoreError::NotFound`]
/// for an unknown user, [`StoreError::QuotaExceeded`] with the figures otherwise.
pub(crate) async fn debit_quota(
    conn: &mut PgConnection,
    debit: QuotaDebit,
) -> Result<(), StoreError> {
    let id = *debit.user_id.as_uuid();
    let debited = execute(
        conn,
        sqlx::query(q::USER_DEBIT_QUOTA)
            .bind(id)
            .bind(i64::from(debit.amount))
            .bind(i64::from(debit.limit)),
    )
    .await?;
    if debited == 1 {
        return Ok(());
    }
    // Read after the refused update, so the figure is at least what the condition saw.
    let used = fetch_opt(conn, sqlx::query(q::USER_QUOTA_USED).bind(id), |row| {
        Cols::new(row).u32("users.prompts_used")
    })
    .await?;
    Err(debit_refused(debit, used))
}

/// The answer of a conditional update: `true` when it changed the row, `false` when the
/// condition refused it, [`StoreError::NotFound`] when there is no such user.
async fn applied_or_missing(
    conn: &mut PgConnection,
    id: UserId,
    changed: u64,
) -> Result<bool, StoreError> {
    if changed > 0 {
        return Ok(true);
    }
    fetch_opt(
        conn,
        sqlx::query(q::USER_EXISTS).bind(*id.as_uuid()),
        |_| Ok(()),
    )
    .await?
    .map(|()| false)
    .ok_or(StoreError::not_found("user"))
}

#[async_trait]
impl UserStore for PgStore {
    async fn create_user(&self, u: &User) -> Result<(), StoreError> {
        let c = &u.consents;
        let mut conn = self.db().conn().await?;
        execute(
            &mut conn,
            sqlx::query(q::USER_INSERT)
                .bind(*u.id.as_uuid())
                .bind(u.email.as_str())
                .bind(u.password_hash.expose())
                .bind(u.tier.as_str())
                .bind(i64::from(u.quota.prompts_used))
                .bind(dt(u.quota.resets_at))
                .bind(u.is_active)
                .bind(u.is_admin)
                .bind(c.privacy_policy_version.as_deref())
                .bind(opt_dt(c.privacy_policy_accepted_at))
                .bind(opt_dt(c.data_processing_consent_at))
                .bind(opt_dt(c.marketing_consent_at))
                .bind(opt_dt(u.scheduled_deletion_at))
                .bind(dt(u.created_at))
                .bind(dt(u.updated_at))
                .bind(u.email_verification_required)
                .bind(opt_dt(u.email_verified_at)),
        )
        .await?;
        Ok(())
    }

    async fn get_user(&self, id: UserId) -> Result<User, StoreError> {
        let mut conn = self.db().conn().await?;
        fetch_opt(
            &mut conn,
            sqlx::query(q::USER_BY_ID).bind(*id.as_uuid()),
            rows::record::<User>,
        )
        .await?
        .ok_or(StoreError::not_found("user"))
    }

    async fn find_user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        let mut conn = self.db().conn().await?;
        fetch_opt(
            &mut conn,
            sqlx::query(q::USER_BY_EMAIL).bind(email.as_str()),
            rows::record::<User>,
        )
        .await
    }

    async fn request_deletion(
        &self,
        id: UserId,
        at: Timestamp,
        purge_after: Timestamp,
    ) -> Result<(), StoreError> {
        let mut conn = self.db().conn().await?;
        let changed = execute(
            &mut conn,
            sqlx::query(q::USER_REQUEST_DELETION)
                .bind(*id.as_uuid())
                .bind(dt(at))
                .bind(dt(purge_after)),
        )
        .await?;
        found(changed, "user")
    }

    async fn cancel_deletion(&self, id: UserId, at: Timestamp) -> Result<bool, StoreError> {
        let mut conn = self.db().conn().await?;
        let changed = execute(
            &mut conn,
            sqlx::query(q::USER_CANCEL_DELETION)
                .bind(*id.as_uuid())
                .bind(dt(at)),
        )
        .await?;
        applied_or_missing(&mut conn, id, changed).await
    }

    async fn update_consents(
        &self,
        id: UserId,
        change: &ConsentChange,
        at: Timestamp,
    ) -> Result<Consents, StoreError> {
        let mut tx = self.db().begin().await?;
        let mut consents = fetch_opt(
            &mut tx,
            sqlx::query(q::USER_CONSENTS_FOR_UPDATE).bind(*id.as_uuid()),
            rows::record::<Consents>,
        )
        .await?
        .ok_or(StoreError::not_found("user"))?;
        consents.apply(change, at);
        execute(
            &mut tx,
            sqlx::query(q::USER_SET_CONSENTS)
                .bind(*id.as_uuid())
                .bind(consents.privacy_policy_version.as_deref())
                .bind(opt_dt(consents.privacy_policy_accepted_at))
                .bind(opt_dt(consents.data_processing_consent_at))
                .bind(opt_dt(consents.marketing_consent_at))
                .bind(dt(at)),
        )
        .await?;
        commit(tx).await?;
        Ok(consents)
    }

    async fn set_password_hash(
        &self,
        id: UserId,
        expected: &PasswordHash,
        new: &PasswordHash,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut conn = self.db().conn().await?;
        let changed = execute(
            &mut conn,
            sqlx::query(q::USER_SET_PASSWORD_HASH)
                .bind(*id.as_uuid())
                .bind(expected.expose())
                .bind(new.expose())
                .bind(dt(at)),
        )
        .await?;
        applied_or_missing(&mut conn, id, changed).await
    }

    async fn set_tier(
        &self,
        id: UserId,
        tier: PricingTier,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let mut conn = self.db().conn().await?;
        let changed = execute(
            &mut conn,
            sqlx::query(q::USER_SET_TIER)
                .bind(*id.as_uuid())
                .bind(tier.as_str())
                .bind(dt(at)),
        )
        .await?;
        found(changed, "user")
    }

    async fn set_admin(&self, id: UserId, is_admin: bool, at: Timestamp) -> Result<(), StoreError> {
        let mut conn = self.db().conn().await?;
        let changed = execute(
            &mut conn,
            sqlx::query(q::USER_SET_ADMIN)
                .bind(*id.as_uuid())
                .bind(is_admin)
                .bind(dt(at)),
        )
        .await?;
        found(changed, "user")
    }

    async fn put_email_verification_token(
        &self,
        token: &EmailVerificationToken,
    ) -> Result<(), StoreError> {
        let mut conn = self.db().conn().await?;
        execute(
            &mut conn,
            sqlx::query(q::VERIFICATION_TOKEN_UPSERT)
                .bind(*token.user_id.as_uuid())
                .bind(&token.token_hash.0[..])
                .bind(dt(token.created_at))
                .bind(dt(token.expires_at)),
        )
        .await?;
        Ok(())
    }

    async fn redeem_email_verification_token(
        &self,
        token_hash: &SecretDigest,
        now: Timestamp,
    ) -> Result<EmailVerificationRedemption, StoreError> {
        let mut tx = self.db().begin().await?;
        let taken = fetch_opt(
            &mut tx,
            sqlx::query(q::VERIFICATION_TOKEN_TAKE)
                .bind(&token_hash.0[..])
                .bind(dt(now)),
            |row| Cols::new(row).id::<UserId>("email_verification_tokens.user_id"),
        )
        .await?;
        let Some(user) = taken else {
            let exists = fetch_opt(
                &mut tx,
                sqlx::query(q::VERIFICATION_TOKEN_EXISTS).bind(&token_hash.0[..]),
                |_| Ok(()),
            )
            .await?;
            return match exists {
                Some(()) => Ok(EmailVerificationRedemption::Expired),
                None => Err(StoreError::not_found("verification token")),
            };
        };
        let changed = execute(
            &mut tx,
            sqlx::query(q::USER_SET_EMAIL_VERIFIED)
                .bind(*user.as_uuid())
                .bind(dt(now)),
        )
        .await?;
        found(changed, "verification token")?;
        commit(tx).await?;
        Ok(EmailVerificationRedemption::Verified(user))
    }

    async fn delete_user(&self, id: UserId) -> Result<(), StoreError> {
        let mut tx = self.db().begin().await?;
        let changed = execute(&mut tx, sqlx::query(q::USER_DELETE).bind(*id.as_uuid())).await?;
        found(changed, "user")?;
        // Jobs have no foreign key to their user (payloads are free-form), so the cascade
        // does not reach them. A job a worker holds goes too: its next heartbeat or settle
        // finds no job and reports the lease lost.
        execute(
            &mut tx,
            sqlx::query(q::JOBS_DELETE_BY_PAYLOAD_USER).bind(id.to_string()),
        )
        .await?;
        commit(tx).await
    }

    async fn users_due_for_deletion(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<UserId>, StoreError> {
        let mut conn = self.db().conn().await?;
        fetch_all(
            &mut conn,
            sqlx::query(q::USERS_DUE_FOR_DELETION)
                .bind(dt(now))
                .bind(i64::from(limit)),
            |row| Cols::new(row).id("users.id"),
        )
        .await
    }

    async fn refund_quota(&self, user: UserId, amount: u32) -> Result<(), StoreError> {
        let mut conn = self.db().conn().await?;
        let changed = execute(
            &mut conn,
            sqlx::query(q::USER_REFUND_QUOTA)
                .bind(*user.as_uuid())
                .bind(i64::from(amount)),
        )
        .await?;
        found(changed, "user")
    }

    async fn reset_due_quotas(&self, now: Timestamp) -> Result<u64, StoreError> {
        let mut tx = self.db().begin().await?;
        let due = fetch_all(
            &mut tx,
            sqlx::query(q::USERS_DUE_QUOTA_RESET).bind(dt(now)),
            |row| {
                let mut c = Cols::new(row);
                Ok((c.id::<UserId>("users.id")?, c.ts("users.quota_reset_at")?))
            },
        )
        .await?;
        if due.is_empty() {
            return Ok(0);
        }
        // The month arithmetic is the model's, so every backend agrees on the day.
        let (ids, next): (Vec<_>, Vec<_>) = due
            .iter()
            .map(|(id, resets_at)| {
                let next = QuotaUsage {
                    prompts_used: 0,
                    resets_at: *resets_at,
                }
                .next_reset_after(now);
                (*id.as_uuid(), dt(next))
            })
            .unzip();
        execute(
            &mut tx,
            sqlx::query(q::USERS_RESET_QUOTA).bind(ids).bind(next),
        )
        .await?;
        commit(tx).await?;
        Ok(due.len() as u64)
    }

    async fn get_brand_profile(&self, owner: UserId) -> Result<BrandProfile, StoreError> {
        let mut conn = self.db().conn().await?;
        fetch_opt(
            &mut conn,
            sqlx::query(q::BRAND_PROFILE_BY_USER).bind(*owner.as_uuid()),
            rows::record::<BrandProfile>,
        )
        .await?
        .ok_or(StoreError::not_found("brand profile"))
    }

    async fn put_brand_profile(&self, p: &BrandProfile) -> Result<(), StoreError> {
        let brand = to_json("brand", &p.brand)?;
        let competitors = to_json("default competitors", &p.default_competitors)?;
        let mut conn = self.db().conn().await?;
        execute(
            &mut conn,
            sqlx::query(q::BRAND_PROFILE_UPSERT)
                .bind(*p.user_id.as_uuid())
                .bind(brand)
                .bind(p.domain.as_deref())
                .bind(competitors)
                .bind(dt(p.updated_at)),
        )
        .await?;
        Ok(())
    }
}
