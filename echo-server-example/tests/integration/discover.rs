//! `GET /api/v1/experiments/{id}/discovered-brands` and `POST /api/v1/brand/profile/competitors`.

use std::sync::Arc;

use echo_core::conformance::fixtures;
use echo_core::model::{
    BatchRun, Brand, BrandName, Email, ExperimentId, Iteration, Prompt, ProviderKind, Timestamp,
};
use echo_core::service::{Accounts, ExperimentDraft, ExperimentService};
use echo_core::store::DynStore;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{TestServer, echoai_clean, experiment_body, send};
use crate::server::assert_problem;

/// Stores answers for the experiment directly, as a finished run would.
async fn store_answers(store: &Arc<DynStore>, id: &str, answers: &[&str]) {
    let id: ExperimentId = id.parse().unwrap();
    let run = BatchRun::new(id, ProviderKind::Simulated, "sim", 3, Timestamp::now());
    store.create_batch_run(&run).await.unwrap();
    let iterations: Vec<Iteration> = answers
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let mut it = fixtures::iteration(run.id, i as u32, Timestamp::now());
            it.raw_response = Some((*a).to_owned());
            it
        })
        .collect();
    store.record_iterations(&iterations).await.unwrap();
}

#[tokio::test]
async fn discovered_brands_of_an_experiment_and_add_as_competitor() {
    let s = TestServer::start().await;
    let a = s.user("disco@example.com").await;
    let b = s.user("other-disco@example.com").await;
    let (status, _, created) = send(
        s.client
            .post(s.url("/api/v1/experiments"))
            .header("x-api-key", &a.key)
            .json(&experiment_body()),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    let id = created["experiment_id"].as_str().unwrap().to_owned();
    store_answers(
        &s.store,
        &id,
        &[
            "1. **HubSpot CRM** – free\n2. **Attio** – modern\n3. **Zoho CRM**: cheap",
            "| CRM | Price |\n|---|---|\n| Pipedrive | $14 |\n| Attio | $29 |",
            "Salesforce is the leader; Attio's data model is flexible.",
        ],
    )
    .await;

    let url = s.url(&format!("/api/v1/experiments/{id}/discovered-brands"));
    let (status, _, found) = send(s.client.get(&url).header("x-api-key", &a.key)).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["experiment_id"], id.as_str());
    assert_eq!(found["answers"], 3);
    let names: Vec<&str> = found["brands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["Attio", "Zoho CRM"],
        "tracked brands and aliases excluded"
    );
    let attio = &found["brands"][0];
    assert_eq!(
        (attio["answers_naming"].as_u64(), attio["n"].as_u64()),
        (Some(3), Some(3))
    );
    assert_eq!(attio["listed"], 2);
    assert_eq!(attio["share"], 1.0);
    let ci = attio["ci95"].as_array().unwrap();
    assert!(ci[0].as_f64().unwrap() < 1.0 && ci[1] == 1.0, "{ci:?}");

    // Another user's experiment, and an id that does not parse, are "not found".
    let (status, h, problem) = send(s.client.get(&url).header("x-api-key", &b.key)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_problem(&h, &problem, "not-found");
    let (status, h, problem) = send(
        s.client
            .get(s.url("/api/v1/experiments/nope/discovered-brands"))
            .header("x-api-key", &a.key),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_problem(&h, &problem, "not-found");
    let (status, _, _) = send(s.client.get(&url)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Add as competitor: needs a brand profile first.
    let add = s.url("/api/v1/brand/profile/competitors");
    let (status, h, problem) = send(
        s.client
            .post(&add)
            .header("x-api-key", &a.key)
            .json(&json!("Attio")),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_problem(&h, &problem, "not-found");
    let (status, _, _) = send(
        s.client
            .put(s.url("/api/v1/brand/profile"))
            .header("x-api-key", &a.key)
            .json(&json!({"brand": "HubSpot", "default_competitors": ["Salesforce"]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, added) = send(
        s.client
            .post(&add)
            .header("x-api-key", &a.key)
            .json(&json!("Attio")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{added}");
    assert_eq!(added["added"], true);
    assert_eq!(added["profile"]["default_competitors"][1]["name"], "Attio");
    let (status, _, again) = send(
        s.client
            .post(&add)
            .header("x-api-key", &a.key)
            .json(&json!({"name": "attio", "aliases": ["Attio CRM"]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["added"], false);
    assert_eq!(
        again["profile"]["default_competitors"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let (status, h, problem) = send(
        s.client
            .post(&add)
            .header("x-api-key", &a.key)
            .json(&json!("hubspot")),
    )
    .await;
    // The profile's own brand: a conflict with its state, not an invalid brand.
    assert_eq!(status, StatusCode::CONFLICT);
    assert_problem(&h, &problem, "conflict");
    let (status, h, problem) = send(
        s.client
            .post(&add)
            .header("x-api-key", &a.key)
            .json(&json!("")),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_problem(&h, &problem, "invalid-input");
    // B's profile is untouched by A's additions: B has none.
    let (status, _, _) = send(
        s.client
            .get(s.url("/api/v1/brand/profile"))
            .header("x-api-key", &b.key),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

const ANSWERS: [&str; 3] = [
    "1. **HubSpot CRM** – free\n2. **Attio** – modern\n3. **Zoho CRM**: cheap",
    "| CRM | Price |\n|---|---|\n| Pipedrive | $14 |\n| Attio | $29 |",
    "Salesforce is the leader; Attio's data model is flexible.",
];

fn discover(args: &[&str]) -> std::process::Output {
    echoai_clean().arg("discover").args(args).output().unwrap()
}

fn stdout(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn echoai_discover_on_answer_files() {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<String> = ANSWERS
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let path = dir.path().join(format!("answer-{i}.md"));
            std::fs::write(&path, a).unwrap();
            path.to_str().unwrap().to_owned()
        })
        .collect();
    let files: Vec<&str> = files.iter().map(String::as_str).collect();

    let mut args = vec![
        "--json",
        "--prompt",
        "Best CRM?",
        "--brand",
        "HubSpot=HubSpot CRM",
    ];
    args.extend(["--brand", "Salesforce", "--brand", "Pipedrive"]);
    args.extend(&files);
    let json: Value = serde_json::from_str(&stdout(&discover(&args))).unwrap();
    assert_eq!(json["answers"], 3);
    assert_eq!(json["brands"][0]["name"], "Attio");
    assert_eq!(json["brands"][0]["answers"]["successes"], 3);
    assert!(json["brands"][0]["answers"]["ci95"]["lower"].is_number());
    assert_eq!(json["brands"][1]["name"], "Zoho CRM");
    assert_eq!(json["brands"].as_array().unwrap().len(), 2);

    // Without tracked brands everything is a candidate; --top cuts the table.
    let mut args = vec!["--top", "2"];
    args.extend(&files);
    let table = stdout(&discover(&args));
    assert!(table.starts_with("3 answers analysed\n"), "{table}");
    assert!(
        table.contains("Attio") && table.contains("3/3") && table.contains("100.0%"),
        "{table}"
    );
    assert_eq!(
        table.lines().count(),
        4,
        "header line, column line, two rows: {table}"
    );

    let missing = discover(&[dir.path().join("missing.md").to_str().unwrap()]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("missing.md"));
    let neither = discover(&[]);
    assert!(
        !neither.status.success(),
        "files or --experiment are required"
    );
}

#[tokio::test]
async fn echoai_discover_on_a_stored_experiment() {
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
    let mut target = Brand::new(BrandName::parse("HubSpot").unwrap());
    target.aliases = vec![BrandName::parse("HubSpot CRM").unwrap()];
    let draft = ExperimentDraft::new(Prompt::parse("Best CRM?").unwrap(), target)
        .competitor(Brand::new(BrandName::parse("Salesforce").unwrap()))
        .competitor(Brand::new(BrandName::parse("Pipedrive").unwrap()))
        .iterations(3)
        .unwrap();
    let experiment = ExperimentService::from_store(&store)
        .submit(owner.id, draft)
        .await
        .unwrap()
        .experiment;
    let id = experiment.id.to_string();
    store_answers(&store, &id, &ANSWERS).await;
    drop(store);

    let base = ["--database", db, "--experiment", &id];
    let mut args = base.to_vec();
    args.extend(["--user", "owner@example.com", "--json"]);
    let json: Value = serde_json::from_str(&stdout(&discover(&args))).unwrap();
    assert_eq!(json["answers"], 3);
    let names: Vec<&str> = json["brands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Attio", "Zoho CRM"]);

    let mut args = base.to_vec();
    args.extend(["--user", "owner@example.com"]);
    assert!(stdout(&discover(&args)).contains("Attio"));

    let mut args = base.to_vec();
    args.extend(["--user", "someone@example.com"]);
    let other = discover(&args);
    assert!(
        !other.status.success(),
        "another user's experiment is not found"
    );
    let no_user = discover(&base);
    assert!(!no_user.status.success(), "--experiment needs --user");
    let bad_id = discover(&[
        "--database",
        db,
        "--experiment",
        "x",
        "--user",
        "owner@example.com",
    ]);
    assert!(String::from_utf8_lossy(&bad_id.stderr).contains("not an experiment id"));
}
