//! Files only the server's own user may read: the data directory (0700) and what it holds
//! (0600): the SQLite database with its `-wal` and `-shm`, the token secret. Modes are set
//! explicitly, whatever the umask; files and directories found with wider modes (from an
//! earlier version, or a copy) are narrowed at start, with a warning saying so.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The mode of the data directory.
pub const DIR_MODE: u32 = 0o700;
/// The mode of the files in it.
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` (and missing parents) 0700, or narrows an existing one to 0700.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)?;
    narrow(dir, DIR_MODE)
}

/// Creates `path` empty with mode 0600 if it does not exist; else narrows it to 0600.
pub fn private_file(path: &Path) -> io::Result<()> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
    {
        // The umask may have taken bits away, never added any; set it all the same.
        Ok(_) => fs::set_permissions(path, fs::Permissions::from_mode(FILE_MODE)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => narrow(path, FILE_MODE),
        Err(e) => Err(e),
    }
}

/// Narrows `path` to `mode` if anyone beside its owner may use it; a missing file is fine.
pub fn narrow(path: &Path, mode: u32) -> io::Result<()> {
    let current = match fs::metadata(path) {
        Ok(meta) => meta.permissions().mode() & 0o777,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if current & 0o077 == 0 {
        return Ok(());
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    tracing::warn!(
        path = %path.display(),
        was = format!("{current:o}"),
        now = format!("{mode:o}"),
        "narrowed the permissions of a data file others could read"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("exists").permissions().mode() & 0o777
    }

    #[test]
    fn new_and_existing_files_end_up_private() {
        let root = tempfile::tempdir().expect("temp dir");
        let dir = root.path().join("a/data");
        private_dir(&dir).expect("created");
        assert_eq!(mode(&dir), 0o700);
        let file = dir.join("classroom.db");
        private_file(&file).expect("created");
        assert_eq!(mode(&file), 0o600);

        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod");
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).expect("chmod");
        fs::write(&file, b"kept").expect("write");
        private_dir(&dir).expect("narrowed");
        private_file(&file).expect("narrowed");
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&file), 0o600);
        assert_eq!(
            fs::read(&file).expect("read"),
            b"kept",
            "contents untouched"
        );

        // Narrower than asked is left alone.
        fs::set_permissions(&file, fs::Permissions::from_mode(0o400)).expect("chmod");
        narrow(&file, FILE_MODE).expect("nothing to do");
        assert_eq!(mode(&file), 0o400);
        narrow(&dir.join("missing"), FILE_MODE).expect("a missing file is fine");
    }
}
