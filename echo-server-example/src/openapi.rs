//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` attributes and the
//! request and response types, so it cannot drift from the routes (a test checks every route
//! of the router is documented).

use serde::Serialize;
use utoipa::openapi::RefOr;
use utoipa::openapi::content::Content;
use utoipa::openapi::header::Header;
use utoipa::openapi::path::{Operation, ParameterIn, PathItem};
use utoipa::openapi::response::Response;
use utoipa::openapi::schema::{AnyOfBuilder, Object, ObjectBuilder, Ref, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::error::PROBLEM_JSON;

use crate::routes::{
    account, admin, alerts, brand, dashboard, discover, experiments, export, keys, privacy,
    prompt_sets, runs, sources, system, webhooks,
};

/// An error body (RFC 9457 problem details), `application/problem+json`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// Stable problem type, `urn:echo:problem:<slug>`: switch on this.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the type.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What happened, for people.
    pub detail: String,
    /// Fields that failed validation.
    #[serde(rename = "invalid-params")]
    pub invalid_params: Option<Vec<crate::error::InvalidParam>>,
    /// Seconds to wait before retrying (429, 503).
    pub retry_after: Option<u64>,
}

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("__Host-echo_session"))),
        );
    }
}

/// The errors every operation shares, documented once as `#/components/responses/<name>` and
/// added to each operation by what it can meet: a route only documents its own errors (a 404
/// for a missing experiment, a 409 for a state conflict) and inherits these.
///
/// | status | component | operations |
/// |---|---|---|
/// | 400 | `MalformedBody` | with a JSON body: not JSON |
/// | 401 | `Unauthenticated` | with `security`: no or bad credentials |
/// | 403 | `Forbidden` | unsafe methods (POST, PUT, PATCH, DELETE): cross-site (`Sec-Fetch-Site`) or a cookie session without its CSRF token |
/// | 404 | `NotFound` | with a path parameter: nothing of yours by that id |
/// | 408 | `Timeout` | all: the server's request time limit |
/// | 413 | `PayloadTooLarge` | with a JSON body: over the body limit |
/// | 415 | `UnsupportedMediaType` | with a JSON body: not `application/json` |
/// | 422 | `InvalidInput` | with a body or query parameters: a value outside its constraints |
/// | 429 | `RateLimited` | with `security` or a body: the account's, the address's or the route's limit |
/// | 500 | `Internal` | all |
/// | 503 | `Unavailable` | with `security` or a body: the database is unavailable |
///
/// New routes follow by declaring `security`, `params` and `request_body` as usual.
struct CommonErrors;

impl CommonErrors {
    const ALL: [(&'static str, &'static str, &'static str); 11] = [
        (
            "400",
            "MalformedBody",
            "The body is not valid JSON (malformed-body)",
        ),
        (
            "401",
            "Unauthenticated",
            "No credentials, or credentials not valid now (unauthenticated)",
        ),
        (
            "403",
            "Forbidden",
            "A cross-site request, or a cookie session without its X-CSRF-Token (csrf-check-failed)",
        ),
        ("404", "NotFound", "No such resource of yours (not-found)"),
        (
            "408",
            "Timeout",
            "The request took longer than the server allows (request-timeout)",
        ),
        (
            "413",
            "PayloadTooLarge",
            "The body is larger than the server accepts (payload-too-large)",
        ),
        (
            "415",
            "UnsupportedMediaType",
            "The body is not sent as application/json (unsupported-media-type)",
        ),
        (
            "422",
            "InvalidInput",
            "A field or query parameter fails validation; invalid-params names it (invalid-input)",
        ),
        (
            "429",
            "RateLimited",
            "Too many requests; retry after Retry-After (rate-limited)",
        ),
        (
            "500",
            "Internal",
            "An unexpected error; the request id identifies it in the logs (internal-error)",
        ),
        (
            "503",
            "Unavailable",
            "The database is temporarily unavailable; retry after Retry-After (service-unavailable)",
        ),
    ];

    fn response(status: &str, description: &str) -> Response {
        let mut response = Response::new(description);
        response.content.insert(
            PROBLEM_JSON.to_owned(),
            Content::new(Some(Ref::from_schema_name("Problem"))).into(),
        );
        let header = |kind: Type, description: &str| {
            let mut h = Header::new(Object::with_type(kind));
            h.description = Some(description.to_owned());
            RefOr::T(h)
        };
        match status {
            "401" => {
                response.headers.insert(
                    "WWW-Authenticate".to_owned(),
                    header(Type::String, "The authentication scheme"),
                );
            }
            "429" | "503" => {
                response.headers.insert(
                    "Retry-After".to_owned(),
                    header(Type::Integer, "Seconds to wait before retrying"),
                );
            }
            _ => {}
        }
        response
    }

    /// The shared statuses `op` can answer; `unsafe_method` for POST, PUT, PATCH and DELETE.
    fn statuses(unsafe_method: bool, op: &Operation) -> Vec<&'static str> {
        let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
        let body = op.request_body.is_some();
        let params = op.parameters.iter().flatten().filter_map(|p| match p {
            RefOr::T(p) => Some(&p.parameter_in),
            RefOr::Ref(_) => None,
        });
        let (mut path, mut query) = (false, false);
        for place in params {
            path |= matches!(place, ParameterIn::Path);
            query |= matches!(place, ParameterIn::Query);
        }
        let mut out = vec!["408", "500"];
        if body {
            out.extend(["400", "413", "415", "422"]);
        }
        if query {
            out.push("422");
        }
        if secured {
            out.push("401");
        }
        if secured || body {
            out.extend(["429", "503"]);
        }
        if unsafe_method {
            out.push("403");
        }
        if path {
            out.push("404");
        }
        out
    }
}

/// The operations of `item`, each with whether its method is unsafe (CSRF-checked).
fn operations(item: &mut PathItem) -> impl Iterator<Item = (bool, &mut Operation)> {
    [
        (false, &mut item.get),
        (true, &mut item.put),
        (true, &mut item.post),
        (true, &mut item.delete),
        (true, &mut item.patch),
    ]
    .into_iter()
    .filter_map(|(unsafe_method, op)| op.as_mut().map(|op| (unsafe_method, op)))
}

/// `ApiQuery` reads an empty value (`?status=`) as "not given": each optional query
/// parameter's schema also admits the empty string, so the document says so too.
fn admit_empty_query_values(op: &mut Operation) {
    for param in op.parameters.iter_mut().flatten() {
        let RefOr::T(param) = param else { continue };
        if !matches!(param.parameter_in, ParameterIn::Query)
            || matches!(param.required, utoipa::openapi::Required::True)
        {
            continue;
        }
        if let Some(schema) = param.schema.take() {
            let empty = ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(0))
                .description(Some("Empty: the same as leaving the parameter out"));
            param.schema = Some(AnyOfBuilder::new().item(schema).item(empty).into());
        }
    }
}

impl Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (status, name, description) in Self::ALL {
            components
                .responses
                .insert(name.to_owned(), Self::response(status, description).into());
        }
        for item in openapi.paths.paths.values_mut() {
            for (unsafe_method, op) in operations(item) {
                admit_empty_query_values(op);
                for status in Self::statuses(unsafe_method, op) {
                    let Some((_, name, _)) = Self::ALL.iter().find(|(s, _, _)| *s == status) else {
                        continue;
                    };
                    // A route's own description of a status (e.g. "no such experiment")
                    // says more than the shared one.
                    op.responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| Ref::from_response_name(*name).into());
                }
            }
        }
    }
}

/// The document.
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "Echo API", description = "Measure how AI assistants talk about brands."),
    paths(
        account::register, account::login, account::logout, account::csrf_token, account::me,
        account::verify_email, account::resend_verification,
        keys::create, keys::list, keys::revoke, keys::rotate,
        brand::get_profile, brand::put_profile,
        experiments::create, experiments::list, experiments::get, experiments::run,
        experiments::cancel, experiments::delete, experiments::compare,
        runs::answers, runs::events, sources::sources,
        discover::discovered_brands, discover::add_competitor,
        export::runs_csv, export::answers_csv,
        prompt_sets::create, prompt_sets::list, prompt_sets::get, prompt_sets::new_version,
        prompt_sets::delete,
        dashboard::stats, dashboard::trend,
        alerts::list,
        webhooks::create, webhooks::list, webhooks::get, webhooks::delete, webhooks::ping,
        webhooks::deliveries,
        admin::get_user, admin::audit_logs,
        privacy::policy, privacy::consent, privacy::export, privacy::delete_account,
        system::healthz, system::readyz, system::metrics, system::openapi,
    ),
    components(schemas(Problem, crate::error::InvalidParam, crate::events::ProgressData,
        crate::events::DoneData, crate::events::ErrorData)),
    modifiers(&Security, &CommonErrors),
)]
pub struct ApiDoc;

/// The document this server serves: [`ApiDoc`] with what depends on its configuration (the
/// session cookie's name, the privacy-policy version a registration must accept, the providers
/// an experiment may name) and the constraints a derive cannot express (`aliases_only` needs
/// aliases).
pub fn document(state: &crate::state::AppState) -> serde_json::Value {
    use serde_json::{Value, json};
    let Ok(mut doc) = serde_json::to_value(ApiDoc::openapi()) else {
        return Value::Null;
    };
    let policy_version = state.config.privacy.policy_version.as_str();
    let policy_required = state.config.privacy.require_policy_on_register;
    doc["components"]["securitySchemes"]["cookie"]["name"] =
        json!(crate::auth::session_cookie_name(state));
    let schemas = &mut doc["components"]["schemas"];
    let version = |nullable: bool| {
        let mut values = vec![json!(policy_version)];
        if nullable {
            values.push(Value::Null);
        }
        json!({
            "type": if nullable { json!(["string", "null"]) } else { json!("string") },
            "enum": values,
            "description": "The current privacy-policy version (GET /api/v1/privacy-policy)",
        })
    };
    schemas["RegisterRequest"]["properties"]["privacy_policy_version"] = version(!policy_required);
    if policy_required && let Some(required) = schemas["RegisterRequest"]["required"].as_array_mut()
    {
        required.push(json!("privacy_policy_version"));
    }
    schemas["ConsentRequest"]["properties"]["privacy_policy_version"] = version(true);

    let names: Vec<&str> = state.providers.iter().map(|p| p.as_str()).collect();
    let config = &mut schemas["ExperimentConfigInput"]["properties"];
    config["providers"]["items"] = json!({"type": "string", "enum": names});
    config["providers"]["description"] = json!(
        "Providers to query, among those this server has configured; default [\"simulated\"]"
    );
    config["models"]["propertyNames"] = json!({"enum": names});
    config["models"]["additionalProperties"] =
        serde_json::to_value(crate::schemas::model()).unwrap_or(Value::Bool(true));

    // Exactly one of `prompt` and `prompt_set` (a null set is no set): the one rule of the
    // request that its properties alone cannot say.
    schemas["CreateExperimentRequest"]["anyOf"] = json!([
        {
            "required": ["prompt"],
            "not": {"required": ["prompt_set"], "properties": {"prompt_set": {"type": "object"}}},
        },
        {
            "required": ["prompt_set"],
            "properties": {"prompt_set": {"type": "object"}},
            "not": {"required": ["prompt"]},
        },
    ]);

    schemas["BrandSpec"]["if"] = json!({
        "properties": {"match_mode": {"const": "aliases_only"}},
        "required": ["match_mode"],
    });
    schemas["BrandSpec"]["then"] = json!({
        "properties": {"aliases": {"minItems": 1}},
        "required": ["aliases"],
    });

    // A client reads an event stream as events, each a name and its data as text; the schema
    // describes one such event (the data is JSON: ProgressData, DoneData or ErrorData).
    doc["paths"]["/api/v1/experiments/{id}/events"]["get"]["responses"]["200"]["content"]["text/event-stream"]
        ["schema"] = json!({
        "type": "object",
        "properties": {
            "event": {"type": "string", "enum": ["progress", "done", "error"]},
            "data": {
                "type": "string",
                "description": "JSON: a ProgressData (progress), DoneData (done) or ErrorData (error)",
            },
        },
        "required": ["event", "data"],
    });
    doc
}
