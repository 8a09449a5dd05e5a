#![allow(clippy::unwrap_used)]

use super::*;
use crate::model::{BrandName, PricingTier, Prompt, User, UserId};
use crate::service::{ExperimentDraft, ExperimentService};
use crate::store::memory::MemoryStore;

async fn user(store: &Arc<DynStore>) -> User {
    crate::service::test_support::user(store, true).await
}

/// An experiment tracking HubSpot (alias "HubSpot CRM") against Salesforce, owned by `owner`.
async fn experiment(store: &Arc<DynStore>, owner: UserId) -> Experiment {
    let mut hubspot = Brand::new(BrandName::parse("HubSpot").unwrap());
    hubspot
        .aliases
        .push(BrandName::parse("HubSpot CRM").unwrap());
    let draft = ExperimentDraft::new(Prompt::parse("Best CRM for startups?").unwrap(), hubspot)
        .competitor(Brand::new(BrandName::parse("Salesforce").unwrap()));
    ExperimentService::from_store(store)
        .submit(owner, draft)
        .await
        .unwrap()
        .experiment
}

fn iteration(run: BatchRunId, index: u32, text: Option<&str>) -> Iteration {
    Iteration {
        id: IterationId::new(),
        batch_run_id: run,
        index,
        raw_response: text.map(str::to_owned),
        mentions: text.map(|_| Vec::new()),
        is_success: text.is_some(),
        error: text.is_none().then(|| "upstream timeout".to_owned()),
        latency_ms: 10,
        input_tokens: 1,
        output_tokens: 1,
        created_at: Timestamp::now(),
        is_anonymized: false,
        anonymized_at: None,
        sources: Vec::new(),
    }
}

async fn run_with(
    store: &Arc<DynStore>,
    experiment: &Experiment,
    iterations: impl Fn(BatchRunId) -> Vec<Iteration>,
) -> BatchRun {
    let run = BatchRun::new(
        experiment.id,
        ProviderKind::Simulated,
        "sim-1",
        50,
        Timestamp::now(),
    );
    store.create_batch_run(&run).await.unwrap();
    store.record_iterations(&iterations(run.id)).await.unwrap();
    run
}

fn query(after: Option<AnswerCursor>, limit: u32) -> AnswerQuery {
    AnswerQuery {
        after,
        limit: PageSize::new(limit).unwrap(),
    }
}

fn not_found<T>(r: Result<T, ServiceError>) -> bool {
    matches!(r, Err(ServiceError::Store(StoreError::NotFound { .. })))
}

#[tokio::test]
async fn another_users_experiment_or_run_is_not_found() {
    let store: Arc<DynStore> = Arc::new(MemoryStore::new());
    let service = RunService::from_store(&store);
    let (owner, stranger) = (user(&store).await, user(&store).await);
    let e = experiment(&store, owner.id).await;
    let other = experiment(&store, owner.id).await;
    let run = run_with(&store, &e, |r| vec![iteration(r, 0, Some("HubSpot"))]).await;

    assert!(not_found(
        service
            .answers(stranger.id, e.id, run.id, AnswerQuery::default())
            .await
    ));
    assert!(not_found(service.progress(stranger.id, e.id).await));
    // The owner's own run, asked for under another of their experiments.
    assert!(not_found(
        service
            .answers(owner.id, other.id, run.id, AnswerQuery::default())
            .await
    ));
    let page = service
        .answers(owner.id, e.id, run.id, AnswerQuery::default())
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
}

#[tokio::test]
async fn cursor_paging_visits_every_iteration_once() {
    let store: Arc<DynStore> = Arc::new(MemoryStore::new());
    let service = RunService::from_store(&store);
    let owner = user(&store).await;
    let e = experiment(&store, owner.id).await;
    // A gap (index 11 never recorded), as a resumed run may leave while it records.
    let indexes: Vec<u32> = (0..23).filter(|&i| i != 11).collect();
    let run = run_with(&store, &e, |r| {
        indexes
            .iter()
            .map(|&i| iteration(r, i, Some("Salesforce, then HubSpot")))
            .collect()
    })
    .await;

    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = service
            .answers(owner.id, e.id, run.id, query(after, 5))
            .await
            .unwrap();
        assert!(page.items.len() <= 5);
        seen.extend(page.items.iter().map(|a| a.index));
        pages += 1;
        match page.next_cursor {
            Some(c) => after = Some(AnswerCursor::decode(&c.encode()).unwrap()),
            None => break,
        }
    }
    assert_eq!(seen, indexes);
    assert_eq!(pages, 5);
}

#[tokio::test]
async fn spans_lie_on_char_boundaries_of_multibyte_text() {
    let store: Arc<DynStore> = Arc::new(MemoryStore::new());
    let service = RunService::from_store(&store);
    let owner = user(&store).await;
    let e = experiment(&store, owner.id).await;
    let text = "Für Gründer 🚀: 我推荐HubSpot CRM。Danach «Salesforce» und hubspot.";
    let run = run_with(&store, &e, |r| vec![iteration(r, 0, Some(text))]).await;

    let page = service
        .answers(owner.id, e.id, run.id, AnswerQuery::default())
        .await
        .unwrap();
    let answer = &page.items[0];
    assert_eq!(answer.text.as_deref(), Some(text));
    let chars: Vec<char> = text.chars().collect();
    let found: Vec<(&str, &str, Option<&str>, bool)> = answer
        .spans
        .iter()
        .map(|s| {
            assert!(text.is_char_boundary(s.start) && text.is_char_boundary(s.end));
            assert_eq!(s.char_start, text[..s.start].chars().count());
            assert_eq!(s.char_end, text[..s.end].chars().count());
            let by_chars: String = chars[s.char_start..s.char_end].iter().collect();
            assert_eq!(by_chars, &text[s.start..s.end]);
            (
                &text[s.start..s.end],
                s.brand.as_str(),
                s.alias.as_deref(),
                s.is_target,
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("HubSpot CRM", "HubSpot", Some("HubSpot CRM"), true),
            ("Salesforce", "Salesforce", None, false),
            ("hubspot", "HubSpot", None, true),
        ]
    );
}

#[tokio::test]
async fn anonymized_and_failed_answers_have_no_text_or_spans() {
    let store: Arc<DynStore> = Arc::new(MemoryStore::new());
    let service = RunService::from_store(&store);
    let owner = user(&store).await;
    let e = experiment(&store, owner.id).await;
    let now = Timestamp::now();
    let hours_ago =
        |h: i64| Timestamp::from_unix_micros(now.unix_micros() - h * 3_600_000_000).unwrap();
    let stored = vec![BrandMention {
        brand: "HubSpot".into(),
        count: 1,
        first_offset: 0,
        rank: 1,
        list_position: None,
    }];
    let run = run_with(&store, &e, |r| {
        let mut old = iteration(r, 0, Some("HubSpot"));
        old.mentions = Some(stored.clone());
        old.created_at = hours_ago(2);
        vec![old, iteration(r, 1, None), iteration(r, 2, Some("HubSpot"))]
    })
    .await;
    // The retention pass erases the owner's answers from before the cut-off: only index 0.
    let erased = store
        .anonymize_iterations(PricingTier::Pro, hours_ago(1), 100, now)
        .await
        .unwrap();
    assert_eq!(erased, 1);

    let page = service
        .answers(owner.id, e.id, run.id, AnswerQuery::default())
        .await
        .unwrap();
    let [anonymized, failed, kept] = &page.items[..] else {
        panic!("three answers expected: {page:?}");
    };
    assert!(anonymized.anonymized);
    assert_eq!(anonymized.text, None);
    assert!(anonymized.spans.is_empty());
    assert_eq!(anonymized.mentions, stored, "the stored summary stays");
    assert!(!failed.success && !failed.anonymized);
    assert!(failed.text.is_none() && failed.spans.is_empty());
    assert_eq!(failed.error.as_deref(), Some("upstream timeout"));
    assert!(!kept.anonymized);
    assert_eq!(kept.text.as_deref(), Some("HubSpot"));
    assert_eq!(kept.spans.len(), 1);
}

#[tokio::test]
async fn progress_shows_the_newest_run_per_provider_until_done() {
    let store: Arc<DynStore> = Arc::new(MemoryStore::new());
    let service = RunService::from_store(&store);
    let owner = user(&store).await;
    let e = experiment(&store, owner.id).await;
    let old = run_with(&store, &e, |r| vec![iteration(r, 0, Some("HubSpot"))]).await;
    let new = run_with(&store, &e, |r| {
        (0..3).map(|i| iteration(r, i, Some("HubSpot"))).collect()
    })
    .await;

    let progress = service.progress(owner.id, e.id).await.unwrap();
    assert_ne!(old.id, new.id);
    assert_eq!(
        progress.runs,
        [RunProgress {
            run_id: new.id,
            provider: ProviderKind::Simulated,
            completed: 3,
            total: 50,
            status: BatchRunStatus::Pending,
        }]
    );
    assert!(!progress.is_done(), "a queued experiment is not done");
    store
        .set_experiment_status(
            owner.id,
            e.id,
            ExperimentStatus::Completed,
            Timestamp::now(),
        )
        .await
        .unwrap();
    assert!(service.progress(owner.id, e.id).await.unwrap().is_done());
}

#[test]
fn cursors_round_trip_and_garbage_is_invalid() {
    let c = AnswerCursor::after(41).unwrap();
    assert_eq!(AnswerCursor::decode(&c.encode()).unwrap(), c);
    assert_eq!(AnswerCursor::after(u32::MAX), None);
    for bad in ["", "i", "41", "ix", "i-1", "i100000000", "i 1"] {
        assert!(AnswerCursor::decode(bad).is_err(), "{bad}");
    }
}

mod props {
    use super::*;
    use proptest::prelude::*;

    fn tracked() -> Experiment {
        let mut hubspot = Brand::new(BrandName::parse("HubSpot").unwrap());
        hubspot
            .aliases
            .push(BrandName::parse("HubSpot CRM").unwrap());
        ExperimentDraft::new(Prompt::parse("Best CRM?").unwrap(), hubspot)
            .competitor(Brand::new(BrandName::parse("Ørsted").unwrap()))
            .into_experiment(UserId::new(), Timestamp::now())
            .unwrap()
    }

    const PIECES: &[&str] = &[
        "HubSpot",
        "hubspot crm",
        "ØRSTED",
        "Ørsted",
        "ß",
        "é",
        "🚀",
        "我",
        "İ",
        " ",
        ".",
        "x",
    ];

    proptest! {
        #[test]
        fn cursor_decoding_never_panics(s in "\\PC*") {
            let _ = AnswerCursor::decode(&s);
        }

        #[test]
        fn cursors_round_trip(index in 0..u32::MAX) {
            let c = AnswerCursor::after(index).unwrap();
            prop_assert_eq!(AnswerCursor::decode(&c.encode()).unwrap(), c);
        }

        #[test]
        fn spans_are_ordered_on_char_boundaries_with_matching_char_offsets(
            pieces in prop::collection::vec(prop::sample::select(PIECES), 0..40)
        ) {
            let e = tracked();
            let matcher = BrandMatcher::new(&e.target, &e.competitors).unwrap();
            let text = pieces.concat();
            let found = spans(&e, &matcher, &text);
            let mut last_end = 0;
            for s in &found {
                prop_assert!(s.start >= last_end && s.start < s.end);
                prop_assert!(text.is_char_boundary(s.start) && text.is_char_boundary(s.end));
                prop_assert_eq!(s.char_start, text[..s.start].chars().count());
                prop_assert_eq!(s.char_end, text[..s.end].chars().count());
                prop_assert_eq!(s.is_target, s.brand == "HubSpot");
                last_end = s.end;
            }
            // Exactly the spans of the extraction that produced the stored mentions.
            let stored = matcher.extract(&text).to_mentions();
            let counted: u32 = stored.iter().map(|m| m.count).sum();
            prop_assert_eq!(found.len(), counted as usize);
        }
    }
}
