//! An exclusive OS file lock (`flock`), released when dropped or when the process dies, so a
//! crash never leaves anything locked. Serializes writers of the registry file and of pushed
//! batch source files across threads and processes.

use std::path::Path;

use crate::error::{Error, Result};

pub(crate) struct FileLock(std::fs::File);

impl FileLock {
    /// Blocks until `path` (created if missing, with its directory) is locked.
    pub(crate) fn acquire(path: &Path) -> Result<FileLock> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        file.lock().map_err(|e| Error::io(path, e))?;
        Ok(FileLock(file))
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}
