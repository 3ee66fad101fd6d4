#!/usr/bin/env bash
# Entrypoint of the gantry container image: decides between "restart", "bootstrap" and "join"
# before it execs `gantry`, so that gantry is the container's main process and gets SIGTERM
# (and drains) directly.
#
# With no GANTRY_* variables it behaves exactly like `gantry run`. What it adds:
#
#   - a node whose data dir already holds an identity (node.json) restarts on it and never looks
#     at join settings: a restarted member needs no token, and an expired one must not stop it;
#   - GANTRY_JOIN set without a token WAITS for one instead of starting a new cluster: the token
#     can arrive later in GANTRY_JOIN_TOKEN_FILE (a shared volume in compose, a Secret mounted as
#     a volume in Kubernetes);
#   - GANTRY_BOOTSTRAP_OUTPUT=FILE: when this node bootstraps, what it prints on stdout (the
#     "join other nodes with: ... --token gtj1...." line) is appended to FILE as well as shown
#     in the container log, so that other containers can read the token from a shared volume;
#   - GANTRY_BOOTSTRAP_IF_NO_TOKEN=1: with GANTRY_JOIN set, bootstrap when no token is available
#     yet instead of waiting (Kubernetes pod 0: it bootstraps the first time; after an operator
#     has put a token in the Secret, a pod 0 that lost its volume joins instead of starting a
#     second cluster).
#
# Variables (all optional):
#   GANTRY_DATA_DIR               data dir (default /var/lib/gantry, set in the image)
#   GANTRY_JOIN                   fabric address (HOST:7000) of a member to join
#   GANTRY_JOIN_TOKEN             join token; wins over GANTRY_JOIN_TOKEN_FILE
#   GANTRY_JOIN_TOKEN_FILE        file to read (and wait for) the join token from; the last
#                                 complete gtj1.… token in it is used
#   GANTRY_BOOTSTRAP_OUTPUT       see above
#   GANTRY_BOOTSTRAP_IF_NO_TOKEN  see above
#
# Any other arguments are passed to gantry: `docker run IMAGE ctl members` runs `gantry ctl
# members`; only `run` gets the logic above.
set -euo pipefail

if [[ "${1:-}" != run ]]; then
    exec gantry "$@"
fi

data_dir=${GANTRY_DATA_DIR:-/var/lib/gantry}
join=${GANTRY_JOIN:-}
token_env=${GANTRY_JOIN_TOKEN:-}
# gantry reads GANTRY_JOIN and GANTRY_JOIN_TOKEN itself, and a GANTRY_JOIN without a token makes
# it bootstrap a new cluster; this script passes --join/--token explicitly or not at all.
unset GANTRY_JOIN GANTRY_JOIN_TOKEN

log() { echo "gantry-entrypoint: $*" >&2; }

# A complete token is gtj1.<hex id>.<hex secret>.<64 hex CA pin>; matching the whole shape
# means a line still being written is never taken for a token.
find_token() {
    if [[ -n "$token_env" ]]; then
        printf '%s\n' "$token_env"
        return
    fi
    local file=${GANTRY_JOIN_TOKEN_FILE:-}
    if [[ -n "$file" && -r "$file" ]]; then
        grep -oE 'gtj1\.[0-9a-f]+\.[0-9a-f]+\.[0-9a-f]{64}' "$file" | tail -n 1 || true
    fi
}

if [[ -f "$data_dir/node.json" ]]; then
    log "restarting on the member identity in $data_dir (join settings are not needed)"
    exec gantry "$@"
fi

# bootstrap REASON ARGS...: start a new cluster on the empty data dir.
bootstrap() {
    log "empty data dir $data_dir and $1: bootstrapping a new cluster"
    shift
    if [[ -n "${GANTRY_BOOTSTRAP_OUTPUT:-}" ]]; then
        # tee keeps the lines in the container log too; gantry stays the main process (exec).
        exec > >(tee -a "$GANTRY_BOOTSTRAP_OUTPUT")
    fi
    exec gantry "$@"
}

if [[ -z "$join" ]]; then
    bootstrap "no GANTRY_JOIN" "$@"
fi

token=$(find_token)
if [[ -z "$token" && "${GANTRY_BOOTSTRAP_IF_NO_TOKEN:-}" == 1 ]]; then
    bootstrap "no join token yet (GANTRY_BOOTSTRAP_IF_NO_TOKEN=1)" "$@"
fi

waited=0
while [[ -z "$token" ]]; do
    if ((waited % 30 == 0)); then
        log "waiting for a join token (GANTRY_JOIN_TOKEN, or a gtj1.… token in ${GANTRY_JOIN_TOKEN_FILE:-<GANTRY_JOIN_TOKEN_FILE unset>}) to join $join"
    fi
    sleep 2
    waited=$((waited + 2))
    token=$(find_token)
done

log "joining the cluster through $join"
exec gantry "$@" --join "$join" --token "$token"
