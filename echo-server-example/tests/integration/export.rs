//! `GET /api/v1/experiments/{id}/export/{runs,answers}.csv` and `echoai export-csv`.

use std::sync::Arc;

use echo_core::conformance::fixtures;
use echo_core::model::{
    BatchRun, Brand, BrandName, Email, ExperimentId, Prompt, ProviderKind, Timestamp,
};
use echo_core::service::{
    ANSWER_COLUMNS, Accounts, ExperimentDraft, ExperimentService, RUN_COLUMNS,
};
use echo_core::store::DynStore;
use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::{TestServer, echoai_clean, experiment_body, send};
use crate::server::assert_problem;

/// A finished run with `answers` answers (the first one hostile), as the worker would leave it.
async fn finished_run(store: &Arc<DynStore>, id: ExperimentId, answers: u32) -> BatchRun {
    let run = BatchRun::new(
        id,
        ProviderKind::Simulated,
        "sim",
        answers,
        Timestamp::now(),
    );
    store.create_batch_run(&run).await.unwrap();
    let mut its: Vec<_> = (0..answers)
        .map(|i| fixtures::iteration(run.id, i, Timestamp::now()))
        .collect();
    its[0].raw_response = Some("@SUM(A1:A9), \"HubSpot\"\nnext line".into());
    for chunk in its.chunks(500) {
        store.record_iterations(chunk).await.unwrap();
    }
    store
        .update_batch_run(
            run.id,
            &fixtures::completed_update(Some(0.4), Timestamp::now()),
        )
        .await
        .unwrap();
    run
}

/// Header row and data rows, split on CRLF outside quotes (enough for these cells).
fn records(csv: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut quoted = false;
    let mut cur = String::new();
    let mut chars = csv.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '"' {
            quoted = !quoted;
        }
        if !quoted && c == '\r' && chars.peek() == Some(&'\n') {
            chars.next();
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    assert!(cur.is_empty(), "ends with CRLF");
    out
}

#[tokio::test]
async fn csv_exports_are_streamed_to_the_owner_only() {
    let s = TestServer::start().await;
    let a = s.user("csv@example.com").await;
    let b = s.user("other-csv@example.com").await;
    let (status, _, created) = send(
        s.client
            .post(s.url("/api/v1/experiments"))
            .header("x-api-key", &a.key)
            .json(&experiment_body()),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    let id = created["experiment_id"].as_str().unwrap().to_owned();
    let run = finished_run(&s.store, id.parse().unwrap(), 1_203).await;

    let runs_url = s.url(&format!("/api/v1/experiments/{id}/export/runs.csv"));
    let r = s
        .client
        .get(&runs_url)
        .header("x-api-key", &a.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    assert_eq!(
        r.headers()["content-disposition"],
        format!("attachment; filename=\"echo-{id}-runs.csv\"").as_str()
    );
    let body = r.text().await.unwrap();
    let rows = records(&body);
    assert_eq!(rows[0], RUN_COLUMNS.join(","));
    // The fixture metrics track HubSpot, Salesforce and Pipedrive: one row each.
    assert_eq!(rows.len(), 4, "{body}");
    assert!(rows[1].starts_with(&format!("{},", run.id)), "{}", rows[1]);
    assert!(
        rows[1].contains(",simulated,sim,true,HubSpot,true,100,0,"),
        "{}",
        rows[1]
    );

    let answers_url = s.url(&format!("/api/v1/experiments/{id}/export/answers.csv"));
    let r = s
        .client
        .get(&answers_url)
        .header("x-api-key", &a.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    assert!(
        r.headers().get("content-length").is_none(),
        "streamed, not buffered"
    );
    let body = r.text().await.unwrap();
    let rows = records(&body);
    assert_eq!(rows[0], ANSWER_COLUMNS.join(","));
    assert_eq!(rows.len(), 1 + 1_203);
    assert!(
        rows[1].contains(",\"'@SUM(A1:A9), \"\"HubSpot\"\"\nnext line\","),
        "quoted and guarded: {}",
        rows[1]
    );
    assert!(rows[1_203].contains(",1202,"), "{}", rows[1_203]);

    // Another user's experiment, an id that does not parse, and no credentials.
    for url in [&runs_url, &answers_url] {
        let (status, h, problem) = send(s.client.get(url).header("x-api-key", &b.key)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_problem(&h, &problem, "not-found");
        let (status, _, _) = send(s.client.get(url)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, h, problem) = send(
        s.client
            .get(s.url("/api/v1/experiments/nope/export/answers.csv"))
            .header("x-api-key", &a.key),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_problem(&h, &problem, "not-found");
    let _: Value = problem;
}

#[tokio::test]
async fn echoai_export_csv_writes_the_same_tables() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("echo.db");
    let db = db.to_str().unwrap();
    let (store, _) = echo_server_example::open_store(db).await.unwrap();
    let accounts = Accounts::from_store(&store);
    let owner = accounts
        .local_user(&Email::parse("owner@example.com").unwrap())
        .await
        .unwrap();
    accounts
        .local_user(&Email::parse("someone@example.com").unwrap())
        .await
        .unwrap();
    let draft = ExperimentDraft::new(
        Prompt::parse("Best CRM?").unwrap(),
        Brand::new(BrandName::parse("HubSpot").unwrap()),
    )
    .competitor(Brand::new(BrandName::parse("Salesforce").unwrap()));
    let experiment = ExperimentService::from_store(&store)
        .submit(owner.id, draft)
        .await
        .unwrap()
        .experiment;
    finished_run(&store, experiment.id, 12).await;
    drop(store);
    let id = experiment.id.to_string();
    let export = |args: &[&str]| {
        echoai_clean()
            .args(["export-csv", "--database", db, "--experiment", &id])
            .args(args)
            .output()
            .unwrap()
    };

    let out = export(&["--user", "owner@example.com"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = records(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(rows[0], RUN_COLUMNS.join(","));
    assert_eq!(rows.len(), 4);

    let file = dir.path().join("answers.csv");
    let out = export(&[
        "--user",
        "owner@example.com",
        "--table",
        "answers",
        "--output",
        file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    let rows = records(&std::fs::read_to_string(&file).unwrap());
    assert_eq!(rows[0], ANSWER_COLUMNS.join(","));
    assert_eq!(rows.len(), 13);

    // Another user's experiment is not found, as over HTTP.
    let out = export(&["--user", "someone@example.com"]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
}
