//! The key store: name validation (nothing escapes the directory), file permissions,
//! no-clobber creation, signers without private key access.

use std::sync::Arc;

use ferro_pki::{FileKeyStore, KeyName, KeyStore, KeyStoreError};
use ferro_signing::{Purpose, TrustedKeys, sign1, verify1};
use uuid::Uuid;

#[test]
fn key_names_accept_the_well_known_shapes() {
    let t = Uuid::from_u128(0x0123_4567_89ab_4def_8123_4567_89ab_cdef);
    for (name, text) in [
        (KeyName::platform_root(), "platform/root"),
        (KeyName::platform_os_release(), "platform/os-release"),
        (KeyName::platform_capability(), "platform/capability"),
        (KeyName::platform_service_tls(), "platform/service-tls"),
        (
            KeyName::tenant_image(t),
            "tenants/01234567-89ab-4def-8123-456789abcdef/image",
        ),
        (
            KeyName::tenant_metadata(t),
            "tenants/01234567-89ab-4def-8123-456789abcdef/metadata",
        ),
        (
            KeyName::tenant_ca(t, "4a0b").unwrap(),
            "tenants/01234567-89ab-4def-8123-456789abcdef/ca/4a0b",
        ),
    ] {
        assert_eq!(name.as_str(), text);
        assert_eq!(KeyName::new(text).unwrap(), name);
        assert_eq!(text.parse::<KeyName>().unwrap(), name);
    }
}

#[test]
fn key_names_that_could_escape_or_alias_are_refused() {
    let long_segment = "a".repeat(65);
    let too_long = ["abcdefghij"; 21].join("/");
    let many = ["a"; 9].join("/");
    for bad in [
        "",
        "/",
        "/etc/passwd",
        "../root",
        "platform/../../x",
        "platform/./root",
        "platform//root",
        "platform/root/",
        "Platform/Root",
        "platform/root.pem",
        ".hidden",
        "platform\\root",
        "platform/ro ot",
        "platform/r\0t",
        "platform/é",
        long_segment.as_str(),
        too_long.as_str(),
        many.as_str(),
    ] {
        let err = KeyName::new(bad).unwrap_err();
        assert!(
            matches!(err, KeyStoreError::InvalidKeyName { .. }),
            "{bad:?}: {err}"
        );
    }
    assert!(KeyName::tenant_ca(Uuid::nil(), "../x").is_err());
}

#[cfg(unix)]
fn mode(p: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn create_sign_reload_and_never_clobber() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("keys");
    let store = FileKeyStore::open(&dir).unwrap();
    let name = KeyName::tenant_image(Uuid::from_u128(7));
    assert!(!store.exists(&name).unwrap());
    let public = store.create(&name).unwrap();
    assert!(store.exists(&name).unwrap());
    assert_eq!(store.public_key(&name).unwrap(), public);

    let err = store.create(&name).unwrap_err();
    assert!(matches!(err, KeyStoreError::AlreadyExists(_)), "{err}");
    assert_eq!(store.public_key(&name).unwrap(), public);

    // A signer from a freshly opened store (no cache) signs with the same key.
    let reopened = FileKeyStore::open(&dir).unwrap();
    let signer = reopened.signer(&name).unwrap();
    assert_eq!(signer.public_key(), &public);
    let env = sign1(signer.as_ref(), Purpose::TargetSet, b"x", b"").unwrap();
    let trusted: TrustedKeys = [public].into_iter().collect();
    verify1(&env, Purpose::TargetSet, &trusted, b"").unwrap();
    // Concurrent creators on another store instance also see the name taken.
    assert!(matches!(
        reopened.create(&name),
        Err(KeyStoreError::AlreadyExists(_))
    ));

    let file = dir.join("tenants/00000000-0000-0000-0000-000000000007/image.pem");
    assert!(file.is_file());
    #[cfg(unix)]
    {
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("tenants")), 0o700);
        assert_eq!(mode(file.parent().unwrap()), 0o700);
    }
    // Only the key file, no temp files.
    let names: Vec<_> = std::fs::read_dir(file.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1);
    // Debug output names the directory, nothing else.
    let dbg = format!("{store:?}");
    assert!(!dbg.contains("PRIVATE"), "{dbg}");
}

#[test]
fn missing_keys_are_not_found() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FileKeyStore::open(&tmp.path().join("keys")).unwrap();
    let err = store.signer(&KeyName::platform_root()).err().unwrap();
    assert!(matches!(err, KeyStoreError::NotFound(_)), "{err}");
    assert!(matches!(
        store.public_key(&KeyName::platform_root()),
        Err(KeyStoreError::NotFound(_))
    ));
}

#[cfg(unix)]
#[test]
fn insecure_directories_and_key_files_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("keys");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = FileKeyStore::open(&dir).unwrap_err();
    assert!(
        matches!(err, KeyStoreError::InsecureDirectory { mode: 0o755, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("chmod 700"));

    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let store = FileKeyStore::open(&dir).unwrap();
    store.create(&KeyName::platform_root()).unwrap();
    let file = dir.join("platform/root.pem");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let fresh = FileKeyStore::open(&dir).unwrap();
    let err = fresh.signer(&KeyName::platform_root()).err().unwrap();
    assert!(matches!(err, KeyStoreError::Key { .. }), "{err}");

    let file_path = tmp.path().join("plain-file");
    std::fs::write(&file_path, b"x").unwrap();
    assert!(FileKeyStore::open(&file_path).is_err());
}

#[test]
fn signers_are_shareable_across_threads() {
    let tmp = tempfile::tempdir().unwrap();
    let store: Arc<dyn KeyStore> = Arc::new(FileKeyStore::open(&tmp.path().join("keys")).unwrap());
    let name = KeyName::platform_capability();
    let public = store.create(&name).unwrap();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let store = Arc::clone(&store);
            let name = name.clone();
            std::thread::spawn(move || {
                let s = store.signer(&name).unwrap();
                sign1(s.as_ref(), Purpose::CapabilityFile, b"p", b"").unwrap()
            })
        })
        .collect();
    let trusted: TrustedKeys = [public].into_iter().collect();
    for h in handles {
        verify1(&h.join().unwrap(), Purpose::CapabilityFile, &trusted, b"").unwrap();
    }
}
