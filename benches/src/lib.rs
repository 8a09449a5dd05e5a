//! Shared fixtures for Echo benchmarks.
