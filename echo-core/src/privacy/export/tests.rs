#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use serde_json::Value;

use super::*;
use crate::conformance::fixtures::{
    api_key, at, audit_event, brand, completed_update, iteration, new_batch_run, new_experiment,
    new_user, new_user_with,
};
use crate::model::{BrandProfile, Experiment, NewAuditEvent};
use crate::store::DynStore;
use crate::store::memory::MemoryStore;

/// A user with a brand profile, an API key, one experiment with a completed run of `answers`
/// iterations, and an audit event of their own.
async fn seeded_user(store: &DynStore, answers: u32) -> (User, Experiment) {
    let user = new_user(store).await;
    store
        .put_brand_profile(&BrandProfile {
            user_id: user.id,
            brand: brand("HubSpot"),
            domain: Some("hubspot.com".into()),
            default_competitors: vec![brand("Salesforce")],
            updated_at: at(5),
        })
        .await
        .unwrap();
    store
        .create_api_key(&api_key(user.id, at(6)))
        .await
        .unwrap();
    let set = crate::model::PromptSetId::new();
    for v in 1..=2 {
        let version = crate::model::PromptSetVersion::new(
            set,
            v,
            crate::model::Label::parse(format!("Topic v{v}")).unwrap(),
            (0..5)
                .map(|i| crate::model::Prompt::parse(format!("Which CRM, take {i}?")).unwrap())
                .collect(),
            at(6 + i64::from(v)),
        )
        .unwrap();
        if v == 1 {
            store.create_prompt_set(user.id, &version).await.unwrap();
        } else {
            store
                .add_prompt_set_version(user.id, &version)
                .await
                .unwrap();
        }
    }
    let experiment = new_experiment(store, user.id, at(10)).await;
    let run = new_batch_run(store, &experiment, at(11)).await;
    let rows: Vec<_> = (0..answers).map(|i| iteration(run.id, i, at(12))).collect();
    store.record_iterations(&rows).await.unwrap();
    store
        .update_batch_run(run.id, &completed_update(Some(0.5), at(20)))
        .await
        .unwrap();
    store
        .append_audit(&NewAuditEvent {
            actor_user_id: Some(user.id),
            ..audit_event("create_experiment", at(30))
        })
        .await
        .unwrap();
    (user, experiment)
}

async fn export_text(store: &DynStore, user: &User) -> String {
    let mut out = Vec::new();
    export_user(store, user, &mut WriteSink::new(&mut out))
        .await
        .unwrap();
    String::from_utf8(out).unwrap()
}

/// The document without its `exported_at`, which differs between two exports.
fn timeless(text: &[u8]) -> Value {
    let mut v: Value = serde_json::from_slice(text).expect("one JSON document");
    v.as_object_mut().unwrap().remove("exported_at");
    v
}

#[tokio::test]
async fn the_export_holds_the_users_records_and_none_of_another_users() {
    let store: Arc<DynStore> = Arc::new(MemoryStore::new());
    let (ada, ada_experiment) = seeded_user(store.as_ref(), 3).await;
    let (bob, bob_experiment) = seeded_user(store.as_ref(), 4).await;
    let bob_keys = store.list_api_keys(bob.id).await.unwrap();
    let bob_runs = store
        .list_batch_runs(bob.id, bob_experiment.id)
        .await
        .unwrap();

    let hooks = crate::service::WebhookService::from_store(
        &store,
        crate::webhook::WebhookUrlPolicy::PRODUCTION,
    );
    let mut endpoints = Vec::new();
    for (who, url) in [
        (&ada, "https://ada.example.com/hook"),
        (&bob, "https://bob.example.com/"),
    ] {
        let draft = crate::service::WebhookDraft {
            url: url.to_owned(),
            description: String::new(),
        };
        let endpoint = hooks
            .create(who.id, &draft, Timestamp::now())
            .await
            .unwrap();
        hooks
            .ping(who.id, endpoint.id, Timestamp::now())
            .await
            .unwrap();
        endpoints.push(endpoint);
    }

    let text = export_text(store.as_ref(), &ada).await;
    let export: Value = serde_json::from_str(&text).expect("one JSON document");

    assert_eq!(export["format"], "echo.export.v3");
    let webhooks = export["webhooks"].as_array().unwrap();
    assert_eq!(webhooks.len(), 1, "only ada's endpoint");
    assert_eq!(
        webhooks[0]["webhook"]["url"],
        "https://ada.example.com/hook"
    );
    assert_eq!(webhooks[0]["deliveries"][0]["event"], "ping");
    assert!(
        !text.contains(endpoints[0].secret.expose()),
        "never the secret"
    );
    assert!(!text.contains("bob.example.com"));
    let sets = export["prompt_sets"].as_array().unwrap();
    assert_eq!(sets.len(), 1, "only ada's set");
    assert_eq!(sets[0]["set"]["latest_version"], 2);
    let versions = sets[0]["versions"].as_array().unwrap();
    assert_eq!(
        (versions[0]["name"].as_str(), versions[1]["name"].as_str()),
        (Some("Topic v1"), Some("Topic v2"))
    );
    assert_eq!(export["user"]["id"], ada.id.to_string());
    assert_eq!(export["user"]["email"], ada.email.as_str());
    assert_eq!(export["brand_profile"]["domain"], "hubspot.com");
    assert_eq!(export["api_keys"].as_array().unwrap().len(), 1);
    let experiments = export["experiments"].as_array().unwrap();
    assert_eq!(experiments.len(), 1);
    assert_eq!(experiments[0]["id"], ada_experiment.id.to_string());
    let runs = experiments[0]["batch_runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["status"], "completed");
    assert_eq!(runs[0]["iterations"].as_array().unwrap().len(), 3);
    // The cited sources travel with their answers.
    let sources = runs[0]["iterations"][0]["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 2);
    assert_eq!(sources[0]["domain"], "hubspot.com");
    assert_eq!(sources[1]["url"], "https://news.bbc.co.uk/tech?x=1&y=2");
    let events = export["audit_events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["actor_user_id"], ada.id.to_string());

    for (what, value) in [
        ("user id", bob.id.to_string()),
        ("email", bob.email.as_str().to_owned()),
        ("experiment", bob_experiment.id.to_string()),
        ("run", bob_runs[0].id.to_string()),
        ("key", bob_keys[0].public_id.clone()),
    ] {
        assert!(
            !text.contains(&value),
            "the other user's {what} is exported"
        );
    }
}

#[tokio::test]
async fn no_secret_is_exported() {
    let store: Arc<DynStore> = Arc::new(MemoryStore::new());
    let (user, _) = seeded_user(store.as_ref(), 1).await;
    let key = &store.list_api_keys(user.id).await.unwrap()[0];
    let text = export_text(store.as_ref(), &user).await;
    assert!(!text.contains(user.password_hash.expose()), "password hash");
    assert!(!text.contains("password"), "a password field");
    assert!(
        !text.contains(&hex::encode(key.secret_hash.0)),
        "key digest"
    );
    assert!(!text.contains("secret_hash"), "a digest field");
}

#[tokio::test]
async fn a_user_without_records_exports_empty_lists_and_a_null_profile() {
    let store = MemoryStore::new();
    let user = crate::conformance::fixtures::user();
    store.create_user(&user).await.unwrap();
    let mut out = Vec::new();
    export_user(&store, &user, &mut WriteSink::new(&mut out))
        .await
        .unwrap();
    let export = timeless(&out);
    assert_eq!(export["brand_profile"], Value::Null);
    for list in ["api_keys", "experiments", "audit_events"] {
        assert_eq!(export[list], Value::Array(vec![]), "{list}");
    }
}

#[tokio::test]
async fn pages_of_experiments_and_iterations_are_all_exported_in_chunks() {
    let store: Arc<DynStore> = Arc::new(MemoryStore::new());
    let (user, _) = seeded_user(store.as_ref(), ITERATION_PAGE * 2 + 7).await;
    for i in 0..PageSize::MAX {
        new_experiment(store.as_ref(), user.id, at(100 + i64::from(i))).await;
    }

    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(2);
    let producer = {
        let store = store.clone();
        let user = user.clone();
        tokio::spawn(async move {
            let mut tx = tx;
            export_user(store.as_ref(), &user, &mut tx).await
        })
    };
    let mut document = Vec::new();
    let mut chunks = 0;
    while let Some(chunk) = rx.recv().await {
        assert!(!chunk.is_empty());
        chunks += 1;
        document.extend_from_slice(&chunk);
    }
    producer.await.unwrap().unwrap();

    assert!(chunks > 1, "{chunks} chunk(s)");
    let export = timeless(&document);
    let experiments = export["experiments"].as_array().unwrap();
    assert_eq!(experiments.len(), PageSize::MAX as usize + 1);
    let with_runs: Vec<_> = experiments
        .iter()
        .filter_map(|e| e["batch_runs"].as_array().filter(|r| !r.is_empty()))
        .collect();
    assert_eq!(with_runs.len(), 1);
    let its = with_runs[0][0]["iterations"].as_array().unwrap();
    let indexes: Vec<u64> = its.iter().map(|i| i["index"].as_u64().unwrap()).collect();
    assert_eq!(
        indexes,
        (0..u64::from(ITERATION_PAGE * 2 + 7)).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn every_sink_receives_the_same_document() {
    let store: Arc<DynStore> = Arc::new(MemoryStore::new());
    let (user, _) = seeded_user(store.as_ref(), 5).await;

    let mut blocking = Vec::new();
    export_user(store.as_ref(), &user, &mut WriteSink::new(&mut blocking))
        .await
        .unwrap();
    let mut sink = AsyncWriteSink::new(Vec::new());
    export_user(store.as_ref(), &user, &mut sink).await.unwrap();
    let asynchronous = sink.into_inner();
    let (mut tx, mut rx) = mpsc::channel::<Vec<u8>>(64);
    export_user(store.as_ref(), &user, &mut tx).await.unwrap();
    drop(tx);
    let mut channel = Vec::new();
    while let Some(chunk) = rx.recv().await {
        channel.extend_from_slice(&chunk);
    }

    assert_eq!(timeless(&asynchronous), timeless(&blocking));
    assert_eq!(timeless(&channel), timeless(&blocking));
}

#[tokio::test]
async fn the_export_holds_events_about_the_account_by_others_once() {
    let store: Arc<DynStore> = Arc::new(MemoryStore::new());
    let (user, _) = seeded_user(store.as_ref(), 1).await;
    let admin = new_user_with(store.as_ref(), |u| u.is_admin = true).await;
    let about = |actor: UserId, action: &str, secs| NewAuditEvent {
        actor_user_id: Some(actor),
        resource_type: "user".into(),
        resource_id: Some(user.id.to_string()),
        ..audit_event(action, at(secs))
    };
    // By the admin about the user; by the user about themself (matches both queries); by the
    // admin about someone else.
    for event in [
        about(admin.id, "view_user", 40),
        about(user.id, "update_consent", 41),
        NewAuditEvent {
            actor_user_id: Some(admin.id),
            ..audit_event("view_user", at(42))
        },
    ] {
        store.append_audit(&event).await.unwrap();
    }

    let export: Value = serde_json::from_str(&export_text(store.as_ref(), &user).await).unwrap();
    let mut actions: Vec<&str> = export["audit_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    actions.sort_unstable();
    assert_eq!(
        actions,
        ["create_experiment", "update_consent", "view_user"]
    );
}

#[tokio::test]
async fn a_reader_that_goes_away_stops_the_export() {
    let store: Arc<DynStore> = Arc::new(MemoryStore::new());
    let (user, _) = seeded_user(store.as_ref(), 1).await;
    let (mut tx, rx) = mpsc::channel::<Vec<u8>>(1);
    drop(rx);
    let err = export_user(store.as_ref(), &user, &mut tx)
        .await
        .unwrap_err();
    match err {
        ExportError::Write(e) => assert_eq!(e.kind(), io::ErrorKind::BrokenPipe),
        other => panic!("expected a write error, got {other:?}"),
    }
}

#[tokio::test]
async fn the_export_leaves_out_the_address_and_agent_of_others() {
    let store: Arc<DynStore> = Arc::new(MemoryStore::new());
    let (user, _) = seeded_user(store.as_ref(), 1).await;
    let admin = new_user_with(store.as_ref(), |u| u.is_admin = true).await;
    let about = |actor: Option<UserId>, action: &str, ip: &str, agent: &str, secs| NewAuditEvent {
        actor_user_id: actor,
        resource_type: "user".into(),
        resource_id: Some(user.id.to_string()),
        ip: Some(ip.into()),
        user_agent: Some(agent.into()),
        ..audit_event(action, at(secs))
    };
    for event in [
        about(
            Some(admin.id),
            "view_user",
            "198.51.100.9",
            "AdminBrowser/9",
            40,
        ),
        about(None, "login_failure", "192.0.2.66", "StrangerBot/6", 41),
        about(
            Some(user.id),
            "update_consent",
            "203.0.113.50",
            "OwnBrowser/5",
            42,
        ),
    ] {
        store.append_audit(&event).await.unwrap();
    }

    let text = export_text(store.as_ref(), &user).await;
    for other in [
        "198.51.100.9",
        "AdminBrowser/9",
        "192.0.2.66",
        "StrangerBot/6",
    ] {
        assert!(!text.contains(other), "{other} leaked into the export");
    }
    let export: Value = serde_json::from_str(&text).unwrap();
    let events = export["audit_events"].as_array().unwrap();
    let by_action = |action: &str| {
        events
            .iter()
            .find(|e| e["action"] == action)
            .unwrap_or_else(|| panic!("{action} missing"))
    };
    let viewed = by_action("view_user");
    assert_eq!(
        viewed["actor_user_id"],
        admin.id.to_string(),
        "the event is kept"
    );
    assert!(viewed["ip"].is_null() && viewed["user_agent"].is_null());
    assert!(by_action("login_failure")["ip"].is_null());
    let own = by_action("update_consent");
    assert_eq!(own["ip"], "203.0.113.50", "the user's own address stays");
    assert_eq!(own["user_agent"], "OwnBrowser/5");
}
