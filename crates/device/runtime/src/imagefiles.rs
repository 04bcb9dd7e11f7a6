//! The files of an app's own image package, read-only (`wit/device.wit`, interface
//! `imagefiles`; Azure Sphere's `Storage_OpenFileInImagePackage`). The device hands the runtime
//! the regular files of the verified payload at install; an app reads them by their path in the
//! package and nothing else: there is no file system behind this, so no path, however written,
//! reaches outside the package. It grants nothing beyond the app's own signed files, so it is
//! linked for every app.

use std::collections::BTreeMap;
use std::sync::Arc;

/// The longest path an app may ask for (the image format's tar path limit).
pub const MAX_PACKAGE_PATH_BYTES: usize = 255;

/// The regular files of one app's verified image package, by their path in the package
/// (`register_map.json`, `config/points.json`; no leading `/`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackageFiles {
    files: Arc<BTreeMap<String, Arc<[u8]>>>,
}

/// Why a path cannot be read from the package.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackageFileError {
    #[error(
        "{0:?} is not a path inside the image package (relative, without `.` or `..` components, empty components, backslashes or control characters, at most {MAX_PACKAGE_PATH_BYTES} bytes)"
    )]
    BadPath(String),
    #[error("the image package has no file {0:?}")]
    NotFound(String),
}

impl PackageFiles {
    /// The files `entries` names, each `(path in the package, bytes)`. The device passes only
    /// the regular files of a verified payload; a path this module would refuse to read is
    /// refused here too.
    pub fn new(
        entries: impl IntoIterator<Item = (String, Vec<u8>)>,
    ) -> Result<Self, PackageFileError> {
        let mut files = BTreeMap::new();
        for (path, bytes) in entries {
            check_path(&path)?;
            files.insert(path, Arc::from(bytes));
        }
        Ok(Self {
            files: Arc::new(files),
        })
    }

    /// The bytes of the file at `path`.
    pub fn read(&self, path: &str) -> Result<Arc<[u8]>, PackageFileError> {
        check_path(path)?;
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| PackageFileError::NotFound(path.to_owned()))
    }

    /// How many files there are.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// The image format's path rules (docs/image-format.md, "Payloads"): relative, normalized.
fn check_path(path: &str) -> Result<(), PackageFileError> {
    let bad = path.is_empty()
        || path.len() > MAX_PACKAGE_PATH_BYTES
        || path.starts_with('/')
        || path.contains('\\')
        || path.chars().any(char::is_control)
        || path
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..");
    if bad {
        Err(PackageFileError::BadPath(path.to_owned()))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> PackageFiles {
        PackageFiles::new([
            ("register_map.json".to_owned(), b"{}".to_vec()),
            ("config/points.json".to_owned(), b"[]".to_vec()),
        ])
        .unwrap()
    }

    #[test]
    fn reads_files_by_their_package_path() {
        assert_eq!(&*files().read("register_map.json").unwrap(), b"{}");
        assert_eq!(&*files().read("config/points.json").unwrap(), b"[]");
        assert_eq!(
            files().read("missing.json"),
            Err(PackageFileError::NotFound("missing.json".to_owned()))
        );
        // A directory is not a file.
        assert!(matches!(
            files().read("config"),
            Err(PackageFileError::NotFound(_))
        ));
    }

    #[test]
    fn no_path_escapes_the_package() {
        for path in [
            "",
            "/register_map.json",
            "/etc/passwd",
            "../register_map.json",
            "config/../register_map.json",
            "./register_map.json",
            "config//points.json",
            "config/",
            "config\\points.json",
            "register_map.json\0",
            "..",
            ".",
        ] {
            assert_eq!(
                files().read(path),
                Err(PackageFileError::BadPath(path.to_owned())),
                "{path:?}"
            );
        }
        let long = "a/".repeat(128) + "b";
        assert!(matches!(
            files().read(&long),
            Err(PackageFileError::BadPath(_))
        ));
        assert!(PackageFiles::new([("../x".to_owned(), vec![])]).is_err());
    }
}
