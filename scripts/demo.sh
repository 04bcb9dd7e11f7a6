#!/usr/bin/env bash
# Ferrosphere's main demo. Installs what it needs, then:
#   1. builds the `ferro` CLI, `ferro-service` and the sample app `hello` (a wasm32-wasip2 component),
#   2. packs the app into a signed image package, resolving its peripherals through the
#      sample appliance's hardware definition (a test-signing key is made on first use),
#   3. shows and verifies the package, and shows verification refusing a copy with one byte flipped,
#   4. starts the security service on SQLite, logs in by the platform root's fingerprint, creates a
#      tenant and a product, uploads the app (re-signed for production) and deploys it to a group,
#   5. publishes the built ferro-device as an OS release, provisions a virtual device with it,
#      registers and claims the device, and boots it: ferro-boot verifies and measures the OS
#      bundle and runs ferro-device, which attests and receives its 24-hour device certificate,
#   6. updates over the air: the device installs its group's deployment at boot; version 2 of the
#      app is deployed and `update-now` makes the device install it within seconds; then a broken
#      OS bundle is published: the device stages it in its other slot, restarts into it, it fails
#      its boot attempts, the device falls back to the OS it ran and reports why.
# Everything it writes goes under .demo/ (including the demo's own test-signing key); the
# service stops when the demo ends.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/prereqs.sh"
cd "${FERRO_ROOT}"

DEMO="${FERRO_ROOT}/.demo"
export FERRO_CONFIG_DIR="${DEMO}/config"
step() { printf '\n\033[1;34m### %s\033[0m\n' "$*"; }
run() { printf '\033[2m$ %s\033[0m\n' "$*"; "$@"; }

step "Prerequisites"
ensure_apt_packages build-essential pkg-config
ensure_rust_targets

step "Build the ferro CLI and the sample app"
cargo build --locked -q -p ferro-cli -p ferro-service -p ferro-device -p ferro-boot
cargo build --locked -q --manifest-path apps/Cargo.toml -p hello --release --target wasm32-wasip2
ferro="${FERRO_ROOT}/target/debug/ferro"
ferro() { run "${ferro}" "$@"; }

rm -rf "${DEMO}"
mkdir -p "${DEMO}/hello/bin"
cp apps/hello/app_manifest.json "${DEMO}/hello/"
cp apps/target/wasm32-wasip2/release/hello.wasm "${DEMO}/hello/bin/app"

step "Generate the Rust constants of the sample appliance's hardware definition"
ferro hardware-definition generate-header \
    --hardware-definition-file hardware/ferro_vboard/sample_appliance.json \
    --destination "${DEMO}/sample_appliance.rs"
grep -m 3 'pub const' "${DEMO}/sample_appliance.rs"

step "Pack the app ('\$SAMPLE_LED' resolves through the sample appliance definition)"
ferro image-package pack-application \
    --package-directory "${DEMO}/hello" \
    --destination "${DEMO}/hello.imagepackage" \
    --hardware-definitions hardware/ferro_vboard \
    --target-definition-filename sample_appliance.json \
    --version 1.0.0

step "Show it"
ferro image-package show --image-package "${DEMO}/hello.imagepackage"

step "Verify it"
ferro image-package verify --image-package "${DEMO}/hello.imagepackage"

step "Tamper with one byte of the payload: verification must refuse it"
cp "${DEMO}/hello.imagepackage" "${DEMO}/tampered.imagepackage"
size=$(stat -c %s "${DEMO}/tampered.imagepackage")
offset=$((size - 2000))
byte=$(dd if="${DEMO}/tampered.imagepackage" bs=1 skip="${offset}" count=1 2>/dev/null | od -An -tu1 | tr -d ' ')
printf "$(printf '\\%03o' $(( (byte + 1) % 256 )))" \
    | dd of="${DEMO}/tampered.imagepackage" bs=1 seek="${offset}" conv=notrunc 2>/dev/null
if "${ferro}" image-package verify --image-package "${DEMO}/tampered.imagepackage"; then
    echo "DEMO FAILED: a tampered package verified" >&2
    exit 1
fi
echo "Refused, as it must be."

step "Start the security service (SQLite in ${DEMO}/service)"
service_bin="${FERRO_ROOT}/target/debug/ferro-service"
init_output="$("${service_bin}" init --data-dir "${DEMO}/service" --admin-login admin@demo.local 2>/dev/null)"
echo "${init_output}" | grep -v 'One-time password'
fingerprint="$(echo "${init_output}" | sed -n 's/^Platform root SHA-256 fingerprint: //p')"
password="$(echo "${init_output}" | sed -n 's/^One-time password: //p')"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"${service_bin}" run --data-dir "${DEMO}/service" --listen "127.0.0.1:${port}" 2>"${DEMO}/service.log" &
service_pid=$!
trap 'kill ${service_pid} 2>/dev/null; wait ${service_pid} 2>/dev/null' EXIT
for _ in $(seq 1 100); do (echo > "/dev/tcp/127.0.0.1/${port}") 2>/dev/null && break; sleep 0.1; done

step "Log in: the CLI pins the platform root whose fingerprint init printed; the one-time password is replaced"
printf '%s\n%s\n' "${password}" "demo passphrase, long enough" | \
    run "${ferro}" login --service "https://127.0.0.1:${port}" --login admin@demo.local \
        --password-stdin --accept-fingerprint "${fingerprint}"

step "Create a tenant and a product (with its five default device groups)"
ferro tenant create --name "Demo Tenant"
ferro product create --name "Coffee Maker" --description "The sample appliance"
ferro product device-group list --product "Coffee Maker"

step "Trust your test key for this tenant, then upload the app: the service verifies it and re-signs it"
ferro developer-key add
image_id="$("${ferro}" image add --image "${DEMO}/hello.imagepackage" --output json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
ferro image show --image "${image_id}"

step "Deploy it to the Field Test group"
ferro device-group deployment create --device-group "Coffee Maker/Field Test" --images "${image_id}"

step "Publish the OS: the built ferro-device, packed as an OS image, published by the operator"
mkdir -p "${DEMO}/os/bin"
strip -o "${DEMO}/os/bin/ferro-device" "${FERRO_ROOT}/target/debug/ferro-device"
ferro image-package pack-os --os-directory "${DEMO}/os" --version 1.0.0 --destination "${DEMO}/os.imagepackage"
ferro os-release key add
release_id="$("${ferro}" os-release publish --image "${DEMO}/os.imagepackage" --feed Retail --output json | python3 -c 'import json,sys; print(json.load(sys.stdin)["imageId"])')"
ferro os-release download --image "${release_id}" --destination "${DEMO}/os-release.imagepackage"

step "Provision a virtual device: key in its root of trust, trust anchors, factory OS, registration record"
device_bin="${FERRO_ROOT}/target/debug/ferro-device"
run "${device_bin}" provision --data-dir "${DEMO}/device" --service "https://127.0.0.1:${port}" \
    --platform-root "${DEMO}/service/pki/platform-root.pem" --os-image "${DEMO}/os-release.imagepackage"
device_id="$("${device_bin}" show-identity --data-dir "${DEMO}/device" --output json | python3 -c 'import json,sys; print(json.load(sys.stdin)["deviceId"])')"

step "Manufacturing finishes the device (state only moves forward), registers it; the tenant claims it"
run "${device_bin}" manufacturing-state update --data-dir "${DEMO}/device" --state DeviceComplete
ferro manufacturing register --file "${DEMO}/device/registration.cose"
ferro device claim --device "${device_id}"
ferro device update --device "${device_id}" --device-group "Coffee Maker/Field Test"

step "Boot it: ferro-boot verifies and measures the OS bundle, then runs ferro-device, which attests"
# A watchdog, as a board's hardware watchdog or systemd would be: when the device's process ends
# (a crash, a broken OS), boot it again.
(
    while [ ! -e "${DEMO}/device.stop" ]; do
        "${FERRO_ROOT}/target/debug/ferro-boot" --data-dir "${DEMO}/device" 2>>"${DEMO}/device.log" || true
        sleep 0.2
    done
) &
watchdog_pid=$!
stop_device() {
    touch "${DEMO}/device.stop"
    pkill -TERM -f "slots/./root/bin/ferro-device run --data-dir ${DEMO}/device" 2>/dev/null || true
    wait "${watchdog_pid}" 2>/dev/null || true
}
trap 'stop_device; kill ${service_pid} 2>/dev/null; wait ${service_pid} 2>/dev/null' EXIT
for _ in $(seq 1 300); do [ -s "${DEMO}/device/run/ready.json" ] && break; sleep 0.1; done
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("attestation:", r["attestation"], r["attestationReasons"] or "", "| measurements replay:", r["replays"])' "${DEMO}/device/run/ready.json"
ferro device show --device "${device_id}"
openssl x509 -in "${DEMO}/device/certs/device-cert.pem" -noout -subject -issuer -dates
openssl verify -CAfile "${DEMO}/device/certs/tenant-ca-chain.pem" "${DEMO}/device/certs/device-cert.pem"

# Polls the device's deployment status until the Python expression over `s` holds.
wait_status() {
    for _ in $(seq 1 600); do
        if "${ferro}" device show-deployment-status --device "${device_id}" --output json \
            | python3 -c "import json,sys; s=json.load(sys.stdin); sys.exit(0 if ($1) else 1)"; then
            return 0
        fi
        sleep 0.2
    done
    echo "DEMO FAILED: timed out waiting for: $1" >&2
    exit 1
}
app_version='next((i["version"] for i in s["installed"] if i["kind"] == "App"), None)'

step "The device installed its group's deployment (hello 1.0.0) at boot, and reported it"
wait_status "${app_version} == '1.0.0'"
ferro device show-deployment-status --device "${device_id}"

step "Version 2 of the app: pack, upload, deploy, and press update-now"
ferro image-package pack-application \
    --package-directory "${DEMO}/hello" \
    --destination "${DEMO}/hello-2.imagepackage" \
    --hardware-definitions hardware/ferro_vboard \
    --target-definition-filename sample_appliance.json \
    --version 2.0.0 --security-version 1
image2_id="$("${ferro}" image add --image "${DEMO}/hello-2.imagepackage" --output json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
ferro device-group deployment create --device-group "Coffee Maker/Field Test" --images "${image2_id}"
ferro device-group update-now --device-group "Coffee Maker/Field Test"
wait_status "${app_version} == '2.0.0'"
ferro device image list-targeted --device "${device_id}"
ferro device show-deployment-status --device "${device_id}"

step "A broken OS bundle (its ferro-device exits at once) is published to the group's feed"
mkdir -p "${DEMO}/broken-os/bin"
printf '#!/bin/sh\necho "broken OS: exiting" >&2\nexit 1\n' > "${DEMO}/broken-os/bin/ferro-device"
chmod 755 "${DEMO}/broken-os/bin/ferro-device"
ferro image-package pack-os --os-directory "${DEMO}/broken-os" --version 1.1.0 --destination "${DEMO}/broken-os.imagepackage"
ferro os-release publish --image "${DEMO}/broken-os.imagepackage" --feed Retail
ferro device-group update-now --device-group "Coffee Maker/Field Test"

step "The device stages it in its other slot, restarts into it, it fails its boot attempts, and the device falls back and reports why"
wait_status "s['state'] == 'Failed' and 'fell back' in (s['detail'] or '')"
ferro device show-deployment-status --device "${device_id}"
grep -h 'abandoned\|broken OS' "${DEMO}/device/boot-failures.json" "${DEMO}/device.log" | tail -n 3 || true
ferro tenant download-error-report --destination "${DEMO}/error-report.csv"
grep UpdateFailed "${DEMO}/error-report.csv" | head -n 1

printf '\n\033[1;32mDemo complete.\033[0m Files are in %s; the device and the service stop now.\n' "${DEMO}"
