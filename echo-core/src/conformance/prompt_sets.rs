//! [`PromptSetStore`](crate::store::PromptSetStore): versions that never change, tenant
//! isolation, the phrasing limits, and no half-written version.

use super::fixtures::{assert_conflict, assert_invalid, assert_not_found, at, new_user};
use crate::model::{Label, Prompt, PromptSet, PromptSetId, PromptSetVersion};
use crate::store::{DynStore, StoreError};

/// `n` distinct phrasings, each starting with `tag`.
fn phrasings(tag: &str, n: usize) -> Vec<Prompt> {
    (0..n)
        .map(|i| Prompt::parse(format!("{tag}: which CRM would you pick, take {i}?")).unwrap())
        .collect()
}

/// Version `version` of set `id`, named `name`, with `n` phrasings, stored at `at(secs)`.
fn version(id: PromptSetId, version: u32, name: &str, n: usize, secs: i64) -> PromptSetVersion {
    PromptSetVersion {
        set_id: id,
        version,
        name: Label::parse(name).unwrap(),
        prompts: phrasings(name, n),
        created_at: at(secs),
    }
}

/// Each version reads back exactly and stays readable after later ones; the set follows its
/// newest version's number, name and time.
pub async fn prompt_set_versions_round_trip_and_stay_readable(store: &DynStore) {
    let u = new_user(store).await;
    let id = PromptSetId::new();
    let v1 = version(id, 1, "CRM for startups", 5, 0);
    store.create_prompt_set(u.id, &v1).await.unwrap();
    assert_eq!(
        store.get_prompt_set(u.id, id).await.unwrap(),
        PromptSet::first(u.id, &v1)
    );
    let v2 = version(id, 2, "CRM for small teams", 50, 10);
    store.add_prompt_set_version(u.id, &v2).await.unwrap();
    let mut v3 = version(id, 3, "CRM for small teams", 7, 20);
    // Unicode and line breaks are part of what the model sees.
    v3.prompts[0] = Prompt::parse("Quel CRM choisir ?\n\t— réponse courte 🙂").unwrap();
    store.add_prompt_set_version(u.id, &v3).await.unwrap();
    for v in [&v1, &v2, &v3] {
        assert_eq!(
            &store
                .get_prompt_set_version(u.id, id, v.version)
                .await
                .unwrap(),
            v
        );
    }
    let set = store.get_prompt_set(u.id, id).await.unwrap();
    assert_eq!(
        (
            set.latest_version,
            set.name.as_str(),
            set.created_at,
            set.updated_at
        ),
        (3, "CRM for small teams", at(0), at(20))
    );
    assert_not_found(store.get_prompt_set_version(u.id, id, 4).await, "version 4");
    assert_not_found(store.get_prompt_set_version(u.id, id, 0).await, "version 0");
}

/// A version must follow the newest one: a repeat (a concurrent edit that lost) or a gap is a
/// conflict that writes nothing; so is a duplicate set id.
pub async fn prompt_set_version_must_follow_the_latest(store: &DynStore) {
    let u = new_user(store).await;
    let id = PromptSetId::new();
    store
        .create_prompt_set(u.id, &version(id, 1, "Topic", 5, 0))
        .await
        .unwrap();
    store
        .add_prompt_set_version(u.id, &version(id, 2, "Topic two", 6, 1))
        .await
        .unwrap();
    let stale = version(id, 2, "Stale edit", 8, 2);
    assert_conflict(store.add_prompt_set_version(u.id, &stale).await, "repeat");
    assert_conflict(
        store
            .add_prompt_set_version(u.id, &version(id, 4, "Gap", 5, 3))
            .await,
        "gap",
    );
    let v2 = store.get_prompt_set_version(u.id, id, 2).await.unwrap();
    assert_eq!(v2.name.as_str(), "Topic two");
    assert_eq!(
        store.get_prompt_set(u.id, id).await.unwrap().latest_version,
        2
    );
    assert_conflict(
        store
            .create_prompt_set(u.id, &version(id, 1, "Again", 5, 4))
            .await,
        "duplicate id",
    );
    assert_not_found(
        store
            .create_prompt_set(
                crate::model::UserId::new(),
                &version(PromptSetId::new(), 1, "X", 5, 0),
            )
            .await,
        "unknown owner",
    );
}

/// Fewer than 5 or more than 50 phrasings, a repeated phrasing, or a first version other than
/// 1 is invalid, and nothing of it is stored: no set, no version, no moved `latest_version`.
pub async fn invalid_prompt_set_versions_write_nothing(store: &DynStore) {
    let u = new_user(store).await;
    let id = PromptSetId::new();
    assert_invalid(
        store
            .create_prompt_set(u.id, &version(id, 1, "Few", 4, 0))
            .await,
        "4 phrasings",
    );
    assert_invalid(
        store
            .create_prompt_set(u.id, &version(id, 1, "Many", 51, 0))
            .await,
        "51 phrasings",
    );
    assert_invalid(
        store
            .create_prompt_set(u.id, &version(id, 2, "Late", 5, 0))
            .await,
        "first version 2",
    );
    assert_not_found(store.get_prompt_set(u.id, id).await, "nothing stored");
    assert!(store.list_prompt_sets(u.id).await.unwrap().is_empty());

    store
        .create_prompt_set(u.id, &version(id, 1, "Topic", 5, 0))
        .await
        .unwrap();
    let mut repeated = version(id, 2, "Repeated", 6, 1);
    repeated.prompts[5] = repeated.prompts[0].clone();
    assert_invalid(
        store.add_prompt_set_version(u.id, &repeated).await,
        "repeated phrasing",
    );
    assert_invalid(
        store
            .add_prompt_set_version(u.id, &version(id, 2, "Few", 3, 1))
            .await,
        "3 phrasings",
    );
    let set = store.get_prompt_set(u.id, id).await.unwrap();
    assert_eq!((set.latest_version, set.name.as_str()), (1, "Topic"));
    assert_not_found(store.get_prompt_set_version(u.id, id, 2).await, "no v2");
    // The number the failed edits wanted is still free.
    store
        .add_prompt_set_version(u.id, &version(id, 2, "Fixed", 5, 2))
        .await
        .unwrap();
}

/// Another user's set is not found for every method, and lists are per owner, newest first.
pub async fn prompt_sets_are_tenant_isolated(store: &DynStore) {
    let (a, b) = (new_user(store).await, new_user(store).await);
    let first = PromptSetId::new();
    let second = PromptSetId::new();
    store
        .create_prompt_set(a.id, &version(first, 1, "Older", 5, 0))
        .await
        .unwrap();
    store
        .create_prompt_set(a.id, &version(second, 1, "Newer", 5, 5))
        .await
        .unwrap();
    let theirs = PromptSetId::new();
    store
        .create_prompt_set(b.id, &version(theirs, 1, "Theirs", 5, 9))
        .await
        .unwrap();
    let names: Vec<String> = store
        .list_prompt_sets(a.id)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name.into_inner())
        .collect();
    assert_eq!(names, ["Newer", "Older"]);
    assert_not_found(store.get_prompt_set(b.id, first).await, "get");
    assert_not_found(
        store.get_prompt_set_version(b.id, first, 1).await,
        "version",
    );
    assert_not_found(
        store
            .add_prompt_set_version(b.id, &version(first, 2, "Hijack", 5, 1))
            .await,
        "add version",
    );
    assert_not_found(store.delete_prompt_set(b.id, first).await, "delete");
    let set = store.get_prompt_set(a.id, first).await.unwrap();
    assert_eq!((set.latest_version, set.name.as_str()), (1, "Older"));
    assert_eq!(store.list_prompt_sets(b.id).await.unwrap().len(), 1);
}

/// Concurrent edits of the same version: exactly one stores version 2, the others conflict.
pub async fn concurrent_prompt_set_edits_have_one_winner(store: &DynStore) {
    let u = new_user(store).await;
    let id = PromptSetId::new();
    store
        .create_prompt_set(u.id, &version(id, 1, "Topic", 5, 0))
        .await
        .unwrap();
    let edits: Vec<PromptSetVersion> = (0..4)
        .map(|i| version(id, 2, &format!("Edit {i}"), 5 + i, 1))
        .collect();
    let results =
        futures::future::join_all(edits.iter().map(|v| store.add_prompt_set_version(u.id, v)))
            .await;
    let won: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_ok())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(won.len(), 1, "{results:?}");
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Ok(()) | Err(StoreError::Conflict { .. }))),
        "{results:?}"
    );
    let stored = store.get_prompt_set_version(u.id, id, 2).await.unwrap();
    assert_eq!(stored, edits[won[0]]);
    assert_eq!(
        store.get_prompt_set(u.id, id).await.unwrap().name,
        stored.name
    );
}

/// Deleting a set removes every version; deleting its owner removes the sets.
pub async fn delete_prompt_set_removes_versions(store: &DynStore) {
    let u = new_user(store).await;
    let (kept, gone) = (PromptSetId::new(), PromptSetId::new());
    for id in [kept, gone] {
        store
            .create_prompt_set(u.id, &version(id, 1, "Topic", 5, 0))
            .await
            .unwrap();
        store
            .add_prompt_set_version(u.id, &version(id, 2, "Topic", 6, 1))
            .await
            .unwrap();
    }
    store.delete_prompt_set(u.id, gone).await.unwrap();
    assert_not_found(store.get_prompt_set(u.id, gone).await, "deleted set");
    assert_not_found(store.get_prompt_set_version(u.id, gone, 1).await, "its v1");
    assert_not_found(store.delete_prompt_set(u.id, gone).await, "second delete");
    assert_eq!(
        store
            .get_prompt_set_version(u.id, kept, 2)
            .await
            .unwrap()
            .prompts
            .len(),
        6
    );
    store.delete_user(u.id).await.unwrap();
    let again = new_user(store).await;
    assert!(store.list_prompt_sets(again.id).await.unwrap().is_empty());
    assert_not_found(store.get_prompt_set(u.id, kept).await, "owner deleted");
    assert_not_found(
        store.get_prompt_set_version(u.id, kept, 1).await,
        "owner deleted",
    );
}
