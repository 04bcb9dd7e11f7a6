#!/usr/bin/env bash
# Resident memory of a whole ferro-device process (debug build, as the demo builds it) with its
# one cloud app (blink) and then with 9 more idle apps sideloaded (the runtime bench's idle guest,
# one GPIO each). Run ./scripts/demo.sh first: this restarts its service and device from .demo/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
D=.demo
export FERRO_CONFIG_DIR=$D/config FERRO_DEVICE_DIR=$D/device
ferro=target/debug/ferro
url=$(target/debug/ferro-device show-identity --data-dir $D/device --output json | python3 -c 'import json,sys; print(json.load(sys.stdin)["serviceUrl"])')
port=${url##*:}
target/debug/ferro-service run --data-dir $D/service --listen 127.0.0.1:$port 2>$D/memory-service.log &
svc=$!
sleep 2
rm -f $D/device/run/ready.json
target/debug/ferro-boot --data-dir $D/device 2>$D/memory-device.log &
boot=$!
trap 'kill -TERM $(pgrep -f "ferro-device run --data-dir $D/device") 2>/dev/null; kill $svc 2>/dev/null; sleep 1' EXIT
for _ in $(seq 1 300); do [ -s $D/device/run/ready.json ] && break; sleep 0.1; done
pid=$(python3 -c 'import json; print(json.load(open(".demo/device/run/ready.json"))["pid"])')
rss() { grep VmRSS /proc/$pid/status | awk '{print $2}'; }
$ferro device disable-development -o json >/dev/null
sleep 3
echo "apps: $($ferro device app show-status -o json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["apps"]))') rss_kib: $(rss)"
$ferro device enable-development -o json >/dev/null
for i in $(seq 1 9); do
  dir=$D/idle$i; mkdir -p $dir/bin
  cp apps/target/wasm32-wasip2/release/bench-guest.wasm $dir/bin/app; pin=$((i + 55))
  printf '{"SchemaVersion":1,"Name":"idle%s","ComponentId":"00000000-0000-4000-8000-0000000000%02d","EntryPoint":"/bin/app","CmdArgs":["idle","%s"],"Capabilities":{"Gpio":[%s]},"ApplicationType":"Default"}' $i $i  $pin $pin > $dir/app_manifest.json
  $ferro image-package pack-application --package-directory $dir --destination $dir.imagepackage --version 1.0.0 -o json >/dev/null
  $ferro device sideload deploy --image-package $dir.imagepackage -o json >/dev/null || echo "sideload $i failed"
done
sleep 5
echo "apps: $($ferro device app show-status -o json | python3 -c 'import json,sys; s=json.load(sys.stdin)["apps"]; print(len(s), sum(1 for a in s if a["state"]=="Running"))') rss_kib: $(rss)"
