//! Provider clients for the command line: the simulator, or a real API with its key from the
//! environment (the library crates never read the environment themselves). Real providers need
//! the `providers` feature; without it only the simulator is built, and asking for another
//! provider fails with [`CliError::NotBuilt`].

use std::sync::Arc;

use echo_core::model::{Brand, ProviderKind};
use echo_core::provider::DynProvider;
use echo_core::provider::simulated::{SIMULATED_MODEL, SimulatedConfig, SimulatedProvider};

use crate::commands::CliError;

/// Parses a `--provider` value, listing the valid ones when it is unknown.
pub fn parse_kind(name: &str) -> Result<ProviderKind, CliError> {
    let normalised = name.trim().to_lowercase().replace('-', "_");
    normalised.parse().map_err(|_| {
        let valid: Vec<&str> = ProviderKind::ALL.iter().map(|k| k.as_str()).collect();
        CliError::Usage(format!(
            "unknown provider {name:?}; expected one of: {}",
            valid.join(", ")
        ))
    })
}

/// The model used when `--model` is not given.
pub fn default_model(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::OpenAi => "gpt-4o-mini",
        ProviderKind::Anthropic => "claude-3-5-haiku-latest",
        ProviderKind::Gemini => "gemini-2.0-flash",
        ProviderKind::Perplexity => "sonar",
        ProviderKind::OpenAiCompatible => "llama3.1",
        ProviderKind::Simulated => SIMULATED_MODEL,
    }
}

/// The environment variable holding each real provider's key.
pub fn key_variable(kind: ProviderKind) -> Option<&'static str> {
    match kind {
        ProviderKind::OpenAi => Some("OPENAI_API_KEY"),
        ProviderKind::Anthropic => Some("ANTHROPIC_API_KEY"),
        ProviderKind::Gemini => Some("GEMINI_API_KEY"),
        ProviderKind::Perplexity => Some("PERPLEXITY_API_KEY"),
        ProviderKind::OpenAiCompatible => Some("ECHO_OPENAI_COMPATIBLE_API_KEY"),
        ProviderKind::Simulated => None,
    }
}

/// The environment variable that turns on web search, and with it the capture of cited
/// sources, for `kind`: OpenAI then answers through the Responses API with its `web_search`
/// tool, Anthropic gets its web search tool, Gemini the `google_search` tool. Perplexity always
/// searches, and OpenAI-compatible servers have no standard search tool, so neither has one.
pub fn web_search_variable(kind: ProviderKind) -> Option<&'static str> {
    match kind {
        ProviderKind::OpenAi => Some("ECHO_OPENAI_WEB_SEARCH"),
        ProviderKind::Anthropic => Some("ECHO_ANTHROPIC_WEB_SEARCH"),
        ProviderKind::Gemini => Some("ECHO_GEMINI_WEB_SEARCH"),
        ProviderKind::Perplexity | ProviderKind::OpenAiCompatible | ProviderKind::Simulated => None,
    }
}

/// Whether `env` turns on web search for `kind` (see [`web_search_variable`]); off when the
/// variable is unset or empty, an error naming it when it is not a boolean.
pub fn web_search_enabled(
    kind: ProviderKind,
    env: impl Fn(&str) -> Option<String>,
) -> Result<bool, crate::config::ConfigError> {
    let Some(variable) = web_search_variable(kind) else {
        return Ok(false);
    };
    match env(variable).filter(|v| !v.trim().is_empty()) {
        Some(value) => crate::config::parse_bool(variable, &value),
        None => Ok(false),
    }
}

/// The providers among `kinds` whose answers cite web sources: Perplexity always, the others
/// when their web search variable is on.
pub fn citing_kinds(
    kinds: &[ProviderKind],
    env: impl Fn(&str) -> Option<String>,
) -> Result<Vec<ProviderKind>, crate::config::ConfigError> {
    let mut out = Vec::new();
    for &kind in kinds {
        if kind == ProviderKind::Perplexity || web_search_enabled(kind, &env)? {
            out.push(kind);
        }
    }
    Ok(out)
}

/// Builds the client for `kind`. The simulator is seeded with the experiment's brands; real
/// providers need the `providers` feature and their key in the environment (the compatible one
/// needs a base URL instead).
pub fn build(
    kind: ProviderKind,
    seed: u64,
    target: &Brand,
    competitors: &[Brand],
) -> Result<Arc<DynProvider>, CliError> {
    if kind == ProviderKind::Simulated {
        let config = SimulatedConfig::for_brands(seed, target, competitors);
        return Ok(Arc::new(SimulatedProvider::new(config)));
    }
    build_real(kind)
}

#[cfg(feature = "providers")]
fn build_real(kind: ProviderKind) -> Result<Arc<DynProvider>, CliError> {
    use echo_core::provider::Secret;
    use echo_providers::ProviderSettings;
    let api_key = key_variable(kind)
        .and_then(|var| std::env::var(var).ok())
        .filter(|k| !k.trim().is_empty())
        .map(Secret::new);
    let base_url = match kind {
        ProviderKind::OpenAiCompatible => std::env::var("ECHO_OPENAI_COMPATIBLE_BASE_URL").ok(),
        _ => None,
    };
    if api_key.is_none() && kind != ProviderKind::OpenAiCompatible {
        return Err(CliError::Usage(format!(
            "--provider {kind} needs an API key in {} (or use --provider simulated)",
            key_variable(kind).unwrap_or("the environment")
        )));
    }
    let settings = ProviderSettings {
        api_key,
        base_url,
        web_search: web_search_enabled(kind, |k| std::env::var(k).ok())?,
        ..ProviderSettings::default()
    };
    echo_providers::build(kind, settings).map_err(|e| CliError::Usage(format!("{kind}: {e}")))
}

#[cfg(not(feature = "providers"))]
fn build_real(_kind: ProviderKind) -> Result<Arc<DynProvider>, CliError> {
    Err(CliError::NotBuilt {
        what: "real provider clients (only the simulated provider is available)",
        feature: "providers",
    })
}

/// The real providers this build can call whose configuration `env` holds (a key, or for the
/// OpenAI-compatible client a base URL). Empty in a build without the `providers` feature,
/// whatever the environment says: production's start-up check relies on that.
pub fn configured_kinds(env: impl Fn(&str) -> Option<String>) -> Vec<ProviderKind> {
    if !cfg!(feature = "providers") {
        return Vec::new();
    }
    let set = |var: &str| env(var).is_some_and(|v| !v.trim().is_empty());
    ProviderKind::ALL
        .iter()
        .copied()
        .filter(|&kind| match kind {
            ProviderKind::Simulated => false,
            ProviderKind::OpenAiCompatible => set("ECHO_OPENAI_COMPATIBLE_BASE_URL"),
            _ => key_variable(kind).is_some_and(set),
        })
        .collect()
}

/// The real providers whose configuration is in the environment, for a server that runs many
/// experiments. Providers that fail to build are logged and skipped.
pub fn from_environment() -> Vec<Arc<DynProvider>> {
    let mut clients = Vec::new();
    for kind in configured_kinds(|k| std::env::var(k).ok()) {
        // Brands only matter to the simulator, which is not built here.
        match echo_core::model::BrandName::parse("unused") {
            Ok(name) => match build(kind, 0, &Brand::new(name), &[]) {
                Ok(client) => clients.push(client),
                Err(e) => tracing::warn!(provider = %kind, error = %e, "provider not available"),
            },
            Err(_) => continue,
        }
    }
    clients
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_leniently_and_unknown_lists_valid() {
        assert_eq!(parse_kind("OpenAI").unwrap(), ProviderKind::OpenAi);
        assert_eq!(
            parse_kind("openai-compatible").unwrap(),
            ProviderKind::OpenAiCompatible
        );
        let err = parse_kind("chatgpt").unwrap_err().to_string();
        assert!(
            err.contains("simulated") && err.contains("chatgpt"),
            "{err}"
        );
    }

    #[cfg(not(feature = "providers"))]
    #[test]
    fn real_providers_name_the_missing_feature() {
        let brand = Brand::new(echo_core::model::BrandName::parse("Acme").unwrap());
        let err = build(ProviderKind::OpenAi, 0, &brand, &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "this echoai was built without real provider clients (only the simulated provider \
             is available); rebuild with --features providers"
        );
        assert!(build(ProviderKind::Simulated, 0, &brand, &[]).is_ok());
    }

    #[test]
    fn web_search_variables_are_read_as_booleans_naming_the_variable() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(name, _)| *name == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let on = env(&[
            ("ECHO_OPENAI_WEB_SEARCH", "true"),
            ("ECHO_GEMINI_WEB_SEARCH", "ON"),
            ("ECHO_ANTHROPIC_WEB_SEARCH", " "),
        ]);
        assert!(web_search_enabled(ProviderKind::OpenAi, on).unwrap());
        assert!(web_search_enabled(ProviderKind::Gemini, on).unwrap());
        assert!(!web_search_enabled(ProviderKind::Anthropic, on).unwrap());
        assert_eq!(
            citing_kinds(ProviderKind::ALL, on).unwrap(),
            [
                ProviderKind::OpenAi,
                ProviderKind::Gemini,
                ProviderKind::Perplexity
            ]
        );
        let bad = env(&[("ECHO_ANTHROPIC_WEB_SEARCH", "maybe")]);
        let error = web_search_enabled(ProviderKind::Anthropic, bad)
            .unwrap_err()
            .to_string();
        assert!(error.contains("ECHO_ANTHROPIC_WEB_SEARCH"), "{error}");
    }

    #[test]
    fn configured_kinds_follow_the_variables_this_build_can_use() {
        let vars = |k: &str| {
            matches!(k, "ANTHROPIC_API_KEY" | "ECHO_OPENAI_COMPATIBLE_BASE_URL")
                .then(|| "x".to_owned())
                .or_else(|| (k == "OPENAI_API_KEY").then(|| " ".to_owned()))
        };
        let found = configured_kinds(vars);
        if cfg!(feature = "providers") {
            assert_eq!(
                found,
                [ProviderKind::Anthropic, ProviderKind::OpenAiCompatible]
            );
        } else {
            assert!(found.is_empty());
        }
        assert!(configured_kinds(|_| None).is_empty());
    }
}
