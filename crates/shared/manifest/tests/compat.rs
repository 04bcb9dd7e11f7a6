//! Compatibility with Azure Sphere's real files (`test-vectors/azure-sphere`): every
//! hardware definition loads and generates constants, and every sample manifest resolves
//! against both Azure Sphere boards and against Ferrosphere's own sample appliance.

mod common;

use std::path::{Path, PathBuf};

use common::{fixtures_dir, json_files, repo_root, subdirs};
use ferro_manifest::{AppManifest, HardwareDefinition, ResolvedManifest, generate_rust_module};
use serde_json::Value;

fn all_fixture_definitions() -> Vec<PathBuf> {
    subdirs(&fixtures_dir().join("Hardware"))
        .iter()
        .flat_map(|dir| json_files(dir))
        .collect()
}

fn load(path: &Path) -> HardwareDefinition {
    HardwareDefinition::load(path, &[])
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// `CodeSnippets__*` fixtures are fragments holding only `Capabilities`; complete them by merging
/// into a base manifest (their own keys win) so they can be checked like whole manifests.
fn complete_manifest(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).expect("read fixture");
    let mut document: Value = serde_json::from_slice(&bytes).expect("fixture is JSON");
    if document.get("SchemaVersion").is_some() {
        return bytes;
    }
    let mut base = serde_json::json!({
        "SchemaVersion": 1,
        "Name": "CodeSnippet",
        "ComponentId": "7a1e5c3b-9d2f-4e8a-b6c4-1f0e2d3c4b5a",
        "EntryPoint": "/bin/app",
        "CmdArgs": [],
        "ApplicationType": "Default"
    });
    if let (Some(base), Some(fragment)) = (base.as_object_mut(), document.as_object_mut()) {
        base.append(fragment);
    }
    serde_json::to_vec(&base).expect("serialise")
}

fn boards() -> Vec<(String, HardwareDefinition)> {
    let mut boards: Vec<(String, HardwareDefinition)> = ["mt3620_rdb", "avnet_mt3620_sk"]
        .iter()
        .map(|board| {
            (
                board.to_string(),
                load(
                    &fixtures_dir()
                        .join("Hardware")
                        .join(board)
                        .join("sample_hardware.json"),
                ),
            )
        })
        .collect();
    boards.push((
        "ferro_vboard".into(),
        load(&repo_root().join("hardware/ferro_vboard/sample_appliance.json")),
    ));
    boards
}

#[test]
fn every_fixture_definition_loads_and_generates_constants() {
    let definitions = all_fixture_definitions();
    assert_eq!(definitions.len(), 6, "fixture set changed: {definitions:?}");
    for path in definitions {
        let hardware = load(&path);
        let module = generate_rust_module(&hardware, &path.display().to_string());
        assert_eq!(
            module.matches("pub const ").count(),
            hardware.peripherals().len(),
            "{}",
            path.display()
        );
    }
}

#[test]
fn every_fixture_manifest_resolves_against_every_board() {
    let manifests = json_files(&fixtures_dir().join("manifests"));
    assert!(
        manifests.len() >= 22,
        "only {} fixture manifests",
        manifests.len()
    );
    for (board, hardware) in boards() {
        for path in &manifests {
            let label = format!("{} on {board}", path.display());
            let manifest = AppManifest::parse(&complete_manifest(path))
                .unwrap_or_else(|errors| panic!("{label}:\n{errors}"));
            let resolved = manifest
                .resolve(Some(&hardware))
                .unwrap_or_else(|errors| panic!("{label}:\n{errors}"));
            let bytes = resolved.json_bytes();
            assert!(!bytes.contains(&b'$'), "{label}");
            let reparsed = ResolvedManifest::parse(&bytes)
                .unwrap_or_else(|errors| panic!("{label}:\n{errors}"));
            assert_eq!(reparsed, resolved, "{label}");
        }
    }
}

fn resolved_gpios(fixture: &str, hardware: &HardwareDefinition) -> Vec<u32> {
    let bytes =
        std::fs::read(fixtures_dir().join("manifests").join(fixture)).expect("read fixture");
    let manifest = AppManifest::parse(&bytes).expect("parse fixture");
    manifest
        .resolve(Some(hardware))
        .expect("resolve fixture")
        .capabilities()
        .gpio()
        .to_vec()
}

#[test]
fn resolved_values_match_the_boards() {
    let boards = boards();
    let find = |name: &str| {
        &boards
            .iter()
            .find(|(board, _)| board == name)
            .expect("board")
            .1
    };
    let (rdb, avnet, ferro) = (
        find("mt3620_rdb"),
        find("avnet_mt3620_sk"),
        find("ferro_vboard"),
    );
    // SAMPLE_LED: RDB LED1 red = GPIO8; Avnet user LED red = GPIO8; vboard LED1 red = GPIO8.
    assert_eq!(
        resolved_gpios("Samples__HelloWorld__HelloWorld_HighLevelApp.json", rdb),
        [8]
    );
    assert_eq!(
        resolved_gpios("Samples__HelloWorld__HelloWorld_HighLevelApp.json", avnet),
        [8]
    );
    assert_eq!(
        resolved_gpios("Samples__HelloWorld__HelloWorld_HighLevelApp.json", ferro),
        [8]
    );
    // DHCP: buttons 1, 2 then RGB LED red, blue, green (manifest order kept).
    assert_eq!(
        resolved_gpios("Samples__DHCP.json", rdb),
        [12, 13, 15, 17, 16]
    );
    assert_eq!(
        resolved_gpios("Samples__DHCP.json", avnet),
        [12, 13, 8, 10, 9]
    );
    // ExternalMcuUpdate: NRF52 reset, DFU, button 1.
    assert_eq!(
        resolved_gpios(
            "Samples__ExternalMcuUpdate__AzureSphere_HighLevelApp.json",
            rdb
        ),
        [5, 44, 12]
    );
    assert_eq!(
        resolved_gpios(
            "Samples__ExternalMcuUpdate__AzureSphere_HighLevelApp.json",
            avnet
        ),
        [28, 26, 12]
    );

    let bytes =
        std::fs::read(fixtures_dir().join("manifests/Samples__I2C__I2C_LSM6DS3_HighLevelApp.json"))
            .expect("read");
    let i2c = AppManifest::parse(&bytes)
        .expect("parse")
        .resolve(Some(rdb))
        .expect("resolve");
    assert_eq!(i2c.capabilities().i2c_master(), ["ISU2"]);
    let channel = rdb.peripheral("SAMPLE_LSM6DS3_SPI_CS").expect("int entry");
    assert_eq!(channel.int_value, Some(-1));
}

#[test]
fn real_time_fixture_is_real_time() {
    let bytes = std::fs::read(
        fixtures_dir()
            .join("manifests/Samples__IntercoreComms__IntercoreComms_RTApp_MT3620_BareMetal.json"),
    )
    .expect("read");
    let manifest = AppManifest::parse(&bytes).expect("parse");
    assert!(manifest.is_real_time());
    assert_eq!(manifest.capabilities().application_connections().len(), 1);
}
