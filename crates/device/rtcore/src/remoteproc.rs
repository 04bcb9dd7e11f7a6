//! The Linux remoteproc backend (untested on hardware here): the kernel's documented sysfs
//! interface starts and stops the remote processor, rpmsg-char carries the mailbox.

use std::path::PathBuf;

/// Where a board's remote processor is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteprocConfig {
    /// The remoteproc device (`/sys/class/remoteproc/remoteproc0`).
    pub remoteproc: PathBuf,
    /// The firmware directory the kernel loads from (`/lib/firmware`).
    pub firmware_dir: PathBuf,
    /// The rpmsg control device (`/dev/rpmsg_ctrl0`) that creates the endpoint device.
    pub rpmsg_ctrl: PathBuf,
    /// The rpmsg channel name the core announces.
    pub channel: String,
}

/// A real-time core behind Linux remoteproc (untested on hardware here).
#[derive(Debug)]
pub struct RemoteprocCore {
    config: RemoteprocConfig,
}

impl RemoteprocCore {
    /// A core driven through `config`.
    pub fn new(config: RemoteprocConfig) -> RemoteprocCore {
        RemoteprocCore { config }
    }

    /// Its configuration.
    pub fn config(&self) -> &RemoteprocConfig {
        &self.config
    }
}
