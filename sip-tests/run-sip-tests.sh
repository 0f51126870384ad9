#!/usr/bin/env bash
# End-to-end SIP tests of the real server: SIPp UAC (caller, A leg) ->
# `mediator serve` (release build, SQLite in a temp dir, bindings made over
# the REST API) -> SIPp UAS (callee at the trunk address, B leg), over UDP
# and TCP; plus one call placed by baresip, a real softphone.
#
# RTP is checked on the wire: tcpdump captures loopback, and each answered
# call must show packets from Mediator's relay ports arriving at BOTH media
# ports (caller and callee), i.e. media relayed both ways. Call detail
# records are read from the `calls` table of the SQLite file.
#
# Needs: sipp (Debian sip-tester), tcpdump (and root for it), python3, curl,
# baresip (for the softphone case). Only loopback addresses are used; only
# processes started here are stopped, by PID.
# Last line: "N passed, M failed"; exit status non-zero on any failure.
#
# Env: MEDIATOR_BIN (default target/release/mediator, built if missing),
#      ONLY=regex (run the matching cases), KEEP_DB=1 (keep the SQLite dir),
#      RTP_THOUSANDS (relay ports N000-N999, default 41), BS_RTP_LOW (18000),
#      PORT_BASE (preferred SIP/REST/media ports, see below).
#      Ports: 127.0.0.1:5060 (Mediator), 5080 (trunk), 5070 (caller) and
#      8089 (REST) when free, else free ports picked at start.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
OUT="$HERE/out"
SC="$HERE/scenarios"
BIN="${MEDIATOR_BIN:-$ROOT/target/release/mediator}"
ONLY="${ONLY:-.}"
PCAP_AUDIO=/usr/share/sip-tester/g711a.pcap
LOGIN=siptest
PASSWORD=siptest-password

PASS=0
FAIL=0
FAILED_NAMES=()
MED_PID=""
BG_PIDS=()
T0=$SECONDS

rm -rf "$OUT"
mkdir -p "$OUT"
STATE=$(mktemp -d "${TMPDIR:-/tmp}/mediator-sip-tests.XXXXXX")
DB="$STATE/mediator.db"

cleanup() {
    local p
    for p in "${BG_PIDS[@]}" $MED_PID; do
        kill "$p" 2>/dev/null
    done
    wait 2>/dev/null
    if [ "${KEEP_DB:-0}" = 1 ]; then echo "database kept in $STATE"; else rm -rf "$STATE"; fi
}
trap cleanup EXIT

abort() { echo "$*"; echo "0 passed, 1 failed"; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || abort "missing tool: $1 ($2)"; }
need sipp "apt-get install -y --no-install-recommends sip-tester"
need tcpdump "apt-get install -y --no-install-recommends tcpdump"
need python3 "apt-get install -y --no-install-recommends python3"
need curl "apt-get install -y --no-install-recommends curl"
need ss "apt-get install -y --no-install-recommends iproute2"
[ -r "$PCAP_AUDIO" ] || abort "missing $PCAP_AUDIO (sip-tester)"

if [ ! -x "$BIN" ]; then
    echo "building $BIN"
    (cd "$ROOT" && cargo build --release) || abort "build failed"
fi

# --- ports -------------------------------------------------------------------
# PORT_BASE (env, optional): prefer PORT_BASE..PORT_BASE+5 and +8 (baresip
# takes its SIP port + 1 for TLS, so its ctrl port is not +6) for these and
# PORT_BASE+10/+20/+30 for the media pairs instead of the defaults, so that
# runs side by side do not take each other's ports between two cases.
if [ -n "${PORT_BASE:-}" ]; then
    WANT_SIP="$PORT_BASE $((PORT_BASE + 1)) $((PORT_BASE + 2)) $((PORT_BASE + 3)) $((PORT_BASE + 4)) $((PORT_BASE + 5)) $((PORT_BASE + 8))"
    WANT_MEDIA="$((PORT_BASE + 10)) $((PORT_BASE + 20)) $((PORT_BASE + 30))"
else
    WANT_SIP="5060 5080 5070 5072 8089 5090 4444" WANT_MEDIA="16000 17000 16010"
fi
# shellcheck disable=SC2086
PORTS=$(python3 "$HERE/freeport.py" --ip 127.0.0.1 --ip 127.0.0.2 $WANT_SIP) || abort "no free ports"
read -r SIP_PORT UAS_PORT UAC_PORT UAC2_PORT API_PORT BS_SIP_PORT BS_CTRL_PORT <<<"$PORTS"
# shellcheck disable=SC2086
PORTS=$(python3 "$HERE/freeport.py" --pair $WANT_MEDIA) || abort "no free media ports"
read -r A_MP B_MP A2_MP <<<"$PORTS"
# Mediator's relay ports, away from the default 20000-29999: the thousand
# ports from RTP_THOUSANDS*1000 (env, default 41; two runs side by side need
# different values).
RTP_THOUSANDS="${RTP_THOUSANDS:-41}"
RTP_LOW=$((RTP_THOUSANDS * 1000)) RTP_HIGH=$((RTP_THOUSANDS * 1000 + 999))
RTP_RE="${RTP_THOUSANDS}[0-9]{3}"  # the same, as the regex the scenarios check SDP with
BS_RTP_LOW="${BS_RTP_LOW:-18000}" BS_RTP_HIGH=$((BS_RTP_LOW + 99)) # baresip's RTP ports
API="http://127.0.0.1:$API_PORT/mediator/v1"
echo "ports: mediator $SIP_PORT, trunk (callee) $UAS_PORT, caller $UAC_PORT, REST $API_PORT, media $A_MP/$B_MP"

# --- Mediator ------------------------------------------------------------------
DID_BASIC=15162065337 DID_HIDE=15162065338 DID_ANON=15162065339 DID_OPEN=15162065340
DID_WAIT_UDP=15162065341 DID_WAIT_TCP=15162065342 DID_EXP_UDP=15162065343 DID_EXP_TCP=15162065344
DID_BARESIP=15162065345
DID_UNKNOWN=15162069999            # valid number, not one of the account's DIDs
CALLER=12127361234                 # Alice, the masked caller
CALLER_B=12127361236 CALLER_C=12127361237
DEST_BASIC=15162065300 DEST_HIDE=15162065301 DEST_ANON=15162065302 DEST_OPEN=15162065303
DEST_WAIT=15162065304 DEST_BARESIP=15162065305

# The trunk's digest credentials (the callee SIPp checks them: flows.py).
TRUNK_USER=trunk-user TRUNK_PASSWORD=trunk-secret

# write_config TRUNK_URI DRAIN_SECS; env TRUNK_CREDS=0: no trunk credentials,
# MAX_REDIRECTS (default 3)
write_config() {
    local creds="trunk_username = \"$TRUNK_USER\"
trunk_password = \"$TRUNK_PASSWORD\""
    [ "${TRUNK_CREDS:-1}" = 0 ] && creds=""
    cat >"$STATE/mediator.toml" <<EOF
[api]
listen = "127.0.0.1:$API_PORT"

[sip]
listen = ["udp:127.0.0.1:$SIP_PORT", "tcp:127.0.0.1:$SIP_PORT"]
advertised_host = "127.0.0.1"
trunk = "$1"
trusted = ["127.0.0.1/32"]
ring_timeout_secs = ${RING_TIMEOUT:-4}
drain_secs = $2
max_redirects = ${MAX_REDIRECTS:-3}
$creds

[media]
advertised_ip = "127.0.0.1"
bind_ip = "127.0.0.1"
rtp_ports = "$RTP_LOW-$RTP_HIGH"

[database]
url = "sqlite://$DB"

[[accounts]]
name = "SIP tests"
login = "$LOGIN"
password = "$PASSWORD"
dids = ["$DID_BASIC", "$DID_HIDE", "$DID_ANON", "$DID_OPEN", "$DID_WAIT_UDP", "$DID_WAIT_TCP",
        "$DID_EXP_UDP", "$DID_EXP_TCP", "$DID_BARESIP"]
permissions = ["hide_origination_did"]
EOF
}

# port_bound udp|tcp PORT [PID]: something (that PID) listens there
port_bound() {
    local out
    if [ "$1" = udp ]; then out=$(ss -Hlunp "sport = :$2" 2>/dev/null); else out=$(ss -Hltnp "sport = :$2" 2>/dev/null); fi
    [ -n "$out" ] || return 1
    [ -z "${3:-}" ] || grep -q "pid=$3," <<<"$out"
}

# wait_bound udp|tcp PORT [PID] [SECS]
wait_bound() {
    local i
    for ((i = 0; i < ${4:-10} * 20; i++)); do
        port_bound "$1" "$2" "${3:-}" && return 0
        sleep 0.05
    done
    return 1
}

# start_med TRUNK_URI [DRAIN_SECS]: starts Mediator, waits until REST and SIP answer
start_med() {
    write_config "$1" "${2:-2}"
    local clean=() v
    for v in $(env | grep -o '^MEDIATOR_[A-Z_]*'); do clean+=(-u "$v"); done
    echo "--- start: trunk $1, drain ${2:-2}s" >>"$OUT/mediator.log"
    env "${clean[@]}" MEDIATOR_LOG="info,rsipstack=warn" \
        "$BIN" serve --config "$STATE/mediator.toml" >>"$OUT/mediator.log" 2>&1 &
    MED_PID=$!
    local i code
    for ((i = 0; i < 300; i++)); do
        kill -0 "$MED_PID" 2>/dev/null || { echo "mediator exited at start:"; tail -5 "$OUT/mediator.log"; MED_PID=""; return 1; }
        code=$(curl -s -o /dev/null -w '%{http_code}' -u "$LOGIN:$PASSWORD" "$API/dids?limit=1")
        if [ "$code" = 200 ] && port_bound udp "$SIP_PORT" "$MED_PID" && port_bound tcp "$SIP_PORT" "$MED_PID"; then
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
    for _ in $(seq 1 100); do kill -0 "$MED_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$MED_PID" 2>/dev/null
    wait "$MED_PID" 2>/dev/null
    MED_PID=""
}

# med_exits SECS -> 0 when Mediator ended within SECS
med_exits() {
    for _ in $(seq 1 $(($1 * 10))); do
        kill -0 "$MED_PID" 2>/dev/null || { wait "$MED_PID" 2>/dev/null; MED_PID=""; return 0; }
        sleep 0.1
    done
    return 1
}

# --- REST ------------------------------------------------------------------------
# api METHOD PATH [JSON]: prints the HTTP status; the body goes to $OUT/api.json
api() {
    local args=(-s -o "$OUT/api.json" -w '%{http_code}' -u "$LOGIN:$PASSWORD" -X "$1")
    [ -n "${3:-}" ] && args+=(-H 'Content-Type: application/json' --data-binary "$3")
    curl "${args[@]}" "$API$2"
}

# json FIELD: a field of the body of the last api call
json() {
    python3 -c 'import json,sys; v=json.load(open(sys.argv[1]))["body"].get(sys.argv[2]); print("" if v is None else v)' \
        "$OUT/api.json" "$1"
}

# new_binding JSON: creates a binding, prints its SID; fails loudly
new_binding() {
    local code
    code=$(api POST /bindings "$1")
    if [ "$code" != 200 ]; then
        echo "POST /bindings $1 -> $code: $(cat "$OUT/api.json")" >&2
        return 1
    fi
    json binding_sid
}

# --- cases -----------------------------------------------------------------------
render() {
    local t="$1" o="$2"
    shift 2
    python3 "$HERE/render.py" "$t" "$o" "UAS_PORT=$UAS_PORT" "UAC_PORT=$UAC_PORT" "B_MP=$B_MP" "RTP_RE=$RTP_RE" "$@"
}

CASE_T0=$(date +%s%N)
case_start() { CASE_T0=$(date +%s%N); }
result() { # NAME OK(0/1) WHY
    local now took
    now=$(date +%s%N); took=$(( (now - CASE_T0) / 100000000 )); CASE_T0=$now
    took="$((took / 10)).$((took % 10)) s"
    if [ "$2" = 0 ]; then
        PASS=$((PASS + 1)); echo "PASS $1 ($took)"
    else
        FAIL=$((FAIL + 1)); FAILED_NAMES+=("$1"); echo "FAIL $1 ($took): $3"
    fi
}

selected() { echo "$1" | grep -Eq "$ONLY"; }

# count_rtp PCAP DST_PORT [PT] -> RTP packets from our relay range to DST_PORT
count_rtp() {
    python3 "$HERE/rtpcount.py" "$1" "$2" "$RTP_LOW" "$RTP_HIGH" ${3:-}
}

# start_capture DIR FILTER: tcpdump on lo into DIR/rtp.pcap; sets DUMP_PID
start_capture() {
    tcpdump -i lo -nn -U -w "$1/rtp.pcap" "$2" >"$1/tcpdump.log" 2>&1 &
    DUMP_PID=$!; BG_PIDS+=("$DUMP_PID")
    local i
    for ((i = 0; i < 100; i++)); do
        grep -q "listening on" "$1/tcpdump.log" 2>/dev/null && return 0
        kill -0 "$DUMP_PID" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

stop_capture() {
    sleep 0.3
    kill -INT "$DUMP_PID" 2>/dev/null
    wait "$DUMP_PID" 2>/dev/null
}

cdr_mark() { python3 "$HERE/cdr.py" mark "$DB"; }

# run_case NAME TRANSPORT(u1|t1) SERVICE UAC_TEMPLATE UAC_VARS UAS_FLOW UAS_CHECKS RTP(0|1) [UAC_IP]
# Env for one call: B_FORMATS/B_RTPMAPS (callee's answer), PT_TO_A/PT_TO_B
# (payload type every relayed packet must carry), MIN_TO_A/MIN_TO_B (packets
# that must arrive, default 100), CASE_TIMEOUT (the caller's SIPp timeout in
# seconds, default 45), CDR (FIELD=VALUE checks of the call detail
# record the call must leave, see cdr.py; empty: not checked), RETRY_CHECK
# (arguments of retries.py, checking the B leg INVITE's retries on the
# callee's message log; empty: not checked).
run_case() {
    local name="$1" tr="$2" service="$3" uac_t="$4" uac_vars="$5" flow="$6" checks="$7" rtp="$8" uac_ip="${9:-127.0.0.1}"
    selected "$name" || return 0
    case_start
    local d="$OUT/$name"; mkdir -p "$d"
    local uac_xml="$d/uac.xml" uas_xml="$d/uas.xml" mark="" tmo="${CASE_TIMEOUT:-45}"
    local proto=udp; [ "$tr" = t1 ] && proto=tcp
    [ -n "${CDR:-}" ] && mark=$(cdr_mark)
    # shellcheck disable=SC2086
    eval render "$SC/$uac_t" "$uac_xml" $uac_vars
    local uas_pid="" DUMP_PID=""
    if [ "$rtp" = 1 ]; then
        start_capture "$d" "udp and (portrange $A_MP-$((A_MP + 1)) or portrange $B_MP-$((B_MP + 1)))" ||
            { result "$name" 1 "tcpdump did not start (see $d/tcpdump.log)"; return; }
    fi
    if [ "$flow" != none ]; then
        eval render "$SC/uas.xml" "$uas_xml" "FLOW=$flow" "$checks" \
            "'B_FORMATS=${B_FORMATS:-8 101}'" "'B_RTPMAPS=${B_RTPMAPS:-a=rtpmap:8 PCMA/8000\\na=rtpmap:101 telephone-event/8000\\na=fmtp:101 0-16}'"
        (cd "$d" && exec timeout $((tmo + 15)) sipp -sf "$uas_xml" -i 127.0.0.1 -p "$UAS_PORT" -t "$tr" -m 1 \
            -mp "$B_MP" -nostdin -trace_err -trace_msg -timeout $((tmo + 5))s -timeout_error >"$d/uas.out" 2>&1) &
        uas_pid=$!; BG_PIDS+=("$uas_pid")
        wait_bound "$proto" "$UAS_PORT" || { result "$name" 1 "callee sipp did not bind $UAS_PORT"; return; }
    fi
    (cd "$d" && exec timeout $((tmo + 15)) sipp -sf "$uac_xml" "127.0.0.1:$SIP_PORT" -i "$uac_ip" -p "$UAC_PORT" -t "$tr" -m 1 \
        -mp "$A_MP" -s "$service" -cid_str "acall-%u-%p@%s" -nostdin -trace_err -trace_msg -timeout "${tmo}s" -timeout_error \
        >"$d/uac.out" 2>&1)
    local uac_rc=$? uas_rc=0
    if [ -n "$uas_pid" ]; then
        wait "$uas_pid"; uas_rc=$?
    fi
    [ -n "$DUMP_PID" ] && stop_capture
    if [ "$uac_rc" != 0 ]; then result "$name" 1 "caller sipp exit $uac_rc (see $d)"; return; fi
    if [ "$uas_rc" != 0 ]; then result "$name" 1 "callee sipp exit $uas_rc (see $d)"; return; fi
    if [ "$rtp" = 1 ]; then
        local to_a to_b
        to_a=$(count_rtp "$d/rtp.pcap" "$A_MP"); to_b=$(count_rtp "$d/rtp.pcap" "$B_MP")
        echo "   rtp relayed: to caller $to_a, to callee $to_b"
        if [ -n "${PT_TO_A:-}" ] && [ "$(count_rtp "$d/rtp.pcap" "$A_MP" "$PT_TO_A")" != "$to_a" ]; then
            result "$name" 1 "packets to caller not all PT $PT_TO_A"; return
        fi
        if [ -n "${PT_TO_B:-}" ] && [ "$(count_rtp "$d/rtp.pcap" "$B_MP" "$PT_TO_B")" != "$to_b" ]; then
            result "$name" 1 "packets to callee not all PT $PT_TO_B"; return
        fi
        if [ "$to_a" -lt "${MIN_TO_A:-100}" ] || [ "$to_b" -lt "${MIN_TO_B:-100}" ]; then
            result "$name" 1 "RTP not relayed both ways (to caller $to_a, to callee $to_b)"; return
        fi
    fi
    if [ -n "${RETRY_CHECK:-}" ]; then
        local rwhy
        # shellcheck disable=SC2086
        if ! rwhy=$(python3 "$HERE/retries.py" "$d"/uas_*_messages.log $RETRY_CHECK); then
            result "$name" 1 "$rwhy"; return
        fi
        echo "   $rwhy"
    fi
    if [ -n "${CDR:-}" ]; then
        local why
        # shellcheck disable=SC2086
        if ! why=$(python3 "$HERE/cdr.py" check "$DB" "$mark" --where "number_redirect=$service" $CDR); then
            result "$name" 1 "$why"; return
        fi
        echo "   $why"
    fi
    result "$name" 0 ""
}

A_FROM="'FROM=\"Alice Caller\" <sip:$CALLER@127.0.0.1>'"
PCMA_TE="'FORMATS=8 0 101' 'RTPMAPS=a=rtpmap:8 PCMA/8000\\na=rtpmap:0 PCMU/8000\\na=rtpmap:101 telephone-event/8000\\na=fmtp:101 0-16'"
G729="'FORMATS=18' 'RTPMAPS=a=rtpmap:18 G729/8000'"
MF70="MAX_FORWARDS=70"
PAI="'EXTRA_HEADERS=P-Asserted-Identity: <sip:+$CALLER@127.0.0.1;user=phone>'"
SHORT="HOLD_MS=1000"

ereg() { # REGEXPS -> a CHECKS= argument for uas.xml
    printf "'CHECKS=%s'" "$1"
}
# The callee's INVITE: masked identity, binding headers, no trace of the A leg.
BASIC_CHECKS=$(ereg '<ereg regexp="^INVITE sip:'$DEST_BASIC'@127\.0\.0\.1:'$UAS_PORT'" search_in="msg" check_it="true" assign_to="chk"/>\n<ereg regexp="&quot;Masked \\\\&quot;Co\\\\&quot;&quot; &lt;sip:'$CALLER'@127\.0\.0\.1&gt;" search_in="hdr" header="From:" check_it="true" assign_to="chk"/>\n<ereg regexp="sip:'$CALLER'@" search_in="hdr" header="P-Asserted-Identity:" check_it="true" assign_to="chk"/>\n<ereg regexp="b-basic" search_in="hdr" header="X-Binding:" check_it="true" assign_to="chk"/>\n<ereg regexp="acct 1" search_in="hdr" header="X-Account:" check_it="true" assign_to="chk"/>\n<ereg regexp="69" search_in="hdr" header="Max-Forwards:" check_it="true" assign_to="chk"/>\n<ereg regexp="c=IN IP4 127\.0\.0\.1" search_in="body" check_it="true" assign_to="chk"/>\n<ereg regexp="Alice" search_in="msg" check_it_inverse="true" assign_to="chk"/>')
HIDE_CHECKS=$(ereg '<ereg regexp="^INVITE sip:'$DEST_HIDE'@" search_in="msg" check_it="true" assign_to="chk"/>\n<ereg regexp="&lt;sip:'$DID_HIDE'@" search_in="hdr" header="From:" check_it="true" assign_to="chk"/>\n<ereg regexp="'$CALLER'" search_in="msg" check_it_inverse="true" assign_to="chk"/>\n<ereg regexp="P-Asserted-Identity" search_in="msg" check_it_inverse="true" assign_to="chk"/>')
ANON_CHECKS=$(ereg '<ereg regexp="^INVITE sip:'$DEST_ANON'@" search_in="msg" check_it="true" assign_to="chk"/>\n<ereg regexp="&lt;sip:'$DID_ANON'@" search_in="hdr" header="From:" check_it="true" assign_to="chk"/>\n<ereg regexp="anonymous" search_in="msg" check_it_inverse="true" assign_to="chk"/>')
WAIT_CHECKS=$(ereg '<ereg regexp="^INVITE sip:'$DEST_WAIT'@" search_in="msg" check_it="true" assign_to="chk"/>\n<ereg regexp="&lt;sip:'$CALLER_B'@127\.0\.0\.1&gt;" search_in="hdr" header="From:" check_it="true" assign_to="chk"/>')
OPEN_FROM_CALLER=$(ereg '<ereg regexp="^INVITE sip:'$DEST_OPEN'@127\.0\.0\.1:'$UAS_PORT'" search_in="msg" check_it="true" assign_to="chk"/>\n<ereg regexp="&lt;sip:'$CALLER'@127\.0\.0\.1&gt;" search_in="hdr" header="From:" check_it="true" assign_to="chk"/>')
NO_CHECKS="'CHECKS='"
# Session timers (RFC 4028): the caller asks for 120 s and to refresh
# itself; our 200 must say so; the callee's INVITE asks for our 1800 s.
ST_A_HEADERS="'EXTRA_HEADERS=Supported: timer\\nSession-Expires: 120;refresher=uac'"
ST_ANSWER="'ANSWER_CHECKS=<ereg regexp=\"^ *120;refresher=uac\" search_in=\"hdr\" header=\"Session-Expires:\" check_it=\"true\" assign_to=\"chk\"/><ereg regexp=\"timer\" search_in=\"hdr\" header=\"Require:\" check_it=\"true\" assign_to=\"chk\"/>'"
ST_B_CHECKS=$(ereg '<ereg regexp="^ *1800" search_in="hdr" header="Session-Expires:" check_it="true" assign_to="chk"/>\n<ereg regexp="timer" search_in="hdr" header="Supported:" check_it="true" assign_to="chk"/>\n<ereg regexp="^ *90" search_in="hdr" header="Min-SE:" check_it="true" assign_to="chk"/>')
# SIP-I/SIP-T (RFC 5621): an INVITE whose multipart/mixed body holds the SDP
# offer and an ISUP IAM (printable stand-in octets: SIPp writes text). The
# callee must get plain SDP, nothing of the multipart body.
SIPI_BODY="'CONTENT_TYPE=multipart/mixed;boundary=sipi-boundary-1' 'BODY_PRE=--sipi-boundary-1\\nContent-Type: application/sdp\\n' 'BODY_POST=--sipi-boundary-1\\nContent-Type: application/ISUP;version=itu-t92+\\nContent-Disposition: signal;handling=optional\\n\\nIAM:0100600a000207\\n--sipi-boundary-1--'"
SIPI_NO_SDP="'CONTENT_TYPE=multipart/mixed;boundary=sipi-boundary-1' 'BODY_PRE=--sipi-boundary-1\\nContent-Type: text/plain\\n' 'BODY_POST=--sipi-boundary-1\\nContent-Type: application/ISUP;version=itu-t92+\\n\\nIAM:0100600a000207\\n--sipi-boundary-1--'"
ACCEPT_415="'FINAL_CHECKS=<ereg regexp=\"application/sdp, multipart/mixed\" search_in=\"hdr\" header=\"Accept:\" check_it=\"true\" assign_to=\"chk\"/>'"
SIPI_CHECKS=$(ereg '<ereg regexp="application/sdp" search_in="hdr" header="Content-Type:" check_it="true" assign_to="chk"/>\n<ereg regexp="sipi-boundary|ISUP|IAM" search_in="msg" check_it_inverse="true" assign_to="chk"/>\n<ereg regexp="c=IN IP4 127\.0\.0\.1" search_in="body" check_it="true" assign_to="chk"/>')
VIDEO_CHECKS=$(ereg '<ereg regexp="m=video" search_in="body" check_it_inverse="true" assign_to="chk"/>')
# RFC 3262: the callee's INVITE offers 100rel (and timer) and never
# requires it, whatever the caller required (Require is per hop).
PRACK_B_CHECKS=$(ereg '<ereg regexp="100rel" search_in="hdr" header="Supported:" check_it="true" assign_to="chk"/>\n<ereg regexp="timer" search_in="hdr" header="Supported:" check_it="true" assign_to="chk"/>\n<ereg regexp="100rel" search_in="hdr" header="Require:" check_it_inverse="true" assign_to="chk"/>')
REQ_100REL="'EXTRA_HEADERS=Supported: 100rel\\nRequire: 100rel'"
WAIT_180="'WAIT=<recv response=\"100\" optional=\"true\" response_txn=\"invite\"/><recv response=\"180\" response_txn=\"invite\"/>'"

# Call detail records expected (cdr.py check), on top of its invariants.
CDR_ANSWERED="date_answer=set sip_status=200"
CDR_FAILED="date_answer=null duration=0"

# A binding waiting for its first caller (wait_origination_did_ttl default):
# the first caller takes it, the REST API shows it, another caller gets 404.
waiting_case() { # TRANSPORT LABEL DID
    local t="$1" l="$2" did="$3" sid
    selected "$l-waiting-binding" || return 0
    sid=$(new_binding "{\"destination_did\":\"$DEST_WAIT\",\"redirect_did\":\"$did\"}") ||
        { result "$l-waiting-binding-first-caller" 1 "cannot create the binding"; return; }
    CDR="binding_sid=$sid number_src=$CALLER_B number_dst=$DEST_WAIT $CDR_ANSWERED hangup_side=caller" \
        run_case "$l-waiting-binding-first-caller" "$t" "$did" uac_call.xml "'FROM=\"Bob\" <sip:$CALLER_B@127.0.0.1>' $PCMA_TE $MF70 $SHORT TAIL=caller_bye" answer "$WAIT_CHECKS" 0
    local code orig
    code=$(api GET "/bindings/$sid")
    orig=$(json origination_did 2>/dev/null)
    if [ "$code" = 200 ] && [ "$orig" = "$CALLER_B" ]; then
        result "$l-waiting-binding-rest-shows-caller" 0 ""
    else
        result "$l-waiting-binding-rest-shows-caller" 1 "GET /bindings/$sid -> $code, origination_did '$orig'"
    fi
    CDR="binding_sid=null number_src=$CALLER_C sip_status=404 hangup_side=system $CDR_FAILED" \
        run_case "$l-waiting-binding-other-caller-404" "$t" "$did" uac_final.xml "'FROM=<sip:$CALLER_C@127.0.0.1>' $PCMA_TE $MF70 CODE=404" none "" 0
}

# A binding past its maximum_ttl (1 s, no waiting), called 2 s or more after
# it was made: 404, and the REST API no longer shows it.
expired_case() { # TRANSPORT LABEL DID SID CREATED_AT
    local t="$1" l="$2" did="$3" sid="$4" made="$5"
    selected "$l-expired-binding-404" || return 0
    local left=$((made + 2 - $(date +%s)))
    [ "$left" -gt 0 ] && sleep "$left"
    sleep 0.2
    CDR="binding_sid=null number_src=$CALLER sip_status=404 hangup_side=system $CDR_FAILED" \
        run_case "$l-expired-binding-404" "$t" "$did" uac_final.xml "$A_FROM $PCMA_TE $MF70 CODE=404" none "" 0
    local code
    code=$(api GET "/bindings/$sid")
    if [ "$code" = 404 ]; then
        result "$l-expired-binding-hidden-in-rest" 0 ""
    else
        result "$l-expired-binding-hidden-in-rest" 1 "GET /bindings/$sid -> $code, expected 404"
    fi
}

suite() { # TRANSPORT LABEL
    local t="$1" l="$2"
    CDR="binding_sid=$SID_BASIC number_src=$CALLER number_dst=$DEST_BASIC $CDR_ANSWERED hangup_side=caller duration=3..6" \
        run_case "$l-basic-masked-call" "$t" $DID_BASIC uac_call.xml "$A_FROM $PCMA_TE $MF70 $PAI TAIL=caller_bye" answer "$BASIC_CHECKS" 1
    run_case "$l-hide-origination-did" "$t" $DID_HIDE uac_call.xml "$A_FROM $PCMA_TE $MF70 TAIL=caller_bye" answer "$HIDE_CHECKS" 1
    run_case "$l-anonymous-fix-cid" "$t" $DID_ANON uac_call.xml "'FROM=\"Anonymous\" <sip:anonymous@anonymous.invalid>' 'EXTRA_HEADERS=Privacy: id' $PCMA_TE $MF70 TAIL=caller_bye" answer "$ANON_CHECKS" 1
    CDR="binding_sid=$SID_OPEN $CDR_ANSWERED hangup_side=callee duration=3..6" \
        run_case "$l-callee-hangs-up" "$t" $DID_OPEN uac_call.xml "$A_FROM $PCMA_TE $MF70 TAIL=callee_bye" answer_bye "$NO_CHECKS" 1
    CDR="binding_sid=$SID_OPEN number_src=$CALLER number_dst=$DEST_OPEN sip_status=486 hangup_side=callee $CDR_FAILED" \
        run_case "$l-busy-486" "$t" $DID_OPEN uac_final.xml "$A_FROM $PCMA_TE $MF70 CODE=486" busy "$NO_CHECKS" 0
    CDR="binding_sid=$SID_OPEN number_src=$CALLER number_dst=$DEST_OPEN sip_status=487 hangup_side=caller $CDR_FAILED" \
        run_case "$l-cancel-after-180" "$t" $DID_OPEN uac_cancel.xml "$A_FROM $WAIT_180" ring_cancel "$NO_CHECKS" 0
    CDR="binding_sid=$SID_OPEN sip_status=487 hangup_side=caller $CDR_FAILED" \
        run_case "$l-cancel-crosses-200" "$t" $DID_OPEN uac_cancel.xml "$A_FROM $WAIT_180" cancel_crosses_200 "$NO_CHECKS" 0
    CDR="binding_sid=$SID_OPEN $CDR_ANSWERED hangup_side=caller" \
        run_case "$l-forked-2xx-second-fork-ended" "$t" $DID_OPEN uac_call.xml "$A_FROM $PCMA_TE $MF70 $SHORT TAIL=caller_bye" forked_answer "$NO_CHECKS" 0
    CDR="binding_sid=$SID_OPEN $CDR_ANSWERED hangup_side=caller" \
        run_case "$l-info-dtmf-relay-relayed" "$t" $DID_OPEN uac_call.xml "$A_FROM $PCMA_TE $MF70 TAIL=caller_info_bye" answer_info "$NO_CHECKS" 0
    CDR="binding_sid=$SID_OPEN $CDR_ANSWERED hangup_side=caller" \
        run_case "$l-unknown-method-in-dialog-501" "$t" $DID_OPEN uac_call.xml "$A_FROM $PCMA_TE $MF70 TAIL=caller_foo_501_bye" answer "$NO_CHECKS" 1
    CDR="binding_sid=$SID_OPEN $CDR_ANSWERED hangup_side=caller" \
        run_case "$l-hold-resume-refresh" "$t" $DID_OPEN uac_call.xml "$A_FROM $PCMA_TE $MF70 TAIL=caller_hold_resume" answer_hold "$NO_CHECKS" 0
    CDR="binding_sid=$SID_OPEN $CDR_ANSWERED hangup_side=caller" \
        run_case "$l-hold-c0000-resume" "$t" $DID_OPEN uac_call.xml "$A_FROM $PCMA_TE $MF70 TAIL=caller_hold_0000" answer_hold "$NO_CHECKS" 0
    CDR="binding_sid=$SID_OPEN $CDR_ANSWERED hangup_side=caller" \
        run_case "$l-update-options-offerless-reinvite" "$t" $DID_OPEN uac_call.xml "$A_FROM $PCMA_TE $MF70 TAIL=caller_update_options_offerless" answer_update "$NO_CHECKS" 0
    CDR="binding_sid=$SID_OPEN $CDR_ANSWERED hangup_side=caller" \
        run_case "$l-glare-491-and-retry" "$t" $DID_OPEN uac_call.xml "$A_FROM $PCMA_TE $MF70 TAIL=caller_glare" answer_glare "$NO_CHECKS" 0
    CDR="binding_sid=$SID_OPEN $CDR_ANSWERED hangup_side=caller" \
        run_case "$l-session-timer-negotiated" "$t" $DID_OPEN uac_call.xml "$A_FROM $PCMA_TE $MF70 $ST_A_HEADERS $ST_ANSWER TAIL=caller_timer_refresh" answer "$ST_B_CHECKS" 0
    run_case "$l-session-timer-too-small-422" "$t" $DID_OPEN uac_final.xml "$A_FROM $PCMA_TE $MF70 'EXTRA_HEADERS=Supported: timer\\nSession-Expires: 60' CODE=422" none "" 0
    if [ "$l" = udp ]; then
        # RFC 4028 timing is real (Min-SE is at least 90 s): these two take
        # about 50 s each, so they run over UDP only.
        CDR="binding_sid=$SID_OPEN $CDR_ANSWERED hangup_side=caller" CASE_TIMEOUT=75 \
            run_case "$l-session-timer-refresh-both-legs" "$t" $DID_OPEN uac_call.xml "$A_FROM $PCMA_TE $MF70 'EXTRA_HEADERS=Supported: timer\\nSession-Expires: 90;refresher=uac' TAIL=caller_timer_long" answer_refreshed "$NO_CHECKS" 0
        CDR="binding_sid=$SID_OPEN $CDR_ANSWERED hangup_side=system" CASE_TIMEOUT=75 \
            run_case "$l-session-timer-refresh-fails-ends-call" "$t" $DID_OPEN uac_call.xml "$A_FROM $PCMA_TE $MF70 TAIL=callee_ends_late" answer_refresh_481 "$NO_CHECKS" 0
    fi
    # The B leg's INVITE retried (BC-30 redirects, BC-04 digest challenges,
    # BC-09 422): same Call-ID, From tag and To, CSeq + 1 (retries.py).
    RETRY_CHECK="--invites 2" CDR="binding_sid=$SID_OPEN $CDR_ANSWERED hangup_side=caller" \
        run_case "$l-redirect-302-q-order" "$t" $DID_OPEN uac_call.xml "$A_FROM $PCMA_TE $MF70 $SHORT TAIL=caller_bye" redirect_q_order "$NO_CHECKS" 0
    RETRY_CHECK="--invites 4" CDR="binding_sid=$SID_OPEN sip_status=480 $CDR_FAILED" \
        run_case "$l-redirect-limit-exceeded" "$t" $DID_OPEN uac_final.xml "$A_FROM $PCMA_TE $MF70 CODE=480" redirect_limit "$NO_CHECKS" 0
    RETRY_CHECK="--invites 2 --digest $TRUNK_USER:$TRUNK_PASSWORD" CDR="binding_sid=$SID_OPEN $CDR_ANSWERED hangup_side=caller" \
        run_case "$l-auth-401-digest" "$t" $DID_OPEN uac_call.xml "$A_FROM $PCMA_TE $MF70 $SHORT TAIL=caller_bye" auth_401 "$NO_CHECKS" 0
    RETRY_CHECK="--invites 2 --digest $TRUNK_USER:$TRUNK_PASSWORD" CDR="binding_sid=$SID_OPEN $CDR_ANSWERED hangup_side=caller" \
        run_case "$l-auth-407-digest" "$t" $DID_OPEN uac_call.xml "$A_FROM $PCMA_TE $MF70 $SHORT TAIL=caller_bye" auth_407 "$NO_CHECKS" 0
    RETRY_CHECK="--invites 2" CDR="binding_sid=$SID_OPEN sip_status=503 $CDR_FAILED" \
        run_case "$l-auth-wrong-password-fails" "$t" $DID_OPEN uac_final.xml "$A_FROM $PCMA_TE $MF70 CODE=503" auth_wrong_password "$NO_CHECKS" 0
    RETRY_CHECK="--invites 2" CDR="binding_sid=$SID_OPEN $CDR_ANSWERED hangup_side=caller" \
        run_case "$l-session-timer-422-retry" "$t" $DID_OPEN uac_call.xml "$A_FROM $PCMA_TE $MF70 $SHORT TAIL=caller_bye" session_timer_422_retry "$NO_CHECKS" 0
    RETRY_CHECK="--invites 2" CDR="binding_sid=$SID_OPEN sip_status=503 $CDR_FAILED" \
        run_case "$l-session-timer-422-twice-fails" "$t" $DID_OPEN uac_final.xml "$A_FROM $PCMA_TE $MF70 CODE=503" session_timer_422_twice "$NO_CHECKS" 0
    if [ "$l" = udp ]; then
        RETRY_CHECK="--invites 3" CDR="binding_sid=$SID_OPEN $CDR_ANSWERED hangup_side=caller" \
            run_case "$l-redirect-target-fails-next-tried" "$t" $DID_OPEN uac_call.xml "$A_FROM $PCMA_TE $MF70 $SHORT TAIL=caller_bye" redirect_next_target "$NO_CHECKS" 0
        RETRY_CHECK="--invites 3 --digest $TRUNK_USER:$TRUNK_PASSWORD" CDR="binding_sid=$SID_OPEN $CDR_ANSWERED hangup_side=caller" \
            run_case "$l-auth-407-then-401" "$t" $DID_OPEN uac_call.xml "$A_FROM $PCMA_TE $MF70 $SHORT TAIL=caller_bye" auth_407_then_401 "$NO_CHECKS" 0
        RETRY_CHECK="--invites 3 --digest $TRUNK_USER:$TRUNK_PASSWORD" CDR="binding_sid=$SID_OPEN $CDR_ANSWERED hangup_side=caller" \
            run_case "$l-auth-stale-nonce-answered-again" "$t" $DID_OPEN uac_call.xml "$A_FROM $PCMA_TE $MF70 $SHORT TAIL=caller_bye" auth_stale_nonce "$NO_CHECKS" 0
    fi
    # RFC 3262 (BC-10): reliable provisional responses from the trunk, to
    # the caller, and on both legs at once.
    CDR="binding_sid=$SID_OPEN $CDR_ANSWERED hangup_side=caller" \
        run_case "$l-prack-trunk-reliable-180" "$t" $DID_OPEN uac_call.xml "$A_FROM $PCMA_TE $MF70 PROVISIONALS=unreliable180 TAIL=caller_bye" prack_trunk "$PRACK_B_CHECKS" 1
    CDR="binding_sid=$SID_OPEN $CDR_ANSWERED hangup_side=caller" \
        run_case "$l-prack-caller-requires-100rel" "$t" $DID_OPEN uac_call.xml "$A_FROM $PCMA_TE $MF70 $REQ_100REL PROVISIONALS=prack180 TAIL=caller_bye_after_prack" answer "$PRACK_B_CHECKS" 1
    # Supported: 100rel alone: plain 18x (docs/call-flows.md, the decision).
    run_case "$l-prack-caller-supported-only-plain-180" "$t" $DID_OPEN uac_call.xml "$A_FROM $PCMA_TE $MF70 'EXTRA_HEADERS=Supported: 100rel' PROVISIONALS=unreliable180 $SHORT TAIL=caller_bye" answer "$PRACK_B_CHECKS" 0
    CDR="binding_sid=$SID_OPEN $CDR_ANSWERED hangup_side=caller" \
        run_case "$l-prack-both-legs" "$t" $DID_OPEN uac_call.xml "$A_FROM $PCMA_TE $MF70 $REQ_100REL PROVISIONALS=prack183 TAIL=caller_bye_after_prack" prack_trunk_183 "$PRACK_B_CHECKS" 1
    CDR="binding_sid=$SID_OPEN sip_status=487 hangup_side=caller $CDR_FAILED" \
        run_case "$l-cancel-before-180" "$t" $DID_OPEN uac_cancel.xml "$A_FROM 'WAIT=<recv response=\"100\" response_txn=\"invite\"/><pause milliseconds=\"200\"/>'" late_cancel "$NO_CHECKS" 0
    B_FORMATS=8 B_RTPMAPS='a=rtpmap:8 PCMA/8000' PT_TO_A=0 PT_TO_B=8 \
        run_case "$l-pcmu-caller-pcma-callee" "$t" $DID_OPEN uac_call.xml "$A_FROM 'FORMATS=0' 'RTPMAPS=a=rtpmap:0 PCMU/8000' PCAP=$OUT/pcmu.pcap $MF70 TAIL=caller_bye" answer "$NO_CHECKS" 1
    PT_TO_B=101 MIN_TO_B=10 \
        run_case "$l-dtmf-pt96-to-pt101" "$t" $DID_OPEN uac_call.xml "$A_FROM 'FORMATS=8 96' 'RTPMAPS=a=rtpmap:8 PCMA/8000\\na=rtpmap:96 telephone-event/8000\\na=fmtp:96 0-16' PCAP=$OUT/dtmf96.pcap $MF70 TAIL=caller_bye" answer "$NO_CHECKS" 1
    # An offer with audio and video: the answer keeps both m-lines (RFC 3264
    # section 6), video rejected with port 0; the B leg is offered audio only.
    run_case "$l-video-m-line-rejected" "$t" $DID_OPEN uac_call.xml "$A_FROM 'FORMATS=8 101' 'RTPMAPS=a=rtpmap:8 PCMA/8000\\na=rtpmap:101 telephone-event/8000\\nm=video 6000 RTP/AVP 99\\na=rtpmap:99 H264/90000' 'ANSWER_CHECKS=<ereg regexp=\"m=video 0 RTP/AVP 99\" search_in=\"body\" check_it=\"true\" assign_to=\"chk\"/>' $MF70 TAIL=caller_bye" answer "$VIDEO_CHECKS" 1
    CDR="binding_sid=$SID_OPEN $CDR_ANSWERED hangup_side=caller" \
        run_case "$l-multipart-sdp-isup-invite" "$t" $DID_OPEN uac_call.xml "$A_FROM $PCMA_TE $MF70 $SIPI_BODY TAIL=caller_bye" answer "$SIPI_CHECKS" 1
    run_case "$l-multipart-no-sdp-415" "$t" $DID_OPEN uac_final.xml "$A_FROM $PCMA_TE $MF70 $SIPI_NO_SDP $ACCEPT_415 CODE=415" none "" 0
    run_case "$l-delayed-offer" "$t" $DID_OPEN uac_delayed.xml "$A_FROM TAIL=caller_bye" answer "$NO_CHECKS" 1
    run_case "$l-early-media-183-sdp" "$t" $DID_OPEN uac_call.xml "$A_FROM $PCMA_TE $MF70 PROVISIONALS=sdp183 TAIL=caller_bye" early_media "$NO_CHECKS" 1
    CDR="binding_sid=$SID_OPEN sip_status=480 hangup_side=system $CDR_FAILED" \
        run_case "$l-ring-timeout-480" "$t" $DID_OPEN uac_final.xml "$A_FROM $PCMA_TE $MF70 CODE=480" ring_forever "$NO_CHECKS" 0
    CDR="binding_sid=null number_src=$CALLER number_dst= sip_status=404 hangup_side=system $CDR_FAILED" \
        run_case "$l-unknown-did-404" "$t" $DID_UNKNOWN uac_final.xml "$A_FROM $PCMA_TE $MF70 CODE=404" none "" 0
    run_case "$l-max-forwards-0-483" "$t" $DID_OPEN uac_final.xml "$A_FROM $PCMA_TE MAX_FORWARDS=0 CODE=483" none "" 0
    # 488 is decided before routing (so it never claims a waiting binding): no binding in the record.
    CDR="binding_sid=null number_dst= number_src=$CALLER sip_status=488 hangup_side=system $CDR_FAILED" \
        run_case "$l-no-common-codec-488" "$t" $DID_OPEN uac_final.xml "$A_FROM $G729 $MF70 CODE=488" none "" 0
    run_case "$l-untrusted-403" "$t" $DID_OPEN uac_final.xml "$A_FROM $PCMA_TE $MF70 CODE=403" none "" 0 127.0.0.2
    # Request-URI and From as tel: URIs, and as sip: URIs with '+' and user=phone.
    CDR="binding_sid=$SID_OPEN number_src=$CALLER $CDR_ANSWERED hangup_side=caller" \
        run_case "$l-tel-uri-request-and-from" "$t" $DID_OPEN uac_call.xml "'RURI=tel:+[service]' 'FROM=<tel:+$CALLER>' $PCMA_TE $MF70 $SHORT TAIL=caller_bye" answer "$OPEN_FROM_CALLER" 0
    CDR="binding_sid=$SID_OPEN number_src=$CALLER $CDR_ANSWERED hangup_side=caller" \
        run_case "$l-plus-user-phone-uri" "$t" $DID_OPEN uac_call.xml "'RURI=sip:+[service]@[remote_ip]:[remote_port];user=phone' 'FROM=\"Alice\" <sip:+$CALLER@127.0.0.1;user=phone>' $PCMA_TE $MF70 $SHORT TAIL=caller_bye" answer "$OPEN_FROM_CALLER" 0
}

# --- setup -----------------------------------------------------------------------
python3 "$HERE/mkpcmu.py" "$PCAP_AUDIO" "$OUT/pcmu.pcap" 0
python3 "$HERE/mkpcmu.py" /usr/share/sip-tester/dtmf_2833_1.pcap "$OUT/dtmf96.pcap" 96

echo "== provisioning over REST =="
start_med "sip:127.0.0.1:$UAS_PORT" || abort "mediator did not start (see $OUT/mediator.log)"
SID_BASIC=$(new_binding "{\"destination_did\":\"$DEST_BASIC\",\"origination_did\":\"$CALLER\",\"redirect_did\":\"$DID_BASIC\",
  \"attributes\":{\"cnam\":\"Masked \\\"Co\\\"\",\"sip_header_X-Binding\":\"b-basic\",\"sip_header_X-Account\":\"acct 1\"}}") &&
SID_HIDE=$(new_binding "{\"destination_did\":\"$DEST_HIDE\",\"redirect_did\":\"$DID_HIDE\",\"wait_origination_did_ttl\":-1,
  \"attributes\":{\"hide_origination_did\":\"true\"}}") &&
SID_ANON=$(new_binding "{\"destination_did\":\"$DEST_ANON\",\"redirect_did\":\"$DID_ANON\",\"wait_origination_did_ttl\":-1,
  \"attributes\":{\"fix_anonymous_cid\":\"true\"}}") &&
SID_OPEN=$(new_binding "{\"destination_did\":\"$DEST_OPEN\",\"redirect_did\":\"$DID_OPEN\",\"wait_origination_did_ttl\":-1}") &&
SID_BARESIP=$(new_binding "{\"destination_did\":\"$DEST_BARESIP\",\"redirect_did\":\"$DID_BARESIP\",\"wait_origination_did_ttl\":-1}") &&
SID_EXP_UDP=$(new_binding "{\"destination_did\":\"$DEST_OPEN\",\"redirect_did\":\"$DID_EXP_UDP\",\"maximum_ttl\":1,\"wait_origination_did_ttl\":-1}") &&
SID_EXP_TCP=$(new_binding "{\"destination_did\":\"$DEST_OPEN\",\"redirect_did\":\"$DID_EXP_TCP\",\"maximum_ttl\":1,\"wait_origination_did_ttl\":-1}") ||
    abort "cannot provision the bindings"
EXP_MADE=$(date +%s)
echo "bindings: basic $SID_BASIC, hide $SID_HIDE, anonymous $SID_ANON, open $SID_OPEN"

echo "== UDP =="
suite u1 udp
waiting_case u1 udp $DID_WAIT_UDP
expired_case u1 udp $DID_EXP_UDP "$SID_EXP_UDP" "$EXP_MADE"
stop_med
echo "== TCP =="
start_med "sip:127.0.0.1:$UAS_PORT;transport=tcp" || abort "mediator did not start"
suite t1 tcp
waiting_case t1 tcp $DID_WAIT_TCP
expired_case t1 tcp $DID_EXP_TCP "$SID_EXP_TCP" "$EXP_MADE"
stop_med

echo "== unreachable trunk =="
if selected unreachable; then
    DEAD_PORT=$(python3 "$HERE/freeport.py" 5099)
    start_med "sip:127.0.0.1:$DEAD_PORT" || abort "mediator did not start"
    MARK=$(cdr_mark)
    run_case udp-unreachable-trunk-408 u1 $DID_OPEN uac_final.xml "$A_FROM $PCMA_TE $MF70 CODE=408" none "" 0
    # The B leg's INVITE transaction runs on until Timer B (32 s); a shutdown
    # must still end the call and write its record.
    stop_med
    if selected udp-unreachable-trunk-408; then
        if WHY=$(python3 "$HERE/cdr.py" check "$DB" "$MARK" --wait 0 binding_sid="$SID_OPEN" sip_status=408 hangup_side=system $CDR_FAILED); then
            result udp-unreachable-trunk-recorded-at-shutdown 0 ""
        else
            result udp-unreachable-trunk-recorded-at-shutdown 1 "$WHY"
        fi
    fi
    start_med "sip:127.0.0.1:$DEAD_PORT;transport=tcp" || abort "mediator did not start"
    CDR="binding_sid=$SID_OPEN sip_status=503 hangup_side=system $CDR_FAILED" \
        run_case tcp-unreachable-trunk-503 t1 $DID_OPEN uac_final.xml "$A_FROM $PCMA_TE $MF70 CODE=503" none "" 0
    stop_med
fi

echo "== trunk without credentials, redirects off =="
if selected udp-auth-no-credentials-503 || selected udp-redirect-disabled-480; then
    TRUNK_CREDS=0 MAX_REDIRECTS=0 start_med "sip:127.0.0.1:$UAS_PORT" || abort "mediator did not start"
    # A challenge with no credentials configured is not answered: 503.
    RETRY_CHECK="--invites 1" CDR="binding_sid=$SID_OPEN sip_status=503 $CDR_FAILED" \
        run_case udp-auth-no-credentials-503 u1 $DID_OPEN uac_final.xml "$A_FROM $PCMA_TE $MF70 CODE=503" auth_unanswered "$NO_CHECKS" 0
    # sip.max_redirects = 0: a 302 is never followed, the caller gets 480.
    RETRY_CHECK="--invites 1" CDR="binding_sid=$SID_OPEN sip_status=480 $CDR_FAILED" \
        run_case udp-redirect-disabled-480 u1 $DID_OPEN uac_final.xml "$A_FROM $PCMA_TE $MF70 CODE=480" redirect_disabled "$NO_CHECKS" 0
    stop_med
fi

echo "== reliable 180 never PRACKed =="
# RFC 3262 §3: our reliable 180 to a caller that never PRACKs is sent again
# at T1, 2*T1, 4*T1, ... and after 64*T1 (32 s) the INVITE gets 500 and the
# callee a CANCEL. The ring timeout is raised so that it does not end the
# call first. Over UDP only (it takes 33 s).
if selected udp-prack-caller-never-prack; then
    RING_TIMEOUT=60 start_med "sip:127.0.0.1:$UAS_PORT" || abort "mediator did not start"
    CDR="binding_sid=$SID_OPEN sip_status=500 hangup_side=system $CDR_FAILED" CASE_TIMEOUT=60 \
        run_case udp-prack-caller-never-prack u1 $DID_OPEN uac_final.xml "$A_FROM $PCMA_TE $MF70 $REQ_100REL PROVISIONALS=noprack180 CODE=500" ring_forever "$NO_CHECKS" 0
    case_start
    if WHY=$(python3 "$HERE/prack_retrans.py" "$OUT"/udp-prack-caller-never-prack/uac_*_messages.log); then
        echo "   $WHY"
        result udp-prack-caller-never-prack-retransmit-schedule 0 ""
    else
        result udp-prack-caller-never-prack-retransmit-schedule 1 "$WHY"
    fi
    stop_med
fi

# sipp_bg DIR ROLE XML PORT MP [SERVICE] -> runs sipp (UDP) in the background, sets LAST_PID
sipp_bg() {
    local d="$1" role="$2" xml="$3" port="$4" mp="$5" service="${6:-}"
    if [ "$role" = uas ]; then
        (cd "$d" && exec timeout 60 sipp -sf "$xml" -i 127.0.0.1 -p "$port" -t u1 -m 1 -mp "$mp" \
            -nostdin -trace_err -trace_msg -timeout 50s -timeout_error >"$d/$role.out" 2>&1) &
    else
        (cd "$d" && exec timeout 60 sipp -sf "$xml" "127.0.0.1:$SIP_PORT" -i 127.0.0.1 -p "$port" -t u1 -m 1 \
            -mp "$mp" -s "$service" -cid_str "acall-%u-%p@%s" -nostdin -trace_err -trace_msg \
            -timeout 45s -timeout_error >"$d/$role.out" 2>&1) &
    fi
    LAST_PID=$!; BG_PIDS+=("$LAST_PID")
}

# A call placed by baresip (a real softphone) to a redirect DID: established,
# RTP both ways through the relay, hung up cleanly, recorded.
baresip_case() {
    local name=udp-baresip-softphone-call d="$OUT/udp-baresip-softphone-call"
    selected "$name" || return 0
    case_start
    mkdir -p "$d"
    command -v baresip >/dev/null 2>&1 ||
        { result "$name" 1 "baresip is not installed (apt-get install -y --no-install-recommends baresip)"; return; }
    start_med "sip:127.0.0.1:$UAS_PORT" || { result "$name" 1 "mediator did not start"; return; }
    local mark DUMP_PID=""
    mark=$(cdr_mark)
    render "$SC/uas.xml" "$d/uas.xml" FLOW=answer \
        "CHECKS=<ereg regexp=\"^INVITE sip:$DEST_BARESIP@\" search_in=\"msg\" check_it=\"true\" assign_to=\"chk\"/><ereg regexp=\"&lt;sip:$CALLER@127\\.0\\.0\\.1&gt;\" search_in=\"hdr\" header=\"From:\" check_it=\"true\" assign_to=\"chk\"/>" \
        "B_FORMATS=8 101" "B_RTPMAPS=a=rtpmap:8 PCMA/8000\\na=rtpmap:101 telephone-event/8000\\na=fmtp:101 0-16"
    start_capture "$d" "udp and (portrange $BS_RTP_LOW-$BS_RTP_HIGH or portrange $B_MP-$((B_MP + 1)))" ||
        { result "$name" 1 "tcpdump did not start"; stop_med; return; }
    sipp_bg "$d" uas "$d/uas.xml" "$UAS_PORT" "$B_MP"
    local uas=$LAST_PID
    wait_bound udp "$UAS_PORT" || { result "$name" 1 "callee sipp did not bind"; stop_med; return; }
    SIP_PORT=$BS_SIP_PORT CTRL_PORT=$BS_CTRL_PORT RTP_PORTS="$BS_RTP_LOW-$BS_RTP_HIGH" \
        timeout 90 bash "$HERE/baresip/baresip-call.sh" "$d" "127.0.0.1:$SIP_PORT" "$DID_BARESIP" 4 >"$d/baresip-call.out" 2>&1
    local brc=$?
    wait "$uas"; local urc=$?
    stop_capture
    sed 's/^/   /' "$d/baresip-call.out" | grep -E 'established|closed|quit|Call ' 
    local to_a to_b
    to_a=$(python3 "$HERE/rtpcount.py" "$d/rtp.pcap" "$BS_RTP_LOW-$BS_RTP_HIGH" "$RTP_LOW" "$RTP_HIGH")
    to_b=$(count_rtp "$d/rtp.pcap" "$B_MP")
    echo "   rtp relayed: to baresip $to_a, to callee $to_b"
    local why
    why=$(python3 "$HERE/cdr.py" check "$DB" "$mark" --where "number_redirect=$DID_BARESIP" \
        binding_sid="$SID_BARESIP" number_src="$CALLER" number_dst="$DEST_BARESIP" $CDR_ANSWERED hangup_side=caller duration=3..6)
    local cdr_rc=$?
    stop_med
    if [ "$brc" != 0 ]; then result "$name" 1 "baresip call failed (exit $brc, see $d/baresip-call.out)"; return; fi
    if [ "$urc" != 0 ]; then result "$name" 1 "callee sipp exit $urc (see $d)"; return; fi
    if [ "$to_a" -lt 100 ] || [ "$to_b" -lt 100 ]; then
        result "$name" 1 "RTP not relayed both ways (to baresip $to_a, to callee $to_b)"; return
    fi
    if [ "$cdr_rc" != 0 ]; then result "$name" 1 "$why"; return; fi
    echo "   $why"
    result "$name" 0 ""
}

# Shutdown while a call is up: the call continues, a new INVITE gets 503,
# Mediator exits once the call has ended.
drain_continue() {
    local name=udp-shutdown-call-continues d="$OUT/udp-shutdown-call-continues"
    selected "$name" || return 0
    case_start
    mkdir -p "$d"
    start_med "sip:127.0.0.1:$UAS_PORT" 20 || { result "$name" 1 "mediator start"; return; }
    render "$SC/uas.xml" "$d/uas.xml" FLOW=answer "CHECKS=" "B_FORMATS=8" "B_RTPMAPS=a=rtpmap:8 PCMA/8000"
    eval render "$SC/uac_call.xml" "$d/uac.xml" "$A_FROM $PCMA_TE $MF70 TAIL=caller_bye HOLD_MS=5000"
    eval render "$SC/uac_final.xml" "$d/uac2.xml" "$A_FROM $PCMA_TE $MF70 CODE=503"
    sipp_bg "$d" uas "$d/uas.xml" "$UAS_PORT" "$B_MP"; local uas=$LAST_PID
    wait_bound udp "$UAS_PORT"
    sipp_bg "$d" uac "$d/uac.xml" "$UAC_PORT" "$A_MP" $DID_OPEN; local uac=$LAST_PID
    sleep 2
    kill -TERM "$MED_PID"
    sleep 0.5
    sipp_bg "$d" uac2 "$d/uac2.xml" "$UAC2_PORT" "$A2_MP" $DID_OPEN; local uac2=$LAST_PID
    wait "$uac2"; local r2=$?
    wait "$uac"; local r1=$?
    wait "$uas"; local r3=$?
    if [ "$r1$r2$r3" != 000 ]; then result "$name" 1 "sipp exits call=$r1 new=$r2 callee=$r3"; stop_med; return; fi
    med_exits 10 || { result "$name" 1 "mediator still running after the call ended"; stop_med; return; }
    result "$name" 0 ""
}

# Shutdown with a call that outlasts the drain time: both legs get BYE.
drain_timeout() {
    local name=udp-shutdown-drain-hangs-up d="$OUT/udp-shutdown-drain-hangs-up"
    selected "$name" || return 0
    case_start
    mkdir -p "$d"
    start_med "sip:127.0.0.1:$UAS_PORT" 2 || { result "$name" 1 "mediator start"; return; }
    local mark
    mark=$(cdr_mark)
    render "$SC/uas.xml" "$d/uas.xml" FLOW=answer "CHECKS=" "B_FORMATS=8" "B_RTPMAPS=a=rtpmap:8 PCMA/8000"
    eval render "$SC/uac_call.xml" "$d/uac.xml" "$A_FROM $PCMA_TE $MF70 TAIL=callee_bye"
    sipp_bg "$d" uas "$d/uas.xml" "$UAS_PORT" "$B_MP"; local uas=$LAST_PID
    wait_bound udp "$UAS_PORT"
    sipp_bg "$d" uac "$d/uac.xml" "$UAC_PORT" "$A_MP" $DID_OPEN; local uac=$LAST_PID
    sleep 1.5
    kill -TERM "$MED_PID"
    wait "$uac"; local r1=$?
    wait "$uas"; local r2=$?
    if [ "$r1$r2" != 00 ]; then result "$name" 1 "sipp exits caller=$r1 callee=$r2"; stop_med; return; fi
    med_exits 10 || { result "$name" 1 "mediator still running"; stop_med; return; }
    local why
    why=$(python3 "$HERE/cdr.py" check "$DB" "$mark" binding_sid="$SID_OPEN" $CDR_ANSWERED hangup_side=system) ||
        { result "$name" 1 "$why"; return; }
    echo "   $why"
    result "$name" 0 ""
}

# Bounded load: 200 calls at 20 calls/s (at most 40 at once) with the bench
# scenarios; every call must succeed and be recorded, and every RTP port must
# be free after.
load_case() {
    local name=udp-load-200-calls d="$OUT/udp-load-200-calls"
    selected "$name" || return 0
    case_start
    local bench="$SC/bench"
    mkdir -p "$d"
    start_med "sip:127.0.0.1:$UAS_PORT" || { result "$name" 1 "mediator start"; return; }
    local mark
    mark=$(cdr_mark)
    (cd "$d" && exec timeout 120 sipp -sf "$bench/uas_rr.xml" -i 127.0.0.1 -p "$UAS_PORT" -t u1 -m 200 \
        -nostdin -trace_err -timeout 100s >"$d/uas.out" 2>&1) &
    local uas=$!; BG_PIDS+=("$uas")
    wait_bound udp "$UAS_PORT"
    (cd "$d" && exec timeout 120 sipp -sf "$bench/uac_masking.xml" "127.0.0.1:$SIP_PORT" -i 127.0.0.1 -p "$UAC_PORT" \
        -t u1 -m 200 -r 20 -l 40 -d 1000 -s $DID_OPEN -nostdin -trace_err -timeout 100s \
        -timeout_error >"$d/uac.out" 2>&1)
    local r1=$?
    wait "$uas"; local r2=$?
    local bound="" recorded i
    for ((i = 0; i < 50; i++)); do
        bound=$(ss -Hlunp 2>/dev/null | grep "pid=$MED_PID," | awk '{print $4}' | awk -F: -v lo="$RTP_LOW" -v hi="$RTP_HIGH" \
            '$NF >= lo && $NF <= hi { n++ } END { print n + 0 }')
        recorded=$(python3 "$HERE/cdr.py" count "$DB" "$mark" "number_redirect=$DID_OPEN" sip_status=200 hangup_side=caller)
        [ "$bound" = 0 ] && [ "$recorded" = 200 ] && break
        sleep 0.1
    done
    stop_med
    if [ "$r1$r2" != 00 ]; then result "$name" 1 "sipp exits caller=$r1 callee=$r2"; return; fi
    if [ "$bound" != 0 ]; then result "$name" 1 "$bound RTP ports still bound after the calls"; return; fi
    if [ "$recorded" != 200 ]; then result "$name" 1 "$recorded answered call records, expected 200"; return; fi
    echo "   200 calls answered and recorded; all RTP ports returned"
    result "$name" 0 ""
}

echo "== softphone =="
baresip_case

echo "== load =="
load_case

echo "== graceful shutdown =="
drain_continue
drain_timeout

if grep -q "panicked" "$OUT/mediator.log"; then
    result "mediator-no-panic" 1 "panic in $OUT/mediator.log"
fi
echo "time: $((SECONDS - T0)) s"
[ ${#FAILED_NAMES[@]} -gt 0 ] && echo "failed: ${FAILED_NAMES[*]}"
echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
