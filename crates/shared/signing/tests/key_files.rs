//! Key file creation, loading and permission checks.

use ferro_signing::{KeyError, SoftwareSigningKey};

#[test]
fn load_or_create_creates_then_reloads_same_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/key.pem");
    let a = SoftwareSigningKey::load_or_create(&path).unwrap();
    let b = SoftwareSigningKey::load_or_create(&path).unwrap();
    assert_eq!(a.key_id(), b.key_id());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    // No temp files left behind.
    let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("key.pem")]);
    // save_new never clobbers.
    assert!(SoftwareSigningKey::generate().save_new(&path).is_err());
    assert_eq!(
        SoftwareSigningKey::load(&path).unwrap().key_id(),
        a.key_id()
    );
}

#[cfg(unix)]
#[test]
fn group_or_world_readable_key_is_refused_with_chmod_hint() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key.pem");
    SoftwareSigningKey::load_or_create(&path).unwrap();
    for mode in [0o644, 0o640, 0o604, 0o660] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let err = SoftwareSigningKey::load_or_create(&path).unwrap_err();
        assert!(
            matches!(err, KeyError::InsecurePermissions { .. }),
            "{mode:o}"
        );
        let msg = err.to_string();
        assert!(msg.contains("chmod 600"), "{msg}");
        assert!(!msg.contains("PRIVATE KEY"));
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
    assert!(SoftwareSigningKey::load(&path).is_ok());
}

#[test]
fn garbage_key_file_is_a_typed_error_without_contents() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key.pem");
    std::fs::write(
        &path,
        "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let err = SoftwareSigningKey::load(&path).unwrap_err();
    assert!(matches!(err, KeyError::InvalidPrivateKey));
    assert!(!err.to_string().contains("c2VjcmV0"));
}

#[test]
fn missing_file_in_missing_dir_is_io_error_on_load() {
    let err =
        SoftwareSigningKey::load(std::path::Path::new("/nonexistent/ferro/key.pem")).unwrap_err();
    assert!(matches!(err, KeyError::Io { .. }));
}
