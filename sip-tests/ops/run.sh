#!/usr/bin/env bash
# Operations end to end (issue 7), against the release binary: call detail
# record callbacks, the calls API, JSON logs with the call's SID and masked
# numbers, Prometheus metrics and health checks.
#
# `mediator serve --log-format json` (SQLite in a temp dir, [log]
# mask_numbers = true, /metrics on a separate listener) between SIPp
# callers and a SIPp callee; the account's callback_url points at
# receiver.py, a real HTTP server that checks every delivery's HMAC-SHA256
# signature and answers 500 to the first two attempts of each record.
#
# Cases:
#   callback-delivered-after-retries  an answered call's record reaches the
#       receiver on the third attempt (500, 500, 200), signed, with the
#       binding's SID, numbers, times, DTMF, status and attributes
#   calls-api-lists-the-call          GET /calls and /calls/{sid} show it
#   json-logs-call-sid-and-masking    every log line is JSON, the call's
#       lines carry its SID in the span, numbers appear only masked
#   metrics-and-health                /metrics counts the calls (answered,
#       failed by status), set-up latency, API requests, callbacks, gauges;
#       /healthz and /readyz answer 200
#   callback-survives-kill-9          a record whose delivery keeps failing
#       is delivered after `kill -9` and a restart
#
# Needs: sipp (Debian sip-tester), python3, curl, ss. Loopback only; only
# processes started here are stopped, by PID.
# Ports: SIP/REST/metrics/receiver preferred 49060-49099 (free ones picked
# otherwise), media 49100-49119, Mediator's relay ports 37000-37999.
# Env: MEDIATOR_BIN (default target/release/mediator, built if missing).
# Last line: "N passed, M failed"; exit status non-zero on any failure.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
ST=$(dirname "$HERE")                    # sip-tests
ROOT=$(dirname "$ST")
SC="$ST/scenarios"
OUT="$HERE/out"
BIN="${MEDIATOR_BIN:-$ROOT/target/release/mediator}"
LOGIN=ops PASSWORD=ops-password SECRET=ops-callback-secret
PASS=0 FAIL=0
MED_PID="" RECV_PID=""
BG=()

rm -rf "$OUT"; mkdir -p "$OUT/recv"
STATE=$(mktemp -d "${TMPDIR:-/tmp}/mediator-ops.XXXXXX")
cleanup() {
    local p
    for p in $MED_PID $RECV_PID "${BG[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$STATE"
}
trap cleanup EXIT
abort() { echo "$*"; echo "0 passed, 1 failed"; exit 1; }
for t in sipp:sip-tester python3:python3 curl:curl ss:iproute2; do
    command -v "${t%%:*}" >/dev/null 2>&1 || abort "missing tool: ${t%%:*} (apt-get install ${t#*:})"
done
[ -x "$BIN" ] || (cd "$ROOT" && cargo build --release) || abort "build failed"

PORTS=$(python3 "$ST/freeport.py" 49060 49080 49070 49089 49090 49091) || abort "no free ports"
read -r SIP_PORT UAS_PORT UAC_PORT API_PORT MET_PORT RECV_PORT <<<"$PORTS"
PORTS=$(python3 "$ST/freeport.py" --pair 49100 49110) || abort "no free media ports"
read -r A_MP B_MP <<<"$PORTS"
API="http://127.0.0.1:$API_PORT/mediator/v1"
RTP_RE="37[0-9]{3}"                      # the relay ports in SDP (rtp_ports below)
MET="http://127.0.0.1:$MET_PORT"
DID=15162065350 DID_KILL=15162065351 DID_NONE=15162065352
CALLER=12127361234 DEST=15162065300 DEST_KILL=15162065306
echo "ports: mediator $SIP_PORT, callee $UAS_PORT, caller $UAC_PORT, REST $API_PORT, metrics $MET_PORT, receiver $RECV_PORT"

cat >"$STATE/mediator.toml" <<CFG
[api]
listen = "127.0.0.1:$API_PORT"

[sip]
listen = ["udp:127.0.0.1:$SIP_PORT"]
trunk = "sip:127.0.0.1:$UAS_PORT"
trusted = ["127.0.0.1/32"]
drain_secs = 1

[media]
bind_ip = "127.0.0.1"
rtp_ports = "37000-37999"

[database]
url = "sqlite://$STATE/mediator.db"

[callbacks]
initial_backoff_ms = 200
max_backoff_secs = 1
retry_for_secs = 600
poll_ms = 200
timeout_secs = 2

[metrics]
listen = "127.0.0.1:$MET_PORT"

[log]
mask_numbers = true

[[accounts]]
name = "Ops"
login = "$LOGIN"
password = "$PASSWORD"
dids = ["$DID", "$DID_KILL", "$DID_NONE"]
callback_url = "http://127.0.0.1:$RECV_PORT/cdr"
callback_secret = "$SECRET"
CFG

start_med() {
    local clean=() v
    for v in $(env | grep -o '^MEDIATOR_[A-Z_]*'); do clean+=(-u "$v"); done
    env "${clean[@]}" MEDIATOR_LOG="info,rsipstack=warn" \
        "$BIN" serve --config "$STATE/mediator.toml" --log-format json >>"$OUT/mediator.log" 2>&1 &
    MED_PID=$!
    local i
    for ((i = 0; i < 300; i++)); do
        kill -0 "$MED_PID" 2>/dev/null || { tail -5 "$OUT/mediator.log"; MED_PID=""; return 1; }
        [ "$(curl -s -o /dev/null -w '%{http_code}' "$MET/readyz")" = 200 ] && return 0
        sleep 0.1
    done
    return 1
}

api() { # METHOD PATH [JSON]: prints the status; body in $OUT/api.json
    local args=(-s -o "$OUT/api.json" -w '%{http_code}' -u "$LOGIN:$PASSWORD" -X "$1")
    [ -n "${3:-}" ] && args+=(-H 'Content-Type: application/json' --data-binary "$3")
    curl "${args[@]}" "$API$2"
}
body() { python3 -c 'import json,sys; b=json.load(open(sys.argv[1]))["body"]; print(eval(sys.argv[2], {"b": b}))' "$OUT/api.json" "$1"; }

result() { # NAME OK WHY
    if [ "$2" = 0 ]; then PASS=$((PASS + 1)); echo "PASS $1"; else FAIL=$((FAIL + 1)); echo "FAIL $1: $3"; fi
}

# call NAME DID UAC_TEMPLATE EXTRA_VARS ANSWER(0|1): one SIPp call
call() {
    local d="$OUT/$1"; mkdir -p "$d"
    python3 "$ST/render.py" "$SC/$3" "$d/uac.xml" "UAS_PORT=$UAS_PORT" "UAC_PORT=$UAC_PORT" "RTP_RE=$RTP_RE" \
        "FROM=\"Alice\" <sip:$CALLER@127.0.0.1>" "FORMATS=8 101" \
        "RTPMAPS=a=rtpmap:8 PCMA/8000\\na=rtpmap:101 telephone-event/8000" MAX_FORWARDS=70 HOLD_MS=1000 $4
    local uas=""
    if [ "$5" = 1 ]; then
        python3 "$ST/render.py" "$SC/uas.xml" "$d/uas.xml" FLOW=answer "UAS_PORT=$UAS_PORT" "UAC_PORT=$UAC_PORT" "B_MP=$B_MP" "RTP_RE=$RTP_RE" \
            "B_FORMATS=8 101" "B_RTPMAPS=a=rtpmap:8 PCMA/8000\\na=rtpmap:101 telephone-event/8000"
        (cd "$d" && exec timeout 40 sipp -sf uas.xml -i 127.0.0.1 -p "$UAS_PORT" -m 1 -mp "$B_MP" -nostdin \
            -trace_err -timeout 30s -timeout_error >uas.out 2>&1) &
        uas=$!
        sleep 0.3
    fi
    (cd "$d" && timeout 40 sipp -sf uac.xml "127.0.0.1:$SIP_PORT" -i 127.0.0.1 -p "$UAC_PORT" -m 1 -mp "$A_MP" \
        -s "$2" -nostdin -trace_err -timeout 30s -timeout_error >uac.out 2>&1)
    local rc=$?
    [ -n "$uas" ] && { wait "$uas" || rc=1; }
    return $rc
}

# wait_for SECS PYTHON_EXPR_OVER_FILES: polls until the check prints "ok"
wait_for() {
    local i
    for ((i = 0; i < $1 * 5; i++)); do
        [ "$(python3 - "$OUT/recv" "$2" <<'PY'
import json, os, sys
d, expr = sys.argv[1], sys.argv[2]
def lines(name):
    p = os.path.join(d, name)
    return [json.loads(l) for l in open(p)] if os.path.exists(p) else []
print("ok" if eval(expr, {"req": lines("requests.jsonl"), "dl": lines("delivered.jsonl")}) else "")
PY
)" = ok ] && return 0
        sleep 0.2
    done
    return 1
}

python3 "$HERE/receiver.py" "$RECV_PORT" "$SECRET" "$OUT/recv" 2 >"$OUT/receiver.log" 2>&1 &
RECV_PID=$!
start_med || abort "mediator did not start (see $OUT/mediator.log)"

# --- callback-delivered-after-retries -----------------------------------------
[ "$(api POST /bindings "{\"destination_did\":\"$DEST\",\"redirect_did\":\"$DID\",\"dtmf\":\"12#\",\"attributes\":{\"crm_id\":\"A-17\"}}")" = 200 ] ||
    abort "POST /bindings: $(cat "$OUT/api.json")"
BSID=$(body 'b["binding_sid"]')
if call answered "$DID" uac_call.xml TAIL=caller_bye 1; then
    api GET "/calls?filter=reference_sid+eq+$BSID" >/dev/null
    SID=$(body 'b["items"][0]["call_sid"] if b["items"] else ""')
    if [ -z "$SID" ]; then
        result callback-delivered-after-retries 1 "no call record for the binding"
    elif ! wait_for 20 "any(r.get('call_sid') == '$SID' for r in dl)"; then
        result callback-delivered-after-retries 1 "record $SID not delivered in 20 s (see $OUT/recv)"
    else
        why=$(python3 - "$OUT/recv" "$SID" "$BSID" <<'PY'
import json, sys
d, sid, bsid = sys.argv[1:]
req = [json.loads(l) for l in open(d + "/requests.jsonl") if json.loads(l)["call_sid"] == sid]
dl = [json.loads(l) for l in open(d + "/delivered.jsonl") if json.loads(l)["call_sid"] == sid]
r = dl[0]
want = {"reference_sid": bsid, "type": "binding", "direction": "inbound", "number_src": "12127361234",
        "number_dst": "15162065300", "number_redirect": "15162065350", "sip_status": 200, "dtmf": "12#"}
bad = [f"{k}={r.get(k)!r}, not {v!r}" for k, v in want.items() if r.get(k) != v]
if r.get("attributes", {}).get("crm_id") != "A-17": bad.append(f"attributes {r.get('attributes')}")
if not (r.get("date_start") and r.get("date_talk") and r.get("date_stop")): bad.append("times missing")
if not isinstance(r.get("duration"), int): bad.append("duration")
if [q["status"] for q in req] != [500, 500, 200]: bad.append(f"statuses {[q['status'] for q in req]}")
if [q["attempt"] for q in req] != ["1", "2", "3"]: bad.append(f"attempt headers {[q['attempt'] for q in req]}")
if not all(q["sig_ok"] for q in req): bad.append("a bad signature")
if not all(q["sid_header"] == sid for q in req): bad.append("X-Mediator-Call-Sid")
if not all(q["content_type"] == "application/json" for q in req): bad.append("content type")
print("; ".join(bad) if bad else f"ok: 3 attempts (500, 500, 200), signed, duration {r['duration']} s")
PY
)
        case "$why" in ok*) echo "   $why"; result callback-delivered-after-retries 0 "";; *) result callback-delivered-after-retries 1 "$why";; esac
    fi
else
    SID=""
    result callback-delivered-after-retries 1 "the SIPp call failed (see $OUT/answered)"
fi

# --- calls-api-lists-the-call ---------------------------------------------------
if [ -n "$SID" ] && [ "$(api GET "/calls/$SID")" = 200 ] &&
    [ "$(body 'b["sip_status"], b["number_dst"], b["reference_sid"] == "'"$BSID"'", b["date_talk"] is not None')" = "(200, '15162065300', True, True)" ]; then
    result calls-api-lists-the-call 0 ""
else
    result calls-api-lists-the-call 1 "GET /calls/$SID: $(cat "$OUT/api.json")"
fi

# A call to a DID without a binding: 404, a failed call in the metrics.
call unrouted "$DID_NONE" uac_final.xml CODE=404 0 || echo "   (the 404 call's SIPp failed: see $OUT/unrouted)"

# --- json-logs-call-sid-and-masking -------------------------------------------
why=$(python3 - "$OUT/mediator.log" "$SID" <<'PY'
import json, sys
path, sid = sys.argv[1:]
text = open(path).read()
bad, ours = [], []
for line in text.splitlines():
    try:
        o = json.loads(line)
    except ValueError:
        bad.append(line[:80]); continue
    if o.get("span", {}).get("call_sid") == sid:
        ours.append(o["fields"]["message"])
problems = []
if bad: problems.append(f"{len(bad)} lines not JSON, e.g. {bad[0]!r}")
for m in ("B leg INVITE sent", "call answered", "hang up"):
    if m not in ours: problems.append(f"no line {m!r} with the call's SID")
for n in ("12127361234", "15162065300", "15162065350"):
    if n in text: problems.append(f"number {n} in the log unmasked")
if "1516***5300" not in text: problems.append("no masked destination 1516***5300")
print("; ".join(problems) if problems else f"ok: {len(ours)} lines carry the SID")
PY
)
case "$why" in ok*) echo "   $why"; result json-logs-call-sid-and-masking 0 "";; *) result json-logs-call-sid-and-masking 1 "$why";; esac

# --- metrics-and-health -----------------------------------------------------------
curl -s "$MET/metrics" >"$OUT/metrics.txt"
curl -s -o /dev/null -w '%{http_code} %{content_type}\n' "http://127.0.0.1:$API_PORT/metrics" >"$OUT/metrics-on-api.txt"
why=$(python3 - "$OUT/metrics.txt" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
def value(name, labels=""):
    total = None
    for line in text.splitlines():
        if line.startswith("#"): continue
        m = re.match(r'^([a-z_]+)(\{.*\})?\s+(\S+)$', line)
        if m and m.group(1) == name and all(l in (m.group(2) or "") for l in labels.split(",") if l):
            total = (total or 0) + float(m.group(3))
    return total
checks = [
    ("mediator_calls_attempted_total", "", lambda v: v >= 2),
    ("mediator_calls_answered_total", "", lambda v: v >= 1),
    ("mediator_calls_failed_total", 'status="404"', lambda v: v >= 1),
    ("mediator_calls_active", "", lambda v: v == 0),
    ("mediator_rtp_streams_active", "", lambda v: v == 0),
    ("mediator_call_setup_seconds_count", "", lambda v: v >= 1),
    ("mediator_api_requests_total", 'route="/mediator/v1/bindings",status="200"', lambda v: v >= 1),
    ("mediator_api_request_duration_seconds_count", 'route="/mediator/v1/calls/{sid}"', lambda v: v >= 1),
    ("mediator_callbacks_total", 'outcome="failed"', lambda v: v >= 2),
    ("mediator_callbacks_total", 'outcome="delivered"', lambda v: v >= 1),
]
bad = [f"{n}{{{l}}} = {value(n, l)}" for n, l, ok in checks if value(n, l) is None or not ok(value(n, l))]
print("; ".join(bad) if bad else "ok")
PY
)
h=$(curl -s -o /dev/null -w '%{http_code}' "$MET/healthz"); r=$(curl -s -o /dev/null -w '%{http_code}' "$MET/readyz")
ra=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$API_PORT/readyz")
if [ "$why" = ok ] && [ "$h" = 200 ] && [ "$r" = 200 ] && [ "$ra" = 200 ] && grep -q '^200 text/plain' "$OUT/metrics-on-api.txt"; then
    result metrics-and-health 0 ""
else
    result metrics-and-health 1 "metrics: $why; healthz $h, readyz $r (API listener $ra), /metrics on the API: $(cat "$OUT/metrics-on-api.txt")"
fi

# --- callback-survives-kill-9 ---------------------------------------------------
touch "$OUT/recv/down"
[ "$(api POST /bindings "{\"destination_did\":\"$DEST_KILL\",\"redirect_did\":\"$DID_KILL\"}")" = 200 ] || abort "POST /bindings"
BSID2=$(body 'b["binding_sid"]')
if call killed "$DID_KILL" uac_call.xml TAIL=caller_bye 1; then
    api GET "/calls?filter=reference_sid+eq+$BSID2" >/dev/null
    SID2=$(body 'b["items"][0]["call_sid"] if b["items"] else ""')
    if [ -n "$SID2" ] && wait_for 10 "sum(1 for r in req if r['call_sid'] == '$SID2' and r['status'] == 503) >= 2"; then
        kill -KILL "$MED_PID"; wait "$MED_PID" 2>/dev/null; MED_PID=""
        rm -f "$OUT/recv/down"
        sleep 1
        n_before=$(grep -c "\"$SID2\"" "$OUT/recv/requests.jsonl")
        if ! start_med; then
            result callback-survives-kill-9 1 "mediator did not restart"
        elif wait_for 20 "any(r.get('call_sid') == '$SID2' for r in dl)"; then
            echo "   $n_before attempts before kill -9, delivered after the restart"
            result callback-survives-kill-9 0 ""
        else
            result callback-survives-kill-9 1 "not delivered after the restart (see $OUT/recv)"
        fi
    else
        result callback-survives-kill-9 1 "no failing attempts seen for the record before the kill"
    fi
else
    result callback-survives-kill-9 1 "the SIPp call failed (see $OUT/killed)"
fi

echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
