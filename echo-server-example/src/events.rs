//! Live progress of an experiment as server-sent events.
//!
//! # Design: the store is the source
//! A stream polls [`RunService::progress`](echo_core::service::RunService::progress) every
//! [`EventStreamConfig::poll_interval`] and sends a `progress` event for each run whose
//! counters or status changed since it last sent one, then a `done` event (and closes) once
//! the experiment is no longer queued or running.
//!
//! The runner's in-process [`ProgressEvent`](echo_core::runner::ProgressEvent)s are not
//! used: `echoai serve` may run no workers at all (`echoai worker` in other processes or
//! pods), and even with workers in the same process the job that runs an experiment may be
//! claimed by another replica. The batch run's counters are written by the store in the same
//! transaction as the iterations, so polling them is correct whatever the deployment, and a
//! client that reconnects starts from the truth rather than from missed events. The price is
//! latency (at most one interval, plus the runner's write batching) and one indexed read of
//! the experiment and one of its runs per stream and interval; streams per account are
//! bounded (`http.event_streams_per_account`), so the read rate is too.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use echo_core::model::{BatchRunId, ExperimentId, UserId};
use echo_core::service::{ExperimentProgress, RunProgress, ServiceError};
use futures::Stream;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::state::AppState;

/// Timings of the progress streams (the per-account bound is the setting
/// `http.event_streams_per_account`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventStreamConfig {
    /// How often a stream reads the experiment's progress.
    pub poll_interval: Duration,
    /// How often an idle stream sends a comment, so proxies keep the connection open.
    pub keep_alive: Duration,
}

impl Default for EventStreamConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(500),
            keep_alive: Duration::from_secs(15),
        }
    }
}

/// The open streams per account, and the signal that ends them all at shutdown.
#[derive(Debug)]
pub struct EventStreams {
    per_account: u32,
    config: EventStreamConfig,
    open: Mutex<HashMap<UserId, u32>>,
    shutdown: CancellationToken,
}

impl EventStreams {
    /// At most `per_account` open streams per account (all its keys and sessions together),
    /// with `config`'s timings.
    pub fn new(per_account: u32, config: EventStreamConfig) -> Self {
        Self {
            per_account,
            config,
            open: Mutex::default(),
            shutdown: CancellationToken::new(),
        }
    }

    /// The timings in force.
    pub fn config(&self) -> EventStreamConfig {
        self.config
    }

    /// Streams an account may have open at once.
    pub fn per_account(&self) -> u32 {
        self.per_account
    }

    /// A slot for one more stream of `user`, released when the permit drops; `None` when
    /// the account has [`EventStreams::per_account`] open.
    pub fn acquire(self: &Arc<Self>, user: UserId) -> Option<StreamPermit> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let n = open.entry(user).or_insert(0);
        if *n >= self.per_account {
            return None;
        }
        *n += 1;
        Some(StreamPermit {
            streams: self.clone(),
            user,
        })
    }

    /// Streams open for `user` now.
    pub fn open_for(&self, user: UserId) -> u32 {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(&user).copied().unwrap_or(0)
    }

    /// Ends every stream (graceful shutdown: an open stream would otherwise hold the server
    /// until its experiment finishes).
    pub fn close_all(&self) {
        self.shutdown.cancel();
    }
}

/// One open stream's slot; dropping it (the stream ended or the client went away) frees it.
#[derive(Debug)]
pub struct StreamPermit {
    streams: Arc<EventStreams>,
    user: UserId,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut open = self
            .streams
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.user);
            }
        }
    }
}

/// Data of a `progress` event: one run's counters.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProgressData {
    /// The batch run.
    pub run_id: String,
    /// Its provider.
    pub provider: String,
    /// Iterations recorded so far.
    pub completed: u32,
    /// Iterations planned.
    pub total: u32,
    /// The run's status (`pending`, `running`, `completed`, `failed`, `cancelled`).
    pub status: String,
}

impl ProgressData {
    fn of(run: &RunProgress) -> Self {
        Self {
            run_id: run.run_id.to_string(),
            provider: run.provider.as_str().to_owned(),
            completed: run.completed,
            total: run.total,
            status: run.status.as_str().to_owned(),
        }
    }
}

/// Data of the final `done` event.
#[derive(Debug, Serialize, ToSchema)]
pub struct DoneData {
    /// The experiment.
    pub experiment_id: String,
    /// Its final status (`completed`, `failed`, `cancelled`).
    pub status: String,
}

/// Data of an `error` event, after which the stream closes.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorData {
    /// `not-found` (the experiment was deleted) or `internal`.
    pub kind: String,
    /// What happened.
    pub detail: String,
}

/// Opens the progress stream of `owner`'s experiment `id`: the caller's ownership is checked
/// before anything is sent (404 problem otherwise), then the account's stream limit (429).
pub async fn progress_stream(
    state: &AppState,
    owner: UserId,
    id: ExperimentId,
) -> Result<Response, ApiError> {
    let first = state
        .runs
        .progress(owner, id)
        .await
        .map_err(|e| ApiError::from_service(e, "experiment"))?;
    let permit = state.event_streams.acquire(owner).ok_or_else(|| {
        tracing::warn!(event = "event_streams_exhausted", user_id = %owner, "too many event streams");
        let limit = state.event_streams.per_account();
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            crate::error::types::TOO_MANY_STREAMS,
            "Too many progress streams",
            format!("at most {limit} progress streams may be open per account; close one first"),
        )
        .with_retry_after(5)
    })?;
    let config = state.event_streams.config();
    let watch = Watch {
        state: state.clone(),
        owner,
        id,
        sent: HashMap::new(),
        pending: VecDeque::new(),
        next: Some(first),
        finished: false,
        shutdown: state.event_streams.shutdown.clone(),
        poll: config.poll_interval,
        _permit: permit,
    };
    Ok(Sse::new(events(watch))
        .keep_alive(KeepAlive::new().interval(config.keep_alive))
        .into_response())
}

struct Watch {
    state: AppState,
    owner: UserId,
    id: ExperimentId,
    /// What was last sent per run, so only changes are sent.
    sent: HashMap<BatchRunId, RunProgress>,
    pending: VecDeque<Event>,
    /// A reading not yet turned into events (the first one, read before the response).
    next: Option<ExperimentProgress>,
    finished: bool,
    shutdown: CancellationToken,
    poll: Duration,
    _permit: StreamPermit,
}

impl Watch {
    fn absorb(&mut self, progress: ExperimentProgress) {
        for run in &progress.runs {
            if self.sent.get(&run.run_id) != Some(run) {
                self.pending
                    .push_back(json_event("progress", &ProgressData::of(run)));
                self.sent.insert(run.run_id, run.clone());
            }
        }
        if progress.is_done() {
            self.pending.push_back(json_event(
                "done",
                &DoneData {
                    experiment_id: progress.experiment_id.to_string(),
                    status: progress.status.as_str().to_owned(),
                },
            ));
            self.finished = true;
        }
    }

    fn fail(&mut self, error: ServiceError) {
        let data = match error {
            ServiceError::Store(echo_core::store::StoreError::NotFound { .. }) => ErrorData {
                kind: "not-found".into(),
                detail: "experiment not found".into(),
            },
            other => {
                crate::error::log_chain("progress stream failed", Some(&other));
                ErrorData {
                    kind: "internal".into(),
                    detail: "progress could not be read; reconnect to try again".into(),
                }
            }
        };
        self.pending.push_back(json_event("error", &data));
        self.finished = true;
    }
}

fn json_event(name: &str, data: &impl Serialize) -> Event {
    // Plain structs of strings and integers always serialize; the fallback keeps the stream
    // well-formed regardless.
    Event::default()
        .event(name)
        .json_data(data)
        .unwrap_or_else(|_| Event::default().event(name).data("{}"))
}

fn events(watch: Watch) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold(watch, |mut w| async move {
        loop {
            if let Some(event) = w.pending.pop_front() {
                return Some((Ok(event), w));
            }
            if w.finished {
                return None;
            }
            let progress = match w.next.take() {
                Some(p) => p,
                None => {
                    tokio::select! {
                        () = w.shutdown.cancelled() => return None,
                        () = tokio::time::sleep(w.poll) => {}
                    }
                    match w.state.runs.progress(w.owner, w.id).await {
                        Ok(p) => p,
                        Err(e) => {
                            w.fail(e);
                            continue;
                        }
                    }
                }
            };
            w.absorb(progress);
        }
    })
}
