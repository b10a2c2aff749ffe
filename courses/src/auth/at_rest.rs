//! Secrets the database holds, kept so that a copy of the database alone gives none of them
//! away: restream stream keys (which `classroomd` must send to the service, so it needs them
//! back) are encrypted; RTMP stream keys (which it only compares) are hashed.
//!
//! - Restream keys: AES-256-GCM with a random 96-bit nonce per value, under a key derived
//!   from the server secret (`auth.jwt_secret` or `<data_dir>/jwt_secret`) with HKDF-SHA256.
//!   Stored as `v1:` + hex(nonce ‖ ciphertext ‖ tag). Changing the server secret makes them
//!   unreadable: the destinations must then be added again.
//! - Stream keys: `sha256:` + hex(SHA-256 of the secret). The secret is 24 random bytes, so a
//!   fast hash is enough: nobody can guess their way back from it.
//!
//! The prefix names the format, so that a later format can live beside this one, and rows
//! from before this module (marked `plain:` by the migration that introduced it) are
//! recognised and converted at start ([`crate::Store::protect_legacy_secrets`]).

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
use subtle::ConstantTimeEq;

/// The prefix of a restream key sealed by [`KeySealer`] (this version of the format).
pub const SEALED_PREFIX: &str = "v1:";
/// The prefix of a hashed stream key secret.
pub const HASHED_PREFIX: &str = "sha256:";
/// The prefix the migration put before values still in plain text, to be converted at start.
pub const LEGACY_PREFIX: &str = "plain:";

/// Separates this key from anything else ever derived from the server secret.
const HKDF_SALT: &[u8] = b"classroom data at rest";
const HKDF_INFO: &[u8] = b"restream stream keys v1";
/// Binds a sealed value to its purpose: it does not open as anything else.
const AAD: &[u8] = b"restream_destinations.stream_key";

/// Why a stored value could not be read back.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("the stored value is not in a format this version knows")]
    UnknownFormat,
    /// Tampered with, cut short, or sealed under another server secret.
    #[error(
        "the stored value cannot be decrypted: the server secret (auth.jwt_secret) \
         changed since it was stored"
    )]
    WrongKey,
}

/// Seals and opens restream keys with the key derived from the server secret.
pub struct KeySealer {
    key: RandomizedNonceKey,
}

impl KeySealer {
    pub fn from_server_secret(server_secret: &[u8]) -> Self {
        let prk = Salt::new(HKDF_SHA256, HKDF_SALT).extract(server_secret);
        let mut key = [0u8; 32];
        prk.expand(&[HKDF_INFO], &AES_256_GCM)
            .and_then(|okm| okm.fill(&mut key))
            .expect("HKDF-SHA256 gives 32 bytes for AES-256");
        KeySealer {
            key: RandomizedNonceKey::new(&AES_256_GCM, &key)
                .expect("a 32-byte key is an AES-256-GCM key"),
        }
    }

    /// `v1:` + hex(nonce ‖ ciphertext ‖ tag), a fresh random nonce each time.
    pub fn seal(&self, plain: &str) -> String {
        let mut in_out = plain.as_bytes().to_vec();
        let nonce = self
            .key
            .seal_in_place_append_tag(Aad::from(AAD), &mut in_out)
            .expect("AES-GCM seals any value shorter than 64 GiB");
        let mut sealed =
            String::with_capacity(SEALED_PREFIX.len() + 2 * (NONCE_LEN + in_out.len()));
        sealed.push_str(SEALED_PREFIX);
        hex_into(&mut sealed, nonce.as_ref());
        hex_into(&mut sealed, &in_out);
        sealed
    }

    /// The plain value of what [`KeySealer::seal`] stored.
    pub fn open(&self, stored: &str) -> Result<String, OpenError> {
        let hex = stored
            .strip_prefix(SEALED_PREFIX)
            .ok_or(OpenError::UnknownFormat)?;
        let bytes = hex_decode(hex).ok_or(OpenError::UnknownFormat)?;
        if bytes.len() < NONCE_LEN {
            return Err(OpenError::UnknownFormat);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce =
            Nonce::try_assume_unique_for_key(nonce).map_err(|_| OpenError::UnknownFormat)?;
        let mut in_out = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(AAD), &mut in_out)
            .map_err(|_| OpenError::WrongKey)?;
        String::from_utf8(plain.to_vec()).map_err(|_| OpenError::WrongKey)
    }
}

impl std::fmt::Debug for KeySealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeySealer(<key hidden>)")
    }
}

/// What is stored for a stream key's secret: `sha256:` + its hash in hex.
pub fn hash_stream_secret(secret: &str) -> String {
    let mut hashed = String::with_capacity(HASHED_PREFIX.len() + 64);
    hashed.push_str(HASHED_PREFIX);
    hex_into(&mut hashed, digest(&SHA256, secret.as_bytes()).as_ref());
    hashed
}

/// Whether `offered` is the secret whose hash is `stored`, compared in constant time (the
/// time taken says nothing about how much of the hash matched). A stored value in another
/// format matches nothing.
pub fn stream_secret_matches(stored: &str, offered: &str) -> bool {
    if !stored.starts_with(HASHED_PREFIX) {
        return false;
    }
    hash_stream_secret(offered)
        .as_bytes()
        .ct_eq(stored.as_bytes())
        .into()
}

fn hex_into(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
}

fn hex_decode(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| {
        char::from(c)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    hex.as_bytes()
        .chunks_exact(2)
        .map(|pair| Some((digit(pair[0])? << 4) | digit(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"a server secret of at least thirty-two bytes";

    #[test]
    fn a_sealed_key_opens_to_itself_and_shows_nothing_of_it() {
        let sealer = KeySealer::from_server_secret(SECRET);
        let key = "live_1234567890_abcdefghijklmnop";
        let sealed = sealer.seal(key);
        assert!(sealed.starts_with("v1:"), "{sealed}");
        assert!(!sealed.contains("abcdef"), "{sealed}");
        assert_eq!(sealer.open(&sealed), Ok(key.to_owned()));
        // A fresh nonce each time: equal keys do not give equal rows.
        assert_ne!(sealer.seal(key), sealed);
        // The same server secret, e.g. after a restart, opens it again.
        assert_eq!(
            KeySealer::from_server_secret(SECRET).open(&sealed),
            Ok(key.to_owned())
        );
        assert_eq!(sealer.open(&sealer.seal("")), Ok(String::new()));
    }

    #[test]
    fn another_secret_or_a_changed_value_does_not_open() {
        let sealer = KeySealer::from_server_secret(SECRET);
        let sealed = sealer.seal("stream-key");
        let other = KeySealer::from_server_secret(b"another server secret, also 32 bytes long");
        assert_eq!(other.open(&sealed), Err(OpenError::WrongKey));
        let last = sealed.len() - 1;
        let flipped = if &sealed[last..] == "0" { "1" } else { "0" };
        let tampered = format!("{}{flipped}", &sealed[..last]);
        assert_eq!(sealer.open(&tampered), Err(OpenError::WrongKey));
        for unknown in [
            "stream-key",
            "plain:stream-key",
            "v1:",
            "v1:zz",
            "v1:abc",
            "v2:00",
        ] {
            assert_eq!(
                sealer.open(unknown),
                Err(OpenError::UnknownFormat),
                "{unknown}"
            );
        }
        assert_eq!(sealer.open("v1:00ff"), Err(OpenError::UnknownFormat));
    }

    #[test]
    fn stream_secrets_are_hashed_and_compared_by_hash() {
        let stored = hash_stream_secret("0123abcd");
        assert_eq!(
            stored,
            // sha256("0123abcd"), as `printf 0123abcd | sha256sum` gives it.
            "sha256:64eab0705394501ced0ff991bf69077fd3846c1d964e3db28d9600891715d848"
        );
        assert!(stream_secret_matches(&stored, "0123abcd"));
        assert!(!stream_secret_matches(&stored, "0123abce"));
        assert!(!stream_secret_matches(&stored, ""));
        // A plain value stored without its hash matches nothing, itself included.
        assert!(!stream_secret_matches("0123abcd", "0123abcd"));
        assert!(!stream_secret_matches("plain:0123abcd", "0123abcd"));
    }
}
