//! `echoai serve`, `echoai worker` and `echoai user create`.

use std::io::{BufRead, IsTerminal};
use std::path::Path;

use echo_core::auth::{PasswordHasher, PasswordParams, PasswordPolicy};
use echo_core::model::{Email, PricingTier, Timestamp, User};
use tokio_util::sync::CancellationToken;

use super::CliError;
use crate::cli::{ServeArgs, UserCreateArgs, UserKeyArgs, WorkerArgs};
use crate::config::{LogFormat, ServerConfig};
use crate::server::{Roles, serve};

fn load(
    file: Option<&Path>,
    listen: Option<String>,
    database: Option<String>,
) -> Result<ServerConfig, CliError> {
    let mut config = ServerConfig::load(file, |k| std::env::var(k).ok()).map_err(CliError::from)?;
    // Flags win over the file and the environment (clap already folded ECHO_LISTEN and
    // ECHO_DATABASE into them).
    if let Some(l) = listen {
        config.listen = l;
    }
    if let Some(d) = database {
        config.database = d;
    }
    config.validate().map_err(CliError::from)?;
    refuse_unsafe(&config)?;
    Ok(config)
}

/// Staging and production stop here, before anything is opened, when the configuration is
/// unsafe for them (the same rules `echoai config check` prints).
pub(crate) fn refuse_unsafe(config: &ServerConfig) -> Result<(), CliError> {
    let providers = crate::providers::configured_kinds(|k| std::env::var(k).ok());
    safe_or_error(config.env, config.violations(&providers))
}

/// `Ok` without violations, else the error that names them all.
pub(crate) fn safe_or_error(
    environment: crate::config::Environment,
    violations: Vec<crate::config::Violation>,
) -> Result<(), CliError> {
    if violations.is_empty() {
        Ok(())
    } else {
        Err(CliError::Unsafe {
            environment,
            violations,
        })
    }
}

fn init_logs(config: &ServerConfig, filter: Option<&str>) {
    let json = match config.log.format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    crate::init_tracing(filter.unwrap_or("info"), json);
}

fn stop_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        crate::server::shutdown_signal().await;
        t.cancel();
    });
    token
}

/// Executes `echoai serve`.
pub async fn run_serve(args: ServeArgs, log: Option<&str>) -> Result<(), CliError> {
    let config = load(args.config.as_deref(), args.listen, args.database)?;
    init_logs(&config, log);
    let addr = config.listen_addr().map_err(CliError::from)?;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        CliError::Usage(format!(
            "cannot listen on {addr} (listen / ECHO_LISTEN): {e}"
        ))
    })?;
    let roles = Roles {
        api: true,
        workers: !args.no_workers,
        scheduler: !args.no_scheduler,
    };
    serve(config, roles, Some(listener), stop_on_signal()).await
}

/// Executes `echoai worker`.
pub async fn run_worker(args: WorkerArgs, log: Option<&str>) -> Result<(), CliError> {
    let config = load(args.config.as_deref(), None, args.database)?;
    init_logs(&config, log);
    let roles = Roles {
        api: false,
        workers: true,
        scheduler: args.scheduler,
    };
    serve(config, roles, None, stop_on_signal()).await
}

/// A 24-character password from the OS CSPRNG (about 143 bits).
fn generate_password() -> Result<String, CliError> {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut out = String::with_capacity(24);
    while out.len() < 24 {
        let mut b = [0u8; 32];
        getrandom::fill(&mut b).map_err(|e| CliError::Usage(format!("no randomness: {e}")))?;
        // Rejection sampling keeps every character equally likely.
        let limit = 256 - 256 % ALPHABET.len();
        for x in b {
            if usize::from(x) < limit && out.len() < 24 {
                out.push(char::from(ALPHABET[usize::from(x) % ALPHABET.len()]));
            }
        }
    }
    Ok(out)
}

/// Executes `echoai user create`.
pub async fn user_create(args: UserCreateArgs) -> Result<(), CliError> {
    let email = Email::parse(&args.email)?;
    let tier: PricingTier = args.tier.parse()?;
    let (password, generated) = if args.password_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        (line.trim_end_matches(['\r', '\n']).to_owned(), false)
    } else {
        (generate_password()?, true)
    };
    let hasher = PasswordHasher::new(PasswordParams::default(), PasswordPolicy::default())
        .map_err(CliError::from)?;
    let hash = hasher
        .hash(&password)
        .map_err(|e| CliError::Usage(format!("password refused: {e}")))?;
    let (store, _) = crate::open_store(&args.database).await?;
    let mut user = User::new(email, hash, tier, Timestamp::now());
    user.is_admin = args.admin;
    // The operator vouches for the address: the account never waits for a verification mail,
    // whatever ECHO_REQUIRE_EMAIL_VERIFICATION says.
    user.email_verified_at = Some(user.created_at);
    match store.create_user(&user).await {
        Ok(()) => {}
        Err(echo_core::store::StoreError::Conflict { .. }) => {
            return Err(CliError::Usage(format!(
                "an account with email {} exists",
                user.email.as_str()
            )));
        }
        Err(e) => return Err(e.into()),
    }
    println!(
        "created user {} ({}, tier {}{})",
        user.email.as_str(),
        user.id,
        user.tier,
        if user.is_admin { ", admin" } else { "" }
    );
    if generated {
        // Printed once, to standard output only; it is never logged.
        println!("password: {password}");
    }
    Ok(())
}

/// Executes `echoai user key`: issues a key through the same service as the API, digested
/// with the configured pepper, in the environment's default key environment.
pub async fn user_key(args: UserKeyArgs) -> Result<(), CliError> {
    let email = Email::parse(&args.email)?;
    let name = echo_core::model::Label::parse(&args.label)?;
    let config = load(args.config.as_deref(), None, args.database)?;
    if config.security.pepper.is_none() {
        // A key digested with an ephemeral pepper would never verify.
        return Err(CliError::Usage(
            "security.pepper (ECHO_PEPPER) must be set: the key is digested with the servers' pepper".into(),
        ));
    }
    let opened = crate::server::open(&config).await?;
    let store = opened.store.clone();
    let user = store
        .find_user_by_email(&email)
        .await?
        .ok_or_else(|| CliError::Usage(format!("no account with email {}", email.as_str())))?;
    let environment = config.env.default_key_environment();
    let state = crate::state::AppState::build(
        store,
        config,
        crate::state::StateOptions::default(),
        opened.extras,
    )?;
    let created = state
        .keys
        .create(user.id, name, environment, None, Timestamp::now())
        .await
        .map_err(|e| CliError::Usage(format!("cannot issue the key: {e}")))?;
    // Printed once, to standard output only; it is never logged.
    println!("{}", created.key.expose());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_pass_the_policy_and_differ() {
        let a = generate_password().unwrap();
        let b = generate_password().unwrap();
        assert_eq!(a.len(), 24);
        assert_ne!(a, b);
        assert!(PasswordPolicy::default().check(&a).is_ok());
    }
}
