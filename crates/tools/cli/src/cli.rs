//! The command tree, in `azsphere`'s shape: `ferro <group> <command> --long-option VALUE`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use ferro_wire::DeviceId;

use crate::output::OutputFormat;

#[derive(Debug, Parser)]
#[command(
    name = "ferro",
    version,
    about = "Ferrosphere: build, sign and manage software for secure IoT devices",
    long_about = None
)]
pub struct Cli {
    /// Output format.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// Log what the command does (to standard error); repeat for more detail.
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, inspect and verify image packages.
    #[command(subcommand)]
    ImagePackage(ImagePackageCommand),
    /// Work with hardware definitions.
    #[command(subcommand)]
    HardwareDefinition(HardwareDefinitionCommand),
    /// Sign in to a Ferrosphere security service.
    Login(LoginArgs),
    /// Sign out: forget the session token.
    Logout,
    /// Show the signed-in user and their roles.
    ShowUser,
    /// Manage users (administrators).
    #[command(subcommand)]
    User(UserCommand),
    /// Your API tokens, for automation (use with FERRO_SERVICE and FERRO_TOKEN).
    #[command(subcommand)]
    ApiToken(ApiTokenCommand),
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage users' roles in the selected tenant.
    #[command(subcommand)]
    Role(RoleCommand),
    /// Manage products.
    #[command(subcommand)]
    Product(ProductCommand),
    /// Manage device groups.
    #[command(subcommand)]
    DeviceGroup(DeviceGroupCommand),
    /// Manage devices: claim, list, show, move between groups, capabilities.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Manufacturing: upload device registration records (platform operators).
    #[command(subcommand)]
    Manufacturing(ManufacturingCommand),
    /// The tenant's certificate authority (for brokers that authenticate devices).
    #[command(subcommand)]
    CaCertificate(CaCertificateCommand),
    /// Upload and download app and board-config images.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Public keys whose test-signed images the tenant accepts for upload and sideloading.
    #[command(subcommand)]
    DeveloperKey(DeveloperKeyCommand),
    /// OS releases (publishing is for platform operators).
    #[command(subcommand)]
    OsRelease(OsReleaseCommand),
    /// Telemetry batches signed by devices for their apps (attested provenance).
    #[command(subcommand)]
    Telemetry(TelemetryCommand),
}

/// `ferro telemetry ...`: offline, no service needed.
#[derive(Debug, Subcommand)]
pub enum TelemetryCommand {
    /// Verify a signed telemetry batch (docs/provenance.md): the device certificate chains to
    /// the tenant CA and was valid when the device signed, the signature, the headers, and the
    /// image it came from is one of --image-id. Exits non-zero, naming the reason, if not.
    Verify(TelemetryVerifyArgs),
}

#[derive(Debug, Args)]
pub struct TelemetryVerifyArgs {
    /// The tenant's CA certificates, PEM (`ferro ca-certificate download-chain`; several may be
    /// concatenated, e.g. during a CA rotation).
    #[arg(long, value_name = "FILE")]
    pub tenant_ca: PathBuf,
    /// An image ID the batch may come from (the attested images of the app); repeat for
    /// several.
    #[arg(long = "image-id", value_name = "ID", required = true)]
    pub image_ids: Vec<uuid::Uuid>,
    /// The app (component ID) the batch must come from.
    #[arg(long, value_name = "ID")]
    pub component_id: Option<uuid::Uuid>,
    /// A device the batch may come from; repeat for several (default: any device of the
    /// tenant).
    #[arg(long = "device", value_name = "ID")]
    pub devices: Vec<DeviceId>,
    /// Accept batches from images sideloaded in development mode (a developer key may give
    /// its image any image ID).
    #[arg(long)]
    pub allow_development: bool,
    /// Verify as of this time (RFC 3339) instead of now.
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// Write the verified payload to this file.
    #[arg(long, value_name = "FILE")]
    pub payload_out: Option<PathBuf>,
    /// The signed batch (COSE_Sign1 bytes, as the app published them).
    pub file: PathBuf,
}

/// `ferro device ...`: the attached device's commands and the service's, side by side as in
/// azsphere.
#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Commands for the attached device (its local device API).
    #[command(flatten)]
    Attached(AttachedDeviceCommand),
    /// Commands about the tenant's devices (the security service).
    #[command(flatten)]
    Cloud(CloudDeviceCommand),
}

#[derive(Debug, Subcommand)]
pub enum CloudDeviceCommand {
    /// Claim devices for the tenant with the claim codes that came with them (from the
    /// manufacturer or seller). A wrong code answers as an unknown device does.
    Claim {
        /// Device ID (128 hex characters); repeat for several, each with its --claim-code.
        #[arg(long, value_name = "ID")]
        device: Vec<String>,
        /// The device's claim code (32 hex digits, hyphens optional), in --device's order.
        #[arg(long, value_name = "CODE")]
        claim_code: Vec<String>,
        /// A file of `DEVICE_ID,CLAIM_CODE` lines, as `ferro manufacturing register
        /// --claim-codes-file` writes it (bulk claim, up to 1000 per request).
        #[arg(long, value_name = "FILE")]
        device_file: Option<PathBuf>,
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// Offer a device to another tenant, and accept, cancel or list offers (Administrator).
    #[command(subcommand)]
    Transfer(TransferCommand),
    /// Settle a dispute: give a device to another tenant (platform operators; audited, with a
    /// reason).
    Reassign {
        /// Device ID.
        #[arg(long, value_name = "ID")]
        device: DeviceId,
        /// The tenant that gets the device (ID).
        #[arg(long, value_name = "TENANT_ID")]
        to_tenant: String,
        /// Why (kept in the audit logs of the platform and of both tenants).
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
    /// Settle a dispute: take a device from its tenant, unclaimed with a new claim code
    /// (platform operators; audited, with a reason).
    Unclaim {
        /// Device ID.
        #[arg(long, value_name = "ID")]
        device: DeviceId,
        /// Why (kept in the audit logs of the platform and of the tenant).
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
    /// List the tenant's devices.
    List {
        /// Only devices in this device group (ID or PRODUCT/GROUP).
        #[arg(long, value_name = "GROUP")]
        device_group: Option<String>,
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// Show a device.
    Show {
        /// Device ID.
        #[arg(long, value_name = "ID")]
        device: DeviceId,
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// Count the tenant's devices.
    ShowCount {
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// Move a device into a device group.
    Update {
        /// Device ID.
        #[arg(long, value_name = "ID")]
        device: DeviceId,
        /// Device group ID or PRODUCT/GROUP.
        #[arg(long, value_name = "GROUP", required_unless_present = "blocked")]
        device_group: Option<String>,
        /// `true` blocks the device (Administrator): its attestations are untrusted, so it gets
        /// no new certificate (the one it holds expires within 24 hours); `false` unblocks it.
        #[arg(long, value_name = "true|false", action = clap::ArgAction::Set)]
        blocked: Option<bool>,
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// Device capability files.
    #[command(subcommand)]
    Capability(CapabilityCommand),
    /// Show a device's update status: the target set version the service computed for it and
    /// what the device last reported (state, detail, installed images).
    ShowDeploymentStatus {
        /// Device ID.
        #[arg(long, value_name = "ID")]
        device: DeviceId,
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// Make the device check for updates now (within seconds, if it is online).
    UpdateNow {
        /// Device ID.
        #[arg(long, value_name = "ID")]
        device: DeviceId,
        #[command(flatten)]
        tenant: TenantArg,
    },
}

/// `--device-dir`: which attached device (the local device API's socket lives in its data
/// directory).
#[derive(Debug, Args)]
pub struct AttachedArg {
    /// The attached device's data directory (or the path of its `device-api.sock`).
    #[arg(long, value_name = "DIR", env = "FERRO_DEVICE_DIR")]
    pub device_dir: PathBuf,
}

/// What the attached device does on request, through its local device API.
#[derive(Debug, Subcommand)]
pub enum AttachedDeviceCommand {
    /// Show the attached device: ID, OS, attestation, certificate, development mode, board.
    ShowAttached {
        #[command(flatten)]
        attached: AttachedArg,
    },
    /// Restart the attached device (through ferro-boot, which verifies its OS again).
    Restart {
        #[command(flatten)]
        attached: AttachedArg,
    },
    /// Put the attached device in development mode: download an appDevelopment capability for
    /// it from the service and apply it, so it accepts apps signed by your developer keys.
    EnableDevelopment {
        #[command(flatten)]
        attached: AttachedArg,
        /// Developer key IDs the device may accept (default: the tenant's registered keys).
        #[arg(long, value_name = "KEY_ID")]
        developer_key: Vec<String>,
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// Leave development mode: remove the capability and every sideloaded app.
    DisableDevelopment {
        #[command(flatten)]
        attached: AttachedArg,
    },
    /// Sideloaded apps (development mode).
    #[command(subcommand)]
    Sideload(SideloadCommand),
    /// The attached device's apps.
    #[command(subcommand)]
    App(AppCommand),
    /// The attached virtual device's board: LEDs, buttons, sensor.
    #[command(subcommand)]
    Board(BoardCommand),
    /// Images installed on the attached device, or targeted at a device by the service.
    #[command(subcommand)]
    Image(DeviceImageCommand),
}

#[derive(Debug, Subcommand)]
pub enum SideloadCommand {
    /// Install an app image package on the attached device (replacing one of the same component).
    Deploy {
        #[command(flatten)]
        attached: AttachedArg,
        /// The image package (`ferro image-package pack-application`).
        #[arg(long, value_name = "FILE")]
        image_package: PathBuf,
        /// Do not start the app; wait for `ferro device app start`.
        #[arg(long)]
        manual_start: bool,
        /// The signer's public key (SPKI PEM); default: your test-signing key.
        #[arg(long, value_name = "PEM")]
        public_key: Option<PathBuf>,
    },
    /// Remove a sideloaded app (a cloud-deployed app of the same component comes back).
    Delete {
        #[command(flatten)]
        attached: AttachedArg,
        /// The app's component ID.
        #[arg(long, value_name = "ID")]
        component_id: String,
    },
}

/// `--component-id`.
#[derive(Debug, Args)]
pub struct ComponentArg {
    #[command(flatten)]
    pub attached: AttachedArg,
    /// The app's component ID.
    #[arg(long, value_name = "ID")]
    pub component_id: String,
}

#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// Start an app.
    Start(ComponentArg),
    /// Stop an app.
    Stop(ComponentArg),
    /// Show an app's state, or every app's without --component-id.
    ShowStatus {
        #[command(flatten)]
        attached: AttachedArg,
        /// The app's component ID (default: all apps).
        #[arg(long, value_name = "ID")]
        component_id: Option<String>,
    },
    /// Show an app's mutable storage use and quota.
    ShowQuota(ComponentArg),
    /// Show an app's linear memory: image, current, peak, limit.
    ShowMemoryStats(ComponentArg),
    /// Print an app's log (kept lines; with --follow, new ones until interrupted).
    Logs {
        #[command(flatten)]
        app: ComponentArg,
        /// Keep printing new lines.
        #[arg(long)]
        follow: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum BoardCommand {
    /// Show the LEDs (lit or not) and buttons (pressed or not).
    Show {
        #[command(flatten)]
        attached: AttachedArg,
    },
    /// Press a button (by its hardware definition name) and release it, or hold it.
    PressButton {
        #[command(flatten)]
        attached: AttachedArg,
        /// The button, e.g. SAMPLE_BUTTON_1.
        #[arg(long, value_name = "NAME")]
        button: String,
        /// Milliseconds to hold it before releasing (0: keep it pressed).
        #[arg(long, value_name = "MS", default_value_t = 200)]
        hold_ms: u64,
    },
    /// Release a held button.
    ReleaseButton {
        #[command(flatten)]
        attached: AttachedArg,
        /// The button, e.g. SAMPLE_BUTTON_1.
        #[arg(long, value_name = "NAME")]
        button: String,
    },
    /// Set the simulated temperature sensor.
    SetTemperature {
        #[command(flatten)]
        attached: AttachedArg,
        /// Degrees Celsius.
        #[arg(long, value_name = "C", allow_negative_numbers = true)]
        celsius: f64,
    },
    /// Be the device at the other end of a UART: send text to the app that holds it (a
    /// high-level app or a real-time core) and print what the app wrote since the last time.
    UartPeer {
        #[command(flatten)]
        attached: AttachedArg,
        /// The UART's value in app manifests, e.g. ISU1.
        #[arg(long, value_name = "UART")]
        uart: String,
        /// Text to send (UTF-8; none: only read).
        #[arg(long, value_name = "TEXT", default_value = "")]
        send: String,
        /// Milliseconds to wait before reading the app's answer.
        #[arg(long, value_name = "MS", default_value_t = 0)]
        wait_ms: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeviceImageCommand {
    /// List the images installed on the attached device (cloud and sideloaded).
    ListInstalled {
        #[command(flatten)]
        attached: AttachedArg,
    },
    /// List the images of the device's current target set (what its device group's deployment
    /// and OS feed make it run).
    ListTargeted {
        /// Device ID.
        #[arg(long, value_name = "ID")]
        device: DeviceId,
        #[command(flatten)]
        tenant: TenantArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum CapabilityCommand {
    /// Download a capability file bound to one device.
    Download {
        /// appDevelopment or fieldServicing.
        #[arg(long = "type", value_name = "TYPE")]
        capability_type: String,
        /// Device ID.
        #[arg(long, value_name = "ID")]
        device: DeviceId,
        /// Where to write the capability file.
        #[arg(long, value_name = "FILE")]
        destination: PathBuf,
        /// Developer key IDs the device may accept test-signed images from (appDevelopment);
        /// default: the tenant's registered developer keys.
        #[arg(long, value_name = "KEY_ID")]
        developer_key: Vec<String>,
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// Revoke the device's capabilities of one type at the service: its attestations no longer
    /// count them (appDevelopment: test-signed images fail appraisal again).
    Revoke {
        /// appDevelopment or fieldServicing.
        #[arg(long = "type", value_name = "TYPE")]
        capability_type: String,
        /// Device ID.
        #[arg(long, value_name = "ID")]
        device: DeviceId,
        #[command(flatten)]
        tenant: TenantArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum ManufacturingCommand {
    /// Upload device registration records (as written by `ferro-device provision`); each newly
    /// registered device gets a claim code, shown once: give it to the buyer.
    Register {
        /// A registration record file; repeat for several (up to 1000).
        #[arg(long, value_name = "FILE", required = true)]
        file: Vec<PathBuf>,
        /// Also write the new claim codes to FILE (`DEVICE_ID,CLAIM_CODE` lines, mode 0600),
        /// which `ferro device claim --device-file` reads.
        #[arg(long, value_name = "FILE")]
        claim_codes_file: Option<PathBuf>,
    },
    /// Assign registered, unclaimed devices to a tenant without claim codes (the manufacturer's
    /// bulk flow; platform operators).
    Assign {
        /// The tenant that gets the devices (ID).
        #[arg(long, value_name = "TENANT_ID")]
        to_tenant: String,
        /// Device ID; repeat for several.
        #[arg(long, value_name = "ID")]
        device: Vec<String>,
        /// A file with one device ID per line (the first field of a `DEVICE_ID,...` line).
        #[arg(long, value_name = "FILE")]
        device_file: Option<PathBuf>,
    },
}

/// `ferro device transfer ...`: ownership transfers between tenants.
#[derive(Debug, Subcommand)]
pub enum TransferCommand {
    /// Offer a device of your tenant to another tenant, whose Administrator must accept it
    /// before the offer expires.
    Create {
        /// Device ID.
        #[arg(long, value_name = "ID")]
        device: DeviceId,
        /// The tenant that may accept the device (its ID: ask its Administrator).
        #[arg(long, value_name = "TENANT_ID")]
        target_tenant: String,
        /// Days until the offer expires, 1 to 90 (default 14).
        #[arg(long, value_name = "DAYS")]
        expires_in_days: Option<u32>,
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// List the transfers your tenant sent or received (a pending offer past its expiry is
    /// Expired).
    List {
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// Accept a transfer offered to your tenant before it expires: the device becomes yours.
    Accept {
        /// Transfer ID (`ferro device transfer list`).
        #[arg(long, value_name = "ID")]
        transfer: String,
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// Cancel a pending transfer your tenant sent, or decline one it received.
    Cancel {
        /// Transfer ID.
        #[arg(long, value_name = "ID")]
        transfer: String,
        #[command(flatten)]
        tenant: TenantArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum CaCertificateCommand {
    /// List the tenant's CA certificates.
    List {
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// Download a CA certificate (default: the current one).
    Download {
        /// Serial number (hex) of the certificate; default: the current one.
        #[arg(long, value_name = "SERIAL")]
        serial: Option<String>,
        /// Where to write it (PEM).
        #[arg(long, value_name = "FILE")]
        destination: PathBuf,
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// Download the tenant's valid CA certificates as one PEM bundle.
    DownloadChain {
        /// Where to write it.
        #[arg(long, value_name = "FILE")]
        destination: PathBuf,
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// Download a proof-of-possession certificate for a broker's verification code.
    DownloadProof {
        /// The verification code the broker gave you.
        #[arg(long, value_name = "CODE")]
        verification_code: String,
        /// Serial number (hex) of the CA; default: the current one.
        #[arg(long, value_name = "SERIAL")]
        serial: Option<String>,
        /// Where to write it (PEM).
        #[arg(long, value_name = "FILE")]
        destination: PathBuf,
        #[command(flatten)]
        tenant: TenantArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Upload an image package; the service verifies it and re-signs it for production.
    Add {
        /// The image package.
        #[arg(long, value_name = "FILE")]
        image: PathBuf,
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// Show an image's metadata.
    Show {
        /// Image ID.
        #[arg(long, value_name = "ID")]
        image: String,
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// List the tenant's images.
    List {
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// Delete an image, freeing its bytes from the tenant's image storage quota. Superseded
    /// deployments keep it in their history (marked deleted); refused while it is in a device
    /// group's current deployment or rollout base, a device may still fetch it, or a device
    /// last reported it installed.
    Delete {
        /// Image ID.
        #[arg(long, value_name = "ID")]
        image: String,
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// Download an image's production package.
    Download {
        /// Image ID.
        #[arg(long, value_name = "ID")]
        image: String,
        /// Where to write it.
        #[arg(long, value_name = "FILE")]
        destination: PathBuf,
        #[command(flatten)]
        tenant: TenantArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeveloperKeyCommand {
    /// Register a public key; default: your own test-signing key.
    Add {
        /// SPKI PEM public key; default: the public half of your test-signing key.
        #[arg(long, value_name = "PEM")]
        public_key: Option<PathBuf>,
        /// A name to recognise it by.
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// List the registered developer keys.
    List {
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// Remove a developer key.
    Delete {
        /// Key ID (hex).
        #[arg(long, value_name = "KEY_ID")]
        key_id: String,
        #[command(flatten)]
        tenant: TenantArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum OsReleaseCommand {
    /// Publish an OS image package to a feed (platform operators).
    Publish {
        /// The OS image package (`ferro image-package pack-os`).
        #[arg(long, value_name = "FILE")]
        image: PathBuf,
        /// Retail or RetailEval.
        #[arg(long, value_name = "FEED")]
        feed: String,
    },
    /// List OS releases, newest first.
    List {
        /// Only this feed.
        #[arg(long, value_name = "FEED")]
        feed: Option<String>,
    },
    /// Download a signed OS release.
    Download {
        /// Image ID of the release.
        #[arg(long, value_name = "ID")]
        image: String,
        /// Where to write it.
        #[arg(long, value_name = "FILE")]
        destination: PathBuf,
    },
    /// Promote a RetailEval release to Retail (platform operators).
    Promote {
        /// Image ID of the release.
        #[arg(long, value_name = "ID")]
        image: String,
    },
    /// Revoke a release for good: no device is offered it again, and devices that run it
    /// attest Untrusted until they update (platform operators).
    Revoke {
        /// Image ID of the release.
        #[arg(long, value_name = "ID")]
        image: String,
    },
    /// Show each feed's minimum security version.
    ShowFeeds,
    /// Set a feed's minimum security version: older releases are neither offered nor trusted
    /// (platform operators).
    SetMinimumSecurityVersion {
        /// Retail or RetailEval.
        #[arg(long, value_name = "FEED")]
        feed: String,
        /// The minimum (at most the highest security version of the feed's live releases).
        #[arg(long, value_name = "N")]
        security_version: u32,
    },
    /// The build keys whose OS packages may be published (platform operators).
    #[command(subcommand)]
    Key(OsReleaseKeyCommand),
}

#[derive(Debug, Subcommand)]
pub enum OsReleaseKeyCommand {
    /// Register a build key; default: your own test-signing key.
    Add {
        /// SPKI PEM public key; default: the public half of your test-signing key.
        #[arg(long, value_name = "PEM")]
        public_key: Option<PathBuf>,
        /// A name to recognise it by.
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
    },
    /// List the build keys.
    List,
    /// Remove a build key.
    Delete {
        /// Key ID (hex).
        #[arg(long, value_name = "KEY_ID")]
        key_id: String,
    },
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The service's URL, e.g. https://ferro.example.com:4443.
    #[arg(long, value_name = "URL")]
    pub service: String,
    /// Trust this CA file (PEM) for the service instead of the certificate it presents.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Accept the presented platform root if its SHA-256 fingerprint is this (as
    /// `ferro-service init` printed it); otherwise you are asked.
    #[arg(long, value_name = "SHA256")]
    pub accept_fingerprint: Option<String>,
    /// Login name; asked for when absent.
    #[arg(long, value_name = "NAME")]
    pub login: Option<String>,
    /// Read the password from standard input (one line; a second line is the new password
    /// when a one-time password must be changed).
    #[arg(long)]
    pub password_stdin: bool,
}

/// `--tenant`: a tenant ID or name; default: the selected tenant.
#[derive(Debug, Args)]
pub struct TenantArg {
    /// Tenant ID or name (default: the selected tenant).
    #[arg(long, value_name = "TENANT")]
    pub tenant: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account (platform operators), which receives a one-time password that
    /// expires. To give someone a role in a tenant, invite them: `ferro role add`.
    Create {
        /// Login name (email-like).
        #[arg(long, value_name = "NAME")]
        login: String,
        /// Display name.
        #[arg(long, value_name = "TEXT")]
        display_name: String,
        /// Make the user a platform operator.
        #[arg(long)]
        platform_operator: bool,
    },
    /// Issue a new one-time password for an account (platform operators); its old password,
    /// sessions and API tokens stop working.
    ResetPassword {
        /// User ID (`ferro user list`).
        #[arg(long, value_name = "ID")]
        user: String,
    },
    /// List users.
    List,
    /// Delete a user.
    Delete {
        /// User ID.
        #[arg(long, value_name = "ID")]
        user: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApiTokenCommand {
    /// Create a token; its secret is shown once.
    Create {
        /// A name to recognise it by.
        #[arg(long, value_name = "NAME")]
        name: String,
        /// Lifetime in days, 1 to 90 (default 30).
        #[arg(long, value_name = "DAYS")]
        expires_in_days: Option<u32>,
        /// Limit the token to one tenant (ID or name); default: every tenant you hold a role in.
        #[arg(long, value_name = "TENANT")]
        tenant: Option<String>,
        /// The strongest role the token acts with: Reader, Contributor or Administrator.
        #[arg(long, value_name = "ROLE")]
        max_role: Option<String>,
        /// The token only reads (GET), e.g. for a metrics scraper or a dashboard.
        #[arg(long)]
        read_only: bool,
    },
    /// List your tokens (never their secrets).
    List,
    /// Revoke a token.
    Delete {
        /// Token ID.
        #[arg(long, value_name = "ID")]
        token_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant; you become its Administrator.
    Create {
        /// Name: letters, digits, spaces, '-', '_'; at most 50 characters.
        #[arg(long, value_name = "NAME")]
        name: String,
    },
    /// List the tenants you hold a role in.
    List,
    /// Select the tenant that later commands act on.
    Select {
        /// Tenant ID or name.
        #[arg(long, value_name = "TENANT")]
        tenant: String,
    },
    /// Show the selected tenant.
    ShowSelected,
    /// Download the tenant's error report (CSV, as Azure Sphere's).
    DownloadErrorReport {
        /// Where to write the CSV.
        #[arg(long, value_name = "FILE")]
        destination: PathBuf,
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// Rename a tenant.
    Update {
        #[command(flatten)]
        tenant: TenantArg,
        /// The new name.
        #[arg(long, value_name = "NAME")]
        new_name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// Invite a user to a role in the tenant: prints an invitation code (shown once) to give
    /// them by a channel you trust; they accept it with `ferro role accept`.
    Add {
        /// The login name that may accept it.
        #[arg(long, value_name = "NAME")]
        user: String,
        /// Administrator, Contributor or Reader.
        #[arg(long, value_name = "ROLE")]
        role: String,
        /// Days the invitation stays open, 1 to 7 (default 7).
        #[arg(long, value_name = "DAYS")]
        expires_in_days: Option<u32>,
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// Accept an invitation (as the logged-in user); the tenant is selected.
    Accept {
        /// The invitation code (fsi_...).
        #[arg(long, value_name = "CODE")]
        code: String,
    },
    /// Change a member's role in the tenant.
    Update {
        /// The user's login name.
        #[arg(long, value_name = "NAME")]
        user: String,
        /// Administrator, Contributor or Reader.
        #[arg(long, value_name = "ROLE")]
        role: String,
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// List the tenant's open invitations.
    ListInvitations {
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// Revoke an open invitation.
    DeleteInvitation {
        /// Invitation ID (`ferro role list-invitations`).
        #[arg(long, value_name = "ID")]
        invitation: String,
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// Remove a user's role in the tenant.
    Delete {
        /// The user's login name.
        #[arg(long, value_name = "NAME")]
        user: String,
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// List the roles in the tenant.
    List {
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// Show one user's role in the tenant.
    Show {
        /// The user's login name.
        #[arg(long, value_name = "NAME")]
        user: String,
        #[command(flatten)]
        tenant: TenantArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProductCommand {
    /// Create a product (and its five default device groups).
    Create {
        /// Name.
        #[arg(long, value_name = "NAME")]
        name: String,
        /// Description.
        #[arg(long, value_name = "TEXT", default_value = "")]
        description: String,
        /// Do not create the default device groups.
        #[arg(long)]
        no_default_device_groups: bool,
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// List products.
    List {
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// Show a product.
    Show {
        /// Product ID or name.
        #[arg(long, value_name = "PRODUCT")]
        product: String,
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// Change a product's name or description.
    Update {
        /// Product ID or name.
        #[arg(long, value_name = "PRODUCT")]
        product: String,
        /// New name.
        #[arg(long, value_name = "NAME")]
        new_name: Option<String>,
        /// New description.
        #[arg(long, value_name = "TEXT")]
        new_description: Option<String>,
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// Delete a product (refused while its device groups hold devices).
    Delete {
        /// Product ID or name.
        #[arg(long, value_name = "PRODUCT")]
        product: String,
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// A product's device groups.
    #[command(subcommand)]
    DeviceGroup(ProductDeviceGroupCommand),
    /// A product's firmware (stage 0) reference values: the TPM PCR 0-7 values its genuine
    /// devices show (docs/attestation.md, "Firmware appraisal").
    #[command(subcommand)]
    FirmwareReference(ProductFirmwareReferenceCommand),
}

#[derive(Debug, Subcommand)]
pub enum ProductFirmwareReferenceCommand {
    /// Register a reference value: devices of the product attest Trusted only with firmware
    /// PCRs equal to one of its values (register the new one before a firmware update).
    Add {
        /// Product ID or name.
        #[arg(long, value_name = "PRODUCT")]
        product: String,
        /// PCRs 0 to 7 in order: 8 SHA-256 values in hex, separated by commas.
        #[arg(
            long,
            value_name = "HEX,...",
            conflicts_with = "from_device",
            required_unless_present = "from_device"
        )]
        pcrs: Option<String>,
        /// Take the values a known-good device of the tenant reported at its last attestation.
        #[arg(long, value_name = "DEVICE_ID")]
        from_device: Option<DeviceId>,
        /// What it is (e.g. the firmware and boot loader versions).
        #[arg(long, value_name = "TEXT", default_value = "")]
        description: String,
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// List the product's reference values.
    List {
        /// Product ID or name.
        #[arg(long, value_name = "PRODUCT")]
        product: String,
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// Delete a reference value (devices that show only it attest Untrusted from then on).
    Delete {
        /// Product ID or name.
        #[arg(long, value_name = "PRODUCT")]
        product: String,
        /// The reference value's ID (`list` shows them).
        #[arg(long, value_name = "ID")]
        reference: ferro_wire::FirmwareReferenceId,
        #[command(flatten)]
        tenant: TenantArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProductDeviceGroupCommand {
    /// Create the five default device groups (those missing).
    CreateDefaults {
        /// Product ID or name.
        #[arg(long, value_name = "PRODUCT")]
        product: String,
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// List the product's device groups.
    List {
        /// Product ID or name.
        #[arg(long, value_name = "PRODUCT")]
        product: String,
        #[command(flatten)]
        tenant: TenantArg,
    },
}

/// Device group settings shared by create and update.
#[derive(Debug, Args)]
pub struct DeviceGroupSettings {
    /// OS feed: Retail or RetailEval.
    #[arg(long, value_name = "FEED")]
    pub os_feed: Option<String>,
    /// UpdateAll, or No3rdPartyAppUpdates (apps stay as they are).
    #[arg(long, value_name = "POLICY")]
    pub update_policy: Option<String>,
    /// Allow crash dumps to be collected (true or false).
    #[arg(long, value_name = "BOOL")]
    pub allow_crash_dumps_collection: Option<bool>,
}

#[derive(Debug, Subcommand)]
pub enum DeviceGroupCommand {
    /// Create a device group in a product.
    Create {
        /// Product ID or name.
        #[arg(long, value_name = "PRODUCT")]
        product: String,
        /// Name, unique in the product.
        #[arg(long, value_name = "NAME")]
        name: String,
        /// Description.
        #[arg(long, value_name = "TEXT", default_value = "")]
        description: String,
        #[command(flatten)]
        settings: DeviceGroupSettings,
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// List device groups.
    List {
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// Show a device group.
    Show {
        /// Device group ID, or PRODUCT/GROUP.
        #[arg(long, value_name = "GROUP")]
        device_group: String,
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// Change a device group.
    Update {
        /// Device group ID, or PRODUCT/GROUP.
        #[arg(long, value_name = "GROUP")]
        device_group: String,
        /// New name.
        #[arg(long, value_name = "NAME")]
        new_name: Option<String>,
        /// New description.
        #[arg(long, value_name = "TEXT")]
        new_description: Option<String>,
        #[command(flatten)]
        settings: DeviceGroupSettings,
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// Delete a device group (refused while it holds devices).
    Delete {
        /// Device group ID, or PRODUCT/GROUP.
        #[arg(long, value_name = "GROUP")]
        device_group: String,
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// A device group's deployments.
    #[command(subcommand)]
    Deployment(DeploymentCommand),
    /// A device group's devices.
    #[command(subcommand)]
    Device(GroupDeviceCommand),
    /// Make every device of the group check for updates now (within seconds, if online).
    UpdateNow {
        /// Device group ID, or PRODUCT/GROUP.
        #[arg(long, value_name = "GROUP")]
        device_group: String,
        #[command(flatten)]
        tenant: TenantArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeploymentCommand {
    /// Deploy a set of images to the group (one image per component); it becomes current. With
    /// --waves it reaches the group's devices in waves, and pauses itself when more than
    /// --max-failure-percent of the devices included so far report a failed update.
    Create {
        /// Device group ID, or PRODUCT/GROUP.
        #[arg(long, value_name = "GROUP")]
        device_group: String,
        /// Image IDs.
        #[arg(long, value_name = "ID", num_args = 1.., required = true)]
        images: Vec<String>,
        /// Roll out in waves: cumulative percentages of the group's devices, increasing, the
        /// last one 100 (e.g. 10,50,100).
        #[arg(long, value_name = "PERCENTS", value_delimiter = ',', num_args = 1..,
            requires_all = ["wave_wait_minutes", "max_failure_percent"])]
        waves: Option<Vec<f64>>,
        /// With --waves: minutes from the start of one wave to the start of the next (0 to
        /// 43200, i.e. 30 days).
        #[arg(long, value_name = "MINUTES", requires = "waves")]
        wave_wait_minutes: Option<u64>,
        /// With --waves: pause the rollout when more than this percentage of the devices
        /// included so far report a failed update (0 to 100).
        #[arg(long, value_name = "PERCENT", requires = "waves")]
        max_failure_percent: Option<f64>,
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// List the group's deployments, newest (current) first.
    List {
        /// Device group ID, or PRODUCT/GROUP.
        #[arg(long, value_name = "GROUP")]
        device_group: String,
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// Show where a deployment's rollout stands: the wave reached, the devices included,
    /// targeted and failed, and why it paused.
    ShowRollout(RolloutArgs),
    /// Pause a deployment's rollout: no further wave starts; devices already included keep it.
    Pause(RolloutArgs),
    /// Resume a paused rollout: the current wave's wait starts again, and failures reported so
    /// far no longer count.
    Resume(RolloutArgs),
}

/// Which deployment's rollout.
#[derive(Debug, Args)]
pub struct RolloutArgs {
    /// Device group ID, or PRODUCT/GROUP.
    #[arg(long, value_name = "GROUP")]
    pub device_group: String,
    /// Deployment ID (default: the group's current deployment).
    #[arg(long, value_name = "ID")]
    pub deployment: Option<String>,
    #[command(flatten)]
    pub tenant: TenantArg,
}

#[derive(Debug, Subcommand)]
pub enum GroupDeviceCommand {
    /// List the devices in the group.
    List {
        /// Device group ID, or PRODUCT/GROUP.
        #[arg(long, value_name = "GROUP")]
        device_group: String,
        #[command(flatten)]
        tenant: TenantArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImagePackageCommand {
    /// Pack an application folder (app_manifest.json, its entry point and resources) into a signed image package.
    PackApplication(PackApplicationArgs),
    /// Pack a board configuration file into a signed image package.
    PackBoardConfig(PackBoardConfigArgs),
    /// Pack an OS bundle folder (bin/ferro-device and what it needs) into a signed image package.
    PackOs(PackOsArgs),
    /// Show an image package's metadata, without checking its signature.
    Show(ShowArgs),
    /// Verify an image package: its signature, metadata and every payload byte.
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub struct SigningArgs {
    /// PKCS#8 PEM private key to sign with. Default: your test-signing key, made on first use in
    /// your configuration directory (devices accept it only with the appDevelopment capability).
    #[arg(long, value_name = "KEY")]
    pub signing_key: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Image version, MAJOR.MINOR.PATCH.
    #[arg(long, value_name = "VERSION", default_value = "1.0.0")]
    pub version: String,
    /// Security version: devices refuse images below the highest they have accepted (anti-rollback).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub security_version: u32,
}

#[derive(Debug, Args)]
pub struct PackApplicationArgs {
    /// Folder holding app_manifest.json, the entry point it names and read-only resources.
    #[arg(long, value_name = "DIR")]
    pub package_directory: PathBuf,
    /// Where to write the image package.
    #[arg(long, value_name = "FILE")]
    pub destination: PathBuf,
    /// Folders to search for the target hardware definition and its imports.
    #[arg(long, value_name = "DIR", num_args = 1..)]
    pub hardware_definitions: Vec<PathBuf>,
    /// The hardware definition that `$NAME` peripheral values in the manifest resolve through.
    #[arg(long, value_name = "FILE")]
    pub target_definition_filename: Option<PathBuf>,
    /// Mark the image as a debug build.
    #[arg(long)]
    pub debug_build: bool,
    #[command(flatten)]
    pub version: VersionArgs,
    #[command(flatten)]
    pub signing: SigningArgs,
}

#[derive(Debug, Args)]
pub struct PackBoardConfigArgs {
    /// The board configuration (JSON) to pack.
    #[arg(long, value_name = "FILE")]
    pub board_config_file: PathBuf,
    /// Where to write the image package.
    #[arg(long, value_name = "FILE")]
    pub destination: PathBuf,
    #[command(flatten)]
    pub version: VersionArgs,
    #[command(flatten)]
    pub signing: SigningArgs,
}

#[derive(Debug, Args)]
pub struct PackOsArgs {
    /// The OS bundle folder; it must hold bin/ferro-device.
    #[arg(long, value_name = "DIR")]
    pub os_directory: PathBuf,
    /// OS version, MAJOR.MINOR.PATCH.
    #[arg(long, value_name = "VERSION")]
    pub version: String,
    /// Security version: devices refuse OS bundles below the highest they have accepted.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub security_version: u32,
    /// Where to write the image package.
    #[arg(long, value_name = "FILE")]
    pub destination: PathBuf,
    #[command(flatten)]
    pub signing: SigningArgs,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The image package to show.
    #[arg(long, value_name = "FILE")]
    pub image_package: PathBuf,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The image package to verify.
    #[arg(long, value_name = "FILE")]
    pub image_package: PathBuf,
    /// Public keys (SPKI PEM) to trust; repeat for several. Default: your test-signing key.
    #[arg(long, value_name = "PEM")]
    pub public_key: Vec<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum HardwareDefinitionCommand {
    /// Write a Rust module of constants for the peripherals of a hardware definition.
    GenerateHeader(HeaderArgs),
    /// Check that the generated Rust module of a hardware definition is up to date.
    TestHeader(HeaderArgs),
}

#[derive(Debug, Args)]
pub struct HeaderArgs {
    /// The hardware definition (JSON).
    #[arg(long, value_name = "FILE")]
    pub hardware_definition_file: PathBuf,
    /// Extra folders to search for its imports.
    #[arg(long, value_name = "DIR", num_args = 1..)]
    pub hardware_definitions: Vec<PathBuf>,
    /// The Rust module to write or check. Default: inc/hw/<name>.rs beside the definition, as azsphere does for C headers.
    #[arg(long, value_name = "FILE")]
    pub destination: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    #[test]
    fn command_tree_is_consistent() {
        Cli::command().debug_assert();
    }
}
