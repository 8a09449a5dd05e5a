//! Integration tests: the `echoai` commands, and the HTTP server through its real router, a
//! real listener on port 0 and a real SQLite store.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod alerts;
mod cli;
mod contract;
mod deploy;
mod discover;
mod export;
mod hardening;
mod harness;
mod privacy;
mod prompt_sets;
mod runs;
mod server;
mod sources;
mod verification;
mod web;
mod webhooks;
