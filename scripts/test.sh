#!/usr/bin/env bash
# Runs every test of Ferrosphere: formatting, lints, unit, integration, property and
# interoperability tests, schemathesis against the running service, then a short smoke run of
# every fuzz target.
# Installs what it needs first (see scripts/lib/prereqs.sh). `.ci/run` calls exactly this.
#
#   FUZZ_SECONDS=N          seconds per fuzz target (default 10; 0 skips the fuzz smoke)
#   SCHEMATHESIS_SECONDS=N  time budget of the API fuzzing (default 150; 0 skips it)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/prereqs.sh"
cd "${FERRO_ROOT}"

FUZZ_SECONDS="${FUZZ_SECONDS:-10}"
SCHEMATHESIS_SECONDS="${SCHEMATHESIS_SECONDS:-150}"
# The optional features the tests cover besides the defaults.
TEST_FEATURES="ferro-trust/tpm,ferro-device/tpm,ferro-boot/tpm,ferro-service/tpm-tests"
SECONDS=0

log "prerequisites"
# swtpm: the TPM 2.0 simulator the root-of-trust tests start on loopback; libtss2-dev: tss-esapi.
# mosquitto: the MQTT broker the device-certificate tests start with TLS on loopback;
# mosquitto-clients: mosquitto_sub, the subscriber of the telemetry sample's test.
# curl: scripts/schemathesis.sh checks the run token and reads the request count from the service.
# qemu-system-arm: the real-time cores (mps2-an386) of ferro-rtcore's tests.
# iproute2: `ip netns` and veth pairs of the private network isolation test (ferro-runtime's
# tests/private_network.rs, run as root).
# haproxy: the load balancer in front of two service replicas in ferro-service's
# tests/replicas.rs (with deploy/haproxy/ferro-service.cfg).
ensure_apt_packages build-essential pkg-config swtpm swtpm-tools libtss2-dev openssl mosquitto mosquitto-clients curl qemu-system-arm iproute2 haproxy
ensure_rust_targets
ensure_python_env
ensure_postgres
[ "${FUZZ_SECONDS}" -gt 0 ] && ensure_fuzz_tools

log "format"
cargo fmt --all --check
cargo fmt --manifest-path apps/Cargo.toml --all --check
# The RT apps' workspace is built from its directory (its .cargo/config.toml sets the target).
(cd apps/rt && cargo fmt --all --check)
cargo fmt --manifest-path fuzz/Cargo.toml --all --check

log "lint"
# Twice: with the default features (what the demo builds), and with every optional backend (the
# TPM 2.0 root of trust, the service's TPM attestation tests, the Linux peripheral backends,
# which need device nodes to run and so are only compiled and linted here).
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy --workspace --all-targets --locked --features "${TEST_FEATURES},ferro-peripherals/linux" -- -D warnings
cargo clippy --manifest-path apps/Cargo.toml --workspace --target wasm32-wasip2 --locked -- -D warnings
(cd apps/rt && cargo clippy --workspace --locked -- -D warnings)
# The guardian's uplink is also built and tested on the host (its tests are not wasm).
cargo clippy --manifest-path apps/Cargo.toml -p guardian-uplink --all-targets --locked -- -D warnings

log "sample apps and hostile guests (wasm32-wasip2)"
# ferro-runtime's tests load these components (apps/target/wasm32-wasip2/release/*.wasm).
cargo build --manifest-path apps/Cargo.toml --workspace --release --target wasm32-wasip2 --locked

log "real-time apps, the RT SDK and its docs (thumbv7em-none-eabihf)"
# ferro-rtcore's tests boot these in QEMU (apps/rt/target/thumbv7em-none-eabihf/release/*).
(cd apps/rt && cargo build --workspace --release --locked)
(cd apps/rt && RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked -p ferro-rt)
log "the guardian's uplink on the host (spool against its model, payloads, generated Sparkplug code)"
cargo test --manifest-path apps/Cargo.toml -p guardian-uplink --locked

log "the boot TCB on its own"
# ferro-boot built alone, so its dependencies' features are not unified with the workspace's:
# this is the loader as a device ships it (the tidy test bounds its dependency closure).
cargo build -p ferro-boot --locked
cargo build -p ferro-boot --locked --features tpm

log "unit, integration, property and interoperability tests (with the TPM 2.0 root of trust on swtpm)"
# One build with the TPM features on, so the TPM tests (swtpm, started by the tests on loopback)
# run in the same pass as the rest instead of rebuilding half the workspace for them. The
# end-to-end tests run the real binaries (ferro-service, ferro, ferro-device, ferro-boot);
# `cargo test` builds only the binaries of packages that have integration tests, so build all.
cargo build --workspace --locked --features "${TEST_FEATURES}"
cargo test --workspace --locked --features "${TEST_FEATURES}"

log "API fuzzing: schemathesis against the running service for ${SCHEMATHESIS_SECONDS}s"
# The service on loopback (SQLite in a temporary directory) with an operator's token; fails on
# any check (5xx, undocumented status or content type, response off its schema, bad input
# accepted). Bounded by schemathesis's --max-time; 0 skips it.
if [ "${SCHEMATHESIS_SECONDS}" -gt 0 ]; then
    SCHEMATHESIS_SECONDS="${SCHEMATHESIS_SECONDS}" FERRO_SERVICE_BIN="${FERRO_ROOT}/target/debug/ferro-service" \
        scripts/schemathesis.sh
fi

if [ "${FUZZ_SECONDS}" -gt 0 ]; then
    log "fuzz smoke: ${FUZZ_SECONDS}s per target"
    # Seed corpora are the checked-in test vectors; the writable corpus lives under fuzz/corpus (ignored by git).
    declare -A seeds=(
        [manifest_parse]="test-vectors/manifests"
        [hardware_definition_load]="test-vectors/hardware"
        [image_package_parse]="test-vectors/packages"
        [identity_documents]="test-vectors/identity"
        [attestation_evidence]="test-vectors/identity"
        [update_documents]="test-vectors/updates"
        [rt_elf]="test-vectors/rt-elf"
        [mailbox_region]="test-vectors/rt-mailbox"
        [register_map_parse]="test-vectors/register-maps"
        [provenance_batch]="test-vectors/provenance"
    )
    cargo +nightly fuzz build --release --debug-assertions
    for target in manifest_parse hardware_definition_load image_package_parse identity_documents attestation_evidence update_documents rt_elf mailbox_region register_map_parse provenance_batch; do
        mkdir -p "fuzz/corpus/${target}"
        seed_dir="$(mktemp -d)"
        find "${seeds[$target]}" -type f -exec cp -t "${seed_dir}" {} + 2>/dev/null || true
        fuzz_log="target/fuzz-${target}.log"
        if ! cargo +nightly fuzz run --release --debug-assertions "${target}" "fuzz/corpus/${target}" "${seed_dir}" -- \
            -max_total_time="${FUZZ_SECONDS}" -rss_limit_mb=2048 -max_len=1048576 >"${fuzz_log}" 2>&1; then
            tail -n 60 "${fuzz_log}"
            log "fuzz target ${target} failed; the reproducer is under fuzz/artifacts/${target}/"
            exit 1
        fi
        printf '%s: %s\n' "${target}" "$(grep -E '^Done' "${fuzz_log}" | tail -n 1)"
        rm -rf "${seed_dir}"
    done
    log "fuzz smoke: no crash"
fi

log "all tests passed in ${SECONDS}s"
