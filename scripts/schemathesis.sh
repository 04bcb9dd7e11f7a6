#!/usr/bin/env bash
# Fuzzes the running security service against its own OpenAPI document with schemathesis
# (pinned in tests/schemathesis/requirements.txt; checks and limits in
# tests/schemathesis/schemathesis.toml), failing on any check: a 5xx, a status code, content type
# or body the document does not describe, invalid input accepted, ...
#
# The service runs on loopback (plain HTTP, port chosen by the kernel) on SQLite in a temporary
# directory. Its first administrator (a platform operator) changes its one-time password, logs
# in, makes a tenant and an API token; schemathesis sends that token on every request and that
# tenant's ID wherever a route takes `{tenantId}`, so the authenticated routes are exercised past
# their authorization checks. Everything is removed afterwards.
#
#   SCHEMATHESIS_SECONDS=N   time budget of the run (default 150); the run stops by itself then
#   FERRO_PYTHON             the Python with schemathesis (scripts/lib/prereqs.sh sets it)
#   FERRO_SERVICE_BIN        a ferro-service binary just built (default: build it here)
#
# Called by scripts/test.sh; runs alone too (`scripts/schemathesis.sh`, after
# `source scripts/lib/prereqs.sh && ensure_python_env`).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
SECONDS_BUDGET="${SCHEMATHESIS_SECONDS:-150}"
PYTHON="${FERRO_PYTHON:-${ROOT}/target/pyenv/bin/python}"
ST="$(dirname "${PYTHON}")/st"
[ -x "${ST}" ] || { echo "schemathesis is not installed at ${ST}: source scripts/lib/prereqs.sh and run ensure_python_env" >&2; exit 1; }

# scripts/test.sh passes the binary its workspace build just made (building it here with other
# features would rebuild it); alone, the script builds it, so it never runs a stale one.
service_bin="${FERRO_SERVICE_BIN:-}"
if [ -z "${service_bin}" ]; then
    cargo build --locked -q -p ferro-service --bin ferro-service
    service_bin="${ROOT}/target/debug/ferro-service"
fi

work="$(mktemp -d)"
service_pid=""
cleanup() {
    if [ -n "${service_pid}" ]; then
        kill "${service_pid}" 2>/dev/null || true
        wait "${service_pid}" 2>/dev/null || true
    fi
    rm -rf "${work}"
}
trap cleanup EXIT

# The data directory and the first administrator's one-time password.
"${service_bin}" init --data-dir "${work}/data" >"${work}/init.out" 2>"${work}/init.log"
otp="$(sed -n 's/^One-time password: //p' "${work}/init.out")"
[ -n "${otp}" ] || { cat "${work}/init.log" >&2; echo "ferro-service init printed no one-time password" >&2; exit 1; }

# Port 0: the kernel picks a free port on the one bound socket; the service logs the address.
RUST_LOG=warn,ferro_service=info "${service_bin}" run --data-dir "${work}/data" \
    --listen 127.0.0.1:0 --insecure-http --log-format json 2>"${work}/service.log" &
service_pid=$!
base=""
for _ in $(seq 1 300); do
    base="$(sed -n 's/.*"addr":"\(127\.0\.0\.1:[0-9]*\)".*"serving".*/\1/p; s/.*"message":"serving".*"addr":"\(127\.0\.0\.1:[0-9]*\)".*/\1/p' "${work}/service.log" | head -n 1)"
    [ -n "${base}" ] && break
    kill -0 "${service_pid}" 2>/dev/null || { cat "${work}/service.log" >&2; echo "ferro-service exited" >&2; exit 1; }
    sleep 0.1
done
[ -n "${base}" ] || { cat "${work}/service.log" >&2; echo "ferro-service did not report its address" >&2; exit 1; }
base="http://${base}"

# A platform operator's session, a tenant of theirs, and an API token (logout with it is excluded
# from the run, so it stays valid throughout).
export FERRO_FUZZ_BASE="${base}" FERRO_FUZZ_OTP="${otp}"
eval "$("${PYTHON}" "${ROOT}/tests/schemathesis/login.py")"
export FERRO_FUZZ_TOKEN FERRO_FUZZ_TENANT FERRO_FUZZ_USER FERRO_FUZZ_TOKEN_ID

log_dir="${ROOT}/target/schemathesis"
rm -rf "${log_dir}"
mkdir -p "${log_dir}"
# Hypothesis keeps its files (examples, Unicode tables) in the temporary directory, not the tree.
export HYPOTHESIS_STORAGE_DIRECTORY="${work}/hypothesis"
start=${SECONDS}
status=0
"${ST}" --config-file "${ROOT}/tests/schemathesis/schemathesis.toml" \
    run "${ROOT}/openapi/ferrosphere.json" \
    --url "${base}" \
    --max-time "${SECONDS_BUDGET}" \
    --report junit,ndjson --report-dir "${log_dir}" \
    >"${log_dir}/run.log" 2>&1 || status=$?
tail -n 40 "${log_dir}/run.log"
# How many requests the service answered (its own Prometheus counter, summed over routes).
served="$(curl -fsS -H "Authorization: Bearer ${FERRO_FUZZ_TOKEN}" "${base}/metrics" \
    | awk '/^http_requests_total/ { n += $NF } END { printf "%d", n }' || echo "?")"
echo "schemathesis: $((SECONDS - start))s, ${served} requests answered; exit ${status}; log ${log_dir}/run.log"
# The run is only worth its checks if its token stayed valid (else most routes saw only 401s).
if ! curl -fsS -o /dev/null -H "Authorization: Bearer ${FERRO_FUZZ_TOKEN}" "${base}/v1/tenants/${FERRO_FUZZ_TENANT}"; then
    echo "the run's API token no longer works: a route revoked it, so the run tested little" >&2
    status=1
fi
if grep -q -E '"level":"ERROR"|panicked' "${work}/service.log"; then
    grep -E '"level":"ERROR"|panicked' "${work}/service.log" | head -n 20 >&2
    echo "the service logged errors during the run" >&2
    status=1
fi
exit "${status}"
