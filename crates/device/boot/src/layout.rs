//! The device data directory (`docs/device.md`): paths, the small JSON state files and atomic
//! writes.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::BootError;

/// The counter holding the OS anti-rollback floor (lowest acceptable security version).
pub const OS_FLOOR_COUNTER: &str = "os-security-version";
/// The counter holding the manufacturing state (0 Blank, 1 Module1Complete, 2 DeviceComplete).
pub const MANUFACTURING_COUNTER: &str = "manufacturing-state";
/// Boot attempts a newly staged slot gets by default.
pub const DEFAULT_BOOT_ATTEMPTS: u32 = 3;
/// Largest state file read (boot.json, device.json, ...).
const MAX_STATE_FILE: u64 = 64 * 1024;

/// One of the two OS slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Slot {
    /// Slot `a`.
    A,
    /// Slot `b`.
    B,
}

impl Slot {
    /// `a` or `b`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Slot::A => "a",
            Slot::B => "b",
        }
    }

    /// The other slot.
    pub const fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }

    /// Parse `a` or `b`.
    pub fn parse(s: &str) -> Option<Slot> {
        match s {
            "a" => Some(Slot::A),
            "b" => Some(Slot::B),
            _ => None,
        }
    }
}

impl std::fmt::Display for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which root of trust the device was provisioned with (`device.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "rot", rename_all = "lowercase", deny_unknown_fields)]
pub enum DeviceConfig {
    /// [`ferro_trust::SoftwareRootOfTrust`] in `rot/`.
    Software,
    /// A TPM 2.0 reached through this TCTI.
    Tpm {
        /// TCTI configuration string, e.g. `swtpm:host=127.0.0.1,port=2321`.
        tcti: String,
    },
}

impl DeviceConfig {
    /// Which root of trust, for messages: `the TPM at TCTI "..."` or `the software root of
    /// trust in <data dir>/rot`.
    pub fn describe(&self, data_dir: &DataDir) -> String {
        match self {
            DeviceConfig::Software => {
                format!(
                    "the software root of trust in {}",
                    data_dir.rot_dir().display()
                )
            }
            DeviceConfig::Tpm { tcti } => format!("the TPM at TCTI {tcti:?}"),
        }
    }
}

/// A slot waiting to prove itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingSlot {
    /// The slot.
    pub slot: Slot,
    /// Boots left before the loader gives up on it (decremented before each attempt).
    pub attempts_left: u32,
}

/// `boot.json`: what the loader boots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootState {
    /// The committed slot.
    pub active: Slot,
    /// A newly installed slot on trial, if any.
    pub pending: Option<PendingSlot>,
    /// The last slot that booted and reported healthy.
    pub last_good: Option<Slot>,
}

/// One refused boot candidate (`boot-failures.json`, newest last, at most 32 kept).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootFailure {
    /// Unix time (seconds) of the attempt.
    pub at: u64,
    /// The slot.
    pub slot: Slot,
    /// Why it was not run.
    pub reason: String,
}

/// The most boot failures kept.
pub const MAX_BOOT_FAILURES: usize = 32;

/// The paths of a device data directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// The data directory at `root`.
    pub fn new(root: impl Into<PathBuf>) -> DataDir {
        DataDir { root: root.into() }
    }
    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// `device.json`: root-of-trust kind (written last by provisioning: its presence means
    /// "provisioned").
    pub fn config(&self) -> PathBuf {
        self.root.join("device.json")
    }
    /// `rot/`: the software root of trust.
    pub fn rot_dir(&self) -> PathBuf {
        self.root.join("rot")
    }
    /// `platform-root.pem`: the platform root certificate (TLS to the service).
    pub fn platform_root(&self) -> PathBuf {
        self.root.join("platform-root.pem")
    }
    /// `key-list.cose`: the platform key list, verified under the anchored root at every load.
    pub fn key_list(&self) -> PathBuf {
        self.root.join("key-list.cose")
    }
    /// `registration.cose`: the registration record signed by the device key.
    pub fn registration(&self) -> PathBuf {
        self.root.join("registration.cose")
    }
    /// `boot.json`.
    pub fn boot_state(&self) -> PathBuf {
        self.root.join("boot.json")
    }
    /// `boot-failures.json`.
    pub fn boot_failures(&self) -> PathBuf {
        self.root.join("boot-failures.json")
    }
    /// `slots/<slot>/`.
    pub fn slot_dir(&self, slot: Slot) -> PathBuf {
        self.root.join("slots").join(slot.as_str())
    }
    /// `slots/<slot>/os.imagepackage`: the signed package, kept for re-verification.
    pub fn slot_package(&self, slot: Slot) -> PathBuf {
        self.slot_dir(slot).join("os.imagepackage")
    }
    /// `slots/<slot>/root/`: the unpacked payload (rewritten from the verified package at boot).
    pub fn slot_root(&self, slot: Slot) -> PathBuf {
        self.slot_dir(slot).join("root")
    }
    /// `run/`: per-boot files (measurement hand-off, TPM log, readiness).
    pub fn run_dir(&self) -> PathBuf {
        self.root.join("run")
    }
    /// `run/boot-measurements.json`: what ferro-boot measured (software RoT hand-off).
    pub fn boot_measurements(&self) -> PathBuf {
        self.run_dir().join("boot-measurements.json")
    }
    /// `run/tpm-measurements.log`: the TPM backend's persisted log for this boot.
    pub fn tpm_log(&self) -> PathBuf {
        self.run_dir().join("tpm-measurements.log")
    }
    /// `certs/`: the device certificate and the tenant CA chain (from attestation).
    pub fn certificates(&self) -> PathBuf {
        self.root.join("certs")
    }
    /// `update/`: the update agent's state (`ferro_update::UpdateDir`).
    pub fn update_dir(&self) -> PathBuf {
        self.root.join("update")
    }
    /// `update/deferral.json`: when the update being deferred was first announced
    /// (`deferral::Deferrals`), so deferral limits hold across restarts.
    pub fn deferral_state(&self) -> PathBuf {
        self.update_dir().join("deferral.json")
    }
    /// `apps/`: installed app and board configuration packages (`ferro_update::AppStore`).
    pub fn apps_dir(&self) -> PathBuf {
        self.root.join("apps")
    }
    /// `run/ready.json`: written by `ferro-device run` once started.
    pub fn ready(&self) -> PathBuf {
        self.run_dir().join("ready.json")
    }

    /// Whether `device.json` exists.
    pub fn is_provisioned(&self) -> bool {
        fs::symlink_metadata(self.config()).is_ok()
    }

    /// Read `device.json`.
    pub fn read_config(&self) -> Result<DeviceConfig, BootError> {
        if !self.is_provisioned() {
            return Err(BootError::NotProvisioned(self.root.clone()));
        }
        read_json(&self.config())
    }

    /// Read `boot.json`.
    pub fn read_boot_state(&self) -> Result<BootState, BootError> {
        read_json(&self.boot_state())
    }

    /// Write `boot.json` atomically.
    pub fn write_boot_state(&self, state: &BootState) -> Result<(), BootError> {
        write_json(&self.boot_state(), state)
    }

    /// The recorded boot failures (empty if none).
    pub fn read_boot_failures(&self) -> Result<Vec<BootFailure>, BootError> {
        if fs::symlink_metadata(self.boot_failures()).is_err() {
            return Ok(Vec::new());
        }
        read_json(&self.boot_failures())
    }

    /// Append a boot failure (keeping the newest [`MAX_BOOT_FAILURES`]).
    pub fn record_boot_failure(&self, slot: Slot, reason: &str) -> Result<(), BootError> {
        // A corrupt failure file must not stop the boot: start a new one.
        let mut all = self.read_boot_failures().unwrap_or_default();
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        all.push(BootFailure {
            at,
            slot,
            reason: reason.to_string(),
        });
        let excess = all.len().saturating_sub(MAX_BOOT_FAILURES);
        all.drain(..excess);
        write_json(&self.boot_failures(), &all)
    }
}

/// Read a bounded JSON file.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, BootError> {
    let bytes = read_bounded(path, MAX_STATE_FILE)?;
    serde_json::from_slice(&bytes).map_err(|e| BootError::malformed(path, e))
}

/// Read at most `max` bytes of `path` (more is an error; `ferro_files::read_bounded`).
pub fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, BootError> {
    ferro_files::read_bounded(path, max).map_err(|e| match e {
        ferro_files::BoundedReadError::Io(e) => BootError::io(path)(e),
        e @ ferro_files::BoundedReadError::TooLarge { .. } => BootError::malformed(path, e),
    })
}

/// Write pretty JSON atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), BootError> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| BootError::malformed(path, e))?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// Write `path` atomically (mode 0600): temporary file in the same directory, fsync, rename,
/// fsync of the directory (`ferro_files::write_atomic`).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), BootError> {
    ferro_files::write_atomic(path, bytes, ferro_files::Mode::SECRET).map_err(BootError::io(path))
}

/// fsync a directory (best effort: not every file system supports it).
pub use ferro_files::sync_dir;

/// Create `dir` and any missing parents, each with mode 0700 (parents included: `slots/` is
/// as private as `slots/a/`), and make `dir` itself 0700 if it already existed.
pub fn create_private_dir(dir: &Path) -> Result<(), BootError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        builder.mode(0o700);
        builder.create(dir).map_err(BootError::io(dir))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(BootError::io(dir))?;
    }
    #[cfg(not(unix))]
    builder.create(dir).map_err(BootError::io(dir))?;
    Ok(())
}

/// Tighten what a data directory made by an older version (or by hand) left readable by
/// others: the directory itself, `slots/` with its slots and `certs/` become 0700 and the files
/// of `certs/` 0600, as docs/device.md promises. Only group/other bits are removed; symbolic
/// links are left alone (never followed). Called whenever the device opens its data directory.
pub fn tighten_permissions(data_dir: &DataDir) -> Result<(), BootError> {
    #[cfg(unix)]
    {
        let dirs = [
            data_dir.root().to_path_buf(),
            data_dir.root().join("slots"),
            data_dir.slot_dir(Slot::A),
            data_dir.slot_dir(Slot::B),
            data_dir.certificates(),
        ];
        for dir in &dirs {
            restrict(dir, 0o700, true)?;
        }
        if let Ok(entries) = fs::read_dir(data_dir.certificates()) {
            for entry in entries {
                let entry = entry.map_err(BootError::io(data_dir.certificates()))?;
                restrict(&entry.path(), 0o600, false)?;
            }
        }
    }
    Ok(())
}

/// Remove from `path`'s mode every bit outside `allowed` (no-op if already within, if absent,
/// or if it is a symbolic link or not of the expected kind).
#[cfg(unix)]
fn restrict(path: &Path, allowed: u32, dir: bool) -> Result<(), BootError> {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = fs::symlink_metadata(path) else {
        return Ok(());
    };
    if meta.file_type().is_symlink() || meta.is_dir() != dir {
        return Ok(());
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & !allowed == 0 {
        return Ok(());
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode & allowed))
        .map_err(BootError::io(path))
}
