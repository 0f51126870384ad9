#!/usr/bin/env bash
# End-to-end tests of SIP over TCP framing (RFC 3261 §18.3; field cases
# BC-18, fault class 9) and of requests larger than UDP allows (§18.1.1;
# BC-19, class 13), against the release binary.
#
# A scripted user agent (ua.py, Python standard library only) is the caller
# (A leg, over TCP or UDP to Mediator) and the callee (the trunk, listening on
# TCP and/or UDP); it chooses exactly how the bytes are written (chunks with
# TCP_NODELAY and a pause between them, or several messages in one sendall).
# Every case is a whole call (INVITE with SDP, 180/200, ACK, BYE, 200) checked
# end to end, plus its call detail record in the SQLite file.
#
# Usage (from the repository root):
#   MEDIATOR_BIN=/path/to/mediator bash sip-tests/tcp-framing/run.sh
# Env: MEDIATOR_BIN (default $CARGO_TARGET_DIR/release/mediator, else
#      target/release/mediator), ONLY=regex (run the matching cases).
# Ports: 127.0.0.1, free ones picked in 47000-47999; Mediator's RTP relay
# uses 48000-48499. Needs python3, curl and ss.
# One line per case: "PASS name", "FAIL name: why" or "GAP name: what" (a
# behaviour Mediator lacks; not counted); last line "N passed, M failed";
# exit status non-zero on any failure.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT="$HERE/out"
BIN="${MEDIATOR_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/mediator}"
ONLY="${ONLY:-.}"
LOGIN=tcptest
PASSWORD=tcptest-password
PASS=0 FAIL=0 GAPS=0
MED_PID=""
T0=$SECONDS

rm -rf "$OUT"
mkdir -p "$OUT"
STATE=$(mktemp -d "${TMPDIR:-/tmp}/mediator-tcp-tests.XXXXXX")
DB="$STATE/mediator.db"

cleanup() {
    if [ -n "$MED_PID" ]; then
        kill "$MED_PID" 2>/dev/null
        wait "$MED_PID" 2>/dev/null
    fi
    rm -rf "$STATE"
}
trap cleanup EXIT

abort() { echo "$*"; echo "0 passed, 1 failed"; exit 1; }
for t in python3 curl ss; do
    command -v "$t" >/dev/null 2>&1 || abort "missing tool: $t (apt-get install -y --no-install-recommends python3 curl iproute2)"
done
[ -x "$BIN" ] || abort "no Mediator binary at $BIN (cargo build --release, or set MEDIATOR_BIN)"

# Free ports on UDP and TCP, only in 47000-47999.
PORTS=$(python3 - <<'EOF'
import socket, sys
out = []
for p in range(47000, 48000):
    socks = []
    try:
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            s = socket.socket(socket.AF_INET, kind); socks.append(s); s.bind(("127.0.0.1", p))
        out.append(p)
    except OSError:
        pass
    finally:
        for s in socks: s.close()
    if len(out) == 3:
        break
if len(out) < 3:
    sys.exit("no free ports in 47000-47999")
print(*out)
EOF
) || abort "no free ports in 47000-47999"
read -r SIP_PORT TRUNK_PORT API_PORT <<<"$PORTS"
API="http://127.0.0.1:$API_PORT/mediator/v1"
echo "ports: mediator $SIP_PORT (udp+tcp), trunk $TRUNK_PORT, REST $API_PORT, RTP 48000-48499"

DID_OPEN=15162065351 DID_BIG=15162065352
DEST_OPEN=15162065361 DEST_BIG=15162065362

write_config() { # TRUNK_URI
    cat >"$STATE/mediator.toml" <<EOF
[api]
listen = "127.0.0.1:$API_PORT"

[sip]
listen = ["udp:127.0.0.1:$SIP_PORT", "tcp:127.0.0.1:$SIP_PORT"]
advertised_host = "127.0.0.1"
trunk = "$1"
trusted = ["127.0.0.1/32"]
ring_timeout_secs = 8
drain_secs = 1

[media]
advertised_ip = "127.0.0.1"
bind_ip = "127.0.0.1"
rtp_ports = "48000-48499"

[database]
url = "sqlite://$DB"

[[accounts]]
name = "TCP framing tests"
login = "$LOGIN"
password = "$PASSWORD"
dids = ["$DID_OPEN", "$DID_BIG"]
EOF
}

bound() { # udp|tcp PORT PID
    local out
    if [ "$1" = udp ]; then out=$(ss -Hlunp "sport = :$2" 2>/dev/null); else out=$(ss -Hltnp "sport = :$2" 2>/dev/null); fi
    grep -q "pid=$3," <<<"$out"
}

start_med() { # TRUNK_URI
    write_config "$1"
    local clean=() v i code
    for v in $(env | grep -o '^MEDIATOR_[A-Z_]*'); do clean+=(-u "$v"); done
    echo "--- start: trunk $1" >>"$OUT/mediator.log"
    env "${clean[@]}" MEDIATOR_LOG="info,rsipstack=warn" \
        "$BIN" serve --config "$STATE/mediator.toml" >>"$OUT/mediator.log" 2>&1 &
    MED_PID=$!
    for ((i = 0; i < 300; i++)); do
        kill -0 "$MED_PID" 2>/dev/null || { echo "mediator exited at start:"; tail -5 "$OUT/mediator.log"; MED_PID=""; return 1; }
        code=$(curl -s -o /dev/null -w '%{http_code}' -u "$LOGIN:$PASSWORD" "$API/dids?limit=1")
        if [ "$code" = 200 ] && bound udp "$SIP_PORT" "$MED_PID" && bound tcp "$SIP_PORT" "$MED_PID"; then
            return 0
        fi
        sleep 0.1
    done
    echo "mediator did not come up in 30 s"
    return 1
}

stop_med() {
    [ -n "$MED_PID" ] || return 0
    kill -TERM "$MED_PID" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$MED_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$MED_PID" 2>/dev/null
    wait "$MED_PID" 2>/dev/null
    MED_PID=""
}

new_binding() { # JSON -> prints the HTTP status, body in $OUT/api.json
    curl -s -o "$OUT/api.json" -w '%{http_code}' -u "$LOGIN:$PASSWORD" -X POST \
        -H 'Content-Type: application/json' --data-binary "$1" "$API/bindings"
}

CASE_N=0
# run_case NAME DID CALLEE(tcp|udp|both)
run_case() {
    local name=$1 did=$2 callee=$3 line rc t1
    echo "$name" | grep -Eq "$ONLY" || return 0
    CASE_N=$((CASE_N + 1))
    t1=$(date +%s%N)
    if ! kill -0 "$MED_PID" 2>/dev/null; then
        FAIL=$((FAIL + 1)); echo "FAIL $name: Mediator is not running"; return
    fi
    echo "=== $name" >>"$OUT/mediator.log"
    line=$(timeout 90 python3 "$HERE/ua.py" "$name" --med-port "$SIP_PORT" --trunk-port "$TRUNK_PORT" \
        --did "$did" --caller-base "$((12127300000 + CASE_N * 100))" --db "$DB" --callee "$callee" 2>"$OUT/$name.err")
    rc=$?
    [ -n "$line" ] || line="FAIL $name: ua.py exited $rc without a verdict ($(tail -1 "$OUT/$name.err"))"
    if [ $rc = 0 ] && ! kill -0 "$MED_PID" 2>/dev/null; then
        rc=1 line="FAIL $name: Mediator died during the case"
    fi
    local took=$(( ($(date +%s%N) - t1) / 100000000 ))
    echo "$line ($((took / 10)).$((took % 10)) s)"
    case $rc in
        0) PASS=$((PASS + 1)) ;;
        2) GAPS=$((GAPS + 1)) ;;
        *) FAIL=$((FAIL + 1)) ;;
    esac
}

# --- part 1: TCP trunk, framing (class 9, BC-18) ------------------------------
start_med "sip:127.0.0.1:$TRUNK_PORT;transport=tcp" || abort "Mediator did not start"
code=$(new_binding "{\"destination_did\":\"$DEST_OPEN\",\"redirect_did\":\"$DID_OPEN\",\"wait_origination_did_ttl\":-1}")
[ "$code" = 200 ] || abort "POST /bindings -> $code: $(cat "$OUT/api.json")"
# The big binding: 6 X- headers of 240 characters, so the B-leg INVITE is
# well over 1300 bytes (RFC 3261 §18.1.1) with a small SDP.
LONG=$(printf 'v%.0s' $(seq 1 240))
XH=""
for i in 1 2 3 4 5 6; do XH="$XH,\"sip_header_X-Mediator-Test-$i\":\"$i-$LONG\""; done
code=$(new_binding "{\"destination_did\":\"$DEST_BIG\",\"redirect_did\":\"$DID_BIG\",\"wait_origination_did_ttl\":-1,\"attributes\":{${XH#,}}}")
[ "$code" = 200 ] || abort "POST /bindings (big) -> $code: $(cat "$OUT/api.json")"

run_case ack-bye-one-segment "$DID_OPEN" tcp
run_case invite-split-3 "$DID_OPEN" tcp
run_case invite-split-crlf-cr "$DID_OPEN" tcp
run_case invite-bytewise "$DID_OPEN" tcp
run_case crlf-keepalive "$DID_OPEN" tcp
run_case callee-180-200-one-segment "$DID_OPEN" tcp
run_case callee-200-split-blank-line "$DID_OPEN" tcp
run_case no-content-length "$DID_OPEN" tcp
run_case content-length-too-large "$DID_OPEN" tcp
run_case content-length-too-large-bounded "$DID_OPEN" tcp
run_case content-length-too-small "$DID_OPEN" tcp
run_case large-a-invite-tcp "$DID_OPEN" tcp
stop_med

# --- part 2: UDP trunk, requests over the UDP limit (class 13, BC-19) ------------
start_med "sip:127.0.0.1:$TRUNK_PORT" || abort "Mediator did not start (UDP trunk)"
run_case large-b-invite-tcp "$DID_BIG" both
run_case large-b-invite-fallback-udp "$DID_BIG" udp
run_case large-b-invite-tcp-blackhole "$DID_BIG" udp-tcp-blackhole
run_case small-b-invite-udp "$DID_OPEN" both
run_case large-a-invite-udp "$DID_OPEN" both
run_case huge-a-invite-udp "$DID_OPEN" both
run_case udp-no-content-length "$DID_OPEN" both
run_case udp-content-length-too-large "$DID_OPEN" both
stop_med

echo "took $((SECONDS - T0)) s; $GAPS gap(s); Mediator's log in $OUT/mediator.log"
echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
