//! The OpenAPI contract (issue #16, "An exact contract"): what the document promises is what
//! the server does. schemathesis checks it broadly (`tests/contract/run.sh`); these pin the
//! behaviour fixed for it.

use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::{TestServer, send};

async fn document(s: &TestServer) -> Value {
    let (status, _, doc) = send(s.client.get(s.url("/openapi.json"))).await;
    assert_eq!(status, StatusCode::OK);
    doc
}

#[tokio::test]
async fn an_empty_query_parameter_means_not_given() {
    let s = TestServer::start().await;
    let a = s.user("empty@example.com").await;
    let ok = StatusCode::OK;
    let invalid = StatusCode::UNPROCESSABLE_ENTITY;
    for (path, expected) in [
        ("/api/v1/experiments?status=", ok),
        ("/api/v1/experiments?status=&cursor=&limit=", ok),
        ("/api/v1/experiments?status&limit", ok),
        ("/api/v1/dashboard/stats?days=", ok),
        ("/api/v1/alerts?cursor=&limit=", ok),
        // A given value is still checked.
        ("/api/v1/experiments?status=nonsense", invalid),
        ("/api/v1/experiments?limit=0", invalid),
        ("/api/v1/experiments?limit=101", invalid),
        ("/api/v1/dashboard/stats?days=0", invalid),
        ("/api/v1/dashboard/stats?days=366", invalid),
        ("/api/v1/alerts?limit=101", invalid),
    ] {
        let (status, _, body) = send(s.client.get(s.url(path)).bearer_auth(&a.token)).await;
        assert_eq!(status, expected, "{path}: {body}");
    }
}

#[tokio::test]
async fn the_document_states_this_servers_settings() {
    let s = TestServer::start().await;
    let doc = document(&s).await;
    assert_eq!(
        doc["components"]["securitySchemes"]["cookie"]["name"],
        echo_server_example::auth::session_cookie_name(&s.state)
    );
    let schemas = &doc["components"]["schemas"];
    let version = &schemas["RegisterRequest"]["properties"]["privacy_policy_version"];
    assert_eq!(
        version["enum"],
        serde_json::json!([s.state.config.privacy.policy_version])
    );
    assert!(
        schemas["RegisterRequest"]["required"]
            .as_array()
            .unwrap()
            .contains(&Value::from("privacy_policy_version"))
    );
    let providers = &schemas["ExperimentConfigInput"]["properties"]["providers"]["items"]["enum"];
    assert_eq!(providers, &serde_json::json!(["simulated", "openai"]));
    // An optional query parameter admits the empty value, which means "not given".
    let params = doc["paths"]["/api/v1/experiments"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let status = params.iter().find(|p| p["name"] == "status").unwrap();
    assert_eq!(status["in"], "query");
    let choices = status["schema"]["anyOf"].as_array().unwrap();
    assert_eq!(choices[1]["maxLength"], 0);
    assert!(
        choices[0]["enum"]
            .as_array()
            .unwrap()
            .contains(&"queued".into())
    );
}

#[tokio::test]
async fn every_operation_documents_the_errors_it_can_answer() {
    let s = TestServer::start().await;
    let doc = document(&s).await;
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            let has = |status: &str| responses.contains_key(status);
            let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
            let body = op.get("requestBody").is_some();
            let unsafe_method = method != "get";
            let at = format!("{method} {path}");
            assert!(has("500") && has("408"), "{at}");
            if secured {
                assert!(has("401") && has("429") && has("503"), "{at}");
            }
            if body {
                for status in ["400", "413", "415", "422", "429"] {
                    assert!(has(status), "{at}: {status}");
                }
            }
            if unsafe_method {
                assert!(has("403"), "{at}");
            }
            if path.contains('{') {
                assert!(has("404"), "{at}");
            }
            // A parameter is in the path only when the path names it; the rest are query
            // parameters (the derive's default was `path` for all of them).
            for p in op["parameters"].as_array().into_iter().flatten() {
                let name = p["name"].as_str().unwrap();
                let in_path = path.contains(&format!("{{{name}}}"));
                let expected = if in_path { "path" } else { "query" };
                assert_eq!(p["in"], expected, "{at}: {name}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 29, "{checked} operations");
    // The shared responses are problem+json with the Problem schema.
    let shared = doc["components"]["responses"].as_object().unwrap();
    assert!(shared.len() >= 11);
    for (name, response) in shared {
        assert_eq!(
            response["content"]["application/problem+json"]["schema"]["$ref"],
            "#/components/schemas/Problem",
            "{name}"
        );
    }
}

#[tokio::test]
async fn request_schemas_carry_the_validators_constraints() {
    let s = TestServer::start().await;
    let doc = document(&s).await;
    let schemas = &doc["components"]["schemas"];
    let create = &schemas["CreateExperimentRequest"]["properties"];
    assert_eq!(create["iterations"]["minimum"], 1);
    assert_eq!(create["iterations"]["maximum"], 10_000);
    assert_eq!(create["prompt"]["maxLength"], 10_000);
    assert_eq!(create["competitor_brands"]["maxItems"], 100);
    assert_eq!(create["precision"]["minimum"], 0.01);
    assert_eq!(create["precision"]["maximum"], 0.5);
    let config = &schemas["ExperimentConfigInput"]["properties"];
    assert_eq!(config["temperature"]["maximum"], 2.0);
    let brand = &schemas["BrandSpec"]["properties"];
    assert_eq!(brand["name"]["maxLength"], 200);
    assert_eq!(brand["aliases"]["maxItems"], 50);
    assert_eq!(
        schemas["CreateKeyRequest"]["properties"]["name"]["maxLength"],
        100
    );
    assert_eq!(
        schemas["RegisterRequest"]["properties"]["password"]["minLength"],
        8
    );
}

#[tokio::test]
async fn an_api_key_asking_for_a_csrf_token_is_forbidden_not_invalid() {
    // Nothing in the request is malformed: the credential cannot have a session's token.
    let s = TestServer::start().await;
    let a = s.user("csrf-key@example.com").await;
    for request in [
        s.client
            .get(s.url("/api/v1/csrf-token"))
            .bearer_auth(&a.key),
        s.client
            .get(s.url("/api/v1/csrf-token"))
            .header("x-api-key", &a.key),
    ] {
        let (status, headers, body) = send(request).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(headers["content-type"], "application/problem+json");
        assert_eq!(body["type"], "urn:echo:problem:forbidden");
    }
    let (status, _, body) = send(
        s.client
            .get(s.url("/api/v1/csrf-token"))
            .bearer_auth(&a.token),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["csrf_token"], a.csrf.as_str());
}

#[tokio::test]
async fn a_whole_number_may_be_written_with_a_decimal_point() {
    // JSON Schema's `integer` admits 20.0; the document says `integer`, so the server agrees.
    let s = TestServer::start().await;
    let a = s.user("whole@example.com").await;
    let mut body = crate::harness::experiment_body();
    for (iterations, expected) in [
        (serde_json::json!(20.0), StatusCode::ACCEPTED),
        (serde_json::json!(20.5), StatusCode::UNPROCESSABLE_ENTITY),
        (serde_json::json!(-1.0), StatusCode::UNPROCESSABLE_ENTITY),
        (serde_json::json!("20"), StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        body["iterations"] = iterations.clone();
        let (status, _, answer) = send(
            s.client
                .post(s.url("/api/v1/experiments"))
                .bearer_auth(&a.token)
                .json(&body),
        )
        .await;
        assert_eq!(status, expected, "{iterations}: {answer}");
    }
}

#[tokio::test]
async fn an_audit_cursor_beyond_the_documented_int64_is_refused() {
    let s = TestServer::start().await;
    let a = s.user("audit-admin@example.com").await;
    s.make_admin("audit-admin@example.com").await;
    for (cursor, expected) in [
        ("9223372036854775807", StatusCode::OK),
        ("9223372036854775808", StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let (status, _, body) = send(
            s.client
                .get(s.url(&format!("/api/v1/admin/audit-logs?cursor={cursor}")))
                .bearer_auth(&a.token),
        )
        .await;
        assert_eq!(status, expected, "{cursor}: {body}");
    }
}
