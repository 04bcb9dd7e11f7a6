//! The software root of trust, for virtual devices and development.
//!
//! Layout of its directory (mode 0700; every file 0600, written atomically: temporary file, fsync,
//! rename, fsync of the directory):
//!
//! | file | content |
//! |---|---|
//! | `device-key.pem` | the device key, PKCS#8 PEM (`ferro_signing::SoftwareSigningKey`) |
//! | `counters.sealed` | the anti-rollback counters, sealed (signed by the device key) |
//! | `trust-anchors.sealed` | the trust anchors, sealed; created once, never replaced |
//!
//! A sealed file is the CBOR map `{1: payload (bstr), 2: signature (bstr 64)}`, the signature
//! being ECDSA P-256 / SHA-256 by the device key over
//! `"ferrosphere software-rot sealed v1" 0x00 <label> 0x00 <payload>` (the domain prefix can never
//! be a COSE `Sig_structure` or a TLS signed message, so a seal is never usable as either).
//! Measurements live in memory only: a new instance is a new boot.
//!
//! **What this does not protect against.** Whoever can read the directory (root on the device,
//! a backup, a stolen disk image) can copy the device key and impersonate the device forever.
//! Whoever can write it can roll every file back to an older copy (old counters, so old images
//! install again), delete the anchors and the key and re-provision, or simply run their own code
//! and sign anything. Sealing only detects edits and corruption by someone who does not hold the
//! key. Two processes using one directory at once are not coordinated. Measurements are
//! whatever the process was told: nothing measured the process itself. Use it for virtual
//! devices, tests and development; real devices use the TPM backend.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use ferro_cbor::Value;
use ferro_signing::{Signer, SoftwareSigningKey};

use crate::{
    LogEntry, MAX_RANDOM_LEN, MeasurementEvent, MeasurementLog, Measurements, RootOfTrust,
    RootOfTrustKind, TrustAnchors, TrustError, check_counter_name, extend_pcr,
};
use ferro_cbor as cbor;

const KEY_FILE: &str = "device-key.pem";
const COUNTERS_FILE: &str = "counters.sealed";
const ANCHORS_FILE: &str = "trust-anchors.sealed";
const SEAL_DOMAIN: &[u8] = b"ferrosphere software-rot sealed v1\0";
const MAX_SEALED_LEN: u64 = 64 * 1024;

#[derive(Debug, Default)]
struct BootState {
    pcr: [u8; 32],
    log: MeasurementLog,
}

/// A root of trust made of files in one directory. Read the module documentation for what it
/// does not protect against.
#[derive(Debug)]
pub struct SoftwareRootOfTrust {
    dir: PathBuf,
    key: Arc<SoftwareSigningKey>,
    boot: Mutex<BootState>,
    // Serialises read-modify-write of the counters file within this process.
    counters_lock: Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves consistent data (every update is one assignment).
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SoftwareRootOfTrust {
    /// Open the root of trust in `dir` (created with mode 0700 if missing; tightened to 0700 if
    /// it exists), loading the device key or creating one on first use. This is a "boot": the
    /// measurement register starts at zero and the log empty.
    pub fn open(dir: impl AsRef<Path>) -> Result<SoftwareRootOfTrust, TrustError> {
        let dir = dir.as_ref().to_path_buf();
        let io = |source| TrustError::Io {
            path: dir.clone(),
            source,
        };
        fs::create_dir_all(&dir).map_err(io)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(io)?;
        }
        let key = SoftwareSigningKey::load_or_create(&dir.join(KEY_FILE))?;
        Ok(SoftwareRootOfTrust {
            dir,
            key: Arc::new(key),
            boot: Mutex::new(BootState::default()),
            counters_lock: Mutex::new(()),
        })
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Simulate a reboot: the register back to zero, the log emptied.
    pub fn reset_measurements(&self) {
        *lock(&self.boot) = BootState::default();
    }

    fn seal_message(label: &str, payload: &[u8]) -> Vec<u8> {
        let mut m = Vec::with_capacity(SEAL_DOMAIN.len() + label.len() + 1 + payload.len());
        m.extend_from_slice(SEAL_DOMAIN);
        m.extend_from_slice(label.as_bytes());
        m.push(0);
        m.extend_from_slice(payload);
        m
    }

    fn seal(&self, label: &str, payload: Vec<u8>) -> Result<Vec<u8>, TrustError> {
        let sig = self.key.sign(&Self::seal_message(label, &payload))?;
        let v = Value::Map(vec![
            (cbor::uint(1), Value::Bytes(payload)),
            (cbor::uint(2), Value::Bytes(sig.as_bytes().to_vec())),
        ]);
        cbor::encode(&v).map_err(|e| TrustError::Encoding(e.to_string()))
    }

    /// Read and unseal `file`: `None` if it does not exist.
    fn unseal(&self, file: &str, label: &str) -> Result<Option<Vec<u8>>, TrustError> {
        let path = self.dir.join(file);
        let bytes = match read_limited(&path)? {
            Some(b) => b,
            None => return Ok(None),
        };
        let tampered = |reason| TrustError::Tampered {
            path: path.clone(),
            reason,
        };
        let v = cbor::decode(&bytes).map_err(|_| tampered("not CBOR"))?;
        let map = cbor::int_map(&v).ok_or_else(|| tampered("not a sealed map"))?;
        let payload = cbor::get(&map, 1)
            .and_then(cbor::as_bytes)
            .ok_or_else(|| tampered("no payload"))?;
        let sig = cbor::get(&map, 2)
            .and_then(cbor::as_bytes)
            .ok_or_else(|| tampered("no signature"))?;
        if map.len() != 2
            || cbor::encode(&v).ok().as_deref() != Some(bytes.as_slice())
            || !self
                .key
                .public_key()
                .verify_signature(&Self::seal_message(label, payload), sig)
        {
            return Err(tampered("seal does not verify with the device key"));
        }
        Ok(Some(payload.to_vec()))
    }

    fn read_counters(&self) -> Result<BTreeMap<String, u64>, TrustError> {
        let Some(payload) = self.unseal(COUNTERS_FILE, "counters")? else {
            return Ok(BTreeMap::new());
        };
        let path = self.dir.join(COUNTERS_FILE);
        let bad = || TrustError::Tampered {
            path: path.clone(),
            reason: "counters payload malformed",
        };
        let v = cbor::decode(&payload).map_err(|_| bad())?;
        let Value::Map(entries) = v else {
            return Err(bad());
        };
        let mut out = BTreeMap::new();
        for (k, v) in entries {
            let name = cbor::as_text(&k).ok_or_else(bad)?;
            let value = cbor::as_u64(&v).ok_or_else(bad)?;
            if check_counter_name(name).is_err() || out.insert(name.to_string(), value).is_some() {
                return Err(bad());
            }
        }
        Ok(out)
    }

    fn write_counters(&self, counters: &BTreeMap<String, u64>) -> Result<(), TrustError> {
        let v = Value::Map(
            counters
                .iter()
                .map(|(k, v)| (Value::Text(k.clone()), cbor::uint(*v)))
                .collect(),
        );
        let payload = cbor::encode(&v).map_err(|e| TrustError::Encoding(e.to_string()))?;
        let sealed = self.seal("counters", payload)?;
        write_atomic(&self.dir, COUNTERS_FILE, &sealed, true)
    }
}

fn read_limited(path: &Path) -> Result<Option<Vec<u8>>, TrustError> {
    let io = |source| TrustError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(file, MAX_SEALED_LEN + 1),
        &mut bytes,
    )
    .map_err(io)?;
    if bytes.len() as u64 > MAX_SEALED_LEN {
        return Err(TrustError::Tampered {
            path: path.to_path_buf(),
            reason: "file too large",
        });
    }
    Ok(Some(bytes))
}

/// Write `name` in `dir` atomically with mode 0600 (`ferro_files`). With `replace` false, fails
/// with `AlreadyExists` if the file exists (no-clobber rename).
pub(crate) fn write_atomic(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    replace: bool,
) -> Result<(), TrustError> {
    let path = dir.join(name);
    let written = if replace {
        ferro_files::write_atomic(&path, bytes, ferro_files::Mode::SECRET)
    } else {
        ferro_files::create_new(&path, bytes, ferro_files::Mode::SECRET)
    };
    written.map_err(|source| TrustError::Io { path, source })
}

impl RootOfTrust for SoftwareRootOfTrust {
    fn kind(&self) -> RootOfTrustKind {
        RootOfTrustKind::Software
    }

    fn device_key(&self) -> Arc<dyn Signer + Send + Sync> {
        self.key.clone()
    }

    fn extend_measurement(&self, event: &MeasurementEvent) -> Result<LogEntry, TrustError> {
        let mut boot = lock(&self.boot);
        let entry = boot.log.push(event.clone())?;
        boot.pcr = extend_pcr(&boot.pcr, &entry.digest);
        Ok(entry)
    }

    fn read_measurements(&self) -> Result<Measurements, TrustError> {
        let boot = lock(&self.boot);
        Ok(Measurements {
            pcr_value: boot.pcr,
            log: boot.log.clone(),
        })
    }

    fn counter(&self, name: &str) -> Result<u64, TrustError> {
        check_counter_name(name)?;
        let _g = lock(&self.counters_lock);
        Ok(self.read_counters()?.get(name).copied().unwrap_or(0))
    }

    fn advance_counter(&self, name: &str, to: u64) -> Result<(), TrustError> {
        check_counter_name(name)?;
        let _g = lock(&self.counters_lock);
        let mut counters = self.read_counters()?;
        let current = counters.get(name).copied().unwrap_or(0);
        if to < current {
            return Err(TrustError::CounterRollback {
                name: name.to_string(),
                current,
                requested: to,
            });
        }
        if to == current {
            return Ok(());
        }
        counters.insert(name.to_string(), to);
        self.write_counters(&counters)
    }

    fn write_trust_anchors(&self, anchors: &TrustAnchors) -> Result<(), TrustError> {
        let payload = anchors.encode()?;
        if fs::symlink_metadata(self.dir.join(ANCHORS_FILE)).is_ok() {
            return Err(TrustError::AnchorsAlreadyWritten);
        }
        let sealed = self.seal("trust-anchors", payload)?;
        match write_atomic(&self.dir, ANCHORS_FILE, &sealed, false) {
            Err(TrustError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::AlreadyExists =>
            {
                Err(TrustError::AnchorsAlreadyWritten)
            }
            other => other,
        }
    }

    fn read_trust_anchors(&self) -> Result<Option<TrustAnchors>, TrustError> {
        let Some(payload) = self.unseal(ANCHORS_FILE, "trust-anchors")? else {
            return Ok(None);
        };
        TrustAnchors::decode(&payload)
            .map(Some)
            .ok_or_else(|| TrustError::Tampered {
                path: self.dir.join(ANCHORS_FILE),
                reason: "trust anchors payload malformed",
            })
    }

    fn random(&self, n: usize) -> Result<Vec<u8>, TrustError> {
        if n > MAX_RANDOM_LEN {
            return Err(TrustError::RandomTooLong {
                requested: n,
                max: MAX_RANDOM_LEN,
            });
        }
        let mut out = vec![0u8; n];
        getrandom::fill(&mut out).map_err(|_| TrustError::Random)?;
        Ok(out)
    }
}
