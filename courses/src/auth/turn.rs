//! Short-lived TURN credentials for browsers on networks that block UDP and direct TCP, in
//! coturn's shared-secret scheme (`use-auth-secret` with `static-auth-secret`, the "TURN REST
//! API" draft): the username is `<expiry as Unix seconds>:<user id>` and the password is
//! base64(HMAC-SHA1(secret, username)). coturn checks the same HMAC and refuses the username
//! once its expiry has passed, so nothing is stored and nothing needs to be revoked: a
//! credential simply stops working.

use std::time::Duration;

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use classroom_protocol::UserId;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

/// Shorter secrets are refused: the secret is all that stands between the relay and anyone
/// who wants free bandwidth.
const MIN_SECRET_LEN: usize = 16;

/// One entry of `RTCConfiguration.iceServers`, as the browser takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IceServer {
    /// `turn:host:port?transport=udp`, `turns:host:443?transport=tcp`, ...
    pub urls: Vec<String>,
    /// `<expiry>:<user id>`.
    pub username: String,
    /// base64(HMAC-SHA1(shared secret, username)).
    pub credential: String,
}

/// Why the TURN settings cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TurnConfigError {
    #[error("turn.urls is set but turn.secret is empty; set it to coturn's static-auth-secret")]
    MissingSecret,
    #[error("turn.secret is set but turn.urls is empty; list the relay's turn: and turns: URLs")]
    MissingUrls,
    #[error("turn.secret must be at least {MIN_SECRET_LEN} characters")]
    ShortSecret,
    #[error("turn.urls: {0:?} is not a turn: or turns: URL with a host")]
    BadUrl(String),
    #[error("turn.credential_ttl_secs must be between 60 and 604800 (a week)")]
    BadTtl,
}

/// Hands out TURN credentials for the relays an operator runs beside the server.
pub struct TurnCredentials {
    urls: Vec<String>,
    key: hmac::Key,
    ttl: Duration,
}

impl std::fmt::Debug for TurnCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnCredentials")
            .field("urls", &self.urls)
            .field("secret", &"<hidden>")
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl TurnCredentials {
    /// From the `[turn]` settings; `None` when TURN is not configured (no URLs, no secret).
    pub fn new(
        urls: &[String],
        secret: &str,
        ttl: Duration,
    ) -> Result<Option<TurnCredentials>, TurnConfigError> {
        match (urls.is_empty(), secret.is_empty()) {
            (true, true) => return Ok(None),
            (false, true) => return Err(TurnConfigError::MissingSecret),
            (true, false) => return Err(TurnConfigError::MissingUrls),
            (false, false) => {}
        }
        if secret.len() < MIN_SECRET_LEN {
            return Err(TurnConfigError::ShortSecret);
        }
        if !(60..=604_800).contains(&ttl.as_secs()) {
            return Err(TurnConfigError::BadTtl);
        }
        for url in urls {
            let host = url
                .strip_prefix("turn:")
                .or_else(|| url.strip_prefix("turns:"))
                .map(|rest| rest.split(['?', ':']).next().unwrap_or(""));
            if host.is_none_or(str::is_empty) || url.chars().any(char::is_whitespace) {
                return Err(TurnConfigError::BadUrl(url.clone()));
            }
        }
        Ok(Some(TurnCredentials {
            urls: urls.to_vec(),
            key: hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret.as_bytes()),
            ttl,
        }))
    }

    /// How long a credential handed out now works.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The relays, with a credential for `user` that works until `now` + the TTL.
    pub fn for_user(&self, user: UserId, now: OffsetDateTime) -> IceServer {
        let expiry = now
            .unix_timestamp()
            .saturating_add_unsigned(self.ttl.as_secs());
        let username = format!("{expiry}:{user}");
        let tag = hmac::sign(&self.key, username.as_bytes());
        IceServer {
            urls: self.urls.clone(),
            username,
            credential: BASE64.encode(tag.as_ref()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "north-campus-relay-secret";

    fn urls() -> Vec<String> {
        vec![
            "turn:turn.school.example:3478?transport=udp".to_owned(),
            "turns:turn.school.example:443?transport=tcp".to_owned(),
        ]
    }

    #[test]
    fn credentials_follow_coturns_shared_secret_scheme() {
        let turn = TurnCredentials::new(&urls(), SECRET, Duration::from_secs(3600))
            .expect("valid")
            .expect("configured");
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).expect("a time");
        let server = turn.for_user(UserId(42), now);
        assert_eq!(server.urls, urls());
        assert_eq!(server.username, "1700003600:42");
        // What coturn computes: HMAC-SHA1 over the username with the shared secret, base64.
        // Reference value from `printf '1700003600:42' | openssl dgst -sha1 -hmac
        // north-campus-relay-secret -binary | base64`.
        assert_eq!(server.credential, "kctz1lDnmNoFDL9Ph0wxskF3IzM=");
        // Another user or another time: another credential.
        assert_ne!(turn.for_user(UserId(43), now).credential, server.credential);
    }

    #[test]
    fn settings_that_cannot_work_are_refused_and_none_is_off() {
        let ttl = Duration::from_secs(3600);
        assert!(matches!(TurnCredentials::new(&[], "", ttl), Ok(None)));
        assert_eq!(
            TurnCredentials::new(&urls(), "", ttl).err(),
            Some(TurnConfigError::MissingSecret)
        );
        assert_eq!(
            TurnCredentials::new(&[], SECRET, ttl).err(),
            Some(TurnConfigError::MissingUrls)
        );
        assert_eq!(
            TurnCredentials::new(&urls(), "short", ttl).err(),
            Some(TurnConfigError::ShortSecret)
        );
        assert_eq!(
            TurnCredentials::new(&urls(), SECRET, Duration::from_secs(5)).err(),
            Some(TurnConfigError::BadTtl)
        );
        for bad in [
            "stun:x:3478",
            "turn:",
            "turn::3478",
            "https://x",
            "turn:a b",
        ] {
            assert_eq!(
                TurnCredentials::new(&[bad.to_owned()], SECRET, ttl).err(),
                Some(TurnConfigError::BadUrl(bad.to_owned())),
                "{bad}"
            );
        }
    }
}
