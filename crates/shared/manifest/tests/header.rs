//! Header generation: golden file for our sample appliance, and the output compiles as Rust.

mod common;

use common::{fixtures_dir, repo_root};
use ferro_manifest::{HardwareDefinition, MemorySource, generate_rust_module};

const GOLDEN: &str = "tests/golden/sample_appliance.rs";

/// Set `UPDATE_GOLDEN=1` to rewrite the golden file after an intended change; review the diff.
#[test]
fn sample_appliance_matches_golden() {
    let path = repo_root().join("hardware/ferro_vboard/sample_appliance.json");
    let hardware = HardwareDefinition::load(&path, &[]).expect("load sample appliance");
    let generated = generate_rust_module(&hardware, "hardware/ferro_vboard/sample_appliance.json");
    let golden_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(GOLDEN);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden_path, &generated).expect("write golden");
    }
    let golden = std::fs::read_to_string(&golden_path)
        .expect("golden file exists (run with UPDATE_GOLDEN=1)");
    assert_eq!(generated, golden, "generated module differs from {GOLDEN}");
    assert!(generated.contains("pub const SAMPLE_LED: u32 = 8;"));
    assert!(generated.contains("pub const SAMPLE_TEMPERATURE_SENSOR_I2C: &str = \"ISU2\";"));
    assert!(generated.contains("pub const SAMPLE_TEMPERATURE_SENSOR_ADDRESS: i32 = 72;"));
}

/// Compiles generated modules with the toolchain's rustc (`--emit=metadata`, no codegen): the
/// strongest "valid Rust" check without adding a parser dependency.
#[test]
fn generated_modules_compile() {
    let temp = tempfile::tempdir().expect("tempdir");
    let mut sources = [
        repo_root().join("hardware/ferro_vboard/sample_appliance.json"),
        fixtures_dir().join("Hardware/mt3620_rdb/sample_hardware.json"),
        fixtures_dir().join("Hardware/avnet_mt3620_sk/sample_hardware.json"),
    ];
    sources.sort();
    let mut crate_source = String::from("#![deny(warnings)]\n");
    for (index, source) in sources.iter().enumerate() {
        let hardware = HardwareDefinition::load(source, &[]).expect("load");
        let module = generate_rust_module(&hardware, &source.display().to_string());
        let file = temp.path().join(format!("module{index}.rs"));
        std::fs::write(&file, module).expect("write module");
        crate_source.push_str(&format!(
            "pub mod module{index} {{ include!({:?}); }}\n",
            file.display().to_string()
        ));
    }
    // Hostile-but-legal names and comments: keywords, lowercase, CR and `*/` in comments.
    let mut memory = MemorySource::new();
    memory.insert(
        "odd.json",
        r#"{"Metadata": {"Type": "Azure Sphere Hardware Definition", "Version": 1},
            "Description": {"Name": "odd */ name", "MainCoreHeaderFileTopContent": ["/* top */", "line\rbreak"]},
            "Peripherals": [
              {"Name": "fn", "Type": "Gpio", "AppManifestValue": 1, "Comment": "raw\ridentifier */"},
              {"Name": "self", "Type": "int", "MainCoreHeaderValue": "(0x7fffffff)"},
              {"Name": "lower_case", "Type": "Uart", "AppManifestValue": "ISU0", "Comment": "first\nsecond"}
            ]}"#,
    );
    let odd = HardwareDefinition::load_from(&memory, "odd.json").expect("load odd");
    let file = temp.path().join("odd.rs");
    std::fs::write(&file, generate_rust_module(&odd, "odd\n.json")).expect("write odd");
    crate_source.push_str(&format!(
        "pub mod odd {{ include!({:?}); }}\n",
        file.display().to_string()
    ));

    let lib = temp.path().join("lib.rs");
    std::fs::write(&lib, crate_source).expect("write lib");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let output = std::process::Command::new(rustc)
        .args([
            "--edition",
            "2024",
            "--crate-type",
            "lib",
            "--emit=metadata",
            "--crate-name",
            "generated",
            "--out-dir",
        ])
        .arg(temp.path())
        .arg(&lib)
        .output()
        .expect("run rustc");
    assert!(
        output.status.success(),
        "generated code does not compile:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn output_is_deterministic() {
    let path = repo_root().join("hardware/ferro_vboard/sample_appliance.json");
    let first = generate_rust_module(&HardwareDefinition::load(&path, &[]).expect("load"), "x");
    let second = generate_rust_module(&HardwareDefinition::load(&path, &[]).expect("load"), "x");
    assert_eq!(first, second);
}
