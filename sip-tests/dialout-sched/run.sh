#!/usr/bin/env bash
# The dialout scheduler against real processes (issue 6; docs/dialouts.md):
# the release binary (`mediator serve`) on a fresh PostgreSQL database, the
# trunk a SIPp UAS that answers every INVITE 486 Busy Here and logs the To
# number of each new one, so that the test sees which stage one was called
# and how often.
#
# Cases:
#   delay-zero-fires-at-once        POST /dialouts with delay 0: stage one's
#       INVITE reaches the trunk within 1.5 s; the dialout is then recorded
#       (outcome stage_one_busy) and gone from the API
#   survives-kill-9                 a dialout due in 3 s; the node is killed
#       (kill -9 by PID) before that and restarted: stage one is called once
#   missed-while-down-not-placed    a dialout whose time passed an hour ago
#       while the node was down: recorded with outcome missed, sip_status 0,
#       and its stage one never called
#   two-nodes-each-dialout-once     two nodes on one database (batch 2, so
#       that both claim), 20 dialouts due at one moment: the trunk sees
#       exactly 20 stage-one INVITEs, one per dialout, and GET /calls has
#       one record per dialout
#   dead-node-dialout-not-refired   a node is killed (kill -9) while its
#       dialout's stage one rings (this case's trunk answers 180 and holds):
#       the other node does not call it again; the row stays started,
#       claimed by the dead node
#
# Needs: sipp (sip-tester), psql (postgresql-client) and a PostgreSQL server
# on 127.0.0.1:5432 with trust auth (scripts/test.sh starts it), python3,
# curl; installed from Debian's packages when missing. A fresh database
# mediator_ds_* is made for the run and dropped at the end.
# Env: MEDIATOR_BIN (default target/release/mediator), MEDIATOR_TEST_PG
# (admin URL), PORT_BASE (preferred SIP/REST ports PORT_BASE+100..+140,
# default 22000; free ones are picked otherwise), RTP_THOUSANDS (relay ports
# N000-N999, default 44; node A the lower half, node B the upper).
# Last line: "N passed, M failed"; exit status non-zero on any failure.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
ST=$(dirname "$HERE")
ROOT=$(dirname "$ST")
OUT="$HERE/out"
BIN="${MEDIATOR_BIN:-$ROOT/target/release/mediator}"
ADMIN="${MEDIATOR_TEST_PG:-postgres://postgres@127.0.0.1:5432/postgres}"
PB="${PORT_BASE:-22000}"
RT="${RTP_THOUSANDS:-44}"
LOGIN=dsched PASSWORD=dsched-password
PASS=0 FAIL=0
PID_A="" PID_B="" UAS_PID=""
DB="mediator_ds_$$_$RANDOM"
DB_MADE=0

rm -rf "$OUT"; mkdir -p "$OUT"
STATE=$(mktemp -d "${TMPDIR:-/tmp}/mediator-dialout-sched.XXXXXX")
cleanup() {
    local p
    for p in $PID_A $PID_B $UAS_PID; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    [ "$DB_MADE" = 1 ] && psql "$ADMIN" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1
    rm -rf "$STATE"
}
trap cleanup EXIT
abort() { echo "$*"; echo "0 passed, 1 failed"; exit 1; }

missing=()
for t in sipp:sip-tester psql:postgresql-client python3:python3 curl:curl; do
    command -v "${t%%:*}" >/dev/null 2>&1 || missing+=("${t#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing from Debian's packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; } ||
        abort "cannot install ${missing[*]}"
fi
[ -x "$BIN" ] || (cd "$ROOT" && cargo build --release) || abort "build failed"
psql "$ADMIN" -qc "CREATE DATABASE $DB" >/dev/null || abort "cannot create database $DB at $ADMIN"
DB_MADE=1
DB_URL="${ADMIN%/*}/$DB"

PORTS=$(python3 "$ST/freeport.py" $((PB + 100)) $((PB + 101)) $((PB + 110)) $((PB + 111)) $((PB + 120))) || abort "no free ports"
read -r SIP_A SIP_B API_A API_B UAS_PORT <<<"$PORTS"
echo "ports: node A SIP $SIP_A REST $API_A, node B SIP $SIP_B REST $API_B, trunk $UAS_PORT; database $DB"
DIDS=$(python3 -c 'print(", ".join("\"1516206%04d\"" % (8000 + i) for i in range(24)))')

node_config() { # NAME SIP_PORT API_PORT RTP_RANGE BATCH POLL_MS
    cat >"$STATE/$1.toml" <<CFG
[api]
listen = "127.0.0.1:$3"

[sip]
listen = ["udp:127.0.0.1:$2"]
trunk = "sip:127.0.0.1:$UAS_PORT"
trusted = ["127.0.0.1/32"]
drain_secs = 1

[media]
bind_ip = "127.0.0.1"
rtp_ports = "$4"

[database]
url = "$DB_URL"

[dialouts]
node_id = "node-$1"
batch = $5
poll_ms = $6
max_lateness_secs = 300

[[accounts]]
name = "Dialout scheduler"
login = "$LOGIN"
password = "$PASSWORD"
dids = [$DIDS]
CFG
}

# start_node NAME API_PORT -> prints the PID once /readyz answers 200
start_node() {
    local clean=() v pid i
    for v in $(env | grep -o '^MEDIATOR_[A-Z_]*'); do clean+=(-u "$v"); done
    env "${clean[@]}" MEDIATOR_LOG="info,rsipstack=warn" "$BIN" serve --config "$STATE/$1.toml" >>"$OUT/node-$1.log" 2>&1 &
    pid=$!
    for ((i = 0; i < 300; i++)); do
        kill -0 "$pid" 2>/dev/null || return 1
        if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$2/readyz")" = 200 ]; then echo "$pid"; return 0; fi
        sleep 0.1
    done
    return 1
}

# stop PID SIGNAL: sends SIGNAL and waits (at most 10 s) until the process
# is gone (it is not this shell's child: started in a command substitution)
stop() {
    local i
    kill "-$2" "$1" 2>/dev/null
    for ((i = 0; i < 100; i++)); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
    return 1
}
kill9() { stop "$1" KILL; }

# trunk SCENARIO NAME: starts the SIPp UAS; its log is $OUT/NAME.log
trunk() {
    [ -n "$UAS_PID" ] && { kill "$UAS_PID" 2>/dev/null; wait "$UAS_PID" 2>/dev/null; }
    (cd "$OUT" && exec sipp -sf "$HERE/$1" -i 127.0.0.1 -p "$UAS_PORT" -nostdin -trace_logs \
        -log_file "$OUT/$2.log" -trace_err -error_file "$OUT/$2.err" >"$OUT/$2.out" 2>&1) &
    UAS_PID=$!
    sleep 0.5
    kill -0 "$UAS_PID" 2>/dev/null || abort "the trunk UAS did not start (see $OUT/$2.out)"
    touch "$OUT/$2.log"
}
# invites NAME [NUMBER]: INVITEs the trunk logged (to NUMBER)
invites() {
    if [ -n "${2:-}" ]; then grep -c "^INVITE $2 " "$OUT/$1.log"; else grep -c '^INVITE ' "$OUT/$1.log"; fi
}

api() { # API_PORT METHOD PATH [JSON]: prints the status; body in $OUT/api.json
    local args=(-s -o "$OUT/api.json" -w '%{http_code}' -u "$LOGIN:$PASSWORD" -X "$2")
    [ -n "${4:-}" ] && args+=(-H 'Content-Type: application/json' --data-binary "$4")
    curl "${args[@]}" "http://127.0.0.1:$1/mediator/v1$3"
}
body() { python3 -c 'import json,sys; b=json.load(open(sys.argv[1]))["body"]; print(eval(sys.argv[2], {"b": b}))' "$OUT/api.json" "$1"; }
result() { if [ "$2" = 0 ]; then PASS=$((PASS + 1)); echo "PASS $1"; else FAIL=$((FAIL + 1)); echo "FAIL $1: $3"; fi; }
sql() { psql "$DB_URL" -qtAc "$1"; }
now_ms() { python3 -c 'import time; print(int(time.time() * 1000))'; }

# dialout API_PORT N DELAY: creates dialout N (stage one 1212555000N) and
# prints its SID
dialout() {
    local s
    s=$(api "$1" POST /dialouts "{\"stage_one_destination_did\":\"$(stage_one "$2")\",\"stage_two_destination_did\":\"1212666$(printf %04d "$2")\",\"delay\":$3}")
    [ "$s" = 200 ] || { echo "POST /dialouts: $s $(cat "$OUT/api.json")" >&2; return 1; }
    body 'b["dialout_sid"]'
}
stage_one() { echo "1212555$(printf %04d "$1")"; }

# record API_PORT SID: prints "<count> <outcome> <sip_status>" of the
# dialout's call records
record() {
    api "$1" GET "/calls?filter=dialout_sid+eq+$2" >/dev/null
    body '"%d %s %s" % (b["total"], b["items"][0]["outcome"] if b["items"] else "-", b["items"][0]["sip_status"] if b["items"] else "-")'
}
# wait_record API_PORT SID SECONDS: waits until the dialout has a record
wait_record() {
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        [ "$(record "$1" "$2" | cut -d' ' -f1)" != 0 ] && return 0
        sleep 0.1
    done
    return 1
}

node_config a "$SIP_A" "$API_A" "${RT}000-${RT}499" 200 1000
# Two nodes that claim two at a time and poll often, so that both claim.
node_config b "$SIP_B" "$API_B" "${RT}500-${RT}999" 2 100
node_config a2 "$SIP_A" "$API_A" "${RT}000-${RT}499" 2 100
PID_A=$(start_node a "$API_A") || abort "node A did not start (see $OUT/node-a.log)"

# --- delay-zero-fires-at-once -------------------------------------------------------
trunk uas_busy.xml zero
t0=$(now_ms)
SID=$(dialout "$API_A" 1 0) || abort "cannot create a dialout"
ok=1 why="no INVITE to $(stage_one 1) within 5 s"
for ((i = 0; i < 50; i++)); do
    if [ "$(invites zero "$(stage_one 1)")" -ge 1 ]; then
        dt=$(($(now_ms) - t0)); echo "   stage one's INVITE seen $dt ms after the POST"
        if [ "$dt" -le 1500 ]; then ok=0 why=""; else why="INVITE only after $dt ms"; fi
        break
    fi
    sleep 0.1
done
if [ "$ok" = 0 ]; then
    if wait_record "$API_A" "$SID" 10; then
        rec=$(record "$API_A" "$SID"); echo "   record: $rec"
        [ "$rec" = "1 stage_one_busy 486" ] || { ok=1; why="record $rec, expected 1 stage_one_busy 486"; }
        [ "$(api "$API_A" GET "/dialouts/$SID")" = 404 ] || { ok=1; why="$why; the dialout is still in the API"; }
    else
        ok=1 why="no call record for $SID"
    fi
fi
[ "$(invites zero)" = 1 ] || { ok=1; why="$why; $(invites zero) INVITEs, expected 1"; }
result delay-zero-fires-at-once $ok "$why"

# --- survives-kill-9 and missed-while-down-not-placed ---------------------------------
trunk uas_busy.xml restart
SID_LATE=$(dialout "$API_A" 3 3600) || abort "cannot create a dialout"
SID=$(dialout "$API_A" 2 3) || abort "cannot create a dialout"
kill9 "$PID_A"; PID_A=""
echo "   node A killed (kill -9) with dialout $SID due in 3 s"
# While it is down, the other dialout's time passes (an hour ago).
sql "UPDATE dialouts SET fire_at = $(($(now_ms) - 3600000)) WHERE dialout_sid = '$SID_LATE'" >/dev/null
sleep 1
[ "$(invites restart)" = 0 ] || echo "   (an INVITE arrived before the restart)"
PID_A=$(start_node a "$API_A") || abort "node A did not restart (see $OUT/node-a.log)"
ok=0 why=""
if wait_record "$API_A" "$SID" 15; then
    rec=$(record "$API_A" "$SID"); echo "   after the restart: $rec"
    [ "$rec" = "1 stage_one_busy 486" ] || { ok=1; why="record $rec"; }
else
    ok=1 why="no call record for $SID after the restart"
fi
[ "$(invites restart "$(stage_one 2)")" = 1 ] || { ok=1; why="$why; $(invites restart "$(stage_one 2)") INVITEs to $(stage_one 2), expected 1"; }
result survives-kill-9 $ok "$why"

ok=0 why=""
if wait_record "$API_A" "$SID_LATE" 5; then
    rec=$(record "$API_A" "$SID_LATE"); echo "   the one due an hour ago: $rec"
    [ "$rec" = "1 missed 0" ] || { ok=1; why="record $rec, expected 1 missed 0"; }
else
    ok=1 why="no call record for $SID_LATE"
fi
sleep 1
[ "$(invites restart "$(stage_one 3)")" = 0 ] || { ok=1; why="$why; its stage one was called"; }
[ "$(api "$API_A" DELETE "/dialouts/$SID_LATE")" = 404 ] || { ok=1; why="$why; still in the API"; }
result missed-while-down-not-placed $ok "$why"

# --- two-nodes-each-dialout-once ---------------------------------------------------
stop "$PID_A" TERM || abort "node A did not stop on SIGTERM"
PID_A=$(start_node a2 "$API_A") || abort "node A did not start (see $OUT/node-a.log)"
PID_B=$(start_node b "$API_B") || abort "node B did not start (see $OUT/node-b.log)"
trunk uas_busy.xml two
SIDS=()
for ((n = 10; n < 30; n++)); do
    port=$API_A; [ $((n % 2)) = 1 ] && port=$API_B
    SIDS+=("$(dialout "$port" "$n" 3600)") || abort "cannot create dialout $n"
done
# All due at one moment, 2 s from now: both nodes wake for it.
sql "UPDATE dialouts SET fire_at = $(($(now_ms) + 2000)) WHERE state = 'scheduled'" >/dev/null
for ((i = 0; i < 200; i++)); do
    [ "$(invites two)" -ge 20 ] && break
    sleep 0.1
done
sleep 3 # time for any second INVITE
ok=0 why=""
n_inv=$(invites two)
distinct=$(grep '^INVITE ' "$OUT/two.log" | awk '{print $2}' | sort -u | wc -l)
expected=$(for ((n = 10; n < 30; n++)); do stage_one "$n"; done | sort)
seen=$(grep '^INVITE ' "$OUT/two.log" | awk '{print $2}' | sort)
placed_a=$(grep -c 'dialout placed' "$OUT/node-a2.log")
placed_b=$(grep -c 'dialout placed' "$OUT/node-b.log")
echo "   trunk saw $n_inv INVITEs to $distinct numbers; dialouts placed by node A: $placed_a, by node B: $placed_b"
[ "$n_inv" = 20 ] && [ "$seen" = "$expected" ] || { ok=1; why="$n_inv INVITEs to $distinct numbers, expected 20 to the 20 stage ones"; }
per_dialout() { # the records of SIDS on node B: "<dialouts recorded> [<records per dialout>] [<outcomes>]"
    api "$API_B" GET "/calls?filter=type+eq+dialout&limit=100" >/dev/null
    python3 -c 'import json,sys,collections
b=json.load(open(sys.argv[1]))["body"]; want=set(sys.argv[2].split())
c=collections.Counter(x["dialout_sid"] for x in b["items"] if x["dialout_sid"] in want)
print(len(c), sorted(set(c.values())), sorted({x["outcome"] for x in b["items"] if x["dialout_sid"] in want}))' "$OUT/api.json" "${SIDS[*]}"
}
for ((i = 0; i < 100; i++)); do
    per=$(per_dialout)
    [ "${per%% *}" = 20 ] && break
    sleep 0.1
done
echo "   records: dialouts recorded, records per dialout, outcomes: $per"
[ "$per" = "20 [1] ['stage_one_busy']" ] || { ok=1; why="$why; records $per, expected 20 [1] ['stage_one_busy']"; }
[ "$(api "$API_A" GET /dialouts)" = 200 ] && [ "$(body 'b["total"]')" = 0 ] || { ok=1; why="$why; dialouts left in the API"; }
result two-nodes-each-dialout-once $ok "$why"

# --- dead-node-dialout-not-refired ---------------------------------------------------
trunk uas_ring.xml ring
stop "$PID_B" TERM || abort "node B did not stop on SIGTERM"
PID_B=""
SID=$(dialout "$API_A" 40 0) || abort "cannot create a dialout"
ok=0 why=""
for ((i = 0; i < 50; i++)); do [ "$(invites ring)" -ge 1 ] && break; sleep 0.1; done
if [ "$(invites ring "$(stage_one 40)")" != 1 ]; then
    ok=1 why="stage one was not called"
else
    kill9 "$PID_A"; PID_A=""
    echo "   node A killed (kill -9) while stage one rings"
    PID_B=$(start_node b "$API_B") || abort "node B did not restart (see $OUT/node-b.log)"
    sleep 4
    n=$(invites ring "$(stage_one 40)")
    row=$(sql "SELECT state || ' ' || claimed_by FROM dialouts WHERE dialout_sid = '$SID'")
    echo "   4 s after: $n INVITE(s) to stage one; the row: $row"
    [ "$n" = 1 ] || { ok=1; why="stage one called $n times"; }
    [ "$row" = "started node-a2" ] || { ok=1; why="$why; row '$row', expected 'started node-a2'"; }
    [ "$(api "$API_B" DELETE "/dialouts/$SID")" = 409 ] || { ok=1; why="$why; DELETE on it is not 409"; }
fi
result dead-node-dialout-not-refired $ok "$why"

echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
