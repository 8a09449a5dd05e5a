//! Verification of a whole audit log: archives, stored checkpoints, erasures and events.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{
    ArchiveError, ChainBreak, ChainStart, ChainVerifier, CheckpointVerifier, VerifyReport,
    WalkError, add_stored_checkpoints, mark_stored_erasures, push_stored_events, verify_archive,
};
use crate::store::{AuditStore, StoreError};

/// Rows read per store call while walking the log.
const PAGE: u32 = 10_000;

/// What [`verify_log`] checked.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogReport {
    /// The chain's figures: events, first and last seq, head hash, checkpoints, erasures.
    pub chain: VerifyReport,
    /// Archive files verified before the stored events, in order.
    pub archives: Vec<PathBuf>,
    /// Whether signatures were checked (a checkpoint key was given).
    pub signatures_checked: bool,
    /// The first seq the database holds when earlier events were archived but no archive was
    /// given: the walk then starts from that event's stored link, and everything before it
    /// went unchecked.
    pub unverified_before: Option<u64>,
}

/// Why [`verify_log`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// The chain does not hold: the first break (seq and what is wrong).
    #[error("audit log verification FAILED: {0}")]
    Broken(#[from] ChainBreak),
    /// A stored checkpoint cannot be trusted (bad signature) or came too late.
    #[error("audit log verification FAILED: {0}")]
    Walk(WalkError),
    /// An archive does not verify or cannot be read.
    #[error("audit log verification FAILED: {}: {source}", path.display())]
    Archive {
        /// The archive file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: ArchiveError,
    },
    /// The archive directory could not be listed or a file opened.
    #[error("cannot read audit archives in {}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The store failed while reading the log.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<WalkError> for LogError {
    fn from(e: WalkError) -> Self {
        match e {
            WalkError::Store(e) => LogError::Store(e),
            WalkError::Broken(b) => LogError::Broken(b),
            other => LogError::Walk(other),
        }
    }
}

/// Verifies the audit log end to end: the archives in `archive_dir` (files named
/// `audit-*.jsonl`, in name order; a missing directory holds none), then the stored events,
/// honouring recorded erasures and, with `key`, every stored signed checkpoint.
///
/// Memory stays flat however long the log: events are read in pages.
///
/// ```
/// use std::sync::Arc;
/// use echo_core::audit::verify_log;
/// use echo_core::store::{DynStore, memory::MemoryStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store: Arc<DynStore> = Arc::new(MemoryStore::new());
/// let report = verify_log(store, None, None).await?;
/// assert_eq!(report.chain.events, 0);
/// # Ok(())
/// # }
/// ```
pub async fn verify_log(
    store: Arc<dyn AuditStore>,
    archive_dir: Option<&Path>,
    key: Option<&CheckpointVerifier>,
) -> Result<LogReport, LogError> {
    let mut verifier = ChainVerifier::new(ChainStart::Genesis);
    if let Some(key) = key {
        add_stored_checkpoints(&*store, &mut verifier, key, 0, PAGE).await?;
    }
    mark_stored_erasures(&*store, &mut verifier, 0, PAGE).await?;
    let archives = match archive_dir {
        Some(dir) => archive_files(dir)?,
        None => Vec::new(),
    };
    for path in &archives {
        let file = std::fs::File::open(path).map_err(|source| LogError::Io {
            path: path.clone(),
            source,
        })?;
        verify_archive(BufReader::new(file), &mut verifier).map_err(|source| {
            LogError::Archive {
                path: path.clone(),
                source,
            }
        })?;
    }
    let from = store.audit_bounds().await?.map_or(1, |(first, _)| first);
    let mut unverified_before = None;
    if archives.is_empty()
        && from > 1
        && let Some(first) = store.audit_range(from, 1).await?.first()
    {
        // The database starts after archived events that were not given: anchor the walk on
        // the first stored event's link, and report the gap.
        unverified_before = Some(from);
        verifier = ChainVerifier::new(ChainStart::Anchor {
            seq: first.seq - 1,
            hash: first.prev_hash,
        });
        if let Some(key) = key {
            add_stored_checkpoints(&*store, &mut verifier, key, from, PAGE).await?;
        }
        mark_stored_erasures(&*store, &mut verifier, from, PAGE).await?;
    }
    push_stored_events(store, &mut verifier, from, PAGE).await?;
    Ok(LogReport {
        chain: verifier.finish()?,
        archives,
        signatures_checked: key.is_some(),
        unverified_before,
    })
}

fn archive_files(dir: &Path) -> Result<Vec<PathBuf>, LogError> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let io = |source| LogError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("audit-") && n.ends_with(".jsonl"))
        })
        .collect();
    files.sort();
    Ok(files)
}
