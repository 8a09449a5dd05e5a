//! Experiment pages: list, new-experiment form, detail with the metrics table, re-run,
//! cancel, delete (after a confirmation page) and the comparison of two runs. Each calls the
//! JSON route's own function and renders its typed answer, so a page shows exactly the
//! numbers the API returns.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use echo_core::analysis::{Caveat, RunMetrics, SourceMetrics};
use echo_core::model::{ExperimentStatus, MatchMode, ProviderKind};
use echo_core::service::SourceService;
use serde::Deserialize;

use super::account::FieldErrors;
use super::view::url_encode;
use super::{Chrome, render};
use crate::audit::AuditContext;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::middleware::RequestId;
use crate::report::ProviderSection;
use crate::routes::brand::{BrandInput, BrandSpec};
use crate::routes::experiments::{
    self as api, BrandChange, CompareQuery, CreateExperimentRequest, ExperimentConfigInput,
    ExperimentDetail, ExperimentSummary, ListQuery, PromptSetChoice, RunView,
};
use crate::routes::{ApiPath, ApiQuery};
use crate::state::AppState;

/// Schedule presets of the form, as cron expressions (UTC).
const PRESETS: &[(&str, &str, &str)] = &[
    ("", "Once, now", ""),
    ("daily", "Daily at 06:00 UTC", "0 6 * * *"),
    ("weekly", "Weekly, Mondays at 06:00 UTC", "0 6 * * MON"),
    ("custom", "Custom cron expression", ""),
];

/// Adaptive-precision choices of the form: value (points), label, half-width. Presets rather
/// than a free number: the useful targets are few, and each label says what it costs at worst.
const PRECISIONS: &[(&str, &str, Option<f64>)] = &[
    ("", "Off: ask every answer", None),
    ("10", "\u{b1}10 points (at most 97 answers)", Some(0.10)),
    ("5", "\u{b1}5 points (at most 385 answers)", Some(0.05)),
    (
        "3",
        "\u{b1}3 points (at most about 1,070 answers)",
        Some(0.03),
    ),
];

/// `?status=&cursor=` of the list page.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ListParams {
    status: String,
    cursor: String,
}

#[derive(Template)]
#[template(path = "experiments.html")]
struct ListPage {
    chrome: Chrome,
    status: String,
    statuses: Vec<&'static str>,
    items: Vec<ExperimentSummary>,
    next: Option<String>,
}

/// `GET /experiments`: the caller's experiments, newest first, filtered by status, one page
/// at a time (the API's cursor).
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<ListParams>,
) -> Result<Response, ApiError> {
    let chrome = Chrome::of(&state, &caller, "experiments").await?;
    let status = (!q.status.is_empty()).then(|| q.status.clone());
    let axum::Json(page) = api::list(
        State(state),
        Extension(caller),
        ApiQuery(ListQuery {
            status: status.clone(),
            cursor: (!q.cursor.is_empty()).then_some(q.cursor),
            limit: Some(20),
        }),
    )
    .await?;
    let next = page.next_cursor.map(|c| {
        let mut url = format!("/experiments?cursor={}", url_encode(&c));
        if let Some(s) = &status {
            url.push_str("&status=");
            url.push_str(&url_encode(s));
        }
        url
    });
    Ok(render(
        StatusCode::OK,
        &ListPage {
            chrome,
            status: q.status,
            statuses: ExperimentStatus::ALL.iter().map(|s| s.as_str()).collect(),
            items: page.items,
            next,
        },
    ))
}

/// What the new-experiment form holds, as typed (redisplayed after a refusal).
#[derive(Debug, Clone)]
pub struct NewForm {
    prompt: String,
    prompt_set: String,
    target: String,
    target_aliases: String,
    match_mode: String,
    competitors: String,
    providers: Vec<String>,
    model: String,
    iterations: String,
    schedule: String,
    cron: String,
    precision: String,
}

impl Default for NewForm {
    fn default() -> Self {
        Self {
            prompt: String::new(),
            prompt_set: String::new(),
            target: String::new(),
            target_aliases: String::new(),
            match_mode: MatchMode::CaseInsensitive.as_str().to_owned(),
            competitors: String::new(),
            providers: vec![ProviderKind::Simulated.as_str().to_owned()],
            model: String::new(),
            iterations: "50".to_owned(),
            schedule: String::new(),
            cron: String::new(),
            precision: String::new(),
        }
    }
}

impl NewForm {
    /// Reads the posted pairs (repeated `providers` keys are the ticked boxes).
    fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        let mut f = Self {
            providers: Vec::new(),
            ..Self::default()
        };
        for (k, v) in pairs {
            match k.as_str() {
                "prompt" => f.prompt = v,
                "prompt_set" => f.prompt_set = v,
                "target" => f.target = v,
                "target_aliases" => f.target_aliases = v,
                "match_mode" => f.match_mode = v,
                "competitors" => f.competitors = v,
                "providers" => f.providers.push(v),
                "model" => f.model = v,
                "iterations" => f.iterations = v,
                "schedule" => f.schedule = v,
                "cron" => f.cron = v,
                "precision" => f.precision = v,
                _ => {}
            }
        }
        f
    }

    /// The API request this form means, or the errors of fields the API cannot name (a
    /// number that is not one, an unknown preset).
    fn to_request(&self) -> Result<CreateExperimentRequest, FieldErrors> {
        let mut errors = FieldErrors::default();
        let iterations = match self.iterations.trim().parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => {
                errors.add("iterations", "Enter a whole number, for example 50.");
                None
            }
        };
        let schedule = match self.schedule.as_str() {
            "custom" => Some(self.cron.trim().to_owned()),
            preset => match PRESETS.iter().find(|p| p.0 == preset) {
                Some((_, _, "")) => None,
                Some((_, _, cron)) => Some((*cron).to_owned()),
                None => {
                    errors.add("schedule", "Choose one of the options.");
                    None
                }
            },
        };
        let precision = match PRECISIONS.iter().find(|p| p.0 == self.precision) {
            Some((_, _, half_width)) => *half_width,
            None => {
                errors.add("precision", "Choose one of the options.");
                None
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        let competitors = parse_brand_lines(&self.competitors);
        // A chosen prompt set replaces the prompt (whatever is typed there is kept for a
        // redisplay, not sent).
        let set = (!self.prompt_set.is_empty()).then(|| PromptSetChoice {
            id: self.prompt_set.clone(),
            version: None,
        });
        Ok(CreateExperimentRequest {
            prompt: set.is_none().then(|| self.prompt.clone()),
            prompt_set: set,
            target_brand: BrandInput::Full(BrandSpec {
                name: self.target.trim().to_owned(),
                aliases: split_list(&self.target_aliases),
                match_mode: Some(self.match_mode.clone()),
            }),
            target_aliases: Vec::new(),
            competitor_brands: competitors,
            iterations,
            config: ExperimentConfigInput {
                providers: self.providers.clone(),
                model: Some(self.model.trim().to_owned()).filter(|m| !m.is_empty()),
                ..ExperimentConfigInput::default()
            },
            schedule,
            precision,
        })
    }

    fn has_provider(&self, p: &str) -> bool {
        self.providers.iter().any(|x| x == p)
    }

    /// Whether a select's `option` is the chosen `value` (for `selected`).
    fn is(&self, value: &str, option: &str) -> bool {
        value == option
    }
}

/// Brands typed one per line, aliases after a colon (`Pipedrive: Pipedrive CRM`).
pub(super) fn parse_brand_lines(text: &str) -> Vec<BrandInput> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|line| match line.split_once(':') {
            Some((name, aliases)) => BrandInput::Full(BrandSpec {
                name: name.trim().to_owned(),
                aliases: split_list(aliases),
                match_mode: None,
            }),
            None => BrandInput::Name(line.to_owned()),
        })
        .collect()
}

/// Brands as [`parse_brand_lines`] reads them back.
pub(super) fn brand_lines(brands: &[BrandSpec]) -> String {
    brands
        .iter()
        .map(|b| {
            if b.aliases.is_empty() {
                b.name.clone()
            } else {
                format!("{}: {}", b.name, b.aliases.join(", "))
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub(super) fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect()
}

#[derive(Template)]
#[template(path = "new_experiment.html")]
struct NewPage {
    chrome: Chrome,
    form: NewForm,
    providers: Vec<&'static str>,
    match_modes: Vec<&'static str>,
    presets: &'static [(&'static str, &'static str, &'static str)],
    precisions: &'static [(&'static str, &'static str, Option<f64>)],
    errors: FieldErrors,
    /// The caller's prompt sets as (id, "name (vN)").
    sets: Vec<(String, String)>,
}

/// The caller's prompt sets for the form's choice (none when they cannot be read: the form
/// still works with a single prompt).
async fn set_choices(state: &AppState, caller: &Caller) -> Vec<(String, String)> {
    echo_core::service::BrandService::from_store(&state.store)
        .sets(caller.user_id)
        .await
        .map(|sets| {
            sets.iter()
                .map(|s| {
                    (
                        s.id.to_string(),
                        format!("{} (v{})", s.name, s.latest_version),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn new_page(
    state: &AppState,
    chrome: Chrome,
    form: NewForm,
    errors: FieldErrors,
    sets: Vec<(String, String)>,
) -> NewPage {
    NewPage {
        sets,
        chrome,
        form,
        providers: state.providers.iter().map(|p| p.as_str()).collect(),
        match_modes: MatchMode::ALL.iter().map(|m| m.as_str()).collect(),
        presets: PRESETS,
        precisions: PRECISIONS,
        errors,
    }
}

/// `GET /experiments/new`.
pub async fn new_form(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    let chrome = Chrome::of(&state, &caller, "new").await?;
    let mut form = NewForm::default();
    // The brand profile pre-fills the brands; everything else keeps its default.
    if let Ok(profile) = echo_core::service::BrandService::from_store(&state.store)
        .profile(caller.user_id)
        .await
    {
        let view = crate::routes::brand::BrandProfileView::of(&profile);
        form.target = view.brand.name.clone();
        form.target_aliases = view.brand.aliases.join(", ");
        if let Some(mode) = view.brand.match_mode {
            form.match_mode = mode;
        }
        form.competitors = brand_lines(&view.default_competitors);
    }
    Ok(render(
        StatusCode::OK,
        &new_page(
            &state,
            chrome,
            form,
            FieldErrors::default(),
            set_choices(&state, &caller).await,
        ),
    ))
}

/// The new-experiment form's fields that can show an error.
const FORM_FIELDS: &[&str] = &[
    "prompt",
    "prompt_set",
    "target",
    "competitors",
    "providers",
    "model",
    "iterations",
    "schedule",
    "cron",
    "precision",
];

/// The API's field names as the form's.
fn form_field(api_name: &str) -> &str {
    match api_name {
        "target_brand" => "target",
        "prompt_set.id" => "prompt_set",
        "competitor_brands" => "competitors",
        "config.providers" => "providers",
        "config.model" | "models" => "model",
        "schedule" => "cron",
        other => other,
    }
}

/// `POST /experiments`: the API's create; a refusal shows the form again as typed.
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(request_id): Extension<RequestId>,
    ctx: AuditContext,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let form = NewForm::from_pairs(pairs);
    let errors = match form.to_request() {
        Ok(request) => {
            match api::create_experiment(&state, &caller, &request_id, &ctx, request).await {
                Ok((submitted, _)) => {
                    return Ok(
                        Redirect::to(&format!("/experiments/{}", submitted.experiment.id))
                            .into_response(),
                    );
                }
                Err(e) if e.status() == StatusCode::UNPROCESSABLE_ENTITY => {
                    FieldErrors::from_api(&e, FORM_FIELDS, form_field)
                }
                Err(e) if e.status().is_client_error() && e.status() != StatusCode::NOT_FOUND => {
                    let mut errors = FieldErrors::default();
                    errors.add("_form", e.detail());
                    errors
                }
                Err(e) => return Err(e),
            }
        }
        Err(errors) => errors,
    };
    let chrome = Chrome::of(&state, &caller, "new").await?;
    Ok(render(
        StatusCode::UNPROCESSABLE_ENTITY,
        &new_page(
            &state,
            chrome,
            form,
            errors,
            set_choices(&state, &caller).await,
        ),
    ))
}

/// One provider's row of the metrics table.
struct ProviderRow {
    section: ProviderSection,
    metrics: Option<RunMetrics>,
    chart: Option<super::chart::BarChart>,
}

#[derive(Template)]
#[template(path = "experiment.html")]
struct DetailPage {
    chrome: Chrome,
    detail: ExperimentDetail,
    rows: Vec<ProviderRow>,
    active: bool,
    comparable: Vec<RunView>,
    /// The web sources cited across all runs; `None` when no answer cites any.
    sources: Option<SourceMetrics>,
}

/// Domains shown in the page's sources table (the API lists them all).
const TOP_DOMAINS: usize = 10;

impl DetailPage {
    fn caveat(&self, c: &Caveat) -> String {
        match c {
            Caveat::NoAnswers => "No successful answers: every rate is undefined.".to_owned(),
            Caveat::FewInformativeAnswers { informative, n } => format!(
                "Only {informative} of {n} answers name any tracked brand: share of voice and rank rest on few answers."
            ),
            Caveat::BrandedPrompt => {
                "The prompt names the target brand, which inflates its visibility.".to_owned()
            }
            Caveat::Unanalysed { count } => {
                format!("{count} answers had no stored analysis and were left out.")
            }
            _ => "See the API's report for this caveat.".to_owned(),
        }
    }
}

/// `GET /experiments/{id}`: status, the per-provider metrics of the latest execution (the
/// API's report), the runs, and the actions.
pub async fn detail(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ctx: AuditContext,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let axum::Json(detail) =
        api::get(State(state.clone()), Extension(caller), ctx, ApiPath(id)).await?;
    let chrome = Chrome::of(&state, &caller, "experiments").await?;
    let experiment_id = detail
        .experiment
        .id
        .parse()
        .map_err(|_| ApiError::not_found("experiment"))?;
    let sources = SourceService::from_store(&state.store)
        .experiment_sources(caller.user_id, experiment_id, None)
        .await
        .map_err(|e| ApiError::from_service(e, "experiment"))?
        .pooled;
    let sources = (sources.citations > 0).then_some(sources);
    let rows = detail
        .report
        .providers
        .iter()
        .map(|s| ProviderRow {
            chart: s
                .metrics
                .as_ref()
                .map(|m| super::chart::visibility_bars(&m.brands)),
            metrics: s.metrics.clone(),
            section: s.clone(),
        })
        .collect();
    let active = matches!(
        detail.experiment.status.as_str(),
        "pending" | "queued" | "running"
    );
    let comparable = detail
        .batch_runs
        .iter()
        .filter(|r| r.visibility_rate.is_some())
        .cloned()
        .collect();
    Ok(render(
        StatusCode::OK,
        &DetailPage {
            chrome,
            detail,
            rows,
            active,
            comparable,
            sources,
        },
    ))
}

/// `POST /experiments/{id}/run`: the API's re-run, then the detail page.
pub async fn rerun(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(request_id): Extension<RequestId>,
    ctx: AuditContext,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let target = format!("/experiments/{}", url_encode(&id));
    api::run(
        State(state),
        Extension(caller),
        Extension(request_id),
        ctx,
        ApiPath(id),
    )
    .await?;
    Ok(Redirect::to(&target).into_response())
}

/// `POST /experiments/{id}/cancel`: the API's cancel, then the detail page.
pub async fn cancel(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ctx: AuditContext,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let target = format!("/experiments/{}", url_encode(&id));
    let _cancelled = api::cancel(State(state), Extension(caller), ctx, ApiPath(id)).await?;
    Ok(Redirect::to(&target).into_response())
}

#[derive(Template)]
#[template(path = "confirm_delete.html")]
struct ConfirmDeletePage {
    chrome: Chrome,
    experiment: ExperimentSummary,
}

/// `GET /experiments/{id}/delete`: the confirmation page (deleting cannot be undone).
pub async fn confirm_delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ctx: AuditContext,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let axum::Json(detail) =
        api::get(State(state.clone()), Extension(caller), ctx, ApiPath(id)).await?;
    let chrome = Chrome::of(&state, &caller, "experiments").await?;
    Ok(render(
        StatusCode::OK,
        &ConfirmDeletePage {
            chrome,
            experiment: detail.experiment,
        },
    ))
}

/// `POST /experiments/{id}/delete`: the API's delete, then the list.
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ctx: AuditContext,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    api::delete(State(state), Extension(caller), ctx, ApiPath(id)).await?;
    Ok(Redirect::to("/experiments").into_response())
}

#[derive(Template)]
#[template(path = "compare.html")]
struct ComparePage {
    chrome: Chrome,
    experiment_id: String,
    brands: Vec<BrandChange>,
    /// The versions when the runs asked different prompt set versions.
    mixed_versions: Option<(String, String)>,
}

impl ComparePage {
    /// The test in words: "up 12.0 points, p = 0.030, likely a real change".
    fn verdict(&self, b: &BrandChange) -> String {
        verdict(b)
    }
}

fn verdict(b: &BrandChange) -> String {
    super::view::change_in_words(b.change.difference, b.change.p_value, "p")
}

/// `GET /experiments/{id}/compare?a=&b=`: the API's significance test, in words.
pub async fn compare(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<CompareQuery>,
) -> Result<Response, ApiError> {
    let axum::Json(comparison) = api::compare(
        State(state.clone()),
        Extension(caller),
        ApiPath(id.clone()),
        ApiQuery(q),
    )
    .await?;
    let chrome = Chrome::of(&state, &caller, "experiments").await?;
    Ok(render(
        StatusCode::OK,
        &ComparePage {
            chrome,
            experiment_id: id,
            mixed_versions: comparison.mixed_set_versions.then(|| {
                let name = |v: Option<u32>| {
                    v.map_or("a single prompt".to_owned(), |v| format!("version {v}"))
                };
                (
                    name(comparison.set_version_a),
                    name(comparison.set_version_b),
                )
            }),
            brands: comparison.brands,
        },
    ))
}

#[cfg(test)]
mod tests {
    use echo_core::analysis::{Proportion, ProportionChange};

    use super::*;

    fn change(a: (u32, u32), b: (u32, u32)) -> BrandChange {
        let change =
            ProportionChange::between(Proportion::new(a.0, a.1), Proportion::new(b.0, b.1));
        BrandChange {
            brand: "HubSpot".into(),
            is_target: true,
            significant: change.p_value.is_some_and(|p| p < 0.05),
            change,
        }
    }

    #[test]
    fn the_test_reads_as_words() {
        let up = verdict(&change((20, 100), (40, 100)));
        assert!(up.starts_with("up 20.0 points, p = 0.00"), "{up}");
        assert!(up.ends_with("likely a real change"), "{up}");
        let noise = verdict(&change((20, 100), (22, 100)));
        assert!(noise.starts_with("up 2.0 points"), "{noise}");
        assert!(noise.ends_with("could be chance"), "{noise}");
        let down = verdict(&change((40, 100), (20, 100)));
        assert!(down.starts_with("down 20.0 points"), "{down}");
    }

    #[test]
    fn the_form_becomes_the_api_request() {
        let form = NewForm::from_pairs(vec![
            ("prompt".into(), "Best CRM?".into()),
            ("target".into(), " HubSpot ".into()),
            ("target_aliases".into(), "HubSpot CRM, Hubspot".into()),
            (
                "competitors".into(),
                "Salesforce\n\nPipedrive: Pipedrive CRM\n".into(),
            ),
            ("providers".into(), "simulated".into()),
            ("providers".into(), "openai".into()),
            ("iterations".into(), "20".into()),
            ("schedule".into(), "weekly".into()),
        ]);
        let r = form.to_request().unwrap();
        assert_eq!(r.iterations, Some(20));
        assert_eq!(r.schedule.as_deref(), Some("0 6 * * MON"));
        assert_eq!(r.config.providers, ["simulated", "openai"]);
        assert_eq!(r.competitor_brands.len(), 2);
        match &r.target_brand {
            BrandInput::Full(spec) => {
                assert_eq!(spec.name, "HubSpot");
                assert_eq!(spec.aliases, ["HubSpot CRM", "Hubspot"]);
            }
            BrandInput::Name(_) => panic!("the target keeps its aliases"),
        }
        let bad = NewForm::from_pairs(vec![("iterations".into(), "many".into())]);
        let errors = bad.to_request().unwrap_err();
        assert!(errors.get("iterations").is_some());
    }
}
