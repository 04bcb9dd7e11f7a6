//! The TPM 2.0 root of trust (cargo feature `tpm`), through tss-esapi 7.x.
//!
//! - **Device key**: an unrestricted ECC P-256 ECDSA/SHA-256 signing key, a primary key of the
//!   owner hierarchy re-created at every open from a fixed template. Primary keys are derived
//!   from the hierarchy seed and the template, so it is the same key every time and nothing is
//!   stored: `fixedTPM | fixedParent | sensitiveDataOrigin`, so it can never leave the TPM. It
//!   changes only if the owner hierarchy is cleared (TPM2_Clear), which is a new device.
//! - **Attestation key**: a restricted ECC P-256 signing primary key (same derivation), used only
//!   for TPM2_Quote; restricted, so nobody can make it sign a forged `TPMS_ATTEST`. Being a
//!   primary key, it is the same key at every open and after every reboot (nothing to persist),
//!   so the copy provisioning writes into the registration record stays valid for the life of
//!   the owner hierarchy; the service accepts quotes by that key only.
//! - **Measurements**: TPM2_PCR_Extend of each log entry digest into PCR [`crate::FERRO_PCR`]
//!   (SHA-256 bank); the log is kept in memory per instance and in `log_path` if configured.
//! - **Counters**: one NV counter index per name (handle `0x01380000 | 19 bits of SHA-256(name)`),
//!   whose value the TPM only increments, plus a write-once NV index (`0x01300000 | same bits`)
//!   holding the counter's raw value at creation (a TPM initialises new counters to the highest
//!   value it has ever counted, so the logical value is `raw - base`).
//! - **Trust anchors**: a write-once NV index at `0x012F0000`. tss-esapi 7.7 has no NV_WriteLock,
//!   so write-once is enforced by the index's policy instead: writes are authorised only by
//!   `PolicyNvWritten(NO) + PolicyCommandCode(NV_Write)`, so the TPM itself refuses every write
//!   after the first (no unlocked window between write and lock).
//! - **EK certificate**: read from the TCG EK Credential Profile's NV indices if the TPM's
//!   manufacturer (or `swtpm_setup --create-ek-cert`) put one there, for the registration record.
//! - **Random**: TPM2_GetRandom. **Quote**: TPM2_Quote by the attestation key over the SHA-256
//!   PCR [`crate::FERRO_PCR`] with the nonce as qualifying data.
//!
//! Assumptions: the owner hierarchy has an empty authorization (so whoever is root with access
//! to the TPM can also undefine NV indices, which resets counters and anchors: set an owner
//! authorization in production, not implemented yet); without a resource manager this instance
//! must be the only TPM user (use `device:/dev/tpmrm0` on hardware). The two keys' transient
//! handles are flushed on drop, policy sessions after use.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};

use ferro_signing::Sha256;
use ferro_signing::{PublicKey, SignError, Signature as FerroSignature, Signer};
use tss_esapi::attributes::{NvIndexAttributesBuilder, ObjectAttributesBuilder};
use tss_esapi::constants::tss::{TPM2_RH_NULL, TPM2_ST_HASHCHECK};
use tss_esapi::constants::{CapabilityType, CommandCode, SessionType};
use tss_esapi::handles::{KeyHandle, NvIndexHandle, NvIndexTpmHandle, ObjectHandle, PcrHandle};
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::resource_handles::{Hierarchy, NvAuth, Provision};
use tss_esapi::interface_types::session_handles::PolicySession;
use tss_esapi::interface_types::structure_tags::AttestationType;
use tss_esapi::structures::{
    CapabilityData, Data, Digest, DigestValues, EccPoint, EccScheme, HashScheme, MaxNvBuffer,
    NvPublicBuilder, PcrSelectionListBuilder, PcrSlot, Public, PublicBuilder,
    PublicEccParametersBuilder, Signature, SignatureScheme, SymmetricDefinition,
};
use tss_esapi::traits::Marshall;
use tss_esapi::tss2_esys::TPMT_TK_HASHCHECK;
use tss_esapi::{Context, TctiNameConf};

use crate::{
    FERRO_PCR, FIRMWARE_PCRS, FirmwarePcrs, LogEntry, MAX_RANDOM_LEN, MeasurementEvent,
    MeasurementLog, Measurements, RootOfTrust, RootOfTrustKind, TpmQuote, TrustAnchors, TrustError,
    check_counter_name,
};

const ANCHORS_INDEX: u32 = 0x012F_0000;
const COUNTER_BASE_INDEX: u32 = 0x0130_0000;
const COUNTER_INDEX: u32 = 0x0138_0000;
/// The most NV increments one [`RootOfTrust::advance_counter`] call makes.
pub const MAX_COUNTER_STEP: u64 = 1024;

/// How to reach the TPM.
#[derive(Clone, Debug)]
pub struct TpmConfig {
    /// A TCTI configuration string: `swtpm:host=127.0.0.1,port=2321`, `device:/dev/tpmrm0`, ...
    pub tcti: String,
    /// Where to keep this boot's measurement log across process restarts (a file on a tmpfs such
    /// as `/run` fits: it must not outlive the boot). `None`: memory only.
    pub log_path: Option<PathBuf>,
}

fn tpm_err(e: tss_esapi::Error) -> TrustError {
    TrustError::Tpm(e.to_string())
}

struct Inner {
    ctx: Context,
    device_key: KeyHandle,
    ak: KeyHandle,
    log: MeasurementLog,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.ctx.flush_context(ObjectHandle::from(self.device_key));
        let _ = self.ctx.flush_context(ObjectHandle::from(self.ak));
    }
}

/// The TPM device key as a [`Signer`].
struct TpmKey {
    inner: Arc<Mutex<Inner>>,
    public: PublicKey,
}

impl fmt::Debug for TpmKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TpmKey(kid {})", self.public.key_id())
    }
}

impl Signer for TpmKey {
    fn public_key(&self) -> &PublicKey {
        &self.public
    }

    fn sign(&self, message: &[u8]) -> Result<FerroSignature, SignError> {
        let mut inner = lock(&self.inner);
        let key = inner.device_key;
        let digest = Digest::try_from(Sha256::digest(message).to_vec())
            .map_err(|e| SignError::Signer(e.to_string()))?;
        let ticket = TPMT_TK_HASHCHECK {
            tag: TPM2_ST_HASHCHECK,
            hierarchy: TPM2_RH_NULL,
            digest: Default::default(),
        }
        .try_into()
        .map_err(|e: tss_esapi::Error| SignError::Signer(e.to_string()))?;
        let sig = inner
            .ctx
            .execute_with_nullauth_session(|ctx| {
                ctx.sign(
                    key,
                    digest,
                    SignatureScheme::EcDsa {
                        hash_scheme: HashScheme::new(HashingAlgorithm::Sha256),
                    },
                    ticket,
                )
            })
            .map_err(|e| SignError::Signer(format!("TPM2_Sign: {e}")))?;
        ecdsa_rs(&sig)
            .map(FerroSignature)
            .ok_or_else(|| SignError::Signer("TPM returned a non-ECDSA signature".into()))
    }
}

fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn pad32(v: &[u8]) -> Option<[u8; 32]> {
    if v.len() > 32 {
        return None;
    }
    let mut out = [0u8; 32];
    out[32 - v.len()..].copy_from_slice(v);
    Some(out)
}

fn ecdsa_rs(sig: &Signature) -> Option<[u8; 64]> {
    let Signature::EcDsa(s) = sig else {
        return None;
    };
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(&pad32(s.signature_r().value())?);
    out[32..].copy_from_slice(&pad32(s.signature_s().value())?);
    Some(out)
}

fn ecc_public_key(public: &Public) -> Result<PublicKey, TrustError> {
    let Public::Ecc { unique, .. } = public else {
        return Err(TrustError::TpmUnexpected("key is not ECC"));
    };
    let (Some(x), Some(y)) = (pad32(unique.x().value()), pad32(unique.y().value())) else {
        return Err(TrustError::TpmUnexpected("ECC point too long"));
    };
    let mut sec1 = vec![4u8];
    sec1.extend_from_slice(&x);
    sec1.extend_from_slice(&y);
    PublicKey::from_sec1_uncompressed(&sec1)
        .map_err(|_| TrustError::TpmUnexpected("ECC point not on P-256"))
}

fn key_template(restricted: bool) -> Result<Public, TrustError> {
    let attrs = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_decrypt(false)
        .with_sign_encrypt(true)
        .with_restricted(restricted)
        .build()
        .map_err(tpm_err)?;
    let params = PublicEccParametersBuilder::new_unrestricted_signing_key(
        EccScheme::EcDsa(HashScheme::new(HashingAlgorithm::Sha256)),
        EccCurve::NistP256,
    )
    .with_restricted(restricted)
    .build()
    .map_err(tpm_err)?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attrs)
        .with_ecc_parameters(params)
        .with_ecc_unique_identifier(EccPoint::default())
        .build()
        .map_err(tpm_err)
}

/// The policy digest of `PolicyNvWritten(NO)` then `PolicyCommandCode(TPM_CC_NV_Write)`.
fn write_once_policy() -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([0u8; 32]);
    h.update(0x0000_018Fu32.to_be_bytes()); // TPM_CC_PolicyNvWritten
    h.update([0u8]); // writtenSet = NO
    let d1 = h.finalize();
    let mut h = Sha256::new();
    h.update(d1);
    h.update(0x0000_016Cu32.to_be_bytes()); // TPM_CC_PolicyCommandCode
    h.update(0x0000_0137u32.to_be_bytes()); // TPM_CC_NV_Write
    h.finalize()
}

fn name_bits(name: &str) -> u32 {
    let d = Sha256::digest(name.as_bytes());
    u32::from_be_bytes([d[0], d[1], d[2], d[3]]) & 0x0007_FFFF
}

fn nv_exists(ctx: &mut Context, index: u32) -> Result<bool, TrustError> {
    let (data, _) = ctx
        .get_capability(CapabilityType::Handles, index, 1)
        .map_err(tpm_err)?;
    let CapabilityData::Handles(list) = data else {
        return Err(TrustError::TpmUnexpected(
            "capability data is not a handle list",
        ));
    };
    Ok(list
        .into_inner()
        .first()
        .is_some_and(|h| u32::from(*h) == index))
}

fn nv_handle(ctx: &mut Context, index: u32) -> Result<NvIndexHandle, TrustError> {
    let tpm_handle = NvIndexTpmHandle::new(index).map_err(tpm_err)?;
    ctx.execute_without_session(|ctx| ctx.tr_from_tpm_public(tpm_handle.into()))
        .map(NvIndexHandle::from)
        .map_err(tpm_err)
}

fn nv_read_all(ctx: &mut Context, index: u32, auth_owner: bool) -> Result<Vec<u8>, TrustError> {
    let handle = nv_handle(ctx, index)?;
    let (public, _) = ctx
        .execute_without_session(|ctx| ctx.nv_read_public(handle))
        .map_err(tpm_err)?;
    let size = u16::try_from(public.data_size())
        .map_err(|_| TrustError::TpmUnexpected("NV index too large"))?;
    let auth = if auth_owner {
        NvAuth::Owner
    } else {
        NvAuth::NvIndex(handle)
    };
    let data = ctx
        .execute_with_nullauth_session(|ctx| ctx.nv_read(auth, handle, size, 0))
        .map_err(tpm_err)?;
    Ok(data.value().to_vec())
}

/// NV indices of EK certificates (TCG EK Credential Profile 2.x), in order of preference: ECC
/// NIST P-256 (low range), then the high range's P-256, P-384 and P-521, then RSA 2048 (low and
/// high range), RSA 3072 and RSA 4096.
const EK_CERT_INDICES: [u32; 8] = [
    0x01C0_000A,
    0x01C0_0014,
    0x01C0_0016,
    0x01C0_0018,
    0x01C0_0002,
    0x01C0_0012,
    0x01C0_001C,
    0x01C0_001E,
];
/// The largest EK certificate read (as a registration record holds).
const MAX_EK_CERT_LEN: usize = 4096;
/// Bytes per NV_Read (below every TPM's TPM_PT_NV_BUFFER_MAX).
const NV_READ_CHUNK: usize = 512;

/// Read NV index `index` in chunks (an EK certificate may exceed one NV_Read), at most `max`
/// bytes; readable with the owner's authorization (empty by assumption) or, failing that, the
/// index's own (EK certificate indices allow both).
fn nv_read_chunked(ctx: &mut Context, index: u32, max: usize) -> Result<Vec<u8>, TrustError> {
    let handle = nv_handle(ctx, index)?;
    let (public, _) = ctx
        .execute_without_session(|ctx| ctx.nv_read_public(handle))
        .map_err(tpm_err)?;
    let size = public.data_size().min(max);
    let read = |ctx: &mut Context, auth: NvAuth| -> Result<Vec<u8>, TrustError> {
        let mut out = Vec::with_capacity(size);
        while out.len() < size {
            let n = (size - out.len()).min(NV_READ_CHUNK);
            let (n16, offset) = (
                u16::try_from(n).map_err(|_| TrustError::TpmUnexpected("NV chunk"))?,
                u16::try_from(out.len()).map_err(|_| TrustError::TpmUnexpected("NV offset"))?,
            );
            let data = ctx
                .execute_with_nullauth_session(|ctx| ctx.nv_read(auth, handle, n16, offset))
                .map_err(tpm_err)?;
            if data.value().is_empty() {
                return Err(TrustError::TpmUnexpected("NV_Read returned nothing"));
            }
            out.extend_from_slice(data.value());
        }
        Ok(out)
    };
    read(ctx, NvAuth::Owner).or_else(|_| read(ctx, NvAuth::NvIndex(handle)))
}

/// The DER certificate at the start of `data` (EK certificate indices may be larger than the
/// certificate and padded): the bytes of the outer SEQUENCE, or `None` if `data` does not start
/// with a complete definite-length SEQUENCE.
fn der_sequence_prefix(data: &[u8]) -> Option<&[u8]> {
    let (&tag, rest) = data.split_first()?;
    if tag != 0x30 {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, header) = match first {
        n if n < 0x80 => (usize::from(n), 2),
        0x81 => (usize::from(*rest.first()?), 3),
        0x82 => (
            usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?])),
            4,
        ),
        _ => return None,
    };
    data.get(..header + len)
}

/// Define a write-once index of `data.len()` bytes and write `data` with the write-once policy.
/// Returns `Ok(false)` if the index existed and was written already.
fn write_once(ctx: &mut Context, index: u32, data: &[u8]) -> Result<bool, TrustError> {
    let handle = if nv_exists(ctx, index)? {
        let handle = nv_handle(ctx, index)?;
        let (public, _) = ctx
            .execute_without_session(|ctx| ctx.nv_read_public(handle))
            .map_err(tpm_err)?;
        if public.attributes().written() {
            return Ok(false);
        }
        handle
    } else {
        let attrs = NvIndexAttributesBuilder::new()
            .with_policy_write(true)
            .with_auth_read(true)
            .with_no_da(true)
            .build()
            .map_err(tpm_err)?;
        let public = NvPublicBuilder::new()
            .with_nv_index(NvIndexTpmHandle::new(index).map_err(tpm_err)?)
            .with_index_name_algorithm(HashingAlgorithm::Sha256)
            .with_index_attributes(attrs)
            .with_index_auth_policy(
                Digest::try_from(write_once_policy().to_vec()).map_err(tpm_err)?,
            )
            .with_data_area_size(data.len())
            .build()
            .map_err(tpm_err)?;
        ctx.execute_with_nullauth_session(|ctx| ctx.nv_define_space(Provision::Owner, None, public))
            .map_err(tpm_err)?
    };
    let session = ctx
        .start_auth_session(
            None,
            None,
            None,
            SessionType::Policy,
            SymmetricDefinition::Null,
            HashingAlgorithm::Sha256,
        )
        .map_err(tpm_err)?
        .ok_or(TrustError::TpmUnexpected("no policy session"))?;
    let result = (|| {
        let policy = PolicySession::try_from(session).map_err(tpm_err)?;
        ctx.execute_without_session(|ctx| {
            ctx.policy_nv_written(policy, false)?;
            ctx.policy_command_code(policy, CommandCode::NvWrite)
        })
        .map_err(tpm_err)?;
        let buffer = MaxNvBuffer::try_from(data.to_vec()).map_err(tpm_err)?;
        ctx.execute_with_session(Some(session), |ctx| {
            ctx.nv_write(NvAuth::NvIndex(handle), handle, buffer, 0)
        })
        .map_err(tpm_err)
    })();
    let _ = ctx.flush_context(ObjectHandle::from(tss_esapi::handles::SessionHandle::from(
        session,
    )));
    result.map(|()| true)
}

/// A TPM 2.0 root of trust. See the module documentation.
pub struct TpmRootOfTrust {
    inner: Arc<Mutex<Inner>>,
    key: Arc<TpmKey>,
    ak_public: PublicKey,
    log_path: Option<PathBuf>,
}

impl fmt::Debug for TpmRootOfTrust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TpmRootOfTrust")
            .field("device_key", &self.key.public.key_id())
            .finish_non_exhaustive()
    }
}

impl TpmRootOfTrust {
    /// Connect to the TPM, create (re-derive) the device key and attestation key, and load this
    /// boot's measurement log from `log_path` if it replays to the PCR (otherwise, e.g. after a
    /// reboot, the log starts empty; a PCR that is not zero then will not replay, which the
    /// verifier reports).
    ///
    /// The TCTI is checked first (a TCP TCTI's command port accepts a connection, a device
    /// TCTI's device opens), so an unreachable TPM is named as such
    /// ([`TrustError::TpmUnreachable`]) instead of by the TSS's response codes. Transient
    /// objects and sessions a previous user left loaded (a device killed before it could flush
    /// its keys: without a resource manager they stay in the TPM and fill its few object slots)
    /// are flushed before the keys are created; through a resource manager (`/dev/tpmrm0`) a
    /// connection sees only its own, so nothing of another user is touched.
    pub fn open(config: &TpmConfig) -> Result<TpmRootOfTrust, TrustError> {
        check_reachable(&config.tcti)?;
        let tcti =
            TctiNameConf::from_str(&config.tcti).map_err(|e| TrustError::TpmUnreachable {
                tcti: config.tcti.clone(),
                reason: format!("not a valid TCTI configuration ({e})"),
            })?;
        let mut ctx = Context::new(tcti).map_err(|e| TrustError::TpmUnreachable {
            tcti: config.tcti.clone(),
            reason: format!("the TSS could not connect ({e})"),
        })?;
        flush_stale_handles(&mut ctx)?;
        let create = |ctx: &mut Context, restricted| {
            let template = key_template(restricted)?;
            ctx.execute_with_nullauth_session(|ctx| {
                ctx.create_primary(Hierarchy::Owner, template, None, None, None, None)
            })
            .map_err(tpm_err)
        };
        let dk = create(&mut ctx, false)?;
        let ak = match create(&mut ctx, true) {
            Ok(ak) => ak,
            Err(e) => {
                let _ = ctx.flush_context(ObjectHandle::from(dk.key_handle));
                return Err(e);
            }
        };
        let mut inner = Inner {
            ctx,
            device_key: dk.key_handle,
            ak: ak.key_handle,
            log: MeasurementLog::new(),
        };
        let public = ecc_public_key(&dk.out_public)?;
        let ak_public = ecc_public_key(&ak.out_public)?;
        if let Some(log) = config.log_path.as_deref().and_then(load_log)
            && log.replay() == read_pcr(&mut inner.ctx)?
        {
            inner.log = log;
        }
        let inner = Arc::new(Mutex::new(inner));
        Ok(TpmRootOfTrust {
            key: Arc::new(TpmKey {
                inner: inner.clone(),
                public,
            }),
            inner,
            ak_public,
            log_path: config.log_path.clone(),
        })
    }
}

/// How long [`check_reachable`] waits for a TCP TCTI's command port.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Fail with [`TrustError::TpmUnreachable`] when the TCTI's endpoint is plainly not there: a
/// `swtpm:`/`mssim:` TCTI whose command port refuses a TCP connection, a `device:` TCTI whose
/// device cannot be opened. Other TCTIs are left to the TSS.
fn check_reachable(tcti: &str) -> Result<(), TrustError> {
    let unreachable = |reason: String| TrustError::TpmUnreachable {
        tcti: tcti.to_string(),
        reason,
    };
    let (name, conf) = tcti.split_once(':').unwrap_or((tcti, ""));
    match name {
        "swtpm" | "mssim" => {
            let (host, port) = tcp_endpoint(conf).map_err(unreachable)?;
            let addrs: Vec<std::net::SocketAddr> =
                std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
                    .map_err(|e| unreachable(format!("cannot resolve {host}: {e}")))?
                    .collect();
            let mut last = None;
            for addr in &addrs {
                match std::net::TcpStream::connect_timeout(addr, CONNECT_TIMEOUT) {
                    Ok(_) => return Ok(()),
                    Err(e) => last = Some(format!("connecting to {addr} failed: {e}")),
                }
            }
            Err(unreachable(
                last.unwrap_or_else(|| format!("{host} has no address")),
            ))
        }
        "device" => {
            let path = if conf.is_empty() { "/dev/tpm0" } else { conf };
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .map(drop)
                .map_err(|e| unreachable(format!("cannot open {path}: {e}")))
        }
        _ => Ok(()),
    }
}

/// The (host, command port) of a `swtpm:`/`mssim:` TCTI's configuration (`host=H,port=P`;
/// `localhost` and 2321 by default, as the TSS).
fn tcp_endpoint(conf: &str) -> Result<(&str, u16), String> {
    let mut host = "localhost";
    let mut port = 2321u16;
    for part in conf.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('=') {
            Some(("host", h)) => host = h,
            Some(("port", p)) => {
                port = p
                    .parse()
                    .map_err(|_| format!("port {p:?} is not a port number"))?
            }
            _ => {}
        }
    }
    Ok((host, port))
}

/// Power-cycle a virtual TPM as a platform reset does to a real one (docs/trust.md, "What a
/// quote proves"): for a `swtpm:` TCTI, `swtpm_ioctl -i` on its control channel (the command
/// port + 1, swtpm's TCTI convention) resets it (PCRs back to zero; seeds and NV kept), then
/// TPM2_Startup(CLEAR), the platform firmware's first command, starts it again. Other TCTIs are
/// real TPMs (`device:`), or simulators without that control channel: refused, naming it.
pub fn power_cycle_virtual_tpm(tcti: &str) -> Result<(), TrustError> {
    let failed = |reason: String| TrustError::TpmUnreachable {
        tcti: tcti.to_string(),
        reason,
    };
    let (name, conf) = tcti.split_once(':').unwrap_or((tcti, ""));
    if name != "swtpm" {
        return Err(failed(
            "only a swtpm TPM can be power-cycled on its own; a real TPM resets with the \
             platform (reboot it)"
                .into(),
        ));
    }
    let (host, port) = tcp_endpoint(conf).map_err(failed)?;
    let control = port
        .checked_add(1)
        .ok_or_else(|| failed(format!("port {port} has no control port after it")))?;
    let out = std::process::Command::new("swtpm_ioctl")
        .args(["--tcp", &format!("{host}:{control}"), "-i"])
        .output()
        .map_err(|e| failed(format!("cannot run swtpm_ioctl (package swtpm-tools): {e}")))?;
    if !out.status.success() {
        return Err(failed(format!(
            "swtpm_ioctl -i on {host}:{control} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let tcti_conf = TctiNameConf::from_str(tcti)
        .map_err(|e| failed(format!("not a valid TCTI configuration ({e})")))?;
    let mut ctx =
        Context::new(tcti_conf).map_err(|e| failed(format!("the TSS could not connect ({e})")))?;
    ctx.startup(tss_esapi::constants::StartupType::Clear)
        .map_err(tpm_err)
}

/// Flush every transient object and loaded session the TPM reports (see
/// [`TpmRootOfTrust::open`]). A handle that cannot be flushed is left (creating the keys then
/// fails with the TPM's own error).
fn flush_stale_handles(ctx: &mut Context) -> Result<(), TrustError> {
    use tss_esapi::constants::tss::{
        TPM2_HR_HMAC_SESSION, TPM2_HR_POLICY_SESSION, TPM2_HR_TRANSIENT,
    };
    for first in [
        TPM2_HR_TRANSIENT,
        TPM2_HR_HMAC_SESSION,
        TPM2_HR_POLICY_SESSION,
    ] {
        let (data, _) = ctx
            .get_capability(CapabilityType::Handles, first, 64)
            .map_err(tpm_err)?;
        let CapabilityData::Handles(handles) = data else {
            return Err(TrustError::TpmUnexpected(
                "GetCapability(handles) returned no handles",
            ));
        };
        for handle in handles.iter() {
            if let Ok(object) = ctx.tr_from_tpm_public(*handle) {
                let _ = ctx.flush_context(object);
            }
        }
    }
    Ok(())
}

fn load_log(path: &std::path::Path) -> Option<MeasurementLog> {
    let bytes = std::fs::read(path).ok()?;
    let v = ferro_cbor::decode(&bytes).ok()?;
    let ferro_cbor::Value::Array(items) = v else {
        return None;
    };
    let events = items
        .iter()
        .map(MeasurementEvent::from_value)
        .collect::<Option<Vec<_>>>()?;
    Some(MeasurementLog::from_events(events))
}

fn save_log(path: &std::path::Path, log: &MeasurementLog) -> Result<(), TrustError> {
    let v = ferro_cbor::Value::Array(log.entries().iter().map(|e| e.event.to_value()).collect());
    let bytes = ferro_cbor::encode(&v).map_err(|e| TrustError::Encoding(e.to_string()))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or(TrustError::InvalidEvent("log path has no file name"))?;
    crate::software::write_atomic(&dir, name, &bytes, true)
}

fn pcr_selection() -> Result<tss_esapi::structures::PcrSelectionList, TrustError> {
    PcrSelectionListBuilder::new()
        .with_selection(HashingAlgorithm::Sha256, &[ferro_pcr_slot()])
        .build()
        .map_err(tpm_err)
}

/// [`FIRMWARE_PCRS`] as TSS slots.
const FIRMWARE_SLOTS: [PcrSlot; 8] = [
    PcrSlot::Slot0,
    PcrSlot::Slot1,
    PcrSlot::Slot2,
    PcrSlot::Slot3,
    PcrSlot::Slot4,
    PcrSlot::Slot5,
    PcrSlot::Slot6,
    PcrSlot::Slot7,
];

/// The quote's selection: the firmware PCRs 0..=7 and [`FERRO_PCR`], SHA-256 bank (the quote's
/// `pcrDigest` is SHA-256 over their values in that order).
fn quote_selection() -> Result<tss_esapi::structures::PcrSelectionList, TrustError> {
    PcrSelectionListBuilder::new()
        .with_selection(HashingAlgorithm::Sha256, &{
            let mut slots = FIRMWARE_SLOTS.to_vec();
            slots.push(ferro_pcr_slot());
            slots
        })
        .build()
        .map_err(tpm_err)
}

/// PCRs 0..=7 of the SHA-256 bank, in one TPM2_PCR_Read (it returns up to 8 digests).
fn read_firmware_pcrs(ctx: &mut Context) -> Result<FirmwarePcrs, TrustError> {
    const _: () = assert!(*FIRMWARE_PCRS.start() == 0 && *FIRMWARE_PCRS.end() == 7);
    let selection = PcrSelectionListBuilder::new()
        .with_selection(HashingAlgorithm::Sha256, &FIRMWARE_SLOTS)
        .build()
        .map_err(tpm_err)?;
    let (_, read, digests) = ctx
        .execute_without_session(|ctx| ctx.pcr_read(selection.clone()))
        .map_err(tpm_err)?;
    // A TPM answers only the PCRs it has in that bank; every TPM 2.0 has SHA-256 PCRs 0..=7
    // (TCG PC Client), so anything less is refused rather than padded.
    if read != selection || digests.value().len() != 8 {
        return Err(TrustError::TpmUnexpected(
            "the TPM did not return SHA-256 PCRs 0..=7",
        ));
    }
    let mut out = [[0u8; 32]; 8];
    for (slot, d) in out.iter_mut().zip(digests.value()) {
        *slot = <[u8; 32]>::try_from(d.value())
            .map_err(|_| TrustError::TpmUnexpected("PCR is not 32 bytes"))?;
    }
    Ok(out)
}

fn ferro_pcr_slot() -> PcrSlot {
    const _: () = assert!(FERRO_PCR == 15);
    PcrSlot::Slot15
}

fn read_pcr(ctx: &mut Context) -> Result<[u8; 32], TrustError> {
    let selection = pcr_selection()?;
    let (_, _, digests) = ctx
        .execute_without_session(|ctx| ctx.pcr_read(selection))
        .map_err(tpm_err)?;
    let d = digests
        .value()
        .first()
        .ok_or(TrustError::TpmUnexpected("PCR read returned nothing"))?;
    <[u8; 32]>::try_from(d.value()).map_err(|_| TrustError::TpmUnexpected("PCR is not 32 bytes"))
}

impl RootOfTrust for TpmRootOfTrust {
    fn kind(&self) -> RootOfTrustKind {
        RootOfTrustKind::Tpm
    }

    fn device_key(&self) -> Arc<dyn Signer + Send + Sync> {
        self.key.clone()
    }

    fn public_key(&self) -> PublicKey {
        self.key.public.clone()
    }

    fn extend_measurement(&self, event: &MeasurementEvent) -> Result<LogEntry, TrustError> {
        let mut inner = lock(&self.inner);
        let mut log = inner.log.clone();
        let entry = log.push(event.clone())?;
        let mut values = DigestValues::new();
        values.set(
            HashingAlgorithm::Sha256,
            Digest::try_from(entry.digest.to_vec()).map_err(tpm_err)?,
        );
        inner
            .ctx
            .execute_with_nullauth_session(|ctx| ctx.pcr_extend(PcrHandle::Pcr15, values))
            .map_err(tpm_err)?;
        inner.log = log;
        if let Some(path) = &self.log_path {
            save_log(path, &inner.log)?;
        }
        Ok(entry)
    }

    fn read_measurements(&self) -> Result<Measurements, TrustError> {
        let mut inner = lock(&self.inner);
        let pcr_value = read_pcr(&mut inner.ctx)?;
        Ok(Measurements {
            pcr_value,
            log: inner.log.clone(),
        })
    }

    fn counter(&self, name: &str) -> Result<u64, TrustError> {
        check_counter_name(name)?;
        let mut inner = lock(&self.inner);
        counter_value(&mut inner.ctx, name)
    }

    fn advance_counter(&self, name: &str, to: u64) -> Result<(), TrustError> {
        check_counter_name(name)?;
        let mut inner = lock(&self.inner);
        let ctx = &mut inner.ctx;
        let current = counter_value(ctx, name)?;
        if to < current {
            return Err(TrustError::CounterRollback {
                name: name.to_string(),
                current,
                requested: to,
            });
        }
        let step = to - current;
        if step == 0 {
            return Ok(());
        }
        if step > MAX_COUNTER_STEP {
            return Err(TrustError::CounterStepTooLarge {
                name: name.to_string(),
                step,
                max: MAX_COUNTER_STEP,
            });
        }
        let index = COUNTER_INDEX | name_bits(name);
        ensure_counter(ctx, name)?;
        let handle = nv_handle(ctx, index)?;
        for _ in 0..step {
            ctx.execute_with_nullauth_session(|ctx| ctx.nv_increment(NvAuth::Owner, handle))
                .map_err(tpm_err)?;
        }
        Ok(())
    }

    fn write_trust_anchors(&self, anchors: &TrustAnchors) -> Result<(), TrustError> {
        let encoded = anchors.encode()?;
        let len = u16::try_from(encoded.len())
            .map_err(|_| TrustError::InvalidAnchors("encoded anchors too long"))?;
        let mut data = len.to_be_bytes().to_vec();
        data.extend_from_slice(&encoded);
        let mut inner = lock(&self.inner);
        if write_once(&mut inner.ctx, ANCHORS_INDEX, &data)? {
            Ok(())
        } else {
            Err(TrustError::AnchorsAlreadyWritten)
        }
    }

    fn read_trust_anchors(&self) -> Result<Option<TrustAnchors>, TrustError> {
        let mut inner = lock(&self.inner);
        let ctx = &mut inner.ctx;
        if !nv_exists(ctx, ANCHORS_INDEX)? {
            return Ok(None);
        }
        let handle = nv_handle(ctx, ANCHORS_INDEX)?;
        let (public, _) = ctx
            .execute_without_session(|ctx| ctx.nv_read_public(handle))
            .map_err(tpm_err)?;
        if !public.attributes().written() {
            return Ok(None);
        }
        let data = nv_read_all(ctx, ANCHORS_INDEX, false)?;
        let bad = TrustError::TpmUnexpected("trust anchors NV index malformed");
        let len = data
            .get(..2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
            .ok_or(TrustError::TpmUnexpected(
                "trust anchors NV index malformed",
            ))?;
        let body = data.get(2..2 + len).ok_or(bad)?;
        TrustAnchors::decode(body)
            .map(Some)
            .ok_or(TrustError::TpmUnexpected(
                "trust anchors NV index malformed",
            ))
    }

    fn random(&self, n: usize) -> Result<Vec<u8>, TrustError> {
        if n > MAX_RANDOM_LEN {
            return Err(TrustError::RandomTooLong {
                requested: n,
                max: MAX_RANDOM_LEN,
            });
        }
        let mut inner = lock(&self.inner);
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let want = (n - out.len()).min(32);
            let got = inner
                .ctx
                .execute_without_session(|ctx| ctx.get_random(want))
                .map_err(tpm_err)?;
            if got.value().is_empty() {
                return Err(TrustError::TpmUnexpected("GetRandom returned nothing"));
            }
            out.extend_from_slice(got.value());
        }
        out.truncate(n);
        Ok(out)
    }

    fn attestation_key(&self) -> Option<PublicKey> {
        Some(self.ak_public.clone())
    }

    fn ek_certificate(&self) -> Result<Option<Vec<u8>>, TrustError> {
        let mut inner = lock(&self.inner);
        let ctx = &mut inner.ctx;
        for index in EK_CERT_INDICES {
            if !nv_exists(ctx, index)? {
                continue;
            }
            let data = nv_read_chunked(ctx, index, MAX_EK_CERT_LEN)?;
            if let Some(cert) = der_sequence_prefix(&data) {
                return Ok(Some(cert.to_vec()));
            }
        }
        Ok(None)
    }

    fn firmware_pcrs(&self) -> Result<Option<FirmwarePcrs>, TrustError> {
        let mut inner = lock(&self.inner);
        read_firmware_pcrs(&mut inner.ctx).map(Some)
    }

    fn tpm_quote(&self, nonce: &[u8]) -> Result<Option<TpmQuote>, TrustError> {
        let mut inner = lock(&self.inner);
        let ak = inner.ak;
        let qualifying = Data::try_from(nonce.to_vec()).map_err(tpm_err)?;
        let selection = quote_selection()?;
        let (attest, sig) = inner
            .ctx
            .execute_with_nullauth_session(|ctx| {
                ctx.quote(
                    ak,
                    qualifying,
                    SignatureScheme::EcDsa {
                        hash_scheme: HashScheme::new(HashingAlgorithm::Sha256),
                    },
                    selection,
                )
            })
            .map_err(tpm_err)?;
        if attest.attestation_type() != AttestationType::Quote {
            return Err(TrustError::TpmUnexpected("quote is not a quote"));
        }
        let signature = ecdsa_rs(&sig).ok_or(TrustError::TpmUnexpected("quote signature"))?;
        Ok(Some(TpmQuote {
            attest: attest.marshall().map_err(tpm_err)?,
            signature,
            attestation_key: self.ak_public.to_spki_der(),
        }))
    }
}

impl TpmRootOfTrust {
    /// Extend firmware PCR `pcr` (0..=7, SHA-256 bank) with `digest`: what UEFI measured boot
    /// does before any OS runs. For virtual boards and tests only, where the TPM (swtpm) has no
    /// firmware in front of it, so its PCRs 0..=7 stay zero. It gives nobody a power they lack:
    /// TPM2_PCR_Extend of these PCRs needs no authorisation, so any process that reaches the
    /// TPM can do it (docs/trust.md, "What a quote proves"). Refuses other PCRs.
    pub fn extend_firmware_pcr(&self, pcr: u8, digest: &[u8; 32]) -> Result<(), TrustError> {
        let handle = match pcr {
            0 => PcrHandle::Pcr0,
            1 => PcrHandle::Pcr1,
            2 => PcrHandle::Pcr2,
            3 => PcrHandle::Pcr3,
            4 => PcrHandle::Pcr4,
            5 => PcrHandle::Pcr5,
            6 => PcrHandle::Pcr6,
            7 => PcrHandle::Pcr7,
            _ => return Err(TrustError::InvalidEvent("not a firmware PCR (0..=7)")),
        };
        let mut values = DigestValues::new();
        values.set(
            HashingAlgorithm::Sha256,
            Digest::try_from(digest.to_vec()).map_err(tpm_err)?,
        );
        let mut inner = lock(&self.inner);
        inner
            .ctx
            .execute_with_nullauth_session(|ctx| ctx.pcr_extend(handle, values))
            .map_err(tpm_err)
    }
}

/// The logical value of counter `name`: 0 if it does not exist yet, else raw - base.
fn counter_value(ctx: &mut Context, name: &str) -> Result<u64, TrustError> {
    let bits = name_bits(name);
    if !nv_exists(ctx, COUNTER_INDEX | bits)? {
        return Ok(0);
    }
    let raw = read_u64(&nv_read_all(ctx, COUNTER_INDEX | bits, true)?)?;
    if !nv_exists(ctx, COUNTER_BASE_INDEX | bits)? {
        // Created but its base not yet recorded (a crash in between): still at 0.
        return Ok(0);
    }
    let base = read_u64(&nv_read_all(ctx, COUNTER_BASE_INDEX | bits, false)?)?;
    raw.checked_sub(base)
        .ok_or(TrustError::TpmUnexpected("counter below its base"))
}

fn read_u64(b: &[u8]) -> Result<u64, TrustError> {
    <[u8; 8]>::try_from(b)
        .map(u64::from_be_bytes)
        .map_err(|_| TrustError::TpmUnexpected("counter is not 8 bytes"))
}

/// Define counter `name` (and record its base) if it does not exist.
fn ensure_counter(ctx: &mut Context, name: &str) -> Result<(), TrustError> {
    let bits = name_bits(name);
    let index = COUNTER_INDEX | bits;
    if !nv_exists(ctx, index)? {
        let attrs = NvIndexAttributesBuilder::new()
            .with_nv_index_type(tss_esapi::constants::NvIndexType::Counter)
            .with_owner_write(true)
            .with_owner_read(true)
            .build()
            .map_err(tpm_err)?;
        let public = NvPublicBuilder::new()
            .with_nv_index(NvIndexTpmHandle::new(index).map_err(tpm_err)?)
            .with_index_name_algorithm(HashingAlgorithm::Sha256)
            .with_index_attributes(attrs)
            .with_data_area_size(8)
            .build()
            .map_err(tpm_err)?;
        let handle = ctx
            .execute_with_nullauth_session(|ctx| {
                ctx.nv_define_space(Provision::Owner, None, public)
            })
            .map_err(tpm_err)?;
        // A counter reads only after its first increment.
        ctx.execute_with_nullauth_session(|ctx| ctx.nv_increment(NvAuth::Owner, handle))
            .map_err(tpm_err)?;
    }
    let base_index = COUNTER_BASE_INDEX | bits;
    let base_written = nv_exists(ctx, base_index)? && {
        let h = nv_handle(ctx, base_index)?;
        let (public, _) = ctx
            .execute_without_session(|ctx| ctx.nv_read_public(h))
            .map_err(tpm_err)?;
        public.attributes().written()
    };
    if !base_written {
        // Only reached right after creation (or a crash just after it), when the logical
        // value is 0: the base is the raw value now.
        let raw = read_u64(&nv_read_all(ctx, index, true)?)?;
        write_once(ctx, base_index, &raw.to_be_bytes())?;
    }
    Ok(())
}
