#!/usr/bin/env bash
# Mutation testing of the code whose numbers users trust (issue #16), as recorded in
# benches/README.md ("Mutation testing").
#
# A mutant of echo-core rebuilds the whole echo-core test binary: 2–3 minutes each on the shared
# 2-vCPU machine, days for 400 mutants. So the files run in two small harness crates that
# compile them unchanged, with their own unit tests, and nothing else of echo-core:
#   1. analysis/stats.rs, auth/key.rs, auth/digest.rs (with a stand-in `model::SecretDigest`);
#   2. analysis/ and model/ whole, mutating analysis/metrics/ only (tests: analysis::metrics).
# auth/verify.rs needs the store and the cache, so it only runs in echo-core itself (about 30 s
# per mutant once the scratch copy starts from the built target/):
#   cargo mutants -p echo-core --all-features -j 1 --timeout 180 --copy-target=true \
#     --file echo-core/src/auth/verify.rs -- --lib -- auth::
#
# Usage: benches/mutants/run.sh [OUT_DIR]   (default /tmp/echo-mutants; needs cargo-mutants)
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-/tmp/echo-mutants}
mkdir -p "$out"

harness() { # name, extra dependency lines, lib.rs body
  local dir="$out/$1"
  mkdir -p "$dir/src"
  cp "$repo/Cargo.lock" "$dir/"
  cat >"$dir/Cargo.toml" <<TOML
[package]
name = "echo-mutants-$1"
version = "0.1.0"
edition = "2024"
publish = false

[dependencies]
serde = { version = "1.0.229", features = ["derive"] }
serde_json = "1.0.154"
thiserror = "2.0"
sha2 = "0.11"
$2

[dev-dependencies]
proptest = "1.12"

[workspace]
TOML
  printf '%s\n' "#![allow(dead_code, unused_imports, rustdoc::broken_intra_doc_links)]" "$3" \
    >"$dir/src/lib.rs"
}

harness format 'hmac = "0.13"
subtle = "2.6"
crc32fast = "1.5"
getrandom = "0.4"' '
pub mod analysis {
    pub mod stats;
    #[cfg(test)]
    pub(crate) fn assert_json_round_trip<T>(value: &T)
    where
        T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let json = serde_json::to_value(value).expect("serializes");
        let back: T = serde_json::from_value(json).expect("reads back");
        assert_eq!(&back, value);
    }
}
pub mod model {
    #[derive(Clone, PartialEq, Eq)]
    pub struct SecretDigest(pub [u8; 32]);
}
pub mod auth {
    pub mod digest;
    pub mod key;
}'
mkdir -p "$out/format/src/analysis" "$out/format/src/auth"
cp "$repo/echo-core/src/analysis/stats.rs" "$out/format/src/analysis/"
cp "$repo/echo-core/src/auth/key.rs" "$repo/echo-core/src/auth/digest.rs" "$out/format/src/auth/"

harness metrics 'uuid = { version = "1.29", features = ["v7", "serde"] }
time = { version = "0.3.55", features = ["serde", "formatting", "parsing", "macros"] }
tracing = "0.1.44"
aho-corasick = "1.1"
unicode-normalization = "0.1.26"
hex = { version = "0.4.3", features = ["serde"] }' '
pub mod analysis;
pub mod model;'
rm -rf "$out/metrics/src/analysis" "$out/metrics/src/model"
cp -r "$repo/echo-core/src/analysis" "$repo/echo-core/src/model" "$out/metrics/src/"

cd "$out/format"
time nice -n 10 cargo mutants --in-place --timeout 60 -o "$out/format" -- --lib || true
cd "$out/metrics"
time nice -n 10 cargo mutants --in-place --timeout 90 \
  -f src/analysis/metrics/pawc.rs -f src/analysis/metrics/run.rs \
  -f src/analysis/metrics/mod.rs -f src/analysis/metrics/experiment.rs \
  -o "$out/metrics" -- --lib -- analysis::metrics || true
