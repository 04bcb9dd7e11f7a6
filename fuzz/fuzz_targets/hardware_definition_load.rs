//! Loads arbitrary bytes as a hardware definition through an in-memory source, so imports,
//! cycles and mappings are exercised without the filesystem. The input may import itself
//! (`top.json`, `dir/../top.json`), a valid chip (`chip.json`) or a missing file.
#![no_main]

use ferro_manifest::{AppManifest, HardwareDefinition, MemorySource, generate_rust_module};
use libfuzzer_sys::fuzz_target;

const CHIP: &str = r#"{"Metadata": {"Type": "Azure Sphere Hardware Definition", "Version": 1},
  "Peripherals": [
    {"Name": "CHIP_GPIO0", "Type": "Gpio", "AppManifestValue": 0, "PinBlock": "PWM-CONTROLLER-0"},
    {"Name": "CHIP_PWM0", "Type": "Pwm", "AppManifestValue": "PWM-CONTROLLER-0", "PinBlock": "PWM-CONTROLLER-0"},
    {"Name": "CHIP_ISU0_UART", "Type": "Uart", "AppManifestValue": "ISU0"},
    {"Name": "CHIP_CHANNEL0", "Type": "int", "MainCoreHeaderValue": "(0)"}]}"#;

const MANIFEST: &[u8] =
    br#"{"SchemaVersion": 1, "Name": "Fuzz", "ComponentId": "1689d8b2-c835-2e27-27ad-e894d6d15fa9",
  "EntryPoint": "/bin/app", "ApplicationType": "Default",
  "Capabilities": {"Gpio": ["$LED", 0], "Uart": ["$UART"], "Pwm": ["$PWM"]}}"#;

fuzz_target!(|data: &[u8]| {
    let mut source = MemorySource::new();
    source.insert("top.json", data);
    source.insert("chip.json", CHIP);
    let Ok(hardware) = HardwareDefinition::load_from(&source, "top.json") else {
        return;
    };
    let _ = generate_rust_module(&hardware, "top.json");
    if let Ok(manifest) = AppManifest::parse(MANIFEST) {
        let _ = manifest.resolve(Some(&hardware));
    }
});
