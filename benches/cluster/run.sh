#!/usr/bin/env bash
# Cluster benchmark: a local three-node gantry cluster against a three-member etcd 3.4 cluster,
# side by side in one run, on 127.0.0.1, driven by the same Rust client (cluster-bench).
#
#   bash benches/cluster/run.sh
#
# What it does:
#   1. installs etcd (Debian's etcd-server and etcd-client) with apt-get when missing (needs
#      root; one `apt-get update` first);
#   2. builds gantry and cluster-bench with the `bench` profile (thin LTO), or takes
#      GANTRY_BIN and BENCH_BIN (both) as they are;
#   3. runs cluster-bench in a private temp dir, on copies of the binaries. It starts both
#      clusters on free loopback ports (their own data dirs, fsync on), then measures
#        - commit latency, one writer and WRITERS concurrent writers, ROUNDS rounds alternating
#          which cluster goes first;
#        - commit-to-applied: acknowledged write → every member serves it (polled every POLL_MS);
#        - leader failover: kill -9 the leader, time until a survivor acknowledges a write,
#          restart the killed member on its data dir; FAILOVER_TRIALS trials per cluster,
#          alternating;
#   4. prints a markdown table and writes it to target/bench-cluster/results.md; the members'
#      logs of the run are copied to target/bench-cluster/logs/.
#
# Every process is killed by pid on exit (cluster-bench kills its members; this script then
# kills, by pid, any recorded member that is still alive, e.g. after a SIGKILL of the bench),
# and the temp dir is removed. About two minutes of measuring after the build.
#
# Tunables (environment): SIZE=1536 ROUNDS=10 WRITES=200 WRITERS=16 WRITES_EACH=30
# APPLIED_COMMITS=100 POLL_MS=1 FAILOVER_TRIALS=50 ETCD_FAILOVER_TRIALS=20 (0 skips etcd's)
# GANTRY_LOG=info (gantry's RUST_LOG); GANTRY_BIN=… BENCH_BIN=… skip the build (GANTRY_DESC=…
# then says in the report which source the gantry binary was built from; default: git HEAD).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT_DIR="$ROOT/target/bench-cluster"

# shellcheck source=../lib.sh
. "$ROOT/benches/lib.sh"

# ---------------------------------------------------------------------------------------------
# 1. Tools
# ---------------------------------------------------------------------------------------------
etcd_bin() { command -v etcd 2>/dev/null || { [ -x /usr/bin/etcd ] && echo /usr/bin/etcd; } || true; }
if [ -z "$(etcd_bin)" ] || ! command -v etcdctl >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] || die "etcd is missing; run as root or install etcd-server and etcd-client"
    log "installing etcd-server and etcd-client (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server etcd-client >/dev/null
fi
ETCD=$(etcd_bin)
[ -n "$ETCD" ] || die "etcd not found after install"

# ---------------------------------------------------------------------------------------------
# 2. Build
# ---------------------------------------------------------------------------------------------
cd "$ROOT"
build_bench_binaries cluster-bench BENCH_BIN

# ---------------------------------------------------------------------------------------------
# 3. Run (every process ours, killed by pid on exit)
# ---------------------------------------------------------------------------------------------
WORK=$(mktemp -d /tmp/gantry-bench-cluster.XXXXXX)
BENCH_PID=""
cleanup() {
    local pid
    if [ -n "$BENCH_PID" ] && kill -0 "$BENCH_PID" 2>/dev/null; then
        kill -TERM "$BENCH_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$BENCH_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$BENCH_PID" 2>/dev/null || true
    fi
    wait 2>/dev/null || true
    # Members the bench could not kill itself. A pid is only killed while its command line
    # still names this run's temp dir, so a recycled pid of someone else's process is safe.
    if [ -f "$WORK/run/pids" ]; then
        while read -r pid; do
            [ -n "$pid" ] || continue
            if { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -qF "$WORK/"; then
                kill -KILL "$pid" 2>/dev/null || true
            fi
        done <"$WORK/run/pids"
    fi
    if [ -d "$WORK/run" ]; then
        rm -rf "$OUT_DIR/logs"
        mkdir -p "$OUT_DIR/logs"
        find "$WORK/run" -name '*.stderr' -o -name '*.stdout' | while read -r file; do
            cp "$file" "$OUT_DIR/logs/" 2>/dev/null || true
        done
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Copies: `cargo build --release` shares target/release with the bench profile, so a build
# started elsewhere during the run must not swap the binaries under us.
mkdir "$WORK/bin"
cp "$GANTRY_BIN" "$WORK/bin/gantry"
cp "$BENCH_BIN" "$WORK/bin/cluster-bench"
GANTRY_BUILT=$(stat -c %y "$GANTRY_BIN" | cut -d. -f1)
if [ -n "${GANTRY_DESC:-}" ]; then
    REVISION=$GANTRY_DESC
else
    REVISION=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
    if ! git -C "$ROOT" diff --quiet HEAD 2>/dev/null; then REVISION+="+dirty"; fi
fi
log "gantry: $GANTRY_BIN (built $GANTRY_BUILT), etcd: $ETCD"

# The command line as run, with the tunables that were set.
COMMAND="bash benches/cluster/run.sh"
TUNABLES=()
for var in SIZE ROUNDS WRITES WRITERS WRITES_EACH APPLIED_COMMITS POLL_MS FAILOVER_TRIALS ETCD_FAILOVER_TRIALS GANTRY_LOG; do
    if [ -n "${!var:-}" ]; then TUNABLES+=("$var=${!var}"); fi
done
if ((${#TUNABLES[@]})); then COMMAND="${TUNABLES[*]} $COMMAND"; fi

mkdir -p "$OUT_DIR"
"$WORK/bin/cluster-bench" \
    --gantry "$WORK/bin/gantry" --etcd "$ETCD" --work-dir "$WORK/run" --out "$OUT_DIR/results.md" \
    --size "${SIZE:-1536}" --rounds "${ROUNDS:-10}" --writes "${WRITES:-200}" --writers "${WRITERS:-16}" \
    --writes-each "${WRITES_EACH:-30}" --applied-commits "${APPLIED_COMMITS:-100}" --poll-ms "${POLL_MS:-1}" \
    --failover-trials "${FAILOVER_TRIALS:-50}" --etcd-failover-trials "${ETCD_FAILOVER_TRIALS:-20}" \
    --gantry-log "${GANTRY_LOG:-info}" \
    --gantry-desc "$REVISION (binary built $GANTRY_BUILT)" --command "$COMMAND" &
BENCH_PID=$!
status=0
wait "$BENCH_PID" || status=$?
BENCH_PID=""
if ((status != 0)); then
    log "cluster-bench failed (exit $status); members' logs in ${OUT_DIR#"$ROOT"/}/logs/"
    exit "$status"
fi
log "written to ${OUT_DIR#"$ROOT"/}/results.md (members' logs in ${OUT_DIR#"$ROOT"/}/logs/)"
