#!/usr/bin/env bash
# Places ONE call from baresip (a real softphone, headless, no sound device)
# through a SIP server on loopback, holds it, and hangs up by command.
# Adapted from shared/tools/baresip/baresip-call.sh; the callee side is
# started by the caller of this script (run-sip-tests.sh starts a SIPp UAS).
#
# Usage: baresip-call.sh WORKDIR TARGET_IP:PORT NUMBER [HOLD_SECONDS]
# Env:   SIP_PORT (baresip's SIP port, 5090), CTRL_PORT (ctrl_tcp, 4444),
#        RTP_PORTS (baresip's RTP range, 18000-18099),
#        BARESIP_MODULE_PATH (found with dpkg -L baresip-core when unset)
#
# baresip 1.0.x is driven over its ctrl_tcp module (JSON commands in
# netstrings on 127.0.0.1:CTRL_PORT): dial, then hangup, then quit.
# Writes WORKDIR/baresip.log. Prints "established: yes|no" and
# "closed: yes|no"; exits 0 only when the call was established, hung up by
# us, and baresip quit by itself. Only loopback is used; only the process
# started here is stopped.
set -u -o pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 3 ] || { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
WORK=$1
TARGET=$2
NUMBER=$3
HOLD=${4:-4}
SIP_PORT=${SIP_PORT:-5090}
CTRL_PORT=${CTRL_PORT:-4444}
RTP_PORTS=${RTP_PORTS:-18000-18099}

die() { echo "baresip-call: $*" >&2; exit 1; }
[[ $TARGET =~ ^127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}:[0-9]+$ ]] || die "TARGET must be 127.x.y.z:PORT (loopback only)"
[[ $HOLD =~ ^[0-9]+$ ]] && [ "$HOLD" -le 600 ] || die "HOLD_SECONDS must be 0..600"
command -v baresip >/dev/null || die "baresip is not installed (apt-get install -y --no-install-recommends baresip)"
MP=${BARESIP_MODULE_PATH:-$(dirname "$(dpkg -L baresip-core 2>/dev/null | grep '/g711\.so$' | head -1)")}
[ -f "$MP/ctrl_tcp.so" ] || die "baresip modules not found; set BARESIP_MODULE_PATH"

mkdir -p "$WORK/conf"
sed -e "s|@MODULE_PATH@|$MP|" -e "s|@SIP_PORT@|$SIP_PORT|" -e "s|@CTRL_PORT@|$CTRL_PORT|" \
    -e "s|@RTP_PORTS@|$RTP_PORTS|" "$here/config.in" >"$WORK/conf/config"
cp "$here/accounts" "$WORK/conf/accounts"
: >"$WORK/conf/contacts"
LOG="$WORK/baresip.log"

BPID=""
cleanup() {
    if [ -n "$BPID" ] && kill -0 "$BPID" 2>/dev/null; then
        kill -TERM "$BPID" 2>/dev/null
        sleep 0.3
        kill -KILL "$BPID" 2>/dev/null
    fi
    [ -n "$BPID" ] && wait "$BPID" 2>/dev/null
}
trap cleanup EXIT

ctrl() { # COMMAND [PARAMS]: one ctrl_tcp command (a JSON netstring); prints the reply
    local json
    if [ -n "${2:-}" ]; then json="{\"command\":\"$1\",\"params\":\"$2\",\"token\":\"$1\"}"
    else json="{\"command\":\"$1\",\"token\":\"$1\"}"; fi
    exec 3<>"/dev/tcp/127.0.0.1/$CTRL_PORT" || return 1
    printf '%d:%s,' "${#json}" "$json" >&3
    timeout 1 cat <&3
    echo
    exec 3>&-
}

# wait_log REGEX SECONDS: 0 when the log shows REGEX in time
wait_log() {
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        tr '\r' '\n' <"$LOG" 2>/dev/null | grep -Eq "$1" && return 0
        sleep 0.1
    done
    return 1
}

(cd "$WORK" && exec timeout $((HOLD + 40)) baresip -4 -f "$WORK/conf" -t $((HOLD + 35)) \
    >"$LOG" 2>&1 </dev/null) &
BPID=$!

wait_log 'baresip is ready' 15 || die "baresip did not start (see $LOG)"
echo "> dial sip:$NUMBER@$TARGET"
ctrl dial "sip:$NUMBER@$TARGET"
est=no
wait_log 'Call established' 15 && est=yes
echo "established: $est"
[ "$est" = yes ] && sleep "$HOLD"
echo "> hangup"
ctrl hangup
closed=no
wait_log 'terminated \(duration' 5 && closed=yes
echo "closed: $closed"
echo "> quit"
ctrl quit
quit=no
for ((i = 0; i < 100; i++)); do kill -0 "$BPID" 2>/dev/null || { quit=yes; break; }; sleep 0.1; done
wait "$BPID" 2>/dev/null
BPID=""
echo "quit: $quit"
echo "--- baresip call lines"
tr '\r' '\n' <"$LOG" | sed 's/    \[/\n[/g' | grep -v '^\[0:' |
    grep -E 'call:|Call |established|terminated|session closed|audio tx|audio rx' || true
[ "$est$closed$quit" = yesyesyes ]
