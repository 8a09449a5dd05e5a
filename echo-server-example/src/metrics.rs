//! Prometheus metrics in the text exposition format: HTTP requests by route, method and
//! status with latency histograms, job outcomes and durations, queue depth, worker slots and
//! the database connection pool.
//!
//! Routes are labelled by their template (`/api/v1/experiments/{id}`), never the raw path, so
//! the label set stays bounded whatever clients send.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use echo_core::runner::PoolSnapshot;
use echo_core::store::QueueStats;
#[cfg(feature = "postgres")]
use echo_store_postgres::{ACQUIRE_BUCKETS_SECONDS, PoolStats};

/// Upper bounds of the HTTP latency buckets, in seconds.
pub const HTTP_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Upper bounds of the job duration buckets, in seconds.
pub const JOB_BUCKETS: [f64; 10] = [0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 7200.0];

#[derive(Debug, Default, Clone)]
struct Histogram {
    buckets: Vec<u64>,
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, bounds: &[f64], value: f64) {
        if self.buckets.len() != bounds.len() {
            self.buckets = vec![0; bounds.len()];
        }
        for (slot, bound) in self.buckets.iter_mut().zip(bounds) {
            if value <= *bound {
                *slot += 1;
            }
        }
        self.count += 1;
        self.sum += value;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str, bounds: &[f64]) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (bound, n) in bounds.iter().zip(&self.buckets) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

#[derive(Debug, Default)]
struct Inner {
    requests: BTreeMap<(String, String, u16), u64>,
    latency: BTreeMap<(String, String), Histogram>,
    jobs: BTreeMap<(String, String), Histogram>,
}

/// The process's metrics registry.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

/// Escapes a label value (backslash, quote, newline).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one HTTP request.
    pub fn observe_request(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        if let Ok(mut m) = self.inner.lock() {
            *m.requests
                .entry((route.to_owned(), method.to_owned(), status))
                .or_default() += 1;
            m.latency
                .entry((route.to_owned(), method.to_owned()))
                .or_default()
                .observe(&HTTP_BUCKETS, elapsed.as_secs_f64());
        }
    }

    /// Records one finished job execution.
    pub fn observe_job(&self, kind: &str, outcome: &str, elapsed: Duration) {
        if let Ok(mut m) = self.inner.lock() {
            m.jobs
                .entry((kind.to_owned(), outcome.to_owned()))
                .or_default()
                .observe(&JOB_BUCKETS, elapsed.as_secs_f64());
        }
    }

    /// The exposition text, with the gauges read now. The connection pool's section, when
    /// there is a pool, is appended by `render_pool` (feature `postgres`).
    pub fn render(&self, queue: Option<QueueStats>, workers: Option<PoolSnapshot>) -> String {
        let mut out = String::new();
        if let Ok(m) = self.inner.lock() {
            out.push_str("# HELP echo_http_requests_total HTTP requests by route template, method and status.\n# TYPE echo_http_requests_total counter\n");
            for ((route, method, status), n) in &m.requests {
                let _ = writeln!(
                    out,
                    "echo_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{status}\"}} {n}",
                    label(route),
                    label(method)
                );
            }
            out.push_str("# HELP echo_http_request_duration_seconds HTTP request latency.\n# TYPE echo_http_request_duration_seconds histogram\n");
            for ((route, method), h) in &m.latency {
                let labels = format!("route=\"{}\",method=\"{}\"", label(route), label(method));
                h.render(
                    &mut out,
                    "echo_http_request_duration_seconds",
                    &labels,
                    &HTTP_BUCKETS,
                );
            }
            out.push_str("# HELP echo_job_duration_seconds Job executions by kind and outcome.\n# TYPE echo_job_duration_seconds histogram\n");
            for ((kind, outcome), h) in &m.jobs {
                let labels = format!("kind=\"{}\",outcome=\"{}\"", label(kind), label(outcome));
                h.render(&mut out, "echo_job_duration_seconds", &labels, &JOB_BUCKETS);
            }
        }
        if let Some(q) = queue {
            out.push_str("# HELP echo_queue_jobs Jobs in the queue by state.\n# TYPE echo_queue_jobs gauge\n");
            for (state, n) in [
                ("due", q.due),
                ("scheduled", q.scheduled),
                ("running", q.running),
                ("failed", q.failed),
            ] {
                let _ = writeln!(out, "echo_queue_jobs{{state=\"{state}\"}} {n}");
            }
        }
        if let Some(w) = workers {
            out.push_str("# HELP echo_worker_slots Job slots of this process's worker pool.\n# TYPE echo_worker_slots gauge\n");
            let _ = writeln!(
                out,
                "echo_worker_slots{{state=\"in_flight\"}} {}",
                w.in_flight
            );
            let _ = writeln!(
                out,
                "echo_worker_slots{{state=\"target\"}} {}",
                w.target_concurrency
            );
            out.push_str("# HELP echo_worker_jobs_total Job executions of this process by outcome.\n# TYPE echo_worker_jobs_total counter\n");
            for (outcome, n) in [
                ("claimed", w.claimed),
                ("succeeded", w.succeeded),
                ("cancelled", w.cancelled),
                ("retrying", w.retrying),
                ("failed", w.failed),
                ("released", w.released),
                ("lease_lost", w.lease_lost),
                ("abandoned", w.abandoned),
            ] {
                let _ = writeln!(out, "echo_worker_jobs_total{{outcome=\"{outcome}\"}} {n}");
            }
            let _ = writeln!(
                out,
                "# HELP echo_worker_claim_errors_total Failed claim rounds.\n# TYPE echo_worker_claim_errors_total counter\necho_worker_claim_errors_total {}",
                w.claim_errors
            );
        }
        out
    }
}

/// Appends the connection pool's section (PostgreSQL's pool statistics) to `out`.
#[cfg(feature = "postgres")]
pub fn render_pool(out: &mut String, p: &PoolStats) {
    out.push_str("# HELP echo_db_pool_connections Database connections by state.\n# TYPE echo_db_pool_connections gauge\n");
    for (state, n) in [
        ("open", p.size),
        ("idle", p.idle),
        ("in_use", p.in_use),
        ("max", p.max_connections),
    ] {
        let _ = writeln!(out, "echo_db_pool_connections{{state=\"{state}\"}} {n}");
    }
    out.push_str("# HELP echo_db_pool_acquires_total Connection acquires.\n# TYPE echo_db_pool_acquires_total counter\n");
    let _ = writeln!(out, "echo_db_pool_acquires_total {}", p.acquires);
    out.push_str("# HELP echo_db_pool_waits_total Acquires that had to wait for a connection.\n# TYPE echo_db_pool_waits_total counter\n");
    let _ = writeln!(out, "echo_db_pool_waits_total {}", p.waits);
    out.push_str("# HELP echo_db_pool_timeouts_total Acquires that timed out.\n# TYPE echo_db_pool_timeouts_total counter\n");
    let _ = writeln!(out, "echo_db_pool_timeouts_total {}", p.timeouts);
    out.push_str("# HELP echo_db_pool_acquire_seconds Connection acquire latency.\n# TYPE echo_db_pool_acquire_seconds histogram\n");
    for (bound, n) in ACQUIRE_BUCKETS_SECONDS.iter().zip(&p.acquire_buckets) {
        let _ = writeln!(
            out,
            "echo_db_pool_acquire_seconds_bucket{{le=\"{bound}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "echo_db_pool_acquire_seconds_bucket{{le=\"+Inf\"}} {}",
        p.acquires
    );
    let _ = writeln!(
        out,
        "echo_db_pool_acquire_seconds_sum {}",
        p.acquire_seconds_sum
    );
    let _ = writeln!(out, "echo_db_pool_acquire_seconds_count {}", p.acquires);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = Metrics::new();
        m.observe_request(
            "/api/v1/experiments",
            "GET",
            200,
            Duration::from_micros(800),
        );
        m.observe_request("/api/v1/experiments", "GET", 200, Duration::from_millis(30));
        m.observe_request("/x\"y", "GET", 404, Duration::from_millis(1));
        let text = m.render(Some(QueueStats::default()), None);
        assert!(text.contains(
            "echo_http_requests_total{route=\"/api/v1/experiments\",method=\"GET\",status=\"200\"} 2"
        ));
        assert!(text.contains("route=\"/x\\\"y\""));
        assert!(text.contains(
            "echo_http_request_duration_seconds_bucket{route=\"/api/v1/experiments\",method=\"GET\",le=\"0.001\"} 1"
        ));
        assert!(text.contains(
            "echo_http_request_duration_seconds_bucket{route=\"/api/v1/experiments\",method=\"GET\",le=\"0.05\"} 2"
        ));
        assert!(text.contains("echo_queue_jobs{state=\"due\"} 0"));
    }

    #[test]
    fn job_histograms_are_labelled_by_kind_and_outcome() {
        let m = Metrics::new();
        m.observe_job("run_experiment", "succeeded", Duration::from_millis(300));
        m.observe_job("run_experiment", "succeeded", Duration::from_secs(20));
        m.observe_job("retention", "fail\"ed\n", Duration::from_secs(1));
        let text = m.render(None, None);
        let labels = "kind=\"run_experiment\",outcome=\"succeeded\"";
        for (le, n) in [("0.1", 0), ("0.5", 1), ("15", 1), ("60", 2), ("7200", 2)] {
            let line = format!("echo_job_duration_seconds_bucket{{{labels},le=\"{le}\"}} {n}");
            assert!(text.contains(&line), "missing {line} in\n{text}");
        }
        assert!(text.contains(&format!(
            "echo_job_duration_seconds_bucket{{{labels},le=\"+Inf\"}} 2"
        )));
        assert!(text.contains(&format!("echo_job_duration_seconds_sum{{{labels}}} 20.3")));
        assert!(text.contains(&format!("echo_job_duration_seconds_count{{{labels}}} 2")));
        assert!(
            text.contains("kind=\"retention\",outcome=\"fail\\\"ed\\n\""),
            "quote and newline escaped"
        );
        assert!(!text.contains("echo_queue_jobs"), "no queue, no gauge");
        assert!(!text.contains("echo_worker_slots"), "no pool, no gauge");
    }

    #[test]
    fn queue_and_worker_gauges_carry_every_state() {
        let queue = QueueStats {
            due: 3,
            scheduled: 5,
            running: 2,
            failed: 1,
        };
        let workers = PoolSnapshot {
            in_flight: 2,
            target_concurrency: 8,
            claimed: 40,
            succeeded: 30,
            cancelled: 1,
            retrying: 4,
            failed: 2,
            released: 3,
            lease_lost: 5,
            abandoned: 6,
            claim_errors: 7,
        };
        let text = Metrics::new().render(Some(queue), Some(workers));
        for line in [
            "echo_queue_jobs{state=\"due\"} 3",
            "echo_queue_jobs{state=\"scheduled\"} 5",
            "echo_queue_jobs{state=\"running\"} 2",
            "echo_queue_jobs{state=\"failed\"} 1",
            "# TYPE echo_worker_slots gauge",
            "echo_worker_slots{state=\"in_flight\"} 2",
            "echo_worker_slots{state=\"target\"} 8",
            "# TYPE echo_worker_jobs_total counter",
            "echo_worker_jobs_total{outcome=\"claimed\"} 40",
            "echo_worker_jobs_total{outcome=\"succeeded\"} 30",
            "echo_worker_jobs_total{outcome=\"cancelled\"} 1",
            "echo_worker_jobs_total{outcome=\"retrying\"} 4",
            "echo_worker_jobs_total{outcome=\"failed\"} 2",
            "echo_worker_jobs_total{outcome=\"released\"} 3",
            "echo_worker_jobs_total{outcome=\"lease_lost\"} 5",
            "echo_worker_jobs_total{outcome=\"abandoned\"} 6",
            "echo_worker_claim_errors_total 7",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn the_pool_section_has_gauges_counters_and_a_cumulative_histogram() {
        let mut buckets = vec![0; ACQUIRE_BUCKETS_SECONDS.len()];
        buckets[0] = 1;
        for b in buckets.iter_mut().skip(2) {
            *b = 9;
        }
        let stats = PoolStats {
            size: 4,
            idle: 1,
            in_use: 3,
            max_connections: 10,
            acquires: 12,
            waits: 2,
            timeouts: 1,
            acquire_buckets: buckets,
            acquire_seconds_sum: 0.75,
        };
        let mut text = String::new();
        render_pool(&mut text, &stats);
        for line in [
            "echo_db_pool_connections{state=\"open\"} 4",
            "echo_db_pool_connections{state=\"idle\"} 1",
            "echo_db_pool_connections{state=\"in_use\"} 3",
            "echo_db_pool_connections{state=\"max\"} 10",
            "echo_db_pool_acquires_total 12",
            "echo_db_pool_waits_total 2",
            "echo_db_pool_timeouts_total 1",
            "echo_db_pool_acquire_seconds_bucket{le=\"0.0001\"} 1",
            "echo_db_pool_acquire_seconds_bucket{le=\"0.001\"} 9",
            "echo_db_pool_acquire_seconds_bucket{le=\"+Inf\"} 12",
            "echo_db_pool_acquire_seconds_sum 0.75",
            "echo_db_pool_acquire_seconds_count 12",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
    }
}
