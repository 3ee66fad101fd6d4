#!/usr/bin/env bash
# A three-zone gantry cluster on this machine, one node per zone, each on its own loopback
# address (Linux routes all of 127.0.0.0/8 to lo; on macOS add the aliases first with
# `sudo ifconfig lo0 alias 127.0.1.1 up`, and the same for 127.0.2.1 and 127.0.3.1):
#
#   node1  zone a  127.0.1.1   bootstraps the cluster and prints a join token
#   node2  zone b  127.0.2.1   joins 127.0.1.1:7000 with that token
#   node3  zone c  127.0.3.1   joins 127.0.1.1:7000 with that token
#
# Usage: cluster.sh up | down | status | apply [FILE] | clean
#
#   up      start the three nodes. On a fresh run dir node1 bootstraps and the others join;
#           after `down`, `up` restarts all three on their data dirs (no token needed then).
#   down    stop the nodes started by `up`, by the pids in the run dir (SIGTERM: they drain).
#   status  whether each node runs and is ready, then `gantry ctl members`; exit 0 only when
#           all three are ready.
#   apply   commit FILE (default: config.yaml next to this script) as a new config revision
#           through node1's admin API (`gantry ctl apply -f FILE`).
#   clean   `down`, then delete the run dir (data dirs, logs, tokens): the next `up` bootstraps
#           a new cluster.
#
# Settings (environment):
#   GANTRY             gantry binary (default: gantry on PATH; e.g. target/release/gantry)
#   GANTRY_LOCAL_DIR   run dir: data dirs, logs, pid files
#                      (default: ${XDG_STATE_HOME:-~/.local/state}/gantry-local)
#   HTTP_PORT HTTPS_PORT ADMIN_PORT FABRIC_PORT GOSSIP_PORT
#                      ports on each node's address (defaults 8080 8443 9900 7000 7001: the
#                      binary's defaults, so the commands below look like real machines')
#
# Everything here is plain `gantry run` / `gantry ctl`; read start_node to see the exact flags.
set -euo pipefail

GANTRY=${GANTRY:-gantry}
RUN_DIR=${GANTRY_LOCAL_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/gantry-local}
HTTP_PORT=${HTTP_PORT:-8080}
HTTPS_PORT=${HTTPS_PORT:-8443}
ADMIN_PORT=${ADMIN_PORT:-9900}
FABRIC_PORT=${FABRIC_PORT:-7000}
GOSSIP_PORT=${GOSSIP_PORT:-7001}
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

NAMES=(node1 node2 node3)
ZONES=(a b c)
IPS=(127.0.1.1 127.0.2.1 127.0.3.1)

# A node that does not start or get ready within this many seconds is reported, not awaited.
START_TIMEOUT_S=30
# `down` waits this long after SIGTERM before SIGKILL; nodes get a shorter drain than the 30 s
# default (--drain-timeout below) because nothing important is in flight on a local cluster.
STOP_TIMEOUT_S=15

say() { echo "cluster.sh: $*"; }
die() {
    echo "cluster.sh: $*" >&2
    exit 1
}

data_dir() { echo "$RUN_DIR/${NAMES[$1]}"; }
pid_file() { echo "$RUN_DIR/${NAMES[$1]}.pid"; }
log_file() { echo "$RUN_DIR/${NAMES[$1]}.log"; }
# stdout of the node alone: only the bootstrap lines (logs go to stderr, in the .log file).
out_file() { echo "$RUN_DIR/${NAMES[$1]}.out"; }
admin_url() { echo "http://${IPS[$1]}:$ADMIN_PORT"; }
# A node that has joined or bootstrapped once has node.json in its data dir.
has_identity() { [[ -f "$(data_dir "$1")/node.json" ]]; }

# Prints the pid of node $1 if its pid file names a live gantry process for this node's data
# dir. The command-line check makes sure a recycled pid is never signalled.
node_pid() {
    local file pid
    file=$(pid_file "$1")
    [[ -f "$file" ]] || return 1
    pid=$(<"$file")
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    ps -p "$pid" -o args= 2>/dev/null | grep -qF -- "--data-dir $(data_dir "$1")" || return 1
    echo "$pid"
}

# True when GET http://$1:$2$3 answers 200. Plain bash (/dev/tcp), so curl is not required; the
# subshell confines the file descriptor and any connection error.
http_ok() {
    (
        exec 3<>"/dev/tcp/$1/$2" || exit 1
        printf 'GET %s HTTP/1.1\r\nHost: %s:%s\r\nConnection: close\r\n\r\n' "$3" "$1" "$2" >&3
        IFS= read -r -t 2 status <&3 || exit 1
        [[ "$status" == "HTTP/1."?" 200"* ]]
    ) 2>/dev/null
}

ready() { http_ok "${IPS[$1]}" "$ADMIN_PORT" /readyz; }

# Gossip (UDP) is on each node's own address, GOSSIP_PORT. Builds of gantry from before the
# gossip listener have no --gossip flag, so ask the binary before passing it.
gossip_flag_supported() {
    if [[ -z "${GOSSIP_SUPPORTED:-}" ]]; then
        if "$GANTRY" run --help 2>/dev/null | grep -q -- '--gossip'; then GOSSIP_SUPPORTED=yes; else GOSSIP_SUPPORTED=no; fi
    fi
    [[ "$GOSSIP_SUPPORTED" == yes ]]
}

# start_node INDEX [--join ADDR --token TOKEN]: starts node INDEX in the background, every
# address on the node's own loopback IP, and records its pid.
start_node() {
    local i=$1 ip=${IPS[$1]}
    shift
    local args=(run --name "${NAMES[$i]}" --zone "${ZONES[$i]}" --data-dir "$(data_dir "$i")"
        --http "$ip:$HTTP_PORT" --https "$ip:$HTTPS_PORT" --admin "$ip:$ADMIN_PORT"
        --fabric "$ip:$FABRIC_PORT" --drain-timeout 5s)
    if gossip_flag_supported; then
        args+=(--gossip "$ip:$GOSSIP_PORT")
    fi
    "$GANTRY" "${args[@]}" "$@" </dev/null >"$(out_file "$i")" 2>>"$(log_file "$i")" &
    echo $! >"$(pid_file "$i")"
    say "started ${NAMES[$i]} (zone ${ZONES[$i]}, $ip) pid $!${1:+, joining $2}"
}

# Fails with the node's log when node $1 exits before it is ready.
wait_ready() {
    local i=$1 tries
    for ((tries = 0; tries < START_TIMEOUT_S * 10; tries++)); do
        ready "$i" && return 0
        node_pid "$i" >/dev/null || die "${NAMES[$i]} exited during start-up; last lines of $(log_file "$i"):
$(tail -n 15 "$(log_file "$i")")"
        sleep 0.1
    done
    die "${NAMES[$i]} is not ready after ${START_TIMEOUT_S}s (GET $(admin_url "$i")/readyz); see $(log_file "$i")"
}

# Prints the join token node1 printed when it bootstrapped ("gantry: join other nodes with:
# gantry run --join 127.0.1.1:7000 --token gtj1.<id>.<secret>.<ca-sha256>"). Only a complete
# token matches, never a line still being written.
wait_for_token() {
    local tries token
    for ((tries = 0; tries < START_TIMEOUT_S * 10; tries++)); do
        token=$(grep -oE 'gtj1\.[0-9a-f]+\.[0-9a-f]+\.[0-9a-f]{64}' "$(out_file 0)" 2>/dev/null | tail -n 1 || true)
        if [[ -n "$token" ]]; then
            echo "$token"
            return 0
        fi
        node_pid 0 >/dev/null || die "node1 exited during start-up; last lines of $(log_file 0):
$(tail -n 15 "$(log_file 0)")"
        sleep 0.1
    done
    die "node1 printed no join token within ${START_TIMEOUT_S}s; see $(log_file 0)"
}

# A failed `up` leaves the nodes that did start running, so their logs and state can be read.
up_failed() {
    say "start-up failed; nodes started so far keep running: '$0 down' stops them, '$0 clean' also deletes $RUN_DIR" >&2
}

cmd_up() {
    command -v "$GANTRY" >/dev/null 2>&1 ||
        die "cannot run '$GANTRY': put gantry on PATH or set GANTRY=/path/to/gantry (cargo build --release -p gantry builds target/release/gantry)"
    local i pid
    for i in 0 1 2; do
        if pid=$(node_pid "$i"); then
            die "${NAMES[$i]} is already running (pid $pid); run '$0 down' first"
        fi
    done
    mkdir -p "$RUN_DIR"
    chmod 700 "$RUN_DIR"           # data dirs hold private keys and the admin token
    touch "$RUN_DIR/.gantry-local" # marks the dir as ours, for `clean`
    trap up_failed EXIT

    local with_identity=0
    for i in 0 1 2; do
        if has_identity "$i"; then with_identity=$((with_identity + 1)); fi
    done
    case $with_identity in
    0)
        # Fresh cluster: node1 bootstraps; the others join it with the token it prints.
        start_node 0
        local token
        token=$(wait_for_token)
        # Kept for reference (valid 24 h); `gantry ctl token create` makes new ones.
        (umask 077 && echo "$token" >"$RUN_DIR/join-token")
        wait_ready 0
        for i in 1 2; do
            start_node "$i" --join "${IPS[0]}:$FABRIC_PORT" --token "$token"
            wait_ready "$i"
        done
        ;;
    3)
        # Restart: every node comes back on its data dir with its identity; --join is not
        # needed. Start all before waiting: a node is ready only once a Raft leader exists,
        # which needs two of the three voters.
        for i in 0 1 2; do start_node "$i"; done
        for i in 0 1 2; do wait_ready "$i"; done
        ;;
    *)
        die "only $with_identity of the 3 data dirs in $RUN_DIR hold a member identity: restore them, or '$0 clean' to start a new cluster"
        ;;
    esac

    trap - EXIT
    echo
    for i in 0 1 2; do
        printf '  %s  zone %s  http://%s:%s  admin %s  pid %s\n' "${NAMES[$i]}" "${ZONES[$i]}" \
            "${IPS[$i]}" "$HTTP_PORT" "$(admin_url "$i")" "$(node_pid "$i")"
    done
    cat <<EOF

The cluster is up. Operate it with gantry ctl against any node's admin API:

  export GANTRY_ADMIN=$(admin_url 0) GANTRY_TOKEN=\$(cat $(data_dir 0)/admin-token)
  $GANTRY ctl members
  $GANTRY ctl apply -f $SCRIPT_DIR/config.yaml     # or: $0 apply
  $GANTRY ctl token create --ttl 1h                  # a join token for another node

Logs: $RUN_DIR/node*.log. Stop with: $0 down
EOF
}

cmd_down() {
    local i pid tries alive stopping=()
    for i in 2 1 0; do
        if pid=$(node_pid "$i"); then
            say "stopping ${NAMES[$i]} (pid $pid)"
            kill -TERM "$pid"
            stopping+=("$i")
        elif [[ -f "$(pid_file "$i")" ]]; then
            say "${NAMES[$i]} is not running (stale pid file removed)"
            rm -f "$(pid_file "$i")"
        fi
    done
    # ${a[@]+"${a[@]}"}: an empty array under `set -u` on bash 3 (macOS).
    for ((tries = 0; tries < STOP_TIMEOUT_S * 10; tries++)); do
        alive=0
        for i in ${stopping[@]+"${stopping[@]}"}; do
            if node_pid "$i" >/dev/null; then alive=1; fi
        done
        ((alive)) || break
        sleep 0.1
    done
    for i in ${stopping[@]+"${stopping[@]}"}; do
        if pid=$(node_pid "$i"); then
            say "${NAMES[$i]} still running after ${STOP_TIMEOUT_S}s: SIGKILL pid $pid"
            kill -KILL "$pid"
        fi
        rm -f "$(pid_file "$i")"
    done
    say "stopped; data dirs kept in $RUN_DIR ('$0 up' restarts the same cluster)"
}

cmd_status() {
    local i pid all_ready=1 first=""
    for i in 0 1 2; do
        local state
        if pid=$(node_pid "$i"); then
            if ready "$i"; then state="ready"; else
                state="running, not ready"
                all_ready=0
            fi
            state="$state (pid $pid)"
            first=${first:-$i}
        else
            state="stopped"
            all_ready=0
        fi
        printf '%s  zone %s  %-16s %s\n' "${NAMES[$i]}" "${ZONES[$i]}" "${IPS[$i]}" "$state"
    done
    if [[ -n "$first" ]]; then
        echo
        # Reading members needs no admin token.
        "$GANTRY" ctl --admin "$(admin_url "$first")" members || all_ready=0
    fi
    ((all_ready))
}

cmd_apply() {
    local file=${1:-$SCRIPT_DIR/config.yaml} i
    [[ -f "$(data_dir 0)/admin-token" ]] || die "no admin token in $(data_dir 0): run '$0 up' first"
    # Any node accepts the write (followers forward it to the leader); use the first that runs.
    for i in 0 1 2; do
        if node_pid "$i" >/dev/null; then
            exec "$GANTRY" ctl --admin "$(admin_url "$i")" --token-file "$(data_dir 0)/admin-token" apply -f "$file"
        fi
    done
    die "no node is running: run '$0 up' first"
}

cmd_clean() {
    cmd_down
    if [[ -d "$RUN_DIR" ]]; then
        # Only a dir this script created is deleted.
        [[ -f "$RUN_DIR/.gantry-local" ]] || die "$RUN_DIR was not created by this script; not deleting it"
        rm -rf "$RUN_DIR"
        say "deleted $RUN_DIR"
    fi
}

case "${1:-}" in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
apply)
    shift
    cmd_apply "$@"
    ;;
clean) cmd_clean ;;
*)
    echo "usage: $0 up | down | status | apply [FILE] | clean" >&2
    exit 2
    ;;
esac
