#!/usr/bin/env bash
# Dialouts end to end (issue 6; docs/call-flows.md, "Dialouts"): the release
# binary places dialouts made with POST /dialouts (delay 0) and a scripted
# user agent at the trunk address answers both stages, over UDP and then
# over TCP. Cases: no confirmation; confirmation by an RFC 4733 '1', by SIP
# INFO, with a custom prompt; a '2'; no key at all; stage one busy; stage
# two busy; stage two not answering; 401 and 407 challenges from the trunk;
# stage one hanging up while stage two rings; ring-back music, silence and
# passthrough; an announcement; hide_origination_did false with cnam and an
# X- header; SIGTERM while stage two rings (cancelled after sip.drain_secs,
# records stored). It checks who was called when and with which From, the
# prompt's energy, the NANP ring-back (Goertzel 440+480 Hz), audio both
# ways after the bridge, BYEs, and that the dialout is gone from GET
# /dialouts/{sid} (404) with one record per stage called in GET /calls (its
# status and the outcome).
#
# Needs python3 only. Loopback; ports PORT_BASE (default 21000) to +2 and
# RTP_THOUSANDS*1000 (default 43000) to +799. Last line "N passed, M
# failed"; non-zero exit on any failure.
# Env: MEDIATOR_BIN (default target/release/mediator), ONLY=regex.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$(dirname "$HERE")")
BIN="${MEDIATOR_BIN:-$ROOT/target/release/mediator}"
[ -x "$BIN" ] || { echo "missing $BIN (cargo build --release)"; echo "0 passed, 1 failed"; exit 1; }
command -v python3 >/dev/null || { echo "missing python3"; echo "0 passed, 1 failed"; exit 1; }
pass=0 fail=0 rc=0
for proto in udp tcp; do
    out=$(python3 "$HERE/dialout_test.py" "$BIN" "$proto" "${ONLY:-.}") || rc=1
    echo "$out" | sed '$d'
    last=$(echo "$out" | tail -n 1)
    p=$(echo "$last" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p')
    f=$(echo "$last" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p')
    [ -n "$p" ] || { p=0; f=1; echo "$last"; }
    pass=$((pass + p)) fail=$((fail + f))
done
echo "$pass passed, $fail failed"
[ "$rc" = 0 ] && [ "$fail" = 0 ]
