#!/usr/bin/env bash
# Short smoke of every fuzz target (issue #16): each target for FUZZ_SECONDS (default 25) from
# its committed corpus, one worker. libFuzzer needs nightly features; on stable they are unlocked
# with RUSTC_BOOTSTRAP=1 for this build only. Where cargo-fuzz or the libFuzzer build is not
# available, the same properties run as property tests (100,000 cases per target).
#
#   .ci/fuzz-smoke.sh            # fuzz if possible, else property tests
#   .ci/fuzz-smoke.sh --props    # property tests only
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${FUZZ_SECONDS:-25}"
targets=(api_key brand_spec cron extract redact config_toml provider_response)

props() {
    echo "fuzz-smoke: property tests, ${FUZZ_PROP_CASES:-100000} cases per target"
    # The workspace's target directory, so dependencies at the same versions are built once.
    CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-../target}" cargo test --release --locked --test props
}

if [[ "${1:-}" != "--props" ]] && ! command -v cargo-fuzz >/dev/null; then
    cargo install cargo-fuzz --locked --version 0.13.2 ||
        echo "fuzz-smoke: cargo-fuzz could not be installed; falling back" >&2
fi
if [[ "${1:-}" == "--props" ]] || ! command -v cargo-fuzz >/dev/null; then
    props
    exit
fi
if ! RUSTC_BOOTSTRAP=1 cargo fuzz build -s none --features fuzzing; then
    echo "fuzz-smoke: libFuzzer build failed on this toolchain; falling back" >&2
    props
    exit
fi
for t in "${targets[@]}"; do
    echo "fuzz-smoke: $t for ${seconds}s"
    # The corpus is read-only here: new inputs go to a scratch directory, not into the repo.
    scratch="$(mktemp -d)"
    RUSTC_BOOTSTRAP=1 cargo fuzz run -s none --features fuzzing "$t" "$scratch" "corpus/$t" -- \
        -max_total_time="$seconds" -max_len=4096 -print_final_stats=1
    rm -rf "$scratch"
done
