#!/usr/bin/env bash
# Benchmark of Mediator's SIP side (docs/performance.md, "SIP call rate").
#
# A benchmark, not a test: CI must not run it (it refuses when CI is set,
# unless BENCH_FORCE=1). Loopback only (every address is 127.0.0.1, checked);
# every SIPp run is bounded by -m and by `timeout`; only the PIDs this script
# started are stopped (trap on exit), never processes found by name.
#
# Needs: sipp (Debian `sip-tester`), curl, GNU time (`time`), ss (iproute2);
# part "rtp" needs nft (`nftables`, root) for the packet counters; part
# "kamailio" needs `kamailio` (apt-get install -y --no-install-recommends
# kamailio). Release binary: `cargo build --release` (BUILD=1 does it).
#
# Parts (PARTS, default "cps kamailio rtp"):
#
#   cps       highest call rate with zero failed calls: SIPp UAC -> Mediator
#             -> SIPp UAS binding calls, ramped by bench-sip/sip-cps.sh
#             (RATES, DURATION s per step, HOLD_MS call hold, bisection
#             REFINE times between the last clean and the first unclean
#             rate). Each of REPEATS ramps starts a fresh Mediator on a fresh
#             SQLite database, provisioned through the REST API with curl:
#             one open binding (no origination_did, wait_origination_did_ttl
#             -1, maximum_ttl -1) on REDIRECT_DID to DESTINATION, with
#             hide_origination_did and an X-Binding header like the Kamailio
#             anchor. Callers are CALLER_PREFIX + 4 digits (valid numbers),
#             one per call in turn. A step is clean when every call succeeded
#             and the achieved rate is >= 95 % of the target.
#   kamailio  the same ramp against Kamailio (bench-sip/kamailio/masking.cfg,
#             copied from ../shared/bench/: htable lookup of the redirect
#             DID, R-URI and From rewritten, X-Binding, record_route + dialog)
#             on the same addresses; fresh Kamailio per ramp.
#   rtp       concurrent calls with RTP relayed at 50 packets/s each way: for
#             each N in RTP_CALLS, a fresh Mediator; N calls set up at
#             RTP_SETUP_RATE calls/s; each side's SIPp plays a G.711 u-law
#             20 ms stream (rtp_stream, 50 packets/s) for STREAM seconds
#             (RTP_SECONDS, at least the set-up time + 15 s so that all N
#             calls stream at once for a while), and the BYE comes 2 s after
#             the streams end (nothing is in flight at teardown). nft counters
#             on the output and input hooks count the packets of each hop:
#             UAC->Mediator, Mediator->UAS, UAS->Mediator, Mediator->UAC. A
#             step is clean when all calls succeeded, the packets the UAS
#             received (input hook) equal those the UAC sent (output hook) and
#             vice versa, and the generators really sent >= 95 % of 50 packets
#             per second per call and direction while all N calls were up. The
#             ramp stops at the first unclean N; repeated RTP_REPEATS times.
#             Memory per established call = (RSS with all N calls up, media
#             flowing - idle RSS after 20 warm-up calls) / N.
#
# Knobs (environment, defaults in brackets):
#   PARTS ["cps kamailio rtp"]   BUILD [1]   MEDIATOR_BIN [target/release/mediator]
#   RATES ["500 1000 1500 2000 2500 3000"]  KAM_RATES ["500 1000 1500 2000 2500 3000 4000 5000"]  DURATION [20]
#   HOLD_MS [500]  REPEATS [3]  REFINE [2]  RTT_RATE [200]  RTT_REPEATS [1]
#   QUIET_BUSY [30] (% of one core)  QUIET_MAX_WAIT [60] (s; before each step
#       the script waits until the machine is that quiet, at most that long)
#   RTP_CALLS ["100 250 500 750 1000"]  RTP_REPEATS [3]  RTP_SETUP_RATE [100]
#   RTP_SECONDS [30]
#   SUT_PORT [25060] (Mediator or Kamailio, UDP)  UAC_PORT [25070]
#   UAS_PORT [25080] (the trunk)  UAC_MEDIA_PORT [26000]  UAS_MEDIA_PORT [27000]
#   RTP_PORTS ["30000-39999"] (Mediator's media.rtp_ports)  KAM_CTL_PORT [25049]
#   KAM_SHM [1024] (MB)  REDIRECT_DID [15162060001]  DESTINATION [15162065300]
#   CALLER_PREFIX [1212736]  MALLOC_ENV [""] (e.g. "MALLOC_ARENA_MAX=2", put
#       in Mediator's environment)
#   RESULTS_DIR [results]: everything goes to RESULTS_DIR/bench-sip-<time>/,
#       with summary.md (the figures) and summary.tsv (one row per step).

set -u -o pipefail

if [[ -n "${CI:-}" && "${BENCH_FORCE:-0}" != 1 ]]; then
    echo "bench-sip.sh: a benchmark, not a test; refusing to run under CI (set BENCH_FORCE=1 to override)" >&2
    exit 2
fi

cd "$(dirname "$0")/.."
ROOT=$PWD
HERE=$ROOT/scripts/bench-sip

PARTS=${PARTS:-"cps kamailio rtp"}
BUILD=${BUILD:-1}
MEDIATOR_BIN=${MEDIATOR_BIN:-target/release/mediator}
RATES=${RATES:-"500 1000 1500 2000 2500 3000"}
KAM_RATES=${KAM_RATES:-"500 1000 1500 2000 2500 3000 4000 5000"}
DURATION=${DURATION:-20}
HOLD_MS=${HOLD_MS:-500}
REPEATS=${REPEATS:-3}
REFINE=${REFINE:-2}
RTT_RATE=${RTT_RATE:-200}
RTT_REPEATS=${RTT_REPEATS:-1}
QUIET_BUSY=${QUIET_BUSY:-30}
QUIET_MAX_WAIT=${QUIET_MAX_WAIT:-60}
RTP_CALLS=${RTP_CALLS:-"100 250 500 750 1000"}
RTP_REPEATS=${RTP_REPEATS:-3}
RTP_SETUP_RATE=${RTP_SETUP_RATE:-100}
RTP_SECONDS=${RTP_SECONDS:-30}
SUT_PORT=${SUT_PORT:-25060}
UAC_PORT=${UAC_PORT:-25070}
UAS_PORT=${UAS_PORT:-25080}
UAC_MEDIA_PORT=${UAC_MEDIA_PORT:-26000}
UAS_MEDIA_PORT=${UAS_MEDIA_PORT:-27000}
RTP_PORTS=${RTP_PORTS:-30000-39999}
KAM_CTL_PORT=${KAM_CTL_PORT:-25049}
KAM_SHM=${KAM_SHM:-1024}
REDIRECT_DID=${REDIRECT_DID:-15162060001}
DESTINATION=${DESTINATION:-15162065300}
CALLER_PREFIX=${CALLER_PREFIX:-1212736}
MALLOC_ENV=${MALLOC_ENV:-}
RESULTS_DIR=${RESULTS_DIR:-results}
IP=127.0.0.1
LOGIN=bench
PASSWORD=bench-password

die() { echo "bench-sip.sh: $*" >&2; exit 1; }
log() { echo "== $*" >&2; }

# ---------- checks ----------
for n in $RATES $KAM_RATES $DURATION $HOLD_MS $REPEATS $REFINE $RTT_RATE $RTT_REPEATS $QUIET_BUSY \
         $QUIET_MAX_WAIT $RTP_CALLS $RTP_REPEATS $RTP_SETUP_RATE $RTP_SECONDS $SUT_PORT $UAC_PORT \
         $UAS_PORT $UAC_MEDIA_PORT $UAS_MEDIA_PORT $KAM_CTL_PORT $KAM_SHM; do
    [[ $n =~ ^[0-9]+$ ]] || die "numeric knob expected, got '$n'"
done
[[ $RTP_PORTS =~ ^([0-9]+)-([0-9]+)$ ]] || die "RTP_PORTS must be LOW-HIGH"
RTP_LO=${BASH_REMATCH[1]}; RTP_HI=${BASH_REMATCH[2]}
[[ $CALLER_PREFIX =~ ^[0-9]{7}$ ]] || die "CALLER_PREFIX must be 7 digits (4 are appended)"
for part in $PARTS; do
    case $part in cps|kamailio|rtp) ;; *) die "unknown part '$part' (cps, kamailio, rtp)" ;; esac
done
want() { [[ " $PARTS " == *" $1 "* ]]; }
need=(sipp curl timeout ss awk sha256sum)
want rtp && need+=(nft)
want kamailio && need+=(kamailio kamcmd)
for t in "${need[@]}"; do
    command -v "$t" >/dev/null || die "missing $t (Debian: sipp is in sip-tester, nft in nftables, kamcmd in kamailio)"
done
TIME_BIN=$(type -P time) || die "missing GNU time (Debian package 'time')"
if want rtp && [[ $(id -u) != 0 ]]; then die "part rtp needs root for nft counters"; fi

# ---------- output, process tracking ----------
STAMP=$(date +%Y%m%d-%H%M%S)
OUT=$ROOT/$RESULTS_DIR/bench-sip-$STAMP
mkdir -p "$OUT" || die "cannot create $OUT"
TSV=$OUT/summary.tsv
MD=$OUT/summary.md
NFT_TABLE=mediator_bench_$$
NFT_ON=0
STARTED=()

forget() { local p keep=(); for p in "${STARTED[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done; STARTED=("${keep[@]}"); }
stop_pid() { # PID [seconds]: TERM, wait, KILL; only PIDs started here
    local p=$1 w=${2:-10} i
    kill -0 "$p" 2>/dev/null && kill -TERM "$p" 2>/dev/null
    for ((i = 0; i < w * 10; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
    forget "$p"
}
finish_pid() { # PID SECONDS: let a PID started here end by itself, then stop it
    local p=$1 w=$2 i
    for ((i = 0; i < w * 10; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    stop_pid "$p" 5
}
cleanup() {
    local p
    for p in "${STARTED[@]}"; do kill -0 "$p" 2>/dev/null && kill -TERM "$p" 2>/dev/null; done
    sleep 0.5
    for p in "${STARTED[@]}"; do kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null; done
    wait 2>/dev/null
    [[ $NFT_ON == 1 ]] && nft delete table inet "$NFT_TABLE" 2>/dev/null
    true
}
trap cleanup EXIT
trap 'echo "bench-sip.sh: interrupted" >&2; exit 130' INT TERM

port_in_use() { # proto port (TCP TIME_WAIT ignored)
    local hex; hex=$(printf '%04X' "$2")
    awk -v h=":$hex" 'FNR>1 && substr($2, length($2)-4) == h && $4 != "06" { f=1 } END { exit !f }' \
        "/proc/net/$1" "/proc/net/${1}6" 2>/dev/null
}
wait_bound() { local i; for ((i = 0; i < 100; i++)); do port_in_use "$1" "$2" && return 0; sleep 0.1; done; return 1; }
check_free() { local pp; for pp in "$@"; do port_in_use "${pp%%:*}" "${pp##*:}" && die "port ${pp##*:}/${pp%%:*} is in use by another process; pick other *_PORT knobs"; done; true; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
ticks() { awk '{ sub(/.*\) /, ""); split($0, f, " "); print f[12] + f[13] }' "/proc/$1/stat" 2>/dev/null || echo 0; }
CLK=$(getconf CLK_TCK)
NCPU=$(nproc)
box_ticks() { awk '/^cpu / { t=0; for (i=2;i<=9;i++) t+=$i; print t, $5+$6 }' /proc/stat; }
busy_pct() { # % of one core used by the whole machine over 1 s
    local a ai b bi
    read -r a ai < <(box_ticks); sleep 1; read -r b bi < <(box_ticks)
    awk -v t=$((b - a)) -v d=$((bi - ai)) -v n="$NCPU" 'BEGIN { if (t>0) printf "%.0f", (1-d/t)*n*100; else print 0 }'
}
wait_quiet() { # sets QUIET_NOTE
    local i b=0
    for ((i = 0; i < QUIET_MAX_WAIT; i++)); do
        b=$(busy_pct); [[ $b -le $QUIET_BUSY ]] && { QUIET_NOTE="${i}s"; return 0; }
    done
    QUIET_NOTE="busy ${b}%"
    echo "bench-sip.sh: machine still busy (${b}% of a core) after ${QUIET_MAX_WAIT}s; measuring anyway" >&2
}
median() { sort -g | awk '{ a[NR]=$1 } END { if (NR==0) { print "-"; exit } if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2 }'; }

# ---------- the binary ----------
if [[ $BUILD == 1 ]]; then
    log "cargo build --release"
    cargo build --release >&2 || die "cargo build --release failed"
fi
[[ -x $MEDIATOR_BIN ]] || die "no binary at $MEDIATOR_BIN (cargo build --release)"
# A private copy: the shared target/ may be rebuilt while the benchmark runs.
BIN=$OUT/mediator
cp "$MEDIATOR_BIN" "$BIN" || die "cannot copy $MEDIATOR_BIN"
BIN_SHA=$(sha256sum "$BIN" | cut -c1-12)

# Callers: a sipp injection file, one valid number per call, in turn.
CALLERS=$OUT/callers.csv
{ echo SEQUENTIAL; for ((i = 0; i < 10000; i++)); do printf '%s%04d;\n' "$CALLER_PREFIX" "$i"; done; } > "$CALLERS"

{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit: $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo ' + uncommitted changes in src/')"
    echo "binary: $MEDIATOR_BIN sha256 $BIN_SHA"
    echo "machine: nproc=$NCPU cpu=\"$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)\" mem=$(awk '/^MemTotal/ { printf "%.1f GiB", $2/1048576 }' /proc/meminfo) kernel=$(uname -r)"
    echo "sipp: $(sipp -v 2>/dev/null | awk '/SIPp v/ { print $2; exit }')"
    want kamailio && echo "kamailio: $(kamailio -v 2>/dev/null | awk '/^version:/ { print $3; exit }')"
    echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg); busy: $(busy_pct)% of one core"
    echo "knobs: PARTS=\"$PARTS\" RATES=\"$RATES\" KAM_RATES=\"$KAM_RATES\" DURATION=$DURATION HOLD_MS=$HOLD_MS REPEATS=$REPEATS REFINE=$REFINE RTP_CALLS=\"$RTP_CALLS\" RTP_REPEATS=$RTP_REPEATS RTP_SETUP_RATE=$RTP_SETUP_RATE RTP_SECONDS=$RTP_SECONDS MALLOC_ENV=\"$MALLOC_ENV\""
} | tee "$OUT/info.txt" >&2
printf 'part\trepeat\tstep\tresult\tdetail\n' > "$TSV"

# ---------- Mediator ----------
MED_PID=""
API=""
start_mediator() { # DIR
    local dir=$1 conf=$1/mediator.toml i addr=""
    check_free "udp:$SUT_PORT"
    {
        echo '[api]'
        echo "listen = \"$IP:0\""
        echo '[sip]'
        echo "listen = [\"udp:$IP:$SUT_PORT\"]"
        echo "advertised_host = \"$IP\""
        echo "trunk = \"sip:$IP:$UAS_PORT\""
        echo 'trusted = ["127.0.0.0/8"]'
        echo 'ring_timeout_secs = 30'
        echo 'drain_secs = 2'
        echo '[media]'
        echo "advertised_ip = \"$IP\""
        echo "bind_ip = \"$IP\""
        echo "rtp_ports = \"$RTP_PORTS\""
        echo '[database]'
        echo "url = \"sqlite://$dir/mediator.db\""
        echo '[[accounts]]'
        echo 'name = "Bench"'
        echo "login = \"$LOGIN\""
        echo "password = \"$PASSWORD\""
        echo "dids = [\"$REDIRECT_DID\"]"
        echo 'permissions = ["hide_origination_did"]'
    } > "$conf"
    # shellcheck disable=SC2086
    env MEDIATOR_LOG=warn NO_COLOR=1 $MALLOC_ENV "$BIN" serve --config "$conf" > "$dir/mediator.log" 2>&1 &
    MED_PID=$!; STARTED+=("$MED_PID")
    for ((i = 0; i < 200; i++)); do
        kill -0 "$MED_PID" 2>/dev/null || { cat "$dir/mediator.log" >&2; die "Mediator exited at start"; }
        addr=$(ss -ltnpH 2>/dev/null | awk -v p="pid=$MED_PID," 'index($0, p) { print $4; exit }')
        [[ -n $addr ]] && port_in_use udp "$SUT_PORT" && break
        sleep 0.1
    done
    [[ $addr == 127.0.0.1:* ]] || die "Mediator's REST listener not found"
    API="http://$addr/mediator/v1"
    local body resp
    body="{\"destination_did\":\"$DESTINATION\",\"redirect_did\":\"$REDIRECT_DID\",\"wait_origination_did_ttl\":-1,\"maximum_ttl\":-1,\"attributes\":{\"hide_origination_did\":\"true\",\"sip_header_X-Binding\":\"1\"}}"
    resp=$(curl -sS --max-time 10 -u "$LOGIN:$PASSWORD" -H 'Content-Type: application/json' -d "$body" "$API/bindings") \
        || die "POST /bindings failed"
    echo "$resp" > "$dir/binding.json"
    [[ $resp == *'"status":200'* && $resp == *'"origination_did":null'* ]] || die "unexpected binding answer: ${resp:0:300}"
}
stop_mediator() { [[ -n $MED_PID ]] && stop_pid "$MED_PID" 15; MED_PID=""; }

# ---------- Kamailio ----------
KAM_PID=""
start_kamailio() { # DIR
    local dir=$1
    check_free "udp:$SUT_PORT" "tcp:$SUT_PORT" "tcp:$KAM_CTL_PORT"
    sed -e "s/^listen=udp:127.0.0.1:5060/listen=udp:$IP:$SUT_PORT/" \
        -e "s/^listen=tcp:127.0.0.1:5060/listen=tcp:$IP:$SUT_PORT/" \
        -e "s#\"tcp:127.0.0.1:2049\"#\"tcp:$IP:$KAM_CTL_PORT\"#" \
        -e "s/^\([[:space:]]*\)\$rp = 5080;/\1\$rp = $UAS_PORT;/" \
        "$HERE/kamailio/masking.cfg" > "$dir/masking.cfg"
    grep -q "listen=udp:$IP:$SUT_PORT" "$dir/masking.cfg" && grep -q "\$rp = $UAS_PORT;" "$dir/masking.cfg" \
        || die "could not adapt masking.cfg to the ports"
    printf '$sht(bind=>%s) = "1,%s";\n' "$REDIRECT_DID" "$DESTINATION" > "$dir/bindings.cfg"
    kamailio -f "$dir/masking.cfg" -DD -E -m "$KAM_SHM" -M 8 > "$dir/kamailio.log" 2>&1 &
    KAM_PID=$!; STARTED+=("$KAM_PID")
    wait_bound udp "$SUT_PORT" || { cat "$dir/kamailio.log" >&2; die "Kamailio did not start"; }
    sleep 1
}
stop_kamailio() { [[ -n $KAM_PID ]] && stop_pid "$KAM_PID" 15; KAM_PID=""; }

# ---------- parts cps and kamailio: the ramp ----------
declare -A MAXCPS
ramp() { # PRODUCT(mediator|kamailio) RATES
    local product=$1 rates=$2 rep dir max stats=""
    MAXCPS[$product]=""
    for ((rep = 1; rep <= REPEATS; rep++)); do
        dir=$OUT/$product-cps-$rep
        mkdir -p "$dir"
        local pids
        if [[ $product == mediator ]]; then
            start_mediator "$dir"; pids=$MED_PID
        else
            start_kamailio "$dir"; pids=$KAM_PID
            stats="kamcmd -s tcp:$IP:$KAM_CTL_PORT core.shmmem; kamcmd -s tcp:$IP:$KAM_CTL_PORT dlg.stats_active"
        fi
        log "$product: ramp $rep/$REPEATS (rates $rates)"
        OUT_DIR=$dir/ramp LABEL=$product SUT_PIDS=$pids SUT_STATS_CMD=$stats CALLERS_FILE=$CALLERS \
        SERVICE=$REDIRECT_DID UAC_ADDR=$IP:$UAC_PORT UAS_ADDR=$IP:$UAS_PORT RATES=$rates DURATION=$DURATION \
        HOLD_MS=$HOLD_MS REPEATS=1 REFINE=$REFINE RTT_RATE=$RTT_RATE RTT_REPEATS=$RTT_REPEATS \
        CHECK=$([[ $rep == 1 ]] && echo 1 || echo 0) QUIET_BUSY=$QUIET_BUSY QUIET_MAX_WAIT=$QUIET_MAX_WAIT \
            "$HERE/sip-cps.sh" "$IP:$SUT_PORT" > "$dir/sip-cps.out" 2>&1
        max=$(awk -F= '/^MAX_CLEAN_CPS=/ { print $2 }' "$dir/sip-cps.out")
        if [[ $product == mediator ]]; then stop_mediator; else stop_kamailio; fi
        [[ -n $max ]] || { tail -20 "$dir/sip-cps.out" >&2; die "$product ramp $rep gave no result (see $dir/sip-cps.out)"; }
        MAXCPS[$product]+="$max "
        printf '%s\t%s\t%s\t%s\t%s\n' "$product-cps" "$rep" "ramp" "$max" "$(grep -m1 '^ramp 1:' "$dir/ramp/maxes.txt" 2>/dev/null)" >> "$TSV"
        tail -n +2 "$dir/ramp/summary.tsv" | sed "s/^/$product-cps\t$rep\tstep\t\t/" >> "$TSV"
        log "$product: ramp $rep max clean cps = $max"
    done
}

# ---------- part rtp ----------
nft_setup() {
    nft add table inet "$NFT_TABLE" || die "nft: cannot add a table (root and nf_tables needed)"
    NFT_ON=1
    nft add chain inet "$NFT_TABLE" out '{ type filter hook output priority 0; policy accept; }'
    nft add chain inet "$NFT_TABLE" in '{ type filter hook input priority 0; policy accept; }'
    local hook
    for hook in out in; do
        nft add rule inet "$NFT_TABLE" $hook ip saddr $IP udp sport "$UAC_MEDIA_PORT" udp dport "$RTP_LO-$RTP_HI" counter comment "\"a_to_m_$hook\""
        nft add rule inet "$NFT_TABLE" $hook ip daddr $IP udp sport "$RTP_LO-$RTP_HI" udp dport "$UAS_MEDIA_PORT" counter comment "\"m_to_b_$hook\""
        nft add rule inet "$NFT_TABLE" $hook ip saddr $IP udp sport "$UAS_MEDIA_PORT" udp dport "$RTP_LO-$RTP_HI" counter comment "\"b_to_m_$hook\""
        nft add rule inet "$NFT_TABLE" $hook ip daddr $IP udp sport "$RTP_LO-$RTP_HI" udp dport "$UAC_MEDIA_PORT" counter comment "\"m_to_a_$hook\""
    done
}
nft_read() { # -> "a_to_m_out=N m_to_b_out=N ... " in a fixed order
    nft list table inet "$NFT_TABLE" | awk '
        /counter packets/ { for (i = 1; i <= NF; i++) { if ($i == "packets") p = $(i+1); if ($i == "comment") { c = $(i+1); gsub(/"/, "", c) } } v[c] = p }
        END { n = split("a_to_m_out a_to_m_in m_to_b_out m_to_b_in b_to_m_out b_to_m_in m_to_a_out m_to_a_in", k, " ")
              for (i = 1; i <= n; i++) printf "%s=%d ", k[i], v[k[i]] + 0; print "" }'
}
get() { local kv; for kv in $1; do [[ ${kv%%=*} == "$2" ]] && { echo "${kv#*=}"; return; }; done; echo 0; }
since() { # AFTER BEFORE -> the same keys with AFTER - BEFORE (rule counters cannot be reset with nft 1.0.6)
    local kv k out=""
    for kv in $1; do k=${kv%%=*}; out+="$k=$(( ${kv#*=} - $(get "$2" "$k") )) "; done
    echo "$out"
}

sipp_stat() { # stat.csv field -> last value
    awk -F';' -v k="$2" 'NR==1 { for (i=1;i<=NF;i++) if ($i==k) c=i; next } { v=$c } END { print v + 0 }' "$1" 2>/dev/null
}

warm_up() { # DIR: 20 short calls without media, so that idle RSS is taken after first use
    local dir=$1/warmup u
    mkdir -p "$dir"
    ( cd "$dir" && exec timeout 60 sipp -sf "$HERE/scenarios/uas_rr.xml" -i $IP -p "$UAS_PORT" -mp "$UAS_MEDIA_PORT" -m 20 -nostdin \
        > uas.out 2>&1 ) & u=$!; STARTED+=("$u")
    wait_bound udp "$UAS_PORT"
    ( cd "$dir" && exec timeout 60 sipp "$IP:$SUT_PORT" -sf "$HERE/scenarios/uac_masking.xml" -s "$REDIRECT_DID" \
        -inf "$CALLERS" -i $IP -p "$UAC_PORT" -mp "$UAC_MEDIA_PORT" -r 20 -m 20 -d 100 -nostdin -trace_stat -stf uac_stat.csv \
        > uac.out 2>&1 )
    finish_pid "$u" 15   # it ends after its 20 calls, once the last BYE from Mediator is answered
    [[ $(sipp_stat "$dir/uac_stat.csv" 'SuccessfulCall(C)') == 20 ]] || die "warm-up calls failed (see $dir)"
}

rtp_step() { # N REP -> sets STEP_CLEAN, appends to the TSV
    local n=$1 rep=$2 dir=$OUT/rtp-$2/n$1
    local setup_s=$(( (n + RTP_SETUP_RATE - 1) / RTP_SETUP_RATE ))
    local stream=$RTP_SECONDS
    (( stream < setup_s + 15 )) && stream=$((setup_s + 15))
    local hold_ms=$(( (stream + 2) * 1000 ))
    local tmo=$(( setup_s + stream + 40 ))
    mkdir -p "$dir"
    check_free "udp:$UAC_PORT" "udp:$UAS_PORT" "udp:$UAC_MEDIA_PORT" "udp:$UAS_MEDIA_PORT"
    # stream.pcmu: STREAM seconds of G.711 u-law silence (0xFF), 8000 bytes per second
    head -c $((stream * 8000)) /dev/zero | LC_ALL=C tr '\000' '\377' > "$dir/stream.pcmu"
    start_mediator "$dir"
    warm_up "$dir"
    sleep 2
    local idle; idle=$(rss_kb "$MED_PID")
    wait_quiet; local quiet=$QUIET_NOTE
    local c0; c0=$(nft_read)
    local uas uac
    ( cd "$dir" && exec timeout -k 5 "$tmo" "$TIME_BIN" -f '%e %U %S %M' -o uas_time.txt \
        sipp -sf "$HERE/scenarios/uas_rtp.xml" -i $IP -p "$UAS_PORT" -mp "$UAS_MEDIA_PORT" -mi $IP -m "$n" \
        -buff_size 4194304 -nostdin -trace_stat -stf uas_stat.csv -fd 1 -trace_err -error_file uas_err.log \
        -max_log_size 50000000 > uas.out 2>&1 ) & uas=$!; STARTED+=("$uas")
    wait_bound udp "$UAS_PORT" || die "UAS did not bind"
    ( cd "$dir" && exec timeout -k 5 "$tmo" "$TIME_BIN" -f '%e %U %S %M' -o uac_time.txt \
        sipp "$IP:$SUT_PORT" -sf "$HERE/scenarios/uac_rtp.xml" -s "$REDIRECT_DID" -inf "$CALLERS" \
        -i $IP -p "$UAC_PORT" -mp "$UAC_MEDIA_PORT" -mi $IP -r "$RTP_SETUP_RATE" -m "$n" -l "$n" -d "$hold_ms" \
        -buff_size 4194304 -nostdin -trace_stat -stf uac_stat.csv -fd 1 -trace_err -error_file uac_err.log \
        -max_log_size 50000000 > uac.out 2>&1 ) & uac=$!; STARTED+=("$uac")
    # All N calls are up and streaming from setup_s + 3 s until about stream + 1 s.
    local t_from=$((setup_s + 3)) t_to=$((stream - 2)) t0 c1 c2 r_up k1 k2 peak=0 r
    t0=$(date +%s)
    sleep "$t_from"
    r_up=$(rss_kb "$MED_PID"); c1=$(nft_read); k1=$(ticks "$MED_PID")
    local w0; w0=$(date +%s.%N)
    while (( $(date +%s) - t0 < t_to )); do
        sleep 1; r=$(rss_kb "$MED_PID"); (( r > peak )) && peak=$r
    done
    c2=$(nft_read); k2=$(ticks "$MED_PID")
    local w1; w1=$(date +%s.%N)
    wait "$uac"; local uac_rc=$?; forget "$uac"
    finish_pid "$uas" 15
    sleep 1
    local cf; cf=$(since "$(nft_read)" "$c0")
    local after; after=$(rss_kb "$MED_PID")
    stop_mediator
    local ok fail win
    ok=$(sipp_stat "$dir/uac_stat.csv" 'SuccessfulCall(C)'); fail=$(sipp_stat "$dir/uac_stat.csv" 'FailedCall(C)')
    win=$(awk -v a="$w0" -v b="$w1" 'BEGIN { printf "%.2f", b - a }')
    # offered rate while all calls were up: packets per call per second, each way
    local pps_ab pps_ba cpu
    pps_ab=$(awk -v d=$(( $(get "$c2" a_to_m_out) - $(get "$c1" a_to_m_out) )) -v n="$n" -v w="$win" 'BEGIN { printf "%.1f", d / n / w }')
    pps_ba=$(awk -v d=$(( $(get "$c2" b_to_m_out) - $(get "$c1" b_to_m_out) )) -v n="$n" -v w="$win" 'BEGIN { printf "%.1f", d / n / w }')
    cpu=$(awk -v d=$((k2 - k1)) -v c="$CLK" -v w="$win" 'BEGIN { printf "%.0f", d / c / w * 100 }')
    local sent_ab got_ab sent_ba got_ba relay_ab relay_ba loss_ab loss_ba
    sent_ab=$(get "$cf" a_to_m_out); got_ab=$(get "$cf" m_to_b_in)
    sent_ba=$(get "$cf" b_to_m_out); got_ba=$(get "$cf" m_to_a_in)
    relay_ab=$(( $(get "$cf" a_to_m_in) - $(get "$cf" m_to_b_out) ))
    relay_ba=$(( $(get "$cf" b_to_m_in) - $(get "$cf" m_to_a_out) ))
    loss_ab=$((sent_ab - got_ab)); loss_ba=$((sent_ba - got_ba))
    local per_call
    per_call=$(awk -v u="$r_up" -v i="$idle" -v n="$n" 'BEGIN { printf "%.1f", (u - i) / n }')
    STEP_CLEAN=no
    # SIPp's UAC with rtp_stream sometimes does not exit after its last call
    # (seen once with 1,000 calls): the timeout then ends it. The stat file
    # still tells whether every call succeeded, so that is what counts.
    local uac_exit=$uac_rc
    [[ $uac_rc == 124 && $ok == "$n" && $fail == 0 ]] && uac_exit="124(hung after its last call)"
    if [[ ( $uac_rc == 0 || $uac_rc == 124 ) && $ok == "$n" && $fail == 0 && $loss_ab == 0 && $loss_ba == 0 && $sent_ab -gt 0 && $sent_ba -gt 0 ]] &&
       awk -v a="$pps_ab" -v b="$pps_ba" 'BEGIN { exit !(a >= 47.5 && b >= 47.5) }'; then
        STEP_CLEAN=yes
    fi
    local detail="calls=$ok/$n failed=$fail uac_exit=$uac_exit stream=${stream}s window=${win}s pps_per_call_ab=$pps_ab pps_per_call_ba=$pps_ba"
    detail+=" sent_ab=$sent_ab recv_ab=$got_ab loss_ab=$loss_ab (in_mediator=$relay_ab) sent_ba=$sent_ba recv_ba=$got_ba loss_ba=$loss_ba (in_mediator=$relay_ba)"
    detail+=" mediator_cpu=${cpu}% uac_cpu=$(awk 'END { if ($1>0) printf "%.0f", ($2+$3)/$1*100 }' "$dir/uac_time.txt" 2>/dev/null)%"
    detail+=" uas_cpu=$(awk 'END { if ($1>0) printf "%.0f", ($2+$3)/$1*100 }' "$dir/uas_time.txt" 2>/dev/null)%"
    detail+=" rss_idle_kB=$idle rss_up_kB=$r_up rss_peak_kB=$peak rss_after_kB=$after kib_per_call=$per_call quiet_wait=$quiet"
    echo "$detail" > "$dir/result.txt"
    printf '%s\t%s\t%s\t%s\t%s\n' rtp "$rep" "$n" "$STEP_CLEAN" "$detail" >> "$TSV"
    log "rtp $rep N=$n clean=$STEP_CLEAN $detail"
    PER_CALL[$n]+="$per_call "
}

# ---------- run ----------
declare -A PER_CALL
RTP_MAX=()
if want cps; then ramp mediator "$RATES"; fi
if want kamailio; then ramp kamailio "$KAM_RATES"; fi
if want rtp; then
    nft_setup
    for ((rep = 1; rep <= RTP_REPEATS; rep++)); do
        best=0
        for n in $RTP_CALLS; do
            rtp_step "$n" "$rep"
            [[ $STEP_CLEAN == yes ]] || break
            best=$n
            sleep 2
        done
        RTP_MAX+=("$best")
        log "rtp ramp $rep: most concurrent relayed calls without loss = $best"
    done
fi

# ---------- summary ----------
{
    echo "# bench-sip $STAMP"
    echo
    sed 's/^/    /' "$OUT/info.txt"
    echo "    load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    med_m=""; med_k=""
    if want cps; then
        med_m=$(printf '%s\n' ${MAXCPS[mediator]} | median)
        echo "Mediator: max clean call set-ups/s per ramp: ${MAXCPS[mediator]}-> median $med_m"
    fi
    if want kamailio; then
        med_k=$(printf '%s\n' ${MAXCPS[kamailio]} | median)
        echo "Kamailio: max clean call set-ups/s per ramp: ${MAXCPS[kamailio]}-> median $med_k"
    fi
    if [[ -n $med_m && -n $med_k && $med_k != 0 && $med_k != - ]]; then
        echo "ratio Mediator/Kamailio: $(awk -v a="$med_m" -v b="$med_k" 'BEGIN { printf "%.2f", a / b }')"
    fi
    if want rtp; then
        echo "RTP: most concurrent relayed calls without loss per ramp: ${RTP_MAX[*]} -> median $(printf '%s\n' "${RTP_MAX[@]}" | median)"
        for n in $RTP_CALLS; do
            [[ -n ${PER_CALL[$n]:-} ]] || continue
            echo "memory per established call at N=$n (KiB): ${PER_CALL[$n]}-> median $(printf '%s\n' ${PER_CALL[$n]} | median)"
        done
    fi
    for f in "$OUT"/*-cps-*/ramp/rtt.txt; do [[ -s $f ]] && { echo; echo "${f#$OUT/}:"; sed 's/^/    /' "$f"; }; done
    for f in "$OUT"/*-cps-1/ramp/check.txt; do [[ -s $f ]] && { echo; echo "${f#$OUT/}:"; sed 's/^/    /' "$f"; }; done
    echo
    echo "Every step: summary.tsv"
} > "$MD"
cat "$MD"
echo "results: $OUT" >&2
