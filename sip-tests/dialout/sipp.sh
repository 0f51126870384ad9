#!/usr/bin/env bash
# Dialouts with a SIPp trunk (issue 6, Tests; docs/call-flows.md,
# "Dialouts"): one SIPp UAS (trunk_uas.xml) at the trunk address answers
# both stages of dialouts placed by the release binary, over UDP and then
# over TCP; stage two rings (180) 2 s before answering. Cases
# (sipp_test.py): press-1 (RFC 4733 '1' from dtmf_2833_1.pcap: stage two
# called only after the key, both Froms the redirect DID, stage one heard
# the NANP ring-back, 440+480 Hz, while stage two rang, PCMU both ways on
# both legs after the bridge, outcome connected); press-2 (no stage two,
# stage one gets BYE, not_confirmed); never-press (BYE no sooner than twice
# sip.confirm_timeout_secs, and stage one heard the prompt and its one
# repeat as two speech bursts that far apart; not_confirmed). In each case
# stage one heard the confirmation prompt (speech energy after its answer),
# the dialout 404s in GET /dialouts/{sid} and GET /calls has its records.
# What stage one heard is what tcpdump saw Mediator send to its media port.
#
# Needs sipp (sip-tester), tcpdump (root), python3; installs the first two
# with apt-get when missing, fails loudly otherwise. Loopback; ports
# PORT_BASE (default 21000) to +2 and RTP_THOUSANDS*1000 (default 43000)
# to +799. Last line "N passed, M failed"; non-zero exit on any failure.
# Env: MEDIATOR_BIN (default target/release/mediator).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$(dirname "$HERE")")
BIN="${MEDIATOR_BIN:-$ROOT/target/release/mediator}"
fail() { echo "$1"; echo "0 passed, 1 failed"; exit 1; }
[ -x "$BIN" ] || fail "missing $BIN (cargo build --release)"
need() {
    command -v "$1" >/dev/null && return 0
    echo "installing $2"
    apt-get install -y --no-install-recommends "$2" >/dev/null 2>&1 || true
    command -v "$1" >/dev/null || fail "missing $1 (apt-get install $2)"
}
need python3 python3
need sipp sip-tester
need tcpdump tcpdump
[ -r /usr/share/sip-tester/dtmf_2833_1.pcap ] || fail "missing /usr/share/sip-tester/dtmf_2833_1.pcap"
WORK=$(mktemp -d /tmp/mediator-dialout-sipp.XXXXXX)
pass=0 fail=0 rc=0
for proto in udp tcp; do
    out=$(python3 "$HERE/sipp_test.py" "$BIN" "$proto" "$WORK") || rc=1
    echo "$out" | sed '$d'
    last=$(echo "$out" | tail -n 1)
    p=$(echo "$last" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p')
    f=$(echo "$last" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p')
    [ -n "$p" ] || { p=0; f=1; echo "$last"; }
    pass=$((pass + p)) fail=$((fail + f))
done
if [ "$rc" = 0 ] && [ "$fail" = 0 ] && [ "${KEEP:-}" != 1 ]; then rm -rf "$WORK"; else echo "kept $WORK"; fi
echo "$pass passed, $fail failed"
[ "$rc" = 0 ] && [ "$fail" = 0 ]
