//! The `echoai` commands driven through the library, against a real SQLite file.
use echo_core::model::{Email, ExperimentStatus};
use echo_core::store::ExperimentQuery;
use echo_server_example::cli::{Command, MigrateArgs, RunArgs};
use echo_server_example::commands::{CliError, dispatch};

fn run_args(database: &str) -> RunArgs {
    RunArgs {
        prompt: "Best CRM for startups".into(),
        brand: "HubSpot=HubSpot CRM".into(),
        competitors: vec!["Salesforce".into(), "Pipedrive".into()],
        iterations: 30,
        providers: vec!["simulated".into()],
        model: None,
        temperature: 0.7,
        database: database.into(),
        json: true,
        seed: 42,
        precision: None,
        concurrency: 8,
        timeout_secs: 60,
        user: "cli@echo.localhost".into(),
    }
}

#[tokio::test]
async fn run_stores_a_completed_experiment_with_metrics_and_settles_its_job() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("echo.db");
    let db = db.to_str().unwrap();
    dispatch(Command::Run(run_args(db)), None).await.unwrap();
    dispatch(Command::Run(run_args(db)), None).await.unwrap();

    let (store, _) = echo_server_example::open_store(db).await.unwrap();
    let user = store
        .find_user_by_email(&Email::parse("cli@echo.localhost").unwrap())
        .await
        .unwrap()
        .expect("the CLI account exists once");
    assert_eq!(user.quota.prompts_used, 60, "two runs of 30 debited");
    let page = store
        .list_experiments(user.id, &ExperimentQuery::default())
        .await
        .unwrap();
    assert_eq!(page.items.len(), 2);
    for e in &page.items {
        assert_eq!(e.status, ExperimentStatus::Completed);
        let runs = store.list_batch_runs(user.id, e.id).await.unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].iterations_recorded, 30);
        assert!(runs[0].metrics.is_some());
    }
    let stats = store
        .queue_stats(echo_core::model::Timestamp::now())
        .await
        .unwrap();
    assert_eq!(
        (stats.due, stats.running, stats.failed),
        (0, 0, 0),
        "jobs settled"
    );
}

#[tokio::test]
async fn bad_input_is_refused_before_anything_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("echo.db");
    let db = db.to_str().unwrap();
    let cases: Vec<(&str, RunArgs)> = vec![
        (
            "empty prompt",
            RunArgs {
                prompt: " ".into(),
                ..run_args(db)
            },
        ),
        (
            "zero iterations",
            RunArgs {
                iterations: 0,
                ..run_args(db)
            },
        ),
        (
            "absurd iterations",
            RunArgs {
                iterations: 5_000_000,
                ..run_args(db)
            },
        ),
        (
            "unknown provider",
            RunArgs {
                providers: vec!["chatgpt".into()],
                ..run_args(db)
            },
        ),
        (
            "missing key",
            RunArgs {
                providers: vec!["openai".into()],
                ..run_args(db)
            },
        ),
        (
            "temperature",
            RunArgs {
                temperature: 9.0,
                ..run_args(db)
            },
        ),
        (
            "precision",
            RunArgs {
                precision: Some(0.9),
                ..run_args(db)
            },
        ),
        (
            "empty brand",
            RunArgs {
                brand: "=alias".into(),
                ..run_args(db)
            },
        ),
    ];
    for (what, args) in cases {
        if what == "missing key" && std::env::var_os("OPENAI_API_KEY").is_some() {
            continue;
        }
        let err = dispatch(Command::Run(args), None).await.expect_err(what);
        assert!(
            matches!(err, CliError::Invalid(_) | CliError::Usage(_)),
            "{what}: {err:?}"
        );
    }
    // Nothing was stored: the database file was never even needed, or holds no experiment.
    if std::path::Path::new(db).exists() {
        let (store, _) = echo_server_example::open_store(db).await.unwrap();
        let user = store
            .find_user_by_email(&Email::parse("cli@echo.localhost").unwrap())
            .await
            .unwrap();
        if let Some(user) = user {
            let page = store
                .list_experiments(user.id, &ExperimentQuery::default())
                .await
                .unwrap();
            assert!(page.items.is_empty());
            assert_eq!(user.quota.prompts_used, 0);
        }
    }
}

#[tokio::test]
async fn migrate_is_idempotent_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db").to_str().unwrap().to_owned();
    for _ in 0..2 {
        dispatch(
            Command::Migrate(MigrateArgs {
                database: db.clone(),
            }),
            None,
        )
        .await
        .unwrap();
    }
}
