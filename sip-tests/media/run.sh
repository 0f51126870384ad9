#!/usr/bin/env bash
# Mediator's own media end to end (docs/media.md): announcements (WAV
# 44.1 kHz stereo, MP3, and sources that fail: 404, timeout, over the size
# cap, a private address), ring-back tones (NANP and UK cadences), silence,
# music on hold, passthrough of B's early media, and DTMF to the B leg,
# each checked by what the receiving side hears (media_test.py decodes
# G.711 and RFC 4733 itself).
#
# Needs python3 and lame (installed from Debian's packages when missing, as
# root). Loopback only; fixed ports 36060-36700 (listed in media_test.py
# and docs/media.md). Last line "N passed, M failed"; non-zero exit on any
# failure.
# Env: MEDIATOR_BIN (default target/release/mediator), ONLY=regex.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$(dirname "$HERE")")
BIN="${MEDIATOR_BIN:-$ROOT/target/release/mediator}"
if ! command -v lame >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends lame >/dev/null ||
        { echo "cannot install lame"; echo "0 passed, 1 failed"; exit 1; }
fi
[ -x "$BIN" ] || { echo "missing $BIN (cargo build --release)"; echo "0 passed, 1 failed"; exit 1; }
exec python3 "$HERE/media_test.py" "$BIN" "${ONLY:-.}"
