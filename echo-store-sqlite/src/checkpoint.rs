//! The background WAL checkpointer (see `SqliteConfig::checkpoint_interval`).

use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

/// `wal_autocheckpoint` of the pooled connections while the checkpointer runs: far above
/// what it lets the log reach, so writers checkpoint only if it falls behind.
pub(crate) const WRITER_FALLBACK_PAGES: u32 = 10_000;

/// A thread running `PRAGMA wal_checkpoint(PASSIVE)` on its own connection every interval.
/// Dropping it stops the thread and waits for it, so its connection is closed (and the last
/// connection's final checkpoint can run) before a temporary store's directory is removed.
pub(crate) struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    pub(crate) fn spawn(conn: Connection, every: Duration) -> std::io::Result<Self> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("echo-sqlite-checkpoint".into())
            .spawn(move || {
                let mut failing = false;
                // Nothing is ever sent: the sender's drop ends the wait at once.
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    // A passive checkpoint copies what no reader still needs and never
                    // waits for a lock; SQLITE_BUSY (another checkpoint running) is not
                    // reported as an error by the pragma, it shows in the first column.
                    match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                        Ok(()) => failing = false,
                        Err(e) if !failing => {
                            failing = true;
                            // Writers still checkpoint past WRITER_FALLBACK_PAGES, so this
                            // costs latency, not data: warn once per run of failures.
                            tracing::warn!(error = %e, "background WAL checkpoint failed");
                        }
                        Err(_) => {}
                    }
                }
            })?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            // The thread only runs pragmas, which return errors instead of panicking.
            let _ = thread.join();
        }
    }
}
