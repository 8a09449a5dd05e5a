//! The dashboard's two API routes: a run's answers with their spans, and live progress (SSE).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Account, Backend, Options, TestServer, experiment_body, send};
use crate::server::assert_problem;

/// Creates the typical experiment for `a`; returns its id.
async fn create(s: &TestServer, a: &Account, body: &Value) -> String {
    let (status, _, created) = send(
        s.client
            .post(s.url("/api/v1/experiments"))
            .header("x-api-key", &a.key)
            .json(body),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    created["experiment_id"].as_str().unwrap().to_owned()
}

async fn answers(
    s: &TestServer,
    key: &str,
    path: &str,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    send(s.client.get(s.url(path)).header("x-api-key", key)).await
}

#[tokio::test]
async fn answers_on_sqlite() {
    answers_page_through_a_run_with_spans_and_stay_private(
        TestServer::on(Backend::Sqlite).await.unwrap(),
    )
    .await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn answers_on_postgres() {
    if let Some(s) = TestServer::on(Backend::Postgres).await {
        answers_page_through_a_run_with_spans_and_stay_private(s).await;
    }
}

async fn answers_page_through_a_run_with_spans_and_stay_private(s: TestServer) {
    let a = s.user("ada@example.com").await;
    let b = s.user("bob@example.com").await;
    let (workers, handle) = s.start_workers(Duration::from_secs(30));
    let id = create(&s, &a, &experiment_body()).await;
    let other = create(&s, &a, &experiment_body()).await;
    let detail = s.wait_finished(&a.key, &id).await;
    s.wait_finished(&a.key, &other).await;
    workers.cancel();
    handle.await.unwrap();
    let run = detail["batch_runs"][0]["id"].as_str().unwrap().to_owned();
    let base = format!("/api/v1/experiments/{id}/runs/{run}/answers");

    // Every answer once, across pages of 7.
    let mut indexes = Vec::new();
    let mut cursor = String::new();
    let mut spans = 0;
    loop {
        let (status, _, page) =
            answers(&s, &a.key, &format!("{base}?limit=7&cursor={cursor}")).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 7);
        for answer in items {
            indexes.push(answer["index"].as_u64().unwrap());
            assert_eq!(answer["provider"], "simulated");
            assert_eq!(answer["anonymized"], false);
            let text = answer["text"].as_str().unwrap();
            let chars: Vec<char> = text.chars().collect();
            for span in answer["spans"].as_array().unwrap() {
                let at = |k: &str| span[k].as_u64().unwrap() as usize;
                let by_bytes = &text[at("start")..at("end")];
                let by_chars: String = chars[at("char_start")..at("char_end")].iter().collect();
                assert_eq!(by_bytes, by_chars);
                let brand = span["brand"].as_str().unwrap();
                let spelled = span["alias"].as_str().unwrap_or(brand);
                assert!(by_bytes.eq_ignore_ascii_case(spelled), "{span} in {text:?}");
                assert_eq!(span["is_target"], brand == "HubSpot");
                spans += 1;
            }
            // The spans agree with the stored summary the metrics were computed from.
            for mention in answer["mentions"].as_array().unwrap() {
                let brand = &mention["brand"];
                let n = answer["spans"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|sp| &sp["brand"] == brand)
                    .count();
                assert_eq!(mention["count"].as_u64().unwrap() as usize, n, "{answer}");
            }
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(indexes, (0..20).collect::<Vec<u64>>());
    assert!(spans > 0, "the simulated answers name the brands");

    // Empty parameters mean "not given": the first page of the default size.
    let (status, _, page) = answers(&s, &a.key, &format!("{base}?cursor=&limit=")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["items"].as_array().unwrap().len(), 20);
    assert!(page["next_cursor"].is_null());

    // Out-of-range limits are refused, not clamped; bad cursors and unknown params too.
    for query in ["limit=0", "limit=101", "limit=ten", "cursor=zz", "offset=3"] {
        let (status, h, problem) = answers(&s, &a.key, &format!("{base}?{query}")).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{query}: {problem}"
        );
        assert_problem(&h, &problem, "invalid-input");
    }

    // Another user's experiment, a run of another experiment, garbage ids: 404 problems.
    let other_run = format!("/api/v1/experiments/{other}/runs/{run}/answers");
    let garbage = format!("/api/v1/experiments/{id}/runs/not-a-run/answers");
    for (key, path) in [(&b.key, &base), (&a.key, &other_run), (&a.key, &garbage)] {
        let (status, h, problem) = answers(&s, key, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {problem}");
        assert_problem(&h, &problem, "not-found");
    }
    let (status, h, problem) = send(
        s.client
            .get(s.url(&format!("/api/v1/experiments/{id}/events")))
            .header("x-api-key", &b.key),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_problem(&h, &problem, "not-found");
}

/// Reads server-sent events until the stream ends; returns (event, data) pairs.
async fn read_events(mut r: reqwest::Response) -> Vec<(String, Value)> {
    let mut buf = String::new();
    let mut events = Vec::new();
    let read = async {
        while let Some(chunk) = r.chunk().await.unwrap() {
            buf.push_str(std::str::from_utf8(&chunk).unwrap());
            while let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                let mut name = None;
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        name = Some(v.to_owned());
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data.push_str(v);
                    }
                }
                if let Some(name) = name {
                    events.push((name, serde_json::from_str(&data).unwrap()));
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("the stream ends after done");
    events
}

#[tokio::test]
async fn events_stream_progress_until_done_then_close() {
    let s = TestServer::start().await;
    let a = s.user("ada@example.com").await;
    let mut body = experiment_body();
    body["iterations"] = json!(200);
    let id = create(&s, &a, &body).await;

    // Opened while queued, by cookie session (as the dashboard does), before any worker runs.
    let r = s
        .client
        .get(s.url(&format!("/api/v1/experiments/{id}/events")))
        .header("cookie", format!("__Host-echo_session={}", a.token))
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let (workers, handle) = s.start_workers(Duration::from_secs(30));
    let events = read_events(r).await;
    workers.cancel();
    handle.await.unwrap();

    let (last, done) = events.last().unwrap();
    assert_eq!(last, "done", "{events:?}");
    assert_eq!(done["experiment_id"], id.as_str());
    assert_eq!(done["status"], "completed");
    let progress: Vec<&Value> = events
        .iter()
        .filter(|(name, _)| name == "progress")
        .map(|(_, data)| data)
        .collect();
    assert_eq!(progress.len() + 1, events.len(), "{events:?}");
    let finished = progress.last().unwrap();
    assert_eq!(finished["provider"], "simulated");
    assert_eq!(finished["status"], "completed");
    assert_eq!(
        (finished["completed"].as_u64(), finished["total"].as_u64()),
        (Some(200), Some(200))
    );
    let counts: Vec<u64> = progress
        .iter()
        .map(|p| p["completed"].as_u64().unwrap())
        .collect();
    assert!(
        counts.windows(2).all(|w| w[0] <= w[1]),
        "never backwards: {counts:?}"
    );

    // The ended stream gave its slot back; a finished experiment's stream ends at once.
    let user = s
        .store
        .find_user_by_email(&echo_core::model::Email::parse("ada@example.com").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.state.event_streams.open_for(user.id), 0);
    let r = s
        .client
        .get(s.url(&format!("/api/v1/experiments/{id}/events")))
        .bearer_auth(&a.token)
        .send()
        .await
        .unwrap();
    let again = read_events(r).await;
    let names: Vec<&str> = again.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["progress", "done"]);
}

/// The stream follows what the store says, whoever writes it: here the test writes a run's
/// progress itself, as a worker in another process would, with no worker in this one.
#[tokio::test]
async fn events_follow_progress_written_by_another_process() {
    use echo_core::conformance::fixtures::{completed_update, iteration};
    use echo_core::model::{BatchRun, ExperimentId, ExperimentStatus, ProviderKind, Timestamp};
    // A stream outlives the request timeout, which bounds only the wait for the headers.
    let mut options = Options::default();
    options.config.http.request_timeout_secs = 1;
    let s = TestServer::start_with(options).await;
    let a = s.user("ada@example.com").await;
    let id = create(&s, &a, &experiment_body()).await;
    let r = s
        .client
        .get(s.url(&format!("/api/v1/experiments/{id}/events")))
        .header("x-api-key", &a.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let reader = tokio::spawn(read_events(r));

    let experiment: ExperimentId = id.parse().unwrap();
    let run = BatchRun::new(
        experiment,
        ProviderKind::Simulated,
        "sim-1",
        10,
        Timestamp::now(),
    );
    s.store.create_batch_run(&run).await.unwrap();
    let pause = || tokio::time::sleep(Duration::from_millis(1_200));
    for batch in [0..4u32, 4..10] {
        pause().await;
        let iterations: Vec<_> = batch
            .map(|index| iteration(run.id, index, Timestamp::now()))
            .collect();
        s.store.record_iterations(&iterations).await.unwrap();
    }
    pause().await;
    let now = Timestamp::now();
    s.store
        .update_batch_run(run.id, &completed_update(None, now))
        .await
        .unwrap();
    let user = s
        .store
        .find_user_by_email(&echo_core::model::Email::parse("ada@example.com").unwrap())
        .await
        .unwrap()
        .unwrap()
        .id;
    s.store
        .set_experiment_status(user, experiment, ExperimentStatus::Completed, now)
        .await
        .unwrap();

    let events = reader.await.unwrap();
    let seen: Vec<(u64, &str)> = events
        .iter()
        .filter(|(name, _)| name == "progress")
        .map(|(_, d)| {
            (
                d["completed"].as_u64().unwrap(),
                d["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (0, "pending"),
            (4, "pending"),
            (10, "pending"),
            (10, "completed")
        ],
        "{events:?}"
    );
    assert_eq!(events.last().unwrap().0, "done");
}

#[tokio::test]
async fn event_streams_are_bounded_per_account() {
    let s = TestServer::start().await;
    let a = s.user("ada@example.com").await;
    let b = s.user("bob@example.com").await;
    let id = create(&s, &a, &experiment_body()).await;
    let theirs = create(&s, &b, &experiment_body()).await;
    let open = |key: &str, id: &str| {
        s.client
            .get(s.url(&format!("/api/v1/experiments/{id}/events")))
            .header("x-api-key", key.to_owned())
            .send()
    };
    let limit = s.state.event_streams.per_account();
    assert_eq!(limit, s.state.config.http.event_streams_per_account);
    let mut held = Vec::new();
    for _ in 0..limit {
        let r = open(&a.key, &id).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        held.push(r);
    }
    let (status, h, problem) = send(
        s.client
            .get(s.url(&format!("/api/v1/experiments/{id}/events")))
            .header("x-api-key", &a.key),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{problem}");
    assert_problem(&h, &problem, "too-many-streams");
    assert!(h.contains_key("retry-after"));
    // The bound is per account: another user still gets a stream.
    let r = open(&b.key, &theirs).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    drop(held);
}

#[tokio::test]
async fn precision_on_sqlite() {
    an_experiments_precision_is_validated_stored_and_stops_its_runs(
        TestServer::on(Backend::Sqlite).await.unwrap(),
    )
    .await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn precision_on_postgres() {
    if let Some(s) = TestServer::on(Backend::Postgres).await {
        an_experiments_precision_is_validated_stored_and_stops_its_runs(s).await;
    }
}

/// `precision` on create: refused outside 0.01 to 0.5 naming the field, stored and shown when
/// set, absent when not; the runs of an experiment with one stop early (the server's workers
/// have no precision configured) and the unasked answers go back to the quota.
async fn an_experiments_precision_is_validated_stored_and_stops_its_runs(s: TestServer) {
    let a = s.user("ada@example.com").await;
    for bad in [json!(0), json!(0.005), json!(0.51), json!(2), json!("0.05")] {
        let mut body = experiment_body();
        body["precision"] = bad.clone();
        let (status, headers, problem) = send(
            s.client
                .post(s.url("/api/v1/experiments"))
                .header("x-api-key", &a.key)
                .json(&body),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {problem}");
        assert_eq!(headers["content-type"], "application/problem+json");
        if bad.is_number() {
            assert_problem(&headers, &problem, "invalid-input");
            assert_eq!(
                problem["invalid-params"][0]["name"], "precision",
                "{problem}"
            );
        }
    }

    let (workers, handle) = s.start_workers(Duration::from_secs(30));
    let mut body = experiment_body();
    body["iterations"] = json!(400);
    body["precision"] = json!(0.1);
    let precise = create(&s, &a, &body).await;
    let mut body = experiment_body();
    body["precision"] = Value::Null;
    let plain = create(&s, &a, &body).await;
    let precise = s.wait_finished(&a.key, &precise).await;
    let plain = s.wait_finished(&a.key, &plain).await;
    workers.cancel();
    handle.await.unwrap();

    assert_eq!(precise["experiment"]["precision"], 0.1, "{precise}");
    let run = &precise["batch_runs"][0];
    assert_eq!(run["status"], "completed", "{precise}");
    assert_eq!(run["planned"], 400);
    let recorded = run["recorded"].as_u64().unwrap();
    assert!(
        recorded <= 97,
        "±0.10 takes 97 answers at worst, recorded {recorded}"
    );
    assert_eq!(run["stopped_early"], true);

    assert!(plain["experiment"].get("precision").is_none(), "{plain}");
    let run = &plain["batch_runs"][0];
    assert_eq!(run["recorded"], 20, "{plain}");
    assert_eq!(run["stopped_early"], false);

    // The listing carries it too, and only the answers asked were spent.
    let (_, _, page) = send(
        s.client
            .get(s.url("/api/v1/experiments"))
            .header("x-api-key", &a.key),
    )
    .await;
    let precisions: Vec<&Value> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["precision"])
        .collect();
    assert_eq!(precisions, [&Value::Null, &json!(0.1)], "{page}");
    let (_, _, me) = send(s.client.get(s.url("/api/v1/auth/me")).bearer_auth(&a.token)).await;
    assert_eq!(me["prompts_used"], recorded + 20, "{me}");
}
