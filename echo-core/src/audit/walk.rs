//! Feeding a [`ChainVerifier`] from a store: its checkpoints, its erasure records, then its
//! events, page by page, with the next page read while the current one is checked.

use std::collections::VecDeque;
use std::sync::Arc;

use super::checkpoint::{CheckpointError, CheckpointVerifier};
use super::verify::{ChainBreak, ChainVerifier};
use crate::model::AuditLink;
use crate::store::{AuditStore, StoreError};

/// Why a walk over a store stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalkError {
    /// The chain does not hold: the first break.
    #[error(transparent)]
    Broken(#[from] ChainBreak),
    /// A stored checkpoint cannot be trusted (bad signature) or came too late.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The store failed; nothing is known about the rest of the chain.
    #[error("reading the audit log failed: {0}")]
    Store(#[from] StoreError),
}

/// Reads every stored checkpoint with `seq >= from_seq` into `verifier`, checking each
/// signature with `key` ([`ChainVerifier::add_checkpoint`]), in pages of `page`. Returns how
/// many were added. Call before pushing events.
///
/// # Errors
/// [`WalkError::Checkpoint`] for the first checkpoint that does not verify;
/// [`WalkError::Store`] when a read fails.
pub async fn add_stored_checkpoints<S: AuditStore + ?Sized>(
    store: &S,
    verifier: &mut ChainVerifier,
    key: &CheckpointVerifier,
    from_seq: u64,
    page: u32,
) -> Result<u64, WalkError> {
    let read = |from, page| store.audit_checkpoints(from, page);
    for_each_stored(
        from_seq,
        page,
        read,
        |c| c.seq,
        |cp| verifier.add_checkpoint(key, cp).map_err(WalkError::from),
    )
    .await
}

/// Marks every stored erasure record with `seq >= from_seq` in `verifier`
/// ([`ChainVerifier::mark_erased`]), in pages of `page`. Returns how many were marked. Call
/// before pushing events.
///
/// # Errors
/// [`StoreError`] when a read fails.
pub async fn mark_stored_erasures<S: AuditStore + ?Sized>(
    store: &S,
    verifier: &mut ChainVerifier,
    from_seq: u64,
    page: u32,
) -> Result<u64, StoreError> {
    let read = |from, page| store.audit_erasures(from, page);
    for_each_stored(
        from_seq,
        page,
        read,
        |e| e.seq,
        |erasure| {
            verifier.mark_erased(erasure.seq);
            Ok(())
        },
    )
    .await
}

/// Hands every item of `read(from, page)` to `each`, page after page from `from_seq` until a
/// short page; returns how many there were.
async fn for_each_stored<T, E, Fut>(
    from_seq: u64,
    page: u32,
    mut read: impl FnMut(u64, u32) -> Fut,
    seq: fn(&T) -> u64,
    mut each: impl FnMut(&T) -> Result<(), E>,
) -> Result<u64, E>
where
    Fut: Future<Output = Result<Vec<T>, StoreError>>,
    E: From<StoreError>,
{
    let page = page.max(1);
    let (mut from, mut count) = (from_seq, 0);
    loop {
        let items = read(from, page).await?;
        for item in &items {
            each(item)?;
        }
        count += items.len() as u64;
        let next = items.last().map(seq).and_then(|last| last.checked_add(1));
        match next {
            Some(next) if items.len() == page as usize => from = next,
            _ => return Ok(count),
        }
    }
}

/// Pushes every stored event with `seq >= from_seq` into `verifier`, as links
/// ([`AuditStore::audit_links`], [`ChainVerifier::push_link`]) in pages of `page`. Returns
/// how many were pushed; [`ChainVerifier::finish`] gives the report.
///
/// The next pages are read while one is checked, by spawned tasks: two reads in flight,
/// each starting where the one before must end in an unbroken chain (seqs have no
/// gaps), so that a store serving reads in parallel (SQLite's WAL readers, a PostgreSQL pool)
/// reads on every core. A page that does not end where it must (a gap, which the verifier
/// reports) discards what was read ahead and the walk goes on from its last event, so pages
/// are always checked exactly as a one-by-one walk would see them. At most three pages are
/// held at once. Dropping the future stops the readers.
///
/// ```
/// use std::sync::Arc;
/// use echo_core::audit::{ChainStart, ChainVerifier, push_stored_events};
/// use echo_core::model::{NewAuditEvent, Timestamp};
/// use echo_core::store::AuditStore;
/// use echo_core::store::memory::MemoryStore;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = Arc::new(MemoryStore::new());
/// for action in ["login_success", "create_experiment"] {
///     store
///         .append_audit(&NewAuditEvent {
///             actor_user_id: None,
///             action: action.into(),
///             resource_type: "user".into(),
///             resource_id: None,
///             ip: None,
///             user_agent: None,
///             request_id: None,
///             details: serde_json::json!({}),
///             created_at: Timestamp::now(),
///         })
///         .await?;
/// }
/// let mut verifier = ChainVerifier::new(ChainStart::Genesis);
/// assert_eq!(push_stored_events(store, &mut verifier, 1, 1_000).await?, 2);
/// assert_eq!(verifier.finish()?.last_seq, 2);
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// [`WalkError::Broken`] at the first break (the verifier keeps it too);
/// [`WalkError::Store`] when a read fails.
pub async fn push_stored_events<S: AuditStore + ?Sized>(
    store: Arc<S>,
    verifier: &mut ChainVerifier,
    from_seq: u64,
    page: u32,
) -> Result<u64, WalkError> {
    let page = page.max(1);
    let mut in_flight: VecDeque<(u64, AbortOnDrop<Vec<AuditLink>>)> = VecDeque::new();
    // Where the next read starts; `None` past the end of the seq space.
    let mut next_read = Some(from_seq);
    let mut pushed = 0;
    loop {
        while in_flight.len() <= READ_AHEAD
            && let Some(start) = next_read
        {
            let store = store.clone();
            let read = tokio::spawn(async move { store.audit_links(start, page).await });
            in_flight.push_back((start, AbortOnDrop(read)));
            next_read = start.checked_add(u64::from(page));
        }
        let Some((start, mut read)) = in_flight.pop_front() else {
            return Ok(pushed);
        };
        let links = read.join().await?;
        for link in &links {
            verifier.push_link(link)?;
            pushed += 1;
        }
        if links.len() < page as usize {
            // Nothing was stored after these when the page was read: the end.
            return Ok(pushed);
        }
        // `page` distinct ascending seqs from `start` end here only if none is missing.
        let unbroken_end = start.checked_add(u64::from(page) - 1);
        let last = links.last().map(|l| l.seq);
        if last != unbroken_end {
            in_flight.clear();
            next_read = last.and_then(|l| l.checked_add(1));
        }
    }
}

/// Reads in flight while a page is checked: checking is cheap next to reading, so this is
/// about the cores that can read at once.
const READ_AHEAD: usize = 2;

/// A spawned page read, aborted when dropped: reads must not outlive a walk that stopped
/// early, or go on after a gap made them useless.
struct AbortOnDrop<T>(tokio::task::JoinHandle<Result<T, StoreError>>);

impl<T> AbortOnDrop<T> {
    async fn join(&mut self) -> Result<T, StoreError> {
        // A panicking store is a backend failure, not a broken chain.
        (&mut self.0).await.map_err(StoreError::backend)?
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use async_trait::async_trait;
    use proptest::prelude::*;

    use super::*;
    use crate::audit::chain_tests::chain;
    use crate::audit::{ChainStart, VerifyReport, verify_chain};
    use crate::model::{
        AuditCheckpoint, AuditErasure, AuditEvent, NewAuditEvent, Timestamp, UserId,
    };
    use crate::store::{AuditQuery, Page};

    /// A store serving fixed rows, as a tampered database would: `audit_range` returns the
    /// rows with `seq >= from`, ascending, at most `limit`. It counts its reads and can fail
    /// the read starting at one seq.
    #[derive(Debug, Default)]
    struct Rows {
        events: Vec<AuditEvent>,
        fail_from: Option<u64>,
        reads: AtomicU64,
    }

    fn unused() -> StoreError {
        StoreError::backend("not used by the walk")
    }

    #[async_trait]
    impl AuditStore for Rows {
        async fn append_audit(&self, _: &NewAuditEvent) -> Result<AuditEvent, StoreError> {
            Err(unused())
        }
        async fn list_audit(&self, _: &AuditQuery) -> Result<Page<AuditEvent, u64>, StoreError> {
            Err(unused())
        }
        async fn audit_range(&self, from: u64, limit: u32) -> Result<Vec<AuditEvent>, StoreError> {
            self.reads.fetch_add(1, Ordering::Relaxed);
            if self.fail_from == Some(from) {
                return Err(StoreError::unavailable("the disk went away"));
            }
            // Yields so that read-ahead tasks really overlap on the test runtime.
            tokio::task::yield_now().await;
            Ok(self
                .events
                .iter()
                .filter(|e| e.seq >= from)
                .take(limit as usize)
                .cloned()
                .collect())
        }
        async fn pseudonymize_actor(
            &self,
            _: UserId,
            _: &str,
            _: Timestamp,
        ) -> Result<u64, StoreError> {
            Err(unused())
        }
        async fn audit_erasures(&self, _: u64, _: u32) -> Result<Vec<AuditErasure>, StoreError> {
            Err(unused())
        }
        async fn put_audit_checkpoint(&self, _: &AuditCheckpoint) -> Result<(), StoreError> {
            Err(unused())
        }
        async fn latest_audit_checkpoint(&self) -> Result<Option<AuditCheckpoint>, StoreError> {
            Err(unused())
        }
        async fn audit_checkpoints(
            &self,
            _: u64,
            _: u32,
        ) -> Result<Vec<AuditCheckpoint>, StoreError> {
            Err(unused())
        }
        async fn delete_audit_through(&self, _: u64) -> Result<u64, StoreError> {
            Err(unused())
        }
        async fn audit_bounds(&self) -> Result<Option<(u64, u64)>, StoreError> {
            Err(unused())
        }
    }

    /// What a tampered table could hold, as `(seq, event)` rows.
    #[derive(Debug, Clone)]
    enum Tamper {
        None,
        Delete(usize),
        DeleteRun(usize, usize),
        /// The seqs of rows `i` and `i + 1` exchanged.
        Swap(usize),
        Alter(usize),
        /// A row far beyond the end, as a forged seq.
        Beyond(u64),
        /// Everything from row `i` on removed.
        Truncate(usize),
    }

    fn tampered(n: u64, tamper: &Tamper) -> Vec<AuditEvent> {
        let mut rows = chain(n);
        let len = rows.len();
        match *tamper {
            Tamper::None => {}
            Tamper::Delete(i) if i < len => {
                rows.remove(i);
            }
            Tamper::DeleteRun(i, k) if i < len => {
                rows.drain(i..(i + k).min(len));
            }
            Tamper::Swap(i) if i + 1 < len => {
                let (a, b) = (rows[i].seq, rows[i + 1].seq);
                rows[i].seq = b;
                rows[i + 1].seq = a;
            }
            Tamper::Alter(i) if i < len => rows[i].event.action = "forged".into(),
            Tamper::Beyond(seq) => {
                let mut forged = chain(1).remove(0);
                forged.seq = n + 1 + seq;
                rows.push(forged);
            }
            Tamper::Truncate(i) if i < len => rows.truncate(i),
            _ => {}
        }
        rows.sort_by_key(|e| e.seq);
        rows
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap_or_else(|e| panic!("runtime: {e}"))
    }

    fn walk(rows: Vec<AuditEvent>, page: u32) -> (Result<VerifyReport, ChainBreak>, u64) {
        let store = Arc::new(Rows {
            events: rows,
            ..Rows::default()
        });
        let mut verifier = ChainVerifier::new(ChainStart::Genesis);
        let walked = runtime().block_on(push_stored_events(store.clone(), &mut verifier, 1, page));
        let result = match walked {
            Ok(_) | Err(WalkError::Broken(_)) => verifier.finish(),
            Err(other) => panic!("the store does not fail: {other}"),
        };
        (result, store.reads.load(Ordering::Relaxed))
    }

    fn tamper() -> impl Strategy<Value = Tamper> {
        prop_oneof![
            Just(Tamper::None),
            (0usize..40).prop_map(Tamper::Delete),
            (0usize..40, 1usize..12).prop_map(|(i, k)| Tamper::DeleteRun(i, k)),
            (0usize..40).prop_map(Tamper::Swap),
            (0usize..40).prop_map(Tamper::Alter),
            (0u64..1_000_000_000_000).prop_map(Tamper::Beyond),
            (0usize..40).prop_map(Tamper::Truncate),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Reading ahead never changes the outcome: the walk over a store reports what
        /// verifying the same rows one by one reports, for any page size and tampering.
        #[test]
        fn read_ahead_walk_matches_the_one_by_one_walk(
            n in 0u64..40,
            page in 1u32..9,
            tamper in tamper(),
        ) {
            let rows = tampered(n, &tamper);
            let expected = verify_chain(ChainStart::Genesis, &rows);
            let (walked, _) = walk(rows, page);
            prop_assert_eq!(walked, expected);
        }
    }

    #[test]
    fn an_intact_chain_is_read_in_full_pages_plus_the_read_ahead() {
        let (report, reads) = walk(chain(100), 10);
        assert_eq!(report.map(|r| r.events), Ok(100));
        // Pages 1..=10 and the empty 11th, plus up to two reads ahead of it.
        assert!((11..=13).contains(&reads), "{reads} reads");
    }

    #[test]
    fn a_forged_seq_far_beyond_the_end_costs_one_more_read_not_a_scan() {
        let (report, reads) = walk(tampered(20, &Tamper::Beyond(1 << 40)), 10);
        assert!(
            matches!(report, Err(ChainBreak { seq: 21, .. })),
            "{report:?}"
        );
        assert!(reads <= 8, "{reads} reads");
    }

    #[test]
    fn a_failed_read_is_a_store_error() {
        let store = Arc::new(Rows {
            events: chain(30),
            fail_from: Some(11),
            ..Rows::default()
        });
        let mut verifier = ChainVerifier::new(ChainStart::Genesis);
        let walked = runtime().block_on(push_stored_events(store, &mut verifier, 1, 10));
        assert!(
            matches!(
                walked,
                Err(WalkError::Store(StoreError::Unavailable { .. }))
            ),
            "{walked:?}"
        );
    }
}
