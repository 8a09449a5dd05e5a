//! `echoai config check`: the effective configuration and what makes it unsafe, from the same
//! rules `serve` and `worker` apply at start.

use super::CliError;
use crate::cli::ConfigCheckArgs;
use crate::config::{ConfigError, Environment, ServerConfig};

/// Executes `echoai config check`: prints every setting and every violation; fails (exit 1)
/// when there is a violation or a setting is invalid.
pub fn check(args: ConfigCheckArgs) -> Result<(), CliError> {
    let vars = |k: &str| std::env::var(k).ok();
    let mut config = ServerConfig::load(args.config.as_deref(), vars)?;
    if let Some(name) = &args.environment {
        config.env = name
            .parse::<Environment>()
            .map_err(|reason| ConfigError::Invalid {
                setting: "--env".into(),
                reason,
            })?;
    }
    let file = match &args.config {
        // `load` read it a moment ago; a failure now only loses the "file" sources.
        Some(path) => std::fs::read_to_string(path).ok(),
        None => None,
    };
    let settings = config.effective(file.as_deref(), vars);
    let providers = crate::providers::configured_kinds(vars);
    let violations = config.violations(&providers);
    let citing = crate::providers::citing_kinds(&providers, vars)?;
    if args.json {
        let out = serde_json::json!({
            "environment": config.env,
            "settings": settings,
            "real_providers": providers.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
            "citing_sources": citing.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
            "violations": violations,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("environment: {}", config.env);
        for s in &settings {
            let variable = s.variable.map(|v| format!(" [{v}]")).unwrap_or_default();
            println!("{} = {}{variable} ({})", s.key, s.value, s.source);
        }
        let names: Vec<&str> = providers.iter().map(|k| k.as_str()).collect();
        println!(
            "real providers: {}",
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        );
        let citing: Vec<String> = citing
            .iter()
            .map(|&k| match crate::providers::web_search_variable(k) {
                Some(variable) => format!("{k} [{variable}]"),
                None => format!("{k} (always)"),
            })
            .collect();
        println!(
            "cited sources captured from: {}",
            if citing.is_empty() {
                "none".to_owned()
            } else {
                citing.join(", ")
            }
        );
        if violations.is_empty() {
            println!("no violations for {}", config.env);
        } else {
            println!("{} violation(s) for {}:", violations.len(), config.env);
            for v in &violations {
                println!("  {v}");
            }
        }
    }
    super::serve::safe_or_error(config.env, violations)
}
