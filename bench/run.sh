#!/usr/bin/env bash
# bench/run.sh - tickgate against uWebSockets.js and ws, same load, same core.
#
#   bench/run.sh            full run, about 7 minutes (< 15)       = make bench
#   QUICK=1 bench/run.sh    shrunk scenarios, about 2 minutes      = make bench-quick
#
# Each server runs alone on CPU $SERVER_CPU (tickgate with one worker, the
# two node reference servers in bench/ref/), freshly started for every
# scenario; the load generator runs on CPU $LOADGEN_CPU. Scenarios: fan-out,
# market (zipf), latency at a fixed rate, idle memory per connection, and a
# handshake storm with a JWT verified per handshake; over TLS (wss://, a
# self-signed P-256 certificate made at run time with the openssl CLI into
# $RESULTS_DIR/tls/): fan-out, idle memory and a storm of resumed
# handshakes, tickgate against uWS.js's SSLApp. Prints one table and
# writes it to bench/results/latest.md (raw figures: latest.json, logs:
# bench/results/logs/).
#
# Environment (all optional):
#   TICKGATE_BIN (build/tickgate)  LOADGEN_BIN (build/loadgen)  NODE (node)
#   SERVERS ("tickgate uws ws")
#   SCENARIOS ("fanout fanout2w fanoutz market market2c latency idle storm storm_paced fanout_tls
#              idle_tls storm_tls mix recovery nodes")
#   SERVER_CPU (0)  LOADGEN_CPU (1)  SOURCES (127.0.0.1,127.0.0.2,127.0.0.3)
#   TICKGATE_ARGS   extra --SECTION.KEY=VALUE flags for tickgate
#   LATENCY_RATE    ticks/s for the latency scenario (default: derived from fan-out)
#   saturation      the fan-out shape at a fixed 0.8x and 1.2x of each server's own
#                   fan-out maximum (needs fanout in the same run): p99 and RSS past the max
#   sustain         the fan-out ramp's best step held at a fixed rate for LATENCY_DURATION,
#                   stepped down 1.25x (at most SUSTAIN_STEPS (6) times) until it holds
#   RAMP_RETRIES (1)  reruns of a ramp that failed on a stall, not saturation
#   STORM_RUNS (3)    storm runs per server; the median is reported
#   RESULTS_DIR (bench/results)
# and every scenario size below (FANOUT_CONNS, MARKET_CONNS, ...).
set -eu

cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

QUICK=${QUICK:-0}
abspath() { case $1 in /*) printf '%s\n' "$1" ;; *) printf '%s\n' "$ROOT/$1" ;; esac; }
TICKGATE_BIN=$(abspath "${TICKGATE_BIN:-build/tickgate}")
LOADGEN_BIN=$(abspath "${LOADGEN_BIN:-build/loadgen}")
NODE=${NODE:-node}
SERVERS=${SERVERS:-tickgate uws ws}
SCENARIOS=${SCENARIOS:-fanout fanout2w fanoutz market market2c sustain latency saturation idle storm storm_paced fanout_tls idle_tls storm_tls mix recovery nodes}
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
SOURCES=${SOURCES:-127.0.0.1,127.0.0.2,127.0.0.3}
TICKGATE_ARGS=${TICKGATE_ARGS:-}
RESULTS_DIR=$(abspath "${RESULTS_DIR:-bench/results}")
LOG_DIR=$RESULTS_DIR/logs

# Scenario sizes. Rates are ticks published per second. With --ramp the
# loadgen starts at --rate and multiplies it by 1.25 every --step-s seconds
# until a step delivers < 95% or its p99 passes 100 ms, for at most
# --duration seconds: the start rates and step counts below span about 200x
# (full) and 70x (quick), from below ws's maximum to above tickgate's.
if [ "$QUICK" = 1 ]; then
    : "${FANOUT_CONNS:=200}" "${MARKET_CONNS:=500}" "${MARKET_SYMBOLS:=100}" "${MARKET_PER:=10}"
    : "${FANOUT_START_RATE:=250}" "${MARKET_START_RATE:=100}"
    : "${STEP_S:=1}" "${RAMP_DURATION:=20}" "${WARMUP:=1}" "${LATENCY_DURATION:=4}"
    : "${IDLE_CONNS:=2000}" "${IDLE_HOLD:=2}" "${STORM_CONNS:=1000}" "${STORM_CONCURRENCY:=100}"
    : "${MIX_CONNS:=3000}" "${MIX_RATE:=50}"
    : "${RECOVERY_CONNS:=1000}" "${RECOVERY_STEADY:=200}" "${RECOVERY_DURATION:=6}"
else
    : "${FANOUT_CONNS:=1000}" "${MARKET_CONNS:=5000}" "${MARKET_SYMBOLS:=500}" "${MARKET_PER:=10}"
    : "${FANOUT_START_RATE:=50}" "${MARKET_START_RATE:=20}"
    : "${STEP_S:=3}" "${RAMP_DURATION:=75}" "${WARMUP:=2}" "${LATENCY_DURATION:=20}"
    : "${IDLE_CONNS:=10000 19900}" "${IDLE_HOLD:=5}" "${STORM_CONNS:=5000}" "${STORM_CONCURRENCY:=100}"
    : "${MIX_CONNS:=15000}" "${MIX_RATE:=50}"
    : "${RECOVERY_CONNS:=5000}" "${RECOVERY_STEADY:=1000}" "${RECOVERY_DURATION:=15}"
fi
# recovery: RECOVERY_CONNS reconnecting + RECOVERY_STEADY steady subscribers, each on the same
# RECOVERY_SYMBOLS symbols at RECOVERY_RATE ticks/s; RECOVERY_GAP ticks per symbol missed
: "${RECOVERY_SYMBOLS:=5}" "${RECOVERY_RATE:=10}" "${RECOVERY_GAP:=50}"
: "${STORM_PACED_RATE:=8000}" # storm_paced: handshakes started per second, the same for every server
: "${NODES_CONNS:=$MARKET_CONNS}" # nodes: the market ramp on 1 node, 2 nodes on one Redis, 2 on a Cluster
: "${MIX_SYMBOLS:=10}" # mix: MIX_CONNS subscribers (a third real-time, a third throttled, a third delayed)
: "${IDLE_SYMBOLS:=$MARKET_SYMBOLS}"
HEARTBEAT_S=3600 # no server pings or heartbeat timeouts during a run, in any server
SLACK_S=90       # a loadgen run is killed this long after its planned end
: "${RAMP_RETRIES:=1}"
: "${STORM_RUNS:=3}"
: "${IDLE_TLS_CONNS:=${IDLE_CONNS%% *}}" # the first idle size, over TLS

say() { printf '%s\n' "$*" >&2; }
die() { say "bench: $*"; exit 1; }

# ---- prerequisites -------------------------------------------------------------

[ -x "$TICKGATE_BIN" ] || case " $SERVERS " in *" tickgate "*) die "no tickgate binary at $TICKGATE_BIN (make)" ;; esac
[ -x "$LOADGEN_BIN" ] || die "no load generator at $LOADGEN_BIN (set LOADGEN_BIN or build it)"
command -v "$NODE" >/dev/null || die "node not found (apt-get install nodejs npm)"
if [ ! -d bench/ref/node_modules/ws ] || [ ! -d bench/ref/node_modules/uwebsockets ]; then
    command -v npm >/dev/null || die "npm not found (apt-get install npm)"
    say "bench: installing the reference servers' packages (npm ci in bench/ref)"
    (cd bench/ref && npm ci --ignore-scripts --no-audit --no-fund >&2) || die "npm ci failed in bench/ref"
fi
(cd bench/ref && "$NODE" -e "require('ws'); require('uwebsockets')") || die "bench/ref: node cannot load ws/uwebsockets"

PIN_SERVER=() PIN_LOADGEN=()
if command -v taskset >/dev/null && taskset -c "$SERVER_CPU" true 2>/dev/null && taskset -c "$LOADGEN_CPU" true 2>/dev/null; then
    PIN_SERVER=(taskset -c "$SERVER_CPU")
    PIN_LOADGEN=(taskset -c "$LOADGEN_CPU")
else
    say "bench: warning: cannot pin to CPUs $SERVER_CPU/$LOADGEN_CPU with taskset; running unpinned"
fi
[ "$SERVER_CPU" != "$LOADGEN_CPU" ] || say "bench: warning: server and loadgen share CPU $SERVER_CPU"

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FD_LIMIT=$(ulimit -n)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tickgate-bench.XXXXXX")
SERVER_PID=
SERVER_LOG=/dev/null
MEASURE_PID=
cleanup() {
    if [ -n "$MEASURE_PID" ]; then
        kill -TERM "$MEASURE_PID" 2>/dev/null || true
        wait "$MEASURE_PID" 2>/dev/null || true
    fi
    stop_server
    ! declare -F stop_nodes >/dev/null || stop_nodes
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Loopback delivers every packet through one per-CPU backlog whose default
# (1,000) a single tick fanned out to 1,000 sockets overflows: the drops then
# cost every server 200 ms+ retransmissions. Raise it for the run when root.
BACKLOG_WAS=$(cat /proc/sys/net/core/netdev_max_backlog 2>/dev/null || echo "")
if [ -n "$BACKLOG_WAS" ] && [ "$BACKLOG_WAS" -lt 65536 ] && [ "$(id -u)" = 0 ]; then
    if sysctl -qw net.core.netdev_max_backlog=65536 2>/dev/null; then
        say "bench: net.core.netdev_max_backlog $BACKLOG_WAS -> 65536 for this run"
        trap 'sysctl -qw net.core.netdev_max_backlog=$BACKLOG_WAS; cleanup' EXIT
    fi
fi
mkdir -p "$WORK/res" "$RESULTS_DIR"
rm -rf "$LOG_DIR"
mkdir -p "$LOG_DIR"

# Symbol universe S0..S<n-1> at 100.0 (tickgate needs it; the reference
# servers read it too, for the same change/change_percent figures).
SYMFILE=$WORK/symbols.txt
nsym=$MARKET_SYMBOLS
[ "$IDLE_SYMBOLS" -le "$nsym" ] || nsym=$IDLE_SYMBOLS
for ((i = 0; i < nsym; i++)); do printf 'S%d,100.0\n' "$i"; done >"$SYMFILE"

# The TLS scenarios' certificate: self-signed, P-256, for 127.0.0.1, made
# fresh for the run; every TLS server gets the same files.
TLS_DIR=$RESULTS_DIR/tls
TLS_CERT=$TLS_DIR/cert.pem TLS_KEY=$TLS_DIR/key.pem
case " $SCENARIOS " in
*_tls" "*)
    command -v openssl >/dev/null || die "openssl not found (apt-get install openssl): the TLS scenarios need it"
    mkdir -p "$TLS_DIR"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=localhost \
        -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout "$TLS_KEY" -out "$TLS_CERT" 2>"$LOG_DIR/openssl.log" ||
        die "cannot make the TLS certificate (see $LOG_DIR/openssl.log)"
    ;;
esac

SECRET=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n') # 48 bytes of hex
if [ -x "$TICKGATE_BIN" ]; then
    token() { "$TICKGATE_BIN" token --sub "$1" --role "$2" --ttl 86400 --auth.jwt_secret="$SECRET"; }
else # SERVERS without tickgate: sign the same HS256 tokens ourselves
    token() {
        "$PY" - "$1" "$2" "$SECRET" <<'EOF'
import base64, hashlib, hmac, json, sys, time
b = lambda d: base64.urlsafe_b64encode(d).rstrip(b"=").decode()
now = int(time.time())
h = b(b'{"alg":"HS256","typ":"JWT"}')
p = b(json.dumps({"sub": sys.argv[1], "iat": now, "exp": now + 86400, "role": sys.argv[2]}).encode())
print(f"{h}.{p}.{b(hmac.new(sys.argv[3].encode(), f'{h}.{p}'.encode(), hashlib.sha256).digest())}")
EOF
    }
fi
PUB_TOKEN=$(token bench-pub publisher)
SUB_TOKEN=$(token bench-sub viewer)

# ---- servers -------------------------------------------------------------------

# tickgate's flags. It refuses unknown keys, so the optional ones (limits that
# would refuse the benchmark's load: per-IP and per-user connection caps,
# rate limits) are given only when `tickgate --help` lists them.
TG_FLAGS=(--server.listen=127.0.0.1:0 --feed.symbols_file="$SYMFILE"
    --feed.simulator=false --auth.jwt_secret="$SECRET")
if [ -x "$TICKGATE_BIN" ]; then
    TG_HELP=$("$TICKGATE_BIN" --help 2>&1 || true)
    for kv in limits.max_connections=100000000 limits.max_connections_per_ip=100000000 \
        limits.max_connects_per_ip_per_minute=100000000 \
        limits.max_connections_per_user=100000000 limits.max_messages_per_minute=100000000 \
        limits.anonymous_max_symbols=100 limits.viewer_max_symbols=100 \
        limits.heartbeat_interval_s=$HEARTBEAT_S limits.heartbeat_timeout_s=$HEARTBEAT_S \
        server.shutdown_grace_ms=1000 audit.path="$LOG_DIR/tickgate-audit.log"; do
        if grep -q "^ *${kv%%=*} " <<<"$TG_HELP"; then
            TG_FLAGS+=("--$kv")
        else
            say "bench: note: this tickgate has no ${kv%%=*}; not set"
        fi
    done
fi

TG_WORKERS=1 # the fanout2w scenario runs tickgate with 2 (on the same pinned core)
# A scenario's extra tickgate flags. fanoutz: permessage-deflate, every
# tick compressed (tickgate's minimum 0, uWS's SHARED_COMPRESSOR compresses
# every message; ws is not run); mix: a 1 s delay and a throttled role.
TG_XARGS=()
UWS_COMPRESSION=
SERVER_TLS=0 # the *_tls scenarios: tickgate adds its TLS listener, uws-server.js serves SSLApp

# start_server NAME TAG: starts NAME pinned, waits for its listening line;
# sets SERVER_PID and SERVER_PORT (the TLS port when SERVER_TLS=1).
start_server() {
    local name=$1 log=$LOG_DIR/$1.$2.log cmd port_re='listening on 127\.0\.0\.1:\([0-9][0-9]*\)'
    case $name in
    tickgate)
        # shellcheck disable=SC2206 # TICKGATE_ARGS is split on purpose
        cmd=("$TICKGATE_BIN" "${TG_FLAGS[@]}" --server.workers="$TG_WORKERS" "${TG_XARGS[@]}" $TICKGATE_ARGS)
        if [ "$SERVER_TLS" = 1 ]; then
            cmd+=(--server.tls_listen=127.0.0.1:0 --server.tls_cert="$TLS_CERT" --server.tls_key="$TLS_KEY")
            port_re="$port_re (tls)"
        fi ;;
    uws)
        cmd=("$NODE" "$ROOT/bench/ref/uws-server.js" 0)
        [ "$SERVER_TLS" = 0 ] || cmd=(env TLS_CERT="$TLS_CERT" TLS_KEY="$TLS_KEY" "${cmd[@]}") ;; # env execs node
    ws) cmd=("$NODE" "$ROOT/bench/ref/ws-server.js" 0) ;;
    *) die "unknown server $name (tickgate, uws, ws)" ;;
    esac
    JWT_SECRET=$SECRET SYMBOLS_FILE=$SYMFILE HEARTBEAT_INTERVAL_S=$HEARTBEAT_S COMPRESSION=$UWS_COMPRESSION \
        "${PIN_SERVER[@]}" "${cmd[@]}" >"$log" 2>&1 </dev/null &
    SERVER_PID=$! # taskset execs the server: this is the server's own pid
    SERVER_LOG=$log
    SERVER_PORT=
    local i
    for ((i = 0; i < 100; i++)); do
        SERVER_PORT=$(sed -n "s/.*$port_re.*/\\1/p" "$log" | head -n 1)
        [ -z "$SERVER_PORT" ] || break
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$SERVER_PORT" ]; then
        say "bench: $name did not start; its log ($log):"
        tail -n 20 "$log" >&2
        stop_server
        return 1
    fi
}

stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then # it ended before we asked: say how
        local st=0
        wait "$SERVER_PID" 2>/dev/null || st=$?
        local msg
        msg="bench: the server (pid $SERVER_PID) had already exited, status $st$([ "$st" -gt 128 ] && echo " (signal $((st - 128)))")"
        say "$msg"
        echo "$msg" >>"$SERVER_LOG"
        SERVER_PID=
        return 0
    fi
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    local i
    for ((i = 0; i < 50; i++)); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}

# ---- scenarios -----------------------------------------------------------------

skip() { # skip SERVER SCEN REASON
    say "bench: $1 $2: skipped: $3"
    "$PY" -c 'import json,sys; json.dump({"skipped": sys.argv[1]}, open(sys.argv[2], "w"))' "$3" "$WORK/res/$1.$2.json"
}

# attempt SERVER SCEN TAG PLANNED_SECONDS LOADGEN_ARGS...: fresh server, one
# loadgen run against it (result in $WORK/res/SERVER.SCEN.TAG.json), server
# stopped.
attempt() {
    local server=$1 scen=$2 tag=$3 planned=$4
    shift 4
    local out=$WORK/res/$server.$scen$tag.json
    if ! start_server "$server" "$scen$tag"; then
        "$PY" -c 'import json,sys; json.dump({"error": "server did not start", "log": sys.argv[1]}, open(sys.argv[2], "w"))' \
            "$LOG_DIR/$server.$scen$tag.log" "$out"
        return 0
    fi
    # in the background and waited for, so that a signal to this script is
    # handled at once (cleanup stops the measurement and its loadgen)
    "$PY" "$ROOT/bench/measure.py" run --out "$out" --server-pid "$SERVER_PID" \
        --timeout $((planned + SLACK_S)) --log "$LOG_DIR/loadgen.$server.$scen$tag.log" -- \
        "${PIN_LOADGEN[@]}" "$LOADGEN_BIN" --host 127.0.0.1 --port "$SERVER_PORT" --server-pid "$SERVER_PID" \
        --pub-token "$PUB_TOKEN" --sub-token "$SUB_TOKEN" --symbol-prefix S --json "$@" </dev/null &
    MEASURE_PID=$!
    wait "$MEASURE_PID" || true
    MEASURE_PID=
    if [ "$server" = tickgate ]; then # its own counters (drops, conflation, disconnects) for the record
        local plain # the plain listener's port (SERVER_PORT is the TLS one in the *_tls scenarios)
        plain=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$SERVER_LOG" | head -n 1)
        "$PY" -c 'import sys, urllib.request as u; sys.stdout.write(u.urlopen(sys.argv[1], timeout=5).read().decode())' \
            "http://127.0.0.1:${plain:-$SERVER_PORT}/metrics" >"$LOG_DIR/tickgate.$scen$tag.metrics" 2>/dev/null || true
    fi
    stop_server
}

# scenario SERVER SCEN PLANNED_SECONDS LOADGEN_ARGS...: one attempt; a ramp
# whose failing step found the server mostly idle (a stall in transport, not
# saturation) is run again, up to RAMP_RETRIES times, and the best kept.
scenario() {
    local server=$1 scen=$2
    say "bench: $server $scen: ${*:4}"
    attempt "$server" "$scen" "" "${@:3}"
    local try=1 out=$WORK/res/$server.$scen.json
    while [ "$try" -le "$RAMP_RETRIES" ] && "$PY" "$ROOT/bench/measure.py" stalled "$out"; do
        mv "$out" "$WORK/res/$server.$scen.try$try.json"
        say "bench: $server $scen: the failing step found the server idle (a stall, not saturation): once more"
        attempt "$server" "$scen" ".retry$try" "${@:3}"
        mv "$WORK/res/$server.$scen.retry$try.json" "$out"
        try=$((try + 1))
    done
    if [ "$try" -gt 1 ]; then
        "$PY" "$ROOT/bench/measure.py" best --out "$out" "$WORK/res/$server.$scen".try*.json "$out"
    fi
}

want() { case " $SCENARIOS " in *" $1 "*) return 0 ;; esac; return 1; }

# tls_server SERVER SCEN: whether SERVER serves TLS (ws-server.js does not:
# the scenario is recorded as skipped).
tls_server() {
    [ "$1" = ws ] || return 0
    skip "$1" "$2" "the ws reference server has no TLS listener"
    return 1
}

started=$(date +%s)
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')
case ${LOADAVG%% *} in
0.[0-4]*) ;;
*) say "bench: warning: load average $LOADAVG: something else is running; the figures will be noisy" ;;
esac
say "bench: $([ "$QUICK" = 1 ] && echo quick || echo full) run; servers: $SERVERS; scenarios: $SCENARIOS; fd limit $FD_LIMIT"

for server in $SERVERS; do
    if want fanout; then
        scenario "$server" fanout $((RAMP_DURATION + WARMUP)) \
            --conns "$FANOUT_CONNS" --symbols 1 --per 1 --dist uniform \
            --rate "$FANOUT_START_RATE" --ramp --step-s "$STEP_S" --duration "$RAMP_DURATION" --warmup "$WARMUP"
    fi
    # No contention tax: the same fan-out with two workers sharing the one
    # pinned core must cost no more CPU per delivered message.
    if want fanout2w && [ "$server" = tickgate ]; then
        TG_WORKERS=2
        scenario "$server" fanout2w $((RAMP_DURATION + WARMUP)) \
            --conns "$FANOUT_CONNS" --symbols 1 --per 1 --dist uniform \
            --rate "$FANOUT_START_RATE" --ramp --step-s "$STEP_S" --duration "$RAMP_DURATION" --warmup "$WARMUP"
        TG_WORKERS=1
    fi
    # Compressed fan-out: the same ramp with permessage-deflate offered by
    # every subscriber (the loadgen inflates each distinct payload once, so
    # delivery and latency count as usual); the server's CPU per delivered
    # message against its plain fan-out's.
    if want fanoutz && [ "$server" != ws ]; then
        TG_XARGS=(--ws.compression=on --ws.compression_min_bytes=0) UWS_COMPRESSION=shared
        scenario "$server" fanoutz $((RAMP_DURATION + WARMUP)) --deflate \
            --conns "$FANOUT_CONNS" --symbols 1 --per 1 --dist uniform \
            --rate "$FANOUT_START_RATE" --ramp --step-s "$STEP_S" --duration "$RAMP_DURATION" --warmup "$WARMUP"
        TG_XARGS=() UWS_COMPRESSION=
    fi
    if want market; then
        scenario "$server" market $((RAMP_DURATION + WARMUP)) \
            --conns "$MARKET_CONNS" --symbols "$MARKET_SYMBOLS" --per "$MARKET_PER" --dist zipf \
            --rate "$MARKET_START_RATE" --ramp --step-s "$STEP_S" --duration "$RAMP_DURATION" --warmup "$WARMUP"
    fi
    # Both cores, nothing pinned: tickgate with 2 workers against the
    # single-threaded reference servers, the loadgen sharing the cores.
    if want market2c; then
        saved=("${PIN_SERVER[@]}") saved_lg=("${PIN_LOADGEN[@]}")
        PIN_SERVER=() PIN_LOADGEN=() TG_WORKERS=2
        scenario "$server" market2c $((RAMP_DURATION + WARMUP)) \
            --conns "$MARKET_CONNS" --symbols "$MARKET_SYMBOLS" --per "$MARKET_PER" --dist zipf \
            --rate "$MARKET_START_RATE" --ramp --step-s "$STEP_S" --duration "$RAMP_DURATION" --warmup "$WARMUP"
        PIN_SERVER=("${saved[@]}") PIN_LOADGEN=("${saved_lg[@]}") TG_WORKERS=1
    fi
    # The fan-out over wss:// (every connection TLS 1.3, AES-128-GCM).
    if want fanout_tls && tls_server "$server" fanout_tls; then
        SERVER_TLS=1
        scenario "$server" fanout_tls $((RAMP_DURATION + WARMUP)) --tls \
            --conns "$FANOUT_CONNS" --symbols 1 --per 1 --dist uniform \
            --rate "$FANOUT_START_RATE" --ramp --step-s "$STEP_S" --duration "$RAMP_DURATION" --warmup "$WARMUP"
        SERVER_TLS=0
    fi
done

# Latency at half the weakest fan-out maximum (ws left out when others ran:
# see measure.py rate).
if [ -z "${LATENCY_RATE:-}" ]; then
    LATENCY_RATE=$("$PY" "$ROOT/bench/measure.py" rate --dir "$WORK/res" --servers "$SERVERS" \
        --conns "$FANOUT_CONNS" --default 100)
fi

for server in $SERVERS; do
    # A ramp's 3-second steps flatter a server that falls behind slowly: hold
    # the best step for a whole run, stepping down until delivery keeps up.
    if want sustain; then
        if rate=$("$PY" "$ROOT/bench/measure.py" maxrate --file "$WORK/res/$server.fanout.json" \
            --conns "$FANOUT_CONNS" --factor 1 --pass); then
            down=0 held=0
            while :; do
                scenario "$server" sustain $((LATENCY_DURATION + WARMUP)) \
                    --conns "$FANOUT_CONNS" --symbols 1 --per 1 --dist uniform \
                    --rate "$rate" --duration "$LATENCY_DURATION" --warmup "$WARMUP"
                if "$PY" "$ROOT/bench/measure.py" holds "$WORK/res/$server.sustain.json"; then
                    held=1
                    break
                fi
                [ "$down" -lt "${SUSTAIN_STEPS:-6}" ] && [ $((rate * 4 / 5)) -ge 1 ] || break
                down=$((down + 1)) rate=$((rate * 4 / 5))
            done
            "$PY" "$ROOT/bench/measure.py" mark --file "$WORK/res/$server.sustain.json" \
                --set held=$held --set steps_down=$down || true
        else
            skip "$server" sustain "no fan-out maximum in this run (run the fanout scenario too)"
        fi
    fi
    if want latency; then
        scenario "$server" latency $((LATENCY_DURATION + WARMUP)) \
            --conns "$FANOUT_CONNS" --symbols 1 --per 1 --dist uniform \
            --rate "$LATENCY_RATE" --duration "$LATENCY_DURATION" --warmup "$WARMUP"
    fi
    # Past the maximum: the fan-out shape at fixed rates below and above this
    # server's own fan-out maximum (this run's ramp). A server that sheds
    # (tickgate: limits.shed_after_ms) keeps its p99 near the one below the
    # maximum; one that queues lets it grow with the backlog.
    if want saturation; then
        for f in 0.8 1.2; do
            rate=$("$PY" "$ROOT/bench/measure.py" maxrate --file "$WORK/res/$server.fanout.json" \
                --conns "$FANOUT_CONNS" --factor "$f") || {
                skip "$server" "sat_$f" "no fan-out maximum in this run (run the fanout scenario too)"
                continue
            }
            scenario "$server" "sat_$f" $((LATENCY_DURATION + WARMUP)) \
                --conns "$FANOUT_CONNS" --symbols 1 --per 1 --dist uniform \
                --rate "$rate" --duration "$LATENCY_DURATION" --warmup "$WARMUP"
        done
    fi
    if want idle; then
        i=0
        for n in $IDLE_CONNS; do
            i=$((i + 1))
            # the server and the loadgen each hold n sockets, plus their own fds
            if [ $((n + 100)) -gt "$FD_LIMIT" ]; then
                skip "$server" "idle$i" "$n connections need more than the fd limit of $FD_LIMIT per process"
                continue
            fi
            scenario "$server" "idle$i" $((IDLE_HOLD + n / 500)) --idle --conns "$n" \
                --symbols "$IDLE_SYMBOLS" --per 1 --dist uniform --duration "$IDLE_HOLD" --sources "$SOURCES"
        done
    fi
    if want storm; then
        # A storm lasts a fraction of a second: STORM_RUNS runs, the median kept.
        say "bench: $server storm: $STORM_RUNS runs of $STORM_CONNS handshakes, $STORM_CONCURRENCY in flight"
        for ((r = 1; r <= STORM_RUNS; r++)); do
            attempt "$server" storm ".r$r" $((STORM_CONNS / 200)) --handshake-only \
                --conns "$STORM_CONNS" --concurrency "$STORM_CONCURRENCY" --sources "$SOURCES"
        done
        "$PY" "$ROOT/bench/measure.py" median --key handshakes_per_s --out "$WORK/res/$server.storm.json" \
            "$WORK/res/$server.storm".r*.json
    fi
    # The same storm paced at one rate for every server: handshake latency
    # compared at equal load (the storm above hands a faster server more).
    if want storm_paced; then
        say "bench: $server storm_paced: $STORM_RUNS runs of $STORM_CONNS handshakes at $STORM_PACED_RATE/s"
        for ((r = 1; r <= STORM_RUNS; r++)); do
            attempt "$server" storm_paced ".r$r" $((STORM_CONNS / 200 + STORM_CONNS / STORM_PACED_RATE)) \
                --handshake-only --hs-rate "$STORM_PACED_RATE" --conns "$STORM_CONNS" \
                --concurrency "$STORM_CONCURRENCY" --sources "$SOURCES"
        done
        "$PY" "$ROOT/bench/measure.py" median --key handshake_p99_ms --out "$WORK/res/$server.storm_paced.json" \
            "$WORK/res/$server.storm_paced".r*.json
    fi
    if want idle_tls && tls_server "$server" idle_tls; then
        if [ $((IDLE_TLS_CONNS + 100)) -gt "$FD_LIMIT" ]; then
            skip "$server" idle_tls "$IDLE_TLS_CONNS connections need more than the fd limit of $FD_LIMIT per process"
        else
            SERVER_TLS=1
            scenario "$server" idle_tls $((IDLE_HOLD + IDLE_TLS_CONNS / 100)) --idle --tls --conns "$IDLE_TLS_CONNS" \
                --symbols "$IDLE_SYMBOLS" --per 1 --dist uniform --duration "$IDLE_HOLD" --sources "$SOURCES"
            SERVER_TLS=0
        fi
    fi
    # Reconnect storm over TLS: every handshake resumes the session ticket
    # the loadgen fetched first (TLS 1.3 PSK with ECDHE, no certificate).
    if want storm_tls && tls_server "$server" storm_tls; then
        SERVER_TLS=1
        say "bench: $server storm_tls: $STORM_RUNS runs of $STORM_CONNS resumed TLS handshakes, $STORM_CONCURRENCY in flight"
        for ((r = 1; r <= STORM_RUNS; r++)); do
            attempt "$server" storm_tls ".r$r" $((STORM_CONNS / 50)) --handshake-only --tls --tls-resume \
                --conns "$STORM_CONNS" --concurrency "$STORM_CONCURRENCY" --sources "$SOURCES"
        done
        "$PY" "$ROOT/bench/measure.py" median --key handshakes_per_s --out "$WORK/res/$server.storm_tls.json" \
            "$WORK/res/$server.storm_tls".r*.json
        SERVER_TLS=0
    fi
done

# Entitlements at load (tickgate only): MIX_CONNS subscribers on the same
# MIX_SYMBOLS symbols at a fixed rate, a third real-time (viewer), a third
# throttled (trader, 2 updates/s per symbol), a third delayed by 1 s (a
# token with "symbols":[] and "delayed_symbols":["*"]); then the same
# subscribers all real-time. Target: CPU per delivered message of the mix
# within 1.2x of the all-real-time run's. The rate keeps both runs below
# saturation: a saturated core batches more per send as turns lengthen, so
# runs delivering different totals at saturation are not comparable.
if want mix && [ -x "$TICKGATE_BIN" ] && case " $SERVERS " in *" tickgate "*) true ;; *) false ;; esac; then
    mixtok() { "$TICKGATE_BIN" token --ttl 86400 --auth.jwt_secret="$SECRET" "$@"; }
    MIX_RT=$(mixtok --sub mix-rt --role viewer)
    MIX_TH=$(mixtok --sub mix-th --role trader)
    MIX_DL=$(mixtok --sub mix-dl --role viewer --symbols '' --delayed-symbols '*')
    TG_XARGS=(--feed.delay_s=1 --throttle.trader=2)
    for v in mix_rt mix; do
        toks=$MIX_RT
        [ "$v" = mix ] && toks=$MIX_RT,$MIX_TH,$MIX_DL
        scenario tickgate "$v" $((LATENCY_DURATION + WARMUP + MIX_CONNS / 500)) --sub-token "$toks" \
            --conns "$MIX_CONNS" --symbols "$MIX_SYMBOLS" --per 1 --dist uniform --sources "$SOURCES" \
            --rate "$MIX_RATE" --duration "$LATENCY_DURATION" --warmup "$WARMUP"
    done
    TG_XARGS=()
fi

# Recovery storm (tickgate only): RECOVERY_CONNS subscribers drop their
# connections (no close frame) a third into the run, stay away while every
# symbol gets RECOVERY_GAP ticks, then all reconnect at once (concurrency
# STORM_CONCURRENCY) subscribing with "recover" from their last seq and
# epoch. Figures: time until every one of them is live (has every tick up to
# the storm's start, gap-free), and the p99 of the RECOVERY_STEADY
# subscribers that stayed, before and during the storm.
if want recovery && [ -x "$TICKGATE_BIN" ] && case " $SERVERS " in *" tickgate "*) true ;; *) false ;; esac; then
    scenario tickgate recovery $((RECOVERY_DURATION + WARMUP + RECOVERY_CONNS / 500)) \
        --conns $((RECOVERY_CONNS + RECOVERY_STEADY)) --recover-storm "$RECOVERY_CONNS" --recover-gap "$RECOVERY_GAP" \
        --symbols "$RECOVERY_SYMBOLS" --per "$RECOVERY_SYMBOLS" --dist uniform --sources "$SOURCES" \
        --concurrency "$STORM_CONCURRENCY" --rate "$RECOVERY_RATE" --duration "$RECOVERY_DURATION" --warmup "$WARMUP"
fi

# Several nodes (tickgate only, nothing pinned: the nodes, Redis and the
# loadgen share both cores): the market ramp with the subscribers split over
# the nodes and the publisher on the last one, so every tick crosses Redis
# to reach half of them. nodes1: one node, no Redis; nodes2r: two nodes on
# one redis-server; nodes2c: two nodes on a 3-shard Redis Cluster (when
# this tickgate has redis.cluster). Redis's CPU is recorded beside.
NODE_PIDS=() NODE_PORTS=() REDIS_PIDS=()
start_redis() { # start_redis PORT [ARGS...]: one private redis-server
    local port=$1
    shift
    (cd "$WORK" && exec redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no "$@") \
        >"$LOG_DIR/redis-$port.log" 2>&1 &
    REDIS_PIDS+=($!)
    local i
    for ((i = 0; i < 100; i++)); do
        redis-cli -p "$port" ping >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    say "bench: redis-server on $port did not start"
    return 1
}
start_node() { # start_node TAG [FLAGS...]: one tickgate, unpinned
    local tag=$1 log=$LOG_DIR/tickgate.$1.log
    shift
    "$TICKGATE_BIN" "${TG_FLAGS[@]}" --server.workers=1 "$@" >"$log" 2>&1 </dev/null &
    NODE_PIDS+=($!)
    local i port=
    for ((i = 0; i < 100; i++)); do
        port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$log" | head -n 1)
        [ -z "$port" ] || break
        sleep 0.1
    done
    [ -n "$port" ] || { say "bench: node $tag did not start (see $log)"; return 1; }
    NODE_PORTS+=("$port")
    if [ $# -gt 0 ] && grep -q -- --redis <<<"$*"; then # wait until it reports Redis up
        for ((i = 0; i < 100; i++)); do
            "$PY" -c 'import json,sys,urllib.request as u; sys.exit(json.load(u.urlopen(sys.argv[1],timeout=2))["checks"]["redis"]!="up")' \
                "http://127.0.0.1:$port/health" 2>/dev/null && break
            sleep 0.1
        done
    fi
}
stop_nodes() {
    local p
    for p in "${NODE_PIDS[@]}" "${REDIS_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${NODE_PIDS[@]}" "${REDIS_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    NODE_PIDS=() NODE_PORTS=() REDIS_PIDS=()
}
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
nodes_run() { # nodes_run SCEN: the market ramp against NODE_PORTS
    local scen=$1 out=$WORK/res/tickgate.$1.json ports pids rflags=()
    ports=$(IFS=,; echo "${NODE_PORTS[*]}")
    pids=$(IFS=,; echo "${NODE_PIDS[*]}")
    local r
    for r in "${REDIS_PIDS[@]}"; do rflags+=(--redis-pid "$r"); done
    say "bench: tickgate $scen: ${#NODE_PORTS[@]} node(s) on ports $ports"
    "$PY" "$ROOT/bench/measure.py" run --out "$out" --server-pid "${NODE_PIDS[0]}" "${rflags[@]}" \
        --timeout $((RAMP_DURATION + WARMUP + SLACK_S)) --log "$LOG_DIR/loadgen.tickgate.$scen.log" -- \
        "$LOADGEN_BIN" --host 127.0.0.1 --port "$ports" --pub-port "${NODE_PORTS[-1]}" --server-pid "$pids" \
        --pub-token "$PUB_TOKEN" --sub-token "$SUB_TOKEN" --symbol-prefix S --json \
        --conns "$NODES_CONNS" --symbols "$MARKET_SYMBOLS" --per "$MARKET_PER" --dist zipf \
        --rate "$MARKET_START_RATE" --ramp --step-s "$STEP_S" --duration "$RAMP_DURATION" --warmup "$WARMUP" \
        </dev/null || true
    stop_nodes
}
if want nodes && [ -x "$TICKGATE_BIN" ] && case " $SERVERS " in *" tickgate "*) true ;; *) false ;; esac; then
    if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
        skip tickgate nodes2r "redis-server not installed (apt-get install redis-server)"
    else
        start_node nodes1 && nodes_run nodes1
        rp=$(free_port)
        if start_redis "$rp"; then
            start_node nodes2r.a --redis.url="redis://127.0.0.1:$rp" &&
                start_node nodes2r.b --redis.url="redis://127.0.0.1:$rp" && nodes_run nodes2r
        fi
        stop_nodes
        if grep -q "^ *redis.cluster " <<<"$TG_HELP"; then
            cports=()
            for i in 1 2 3; do
                while :; do c=$(free_port); [ "$c" -lt 55535 ] && break; done # its bus port is +10000
                start_redis "$c" --cluster-enabled yes --cluster-config-file "nodes-$c.conf" || break
                cports+=("127.0.0.1:$c")
            done
            if [ ${#cports[@]} = 3 ] && redis-cli --cluster create "${cports[@]}" --cluster-replicas 0 --cluster-yes \
                >"$LOG_DIR/redis-cluster-create.log" 2>&1; then
                for ((i = 0; i < 100; i++)); do
                    redis-cli -p "${cports[0]##*:}" cluster info 2>/dev/null | grep -q "cluster_state:ok" && break
                    sleep 0.1
                done
                start_node nodes2c.a --redis.cluster=true --redis.url="redis://${cports[0]}" &&
                    start_node nodes2c.b --redis.cluster=true --redis.url="redis://${cports[1]}" && nodes_run nodes2c
            else
                say "bench: nodes2c: the cluster could not be made (see $LOG_DIR/redis-cluster-create.log)"
            fi
            stop_nodes
        else
            skip tickgate nodes2c "this tickgate has no redis.cluster"
        fi
    fi
fi

say "bench: done in $(($(date +%s) - started)) s"
say ""
"$PY" "$ROOT/bench/measure.py" table --dir "$WORK/res" --md "$RESULTS_DIR/latest.md" --json "$RESULTS_DIR/latest.json" \
    --param quick="$QUICK" --param loadavg="$LOADAVG" --param servers="$SERVERS" --param node="$NODE" --param tickgate_bin="$TICKGATE_BIN" \
    --param server_cpu="$SERVER_CPU" --param loadgen_cpu="$LOADGEN_CPU" \
    --param fanout_conns="$FANOUT_CONNS" --param market_conns="$MARKET_CONNS" \
    --param market_symbols="$MARKET_SYMBOLS" --param market_per="$MARKET_PER" \
    --param latency_rate="$LATENCY_RATE" --param latency_duration="$LATENCY_DURATION" --param idle_conns="$IDLE_CONNS" --param storm_conns="$STORM_CONNS" \
    --param storm_runs="$STORM_RUNS" --param idle_tls_conns="$IDLE_TLS_CONNS" \
    --param mix_conns="$MIX_CONNS" --param mix_symbols="$MIX_SYMBOLS" --param mix_rate="$MIX_RATE" \
    --param recovery_conns="$RECOVERY_CONNS" --param recovery_steady="$RECOVERY_STEADY" \
    --param recovery_symbols="$RECOVERY_SYMBOLS" --param recovery_gap="$RECOVERY_GAP" \
    --param nodes_conns="$NODES_CONNS" --param storm_paced_rate="$STORM_PACED_RATE"
say ""
say "bench: table written to ${RESULTS_DIR#"$ROOT"/}/latest.md (raw: latest.json, logs: logs/)"
