//! The token signing secret: from config, or generated on first start and kept in the data
//! directory. There is never a built-in default.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

const SECRET_FILE: &str = "jwt_secret";
const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read or create the token secret {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the token secret {origin} is too short: it needs at least {MIN_SECRET_BYTES} bytes")]
    TooShort { origin: String },
}

/// The configured secret if any, else the one in `data_dir`, created on first start.
pub fn load_or_create_secret(
    configured: Option<&str>,
    data_dir: &Path,
) -> Result<Vec<u8>, SecretError> {
    if let Some(secret) = configured {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(SecretError::TooShort {
                origin: "in auth.jwt_secret".into(),
            });
        }
        return Ok(secret.as_bytes().to_vec());
    }
    let path = data_dir.join(SECRET_FILE);
    let io = |source| SecretError::Io {
        path: path.clone(),
        source,
    };
    match fs::read_to_string(&path) {
        Ok(text) => {
            // Written 0600 by us, but possibly copied or restored wider since.
            crate::private_files::narrow(&path, crate::private_files::FILE_MODE).map_err(io)?;
            let secret = text.trim();
            if secret.len() < MIN_SECRET_BYTES {
                return Err(SecretError::TooShort {
                    origin: format!("in {}", path.display()),
                });
            }
            Ok(secret.as_bytes().to_vec())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            crate::private_files::private_dir(data_dir).map_err(io)?;
            let secret = random_token(48);
            // create_new: two processes starting at once cannot overwrite each other's secret.
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(io)?;
            file.write_all(secret.as_bytes()).map_err(io)?;
            file.sync_all().map_err(io)?;
            tracing::info!(path = %path.display(), "generated a new token signing secret");
            Ok(secret.into_bytes())
        }
        Err(e) => Err(io(e)),
    }
}

/// `bytes` random bytes from the operating system's CSPRNG, hex-encoded.
pub fn random_token(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    rand::fill(&mut raw[..]);
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_created_once_and_kept() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = load_or_create_secret(None, dir.path()).expect("created");
        let second = load_or_create_secret(None, dir.path()).expect("read back");
        assert_eq!(first, second);
        assert!(first.len() >= MIN_SECRET_BYTES);
        let mode = fs::metadata(dir.path().join(SECRET_FILE))
            .expect("exists")
            .permissions();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.mode() & 0o777, 0o600);
    }

    #[test]
    fn short_configured_secret_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(matches!(
            load_or_create_secret(Some("short"), dir.path()),
            Err(SecretError::TooShort { .. })
        ));
    }
}
