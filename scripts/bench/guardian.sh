#!/usr/bin/env bash
# The guardian benchmark, one run (docs/guardian.md, "Performance"): points per second polled
# and published, and the latency from a change in the machine to its MQTT message, for the
# guardian in its sandbox on the device runtime, a bare host bridge of the same code path, and
# the pymodbus machine alone (crates/device/runtime/benches/guardian.rs). Needs Mosquitto,
# mosquitto-clients and the Python env of the interop tests, which it installs.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib/prereqs.sh"
cd "${FERRO_ROOT}"
ensure_apt_packages mosquitto mosquitto-clients
ensure_rust_targets
ensure_python_env
# The guardian component the runtime loads, and the bare bridge (host target, release).
cargo build --locked -q --manifest-path apps/Cargo.toml -p guardian --release --target wasm32-wasip2
cargo build --locked -q --manifest-path apps/Cargo.toml -p guardian-uplink --example host_bridge --release
FERRO_HOST_BRIDGE="${FERRO_ROOT}/apps/target/release/examples/host_bridge" \
    cargo bench --locked -p ferro-runtime --bench guardian
