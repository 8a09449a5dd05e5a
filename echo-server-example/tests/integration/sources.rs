//! `GET /api/v1/experiments/{id}/sources`.

use echo_core::conformance::fixtures;
use echo_core::model::{
    BatchRun, ExperimentId, Iteration, IterationSource, ProviderKind, Timestamp,
};
use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{TestServer, experiment_body, send};
use crate::server::assert_problem;

fn src(position: u32, domain: &str) -> IterationSource {
    IterationSource {
        position,
        url: format!("https://www.{domain}/page"),
        domain: domain.into(),
        title: Some("<script>alert(1)</script>".into()),
        spans: vec![],
    }
}

#[tokio::test]
async fn sources_per_run_and_pooled_owner_only() {
    let s = TestServer::start().await;
    let a = s.user("sources@example.com").await;
    let b = s.user("other-sources@example.com").await;
    let (status, _, created) = send(
        s.client
            .post(s.url("/api/v1/experiments"))
            .header("x-api-key", &a.key)
            .json(&experiment_body()),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    let id = created["experiment_id"].as_str().unwrap().to_owned();
    let eid: ExperimentId = id.parse().unwrap();
    let mut runs = Vec::new();
    for cited in [
        vec![
            vec![src(1, "hubspot.com"), src(2, "g2.com")],
            vec![src(1, "g2.com")],
        ],
        vec![vec![]],
    ] {
        let run = BatchRun::new(eid, ProviderKind::Simulated, "sim", 3, Timestamp::now());
        s.store.create_batch_run(&run).await.unwrap();
        let its: Vec<Iteration> = cited
            .into_iter()
            .enumerate()
            .map(|(i, sources)| Iteration {
                sources,
                ..fixtures::iteration(run.id, i as u32, Timestamp::now())
            })
            .collect();
        s.store.record_iterations(&its).await.unwrap();
        runs.push(run.id);
    }
    let (status, _, _) = send(
        s.client
            .put(s.url("/api/v1/brand/profile"))
            .header("x-api-key", &a.key)
            .json(&json!({"brand": "HubSpot", "domain": "hubspot.com"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let url = s.url(&format!("/api/v1/experiments/{id}/sources"));
    let (status, _, body) = send(s.client.get(&url).header("x-api-key", &a.key)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["experiment_id"], id.as_str());
    assert_eq!(body["runs"].as_array().unwrap().len(), 2);
    let pooled = &body["pooled"];
    assert_eq!(
        (pooled["n"].as_u64(), pooled["citations"].as_u64()),
        (Some(3), Some(3))
    );
    assert_eq!(pooled["owned_domain"], "hubspot.com");
    assert_eq!(pooled["owned_citation_rate"]["successes"], 1);
    assert_eq!(pooled["owned_citation_rate"]["n"], 3);
    let g2 = &pooled["domains"][0];
    assert_eq!(g2["domain"], "g2.com");
    assert_eq!(g2["citation_rate"]["successes"], 2);
    assert!((g2["citation_share"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-12);
    assert_eq!(pooled["domains"][1]["is_owned"], true);

    let (status, _, one) = send(
        s.client
            .get(format!("{url}?run_id={}", runs[1]))
            .header("x-api-key", &a.key),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(one["runs"].as_array().unwrap().len(), 1);
    assert_eq!(one["pooled"]["citations"], 0);

    // Another user, an unknown run, an id that does not parse: not found.
    for (key, u) in [
        (&b.key, url.clone()),
        (
            &a.key,
            format!("{url}?run_id={}", echo_core::model::BatchRunId::new()),
        ),
        (&a.key, format!("{url}?run_id=nope")),
        (&a.key, s.url("/api/v1/experiments/nope/sources")),
    ] {
        let (status, h, problem) = send(s.client.get(&u).header("x-api-key", key)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{u}");
        assert_problem(&h, &problem, "not-found");
    }
    let (status, h, _) = send(
        s.client
            .get(format!("{url}?bogus=1"))
            .header("x-api-key", &a.key),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        h["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/problem+json")
    );
}
