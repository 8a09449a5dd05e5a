//! A terminal progress bar for `echoai run`, drawn on standard error only when it is a
//! terminal (so pipes and CI logs stay clean).

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use echo_core::runner::ProgressEvent;

/// Counts finished iterations against the total and redraws at most every 100 ms.
#[derive(Debug)]
pub struct ProgressBar {
    inner: Mutex<State>,
    enabled: bool,
}

#[derive(Debug)]
struct State {
    total: u64,
    done: u64,
    failed: u64,
    started: Instant,
    last_draw: Option<Instant>,
}

impl ProgressBar {
    /// A bar for `total` iterations; drawn only when standard error is a terminal.
    pub fn new(total: u64) -> Self {
        Self {
            inner: Mutex::new(State {
                total,
                done: 0,
                failed: 0,
                started: Instant::now(),
                last_draw: None,
            }),
            enabled: std::io::stderr().is_terminal(),
        }
    }

    /// Feeds one runner event.
    pub fn on_event(&self, event: &ProgressEvent) {
        let Ok(mut s) = self.inner.lock() else { return };
        match event {
            ProgressEvent::RunStarted {
                already_recorded, ..
            } => s.done += u64::from(*already_recorded),
            ProgressEvent::IterationFinished { success, .. } => {
                s.done += 1;
                s.failed += u64::from(!success);
            }
            ProgressEvent::RunFinished { .. } => {}
        }
        let due = s
            .last_draw
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(100));
        if self.enabled && (due || s.done >= s.total) {
            s.last_draw = Some(Instant::now());
            draw(&s);
        }
    }

    /// Clears the bar's line.
    pub fn finish(&self) {
        if self.enabled {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}

fn draw(s: &State) {
    const WIDTH: u64 = 30;
    let filled = (s.done.min(s.total) * WIDTH)
        .checked_div(s.total)
        .unwrap_or(WIDTH);
    let bar: String = (0..WIDTH)
        .map(|i| if i < filled { '█' } else { '░' })
        .collect();
    let rate = s.done as f64 / s.started.elapsed().as_secs_f64().max(1e-3);
    let mut err = std::io::stderr().lock();
    let _ = write!(
        err,
        "\r\x1b[2K{bar} {}/{} answers · {} failed · {rate:.0}/s",
        s.done, s.total, s.failed
    );
    let _ = err.flush();
}
