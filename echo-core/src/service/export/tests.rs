#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use futures::TryStreamExt;
use proptest::prelude::*;

use super::*;
use crate::conformance::fixtures::{self, base_time};
use crate::model::{
    Brand, BrandMention, BrandName, Experiment, PricingTier, Prompt, Timestamp, User,
};
use crate::service::{ExperimentDraft, ExperimentService};
use crate::store::StoreError;
use crate::store::memory::MemoryStore;

/// An RFC 4180 reader (quoted cells, doubled quotes, CRLF records), to read exports back.
fn parse(csv: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut cell = String::new();
    let mut chars = csv.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut cell)),
            (false, '\r') => {
                assert_eq!(chars.next(), Some('\n'), "a bare CR outside quotes");
                record.push(std::mem::take(&mut cell));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => cell.push(c),
        }
    }
    assert!(
        !quoted && cell.is_empty() && record.is_empty(),
        "the last record ends with CRLF"
    );
    records
}

fn record(cells: &[&str]) -> String {
    let mut out = String::new();
    csv_record(&mut out, cells.iter().copied());
    out
}

#[test]
fn quotes_as_rfc_4180_says() {
    assert_eq!(record(&["a", "b c", ""]), "a,b c,\r\n");
    assert_eq!(record(&["x,y"]), "\"x,y\"\r\n");
    assert_eq!(record(&["say \"hi\""]), "\"say \"\"hi\"\"\"\r\n");
    assert_eq!(
        record(&["two\nlines", "cr\rlf"]),
        "\"two\nlines\",\"cr\rlf\"\r\n"
    );
    assert_eq!(record(&["naïve ✓"]), "naïve ✓\r\n");
}

#[test]
fn guards_every_formula_prefix() {
    for lead in ["=", "+", "-", "@", "\t", "\r"] {
        let cell = format!("{lead}HYPERLINK(\"http://x\")");
        let read = &parse(&record(&[&cell]))[0][0];
        assert_eq!(read, &format!("'{cell}"), "{lead:?} is guarded");
    }
    // Elsewhere in a cell those characters are harmless and kept as they are.
    assert_eq!(record(&["1+1=2", "a@b", "x-y"]), "1+1=2,a@b,x-y\r\n");
    // The guard goes inside the quotes of a quoted cell.
    assert_eq!(record(&["=1,2"]), "\"'=1,2\"\r\n");
}

proptest! {
    #[test]
    fn every_record_reads_back(cells in prop::collection::vec(".*", 1..6)) {
        let read = parse(&record(&cells.iter().map(String::as_str).collect::<Vec<_>>()));
        prop_assert_eq!(read.len(), 1);
        for (got, sent) in read[0].iter().zip(&cells) {
            let guarded = sent.starts_with(['=', '+', '-', '@', '\t', '\r']);
            let expected = if guarded { format!("'{sent}") } else { sent.clone() };
            prop_assert_eq!(got, &expected);
        }
    }
}

async fn setup() -> (Arc<DynStore>, User, User, Experiment) {
    let store: Arc<DynStore> = Arc::new(MemoryStore::new());
    let owner = crate::service::test_support::user(&store, true).await;
    let other = crate::service::test_support::user(&store, true).await;
    let draft = ExperimentDraft::new(
        Prompt::parse("Best CRM for startups?").unwrap(),
        Brand::new(BrandName::parse("HubSpot").unwrap()),
    )
    .competitor(Brand::new(BrandName::parse("Salesforce").unwrap()));
    let experiment = ExperimentService::from_store(&store)
        .submit(owner.id, draft)
        .await
        .unwrap()
        .experiment;
    (store, owner, other, experiment)
}

async fn new_run(store: &Arc<DynStore>, experiment: &Experiment, planned: u32) -> BatchRun {
    let run = BatchRun::new(
        experiment.id,
        ProviderKind::Simulated,
        "sim-1",
        planned,
        Timestamp::now(),
    );
    store.create_batch_run(&run).await.unwrap();
    run
}

async fn export(
    service: &ExportService,
    owner: UserId,
    experiment: ExperimentId,
    table: CsvTable,
) -> Vec<String> {
    service
        .csv(owner, experiment, table)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

#[tokio::test]
async fn runs_export_has_a_row_per_run_and_brand_with_the_stored_metrics() {
    let (store, owner, _, experiment) = setup().await;
    let done = new_run(&store, &experiment, 100).await;
    let completed_at = Timestamp::now();
    store
        .update_batch_run(
            done.id,
            &fixtures::completed_update(Some(0.4), completed_at),
        )
        .await
        .unwrap();
    let pending = new_run(&store, &experiment, 100).await;

    let chunks = export(
        &ExportService::from_store(&store),
        owner.id,
        experiment.id,
        CsvTable::Runs,
    )
    .await;
    let rows = parse(&chunks.concat());
    assert_eq!(rows[0], RUN_COLUMNS);
    let expected = fixtures::batch_metrics(0.4).metrics;
    let brands = expected.brands.len();
    assert_eq!(brands, 3);
    assert_eq!(
        rows.len(),
        1 + brands + 1,
        "header, each brand of the finished run, the pending run"
    );
    assert!(rows.iter().all(|r| r.len() == RUN_COLUMNS.len()));
    let col = |name: &str| RUN_COLUMNS.iter().position(|c| *c == name).unwrap();

    let hubspot = &rows[1];
    let stored = expected.target().unwrap();
    assert_eq!(hubspot[col("run_id")], done.id.to_string());
    assert_eq!(hubspot[col("completed_at")], completed_at.to_string());
    assert_eq!(hubspot[col("status")], "completed");
    assert_eq!(hubspot[col("provider")], "simulated");
    assert_eq!(hubspot[col("simulated")], "true");
    assert_eq!(hubspot[col("brand")], "HubSpot");
    assert_eq!(hubspot[col("is_target")], "true");
    assert_eq!(hubspot[col("n")], "100");
    assert_eq!(hubspot[col("answers_naming")], "40");
    assert_eq!(hubspot[col("visibility")].parse::<f64>().unwrap(), 0.4);
    let ci = stored.visibility.ci95.unwrap();
    assert_eq!(
        hubspot[col("visibility_ci_low")].parse::<f64>().unwrap(),
        ci.lower
    );
    assert_eq!(
        hubspot[col("visibility_ci_high")].parse::<f64>().unwrap(),
        ci.upper
    );
    assert_eq!(
        hubspot[col("mention_share_of_voice")]
            .parse::<f64>()
            .unwrap(),
        stored.mention_share_of_voice.unwrap()
    );
    assert_eq!(hubspot[col("average_rank")], "1");
    assert_eq!(
        hubspot[col("average_list_position")],
        "",
        "undefined is empty"
    );
    assert_eq!(rows[2][col("brand")], "Salesforce");
    assert_eq!(rows[2][col("is_target")], "false");
    assert_eq!(rows[2][col("visibility")], "1");

    // A run without metrics yet is listed, its brand columns empty.
    let last = &rows[1 + brands];
    assert_eq!(last[col("run_id")], pending.id.to_string());
    assert_eq!(last[col("status")], "pending");
    assert!(last[col("brand")..].iter().all(String::is_empty));
}

#[tokio::test]
async fn answers_export_streams_every_iteration_page_by_page() {
    let (store, owner, _, experiment) = setup().await;
    let now = Timestamp::now();
    let mut expected = 0;
    for planned in [1_234u32, 7] {
        let run = new_run(&store, &experiment, planned).await;
        let its: Vec<_> = (0..planned)
            .map(|i| fixtures::iteration(run.id, i, now))
            .collect();
        for chunk in its.chunks(500) {
            store.record_iterations(chunk).await.unwrap();
        }
        expected += planned as usize;
    }
    let empty = new_run(&store, &experiment, 5).await;

    let chunks = export(
        &ExportService::from_store(&store).with_page(100),
        owner.id,
        experiment.id,
        CsvTable::Answers,
    )
    .await;
    // The header, 13 pages of the first run (the last one short) and one of the second: each
    // chunk holds at most one page, so the export never held the whole file.
    assert_eq!(chunks.len(), 1 + 13 + 1);
    assert!(chunks[1..].iter().all(|c| parse(c).len() <= 100));
    let rows = parse(&chunks.concat());
    assert_eq!(rows[0], ANSWER_COLUMNS);
    assert_eq!(rows.len(), 1 + expected);
    let indexes: Vec<u32> = rows[1..1_235]
        .iter()
        .map(|r| r[3].parse().unwrap())
        .collect();
    assert_eq!(indexes, (0..1_234).collect::<Vec<_>>());
    assert!(rows.iter().all(|r| r[0] != empty.id.to_string()));
    let first = &rows[1];
    assert_eq!(first[8], "Answer 0: HubSpot, then Salesforce.");
    assert_eq!(first[9], "HubSpot:1; Salesforce:1");
    assert_eq!(first[10], "1");
}

#[tokio::test]
async fn answers_export_keeps_hostile_text_inert_and_says_what_was_anonymized() {
    let (store, owner, _, experiment) = setup().await;
    let run = new_run(&store, &experiment, 4).await;
    let old = base_time();
    let now = Timestamp::now();
    let mut hostile = fixtures::iteration(run.id, 1, now);
    hostile.raw_response =
        Some("=HYPERLINK(\"http://evil\",\"HubSpot\")\r\nline 2, \"quoted\"".into());
    let mut salesforce_first = fixtures::iteration(run.id, 2, now);
    salesforce_first.mentions = Some(vec![
        BrandMention {
            brand: "HubSpot".into(),
            count: 3,
            first_offset: 30,
            rank: 2,
            list_position: None,
        },
        BrandMention {
            brand: "Salesforce".into(),
            count: 1,
            first_offset: 0,
            rank: 1,
            list_position: None,
        },
    ]);
    store
        .record_iterations(&[
            fixtures::iteration(run.id, 0, old),
            hostile,
            salesforce_first,
            fixtures::failed_iteration(run.id, 3, now),
        ])
        .await
        .unwrap();
    // Retention anonymizes the old answer: its text goes, its analysis stays.
    let anonymized = store
        .anonymize_iterations(PricingTier::Pro, old + time::Duration::minutes(1), 100, now)
        .await
        .unwrap();
    assert_eq!(anonymized, 1);

    let chunks = export(
        &ExportService::from_store(&store),
        owner.id,
        experiment.id,
        CsvTable::Answers,
    )
    .await;
    let rows = parse(&chunks.concat());
    assert_eq!(rows.len(), 5);
    let (text, anon, brands) = (8, 7, 9);
    assert_eq!(rows[1][anon], "true");
    assert_eq!(rows[1][text], "");
    assert_eq!(rows[1][brands], "HubSpot:1; Salesforce:1");
    assert_eq!(rows[2][anon], "false");
    assert_eq!(
        rows[2][text],
        "'=HYPERLINK(\"http://evil\",\"HubSpot\")\r\nline 2, \"quoted\""
    );
    assert_eq!(rows[3][brands], "Salesforce:1; HubSpot:3", "rank order");
    assert_eq!(rows[3][10], "2", "the target's rank");
    assert_eq!(rows[4][5], "false");
    assert_eq!(rows[4][6], "provider timed out");
    assert_eq!(rows[4][brands], "");
}

#[tokio::test]
async fn another_users_experiment_is_not_found() {
    let (store, _, other, experiment) = setup().await;
    let service = ExportService::from_store(&store);
    for table in [CsvTable::Runs, CsvTable::Answers] {
        let r = service.csv(other.id, experiment.id, table).await;
        assert!(matches!(
            r,
            Err(ServiceError::Store(StoreError::NotFound { .. }))
        ));
    }
    let missing = service
        .csv(other.id, ExperimentId::new(), CsvTable::Runs)
        .await;
    assert!(matches!(
        missing,
        Err(ServiceError::Store(StoreError::NotFound { .. }))
    ));
}

#[tokio::test]
async fn a_page_read_is_retried_through_a_transient_store_error_only() {
    let test = Arc::new(crate::auth::test_store::TestStore::default());
    let store: Arc<DynStore> = test.clone();
    let owner = crate::service::test_support::user(&store, true).await;
    let draft = ExperimentDraft::new(
        Prompt::parse("Best CRM for startups?").unwrap(),
        Brand::new(BrandName::parse("HubSpot").unwrap()),
    );
    let experiment = ExperimentService::from_store(&store)
        .submit(owner.id, draft)
        .await
        .unwrap()
        .experiment;
    let run = new_run(&store, &experiment, 3).await;
    let its: Vec<_> = (0..3)
        .map(|i| fixtures::iteration(run.id, i, Timestamp::now()))
        .collect();
    store.record_iterations(&its).await.unwrap();
    let left = |n: usize| {
        test.transient.lock().unwrap().insert("list_iterations", n);
    };

    // A busy moment: two failed reads, then the page.
    left(2);
    let rows = read_page(&*store, owner.id, run.id, 0, 10).await.unwrap();
    assert_eq!(rows.len(), 3);

    // A lasting outage: four attempts, then the error ends the stream.
    left(10);
    let error = read_page(&*store, owner.id, run.id, 0, 10)
        .await
        .unwrap_err();
    assert!(error.is_retryable(), "{error}");
    assert_eq!(test.transient.lock().unwrap()["list_iterations"], 6);
}
