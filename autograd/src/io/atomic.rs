//! The crash-safe file write of [`crate::io`].

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Error, Result};

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Removes the temporary file unless the write went through.
struct TempFile {
    path: PathBuf,
    done: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Replaces the file at `path` with `bytes`, crash-safely (see the [module docs](crate::io)).
///
/// The temporary file is `.{file name}.{pid}-{n}.tmp` in the same directory (so the rename
/// is atomic), created exclusively; it is synced before the rename and the directory after
/// it. If `path` exists, the new file gets its permissions.
///
/// # Errors
/// [`Error::Io`] naming `path` when any step fails. The temporary file is gone then; `path`
/// is unchanged, except when only the final flush of the directory failed (the new file is
/// in place, but a crash could still undo the rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let name = path.file_name().ok_or_else(|| {
        io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a file path",
        ))
    })?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let permissions = fs::metadata(path).ok().map(|m| m.permissions());
    let (file, tmp) = create_temp(&dir, &name.to_string_lossy()).map_err(io)?;
    let mut guard = TempFile {
        path: tmp,
        done: false,
    };
    write_and_sync(file, bytes, permissions).map_err(io)?;
    fs::rename(&guard.path, path).map_err(io)?;
    guard.done = true;
    sync_dir(&dir).map_err(io)
}

fn create_temp(dir: &Path, name: &str) -> std::io::Result<(File, PathBuf)> {
    loop {
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.{}-{n}.tmp", std::process::id()));
        // create_new refuses an existing file, so nothing of anyone else's is overwritten;
        // a stale file from a crashed process with a recycled pid just moves us to the next n.
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => return Ok((f, tmp)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

fn write_and_sync(
    mut file: File,
    bytes: &[u8],
    permissions: Option<fs::Permissions>,
) -> std::io::Result<()> {
    file.write_all(bytes)?;
    if let Some(p) = permissions {
        file.set_permissions(p)?;
    }
    file.sync_all()
}

/// Flushes the directory entry of a rename to disk (POSIX needs an fsync of the directory
/// for the rename itself to survive a crash; elsewhere the rename is already durable).
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}
