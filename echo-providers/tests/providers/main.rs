//! Provider clients against a local mock server replaying each provider's documented wire
//! format (fixtures in `tests/fixtures/<provider>/`). Nothing here touches the network except
//! the `#[ignore]`d tests in `live`.

// Test helpers outside `#[test]` fns may fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod common;

#[cfg(feature = "anthropic")]
mod anthropic;
#[cfg(feature = "openai-compatible")]
mod compatible;
#[cfg(all(
    feature = "openai",
    feature = "anthropic",
    feature = "gemini",
    feature = "perplexity",
    feature = "openai-compatible"
))]
mod factory;
#[cfg(feature = "gemini")]
mod gemini;
mod live;
#[cfg(feature = "openai")]
mod openai;
#[cfg(feature = "perplexity")]
mod perplexity;
#[cfg(feature = "openai")]
mod retry;
#[cfg(feature = "openai")]
mod transport;
