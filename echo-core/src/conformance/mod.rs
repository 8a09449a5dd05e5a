//! The storage conformance suite: one scenario per documented behaviour of the
//! [`store`](crate::store) traits, runnable against any backend.
//!
//! A backend is done when the whole suite passes. The scenarios test exactly what the trait docs
//! promise (tenant isolation, per-call atomicity, explicit time, exact round trips, and each
//! method's own contract), through the traits only, so every backend runs the same code.
//!
//! # Running it on your store
//! Enable the `testkit` feature in your dev-dependencies and invoke
//! [`store_conformance_tests!`](crate::store_conformance_tests) from an integration test with a
//! path to an `async fn() -> Arc<DynStore>` that returns a **new, empty** store on every call:
//!
//! ```toml
//! [dev-dependencies]
//! echo-core = { version = "0.1", features = ["testkit"] }
//! tokio = { version = "1", features = ["macros", "rt-multi-thread"] }
//! ```
//!
//! ```ignore
//! // tests/conformance/main.rs
//! use std::sync::Arc;
//! use echo_core::store::DynStore;
//!
//! async fn fresh_store() -> Arc<DynStore> {
//!     Arc::new(MyStore::open_new_empty_database().await)
//! }
//!
//! echo_core::store_conformance_tests!(fresh_store);
//! ```
//!
//! The macro expands to one `#[tokio::test(flavor = "multi_thread", worker_threads = 4)]` per
//! scenario, grouped in modules by trait family (`users::create_get_round_trip`…), so
//! `cargo test -- jobs::` runs one family. The expanded tests name `::tokio`, hence the tokio
//! dev-dependency with `macros` and `rt-multi-thread`. Invoke the macro once per module; to run
//! the suite against several configurations, invoke it in one module per configuration.
//!
//! # What a fresh store means
//! Some scenarios count store-wide state: the audit log's first `seq` is 1, queue statistics,
//! `reset_due_quotas`' return value, `due_recurring`, the retention counts and
//! `users_due_for_deletion`. A store shared between scenarios would fail
//! them; a fresh database (or schema, or file) per call is required.
//!
//! # Calling scenarios yourself
//! Each scenario is a `pub async fn name(store: &DynStore)` in the module of its trait family
//! ([`users`], [`alerts`], [`webhooks`], [`api_keys`], [`sessions`], [`experiments`], [`runs`], [`sources`],
//! [`audit`], [`jobs`], [`retention`] for anonymization and account purge across them, and
//! [`edge`] for edge inputs
//! across them). It panics when the store breaks the contract and has no other
//! requirements on its executor: concurrency scenarios drive concurrent calls with
//! `futures::future::join_all` on the calling task, which exercises real contention in backends
//! that run their work on blocking threads or a connection pool. Scenario futures are `Send`
//! (the macro checks it), so they may also be spawned. [`SCENARIOS`] lists them all.
//! Scenarios use explicit time around [`fixtures::base_time`] and never sleep.
//! [`migrations`] checks a SQL store's released migration files against their recorded
//! checksums.
//! [`corrupt`] holds scenarios for SQL stores that corrupt rows with the backend's own SQL;
//! they are outside the macro, for a backend's own tests.
//!
//! # Adding a scenario
//! Write it as a `pub async fn` with a one-line doc in its family's module, then add its name to
//! the list inside [`store_conformance_tests!`](crate::store_conformance_tests); that list is the
//! only one ([`SCENARIOS`] is generated from it). echo-core's own conformance test fails when a
//! `pub async fn` of a scenario module is missing from the list.

// This module is a test harness: scenarios report contract violations by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod alerts;
pub mod api_keys;
pub mod audit;
pub mod corrupt;
pub mod edge;
pub mod experiments;
pub mod fixtures;
pub mod jobs;
pub mod migrations;
pub mod prompt_sets;
pub mod retention;
pub mod runs;
pub mod sessions;
pub mod sources;
pub mod users;
pub mod verification;
pub mod webhooks;

/// Every scenario as `"module::name"`, in the order the macro expands them. Generated from the
/// list inside [`store_conformance_tests!`](crate::store_conformance_tests).
pub const SCENARIOS: &[&str] = crate::store_conformance_tests!(@names);

/// Expands to one `#[tokio::test]` per conformance scenario, each run against a fresh store.
///
/// `$fresh` is a path to an `async fn() -> std::sync::Arc<echo_core::store::DynStore>` returning a
/// new, empty store. The caller needs `tokio` (features `macros`, `rt-multi-thread`) as a
/// dev-dependency. See the [`conformance`](crate::conformance) module for details.
///
/// ```ignore
/// async fn fresh_store() -> std::sync::Arc<echo_core::store::DynStore> {
///     std::sync::Arc::new(echo_core::store::memory::MemoryStore::new())
/// }
/// echo_core::store_conformance_tests!(fresh_store);
/// ```
///
/// The `@`-prefixed arms are internal.
#[macro_export]
macro_rules! store_conformance_tests {
    // The one list of scenarios, by module. Hands it to the arm named by the callback tokens.
    (@scenarios [$($callback:tt)*]) => {
        $crate::store_conformance_tests! { $($callback)* {
            users {
                create_get_round_trip,
                get_missing_user_is_not_found,
                find_user_by_email_ignores_case,
                duplicate_email_or_id_is_conflict,
                request_deletion_deactivates_and_schedules,
                cancel_deletion_restores_only_pending,
                update_consents_applies_to_stored_consents,
                set_password_hash_compares_and_sets,
                set_tier_and_admin_write_only_their_columns,
                consent_racing_deletion_never_reactivates,
                delete_user_cascades_and_keeps_audit,
                delete_missing_user_is_not_found,
                refund_quota_saturates_at_zero,
                reset_due_quotas_by_whole_months,
                brand_profile_put_get_replace,
            }
            verification {
                verification_fields_round_trip,
                verification_token_redeems_once_and_marks_user,
                verification_token_expiry_writes_nothing,
                verification_token_replaced_by_newer,
                verification_tokens_are_tenant_isolated,
                delete_user_removes_verification_tokens,
                concurrent_redemptions_have_one_winner,
            }
            api_keys {
                api_key_create_and_find,
                api_key_duplicate_public_id_is_conflict,
                api_keys_listed_newest_first_and_scoped,
                revoke_api_key_is_scoped_and_idempotent,
                touch_api_keys_never_moves_backwards,
                find_api_key_for_auth_joins_owner,
                find_api_key_for_auth_reflects_owner_changes,
                set_api_key_expiry_is_scoped,
            }
            sessions {
                session_round_trip_through_find_for_auth,
                find_unknown_session_is_none,
                find_session_for_auth_reflects_owner_changes,
                create_session_duplicate_id_is_conflict,
                create_session_for_unknown_user_is_not_found,
                revoke_session_is_scoped_and_idempotent,
                revoke_user_sessions_counts_and_is_scoped,
                prune_sessions_deletes_only_what_qualifies,
                prune_sessions_honours_limit,
                delete_user_removes_sessions,
            }
            experiments {
                create_experiment_debits_and_enqueues,
                experiment_precision_round_trips,
                create_experiment_over_quota_stores_nothing,
                create_experiment_duplicate_job_is_atomic,
                create_experiment_debit_mismatch_is_invalid,
                create_experiment_unknown_owner_is_not_found,
                experiments_are_tenant_isolated,
                list_experiments_newest_first_with_id_tiebreak,
                list_experiments_pages_concatenate,
                list_experiments_status_filter,
                list_experiments_stable_under_inserts,
                experiment_cursor_round_trip,
                prop_paging_yields_sorted_list,
                set_experiment_status_updates,
                request_run_debits_queues_and_enqueues,
                request_run_conflicts_when_busy_or_cancelled,
                request_run_over_quota_changes_nothing,
                delete_experiment_cascades_runs,
                due_recurring_filters_and_orders,
                claim_schedule_enqueued_then_lost,
                claim_schedule_skips_over_quota,
                claim_schedule_none_ends_recurrence,
                claim_schedule_race_has_one_winner,
                quota_edge_race_never_overspends,
            }
            runs {
                create_batch_run_round_trip,
                list_batch_runs_oldest_first_and_scoped,
                update_batch_run_writes_fields_not_counters,
                record_iterations_maintains_counters,
                record_iterations_is_idempotent,
                record_iterations_mixed_batch,
                record_iterations_unknown_run_writes_nothing,
                record_iterations_reused_id_is_conflict,
                list_iterations_order_from_and_limit,
                recorded_indexes_ascending,
                prop_iteration_counters_match_distinct_indexes,
                dashboard_hand_checked,
                dashboard_empty_and_unfinished,
                recent_completed_runs_newest_first_and_scoped,
                recent_trend_runs_are_the_completed_runs_narrowed,
            }
            sources {
                sources_round_trip_in_order,
                sources_are_tenant_isolated,
                sources_are_written_with_their_iteration_only,
                delete_experiment_removes_sources,
                many_sources_in_one_batch_round_trip,
                iterations_without_sources_match_the_listing,
            }
            audit {
                append_audit_builds_hash_chain,
                concurrent_appends_keep_one_chain,
                list_audit_filters_and_pages,
                audit_range_ascending,
                audit_links_match_the_events,
                pseudonymize_actor_erases_and_records,
                audit_checkpoints_round_trip_and_conflict,
                delete_audit_through_keeps_the_chain,
                concurrent_appends_after_delete_keep_one_chain,
            }
            jobs {
                enqueue_and_get,
                claim_respects_run_at_limit_and_order,
                claim_job_takes_only_that_job,
                concurrent_claims_never_double_lease,
                expired_lease_is_fenced,
                heartbeat_extends_lease,
                complete_marks_succeeded,
                fail_with_retry_requeues,
                fail_without_attempts_left_is_final,
                release_requeues_without_counting,
                expired_last_attempt_fails,
                queue_stats_counts_by_state,
                prune_jobs_deletes_old_finished_only,
            }
            retention {
                anonymize_iterations_by_age_keeps_the_rest,
                anonymize_iterations_touches_only_the_tier,
                anonymize_iterations_honours_limit_until_done,
                anonymize_iterations_flags_failed_and_skips_done,
                concurrent_anonymize_calls_never_overlap,
                users_due_for_deletion_filters_and_orders,
                delete_user_leaves_nothing_readable,
            }
            prompt_sets {
                prompt_set_versions_round_trip_and_stay_readable,
                prompt_set_version_must_follow_the_latest,
                invalid_prompt_set_versions_write_nothing,
                prompt_sets_are_tenant_isolated,
                concurrent_prompt_set_edits_have_one_winner,
                delete_prompt_set_removes_versions,
            }
            alerts {
                alerts_round_trip_newest_first_with_cursor,
                record_alerts_is_idempotent,
                alerts_are_tenant_isolated,
                record_alerts_duplicate_id_is_conflict,
                alerts_go_with_experiment_and_owner,
            }
            webhooks {
                webhooks_round_trip_and_are_tenant_isolated,
                webhook_limit_and_reused_id_are_conflicts,
                enqueue_deliveries_writes_deliveries_with_their_jobs,
                delivery_attempts_update_the_log_and_settle_once,
                deliveries_list_newest_first_with_cursor,
                webhooks_go_with_endpoint_and_owner,
            }
            edge {
                unicode_text_round_trips_byte_exact,
                largest_values_round_trip,
                iteration_edge_values_round_trip,
                audit_details_unicode_json_round_trip,
                timestamps_keep_microseconds,
            }
        }}
    };
    // The names, as `&[&str]` of "module::scenario".
    (@names) => {
        $crate::store_conformance_tests!(@scenarios [@name_list])
    };
    (@name_list { $($module:ident { $($name:ident),* $(,)? })* }) => {
        &[$($(concat!(stringify!($module), "::", stringify!($name)),)*)*]
    };
    // One test per scenario, in one module per family.
    (@tests $fresh:path { $($module:ident { $($name:ident),* $(,)? })* }) => {
        /// A new, empty store for one conformance test.
        async fn __echo_conformance_fresh_store() -> ::std::sync::Arc<$crate::store::DynStore> {
            $fresh().await
        }
        $(
            mod $module {
                $(
                    #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
                    async fn $name() {
                        // Scenario futures are `Send`, so embedders may also spawn them.
                        fn send<F: ::std::future::Future + Send>(f: F) -> F {
                            f
                        }
                        let store = super::__echo_conformance_fresh_store().await;
                        send($crate::conformance::$module::$name(&*store)).await;
                    }
                )*
            }
        )*
    };
    ($fresh:path) => {
        $crate::store_conformance_tests!(@scenarios [@tests $fresh]);
    };
}
