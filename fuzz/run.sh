#!/bin/sh
# fuzz/run.sh SECONDS BUILD_DIR TARGET... - runs each libFuzzer target for
# SECONDS (-max_total_time) on its seed corpus (fuzz/corpus/TARGET, read
# only) plus a working corpus under BUILD_DIR/corpus/TARGET, and fails when
# any target finds a crash, a leak, a sanitizer report, a timeout or an
# out-of-memory. SECONDS=0 replays the corpora once without fuzzing (a
# regression check). Logs: BUILD_DIR/logs/TARGET.log; reproducers:
# BUILD_DIR/artifacts/TARGET-*. FUZZ_JOBS targets run at once (default 1).
set -u
secs=$1
dir=$2
shift 2
jobs=${FUZZ_JOBS:-1}
root=$(cd "$(dirname "$0")/.." && pwd)

# The harnesses refuse to run with TICKGATE_* variables set (config_load
# would read them); sanitizers must stop at the first report.
for v in $(env | sed -n 's/^\(TICKGATE_[A-Za-z0-9_]*\)=.*/\1/p'); do unset "$v"; done
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

mkdir -p "$dir/logs" "$dir/artifacts" "$dir/corpus"

# Per-target options: input size bounds and the like.
opts() {
    case $1 in
    http) echo "-max_len=20000 -dict=$root/fuzz/dict/http.dict" ;;
    frame) echo "-max_len=20000" ;;
    utf8) echo "-max_len=4096" ;;
    inflate) echo "-max_len=20000" ;;
    message) echo "-max_len=8192 -dict=$root/fuzz/dict/message.dict" ;;
    jwt) echo "-max_len=9000 -dict=$root/fuzz/dict/jwt.dict" ;;
    users) echo "-max_len=16384 -dict=$root/fuzz/dict/users.dict" ;;
    config) echo "-max_len=8192 -close_fd_mask=1 -dict=$root/fuzz/dict/config.dict" ;;
    esac
}

run_one() {
    t=$1
    bin="$dir/fuzz_$t"
    log="$dir/logs/$t.log"
    work="$dir/corpus/$t"
    mkdir -p "$work"
    if [ "$secs" -eq 0 ]; then
        # shellcheck disable=SC2046
        "$bin" $(opts "$t") -runs=0 -print_final_stats=1 "$root/fuzz/corpus/$t" >"$log" 2>&1
    else
        # shellcheck disable=SC2046
        "$bin" $(opts "$t") -max_total_time="$secs" -timeout=25 -rss_limit_mb=4096 -print_final_stats=1 \
            -artifact_prefix="$dir/artifacts/$t-" "$work" "$root/fuzz/corpus/$t" >"$log" 2>&1
    fi
    rc=$?
    if [ $rc -eq 0 ] && grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|FUZZ_CHECK failed' "$log"; then
        rc=99
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
    cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1)
    units=$(ls "$work" 2>/dev/null | wc -l)
    if [ $rc -eq 0 ]; then verdict=ok; else verdict="FAILED (exit $rc)"; fi
    printf 'fuzz_%-8s %-16s execs=%s exec/s=%s %s corpus=%s peak_rss_mb=%s log=%s\n' "$t" "$verdict" \
        "${execs:-?}" "${rate:-?}" "${cov:-}" "$units" "${rss:-?}" "$log" >"$dir/logs/$t.summary"
    cat "$dir/logs/$t.summary"
    if [ $rc -ne 0 ]; then
        echo "---- $log (last 60 lines) ----"
        tail -60 "$log"
        ls "$dir/artifacts/$t-"* 2>/dev/null | sed 's/^/reproducer: /'
    fi
    return $rc
}

# Internal: one target (used through xargs for FUZZ_JOBS > 1).
if [ "${FUZZ_ONE:-}" = 1 ]; then
    run_one "$1"
    exit $?
fi

start=$(date +%s)
fail=0
if [ "$jobs" -le 1 ]; then
    for t in "$@"; do
        run_one "$t" || fail=1
    done
else
    # A pool: the next target starts as soon as one finishes.
    printf '%s\n' "$@" | FUZZ_ONE=1 xargs -P "$jobs" -n 1 sh "$0" "$secs" "$dir" || fail=1
fi
end=$(date +%s)
echo "fuzz: $# target(s), ${secs}s each, $((end - start))s wall: $([ $fail -eq 0 ] && echo passed || echo FAILED)"
exit $fail
