//! The private side stays private (docs/guardian.md, "The private side"), proven with real
//! network isolation: three network namespaces joined by veth pairs,
//!
//! ```text
//!   legacy (the machine)          device (the runtime, forwarding off)         net (the cloud)
//!   198.18.7.2 ---- veth ---- 198.18.7.1 [private]  [network] 192.0.2.1 ---- veth ---- 192.0.2.2
//! ```
//!
//! The private subnet is 198.18.7.0/24 (not an RFC 1918 range, so the runtime's private network
//! rule is the only thing between an app and the machine; the older rule for internal
//! addresses does not cover it). The legacy machine serves TCP on a set of ports (502, Modbus
//! TCP's, among them) and answers anyone who reaches it; its default route points at the
//! device, and the net side routes the private subnet through the device, so a leak would
//! show. The test shows that the granted app reaches the machine through the private interface
//! and the cloud through the network side; another app on the same device is refused (listed
//! address refused at install, a name that resolves there, other spellings, UDP, a second claim
//! of the network, a guest importing raw sockets); from the net side no address and no port of
//! the legacy subnet or of the device answers; the legacy machine's TCP and UDP counters do
//! not move while all that happens; the device's own connection to the cloud leaves through the
//! network side; and with forwarding switched on the granted app is refused, naming the
//! settings.
//!
//! Every part runs in this test binary: the parent (root) builds the namespaces and starts
//! `netns_role` of this binary in each, through `ip netns exec`. Everything it makes is removed
//! by a drop guard, also on failure; names carry a per-run tag, so parallel runs and a crashed
//! earlier run cannot collide. Without root the test is skipped with a reason, except under CI
//! (`CI` set), where it must run.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use ferro_manifest::{AppManifest, HardwareDefinition, ResolvedManifest};
use ferro_peripherals::{Peripherals, PinBlocks, VirtualBoard};
use ferro_runtime::{InstallOptions, Runtime};

/// The environment variable naming the part a child plays.
const ROLE: &str = "FERRO_NETNS_ROLE";
/// Lines of the children that the parent reads start with this.
const MARK: &str = "@@ ";

const LEGACY: &str = "198.18.7.2";
const DEVICE_PRIVATE: &str = "198.18.7.1";
const DEVICE_NETWORK: &str = "192.0.2.1";
const CLOUD: &str = "192.0.2.2";
const CLOUD_PORT: u16 = 8883;
/// The legacy machine's open ports (Modbus TCP's 502 among them); the scan tries them all.
const LEGACY_PORTS: [u16; 8] = [22, 80, 443, 502, 1883, 5020, 8080, 8883];
/// How long the parent waits for a step of a child (installs compile wasm in a debug build:
/// slow on a loaded 2-core machine).
const WAIT: Duration = Duration::from_secs(120);

// ------------------------------------------------------------------------------------------
// Install-time rules (no namespaces, no root): what an app may list and claim.

/// A board with the private network 198.18.7.0/24 on `ferro-test0`, and forwarding settings
/// (`sys_net`) of the given value.
fn install_device(forwarding: &str) -> (Runtime, HardwareDefinition, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let board_path = dir.path().join("board.json");
    let json = serde_json::json!({
        "Metadata": {"Type": "Azure Sphere Hardware Definition", "Version": 1},
        "Description": {"Name": "install test board"},
        "Peripherals": [
            {"Name": "BOARD_PRIVATE_NET", "Type": "PrivateNetwork",
             "AppManifestValue": "PRIVATE-NETWORK-0", "Interface": "ferro-test0",
             "Subnet": "198.18.7.0/24"},
            {"Name": "OTHER_NET", "Type": "PrivateNetwork",
             "AppManifestValue": "PRIVATE-NETWORK-9", "Interface": "ferro-test9",
             "Subnet": "198.18.9.0/24"}
        ]
    });
    std::fs::write(&board_path, serde_json::to_vec(&json).expect("json")).expect("board");
    let board = HardwareDefinition::load(&board_path, &[]).expect("board");
    for family in ["ipv4", "ipv6"] {
        let conf = dir.path().join("net").join(family).join("conf");
        for interface in ["all", "default", "lo"] {
            std::fs::create_dir_all(conf.join(interface)).expect("mkdir");
            std::fs::write(conf.join(interface).join("forwarding"), "0\n").expect("write");
        }
    }
    std::fs::write(
        dir.path().join("net/ipv6/conf/lo/forwarding"),
        format!("{forwarding}\n"),
    )
    .expect("write");
    let mut config = common::test_config(&dir.path().join("storage"));
    config.private_networks = board.private_networks();
    config.sys_net_dir = dir.path().join("net");
    let runtime = Runtime::new(
        config,
        Peripherals::all_from(Arc::new(VirtualBoard::empty("test"))),
    )
    .expect("runtime");
    (runtime, board, dir)
}

fn install_probe(
    runtime: &Runtime,
    board: &HardwareDefinition,
    id: u32,
    capabilities: serde_json::Value,
) -> Result<ferro_runtime::AppId, String> {
    let manifest = probe_manifest(board, "probe", id, capabilities, &[])?;
    let options = InstallOptions {
        manual_start: true,
        ..InstallOptions::default()
    };
    runtime
        .install(&common::wasm("net-probe"), &manifest, options)
        .map_err(|error| error.to_string())
}

#[test]
fn only_the_granted_app_may_list_a_private_address_and_only_one_app_holds_the_network() {
    let (runtime, board, _dir) = install_device("0");
    for (listed, id) in [
        ("198.18.7.2", 1),
        ("::ffff:198.18.7.2", 2),
        ("198.18.7.255", 3),
    ] {
        let refused = install_probe(
            &runtime,
            &board,
            id,
            serde_json::json!({"AllowedConnections": [listed]}),
        )
        .expect_err("listed without the grant");
        assert!(
            refused.contains(
                "is on the private network PRIVATE-NETWORK-0 (ferro-test0, \
                              198.18.7.0/24); only an app granted PrivateNetwork \
                              PRIVATE-NETWORK-0 may list it"
            ),
            "{refused}"
        );
    }
    // Granted another network: still not this one's addresses.
    let refused = install_probe(
        &runtime,
        &board,
        4,
        serde_json::json!({"AllowedConnections": ["198.18.7.2"], "PrivateNetwork": ["$OTHER_NET"]}),
    )
    .expect_err("granted the other network");
    assert!(refused.contains("PRIVATE-NETWORK-0"), "{refused}");
    // A name is not checked at install (it is at connect, by the address it resolves to).
    install_probe(
        &runtime,
        &board,
        5,
        serde_json::json!({"AllowedConnections": ["plc.example.com"]}),
    )
    .expect("a name installs");
    install_probe(
        &runtime,
        &board,
        6,
        serde_json::json!({"AllowedConnections": ["198.18.7.2"], "PrivateNetwork": ["$BOARD_PRIVATE_NET"]}),
    )
    .expect("the granted app installs");
    let refused = install_probe(
        &runtime,
        &board,
        7,
        serde_json::json!({"AllowedConnections": ["192.0.2.2"], "PrivateNetwork": ["$BOARD_PRIVATE_NET"]}),
    )
    .expect_err("a second owner");
    assert!(
        refused.contains("PRIVATE-NETWORK-0 (PrivateNetwork)"),
        "{refused}"
    );
}

#[test]
fn a_network_the_board_lacks_and_a_forwarding_device_are_refused() {
    let (runtime, _, _dir) = install_device("0");
    // Resolved against a board that has PRIVATE-NETWORK-9, installed on one whose runtime
    // does not know it (the board changed under a signed image).
    let other_board = HardwareDefinition::load_from(
        &{
            let mut source = ferro_manifest::MemorySource::new();
            source.insert(
                "other.json",
                serde_json::to_vec(&serde_json::json!({
                    "Metadata": {"Type": "Azure Sphere Hardware Definition", "Version": 1},
                    "Description": {"Name": "other"},
                    "Peripherals": [{"Name": "NET", "Type": "PrivateNetwork",
                        "AppManifestValue": "PRIVATE-NETWORK-5", "Interface": "eth5",
                        "Subnet": "10.5.0.0/16"}]
                }))
                .expect("json"),
            );
            source
        },
        "other.json",
    )
    .expect("other board");
    let refused = install_probe(
        &runtime,
        &other_board,
        1,
        serde_json::json!({"PrivateNetwork": ["$NET"]}),
    )
    .expect_err("unknown network");
    assert!(
        refused.contains(
            "grants PrivateNetwork \"PRIVATE-NETWORK-5\", which this board does not \
                          have (its private networks: PRIVATE-NETWORK-0, PRIVATE-NETWORK-9)"
        ),
        "{refused}"
    );

    let (runtime, board, _dir) = install_device("1");
    let refused = install_probe(
        &runtime,
        &board,
        2,
        serde_json::json!({"AllowedConnections": ["198.18.7.2"], "PrivateNetwork": ["$BOARD_PRIVATE_NET"]}),
    )
    .expect_err("forwarding on");
    assert!(
        refused.contains("net.ipv6.conf.lo.forwarding set to 1")
            && refused.contains("set net.ipv4.ip_forward=0"),
        "{refused}"
    );
    // Apps without the grant are not affected by forwarding.
    install_probe(
        &runtime,
        &board,
        3,
        serde_json::json!({"AllowedConnections": ["192.0.2.2"]}),
    )
    .expect("an app without the grant");
}

#[test]
fn discovery_never_asks_a_resolver_on_a_private_network() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, board, _board_dir) = install_device("0");
    let device = common::device_with(|config| {
        config.private_networks = board.private_networks();
        config.dns_resolver = Some("198.18.7.53:53".parse().expect("address"));
        config.storage_dir = dir.path().to_path_buf();
    });
    let app = device.install("dns-service-discovery");
    let line = device.wait_for_log(app, "discover _sample-service._tcp.local:", WAIT);
    assert!(
        line.contains(
            "the DNS resolver 198.18.7.53:53 is on the private network PRIVATE-NETWORK-0 \
             (ferro-test0, 198.18.7.0/24); DNS never goes to a private network"
        ),
        "{line}"
    );
}

// ------------------------------------------------------------------------------------------
// The parent.

#[test]
fn the_private_side_stays_private() {
    if std::env::var_os(ROLE).is_some() {
        return;
    }
    if !is_root() {
        assert!(
            std::env::var_os("CI").is_none(),
            "the private network isolation test needs root (ip netns) and CI runs as root"
        );
        eprintln!("skipped: the private network isolation test needs root (ip netns, veth pairs)");
        return;
    }
    let net = Namespaces::create();
    net.setup();

    let legacy = net.spawn(&net.legacy, "serve", &[("FERRO_NETNS_NAME", "legacy")]);
    legacy.expect("ready");
    let cloud = net.spawn(&net.cloud, "serve", &[("FERRO_NETNS_NAME", "cloud")]);
    cloud.expect("ready");

    // The route the device's own traffic takes: the cloud through the network side only.
    let route = net.ip(&["-n", &net.device, "route", "get", CLOUD]);
    assert!(
        route.contains(&format!("dev {}", net.device_network_if)),
        "{route}"
    );
    let route = net.ip(&["-n", &net.device, "route", "get", LEGACY]);
    assert!(
        route.contains(&format!("dev {}", net.device_private_if)),
        "{route}"
    );

    let board = net.board();
    let mut device = net.spawn(
        &net.device,
        "device",
        &[("FERRO_NETNS_BOARD", board.to_str().expect("utf-8 path"))],
    );

    // 1. The granted app reaches the machine (through the private interface: the machine sees
    //    the device's private address) and the cloud (through the network side).
    let granted = device.until("granted-done");
    let probe = |lines: &[String], target: &str| -> String {
        let prefix = format!("probe {target}: ");
        lines
            .iter()
            .find_map(|line| line.split_once(&prefix).map(|(_, rest)| rest.to_owned()))
            .unwrap_or_else(|| panic!("no probe of {target} in {lines:#?}"))
    };
    assert_eq!(
        probe(&granted, &format!("tcp:{LEGACY}:502")),
        format!("connected, answer \"legacy 502 from {DEVICE_PRIVATE}\"")
    );
    assert_eq!(
        probe(&granted, &format!("tcp:{LEGACY}:22")),
        format!("connected, answer \"legacy 22 from {DEVICE_PRIVATE}\"")
    );
    assert_eq!(
        probe(&granted, &format!("tcp:{CLOUD}:{CLOUD_PORT}")),
        format!("connected, answer \"cloud {CLOUD_PORT} from {DEVICE_NETWORK}\"")
    );
    let udp = probe(&granted, &format!("udp:{LEGACY}:502"));
    assert!(udp.contains("carries TCP only"), "{udp}");
    let legacy_seen = legacy.lines();
    assert_eq!(
        legacy_seen,
        [
            format!("accept 502 {DEVICE_PRIVATE}"),
            format!("accept 22 {DEVICE_PRIVATE}")
        ],
        "the machine is reached by the granted app only"
    );
    let counters_before = net.legacy_counters();

    // 2. Everything else, while the legacy machine's counters are watched.
    device.send("go");
    let others = device.until("ready");
    let install = |name: &str| -> String {
        others
            .iter()
            .find_map(|line| {
                line.strip_prefix(&format!("install {name}: "))
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| panic!("no install of {name} in {others:#?}"))
    };
    assert_eq!(install("other"), "ok");
    let lister = install("lister");
    assert!(
        lister.contains(&format!("lists {LEGACY}, which is on the private network PRIVATE-NETWORK-0 ({}, 198.18.7.0/24); only an app granted PrivateNetwork PRIVATE-NETWORK-0 may list it", net.device_private_if)),
        "{lister}"
    );
    let mapped = install("mapped-lister");
    assert!(
        mapped.contains("is on the private network PRIVATE-NETWORK-0"),
        "{mapped}"
    );
    let squatter = install("squatter");
    assert!(
        squatter.contains("PRIVATE-NETWORK-0 (PrivateNetwork)"),
        "{squatter}"
    );
    let raw = install("raw-sockets");
    assert!(raw.contains("wasi:sockets"), "{raw}");

    let other: Vec<String> = others
        .iter()
        .filter_map(|line| line.strip_prefix("other ").map(str::to_owned))
        .collect();
    for target in [
        "tcp:legacy.example.com:502".to_owned(),
        format!("tcp:{LEGACY}:502"),
        format!("tcp:::ffff:{LEGACY}:502"),
        "tcp:3323856642:502".to_owned(),
        "udp:legacy.example.com:502".to_owned(),
    ] {
        let outcome = probe(&other, &target);
        assert!(
            outcome.starts_with("not permitted: "),
            "{target}: {outcome}"
        );
    }
    // The name resolves (device's /etc/hosts) to the machine: refused by destination.
    let by_name = probe(&other, "tcp:legacy.example.com:502");
    assert!(
        by_name.contains(&format!(
            "{LEGACY} is on the private network PRIVATE-NETWORK-0"
        )),
        "{by_name}"
    );
    assert_eq!(
        probe(&other, &format!("tcp:{CLOUD}:{CLOUD_PORT}")),
        format!("connected, answer \"cloud {CLOUD_PORT} from {DEVICE_NETWORK}\"")
    );
    let service = others
        .iter()
        .find_map(|line| line.strip_prefix("device-service "))
        .expect("the device's own connection");
    assert_eq!(service, format!("cloud {CLOUD_PORT} from {DEVICE_NETWORK}"));

    // 3. From the net side: no address, no port of the legacy subnet or the device answers.
    let mut targets = Vec::new();
    for host in [
        "198.18.7.0",
        DEVICE_PRIVATE,
        LEGACY,
        "198.18.7.3",
        "198.18.7.255",
        DEVICE_NETWORK,
    ] {
        for port in LEGACY_PORTS {
            targets.push(format!("{host}:{port}"));
        }
    }
    let scanner = net.spawn(
        &net.cloud,
        "scan",
        &[("FERRO_NETNS_TARGETS", &targets.join(","))],
    );
    let scan = scanner.until("scan-done");
    assert_eq!(scan.len(), targets.len(), "{scan:#?}");
    for line in &scan {
        assert!(
            !line.contains("connected"),
            "answered from the net side: {line}"
        );
    }
    assert_eq!(
        net.legacy_counters(),
        counters_before,
        "the legacy machine received TCP or UDP after the granted app's connections"
    );
    assert_eq!(
        legacy.lines(),
        Vec::<String>::new(),
        "the machine was reached again"
    );

    // 4. Forwarding on: the granted app is refused, naming what to set.
    device.send("go");
    let end = device.until("end");
    let refused = end
        .iter()
        .find_map(|line| line.strip_prefix("forwarding-install "))
        .expect("the install with forwarding on");
    assert!(
        refused.contains("net.ipv4.conf.all.forwarding")
            && refused.contains("set net.ipv4.ip_forward=0"),
        "{refused}"
    );
    drop(device);
    drop(net);
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|id| id == "0"))
        })
        .unwrap_or(false)
}

/// The run's namespaces, links and files; removed on drop.
struct Namespaces {
    tag: String,
    legacy: String,
    device: String,
    cloud: String,
    legacy_if: String,
    device_private_if: String,
    device_network_if: String,
    cloud_if: String,
    dir: tempfile::TempDir,
}

impl Namespaces {
    fn create() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|since| since.subsec_nanos())
            .unwrap_or(0);
        let tag = format!("{:05x}", (std::process::id() ^ nanos) & 0xfffff);
        Self {
            legacy: format!("ferro-{tag}-legacy"),
            device: format!("ferro-{tag}-device"),
            cloud: format!("ferro-{tag}-net"),
            legacy_if: format!("fl{tag}"),
            device_private_if: format!("fp{tag}"),
            device_network_if: format!("fd{tag}"),
            cloud_if: format!("fn{tag}"),
            dir: tempfile::tempdir().expect("tempdir"),
            tag,
        }
    }

    /// Runs `ip ARGS`, panicking with its output when it fails; returns its stdout.
    fn ip(&self, args: &[&str]) -> String {
        run("ip", args)
    }

    fn setup(&self) {
        for ns in [&self.legacy, &self.device, &self.cloud] {
            self.ip(&["netns", "add", ns]);
            self.ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        for (a, a_ns, b, b_ns) in [
            (
                &self.legacy_if,
                &self.legacy,
                &self.device_private_if,
                &self.device,
            ),
            (
                &self.cloud_if,
                &self.cloud,
                &self.device_network_if,
                &self.device,
            ),
        ] {
            self.ip(&["link", "add", a, "type", "veth", "peer", "name", b]);
            self.ip(&["link", "set", a, "netns", a_ns]);
            self.ip(&["link", "set", b, "netns", b_ns]);
        }
        for (ns, interface, address) in [
            (&self.legacy, &self.legacy_if, "198.18.7.2/24"),
            (&self.device, &self.device_private_if, "198.18.7.1/24"),
            (&self.device, &self.device_network_if, "192.0.2.1/24"),
            (&self.cloud, &self.cloud_if, "192.0.2.2/24"),
        ] {
            self.ip(&["-n", ns, "addr", "add", address, "dev", interface]);
            self.ip(&["-n", ns, "link", "set", interface, "up"]);
        }
        // The machine answers anyone, through the device; the net side tries to route the
        // private subnet through the device too. Only the device's forwarding (off) is between.
        self.ip(&[
            "-n",
            &self.legacy,
            "route",
            "add",
            "default",
            "via",
            DEVICE_PRIVATE,
        ]);
        self.ip(&["-n", &self.device, "route", "add", "default", "via", CLOUD]);
        self.ip(&[
            "-n",
            &self.cloud,
            "route",
            "add",
            "198.18.7.0/24",
            "via",
            DEVICE_NETWORK,
        ]);
        run(
            "ip",
            &[
                "netns",
                "exec",
                &self.device,
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=0",
                "net.ipv4.conf.all.forwarding=0",
                "net.ipv6.conf.all.forwarding=0",
            ],
        );
        // The device's resolver answers a name with the machine's address (as a hostile or
        // mistaken DNS would): `ip netns exec` puts /etc/netns/NAME/hosts over /etc/hosts.
        let etc = self.etc_dir();
        std::fs::create_dir_all(&etc).expect("mkdir /etc/netns/...");
        std::fs::write(
            etc.join("hosts"),
            format!("127.0.0.1 localhost\n{LEGACY} legacy.example.com\n"),
        )
        .expect("hosts");
    }

    fn etc_dir(&self) -> PathBuf {
        Path::new("/etc/netns").join(&self.device)
    }

    /// The device's board: the private network on the device's private interface.
    fn board(&self) -> PathBuf {
        let path = self.dir.path().join("board.json");
        let json = serde_json::json!({
            "Metadata": {"Type": "Azure Sphere Hardware Definition", "Version": 1},
            "Description": {"Name": "isolation test board"},
            "Peripherals": [
                {"Name": "BOARD_PRIVATE_NET", "Type": "PrivateNetwork",
                 "AppManifestValue": "PRIVATE-NETWORK-0",
                 "Interface": self.device_private_if, "Subnet": "198.18.7.0/24"}
            ]
        });
        std::fs::write(&path, serde_json::to_vec_pretty(&json).expect("json")).expect("board");
        path
    }

    /// `Tcp InSegs` and `Udp InDatagrams` of the legacy namespace (/proc/net/snmp is per
    /// namespace).
    fn legacy_counters(&self) -> BTreeMap<String, u64> {
        let snmp = run(
            "ip",
            &["netns", "exec", &self.legacy, "cat", "/proc/net/snmp"],
        );
        let mut counters = BTreeMap::new();
        let lines: Vec<&str> = snmp.lines().collect();
        for pair in lines.chunks(2) {
            let [names, values] = pair else { continue };
            let (Some((protocol, names)), Some((_, values))) =
                (names.split_once(": "), values.split_once(": "))
            else {
                continue;
            };
            for (name, value) in names.split_whitespace().zip(values.split_whitespace()) {
                if matches!(
                    (protocol, name),
                    ("Tcp", "InSegs") | ("Udp", "InDatagrams") | ("Tcp", "PassiveOpens")
                ) {
                    counters.insert(format!("{protocol} {name}"), value.parse().unwrap_or(0));
                }
            }
        }
        assert_eq!(counters.len(), 3, "{snmp}");
        counters
    }

    /// Starts `netns_role` of this test binary in `ns` as `role`.
    fn spawn(&self, ns: &str, role: &str, env: &[(&str, &str)]) -> RoleProcess {
        let exe = std::env::current_exe().expect("test binary");
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", ns])
            .arg(exe)
            .args([
                "netns_role",
                "--exact",
                "--nocapture",
                "--test-threads=1",
                "-q",
            ])
            .env(ROLE, role)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("ip netns exec");
        let stdout = child.stdout.take().expect("stdout");
        let stdin = child.stdin.take();
        let (send, lines) = channel();
        let label = role.to_owned();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // libtest may print on the same line before the child's output.
                if let Some(at) = line.find(MARK) {
                    let _ = send.send(line[at + MARK.len()..].to_owned());
                } else {
                    eprintln!("[{label}] {line}");
                }
            }
        });
        RoleProcess {
            child,
            stdin,
            lines,
            role: role.to_owned(),
        }
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in [&self.legacy, &self.device, &self.cloud] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        // Links still in this namespace when setup failed half way.
        for link in [&self.legacy_if, &self.cloud_if] {
            let _ = Command::new("ip")
                .args(["link", "del", link])
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(self.etc_dir());
        let _ = &self.tag;
    }
}

/// A child playing a role; killed on drop.
struct RoleProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    role: String,
}

impl RoleProcess {
    /// The marked lines up to `marker` (excluded), waiting at most [`WAIT`].
    fn until(&self, marker: &str) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        let mut lines = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line == marker => return lines,
                Ok(line) => lines.push(line),
                Err(error) => panic!(
                    "{}: no {marker:?} within {WAIT:?} ({error}); lines so far: {lines:#?}",
                    self.role
                ),
            }
        }
    }

    fn expect(&self, marker: &str) {
        let before = self.until(marker);
        assert!(before.is_empty(), "{}: {before:#?}", self.role);
    }

    /// The marked lines printed so far (waiting briefly for stragglers).
    fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(300)) {
            lines.push(line);
        }
        lines
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{line}").expect("write to the child");
        stdin.flush().expect("flush");
    }
}

impl Drop for RoleProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("{program} {args:?}: {error}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

// ------------------------------------------------------------------------------------------
// The children (each in its namespace, started by `Namespaces::spawn`).

#[test]
fn netns_role() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    match role.as_str() {
        "serve" => serve(&std::env::var("FERRO_NETNS_NAME").expect("name")),
        "scan" => scan(&std::env::var("FERRO_NETNS_TARGETS").expect("targets")),
        "device" => device(Path::new(
            &std::env::var("FERRO_NETNS_BOARD").expect("board"),
        )),
        other => panic!("unknown role {other}"),
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{MARK}{line}");
    let _ = out.flush();
}

/// The legacy machine (all of [`LEGACY_PORTS`]) or the cloud ([`CLOUD_PORT`]): answers every
/// connection with `NAME PORT from PEER` and reports `accept PORT PEER`; runs until killed.
fn serve(name: &str) {
    let ports: &[u16] = if name == "legacy" {
        &LEGACY_PORTS
    } else {
        &[CLOUD_PORT]
    };
    let mut listeners = Vec::new();
    for port in ports {
        let listener = TcpListener::bind(("0.0.0.0", *port)).expect("listen");
        listeners.push((*port, listener));
    }
    say("ready");
    let name = Arc::new(name.to_owned());
    let threads: Vec<_> = listeners
        .into_iter()
        .map(|(port, listener)| {
            let name = name.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(mut stream) = stream else { continue };
                    let Ok(peer) = stream.peer_addr() else {
                        continue;
                    };
                    say(&format!("accept {port} {}", peer.ip()));
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut first = [0; 64];
                    let _ = stream.read(&mut first);
                    // One write: `writeln!` on an unbuffered stream writes each piece of the
                    // format separately, and a reader may see only the first.
                    let answer = format!("{name} {port} from {}\n", peer.ip());
                    let _ = stream.write_all(answer.as_bytes());
                }
            })
        })
        .collect();
    for thread in threads {
        let _ = thread.join();
    }
}

/// Tries every `address:port` of `targets` at once; reports `ADDRESS:PORT OUTCOME` each, then
/// `scan-done`.
fn scan(targets: &str) {
    let threads: Vec<_> = targets
        .split(',')
        .map(|target| {
            let target = target.to_owned();
            std::thread::spawn(move || {
                let address: SocketAddr = target.parse().expect("target");
                let outcome = match TcpStream::connect_timeout(&address, Duration::from_millis(700))
                {
                    Ok(mut stream) => {
                        let _ = stream.set_read_timeout(Some(Duration::from_millis(700)));
                        let _ = stream.write_all(b"scan\n");
                        let mut answer = String::new();
                        let _ = stream.read_to_string(&mut answer);
                        format!("connected {answer:?}")
                    }
                    Err(error) => format!("{:?}", error.kind()),
                };
                say(&format!("{target} {outcome}"));
            })
        })
        .collect();
    for thread in threads {
        let _ = thread.join();
    }
    say("scan-done");
}

/// A net-probe manifest: `name`, component ID suffix, capabilities, arguments.
fn probe_manifest(
    board: &HardwareDefinition,
    name: &str,
    id: u32,
    capabilities: serde_json::Value,
    args: &[String],
) -> Result<ResolvedManifest, String> {
    let json = serde_json::json!({
        "SchemaVersion": 1,
        "Name": name,
        "ComponentId": format!("5e7a1c00-0b5e-4f1a-9d2c-6e0f{id:08x}"),
        "EntryPoint": "/bin/net-probe",
        "CmdArgs": args,
        "Capabilities": capabilities,
        "ApplicationType": "Default"
    });
    AppManifest::parse(&serde_json::to_vec(&json).expect("json"))
        .map_err(|error| error.to_string())?
        .resolve(Some(board))
        .map_err(|error| error.to_string())
}

/// The device: the runtime with the board's private network, the apps, and the device's own
/// connection to the cloud. Steps on a line of stdin from the parent.
fn device(board_path: &Path) {
    let board = HardwareDefinition::load(board_path, &[]).expect("board");
    let storage = tempfile::tempdir().expect("storage");
    let mut config = common::test_config(storage.path());
    config.pin_blocks = PinBlocks::from_hardware_definition(&board);
    config.private_networks = board.private_networks();
    assert_eq!(config.private_networks.len(), 1);
    let virtual_board = Arc::new(VirtualBoard::from_hardware_definition(&board));
    let runtime = Runtime::new(config, Peripherals::all_from(virtual_board)).expect("runtime");
    let probe = common::wasm("net-probe");
    let mut stdin = std::io::stdin().lock();
    let mut wait_for_parent = || {
        let mut line = String::new();
        let _ = stdin.read_line(&mut line);
    };
    let run_probes = |app, label: &str| {
        let lines = common::wait_until(WAIT, || {
            let lines: Vec<String> = runtime
                .logs(app)
                .expect("logs")
                .into_iter()
                .map(|line| line.text)
                .collect();
            lines
                .iter()
                .any(|line| line == "probe done")
                .then_some(lines)
        })
        .unwrap_or_else(|| panic!("{label}: no `probe done`"));
        for line in lines {
            say(&format!("{label} {line}"));
        }
    };

    let guardian_manifest = probe_manifest(
        &board,
        "guardian",
        1,
        serde_json::json!({
            "AllowedConnections": [LEGACY, CLOUD],
            "PrivateNetwork": ["$BOARD_PRIVATE_NET"]
        }),
        &[
            format!("tcp:{LEGACY}:502"),
            format!("tcp:{LEGACY}:22"),
            format!("tcp:{CLOUD}:{CLOUD_PORT}"),
            format!("udp:{LEGACY}:502"),
        ],
    )
    .expect("guardian manifest");
    let guardian = runtime
        .install(&probe, &guardian_manifest, InstallOptions::default())
        .expect("install guardian");
    run_probes(guardian, "guardian");
    say("granted-done");
    wait_for_parent();

    let install = |name: &str, id: u32, component: &[u8], capabilities, args: &[String]| {
        let outcome = probe_manifest(&board, name, id, capabilities, args).and_then(|manifest| {
            runtime
                .install(component, &manifest, InstallOptions::default())
                .map_err(|error| error.to_string())
        });
        say(&format!(
            "install {name}: {}",
            outcome
                .as_ref()
                .map_or_else(Clone::clone, |_| "ok".to_owned())
        ));
        outcome.ok()
    };
    let other = install(
        "other",
        2,
        &probe,
        serde_json::json!({"AllowedConnections": ["legacy.example.com", CLOUD]}),
        &[
            "tcp:legacy.example.com:502".to_owned(),
            format!("tcp:{LEGACY}:502"),
            format!("tcp:::ffff:{LEGACY}:502"),
            "tcp:3323856642:502".to_owned(),
            "udp:legacy.example.com:502".to_owned(),
            format!("tcp:{CLOUD}:{CLOUD_PORT}"),
        ],
    );
    install(
        "lister",
        3,
        &probe,
        serde_json::json!({"AllowedConnections": [LEGACY]}),
        &[],
    );
    install(
        "mapped-lister",
        4,
        &probe,
        serde_json::json!({"AllowedConnections": [format!("::ffff:{LEGACY}")]}),
        &[],
    );
    install(
        "squatter",
        5,
        &probe,
        serde_json::json!({
            "AllowedConnections": [LEGACY],
            "PrivateNetwork": ["$BOARD_PRIVATE_NET"]
        }),
        &[],
    );
    install(
        "raw-sockets",
        6,
        &common::wasm("hostile-stdnet"),
        serde_json::json!({"AllowedConnections": [CLOUD]}),
        &[],
    );
    if let Some(other) = other {
        run_probes(other, "other");
    }
    // The device's own traffic to the cloud (its service connections take this path).
    let answer = TcpStream::connect((CLOUD, CLOUD_PORT))
        .and_then(|mut stream| {
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            stream.write_all(b"device\n")?;
            let mut answer = String::new();
            stream.read_to_string(&mut answer)?;
            Ok(answer)
        })
        .unwrap_or_else(|error| format!("failed: {error}"));
    say(&format!("device-service {}", answer.trim_end()));
    say("ready");
    wait_for_parent();

    // Forwarding on (this namespace only): the granted app is refused, and set back.
    let forwarding = Path::new("/proc/sys/net/ipv4/conf/all/forwarding");
    std::fs::write(forwarding, "1").expect("forwarding on");
    runtime.uninstall(guardian, false).expect("uninstall");
    let refused = runtime
        .install(&probe, &guardian_manifest, InstallOptions::default())
        .map_or_else(|error| error.to_string(), |_| "installed".to_owned());
    std::fs::write(forwarding, "0").expect("forwarding off");
    say(&format!("forwarding-install {refused}"));
    say("end");
}
