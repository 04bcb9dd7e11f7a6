//! Which key signs a package, and which keys `verify` trusts.

use std::path::Path;

use anyhow::{Context, Result, bail};
use ferro_signing::{PublicKey, SoftwareSigningKey, TrustedKeys};

use crate::config;

/// The key named by `--signing-key`, or the developer's test-signing key, made on first use.
pub fn signing_key(explicit: Option<&Path>) -> Result<SoftwareSigningKey> {
    if let Some(path) = explicit {
        return SoftwareSigningKey::load(path)
            .with_context(|| format!("cannot use the signing key {}", path.display()));
    }
    let path = config::default_test_signing_key_path()?;
    let existed = path.exists();
    let key = SoftwareSigningKey::load_or_create(&path).with_context(|| {
        format!(
            "cannot load or create your test-signing key {}",
            path.display()
        )
    })?;
    if !existed {
        eprintln!(
            "Created your test-signing key at {} (key ID {}).\n\
             Devices accept images signed with it only when they hold the appDevelopment capability.",
            path.display(),
            key.key_id()
        );
    }
    Ok(key)
}

/// The keys named by `--public-key`, or else the developer's own test-signing key.
pub fn trusted_keys(public_keys: &[impl AsRef<Path>]) -> Result<TrustedKeys> {
    let mut trusted = TrustedKeys::new();
    for path in public_keys {
        let path = path.as_ref();
        let pem = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the public key {}", path.display()))?;
        let key = PublicKey::from_pem(&pem).with_context(|| {
            format!(
                "{} is not a P-256 public key in SPKI PEM (\"BEGIN PUBLIC KEY\")",
                path.display()
            )
        })?;
        trusted.insert(key);
    }
    if trusted.is_empty() {
        let path = config::default_test_signing_key_path()?;
        if !path.exists() {
            bail!(
                "no key to verify against: pass --public-key with the signer's public key (SPKI PEM); \
                 without it, verify trusts your own test-signing key, which does not exist yet at {}",
                path.display()
            );
        }
        let key = SoftwareSigningKey::load(&path)
            .with_context(|| format!("cannot load your test-signing key {}", path.display()))?;
        trusted.insert(key.public_key().clone());
    }
    Ok(trusted)
}
