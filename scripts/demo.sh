#!/usr/bin/env bash
# Ferrosphere's main demo. Installs what it needs, then:
#   1. builds the `ferro` CLI and the sample app `hello` (a wasm32-wasip2 component),
#   2. packs the app into a signed image package, resolving its peripherals through the
#      sample appliance's hardware definition (a test-signing key is made on first use),
#   3. shows and verifies the package,
#   4. flips one byte of a copy and shows verification refusing it.
# Everything it writes goes under .demo/ (including the demo's own test-signing key).
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
cargo build --locked -q -p ferro-cli
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
printf '\n\033[1;32mDemo complete: the tampered copy was refused.\033[0m Files are in %s\n' "${DEMO}"
