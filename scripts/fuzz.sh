#!/usr/bin/env bash
# Runs each cargo-fuzz target of fuzz/ for SECONDS (default 30) and fails on
# any crash (a panic, or a memory error AddressSanitizer finds).
#
#   scripts/fuzz.sh [SECONDS]
#
# Targets: sip_message (bytes of a SIP packet through rsipstack's parser and
# Mediator's per-request header handling) and sdp_offer_answer (SDP text
# through Mediator's offer/answer code); see src/hostile.rs.
#
# cargo-fuzz needs nightly-only rustc flags (-Zsanitizer, sancov passes).
# Only the stable toolchain is installed, so RUSTC_BOOTSTRAP=1 lets stable
# rustc accept them; it applies to this build only (fuzz/ is its own
# workspace with its own target dir, fuzz/target). cargo-fuzz is installed
# from crates.io when missing.
#
# Each run starts from a scratch copy of the committed corpus
# (fuzz/corpus/<target>, also the regression test tests/hostile_corpus.rs),
# so a run never changes the repository; inputs that found new coverage are
# left in fuzz/corpus-new/<target>. A crash leaves its input in
# fuzz/artifacts/<target>/ and the script exits non-zero.
set -euo pipefail

SECS="${1:-30}"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT/fuzz"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1

TARGETS=(sip_message sdp_offer_answer)
T0=$SECONDS
cargo fuzz build
echo "build: $((SECONDS - T0)) s"

failed=0
for t in "${TARGETS[@]}"; do
    rm -rf "corpus-new/$t"
    mkdir -p "corpus-new/$t" "artifacts/$t"
    echo "== $t: $SECS s"
    set +e
    cargo fuzz run "$t" "corpus-new/$t" "corpus/$t" -- \
        -max_total_time="$SECS" -print_final_stats=1 -max_len=8192 -timeout=10 -rss_limit_mb=2048 >"corpus-new/$t.log" 2>&1
    rc=$?
    set -e
    grep -E '^(Done |stat::number_of_executed_units|stat::peak_rss_mb)|panicked|SUMMARY: ' "corpus-new/$t.log" || true
    if [ "$rc" != 0 ] || grep -qE 'panicked|ERROR: (libFuzzer|AddressSanitizer)|SUMMARY: ' "corpus-new/$t.log"; then
        echo "FAIL $t: crash (exit $rc), see fuzz/corpus-new/$t.log and fuzz/artifacts/$t/"
        failed=1
    else
        echo "PASS $t: no crash in $SECS s"
    fi
done
echo "total: $((SECONDS - T0)) s"
exit "$failed"
