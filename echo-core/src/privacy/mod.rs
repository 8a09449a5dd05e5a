//! Personal data: its redaction in stored answers, and a user's export of theirs.
//!
//! Assistants' answers sometimes quote personal data (a support address, a phone number, an
//! account number). [`Redactor`] replaces it with typed placeholders before an answer is stored,
//! when [`RedactionMode::Redact`] is configured. Brand extraction runs on the original text; the
//! redactor sits at the storage boundary.
//!
//! [`export::export_user`] writes everything Echo holds about one user (GDPR Art. 15 and 20)
//! as one JSON document, streamed to any [`std::io::Write`] or async writer.

pub mod export;
mod redact;

pub use redact::{RedactionMode, RedactionReport, Redactor, RedactorError};
