//! Structured logs of the server: JSON lines, the request id on every line of a request
//! (and on the worker's lines for the jobs it enqueued), no secret anywhere.
//!
//! A binary of its own: a test that installs a logging subscriber must not share its process
//! with other tests, since tracing caches per call site whether anyone listens, and a call
//! site first reached by a concurrent test without a subscriber can stay muted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../integration/harness.rs"]
#[allow(dead_code)]
mod harness;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use harness::{TestServer, experiment_body, send};

#[derive(Clone, Default)]
struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn logs_are_json_with_the_request_id_and_never_a_secret() {
    let buffer = LogBuffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_span_list(true)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // One thread: the server's tasks log through this test's subscriber.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let secrets = rt.block_on(async {
        let s = TestServer::start().await;
        let a = s.user("log@example.com").await;
        let (workers, handle) = s.start_workers(Duration::from_secs(30));
        let (status, _, created) = send(
            s.client
                .post(s.url("/api/v1/experiments"))
                .header("x-api-key", &a.key)
                .header("x-request-id", "log-req-1")
                .json(&experiment_body()),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        s.wait_finished(&a.key, created["experiment_id"].as_str().unwrap())
            .await;
        workers.cancel();
        handle.await.unwrap();
        let (status, _, _) = send(
            s.client
                .post(s.url("/api/v1/auth/login"))
                .json(&json!({"email": "log@example.com", "password": "a wrong password"})),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        vec![a.key, a.token, a.csrf, "correct horse battery".to_owned()]
    });
    let logs = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is JSON"))
        .collect();
    let created = lines
        .iter()
        .find(|l| l["fields"]["event"] == "experiment_created")
        .expect("experiment_created logged");
    assert_eq!(created["span"]["request_id"], "log-req-1", "{created}");
    assert!(
        lines.iter().any(|l| l["fields"]["event"] == "login_failed"),
        "login_failed logged"
    );
    assert!(
        lines
            .iter()
            .filter(|l| l["fields"]["message"] == "request finished")
            .all(|l| l["span"]["request_id"].is_string()),
        "every request line has its id"
    );
    for secret in secrets {
        assert!(!logs.contains(&secret), "a secret reached the logs");
    }
}
