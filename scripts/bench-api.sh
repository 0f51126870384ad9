#!/usr/bin/env bash
# Benchmark of Mediator's REST API (docs/performance.md, "REST API").
#
# A benchmark, not a test: CI must not run it (it refuses when CI is set,
# unless BENCH_FORCE=1). It needs wrk (`apt-get install -y wrk`), curl, and
# for the PostgreSQL store a server on 127.0.0.1:5432 that lets PG_USER
# create databases.
#
# For each store (SQLite in a temp file; PostgreSQL in a fresh database that
# is dropped afterwards) it starts the release binary on a free loopback port
# with its own temp config, seeds SEED_BINDINGS bindings, then measures
#   GET  /bindings/{sid}         (rotating over the seeded SIDs)
#   GET  /bindings?limit=100     (SEED_BINDINGS >= 100 bindings exist)
#   POST /bindings               (distinct origination_did per request,
#                                 explicit redirect_did)
# RUNS times each (after one warm-up run of WARMUP seconds) and reports the
# medians. Every POST must answer 200: non-200 answers are counted in the
# Lua response hook, and a run with any error makes the result INVALID and
# the script exit 1.
#
# Knobs (environment):
#   DURATION=10s       length of one measured run (wrk -d)
#   WARMUP=3s          length of the warm-up run before each endpoint
#   RUNS=3             measured runs per endpoint and store; medians reported
#   CONNECTIONS=32     wrk -c
#   THREADS=1          wrk -t (one load thread: it keeps up, and leaves the
#                      second core to the server under test)
#   MAX_REQUESTS       cap on the requests of one run (each wrk thread stops
#                      after MAX_REQUESTS/THREADS responses); default 100,000
#                      per second of DURATION, far above what 2 cores serve.
#                      A run that hits it is marked "capped": wrk divides by
#                      the full DURATION, so its req/s is then too low.
#   SEED_BINDINGS=1000 bindings created before the GET runs
#   STORES="sqlite postgres"
#   ENDPOINTS="get list post"
#   PG_HOST=127.0.0.1 PG_PORT=5432 PG_USER=postgres
#   DB_MAX_CONNECTIONS (database.max_connections; default: the server's, 8)
#   BUILD=1            run `cargo build --release` first (0: use the binary as is)
#   MEDIATOR_BIN=target/release/mediator
#   RESULTS_DIR=results
#
# Output: a summary table on stdout and in results/bench-api-<time>.md,
# the raw per-run figures in results/bench-api-<time>.tsv.

set -euo pipefail

if [[ -n "${CI:-}" && "${BENCH_FORCE:-0}" != 1 ]]; then
    echo "bench-api.sh: a benchmark, not a test; refusing to run under CI (set BENCH_FORCE=1 to override)" >&2
    exit 2
fi

cd "$(dirname "$0")/.."
ROOT=$PWD

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
RUNS=${RUNS:-3}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-1}
MAX_REQUESTS=${MAX_REQUESTS:-}
SEED_BINDINGS=${SEED_BINDINGS:-1000}
STORES=${STORES:-"sqlite postgres"}
ENDPOINTS=${ENDPOINTS:-"get list post"}
PG_HOST=${PG_HOST:-127.0.0.1}
PG_PORT=${PG_PORT:-5432}
PG_USER=${PG_USER:-postgres}
DB_MAX_CONNECTIONS=${DB_MAX_CONNECTIONS:-}
BUILD=${BUILD:-1}
MEDIATOR_BIN=${MEDIATOR_BIN:-target/release/mediator}
RESULTS_DIR=${RESULTS_DIR:-results}

die() { echo "bench-api.sh: $*" >&2; exit 1; }

for tool in wrk curl; do
    command -v "$tool" >/dev/null || die "$tool not found (Debian: apt-get install -y $tool)"
done
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer"
[[ "$THREADS" =~ ^[1-9][0-9]*$ && "$CONNECTIONS" =~ ^[1-9][0-9]*$ ]] || die "THREADS and CONNECTIONS must be positive integers"
(( CONNECTIONS >= THREADS )) || die "CONNECTIONS must be >= THREADS"
[[ -z "$MAX_REQUESTS" || "$MAX_REQUESTS" =~ ^[1-9][0-9]*$ ]] || die "MAX_REQUESTS must be a positive integer"
[[ "$SEED_BINDINGS" =~ ^[0-9]+$ ]] || die "SEED_BINDINGS must be an integer"
[[ "$DURATION" =~ ^[0-9]+[smh]?$ && "$WARMUP" =~ ^[0-9]+[smh]?$ ]] || die "DURATION and WARMUP look like 10s, 2m"
[[ "$PG_HOST" == 127.* || "$PG_HOST" == localhost || "$PG_HOST" == ::1 ]] || die "PG_HOST must be a loopback address"
if [[ " $ENDPOINTS " == *" list "* ]] && (( SEED_BINDINGS < 100 )); then
    die "the list benchmark needs SEED_BINDINGS >= 100"
fi
if [[ " $ENDPOINTS " == *" get "* ]] && (( SEED_BINDINGS < 1 )); then
    die "the get benchmark needs SEED_BINDINGS >= 1"
fi

# Seconds of a wrk duration, for the outer `timeout` that bounds every run
# even if wrk hangs.
secs() {
    local d=$1
    case $d in
        *h) echo $(( ${d%h} * 3600 )) ;;
        *m) echo $(( ${d%m} * 60 )) ;;
        *s) echo "${d%s}" ;;
        *) echo "$d" ;;
    esac
}

[[ -n "$MAX_REQUESTS" ]] || MAX_REQUESTS=$(( 100000 * $(secs "$DURATION") ))
PER_THREAD_CAP=$(( (MAX_REQUESTS + THREADS - 1) / THREADS ))
# Origination numbers of the POST runs: +1 AAA XXX NNNN with AAA one of 4
# New York area codes and XXX an exchange 200-999 other than N11, 555 and a
# few special ones: 10,000 numbers per exchange. A wrk thread stops after
# PER_THREAD_CAP responses but may have sent up to CONNECTIONS more
# requests, so each thread takes a block of POST_STRIDE numbers. Each store
# starts from a fresh database; the space must hold (warm-up + RUNS) runs.
POST_STRIDE=$(( PER_THREAD_CAP + CONNECTIONS + 100 ))
NUMBER_SPACE=$(( 4 * (800 - 8 - 5) * 10000 ))
if [[ " $ENDPOINTS " == *" post "* ]] && (( (RUNS + 1) * THREADS * POST_STRIDE > NUMBER_SPACE )); then
    die "MAX_REQUESTS * (RUNS + 1) exceeds the $NUMBER_SPACE distinct origination numbers; lower MAX_REQUESTS or RUNS"
fi

# Environment overrides of the server's config must not leak into the
# benchmark: drop every MEDIATOR_* variable but our own knob.
for v in $(compgen -v MEDIATOR_ || true); do
    [[ $v == MEDIATOR_BIN ]] || unset "$v"
done

if [[ "$BUILD" == 1 ]]; then
    echo "== cargo build --release" >&2
    cargo build --release --quiet
fi
[[ -x "$MEDIATOR_BIN" ]] || die "$MEDIATOR_BIN not found; build with cargo build --release"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mediator-bench.XXXXXX")
# Run a private copy: a concurrent `cargo build` must not swap the binary
# between stores.
cp "$MEDIATOR_BIN" "$WORK/mediator"
BIN_SHA=$(sha256sum "$WORK/mediator" | cut -c1-12)
SERVER_PID=""
PG_DB=""

stop_server() {
    if [[ -n "$SERVER_PID" ]]; then
        if kill -0 "$SERVER_PID" 2>/dev/null; then
            kill -TERM "$SERVER_PID" 2>/dev/null || true
            for _ in $(seq 1 100); do
                kill -0 "$SERVER_PID" 2>/dev/null || break
                sleep 0.1
            done
            kill -0 "$SERVER_PID" 2>/dev/null && kill -KILL "$SERVER_PID" 2>/dev/null || true
        fi
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}

drop_pg_db() {
    if [[ -n "$PG_DB" ]]; then
        dropdb -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" --if-exists "$PG_DB" >/dev/null 2>&1 || true
        PG_DB=""
    fi
}

cleanup() {
    stop_server
    drop_pg_db
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ----- machine and run description -----

CPU_MODEL=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
MEM_TOTAL=$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
MACHINE="nproc $(nproc), ${CPU_MODEL:-unknown CPU}, $MEM_TOTAL RAM, Linux $(uname -r)"
GIT_REV=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n "$(git status --porcelain -- src migrations Cargo.toml Cargo.lock 2>/dev/null)" ]]; then
    GIT_REV="$GIT_REV+dirty"
fi
STAMP=$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$RESULTS_DIR"
RAW="$RESULTS_DIR/bench-api-$STAMP.tsv"
SUMMARY="$RESULTS_DIR/bench-api-$STAMP.md"
printf 'store\tendpoint\trun\trequests\tduration_s\trps\tp50_ms\tp90_ms\tp99_ms\tmax_ms\terrors\tnon200\tsocket_errors\tserver_cpu_pct\tmachine_busy_pct\n' > "$RAW"

# ----- the server -----

LOGIN=bench
PASSWORD=bench-password
AUTH="Authorization: Basic $(printf '%s:%s' "$LOGIN" "$PASSWORD" | base64 -w0)"
# The account's DIDs: the seeded bindings use the first, POST runs the second.
DIDS=(15162065337 15162065338 15162065339 15162065340)
SEED_REDIRECT=${DIDS[0]}
POST_REDIRECT=${DIDS[1]}
DESTINATION=12127365000
BASE_URL=""

start_server() { # store url
    local store=$1 url=$2 conf="$WORK/mediator-$1.toml" log="$WORK/mediator-$1.log"
    {
        echo '[api]'
        echo 'listen = "127.0.0.1:0"'
        echo '[sip]'
        echo 'listen = ["udp:127.0.0.1:0", "tcp:127.0.0.1:0"]'
        echo 'advertised_host = "127.0.0.1"'
        echo 'trunk = "sip:127.0.0.1:9"'
        echo 'trusted = ["127.0.0.0/8"]'
        echo '[media]'
        echo 'advertised_ip = "127.0.0.1"'
        echo 'bind_ip = "127.0.0.1"'
        echo '[database]'
        echo "url = \"$url\""
        [[ -n "$DB_MAX_CONNECTIONS" ]] && echo "max_connections = $DB_MAX_CONNECTIONS"
        echo '[[accounts]]'
        echo 'name = "Bench"'
        echo "login = \"$LOGIN\""
        echo "password = \"$PASSWORD\""
        printf 'dids = ["%s", "%s", "%s", "%s"]\n' "${DIDS[@]}"
        echo 'permissions = []'
    } > "$conf"
    NO_COLOR=1 MEDIATOR_LOG=warn,mediator=info "$WORK/mediator" serve --config "$conf" >"$log" 2>&1 &
    SERVER_PID=$!
    local addr=""
    for _ in $(seq 1 300); do
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$log" >&2; die "the server ($store) exited at start"; }
        addr=$(sed -n 's/\x1b\[[0-9;]*m//g; s/.*api=\(127\.0\.0\.1:[0-9]\+\).*/\1/p' "$log" | head -n1)
        [[ -n "$addr" ]] && break
        sleep 0.1
    done
    [[ -n "$addr" ]] || { cat "$log" >&2; die "the server ($store) did not report its listen address"; }
    BASE_URL="http://$addr/mediator/v1"
    curl -fsS -H "$AUTH" "$BASE_URL/bindings?limit=1" >/dev/null || die "the server ($store) does not answer at $BASE_URL"
    echo "== $store: server pid $SERVER_PID at $BASE_URL" >&2
}

# Creates SEED_BINDINGS bindings on SEED_REDIRECT (origination +1 646 ...)
# and writes their SIDs to $WORK/sids.
seed() {
    local n=$SEED_BINDINGS i orig body resp sid
    : > "$WORK/sids"
    (( n == 0 )) && return 0
    echo "== seeding $n bindings" >&2
    for (( i = 0; i < n; i++ )); do
        orig=$(printf '1646736%04d' "$i")
        body="{\"destination_did\":\"$DESTINATION\",\"origination_did\":\"$orig\",\"redirect_did\":\"$SEED_REDIRECT\"}"
        resp=$(curl -sS -H "$AUTH" -H 'Content-Type: application/json' -d "$body" "$BASE_URL/bindings") \
            || die "seeding binding $i failed"
        sid=$(printf '%s' "$resp" | grep -o '"binding_sid":"[^"]*"' | head -n1 | cut -d'"' -f4) || true
        [[ -n "$sid" ]] || die "seeding binding $i: unexpected answer: ${resp:0:300}"
        echo "$sid" >> "$WORK/sids"
    done
}

# ----- wrk scripts -----

# Shared part: per-thread count of responses and of non-200 answers, the
# per-thread request cap, and a machine-readable summary line.
cat > "$WORK/common.lua" <<'LUA'
local threads = {}
local next_id = 0
responses = 0
non200 = 0
bad_sample = ""

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function common_init(args)
  cap = tonumber(args[1])
end

function response(status, headers, body)
  responses = responses + 1
  if status ~= 200 then
    non200 = non200 + 1
    if bad_sample == "" then
      bad_sample = tostring(status) .. " " .. string.sub(body or "", 1, 300)
    end
  end
  if responses >= cap then
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local bad, sample = 0, ""
  for _, t in ipairs(threads) do
    bad = bad + (t:get("non200") or 0)
    local s = t:get("bad_sample")
    if sample == "" and s and s ~= "" then sample = s end
  end
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    "RESULT requests=%d duration_s=%.3f rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d non200=%d socket_errors=%d\n",
    summary.requests, secs, summary.requests / secs,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    bad, e.connect + e.read + e.write + e.timeout))
  if sample ~= "" then
    io.write("FIRST_BAD " .. string.gsub(sample, "\n", " ") .. "\n")
  end
end
LUA

# GET /bindings/{sid}, rotating over the seeded SIDs (args: cap, sid file,
# path prefix). Requests are built once in init.
cat > "$WORK/get.lua" <<'LUA'
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
local reqs, n, i = {}, 0, 0
function init(args)
  common_init(args)
  for sid in io.lines(args[2]) do
    n = n + 1
    reqs[n] = wrk.format("GET", args[3] .. sid)
  end
  i = (id or 0) * 7919 % n
end
function request()
  i = i + 1
  if i > n then i = 1 end
  return reqs[i]
end
LUA

# POST /bindings with a distinct origination_did per request (args: cap,
# number offset of this run, stride, redirect DID, destination DID). Thread
# k of a run uses numbers offset + k * stride .. offset + (k + 1) * stride - 1.
cat > "$WORK/post.lua" <<'LUA'
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
local areas = { "212", "646", "718", "917" }
local exch = {}
local special = { [555] = true, [950] = true, [958] = true, [959] = true, [976] = true }
for e = 200, 999 do
  if e % 100 ~= 11 and not special[e] then exch[#exch + 1] = tostring(e) end
end
local per_area = #exch * 10000
local next_num, stride, redirect, dest
function init(args)
  common_init(args)
  stride = tonumber(args[3])
  next_num = tonumber(args[2]) + (id or 0) * stride
  redirect, dest = args[4], args[5]
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end
function request()
  local c = next_num
  next_num = next_num + 1
  local a = areas[math.floor(c / per_area) + 1]
  local r = c % per_area
  local e = exch[math.floor(r / 10000) + 1]
  local orig = "1" .. a .. e .. string.format("%04d", r % 10000)
  local body = '{"destination_did":"' .. dest .. '","origination_did":"' .. orig ..
               '","redirect_did":"' .. redirect .. '"}'
  return wrk.format("POST", nil, nil, body)
end
LUA

# GET /bindings?limit=100: a fixed request.
cat > "$WORK/list.lua" <<'LUA'
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
function init(args)
  common_init(args)
end
LUA

# ----- measuring -----

cpu_ticks_of() { # pid -> utime+stime in clock ticks
    awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0
}
machine_ticks() { # -> "busy total" over all CPUs
    awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat
}
CLK_TCK=$(getconf CLK_TCK)

POST_OFFSET=0

# One wrk run; prints the RESULT fields plus server_cpu and machine_busy.
# Runs in a command substitution: the caller advances POST_OFFSET.
wrk_run() { # kind duration
    local kind=$1 dur=$2 url args out rc
    case $kind in
        get)  url="$BASE_URL/bindings"; args=("$PER_THREAD_CAP" "$WORK/sids" "/mediator/v1/bindings/") ;;
        list) url="$BASE_URL/bindings?limit=100"; args=("$PER_THREAD_CAP") ;;
        post) url="$BASE_URL/bindings"; args=("$PER_THREAD_CAP" "$POST_OFFSET" "$POST_STRIDE" "$POST_REDIRECT" "$DESTINATION") ;;
    esac
    local s0 m0 s1 m1
    s0=$(cpu_ticks_of "$SERVER_PID"); m0=$(machine_ticks)
    set +e
    out=$(BENCH_LUA_DIR="$WORK" timeout --signal=TERM --kill-after=5 $(( $(secs "$dur") + 30 )) \
        wrk -t "$THREADS" -c "$CONNECTIONS" -d "$dur" --timeout 5s -H "$AUTH" \
            -s "$WORK/$kind.lua" "$url" -- "${args[@]}" 2>&1)
    rc=$?
    set -e
    s1=$(cpu_ticks_of "$SERVER_PID"); m1=$(machine_ticks)
    kill -0 "$SERVER_PID" 2>/dev/null || die "the server died during the $kind run; log: $(tail -n 20 "$WORK"/mediator-*.log)"
    local line
    line=$(printf '%s\n' "$out" | grep '^RESULT ' | tail -n1) || true
    if (( rc != 0 )) || [[ -z "$line" ]]; then
        printf '%s\n' "$out" >&2
        die "wrk failed (exit $rc) on $kind"
    fi
    local bad
    bad=$(printf '%s\n' "$out" | grep '^FIRST_BAD ' | head -n1 || true)
    [[ -n "$bad" ]] && echo "   $kind: $bad" >&2
    read -r mb0 mt0 <<<"$m0"
    read -r mb1 mt1 <<<"$m1"
    local wall srv busy
    wall=$(printf '%s\n' "$line" | sed 's/.*duration_s=\([0-9.]*\).*/\1/')
    srv=$(awk -v a="$s0" -v b="$s1" -v hz="$CLK_TCK" -v w="$wall" 'BEGIN { printf "%.0f", (b - a) / hz / w * 100 }')
    busy=$(awk -v a="$mb0" -v b="$mb1" -v ta="$mt0" -v tb="$mt1" 'BEGIN { if (tb > ta) printf "%.0f", (b - a) / (tb - ta) * 100; else print 0 }')
    echo "$line server_cpu=$srv machine_busy=$busy"
}

advance() { # kind: the next POST run takes fresh origination numbers
    [[ $1 == post ]] && POST_OFFSET=$(( POST_OFFSET + THREADS * POST_STRIDE ))
    return 0
}

field() { # line name
    printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"
}

median() { # numbers... -> median (mean of the middle two for an even count)
    printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

declare -a TABLE=()
INVALID=0

label_of() {
    case $1 in
        get) echo "GET /bindings/{sid}" ;;
        list) echo "GET /bindings?limit=100" ;;
        post) echo "POST /bindings" ;;
    esac
}

target_of() { # kind store rps p99_ms -> verdict
    local kind=$1 store=$2 rps=$3 p99=$4
    case "$kind/$store" in
        get/*) awk -v r="$rps" -v p="$p99" 'BEGIN { print ((r >= 20000 && p < 5) ? "met (>= 20000/s, p99 < 5 ms)" : "NOT met (>= 20000/s, p99 < 5 ms)") }' ;;
        post/sqlite) awk -v r="$rps" 'BEGIN { print ((r >= 3000) ? "met (>= 3000/s)" : "NOT met (>= 3000/s)") }' ;;
        *) echo "-" ;;
    esac
}

bench_endpoint() { # store kind
    local store=$1 kind=$2 r line
    local -a rps=() p50=() p99=() cpu=() busy=()
    local errors=0 requests=0 capped=0
    echo "== $store $(label_of "$kind"): warm-up $WARMUP" >&2
    line=$(wrk_run "$kind" "$WARMUP")
    advance "$kind"
    local werr=$(( $(field "$line" non200) + $(field "$line" socket_errors) ))
    (( werr == 0 )) || { echo "   warm-up had $werr errors" >&2; errors=$(( errors + werr )); }
    for (( r = 1; r <= RUNS; r++ )); do
        line=$(wrk_run "$kind" "$DURATION")
        advance "$kind"
        local e=$(( $(field "$line" non200) + $(field "$line" socket_errors) ))
        errors=$(( errors + e ))
        requests=$(( requests + $(field "$line" requests) ))
        if (( $(field "$line" requests) >= THREADS * PER_THREAD_CAP )); then
            capped=1
            echo "   run $r hit the cap of $MAX_REQUESTS requests: its req/s is underestimated" >&2
        fi
        local v50 v90 v99 vmax
        v50=$(awk -v u="$(field "$line" p50_us)" 'BEGIN { printf "%.2f", u / 1000 }')
        v90=$(awk -v u="$(field "$line" p90_us)" 'BEGIN { printf "%.2f", u / 1000 }')
        v99=$(awk -v u="$(field "$line" p99_us)" 'BEGIN { printf "%.2f", u / 1000 }')
        vmax=$(awk -v u="$(field "$line" max_us)" 'BEGIN { printf "%.2f", u / 1000 }')
        rps+=("$(field "$line" rps)"); p50+=("$v50"); p99+=("$v99")
        cpu+=("$(field "$line" server_cpu)"); busy+=("$(field "$line" machine_busy)")
        printf '%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n' \
            "$store" "$(label_of "$kind")" "$r" "$(field "$line" requests)" "$(field "$line" duration_s)" \
            "$(field "$line" rps)" "$v50" "$v90" "$v99" "$vmax" "$e" "$(field "$line" non200)" \
            "$(field "$line" socket_errors)" "$(field "$line" server_cpu)" "$(field "$line" machine_busy)" >> "$RAW"
        printf '   run %d: %s req/s, p50 %s ms, p99 %s ms, max %s ms, errors %d, server CPU %s%%, machine busy %s%%\n' \
            "$r" "$(field "$line" rps)" "$v50" "$v99" "$vmax" "$e" "$(field "$line" server_cpu)" "$(field "$line" machine_busy)" >&2
    done
    local mrps m50 m99 mcpu mbusy verdict
    mrps=$(median "${rps[@]}"); m50=$(median "${p50[@]}"); m99=$(median "${p99[@]}")
    mcpu=$(median "${cpu[@]}"); mbusy=$(median "${busy[@]}")
    verdict=$(target_of "$kind" "$store" "$mrps" "$m99")
    (( capped )) && verdict="$verdict; capped by MAX_REQUESTS"
    if (( errors > 0 )); then
        INVALID=1
        verdict="INVALID ($errors errors)"
    fi
    TABLE+=("$(printf '| %s | %s | %.0f | %s | %s | %d | %s%% | %s%% | %s |' \
        "$(label_of "$kind")" "$store" "$mrps" "$m50" "$m99" "$errors" "$mcpu" "$mbusy" "$verdict")")
}

bench_store() { # store
    local store=$1 url
    case $store in
        sqlite) url="sqlite://$WORK/bench.db" ;;
        postgres)
            command -v createdb >/dev/null || die "createdb not found (PostgreSQL client tools)"
            PG_DB="mediator_bench_$$_$STAMP"
            PG_DB=${PG_DB//-/_}
            createdb -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" "$PG_DB" || die "cannot create database $PG_DB"
            url="postgres://$PG_USER@$PG_HOST:$PG_PORT/$PG_DB"
            ;;
        *) die "unknown store $store (sqlite or postgres)" ;;
    esac
    start_server "$store" "$url"
    seed
    POST_OFFSET=0
    local kind
    for kind in $ENDPOINTS; do
        case $kind in
            get|list|post) bench_endpoint "$store" "$kind" ;;
            *) die "unknown endpoint $kind (get, list or post)" ;;
        esac
    done
    stop_server
    drop_pg_db
    rm -f "$WORK"/bench.db*
}

# How busy the machine is before we load it: other work skews the figures.
read -r b0 t0 <<<"$(machine_ticks)"; sleep 2; read -r b1 t1 <<<"$(machine_ticks)"
IDLE_BUSY=$(awk -v a="$b0" -v b="$b1" -v ta="$t0" -v tb="$t1" 'BEGIN { if (tb > ta) printf "%.0f", (b - a) / (tb - ta) * 100; else print 0 }')
echo "== machine busy before the benchmark: $IDLE_BUSY%" >&2

for store in $STORES; do
    bench_store "$store"
done

{
    echo "# Mediator REST API benchmark, $STAMP UTC"
    echo
    echo "- machine: $MACHINE"
    echo "- build: release, git $GIT_REV, binary sha256 $BIN_SHA"
    echo "- load: wrk -t $THREADS -c $CONNECTIONS -d $DURATION (warm-up $WARMUP), $RUNS runs, medians;" \
         "cap $MAX_REQUESTS requests per run; wrk shares the machine with the server"
    echo "- data: $SEED_BINDINGS bindings seeded before the GET runs; POST runs add one binding per request" \
         "(distinct origination_did, explicit redirect_did)"
    echo "- database.max_connections: ${DB_MAX_CONNECTIONS:-server default}"
    echo "- machine busy before the benchmark (2 s, no load of ours): $IDLE_BUSY%;" \
         "\"machine busy\" below is all CPUs over a run: server + wrk + PostgreSQL + anything else"
    echo
    echo "| endpoint | store | req/s (median) | p50 ms | p99 ms | errors | server CPU | machine busy | target |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---|"
    printf '%s\n' "${TABLE[@]}"
    echo
    echo "Raw runs: $RAW"
} | tee "$SUMMARY"

echo "Summary written to $SUMMARY" >&2
if (( INVALID )); then
    echo "bench-api.sh: some runs had errors; the results are INVALID" >&2
    exit 1
fi
