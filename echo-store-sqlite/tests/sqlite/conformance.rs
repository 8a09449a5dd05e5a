//! The shared storage conformance suite, each scenario on a fresh temporary database file.

use std::sync::Arc;

use echo_core::store::DynStore;

async fn fresh_store() -> Arc<DynStore> {
    Arc::new(crate::temp_store().await)
}

echo_core::store_conformance_tests!(fresh_store);
