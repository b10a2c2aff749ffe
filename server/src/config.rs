//! Configuration, in layers: built-in defaults, then a TOML file, then `CLASSROOM_*`
//! environment variables (`__` separates sections: `CLASSROOM_HTTP__ADDR`), then command-line
//! flags. An unknown key or a bad value stops start-up with a message naming it.
//! `classroomd.example.toml` at the repository root documents every key.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use classroom_courses::auth::RateLimitConfig;
use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// The whole configuration of `classroomd`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the SQLite database, the token secret and recordings live.
    pub data_dir: PathBuf,
    pub http: HttpConfig,
    pub database: DatabaseConfig,
    pub auth: AuthConfig,
    pub rate_limit: RateLimitConfig,
    pub signaling: SignalingSettings,
    pub media: MediaConfig,
    pub restream: crate::restream::RestreamSettings,
    pub recorder: classroom_recorder::RecorderConfig,
    /// Course documents: converters and limits (prepared by the recorder's workers).
    pub documents: classroom_recorder::DocumentConfig,
    pub rtmp: RtmpConfig,
    pub turn: TurnConfig,
    pub cluster: crate::cluster::ClusterConfig,
    pub log: LogConfig,
    /// Webhook deliveries: retries and timeout.
    pub webhooks: crate::webhook::WebhookConfig,
}

/// The RTMP ingest: encoders (OBS, hardware) publish `rtmp://HOST:PORT/live/STREAM_KEY`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RtmpConfig {
    /// Listen for encoders at all; `false` turns the ingest off.
    pub enabled: bool,
    /// The TCP address encoders connect to; port 0 picks a free port.
    pub addr: SocketAddr,
    /// The server URL teachers put into their encoder (`rtmp://school.example:1935/live`);
    /// `{host}` stands for the host name the teacher's browser used. Empty: `rtmp://` plus
    /// `addr` and `/live`, with `{host}` for a wildcard address.
    pub public_url: String,
    /// Encoder connections at once; more are closed at once.
    pub max_connections: usize,
    /// How long an encoder that dropped keeps its place (its tracks wait for it).
    pub reconnect_grace_secs: u64,
    /// The ffmpeg that converts B-frame video and AAC audio; empty: `ffmpeg` on the PATH.
    pub ffmpeg: String,
}

impl Default for RtmpConfig {
    fn default() -> Self {
        RtmpConfig {
            enabled: true,
            addr: SocketAddr::from(([127, 0, 0, 1], 1935)),
            public_url: String::new(),
            max_connections: 64,
            reconnect_grace_secs: 10,
            ffmpeg: String::new(),
        }
    }
}

/// The SFU: media workers (threads), each with one UDP port for its peers' WebRTC media and
/// one TCP port as the fallback for networks that block UDP (ICE-TCP); worker `i` uses the
/// configured ports plus `i`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// The UDP address the SFU binds; port 0 picks a free port.
    pub udp_addr: SocketAddr,
    /// The TCP address the SFU listens on for ICE-TCP; port 0 picks a free port; empty
    /// (`""`) turns ICE-TCP off.
    #[serde(with = "optional_addr")]
    pub tcp_addr: Option<SocketAddr>,
    /// The IP browsers reach the SFU on, announced as its ICE candidates with the bound ports.
    pub advertised_ip: IpAddr,
    /// The UDP port announced with it; 0 announces the bound port of `udp_addr`.
    pub advertised_port: u16,
    /// Announce the UDP candidate. Off, browsers can only connect over TCP: for testing the
    /// fallback, or where UDP never gets through.
    pub advertise_udp: bool,
    /// Media workers: threads, each with its own SFU and ports, a room on one of them. 0: one
    /// per core this process may use ([`MediaConfig::worker_count`]).
    pub workers: usize,
    /// How long a publisher's latest keyframe (and the video after it) is kept, in
    /// milliseconds, so that a student who joins starts watching at once instead of waiting
    /// for the teacher's next keyframe; 0 turns it off.
    pub first_frame_max_age_ms: u64,
    /// Peers (of all its rooms) a worker takes before a lesson's further participants go to
    /// another worker, joined to the lesson's home worker by an in-process relay. 0: no
    /// limit, a lesson stays on one worker however large.
    pub worker_peer_limit: u64,
    /// The longest burst the SFU's pacer sends to a subscriber at once, in milliseconds at
    /// its pacing rate (about 1.1× the subscriber's bandwidth estimate): a keyframe that fits
    /// leaves at once instead of being spread over the time the estimate needs for it (issue
    /// 17: one-way latency). 40 is str0m's own (and libwebrtc's) burst.
    pub pacer_burst_ms: u64,
    /// How long the SFU keeps what it sent each subscriber for resends (NACK), in
    /// milliseconds: most of a subscriber's memory is its bitrate times this.
    pub resend_history_ms: u64,
}

impl MediaConfig {
    /// The number of workers to start: `workers`, or for 0 one per core this process may run
    /// on (its CPU affinity and cgroup quota count, as `std::thread::available_parallelism`
    /// reads them), at least one.
    pub fn worker_count(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            udp_addr: SocketAddr::from(([127, 0, 0, 1], 8443)),
            tcp_addr: Some(SocketAddr::from(([127, 0, 0, 1], 8443))),
            advertised_ip: IpAddr::from([127, 0, 0, 1]),
            advertised_port: 0,
            advertise_udp: true,
            workers: 0,
            first_frame_max_age_ms: 1000,
            worker_peer_limit: 0,
            pacer_burst_ms: 250,
            resend_history_ms: 1000,
        }
    }
}

/// An address that may be switched off: written as a string, empty for none.
mod optional_addr {
    use std::net::SocketAddr;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(addr: &Option<SocketAddr>, s: S) -> Result<S::Ok, S::Error> {
        match addr {
            Some(addr) => s.collect_str(addr),
            None => s.serialize_str(""),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
        let text = String::deserialize(d)?;
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        text.parse().map(Some).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignalingSettings {
    /// Participants one room admits.
    pub max_participants_per_room: usize,
    /// How long a dropped connection keeps its place in the room.
    pub reconnect_grace_secs: u64,
    /// Past this many participants a room's students hear only of the notable ones
    /// (moderators, stage, hands) and the head count; moderators page in the rest.
    pub full_roster_limit: usize,
    /// Larger signaling messages are refused.
    pub max_message_bytes: usize,
    /// Signaling messages per second per connection, on average.
    pub messages_per_second: u32,
    /// Signaling messages a connection may send at once.
    pub message_burst: u32,
    /// On SIGTERM the node drains: participants are sent to join again (on another node, or
    /// here after the restart) and the node waits at most this long for them to go.
    pub drain_timeout_secs: u64,
}

impl Default for SignalingSettings {
    fn default() -> Self {
        SignalingSettings {
            max_participants_per_room: 500,
            reconnect_grace_secs: 20,
            full_roster_limit: 150,
            max_message_bytes: 16 * 1024,
            messages_per_second: 20,
            message_burst: 40,
            drain_timeout_secs: 10,
        }
    }
}

impl SignalingSettings {
    pub fn to_config(&self) -> classroom_signaling::SignalingConfig {
        let mut config = classroom_signaling::SignalingConfig::default();
        config.room.max_participants = self.max_participants_per_room;
        config.room.reconnect_grace = std::time::Duration::from_secs(self.reconnect_grace_secs);
        config.room.full_roster_limit = self.full_roster_limit;
        config.max_message_bytes = self.max_message_bytes;
        config.messages_per_second = self.messages_per_second;
        config.message_burst = self.message_burst;
        config
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address and port of the HTTP server (API, WebSocket, web client, metrics).
    pub addr: SocketAddr,
    /// Take the client address from X-Forwarded-For; only behind a reverse proxy you run.
    pub trust_forwarded_for: bool,
    /// Requests to the REST API that take longer are answered 408.
    pub request_timeout_secs: u64,
    /// The origins (`https://school.example`) the web client is served from. When set, a
    /// WebSocket handshake whose `Origin` names another site is refused (403); handshakes
    /// without `Origin` (not from a browser) are let in. Empty: no check.
    pub public_origins: Vec<crate::origin::PublicOrigin>,
    /// A connection must send a request's headers within this many seconds of opening, and of
    /// its previous response (idle keep-alive connections are closed after it too).
    pub header_read_timeout_secs: u64,
    /// Connections one client address (an IPv6 /64) may hold open; more are refused at once.
    pub max_connections_per_address: usize,
    /// Connections the server holds open at once; 0: as many as the descriptor limit allows
    /// after keeping room for the media, RTMP and database connections.
    pub max_connections: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` or `postgres://USER@HOST:PORT/DB`. Empty: SQLite in the data directory.
    pub url: String,
    pub max_connections: u32,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Secret for signing tokens, at least 32 bytes. Empty: generated on first start and kept
    /// in `<data_dir>/jwt_secret`. Several nodes must share one.
    pub jwt_secret: String,
    /// How long a sign-in lasts.
    pub session_ttl_secs: u64,
    /// How long a join token may wait before it is used to enter a room.
    pub join_ttl_secs: u64,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field(
                "jwt_secret",
                &if self.jwt_secret.is_empty() {
                    "<generated>"
                } else {
                    "<set>"
                },
            )
            .field("session_ttl_secs", &self.session_ttl_secs)
            .field("join_ttl_secs", &self.join_ttl_secs)
            .finish()
    }
}

/// TURN relays (coturn with `use-auth-secret`) for browsers on networks that block UDP and
/// direct TCP: their URLs and the shared secret go out as short-lived credentials with every
/// join token. Off while `urls` is empty.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TurnConfig {
    /// `turn:HOST:3478?transport=udp`, `turn:HOST:3478?transport=tcp`,
    /// `turns:HOST:443?transport=tcp`.
    pub urls: Vec<String>,
    /// coturn's `static-auth-secret`.
    pub secret: String,
    /// How long a credential works: longer than the longest lesson, since the browser's relay
    /// allocation is refreshed with the same credential.
    pub credential_ttl_secs: u64,
}

impl Default for TurnConfig {
    fn default() -> Self {
        TurnConfig {
            urls: Vec::new(),
            secret: String::new(),
            credential_ttl_secs: 6 * 3600,
        }
    }
}

impl std::fmt::Debug for TurnConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnConfig")
            .field("urls", &self.urls)
            .field("secret", &if self.secret.is_empty() { "" } else { "<set>" })
            .field("credential_ttl_secs", &self.credential_ttl_secs)
            .finish()
    }
}

impl TurnConfig {
    /// The credentials the API hands out; `None` when TURN is off.
    pub fn credentials(
        &self,
    ) -> Result<
        Option<classroom_courses::auth::TurnCredentials>,
        classroom_courses::auth::TurnConfigError,
    > {
        classroom_courses::auth::TurnCredentials::new(
            &self.urls,
            &self.secret,
            std::time::Duration::from_secs(self.credential_ttl_secs),
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing filter: `info`, `classroomd=debug,info`, ... (`RUST_LOG` overrides it).
    pub level: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./data"),
            http: HttpConfig::default(),
            database: DatabaseConfig::default(),
            auth: AuthConfig::default(),
            rate_limit: RateLimitConfig::default(),
            signaling: SignalingSettings::default(),
            media: MediaConfig::default(),
            restream: crate::restream::RestreamSettings::default(),
            recorder: classroom_recorder::RecorderConfig::default(),
            documents: classroom_recorder::DocumentConfig::default(),
            rtmp: RtmpConfig::default(),
            turn: TurnConfig::default(),
            cluster: crate::cluster::ClusterConfig::default(),
            log: LogConfig::default(),
            webhooks: crate::webhook::WebhookConfig::default(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            trust_forwarded_for: false,
            request_timeout_secs: 30,
            public_origins: Vec::new(),
            header_read_timeout_secs: 5,
            // A full room (max_participants_per_room) from one school behind one NAT: each
            // participant holds one WebSocket, and page loads' connections close when idle.
            max_connections_per_address: 512,
            max_connections: 0,
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: String::new(),
            max_connections: 10,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            jwt_secret: String::new(),
            session_ttl_secs: 12 * 3600,
            join_ttl_secs: 600,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// Values given on the command line; `None` leaves the lower layers' value.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpOverrides>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseOverrides>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HttpOverrides {
    pub addr: SocketAddr,
}

#[derive(Debug, Clone, Serialize)]
pub struct DatabaseOverrides {
    pub url: String,
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The file read when no `--config` is given, if it exists.
pub const DEFAULT_CONFIG_FILE: &str = "classroomd.toml";

impl Config {
    /// Loads defaults, then `file` (or `./classroomd.toml` if present), then `CLASSROOM_*`
    /// variables from `env`, then `overrides`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) if !path.exists() => {
                return Err(ConfigError::MissingFile(path.to_path_buf()));
            }
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None if Path::new(DEFAULT_CONFIG_FILE).exists() => {
                figment = figment.merge(Toml::file_exact(DEFAULT_CONFIG_FILE))
            }
            None => {}
        }
        // Read from the given variables rather than the process environment, so tests and
        // several servers in one process do not see each other's settings.
        let vars: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX) && !ENV_NOT_CONFIG.contains(&k.as_str()))
            .collect();
        for (key, value) in &vars {
            let key = key[ENV_PREFIX.len()..].to_lowercase().replace("__", ".");
            figment = figment.merge(Serialized::global(&key, parse_env_value(value)));
        }
        figment = figment.merge(Serialized::defaults(overrides));
        let config: Config = figment
            .extract()
            .map_err(|e| ConfigError::Invalid(describe(e)))?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let invalid = |msg: &str| Err(ConfigError::Invalid(msg.to_string()));
        if self.database.max_connections == 0 {
            return invalid("database.max_connections must be at least 1");
        }
        if self.auth.session_ttl_secs == 0 || self.auth.join_ttl_secs == 0 {
            return invalid("auth.session_ttl_secs and auth.join_ttl_secs must be at least 1");
        }
        if !self.auth.jwt_secret.is_empty() && self.auth.jwt_secret.len() < 32 {
            return invalid(
                "auth.jwt_secret must be at least 32 bytes long (or empty to generate one)",
            );
        }
        if self.signaling.max_participants_per_room == 0
            || self.signaling.max_message_bytes < 1024
            || self.signaling.messages_per_second == 0
            || self.signaling.message_burst == 0
        {
            return invalid(
                "signaling: max_participants_per_room, messages_per_second and message_burst must be at least 1, max_message_bytes at least 1024",
            );
        }
        if !(100..=10_000).contains(&self.media.resend_history_ms) {
            return invalid(
                "media.resend_history_ms must be 100 to 10000: shorter leaves lost packets unrepaired, longer only takes memory",
            );
        }
        if !self.media.advertise_udp && self.media.tcp_addr.is_none() {
            return invalid(
                "media.advertise_udp = false needs media.tcp_addr: browsers could not connect",
            );
        }
        let last_worker = self.media.worker_count() - 1;
        let ports = [
            ("media.udp_addr", Some(self.media.udp_addr.port())),
            ("media.tcp_addr", self.media.tcp_addr.map(|a| a.port())),
            ("media.advertised_port", Some(self.media.advertised_port)),
        ];
        for (what, port) in ports {
            let past_the_end = port
                .filter(|port| *port != 0)
                .is_some_and(|port| usize::from(port) + last_worker > usize::from(u16::MAX));
            if past_the_end {
                return invalid(&format!(
                    "{what}: one port per media worker from this one runs past 65535; \
                     choose a lower port or fewer media.workers"
                ));
            }
        }
        if self.media.advertised_ip.is_unspecified() {
            return invalid(
                "media.advertised_ip must be an address browsers can reach, not 0.0.0.0 or ::",
            );
        }
        if self.rtmp.enabled && self.rtmp.max_connections == 0 {
            return invalid(
                "rtmp.max_connections must be at least 1 (or set rtmp.enabled = false)",
            );
        }
        let url = &self.rtmp.public_url;
        let rtmp_scheme = url.starts_with("rtmp://") || url.starts_with("rtmps://");
        if !url.is_empty() && !rtmp_scheme {
            return invalid("rtmp.public_url must start with rtmp:// or rtmps:// (or be empty)");
        }
        if self.http.request_timeout_secs == 0 {
            return invalid("http.request_timeout_secs must be at least 1");
        }
        let documents = &self.documents;
        if documents.upload_timeout_secs == 0 || documents.time_limit_secs == 0 {
            return invalid(
                "documents.upload_timeout_secs and documents.time_limit_secs must be at least 1",
            );
        }
        if let Err(e) = self.restream.outbound() {
            return invalid(&format!("restream.allowed_networks: {e}"));
        }
        if self.http.header_read_timeout_secs == 0 || self.http.max_connections_per_address == 0 {
            return invalid(
                "http.header_read_timeout_secs and http.max_connections_per_address must be at least 1",
            );
        }
        Ok(())
    }

    /// The database URL: the configured one, or SQLite in the data directory.
    pub fn database_url(&self) -> String {
        if self.database.url.is_empty() {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("classroom.db").display()
            )
        } else {
            self.database.url.clone()
        }
    }
}

const ENV_PREFIX: &str = "CLASSROOM_";
/// Variables with our prefix that are not configuration keys.
const ENV_NOT_CONFIG: &[&str] = &["CLASSROOM_CONFIG"];

/// Environment values are strings; numbers and booleans are recognised so that
/// `CLASSROOM_AUTH__JOIN_TTL_SECS=60` sets a number.
fn parse_env_value(value: &str) -> figment::value::Value {
    value
        .parse::<figment::value::Value>()
        .unwrap_or_else(|_| figment::value::Value::from(value))
}

fn describe(e: figment::Error) -> String {
    e.into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let origin = e
                .metadata
                .as_ref()
                .map(|m| m.name.to_string())
                .unwrap_or_default();
            let mut text = e.kind.to_string();
            if !key.is_empty() {
                text = format!("`{key}`: {text}");
            }
            if !origin.is_empty() {
                text = format!("{text} (from {origin})");
            }
            text
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn layers_apply_in_order() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "data_dir = \"/from/file\"\n[http]\naddr = \"127.0.0.1:9000\"\n[auth]\njoin_ttl_secs = 30\n")
            .expect("write");
        let overrides = Overrides {
            http: Some(HttpOverrides {
                addr: "127.0.0.1:9100".parse().expect("addr"),
            }),
            ..Overrides::default()
        };
        let config = Config::load(
            Some(&file),
            env(&[
                ("CLASSROOM_AUTH__JOIN_TTL_SECS", "45"),
                ("CLASSROOM_DATA_DIR", "/from/env"),
                ("OTHER", "x"),
            ]),
            &overrides,
        )
        .expect("valid");
        assert_eq!(
            config.data_dir,
            PathBuf::from("/from/env"),
            "env beats file"
        );
        assert_eq!(config.auth.join_ttl_secs, 45, "env numbers are numbers");
        assert_eq!(config.http.addr.port(), 9100, "flags beat everything");
        assert_eq!(
            config.auth.session_ttl_secs,
            12 * 3600,
            "defaults fill the rest"
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "[http]\nadress = \"127.0.0.1:9000\"\n").expect("write");
        let err = Config::load(Some(&file), env(&[]), &Overrides::default()).expect_err("typo");
        assert!(err.to_string().contains("adress"), "{err}");

        let err = Config::load(
            None,
            env(&[("CLASSROOM_HTTP__ADDR", "not an address")]),
            &Overrides::default(),
        )
        .expect_err("bad value");
        assert!(err.to_string().contains("http.addr"), "{err}");

        let err = Config::load(None, env(&[("CLASSROOM_NOPE", "1")]), &Overrides::default())
            .expect_err("unknown variable");
        assert!(err.to_string().contains("nope"), "{err}");

        let missing = dir.path().join("missing.toml");
        assert!(matches!(
            Config::load(Some(&missing), env(&[]), &Overrides::default()),
            Err(ConfigError::MissingFile(_))
        ));
    }

    #[test]
    fn ice_tcp_can_be_moved_or_turned_off() {
        let config = Config::load(
            None,
            env(&[("CLASSROOM_MEDIA__TCP_ADDR", "0.0.0.0:443")]),
            &Overrides::default(),
        )
        .expect("valid");
        assert_eq!(
            config.media.tcp_addr,
            Some("0.0.0.0:443".parse().expect("addr"))
        );

        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "[media]\ntcp_addr = \"\"\n").expect("write");
        let config = Config::load(Some(&file), env(&[]), &Overrides::default()).expect("valid");
        assert_eq!(config.media.tcp_addr, None);

        let err = Config::load(
            None,
            env(&[("CLASSROOM_MEDIA__TCP_ADDR", "nowhere")]),
            &Overrides::default(),
        )
        .expect_err("bad address");
        assert!(err.to_string().contains("media.tcp_addr"), "{err}");

        std::fs::write(&file, "[media]\ntcp_addr = \"\"\nadvertise_udp = false\n").expect("write");
        let err = Config::load(Some(&file), env(&[]), &Overrides::default())
            .expect_err("no way to connect");
        assert!(err.to_string().contains("advertise_udp"), "{err}");
    }

    #[test]
    fn media_workers_default_to_the_cores_and_their_ports_must_fit() {
        let config = Config::load(None, env(&[]), &Overrides::default()).expect("valid");
        assert_eq!(config.media.workers, 0);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(config.media.worker_count(), cores);
        let config = Config::load(
            None,
            env(&[("CLASSROOM_MEDIA__WORKERS", "3")]),
            &Overrides::default(),
        )
        .expect("valid");
        assert_eq!(config.media.worker_count(), 3);

        // Three workers from UDP 65534 would need 65536; from port 0 any number fits.
        let too_high = [
            ("CLASSROOM_MEDIA__WORKERS", "3"),
            ("CLASSROOM_MEDIA__UDP_ADDR", "127.0.0.1:65534"),
        ];
        let err = Config::load(None, env(&too_high), &Overrides::default()).expect_err("invalid");
        assert!(err.to_string().contains("media.udp_addr"), "{err}");
        let free = [
            ("CLASSROOM_MEDIA__WORKERS", "3"),
            ("CLASSROOM_MEDIA__UDP_ADDR", "127.0.0.1:0"),
            ("CLASSROOM_MEDIA__TCP_ADDR", "127.0.0.1:65533"),
        ];
        Config::load(None, env(&free), &Overrides::default()).expect("valid: 65533 to 65535");
    }

    #[test]
    fn restream_networks_are_allowed_by_list_and_a_bad_one_stops_start_up() {
        let config = Config::load(
            None,
            env(&[(
                "CLASSROOM_RESTREAM__ALLOWED_NETWORKS",
                r#"["127.0.0.0/8", "fd00::/8"]"#,
            )]),
            &Overrides::default(),
        )
        .expect("valid");
        let outbound = config.restream.outbound().expect("networks");
        assert!(outbound.check("127.0.0.1".parse().expect("ip")).is_ok());
        assert!(outbound.check("10.0.0.1".parse().expect("ip")).is_err());
        assert!(Config::default().restream.allowed_networks.is_empty());

        let err = Config::load(
            None,
            env(&[("CLASSROOM_RESTREAM__ALLOWED_NETWORKS", r#"["10.0.0.0/33"]"#)]),
            &Overrides::default(),
        )
        .expect_err("bad network");
        assert!(
            err.to_string().contains("restream.allowed_networks")
                && err.to_string().contains("10.0.0.0/33"),
            "{err}"
        );
    }

    #[test]
    fn public_origins_are_parsed_and_a_bad_one_is_named() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "[http]\npublic_origins = [\"https://School.example/\", \"http://10.0.0.5:8080\"]\n",
        )
        .expect("write");
        let config = Config::load(Some(&file), env(&[]), &Overrides::default()).expect("valid");
        let origins: Vec<&str> = config
            .http
            .public_origins
            .iter()
            .map(crate::origin::PublicOrigin::as_str)
            .collect();
        assert_eq!(origins, ["https://school.example", "http://10.0.0.5:8080"]);

        std::fs::write(
            &file,
            "[http]\npublic_origins = [\"school.example/path\"]\n",
        )
        .expect("write");
        let err =
            Config::load(Some(&file), env(&[]), &Overrides::default()).expect_err("not an origin");
        assert!(err.to_string().contains("public_origins"), "{err}");
        assert!(err.to_string().contains("not a web origin"), "{err}");
    }

    #[test]
    fn the_example_config_is_complete_and_valid() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../classroomd.example.toml");
        let config = Config::load(Some(&example), env(&[]), &Overrides::default()).expect("valid");
        // The example states the defaults; if a default changes, the example must too.
        let mut expected = Config::default();
        expected.auth.jwt_secret = config.auth.jwt_secret.clone();
        assert_eq!(config, expected);
    }
}
