//! The app manager: runs the device's installed high-level apps in `ferro-runtime`.
//!
//! Two sources feed it: the cloud set (`apps/installed.json`, written by the update agent from
//! the target set, verified under the owning tenant's image keys) and sideloaded apps
//! (`apps/sideloaded/`, development mode only: verified under a developer key that the device's
//! appDevelopment capability names). A sideloaded app takes the place of a cloud app of the same
//! component until it is deleted or development mode ends. Every image is verified from its
//! package and measured before its component reaches the runtime; the bytes the runtime compiles
//! are the bytes that verified. An image that fails is kept out of the runtime and shown as
//! `Failed` with the reason, and reported as an error event.
//!
//! The board: the hardware definition named in `board.json` (written at provisioning), looked up
//! in the verified OS bundle's `hardware/` directory, becomes the virtual board the apps'
//! peripherals live on.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use base64ct::{Base64, Encoding};
use ferro_image::{ImageType, VerifiedImage};
use ferro_manifest::{HardwareDefinition, ResolvedManifest};
use ferro_peripherals::{OwnershipError, Peripherals, PinBlocks, Resource, VirtualBoard};
use ferro_pki::{Capability, PlatformKeyRole, VerifiedCapability, VerifiedOwnership};
use ferro_runtime::{
    AppId, DeviceServices, InstallError, InstallOptions, Runtime, RuntimeConfig, StorageArea,
};
use ferro_signing::{DeviceId, PublicKey, TrustedKeys};

use ferro_wire::device_api as api;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::identity::DeviceContext;
use crate::layout::{DataDir, read_bounded, read_json, write_atomic, write_json};
use crate::rt_apps::{RT_WATCHDOG, RtAppSpec, RtHost};
use ferro_rtcore::CoreStatus;

/// Largest app package the device verifies into memory (the runtime caps components at 32 MiB).
const MAX_APP_PACKAGE: u64 = api::MAX_SIDELOAD_BYTES as u64;
/// Largest capability file read.
const MAX_CAPABILITY_FILE: u64 = 64 * 1024;
/// The board a virtual device uses when `board.json` names none.
pub const DEFAULT_BOARD: &str = "ferro_vboard/sample_appliance.json";

/// What went wrong with an app operation; each maps to one error code of the local API.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Sideloading needs an appDevelopment capability for this device.
    #[error(
        "the device is not in development mode: run `ferro device enable-development` first (it \
         applies an appDevelopment capability for this device)"
    )]
    NotInDevelopmentMode,
    /// The developer key is not named by the capability.
    #[error(
        "developer key {0} is not one this device's appDevelopment capability accepts: register it \
         (`ferro developer-key add`) and run `ferro device enable-development` again"
    )]
    UntrustedDeveloperKey(String),
    /// The developer key header is missing or malformed.
    #[error("the {header} header must carry the developer's public key (base64 DER): {0}", header = api::DEVELOPER_KEY_HEADER)]
    BadDeveloperKey(String),
    /// The package did not verify.
    #[error("the image package did not verify: {0}")]
    InvalidImage(String),
    /// The package verified but is not something this route installs.
    #[error("{0}")]
    WrongImageType(String),
    /// The capability file was refused.
    #[error("the capability file was refused: {0}")]
    InvalidCapability(String),
    /// No such app.
    #[error("no app with component ID {0} is installed")]
    NoSuchApp(Uuid),
    /// The app exists but is not sideloaded.
    #[error(
        "app {0} was deployed from the cloud, not sideloaded; it changes with its device group's \
         deployment"
    )]
    NotSideloaded(Uuid),
    /// The runtime refused an operation.
    #[error("{0}")]
    Runtime(String),
    /// The virtual board has no such part, or the device has no virtual board.
    #[error("{0}")]
    Board(String),
    /// Device state could not be read or written.
    #[error(transparent)]
    Device(#[from] crate::DeviceError),
}

impl From<ferro_boot::BootError> for AppError {
    fn from(e: ferro_boot::BootError) -> AppError {
        AppError::Device(e.into())
    }
}

/// `board.json`: which hardware definition the device's peripherals follow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BoardConfig {
    /// Path of the hardware definition inside the OS bundle's `hardware/` directory.
    pub hardware_definition: String,
}

impl BoardConfig {
    /// Checks that the path stays inside `hardware/` (no `..`, not absolute).
    pub fn validate(&self) -> Result<(), BoardPathError> {
        let path = Path::new(&self.hardware_definition);
        if self.hardware_definition.is_empty()
            || !path
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)))
        {
            return Err(BoardPathError(self.hardware_definition.clone()));
        }
        Ok(())
    }
}

/// A `board.json` hardware definition path that leaves the OS bundle's `hardware/` directory.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a relative path inside the OS bundle's hardware/ directory")]
pub struct BoardPathError(pub String);

/// One sideloaded app (`apps/sideloaded/sideloaded.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SideloadedApp {
    component_id: Uuid,
    /// SHA-256 of the package, hex: its file name in `apps/sideloaded/`.
    package_sha256: String,
    /// The developer key that signed it (base64 DER SubjectPublicKeyInfo).
    developer_key: String,
    manual_start: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SideloadedApps {
    apps: Vec<SideloadedApp>,
}

/// An image the manager wants installed.
#[derive(Clone, Debug)]
struct Wanted {
    component_id: Uuid,
    package: PathBuf,
    package_sha256: String,
    trusted: TrustedKeys,
    source: api::ImageSource,
    manual_start: bool,
}

/// An image the manager knows.
#[derive(Clone, Debug)]
struct Known {
    info: api::InstalledImage,
    package_sha256: String,
    /// Why the runtime does not run it, if it does not.
    refused: Option<String>,
    /// In the runtime.
    in_runtime: bool,
    manual_start: bool,
    /// Its manifest grants SoftwareUpdateDeferral.
    can_defer: bool,
    /// A real-time app admitted to a core: the core it holds (its peripherals and the core are
    /// reserved in the runtime's ownership table under its component ID).
    core: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    images: BTreeMap<Uuid, Known>,
    /// (component, payload digest) measured in this boot.
    measured: BTreeSet<(Uuid, [u8; 32])>,
}

/// The app manager of one device.
#[derive(Debug)]
pub struct AppManager {
    data_dir: DataDir,
    device_id: DeviceId,
    capability_keys: TrustedKeys,
    runtime: Runtime,
    board: Option<Arc<VirtualBoard>>,
    /// The board's real-time cores (`RealTimeCore` entries of its hardware definition), in order.
    cores: Vec<String>,
    /// The watchdog period each core's definition sets for its apps (`WatchdogPeriodMs`).
    core_watchdogs: BTreeMap<String, Duration>,
    /// The real-time cores and the RT apps on them.
    rt: RtHost,
    state: Mutex<State>,
    /// Serializes sync, sideload and capability changes (each reads, verifies and installs).
    changes: Mutex<()>,
    /// Told how many installed apps may defer updates.
    deferrals: Arc<crate::deferral::Deferrals>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl AppManager {
    /// The manager of `ctx`'s device: the board from `board.json` found under `hardware_dir`
    /// (the verified OS bundle's `hardware/`), and a runtime whose app storage lives in
    /// `apps/storage/`. A missing or unloadable board leaves the device without peripherals
    /// (logged): apps that ask for one fail to install with a clear reason. Apps' service
    /// discoveries query `dns_resolver` (`None`: the first `nameserver` of `/etc/resolv.conf`).
    pub fn new(
        ctx: &DeviceContext,
        hardware_dir: Option<&Path>,
        services: Arc<dyn DeviceServices>,
        deferrals: Arc<crate::deferral::Deferrals>,
        dns_resolver: Option<std::net::SocketAddr>,
    ) -> Result<AppManager, AppError> {
        let data_dir = ctx.data_dir.clone();
        let definition = load_board(&data_dir, hardware_dir);
        let board = definition
            .as_ref()
            .map(|d| Arc::new(VirtualBoard::from_hardware_definition(d)));
        let cores = definition
            .as_ref()
            .map(HardwareDefinition::real_time_cores)
            .unwrap_or_default();
        let core_watchdogs = definition
            .as_ref()
            .map(|d| {
                cores
                    .iter()
                    .filter_map(|core| {
                        d.core_watchdog_period_ms(core)
                            .map(|ms| (core.clone(), Duration::from_millis(u64::from(ms))))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let storage = data_dir.apps_dir().join("storage");
        crate::layout::create_private_dir(&storage)?;
        let rt = RtHost::new(&cores, &data_dir.root().join("run"), board.clone());
        let mut config = RuntimeConfig::new(storage);
        config.services = services;
        config.partners = rt.connector();
        config.dns_resolver = dns_resolver;
        // App servers listen on loopback only: a virtual device shares its host's network, and
        // apps never route between interfaces.
        config.server_bind_address = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
        if let Some(definition) = &definition {
            config.pin_blocks = PinBlocks::from_hardware_definition(definition);
            // The board's private networks (docs/guardian.md, "The private side"): only the app
            // granted one reaches it, and none while the device forwards between interfaces.
            config.private_networks = definition.private_networks();
        }
        if !config.private_networks.is_empty() {
            match ferro_runtime::forwarding_enabled(&config.sys_net_dir) {
                Ok(on) if on.is_empty() => {}
                Ok(on) => tracing::warn!(
                    forwarding = %on.join(", "),
                    "the device forwards between interfaces: apps granted a private network will \
                     not start; set net.ipv4.ip_forward=0, net.ipv4.conf.all.forwarding=0 and \
                     net.ipv6.conf.all.forwarding=0"
                ),
                Err(error) => tracing::warn!(
                    %error,
                    "cannot read the forwarding settings: apps granted a private network will not \
                     start"
                ),
            }
        }
        let peripherals = match &board {
            Some(board) => Peripherals::all_from(board.clone()),
            None => Peripherals::all_from(Arc::new(VirtualBoard::empty("none"))),
        };
        let runtime =
            Runtime::new(config, peripherals).map_err(|e| AppError::Runtime(e.to_string()))?;
        rt.set_recorder(runtime.event_recorder());
        Ok(AppManager {
            data_dir,
            device_id: ctx.device_id(),
            capability_keys: ctx.key_list.trusted(PlatformKeyRole::Capability),
            runtime,
            board,
            cores,
            core_watchdogs,
            rt,
            state: Mutex::new(State::default()),
            changes: Mutex::new(()),
            deferrals,
        })
    }

    /// The runtime (events, logs).
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The virtual board, if the device has one.
    pub fn board(&self) -> Option<&Arc<VirtualBoard>> {
        self.board.as_ref()
    }

    fn sideload_dir(&self) -> PathBuf {
        self.data_dir.apps_dir().join("sideloaded")
    }

    fn sideload_index(&self) -> PathBuf {
        self.sideload_dir().join("sideloaded.json")
    }

    fn capability_path(&self) -> PathBuf {
        self.data_dir
            .root()
            .join("capabilities")
            .join("app-development.cose")
    }

    /// The applied appDevelopment capability, if there is a valid one for this device.
    pub fn capability(&self) -> Option<VerifiedCapability> {
        let path = self.capability_path();
        if std::fs::symlink_metadata(&path).is_err() {
            return None;
        }
        let bytes = read_bounded(&path, MAX_CAPABILITY_FILE).ok()?;
        match ferro_pki::verify_capability(&bytes, &self.capability_keys, &self.device_id) {
            Ok(c) if matches!(c.capability(), Capability::AppDevelopment { .. }) => Some(c),
            Ok(_) => None,
            Err(error) => {
                tracing::warn!(%error, "the stored capability file no longer verifies; ignored");
                None
            }
        }
    }

    /// Development mode as the local API shows it.
    pub fn development_mode(&self) -> api::DevelopmentMode {
        match self.capability() {
            Some(c) => api::DevelopmentMode {
                enabled: true,
                developer_keys: match c.capability() {
                    Capability::AppDevelopment { developer_keys } => {
                        developer_keys.iter().map(|k| k.to_string()).collect()
                    }
                    Capability::FieldServicing => Vec::new(),
                },
            },
            None => api::DevelopmentMode::default(),
        }
    }

    /// Apply a capability file: it must verify under the platform's capability keys, name this
    /// device and grant appDevelopment. Stored only if it does.
    pub fn apply_capability(&self, bytes: &[u8]) -> Result<api::DevelopmentMode, AppError> {
        let _changes = lock(&self.changes);
        if bytes.len() as u64 > MAX_CAPABILITY_FILE {
            return Err(AppError::InvalidCapability(format!(
                "larger than {MAX_CAPABILITY_FILE} bytes"
            )));
        }
        let verified = ferro_pki::verify_capability(bytes, &self.capability_keys, &self.device_id)
            .map_err(|e| AppError::InvalidCapability(e.to_string()))?;
        if !matches!(verified.capability(), Capability::AppDevelopment { .. }) {
            return Err(AppError::InvalidCapability(
                "it grants fieldServicing, not appDevelopment".into(),
            ));
        }
        let path = self.capability_path();
        crate::layout::create_private_dir(&self.data_dir.root().join("capabilities"))?;
        write_atomic(&path, bytes)?;
        tracing::info!(signer = %verified.signer(), "appDevelopment capability applied");
        Ok(self.development_mode())
    }

    /// Leave development mode: the capability and every sideloaded app are removed (cloud apps
    /// of the same components come back).
    pub fn remove_capability(&self, ctx: &DeviceContext) -> Result<api::DevelopmentMode, AppError> {
        {
            let _changes = lock(&self.changes);
            let path = self.capability_path();
            if std::fs::symlink_metadata(&path).is_ok() {
                std::fs::remove_file(&path).map_err(crate::DeviceError::io(&path))?;
            }
            self.write_sideloaded(&SideloadedApps::default())?;
            self.prune_sideloaded_packages(&SideloadedApps::default());
        }
        self.sync(ctx)?;
        Ok(self.development_mode())
    }

    fn read_sideloaded(&self) -> SideloadedApps {
        let path = self.sideload_index();
        if std::fs::symlink_metadata(&path).is_err() {
            return SideloadedApps::default();
        }
        read_json(&path).unwrap_or_else(|error| {
            tracing::warn!(%error, "sideloaded app index unreadable; ignoring sideloaded apps");
            SideloadedApps::default()
        })
    }

    fn write_sideloaded(&self, apps: &SideloadedApps) -> Result<(), AppError> {
        crate::layout::create_private_dir(&self.sideload_dir())?;
        write_json(&self.sideload_index(), apps)?;
        Ok(())
    }

    fn prune_sideloaded_packages(&self, keep: &SideloadedApps) {
        let Ok(entries) = std::fs::read_dir(self.sideload_dir()) else {
            return;
        };
        let keep: BTreeSet<String> = keep
            .apps
            .iter()
            .map(|a| format!("{}.imagepackage", a.package_sha256))
            .collect();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".imagepackage") && !keep.contains(&name) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// What should run: the cloud set, with sideloaded apps in place of the same components
    /// (only while a valid appDevelopment capability names their developer keys).
    fn wanted(&self, ctx: &DeviceContext) -> Result<Vec<Wanted>, AppError> {
        let mut wanted: BTreeMap<Uuid, Wanted> = BTreeMap::new();
        let store = ferro_update::AppStore::open(ctx.data_dir.apps_dir())
            .map_err(|e| AppError::Runtime(e.to_string()))?;
        let installed = store
            .installed()
            .map_err(|e| AppError::Runtime(e.to_string()))?;
        if !installed.apps.is_empty() {
            let update_dir = ferro_update::UpdateDir::open(ctx.data_dir.update_dir())
                .map_err(|e| AppError::Runtime(e.to_string()))?;
            let keys = update_dir
                .load_ownership(&ctx.key_list, &ctx.device_id())
                .map_err(|e| AppError::Runtime(e.to_string()))?
                .map(|o: VerifiedOwnership| o.image_keys())
                .unwrap_or_default();
            for app in installed.apps {
                wanted.insert(
                    app.component_id,
                    Wanted {
                        component_id: app.component_id,
                        package: store.package_path(&app.package_sha256),
                        package_sha256: app.package_sha256.clone(),
                        trusted: keys.clone(),
                        source: api::ImageSource::Cloud,
                        manual_start: false,
                    },
                );
            }
        }
        if let Some(capability) = self.capability() {
            for app in self.read_sideloaded().apps {
                let Ok(key) = developer_key(&app.developer_key) else {
                    tracing::warn!(component = %app.component_id, "sideloaded app with a malformed key; ignored");
                    continue;
                };
                if !capability.allows_test_key(&key.key_id()) {
                    tracing::warn!(component = %app.component_id, "sideloaded app's developer key is no longer accepted; ignored");
                    continue;
                }
                wanted.insert(
                    app.component_id,
                    Wanted {
                        component_id: app.component_id,
                        package: self
                            .sideload_dir()
                            .join(format!("{}.imagepackage", app.package_sha256)),
                        package_sha256: app.package_sha256.clone(),
                        trusted: std::iter::once(key).collect(),
                        source: api::ImageSource::Sideloaded,
                        manual_start: app.manual_start,
                    },
                );
            }
        }
        Ok(wanted.into_values().collect())
    }

    /// Bring the runtime in line with what should run: verify, measure and install new or
    /// changed images, uninstall the ones no longer wanted. Returns how many images changed.
    /// Each image that fails is kept out and recorded; the others go on.
    pub fn sync(&self, ctx: &DeviceContext) -> Result<usize, AppError> {
        let _changes = lock(&self.changes);
        let wanted = self.wanted(ctx)?;
        let wanted_ids: BTreeSet<Uuid> = wanted.iter().map(|w| w.component_id).collect();
        let mut changed = 0;
        // Gone: uninstall (their storage goes with them, as on Azure Sphere).
        let gone: Vec<Uuid> = lock(&self.state)
            .images
            .keys()
            .filter(|id| !wanted_ids.contains(id))
            .copied()
            .collect();
        for id in gone {
            let removed = lock(&self.state).images.remove(&id);
            if let Some(known) = removed {
                self.take_out(id, &known, false);
            }
            tracing::info!(component = %id, "app removed");
            changed += 1;
        }
        for w in wanted {
            let current = lock(&self.state).images.get(&w.component_id).cloned();
            if current.as_ref().is_some_and(|k| {
                k.package_sha256 == w.package_sha256 && k.manual_start == w.manual_start
            }) {
                continue;
            }
            changed += 1;
            if let Some(old) = current {
                // A new version keeps the app's mutable storage.
                self.take_out(w.component_id, &old, true);
            }
            let known = self.install_one(ctx, &w);
            lock(&self.state).images.insert(w.component_id, known);
        }
        let deferrers = lock(&self.state)
            .images
            .values()
            .filter(|k| k.in_runtime && k.can_defer)
            .count();
        self.deferrals.set_deferrers(deferrers);
        Ok(changed)
    }

    /// Take a known image out of what runs: a high-level app leaves the runtime, a real-time app
    /// gives back its core and peripherals.
    fn take_out(&self, id: Uuid, known: &Known, keep_storage: bool) {
        if known.in_runtime {
            let _ = self.runtime.uninstall(AppId::from(id), keep_storage);
        }
        if known.core.is_some() {
            self.rt.remove(id);
            self.runtime.release_reserved(AppId::from(id));
        }
    }

    /// Verify, measure and install one image; never fails as a whole (a refusal is recorded).
    fn install_one(&self, ctx: &DeviceContext, w: &Wanted) -> Known {
        let package_size = std::fs::metadata(&w.package).map(|m| m.len()).unwrap_or(0);
        let mut known = Known {
            info: api::InstalledImage {
                component_id: w.component_id,
                image_id: Uuid::nil(),
                name: String::new(),
                kind: "App".into(),
                version: String::new(),
                source: w.source,
                verified: false,
                package_size,
            },
            package_sha256: w.package_sha256.clone(),
            refused: None,
            in_runtime: false,
            manual_start: w.manual_start,
            can_defer: false,
            core: None,
        };
        let (image, payload) = match verify_into_memory(&w.package, &w.trusted) {
            Ok(v) => v,
            Err(reason) => {
                tracing::error!(component = %w.component_id, %reason, "installed image refused; it will not run");
                known.refused = Some(format!("did not verify: {reason}"));
                return known;
            }
        };
        let m = image.metadata();
        known.info.image_id = m.image_id;
        known.info.name = m.name.clone();
        known.info.version = m.version.to_string();
        known.info.verified = true;
        known.info.kind = match m.image_type {
            ImageType::App => "App",
            ImageType::RtApp => "RtApp",
            ImageType::BoardConfig => "BoardConfig",
            ImageType::Os => "Os",
        }
        .into();
        if m.component_id != w.component_id {
            known.refused = Some(format!(
                "the package is of component {}, not {}",
                m.component_id, w.component_id
            ));
            return known;
        }
        let digest = image.payload_sha256();
        let first = lock(&self.state).measured.insert((w.component_id, digest));
        if first && let Err(error) = ctx.measure(&crate::os::image_measurement(&image)) {
            tracing::error!(%error, "measuring an image failed; it will not run");
            known.refused = Some(format!("could not be measured: {error}"));
            return known;
        }
        tracing::info!(image_id = %m.image_id, name = %m.name, "image verified and measured");
        match m.image_type {
            ImageType::App => {}
            ImageType::RtApp => {
                match self.admit_real_time(&image, &payload, w.manual_start) {
                    Ok(core) => {
                        tracing::info!(component = %w.component_id, %core, "real-time app admitted to its core");
                        known.core = Some(core);
                    }
                    Err(reason) => {
                        tracing::error!(component = %w.component_id, %reason, "real-time app not installed");
                        known.refused = Some(reason);
                    }
                }
                return known;
            }
            // Verified and measured is all a board configuration needs here.
            _ => return known,
        }
        // A sideloaded (test-signed) image may claim a production app's component ID: it
        // gets storage of its own, never the production app's (docs/device-apps.md).
        let storage_area = match w.source {
            api::ImageSource::Sideloaded => StorageArea::Development,
            api::ImageSource::Cloud => StorageArea::Production,
        };
        match self.install_app(&image, &payload, w.manual_start, storage_area) {
            Ok(can_defer) => {
                known.in_runtime = true;
                known.can_defer = can_defer;
            }
            Err(reason) => {
                tracing::error!(component = %w.component_id, %reason, "app not installed");
                known.refused = Some(reason);
            }
        }
        known
    }

    fn install_app(
        &self,
        image: &VerifiedImage,
        payload: &[u8],
        manual_start: bool,
        storage_area: StorageArea,
    ) -> Result<bool, String> {
        let (manifest, component, package_files) = manifest_and_entry_point(image, payload)?;
        let named = |e: InstallError| self.name_holder(e);
        self.runtime
            .install(
                &component,
                &manifest,
                InstallOptions {
                    manual_start,
                    limits: None,
                    storage_area,
                    package_files,
                    // What the app's signed telemetry batches name (docs/provenance.md).
                    image_id: Some(image.metadata().image_id),
                },
            )
            .map(|_| {
                manifest
                    .capabilities()
                    .has(ferro_manifest::CapabilityFlag::SoftwareUpdateDeferral)
            })
            .map_err(named)
    }

    /// Admit a verified, measured real-time app: its manifest is a RealTimeCapable one, its
    /// payload holds its entry point, and it gets a core of the board and its peripherals, all
    /// in the runtime's one ownership table (a core and a peripheral belong to one app). The
    /// first core no other app holds is its own (the one it held, for a new version). Returns
    /// the core; on refusal nothing is held.
    fn admit_real_time(
        &self,
        image: &VerifiedImage,
        payload: &[u8],
        manual_start: bool,
    ) -> Result<String, String> {
        let (manifest, image_bytes, _files) = manifest_and_entry_point(image, payload)?;
        if !manifest.is_real_time() {
            return Err(
                "the image is an rt-app but its manifest's ApplicationType is not \
                        RealTimeCapable"
                    .into(),
            );
        }
        if image_bytes.is_empty() {
            return Err(format!(
                "its entry point {} is empty",
                manifest.entry_point()
            ));
        }
        if self.cores.is_empty() {
            return Err(
                "the board has no real-time cores (its hardware definition names none \
                        of Type RealTimeCore)"
                    .into(),
            );
        }
        let id = AppId::from(manifest.component_id());
        let core = self
            .cores
            .iter()
            .find(|core| {
                self.runtime
                    .owner_of(&Resource::RealTimeCore((*core).clone()))
                    .is_none_or(|holder| holder == id)
            })
            .cloned()
            .ok_or_else(|| {
                let holders: Vec<String> = self
                    .cores
                    .iter()
                    .map(|core| {
                        let holder = self
                            .runtime
                            .owner_of(&Resource::RealTimeCore(core.clone()))
                            .map(|holder| self.describe_app(holder.uuid()))
                            .unwrap_or_default();
                        format!("{core} is held by {holder}")
                    })
                    .collect();
                format!(
                    "every real-time core of the board is busy ({}): remove one of those apps \
                     from the deployment, or delete it if it is sideloaded, and install again",
                    holders.join(", ")
                )
            })?;
        self.rt.check_elf(&core, &image_bytes)?;
        if let [_, _, ..] = manifest.capabilities().uart() {
            return Err(format!(
                "its manifest grants {} UARTs ({}), but a real-time core has one app UART: \
                 grant one",
                manifest.capabilities().uart().len(),
                manifest.capabilities().uart().join(", ")
            ));
        }
        let mut resources = Resource::claimed_by(manifest.capabilities());
        resources.push(Resource::RealTimeCore(core.clone()));
        self.runtime.reserve(id, &resources).map_err(|e| {
            format!(
                "app {:?} ({id}) cannot have its resources: {}",
                manifest.name(),
                self.name_holder(e)
            )
        })?;
        let capabilities = manifest.capabilities();
        // The manifest's period, else the board's for this core, else the device's default.
        let watchdog = manifest
            .watchdog_period_ms()
            .map(|ms| Duration::from_millis(u64::from(ms)))
            .or_else(|| self.core_watchdogs.get(&core).copied())
            .unwrap_or(RT_WATCHDOG);
        let spec = RtAppSpec {
            name: manifest.name().to_string(),
            elf: image_bytes,
            allowed: capabilities.application_connections().to_vec(),
            gpio: capabilities.gpio().to_vec(),
            uart: capabilities.uart().first().cloned(),
            watchdog,
        };
        if let Err(reason) = self.rt.install(id.uuid(), &core, spec, manual_start) {
            self.rt.remove(id.uuid());
            self.runtime.release_reserved(id);
            return Err(reason);
        }
        Ok(core)
    }

    /// An app as errors name it: `app "name" (component ID)`.
    fn describe_app(&self, component: Uuid) -> String {
        match lock(&self.state).images.get(&component) {
            Some(known) if !known.info.name.is_empty() => {
                format!("app {:?} ({component})", known.info.name)
            }
            _ => format!("app {component}"),
        }
    }

    /// An install refusal, with the name of the app that holds a contested resource.
    fn name_holder(&self, error: InstallError) -> String {
        match &error {
            InstallError::Ownership(OwnershipError::Conflict { owner, .. }) => {
                match Uuid::parse_str(owner) {
                    Ok(holder) => format!("{error}: {}", self.describe_app(holder)),
                    Err(_) => error.to_string(),
                }
            }
            _ => error.to_string(),
        }
    }

    /// Sideload `package` signed by `developer_key_b64` (development mode only). Replaces an app
    /// of the same component. Nothing changes unless the package verifies and is an app.
    pub fn sideload(
        &self,
        ctx: &DeviceContext,
        package: &[u8],
        developer_key_b64: &str,
        manual_start: bool,
    ) -> Result<api::SideloadResult, AppError> {
        let capability = self.capability().ok_or(AppError::NotInDevelopmentMode)?;
        let key = developer_key(developer_key_b64).map_err(AppError::BadDeveloperKey)?;
        if !capability.allows_test_key(&key.key_id()) {
            return Err(AppError::UntrustedDeveloperKey(key.key_id().to_string()));
        }
        if package.len() > api::MAX_SIDELOAD_BYTES {
            return Err(AppError::InvalidImage(format!(
                "larger than {} bytes",
                api::MAX_SIDELOAD_BYTES
            )));
        }
        let trusted: TrustedKeys = std::iter::once(key).collect();
        let image = ferro_image::verify(package, &trusted, &mut std::io::sink())
            .map_err(|e| AppError::InvalidImage(e.to_string()))?;
        let m = image.metadata();
        if !matches!(m.image_type, ImageType::App | ImageType::RtApp) {
            return Err(AppError::WrongImageType(format!(
                "the package is an image of type {:?}; only apps (type App or RtApp) can be \
                 sideloaded here",
                m.image_type
            )));
        }
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(package));
        let replaced = lock(&self.state)
            .images
            .get(&m.component_id)
            .map(|k| k.info.image_id);
        let previous;
        {
            let _changes = lock(&self.changes);
            previous = self.read_sideloaded();
            crate::layout::create_private_dir(&self.sideload_dir())?;
            write_atomic(
                &self.sideload_dir().join(format!("{sha}.imagepackage")),
                package,
            )?;
            let mut index = previous.clone();
            index.apps.retain(|a| a.component_id != m.component_id);
            index.apps.push(SideloadedApp {
                component_id: m.component_id,
                package_sha256: sha,
                developer_key: developer_key_b64.trim().to_string(),
                manual_start,
            });
            index.apps.sort_by_key(|a| a.component_id);
            self.write_sideloaded(&index)?;
        }
        self.sync(ctx)?;
        let refused = lock(&self.state)
            .images
            .get(&m.component_id)
            .and_then(|k| k.refused.clone());
        if let Some(reason) = refused {
            // Put back what ran before (the previous sideloaded or cloud app of the component).
            {
                let _changes = lock(&self.changes);
                self.write_sideloaded(&previous)?;
                self.prune_sideloaded_packages(&previous);
            }
            self.sync(ctx)?;
            return Err(AppError::Runtime(format!(
                "the device cannot run the app, so it was not installed: {reason}"
            )));
        }
        {
            let _changes = lock(&self.changes);
            self.prune_sideloaded_packages(&self.read_sideloaded());
        }
        Ok(api::SideloadResult {
            component_id: m.component_id,
            image_id: m.image_id,
            name: m.name.clone(),
            version: m.version.to_string(),
            manual_start,
            replaced_image_id: replaced,
        })
    }

    /// Delete a sideloaded app (a cloud app of its component, if any, comes back).
    pub fn delete_sideloaded(&self, ctx: &DeviceContext, component: Uuid) -> Result<(), AppError> {
        {
            let _changes = lock(&self.changes);
            let mut index = self.read_sideloaded();
            if !index.apps.iter().any(|a| a.component_id == component) {
                return Err(if lock(&self.state).images.contains_key(&component) {
                    AppError::NotSideloaded(component)
                } else {
                    AppError::NoSuchApp(component)
                });
            }
            index.apps.retain(|a| a.component_id != component);
            self.write_sideloaded(&index)?;
            self.prune_sideloaded_packages(&index);
        }
        self.sync(ctx)?;
        Ok(())
    }

    /// The installed images.
    pub fn images(&self) -> api::InstalledImages {
        api::InstalledImages {
            images: lock(&self.state)
                .images
                .values()
                .map(|k| k.info.clone())
                .collect(),
        }
    }

    fn known(&self, component: Uuid) -> Result<Known, AppError> {
        lock(&self.state)
            .images
            .get(&component)
            .cloned()
            .ok_or(AppError::NoSuchApp(component))
    }

    /// Status of one app.
    pub fn status(&self, component: Uuid) -> Result<api::AppStatus, AppError> {
        let known = self.known(component)?;
        if let (Some(core), None) = (&known.core, &known.refused) {
            let status = self.rt.status(component).map_err(AppError::Runtime)?;
            let (state, restarts, last_exit, restart_in_ms) = match status {
                CoreStatus::Stopped => (api::AppState::Stopped, 0, None, None),
                CoreStatus::Running { restarts, .. } => {
                    (api::AppState::Running, restarts, None, None)
                }
                CoreStatus::Restarting {
                    restarts,
                    delay,
                    last,
                    ..
                } => (
                    api::AppState::BackingOff,
                    restarts,
                    Some(last.to_string()),
                    Some(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX)),
                ),
            };
            return Ok(api::AppStatus {
                component_id: component,
                name: known.info.name,
                state,
                manual_start: known.manual_start,
                restarts,
                last_exit,
                restart_in_ms,
                running_since: None,
                core: Some(core.clone()),
            });
        }
        if !known.in_runtime {
            return Ok(api::AppStatus {
                component_id: component,
                name: known.info.name,
                state: api::AppState::Failed,
                manual_start: known.manual_start,
                restarts: 0,
                last_exit: known.refused,
                restart_in_ms: None,
                running_since: None,
                core: None,
            });
        }
        let s = self
            .runtime
            .status(AppId::from(component))
            .map_err(|e| AppError::Runtime(e.to_string()))?;
        let (state, restart_in_ms) = match s.state {
            ferro_runtime::AppState::Stopped => (api::AppState::Stopped, None),
            ferro_runtime::AppState::Starting => (api::AppState::Starting, None),
            ferro_runtime::AppState::Running => (api::AppState::Running, None),
            ferro_runtime::AppState::BackingOff { restart_in } => (
                api::AppState::BackingOff,
                Some(u64::try_from(restart_in.as_millis()).unwrap_or(u64::MAX)),
            ),
        };
        Ok(api::AppStatus {
            component_id: component,
            name: s.name,
            state,
            manual_start: s.manual_start,
            restarts: s.restarts,
            last_exit: s.last_exit.map(|k| k.to_string()),
            restart_in_ms,
            running_since: s.running_since.map(rfc3339),
            core: None,
        })
    }

    /// Status of every app.
    pub fn statuses(&self) -> api::AppStatusList {
        let ids: Vec<Uuid> = lock(&self.state)
            .images
            .iter()
            .filter(|(_, k)| k.info.kind == "App" || k.info.kind == "RtApp")
            .map(|(id, _)| *id)
            .collect();
        api::AppStatusList {
            apps: ids
                .into_iter()
                .filter_map(|id| self.status(id).ok())
                .collect(),
        }
    }

    /// Whether `component` is a real-time app on a core.
    fn on_core(&self, component: Uuid) -> Result<bool, AppError> {
        let known = self.known(component)?;
        Ok(known.core.is_some() && known.refused.is_none())
    }

    fn running(&self, component: Uuid) -> Result<AppId, AppError> {
        let known = self.known(component)?;
        if known.core.is_some() && known.refused.is_none() {
            return Err(AppError::Runtime(format!(
                "app {component} is a real-time app: it has no storage or memory statistics of \
                 the high-level runtime (see `ferro device app show-status` and `logs`)"
            )));
        }
        if !known.in_runtime {
            return Err(AppError::Runtime(format!(
                "app {component} is not installed in the runtime: {}",
                known.refused.unwrap_or_default()
            )));
        }
        Ok(AppId::from(component))
    }

    /// Start an app.
    pub fn start(&self, component: Uuid) -> Result<api::AppStatus, AppError> {
        if self.on_core(component)? {
            self.rt.start(component).map_err(AppError::Runtime)?;
            return self.status(component);
        }
        let id = self.running(component)?;
        self.runtime
            .start(id)
            .map_err(|e| AppError::Runtime(e.to_string()))?;
        self.status(component)
    }

    /// Stop an app.
    pub fn stop(&self, component: Uuid) -> Result<api::AppStatus, AppError> {
        if self.on_core(component)? {
            self.rt.stop(component).map_err(AppError::Runtime)?;
            return self.status(component);
        }
        let id = self.running(component)?;
        self.runtime
            .stop(id)
            .map_err(|e| AppError::Runtime(e.to_string()))?;
        self.status(component)
    }

    /// Storage quota of an app.
    pub fn quota(&self, component: Uuid) -> Result<api::AppQuota, AppError> {
        let id = self.running(component)?;
        let quota = self
            .runtime
            .quota(id)
            .map_err(|e| AppError::Runtime(e.to_string()))?;
        Ok(api::AppQuota {
            component_id: component,
            used_bytes: quota.map(|q| q.used_bytes).unwrap_or(0),
            quota_bytes: quota.map(|q| q.quota_bytes).unwrap_or(0),
        })
    }

    /// Memory of an app.
    pub fn memory(&self, component: Uuid) -> Result<api::AppMemoryStats, AppError> {
        let id = self.running(component)?;
        let m = self
            .runtime
            .memory_stats(id)
            .map_err(|e| AppError::Runtime(e.to_string()))?;
        Ok(api::AppMemoryStats {
            component_id: component,
            image_bytes: m.image_bytes,
            current_bytes: m.current_bytes,
            peak_bytes: m.peak_bytes,
            limit_bytes: m.limit_bytes,
        })
    }

    /// The lines of an app's log kept so far.
    pub fn logs(&self, component: Uuid) -> Result<Vec<api::LogLine>, AppError> {
        if self.on_core(component)? {
            return Ok(self
                .rt
                .logs(component)
                .map_err(AppError::Runtime)?
                .into_iter()
                .map(|line| api::LogLine {
                    seq: line.seq,
                    at: rfc3339(line.at),
                    level: "Info".into(),
                    source: line.source.into(),
                    text: line.text,
                })
                .collect());
        }
        let id = self.running(component)?;
        Ok(self
            .runtime
            .logs(id)
            .map_err(|e| AppError::Runtime(e.to_string()))?
            .iter()
            .map(log_line)
            .collect())
    }

    /// A follower of an app's log (lines from now on).
    pub fn follow_logs(&self, component: Uuid) -> Result<LogFollower, AppError> {
        if self.on_core(component)? {
            return self
                .rt
                .follow_logs(component)
                .map(LogFollower::Core)
                .map_err(AppError::Runtime);
        }
        let id = self.running(component)?;
        self.runtime
            .follow_logs(id)
            .map(LogFollower::Runtime)
            .map_err(|e| AppError::Runtime(e.to_string()))
    }

    /// The virtual board's LEDs and buttons.
    pub fn board_state(&self) -> Result<api::BoardState, AppError> {
        let board = self.virtual_board()?;
        let pin = |pin: u32, active: bool| api::BoardPin {
            names: board.gpio_names(pin),
            pin,
            active,
        };
        Ok(api::BoardState {
            name: board.name().to_string(),
            leds: board
                .leds()
                .into_iter()
                .map(|p| pin(p, board.led_is_on(p)))
                .collect(),
            buttons: board
                .buttons()
                .into_iter()
                .map(|p| pin(p, board.button_is_pressed(p)))
                .collect(),
        })
    }

    fn virtual_board(&self) -> Result<&Arc<VirtualBoard>, AppError> {
        self.board
            .as_ref()
            .ok_or_else(|| AppError::Board("this device has no virtual board".into()))
    }

    /// Press or release a button, named as in the hardware definition.
    pub fn set_button(&self, name: &str, pressed: bool) -> Result<api::BoardState, AppError> {
        let board = self.virtual_board()?;
        let pin = board
            .gpio_by_name(name)
            .filter(|p| board.buttons().contains(p))
            .ok_or_else(|| {
                AppError::Board(format!(
                    "the board has no button named {name:?} (see `ferro device board show`)"
                ))
            })?;
        board
            .set_button(pin, pressed)
            .map_err(|e| AppError::Board(e.to_string()))?;
        self.board_state()
    }

    /// The virtual board's UART peer of `uart`: sends `data` to the app that holds the UART (a
    /// high-level app's reads, or a real-time core's app UART through its bridge) and takes
    /// what the app wrote since the last exchange.
    pub fn uart_peer(&self, uart: &str, data: &[u8]) -> Result<api::UartPeerExchange, AppError> {
        let board = self.virtual_board()?;
        let accepted = board
            .uart_peer_send(uart, data)
            .map_err(|e| AppError::Board(e.to_string()))?;
        let received = board
            .uart_peer_take(uart)
            .map_err(|e| AppError::Board(e.to_string()))?;
        Ok(api::UartPeerExchange {
            uart: uart.to_string(),
            accepted: u32::try_from(accepted).unwrap_or(u32::MAX),
            received,
        })
    }

    /// Set the simulated temperature sensor.
    pub fn set_temperature(&self, millicelsius: i32) -> Result<api::BoardState, AppError> {
        self.virtual_board()?
            .set_temperature_millicelsius(millicelsius);
        self.board_state()
    }
}

/// `board.json`, or the default virtual board, loaded from `hardware_dir`.
fn load_board(data_dir: &DataDir, hardware_dir: Option<&Path>) -> Option<HardwareDefinition> {
    let config_path = data_dir.root().join("board.json");
    let config: BoardConfig = if std::fs::symlink_metadata(&config_path).is_ok() {
        match read_json(&config_path) {
            Ok(c) => c,
            Err(error) => {
                tracing::error!(%error, "board.json unreadable; no peripherals");
                return None;
            }
        }
    } else {
        BoardConfig {
            hardware_definition: DEFAULT_BOARD.into(),
        }
    };
    if let Err(reason) = config.validate() {
        tracing::error!(%reason, "board.json refused; no peripherals");
        return None;
    }
    let Some(dir) = hardware_dir else {
        tracing::warn!("the OS bundle has no hardware/ directory; no peripherals");
        return None;
    };
    let path = dir.join(&config.hardware_definition);
    match HardwareDefinition::load(&path, &[dir.to_path_buf()]) {
        Ok(d) => {
            tracing::info!(board = %d.name(), "virtual board loaded");
            Some(d)
        }
        Err(error) => {
            tracing::error!(path = %path.display(), %error, "hardware definition unusable; no peripherals");
            None
        }
    }
}

/// A developer key from the header's base64 DER.
fn developer_key(b64: &str) -> Result<PublicKey, String> {
    let der = Base64::decode_vec(b64.trim()).map_err(|_| "not base64".to_string())?;
    PublicKey::from_spki_der(&der).map_err(|e| e.to_string())
}

/// Verify a package into memory: (the verified image, its payload bytes).
fn verify_into_memory(
    package: &Path,
    trusted: &TrustedKeys,
) -> Result<(VerifiedImage, Vec<u8>), String> {
    let size = std::fs::metadata(package)
        .map_err(|e| format!("{}: {e}", package.display()))?
        .len();
    if size > MAX_APP_PACKAGE {
        return Err(format!("larger than {MAX_APP_PACKAGE} bytes"));
    }
    let mut payload = Vec::new();
    let image =
        ferro_image::verify_file(package, trusted, &mut payload).map_err(|e| e.to_string())?;
    Ok((image, payload))
}

/// A verified app image's manifest (from its signed metadata), its entry point's bytes and its
/// other files (out of its verified payload).
fn manifest_and_entry_point(
    image: &VerifiedImage,
    payload: &[u8],
) -> Result<(ResolvedManifest, Vec<u8>, ferro_runtime::PackageFiles), String> {
    let app = image
        .metadata()
        .app
        .as_ref()
        .ok_or("the image carries no app manifest")?;
    let manifest = ResolvedManifest::parse(&app.manifest_json)
        .map_err(|e| format!("its manifest is invalid: {e}"))?;
    let (entry, files) = split_payload(payload, app.entry_point_tar_path())?;
    Ok((manifest, entry, files))
}

/// The entry point's bytes out of a verified ustar payload, and the payload's other regular
/// files, which the app may read through `imagefiles` (docs/device-apps.md). Verification
/// admitted only regular files and directories with normalized paths, so no link or path escape
/// can be here.
fn split_payload(
    payload: &[u8],
    entry_tar_path: &str,
) -> Result<(Vec<u8>, ferro_runtime::PackageFiles), String> {
    let mut archive = tar::Archive::new(payload);
    let mut component = None;
    let mut files = Vec::new();
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().map_err(|e| e.to_string())?;
        let path = path
            .to_str()
            .ok_or("a payload path is not UTF-8")?
            .to_owned();
        let mut bytes = Vec::new();
        entry
            .by_ref()
            .take(MAX_APP_PACKAGE)
            .read_to_end(&mut bytes)
            .map_err(|e| e.to_string())?;
        if path == entry_tar_path {
            component = Some(bytes);
        } else {
            files.push((path, bytes));
        }
    }
    let component =
        component.ok_or_else(|| format!("the payload has no entry point {entry_tar_path}"))?;
    let files = ferro_runtime::PackageFiles::new(files).map_err(|e| e.to_string())?;
    Ok((component, files))
}

fn rfc3339(at: SystemTime) -> String {
    let at = time::OffsetDateTime::from(at);
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A runtime log line on the wire.
pub fn log_line(line: &ferro_runtime::LogLine) -> api::LogLine {
    api::LogLine {
        seq: line.seq,
        at: rfc3339(line.at),
        level: format!("{:?}", line.level),
        source: format!("{:?}", line.source),
        text: line.text.clone(),
    }
}

/// A follower of an app's log: a high-level app's (the runtime's) or a real-time app's core.
#[derive(Debug)]
pub enum LogFollower {
    Runtime(ferro_runtime::LogFollower),
    Core(ferro_rtcore::LogFollower),
}

impl LogFollower {
    /// The next line, waiting at most `timeout`.
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<api::LogLine> {
        match self {
            LogFollower::Runtime(follower) => follower.next_timeout(timeout).map(|l| log_line(&l)),
            LogFollower::Core(follower) => {
                follower.next_timeout(timeout).map(|line| api::LogLine {
                    seq: line.seq,
                    at: rfc3339(line.at),
                    level: "Info".into(),
                    source: "Core".into(),
                    text: line.text,
                })
            }
        }
    }
}

/// How long a log follower waits for a line before checking the connection.
pub const LOG_POLL: Duration = Duration::from_millis(500);

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, bytes) in files {
            let mut header = tar::Header::new_ustar();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(&mut header, path, *bytes)
                .expect("append");
        }
        builder.into_inner().expect("tar")
    }

    #[test]
    fn the_entry_point_is_compiled_and_the_other_files_are_readable() {
        let payload = payload(&[
            ("app_manifest.json", b"{}"),
            ("bin/app", b"\0asm"),
            ("register_map.json", b"{\"schemaVersion\": 1}"),
        ]);
        let (component, files) = split_payload(&payload, "bin/app").expect("split");
        assert_eq!(component, b"\0asm");
        assert_eq!(files.len(), 2);
        assert_eq!(
            &*files.read("register_map.json").expect("map"),
            b"{\"schemaVersion\": 1}"
        );
        assert!(
            files.read("bin/app").is_err(),
            "the entry point is not a package file"
        );
        assert!(split_payload(&payload, "bin/other").is_err());
    }
}
