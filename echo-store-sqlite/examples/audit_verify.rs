//! Append audit events, tamper with one behind Echo's back, and get the report naming it.
//!
//! ```sh
//! cargo run -p echo-store-sqlite --example audit_verify
//! ```

use echo_core::audit::{LogError, verify_log};
use echo_core::model::{NewAuditEvent, Timestamp};
use echo_core::prelude::*;
use echo_store_sqlite::{SqliteConfig, SqliteStore};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("echo-audit-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("echo.db");
    let store: Arc<DynStore> = Arc::new(SqliteStore::open(&path, SqliteConfig::default()).await?);

    for action in [
        "login",
        "create_experiment",
        "export",
        "delete_experiment",
        "logout",
    ] {
        store
            .append_audit(&NewAuditEvent {
                actor_user_id: None,
                action: action.into(),
                resource_type: "user".into(),
                resource_id: None,
                ip: None,
                user_agent: None,
                request_id: None,
                details: echo_core::reexports::serde_json::json!({}),
                created_at: Timestamp::now(),
            })
            .await?;
    }
    let intact = verify_log(store.clone(), None, None).await?;
    println!(
        "intact: {} events, head {}",
        intact.chain.events,
        hex(&intact.chain.head_hash)
    );

    // Someone with write access to the database rewrites history.
    let raw = rusqlite::Connection::open(&path)?;
    raw.execute("UPDATE audit_events SET action = 'view' WHERE seq = 3", [])?;
    drop(raw);

    match verify_log(store, None, None).await {
        Err(LogError::Broken(at)) => {
            println!("tampered: {at}");
            assert_eq!(at.seq, 3, "the report names the edited event");
        }
        other => return Err(format!("tampering must be detected, got {other:?}").into()),
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
