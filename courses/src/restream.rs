//! Restream destinations: third-party live services (RTMP) that a live lesson is pushed to.
//! Teachers add them through the API ([`crate::api`]); the server pushes to them while the
//! lesson is live and reports how each one is doing on the [`RestreamBoard`].
//!
//! Invariants: a destination's stream key is a secret. It is parsed into [`StreamSecret`],
//! whose `Debug` hides it; API answers carry only [`StreamSecret::masked`]. A destination is
//! added only when its host resolves to an address the server's [`OutboundPolicy`] allows
//! ([`RestreamUrl::check_outbound`]); the RTMP client checks again at every connect.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use classroom_protocol::LessonId;
use classroom_protocol::outbound::{NoAllowedAddress, OutboundPolicy, Restricted};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::mpsc;
use utoipa::ToSchema;

use crate::model::FieldError;

/// At most this many destinations per lesson: each one is a full outgoing stream.
pub const MAX_DESTINATIONS_PER_LESSON: usize = 5;
const MAX_URL_CHARS: usize = 512;
const MAX_KEY_CHARS: usize = 512;
/// How long adding a destination waits for its host name to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// A restream destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DestinationId(pub i64);

impl fmt::Display for DestinationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for DestinationId {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(DestinationId)
    }
}

/// An `rtmp://` or `rtmps://` URL of a live service's ingest application, without the stream
/// key: `rtmp://HOST[:PORT]/APP[/INSTANCE]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestreamUrl {
    url: String,
    tls: bool,
    host: String,
    port: u16,
    app: String,
}

impl RestreamUrl {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let bad = |message: &str| FieldError::new("url", message);
        let url = raw.trim();
        if url.chars().count() > MAX_URL_CHARS {
            return Err(bad(&format!("is longer than {MAX_URL_CHARS} characters")));
        }
        if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(bad("contains spaces or control characters"));
        }
        let (tls, rest) = if let Some(rest) = url.strip_prefix("rtmp://") {
            (false, rest)
        } else if let Some(rest) = url.strip_prefix("rtmps://") {
            (true, rest)
        } else {
            return Err(bad("must start with rtmp:// or rtmps://"));
        };
        let (authority, app) = rest
            .split_once('/')
            .ok_or_else(|| bad("must name the application after the host (rtmp://HOST/APP)"))?;
        let app = app.trim_end_matches('/');
        if app.is_empty() {
            return Err(bad(
                "must name the application after the host (rtmp://HOST/APP)",
            ));
        }
        if authority.contains('@') {
            return Err(bad("must not contain a user name or password"));
        }
        let (host, port) = split_host_port(authority).ok_or_else(|| bad("has a bad port"))?;
        let host_ok = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'));
        if !host_ok {
            return Err(bad("has a bad host name"));
        }
        Ok(RestreamUrl {
            url: url.trim_end_matches('/').to_owned(),
            tls,
            host: host.to_owned(),
            port: port.unwrap_or(if tls { 443 } else { 1935 }),
            app: app.to_owned(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// `rtmps://`: the connection is TLS.
    pub fn tls(&self) -> bool {
        self.tls
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The RTMP application (`live2`, `app/instance`).
    pub fn app(&self) -> &str {
        &self.app
    }

    /// Resolves the host (an address is taken as it is) and refuses it unless one of its
    /// addresses is one the server may connect to. Connects to nothing.
    pub async fn check_outbound(&self, policy: &OutboundPolicy) -> Result<(), DestinationRefused> {
        let unresolvable = || DestinationRefused::Unresolvable {
            host: self.host.clone(),
        };
        let lookup = tokio::net::lookup_host((self.host.as_str(), self.port));
        let resolved = match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
            Ok(Ok(addresses)) => addresses,
            Ok(Err(e)) => {
                tracing::info!(host = %self.host, error = %e, "restream host does not resolve");
                return Err(unresolvable());
            }
            Err(_) => return Err(unresolvable()),
        };
        match policy.filter(resolved) {
            Ok(_) => Ok(()),
            Err(NoAllowedAddress::NoAddress) => Err(unresolvable()),
            Err(NoAllowedAddress::Refused(refused)) => {
                tracing::info!(host = %self.host, address = %refused.address,
                    kind = %refused.kind, "restream destination refused");
                Err(DestinationRefused::NotAllowed {
                    host: self.host.clone(),
                    kind: refused.kind,
                })
            }
        }
    }
}

/// Why a destination cannot be added although its URL is well formed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DestinationRefused {
    /// Every address of the host is one the server does not connect to (loopback, private,
    /// link-local, ...); the message names the kind, not the address.
    #[error(
        "{host} is {kind}; this server restreams to public addresses only (an operator can \
         allow networks with restream.allowed_networks)"
    )]
    NotAllowed { host: String, kind: Restricted },
    #[error("could not find the address of {host}")]
    Unresolvable { host: String },
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`; `None` for a bad port.
fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after.strip_prefix(':') {
            Some(port) => Some((host, Some(port.parse().ok()?))),
            None if after.is_empty() => Some((host, None)),
            None => None,
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host, Some(port.parse().ok()?))),
        None => Some((authority, None)),
    }
}

/// A destination's stream key. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct StreamSecret(String);

impl StreamSecret {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let key = raw.trim();
        if key.is_empty() {
            return Err(FieldError::new("stream_key", "must not be empty"));
        }
        if key.chars().count() > MAX_KEY_CHARS {
            return Err(FieldError::new(
                "stream_key",
                format!("is longer than {MAX_KEY_CHARS} characters"),
            ));
        }
        if !key.chars().all(|c| c.is_ascii_graphic()) {
            return Err(FieldError::new(
                "stream_key",
                "must be printable ASCII without spaces",
            ));
        }
        Ok(StreamSecret(key.to_owned()))
    }

    /// The key itself, for the RTMP publish and the database only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What people see: the last four characters of a long key, nothing of a short one.
    pub fn masked(&self) -> String {
        let chars: Vec<char> = self.0.chars().collect();
        if chars.len() < 12 {
            return "****".to_owned();
        }
        let tail: String = chars[chars.len() - 4..].iter().collect();
        format!("****{tail}")
    }
}

impl fmt::Debug for StreamSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StreamSecret(<hidden>)")
    }
}

/// A destination to add to a lesson, parsed.
#[derive(Debug, Clone)]
pub struct NewDestination {
    pub url: RestreamUrl,
    pub stream_key: StreamSecret,
}

impl NewDestination {
    pub fn parse(url: &str, stream_key: &str) -> Result<Self, FieldError> {
        Ok(NewDestination {
            url: RestreamUrl::parse(url)?,
            stream_key: StreamSecret::parse(stream_key)?,
        })
    }
}

/// A stored destination.
#[derive(Debug, Clone)]
pub struct Destination {
    pub id: DestinationId,
    pub lesson: LessonId,
    pub url: RestreamUrl,
    pub stream_key: StreamSecret,
    pub created_at: OffsetDateTime,
}

/// How a destination is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DestinationState {
    /// The lesson is not live: nothing is pushed.
    Idle,
    /// Connecting and asking to publish.
    Connecting,
    /// Publishing: media flows to the service.
    Live,
    /// The connection failed or dropped; the next attempt is scheduled.
    Retrying,
    /// Given up after repeated failures (see the reason); restarts with the next live lesson.
    Failed,
}

impl DestinationState {
    pub const ALL: [DestinationState; 5] = [
        DestinationState::Idle,
        DestinationState::Connecting,
        DestinationState::Live,
        DestinationState::Retrying,
        DestinationState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DestinationState::Idle => "idle",
            DestinationState::Connecting => "connecting",
            DestinationState::Live => "live",
            DestinationState::Retrying => "retrying",
            DestinationState::Failed => "failed",
        }
    }
}

/// A destination's state with the reason of its last failure and its restart count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationStatus {
    pub state: DestinationState,
    /// Why the last attempt failed (no secrets in it).
    pub reason: Option<String>,
    /// Connections (re)started after the first one, during this live lesson.
    pub restarts: u64,
}

impl Default for DestinationStatus {
    fn default() -> Self {
        DestinationStatus {
            state: DestinationState::Idle,
            reason: None,
            restarts: 0,
        }
    }
}

/// Where the restream reports each destination's status and hears of destinations added or
/// removed while a lesson is live. Shared by the API (reads statuses, announces changes) and
/// the server's restream (writes statuses, applies changes).
#[derive(Clone)]
pub struct RestreamBoard {
    statuses: Arc<Mutex<HashMap<DestinationId, DestinationStatus>>>,
    restarts: Arc<AtomicU64>,
    changes: mpsc::UnboundedSender<LessonId>,
}

impl RestreamBoard {
    /// A board and the receiver of "this lesson's destinations changed".
    pub fn new() -> (Self, mpsc::UnboundedReceiver<LessonId>) {
        let (changes, rx) = mpsc::unbounded_channel();
        let board = RestreamBoard {
            statuses: Arc::default(),
            restarts: Arc::default(),
            changes,
        };
        (board, rx)
    }

    /// The destination's status; idle when nothing is pushed to it.
    pub fn status(&self, id: DestinationId) -> DestinationStatus {
        self.lock().get(&id).cloned().unwrap_or_default()
    }

    pub fn set(&self, id: DestinationId, status: DestinationStatus) {
        self.lock().insert(id, status);
    }

    /// The destination is no longer pushed to: back to idle.
    pub fn clear(&self, id: DestinationId) {
        self.lock().remove(&id);
    }

    /// How many destinations are in each state (idle ones are not counted).
    pub fn count_by_state(&self) -> HashMap<DestinationState, usize> {
        let mut counts = HashMap::new();
        for status in self.lock().values() {
            *counts.entry(status.state).or_insert(0) += 1;
        }
        counts
    }

    /// A destination's connection was started again after a failure.
    pub fn count_restart(&self) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
    }

    /// Restarts of all destinations since the server started.
    pub fn restarts_total(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// The API changed a lesson's destinations.
    pub fn changed(&self, lesson: LessonId) {
        let _ = self.changes.send(lesson);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<DestinationId, DestinationStatus>> {
        // A poisoned map only means a panic elsewhere mid-insert: the data is still usable.
        self.statuses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl fmt::Debug for RestreamBoard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestreamBoard")
            .field("destinations", &self.lock().len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_parsed() {
        let url = RestreamUrl::parse(" rtmp://a.rtmp.youtube.com/live2/ ").expect("valid");
        assert_eq!(url.as_str(), "rtmp://a.rtmp.youtube.com/live2");
        assert_eq!(
            (url.tls(), url.host(), url.port(), url.app()),
            (false, "a.rtmp.youtube.com", 1935, "live2")
        );
        let url = RestreamUrl::parse("rtmps://live-api-s.facebook.com:443/rtmp/").expect("ok");
        assert_eq!((url.tls(), url.port(), url.app()), (true, 443, "rtmp"));
        let url = RestreamUrl::parse("rtmp://127.0.0.1:19350/live").expect("valid");
        assert_eq!((url.host(), url.port()), ("127.0.0.1", 19350));
        let url = RestreamUrl::parse("rtmp://[::1]:1936/app/inst").expect("valid");
        assert_eq!(
            (url.host(), url.port(), url.app()),
            ("::1", 1936, "app/inst")
        );
        for bad in [
            "",
            "http://example.com/live",
            "rtmp://example.com",
            "rtmp://example.com/",
            "rtmp:///live",
            "rtmp://example.com:99999/live",
            "rtmp://user:pw@example.com/live",
            "rtmp://exa mple.com/live",
            "rtmp://example.com/li\nve",
            "rtmp://bad\"host/live",
            &format!("rtmp://example.com/{}", "a".repeat(600)),
        ] {
            assert!(RestreamUrl::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn keys_are_secret() {
        let key = StreamSecret::parse("abcd-efgh-ijkl-mnop").expect("valid");
        assert_eq!(key.masked(), "****mnop");
        assert_eq!(format!("{key:?}"), "StreamSecret(<hidden>)");
        assert_eq!(
            StreamSecret::parse("short").expect("valid").masked(),
            "****"
        );
        assert!(StreamSecret::parse("").is_err());
        assert!(StreamSecret::parse("has space").is_err());
        assert!(StreamSecret::parse(&"k".repeat(513)).is_err());
        let new = NewDestination::parse("rtmp://h/live", "secret-key-123456").expect("ok");
        assert!(!format!("{new:?}").contains("secret-key"));
    }

    #[test]
    fn the_board_counts_states() {
        let (board, _rx) = RestreamBoard::new();
        assert_eq!(board.status(DestinationId(1)).state, DestinationState::Idle);
        board.set(
            DestinationId(1),
            DestinationStatus {
                state: DestinationState::Live,
                reason: None,
                restarts: 2,
            },
        );
        assert_eq!(board.status(DestinationId(1)).restarts, 2);
        assert_eq!(
            board.count_by_state().get(&DestinationState::Live),
            Some(&1)
        );
        board.clear(DestinationId(1));
        assert!(board.count_by_state().is_empty());
    }
}
