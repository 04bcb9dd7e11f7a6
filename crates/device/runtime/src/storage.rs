//! Mutable storage: one file per app, at most `MutableStorage.SizeKB` KiB. Writes and truncates
//! past the quota fail whole (nothing written) with `limit-exceeded`.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::events::ErrorKind;
use crate::host::{HostResult, HostState, api};

use api::types::Error as ApiError;

/// Largest single read.
const MAX_READ: u32 = 64 * 1024;

/// An app's storage file.
#[derive(Debug)]
pub(crate) struct Storage {
    path: PathBuf,
    quota: u64,
    file: Option<File>,
}

/// Where an app's storage lives: `<root>/<component>/mutable.bin` for production images,
/// `<root>/development/<component>/mutable.bin` for sideloaded ones (a component ID is a UUID,
/// so the two never meet).
pub(crate) fn storage_path(root: &Path, app: crate::AppId, area: crate::StorageArea) -> PathBuf {
    let root = match area {
        crate::StorageArea::Production => root.to_path_buf(),
        crate::StorageArea::Development => root.join("development"),
    };
    root.join(app.to_string()).join("mutable.bin")
}

impl Storage {
    pub(crate) fn new(path: PathBuf, quota: u64) -> Self {
        Self {
            path,
            quota,
            file: None,
        }
    }

    fn file(&mut self) -> Result<&mut File, ApiError> {
        if self.file.is_none() {
            if let Some(parent) = self.path.parent() {
                fs::create_dir_all(parent).map_err(|error| io_error(&error))?;
            }
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&self.path)
                .map_err(|error| io_error(&error))?;
            self.file = Some(file);
        }
        self.file
            .as_mut()
            .ok_or_else(|| ApiError::Io("storage unavailable".to_owned()))
    }

    pub(crate) fn size(&mut self) -> Result<u64, ApiError> {
        let file = self.file()?;
        file.metadata()
            .map(|metadata| metadata.len())
            .map_err(|error| io_error(&error))
    }

    fn read(&mut self, offset: u64, len: u32) -> Result<Vec<u8>, ApiError> {
        let len = len.min(MAX_READ);
        let file = self.file()?;
        file.seek(SeekFrom::Start(offset))
            .map_err(|error| io_error(&error))?;
        let mut data = Vec::new();
        file.take(u64::from(len))
            .read_to_end(&mut data)
            .map_err(|error| io_error(&error))?;
        Ok(data)
    }

    fn over_quota(&self, end: Option<u64>) -> Option<ApiError> {
        match end {
            Some(end) if end <= self.quota => None,
            _ => Some(ApiError::LimitExceeded(format!(
                "mutable storage quota is {} bytes",
                self.quota
            ))),
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), ApiError> {
        if let Some(error) = self.over_quota(offset.checked_add(data.len() as u64)) {
            return Err(error);
        }
        let file = self.file()?;
        file.seek(SeekFrom::Start(offset))
            .map_err(|error| io_error(&error))?;
        file.write_all(data).map_err(|error| io_error(&error))?;
        file.flush().map_err(|error| io_error(&error))
    }

    fn truncate(&mut self, len: u64) -> Result<(), ApiError> {
        if let Some(error) = self.over_quota(Some(len)) {
            return Err(error);
        }
        self.file()?.set_len(len).map_err(|error| io_error(&error))
    }
}

fn io_error(error: &std::io::Error) -> ApiError {
    // The path stays out of the message: apps learn nothing of the device's layout.
    ApiError::Io(format!("storage: {}", error.kind()))
}

impl HostState {
    fn storage(&mut self) -> Result<&mut Storage, ApiError> {
        match self.storage.as_mut() {
            Some(storage) => Ok(storage),
            None => Err(self
                .app
                .denied("the app manifest does not grant MutableStorage".to_owned())),
        }
    }

    fn quota_hit<T>(&self, result: Result<T, ApiError>) -> Result<T, ApiError> {
        if let (Err(ApiError::LimitExceeded(_)), Some(storage)) = (&result, &self.storage) {
            self.app.throttled_event(ErrorKind::StorageQuota {
                quota_bytes: storage.quota,
            });
        }
        result
    }
}

impl api::storage::Host for HostState {
    fn size(&mut self) -> HostResult<u64> {
        Ok(self.storage().and_then(Storage::size))
    }

    fn quota(&mut self) -> wasmtime::Result<u64> {
        Ok(self.storage.as_ref().map_or(0, |storage| storage.quota))
    }

    fn read(&mut self, offset: u64, len: u32) -> HostResult<Vec<u8>> {
        Ok(self.storage().and_then(|storage| storage.read(offset, len)))
    }

    fn write(&mut self, offset: u64, data: Vec<u8>) -> HostResult<()> {
        let result = self
            .storage()
            .and_then(|storage| storage.write(offset, &data));
        Ok(self.quota_hit(result))
    }

    fn truncate(&mut self, len: u64) -> HostResult<()> {
        let result = self.storage().and_then(|storage| storage.truncate(len));
        Ok(self.quota_hit(result))
    }

    fn delete_all(&mut self) -> HostResult<()> {
        Ok(self.storage().and_then(|storage| storage.truncate(0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_is_enforced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mut storage = Storage::new(dir.path().join("a/mutable.bin"), 4096);
        storage.write(0, &[1; 4000]).unwrap();
        assert!(matches!(
            storage.write(4000, &[2; 200]),
            Err(ApiError::LimitExceeded(_))
        ));
        assert_eq!(
            storage.size().unwrap(),
            4000,
            "nothing of the refused write landed"
        );
        storage.write(4000, &[2; 96]).unwrap();
        assert!(matches!(
            storage.write(u64::MAX - 1, &[0; 8]),
            Err(ApiError::LimitExceeded(_))
        ));
        assert!(matches!(
            storage.truncate(1 << 40),
            Err(ApiError::LimitExceeded(_))
        ));
        assert_eq!(storage.read(4090, 100).unwrap(), vec![2; 6]);
        assert_eq!(storage.read(10_000, 100).unwrap(), Vec::<u8>::new());
        storage.truncate(0).unwrap();
        assert_eq!(storage.size().unwrap(), 0);
    }
}
