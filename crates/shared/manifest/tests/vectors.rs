//! Runs every file under `test-vectors/manifests/` and `test-vectors/hardware/`: adding a file
//! adds a case, and an invalid vector without expectations fails.

mod common;

use std::path::Path;

use common::{actual_issues, expected_issues, json_files, repo_root, subdirs};
use ferro_manifest::{AppManifest, HardwareDefinition, ResolvedManifest};

fn assert_round_trip(resolved: &ResolvedManifest, label: &str) {
    let bytes = resolved.json_bytes();
    let reparsed = ResolvedManifest::parse(&bytes)
        .unwrap_or_else(|errors| panic!("{label}: canonical JSON rejected:\n{errors}"));
    assert_eq!(
        &reparsed, resolved,
        "{label}: canonical JSON does not round-trip"
    );
    assert_eq!(
        reparsed.json_bytes(),
        bytes,
        "{label}: canonical JSON is not stable"
    );
    assert!(
        !bytes.contains(&b'$'),
        "{label}: canonical JSON still holds a reference"
    );
}

fn check_manifest_dir(dir: &Path, hardware: Option<&HardwareDefinition>) -> usize {
    let mut cases = 0;
    for vector in json_files(&dir.join("valid")) {
        let label = vector.display().to_string();
        let bytes = std::fs::read(&vector).expect("read vector");
        let resolved = AppManifest::parse(&bytes)
            .and_then(|manifest| manifest.resolve(hardware))
            .unwrap_or_else(|errors| panic!("{label} should be valid:\n{errors}"));
        assert_round_trip(&resolved, &label);
        cases += 1;
    }
    for vector in json_files(&dir.join("invalid")) {
        let label = vector.display().to_string();
        let expected = expected_issues(&vector);
        let bytes = std::fs::read(&vector).expect("read vector");
        let result = AppManifest::parse(&bytes).and_then(|manifest| manifest.resolve(hardware));
        let Err(errors) = result else {
            panic!("{label} should be invalid")
        };
        assert_eq!(
            actual_issues(&errors),
            expected,
            "{label}: wrong issues; full report:\n{errors}"
        );
        // The report names every issue, one per line after the heading.
        assert_eq!(
            errors.to_string().lines().count(),
            errors.issues().len() + 1,
            "{label}"
        );
        cases += 1;
    }
    cases
}

#[test]
fn manifest_vectors() {
    let cases = check_manifest_dir(&repo_root().join("test-vectors/manifests"), None);
    assert!(cases >= 40, "only {cases} manifest vectors found");
}

#[test]
fn manifest_vectors_against_sample_appliance() {
    let board = repo_root().join("hardware/ferro_vboard/sample_appliance.json");
    let hardware = HardwareDefinition::load(&board, &[]).unwrap_or_else(|error| panic!("{error}"));
    let cases = check_manifest_dir(
        &repo_root().join("test-vectors/hardware/manifests"),
        Some(&hardware),
    );
    assert!(cases >= 10, "only {cases} board vectors found");
}

#[test]
fn hardware_vectors() {
    let root = repo_root().join("test-vectors/hardware");
    for case in subdirs(&root.join("valid")) {
        HardwareDefinition::load(&case.join("main.json"), &[])
            .unwrap_or_else(|error| panic!("{} should load: {error}", case.display()));
    }
    let invalid = subdirs(&root.join("invalid"));
    assert!(
        invalid.len() >= 8,
        "only {} invalid hardware vectors",
        invalid.len()
    );
    for case in invalid {
        let expected_path = case.join("expected.txt");
        let expected_text = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|_| panic!("{} has no expected.txt", case.display()));
        let expected: Vec<&str> = expected_text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .collect();
        assert!(!expected.is_empty(), "{} is empty", expected_path.display());
        match HardwareDefinition::load(&case.join("main.json"), &[]) {
            Ok(_) => panic!("{} should fail", case.display()),
            Err(error) => assert_eq!(error.codes(), expected, "{}: {error}", case.display()),
        }
    }
}

#[test]
fn hardware_errors_name_what_went_wrong() {
    let root = repo_root().join("test-vectors/hardware/invalid");
    let missing = HardwareDefinition::load(&root.join("missing_import/main.json"), &[])
        .expect_err("missing import");
    let message = missing.to_string();
    assert!(
        message.contains("main.json") && message.contains("does_not_exist.json"),
        "{message}"
    );
    let cycle =
        HardwareDefinition::load(&root.join("import_cycle/main.json"), &[]).expect_err("cycle");
    let message = cycle.to_string();
    assert!(
        message.contains("main.json -> ")
            && message.contains("b.json -> ")
            && message.ends_with("main.json"),
        "{message}"
    );
}

#[test]
fn imports_fall_back_to_search_directories() {
    let chip_dir = repo_root().join("hardware/ferro_vchip");
    let temp = tempfile::tempdir().expect("tempdir");
    let board = temp.path().join("board.json");
    std::fs::write(
        &board,
        br#"{"Metadata": {"Type": "Azure Sphere Hardware Definition", "Version": 1},
            "Imports": [{"Path": "ferro_vchip.json"}],
            "Peripherals": [{"Name": "BOARD_LED", "Type": "Gpio", "Mapping": "FERRO_VCHIP_GPIO8"}]}"#,
    )
    .expect("write board");
    let Err(error) = HardwareDefinition::load(&board, &[]) else {
        panic!("import found without search dir")
    };
    assert_eq!(error.codes(), ["missing-import"]);
    let hardware = HardwareDefinition::load(&board, &[temp.path().join("nowhere"), chip_dir])
        .expect("load with search dir");
    assert_eq!(
        hardware
            .peripheral("BOARD_LED")
            .and_then(|led| led.app_manifest_value.clone()),
        Some(ferro_manifest::AppManifestValue::Number(8))
    );
}

#[test]
fn the_virtual_chip_names_its_real_time_cores() {
    let board = repo_root().join("hardware/ferro_vboard/sample_appliance.json");
    let hardware = HardwareDefinition::load(&board, &[]).expect("load the sample appliance");
    assert_eq!(hardware.real_time_cores(), ["IO0", "IO1"]);
    // Each core's watchdog period for its apps (Ferrosphere's WatchdogPeriodMs extension).
    assert_eq!(hardware.core_watchdog_period_ms("IO0"), Some(5000));
    assert_eq!(hardware.core_watchdog_period_ms("IO1"), Some(5000));
    assert_eq!(hardware.core_watchdog_period_ms("IO2"), None);
    let out_of_range = HardwareDefinition::load(
        &repo_root().join("test-vectors/hardware/invalid/watchdog_period_out_of_range/main.json"),
        &[],
    )
    .expect_err("60001 ms");
    let message = out_of_range.to_string();
    assert!(
        message.contains("WatchdogPeriodMs") && message.contains("100..=60000"),
        "{message}"
    );
    // A core is the device's to assign: a manifest cannot name one as a peripheral.
    let manifest = br#"{"SchemaVersion": 1, "Name": "rt", "ComponentId": "005180bc-402f-4cb3-a662-72937dbcde47",
        "EntryPoint": "/bin/app", "ApplicationType": "RealTimeCapable",
        "Capabilities": {"Uart": ["$FERRO_VCHIP_IO0"]}}"#;
    let parsed = ferro_manifest::AppManifest::parse(manifest).expect("parses");
    let error = parsed
        .resolve(Some(&hardware))
        .expect_err("a core is not a UART");
    assert!(error.to_string().contains("FERRO_VCHIP_IO0"), "{error}");
}

#[test]
fn private_networks_are_read_from_the_board_and_their_errors_say_what_is_wrong() {
    let root = repo_root().join("test-vectors/hardware");
    let board = HardwareDefinition::load(&root.join("valid/private_network/main.json"), &[])
        .unwrap_or_else(|error| panic!("{error}"));
    let networks = board.private_networks();
    let described: Vec<String> = networks
        .iter()
        .map(|(id, link)| format!("{id} {} {}", link.interface, link.subnet))
        .collect();
    // The alias names the same network; it is no second one.
    assert_eq!(
        described,
        [
            "PRIVATE-NETWORK-0 eth1 192.168.50.0/24",
            "PRIVATE-NETWORK-1 enp3s0.20 fd00:50::/64"
        ]
    );
    let alias = board.peripheral("BOARD_PLC_NET").expect("alias");
    assert_eq!(
        alias
            .private_network
            .as_ref()
            .map(|link| link.interface.as_str()),
        Some("eth1")
    );
    for (case, expected) in [
        (
            "private_network_host_bits",
            "192.168.50.1/24 has host bits set; the subnet is 192.168.50.0/24",
        ),
        ("private_network_bad_subnet", "is not a subnet such as"),
        ("private_network_everything", "is every address"),
        (
            "private_network_bad_interface",
            "is not a Linux interface name",
        ),
        (
            "private_network_long_interface",
            "is not a Linux interface name",
        ),
        (
            "private_network_half",
            "needs both Interface and Subnet; Interface is missing",
        ),
        (
            "private_network_field_on_gpio",
            "Interface belongs to PrivateNetwork peripherals only, not Gpio",
        ),
        ("private_network_without_link", "needs Interface and Subnet"),
        ("private_network_alias_with_link", "Interface"),
    ] {
        let error =
            HardwareDefinition::load(&root.join("invalid").join(case).join("main.json"), &[])
                .expect_err(case);
        assert!(error.to_string().contains(expected), "{case}: {error}");
    }
}

/// The intercore sample's checked-in manifests (the demo packs them): each names the other, and
/// the high-level half is told its partner's component ID.
#[test]
fn the_intercore_pair_names_each_other() {
    let board = HardwareDefinition::load(
        &repo_root().join("hardware/ferro_vboard/sample_appliance.json"),
        &[],
    )
    .expect("load the sample appliance");
    let read = |path: &str| {
        let bytes = std::fs::read(repo_root().join(path)).expect("read manifest");
        ferro_manifest::AppManifest::parse(&bytes)
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .resolve(Some(&board))
            .unwrap_or_else(|e| panic!("{path}: {e}"))
    };
    let high = read("apps/samples/intercore/app_manifest.json");
    let rt = read("apps/rt/rt-echo/app_manifest.json");
    assert!(rt.is_real_time() && !high.is_real_time());
    assert_eq!(rt.entry_point(), "/bin/rt-echo");
    assert_eq!(
        rt.capabilities().application_connections(),
        [high.component_id()]
    );
    assert_eq!(
        high.capabilities().application_connections(),
        [rt.component_id()]
    );
    assert_eq!(high.cmd_args(), [rt.component_id().to_string()]);
}
