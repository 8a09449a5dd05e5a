//! Brand pages: the brand profile form and the prompt sets it owns (list, create, edit as a
//! new version, read any version, delete). Each calls the JSON route's own function.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use echo_core::model::MatchMode;
use serde::Deserialize;

use super::account::FieldErrors;
use super::experiments::{brand_lines, parse_brand_lines, split_list};
use super::{Chrome, render};
use crate::audit::AuditContext;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::routes::brand::{self, BrandInput, BrandProfileRequest, BrandSpec};
use crate::routes::prompt_sets::{
    self as sets, PromptSetRequest, PromptSetSummary, PromptSetVersionRequest, PromptSetView,
    VersionQuery,
};
use crate::routes::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

/// The brand profile form, as typed.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ProfileForm {
    name: String,
    aliases: String,
    match_mode: String,
    domain: String,
    competitors: String,
}

impl ProfileForm {
    fn to_request(&self) -> BrandProfileRequest {
        BrandProfileRequest {
            brand: BrandInput::Full(BrandSpec {
                name: self.name.trim().to_owned(),
                aliases: split_list(&self.aliases),
                match_mode: Some(self.match_mode.clone()).filter(|m| !m.is_empty()),
            }),
            domain: Some(self.domain.trim().to_owned()).filter(|d| !d.is_empty()),
            default_competitors: parse_brand_lines(&self.competitors),
        }
    }

    /// Whether a select's `option` is the chosen `value` (for `selected`).
    fn is(&self, value: &str, option: &str) -> bool {
        value == option
    }
}

#[derive(Template)]
#[template(path = "brand.html")]
struct ProfilePage {
    chrome: Chrome,
    form: ProfileForm,
    match_modes: Vec<&'static str>,
    errors: FieldErrors,
    saved: bool,
    exists: bool,
}

/// Refusals shown on the form (invalid input, an edit that lost to another); anything else
/// (not found, forbidden, a server error) is the error page.
fn is_form_error(e: &ApiError) -> bool {
    matches!(
        e.status(),
        StatusCode::UNPROCESSABLE_ENTITY | StatusCode::CONFLICT
    )
}

const PROFILE_FIELDS: &[&str] = &["name", "match_mode", "domain", "competitors"];

fn profile_field(api_name: &str) -> &str {
    match api_name {
        "brand" | "brand name" | "aliases" => "name",
        "default_competitors" | "competitor" => "competitors",
        "match mode" | "match_mode" => "match_mode",
        other => other,
    }
}

/// `?saved=1` after a successful save (post, redirect, get).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SavedParam {
    saved: String,
}

/// `GET /settings/brand`: the profile form, filled from the stored profile.
pub async fn profile(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<SavedParam>,
) -> Result<Response, ApiError> {
    let chrome = Chrome::of(&state, &caller, "settings").await?;
    let (form, exists) = match brand::get_profile(State(state.clone()), Extension(caller)).await {
        Ok(axum::Json(p)) => (
            ProfileForm {
                name: p.brand.name.clone(),
                aliases: p.brand.aliases.join(", "),
                match_mode: p.brand.match_mode.clone().unwrap_or_default(),
                domain: p.domain.clone().unwrap_or_default(),
                competitors: brand_lines(&p.default_competitors),
            },
            true,
        ),
        Err(e) if e.status() == StatusCode::NOT_FOUND => (
            ProfileForm {
                match_mode: MatchMode::CaseInsensitive.as_str().to_owned(),
                ..ProfileForm::default()
            },
            false,
        ),
        Err(e) => return Err(e),
    };
    Ok(render(
        StatusCode::OK,
        &ProfilePage {
            chrome,
            form,
            match_modes: MatchMode::ALL.iter().map(|m| m.as_str()).collect(),
            errors: FieldErrors::default(),
            saved: q.saved == "1",
            exists,
        },
    ))
}

/// `POST /settings/brand`: the API's PUT; a refusal shows the form again as typed.
pub async fn save_profile(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ctx: AuditContext,
    Form(form): Form<ProfileForm>,
) -> Result<Response, ApiError> {
    let result = brand::put_profile(
        State(state.clone()),
        Extension(caller),
        ctx,
        ApiJson(form.to_request()),
    )
    .await;
    let errors = match result {
        Ok(_) => return Ok(Redirect::to("/settings/brand?saved=1").into_response()),
        Err(e) if is_form_error(&e) => FieldErrors::from_api(&e, PROFILE_FIELDS, profile_field),
        Err(e) => return Err(e),
    };
    let chrome = Chrome::of(&state, &caller, "settings").await?;
    let exists = brand::get_profile(State(state.clone()), Extension(caller))
        .await
        .is_ok();
    Ok(render(
        StatusCode::UNPROCESSABLE_ENTITY,
        &ProfilePage {
            chrome,
            form,
            match_modes: MatchMode::ALL.iter().map(|m| m.as_str()).collect(),
            errors,
            saved: false,
            exists,
        },
    ))
}

/// A prompt set form, as typed: phrasings one per line.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SetForm {
    name: String,
    prompts: String,
    based_on_version: String,
}

impl SetForm {
    /// The phrasings, one per non-blank line.
    fn phrasings(&self) -> Vec<String> {
        self.prompts
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    }

    fn to_request(&self) -> PromptSetRequest {
        PromptSetRequest {
            name: self.name.clone(),
            prompts: self.phrasings(),
        }
    }

    fn to_version_request(&self) -> PromptSetVersionRequest {
        PromptSetVersionRequest {
            name: self.name.clone(),
            prompts: self.phrasings(),
            based_on_version: self.based_on_version.trim().parse().ok(),
        }
    }
}

const SET_FIELDS: &[&str] = &["name", "prompts"];

fn set_field(api_name: &str) -> &str {
    match api_name {
        "label" => "name",
        "prompt" => "prompts",
        other => other,
    }
}

#[derive(Template)]
#[template(path = "prompt_sets.html")]
struct SetsPage {
    chrome: Chrome,
    sets: Vec<PromptSetSummary>,
    form: SetForm,
    errors: FieldErrors,
}

async fn sets_page(
    state: &AppState,
    caller: Caller,
    form: SetForm,
    errors: FieldErrors,
) -> Result<SetsPage, ApiError> {
    let chrome = Chrome::of(state, &caller, "settings").await?;
    let axum::Json(list) = sets::list(State(state.clone()), Extension(caller)).await?;
    Ok(SetsPage {
        chrome,
        sets: list.prompt_sets,
        form,
        errors,
    })
}

/// `GET /settings/prompt-sets`: the caller's sets and the form for a new one.
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    let page = sets_page(&state, caller, SetForm::default(), FieldErrors::default()).await?;
    Ok(render(StatusCode::OK, &page))
}

/// `POST /settings/prompt-sets`: creates a set; a refusal shows the form again as typed.
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ctx: AuditContext,
    Form(form): Form<SetForm>,
) -> Result<Response, ApiError> {
    match sets::create(
        State(state.clone()),
        Extension(caller),
        ctx,
        ApiJson(form.to_request()),
    )
    .await
    {
        Ok((_, axum::Json(view))) => {
            Ok(Redirect::to(&format!("/settings/prompt-sets/{}", view.id)).into_response())
        }
        Err(e) if is_form_error(&e) => {
            let errors = FieldErrors::from_api(&e, SET_FIELDS, set_field);
            let page = sets_page(&state, caller, form, errors).await?;
            Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
        Err(e) => Err(e),
    }
}

#[derive(Template)]
#[template(path = "prompt_set.html")]
struct SetPage {
    chrome: Chrome,
    set: PromptSetView,
    versions: Vec<u32>,
    form: SetForm,
    errors: FieldErrors,
}

async fn set_page(
    state: &AppState,
    caller: Caller,
    id: &str,
    version: Option<u32>,
    form: Option<SetForm>,
    errors: FieldErrors,
) -> Result<SetPage, ApiError> {
    let chrome = Chrome::of(state, &caller, "settings").await?;
    let axum::Json(set) = sets::get(
        State(state.clone()),
        Extension(caller),
        ApiPath(id.to_owned()),
        ApiQuery(VersionQuery { version }),
    )
    .await?;
    // The edit form starts from the version shown, and says which version it is based on.
    let form = form.unwrap_or_else(|| SetForm {
        name: set.name.clone(),
        prompts: set.prompts.join("\n"),
        based_on_version: set.latest_version.to_string(),
    });
    Ok(SetPage {
        chrome,
        versions: (1..=set.latest_version).rev().collect(),
        set,
        form,
        errors,
    })
}

/// `GET /settings/prompt-sets/{id}?version=`: one version's phrasings, the list of versions,
/// and the edit form.
pub async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
    Query(q): Query<VersionParam>,
) -> Result<Response, ApiError> {
    let version = q.version.trim().parse().ok();
    let page = set_page(&state, caller, &id, version, None, FieldErrors::default()).await?;
    Ok(render(StatusCode::OK, &page))
}

/// `?version=` of the set page, as typed (anything but a number shows the newest).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct VersionParam {
    version: String,
}

/// `POST /settings/prompt-sets/{id}`: stores the edit as a new version.
pub async fn edit(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ctx: AuditContext,
    ApiPath(id): ApiPath<String>,
    Form(form): Form<SetForm>,
) -> Result<Response, ApiError> {
    match sets::new_version(
        State(state.clone()),
        Extension(caller),
        ctx,
        ApiPath(id.clone()),
        ApiJson(form.to_version_request()),
    )
    .await
    {
        Ok((_, axum::Json(view))) => {
            Ok(Redirect::to(&format!("/settings/prompt-sets/{}", view.id)).into_response())
        }
        Err(e) if is_form_error(&e) => {
            let errors = FieldErrors::from_api(&e, SET_FIELDS, set_field);
            let page = set_page(&state, caller, &id, None, Some(form), errors).await?;
            Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
        Err(e) => Err(e),
    }
}

/// `POST /settings/prompt-sets/{id}/delete`.
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ctx: AuditContext,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    sets::delete(State(state), Extension(caller), ctx, ApiPath(id)).await?;
    Ok(Redirect::to("/settings/prompt-sets").into_response())
}
