#!/usr/bin/env bash
# Two Mediator nodes on one PostgreSQL database behind Kamailio's
# dispatcher (issue 7; the layout of docs/deployment.md, on loopback).
#
#   SIPp caller --> Kamailio (dispatcher.cfg, round robin) --> node A | node B
#   node A, node B --> SIPp callee (the trunk); both on one PostgreSQL db
#
# Cases:
#   bindings-shared-between-nodes   a binding made through node A's API is
#       read through node B's and the other way round
#   calls-direct-to-each-node       a call straight to node A follows the
#       binding made on B, and one to node B the binding made on A
#   calls-spread-over-both-nodes    calls through Kamailio all connect and
#       both nodes took some (their /metrics)
#   calls-connect-after-node-stops  node A stopped (SIGTERM to its PID):
#       new calls through Kamailio all connect, on node B
#   records-of-both-nodes-in-one-db GET /calls on node B lists every call
#       of both nodes
#
# Needs: kamailio (installed from Debian's packages when missing), sipp
# (sip-tester), psql and a PostgreSQL server on 127.0.0.1:5432 with trust
# auth (scripts/test.sh starts it), python3, curl, ss. A fresh database
# mediator_2n_* is made for the run and dropped at the end.
# Ports: SIP/REST preferred 49200-49299 (free ones picked otherwise), media
# 49300-49319; Mediator's relay ports 38000-38499 (node A), 38500-38999 (B).
# Env: MEDIATOR_BIN (default target/release/mediator), MEDIATOR_TEST_PG
# (admin URL, default postgres://postgres@127.0.0.1:5432/postgres).
# Last line: "N passed, M failed"; exit status non-zero on any failure.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
ST=$(dirname "$HERE")
ROOT=$(dirname "$ST")
SC="$ST/scenarios"
OUT="$HERE/out"
BIN="${MEDIATOR_BIN:-$ROOT/target/release/mediator}"
ADMIN="${MEDIATOR_TEST_PG:-postgres://postgres@127.0.0.1:5432/postgres}"
LOGIN=twonode PASSWORD=twonode-password
PASS=0 FAIL=0
PID_A="" PID_B="" KAM_PID=""
DB="mediator_2n_$$_$RANDOM"
DB_MADE=0

rm -rf "$OUT"; mkdir -p "$OUT"
STATE=$(mktemp -d "${TMPDIR:-/tmp}/mediator-two-node.XXXXXX")
cleanup() {
    local p
    for p in $PID_A $PID_B $KAM_PID; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    [ "$DB_MADE" = 1 ] && psql "$ADMIN" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1
    rm -rf "$STATE"
}
trap cleanup EXIT
abort() { echo "$*"; echo "0 passed, 1 failed"; exit 1; }

if ! command -v kamailio >/dev/null 2>&1; then
    echo "installing kamailio from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends kamailio >/dev/null; } ||
        abort "cannot install kamailio (apt-get install kamailio)"
fi
for t in kamailio:kamailio sipp:sip-tester psql:postgresql-client python3:python3 curl:curl ss:iproute2; do
    command -v "${t%%:*}" >/dev/null 2>&1 || abort "missing tool: ${t%%:*} (apt-get install ${t#*:})"
done
[ -x "$BIN" ] || (cd "$ROOT" && cargo build --release) || abort "build failed"
psql "$ADMIN" -qc "CREATE DATABASE $DB" >/dev/null || abort "cannot create database $DB at $ADMIN"
DB_MADE=1
DB_URL="${ADMIN%/*}/$DB"

PORTS=$(python3 "$ST/freeport.py" 49260 49261 49262 49280 49270 49289 49290) || abort "no free ports"
read -r KAM_PORT SIP_A SIP_B UAS_PORT UAC_PORT API_A API_B <<<"$PORTS"
PORTS=$(python3 "$ST/freeport.py" --pair 49300 49310) || abort "no free media ports"
read -r A_MP B_MP <<<"$PORTS"
RTP_RE="38[0-9]{3}"                      # the nodes' relay ports in SDP
DID_A=15162065360 DID_B=15162065361 CALLER=12127361234 DEST_A=15162065300 DEST_B=15162065301
echo "ports: kamailio $KAM_PORT, node A $SIP_A (REST $API_A), node B $SIP_B (REST $API_B), callee $UAS_PORT, caller $UAC_PORT; database $DB"

# node_config NAME SIP_PORT API_PORT RTP_RANGE
node_config() {
    cat >"$STATE/$1.toml" <<CFG
[api]
listen = "127.0.0.1:$3"

[sip]
listen = ["udp:127.0.0.1:$2"]
trunk = "sip:127.0.0.1:$UAS_PORT"
trusted = ["127.0.0.1/32"]
drain_secs = 2

[media]
bind_ip = "127.0.0.1"
rtp_ports = "$4"

[database]
url = "$DB_URL"

[[accounts]]
name = "Two nodes"
login = "$LOGIN"
password = "$PASSWORD"
dids = ["$DID_A", "$DID_B"]
CFG
}

# start_node NAME API_PORT -> prints the PID once /readyz answers 200
start_node() {
    local clean=() v pid i
    for v in $(env | grep -o '^MEDIATOR_[A-Z_]*'); do clean+=(-u "$v"); done
    env "${clean[@]}" MEDIATOR_LOG="info,rsipstack=warn" "$BIN" serve --config "$STATE/$1.toml" >"$OUT/node-$1.log" 2>&1 &
    pid=$!
    for ((i = 0; i < 300; i++)); do
        kill -0 "$pid" 2>/dev/null || return 1
        if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$2/readyz")" = 200 ]; then echo "$pid"; return 0; fi
        sleep 0.1
    done
    return 1
}

api() { # API_PORT METHOD PATH [JSON]: prints the status; body in $OUT/api.json
    local args=(-s -o "$OUT/api.json" -w '%{http_code}' -u "$LOGIN:$PASSWORD" -X "$2")
    [ -n "${4:-}" ] && args+=(-H 'Content-Type: application/json' --data-binary "$4")
    curl "${args[@]}" "http://127.0.0.1:$1/mediator/v1$3"
}
body() { python3 -c 'import json,sys; b=json.load(open(sys.argv[1]))["body"]; print(eval(sys.argv[2], {"b": b}))' "$OUT/api.json" "$1"; }
result() { if [ "$2" = 0 ]; then PASS=$((PASS + 1)); echo "PASS $1"; else FAIL=$((FAIL + 1)); echo "FAIL $1: $3"; fi; }
# attempted API_PORT: the node's mediator_calls_attempted_total
attempted() {
    curl -s "http://127.0.0.1:$1/metrics" | awk '$1 == "mediator_calls_attempted_total" { print $2; f = 1 } END { if (!f) print 0 }'
}

# calls NAME TARGET_PORT DID COUNT: COUNT calls one after the other to
# DID at 127.0.0.1:TARGET_PORT, each answered by the callee; 0 when all did
calls() {
    local d="$OUT/$1"; mkdir -p "$d"
    python3 "$ST/render.py" "$SC/uac_call.xml" "$d/uac.xml" "UAS_PORT=$UAS_PORT" "UAC_PORT=$UAC_PORT" "RTP_RE=$RTP_RE" \
        "FROM=\"Alice\" <sip:$CALLER@127.0.0.1>" "FORMATS=8 101" \
        "RTPMAPS=a=rtpmap:8 PCMA/8000\\na=rtpmap:101 telephone-event/8000" MAX_FORWARDS=70 HOLD_MS=300 TAIL=caller_bye
    python3 "$ST/render.py" "$SC/uas.xml" "$d/uas.xml" FLOW=answer "UAS_PORT=$UAS_PORT" "UAC_PORT=$UAC_PORT" "B_MP=$B_MP" "RTP_RE=$RTP_RE" \
        "B_FORMATS=8 101" "B_RTPMAPS=a=rtpmap:8 PCMA/8000\\na=rtpmap:101 telephone-event/8000"
    (cd "$d" && exec timeout 90 sipp -sf uas.xml -i 127.0.0.1 -p "$UAS_PORT" -m "$4" -mp "$B_MP" -nostdin \
        -trace_err -timeout 80s -timeout_error >uas.out 2>&1) &
    local uas=$!
    sleep 0.3
    (cd "$d" && timeout 90 sipp -sf uac.xml "127.0.0.1:$2" -i 127.0.0.1 -p "$UAC_PORT" -m "$4" -l 1 -mp "$A_MP" \
        -s "$3" -nostdin -trace_err -trace_stat -timeout 80s -timeout_error >uac.out 2>&1)
    local rc=$?
    wait "$uas" || rc=1
    return $rc
}

node_config a "$SIP_A" "$API_A" 38000-38499
node_config b "$SIP_B" "$API_B" 38500-38999
# One after the other: the first runs the migrations.
PID_A=$(start_node a "$API_A") || abort "node A did not start (see $OUT/node-a.log)"
PID_B=$(start_node b "$API_B") || abort "node B did not start (see $OUT/node-b.log)"
printf '1 sip:127.0.0.1:%s 0 0\n1 sip:127.0.0.1:%s 0 0\n' "$SIP_A" "$SIP_B" >"$STATE/dispatcher.list"
sed -e "s|@LISTEN@|udp:127.0.0.1:$KAM_PORT|" -e "s|@DS_LIST@|$STATE/dispatcher.list|" "$HERE/dispatcher.cfg" >"$STATE/kamailio.cfg"
kamailio -f "$STATE/kamailio.cfg" -DD -E -m 64 -M 8 -Y "$STATE" >"$OUT/kamailio.log" 2>&1 &
KAM_PID=$!
for ((i = 0; i < 100; i++)); do
    ss -Hlun "sport = :$KAM_PORT" | grep -q . && break
    kill -0 "$KAM_PID" 2>/dev/null || abort "kamailio exited (see $OUT/kamailio.log)"
    sleep 0.1
done
sleep 1.5 # the first OPTIONS probes

# --- bindings-shared-between-nodes ------------------------------------------------
[ "$(api "$API_A" POST /bindings "{\"destination_did\":\"$DEST_A\",\"redirect_did\":\"$DID_A\",\"origination_did\":\"$CALLER\"}")" = 200 ] ||
    abort "POST /bindings on A: $(cat "$OUT/api.json")"
SID_A=$(body 'b["binding_sid"]')
[ "$(api "$API_B" POST /bindings "{\"destination_did\":\"$DEST_B\",\"redirect_did\":\"$DID_B\",\"origination_did\":\"$CALLER\"}")" = 200 ] ||
    abort "POST /bindings on B: $(cat "$OUT/api.json")"
SID_B=$(body 'b["binding_sid"]')
ok=0
[ "$(api "$API_B" GET "/bindings/$SID_A")" = 200 ] && [ "$(body 'b["destination_did"]')" = "$DEST_A" ] || ok=1
[ "$(api "$API_A" GET "/bindings/$SID_B")" = 200 ] && [ "$(body 'b["destination_did"]')" = "$DEST_B" ] || ok=1
result bindings-shared-between-nodes $ok "a binding made on one node is not read on the other"

# --- calls-direct-to-each-node ----------------------------------------------------
ok=0 why=""
calls direct-a "$SIP_A" "$DID_B" 1 || { ok=1; why="call to node A for B's binding failed (see $OUT/direct-a)"; }
calls direct-b "$SIP_B" "$DID_A" 1 || { ok=1; why="$why; call to node B for A's binding failed (see $OUT/direct-b)"; }
result calls-direct-to-each-node $ok "$why"

# --- calls-spread-over-both-nodes -------------------------------------------------
a0=$(attempted "$API_A"); b0=$(attempted "$API_B")
if calls via-kamailio "$KAM_PORT" "$DID_A" 6; then
    a1=$(attempted "$API_A"); b1=$(attempted "$API_B")
    da=$((a1 - a0)) db=$((b1 - b0))
    echo "   6 calls through Kamailio: node A took $da, node B $db"
    if [ $((da + db)) = 6 ] && [ "$da" -ge 1 ] && [ "$db" -ge 1 ]; then
        result calls-spread-over-both-nodes 0 ""
    else
        result calls-spread-over-both-nodes 1 "node A took $da, node B $db of 6"
    fi
else
    result calls-spread-over-both-nodes 1 "a call through Kamailio failed (see $OUT/via-kamailio)"
fi

# --- calls-connect-after-node-stops ------------------------------------------------
kill -TERM "$PID_A"
for ((i = 0; i < 100; i++)); do kill -0 "$PID_A" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$PID_A" 2>/dev/null; then
    result calls-connect-after-node-stops 1 "node A did not stop on SIGTERM"
else
    wait "$PID_A" 2>/dev/null; PID_A=""
    b0=$(attempted "$API_B")
    if calls after-stop "$KAM_PORT" "$DID_B" 4 && calls after-stop-a-binding "$KAM_PORT" "$DID_A" 2; then
        db=$(($(attempted "$API_B") - b0))
        if [ "$db" = 6 ]; then
            echo "   6 calls after node A stopped, all on node B"
            result calls-connect-after-node-stops 0 ""
        else
            result calls-connect-after-node-stops 1 "node B took $db of 6"
        fi
    else
        result calls-connect-after-node-stops 1 "a call failed after node A stopped (see $OUT/after-stop*)"
    fi
fi

# --- records-of-both-nodes-in-one-db ----------------------------------------------
if [ "$(api "$API_B" GET "/calls?limit=100&filter=sip_status+eq+200")" = 200 ] && [ "$(body 'b["total"]')" = 14 ]; then
    result records-of-both-nodes-in-one-db 0 ""
else
    result records-of-both-nodes-in-one-db 1 "GET /calls on node B: $(head -c 300 "$OUT/api.json")"
fi

echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
