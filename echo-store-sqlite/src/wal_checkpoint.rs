//! The background WAL checkpointer (see `SqliteConfig::checkpoint_interval`).

use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;

/// `wal_autocheckpoint` of the pooled connections while the checkpointer runs: far above
/// what it lets the log reach, so writers checkpoint only if it falls behind.
pub(crate) const WRITER_FALLBACK_PAGES: u32 = 10_000;

/// The log pages a pass should find: SQLite's own automatic checkpoint runs at 1,000. While
/// writes come faster than that per interval, passes come sooner (down to [`MIN_WAIT`]), so a
/// steady stream of writes is copied in small steps instead of growing the log to the writers'
/// fallback, where one caller would copy 40 MiB.
const PAGES_PER_PASS: f64 = 1_000.0;
const MIN_WAIT: Duration = Duration::from_millis(5);

/// A thread running `PRAGMA wal_checkpoint(PASSIVE)` on its own connection every interval
/// (sooner while writes come fast). Dropping it stops the thread and waits for it,
/// so its connection is closed (and the last connection's final checkpoint can run) before
/// a temporary store's directory is removed.
pub(crate) struct WalCheckpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl WalCheckpointer {
    pub(crate) fn spawn(conn: Connection, every: Duration) -> std::io::Result<Self> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("echo-sqlite-checkpoint".into())
            .spawn(move || {
                let mut failing = false;
                let mut wait = every;
                let (mut last_pass, mut last_len) = (Instant::now(), 0i64);
                // Nothing is ever sent: the sender's drop ends the wait at once.
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(wait) {
                    // A passive checkpoint copies what no reader still needs and never
                    // waits for a lock; SQLITE_BUSY (another checkpoint running) is not
                    // reported as an error by the pragma, it shows in the first column.
                    // The second is the log's length in pages.
                    let pass = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
                        row.get::<_, i64>(1)
                    });
                    if let Ok(len) = pass {
                        // A shorter log was restarted by a writer since the last pass.
                        let written = if len >= last_len { len - last_len } else { len };
                        let rate = written as f64 / last_pass.elapsed().as_secs_f64().max(1e-3);
                        wait = Duration::try_from_secs_f64(PAGES_PER_PASS / rate)
                            .map_or(every, |d| d.clamp(MIN_WAIT.min(every), every));
                        (last_pass, last_len) = (Instant::now(), len);
                    }
                    match pass {
                        Ok(_) => failing = false,
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

impl Drop for WalCheckpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            // The thread only runs pragmas, which return errors instead of panicking.
            let _ = thread.join();
        }
    }
}
