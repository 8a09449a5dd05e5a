//! The audit log's PostgreSQL specifics: the append-only trigger, and the retention pass raced
//! by several stores (replicas) on one database.

use echo_core::conformance::fixtures::{
    at, audit_event, batch_run, debit, experiment, iteration, new_user, run_job,
};
use echo_core::model::{PricingTier, ProviderKind};
use echo_core::store::{AuditStore, ExperimentStore, RunStore};
use sqlx::{ConnectOptions, PgConnection};

/// The trigger's refusal of `sql` on a connection, as PostgreSQL reports it.
async fn refused(conn: &mut PgConnection, sql: &'static str) -> String {
    let err = sqlx::query(sql)
        .execute(&mut *conn)
        .await
        .expect_err("the trigger refuses it");
    let db = err.as_database_error().expect("a database error");
    assert_eq!(
        db.code().as_deref(),
        Some("42501"),
        "insufficient_privilege: {db}"
    );
    db.message().to_owned()
}

/// A plain UPDATE, DELETE or TRUNCATE of audit_events through a raw connection fails with the
/// trigger's error and changes nothing; inside a transaction that set
/// `echo.audit_maintenance`, it is allowed, and only there (SET LOCAL ends with it). The
/// store's own erasure and archiving leave no such setting on its pooled connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_events_refuse_plain_update_and_delete() {
    let Some(store) = crate::fresh_store().await else {
        return;
    };
    let u = new_user(&store).await;
    let mut event = audit_event("login", at(0));
    event.actor_user_id = Some(u.id);
    for _ in 0..3 {
        store.append_audit(&event).await.unwrap();
    }
    let before = store.audit_range(1, 10).await.unwrap();
    let mut raw = crate::raw(&store).await;

    for (sql, op) in [
        ("UPDATE audit_events SET ip = NULL", "UPDATE"),
        ("DELETE FROM audit_events WHERE seq = 1", "DELETE"),
        ("TRUNCATE audit_events", "TRUNCATE"),
    ] {
        let message = refused(&mut raw, sql).await;
        assert_eq!(
            message,
            format!("audit_events is append-only: {op} refused")
        );
    }
    // Refused even when it would touch no row: the guard is per statement.
    refused(&mut raw, "DELETE FROM audit_events WHERE seq = 999").await;
    assert_eq!(store.audit_range(1, 10).await.unwrap(), before);

    sqlx::query("BEGIN").execute(&mut raw).await.unwrap();
    sqlx::query("SET LOCAL echo.audit_maintenance = 'on'")
        .execute(&mut raw)
        .await
        .unwrap();
    let changed = sqlx::query("UPDATE audit_events SET ip = NULL WHERE seq = 1")
        .execute(&mut raw)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(changed, 1, "allowed in a maintenance transaction");
    sqlx::query("ROLLBACK").execute(&mut raw).await.unwrap();
    refused(&mut raw, "UPDATE audit_events SET ip = NULL").await;
    assert_eq!(store.audit_range(1, 10).await.unwrap(), before);

    assert_eq!(
        store
            .pseudonymize_actor(u.id, "hmac:u", at(5))
            .await
            .unwrap(),
        3
    );
    assert_eq!(store.delete_audit_through(1).await.unwrap(), 1);
    // Every pooled connection the store used is back in the pool without the setting.
    for _ in 0..3 {
        let err = sqlx::query("DELETE FROM audit_events")
            .execute(store.pool())
            .await
            .expect_err("refused on a pooled connection");
        assert!(err.to_string().contains("append-only"), "{err}");
    }
    assert_eq!(store.audit_bounds().await.unwrap(), Some((2, 3)));
}

/// Two stores on one database (two replicas), each with several passes at once, anonymize
/// every qualifying iteration exactly once: the returns add up to the rows, and none fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_racing_the_retention_pass_count_each_row_once() {
    let Some(a) = crate::fresh_store().await else {
        return;
    };
    let b = echo_store_postgres::PgStore::connect(
        a.pool().connect_options().to_url_lossy().as_ref(),
        crate::test_config(),
    )
    .await
    .unwrap();
    let u = new_user(&a).await;
    let e = experiment(u.id, at(-200 * 86_400));
    a.create_experiment(&e, debit(&e), &run_job(&e, e.created_at))
        .await
        .unwrap();
    let mut total_rows = 0;
    for _ in 0..5 {
        let run = batch_run(&e, ProviderKind::OpenAi, e.created_at);
        a.create_batch_run(&run).await.unwrap();
        let its: Vec<_> = (0..400)
            .map(|i| iteration(run.id, i, at(-100 * 86_400 + i64::from(i))))
            .collect();
        a.record_iterations(&its).await.unwrap();
        total_rows += its.len() as u64;
    }
    let cutoff = at(-90 * 86_400);

    let mut passes = Vec::new();
    for (n, store) in [a.clone(), b.clone(), a.clone(), b.clone()]
        .into_iter()
        .enumerate()
    {
        passes.push(tokio::spawn(async move {
            let mut mine = 0;
            loop {
                let changed = store
                    .anonymize_iterations(PricingTier::Free, cutoff, 50, at(n as i64))
                    .await
                    .unwrap();
                if changed == 0
                    && store
                        .count_anonymizable(PricingTier::Free, cutoff)
                        .await
                        .unwrap()
                        == 0
                {
                    return mine;
                }
                mine += changed;
            }
        }));
    }
    let mut total = 0;
    for pass in passes {
        total += pass.await.unwrap();
    }
    assert_eq!(total, total_rows);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM iterations WHERE NOT is_anonymized")
        .fetch_one(a.pool())
        .await
        .unwrap();
    assert_eq!(left, 0);
}
