//! Edge inputs across the traits: non-Latin scripts, emoji, bidirectional text, the largest
//! values the model accepts, zeros and the `None`/empty distinctions.

use serde_json::json;

use super::fixtures::{
    api_key, at, audit_event, batch_run, brand, experiment, iteration, job, name, new_experiment,
    new_user, new_user_with, run_job, store_experiment, unique,
};
use crate::audit::chain_hash;
use crate::model::{
    Brand, BrandMention, BrandProfile, Email, Experiment, Iterations, Label, MatchMode,
    PricingTier, Prompt, ProviderConfig, ProviderKind, Timestamp,
};
use crate::store::{DynStore, ExperimentQuery, PageSize};

/// Text with emoji (including ZWJ sequences), CJK, right-to-left scripts, a bidi mark and a
/// combining accent.
const MIXED: &str = "Ünïcödé 日本語 中文 한국어 🚀 👩‍👩‍👧‍👦 مرحبا שלום \u{200f}e\u{301}";

/// [`MIXED`] as a name may hold it: without the zero-width joiners and the direction mark
/// that [`BrandName`](crate::model::BrandName) refuses (the emoji family becomes one person).
const MIXED_NAME: &str = "Ünïcödé 日本語 中文 한국어 🚀 👩 مرحبا שלום e\u{301}";

/// Emoji, CJK and RTL brand names, prompts, labels, answers and payloads read back byte-exact.
pub async fn unicode_text_round_trips_byte_exact(store: &DynStore) {
    let u = new_user_with(store, |u| {
        u.email = Email::parse(format!("ÿ-{}@exämple.de", unique())).expect("valid email");
    })
    .await;
    assert_eq!(
        store.find_user_by_email(&u.email).await.expect("find"),
        Some(u.clone())
    );

    let profile = BrandProfile {
        user_id: u.id,
        brand: Brand {
            name: name("日本語ブランド"),
            aliases: vec![
                name("🚀 Rocket"),
                name("שלום"),
                name("مرحبا"),
                name("e\u{301}clair"),
                name(MIXED_NAME),
            ],
            match_mode: MatchMode::AliasesOnly,
        },
        domain: Some("例え.jp".into()),
        default_competitors: vec![brand("Ω Omega"), brand("👩 💻 DevCo")],
        updated_at: at(1),
    };
    store
        .put_brand_profile(&profile)
        .await
        .expect("put_brand_profile");
    assert_eq!(
        store
            .get_brand_profile(u.id)
            .await
            .expect("get_brand_profile"),
        profile
    );

    let mut e = experiment(u.id, at(2));
    let prompt = format!("  {MIXED}\n\twelche Marke?\r\n  ");
    e.prompt = Prompt::parse(&prompt).expect("valid prompt");
    e.target = profile.brand.clone();
    e.competitors = profile.default_competitors.clone();
    e.providers = vec![ProviderConfig {
        provider: ProviderKind::OpenAiCompatible,
        model: "模型-1 🚀".into(),
        temperature: 2.0,
    }];
    store_experiment(store, &e).await;
    let got = store
        .get_experiment(u.id, e.id)
        .await
        .expect("get_experiment");
    assert_eq!(
        got.prompt.as_str().as_bytes(),
        prompt.as_bytes(),
        "prompt byte-exact"
    );
    assert_eq!(got, e);

    let mut key = api_key(u.id, at(3));
    key.name = Label::parse("🔑 Schlüssel für 日本").expect("valid label");
    store.create_api_key(&key).await.expect("create_api_key");
    assert_eq!(
        store
            .find_api_key(&key.public_id)
            .await
            .expect("find_api_key"),
        Some(key)
    );

    let mut run = batch_run(&e, ProviderKind::OpenAiCompatible, at(4));
    run.model = "模型-1 🚀".into();
    store
        .create_batch_run(&run)
        .await
        .expect("create_batch_run");
    let mut it = iteration(run.id, 0, at(5));
    it.raw_response = Some(format!("{MIXED}\n1. 日本語ブランド\n2. Ω Omega"));
    it.mentions = Some(vec![BrandMention {
        brand: "日本語ブランド".into(),
        count: 2,
        first_offset: 3,
        rank: 1,
        list_position: Some(1),
    }]);
    let mut failed = iteration(run.id, 1, at(5));
    failed.is_success = false;
    failed.raw_response = None;
    failed.error = Some(format!("エラー: {MIXED}"));
    store
        .record_iterations(&[it.clone(), failed.clone()])
        .await
        .expect("record_iterations");
    assert_eq!(
        store
            .list_iterations(u.id, run.id, 0, 10)
            .await
            .expect("list"),
        vec![it, failed]
    );

    let mut j = job(at(6), 3);
    j.kind = "run_experiment".into();
    j.payload = json!({ "prompt": prompt, "brand": "日本語ブランド" });
    j.request_id = Some(format!("req-{MIXED}"));
    store.enqueue(&j).await.expect("enqueue");
    assert_eq!(store.get_job(j.id).await.expect("get_job"), j);
}

/// The largest experiment the model accepts (10,000-character prompt, 50 aliases of 200
/// characters, 100 competitors, 20 providers, `Iterations::MAX`) reads back equal.
pub async fn largest_values_round_trip(store: &DynStore) {
    let u = new_user_with(store, |u| u.tier = PricingTier::Enterprise).await;
    let long_name = |i: usize| name(&format!("{i:03}{}", "語".repeat(197)));
    let loaded = |i: usize| Brand {
        name: long_name(i),
        aliases: (0..Brand::MAX_ALIASES)
            .map(|a| long_name(i * 100 + a))
            .collect(),
        match_mode: MatchMode::CaseSensitive,
    };
    let mut e = experiment(u.id, at(1));
    let prompt = format!("{}🚀", "語".repeat(Prompt::MAX_CHARS - 1));
    assert_eq!(prompt.chars().count(), 10_000);
    e.prompt = Prompt::parse(&prompt).expect("longest prompt");
    e.target = loaded(0);
    e.competitors = (1..=Experiment::MAX_COMPETITORS)
        .map(|i| {
            if i <= 3 {
                loaded(i)
            } else {
                brand(&format!("Competitor {i}"))
            }
        })
        .collect();
    e.iterations = Iterations::new(Iterations::MAX).expect("max iterations");
    e.providers = (0..Experiment::MAX_PROVIDERS)
        .map(|i| ProviderConfig {
            provider: ProviderKind::ALL[i % ProviderKind::ALL.len()],
            model: format!("model-{i}"),
            temperature: i as f32 / 10.0,
        })
        .collect();
    e.validate().expect("the fixture is a valid experiment");
    assert_eq!(e.prompts_per_run(), 200_000);
    store_experiment(store, &e).await;

    let got = store
        .get_experiment(u.id, e.id)
        .await
        .expect("get_experiment");
    assert_eq!(got.prompt.as_str().as_bytes(), prompt.as_bytes());
    assert_eq!(got, e);
    let listed = store
        .list_experiments(u.id, &ExperimentQuery::default())
        .await
        .expect("list");
    assert_eq!(listed.items, vec![e]);
    assert_eq!(
        store
            .get_user(u.id)
            .await
            .expect("get_user")
            .quota
            .prompts_used,
        200_000
    );
}

/// Iterations with zero and maximal numbers, `None` versus empty answers and mention lists, and
/// anonymisation fields read back exactly; u32-max token counts sum without overflow.
pub async fn iteration_edge_values_round_trip(store: &DynStore) {
    let u = new_user(store).await;
    let e = new_experiment(store, u.id, at(0)).await;
    let run = batch_run(&e, ProviderKind::Simulated, at(1));
    store
        .create_batch_run(&run)
        .await
        .expect("create_batch_run");

    let base = iteration(run.id, 0, at(2));
    let zero = crate::model::Iteration {
        input_tokens: 0,
        output_tokens: 0,
        latency_ms: 0,
        ..base.clone()
    };
    let no_answer = crate::model::Iteration {
        id: crate::model::IterationId::new(),
        index: 1,
        raw_response: None,
        mentions: None,
        ..zero.clone()
    };
    let empty_answer = crate::model::Iteration {
        id: crate::model::IterationId::new(),
        index: 2,
        raw_response: Some(String::new()),
        mentions: Some(vec![]),
        error: Some(String::new()),
        ..zero.clone()
    };
    let anonymised = crate::model::Iteration {
        id: crate::model::IterationId::new(),
        index: 3,
        raw_response: None,
        is_anonymized: true,
        anonymized_at: Some(at(3)),
        ..base.clone()
    };
    let huge = |index: u32| crate::model::Iteration {
        id: crate::model::IterationId::new(),
        index,
        latency_ms: u32::MAX,
        input_tokens: u32::MAX,
        output_tokens: u32::MAX,
        mentions: Some(vec![BrandMention {
            brand: "HubSpot".into(),
            count: u32::MAX,
            first_offset: u32::MAX,
            rank: u32::MAX,
            list_position: Some(u32::MAX),
        }]),
        ..base.clone()
    };
    let rows = vec![
        zero,
        no_answer,
        empty_answer,
        anonymised,
        huge(u32::MAX - 1),
        huge(u32::MAX),
    ];
    store
        .record_iterations(&rows)
        .await
        .expect("record_iterations");
    let listed = store
        .list_iterations(u.id, run.id, 0, 100)
        .await
        .expect("list_iterations");
    assert_eq!(listed, rows);
    assert_eq!(listed[1].raw_response, None);
    assert_eq!(
        listed[2].raw_response.as_deref(),
        Some(""),
        "empty answer is not None"
    );
    assert_eq!(
        listed[2].mentions,
        Some(vec![]),
        "empty mention list is not None"
    );

    let got = store
        .get_batch_run(u.id, run.id)
        .await
        .expect("get_batch_run");
    assert_eq!(got.iterations_recorded, 6);
    let big = 2 * u64::from(u32::MAX);
    assert_eq!(got.input_tokens, big + 10, "token totals are u64");
    assert_eq!(got.output_tokens, big + 20);
    assert_eq!(
        store
            .recorded_indexes(run.id)
            .await
            .expect("recorded_indexes"),
        vec![0, 1, 2, 3, u32::MAX - 1, u32::MAX]
    );
}

/// Audit details with nested unicode JSON read back equal and the stored hash still verifies.
pub async fn audit_details_unicode_json_round_trip(store: &DynStore) {
    let u = new_user(store).await;
    let mut event = audit_event("update_brand_profile", at(1));
    event.actor_user_id = Some(u.id);
    event.resource_type = "brand_profile".into();
    event.resource_id = Some("日本語-🚀".into());
    event.user_agent = Some(format!("Browser/1.0 ({MIXED})"));
    event.ip = Some("2001:db8::1".into());
    event.details = json!({
        "名前": { "before": "旧ブランド", "after": "日本語ブランド" },
        "emoji": "👩‍👩‍👧‍👦",
        "rtl": "مرحبا \u{200f}שלום",
        "nested": { "list": [1, "二", { "deep": null }, [], {}], "ok": true, "big": i64::MAX, "neg": -1, "half": 0.5 },
        "escapes": "quote \" backslash \\ newline \n tab \t",
    });
    let stored = store.append_audit(&event).await.expect("append_audit");
    assert_eq!(stored.event, event);
    let read = store.audit_range(stored.seq, 1).await.expect("audit_range");
    assert_eq!(read, vec![stored.clone()]);
    assert_eq!(
        read[0].hash,
        chain_hash(&read[0].prev_hash, read[0].seq, &read[0].event)
    );
    let listed = store
        .list_audit(&crate::store::AuditQuery {
            resource_id: Some("日本語-🚀".into()),
            limit: PageSize::default(),
            ..Default::default()
        })
        .await
        .expect("list_audit by a unicode resource id");
    assert_eq!(listed.items, vec![stored]);
}

/// Timestamps keep their microseconds, before the epoch and far in the future.
pub async fn timestamps_keep_microseconds(store: &DynStore) {
    let micros = |m: i64| Timestamp::from_unix_micros(m).expect("in range");
    let just_before_epoch = micros(-1);
    let far_future =
        Timestamp::from_datetime(time::macros::datetime!(9999-12-31 23:59:59.999999 UTC));
    let u = new_user_with(store, |u| {
        u.created_at = just_before_epoch;
        u.updated_at = micros(1_773_576_000_123_457);
        u.scheduled_deletion_at = Some(far_future);
        u.consents.marketing_consent_at = Some(micros(1));
    })
    .await;
    assert_eq!(store.get_user(u.id).await.expect("get_user"), u);

    let mut j = job(micros(1_773_576_000_000_001), 1);
    j.created_at = micros(-1_000_000_000_000_001);
    store.enqueue(&j).await.expect("enqueue");
    assert_eq!(store.get_job(j.id).await.expect("get_job"), j);

    let e = experiment(u.id, micros(1_773_576_000_999_999));
    let stored_job = run_job(&e, e.created_at);
    store
        .create_experiment(&e, super::fixtures::debit(&e), &stored_job)
        .await
        .expect("create_experiment");
    assert_eq!(
        store
            .get_experiment(u.id, e.id)
            .await
            .expect("get_experiment"),
        e
    );
}
