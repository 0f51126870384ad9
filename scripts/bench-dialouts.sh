#!/usr/bin/env bash
# How many dialouts per second one Mediator instance can START with zero
# failures (issue 6; docs/performance.md, "Dialouts").
#
# One release binary (`mediator serve`) on a fresh PostgreSQL database; the
# trunk is a SIPp UAS (sip-tests/dialout-sched/uas_busy.xml) that answers
# every INVITE 486 Busy Here, so each dialout is one stage-one INVITE and
# ends stage_one_busy (stage two is never called: the bench measures how
# fast dialouts are started, not bridged). For each target rate R, each run
# creates N dialouts over the REST API (due in an hour), then spreads their
# fire_at over N/R seconds from 2 s ahead (dialout i due at base + i/R) with
# one SQL statement; the UAS logs each new call (one line per Call-ID) and
# the stage-one record's date_start says when its INVITE was sent:
#   achieved = N / (last stage-one start - base)  dialouts started per second
#   lag      = stage-one start - the dialout's fire_at (median and max)
#   failures = dialouts whose stage one was not called exactly once (one
#              Call-ID; a retransmitted INVITE is the same call), plus
#              dialouts not recorded with outcome stage_one_busy
# Prints each run, then per rate the median achieved rate and whether every
# run had zero failures. (All N due at one instant instead measures the
# relay port pool: a burst larger than rtp_ports allows concurrently fails
# with stage_one_failed; the bench's pool is 1,000 ports.)
#
# Usage: scripts/bench-dialouts.sh [N (default 600)] [RUNS (default 3)] [RATES (default "200 400 800 1600")]
# Env: MEDIATOR_BIN (default target/release/mediator, built when missing),
# MEDIATOR_TEST_PG (admin URL, default postgres://postgres@127.0.0.1:5432/postgres),
# PORT_BASE (ports PORT_BASE+200..+202, default 22000), RTP_THOUSANDS
# (relay ports N000-N999, default 44). Needs sipp, psql, python3, curl.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N="${1:-600}" RUNS="${2:-3}" RATES="${3:-200 400 800 1600}"
BIN="${MEDIATOR_BIN:-$ROOT/target/release/mediator}"
ADMIN="${MEDIATOR_TEST_PG:-postgres://postgres@127.0.0.1:5432/postgres}"
PB="${PORT_BASE:-22000}" RT="${RTP_THOUSANDS:-44}"
[ "$N" -ge 1 ] && [ "$N" -le 5000 ] || { echo "N must be 1..5000"; exit 2; }
for r in $RATES; do [ "$r" -ge 1 ] && [ "$r" -le 100000 ] || { echo "rates must be 1..100000"; exit 2; }; done
[ "$RUNS" -ge 1 ] && [ "$RUNS" -le 9 ] || { echo "RUNS must be 1..9"; exit 2; }
for t in sipp psql python3 curl; do command -v "$t" >/dev/null || { echo "missing tool: $t"; exit 1; }; done
[ -x "$BIN" ] || (cd "$ROOT" && cargo build --release) || exit 1

DB="mediator_bench_do_$$"
STATE=$(mktemp -d "${TMPDIR:-/tmp}/mediator-bench-dialouts.XXXXXX")
PID="" UAS=""
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null
    [ -n "$UAS" ] && kill "$UAS" 2>/dev/null
    wait 2>/dev/null
    psql "$ADMIN" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1
    rm -rf "$STATE"
}
trap cleanup EXIT
psql "$ADMIN" -qc "CREATE DATABASE $DB" >/dev/null || { echo "cannot create $DB"; exit 1; }
DB_URL="${ADMIN%/*}/$DB"
read -r SIP API UAS_PORT <<<"$(python3 "$ROOT/sip-tests/freeport.py" $((PB + 200)) $((PB + 201)) $((PB + 202)))"
DIDS=$(python3 -c "print(', '.join('\"1516%07d\"' % (2000000 + i) for i in range($N)))")
cat >"$STATE/m.toml" <<CFG
[api]
listen = "127.0.0.1:$API"
[sip]
listen = ["udp:127.0.0.1:$SIP"]
trunk = "sip:127.0.0.1:$UAS_PORT"
trusted = ["127.0.0.1/32"]
[media]
bind_ip = "127.0.0.1"
rtp_ports = "${RT}000-${RT}999"
[database]
url = "$DB_URL"
max_connections = 16
[[accounts]]
name = "Bench"
login = "bench"
password = "bench-pw"
dids = [$DIDS]
CFG
clean=(); for v in $(env | grep -o '^MEDIATOR_[A-Z_]*'); do clean+=(-u "$v"); done
env "${clean[@]}" MEDIATOR_LOG=warn "$BIN" serve --config "$STATE/m.toml" >"$STATE/mediator.log" 2>&1 &
PID=$!
for ((i = 0; i < 600; i++)); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$API/readyz")" = 200 ] && break
    kill -0 "$PID" 2>/dev/null || { cat "$STATE/mediator.log"; exit 1; }
    sleep 0.1
done
(cd "$STATE" && exec sipp -sf "$ROOT/sip-tests/dialout-sched/uas_busy.xml" -i 127.0.0.1 -p "$UAS_PORT" -nostdin \
    -trace_logs -log_file "$STATE/uas-msg.log" -buff_size 4194304 >"$STATE/uas.out" 2>&1) &
UAS=$!
sleep 0.5
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); N=$N dialouts per run, $RUNS runs per rate; PostgreSQL $(psql "$ADMIN" -qtAc 'SHOW server_version')"

K=0 ALL_OK=1 SUMMARY=()
for RATE in $RATES; do
rates=() rate_ok=1
for ((run = 1; run <= RUNS; run++)); do
    K=$((K + 1))
    P="1213$(((5000000 + K * 10000) / 10000))" # this run's stage ones: P followed by 4 digits
    python3 - "$API" "$N" "$K" <<'PY' || exit 1
import base64, json, sys, urllib.request
from concurrent.futures import ThreadPoolExecutor
api, n, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
auth = "Basic " + base64.b64encode(b"bench:bench-pw").decode()
def create(i):
    body = json.dumps({"stage_one_destination_did": "1213%07d" % (5000000 + k * 10000 + i),
                       "stage_two_destination_did": "1214%07d" % (5000000 + k * 10000 + i), "delay": 3600}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{api}/mediator/v1/dialouts", data=body, method="POST",
                                 headers={"Authorization": auth, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status
with ThreadPoolExecutor(8) as ex:
    codes = list(ex.map(create, range(n)))
bad = [c for c in codes if c != 200]
if bad:
    sys.exit(f"{len(bad)} creates failed")
PY
    BASE=$(($(date +%s%3N) + 2000))
    psql "$DB_URL" -qc "UPDATE dialouts d SET fire_at = $BASE + (r.rn - 1) * 1000 / $RATE FROM
        (SELECT dialout_sid, row_number() OVER (ORDER BY stage_one_destination_did) AS rn FROM dialouts WHERE state = 'scheduled') r
        WHERE d.dialout_sid = r.dialout_sid" >/dev/null
    # Wait for the N INVITEs (at most 30 s after the last is due), then
    # until every dialout has ended.
    for ((i = 0; i < 320 + N * 10 / RATE; i++)); do
        [ "$(grep -c "^INVITE $P" "$STATE/uas-msg.log")" -ge "$N" ] && break
        sleep 0.1
    done
    sleep 1
    for ((i = 0; i < 300; i++)); do
        [ "$(psql "$DB_URL" -qtAc "SELECT count(*) FROM dialouts")" = 0 ] && break
        sleep 0.1
    done
    line=$(python3 - "$STATE/uas-msg.log" "$BASE" "$N" "$DB_URL" "$K" "$RATE" <<'PY'
import collections, statistics, subprocess, sys
path, base, n, db, k, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
# The UAS logs one line per new call ("INVITE <number> <Call-ID> ..."): a
# retransmitted INVITE is not a new call. When each was sent: the stage-one
# record's date_start (Mediator's clock; the UAS is on loopback).
calls = collections.defaultdict(set)
for line in open(path, errors="replace"):
    parts = line.split()
    if len(parts) >= 3 and parts[0] == "INVITE":
        calls[parts[1]].add(parts[2])
numbers = {num: len(ids) for num, ids in calls.items()}
prefix = "1213" + str((5000000 + k * 10000) // 10000)
q = lambda sql: subprocess.run(["psql", db, "-qtAc", sql], capture_output=True, text=True).stdout.split()
sent = {}
for row in q(f"SELECT number_dst || '|' || date_start FROM calls WHERE number_dst LIKE '{prefix}%'"):
    num, ms = row.split("|")
    sent[num] = int(ms)
wanted = ["1213%07d" % (5000000 + k * 10000 + i) for i in range(n)]
called_once = sum(1 for num in wanted if numbers.get(num) == 1)
lags = [sent[num] - (base + i * 1000 // rate) for i, num in enumerate(wanted) if num in sent]
recorded = int((q(f"SELECT count(*) FROM calls WHERE outcome = 'stage_one_busy' AND number_dst LIKE '{prefix}%'") or ["0"])[0])
failures = (n - called_once) + (n - recorded)
odd = [(num, numbers.get(num, 0)) for num in wanted if numbers.get(num) != 1]
if odd:
    print("   stage ones not called exactly once (number, calls):", odd[:5], file=sys.stderr)
if failures:
    detail = q(f"SELECT outcome || ':' || sip_status || ':' || count(*) FROM calls WHERE number_dst LIKE '{prefix}%' GROUP BY outcome, sip_status")
    print("   outcomes (outcome:sip_status:count):", " ".join(detail), file=sys.stderr)
span = (max(sent.values()) - base) / 1000 if sent else 0
achieved = n / span if span > 0 else 0
lag_med = statistics.median(lags) if lags else float("nan")
lag_max = max(lags) if lags else float("nan")
print(f"{achieved:.0f} {failures} {called_once} {recorded} {span:.2f} {lag_med:.0f} {lag_max:.0f}")
PY
)
    read -r achieved failures called recorded span lag_med lag_max <<<"$line"
    echo "rate $RATE/s run $run: achieved $achieved dialouts/s ($N in $span s), lag median $lag_med ms max $lag_max ms, called once $called/$N, recorded stage_one_busy $recorded/$N, failures $failures"
    rates+=("$achieved")
    [ "$failures" = 0 ] || { rate_ok=0; ALL_OK=0; }
done
median=$(printf '%s\n' "${rates[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
SUMMARY+=("target $RATE/s: median achieved $median dialouts/s, $([ "$rate_ok" = 1 ] && echo "zero failures in $RUNS runs" || echo "FAILURES")")
done
printf '%s\n' "${SUMMARY[@]}"
[ "$ALL_OK" = 1 ]
