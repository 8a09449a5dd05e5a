#!/usr/bin/env bash
# Builds and runs a new crate made only from the README's "Use as a library" section: its
# `[dependencies]` block (with `../echo/` pointed at this checkout) and its Rust block as
# `src/main.rs`. Fails if either block is missing, or if the crate does not build or run.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

section="$(awk '/^## Use as a library/{on=1; next} /^## /{on=0} on' "$repo/README.md")"
deps="$(awk '/^```toml/{on=1; next} /^```/{if(on){exit}} on' <<<"$section")"
code="$(awk '/^```rust/{on=1; next} /^```/{if(on){exit}} on' <<<"$section")"
[ -n "$deps" ] || { echo "README: no [dependencies] block in 'Use as a library'" >&2; exit 1; }
[ -n "$code" ] || { echo "README: no Rust block in 'Use as a library'" >&2; exit 1; }

mkdir -p "$work/src"
{
  printf '[package]\nname = "readme-embed"\nversion = "0.0.0"\nedition = "2024"\npublish = false\n\n[workspace]\n\n'
  sed "s#\.\./echo/#$repo/#g" <<<"$deps"
} >"$work/Cargo.toml"
printf '%s\n' "$code" >"$work/src/main.rs"
cd "$work"
# The repository's lock file pins the versions CI already built; the target dir is shared.
cp "$repo/Cargo.lock" .
CARGO_TARGET_DIR="$repo/target" cargo run -q
