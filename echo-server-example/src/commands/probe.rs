//! `echoai probe URL`: the container health check (the image has no curl).

use std::time::Duration;

use super::CliError;
use crate::cli::ProbeArgs;

/// The HTTP client of `probe` and `smoke`: every request bounded by `timeout`.
pub(crate) fn http_client(timeout: Duration) -> Result<reqwest::Client, CliError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("echoai/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| CliError::Check(format!("cannot build an HTTP client: {}", chain(&e))))
}

/// An error and its causes on one line (reqwest's own message rarely says why).
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

/// Executes `echoai probe`: GETs the URL; success on a 2xx, a one-line error otherwise.
pub async fn probe(args: ProbeArgs) -> Result<(), CliError> {
    let client = http_client(Duration::from_secs(args.timeout_secs.max(1)))?;
    let url = &args.url;
    match client.get(url).send().await {
        Ok(r) if r.status().is_success() => {
            println!("ok: {url} answered {}", r.status());
            Ok(())
        }
        Ok(r) => Err(CliError::Check(format!(
            "probe failed: {url} answered {}",
            r.status()
        ))),
        Err(e) => Err(CliError::Check(format!(
            "probe failed: {url}: {}",
            chain(&e)
        ))),
    }
}
