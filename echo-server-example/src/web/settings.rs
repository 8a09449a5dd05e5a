//! Settings pages: API keys (create, shown once; list by prefix; rotate; revoke) and privacy
//! (export, consents, account deletion). Each calls the JSON route's own function.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::Deserialize;

use super::account::FieldErrors;
use super::{Chrome, render};
use crate::audit::AuditContext;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::routes::keys::{self, CreateKeyRequest, CreatedKeyView, KeyView};
use crate::routes::privacy::{self, ConsentRequest, ConsentView};
use crate::routes::{ApiJson, ApiPath};
use crate::state::AppState;

#[derive(Template)]
#[template(path = "keys.html")]
struct KeysPage {
    chrome: Chrome,
    keys: Vec<KeyView>,
    created: Option<CreatedKeyView>,
    name: String,
    errors: FieldErrors,
}

async fn keys_page(
    state: &AppState,
    caller: Caller,
    created: Option<CreatedKeyView>,
    name: String,
    errors: FieldErrors,
) -> Result<KeysPage, ApiError> {
    let chrome = Chrome::of(state, &caller, "settings").await?;
    let axum::Json(list) = keys::list(State(state.clone()), Extension(caller)).await?;
    Ok(KeysPage {
        chrome,
        keys: list.items,
        created,
        name,
        errors,
    })
}

/// `GET /settings/keys`.
pub async fn keys(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    let page = keys_page(&state, caller, None, String::new(), FieldErrors::default()).await?;
    Ok(render(StatusCode::OK, &page))
}

/// The new-key form.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NewKeyForm {
    name: String,
    environment: String,
}

/// `POST /settings/keys`: creates a key and shows it this once (the page is never cached).
pub async fn create_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ctx: AuditContext,
    Form(form): Form<NewKeyForm>,
) -> Result<Response, ApiError> {
    let request = CreateKeyRequest {
        name: form.name.clone(),
        expires_at: None,
        environment: Some(form.environment.clone()).filter(|e| !e.is_empty()),
    };
    match keys::create_key(&state, &caller, &ctx, request).await {
        Ok(created) => {
            let page = keys_page(
                &state,
                caller,
                Some(created),
                String::new(),
                FieldErrors::default(),
            )
            .await?;
            Ok(render(StatusCode::CREATED, &page))
        }
        Err(e) if e.status().is_client_error() && e.status() != StatusCode::FORBIDDEN => {
            let errors = FieldErrors::from_api(&e, &["name"], |n| match n {
                "label" => "name",
                other => other,
            });
            let page = keys_page(&state, caller, None, form.name, errors).await?;
            Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
        Err(e) => Err(e),
    }
}

/// `POST /settings/keys/{id}/rotate`: the replacement, shown once.
pub async fn rotate_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ctx: AuditContext,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let rotated = keys::rotate_key(&state, &caller, &ctx, &id).await?;
    let page = keys_page(
        &state,
        caller,
        Some(rotated.new_key),
        String::new(),
        FieldErrors::default(),
    )
    .await?;
    Ok(render(StatusCode::CREATED, &page))
}

/// `POST /settings/keys/{id}/revoke`.
pub async fn revoke_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ctx: AuditContext,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    keys::revoke(State(state), Extension(caller), ctx, ApiPath(id)).await?;
    Ok(Redirect::to("/settings/keys").into_response())
}

#[derive(Template)]
#[template(path = "privacy.html")]
struct PrivacyPage {
    chrome: Chrome,
    consents: ConsentView,
}

async fn consents(state: &AppState, caller: &Caller) -> Result<ConsentView, ApiError> {
    let user = state
        .store
        .get_user(caller.user_id)
        .await
        .map_err(|e| ApiError::from_store(e, "user"))?;
    Ok(ConsentView::of(&user, &state.config.privacy.policy_version))
}

/// `GET /settings/privacy`: consents, the export link and account deletion.
pub async fn privacy_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    let chrome = Chrome::of(&state, &caller, "settings").await?;
    let consents = consents(&state, &caller).await?;
    Ok(render(StatusCode::OK, &PrivacyPage { chrome, consents }))
}

/// The consent form: ticked boxes are present, unticked ones absent.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ConsentForm {
    data_processing: Option<String>,
    marketing: Option<String>,
    accept_policy: Option<String>,
}

/// `POST /settings/privacy`: the API's consent change.
pub async fn update_consents(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ctx: AuditContext,
    Form(form): Form<ConsentForm>,
) -> Result<Response, ApiError> {
    let request = ConsentRequest {
        privacy_policy_version: form
            .accept_policy
            .map(|_| state.config.privacy.policy_version.clone()),
        data_processing: Some(form.data_processing.is_some()),
        marketing: Some(form.marketing.is_some()),
    };
    let _consents =
        privacy::consent(State(state), Extension(caller), ctx, ApiJson(request)).await?;
    Ok(Redirect::to("/settings/privacy").into_response())
}

#[derive(Template)]
#[template(path = "confirm_account_deletion.html")]
struct ConfirmAccountDeletion {
    chrome: Chrome,
    grace_days: u32,
}

/// `GET /settings/delete-account`: what deleting means, and the button.
pub async fn confirm_delete_account(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    let chrome = Chrome::of(&state, &caller, "settings").await?;
    Ok(render(
        StatusCode::OK,
        &ConfirmAccountDeletion {
            chrome,
            grace_days: state.config.privacy.deletion_grace_days,
        },
    ))
}

#[derive(Template)]
#[template(path = "account_deleted.html")]
struct AccountDeleted {
    chrome: Chrome,
    grace_days: u32,
}

/// `POST /settings/delete-account`: the API's deletion (sessions end at once), then a page
/// saying how to undo it.
pub async fn delete_account(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ctx: AuditContext,
) -> Result<Response, ApiError> {
    privacy::delete_account(State(state.clone()), Extension(caller), ctx).await?;
    let mut response = render(
        StatusCode::OK,
        &AccountDeleted {
            chrome: Chrome::anonymous(""),
            grace_days: state.config.privacy.deletion_grace_days,
        },
    );
    crate::routes::account::set_session_cookies(&state, response.headers_mut(), None);
    Ok(response)
}
