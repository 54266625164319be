#!/usr/bin/env bash
# bench/profile.sh - the fan-out path's cost per delivered message, counted
# rather than timed: instructions (valgrind --tool=callgrind) and heap
# allocations (valgrind memcheck's heap summary), each from runs that differ
# only in the number of subscribers, so per-connection and per-tick costs
# cancel out and what is left is the cost of one more delivered message.
#   bash bench/profile.sh      (TICKGATE_BIN, LOADGEN_BIN as for run.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
TG=${TICKGATE_BIN:-build/tickgate}
LG=${LOADGEN_BIN:-build/loadgen}
TICKS_PER_S=${TICKS_PER_S:-50}
SECONDS_RUN=${SECONDS_RUN:-4}
LOW=${LOW:-20}
HIGH=${HIGH:-120}
SECRET=0123456789abcdef0123456789abcdef-profile
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
echo "S0,100.0" >"$WORK/syms"
TOKEN=$("$TG" token --sub prof --role publisher --auth.jwt_secret="$SECRET")

# run TOOL CONNS RATE: one valgrind'd server, one loadgen run; prints the
# delivered count and the tool's figure (instructions or allocations).
run() {
    local tool=$1 conns=$2 rate=$3 out=$WORK/$1.$2.$3
    local vg=(valgrind --tool=memcheck --log-file="$out.vg")
    [ "$tool" = callgrind ] && vg=(valgrind --tool=callgrind --callgrind-out-file="$out.cg" --log-file="$out.vg")
    "${vg[@]}" "$TG" --server.listen=127.0.0.1:0 --server.workers=1 --feed.simulator=false \
        --feed.symbols_file="$WORK/syms" --auth.jwt_secret="$SECRET" --audit.path= \
        --limits.max_connections_per_ip=100000 --limits.max_messages_per_minute=100000000 \
        --limits.max_connects_per_ip_per_minute=100000000 \
        --limits.heartbeat_interval_s=3600 --limits.heartbeat_timeout_s=7200 >"$out.out" 2>"$out.err" &
    local pid=$! port=""
    for _ in $(seq 1 300); do
        port=$(sed -n 's/^tickgate listening on .*:\([0-9]*\)$/\1/p' "$out.out")
        [ -n "$port" ] && break
        sleep 0.1
    done
    [ -n "$port" ] || { echo "profile: server did not start" >&2; kill "$pid"; exit 1; }
    local delivered=0
    if [ "$rate" -gt 0 ]; then
        "$LG" --port "$port" --conns "$conns" --symbols 1 --per 1 --rate "$rate" --duration "$SECONDS_RUN" \
            --warmup 0 --drain-s 5 --pub-token "$TOKEN" --json >"$out.lg" 2>/dev/null || true
        delivered=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("delivered", 0))' "$out.lg")
    else
        "$LG" --port "$port" --conns "$conns" --symbols 1 --per 1 --idle --duration 1 --json >"$out.lg" 2>/dev/null || true
    fi
    kill -TERM "$pid"
    wait "$pid" || true
    local figure
    if [ "$tool" = callgrind ]; then
        figure=$(sed -n 's/^summary: \([0-9]*\).*/\1/p' "$out.cg")
    else
        figure=$(sed -n 's/.*total heap usage: \([0-9,]*\) allocs.*/\1/p' "$out.vg" | tr -d ,)
    fi
    echo "$delivered $figure"
}

report() {
    local tool=$1 what=$2
    read -r d1 f1 < <(run "$tool" "$LOW" "$TICKS_PER_S")
    read -r d2 f2 < <(run "$tool" "$HIGH" "$TICKS_PER_S")
    read -r _ i1 < <(run "$tool" "$LOW" 0)
    read -r _ i2 < <(run "$tool" "$HIGH" 0)
    /usr/bin/python3 - "$what" "$d1" "$f1" "$d2" "$f2" "$i1" "$i2" "$LOW" "$HIGH" <<'PY'
import sys
what, d1, f1, d2, f2, i1, i2, lo, hi = sys.argv[1], *map(float, sys.argv[2:])
extra = d2 - d1
per = ((f2 - f1) - (i2 - i1)) / extra if extra > 0 else float("nan")
print("%-12s %d vs %d subscribers: %d extra deliveries; %s per delivered message: %.2f"
      % (what, lo, hi, extra, what, per))
PY
}

report callgrind instructions
report memcheck allocations
