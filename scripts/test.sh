#!/usr/bin/env bash
# Runs every test of the project: formatting, lints, unit tests and the
# end-to-end tests (real HTTP against SQLite and PostgreSQL).
#
# Needs: cargo; PostgreSQL on 127.0.0.1:5432 with trust auth (started here if
# installed but stopped, installed from Debian's packages if missing).
# Environment: MEDIATOR_TEST_PG overrides the admin URL
# (postgres://postgres@127.0.0.1:5432/postgres).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '== %s\n' "$*" >&2; }

ensure_postgres() {
    if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
        return 0
    fi
    if ! command -v pg_ctlcluster >/dev/null 2>&1; then
        log "PostgreSQL is not installed: installing Debian's package"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends postgresql postgresql-client >/dev/null
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
            [ -n "$db" ] && psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
        done
}

ensure_postgres
drop_stale_test_databases

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
