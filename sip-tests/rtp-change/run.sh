#!/usr/bin/env bash
# End-to-end test of an RTP source change mid-call (RFC 3550 §8.2,
# symmetric RTP; fault class 15 of docs/robustness.md) against the release
# binary: a scripted caller (ua.py, Python standard library only) calls
# through Mediator to a scripted callee, both send RTP and RTCP, then the
# caller moves to a new source port pair with a new SSRC, without SIP. Audio
# must keep flowing both ways within 600 ms (the callee gets the new stream,
# the caller gets the callee's stream at its NEW port), RTCP must follow,
# and packets a stranger sprays at the call's port while the caller talks
# must never reach the callee (RTP-bleed guard). See ua.py for the details.
#
# Usage (from the repository root):
#   MEDIATOR_BIN=/path/to/mediator bash sip-tests/rtp-change/run.sh
# Env: MEDIATOR_BIN (default $CARGO_TARGET_DIR/release/mediator, else
#      target/release/mediator).
# Ports: 127.0.0.1 only, all in 35000-35999: free ones picked in 35000-35099
# for SIP (Mediator, trunk) and REST; the user agents' RTP/RTCP pairs are
# 8 consecutive free ports from 35100-35499; Mediator's RTP relay uses
# 35500-35999. Needs python3, curl and ss.
# Last line "N passed, M failed"; exit status non-zero on any failure.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT="$HERE/out"
BIN="${MEDIATOR_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/mediator}"
LOGIN=rtptest
PASSWORD=rtptest-password
MED_PID=""
PASS=0 FAIL=0

rm -rf "$OUT"
mkdir -p "$OUT"
STATE=$(mktemp -d "${TMPDIR:-/tmp}/mediator-rtp-change.XXXXXX")
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

# Three free ports (UDP and TCP) in 35000-35099, and the first of 8
# consecutive free UDP ports in 35100-35499.
PORTS=$(python3 - <<'EOF'
import socket, sys
def free(p, kinds):
    socks = []
    try:
        for kind in kinds:
            s = socket.socket(socket.AF_INET, kind); socks.append(s); s.bind(("127.0.0.1", p))
        return True
    except OSError:
        return False
    finally:
        for s in socks: s.close()
out = [p for p in range(35000, 35100) if free(p, (socket.SOCK_DGRAM, socket.SOCK_STREAM))][:3]
base = next((p for p in range(35100, 35492, 2) if all(free(q, (socket.SOCK_DGRAM,)) for q in range(p, p + 8))), None)
if len(out) < 3 or base is None:
    sys.exit("no free ports in 35000-35499")
print(*out, base)
EOF
) || abort "no free ports in 35000-35499"
read -r SIP_PORT TRUNK_PORT API_PORT UA_BASE <<<"$PORTS"
API="http://127.0.0.1:$API_PORT/mediator/v1"
echo "ports: mediator $SIP_PORT, trunk $TRUNK_PORT, REST $API_PORT, user agents' RTP $UA_BASE-$((UA_BASE + 7)), relay 35500-35999"

DID=15162065371 DEST=15162065381 CALLER=12127381234

cat >"$STATE/mediator.toml" <<EOF
[api]
listen = "127.0.0.1:$API_PORT"

[sip]
listen = ["udp:127.0.0.1:$SIP_PORT"]
advertised_host = "127.0.0.1"
trunk = "sip:127.0.0.1:$TRUNK_PORT"
trusted = ["127.0.0.1/32"]
ring_timeout_secs = 8
drain_secs = 1

[media]
advertised_ip = "127.0.0.1"
bind_ip = "127.0.0.1"
rtp_ports = "35500-35999"

[database]
url = "sqlite://$DB"

[[accounts]]
name = "RTP source change test"
login = "$LOGIN"
password = "$PASSWORD"
dids = ["$DID"]
EOF

clean=()
for v in $(env | grep -o '^MEDIATOR_[A-Z_]*'); do clean+=(-u "$v"); done
env "${clean[@]}" MEDIATOR_LOG="info,rsipstack=warn" \
    "$BIN" serve --config "$STATE/mediator.toml" >>"$OUT/mediator.log" 2>&1 &
MED_PID=$!
up=0
for ((i = 0; i < 300; i++)); do
    kill -0 "$MED_PID" 2>/dev/null || { MED_PID=""; abort "mediator exited at start: $(tail -5 "$OUT/mediator.log")"; }
    code=$(curl -s -o /dev/null -w '%{http_code}' -u "$LOGIN:$PASSWORD" "$API/dids?limit=1")
    if [ "$code" = 200 ] && ss -Hlunp "sport = :$SIP_PORT" 2>/dev/null | grep -q "pid=$MED_PID,"; then
        up=1; break
    fi
    sleep 0.1
done
[ "$up" = 1 ] || abort "mediator did not come up in 30 s"

code=$(curl -s -o "$OUT/api.json" -w '%{http_code}' -u "$LOGIN:$PASSWORD" -X POST \
    -H 'Content-Type: application/json' \
    --data-binary "{\"destination_did\":\"$DEST\",\"redirect_did\":\"$DID\",\"wait_origination_did_ttl\":-1}" "$API/bindings")
[ "$code" = 200 ] || abort "POST /bindings -> $code: $(cat "$OUT/api.json")"

line=$(timeout 60 python3 "$HERE/ua.py" --med-port "$SIP_PORT" --trunk-port "$TRUNK_PORT" --did "$DID" \
    --caller "$CALLER" --base-port "$UA_BASE" 2>"$OUT/ua.err")
rc=$?
[ -n "$line" ] || line="FAIL rtp-source-change: ua.py exited $rc without a verdict ($(tail -1 "$OUT/ua.err"))"
if [ $rc = 0 ] && ! kill -0 "$MED_PID" 2>/dev/null; then
    rc=1 line="FAIL rtp-source-change: Mediator died during the call"
fi
if grep -q "panicked" "$OUT/mediator.log"; then
    rc=1 line="FAIL rtp-source-change: panic in $OUT/mediator.log"
fi
echo "$line"
if [ $rc = 0 ]; then PASS=1; else FAIL=1; fi
echo "Mediator's log in $OUT/mediator.log"
echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
