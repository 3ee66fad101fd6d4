#!/usr/bin/env bash
# The test command (README "Run the tests"; .ci/run runs exactly this). Installs what the tests
# need when it is missing, then checks formatting and lints and runs every test in the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

# The chaos suite (chaos-tests) cuts links between nodes with nftables rules in tables of its
# own, so it needs root and `nft`. Install it when missing and we can.
if ! command -v nft >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing nftables for the chaos tests"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nftables
  else
    echo "warning: nft is missing and this is not root: the chaos tests will fail (or set CHAOS_SKIP=1)" >&2
  fi
fi

# Formatting and lints first: they fail fast and cost little.
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

# Unit, integration and doc tests of every crate. Integration tests start real gantry processes
# and backends on 127.0.0.1 only.
cargo test --workspace --locked
