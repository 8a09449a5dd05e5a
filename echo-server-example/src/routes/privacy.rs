//! GDPR: the privacy policy and consents, the data export, and account deletion with a grace
//! period.

use std::convert::Infallible;

use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use echo_core::mail::MailMessage;
use echo_core::model::{ConsentChange, Timestamp, User};
use echo_core::privacy::export::export_user;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiJson;
use crate::audit::{AuditContext, audit, audit_action};
use crate::auth::Caller;
use crate::error::{ApiError, log_chain};
use crate::state::AppState;

/// The current privacy policy.
#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyView {
    /// Version users must accept (send it as `privacy_policy_version`).
    pub version: String,
    /// Where it is published.
    pub url: Option<String>,
}

/// The current privacy-policy version.
#[utoipa::path(get, path = "/api/v1/privacy-policy", tag = "privacy",
    responses((status = 200, description = "The policy", body = PolicyView)))]
pub async fn policy(State(state): State<AppState>) -> axum::Json<PolicyView> {
    axum::Json(PolicyView {
        version: state.config.privacy.policy_version.clone(),
        url: state.config.privacy.policy_url.clone(),
    })
}

/// `POST /api/v1/user/consent`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentRequest {
    /// Accept this policy version (must be the current one).
    pub privacy_policy_version: Option<String>,
    /// Consent to processing the prompts and answers of experiments.
    pub data_processing: Option<bool>,
    /// Consent to product and marketing email.
    pub marketing: Option<bool>,
}

/// The caller's consents.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentView {
    /// Accepted policy version.
    pub privacy_policy_version: Option<String>,
    /// When it was accepted.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub privacy_policy_accepted_at: Option<Timestamp>,
    /// When data-processing consent was given (absent: not given or withdrawn).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub data_processing_consent_at: Option<Timestamp>,
    /// When marketing consent was given.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub marketing_consent_at: Option<Timestamp>,
    /// The current policy differs from the accepted one: ask the user to accept again.
    pub consent_required: bool,
}

impl ConsentView {
    /// The view of `user`'s consents under the current policy.
    pub fn of(user: &User, current_policy: &str) -> Self {
        let c = &user.consents;
        Self {
            privacy_policy_version: c.privacy_policy_version.clone(),
            privacy_policy_accepted_at: c.privacy_policy_accepted_at,
            data_processing_consent_at: c.data_processing_consent_at,
            marketing_consent_at: c.marketing_consent_at,
            consent_required: c.privacy_policy_version.as_deref() != Some(current_policy),
        }
    }
}

async fn current_user(state: &AppState, caller: &Caller) -> Result<User, ApiError> {
    state
        .store
        .get_user(caller.user_id)
        .await
        .map_err(|e| ApiError::from_store(e, "user"))
}

/// Records consents: policy acceptance, data processing and marketing, each with its time.
#[utoipa::path(post, path = "/api/v1/user/consent", tag = "privacy",
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])),
    request_body = ConsentRequest,
    responses((status = 200, description = "Recorded", body = ConsentView),
        (status = 422, description = "Not the current policy version", body = crate::openapi::Problem, content_type = "application/problem+json")))]
pub async fn consent(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ctx: AuditContext,
    ApiJson(body): ApiJson<ConsentRequest>,
) -> Result<axum::Json<ConsentView>, ApiError> {
    let current = &state.config.privacy.policy_version;
    let mut user = current_user(&state, &caller).await?;
    if let Some(version) = &body.privacy_policy_version
        && version != current
    {
        return Err(ApiError::invalid(
            "privacy_policy_version",
            format!("must be the current version {current:?}"),
        ));
    }
    let change = ConsentChange {
        privacy_policy_version: body.privacy_policy_version,
        data_processing: body.data_processing,
        marketing: body.marketing,
    };
    // Applied to the stored consents in one atomic update of their columns alone, so it can
    // neither undo a concurrent deletion nor lose a concurrent consent change.
    let before = user.consents.clone();
    user.consents = state
        .store
        .update_consents(user.id, &change, Timestamp::now())
        .await
        .map_err(|e| ApiError::from_store(e, "user"))?;
    audit(
        &state,
        &ctx,
        Some(user.id),
        "update_consent",
        "user",
        Some(user.id.to_string()),
        serde_json::json!({"before": before, "after": user.consents}),
    )
    .await;
    Ok(axum::Json(ConsentView::of(&user, current)))
}

/// Streams everything Echo holds about the caller as one JSON document.
#[utoipa::path(get, path = "/api/v1/user/data-export", tag = "privacy",
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])),
    responses((status = 200, description = "The export (streamed JSON)", body = Object)))]
pub async fn export(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ctx: AuditContext,
) -> Result<Response, ApiError> {
    let user = current_user(&state, &caller).await?;
    audit_action(&state, &ctx, user.id, "export_user_data", "user", user.id).await;
    let (mut tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    let store = state.store.clone();
    tokio::spawn(async move {
        if let Err(e) = export_user(store.as_ref(), &user, &mut tx).await {
            // The status line is sent already: a truncated body (invalid JSON) is how the
            // client learns; the cause goes to the log.
            log_chain("data export failed", Some(&e));
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, Infallible>(axum::body::Bytes::from(chunk)), rx))
    });
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"echo-export.json\""),
    );
    Ok(response)
}

/// The answer to a deletion request.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeletionView {
    /// When the account and all its data will be purged; logging in before cancels it.
    #[schema(value_type = String, format = DateTime)]
    pub scheduled_deletion_at: Timestamp,
}

/// Deletes the caller's account (Art. 17): deactivated at once (sessions and API keys stop
/// working), purged after the grace period; a confirmation is mailed.
#[utoipa::path(delete, path = "/api/v1/user/account", tag = "privacy",
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])),
    responses((status = 202, description = "Deactivated and scheduled for deletion", body = DeletionView)))]
pub async fn delete_account(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ctx: AuditContext,
) -> Result<Response, ApiError> {
    let user = current_user(&state, &caller).await?;
    let now = Timestamp::now();
    let at = now + time::Duration::days(i64::from(state.config.privacy.deletion_grace_days));
    state
        .store
        .request_deletion(user.id, now, at)
        .await
        .map_err(|e| ApiError::from_store(e, "user"))?;
    // Deactivation alone refuses every credential (verification checks the owner); revoking
    // the sessions and dropping cached keys makes that immediate and permanent.
    state.verifier.invalidate_user(user.id);
    if let Err(e) = state.sessions.revoke_all(user.id, now).await {
        log_chain("revoking sessions failed", Some(&e));
    }
    tracing::info!(event = "account_deletion_scheduled", user_id = %user.id, "account deletion scheduled");
    audit(
        &state,
        &ctx,
        Some(user.id),
        "delete_user_account",
        "user",
        Some(user.id.to_string()),
        serde_json::json!({"scheduled_deletion_at": at}),
    )
    .await;
    let date = at
        .as_datetime()
        .format(&time::format_description::well_known::Rfc2822)
        .unwrap_or_default();
    let message = MailMessage {
        to: user.email.clone(),
        subject: "Your Echo account will be deleted".into(),
        body: format!(
            "We received a request to delete your Echo account.\n\n\
             Your account is deactivated now and it and all its data will be deleted for good on {date}.\n\
             If you did not ask for this, or changed your mind, log in before then to keep your account.\n"
        ),
    };
    if let Err(e) = state.mailer.send(&message).await {
        // The deletion stands; the confirmation can be re-sent by an operator.
        log_chain("deletion confirmation not sent", Some(&e));
    }
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(DeletionView {
            scheduled_deletion_at: at,
        }),
    )
        .into_response())
}
