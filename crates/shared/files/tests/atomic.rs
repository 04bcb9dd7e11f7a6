//! The atomic write's promises: exact modes whatever the umask, replacing and no-clobber
//! creation, and nothing partial visible (nor any temporary file left) after a failure.

use std::io::Write;
use std::path::Path;

use ferro_files::{AtomicFile, Mode, create_new, write_atomic};

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
#[test]
fn files_get_exactly_the_mode_asked_and_a_replaced_file_never_keeps_a_wider_one() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("secret", Mode::SECRET, 0o600),
        ("public", Mode::PUBLIC, 0o644),
        ("asked", Mode::new(0o640), 0o640),
    ];
    for (name, m, bits) in cases {
        let path = dir.path().join(name);
        write_atomic(&path, name.as_bytes(), m).unwrap();
        assert_eq!(mode(&path), bits, "{name}");
        let new = dir.path().join(format!("{name}.new"));
        create_new(&new, name.as_bytes(), m).unwrap();
        assert_eq!(mode(&new), bits, "{name} (create_new)");
    }
    // A world-readable file replaced by a secret one becomes 0600.
    let path = dir.path().join("was-open");
    std::fs::write(&path, "old").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    write_atomic(&path, b"new", Mode::SECRET).unwrap();
    assert_eq!(mode(&path), 0o600);
    assert_eq!(std::fs::read(&path).unwrap(), b"new");
}

#[test]
fn write_atomic_replaces_an_existing_file_and_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    write_atomic(&path, b"first", Mode::SECRET).unwrap();
    write_atomic(&path, b"second, longer than the first", Mode::SECRET).unwrap();
    write_atomic(&path, b"3", Mode::SECRET).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"3");
    assert_eq!(names(dir.path()), ["state.json"]);
}

#[test]
fn create_new_refuses_an_existing_file_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/key.pem");
    create_new(&path, b"the first key", Mode::SECRET).unwrap();
    let err = create_new(&path, b"another key", Mode::SECRET).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists, "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"the first key");
    assert_eq!(names(&dir.path().join("nested")), ["key.pem"]);
}

/// A writer that fails part way (here: dropped after half its bytes, as a process that fails
/// or panics between writing and committing) leaves the old file whole and no temporary file.
#[test]
fn a_write_abandoned_part_way_leaves_the_old_file_whole_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("boot.json");
    write_atomic(&path, b"{\"slot\":\"a\"}", Mode::SECRET).unwrap();
    let result = (|| -> std::io::Result<()> {
        let mut file = AtomicFile::create(&path, Mode::SECRET)?;
        file.write_all(b"{\"slot\":")?;
        // While the write is in progress the target still holds the old content.
        assert_eq!(std::fs::read(&path)?, b"{\"slot\":\"a\"}");
        Err(std::io::Error::other("simulated failure before commit"))
    })();
    assert!(result.is_err());
    assert_eq!(std::fs::read(&path).unwrap(), b"{\"slot\":\"a\"}");
    assert_eq!(names(dir.path()), ["boot.json"]);
}

/// A commit that fails (the target's name is taken by a directory) leaves the directory as it
/// was and removes the temporary file.
#[test]
fn a_failed_commit_changes_nothing_and_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("taken");
    std::fs::create_dir(&path).unwrap();
    std::fs::write(path.join("inside"), "kept").unwrap();
    assert!(write_atomic(&path, b"new", Mode::SECRET).is_err());
    assert_eq!(names(dir.path()), ["taken"]);
    assert_eq!(std::fs::read(path.join("inside")).unwrap(), b"kept");
}

#[test]
fn write_atomic_into_a_missing_directory_fails_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing/file");
    let err = write_atomic(&path, b"x", Mode::SECRET).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
    assert!(names(dir.path()).is_empty());
}

#[test]
fn an_atomic_file_can_be_read_back_before_it_is_committed() {
    use std::io::{Read, Seek};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("package");
    let mut file = AtomicFile::create(&path, Mode::PUBLIC).unwrap();
    file.write_all(b"payload").unwrap();
    file.file_mut().rewind().unwrap();
    let mut back = String::new();
    file.file_mut().read_to_string(&mut back).unwrap();
    assert_eq!(back, "payload");
    assert!(!path.exists(), "invisible until committed");
    file.commit().unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"payload");
}
