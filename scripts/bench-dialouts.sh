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
# MODE=bridged measures full dialouts instead: the UAS
# (sip-tests/dialout-sched/uas_answer.xml) answers both stages 200 with SDP
# (PCMU; no use_call_confirmation, so stage two is called as soon as stage
# one answers), stage two hangs up with a BYE HOLD_MS after its ACK and
# Mediator then sends BYE to stage one. Same runs, same spread of fire_at:
#   achieved = N / (last stage-two answer - base)  dialouts bridged per second
#              (date_answer of the stage-two record: both stages answered)
#   lag      = stage-one start - fire_at;  setup = stage-two answer - stage-one start
#   peak     = most dialouts in progress at once (from the stage-one records);
#              each holds two RTP port pairs (one per stage) from its start
#              to its end, so the pool must hold 2 x peak pairs
#   failures = dialouts whose stage one or stage two was not called exactly
#              once, or without one record per stage with outcome
#              connected, or still in the dialouts table
# The pool defaults to two thousands of ports here (1,000 pairs, 500
# dialouts at once); the script warns when RATE x (HOLD_MS + 0.2 s) exceeds it.
#
# Usage: scripts/bench-dialouts.sh [N (default 600)] [RUNS (default 3)] [RATES (default "200 400 800 1600")]
# Env: MODE (started (default) or bridged), HOLD_MS (bridged: stage two's
# time from its ACK to its BYE, default 1000), MEDIATOR_BIN (default
# target/release/mediator, built when missing), MEDIATOR_TEST_PG (admin URL,
# default postgres://postgres@127.0.0.1:5432/postgres), PORT_BASE (ports
# PORT_BASE+200..+202 and the UAS's RTP echo PORT_BASE+204, +206; default
# 22000), RTP_THOUSANDS (relay ports N000-N999, in bridged mode N000 to
# (N+1)999; default 44), RTP_PORTS (the relay pool, overrides
# RTP_THOUSANDS, e.g. 44000-45999). Needs sipp, psql, python3, curl.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N="${1:-600}" RUNS="${2:-3}" RATES="${3:-200 400 800 1600}"
BIN="${MEDIATOR_BIN:-$ROOT/target/release/mediator}"
ADMIN="${MEDIATOR_TEST_PG:-postgres://postgres@127.0.0.1:5432/postgres}"
PB="${PORT_BASE:-22000}" RT="${RTP_THOUSANDS:-44}"
MODE="${MODE:-started}" HOLD_MS="${HOLD_MS:-1000}"
case "$MODE" in
started) POOL="${RTP_PORTS:-${RT}000-${RT}999}" SCENARIO="uas_busy.xml" ;;
bridged) POOL="${RTP_PORTS:-${RT}000-$((RT + 1))999}" SCENARIO="uas_answer.xml" ;;
*) echo "MODE must be started or bridged"; exit 2 ;;
esac
if ! [[ "$HOLD_MS" =~ ^[0-9]+$ ]] || [ "$HOLD_MS" -gt 30000 ]; then echo "HOLD_MS must be 0..30000"; exit 2; fi
[[ "$POOL" =~ ^([0-9]+)-([0-9]+)$ ]] || { echo "RTP_PORTS must be FIRST-LAST"; exit 2; }
POOL_PAIRS=$(((BASH_REMATCH[2] - BASH_REMATCH[1] + 1) / 2))
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
read -r SIP API UAS_PORT UAS_RTP <<<"$(python3 "$ROOT/sip-tests/freeport.py" $((PB + 200)) $((PB + 201)) $((PB + 202)) $((PB + 204)))"
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
rtp_ports = "$POOL"
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
sed "s/@HOLD_MS@/$HOLD_MS/g" "$ROOT/sip-tests/dialout-sched/$SCENARIO" >"$STATE/uas.xml"
(cd "$STATE" && exec sipp -sf "$STATE/uas.xml" -i 127.0.0.1 -p "$UAS_PORT" -mp "$UAS_RTP" -nostdin \
    -trace_logs -log_file "$STATE/uas-msg.log" -buff_size 4194304 >"$STATE/uas.out" 2>&1) &
UAS=$!
sleep 0.5
kill -0 "$UAS" 2>/dev/null || { echo "the SIPp UAS did not start:"; cat "$STATE/uas.out"; exit 1; }
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg); N=$N dialouts per run, $RUNS runs per rate; PostgreSQL $(psql "$ADMIN" -qtAc 'SHOW server_version')"
echo "mode $MODE$([ "$MODE" = bridged ] && echo ", stage two held $HOLD_MS ms"); relay pool rtp_ports $POOL ($POOL_PAIRS RTP pairs)"

K=0 ALL_OK=1 SUMMARY=()
for RATE in $RATES; do
rates=() rate_ok=1
AT_ONCE=$((RATE * (HOLD_MS + 200) / 1000)) # bridged: dialouts in progress at once, roughly
if [ "$MODE" = bridged ] && [ $((2 * AT_ONCE)) -gt "$POOL_PAIRS" ]; then
    echo "warning: at $RATE/s about $AT_ONCE dialouts are in progress at once, 2 RTP pairs each; the pool has $POOL_PAIRS pairs"
fi
for ((run = 1; run <= RUNS; run++)); do
    K=$((K + 1)) RUN_NO="rate $RATE/s run $run"
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
    for ((i = 0; i < 300 + HOLD_MS / 100; i++)); do
        [ "$(psql "$DB_URL" -qtAc "SELECT count(*) FROM dialouts")" = 0 ] && break
        sleep 0.1
    done
    # Line 1: "achieved failures"; line 2: the run's report.
    out=$(python3 - "$STATE/uas-msg.log" "$BASE" "$N" "$DB_URL" "$K" "$RATE" "$MODE" "$RUN_NO" <<'PY'
import collections, statistics, subprocess, sys
path, base, n, db, k, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
mode, head = sys.argv[7], sys.argv[8]
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
wanted = ["1213%07d" % (5000000 + k * 10000 + i) for i in range(n)]
fire_at = [base + i * 1000 // rate for i in range(n)]
odd = [(num, numbers.get(num, 0)) for num in wanted if numbers.get(num) != 1]
if odd:
    print("   stage ones not called exactly once (number, calls):", odd[:5], file=sys.stderr)
if mode == "started":
    sent = {}
    for row in q(f"SELECT number_dst || '|' || date_start FROM calls WHERE number_dst LIKE '{prefix}%'"):
        num, ms = row.split("|")
        sent[num] = int(ms)
    called_once = sum(1 for num in wanted if numbers.get(num) == 1)
    lags = [sent[num] - fire_at[i] for i, num in enumerate(wanted) if num in sent]
    recorded = int((q(f"SELECT count(*) FROM calls WHERE outcome = 'stage_one_busy' AND number_dst LIKE '{prefix}%'") or ["0"])[0])
    failures = (n - called_once) + (n - recorded)
    if failures:
        detail = q(f"SELECT outcome || ':' || sip_status || ':' || count(*) FROM calls WHERE number_dst LIKE '{prefix}%' GROUP BY outcome, sip_status")
        print("   outcomes (outcome:sip_status:count):", " ".join(detail), file=sys.stderr)
    span = (max(sent.values()) - base) / 1000 if sent else 0
    achieved = n / span if span > 0 else 0
    lag_med = statistics.median(lags) if lags else float("nan")
    lag_max = max(lags) if lags else float("nan")
    print(f"{achieved:.0f} {failures}")
    print(f"{head}: achieved {achieved:.0f} dialouts/s ({n} in {span:.2f} s), lag median {lag_med:.0f} ms max {lag_max:.0f} ms, "
          f"called once {called_once}/{n}, recorded stage_one_busy {recorded}/{n}, failures {failures}")
    sys.exit(0)
# Bridged: dialout i is stage one wanted[i] and stage two two[i].
prefix2 = "1214" + prefix[4:]
two = ["1214" + num[4:] for num in wanted]
recs = collections.defaultdict(list)  # number_dst -> [(outcome, date_start, date_answer, date_stop)]
for row in q(f"SELECT number_dst || '|' || coalesce(outcome, '-') || '|' || date_start || '|' || coalesce(date_answer, -1) || '|' || date_stop "
             f"FROM calls WHERE number_dst LIKE '{prefix}%' OR number_dst LIKE '{prefix2}%'"):
    num, outcome, start, answer, stop = row.split("|")
    recs[num].append((outcome, int(start), int(answer), int(stop)))
left = set(q(f"SELECT stage_one_destination_did FROM dialouts WHERE stage_one_destination_did LIKE '%{prefix}%'"))
connected = lambda num: len(recs[num]) == 1 and recs[num][0][0] == "connected" and recs[num][0][2] > 0
called = sum(1 for a, b in zip(wanted, two) if numbers.get(a) == 1 and numbers.get(b) == 1)
recorded = sum(1 for a, b in zip(wanted, two) if connected(a) and connected(b))
ok = sum(1 for a, b in zip(wanted, two) if numbers.get(a) == 1 and numbers.get(b) == 1 and connected(a) and connected(b)
         and not any(a in d for d in left))
failures = n - ok
odd2 = [(num, numbers.get(num, 0)) for num in two if numbers.get(num) != 1]
if odd2:
    print("   stage twos not called exactly once (number, calls):", odd2[:5], file=sys.stderr)
if failures:
    for p in (prefix, prefix2):
        detail = q(f"SELECT outcome || ':' || sip_status || ':' || count(*) FROM calls WHERE number_dst LIKE '{p}%' GROUP BY outcome, sip_status")
        print(f"   stage {1 if p == prefix else 2} outcomes (outcome:sip_status:count):", " ".join(detail), file=sys.stderr)
answered = [recs[b][0][2] for b in two if recs[b] and recs[b][0][2] > 0]
span = (max(answered) - base) / 1000 if answered else 0
achieved = len(answered) / span if span > 0 else 0
lags = [recs[a][0][1] - fire_at[i] for i, a in enumerate(wanted) if recs[a]]
setups = [recs[b][0][2] - recs[a][0][1] for a, b in zip(wanted, two) if recs[a] and recs[b] and recs[b][0][2] > 0]
# Dialouts in progress at once: stage one's record spans the dialout.
events = sorted([(r[1], 1) for a in wanted for r in recs[a][:1]] + [(r[3], -1) for a in wanted for r in recs[a][:1]],
                key=lambda e: (e[0], e[1]))
peak = cur = 0
for _, d in events:
    cur += d
    peak = max(peak, cur)
med = lambda v: f"{statistics.median(v):.0f}" if v else "nan"
mx = lambda v: f"{max(v):.0f}" if v else "nan"
print(f"{achieved:.0f} {failures}")
print(f"{head}: achieved {achieved:.0f} bridged dialouts/s ({len(answered)} in {span:.2f} s), lag median {med(lags)} ms max {mx(lags)} ms, "
      f"setup median {med(setups)} ms max {mx(setups)} ms, peak {peak} in progress, both stages called once {called}/{n}, "
      f"both recorded connected {recorded}/{n}, left in dialouts {len(left)}, failures {failures}")
PY
)
    read -r achieved failures <<<"$(head -n 1 <<<"$out")"
    tail -n +2 <<<"$out"
    rates+=("$achieved")
    [ "$failures" = 0 ] || { rate_ok=0; ALL_OK=0; }
done
median=$(printf '%s\n' "${rates[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
SUMMARY+=("target $RATE/s: median achieved $median $([ "$MODE" = bridged ] && echo "bridged ")dialouts/s, $([ "$rate_ok" = 1 ] && echo "zero failures in $RUNS runs" || echo "FAILURES")")
done
printf '%s\n' "${SUMMARY[@]}"
[ "$ALL_OK" = 1 ]
