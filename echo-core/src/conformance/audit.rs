//! [`AuditStore`](crate::store::AuditStore): the hash-chained, append-only audit log, the
//! erasure of an actor, checkpoints, and the deletion of archived events.
//!
//! These scenarios assume a fresh store: the first appended event has `seq` 1.

use futures::future::join_all;
use serde_json::json;

use super::fixtures::{
    assert_conflict, at, at_micros, audit_event, new_user, page_size, yield_now,
};
use crate::audit::{GENESIS_HASH, chain_hash};
use crate::model::{AuditCheckpoint, AuditErasure, AuditEvent, AuditLink, NewAuditEvent, UserId};
use crate::store::{AuditQuery, DynStore};

/// Checks that `events` (ascending) form the chain from seq 1: no gap, each linked to its
/// predecessor, each hash recomputable from the stored fields.
#[track_caller]
fn assert_valid_chain(events: &[AuditEvent]) {
    assert_chain_from(events, 1, GENESIS_HASH);
}

/// Checks that `events` (ascending) continue a chain whose next event is `first_seq` and whose
/// head hash is `prev`: no gap, each linked to its predecessor, each hash recomputable.
#[track_caller]
fn assert_chain_from(events: &[AuditEvent], first_seq: u64, mut prev: [u8; 32]) {
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.seq, first_seq + i as u64, "seq without gaps");
        assert_eq!(e.prev_hash, prev, "prev_hash of seq {}", e.seq);
        assert_eq!(
            e.hash,
            chain_hash(&prev, e.seq, &e.event),
            "hash of seq {}",
            e.seq
        );
        assert_eq!(e.actor_pseudonym, None, "seq {} is not erased", e.seq);
        prev = e.hash;
    }
}

/// Appends `n` events created at `at(0)`, `at(1)`… and returns them as stored.
async fn append_n(store: &DynStore, n: i64) -> Vec<AuditEvent> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(
            store
                .append_audit(&audit_event("login", at(i)))
                .await
                .expect("append_audit"),
        );
    }
    out
}

/// An event by `actor`.
fn by(actor: UserId, action: &str, secs: i64) -> NewAuditEvent {
    let mut e = audit_event(action, at(secs));
    e.actor_user_id = Some(actor);
    e
}

/// A checkpoint of `seq` with a signature of `len` distinct bytes.
fn checkpoint(seq: u64, head_hash: [u8; 32], len: u8) -> AuditCheckpoint {
    AuditCheckpoint {
        seq,
        head_hash,
        created_at: at_micros(1_000_003 + i64::from(len)),
        signature: (0..len).map(|b| b.wrapping_mul(37)).collect(),
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

/// `audit_links` returns, for any range, exactly the links of the events `audit_range`
/// returns ([`AuditLink::of`]), whatever the fields hold (empty and absent values, unicode,
/// nested and numeric details, a negative zero) and after an erasure: a backend that hashes
/// its rows in place must hash the same bytes as `chain_hash`, and every event read back
/// recomputes to its hash until it is erased.
pub async fn audit_links_match_the_events(store: &DynStore) {
    let alice = new_user(store).await;
    let details = [
        json!({}),
        json!({ "b": [1, 2.5, -7, 1e300, 0.1, -0.0], "a": { "z": null, "y": true } }),
        json!({ "name": "Zoë \u{1F600} \"quoted\" \\ back", "tab": "a\tb" }),
        json!([1, "two", { "three": 3 }]),
        json!("just a string"),
        json!(12345678901234i64),
    ];
    for (i, d) in details.iter().enumerate() {
        let mut e = by(alice.id, &format!("action_{i}"), i as i64);
        e.details = d.clone();
        if i % 2 == 1 {
            e.resource_id = None;
            e.ip = None;
            e.request_id = None;
        }
        if i == 2 {
            e.action = "ünïcode_äction".into();
            e.resource_type = String::new();
            e.user_agent = Some(String::new());
        }
        store.append_audit(&e).await.expect("append_audit");
    }
    let mut system = audit_event("quota_reset", at(50));
    system.actor_user_id = None;
    store.append_audit(&system).await.expect("append_audit");
    let check = |stage: &'static str| async move {
        for (from, limit) in [(1, 100), (0, 3), (3, 2), (7, 10), (8, 10), (2, 1)] {
            let expected: Vec<AuditLink> = store
                .audit_range(from, limit)
                .await
                .expect("audit_range")
                .iter()
                .map(AuditLink::of)
                .collect();
            let links = store.audit_links(from, limit).await.expect("audit_links");
            assert_eq!(links, expected, "{stage}: audit_links({from}, {limit})");
        }
    };
    check("as appended").await;
    for link in store.audit_links(1, 100).await.expect("audit_links") {
        assert_eq!(link.recomputed, link.hash, "seq {} recomputes", link.seq);
        assert!(!link.erased_shape);
    }
    store
        .pseudonymize_actor(alice.id, "hmac:alice", at(60))
        .await
        .expect("pseudonymize_actor");
    check("after an erasure").await;
    let links = store.audit_links(1, 100).await.expect("audit_links");
    let erased: Vec<u64> = links
        .iter()
        .filter(|l| l.erased_shape && l.recomputed != l.hash)
        .map(|l| l.seq)
        .collect();
    assert_eq!(
        erased,
        vec![1, 2, 3, 4, 5, 6],
        "alice's events, not the system's"
    );
}

/// `pseudonymize_actor` clears the actor, IP and user agent of exactly the user's events, sets
/// the pseudonym, keeps every other field (hashes included), records one erasure per event,
/// and changes nothing on a second call; the links between events still verify and only the
/// erased events' own hashes no longer recompute.
pub async fn pseudonymize_actor_erases_and_records(store: &DynStore) {
    let alice = new_user(store).await;
    let bob = new_user(store).await;
    let mut system = audit_event("quota_reset", at(2));
    system.actor_user_id = None;
    let inputs = [
        by(alice.id, "login", 0),
        by(bob.id, "login", 1),
        system,
        by(alice.id, "create_experiment", 3),
        by(alice.id, "logout", 4),
    ];
    let mut before = Vec::new();
    for e in &inputs {
        before.push(store.append_audit(e).await.expect("append_audit"));
    }
    let now = at_micros(9_000_001);

    assert_eq!(
        store
            .pseudonymize_actor(UserId::new(), "nobody", now)
            .await
            .expect("unknown user"),
        0
    );
    assert_eq!(
        store
            .pseudonymize_actor(alice.id, "hmac:alice", now)
            .await
            .expect("pseudonymize_actor"),
        3
    );
    let after = store.audit_range(1, 100).await.expect("audit_range");
    let erased_seqs = [1u64, 4, 5];
    let expected: Vec<AuditEvent> = before
        .iter()
        .map(|e| {
            if !erased_seqs.contains(&e.seq) {
                return e.clone();
            }
            let mut x = e.clone();
            x.event.actor_user_id = None;
            x.event.ip = None;
            x.event.user_agent = None;
            x.actor_pseudonym = Some("hmac:alice".into());
            x
        })
        .collect();
    assert_eq!(after, expected);
    let mut prev = GENESIS_HASH;
    for e in &after {
        assert_eq!(e.prev_hash, prev, "links still hold at seq {}", e.seq);
        let recomputes = e.hash == chain_hash(&prev, e.seq, &e.event);
        assert_eq!(
            recomputes,
            !erased_seqs.contains(&e.seq),
            "only erased events fail to recompute (seq {})",
            e.seq
        );
        prev = e.hash;
    }
    let records: Vec<AuditErasure> = erased_seqs
        .iter()
        .map(|seq| AuditErasure {
            seq: *seq,
            erased_at: now,
            pseudonym: "hmac:alice".into(),
        })
        .collect();
    assert_eq!(
        store.audit_erasures(0, 100).await.expect("audit_erasures"),
        records
    );
    assert_eq!(
        store.audit_erasures(2, 1).await.expect("from 2, one"),
        records[1..2].to_vec()
    );
    assert!(
        store
            .audit_erasures(6, 100)
            .await
            .expect("past the end")
            .is_empty()
    );

    assert_eq!(
        store
            .pseudonymize_actor(alice.id, "hmac:alice", at(99))
            .await
            .expect("again"),
        0
    );
    assert_eq!(
        store.audit_erasures(0, 100).await.expect("unchanged"),
        records
    );
    let by_alice = AuditQuery {
        actor_user_id: Some(alice.id),
        ..AuditQuery::default()
    };
    assert!(
        store
            .list_audit(&by_alice)
            .await
            .expect("list_audit")
            .items
            .is_empty(),
        "the actor filter no longer finds the erased events"
    );
    let later = store
        .append_audit(&by(alice.id, "login", 10))
        .await
        .expect("append after erasure");
    assert_eq!(later.event.actor_user_id, Some(alice.id));
    assert_eq!(later.prev_hash, after[4].hash, "the chain continues");
    assert_eq!(
        store.list_audit(&by_alice).await.expect("list_audit").items,
        vec![later],
        "later events keep their actor"
    );
}

/// Checkpoints round-trip exactly (any signature bytes, none included), list ascending from a
/// `seq` with a limit, `latest` is the highest `seq`, and a second checkpoint of a `seq` is a
/// Conflict that keeps the first.
pub async fn audit_checkpoints_round_trip_and_conflict(store: &DynStore) {
    assert_eq!(
        store
            .latest_audit_checkpoint()
            .await
            .expect("latest of none"),
        None
    );
    assert!(
        store
            .audit_checkpoints(0, 10)
            .await
            .expect("none")
            .is_empty()
    );
    let events = append_n(store, 3).await;
    let c10 = checkpoint(10, [0xab; 32], 64);
    let c5 = checkpoint(5, [0; 32], 0);
    let c20 = checkpoint(20, events[2].hash, 255);
    for c in [&c10, &c5, &c20] {
        store.put_audit_checkpoint(c).await.expect("put");
    }
    assert_eq!(
        store.latest_audit_checkpoint().await.expect("latest"),
        Some(c20.clone())
    );
    assert_eq!(
        store.audit_checkpoints(0, 10).await.expect("all"),
        vec![c5.clone(), c10.clone(), c20.clone()]
    );
    assert_eq!(
        store.audit_checkpoints(6, 1).await.expect("from 6, one"),
        vec![c10.clone()]
    );
    assert_eq!(
        store.audit_checkpoints(20, 10).await.expect("from 20"),
        vec![c20.clone()]
    );

    let mut clash = checkpoint(10, [0xcd; 32], 3);
    clash.created_at = at(500);
    assert_conflict(store.put_audit_checkpoint(&clash).await, "same seq");
    assert_eq!(
        store.audit_checkpoints(10, 1).await.expect("first kept"),
        vec![c10]
    );
}

/// `delete_audit_through` deletes exactly the events up to a `seq` (0 when there are none),
/// `audit_bounds` follows; after deleting every event, the head included, the next append
/// continues the chain from the deleted head. Erasure records and checkpoints are kept.
pub async fn delete_audit_through_keeps_the_chain(store: &DynStore) {
    assert_eq!(store.audit_bounds().await.expect("bounds of none"), None);
    assert_eq!(
        store.delete_audit_through(5).await.expect("delete of none"),
        0
    );
    let actor = new_user(store).await;
    let mut events = append_n(store, 9).await;
    events.push(
        store
            .append_audit(&by(actor.id, "login", 9))
            .await
            .expect("append"),
    );
    assert_eq!(
        store
            .pseudonymize_actor(actor.id, "p", at(20))
            .await
            .expect("erase"),
        1
    );
    let head = checkpoint(10, events[9].hash, 64);
    store.put_audit_checkpoint(&head).await.expect("checkpoint");
    assert_eq!(store.audit_bounds().await.expect("bounds"), Some((1, 10)));

    assert_eq!(store.delete_audit_through(0).await.expect("through 0"), 0);
    assert_eq!(store.delete_audit_through(4).await.expect("through 4"), 4);
    assert_eq!(store.audit_bounds().await.expect("bounds"), Some((5, 10)));
    let rest = store.audit_range(1, 100).await.expect("audit_range");
    assert_eq!(rest.first().map(|e| e.seq), Some(5));
    assert_eq!(rest.len(), 6);
    assert_eq!(
        rest[..5],
        events[4..9],
        "the remaining events are untouched"
    );
    assert_eq!(store.delete_audit_through(4).await.expect("again"), 0);
    let page = store
        .list_audit(&AuditQuery {
            limit: page_size(4),
            ..AuditQuery::default()
        })
        .await
        .expect("list_audit");
    assert_eq!(
        page.items.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![10, 9, 8, 7]
    );

    assert_eq!(store.delete_audit_through(10).await.expect("everything"), 6);
    assert_eq!(store.audit_bounds().await.expect("bounds"), None);
    assert!(store.audit_range(0, 100).await.expect("empty").is_empty());
    let next = store
        .append_audit(&audit_event("login", at(30)))
        .await
        .expect("append after deleting everything");
    assert_eq!(next.seq, 11, "seq continues");
    assert_eq!(next.prev_hash, events[9].hash, "linked to the deleted head");
    assert_chain_from(std::slice::from_ref(&next), 11, events[9].hash);
    assert_eq!(store.audit_bounds().await.expect("bounds"), Some((11, 11)));

    assert_eq!(
        store.audit_erasures(0, 10).await.expect("erasures kept"),
        vec![AuditErasure {
            seq: 10,
            erased_at: at(20),
            pseudonym: "p".into()
        }]
    );
    assert_eq!(
        store
            .latest_audit_checkpoint()
            .await
            .expect("checkpoint kept"),
        Some(head)
    );
}

/// Appends racing a `delete_audit_through` of the archived prefix, and after it, still form
/// one chain: no fork, no gap, linked to the last event before the deletion.
pub async fn concurrent_appends_after_delete_keep_one_chain(store: &DynStore) {
    let archived = append_n(store, 10).await;
    let head = archived[9].hash;
    let events: Vec<NewAuditEvent> = (0..30).map(|i| audit_event("login", at(100 + i))).collect();
    let delete = async {
        yield_now().await;
        store.delete_audit_through(10).await
    };
    let appends = join_all(events.iter().map(|e| async move {
        yield_now().await;
        store.append_audit(e).await
    }));
    let (deleted, appended) = futures::future::join(delete, appends).await;
    assert_eq!(deleted.expect("delete_audit_through"), 10);
    for r in appended {
        r.expect("append_audit");
    }
    let more = join_all(events.iter().take(10).map(|e| async move {
        yield_now().await;
        store.append_audit(e).await
    }))
    .await;
    for r in more {
        r.expect("append_audit after the delete");
    }
    let stored = store.audit_range(0, 1_000).await.expect("audit_range");
    assert_eq!(stored.len(), 40);
    assert_chain_from(&stored, 11, head);
    assert_eq!(store.audit_bounds().await.expect("bounds"), Some((11, 50)));
}
