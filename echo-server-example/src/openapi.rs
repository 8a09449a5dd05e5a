//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` attributes and the
//! request and response types, so it cannot drift from the routes (a test checks every route
//! of the router is documented).

use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::routes::{
    account, admin, brand, dashboard, discover, experiments, keys, privacy, runs, system,
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
        runs::answers, runs::events,
        discover::discovered_brands, discover::add_competitor,
        dashboard::stats,
        admin::get_user, admin::audit_logs,
        privacy::policy, privacy::consent, privacy::export, privacy::delete_account,
        system::healthz, system::readyz, system::metrics, system::openapi,
    ),
    components(schemas(Problem, crate::error::InvalidParam, crate::events::ProgressData,
        crate::events::DoneData, crate::events::ErrorData)),
    modifiers(&Security),
)]
pub struct ApiDoc;
