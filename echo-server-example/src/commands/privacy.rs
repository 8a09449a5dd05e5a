//! `echoai retention run`, `echoai audit verify` and `echoai export`.

use std::io::Write;
use std::path::Path;

use echo_core::audit::{CheckpointSigner, CheckpointVerifier, verify_log};
use echo_core::model::Timestamp;
use echo_core::privacy::export::{WriteSink, export_user};

use super::CliError;
use crate::cli::{AuditVerifyArgs, ExportArgs, RetentionRunArgs};
use crate::config::ServerConfig;

/// Executes `echoai retention run`.
pub async fn retention_run(args: RetentionRunArgs) -> Result<(), CliError> {
    let mut config = ServerConfig::load(args.config.as_deref(), |k| std::env::var(k).ok())
        .map_err(CliError::from)?;
    if let Some(d) = args.database {
        config.database = d;
    }
    if config.security.pepper.is_none() && !args.dry_run {
        return Err(CliError::Usage(
            "ECHO_PEPPER (security.pepper) must be set: the pseudonyms of purged accounts are keyed by it, and must match the server's".into(),
        ));
    }
    let opened = crate::server::open(&config).await?;
    let state = crate::state::AppState::build(
        opened.store,
        config.clone(),
        crate::state::StateOptions::default(),
        opened.extras,
    )
    .map_err(CliError::from)?;
    let task = crate::server::retention_task(&state, &config);
    let report = task
        .run(Timestamp::now(), args.dry_run)
        .await
        .map_err(|e| CliError::Usage(format!("retention pass failed: {e}")))?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

fn public_key(args: &AuditVerifyArgs) -> Result<Option<CheckpointVerifier>, CliError> {
    let bytes: Option<[u8; 32]> = match &args.public_key {
        Some(hex) => Some(
            hex::decode(hex.trim())
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| CliError::Usage("--public-key must be 64 hex characters".into()))?,
        ),
        None => {
            let config =
                ServerConfig::load(None, |k| std::env::var(k).ok()).map_err(CliError::from)?;
            config
                .privacy
                .signing_seed()
                .map_err(CliError::from)?
                .map(|seed| CheckpointSigner::from_seed(&seed).verifying_key())
        }
    };
    bytes
        .map(|b| CheckpointVerifier::new(&b).map_err(CliError::from))
        .transpose()
}

/// Executes `echoai audit verify`: archives in name order (seq order), then the database;
/// prints a JSON report, or the first break and a non-zero exit.
pub async fn audit_verify(args: AuditVerifyArgs) -> Result<(), CliError> {
    let key = public_key(&args)?;
    let (store, _) = crate::open_store(&args.database).await?;
    let log = verify_log(store, args.archives.as_deref().map(Path::new), key.as_ref()).await?;
    if let Some(from) = log.unverified_before {
        eprintln!(
            "note: events before seq {from} are archived; pass --archives to verify them too"
        );
    }
    let (report, archives) = (&log.chain, log.archives.len());
    let out = serde_json::json!({
        "result": "ok",
        "events": report.events,
        "first_seq": report.first_seq,
        "last_seq": report.last_seq,
        "head_hash": hex::encode(report.head_hash),
        "archives": archives,
        "checkpoints_matched": report.checkpoints_matched,
        "signed_through": report.signed_through,
        "unsigned_tail": report.unsigned_tail,
        "erased_events": report.erased,
        "checkpoint_key": key.is_some(),
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    if key.is_none() {
        eprintln!("note: no checkpoint key given: only the chain was checked, not its signatures");
    }
    Ok(())
}

/// Executes `echoai export`.
pub async fn export(args: ExportArgs) -> Result<(), CliError> {
    let (store, user) = super::open_for_user(&args.database, &args.user).await?;
    let out: Box<dyn Write + Send> = match &args.output {
        Some(path) => Box::new(std::fs::File::create(path)?),
        None => Box::new(std::io::stdout()),
    };
    let mut sink = WriteSink::new(std::io::BufWriter::new(out));
    export_user(store.as_ref(), &user, &mut sink).await?;
    let mut out = sink.into_inner();
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}
