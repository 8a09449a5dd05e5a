//! `/api/v1/brand/profile` through the brand service and `/api/v1/brand/prompt-sets`.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{TestServer, send};
use crate::server::assert_problem;

fn phrasings(tag: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{tag}: which CRM should a startup pick, variant {i}?"))
        .collect()
}

#[tokio::test]
async fn brand_profile_is_validated_by_the_service() {
    let s = TestServer::start().await;
    let a = s.user("profile-a@example.com").await;
    let url = s.url("/api/v1/brand/profile");
    let (status, h, problem) = send(s.client.get(&url).header("x-api-key", &a.key)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_problem(&h, &problem, "not-found");
    let (status, h, problem) = send(
        s.client
            .put(&url)
            .header("x-api-key", &a.key)
            .json(&json!({"brand": "HubSpot", "domain": "https://hubspot.com"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_problem(&h, &problem, "invalid-input");
    assert_eq!(problem["invalid-params"][0]["name"], "domain");
    let (status, _, problem) = send(
        s.client
            .put(&url)
            .header("x-api-key", &a.key)
            .json(&json!({"brand": "HubSpot", "default_competitors": ["hubspot"]})),
    )
    .await;
    // Well-formed, but the profile's own brand: a conflict, as on `POST …/competitors`, still
    // named by field so the settings form shows it there.
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(problem["invalid-params"][0]["name"], "default_competitors");
    let (status, _, stored) = send(s.client.put(&url).header("x-api-key", &a.key).json(&json!({
        "brand": {"name": "HubSpot", "aliases": ["HubSpot CRM"], "match_mode": "case_sensitive"},
        "domain": "HubSpot.com",
        "default_competitors": ["Salesforce", "Pipedrive"],
    })))
    .await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    assert_eq!(stored["domain"], "hubspot.com");
    assert_eq!(stored["brand"]["match_mode"], "case_sensitive");
    let (status, _, got) = send(s.client.get(&url).header("x-api-key", &a.key)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got, stored);
}

#[tokio::test]
async fn prompt_sets_are_versioned_isolated_and_validated() {
    let s = TestServer::start().await;
    let a = s.user("sets-a@example.com").await;
    let b = s.user("sets-b@example.com").await;
    let sets = s.url("/api/v1/brand/prompt-sets");
    let body = |name: &str, n: usize| json!({"name": name, "prompts": phrasings(name, n)});

    // A set belongs to a brand profile: without one yet, a conflict with the account's state.
    let (status, h, problem) = send(
        s.client
            .post(&sets)
            .header("x-api-key", &a.key)
            .json(&body("CRM", 5)),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_problem(&h, &problem, "conflict");
    assert_eq!(problem["invalid-params"][0]["name"], "brand profile");
    for who in [&a, &b] {
        let (status, _, _) = send(
            s.client
                .put(s.url("/api/v1/brand/profile"))
                .header("x-api-key", &who.key)
                .json(&json!({"brand": "HubSpot"})),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }
    // Limits: 4 phrasings, and a repeat, are refused with the field named.
    for bad in [
        body("CRM", 4),
        json!({"name": "CRM", "prompts": ["a?", "b?", "c?", "d?", " A? "]}),
    ] {
        let (status, _, problem) =
            send(s.client.post(&sets).header("x-api-key", &a.key).json(&bad)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert_eq!(problem["invalid-params"][0]["name"], "prompts", "{problem}");
    }

    let (status, _, v1) = send(
        s.client
            .post(&sets)
            .header("x-api-key", &a.key)
            .json(&body("CRM for startups", 5)),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{v1}");
    assert_eq!(
        (v1["version"].as_u64(), v1["latest_version"].as_u64()),
        (Some(1), Some(1))
    );
    let id = v1["id"].as_str().unwrap().to_owned();
    let one = s.url(&format!("/api/v1/brand/prompt-sets/{id}"));
    let versions = s.url(&format!("/api/v1/brand/prompt-sets/{id}/versions"));

    // `based_on_version` belongs to an edit only: on creation it is an unknown field.
    let mut misplaced = body("CRM", 5);
    misplaced["based_on_version"] = json!(1);
    let (status, _, problem) = send(
        s.client
            .post(&sets)
            .header("x-api-key", &a.key)
            .json(&misplaced),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");

    let mut edit = body("CRM for small teams", 7);
    // JSON Schema's integer admits 1.0 as well as 1.
    edit["based_on_version"] = json!(1.0);
    let (status, _, v2) = send(
        s.client
            .post(&versions)
            .header("x-api-key", &a.key)
            .json(&edit),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{v2}");
    assert_eq!(v2["version"], 2);
    assert_eq!(v2["prompts"].as_array().unwrap().len(), 7);
    // An edit based on version 1 now conflicts instead of replacing version 2 unseen.
    let (status, h, problem) = send(
        s.client
            .post(&versions)
            .header("x-api-key", &a.key)
            .json(&edit),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_problem(&h, &problem, "conflict");

    // Old versions stay readable; the newest is the default.
    let (_, _, latest) = send(s.client.get(&one).header("x-api-key", &a.key)).await;
    assert_eq!(
        (latest["version"].as_u64(), latest["name"].as_str()),
        (Some(2), Some("CRM for small teams"))
    );
    let (status, _, old) = send(
        s.client
            .get(format!("{one}?version=1"))
            .header("x-api-key", &a.key),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(old["prompts"], v1["prompts"]);
    assert_eq!(old["latest_version"], 2);
    let (status, _, _) = send(
        s.client
            .get(format!("{one}?version=3"))
            .header("x-api-key", &a.key),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Another user sees nothing of it.
    let (status, h, problem) = send(s.client.get(&one).header("x-api-key", &b.key)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_problem(&h, &problem, "not-found");
    let (status, _, _) = send(
        s.client
            .post(&versions)
            .header("x-api-key", &b.key)
            .json(&body("X", 5)),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = send(s.client.delete(&one).header("x-api-key", &b.key)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, _, listed): (_, _, Value) = send(s.client.get(&sets).header("x-api-key", &b.key)).await;
    assert_eq!(listed["prompt_sets"], json!([]));
    let (_, _, listed) = send(s.client.get(&sets).header("x-api-key", &a.key)).await;
    assert_eq!(listed["prompt_sets"][0]["latest_version"], 2);

    let (status, _, _) = send(s.client.delete(&one).header("x-api-key", &a.key)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = send(s.client.get(&one).header("x-api-key", &a.key)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = send(
        s.client
            .get(s.url("/api/v1/brand/prompt-sets/not-an-id"))
            .header("x-api-key", &a.key),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_experiment_runs_a_pinned_prompt_set_and_reports_per_phrasing_and_pooled() {
    let s = TestServer::start().await;
    let a = s.user("sets-run@example.com").await;
    let b = s.user("sets-run-b@example.com").await;
    for who in [&a, &b] {
        send(
            s.client
                .put(s.url("/api/v1/brand/profile"))
                .header("x-api-key", &who.key)
                .json(&json!({"brand": "HubSpot"})),
        )
        .await;
    }
    let (_, _, set) = send(
        s.client
            .post(s.url("/api/v1/brand/prompt-sets"))
            .header("x-api-key", &a.key)
            .json(&json!({"name": "CRM", "prompts": phrasings("CRM", 5)})),
    )
    .await;
    let set_id = set["id"].as_str().unwrap().to_owned();
    let experiments = s.url("/api/v1/experiments");
    let body = |prompt_set: Value, extra: Value| {
        let mut b = json!({
            "target_brand": "HubSpot",
            "competitor_brands": ["Salesforce"],
            "iterations": 4,
            "prompt_set": prompt_set,
        });
        if let (Some(b), Some(extra)) = (b.as_object_mut(), extra.as_object()) {
            b.extend(extra.clone());
        }
        b
    };
    // A prompt and a set together, another user's set, and too many answers are refused.
    for (bad, field) in [
        (
            body(json!({"id": set_id}), json!({"prompt": "Best CRM?"})),
            "prompt",
        ),
        (
            body(json!({"id": set_id}), json!({"iterations": 2001})),
            "iterations",
        ),
    ] {
        let (status, _, problem) = send(
            s.client
                .post(&experiments)
                .header("x-api-key", &a.key)
                .json(&bad),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert_eq!(problem["invalid-params"][0]["name"], field, "{problem}");
    }
    let (status, _, problem) = send(
        s.client
            .post(&experiments)
            .header("x-api-key", &b.key)
            .json(&body(json!({"id": set_id}), json!({}))),
    )
    .await;
    // Another user's set, a version that does not exist, and a malformed id are all "not
    // found", as every object of another tenant is.
    assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
    for missing in [json!({"id": set_id, "version": 2}), json!({"id": ""})] {
        let (status, h, problem) = send(
            s.client
                .post(&experiments)
                .header("x-api-key", &a.key)
                .json(&body(missing, json!({}))),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
        assert_problem(&h, &problem, "not-found");
    }

    let (status, _, created) = send(
        s.client
            .post(&experiments)
            .header("x-api-key", &a.key)
            .json(&body(json!({"id": set_id}), json!({}))),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    assert_eq!(
        created["prompts_debited"], 20,
        "5 phrasings × 4 × 1 provider"
    );
    let id = created["experiment_id"].as_str().unwrap().to_owned();
    // Editing the set now does not change what the experiment asks: version 1 is pinned.
    send(
        s.client
            .post(s.url(&format!("/api/v1/brand/prompt-sets/{set_id}/versions")))
            .header("x-api-key", &a.key)
            .json(&json!({"name": "CRM v2", "prompts": phrasings("Other", 6)})),
    )
    .await;

    let (workers, handle) = s.start_workers(std::time::Duration::from_secs(30));
    let done = s.wait_finished(&a.key, &id).await;
    workers.cancel();
    handle.await.unwrap();
    assert_eq!(done["experiment"]["status"], "completed", "{done}");
    let pinned = &done["experiment"]["prompt_set"];
    assert_eq!(
        (
            pinned["version"].as_u64(),
            pinned["iterations_per_prompt"].as_u64()
        ),
        (Some(1), Some(4))
    );
    assert_eq!(done["experiment"]["iterations"], 20);
    assert_eq!(done["report"]["prompt_set"]["version"], 1);
    let section = &done["report"]["providers"][0];
    let per_prompt = section["prompt_set"]["per_prompt"].as_array().unwrap();
    assert_eq!(per_prompt.len(), 5);
    assert!(per_prompt.iter().all(|p| p["n"] == 4), "{per_prompt:?}");
    let pooled = &section["prompt_set"]["pooled"];
    assert_eq!(
        (pooled["prompts"].as_u64(), pooled["n"].as_u64()),
        (Some(5), Some(20))
    );
    // The pooled rate is the mean of the per-phrasing rates.
    let mean = per_prompt
        .iter()
        .map(|p| p["rate"].as_f64().unwrap())
        .sum::<f64>()
        / 5.0;
    assert!((pooled["rate"].as_f64().unwrap() - mean).abs() < 1e-9);
    assert!(pooled["naive_ci95"].is_object());

    // Each answer names the phrasing it answered: iteration i answers phrasing i mod 5.
    let run_id = done["batch_runs"][0]["id"].as_str().unwrap();
    let (_, _, page) = send(
        s.client
            .get(s.url(&format!(
                "/api/v1/experiments/{id}/runs/{run_id}/answers?limit=20"
            )))
            .header("x-api-key", &a.key),
    )
    .await;
    let answers = page["items"].as_array().unwrap();
    assert_eq!(answers.len(), 20, "{page}");
    for ans in answers {
        assert_eq!(
            ans["phrasing"].as_u64().unwrap(),
            ans["index"].as_u64().unwrap() % 5
        );
    }

    // The detail page shows the pinned version, the per-phrasing rows and the pooled interval.
    let page = s
        .client
        .get(s.url(&format!("/experiments/{id}")))
        .header("x-api-key", &a.key)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("Prompt set, version 1 (pinned): 5 phrasings × 4 answers per provider"),
        "{html}"
    );
    assert!(
        html.contains("Per phrasing · simulated · set version 1"),
        "{html}"
    );
    assert!(html.contains("Pooled over 5 phrasings"), "{html}");
    assert!(html.contains("CRM: which CRM should a startup pick, variant 4?"));

    // Runs of the same experiment ask the same version: the comparison says so.
    let (_, _, cmp) = send(
        s.client
            .get(s.url(&format!(
                "/api/v1/experiments/{id}/compare?a={run_id}&b={run_id}"
            )))
            .header("x-api-key", &a.key),
    )
    .await;
    assert_eq!(
        (
            cmp["set_version_a"].as_u64(),
            cmp["mixed_set_versions"].as_bool()
        ),
        (Some(1), Some(false)),
        "{cmp}"
    );
}
