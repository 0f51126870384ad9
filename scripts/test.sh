#!/usr/bin/env bash
# Runs every test of the project: formatting, lints, unit tests, the
# end-to-end tests of the REST API (real HTTP against SQLite and PostgreSQL),
# the end-to-end SIP tests (sip-tests/run-sip-tests.sh: the release
# binary between SIPp callers and callees, and one call from baresip;
# sip-tests/tcp-framing/run.sh: TCP framing and large messages with a
# scripted user agent), the hostile-input test (sip-tests/torture/run.sh:
# RFC 4475 during a call), an RTP source change mid-call
# (sip-tests/rtp-change/run.sh: scripted caller and callee, Python standard
# library only; ports 35000-35999), the operations test
# (sip-tests/ops/run.sh: callbacks to a real HTTP receiver, JSON logs,
# metrics) and the two-node test (sip-tests/two-node/run.sh: Kamailio's
# dispatcher in front of two nodes on one PostgreSQL database; kamailio is
# installed when missing) and the dialout scheduler test
# (sip-tests/dialout-sched/run.sh: restart after kill -9, missed dialouts,
# two nodes placing each dialout once). The two cargo-fuzz targets run briefly
# (scripts/fuzz.sh, FUZZ_SECONDS each, default 30) at low priority beside the
# SIP tests, and their committed corpora are replayed by cargo test; long
# fuzz runs are recorded in docs/robustness.md.
#
# Needs: cargo; PostgreSQL on 127.0.0.1:5432 with trust auth (started here if
# installed but stopped, installed from Debian's packages if missing); for the
# SIP tests sipp, tcpdump (run as root), baresip, python3, curl and ss
# (installed from Debian's packages when missing).
# Environment: MEDIATOR_TEST_PG overrides the admin URL
# (postgres://postgres@127.0.0.1:5432/postgres).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '== %s\n' "$*" >&2; }

APT_UPDATED=0
apt_install() { # PACKAGE...: installs Debian packages (apt-get update once per run)
    export DEBIAN_FRONTEND=noninteractive
    if [ "$APT_UPDATED" = 0 ]; then
        apt-get update -qq
        APT_UPDATED=1
    fi
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# The SIP tests' tools, as command and Debian package.
SIP_TOOLS="sipp:sip-tester tcpdump:tcpdump baresip:baresip python3:python3 curl:curl ss:iproute2"

ensure_sip_tools() {
    local missing=() pair
    for pair in $SIP_TOOLS; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing the SIP tests' tools from Debian's packages: ${missing[*]}"
        apt_install "${missing[@]}" || log "apt-get install ${missing[*]} failed"
    fi
    local bad=()
    for pair in $SIP_TOOLS; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || bad+=("${pair%%:*} (package ${pair#*:})")
    done
    if [ ${#bad[@]} -gt 0 ]; then
        log "cannot run the SIP tests, missing: ${bad[*]}"
        return 1
    fi
}

ensure_postgres() {
    if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
        return 0
    fi
    if ! command -v pg_ctlcluster >/dev/null 2>&1; then
        log "PostgreSQL is not installed: installing Debian's package"
        apt_install postgresql postgresql-client
        # Trust local TCP connections, as the test machines are set up.
        local hba
        hba=$(ls /etc/postgresql/*/main/pg_hba.conf | head -n1)
        sed -i -E 's/^(host\s+all\s+all\s+127\.0\.0\.1\/32\s+)\S+/\1trust/; s/^(local\s+all\s+all\s+)\S+/\1trust/' "$hba"
    fi
    local version
    version=$(ls /etc/postgresql | sort -V | tail -n1)
    log "starting PostgreSQL $version"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    for _ in $(seq 1 30); do
        pg_isready -q -h 127.0.0.1 -p 5432 && return 0
        sleep 1
    done
    log "PostgreSQL did not come up on 127.0.0.1:5432"
    return 1
}

drop_stale_test_databases() {
    psql -h 127.0.0.1 -U postgres -d postgres -Atc \
        "SELECT datname FROM pg_database WHERE datname LIKE 'mediator_t_%'" 2>/dev/null |
        while read -r db; do
            # Without FORCE: a database another test run is using right now
            # is not stale, and the drop fails and leaves it alone.
            [ -n "$db" ] && psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
        done
}

ensure_postgres
drop_stale_test_databases
ensure_sip_tools

log "cargo fmt --check"
cargo fmt --check
log "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --quiet -- -D warnings
log "cargo test (unit tests, REST API end to end on SQLite and PostgreSQL)"
cargo test --all-targets 2>&1 | tee target/test-output.txt
# cargo test exits non-zero on any failure (pipefail). Summarise the counts.
passed=$(grep -Eo '[0-9]+ passed' target/test-output.txt | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' target/test-output.txt | awk '{s+=$1} END {print s+0}')
echo "rust: $passed passed, $failed failed"

log "SIP end to end (release build, SIPp and baresip): sip-tests/run-sip-tests.sh"
cargo build --release --quiet

# The fuzzers build (their own target dir, fuzz/target) and run in the
# background at the lowest CPU priority while the SIP tests, which mostly
# wait on the network, run; the result is checked at the end.
log "fuzz targets in the background: scripts/fuzz.sh ${FUZZ_SECONDS:-30} (log: target/fuzz-ci.log)"
setsid nice -n 19 bash scripts/fuzz.sh "${FUZZ_SECONDS:-30}" >target/fuzz-ci.log 2>&1 &
FUZZ_PID=$!
trap 'kill -- -"$FUZZ_PID" 2>/dev/null || true' EXIT
# Last line "N passed, M failed"; non-zero exit on any failure (set -e).
MEDIATOR_BIN="$PWD/target/release/mediator" bash sip-tests/run-sip-tests.sh

log "media: announcements, ring-back, music on hold, DTMF (sip-tests/media/run.sh)"
MEDIATOR_BIN="$PWD/target/release/mediator" bash sip-tests/media/run.sh

log "dialouts: two-stage calls, confirmation, ring-back, trunk challenges (sip-tests/dialout/run.sh)"
MEDIATOR_BIN="$PWD/target/release/mediator" bash sip-tests/dialout/run.sh

log "dialouts with a SIPp trunk: RFC 4733 '1'/'2'/none, audio both ways (sip-tests/dialout/sipp.sh)"
MEDIATOR_BIN="$PWD/target/release/mediator" bash sip-tests/dialout/sipp.sh

log "SIP over TCP framing and messages over the UDP size limit: sip-tests/tcp-framing/run.sh"
MEDIATOR_BIN="$PWD/target/release/mediator" bash sip-tests/tcp-framing/run.sh

log "hostile input: RFC 4475 torture messages during a call, compact forms (sip-tests/torture/run.sh)"
MEDIATOR_BIN="$PWD/target/release/mediator" bash sip-tests/torture/run.sh

log "RTP source change mid-call, RTP bleed guard (sip-tests/rtp-change/run.sh; ports 35000-35999)"
MEDIATOR_BIN="$PWD/target/release/mediator" bash sip-tests/rtp-change/run.sh

log "operations: callbacks, calls API, JSON logs, metrics (sip-tests/ops/run.sh)"
MEDIATOR_BIN="$PWD/target/release/mediator" bash sip-tests/ops/run.sh

log "two nodes on one PostgreSQL behind Kamailio (sip-tests/two-node/run.sh)"
MEDIATOR_BIN="$PWD/target/release/mediator" bash sip-tests/two-node/run.sh

log "dialout scheduler: restart, kill -9, missed, two nodes on one PostgreSQL (sip-tests/dialout-sched/run.sh)"
MEDIATOR_BIN="$PWD/target/release/mediator" bash sip-tests/dialout-sched/run.sh

log "fuzz targets: scripts/fuzz.sh (started above)"
if wait "$FUZZ_PID"; then
    grep -E '^(PASS|FAIL|build|total)' target/fuzz-ci.log
else
    cat target/fuzz-ci.log
    log "fuzzing found a crash or could not run"
    exit 1
fi
