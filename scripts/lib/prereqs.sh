# Installs what Ferrosphere's demo and tests need on a Debian 12 machine with Rust (rustup).
# Sourced by scripts/demo.sh and scripts/test.sh. Idempotent: it installs only what is missing,
# so a second run costs a few seconds.

FERRO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# The Python environment for interoperability tests (pycose): a venv, because Debian 12's
# system Python refuses `pip install` (PEP 668).
FERRO_PYENV="${FERRO_ROOT}/target/pyenv"
CARGO_FUZZ_VERSION="0.13.2"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

ensure_apt_packages() {
    local missing=()
    local pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "apt-get install ${missing[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

ensure_rust_targets() {
    # rust-toolchain.toml pins the toolchain; make sure its targets are there too.
    local installed
    installed="$(rustup target list --installed)"
    local target
    for target in wasm32-wasip2 thumbv7em-none-eabihf; do
        grep -qx "$target" <<<"$installed" || { log "rustup target add $target"; rustup target add "$target"; }
    done
    rustup component list --installed | grep -q '^clippy' || rustup component add clippy rustfmt
}

ensure_python_env() {
    # socat: the serial line (a pty pair) of the guardian's Modbus RTU tests.
    ensure_apt_packages python3 python3-venv socat
    # pycose for the interoperability tests, pymodbus for the guardian's legacy machine; schemathesis for scripts/schemathesis.sh.
    local requirements=("${FERRO_ROOT}/tests/interop/requirements.txt" "${FERRO_ROOT}/tests/schemathesis/requirements.txt")
    local stamp="${FERRO_PYENV}/.requirements"
    if ! cat "${requirements[@]}" | cmp -s - "${stamp}"; then
        log "creating ${FERRO_PYENV} from tests/interop and tests/schemathesis requirements"
        # --clear: a venv copied or left from elsewhere keeps scripts that point into it.
        python3 -m venv --clear "${FERRO_PYENV}"
        "${FERRO_PYENV}/bin/pip" install -q --disable-pip-version-check -r "${requirements[0]}" -r "${requirements[1]}"
        cat "${requirements[@]}" >"${stamp}"
    fi
    export FERRO_PYTHON="${FERRO_PYENV}/bin/python"
}

ensure_fuzz_tools() {
    rustup toolchain list | grep -q '^nightly' || { log "rustup toolchain install nightly"; rustup toolchain install nightly --profile minimal; }
    if ! cargo fuzz --version 2>/dev/null | grep -q "${CARGO_FUZZ_VERSION}"; then
        log "cargo install cargo-fuzz ${CARGO_FUZZ_VERSION}"
        cargo install cargo-fuzz --version "${CARGO_FUZZ_VERSION}" --locked
    fi
}

# PostgreSQL for the service's tests. Uses the server on 127.0.0.1:5432 when it lets user
# `postgres` in without a password (as on CI machines); else starts the machine's Debian cluster;
# else makes a private cluster with trust authentication under target/ on its own port, owned by
# the `postgres` user (PostgreSQL refuses to run as root). Exports FERRO_TEST_PG_URL.
pg_accepts() { PGCONNECT_TIMEOUT=3 psql -w -h 127.0.0.1 -p "$1" -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; }

ensure_postgres() {
    ensure_apt_packages postgresql postgresql-client
    if pg_accepts 5432; then
        export FERRO_TEST_PG_URL="postgres://postgres@127.0.0.1:5432"
        return
    fi
    local version
    version="$(ls /usr/lib/postgresql | sort -n | tail -n 1)"
    if pg_lsclusters -h 2>/dev/null | grep -q "^${version} main"; then
        log "starting PostgreSQL ${version} (cluster main)"
        as_root pg_ctlcluster --skip-systemctl-redirect "${version}" main start 2>/dev/null || true
        for _ in 1 2 3 4 5 6 7 8 9 10; do pg_accepts 5432 && break; sleep 1; done
        if pg_accepts 5432; then
            export FERRO_TEST_PG_URL="postgres://postgres@127.0.0.1:5432"
            return
        fi
    fi
    local port=55432
    local data="${FERRO_ROOT}/target/pgdata"
    local bin="/usr/lib/postgresql/${version}/bin"
    if ! pg_accepts "${port}"; then
        log "starting a private PostgreSQL on 127.0.0.1:${port} (${data})"
        if [ ! -s "${data}/PG_VERSION" ]; then
            mkdir -p "${data}"
            as_root chown postgres:postgres "${data}"
            as_root runuser -u postgres -- "${bin}/initdb" -D "${data}" -A trust -U postgres >/dev/null
        fi
        as_root runuser -u postgres -- "${bin}/pg_ctl" -D "${data}" -l "${data}/server.log" -w \
            -o "-p ${port} -c listen_addresses=127.0.0.1 -k ${data}" start >/dev/null
    fi
    export FERRO_TEST_PG_URL="postgres://postgres@127.0.0.1:${port}"
}
