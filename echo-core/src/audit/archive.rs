//! JSON Lines archives of a range of the audit log.
//!
//! An archive is one JSON object per line: `{"event":{…}}` for each event in ascending seq, then
//! one `{"manifest":{…}}` line. Event lines hold the [`AuditEvent`] fields with `prev_hash` and
//! `hash` in lowercase hex; the manifest holds the range, its boundary hashes and the SHA-256 of
//! the event lines' bytes (each with its `\n`), so a truncated or edited file is detected without
//! the database. The chain continues across archives: the first event's `prev_hash` is the hash
//! of the last event of the archive before, and [`ChainStart::after_archive`] continues into the
//! live table.

use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::verify::{ChainBreak, ChainStart, ChainVerifier};
use crate::model::{AuditEvent, NewAuditEvent};

/// The `format` of archives this version writes and reads.
pub const ARCHIVE_FORMAT: &str = "echo.audit.archive.v1";

/// The last line of an archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveManifest {
    /// Always [`ARCHIVE_FORMAT`].
    pub format: String,
    /// Seq of the first event.
    pub first_seq: u64,
    /// The first event's `prev_hash`: the hash of the event before the archive.
    #[serde(with = "hex::serde")]
    pub first_prev_hash: [u8; 32],
    /// Seq of the last event.
    pub last_seq: u64,
    /// The last event's hash.
    #[serde(with = "hex::serde")]
    pub last_hash: [u8; 32],
    /// Number of events.
    pub count: u64,
    /// SHA-256 of the event lines, bytes as written, newlines included.
    #[serde(with = "hex::serde")]
    pub sha256: [u8; 32],
}

/// Writing or reading an archive failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// The underlying reader or writer failed.
    #[error("reading or writing the audit archive failed")]
    Io(#[from] std::io::Error),
    /// A line is not a valid event or manifest.
    #[error("line {line} of the audit archive is not a valid event or manifest")]
    Json {
        /// 1-based line number.
        line: u64,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// There were no events to archive.
    #[error("an audit archive needs at least one event")]
    Empty,
    /// The file ends without a manifest: it was truncated.
    #[error("the audit archive has no manifest line; it may be truncated")]
    MissingManifest,
    /// Something follows the manifest.
    #[error("line {line} of the audit archive follows its manifest")]
    TrailingData {
        /// 1-based line number.
        line: u64,
    },
    /// A manifest of another format version.
    #[error("audit archive format {found:?} is not supported (expected {ARCHIVE_FORMAT:?})")]
    UnsupportedFormat {
        /// The manifest's `format`.
        found: String,
    },
    /// The events do not match the manifest.
    #[error("the audit archive's {field} does not match its manifest")]
    ManifestMismatch {
        /// Which manifest field disagrees (`sha256`, `count`, `first_seq`…).
        field: &'static str,
    },
    /// The events do not form a chain.
    #[error(transparent)]
    Chain(#[from] ChainBreak),
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum LineOut<'a> {
    Event(EventOut<'a>),
    Manifest(&'a ArchiveManifest),
}

#[derive(Serialize)]
struct EventOut<'a> {
    seq: u64,
    #[serde(flatten)]
    event: &'a NewAuditEvent,
    #[serde(skip_serializing_if = "Option::is_none")]
    actor_pseudonym: Option<&'a str>,
    #[serde(with = "hex::serde")]
    prev_hash: &'a [u8; 32],
    #[serde(with = "hex::serde")]
    hash: &'a [u8; 32],
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum LineIn {
    Event(EventIn),
    Manifest(ArchiveManifest),
}

#[derive(Deserialize)]
struct EventIn {
    seq: u64,
    #[serde(flatten)]
    event: NewAuditEvent,
    #[serde(default)]
    actor_pseudonym: Option<String>,
    #[serde(with = "hex::serde")]
    prev_hash: [u8; 32],
    #[serde(with = "hex::serde")]
    hash: [u8; 32],
}

/// Writes `events` (ascending seq, contiguous) as an archive and returns its manifest.
///
/// The events are verified as a chain while they are written, from the first event's own
/// `(seq - 1, prev_hash)`: archiving usually precedes pruning, and a broken range must be
/// investigated rather than archived and deleted. Streaming: memory does not grow with the range.
///
/// # Errors
/// [`ArchiveError::Empty`], [`ArchiveError::Chain`] for a broken range, [`ArchiveError::Io`].
pub fn write_archive<'a>(
    events: impl IntoIterator<Item = &'a AuditEvent>,
    out: impl Write,
) -> Result<ArchiveManifest, ArchiveError> {
    write_archive_with_erasures(events, [], out)
}

/// [`write_archive`] for a range that contains erased events (their seqs from
/// [`AuditStore::audit_erasures`](crate::store::AuditStore::audit_erasures)): those are
/// accepted as [`ChainVerifier::mark_erased`] describes. Erased events keep their
/// `actor_pseudonym` in the archive.
///
/// # Errors
/// As [`write_archive`].
pub fn write_archive_with_erasures<'a>(
    events: impl IntoIterator<Item = &'a AuditEvent>,
    erased: impl IntoIterator<Item = u64>,
    mut out: impl Write,
) -> Result<ArchiveManifest, ArchiveError> {
    let erased: Vec<u64> = erased.into_iter().collect();
    let mut verifier: Option<ChainVerifier> = None;
    let mut first: Option<(u64, [u8; 32])> = None;
    let mut digest = Sha256::new();
    let mut line = Vec::new();
    let mut line_no = 0u64;
    for event in events {
        line_no += 1;
        let verifier = verifier.get_or_insert_with(|| {
            let mut v = ChainVerifier::new(ChainStart::Anchor {
                seq: event.seq.saturating_sub(1),
                hash: event.prev_hash,
            });
            for &seq in &erased {
                v.mark_erased(seq);
            }
            v
        });
        verifier.push(event)?;
        first.get_or_insert((event.seq, event.prev_hash));
        line.clear();
        serde_json::to_writer(
            &mut line,
            &LineOut::Event(EventOut {
                seq: event.seq,
                event: &event.event,
                actor_pseudonym: event.actor_pseudonym.as_deref(),
                prev_hash: &event.prev_hash,
                hash: &event.hash,
            }),
        )
        .map_err(|source| ArchiveError::Json {
            line: line_no,
            source,
        })?;
        line.push(b'\n');
        digest.update(&line);
        out.write_all(&line)?;
    }
    let (Some(verifier), Some((first_seq, first_prev_hash))) = (verifier, first) else {
        return Err(ArchiveError::Empty);
    };
    let report = verifier.finish()?;
    let manifest = ArchiveManifest {
        format: ARCHIVE_FORMAT.to_owned(),
        first_seq,
        first_prev_hash,
        last_seq: report.last_seq,
        last_hash: report.head_hash,
        count: report.events,
        sha256: digest.finalize().into(),
    };
    line.clear();
    serde_json::to_writer(&mut line, &LineOut::Manifest(&manifest)).map_err(|source| {
        ArchiveError::Json {
            line: line_no + 1,
            source,
        }
    })?;
    line.push(b'\n');
    out.write_all(&line)?;
    out.flush()?;
    Ok(manifest)
}

/// Reads an archive event by event, checking the manifest at the end.
///
/// The iterator yields each event as it is read, then, at the manifest line, an error if the
/// events do not match it; it ends with [`ArchiveReader::manifest`] set only when everything
/// matched. Events are not chain-verified here: push them through a [`ChainVerifier`] (or use
/// [`verify_archive`]). Each line is read into memory, so read only archives Echo wrote.
#[derive(Debug)]
pub struct ArchiveReader<R> {
    reader: R,
    buf: String,
    line: u64,
    digest: Sha256,
    count: u64,
    first: Option<(u64, [u8; 32])>,
    last: Option<(u64, [u8; 32])>,
    manifest: Option<ArchiveManifest>,
    done: bool,
}

impl<R: BufRead> ArchiveReader<R> {
    /// A reader over `reader`.
    pub fn new(reader: R) -> Self {
        Self {
            reader,
            buf: String::new(),
            line: 0,
            digest: Sha256::new(),
            count: 0,
            first: None,
            last: None,
            manifest: None,
            done: false,
        }
    }

    /// The manifest, once the iterator has ended and every check passed.
    pub fn manifest(&self) -> Option<&ArchiveManifest> {
        self.manifest.as_ref()
    }

    fn next_line(&mut self) -> Result<Option<AuditEvent>, ArchiveError> {
        self.buf.clear();
        if self.reader.read_line(&mut self.buf)? == 0 {
            return Err(ArchiveError::MissingManifest);
        }
        self.line += 1;
        let parsed =
            serde_json::from_str::<LineIn>(&self.buf).map_err(|source| ArchiveError::Json {
                line: self.line,
                source,
            })?;
        match parsed {
            LineIn::Event(e) => {
                self.digest.update(self.buf.as_bytes());
                self.count += 1;
                self.first.get_or_insert((e.seq, e.prev_hash));
                self.last = Some((e.seq, e.hash));
                Ok(Some(AuditEvent {
                    seq: e.seq,
                    event: e.event,
                    actor_pseudonym: e.actor_pseudonym,
                    prev_hash: e.prev_hash,
                    hash: e.hash,
                }))
            }
            LineIn::Manifest(manifest) => {
                self.check_manifest(&manifest)?;
                self.buf.clear();
                if self.reader.read_line(&mut self.buf)? > 0 {
                    return Err(ArchiveError::TrailingData {
                        line: self.line + 1,
                    });
                }
                self.manifest = Some(manifest);
                Ok(None)
            }
        }
    }

    fn check_manifest(&self, manifest: &ArchiveManifest) -> Result<(), ArchiveError> {
        if manifest.format != ARCHIVE_FORMAT {
            return Err(ArchiveError::UnsupportedFormat {
                found: manifest.format.clone(),
            });
        }
        let (Some((first_seq, first_prev)), Some((last_seq, last_hash))) = (self.first, self.last)
        else {
            return Err(ArchiveError::Empty);
        };
        let mismatch = |field| Err(ArchiveError::ManifestMismatch { field });
        if self.digest.clone().finalize()[..] != manifest.sha256[..] {
            return mismatch("sha256");
        }
        if self.count != manifest.count {
            return mismatch("count");
        }
        if first_seq != manifest.first_seq {
            return mismatch("first_seq");
        }
        if first_prev != manifest.first_prev_hash {
            return mismatch("first_prev_hash");
        }
        if last_seq != manifest.last_seq {
            return mismatch("last_seq");
        }
        if last_hash != manifest.last_hash {
            return mismatch("last_hash");
        }
        Ok(())
    }
}

impl<R: BufRead> Iterator for ArchiveReader<R> {
    type Item = Result<AuditEvent, ArchiveError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_line() {
            Ok(Some(event)) => Some(Ok(event)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Reads a whole archive into memory, checking it against its manifest.
///
/// # Errors
/// Any [`ArchiveError`] but `Chain`.
pub fn read_archive(
    reader: impl BufRead,
) -> Result<(Vec<AuditEvent>, ArchiveManifest), ArchiveError> {
    let mut archive = ArchiveReader::new(reader);
    let events = archive.by_ref().collect::<Result<Vec<_>, _>>()?;
    let manifest = archive
        .manifest
        .take()
        .ok_or(ArchiveError::MissingManifest)?;
    Ok((events, manifest))
}

/// Streams an archive through `verifier`, checking the manifest too; the verifier can then go
/// on with the events after the archive (the next archive or the live table).
///
/// ```
/// # use echo_core::audit::*;
/// # fn demo(archive: &[u8], live: &[echo_core::model::AuditEvent]) -> Result<(), Box<dyn std::error::Error>> {
/// let mut verifier = ChainVerifier::new(ChainStart::Genesis);
/// let manifest = verify_archive(archive, &mut verifier)?;
/// for event in live {
///     verifier.push(event)?; // live.first().seq == manifest.last_seq + 1
/// }
/// let report = verifier.finish()?;
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// Any [`ArchiveError`]; a break in the chain is [`ArchiveError::Chain`].
pub fn verify_archive(
    reader: impl BufRead,
    verifier: &mut ChainVerifier,
) -> Result<ArchiveManifest, ArchiveError> {
    let mut archive = ArchiveReader::new(reader);
    for event in archive.by_ref() {
        verifier.push(&event?)?;
    }
    archive.manifest.take().ok_or(ArchiveError::MissingManifest)
}
