#!/usr/bin/env bash
# The test command (README "Run the tests"; .ci/run runs exactly this). Installs what the tests
# need when it is missing, then checks formatting and lints and runs every test in the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

# Formatting and lints first: they fail fast and cost little.
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

# Unit, integration and doc tests of every crate. Integration tests start real gantry processes
# and backends on 127.0.0.1 only.
cargo test --workspace --locked
