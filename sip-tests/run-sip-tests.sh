#!/usr/bin/env bash
# End-to-end SIP tests: SIPp UAC (caller, A leg) -> sipcore (release build)
# -> SIPp UAS (callee at the trunk address, B leg), over UDP and TCP.
#
# RTP is checked on the wire: tcpdump captures loopback, and each answered
# call must show packets from our relay ports arriving at BOTH SIPp media
# ports (caller and callee), i.e. media relayed both ways.
#
# Needs: sipp (Debian sip-tester), tcpdump, python3, root (tcpdump on lo).
# Only loopback addresses are used; only processes started here are stopped.
# Last line: "N passed, M failed"; exit status non-zero on any failure.
#
# Env: SIPCORE_BIN (default target/release/sipcore, built if missing),
#      ONLY=regex (run matching cases), KEEP_OUT=1.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
OUT="$HERE/out"
SC="$HERE/scenarios"
BIN="${SIPCORE_BIN:-$ROOT/target/release/sipcore}"
ONLY="${ONLY:-.}"
PCAP_AUDIO=/usr/share/sip-tester/g711a.pcap

PASS=0
FAIL=0
FAILED_NAMES=()
CORE_PID=""
BG_PIDS=()

rm -rf "$OUT"
mkdir -p "$OUT"

cleanup() {
    for p in "${BG_PIDS[@]}" $CORE_PID; do
        kill "$p" 2>/dev/null
    done
    wait 2>/dev/null
}
trap cleanup EXIT

need() { command -v "$1" >/dev/null 2>&1 || { echo "missing tool: $1 ($2)"; echo "0 passed, 1 failed"; exit 1; }; }
need sipp "apt-get install -y --no-install-recommends sip-tester"
need tcpdump "apt-get install -y --no-install-recommends tcpdump"
need python3 "python3"
[ -r "$PCAP_AUDIO" ] || { echo "missing $PCAP_AUDIO (sip-tester)"; echo "0 passed, 1 failed"; exit 1; }

if [ ! -x "$BIN" ]; then
    echo "building $BIN"
    (cd "$ROOT" && cargo build --release) || { echo "0 passed, 1 failed"; exit 1; }
fi

# --- bindings --------------------------------------------------------------
cat > "$OUT/bindings.toml" <<'EOF'
# basic masked call: caller 12125550123 is known, shown as itself
[[bindings]]
binding_sid = "b-basic"
redirect_did = "15162065337"
destination_did = "15550000002"
origination_did = "12125550123"
cnam = 'Masked "Co"'
sip_headers = { "X-Binding" = "b-basic", "X-Account" = "acct 1" }

# hide_origination_did: the callee sees the redirect DID
[[bindings]]
binding_sid = "b-hide"
redirect_did = "15162065338"
destination_did = "15550000003"
hide_origination_did = true

# fix_anonymous_cid: anonymous callers shown as the redirect DID
[[bindings]]
binding_sid = "b-anon"
redirect_did = "15162065339"
destination_did = "15550000004"
fix_anonymous_cid = true

# open binding for the failure cases
[[bindings]]
binding_sid = "b-open"
redirect_did = "15162065340"
destination_did = "15550000005"
EOF

# --- helpers ---------------------------------------------------------------
render() { python3 "$HERE/render.py" "$@"; }

# start_core TRUNK_URI [DRAIN_SECS]
start_core() {
    local trunk="$1" drain="${2:-2}"
    "$BIN" --bindings "$OUT/bindings.toml" --records "$OUT/records.jsonl" \
        --listen udp:127.0.0.1:5060 --listen tcp:127.0.0.1:5060 \
        --trusted 127.0.0.1/32 --trunk "$trunk" --advertised-host 127.0.0.1 \
        --media-ip 127.0.0.1 --rtp-bind 127.0.0.1 --rtp-ports 20000-20999 \
        --ring-timeout-secs 4 --drain-secs "$drain" >>"$OUT/core.log" 2>&1 &
    CORE_PID=$!
    for _ in $(seq 1 50); do
        if (exec 3<>/dev/tcp/127.0.0.1/5060) 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "core did not start"; return 1
}

stop_core() {
    [ -n "$CORE_PID" ] || return 0
    kill -TERM "$CORE_PID" 2>/dev/null
    for _ in $(seq 1 80); do kill -0 "$CORE_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$CORE_PID" 2>/dev/null
    wait "$CORE_PID" 2>/dev/null
    CORE_PID=""
}

result() { # NAME OK(0/1) WHY
    if [ "$2" = 0 ]; then
        PASS=$((PASS + 1)); echo "PASS $1"
    else
        FAIL=$((FAIL + 1)); FAILED_NAMES+=("$1"); echo "FAIL $1: $3"
    fi
}

# count_rtp PCAP DST_PORT [PT] -> RTP packets from our relay range to DST_PORT
count_rtp() {
    python3 "$HERE/rtpcount.py" "$1" "$2" 20000 20999 ${3:-}
}

# run_case NAME TRANSPORT(u1|t1) SERVICE UAC_TEMPLATE UAC_VARS UAS_FLOW UAS_CHECKS RTP(0|1) [UAC_IP]
# Env for one call: B_FORMATS/B_RTPMAPS (callee's answer), PT_TO_A/PT_TO_B
# (payload type every relayed packet must carry), MIN_TO_A/MIN_TO_B (packets
# that must arrive, default 100).
run_case() {
    local name="$1" tr="$2" service="$3" uac_t="$4" uac_vars="$5" flow="$6" checks="$7" rtp="$8" uac_ip="${9:-127.0.0.1}"
    echo "$name" | grep -Eq "$ONLY" || return 0
    local d="$OUT/$name"; mkdir -p "$d"
    local uac_xml="$d/uac.xml" uas_xml="$d/uas.xml"
    # shellcheck disable=SC2086
    eval render "$SC/$uac_t" "$uac_xml" $uac_vars
    local uas_pid="" dump_pid=""
    if [ "$rtp" = 1 ]; then
        tcpdump -i lo -nn -U -w "$d/rtp.pcap" 'udp and (portrange 16000-16001 or portrange 17000-17001)' \
            >"$d/tcpdump.log" 2>&1 &
        dump_pid=$!; BG_PIDS+=("$dump_pid")
        sleep 0.5
    fi
    if [ "$flow" != none ]; then
        eval render "$SC/uas.xml" "$uas_xml" "FLOW=$flow" "$checks" \
            "'B_FORMATS=${B_FORMATS:-8 101}'" "'B_RTPMAPS=${B_RTPMAPS:-a=rtpmap:8 PCMA/8000\\na=rtpmap:101 telephone-event/8000\\na=fmtp:101 0-16}'"
        (cd "$d" && exec timeout 60 sipp -sf "$uas_xml" -i 127.0.0.1 -p 5080 -t "$tr" -m 1 \
            -mp 17000 -nostdin -trace_err -trace_msg -timeout 50s -timeout_error >"$d/uas.out" 2>&1) &
        uas_pid=$!; BG_PIDS+=("$uas_pid")
        sleep 0.3
    fi
    (cd "$d" && exec timeout 60 sipp -sf "$uac_xml" 127.0.0.1:5060 -i "$uac_ip" -p 5070 -t "$tr" -m 1 \
        -mp 16000 -s "$service" -cid_str "acall-%u-%p@%s" -nostdin -trace_err -trace_msg -timeout 45s -timeout_error \
        >"$d/uac.out" 2>&1)
    local uac_rc=$? uas_rc=0
    if [ -n "$uas_pid" ]; then
        wait "$uas_pid"; uas_rc=$?
    fi
    if [ -n "$dump_pid" ]; then
        sleep 0.3; kill -INT "$dump_pid" 2>/dev/null; wait "$dump_pid" 2>/dev/null
    fi
    if [ "$uac_rc" != 0 ]; then result "$name" 1 "caller sipp exit $uac_rc (see $d)"; return; fi
    if [ "$uas_rc" != 0 ]; then result "$name" 1 "callee sipp exit $uas_rc (see $d)"; return; fi
    if [ "$rtp" = 1 ]; then
        local to_a to_b
        to_a=$(count_rtp "$d/rtp.pcap" 16000); to_b=$(count_rtp "$d/rtp.pcap" 17000)
        echo "   rtp relayed: to caller $to_a, to callee $to_b"
        if [ -n "${PT_TO_A:-}" ] && [ "$(count_rtp "$d/rtp.pcap" 16000 "$PT_TO_A")" != "$to_a" ]; then
            result "$name" 1 "packets to caller not all PT $PT_TO_A"; return
        fi
        if [ -n "${PT_TO_B:-}" ] && [ "$(count_rtp "$d/rtp.pcap" 17000 "$PT_TO_B")" != "$to_b" ]; then
            result "$name" 1 "packets to callee not all PT $PT_TO_B"; return
        fi
        if [ "$to_a" -lt "${MIN_TO_A:-100}" ] || [ "$to_b" -lt "${MIN_TO_B:-100}" ]; then
            result "$name" 1 "RTP not relayed both ways (to caller $to_a, to callee $to_b)"; return
        fi
    fi
    result "$name" 0 ""
}

A_FROM="'FROM=\"Alice Caller\" <sip:12125550123@127.0.0.1>'"
PCMA_TE="'FORMATS=8 0 101' 'RTPMAPS=a=rtpmap:8 PCMA/8000\\na=rtpmap:0 PCMU/8000\\na=rtpmap:101 telephone-event/8000\\na=fmtp:101 0-16'"
G729="'FORMATS=18' 'RTPMAPS=a=rtpmap:18 G729/8000'"
MF70="MAX_FORWARDS=70"
PAI="'EXTRA_HEADERS=P-Asserted-Identity: <sip:+12125550123@127.0.0.1;user=phone>'"

ereg() { # REGEXP HEADER -> positive check
    printf "'CHECKS=%s'" "$1"
}
BASIC_CHECKS=$(ereg '<ereg regexp="^INVITE sip:15550000002@127\.0\.0\.1:5080" search_in="msg" check_it="true" assign_to="chk"/>\n<ereg regexp="&quot;Masked \\\\&quot;Co\\\\&quot;&quot; &lt;sip:12125550123@127\.0\.0\.1&gt;" search_in="hdr" header="From:" check_it="true" assign_to="chk"/>\n<ereg regexp="sip:12125550123@" search_in="hdr" header="P-Asserted-Identity:" check_it="true" assign_to="chk"/>\n<ereg regexp="b-basic" search_in="hdr" header="X-Binding:" check_it="true" assign_to="chk"/>\n<ereg regexp="acct 1" search_in="hdr" header="X-Account:" check_it="true" assign_to="chk"/>\n<ereg regexp="69" search_in="hdr" header="Max-Forwards:" check_it="true" assign_to="chk"/>\n<ereg regexp="c=IN IP4 127\.0\.0\.1" search_in="body" check_it="true" assign_to="chk"/>\n<ereg regexp="Alice" search_in="msg" check_it_inverse="true" assign_to="chk"/>')
HIDE_CHECKS=$(ereg '<ereg regexp="&lt;sip:15162065338@" search_in="hdr" header="From:" check_it="true" assign_to="chk"/>\n<ereg regexp="12125550123" search_in="msg" check_it_inverse="true" assign_to="chk"/>\n<ereg regexp="P-Asserted-Identity" search_in="msg" check_it_inverse="true" assign_to="chk"/>')
ANON_CHECKS=$(ereg '<ereg regexp="&lt;sip:15162065339@" search_in="hdr" header="From:" check_it="true" assign_to="chk"/>\n<ereg regexp="anonymous" search_in="msg" check_it_inverse="true" assign_to="chk"/>')
NO_CHECKS="'CHECKS='"

suite() { # TRANSPORT LABEL
    local t="$1" l="$2"
    run_case "$l-basic-masked-call" "$t" 15162065337 uac_call.xml "$A_FROM $PCMA_TE $MF70 $PAI TAIL=caller_bye" answer "$BASIC_CHECKS" 1
    run_case "$l-hide-origination-did" "$t" 15162065338 uac_call.xml "$A_FROM $PCMA_TE $MF70 TAIL=caller_bye" answer "$HIDE_CHECKS" 1
    run_case "$l-anonymous-fix-cid" "$t" 15162065339 uac_call.xml "'FROM=\"Anonymous\" <sip:anonymous@anonymous.invalid>' 'EXTRA_HEADERS=Privacy: id' $PCMA_TE $MF70 TAIL=caller_bye" answer "$ANON_CHECKS" 1
    run_case "$l-callee-hangs-up" "$t" 15162065340 uac_call.xml "$A_FROM $PCMA_TE $MF70 TAIL=callee_bye" answer_bye "$NO_CHECKS" 1
    run_case "$l-busy-486" "$t" 15162065340 uac_final.xml "$A_FROM $PCMA_TE $MF70 CODE=486" busy "$NO_CHECKS" 0
    run_case "$l-cancel-after-180" "$t" 15162065340 uac_cancel.xml "$A_FROM 'WAIT=<recv response=\"100\" optional=\"true\" response_txn=\"invite\"/><recv response=\"180\" response_txn=\"invite\"/>'" ring_cancel "$NO_CHECKS" 0
    run_case "$l-cancel-crosses-200" "$t" 15162065340 uac_cancel.xml "$A_FROM 'WAIT=<recv response=\"100\" optional=\"true\" response_txn=\"invite\"/><recv response=\"180\" response_txn=\"invite\"/>'" cancel_crosses_200 "$NO_CHECKS" 0
    run_case "$l-cancel-before-180" "$t" 15162065340 uac_cancel.xml "$A_FROM 'WAIT=<recv response=\"100\" response_txn=\"invite\"/><pause milliseconds=\"200\"/>'" late_cancel "$NO_CHECKS" 0
    B_FORMATS=8 B_RTPMAPS='a=rtpmap:8 PCMA/8000' PT_TO_A=0 PT_TO_B=8 \
        run_case "$l-pcmu-caller-pcma-callee" "$t" 15162065340 uac_call.xml "$A_FROM 'FORMATS=0' 'RTPMAPS=a=rtpmap:0 PCMU/8000' PCAP=$OUT/pcmu.pcap $MF70 TAIL=caller_bye" answer "$NO_CHECKS" 1
    PT_TO_B=101 MIN_TO_B=10 \
        run_case "$l-dtmf-pt96-to-pt101" "$t" 15162065340 uac_call.xml "$A_FROM 'FORMATS=8 96' 'RTPMAPS=a=rtpmap:8 PCMA/8000\\na=rtpmap:96 telephone-event/8000\\na=fmtp:96 0-16' PCAP=$OUT/dtmf96.pcap $MF70 TAIL=caller_bye" answer "$NO_CHECKS" 1
    run_case "$l-delayed-offer" "$t" 15162065340 uac_delayed.xml "$A_FROM TAIL=caller_bye" answer "$NO_CHECKS" 1
    run_case "$l-early-media-183-sdp" "$t" 15162065340 uac_call.xml "$A_FROM $PCMA_TE $MF70 PROVISIONALS=sdp183 TAIL=caller_bye" early_media "$NO_CHECKS" 1
    run_case "$l-ring-timeout-480" "$t" 15162065340 uac_final.xml "$A_FROM $PCMA_TE $MF70 CODE=480" ring_forever "$NO_CHECKS" 0
    run_case "$l-unknown-did-404" "$t" 15169999999 uac_final.xml "$A_FROM $PCMA_TE $MF70 CODE=404" none "" 0
    run_case "$l-max-forwards-0-483" "$t" 15162065340 uac_final.xml "$A_FROM $PCMA_TE MAX_FORWARDS=0 CODE=483" none "" 0
    run_case "$l-no-common-codec-488" "$t" 15162065340 uac_final.xml "$A_FROM $G729 $MF70 CODE=488" none "" 0
    run_case "$l-untrusted-403" "$t" 15162065340 uac_final.xml "$A_FROM $PCMA_TE $MF70 CODE=403" none "" 0 127.0.0.2
}

python3 "$HERE/mkpcmu.py" "$PCAP_AUDIO" "$OUT/pcmu.pcap" 0
python3 "$HERE/mkpcmu.py" /usr/share/sip-tester/dtmf_2833_1.pcap "$OUT/dtmf96.pcap" 96

echo "== UDP =="
start_core "sip:127.0.0.1:5080" || { echo "0 passed, 1 failed"; exit 1; }
suite u1 udp
stop_core
echo "== TCP =="
start_core "sip:127.0.0.1:5080;transport=tcp" || { echo "0 passed, 1 failed"; exit 1; }
suite t1 tcp
stop_core

echo "== unreachable trunk =="
start_core "sip:127.0.0.1:5099" || { echo "0 passed, 1 failed"; exit 1; }
run_case udp-unreachable-trunk-408 u1 15162065340 uac_final.xml "$A_FROM $PCMA_TE $MF70 CODE=408" none "" 0
stop_core
start_core "sip:127.0.0.1:5099;transport=tcp" || { echo "0 passed, 1 failed"; exit 1; }
run_case tcp-unreachable-trunk-503 t1 15162065340 uac_final.xml "$A_FROM $PCMA_TE $MF70 CODE=503" none "" 0
stop_core

# sipp_bg DIR ROLE XML PORT MP [SERVICE] -> runs sipp in the background, sets LAST_PID
sipp_bg() {
    local d="$1" role="$2" xml="$3" port="$4" mp="$5" service="${6:-}"
    if [ "$role" = uas ]; then
        (cd "$d" && exec timeout 60 sipp -sf "$xml" -i 127.0.0.1 -p "$port" -t u1 -m 1 -mp "$mp" \
            -nostdin -trace_err -trace_msg -timeout 50s -timeout_error >"$d/$role.out" 2>&1) &
    else
        (cd "$d" && exec timeout 60 sipp -sf "$xml" 127.0.0.1:5060 -i 127.0.0.1 -p "$port" -t u1 -m 1 \
            -mp "$mp" -s "$service" -cid_str "acall-%u-%p@%s" -nostdin -trace_err -trace_msg \
            -timeout 45s -timeout_error >"$d/$role.out" 2>&1) &
    fi
    LAST_PID=$!; BG_PIDS+=("$LAST_PID")
}

# core_exits SECS -> 0 when the core process ended within SECS
core_exits() {
    for _ in $(seq 1 $(($1 * 10))); do
        kill -0 "$CORE_PID" 2>/dev/null || { wait "$CORE_PID" 2>/dev/null; CORE_PID=""; return 0; }
        sleep 0.1
    done
    return 1
}

# Shutdown while a call is up: the call continues, a new INVITE gets 503,
# the core exits once the call has ended.
drain_continue() {
    local name=udp-shutdown-call-continues d="$OUT/udp-shutdown-call-continues"
    echo "$name" | grep -Eq "$ONLY" || return 0
    mkdir -p "$d"
    start_core "sip:127.0.0.1:5080" 20 || { result "$name" 1 "core start"; return; }
    eval render "$SC/uas.xml" "$d/uas.xml" FLOW=answer "$NO_CHECKS" "'B_FORMATS=8'" "'B_RTPMAPS=a=rtpmap:8 PCMA/8000'"
    eval render "$SC/uac_call.xml" "$d/uac.xml" "$A_FROM $PCMA_TE $MF70 TAIL=caller_bye HOLD_MS=5000"
    eval render "$SC/uac_final.xml" "$d/uac2.xml" "$A_FROM $PCMA_TE $MF70 CODE=503"
    sipp_bg "$d" uas "$d/uas.xml" 5080 17000; local uas=$LAST_PID
    sleep 0.3
    sipp_bg "$d" uac "$d/uac.xml" 5070 16000 15162065340; local uac=$LAST_PID
    sleep 2
    kill -TERM "$CORE_PID"
    sleep 0.5
    sipp_bg "$d" uac2 "$d/uac2.xml" 5072 16010 15162065340; local uac2=$LAST_PID
    wait "$uac2"; local r2=$?
    wait "$uac"; local r1=$?
    wait "$uas"; local r3=$?
    if [ "$r1$r2$r3" != 000 ]; then result "$name" 1 "sipp exits call=$r1 new=$r2 callee=$r3"; return; fi
    core_exits 5 || { result "$name" 1 "core still running after the call ended"; stop_core; return; }
    result "$name" 0 ""
}

# Shutdown with a call that outlasts the drain time: both legs get BYE.
drain_timeout() {
    local name=udp-shutdown-drain-hangs-up d="$OUT/udp-shutdown-drain-hangs-up"
    echo "$name" | grep -Eq "$ONLY" || return 0
    mkdir -p "$d"
    start_core "sip:127.0.0.1:5080" 2 || { result "$name" 1 "core start"; return; }
    eval render "$SC/uas.xml" "$d/uas.xml" FLOW=answer "$NO_CHECKS" "'B_FORMATS=8'" "'B_RTPMAPS=a=rtpmap:8 PCMA/8000'"
    eval render "$SC/uac_call.xml" "$d/uac.xml" "$A_FROM $PCMA_TE $MF70 TAIL=callee_bye"
    sipp_bg "$d" uas "$d/uas.xml" 5080 17000; local uas=$LAST_PID
    sleep 0.3
    sipp_bg "$d" uac "$d/uac.xml" 5070 16000 15162065340; local uac=$LAST_PID
    sleep 1.5
    kill -TERM "$CORE_PID"
    wait "$uac"; local r1=$?
    wait "$uas"; local r2=$?
    if [ "$r1$r2" != 00 ]; then result "$name" 1 "sipp exits caller=$r1 callee=$r2"; stop_core; return; fi
    core_exits 10 || { result "$name" 1 "core still running"; stop_core; return; }
    grep -q '"hangup_side":"system"' "$OUT/records.jsonl" || { result "$name" 1 "no system hang-up record"; return; }
    result "$name" 0 ""
}

# Bounded load: 200 calls at 20 calls/s (at most 40 at once) with the bench
# scenarios; every call must succeed and every RTP port must be free after.
load_case() {
    local name=udp-load-200-calls d="$OUT/udp-load-200-calls"
    echo "$name" | grep -Eq "$ONLY" || return 0
    local bench=/work/shared/bench/scenarios
    [ -r "$bench/uac_masking.xml" ] || bench="$SC/bench"
    [ -r "$bench/uac_masking.xml" ] || { echo "SKIP $name (no bench scenarios)"; return 0; }
    mkdir -p "$d"
    start_core "sip:127.0.0.1:5080" || { result "$name" 1 "core start"; return; }
    (cd "$d" && exec timeout 120 sipp -sf "$bench/uas_rr.xml" -i 127.0.0.1 -p 5080 -t u1 -m 200 \
        -nostdin -trace_err -timeout 100s >"$d/uas.out" 2>&1) &
    local uas=$!; BG_PIDS+=("$uas")
    sleep 0.3
    (cd "$d" && exec timeout 120 sipp -sf "$bench/uac_masking.xml" 127.0.0.1:5060 -i 127.0.0.1 -p 5070 \
        -t u1 -m 200 -r 20 -l 40 -d 1000 -s 15162065340 -nostdin -trace_err -timeout 100s \
        -timeout_error >"$d/uac.out" 2>&1)
    local r1=$?
    wait "$uas"; local r2=$?
    sleep 1
    local bound
    bound=$(ss -lunH 2>/dev/null | awk '{print $4}' | grep -Ec ':20[0-9]{3}$')
    stop_core
    if [ "$r1$r2" != 00 ]; then result "$name" 1 "sipp exits caller=$r1 callee=$r2"; return; fi
    if [ "$bound" != 0 ]; then result "$name" 1 "$bound RTP ports still bound after the calls"; return; fi
    result "$name" 0 ""
}

echo "== load =="
load_case

echo "== graceful shutdown =="
drain_continue
drain_timeout

if grep -q "panicked" "$OUT/core.log"; then
    result "core-no-panic" 1 "panic in $OUT/core.log"
fi
[ ${#FAILED_NAMES[@]} -gt 0 ] && echo "failed: ${FAILED_NAMES[*]}"
echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
