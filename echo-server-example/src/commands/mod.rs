//! The subcommands' implementations.

mod alerts;
mod analyze;
mod config_check;
mod discover;
mod export_csv;
mod privacy;
pub mod probe;
mod run;
mod serve;
pub mod smoke;

use echo_core::model::{Brand, BrandName, ValidationError};

use crate::cli::Command;

pub use run::run;

/// Everything a command can fail with; printed with its cause chain by `main`.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad input on the command line.
    #[error("invalid input: {0}")]
    Invalid(#[from] ValidationError),
    /// A usage problem explained in words.
    #[error("{0}")]
    Usage(String),
    /// The command needs something this binary was compiled without.
    #[error("this echoai was built without {what}; rebuild with --features {feature}")]
    NotBuilt {
        /// What is missing, e.g. "PostgreSQL support".
        what: &'static str,
        /// The cargo feature of echo-server-example that compiles it in.
        feature: &'static str,
    },
    /// Storage failed.
    #[error("storage error")]
    Store(#[from] echo_core::store::StoreError),
    /// The run could not execute.
    #[error("run failed")]
    Run(#[from] echo_core::runner::RunError),
    /// The job could not be executed.
    #[error("job failed")]
    Job(#[from] echo_core::runner::JobError),
    /// The HTTP client that posts webhooks could not be built (its TLS setup failed).
    #[error("the webhook client could not start")]
    Webhooks(#[source] reqwest::Error),
    /// A setting is invalid (the message names it).
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Staging or production refused an unsafe configuration (each setting is named).
    #[error(
        "unsafe configuration for {environment}:\n  - {}",
        violations.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  - ")
    )]
    Unsafe {
        /// The environment whose rules were applied.
        environment: crate::config::Environment,
        /// What is unsafe.
        violations: Vec<crate::config::Violation>,
    },
    /// A check against a running server failed (`probe`, `smoke`, `migrate --check`); the
    /// message names what failed.
    #[error("{0}")]
    Check(String),
    /// The server's services could not be built from the configuration.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    /// The password hasher refused its parameters.
    #[error("password hashing")]
    Password(#[from] echo_core::auth::PasswordError),
    /// The brands cannot be indexed for extraction.
    #[error(transparent)]
    Matcher(#[from] echo_core::analysis::MatcherError),
    /// The audit checkpoint key is unusable.
    #[error("invalid audit checkpoint key")]
    Checkpoint(#[from] echo_core::audit::CheckpointError),
    /// The audit log does not verify, or could not be read.
    #[error(transparent)]
    AuditLog(#[from] echo_core::audit::LogError),
    /// The experiment was refused or could not be stored.
    #[error(transparent)]
    Service(echo_core::service::ServiceError),
    /// The GDPR export stopped.
    #[error("export failed")]
    Export(#[from] echo_core::privacy::export::ExportError),
    /// Reading input or writing output failed.
    #[error("i/o error")]
    Io(#[from] std::io::Error),
    /// JSON output failed.
    #[error("json error")]
    Json(#[from] serde_json::Error),
}

/// Opens `database` and finds the account with `email`: how the commands that act for one
/// user (`export`, `export-csv`, `discover --experiment`, `alerts`) begin.
async fn open_for_user(
    database: &str,
    email: &str,
) -> Result<
    (
        std::sync::Arc<echo_core::store::DynStore>,
        echo_core::model::User,
    ),
    CliError,
> {
    let email = echo_core::model::Email::parse(email)?;
    let (store, _) = crate::open_store(database).await?;
    let user = store
        .find_user_by_email(&email)
        .await?
        .ok_or_else(|| CliError::Usage(format!("no user with email {}", email.as_str())))?;
    Ok((store, user))
}

impl From<echo_core::service::ServiceError> for CliError {
    fn from(e: echo_core::service::ServiceError) -> Self {
        match e {
            // Bad input is bad input, whichever layer noticed it.
            echo_core::service::ServiceError::Invalid(v) => CliError::Invalid(v),
            other => CliError::Service(other),
        }
    }
}

/// Runs one subcommand; `log` is the `--log` filter, if given. `serve` and `worker` set up
/// their own logging (its format is configuration); for the others `main` does.
pub async fn dispatch(command: Command, log: Option<&str>) -> Result<(), CliError> {
    match command {
        Command::Serve(args) => serve::run_serve(args, log).await,
        Command::Worker(args) => serve::run_worker(args, log).await,
        Command::User(crate::cli::UserCommand::Create(args)) => serve::user_create(args).await,
        Command::User(crate::cli::UserCommand::Key(args)) => serve::user_key(args).await,
        Command::Retention(crate::cli::RetentionCommand::Run(args)) => {
            privacy::retention_run(args).await
        }
        Command::Audit(crate::cli::AuditCommand::Verify(args)) => privacy::audit_verify(args).await,
        Command::Export(args) => privacy::export(args).await,
        Command::Run(args) => run(args).await,
        Command::Analyze(args) => analyze::analyze(args).await,
        Command::Discover(args) => discover::discover(args).await,
        Command::Alerts(args) => alerts::alerts(args).await,
        Command::ExportCsv(args) => export_csv::export_csv(args).await,
        Command::Config(crate::cli::ConfigCommand::Check(args)) => config_check::check(args),
        Command::Probe(args) => probe::probe(args).await,
        Command::Smoke(args) => smoke::smoke(args).await,
        Command::Migrate(args) if args.check => {
            let pending = crate::database::pending_migrations(&args.database).await?;
            if pending.is_empty() {
                println!("database is up to date");
                return Ok(());
            }
            println!("{} pending migration(s):", pending.len());
            for name in &pending {
                println!("  {name}");
            }
            Err(CliError::Check(format!(
                "{} migration(s) pending; run `echoai migrate`",
                pending.len()
            )))
        }
        Command::Migrate(args) => {
            let (_, applied) = crate::open_store(&args.database).await?;
            match applied {
                Some(0) => println!("database is up to date"),
                Some(n) => println!("applied {n} migration(s)"),
                None => println!("SQLite store is migrated (migrations run on every open)"),
            }
            Ok(())
        }
    }
}

/// Parses a brand spec into a [`Brand`]: `"Name"`, `"Name=alias one,alias two"`, and either
/// followed by options after `;`. The one option is `match=MODE`, where MODE is
/// `case_insensitive` (the default), `case_sensitive` (for brands named by ordinary words:
/// `"Close;match=case_sensitive"` counts "Close" but not "close the deal") or `aliases_only`
/// (`"Bear=Bear app,Bear notes;match=aliases_only"` counts only the aliases).
pub fn parse_brand(spec: &str) -> Result<Brand, ValidationError> {
    let (names, options) = match spec.split_once(';') {
        Some((names, options)) => (names, Some(options)),
        None => (spec, None),
    };
    let (name, aliases) = names.split_once('=').unwrap_or((names, ""));
    let mut brand = Brand::new(BrandName::parse(name)?);
    brand.aliases = aliases
        .split(',')
        .filter(|a| !a.trim().is_empty())
        .map(BrandName::parse)
        .collect::<Result<_, _>>()?;
    for option in options.into_iter().flat_map(|o| o.split(';')) {
        match option.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
            Some(("match", mode)) => brand.match_mode = mode.parse()?,
            _ => {
                return Err(ValidationError::new(
                    "brand",
                    format!(
                        "unknown brand option {:?}: the only option is match=case_insensitive, \
                         match=case_sensitive or match=aliases_only",
                        option.trim()
                    ),
                ));
            }
        }
    }
    brand.validate()?;
    Ok(brand)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brand_specs() {
        let b = parse_brand("HubSpot=HubSpot CRM, Hubspot").unwrap();
        assert_eq!(b.name.as_str(), "HubSpot");
        assert_eq!(b.aliases.len(), 2);
        assert_eq!(b.aliases[1].as_str(), "Hubspot");
        assert!(parse_brand("").is_err());
        assert!(parse_brand("=x").is_err());
        assert_eq!(parse_brand("Monday.com").unwrap().aliases.len(), 0);
    }

    #[test]
    fn brand_spec_match_modes() {
        use echo_core::model::MatchMode;
        let close = parse_brand("Close;match=case_sensitive").unwrap();
        assert_eq!(
            (close.name.as_str(), close.match_mode),
            ("Close", MatchMode::CaseSensitive)
        );
        assert!(close.aliases.is_empty());
        let bear = parse_brand("Bear=Bear app, Bear notes ; match = aliases_only").unwrap();
        assert_eq!(bear.aliases.len(), 2);
        assert_eq!(bear.match_mode, MatchMode::AliasesOnly);
        assert_eq!(
            parse_brand("HubSpot").unwrap().match_mode,
            MatchMode::CaseInsensitive
        );
        let unknown = parse_brand("Close;match=fuzzy").unwrap_err().to_string();
        assert!(unknown.contains("fuzzy"), "{unknown}");
        let option = parse_brand("Close;exact").unwrap_err().to_string();
        assert!(option.contains("unknown brand option"), "{option}");
        // aliases_only needs aliases, as through the API.
        assert!(parse_brand("Bear;match=aliases_only").is_err());
    }

    /// The spec's match mode reaches the extractor: a case-sensitive "Close" is not counted
    /// for the verb at the start of a sentence, where the default mode counts it.
    #[test]
    fn case_sensitive_spec_is_not_over_counted() {
        use echo_core::analysis::BrandMatcher;
        let text = "close the deal faster with HubSpot. Close is also good.";
        let count = |spec: &str| {
            let matcher = BrandMatcher::new(&parse_brand(spec).unwrap(), &[]).unwrap();
            matcher.extract(text).brand("Close").map(|h| h.count)
        };
        assert_eq!(count("Close"), Some(2));
        assert_eq!(count("Close;match=case_sensitive"), Some(1));
    }
}
