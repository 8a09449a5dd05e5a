//! The shared storage conformance suite, each scenario in a fresh, migrated database.

use std::sync::Arc;

use echo_core::store::DynStore;
use echo_core::store::memory::MemoryStore;

async fn fresh_store() -> Arc<DynStore> {
    match crate::fresh_store().await {
        Some(store) => Arc::new(store),
        // Skipped (see main.rs): the scenario still runs, against the in-memory store.
        None => Arc::new(MemoryStore::new()),
    }
}

echo_core::store_conformance_tests!(fresh_store);
