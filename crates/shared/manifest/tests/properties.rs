//! Property tests: canonical JSON round-trips, and no input panics the parsers.

use ferro_manifest::{AppManifest, HardwareDefinition, MemorySource, ResolvedManifest};
use proptest::prelude::*;
use serde_json::{Value, json};

fn guid() -> impl Strategy<Value = String> {
    any::<u128>().prop_map(|bits| uuid::Uuid::from_u128(bits).to_string())
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,10}[a-z0-9](\\.[a-z][a-z0-9]{0,8}){1,3}",
        "\\*\\.[a-z][a-z0-9]{0,8}\\.[a-z]{2,6}",
        any::<[u8; 4]>().prop_map(|octets| std::net::Ipv4Addr::from(octets).to_string()),
        any::<u128>().prop_map(|bits| std::net::Ipv6Addr::from(bits).to_string()),
    ]
}

/// Valid, reference-free manifests with a random mix of capabilities (high-level apps; the
/// peripheral identifiers are distinct per capability so they never conflict).
fn manifest_json() -> impl Strategy<Value = Value> {
    let flags = proptest::sample::subsequence(
        vec![
            "SystemEventNotifications",
            "SoftwareUpdateDeferral",
            "NetworkConfig",
            "WifiConfig",
            "CertStore",
            "SntpService",
            "HeapMemStats",
        ],
        0..=7,
    );
    (
        "[A-Za-z][A-Za-z0-9_]{0,20}",
        guid(),
        proptest::collection::vec("[ -~&&[^\"]]{0,12}", 0..4),
        proptest::collection::btree_set(host(), 0..4),
        proptest::collection::btree_set(1u16..=65535, 0..4),
        proptest::collection::btree_set(any::<u32>(), 0..5),
        proptest::option::of(1u32..=64),
        flags,
        proptest::option::of(guid()),
        proptest::sample::subsequence(vec!["ForcePowerDown", "ForceReboot", "SetPowerProfile"], 1..=3),
        any::<bool>(),
    )
        .prop_map(|(name, id, args, hosts, ports, gpios, storage, flags, tenant, power, with_power)| {
            let mut capabilities = json!({
                "AllowedConnections": hosts.into_iter().collect::<Vec<_>>(),
                "AllowedTcpServerPorts": ports.iter().copied().collect::<Vec<_>>(),
                "Gpio": gpios.into_iter().collect::<Vec<_>>(),
                "Uart": ["ISU0"], "SpiMaster": ["ISU1"], "Pwm": ["PWM-CONTROLLER-0"],
            });
            if let Some(object) = capabilities.as_object_mut() {
                for flag in flags {
                    object.insert(flag.to_owned(), Value::Bool(true));
                }
                if let Some(kib) = storage {
                    object.insert("MutableStorage".into(), json!({"SizeKB": kib}));
                }
                if let Some(tenant) = tenant {
                    object.insert("DeviceAuthentication".into(), Value::from(tenant));
                }
                if with_power {
                    object.insert("PowerControls".into(), json!(power));
                }
            }
            json!({"SchemaVersion": 1, "Name": name, "ComponentId": id, "EntryPoint": "/bin/app",
                   "CmdArgs": args, "Capabilities": capabilities, "ApplicationType": "Default", "MallocVersion": 2})
        })
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop_oneof![
            ".*",
            "\\$[A-Z_]{1,8}",
            Just("ISU0".to_owned()),
            Just("/bin/app".to_owned())
        ]
        .prop_map(Value::from),
    ];
    let keys = prop_oneof![
        Just("SchemaVersion"),
        Just("Name"),
        Just("ComponentId"),
        Just("EntryPoint"),
        Just("Capabilities"),
        Just("ApplicationType"),
        Just("Gpio"),
        Just("Uart"),
        Just("MutableStorage"),
        Just("SizeKB"),
        Just("AllowedTcpServerPorts"),
        Just("PowerControls"),
        Just("AllowedConnections"),
        Just("x"),
    ];
    leaf.prop_recursive(5, 64, 8, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::vec((keys.clone(), inner), 0..8).prop_map(|entries| {
                Value::Object(
                    entries
                        .into_iter()
                        .map(|(key, value)| (key.to_owned(), value))
                        .collect(),
                )
            }),
        ]
    })
}

proptest! {
    #[test]
    fn canonical_json_round_trips(document in manifest_json()) {
        let bytes = serde_json::to_vec(&document).expect("serialise");
        let resolved = AppManifest::parse(&bytes)
            .and_then(|manifest| manifest.resolve(None))
            .map_err(|errors| TestCaseError::fail(format!("{errors}\n{document}")))?;
        let canonical = resolved.json_bytes();
        let reparsed = ResolvedManifest::parse(&canonical).map_err(|errors| TestCaseError::fail(errors.to_string()))?;
        prop_assert_eq!(&reparsed, &resolved);
        prop_assert_eq!(reparsed.json_bytes(), canonical);
    }

    #[test]
    fn arbitrary_json_never_panics(document in arbitrary_json()) {
        let bytes = serde_json::to_vec(&document).expect("serialise");
        if let Ok(resolved) = AppManifest::parse(&bytes).and_then(|manifest| manifest.resolve(None)) {
            prop_assert!(ResolvedManifest::parse(&resolved.json_bytes()).is_ok());
        }
    }

    #[test]
    fn arbitrary_capabilities_never_panic(capabilities in arbitrary_json()) {
        let document = json!({"SchemaVersion": 1, "Name": "P", "ComponentId": "1689d8b2-c835-2e27-27ad-e894d6d15fa9",
            "EntryPoint": "/bin/app", "ApplicationType": "Default", "Capabilities": capabilities});
        let _ = AppManifest::parse(&serde_json::to_vec(&document).expect("serialise")).map(|manifest| manifest.resolve(None));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = AppManifest::parse(&bytes);
        let mut memory = MemorySource::new();
        memory.insert("top.json", bytes);
        let _ = HardwareDefinition::load_from(&memory, "top.json");
    }
}

#[test]
fn oversized_input_is_rejected_before_parsing() {
    let mut bytes = vec![b' '; ferro_manifest::MAX_MANIFEST_BYTES + 1];
    bytes[0] = b'{';
    let errors = AppManifest::parse(&bytes).expect_err("too large");
    assert_eq!(errors.issues()[0].code, ferro_manifest::IssueCode::TooLarge);
}
