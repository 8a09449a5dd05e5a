//! Typed identifiers.
//!
//! Every id is a UUID v7: time-ordered, so B-tree indexes stay append-mostly and ids sort roughly
//! by creation time. A distinct type per entity stops a `UserId` from being passed where an
//! `ExperimentId` is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! define_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new, time-ordered (UUID v7) id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Wraps an existing UUID (e.g. one read back from storage).
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The underlying UUID.
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = $crate::model::ValidationError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self).map_err(|_| {
                    $crate::model::ValidationError::new(stringify!($name), "is not a valid UUID")
                })
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }
    };
}

define_id!(
    /// Identifies a [`User`](crate::model::User).
    UserId
);
define_id!(
    /// Identifies an [`ApiKeyRecord`](crate::model::ApiKeyRecord).
    ApiKeyId
);
define_id!(
    /// Identifies a [`SessionRecord`](crate::model::SessionRecord): the lookup handle embedded in
    /// a session token, safe to log.
    SessionId
);
define_id!(
    /// Identifies an [`Experiment`](crate::model::Experiment).
    ExperimentId
);
define_id!(
    /// Identifies a [`BatchRun`](crate::model::BatchRun).
    BatchRunId
);
define_id!(
    /// Identifies an [`Iteration`](crate::model::Iteration).
    IterationId
);
define_id!(
    /// Identifies a [`Job`](crate::model::Job) in the queue.
    JobId
);
define_id!(
    /// Identifies a [`PromptSet`](crate::model::PromptSet).
    PromptSetId
);
define_id!(
    /// Identifies an [`Alert`](crate::model::Alert).
    AlertId
);
define_id!(
    /// Identifies a [`WebhookEndpoint`](crate::model::WebhookEndpoint).
    WebhookId
);
define_id!(
    /// Identifies a [`WebhookDelivery`](crate::model::WebhookDelivery).
    WebhookDeliveryId
);
