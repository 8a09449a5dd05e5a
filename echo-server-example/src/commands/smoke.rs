//! `echoai smoke`: the promotion gate. Named, timed steps against a running server; the first
//! failure stops the run (later steps are reported as skipped), and an experiment created by
//! `--create` is deleted even when a step after its creation failed.

use std::future::Future;
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use serde::Serialize;
use serde_json::{Value, json};

use super::CliError;
use super::probe::{chain, http_client};
use crate::cli::SmokeArgs;

/// What to check.
#[derive(Debug, Clone)]
pub struct SmokeOptions {
    /// The server, without a trailing slash.
    pub base_url: String,
    /// An API key of an account on the server.
    pub api_key: Option<String>,
    /// Create, run, check and delete one simulated experiment.
    pub create: bool,
    /// Time limit of each request and of waiting for the experiment.
    pub timeout: Duration,
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// It passed.
    Passed,
    /// It failed: the gate fails.
    Failed,
    /// Not run, because an earlier step failed.
    Skipped,
}

/// One step's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// The step's name (`healthz`, `readyz`, `security-headers`, `good-key`, `bad-key`,
    /// `create`, `finish`, `metrics`, `delete`).
    pub name: &'static str,
    /// How it ended.
    pub status: StepStatus,
    /// Wall time of the step.
    pub duration_ms: u64,
    /// What was seen, or why it failed.
    pub detail: String,
}

/// Every step of one smoke run.
#[derive(Debug, Clone, Serialize)]
pub struct SmokeReport {
    /// The server checked.
    pub base_url: String,
    /// Whether every step passed.
    pub passed: bool,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

impl SmokeReport {
    /// The first failed step.
    pub fn first_failure(&self) -> Option<&Step> {
        self.steps.iter().find(|s| s.status == StepStatus::Failed)
    }
}

/// Headers every response must carry (see `crate::middleware`), with a part of their value.
const REQUIRED_HEADERS: &[(&str, &str)] = &[
    ("content-security-policy", "default-src 'none'"),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    ("cache-control", "no-store"),
    ("echo-environment", ""),
];

/// Simulated answers per experiment: enough for metrics, cheap on quota.
const ITERATIONS: u64 = 5;

struct Runner {
    steps: Vec<Step>,
}

impl Runner {
    /// Runs `step` unless an earlier one failed; returns its value when it passed.
    async fn step<T>(
        &mut self,
        name: &'static str,
        step: impl Future<Output = Result<(T, String), String>>,
    ) -> Option<T> {
        if self.steps.iter().any(|s| s.status == StepStatus::Failed) {
            self.steps.push(Step {
                name,
                status: StepStatus::Skipped,
                duration_ms: 0,
                detail: "an earlier step failed".into(),
            });
            return None;
        }
        self.always(name, step).await
    }

    /// Runs `step` whatever happened before (clean-up).
    async fn always<T>(
        &mut self,
        name: &'static str,
        step: impl Future<Output = Result<(T, String), String>>,
    ) -> Option<T> {
        let started = Instant::now();
        let result = step.await;
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let (status, detail, value) = match result {
            Ok((value, detail)) => (StepStatus::Passed, detail, Some(value)),
            Err(detail) => (StepStatus::Failed, detail, None),
        };
        self.steps.push(Step {
            name,
            status,
            duration_ms,
            detail,
        });
        value
    }
}

/// An answer: status, headers and the body as JSON (or as a JSON string when it is not JSON).
struct Answer {
    status: reqwest::StatusCode,
    headers: HeaderMap,
    body: Value,
}

async fn send(request: reqwest::RequestBuilder) -> Result<Answer, String> {
    let r = request.send().await.map_err(|e| chain(&e))?;
    let status = r.status();
    let headers = r.headers().clone();
    let text = r.text().await.map_err(|e| chain(&e))?;
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok(Answer {
        status,
        headers,
        body,
    })
}

fn expect(answer: &Answer, wanted: u16, what: &str) -> Result<(), String> {
    if answer.status.as_u16() == wanted {
        Ok(())
    } else {
        let title = answer.body["title"].as_str().unwrap_or("");
        Err(format!(
            "{what} answered {} {title}, expected {wanted}",
            answer.status
        ))
    }
}

fn check_headers(headers: &HeaderMap, https: bool) -> Result<String, String> {
    let mut missing = Vec::new();
    let hsts = [("strict-transport-security", "max-age=")];
    let wanted = REQUIRED_HEADERS
        .iter()
        .chain(if https { &hsts[..] } else { &[] });
    for (name, part) in wanted {
        let ok = headers
            .get(*name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains(part));
        if !ok {
            missing.push(*name);
        }
    }
    if missing.is_empty() {
        let env = headers
            .get("echo-environment")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        Ok(format!("all present; Echo-Environment: {env}"))
    } else {
        Err(format!("missing or wrong: {}", missing.join(", ")))
    }
}

/// A key that cannot be valid: `key` with its last character changed (the server may refuse
/// it by its checksum or by its lookup; either way it must answer 401 problem+json).
fn wrong_key(key: Option<&str>) -> String {
    match key {
        Some(k) if !k.is_empty() => {
            let mut k = k.to_owned();
            let last = k.pop().unwrap_or('a');
            k.push(if last == 'A' { 'B' } else { 'A' });
            k
        }
        _ => "echo1_live_smokesmokesmokesmokesmokesmoke".into(),
    }
}

/// Checks that every brand's visibility is a proportion of `ITERATIONS` answers.
fn check_metrics(detail: &Value) -> Result<String, String> {
    let providers = detail["report"]["providers"]
        .as_array()
        .filter(|p| !p.is_empty())
        .ok_or("the report has no providers")?;
    let mut brands = 0;
    for provider in providers {
        let list = provider["metrics"]["brands"]
            .as_array()
            .filter(|b| !b.is_empty())
            .ok_or("a provider's report has no brand metrics")?;
        for brand in list {
            let name = brand["brand"].as_str().unwrap_or("?");
            let v = &brand["visibility"];
            if v["n"].as_u64() != Some(ITERATIONS) {
                return Err(format!(
                    "{name}: visibility n is {}, expected {ITERATIONS}",
                    v["n"]
                ));
            }
            let rate = v["rate"].as_f64().ok_or(format!("{name}: no visibility"))?;
            let (lo, hi) = (v["ci95"]["lower"].as_f64(), v["ci95"]["upper"].as_f64());
            let sane = (0.0..=1.0).contains(&rate)
                && matches!((lo, hi), (Some(lo), Some(hi)) if 0.0 <= lo && lo <= rate && rate <= hi && hi <= 1.0);
            if !sane {
                return Err(format!(
                    "{name}: visibility {rate} with interval {lo:?}..{hi:?} is not a proportion"
                ));
            }
            brands += 1;
        }
    }
    Ok(format!(
        "{brands} brand(s) over {} provider(s), n = {ITERATIONS}",
        providers.len()
    ))
}

/// Runs the steps against `options.base_url`.
pub async fn run_smoke(options: &SmokeOptions) -> SmokeReport {
    let base = options.base_url.trim_end_matches('/').to_owned();
    let url = |path: &str| format!("{base}{path}");
    let mut run = Runner { steps: Vec::new() };
    let client = match http_client(options.timeout) {
        Ok(c) => c,
        Err(e) => {
            run.always("healthz", async { Err::<((), String), _>(e.to_string()) })
                .await;
            return finish(base, run);
        }
    };
    let key = options.api_key.as_deref().filter(|k| !k.trim().is_empty());

    let headers = run
        .step("healthz", async {
            let a = send(client.get(url("/healthz"))).await?;
            expect(&a, 200, "/healthz")?;
            Ok((a.headers, "200".to_owned()))
        })
        .await;
    run.step("readyz", async {
        let a = send(client.get(url("/readyz"))).await?;
        expect(&a, 200, "/readyz")?;
        Ok(((), "200".to_owned()))
    })
    .await;
    run.step("security-headers", async {
        let headers = headers.ok_or("no /healthz answer")?;
        Ok(((), check_headers(&headers, base.starts_with("https://"))?))
    })
    .await;
    run.step("good-key", async {
        let key = key.ok_or("no API key: pass --api-key or set ECHO_SMOKE_API_KEY")?;
        let a = send(
            client
                .get(url("/api/v1/experiments"))
                .header("x-api-key", key),
        )
        .await?;
        expect(&a, 200, "GET /api/v1/experiments with the key")?;
        Ok(((), "200".to_owned()))
    })
    .await;
    run.step("bad-key", async {
        let a = send(
            client
                .get(url("/api/v1/experiments"))
                .header("x-api-key", wrong_key(key)),
        )
        .await?;
        expect(&a, 401, "GET /api/v1/experiments with a wrong key")?;
        let problem = a
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/problem+json"));
        if !problem {
            return Err("the 401 is not application/problem+json".into());
        }
        Ok(((), "401 problem+json".to_owned()))
    })
    .await;

    if options.create {
        let key = key.unwrap_or_default();
        let id = run
            .step("create", async {
                let body = json!({
                    "prompt": "Which CRM should a small team use?",
                    "target_brand": "HubSpot",
                    "competitor_brands": ["Salesforce"],
                    "iterations": ITERATIONS,
                    "config": {"providers": ["simulated"]}
                });
                let a = send(
                    client
                        .post(url("/api/v1/experiments"))
                        .header("x-api-key", key)
                        .json(&body),
                )
                .await?;
                expect(&a, 202, "POST /api/v1/experiments")?;
                let id = a.body["experiment_id"]
                    .as_str()
                    .ok_or("no experiment_id in the answer")?
                    .to_owned();
                Ok((id.clone(), id))
            })
            .await;
        if let Some(id) = id {
            let path = url(&format!("/api/v1/experiments/{id}"));
            let detail = run
                .step("finish", async {
                    let deadline = Instant::now() + options.timeout;
                    loop {
                        let a = send(client.get(&path).header("x-api-key", key)).await?;
                        expect(&a, 200, "GET the experiment")?;
                        let status = a.body["experiment"]["status"]
                            .as_str()
                            .unwrap_or("")
                            .to_owned();
                        match status.as_str() {
                            "completed" => return Ok((a.body, status)),
                            "queued" | "running" | "pending" if Instant::now() < deadline => {
                                tokio::time::sleep(Duration::from_millis(200)).await;
                            }
                            "queued" | "running" | "pending" => {
                                return Err(format!(
                                    "still {status} after {}s (are workers running?)",
                                    options.timeout.as_secs()
                                ));
                            }
                            other => return Err(format!("the experiment ended {other:?}")),
                        }
                    }
                })
                .await;
            run.step("metrics", async {
                let detail = detail.ok_or("no finished experiment")?;
                Ok(((), check_metrics(&detail)?))
            })
            .await;
            run.always("delete", async {
                let a = send(client.delete(&path).header("x-api-key", key)).await?;
                expect(&a, 204, "DELETE the experiment")?;
                Ok(((), "204".to_owned()))
            })
            .await;
        }
    }
    finish(base, run)
}

fn finish(base_url: String, run: Runner) -> SmokeReport {
    let passed = run.steps.iter().all(|s| s.status == StepStatus::Passed);
    SmokeReport {
        base_url,
        passed,
        steps: run.steps,
    }
}

/// Executes `echoai smoke`: prints the steps (text or JSON); fails naming the first failed
/// step.
pub async fn smoke(args: SmokeArgs) -> Result<(), CliError> {
    let options = SmokeOptions {
        base_url: args.base_url,
        api_key: args.api_key,
        create: args.create,
        timeout: Duration::from_secs(args.timeout_secs.max(1)),
    };
    let report = run_smoke(&options).await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for s in &report.steps {
            let status = match s.status {
                StepStatus::Passed => "ok",
                StepStatus::Failed => "FAILED",
                StepStatus::Skipped => "skipped",
            };
            println!(
                "{:<17} {status:<7} {:>6} ms  {}",
                s.name, s.duration_ms, s.detail
            );
        }
    }
    match report.first_failure() {
        None => Ok(()),
        Some(step) => Err(CliError::Check(format!(
            "smoke failed at step {}: {}",
            step.name, step.detail
        ))),
    }
}
