//! [`AuditStore`](crate::store::AuditStore): the hash-chained, append-only audit log.
//!
//! These scenarios assume a fresh store: the first appended event has `seq` 1.

use futures::future::join_all;

use super::fixtures::{at, audit_event, new_user, page_size, yield_now};
use crate::audit::{GENESIS_HASH, chain_hash};
use crate::model::{AuditEvent, NewAuditEvent};
use crate::store::{AuditQuery, DynStore};

/// Checks that `events` (ascending) form the chain from seq 1: no gap, each linked to its
/// predecessor, each hash recomputable from the stored fields.
#[track_caller]
fn assert_valid_chain(events: &[AuditEvent]) {
    let mut prev = GENESIS_HASH;
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1, "seq without gaps");
        assert_eq!(e.prev_hash, prev, "prev_hash of seq {}", e.seq);
        assert_eq!(
            e.hash,
            chain_hash(&prev, e.seq, &e.event),
            "hash of seq {}",
            e.seq
        );
        prev = e.hash;
    }
}

/// Every event matching `query`'s filters, newest first, by following `before_seq` cursors
/// with pages of `query.limit`. Checks the cursor is the last row's `seq` and that only the last
/// page lacks one.
async fn collect_audit_pages(store: &DynStore, query: &AuditQuery) -> Vec<AuditEvent> {
    let mut query = query.clone();
    let mut all = Vec::new();
    for _ in 0..10_000 {
        let page = store.list_audit(&query).await.expect("list_audit");
        assert!(
            page.items.len() <= query.limit.get() as usize,
            "page over its limit"
        );
        match page.next_cursor {
            None => {
                all.extend(page.items);
                return all;
            }
            Some(cursor) => {
                let last = page.items.last().expect("a page with a cursor has rows");
                assert_eq!(cursor, last.seq, "the cursor is the last seq");
                all.extend(page.items);
                query.before_seq = Some(cursor);
            }
        }
    }
    panic!("audit pagination did not end");
}

/// Appends get seq 1, 2, 3… linked by `prev_hash`, with `hash == chain_hash(prev, seq, event)`,
/// and the stored event equals the one given.
pub async fn append_audit_builds_hash_chain(store: &DynStore) {
    let mut appended = Vec::new();
    for i in 0..3 {
        let event = audit_event(&format!("action_{i}"), at(i));
        let stored = store.append_audit(&event).await.expect("append_audit");
        assert_eq!(stored.event, event, "stored event equals the input");
        appended.push(stored);
    }
    assert_valid_chain(&appended);
    assert_eq!(
        store.audit_range(1, 100).await.expect("audit_range"),
        appended
    );
}

/// 50 concurrent appends produce one chain with seq 1..=50, no fork, no gap.
pub async fn concurrent_appends_keep_one_chain(store: &DynStore) {
    let events: Vec<NewAuditEvent> = (0..50).map(|i| audit_event("login", at(i))).collect();
    let results = join_all(events.iter().map(|e| async move {
        yield_now().await;
        store.append_audit(e).await
    }))
    .await;
    let mut returned: Vec<AuditEvent> = results
        .into_iter()
        .map(|r| r.expect("append_audit"))
        .collect();
    returned.sort_by_key(|e| e.seq);
    let stored = store.audit_range(1, 1_000).await.expect("audit_range");
    assert_eq!(stored.len(), 50);
    assert_valid_chain(&stored);
    assert_eq!(stored, returned, "each append returned what was stored");
    let mut inputs: Vec<_> = stored.iter().map(|e| e.event.request_id.clone()).collect();
    inputs.sort();
    let mut expected: Vec<_> = events.iter().map(|e| e.request_id.clone()).collect();
    expected.sort();
    assert_eq!(inputs, expected, "every event stored once");
}

/// `list_audit` is newest first and applies each filter (actor, action, resource type and id,
/// `from` inclusive, `to` exclusive, combinations), paging by `before_seq`.
pub async fn list_audit_filters_and_pages(store: &DynStore) {
    let alice = new_user(store).await;
    let bob = new_user(store).await;
    let mut all = Vec::new();
    for i in 0..12i64 {
        let mut e = audit_event(
            if i % 2 == 0 {
                "create_experiment"
            } else {
                "login"
            },
            at(i * 60),
        );
        e.actor_user_id = match i % 3 {
            0 => Some(alice.id),
            1 => Some(bob.id),
            _ => None,
        };
        e.resource_type = if i % 4 < 2 { "experiment" } else { "user" }.into();
        e.resource_id = Some(format!("res-{}", i % 5));
        all.push(store.append_audit(&e).await.expect("append_audit"));
    }
    let newest_first = |keep: &dyn Fn(&AuditEvent) -> bool| {
        all.iter()
            .rev()
            .filter(|e| keep(e))
            .cloned()
            .collect::<Vec<_>>()
    };

    let cases: Vec<(&str, AuditQuery, Vec<AuditEvent>)> = vec![
        ("no filter", AuditQuery::default(), newest_first(&|_| true)),
        (
            "actor",
            AuditQuery {
                actor_user_id: Some(alice.id),
                ..AuditQuery::default()
            },
            newest_first(&|e| e.event.actor_user_id == Some(alice.id)),
        ),
        (
            "action",
            AuditQuery {
                action: Some("login".into()),
                ..AuditQuery::default()
            },
            newest_first(&|e| e.event.action == "login"),
        ),
        (
            "resource type",
            AuditQuery {
                resource_type: Some("user".into()),
                ..AuditQuery::default()
            },
            newest_first(&|e| e.event.resource_type == "user"),
        ),
        (
            "resource id",
            AuditQuery {
                resource_id: Some("res-2".into()),
                ..AuditQuery::default()
            },
            newest_first(&|e| e.event.resource_id.as_deref() == Some("res-2")),
        ),
        (
            "time range",
            AuditQuery {
                from: Some(at(180)),
                to: Some(at(480)),
                ..AuditQuery::default()
            },
            newest_first(&|e| e.event.created_at >= at(180) && e.event.created_at < at(480)),
        ),
        (
            "actor and action",
            AuditQuery {
                actor_user_id: Some(bob.id),
                action: Some("login".into()),
                ..AuditQuery::default()
            },
            newest_first(&|e| e.event.actor_user_id == Some(bob.id) && e.event.action == "login"),
        ),
        (
            "below a seq",
            AuditQuery {
                before_seq: Some(5),
                ..AuditQuery::default()
            },
            newest_first(&|e| e.seq < 5),
        ),
        (
            "nothing matches",
            AuditQuery {
                action: Some("delete_account".into()),
                ..AuditQuery::default()
            },
            vec![],
        ),
    ];
    assert_eq!(cases[5].2.len(), 5, "the range holds seq 4..=8");
    for (name, query, expected) in cases {
        let one_page = store.list_audit(&query).await.expect("list_audit");
        assert_eq!(one_page.items, expected, "{name}: one page");
        assert_eq!(
            one_page.next_cursor, None,
            "{name}: everything fits one page"
        );
        for size in [1, 2, 4] {
            let paged = AuditQuery {
                limit: page_size(size),
                ..query.clone()
            };
            assert_eq!(
                collect_audit_pages(store, &paged).await,
                expected,
                "{name}: pages of {size}"
            );
        }
    }
}

/// `audit_range` returns events from `from_seq`, ascending, at most `limit`.
pub async fn audit_range_ascending(store: &DynStore) {
    let mut all = Vec::new();
    for i in 0..12 {
        all.push(
            store
                .append_audit(&audit_event("login", at(i)))
                .await
                .expect("append_audit"),
        );
    }
    assert_eq!(
        store.audit_range(3, 4).await.expect("range"),
        all[2..6].to_vec()
    );
    assert_eq!(
        store.audit_range(11, 10).await.expect("tail"),
        all[10..].to_vec()
    );
    assert_eq!(store.audit_range(1, 12).await.expect("all"), all);
    assert!(
        store
            .audit_range(13, 10)
            .await
            .expect("past the end")
            .is_empty()
    );
}
