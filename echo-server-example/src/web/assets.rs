//! Static assets, embedded in the binary and served under content-hashed names
//! (`app.3f9a…c1.css`): a changed file gets a new URL, so every asset can be cached forever
//! (`immutable`) and a deploy never serves a stale stylesheet beside new HTML.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// Caching of hashed assets: one year, never revalidated.
pub const ASSET_CACHE: &str = "public, max-age=31536000, immutable";

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    /// The source name (`app.css`).
    pub name: &'static str,
    /// The served name, with the first 16 hex digits of the content's SHA-256.
    pub hashed: String,
    /// The URL path (`/assets/<hashed>`).
    pub url: String,
    /// The media type.
    pub content_type: &'static str,
    /// The bytes.
    pub body: &'static [u8],
}

const FILES: &[(&str, &str, &[u8])] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/app.css"),
    ),
    (
        "page.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/page.js"),
    ),
    (
        "chart.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/chart.js"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../../assets/favicon.svg"),
    ),
];

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|&(name, content_type, body)| {
            let digest = hex::encode(Sha256::digest(body));
            let (stem, ext) = name.rsplit_once('.').unwrap_or((name, ""));
            let hashed = format!("{stem}.{}.{ext}", &digest[..16]);
            Asset {
                name,
                url: format!("/assets/{hashed}"),
                hashed,
                content_type,
                body,
            }
        })
        .collect()
});

/// Every embedded asset.
pub fn all() -> &'static [Asset] {
    &ASSETS
}

/// The hashed URL of the asset `name`; `/assets/missing` (a 404) for an unknown name, which
/// the page tests would catch.
pub fn url(name: &str) -> &'static str {
    ASSETS
        .iter()
        .find(|a| a.name == name)
        .map_or("/assets/missing", |a| a.url.as_str())
}

/// `GET /assets/{hashed}`: the asset, cached as immutable; unknown (or stale) names are 404.
pub async fn serve(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.hashed == name) {
        Some(asset) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(asset.content_type),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static(ASSET_CACHE)),
            ],
            asset.body,
        )
            .into_response(),
        None => crate::error::ApiError::not_found("asset").into_response(),
    }
}
