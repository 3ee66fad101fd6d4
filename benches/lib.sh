# Shared by the side-by-side benchmark scripts (macro/run.sh, cluster/run.sh): messages, and
# building gantry plus one helper binary with the `bench` profile. Source it; it runs nothing.

log() { printf '>> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# build_bench_binaries HELPER VAR: sets GANTRY_BIN and VAR to the executables of gantry and of
# the gantry-benches binary HELPER, built with `cargo build --profile bench` (from the paths
# cargo reports, whatever the target dir), unless GANTRY_BIN and VAR are both set already.
build_bench_binaries() {
    local helper=$1 var=$2
    if [ -n "${GANTRY_BIN:-}" ] && [ -n "${!var:-}" ]; then
        log "using GANTRY_BIN=$GANTRY_BIN and $var=${!var} (no build)"
    else
        log "building gantry and $helper (cargo build --profile bench)"
        local build_json
        build_json=$(cargo build --profile bench -p gantry -p gantry-benches --bins \
            --message-format=json-render-diagnostics)
        executable() { # target name -> path of its executable, from cargo's JSON messages
            printf '%s\n' "$build_json" | grep -o "\"executable\":\"[^\"]*/$1\"" | tail -n1 |
                sed -e 's/^"executable":"//' -e 's/"$//'
        }
        GANTRY_BIN=$(executable gantry)
        printf -v "$var" '%s' "$(executable "$helper")"
    fi
    [ -x "$GANTRY_BIN" ] || die "gantry executable not found (cargo output or GANTRY_BIN)"
    [ -x "${!var}" ] || die "$helper executable not found (cargo output or $var)"
}
