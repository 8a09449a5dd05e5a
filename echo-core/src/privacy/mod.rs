//! Personal data in stored answers.
//!
//! Assistants' answers sometimes quote personal data (a support address, a phone number, an
//! account number). [`Redactor`] replaces it with typed placeholders before an answer is stored,
//! when [`RedactionMode::Redact`] is configured. Brand extraction runs on the original text; the
//! redactor sits at the storage boundary.

mod redact;

pub use redact::{RedactionMode, RedactionReport, Redactor, RedactorError};
