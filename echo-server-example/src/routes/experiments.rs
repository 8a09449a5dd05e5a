//! Experiments: create (quota debit, experiment and job in one transaction), list, show with
//! metrics, re-run, cancel, delete, and the significance test between two runs.

use std::collections::BTreeMap;
use std::time::Instant;

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use echo_core::analysis::{Proportion, ProportionChange};
use echo_core::auth::LimitKind;
use echo_core::model::{
    BatchRunId, Experiment, ExperimentId, ExperimentStatus, Iterations, PinnedPromptSet, Precision,
    Prompt, ProviderConfig, ProviderKind, Recurrence, Timestamp,
};
use echo_core::runner::CronSchedule;
use echo_core::service::{BrandService, ServiceError, SubmitOptions, Submitted};
use echo_core::store::{ExperimentCursor, ExperimentQuery, PageSize, StoreError};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::brand::{BrandInput, BrandSpec, brand_view};
use super::{ApiJson, ApiPath, ApiQuery, parse_id};
use crate::audit::{AuditContext, audit, audit_action};
use crate::auth::{Caller, add_rate_limit_headers, rate_limited};
use crate::error::ApiError;
use crate::middleware::RequestId;
use crate::report::Report;
use crate::state::AppState;

/// Provider settings of a new experiment (the original API's `config`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfigInput {
    /// Providers to query (`simulated`, `openai`, `anthropic`, `gemini`, `perplexity`,
    /// `openai_compatible`); default `["simulated"]`.
    #[serde(default)]
    pub providers: Vec<String>,
    /// Model for every provider; default a sensible model per provider.
    #[serde(default)]
    #[schema(schema_with = crate::schemas::optional_model)]
    pub model: Option<String>,
    /// Model per provider, overriding `model`.
    #[serde(default)]
    pub models: BTreeMap<String, String>,
    /// Sampling temperature, 0.0 to 2.0 (default 0.7).
    #[serde(default)]
    #[schema(minimum = 0.0, maximum = 2.0)]
    pub temperature: Option<f32>,
}

/// `POST /api/v1/experiments`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateExperimentRequest {
    /// The prompt sent to every provider. Required unless `prompt_set` is given, and absent
    /// when it is.
    #[serde(default)]
    #[schema(schema_with = crate::schemas::prompt)]
    pub prompt: Option<String>,
    /// Run a prompt set of the caller's brand profile instead of one prompt: every phrasing
    /// is sent `iterations` times per provider (default 10). The version is pinned now; later
    /// edits of the set do not change this experiment.
    #[serde(default)]
    pub prompt_set: Option<PromptSetChoice>,
    /// The brand measured: a name or `{name, aliases, match_mode}`.
    pub target_brand: BrandInput,
    /// More aliases of the target (at most 50, with the target's own).
    #[serde(default)]
    #[schema(schema_with = crate::schemas::aliases)]
    pub target_aliases: Vec<String>,
    /// Competitors measured alongside (names or objects; at most 100).
    #[serde(default)]
    #[schema(max_items = 100)]
    pub competitor_brands: Vec<BrandInput>,
    /// Samples per provider (1 to 10,000; default 50); with `prompt_set`, per phrasing (default
    /// 10; phrasings × iterations at most 10,000).
    #[serde(default, deserialize_with = "super::whole_number")]
    #[schema(minimum = 1, maximum = 10_000)]
    pub iterations: Option<u32>,
    /// Providers, model and temperature.
    #[serde(default)]
    pub config: ExperimentConfigInput,
    /// A cron expression (UTC) to run the experiment again on; the first run starts now.
    #[serde(default)]
    #[schema(schema_with = crate::schemas::cron)]
    pub schedule: Option<String>,
    /// Adaptive sampling: each provider's run stops once the 95% interval of the target's
    /// visibility has a half-width of at most this (0.01 to 0.5, e.g. 0.05 for ±5 points);
    /// `iterations` is then only the cap and the quota of the iterations not needed is
    /// refunded. Absent: the server's setting (by default every iteration runs).
    #[serde(default)]
    #[schema(minimum = 0.01, maximum = 0.5)]
    pub precision: Option<f64>,
}

/// Which prompt set an experiment runs.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromptSetChoice {
    /// The set's id (`GET /api/v1/brand/prompt-sets`).
    pub id: String,
    /// The version to pin; the newest when absent.
    #[serde(default, deserialize_with = "super::whole_number")]
    #[schema(minimum = 1, maximum = 4294967295_u64)]
    pub version: Option<u32>,
}

/// The prompt set an experiment runs, as pinned at its creation.
#[derive(Debug, Serialize, ToSchema)]
pub struct PinnedSetView {
    /// The set's id.
    pub id: String,
    /// The version pinned; reports name it.
    pub version: u32,
    /// Its name.
    pub name: String,
    /// Its phrasings; iteration `i` answers phrasing `i mod len`.
    pub prompts: Vec<String>,
    /// Answers per phrasing per provider in one run.
    pub iterations_per_prompt: u32,
}

impl PinnedSetView {
    /// The view of a pinned set.
    pub fn of(p: &echo_core::model::PinnedPromptSet) -> Self {
        Self {
            id: p.set_id.to_string(),
            version: p.version,
            name: p.name.as_str().to_owned(),
            prompts: p.prompts.iter().map(|x| x.as_str().to_owned()).collect(),
            iterations_per_prompt: p.iterations_per_prompt,
        }
    }
}

/// The answer to a create or re-run.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExperimentAccepted {
    /// The experiment.
    pub experiment_id: String,
    /// The queued job that runs it.
    pub job_id: String,
    /// `queued`.
    pub status: String,
    /// Prompts debited from the monthly quota.
    pub prompts_debited: u32,
    /// Next scheduled run, when recurring.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_run_at: Option<Timestamp>,
}

/// One experiment in a listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExperimentSummary {
    /// Id.
    pub id: String,
    /// The prompt.
    pub prompt: String,
    /// The brand measured.
    pub target_brand: BrandSpec,
    /// Competitors.
    pub competitor_brands: Vec<BrandSpec>,
    /// Samples per provider (with a prompt set: phrasings × iterations per prompt).
    pub iterations: u32,
    /// The prompt set version it runs, if any; `prompt` is then its first phrasing.
    pub prompt_set: Option<PinnedSetView>,
    /// Its own adaptive-sampling half-width (e.g. 0.05 for ±5 points); absent when it defers
    /// to the server's setting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub precision: Option<f64>,
    /// Providers.
    pub providers: Vec<ProviderView>,
    /// Status.
    pub status: String,
    /// Cron schedule, when recurring.
    pub schedule: Option<String>,
    /// Next scheduled run.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_run_at: Option<Timestamp>,
    /// Creation time.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// Last change.
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

/// A provider of an experiment.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderView {
    /// Provider.
    pub provider: String,
    /// Model.
    pub model: String,
    /// Temperature.
    pub temperature: f32,
}

impl ExperimentSummary {
    fn of(e: &Experiment) -> Self {
        Self {
            id: e.id.to_string(),
            prompt: e.prompt.as_str().to_owned(),
            target_brand: brand_view(&e.target),
            competitor_brands: e.competitors.iter().map(brand_view).collect(),
            prompt_set: e.prompt_set.as_ref().map(PinnedSetView::of),
            iterations: e.iterations.get(),
            precision: e.precision.map(Precision::get),
            providers: e
                .providers
                .iter()
                .map(|p| ProviderView {
                    provider: p.provider.as_str().to_owned(),
                    model: p.model.clone(),
                    temperature: p.temperature,
                })
                .collect(),
            status: e.status.as_str().to_owned(),
            schedule: e.recurrence.as_ref().map(|r| r.schedule.clone()),
            next_run_at: e.recurrence.as_ref().and_then(|r| r.next_run_at),
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

/// A page of experiments.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExperimentPage {
    /// Newest first.
    pub items: Vec<ExperimentSummary>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

/// Query of `GET /api/v1/experiments`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only this status. Empty means not given, as for every query parameter.
    #[param(schema_with = crate::schemas::experiment_status)]
    pub status: Option<String>,
    /// From a previous page's `next_cursor`.
    #[param(schema_with = crate::schemas::experiment_cursor)]
    pub cursor: Option<String>,
    /// Rows per page (1 to 100, default 20); others are refused with 422.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// An experiment with its batch runs and their metrics.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExperimentDetail {
    /// The experiment.
    pub experiment: ExperimentSummary,
    /// The latest execution's report per provider, with intervals (the README's JSON report).
    #[schema(value_type = Object)]
    pub report: Report,
    /// Every batch run, oldest first (id, provider, status, counts), for `compare`.
    pub batch_runs: Vec<RunView>,
}

/// One batch run.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RunView {
    /// Id.
    pub id: String,
    /// Provider.
    pub provider: String,
    /// Model requested.
    pub model: String,
    /// Status.
    pub status: String,
    /// Planned iterations.
    pub planned: u32,
    /// Recorded iterations.
    pub recorded: u32,
    /// Successful iterations.
    pub succeeded: u32,
    /// Whether adaptive sampling (the experiment's `precision` or the server's) ended the run
    /// before `planned`: completed with fewer recorded, the rest refunded.
    pub stopped_early: bool,
    /// Target visibility rate (0..1), when computed.
    pub visibility_rate: Option<f64>,
    /// Creation time.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// End time.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub completed_at: Option<Timestamp>,
}

fn parse_provider(name: &str) -> Result<ProviderKind, ApiError> {
    name.trim()
        .to_lowercase()
        .replace('-', "_")
        .parse()
        .map_err(|_| {
            let valid: Vec<&str> = ProviderKind::ALL.iter().map(|k| k.as_str()).collect();
            ApiError::invalid(
                "config.providers",
                format!(
                    "has unknown provider {name:?}; expected one of {}",
                    valid.join(", ")
                ),
            )
        })
}

/// The prompt set version the request names, pinned for the caller. A set (or version) that
/// is not the caller's is 404, as every other user's object is, whether the id is malformed,
/// unknown or someone else's.
async fn pin_requested_set(
    state: &AppState,
    caller: &Caller,
    body: &CreateExperimentRequest,
) -> Result<Option<PinnedPromptSet>, ApiError> {
    let Some(choice) = &body.prompt_set else {
        return Ok(None);
    };
    let id = choice
        .id
        .parse()
        .map_err(|_| ApiError::not_found("prompt set"))?;
    let per_prompt = body.iterations.unwrap_or(10);
    BrandService::from_store(&state.store)
        .pin(caller.user_id, id, choice.version, per_prompt)
        .await
        .map(Some)
        .map_err(|e| match e {
            ServiceError::Store(StoreError::NotFound { .. }) => ApiError::not_found("prompt set"),
            e => ApiError::from_service(e, "prompt set"),
        })
}

fn build_experiment(
    state: &AppState,
    caller: &Caller,
    body: CreateExperimentRequest,
    pinned: Option<PinnedPromptSet>,
    now: Timestamp,
) -> Result<Experiment, ApiError> {
    let prompt = match (&body.prompt, &pinned) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "prompt",
                "must be absent when prompt_set is given",
            ));
        }
        (None, None) => {
            return Err(ApiError::invalid(
                "prompt",
                "is required unless prompt_set is given",
            ));
        }
        (Some(p), None) => Prompt::parse(p)?,
        (None, Some(set)) => set
            .prompts
            .first()
            .cloned()
            .ok_or_else(|| ApiError::invalid("prompt_set", "has no phrasings"))?,
    };
    let target = body
        .target_brand
        .into_brand(&body.target_aliases, "target_brand")?;
    if body.competitor_brands.len() > Experiment::MAX_COMPETITORS {
        return Err(ApiError::invalid(
            "competitor_brands",
            format!("must be at most {}", Experiment::MAX_COMPETITORS),
        ));
    }
    let competitors = body
        .competitor_brands
        .into_iter()
        .map(|c| c.into_brand(&[], "competitor_brands"))
        .collect::<Result<Vec<_>, _>>()?;
    let iterations = Iterations::new(body.iterations.unwrap_or(50))?;
    let names = if body.config.providers.is_empty() {
        vec!["simulated".to_owned()]
    } else {
        body.config.providers
    };
    let mut kinds: Vec<ProviderKind> = Vec::new();
    for name in &names {
        let kind = parse_provider(name)?;
        if !state.providers.contains(&kind) {
            return Err(ApiError::invalid(
                "config.providers",
                format!("names {kind}, which is not configured on this server"),
            ));
        }
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    let mut models = BTreeMap::new();
    for (name, model) in body.config.models {
        models.insert(parse_provider(&name)?, model);
    }
    let temperature = body.config.temperature.unwrap_or(0.7);
    let providers = kinds
        .into_iter()
        .map(|provider| ProviderConfig {
            provider,
            model: models
                .get(&provider)
                .cloned()
                .or_else(|| body.config.model.clone())
                .unwrap_or_else(|| crate::providers::default_model(provider).to_owned()),
            temperature,
        })
        .collect();
    let recurrence = match body.schedule {
        Some(expr) => {
            let schedule = CronSchedule::parse(&expr)?;
            Some(Recurrence {
                schedule: schedule.as_str().to_owned(),
                next_run_at: schedule.next_after(now),
            })
        }
        None => None,
    };
    let precision = body.precision.map(Precision::new).transpose()?;
    let mut experiment = Experiment {
        id: ExperimentId::new(),
        user_id: caller.user_id,
        prompt,
        target,
        competitors,
        iterations,
        providers,
        status: ExperimentStatus::Queued,
        recurrence,
        prompt_set: None,
        precision,
        created_at: now,
        updated_at: now,
    };
    if let Some(set) = pinned {
        experiment.run_prompt_set(set)?;
    }
    // The service validates it before anything is stored.
    Ok(experiment)
}

/// The caller's experiment `id` (a path segment): 404 for garbage, missing or another's.
async fn owned_experiment(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<Experiment, ApiError> {
    let id: ExperimentId = parse_id(id, "experiment")?;
    state
        .store
        .get_experiment(caller.user_id, id)
        .await
        .map_err(|e| ApiError::from_store(e, "experiment"))
}

/// The experiment-creation limit (creations and re-runs spend provider money).
fn check_creation_limit(
    state: &AppState,
    caller: &Caller,
) -> Result<echo_core::auth::RateLimitDecision, ApiError> {
    let decision = state.limiter.check(
        caller.user_id,
        caller.tier,
        LimitKind::ExperimentCreation,
        Instant::now(),
    );
    if decision.allowed {
        Ok(decision)
    } else {
        tracing::warn!(event = "rate_limited", user_id = %caller.user_id, policy = decision.policy, "rate limited");
        Err(rate_limited(&[decision]))
    }
}

/// The 202 of a queued run, with the experiment-creation limit's headers.
fn accepted(submitted: &Submitted, decision: echo_core::auth::RateLimitDecision) -> Response {
    let body = ExperimentAccepted {
        experiment_id: submitted.experiment.id.to_string(),
        job_id: submitted.job_id.to_string(),
        status: ExperimentStatus::Queued.as_str().to_owned(),
        prompts_debited: submitted.prompts_debited,
        next_run_at: submitted
            .experiment
            .recurrence
            .as_ref()
            .and_then(|r| r.next_run_at),
    };
    let mut response = (StatusCode::ACCEPTED, axum::Json(body)).into_response();
    add_rate_limit_headers(response.headers_mut(), &[decision]);
    response
}

/// The problem for a refused submission, logging quota refusals (an operator signal).
fn refusal(e: ServiceError, caller: &Caller) -> ApiError {
    if matches!(
        e,
        ServiceError::Store(echo_core::store::StoreError::QuotaExceeded { .. })
    ) {
        tracing::warn!(event = "quota_exceeded", user_id = %caller.user_id, "quota exceeded");
    }
    ApiError::from_service(e, "experiment")
}

fn submit_options(request_id: &RequestId, now: Timestamp) -> SubmitOptions {
    SubmitOptions {
        now: Some(now),
        request_id: Some(request_id.0.clone()),
    }
}

/// Creates an experiment and queues its first run.
#[utoipa::path(post, path = "/api/v1/experiments", tag = "experiments",
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])),
    request_body = CreateExperimentRequest,
    responses((status = 202, description = "Stored and queued", body = ExperimentAccepted),
        (status = 400, description = "Malformed JSON", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 402, description = "Over the monthly quota; nothing stored", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Data-processing consent not given (consent-required); nothing stored", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 404, description = "`prompt_set` names no prompt set (or version) of yours; nothing stored", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid input", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Experiment-creation rate limit", body = crate::openapi::Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(request_id): Extension<RequestId>,
    ctx: AuditContext,
    ApiJson(body): ApiJson<CreateExperimentRequest>,
) -> Result<Response, ApiError> {
    let (submitted, decision) = create_experiment(&state, &caller, &request_id, &ctx, body).await?;
    Ok(accepted(&submitted, decision))
}

/// Validates, stores and queues a new experiment (the rules of `POST /api/v1/experiments`,
/// shared with the new-experiment page): the creation rate limit, the configured providers,
/// the service's quota debit, and the audit event.
pub async fn create_experiment(
    state: &AppState,
    caller: &Caller,
    request_id: &RequestId,
    ctx: &AuditContext,
    body: CreateExperimentRequest,
) -> Result<(Submitted, echo_core::auth::RateLimitDecision), ApiError> {
    let decision = check_creation_limit(state, caller)?;
    let now = Timestamp::now();
    let pinned = pin_requested_set(state, caller, &body).await?;
    let experiment = build_experiment(state, caller, body, pinned, now)?;
    let submitted = state
        .experiments
        .submit_experiment(experiment, submit_options(request_id, now))
        .await
        .map_err(|e| refusal(e, caller))?;
    audit(
        state,
        ctx,
        Some(caller.user_id),
        "create_experiment",
        "experiment",
        Some(submitted.experiment.id.to_string()),
        serde_json::json!({"prompts_debited": submitted.prompts_debited}),
    )
    .await;
    Ok((submitted, decision))
}

/// Lists the caller's experiments, newest first.
#[utoipa::path(get, path = "/api/v1/experiments", tag = "experiments",
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])),
    params(ListQuery),
    responses((status = 200, description = "A page", body = ExperimentPage),
        (status = 422, description = "Bad status, cursor or limit", body = crate::openapi::Problem, content_type = "application/problem+json")))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<axum::Json<ExperimentPage>, ApiError> {
    let query = ExperimentQuery {
        status: q.status.as_deref().map(str::parse).transpose()?,
        after: q
            .cursor
            .as_deref()
            .map(ExperimentCursor::decode)
            .transpose()?,
        limit: q.limit.map(PageSize::new).transpose()?.unwrap_or_default(),
    };
    let page = state
        .store
        .list_experiments(caller.user_id, &query)
        .await
        .map_err(|e| ApiError::from_store(e, "experiment"))?;
    Ok(axum::Json(ExperimentPage {
        items: page.items.iter().map(ExperimentSummary::of).collect(),
        next_cursor: page.next_cursor.map(|c| c.encode()),
    }))
}

/// One experiment with its runs' metrics and intervals.
#[utoipa::path(get, path = "/api/v1/experiments/{id}", tag = "experiments",
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])),
    params(("id" = String, Path, description = "Experiment id")),
    responses((status = 200, description = "The experiment", body = ExperimentDetail),
        (status = 404, description = "No such experiment of yours", body = crate::openapi::Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ctx: AuditContext,
    ApiPath(id): ApiPath<String>,
) -> Result<axum::Json<ExperimentDetail>, ApiError> {
    let experiment = owned_experiment(&state, &caller, &id).await?;
    let id = experiment.id;
    let runs = state
        .store
        .list_batch_runs(caller.user_id, id)
        .await
        .map_err(|e| ApiError::from_store(e, "experiment"))?;
    // The report covers the latest execution: one run per provider, the newest.
    let mut latest: BTreeMap<ProviderKind, &echo_core::model::BatchRun> = BTreeMap::new();
    for run in &runs {
        latest.insert(run.provider, run);
    }
    let latest: Vec<_> = latest.into_values().cloned().collect();
    let report = Report::new(&experiment, &latest).map_err(|_| ApiError::internal())?;
    audit_action(
        &state,
        &ctx,
        caller.user_id,
        "view_experiment",
        "experiment",
        id,
    )
    .await;
    Ok(axum::Json(ExperimentDetail {
        experiment: ExperimentSummary::of(&experiment),
        report,
        batch_runs: runs
            .iter()
            .map(|r| RunView {
                id: r.id.to_string(),
                provider: r.provider.as_str().to_owned(),
                model: r.model.clone(),
                status: r.status.as_str().to_owned(),
                planned: r.iterations_planned,
                recorded: r.iterations_recorded,
                succeeded: r.iterations_succeeded,
                stopped_early: r.stopped_early(),
                visibility_rate: r.visibility_rate,
                created_at: r.created_at,
                completed_at: r.completed_at,
            })
            .collect(),
    }))
}

/// Queues another run of an experiment (debiting the quota).
#[utoipa::path(post, path = "/api/v1/experiments/{id}/run", tag = "experiments",
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])),
    params(("id" = String, Path, description = "Experiment id")),
    responses((status = 202, description = "Queued", body = ExperimentAccepted),
        (status = 402, description = "Over the monthly quota", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Data-processing consent not given (consent-required); nothing stored", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such experiment of yours", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Queued, running or cancelled", body = crate::openapi::Problem, content_type = "application/problem+json")))]
pub async fn run(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(request_id): Extension<RequestId>,
    ctx: AuditContext,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let id: ExperimentId = parse_id(&id, "experiment")?;
    // The limit is checked after ownership is known, so probing ids spends no limit.
    state
        .store
        .get_experiment(caller.user_id, id)
        .await
        .map_err(|e| ApiError::from_store(e, "experiment"))?;
    let decision = check_creation_limit(&state, &caller)?;
    let submitted = state
        .experiments
        .rerun_with(
            caller.user_id,
            id,
            submit_options(&request_id, Timestamp::now()),
        )
        .await
        .map_err(|e| refusal(e, &caller))?;
    audit(
        &state,
        &ctx,
        Some(caller.user_id),
        "run_experiment",
        "experiment",
        Some(id.to_string()),
        serde_json::json!({"prompts_debited": submitted.prompts_debited}),
    )
    .await;
    Ok(accepted(&submitted, decision))
}

/// The state after a cancel.
#[derive(Debug, Serialize, ToSchema)]
pub struct CancelView {
    /// The experiment.
    pub experiment_id: String,
    /// `cancelled`.
    pub status: String,
}

/// Cancels an experiment: a queued or running execution stops (the answers so far are kept
/// and the unrun iterations refunded) and a recurrence ends.
#[utoipa::path(post, path = "/api/v1/experiments/{id}/cancel", tag = "experiments",
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])),
    params(("id" = String, Path, description = "Experiment id")),
    responses((status = 200, description = "Cancelled", body = CancelView),
        (status = 404, description = "No such experiment of yours", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already finished and not recurring", body = crate::openapi::Problem, content_type = "application/problem+json")))]
pub async fn cancel(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ctx: AuditContext,
    ApiPath(id): ApiPath<String>,
) -> Result<axum::Json<CancelView>, ApiError> {
    let id: ExperimentId = parse_id(&id, "experiment")?;
    state
        .experiments
        .cancel(caller.user_id, id)
        .await
        .map_err(|e| ApiError::from_service(e, "experiment"))?;
    audit_action(
        &state,
        &ctx,
        caller.user_id,
        "cancel_experiment",
        "experiment",
        id,
    )
    .await;
    Ok(axum::Json(CancelView {
        experiment_id: id.to_string(),
        status: ExperimentStatus::Cancelled.as_str().to_owned(),
    }))
}

/// Deletes an experiment with its runs and answers.
#[utoipa::path(delete, path = "/api/v1/experiments/{id}", tag = "experiments",
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])),
    params(("id" = String, Path, description = "Experiment id")),
    responses((status = 204, description = "Deleted"),
        (status = 404, description = "No such experiment of yours", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Queued or running: cancel it first", body = crate::openapi::Problem, content_type = "application/problem+json")))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ctx: AuditContext,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let id: ExperimentId = parse_id(&id, "experiment")?;
    state
        .experiments
        .delete(caller.user_id, id)
        .await
        .map_err(|e| ApiError::from_service(e, "experiment"))?;
    audit_action(
        &state,
        &ctx,
        caller.user_id,
        "delete_experiment",
        "experiment",
        id,
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Query of `compare`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CompareQuery {
    /// The earlier batch run (its id from the experiment's `batch_runs`).
    #[param(min_length = 1, format = Uuid)]
    pub a: String,
    /// The later batch run.
    #[param(min_length = 1, format = Uuid)]
    pub b: String,
}

/// One brand's visibility in two runs and the test of the difference.
#[derive(Debug, Serialize, ToSchema)]
pub struct BrandChange {
    /// Brand.
    pub brand: String,
    /// Whether it is the experiment's target.
    pub is_target: bool,
    /// Visibility in run `a` and `b`, the difference, two-proportion z-test and Newcombe
    /// 95% interval of the difference.
    #[schema(value_type = Object)]
    pub change: ProportionChange,
    /// `p < 0.05`.
    pub significant: bool,
}

/// Two runs compared.
#[derive(Debug, Serialize, ToSchema)]
pub struct Comparison {
    /// Run `a`.
    pub a: String,
    /// Run `b`.
    pub b: String,
    /// Per brand present in both runs, target first.
    pub brands: Vec<BrandChange>,
    /// The prompt set version run `a` asked (absent for a single-prompt experiment).
    pub set_version_a: Option<u32>,
    /// The prompt set version run `b` asked.
    pub set_version_b: Option<u32>,
    /// True when the runs asked different prompt set versions (or one asked none): a change
    /// may then come from the wording rather than the assistant, and is flagged, never
    /// silently mixed.
    pub mixed_set_versions: bool,
}

/// Compares the visibility of two of the experiment's runs: is the change significant?
#[utoipa::path(get, path = "/api/v1/experiments/{id}/compare", tag = "experiments",
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])),
    params(("id" = String, Path, description = "Experiment id"), CompareQuery),
    responses((status = 200, description = "The comparison", body = Comparison),
        (status = 404, description = "No such experiment or run of yours", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 409, description = "A run has no metrics yet", body = crate::openapi::Problem, content_type = "application/problem+json")))]
pub async fn compare(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<CompareQuery>,
) -> Result<axum::Json<Comparison>, ApiError> {
    let id: ExperimentId = parse_id(&id, "experiment")?;
    let mut metrics = Vec::with_capacity(2);
    let mut versions = Vec::with_capacity(2);
    for run_id in [&q.a, &q.b] {
        let run_id: BatchRunId = parse_id(run_id, "batch run")?;
        let run = state
            .store
            .get_batch_run(caller.user_id, run_id)
            .await
            .map_err(|e| ApiError::from_store(e, "batch run"))?;
        if run.experiment_id != id {
            return Err(ApiError::not_found("batch run"));
        }
        let stored = run
            .metrics
            .ok_or_else(|| ApiError::conflict(format!("batch run {run_id} has no metrics yet")))?;
        versions.push(stored.prompt_set.as_ref().map(|s| (s.set_id, s.version)));
        metrics.push(stored.metrics);
    }
    let (a, b) = (&metrics[0], &metrics[1]);
    let brands = a
        .brands
        .iter()
        .filter_map(|ba| {
            let bb = b.brands.iter().find(|bb| bb.brand == ba.brand)?;
            let change = ProportionChange::between(
                Proportion::new(ba.visibility.successes, ba.visibility.n),
                Proportion::new(bb.visibility.successes, bb.visibility.n),
            );
            Some(BrandChange {
                brand: ba.brand.clone(),
                is_target: ba.is_target,
                significant: change.p_value.is_some_and(|p| p < 0.05),
                change,
            })
        })
        .collect();
    Ok(axum::Json(Comparison {
        a: q.a,
        b: q.b,
        brands,
        set_version_a: versions[0].map(|v| v.1),
        set_version_b: versions[1].map(|v| v.1),
        mixed_set_versions: versions[0] != versions[1],
    }))
}
