#!/usr/bin/env bash
# Hostile input against the real server: the RFC 4475 torture messages sent
# to `mediator serve` while a call is up, then checks that the process lives,
# the call in progress ends normally and is recorded, a new call connects,
# and a call written entirely in compact header forms with several Via
# values on one line connects and ends cleanly (field cases BC-16, BC-17).
#
#   1. Mediator (release build, SQLite in a temp dir, trusted 127.0.0.0/8,
#      trunk = a SIPp UAS), four bindings made over REST;
#   2. a long call: SIPp UAC -> Mediator -> SIPp UAS (RTP from a pcap);
#   3. while it is up, torture.py sends every message of messages/ over UDP
#      (and some over TCP) and checks each answer (table: out/torture.md);
#   4. Mediator is still alive and answers OPTIONS; the long call ends with
#      BYE/200 and leaves its call record;
#   5. a new call (SIPp) connects, and the compact-form call (compact_call.py).
#
# Needs sipp (sip-tester), python3, curl, ss. Loopback only; ports from
# 45000 (SIP, REST, SIPp) and 46000-46999 (Mediator's RTP); the torture
# sender uses 127.0.45.1:5060 and the compact caller 127.0.45.2. Only the
# processes started here are stopped, by PID.
# Output: PASS/FAIL/GAP lines; last line "N passed, M failed" (GAP lines,
# known gaps listed in docs/robustness.md, count as neither). Exit status
# non-zero on any failure.
# Env: MEDIATOR_BIN (default target/release/mediator, built if missing),
#      HOLD_S (how long the long call lasts, default 90; the torture takes about 60 s).
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
SIPT=$(dirname "$HERE")
ROOT=$(dirname "$SIPT")
OUT="$HERE/out"
SC="$SIPT/scenarios"
BIN="${MEDIATOR_BIN:-$ROOT/target/release/mediator}"
HOLD_S="${HOLD_S:-90}"
LOGIN=torture
PASSWORD=torture-password
PASS=0
FAIL=0
MED_PID=""
BG_PIDS=()

rm -rf "$OUT"
mkdir -p "$OUT"
STATE=$(mktemp -d "${TMPDIR:-/tmp}/mediator-torture.XXXXXX")
DB="$STATE/mediator.db"

cleanup() {
    local p
    for p in "${BG_PIDS[@]}" $MED_PID; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$STATE"
}
trap cleanup EXIT

abort() { echo "FAIL setup: $*"; echo "$PASS passed, $((FAIL + 1)) failed"; exit 1; }
result() { # NAME OK(0/1) WHY
    if [ "$2" = 0 ]; then PASS=$((PASS + 1)); echo "PASS $1"; else FAIL=$((FAIL + 1)); echo "FAIL $1: $3"; fi
}
for t in sipp python3 curl ss; do command -v "$t" >/dev/null || abort "missing tool: $t"; done
[ -r /usr/share/sip-tester/g711a.pcap ] || abort "missing /usr/share/sip-tester/g711a.pcap (sip-tester)"
if [ ! -x "$BIN" ]; then
    echo "building $BIN"
    (cd "$ROOT" && cargo build --release) || abort "build failed"
fi

PORTS=$(python3 "$SIPT/freeport.py" 45000 45010 45020 45030 45040) || abort "no free ports"
read -r SIP_PORT UAS_PORT UAC_PORT API_PORT UAC2_PORT <<<"$PORTS"
PORTS=$(python3 "$SIPT/freeport.py" --pair 45100 45110 45130 45140) || abort "no free media ports"
read -r A_MP B_MP A2_MP B2_MP <<<"$PORTS"
API="http://127.0.0.1:$API_PORT/mediator/v1"
echo "ports: mediator $SIP_PORT, trunk $UAS_PORT, caller $UAC_PORT, REST $API_PORT"

CALLER=12127361234
DID_LONG=15162065401 DID_AFTER=15162065402 DID_COMPACT=15162065403 DID_TORTURE=15162065404
DEST=15162065499

cat >"$STATE/mediator.toml" <<EOF
[api]
listen = "127.0.0.1:$API_PORT"

[sip]
listen = ["udp:127.0.0.1:$SIP_PORT", "tcp:127.0.0.1:$SIP_PORT"]
advertised_host = "127.0.0.1"
trunk = "sip:127.0.0.1:$UAS_PORT"
trusted = ["127.0.0.0/8"]
ring_timeout_secs = 10
drain_secs = 2

[media]
advertised_ip = "127.0.0.1"
bind_ip = "127.0.0.1"
rtp_ports = "46000-46999"

[database]
url = "sqlite://$DB"

[[accounts]]
name = "Torture"
login = "$LOGIN"
password = "$PASSWORD"
dids = ["$DID_LONG", "$DID_AFTER", "$DID_COMPACT", "$DID_TORTURE"]
EOF

clean=()
for v in $(env | grep -o '^MEDIATOR_[A-Z_]*'); do clean+=(-u "$v"); done
env "${clean[@]}" MEDIATOR_LOG="info,rsipstack=warn" "$BIN" serve --config "$STATE/mediator.toml" >"$OUT/mediator.log" 2>&1 &
MED_PID=$!
up=0
for _ in $(seq 1 300); do
    kill -0 "$MED_PID" 2>/dev/null || abort "mediator exited at start: $(tail -3 "$OUT/mediator.log")"
    code=$(curl -s -o /dev/null -w '%{http_code}' -u "$LOGIN:$PASSWORD" "$API/dids?limit=1")
    if [ "$code" = 200 ] && ss -Hlun "sport = :$SIP_PORT" | grep -q . && ss -Hltn "sport = :$SIP_PORT" | grep -q .; then up=1; break; fi
    sleep 0.1
done
[ "$up" = 1 ] || abort "mediator did not come up in 30 s"

binding() { # REDIRECT_DID -> binding SID (any caller, no expiry of the wait)
    curl -s -u "$LOGIN:$PASSWORD" -H 'Content-Type: application/json' -X POST "$API/bindings" \
        --data-binary "{\"destination_did\":\"$DEST\",\"redirect_did\":\"$1\",\"wait_origination_did_ttl\":-1}" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["body"]["binding_sid"])'
}
for d in $DID_LONG $DID_AFTER $DID_COMPACT $DID_TORTURE; do
    sid=$(binding "$d") || abort "cannot create the binding for $d"
    echo "binding $d: $sid"
done

render() { local t="$1" o="$2"; shift 2; python3 "$SIPT/render.py" "$t" "$o" "UAS_PORT=$UAS_PORT" "RTP_RE=46[0-9]{3}" "$@"; }
A_FROM="FROM=\"Alice\" <sip:$CALLER@127.0.0.1>"
FORMATS=("FORMATS=8 0 101" 'RTPMAPS=a=rtpmap:8 PCMA/8000\na=rtpmap:0 PCMU/8000\na=rtpmap:101 telephone-event/8000\na=fmtp:101 0-16')

# call NAME DID HOLD_MS UAC_PORT UAC_MP UAS_MP -> starts callee and caller SIPp in the background; sets UAC_PID UAS_PID
call() {
    local name=$1 did=$2 hold=$3 uport=$4 amp=$5 bmp=$6 d="$OUT/$1"
    mkdir -p "$d"
    render "$SC/uas.xml" "$d/uas.xml" FLOW=answer "UAC_PORT=$uport" "B_FORMATS=8 101" \
        'B_RTPMAPS=a=rtpmap:8 PCMA/8000\na=rtpmap:101 telephone-event/8000\na=fmtp:101 0-16'
    render "$SC/uac_call.xml" "$d/uac.xml" "UAC_PORT=$uport" "$A_FROM" "${FORMATS[@]}" MAX_FORWARDS=70 TAIL=caller_bye "HOLD_MS=$hold"
    local limit=$((hold / 1000 + 60))
    (cd "$d" && exec timeout "$limit" sipp -sf uas.xml -i 127.0.0.1 -p "$UAS_PORT" -t u1 -m 1 -mp "$bmp" \
        -nostdin -trace_err -trace_msg -timeout "${limit}s" -timeout_error >uas.out 2>&1) &
    UAS_PID=$!; BG_PIDS+=("$UAS_PID")
    for _ in $(seq 1 100); do ss -Hlun "sport = :$UAS_PORT" | grep -q . && break; sleep 0.05; done
    (cd "$d" && exec timeout "$limit" sipp -sf uac.xml "127.0.0.1:$SIP_PORT" -i 127.0.0.1 -p "$uport" -t u1 -m 1 \
        -mp "$amp" -s "$did" -nostdin -trace_err -trace_msg -timeout "${limit}s" -timeout_error >uac.out 2>&1) &
    UAC_PID=$!; BG_PIDS+=("$UAC_PID")
}

# answered NAME: the caller's message log shows the 200 to the INVITE
answered() {
    local i
    for i in $(seq 1 100); do
        grep -qs "SIP/2.0 200 OK" "$OUT/$1"/uac*_messages.log && return 0
        sleep 0.1
    done
    return 1
}

cdr_check() { # DID -> checks the one record of that DID: answered, hung up by the caller
    python3 "$SIPT/cdr.py" check "$DB" 0 --where "number_redirect=$1" date_answer=set sip_status=200 hangup_side=caller
}

echo "== a long call, up during the torture =="
call long "$DID_LONG" $((HOLD_S * 1000)) "$UAC_PORT" "$A_MP" "$B_MP"
LONG_UAC=$UAC_PID LONG_UAS=$UAS_PID
if answered long; then result "long call connects" 0; else result "long call connects" 1 "no 200 (see $OUT/long)"; fi

echo "== RFC 4475 torture messages =="
T0=$SECONDS
python3 "$HERE/torture.py" "$HERE/messages" "$SIP_PORT" "$OUT/torture.md" --did "$DID_TORTURE" | tee "$OUT/torture.out"
torture_rc=${PIPESTATUS[0]}
echo "   torture took $((SECONDS - T0)) s"
while read -r line; do
    case "$line" in
        PASS*) PASS=$((PASS + 1)) ;;
        FAIL*) FAIL=$((FAIL + 1)) ;;
    esac
done < <(grep -E '^(PASS|FAIL) ' "$OUT/torture.out")
[ "$torture_rc" = 0 ] || grep -q '^FAIL ' "$OUT/torture.out" || result "torture sender" 1 "exit $torture_rc"

echo "== after the torture =="
if kill -0 "$MED_PID" 2>/dev/null; then result "mediator still running" 0; else result "mediator still running" 1 "process gone: $(tail -5 "$OUT/mediator.log")"; fi
if kill -0 "$LONG_UAC" 2>/dev/null; then
    result "long call still up when the torture ended" 0
else
    result "long call still up when the torture ended" 1 "the caller ended before the torture did (raise HOLD_S)"
fi
opt=$(python3 - "$SIP_PORT" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); s.settimeout(2)
p = s.getsockname()[1]
m = (f"OPTIONS sip:127.0.0.1:{sys.argv[1]} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{p};branch=z9hG4bK-alive;rport\r\n"
     f"From: <sip:probe@127.0.0.1>;tag=alive\r\nTo: <sip:127.0.0.1>\r\nCall-ID: alive-probe\r\nCSeq: 1 OPTIONS\r\n"
     f"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
s.sendto(m.encode(), ("127.0.0.1", int(sys.argv[1])))
try:
    print(s.recv(65535).split(b"\r\n")[0].decode())
except OSError:
    print("no answer")
EOF
)
if [ "${opt#SIP/2.0 200}" != "$opt" ]; then result "mediator answers OPTIONS" 0; else result "mediator answers OPTIONS" 1 "$opt"; fi

wait "$LONG_UAC"; r1=$?
wait "$LONG_UAS"; r2=$?
if [ "$r1$r2" = 00 ]; then
    result "long call ends with BYE/200" 0
else
    result "long call ends with BYE/200" 1 "sipp exits caller=$r1 callee=$r2 (see $OUT/long)"
fi
if why=$(cdr_check "$DID_LONG"); then result "long call recorded" 0; echo "   $why"; else result "long call recorded" 1 "$why"; fi

echo "== a new call after the torture =="
call after "$DID_AFTER" 1000 "$UAC2_PORT" "$A2_MP" "$B2_MP"
wait "$UAC_PID"; r1=$?
wait "$UAS_PID"; r2=$?
if [ "$r1$r2" = 00 ]; then result "new call connects and ends" 0; else result "new call connects and ends" 1 "sipp exits caller=$r1 callee=$r2 (see $OUT/after)"; fi
if why=$(cdr_check "$DID_AFTER"); then result "new call recorded" 0; else result "new call recorded" 1 "$why"; fi

echo "== compact header forms, several Vias on one line (BC-16, BC-17) =="
python3 "$HERE/compact_call.py" "$SIP_PORT" "$UAS_PORT" "$DID_COMPACT" "$CALLER" >"$OUT/compact.out" 2>&1
rc=$?
sed 's/^/   /' "$OUT/compact.out" | grep -v 'PASS compact\|FAIL compact'
if [ "$rc" = 0 ]; then result "compact-form call connects and ends" 0; else result "compact-form call connects and ends" 1 "$(tail -1 "$OUT/compact.out")"; fi
if why=$(cdr_check "$DID_COMPACT"); then result "compact-form call recorded" 0; else result "compact-form call recorded" 1 "$why"; fi

if kill -0 "$MED_PID" 2>/dev/null; then result "mediator still running at the end" 0; else result "mediator still running at the end" 1 "process gone"; fi
if grep -q "panicked" "$OUT/mediator.log"; then result "no panic in the log" 1 "$(grep -m1 panicked "$OUT/mediator.log")"; else result "no panic in the log" 0; fi
grep -h '^GAP ' "$OUT/torture.out" >/dev/null && echo "known gaps: $(grep -c '^GAP ' "$OUT/torture.out") (docs/robustness.md)"
echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
