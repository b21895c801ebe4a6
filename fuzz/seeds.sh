#!/usr/bin/env bash
# Rebuilds fuzz/seeds/<target>/ from the real sample and small synthetic files
# (examples/seeds.rs). The result is committed; keep it below 1.5 MiB.
set -euo pipefail
cd "$(dirname "$0")"
cargo run --release --example seeds
