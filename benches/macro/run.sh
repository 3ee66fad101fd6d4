#!/usr/bin/env bash
# Side-by-side macro benchmark: gantry and nginx as HTTP/1.1 reverse proxies in front of the
# same backend (bench-backend), loaded by wrk, interleaved round by round.
#
#   bash benches/macro/run.sh
#
# What it does:
#   1. installs nginx and wrk with apt-get when missing (needs root);
#   2. builds gantry and bench-backend with the `bench` profile (thin LTO);
#   3. starts, on 127.0.0.1 and free ports, in a private temp dir:
#        - bench-backend (one thread): 200 + a 25-byte body for every request;
#        - gantry (one tokio worker: TOKIO_WORKER_THREADS=1; RUST_LOG=warn, so no access log),
#          twice: `gantry` speaks HTTP/1.1 to the backend as nginx does (like for like), and
#          `gantry-h2` HTTP/2 with prior knowledge (`protocol: http2`), which nginx cannot;
#        - nginx (worker_processes 1, access_log off, upstream keepalive), its own config,
#          pid file and logs; the system nginx, if any, is never touched;
#   4. warms all three up, then runs `wrk -t1 -c$CONNECTIONS -d${DURATION}s --latency` against
#      gantry, gantry-h2, nginx, gantry, ... ($ROUNDS rounds each);
#   5. prints a markdown table (per round, medians, gantry/nginx ratios) and writes it to
#      target/bench-macro/results.md (raw wrk output in target/bench-macro/raw/).
#
# CPU pinning (2 cores here): the proxy under test gets core $PROXY_CPU to itself; wrk and
# the backend share core $LOAD_CPU. Each proxy runs one worker, so one core is all it could use,
# and neither proxy competes with the load generator for its core. Both proxies see exactly the
# same backend and the same load generator, so whichever side is the bottleneck, the comparison
# is like for like. Set PROXY_CPU/LOAD_CPU to change it (e.g. on a bigger machine put wrk and
# the backend on separate cores).
#
# Tunables (environment): ROUNDS=5 DURATION=6 WARMUP=2 CONNECTIONS=64 PROXY_CPU=0 LOAD_CPU=1;
# GANTRY_BIN=… BACKEND_BIN=… (both) skip the build and benchmark those executables.
# Measuring takes about ROUNDS*3*(DURATION+1) + 3*(WARMUP+1) seconds (~115 s by default) after
# the build. Five short rounds rather than three long ones: the median of five shrugs off a
# burst of unrelated load on a shared machine better than the median of three.
set -euo pipefail

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-6}
WARMUP=${WARMUP:-2}
CONNECTIONS=${CONNECTIONS:-64}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT_DIR="$ROOT/target/bench-macro"

# shellcheck source=../lib.sh
. "$ROOT/benches/lib.sh"

# ---------------------------------------------------------------------------------------------
# 1. Tools
# ---------------------------------------------------------------------------------------------
nginx_bin() { command -v nginx 2>/dev/null || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; } || true; }
missing=()
[ -n "$(nginx_bin)" ] || missing+=(nginx)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
if ((${#missing[@]})); then
    [ "$(id -u)" = 0 ] || die "missing ${missing[*]}; run as root or install them"
    log "installing ${missing[*]} (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
NGINX=$(nginx_bin)
[ -n "$NGINX" ] || die "nginx not found after install"
NCPU=$(nproc)
((PROXY_CPU < NCPU && LOAD_CPU < NCPU)) || die "PROXY_CPU/LOAD_CPU must be below nproc ($NCPU)"

# ---------------------------------------------------------------------------------------------
# 2. Build
# ---------------------------------------------------------------------------------------------
cd "$ROOT"
build_bench_binaries bench-backend BACKEND_BIN

# ---------------------------------------------------------------------------------------------
# 3. Processes (all ours; killed by pid on exit)
# ---------------------------------------------------------------------------------------------
WORK=$(mktemp -d /tmp/gantry-bench-macro.XXXXXX)
chmod 755 "$WORK" # nginx workers run as nobody
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 30); do
        local alive=0
        for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.1
    done
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Run copies: `cargo build --release` shares target/release with the bench profile, so a build
# started elsewhere during the run must not swap the binaries under us.
mkdir "$WORK/bin"
cp "$GANTRY_BIN" "$WORK/bin/gantry"
cp "$BACKEND_BIN" "$WORK/bin/bench-backend"
GANTRY_BUILT=$(stat -c %y "$GANTRY_BIN" | cut -d. -f1)
log "gantry: $GANTRY_BIN (built $GANTRY_BUILT)"
GANTRY_BIN=$WORK/bin/gantry
BACKEND_BIN=$WORK/bin/bench-backend

USED_PORTS=" "
free_port() { # VAR: sets VAR to a free loopback port not handed out before (no subshell, so
    # USED_PORTS persists; the local's name must differ from every VAR a caller passes)
    local _candidate
    for _ in $(seq 500); do
        _candidate=$((20000 + RANDOM % 40000))
        [[ $USED_PORTS == *" $_candidate "* ]] && continue
        if [ -z "$(ss -Htuan "( sport = :$_candidate )" 2>/dev/null)" ]; then # TCP and UDP
            USED_PORTS+="$_candidate "
            printf -v "$1" '%s' "$_candidate"
            return
        fi
    done
    die "no free port found"
}
free_port BACKEND_PORT
free_port GANTRY_PORT
free_port GANTRY_ADMIN_PORT
free_port GANTRY_H2_PORT
free_port GANTRY_H2_ADMIN_PORT
free_port NGINX_PORT

wait_ready() { # name pid url
    for _ in $(seq 100); do
        kill -0 "$2" 2>/dev/null || { cat "$WORK/$1.log" >&2 || true; die "$1 exited during start-up"; }
        curl -fsS -o /dev/null --max-time 1 "$3" 2>/dev/null && return 0
        sleep 0.1
    done
    cat "$WORK/$1.log" >&2 || true
    die "$1 did not answer $3 within 10 s"
}

taskset -c "$LOAD_CPU" "$BACKEND_BIN" "127.0.0.1:$BACKEND_PORT" >"$WORK/backend.log" 2>&1 &
BACKEND_PID=$!
PIDS+=("$BACKEND_PID")
wait_ready backend "$BACKEND_PID" "http://127.0.0.1:$BACKEND_PORT/"

# gantry twice: `gantry` talks HTTP/1.1 to the backend, as nginx does (the like-for-like
# comparison); `gantry-h2` talks HTTP/2 (h2c) to it (`protocol: http2` on the service), which
# nginx's proxy module cannot: every request is a stream on one upstream connection.
for upstream in http1 http2; do
    cat >"$WORK/gantry-$upstream.yaml" <<EOF
listeners:
  - { name: public, protocol: http }
services:
  - name: backend
    protocol: $upstream
    endpoints: [ { address: "127.0.0.1:$BACKEND_PORT" } ]
routes:
  - name: all
    to: [ { service: backend } ]
EOF
done
GANTRY_HELP=$("$GANTRY_BIN" run --help 2>&1 || true)
start_gantry() { # name config http-port admin-port; sets STARTED_PID
    # Every other port gantry opens goes to a free loopback port too. The node grows flags as
    # the project goes on, so pass the ones this build has (per `gantry run --help`).
    local args=(run -c "$2" --http "127.0.0.1:$3" --admin "127.0.0.1:$4" --data-dir "$WORK/$1-data")
    local flag extra_port
    for flag in --https --fabric --gossip --mesh; do
        if grep -q -- "^ *$flag <" <<<"$GANTRY_HELP"; then
            free_port extra_port
            args+=("$flag" "127.0.0.1:$extra_port")
        fi
    done
    if grep -q -- "^ *--advertise <" <<<"$GANTRY_HELP"; then args+=(--advertise 127.0.0.1); fi
    TOKIO_WORKER_THREADS=1 RUST_LOG=warn taskset -c "$PROXY_CPU" "$GANTRY_BIN" "${args[@]}" \
        >"$WORK/$1.log" 2>&1 &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
    wait_ready "$1" "$STARTED_PID" "http://127.0.0.1:$3/"
}
start_gantry gantry "$WORK/gantry-http1.yaml" "$GANTRY_PORT" "$GANTRY_ADMIN_PORT"
GANTRY_PID=$STARTED_PID
start_gantry gantry-h2 "$WORK/gantry-http2.yaml" "$GANTRY_H2_PORT" "$GANTRY_H2_ADMIN_PORT"
GANTRY_H2_PID=$STARTED_PID

mkdir -p "$WORK/nginx/logs" "$WORK/nginx/tmp"
cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/tmp/body;
    proxy_temp_path $WORK/nginx/tmp/proxy;
    fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
    uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
    scgi_temp_path $WORK/nginx/tmp/scgi;
    # Like gantry: never close a client or upstream keep-alive connection after N requests.
    keepalive_requests 1000000;
    upstream backend {
        server 127.0.0.1:$BACKEND_PORT;
        keepalive $CONNECTIONS;
        keepalive_requests 1000000;
    }
    # The request headers gantry sets by default, so both proxies do the same work: the client's
    # Host kept, X-Forwarded-For/-Proto/-Host, and an X-Request-Id (the client's, else a new
    # one) sent upstream and returned to the client.
    map \$http_x_request_id \$gantry_like_request_id {
        default \$http_x_request_id;
        "" \$request_id;
    }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$http_host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header X-Forwarded-Host \$http_host;
            proxy_set_header X-Request-Id \$gantry_like_request_id;
            add_header X-Request-Id \$gantry_like_request_id always;
        }
    }
}
EOF
"$NGINX" -t -q -p "$WORK/nginx" -e "$WORK/nginx/logs/error.log" -c "$WORK/nginx/nginx.conf" \
    || die "nginx rejected its config"
taskset -c "$PROXY_CPU" "$NGINX" -p "$WORK/nginx" -e "$WORK/nginx/logs/error.log" \
    -c "$WORK/nginx/nginx.conf" -g 'daemon off;' >"$WORK/nginx.log" 2>&1 &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
wait_ready nginx "$NGINX_PID" "http://127.0.0.1:$NGINX_PORT/"

# TOKIO_WORKER_THREADS=1 gives one async worker. tokio also names its blocking-pool threads
# tokio-rt-worker (raft-store runs redb writes there), so this count is 1 + blocking threads;
# the per-thread CPU times in the report show which one did the proxying.
GANTRY_WORKERS=$(grep -lx 'tokio-rt-worker' /proc/"$GANTRY_PID"/task/*/comm 2>/dev/null | wc -l)
GANTRY_THREADS=$(find /proc/"$GANTRY_PID"/task -mindepth 1 -maxdepth 1 | wc -l)
log "backend :$BACKEND_PORT (cpu $LOAD_CPU), gantry :$GANTRY_PORT, gantry-h2 :$GANTRY_H2_PORT and nginx :$NGINX_PORT (cpu $PROXY_CPU)"
log "gantry threads: $GANTRY_THREADS ($GANTRY_WORKERS tokio-rt-worker)"

# ---------------------------------------------------------------------------------------------
# 4. Load
# ---------------------------------------------------------------------------------------------
mkdir -p "$OUT_DIR/raw"
rm -f "$OUT_DIR"/raw/*.txt
PROXIES=(gantry gantry-h2 nginx)
port_of() { case $1 in gantry) echo "$GANTRY_PORT" ;; gantry-h2) echo "$GANTRY_H2_PORT" ;; nginx) echo "$NGINX_PORT" ;; esac; }
pid_of() { case $1 in gantry) echo "$GANTRY_PID" ;; gantry-h2) echo "$GANTRY_H2_PID" ;; nginx) echo "$NGINX_PID" ;; esac; }

wrk_run() { # proxy seconds output-file
    kill -0 "$(pid_of "$1")" 2>/dev/null || die "$1 is no longer running"
    taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"$2"s --latency \
        "http://127.0.0.1:$(port_of "$1")/" >"$3" 2>&1 || { cat "$3" >&2; die "wrk failed against $1"; }
}

# wrk prints latencies as 812.00us, 1.23ms or 1.05s: convert to milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n *= 1; else if (v ~ /m$/) n *= 60000; else if (v ~ /s$/) n *= 1000
        printf "%.3f", n }'
}
parse() { # wrk output file -> "rps p50_ms p99_ms errors requests"
    local rps p50 p99 non2xx sock requests
    rps=$(awk '/^Requests\/sec:/ { print $2 }' "$1")
    requests=$(awk '/ requests in / { print $1 }' "$1")
    p50=$(awk '$1 == "50%" { print $2 }' "$1")
    p99=$(awk '$1 == "99%" { print $2 }' "$1")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$1")
    sock=$(awk '/Socket errors:/ { s = 0; for (i = 3; i <= NF; i += 2) s += $(i + 1); print s }' "$1" | tr -d ,)
    [ -n "$rps" ] && [ -n "$p50" ] && [ -n "$p99" ] && [ -n "$requests" ] ||
        { cat "$1" >&2; die "cannot parse wrk output $1"; }
    echo "$rps $(to_ms "$p50") $(to_ms "$p99") $((${non2xx:-0} + ${sock:-0})) $requests"
}

# CPU time (user + system, in clock ticks) used so far by a proxy: gantry's process, or nginx's
# master and worker. The difference over a round gives CPU per request, the number least
# disturbed by other load on the machine (req/s drops when the proxy's core is shared; CPU per
# request does not, or much less), and the share of its core the proxy actually got.
CLK_TCK=$(getconf CLK_TCK)
proxy_ticks() {
    local pids total=0 pid stat rest
    pids=("$(pid_of "$1")")
    if [ "$1" = nginx ]; then
        # shellcheck disable=SC2207 # pids are words
        pids+=($(pgrep -P "$NGINX_PID" || true))
    fi
    for pid in "${pids[@]}"; do
        stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        rest=${stat##*) }
        # shellcheck disable=SC2086 # split the stat fields on purpose
        set -- $rest
        total=$((total + ${12} + ${13}))
    done
    echo "$total"
}

LOADAVG_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for proxy in "${PROXIES[@]}"; do
    log "warm-up $proxy (${WARMUP}s)"
    wrk_run "$proxy" "$WARMUP" "$OUT_DIR/raw/warmup-$proxy.txt"
done

declare -A RPS P50 P99 CPU_US
ROWS=""
for round in $(seq "$ROUNDS"); do
    for proxy in "${PROXIES[@]}"; do
        file="$OUT_DIR/raw/round$round-$proxy.txt"
        ticks_before=$(proxy_ticks "$proxy")
        wrk_run "$proxy" "$DURATION" "$file"
        ticks=$(($(proxy_ticks "$proxy") - ticks_before))
        result=$(parse "$file")
        read -r rps p50 p99 errors requests <<<"$result"
        cpu_us=$(awk -v t="$ticks" -v hz="$CLK_TCK" -v n="$requests" 'BEGIN { printf "%.2f", t / hz * 1e6 / n }')
        busy=$(awk -v t="$ticks" -v hz="$CLK_TCK" -v d="$DURATION" 'BEGIN { printf "%.0f", t / hz / d * 100 }')
        log "round $round $proxy: $rps req/s, p50 ${p50} ms, p99 ${p99} ms, CPU ${cpu_us} µs/req, core ${busy}% busy, errors $errors"
        RPS[$proxy]+="$rps "
        P50[$proxy]+="$p50 "
        P99[$proxy]+="$p99 "
        CPU_US[$proxy]+="$cpu_us "
        ROWS+="| $round | $proxy | $(printf '%.0f' "$rps") | $p50 | $p99 | $cpu_us | $busy % | $errors |"$'\n'
    done
done

median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END {
    if (NR % 2) printf "%.3f", v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }

LOADAVG_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# CPU seconds used by each gantry thread since it started: shows that the one async worker did
# the proxying and the other tokio-rt-worker threads (the blocking pool) sat idle.
thread_cpu() {
    local tck task name stat rest
    tck=$(getconf CLK_TCK)
    for task in /proc/"$1"/task/*; do
        name=$(cat "$task/comm" 2>/dev/null) || continue
        stat=$(cat "$task/stat" 2>/dev/null) || continue
        rest=${stat##*) }
        # shellcheck disable=SC2086 # split the stat fields on purpose
        set -- $rest
        awk -v n="$name" -v u="${12}" -v s="${13}" -v t="$tck" 'BEGIN { printf "%s %.2fs, ", n, (u + s) / t }'
    done | sed 's/, $//'
}
GANTRY_CPU=$(thread_cpu "$GANTRY_PID")

# Paired ratios: round i of each gantry against round i of nginx, measured in the same round
# under the same background load.
read -r -a n_rps <<<"${RPS[nginx]}"
read -r -a n_p99 <<<"${P99[nginx]}"
read -r -a n_cpu <<<"${CPU_US[nginx]}"
declare -A PAIR_RPS PAIR_P99 PAIR_CPU
PAIR_ROWS=""
for ((i = 0; i < ROUNDS; i++)); do
    row="| $((i + 1)) |"
    for proxy in gantry gantry-h2; do
        read -r -a g_rps <<<"${RPS[$proxy]}"
        read -r -a g_p99 <<<"${P99[$proxy]}"
        read -r -a g_cpu <<<"${CPU_US[$proxy]}"
        r_rps=$(ratio "${g_rps[i]}" "${n_rps[i]}")
        r_p99=$(ratio "${g_p99[i]}" "${n_p99[i]}")
        r_cpu=$(ratio "${g_cpu[i]}" "${n_cpu[i]}")
        PAIR_RPS[$proxy]+="$r_rps " PAIR_P99[$proxy]+="$r_p99 " PAIR_CPU[$proxy]+="$r_cpu "
        row+=" $r_rps | $r_p99 | $r_cpu |"
    done
    PAIR_ROWS+="$row"$'\n'
done
declare -A MED_RPS MED_P50 MED_P99 MED_CPU
for proxy in "${PROXIES[@]}"; do
    MED_RPS[$proxy]=$(median "${RPS[$proxy]}") MED_P50[$proxy]=$(median "${P50[$proxy]}")
    MED_P99[$proxy]=$(median "${P99[$proxy]}") MED_CPU[$proxy]=$(median "${CPU_US[$proxy]}")
done
summary_row() { # proxy
    echo "| $1 | $(printf '%.0f' "${MED_RPS[$1]}") | ${MED_P50[$1]} | ${MED_P99[$1]} | ${MED_CPU[$1]} |"
}
ratio_row() { # proxy
    echo "| **$1 / nginx** | **$(ratio "${MED_RPS[$1]}" "${MED_RPS[nginx]}")** | $(ratio "${MED_P50[$1]}" "${MED_P50[nginx]}") | **$(ratio "${MED_P99[$1]}" "${MED_P99[nginx]}")** | **$(ratio "${MED_CPU[$1]}" "${MED_CPU[nginx]}")** |"
}
pair_median() { # proxy
    echo "**$(median "${PAIR_RPS[$1]}")** | **$(median "${PAIR_P99[$1]}")** | **$(median "${PAIR_CPU[$1]}")**"
}

# ---------------------------------------------------------------------------------------------
# 5. Report
# ---------------------------------------------------------------------------------------------
NGINX_VERSION=$({ "$NGINX" -v 2>&1 || true; } | sed 's/^nginx version: //')
WRK_VERSION=$({ wrk -v 2>&1 || true; } | head -n1 | awk '{ print $1, $2 }') # wrk -v exits 1
REVISION=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if ! git -C "$ROOT" diff --quiet HEAD 2>/dev/null; then REVISION+="+dirty"; fi

REPORT=$(cat <<EOF
## Macro benchmark: gantry vs nginx (HTTP/1.1 reverse proxy, one worker each)

$(date -u '+%Y-%m-%d %H:%M UTC'), gantry $REVISION (binary built $GANTRY_BUILT), $NGINX_VERSION, $WRK_VERSION, $NCPU CPUs,
load average (1, 5, 15 min) before: $LOADAVG_BEFORE, after: $LOADAVG_AFTER (the benchmark itself adds ~2).
\`wrk -t1 -c$CONNECTIONS -d${DURATION}s --latency\`, $ROUNDS interleaved rounds per proxy after a ${WARMUP}s warm-up each.
Proxy on CPU $PROXY_CPU; wrk and bench-backend on CPU $LOAD_CPU. gantry: TOKIO_WORKER_THREADS=1
(one async worker; $GANTRY_THREADS threads at start, $GANTRY_WORKERS of them named tokio-rt-worker:
the async worker plus blocking-pool threads), RUST_LOG=warn (no access log).
nginx: worker_processes 1, access_log off, upstream keepalive $CONNECTIONS.

| round | proxy | req/s | p50 (ms) | p99 (ms) | proxy CPU µs/req | proxy core busy | errors |
|---:|---|---:|---:|---:|---:|---:|---:|
${ROWS%$'\n'}

| | req/s (median) | p50 ms (median) | p99 ms (median) | CPU µs/req (median) |
|---|---:|---:|---:|---:|
$(summary_row gantry)
$(summary_row gantry-h2)
$(summary_row nginx)
$(ratio_row gantry)
$(ratio_row gantry-h2)

\`gantry\` proxies to the backend over HTTP/1.1 with keep-alive, as nginx does: the like-for-like
comparison. \`gantry-h2\` is the same binary with \`protocol: http2\` on the service: each request
goes upstream as a stream on one h2c connection, which nginx's proxy module cannot do.

Per-round ratios (each gantry against the nginx run of the same round):

| round | gantry / nginx req/s | p99 | CPU per request | gantry-h2 / nginx req/s | p99 | CPU per request |
|---:|---:|---:|---:|---:|---:|---:|
${PAIR_ROWS%$'\n'}
| **median** | $(pair_median gantry) | $(pair_median gantry-h2) |

req/s ratio above 1 means gantry serves more; latency and CPU ratios below 1 mean gantry is
faster or cheaper. "proxy core busy" is the share of its core the proxy used: well below 100 %
while req/s is low means something else on the machine took the core (read CPU µs/req then).
gantry CPU time by thread over the whole run: $GANTRY_CPU.
EOF
)
printf '%s\n' "$REPORT" >"$OUT_DIR/results.md"
printf '\n%s\n\n' "$REPORT"
log "written to ${OUT_DIR#"$ROOT"/}/results.md (raw wrk output in ${OUT_DIR#"$ROOT"/}/raw/)"
