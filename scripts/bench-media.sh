#!/usr/bin/env bash
# Benchmark: concurrent calls with Mediator-generated audio (music on hold
# in early media) that one instance sustains with packet pacing jitter
# under 2 ms at the receiver (sip-tests/media/bench_media.py; results in
# docs/performance.md, "Generated media").
#
# Env: LEVELS (concurrent calls per run, default "250 500 1000 1500"),
#      MEASURE_SECS (default 10), RTP_PORTS (Mediator's relay range,
#      default 30000-35999: 1,500 calls), BUILD=0 (use the existing
#      release build), MEDIATOR_BIN.
# Ports: 37060-37600 on loopback (see bench_media.py).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${MEDIATOR_BIN:-$PWD/target/release/mediator}"
if [ "${BUILD:-1}" = 1 ]; then cargo build --release --quiet; fi
RANGE="${RTP_PORTS:-30000-35999}"
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -r); commit $(git rev-parse --short HEAD)"
exec python3 sip-tests/media/bench_media.py "$BIN" "${LEVELS:-250 500 1000 1500}" "${MEASURE_SECS:-10}" "${RANGE%-*}" "${RANGE#*-}"
