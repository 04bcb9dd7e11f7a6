#!/usr/bin/env bash
# Ferrosphere's main demo. Installs what it needs, then:
#   1. builds the `ferro` CLI, `ferro-service` and the sample app `blink` (a wasm32-wasip2 component),
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
#      its boot attempts, the device falls back to the OS it ran and reports why,
#   7. the deployed app runs on the virtual board: a button pressed through the device's local API
#      toggles its LED; the intercore pair (a wasm app and rt-echo on a QEMU real-time core,
#      deployed with blink) exchanges messages through the mailbox, seen in both logs; development mode (an appDevelopment capability for this device) lets a
#      test-signed blink be sideloaded in its place; an app that crashes at start is contained
#      and its crashes reach the tenant's error report; the telemetry sample publishes the virtual
#      I2C sensor's temperature over MQTT with TLS, authenticated by the device certificate whose
#      key stays in the root of trust, to a local Mosquitto that requires the tenant's CA,
#   8. guardian mode: a pymodbus simulator plays a legacy machine on Modbus TCP (loopback); the
#      guardian app, its register map in its signed package, bridges it to the same broker; a
#      change in the machine arrives in a telemetry batch, and commands on its command topic
#      are acknowledged: one within the map's bounds written to the machine, one refused.
# Everything it writes goes under .demo/ (including the demo's own test-signing key); the
# service, the device, the broker and the simulated machine stop when the demo ends.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/prereqs.sh"
cd "${FERRO_ROOT}"

DEMO="${FERRO_ROOT}/.demo"
export FERRO_CONFIG_DIR="${DEMO}/config"
step() { printf '\n\033[1;34m### %s\033[0m\n' "$*"; }
run() { printf '\033[2m$ %s\033[0m\n' "$*"; "$@"; }

step "Prerequisites"
# mosquitto, mosquitto-clients, openssl: the telemetry step's broker, subscriber and certificate.
# qemu-system-arm: the device's real-time cores (the intercore pair's rt-echo).
ensure_apt_packages build-essential pkg-config mosquitto mosquitto-clients openssl qemu-system-arm
ensure_rust_targets
# pymodbus in target/pyenv (FERRO_PYTHON): the guardian step's machine, tests/interop/modbus_sim.py.
ensure_python_env

step "Build the ferro CLI and the sample app"
cargo build --locked -q -p ferro-cli -p ferro-service -p ferro-device -p ferro-boot
cargo build --locked -q --manifest-path apps/Cargo.toml -p blink -p hostile-trap -p telemetry -p intercore -p guardian --release --target wasm32-wasip2
(cd apps/rt && cargo build --locked -q --release -p rt-echo)
ferro="${FERRO_ROOT}/target/debug/ferro"
ferro() { run "${ferro}" "$@"; }

rm -rf "${DEMO}"
mkdir -p "${DEMO}/blink/bin" "${DEMO}/hostile-trap/bin"
cp apps/samples/blink/app_manifest.json "${DEMO}/blink/"
cp apps/target/wasm32-wasip2/release/blink.wasm "${DEMO}/blink/bin/blink"
cp apps/test-guests/hostile-trap/app_manifest.json "${DEMO}/hostile-trap/"
cp apps/target/wasm32-wasip2/release/hostile-trap.wasm "${DEMO}/hostile-trap/bin/hostile-trap"

step "Generate the Rust constants of the sample appliance's hardware definition"
ferro hardware-definition generate-header \
    --hardware-definition-file hardware/ferro_vboard/sample_appliance.json \
    --destination "${DEMO}/sample_appliance.rs"
grep -m 3 'pub const' "${DEMO}/sample_appliance.rs"

step "Pack the app ('\$SAMPLE_LED' resolves through the sample appliance definition)"
ferro image-package pack-application \
    --package-directory "${DEMO}/blink" \
    --destination "${DEMO}/blink.imagepackage" \
    --hardware-definitions hardware/ferro_vboard \
    --target-definition-filename sample_appliance.json \
    --version 1.0.0

step "Show it"
ferro image-package show --image-package "${DEMO}/blink.imagepackage"

step "Verify it"
ferro image-package verify --image-package "${DEMO}/blink.imagepackage"

step "Tamper with one byte of the payload: verification must refuse it"
cp "${DEMO}/blink.imagepackage" "${DEMO}/tampered.imagepackage"
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
image_id="$("${ferro}" image add --image "${DEMO}/blink.imagepackage" --output json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
ferro image show --image "${image_id}"

step "The intercore pair: a high-level app and its real-time partner (rt-echo, an ELF for a Cortex-M4 core), each naming the other"
intercore_id="25025d2c-66da-4448-bae1-ac26fcdd3627"
rtecho_id="005180bc-402f-4cb3-a662-72937dbcde47"
mkdir -p "${DEMO}/intercore/bin" "${DEMO}/rt-echo/bin"
cp apps/samples/intercore/app_manifest.json "${DEMO}/intercore/"
cp apps/target/wasm32-wasip2/release/intercore.wasm "${DEMO}/intercore/bin/intercore"
cp apps/rt/target/thumbv7em-none-eabihf/release/rt-echo "${DEMO}/rt-echo/bin/rt-echo"
cp apps/rt/rt-echo/app_manifest.json "${DEMO}/rt-echo/"
for app in intercore rt-echo; do
    ferro image-package pack-application --package-directory "${DEMO}/${app}" \
        --destination "${DEMO}/${app}.imagepackage" --version 1.0.0 \
        --hardware-definitions hardware/ferro_vboard --target-definition-filename sample_appliance.json
done
intercore_image="$("${ferro}" image add --image "${DEMO}/intercore.imagepackage" --output json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
rtecho_image="$("${ferro}" image add --image "${DEMO}/rt-echo.imagepackage" --output json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
ferro image show --image "${rtecho_image}"

step "Deploy them to the Field Test group"
ferro device-group deployment create --device-group "Coffee Maker/Field Test" --images "${image_id}" "${intercore_image}" "${rtecho_image}"

step "Publish the OS: the built ferro-device, packed as an OS image, published by the operator"
mkdir -p "${DEMO}/os/bin" "${DEMO}/os/hardware"
strip -o "${DEMO}/os/bin/ferro-device" "${FERRO_ROOT}/target/debug/ferro-device"
# The board definitions travel in the signed OS: the device's virtual board comes from there.
cp -r hardware/ferro_vboard hardware/ferro_vchip "${DEMO}/os/hardware/"
ferro image-package pack-os --os-directory "${DEMO}/os" --version 1.0.0 --destination "${DEMO}/os.imagepackage"
ferro os-release key add
release_id="$("${ferro}" os-release publish --image "${DEMO}/os.imagepackage" --feed Retail --output json | python3 -c 'import json,sys; print(json.load(sys.stdin)["imageId"])')"
ferro os-release download --image "${release_id}" --destination "${DEMO}/os-release.imagepackage"

step "Provision a virtual device: key in its root of trust, trust anchors, factory OS, registration record"
device_bin="${FERRO_ROOT}/target/debug/ferro-device"
run "${device_bin}" provision --data-dir "${DEMO}/device" --service "https://127.0.0.1:${port}" \
    --platform-root "${DEMO}/service/pki/platform-root.pem" --os-image "${DEMO}/os-release.imagepackage"
device_id="$("${device_bin}" show-identity --data-dir "${DEMO}/device" --output json | python3 -c 'import json,sys; print(json.load(sys.stdin)["deviceId"])')"

step "Manufacturing finishes the device (state only moves forward), registers it; the tenant claims it with its claim code"
run "${device_bin}" manufacturing-state update --data-dir "${DEMO}/device" --state DeviceComplete
# Registering makes the device's claim code (shown once; the service keeps only its hash): the
# manufacturer hands it to the buyer with the device, and only its holder can claim the device.
ferro manufacturing register --file "${DEMO}/device/registration.cose" --claim-codes-file "${DEMO}/claim-codes.csv"
ferro device claim --device-file "${DEMO}/claim-codes.csv"
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
# device-cert.pem holds the certificate, then the tenant CA chain it was issued with (one file,
# replaced atomically): verify the first against the rest.
awk '/BEGIN CERTIFICATE/ { n++ } n > 1' "${DEMO}/device/certs/device-cert.pem" > "${DEMO}/device-chain.pem"
openssl verify -CAfile "${DEMO}/device-chain.pem" "${DEMO}/device/certs/device-cert.pem"

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
app_version='next((i["version"] for i in s["installed"] if i["componentId"] == "d7a8d1a6-6f0b-4b8e-9a59-2f2c1b0c4e01"), None)'

step "The device installed its group's deployment (blink 1.0.0) at boot, and reported it"
wait_status "${app_version} == '1.0.0'"
ferro device show-deployment-status --device "${device_id}"

step "Version 2 of the app: pack, upload, deploy, and press update-now"
ferro image-package pack-application \
    --package-directory "${DEMO}/blink" \
    --destination "${DEMO}/blink-2.imagepackage" \
    --hardware-definitions hardware/ferro_vboard \
    --target-definition-filename sample_appliance.json \
    --version 2.0.0 --security-version 1
image2_id="$("${ferro}" image add --image "${DEMO}/blink-2.imagepackage" --output json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
ferro device-group deployment create --device-group "Coffee Maker/Field Test" --images "${image2_id}" "${intercore_image}" "${rtecho_image}"
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

step "The deployed app runs on the device's virtual board (local device API on a Unix socket)"
export FERRO_DEVICE_DIR="${DEMO}/device"
blink_id="d7a8d1a6-6f0b-4b8e-9a59-2f2c1b0c4e01"
ferro device show-attached
ferro device image list-installed
ferro device app show-status
# Waits until the green LED differs from $1 ("on"/"off").
green() { "${ferro}" device board show --output json | python3 -c 'import json,sys; b=json.load(sys.stdin); print(next("on" if l["active"] else "off" for l in b["leds"] if "SAMPLE_RGBLED_GREEN" in l["names"]))'; }
wait_green_change() {
    for _ in $(seq 1 100); do [ "$(green)" != "$1" ] && return 0; sleep 0.1; done
    echo "DEMO FAILED: the green LED did not change" >&2; exit 1
}
before="$(green)"
ferro device board press-button --button SAMPLE_BUTTON_1
wait_green_change "${before}"
echo "The green LED went from ${before} to $(green)."
ferro device app logs --component-id "${blink_id}" | tail -n 3

step "The intercore pair runs: intercore (wasm) sends to rt-echo on real-time core IO0 every second, and on a press of button 2; messages in both logs"
ferro device app show-status --component-id "${rtecho_id}"
for _ in $(seq 1 100); do
    "${ferro}" device app logs --component-id "${intercore_id}" | grep -q 'answer from' && break; sleep 0.2
done
ferro device board press-button --button SAMPLE_BUTTON_2 --output json >/dev/null
for _ in $(seq 1 100); do
    "${ferro}" device app logs --component-id "${intercore_id}" | grep -q 'answer from.*button pressed' && break; sleep 0.2
done
"${ferro}" device app logs --component-id "${intercore_id}" | grep -q 'answer from.*button pressed' \
    || { echo "DEMO FAILED: intercore saw no answer from rt-echo" >&2; exit 1; }
ferro device app logs --component-id "${intercore_id}" | grep 'answer from' | tail -n 3
ferro device app logs --component-id "${rtecho_id}" | tail -n 3

step "Development mode: the service issues an appDevelopment capability for this device only"
ferro device enable-development

step "Sideload a test-signed blink 3.0.0 in place of the deployed one, and press the button again"
ferro image-package pack-application \
    --package-directory "${DEMO}/blink" \
    --destination "${DEMO}/blink-dev.imagepackage" \
    --hardware-definitions hardware/ferro_vboard \
    --target-definition-filename sample_appliance.json \
    --version 3.0.0
ferro device sideload deploy --image-package "${DEMO}/blink-dev.imagepackage"
ferro device image list-installed
for _ in $(seq 1 100); do
    "${ferro}" device app show-status --component-id "${blink_id}" --output json | grep -q '"Running"' && break
    sleep 0.1
done
before="$(green)"
ferro device board press-button --button SAMPLE_BUTTON_1
wait_green_change "${before}"
echo "The green LED went from ${before} to $(green)."

step "An app that crashes at start is contained: it backs off, blink keeps running, the crash is reported at once"
ferro image-package pack-application --package-directory "${DEMO}/hostile-trap" \
    --destination "${DEMO}/hostile-trap.imagepackage" --version 1.0.0
ferro device sideload deploy --image-package "${DEMO}/hostile-trap.imagepackage"
for _ in $(seq 1 150); do
    "${ferro}" tenant download-error-report --destination "${DEMO}/error-report.csv" 2>/dev/null
    grep -q AppCrash "${DEMO}/error-report.csv" && break
    sleep 0.2
done
ferro device app show-status
grep -h AppCrash "${DEMO}/error-report.csv" | head -n 1

step "Telemetry: the I2C sensor over MQTT with TLS, authenticated by the device certificate"
# The broker: a platform service, so the operator issues its certificate under the platform root
# (which devices trust); it accepts only clients with a certificate of this tenant's CA.
broker="$(mktemp -d)"
chmod 755 "${broker}"
ferro ca-certificate download-chain --destination "${broker}/tenant-ca-chain.pem"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "${broker}/broker.key" 2>/dev/null
openssl req -new -key "${broker}/broker.key" -subj "/CN=127.0.0.1" -out "${broker}/broker.csr"
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' > "${broker}/ext.cnf"
openssl x509 -req -in "${broker}/broker.csr" -days 1 -out "${broker}/broker.pem" \
    -CA "${DEMO}/service/pki/platform-root.pem" -CAkey "${DEMO}/service/keys/platform/root.pem" \
    -CAcreateserial -CAserial "${broker}/serial" -extfile "${broker}/ext.cnf" 2>/dev/null
tls_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
plain_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cat > "${broker}/mosquitto.conf" <<CONF
allow_anonymous true
persistence false
log_dest stderr
listener ${plain_port} 127.0.0.1
listener ${tls_port} 127.0.0.1
require_certificate true
cafile ${broker}/tenant-ca-chain.pem
certfile ${broker}/broker.pem
keyfile ${broker}/broker.key
CONF
chmod 644 "${broker}"/*
mosquitto -c "${broker}/mosquitto.conf" 2>"${DEMO}/mosquitto.log" &
broker_pid=$!
trap 'kill ${broker_pid} 2>/dev/null; stop_device; kill ${service_pid} 2>/dev/null; wait ${service_pid} 2>/dev/null' EXIT
for _ in $(seq 1 50); do (echo > "/dev/tcp/127.0.0.1/${tls_port}") 2>/dev/null && break; sleep 0.1; done
# The app names the tenant whose certificate it uses (DeviceAuthentication) and the broker.
tenant_id="$("${ferro}" tenant show-selected --output json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
mkdir -p "${DEMO}/telemetry/bin"
cp apps/target/wasm32-wasip2/release/telemetry.wasm "${DEMO}/telemetry/bin/telemetry"
python3 - "${tenant_id}" "${tls_port}" > "${DEMO}/telemetry/app_manifest.json" <<'PY'
import json, sys
m = json.load(open("apps/samples/telemetry/app_manifest.json"))
m["Capabilities"]["DeviceAuthentication"] = sys.argv[1]
m["CmdArgs"] = ["127.0.0.1", sys.argv[2], "1000", "ferro/telemetry"]
print(json.dumps(m, indent=2))
PY
ferro image-package pack-application --package-directory "${DEMO}/telemetry" \
    --destination "${DEMO}/telemetry.imagepackage" --version 1.0.0 \
    --hardware-definitions hardware/ferro_vboard --target-definition-filename sample_appliance.json
ferro device board set-temperature --celsius 31.5 --output json >/dev/null
ferro device sideload deploy --image-package "${DEMO}/telemetry.imagepackage"
echo "A message the broker received from the device:"
run mosquitto_sub -h 127.0.0.1 -p "${plain_port}" -t ferro/telemetry -C 1 -W 30

step "Guardian mode: the guardian bridges a machine (a pymodbus simulator on Modbus TCP) to the broker; a command is written back"
# The legacy machine: pymodbus on a loopback port of its choosing, controlled through its standard
# input (tests/interop/modbus_sim.py). On a board it sits behind the private interface.
coproc MACHINE { exec "${FERRO_PYTHON}" tests/interop/modbus_sim.py tcp 0 2>"${DEMO}/machine.log"; }
machine_pid="${MACHINE_PID}"
machine_in="${MACHINE[1]}"
machine_out="${MACHINE[0]}"
trap 'kill ${machine_pid} ${sub_pid:-} 2>/dev/null; kill ${broker_pid} 2>/dev/null; stop_device; kill ${service_pid} 2>/dev/null; wait ${service_pid} 2>/dev/null' EXIT
# Sends one control command to the machine; its answer in ${answer} (the coprocess's pipes are
# not inherited by command substitutions, hence no $(...)).
machine() {
    echo "$*" >&"${machine_in}"
    read -t 10 -r answer <&"${machine_out}" \
        || { echo "DEMO FAILED: the simulated machine did not answer '$*' (${DEMO}/machine.log)" >&2; exit 1; }
    case "${answer}" in error*) echo "DEMO FAILED: the simulated machine: ${answer}" >&2; exit 1 ;; esac
}
read -t 30 -r answer <&"${machine_out}" \
    || { echo "DEMO FAILED: the simulated machine did not start (${DEMO}/machine.log)" >&2; exit 1; }
machine_port="${answer#listening }"
machine set ir 0 215 187
machine set hr 100 200
machine set co 0 1
echo "The machine listens on 127.0.0.1:${machine_port}: supply 21.5 °C, return 18.7 °C, setpoint 20.0 °C, running."
# The guardian's package: its register map (the machine's address, the points, the bounds of
# writes) travels in the signed package; packing checks it against the manifest's grants.
mkdir -p "${DEMO}/guardian/bin"
cp apps/target/wasm32-wasip2/release/guardian.wasm "${DEMO}/guardian/bin/guardian"
python3 - "${tenant_id}" "${tls_port}" "${device_id}" > "${DEMO}/guardian/app_manifest.json" <<'PY'
import json, sys
m = json.load(open("apps/guardian/app_manifest.json"))
m["Capabilities"]["DeviceAuthentication"] = sys.argv[1]
m["CmdArgs"] = ["--broker", "127.0.0.1:" + sys.argv[2], "--device", sys.argv[3]]
print(json.dumps(m, indent=2))
PY
python3 - "${machine_port}" > "${DEMO}/guardian/register_map.json" <<'PY'
import json, sys
m = json.load(open("apps/guardian/register_map.json"))
m["transport"]["port"] = int(sys.argv[1])
for point in m["points"]:
    point["pollMs"] = 250
print(json.dumps(m, indent=2, ensure_ascii=False))
PY
ferro image-package pack-application --package-directory "${DEMO}/guardian" \
    --destination "${DEMO}/guardian.imagepackage" --version 1.0.0 \
    --hardware-definitions hardware/ferro_vboard --target-definition-filename sample_appliance.json
# What a cloud consumer sees: everything under the guardian's topics, one "TOPIC HEX" a line
# (telemetry batches are COSE_Sign1 messages signed by the device key, binary);
# guardian-mqtt.txt shows each as "TOPIC TEXT", a signed batch by the JSON it carries
# (cbor2, from the Python env; it is checked with `ferro telemetry verify` below).
guardian_topics="ferro/guardian/${device_id}"
mosquitto_sub -h 127.0.0.1 -p "${plain_port}" -q 1 -t "${guardian_topics}/#" -F '%t %x' >"${DEMO}/guardian-mqtt.hex" 2>&1 &
sub_pid=$!
mqtt_text() {
    "${FERRO_PYTHON}" - "${DEMO}/guardian-mqtt.hex" > "${DEMO}/guardian-mqtt.txt" <<'PY'
import sys, cbor2
for line in open(sys.argv[1]):
    topic, _, hexed = line.strip().partition(" ")
    try:
        payload = bytes.fromhex(hexed)
        if payload[:1] == b"\xd2":  # COSE_Sign1 (tag 18): its payload is the JSON batch
            payload = cbor2.loads(payload).value[2]
        print(topic, payload.decode())
    except Exception as e:
        print(topic, f"(undecodable: {e})")
PY
}
ferro device sideload deploy --image-package "${DEMO}/guardian.imagepackage"
# Waits (at most $2 tenths of a second) until a line of the MQTT capture matches $1.
wait_mqtt() {
    for _ in $(seq 1 "$2"); do mqtt_text; grep -q -- "$1" "${DEMO}/guardian-mqtt.txt" && return 0; sleep 0.1; done
    echo "DEMO FAILED: no MQTT message matching '$1' within $(($2 / 10)) s; the last received:" >&2
    tail -n 5 "${DEMO}/guardian-mqtt.txt" >&2
    "${ferro}" device app logs --component-id 5b0f3c2e-7a41-4d6e-9c8b-1f2e3d4c5b6a 2>&1 | tail -n 5 >&2 || true
    exit 1
}
wait_mqtt '/telemetry .*"name":"supply_temp","value":21.5' 300
echo "The first batch the broker received on ${guardian_topics}/telemetry:"
grep -m 1 '/telemetry ' "${DEMO}/guardian-mqtt.txt" | cut -d ' ' -f 2-
echo "It is signed by the device key (COSE_Sign1); a cloud consumer checks it against the tenant CA and the image it expects:"
guardian_image="$("${ferro}" image-package show --image-package "${DEMO}/guardian.imagepackage" --output json | python3 -c 'import json,sys; print(json.load(sys.stdin)["imageId"])')"
grep -m 1 '/telemetry ' "${DEMO}/guardian-mqtt.hex" | cut -d ' ' -f 2 \
    | python3 -c 'import sys; sys.stdout.buffer.write(bytes.fromhex(sys.stdin.read().strip()))' > "${DEMO}/guardian-batch.cose"
ferro telemetry verify --tenant-ca "${broker}/tenant-ca-chain.pem" --image-id "${guardian_image}" \
    --allow-development "${DEMO}/guardian-batch.cose"
echo "The machine's supply temperature changes to 23.0 °C; the next batch carries it:"
machine set ir 0 230
wait_mqtt '/telemetry .*"name":"supply_temp","value":23\.0[,}]' 50
grep -m 1 '/telemetry .*"name":"supply_temp","value":23\.0' "${DEMO}/guardian-mqtt.txt" | cut -d ' ' -f 2-
echo "Commands from the cloud: the setpoint to 21.5 °C (within the map's bounds 5..25), then to 40 (outside them):"
run mosquitto_pub -h 127.0.0.1 -p "${plain_port}" -q 1 -t "${guardian_topics}/commands" -m '{"id":"demo-1","point":"setpoint","value":21.5}'
run mosquitto_pub -h 127.0.0.1 -p "${plain_port}" -q 1 -t "${guardian_topics}/commands" -m '{"id":"demo-2","point":"setpoint","value":40}'
wait_mqtt '/acks {"id":"demo-1","outcome":"written"}' 100
wait_mqtt '/acks {"id":"demo-2","outcome":{"refused"' 100
grep '/acks ' "${DEMO}/guardian-mqtt.txt" | cut -d ' ' -f 2-
machine get hr 100 1
[ "${answer}" = "values 215" ] \
    || { echo "DEMO FAILED: the machine's setpoint register holds '${answer#values }', not 215" >&2; exit 1; }
echo "The machine's setpoint register holds 215 (21.5 °C at scale 0.1); the refused write sent nothing."
kill "${sub_pid}" 2>/dev/null || true

printf '\n\033[1;32mDemo complete.\033[0m Files are in %s; the machine, the broker, the device and the service stop now.\n' "${DEMO}"
