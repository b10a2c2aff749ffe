//! Several nodes of one school, coordinated through Redis (`cluster.redis_url`).
//!
//! The **node registry**: every second each node writes its heartbeat
//! record (id, URLs, media addresses, load, state) into one Redis hash, stamped with the Redis
//! server's clock, and reads everybody's back into its [`registry::Registry`]. A node whose
//! heartbeat is 3 s old is offline: logged as an alarm, counted in
//! `classroom_cluster_node_offline_total`, and shown in `GET /api/v1/cluster`. A node that stops
//! removes its record. When Redis does not answer, the node keeps serving what it has and
//! `/readyz` says so; it catches up when Redis is back.
//!
//! **Room placement** ([`placement`]): each lesson's room has one home node, held by a lease
//! that the home renews at each heartbeat while the room is open.
//!
//! Without `redis_url` the server is one node exactly as before. With it, PostgreSQL is
//! required: the database of record must be shared by every node.

pub mod edge;
pub mod edge_media;
pub mod link;
pub mod media_port;
pub mod placement;
pub mod registry;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use axum::http::HeaderValue;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use classroom_protocol::LessonId;
use placement::RedisPlacement;
use registry::{ClusterEvent, NodeId, NodeLoad, NodeRecord, NodeState, NodeView, Registry};

/// How often a node writes its heartbeat and reads the others'.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// A Redis command slower than this counts as Redis being down.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// `[cluster]`: off while `redis_url` is empty.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// `redis://HOST:6379/0` (or `rediss://` for TLS); empty: a single node, no Redis.
    pub redis_url: String,
    /// This node's id; empty: one is made at first start and kept in `<data_dir>/node_id`.
    pub node_id: String,
    /// Where browsers reach this node (`https://node2.school.example/`); empty: the HTTP
    /// address it listens on.
    pub public_url: String,
    /// The prefix of every Redis key, so that several deployments can share one Redis.
    pub key_prefix: String,
    /// How many participants a room's home node takes before the REST join sends further
    /// ones to an edge node (the least-loaded other node), whose signaling reaches the home;
    /// 0: no limit, and a node that is not the home refuses a join (docs/scale-out.md).
    pub home_capacity: u64,
    /// The secret every node of the cluster shares (at least 32 bytes): a node opens a
    /// signaling link to another only with a credential signed with it. Required with
    /// `redis_url`; never logged.
    pub secret: String,
    /// Participants one edge node's link to a home node carries at most (the home refuses
    /// more, and the edge's further students are refused with `wrong_node`, to join again).
    pub link_max_participants: usize,
}

impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("redis_url", &self.redis_url)
            .field("node_id", &self.node_id)
            .field("public_url", &self.public_url)
            .field("key_prefix", &self.key_prefix)
            .field("home_capacity", &self.home_capacity)
            .field("secret", &if self.secret.is_empty() { "" } else { "<set>" })
            .field("link_max_participants", &self.link_max_participants)
            .finish()
    }
}

/// The shortest `cluster.secret` accepted.
pub const MIN_SECRET_BYTES: usize = 32;

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            redis_url: String::new(),
            node_id: String::new(),
            public_url: String::new(),
            key_prefix: "classroom".to_owned(),
            home_capacity: 0,
            secret: String::new(),
            link_max_participants: 4096,
        }
    }
}

impl ClusterConfig {
    pub fn enabled(&self) -> bool {
        !self.redis_url.trim().is_empty()
    }

    /// Refuses a cluster whose nodes would not share their data.
    pub fn check(&self, database_url: &str) -> anyhow::Result<()> {
        if self.enabled() && !database_url.starts_with("postgres") {
            bail!(
                "cluster.redis_url is set but the database is not PostgreSQL: the nodes of a \
                 cluster must share one PostgreSQL database (database.url)"
            );
        }
        if self.enabled() && self.secret.len() < MIN_SECRET_BYTES {
            bail!(
                "cluster.redis_url is set but cluster.secret is {}: the nodes of a cluster \
                 authenticate each other with a shared secret of at least {MIN_SECRET_BYTES} \
                 bytes (the same on every node; `openssl rand -hex 32` makes one)",
                if self.secret.is_empty() {
                    "missing"
                } else {
                    "too short"
                }
            );
        }
        if self.enabled() && self.link_max_participants == 0 {
            bail!("cluster.link_max_participants must be at least 1");
        }
        Ok(())
    }
}

/// The node link's WebSocket at a node reached at `http_url` (`wss://` for `https://`).
pub fn link_url(http_url: &str) -> String {
    let ws = placement::signaling_url(http_url);
    let base = ws.strip_suffix("/ws").unwrap_or(&ws);
    format!("{base}{}", link::PATH)
}

/// This node's number in the cluster, for its peer ids (`PeerIds::for_node`): a Redis
/// counter under the cluster's prefix, counted up at each start, so that no two nodes up at
/// once share one (numbers wrap after 2^21 starts, long after the older nodes restarted). When
/// Redis does not answer at start, a random number, which two nodes share with a chance of
/// one in two million per pair: logged, as the node runs on.
pub async fn node_number(config: &ClusterConfig) -> u32 {
    let modulus = u64::from(classroom_signaling::media::NODE_NUMBERS - 1);
    let taken = async {
        let client = redis::Client::open(config.redis_url.as_str())?;
        let mut connection = client.get_multiplexed_async_connection().await?;
        let key = format!("{}:node_numbers", config.key_prefix);
        connection.incr::<_, _, u64>(key, 1).await
    };
    match tokio::time::timeout(REDIS_TIMEOUT, taken).await {
        // 1 up to 2^21 - 1: number 0 is a single node's.
        Ok(Ok(n)) => (n.saturating_sub(1) % modulus + 1) as u32,
        failed => {
            let why = match failed {
                Ok(Err(e)) => e.to_string(),
                _ => "no answer".to_owned(),
            };
            let random = classroom_courses::auth::random_token(4);
            let random = u64::from_str_radix(&random, 16).unwrap_or_default();
            let n = (random % modulus + 1) as u32;
            tracing::warn!(error = %why, number = n, "cluster: cannot take a node number from Redis; took a random one");
            n
        }
    }
}

/// Where this node's ends of node media links bind (port 0): the media socket's IP, or the
/// advertised one when the media socket listens on every address.
pub fn node_link_ip(media: std::net::SocketAddr, advertised: std::net::IpAddr) -> std::net::IpAddr {
    if media.ip().is_unspecified() {
        advertised
    } else {
        media.ip()
    }
}

/// This node's id: the configured one, else the one kept in the data directory (made once).
pub fn node_id(config: &ClusterConfig, data_dir: &Path) -> anyhow::Result<NodeId> {
    if !config.node_id.trim().is_empty() {
        return Ok(NodeId(config.node_id.trim().to_owned()));
    }
    let path = data_dir.join("node_id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(NodeId(id.trim().to_owned())),
        _ => {
            let id = format!("node-{}", classroom_courses::auth::random_token(4));
            std::fs::write(&path, &id)
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(NodeId(id))
        }
    }
}

/// What the rest of the server reads of the cluster.
#[derive(Debug, Default)]
struct Shared {
    redis_up: bool,
    /// The Redis clock at the last good read, and the nodes then.
    now_ms: u64,
    nodes: Vec<NodeView>,
    /// The web origins of the other nodes online then ([`ClusterHandle::node_origins`]).
    node_origins: Vec<crate::origin::PublicOrigin>,
    /// The Content-Security-Policy naming them, built when they change (not per response).
    content_security_policy: Option<HeaderValue>,
    offline_alarms: u64,
    /// This node drains: it takes no new rooms (its record says so from the next beat; its
    /// own placement knows at once).
    draining: bool,
}

/// The cluster as this node sees it; cheap to clone.
#[derive(Debug, Clone)]
pub struct ClusterHandle {
    pub this: NodeId,
    shared: Arc<Mutex<Shared>>,
    /// Participants this node relays to their room's home node, as an edge
    /// ([`edge::EdgeLinks`]).
    pub relayed: Arc<AtomicU64>,
}

/// A snapshot for `/api/v1/cluster` and `/metrics`.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterStatus {
    pub this_node: NodeId,
    pub redis: &'static str,
    pub nodes: Vec<NodeView>,
    /// Alarms raised since this node started: a node went offline.
    pub offline_alarms: u64,
    /// Participants this node relays to their room's home node, as an edge.
    pub relayed_participants: u64,
    /// The node media links running on this node, as a home and as an edge.
    pub node_links: NodeLinkTotals,
}

/// The node media links running on this node (one per room and other node), their counters
/// summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct NodeLinkTotals {
    pub running: u64,
    pub audio_packets_sent: u64,
    pub video_packets_sent: u64,
    pub packets_received: u64,
    /// Control messages of the other node's that were not ours (counted and dropped).
    pub malformed_controls: u64,
}

impl NodeLinkTotals {
    pub fn add(&mut self, (stats, running): (classroom_media::node_link::NodeLinkStats, usize)) {
        self.running += running as u64;
        self.audio_packets_sent += stats.audio_packets_sent;
        self.video_packets_sent += stats.video_packets_sent;
        self.packets_received += stats.packets_received;
        self.malformed_controls += stats.malformed_controls;
    }
}

impl ClusterHandle {
    pub fn redis_up(&self) -> bool {
        self.shared.lock().is_ok_and(|s| s.redis_up)
    }

    /// The web origins of the other nodes that are online (`http://node2.example:8080`): a
    /// page of this node may open their signaling WebSocket, and theirs this node's.
    pub fn node_origins(&self) -> Vec<crate::origin::PublicOrigin> {
        self.shared
            .lock()
            .map(|s| s.node_origins.clone())
            .unwrap_or_default()
    }

    /// The Content-Security-Policy of this node's answers while other nodes are online
    /// (`None`: the single node's fixed one, [`crate::web::CONTENT_SECURITY_POLICY`]).
    pub fn content_security_policy(&self) -> Option<HeaderValue> {
        self.shared
            .lock()
            .ok()
            .and_then(|s| s.content_security_policy.clone())
    }

    /// The nodes as of the last heartbeat that reached Redis (this one draining as soon as it
    /// does).
    pub fn nodes(&self) -> Vec<NodeView> {
        let Ok(shared) = self.shared.lock() else {
            return Vec::new();
        };
        let mut nodes = shared.nodes.clone();
        if shared.draining {
            for node in nodes.iter_mut().filter(|n| n.record.id == self.this) {
                node.record.state = NodeState::Draining;
            }
        }
        nodes
    }

    /// This node drains: it takes no new rooms, and says so to the others at its next beat.
    pub fn set_draining(&self) {
        if let Ok(mut shared) = self.shared.lock() {
            shared.draining = true;
        }
    }

    pub fn status(&self) -> ClusterStatus {
        let shared = self.shared.lock().ok();
        ClusterStatus {
            this_node: self.this.clone(),
            redis: match shared.as_ref().is_some_and(|s| s.redis_up) {
                true => "up",
                false => "down",
            },
            nodes: shared.as_ref().map(|s| s.nodes.clone()).unwrap_or_default(),
            offline_alarms: shared.as_ref().map_or(0, |s| s.offline_alarms),
            relayed_participants: self.relayed.load(Ordering::Relaxed),
            node_links: NodeLinkTotals::default(),
        }
    }
}

/// What this node reports of itself at each heartbeat.
pub trait LoadSource: Send + 'static {
    fn load(&self) -> NodeLoad;
}

impl<F: Fn() -> NodeLoad + Send + 'static> LoadSource for F {
    fn load(&self) -> NodeLoad {
        self()
    }
}

/// The lessons whose rooms are open on this node, for their leases.
pub type OpenLessons = Box<dyn Fn() -> Vec<LessonId> + Send>;

/// Starts the heartbeat, which also renews the leases of the rooms open here (`lessons`) and
/// releases those of rooms closed. Returns at once (a node may start while Redis is down: it
/// serves, says so in `/readyz`, and keeps trying), with the placement the REST join and the
/// signaling admission ask.
pub async fn start(
    config: &ClusterConfig,
    this: NodeId,
    http_url: String,
    media: Vec<String>,
    load: impl LoadSource,
    lessons: OpenLessons,
    stopping: watch::Receiver<bool>,
) -> anyhow::Result<(ClusterHandle, Arc<RedisPlacement>)> {
    let client = redis::Client::open(config.redis_url.as_str())
        .context("cluster.redis_url is not a Redis URL")?;
    let handle = ClusterHandle {
        this: this.clone(),
        shared: Arc::new(Mutex::new(Shared::default())),
        relayed: Arc::new(AtomicU64::new(0)),
    };
    let placement = RedisPlacement::new(
        handle.clone(),
        client.clone(),
        config.key_prefix.clone(),
        config.home_capacity,
    );
    let heartbeat = Heartbeat {
        placement: placement.clone(),
        lessons,
        relayed: handle.relayed.clone(),
        held: BTreeSet::new(),
        client,
        connection: None,
        key: format!("{}:nodes", config.key_prefix),
        record: NodeRecord {
            id: this,
            http_url,
            media,
            state: NodeState::Up,
            load: NodeLoad::default(),
            heartbeat_ms: 0,
        },
        registry: Registry::new(),
        shared: handle.shared.clone(),
        redis_was_up: None,
    };
    tokio::spawn(heartbeat.run(load, stopping));
    Ok((handle, placement))
}

struct Heartbeat {
    placement: Arc<RedisPlacement>,
    lessons: OpenLessons,
    /// Participants relayed to other nodes' rooms: part of this node's load.
    relayed: Arc<AtomicU64>,
    /// The leases this node held at the last heartbeat.
    held: BTreeSet<LessonId>,
    client: redis::Client,
    connection: Option<ConnectionManager>,
    key: String,
    record: NodeRecord,
    registry: Registry,
    shared: Arc<Mutex<Shared>>,
    /// For logging changes only.
    redis_was_up: Option<bool>,
}

impl Heartbeat {
    async fn run(mut self, load: impl LoadSource, mut stopping: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(HEARTBEAT);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stopping.changed() => break,
            }
            self.record.load = load.load();
            self.record.load.participants += self.relayed.load(Ordering::Relaxed);
            self.record.state = match self.shared.lock().is_ok_and(|s| s.draining) {
                true => NodeState::Draining,
                false => NodeState::Up,
            };
            let result = tokio::time::timeout(REDIS_TIMEOUT, self.beat()).await;
            let up = matches!(result, Ok(Ok(())));
            if !up {
                // A fresh connection next time: the manager's own reconnect may be mid-way.
                self.connection = None;
            }
            if self.redis_was_up != Some(up) {
                match (up, &result) {
                    (true, _) => tracing::info!(node = %self.record.id, "cluster: Redis answers"),
                    (false, Ok(Err(e))) => {
                        tracing::warn!(error = %e, "cluster: Redis does not answer; lessons go on")
                    }
                    (false, _) => tracing::warn!("cluster: Redis timed out; lessons go on"),
                }
                self.redis_was_up = Some(up);
            }
            if let Ok(mut shared) = self.shared.lock() {
                shared.redis_up = up;
            }
            if up {
                self.keep_leases().await;
            }
        }
        // Every room this node held or has open now (a room opened since the last beat too).
        let mut held = self.held.clone();
        held.extend((self.lessons)());
        let held: Vec<LessonId> = held.into_iter().collect();
        if let Ok(Err(e)) = tokio::time::timeout(REDIS_TIMEOUT, self.placement.release(&held)).await
        {
            tracing::warn!(error = %e, "cluster: could not release this node's rooms");
        }
        // Leaving cleanly is no alarm for the others.
        if let Ok(Ok(mut connection)) = tokio::time::timeout(REDIS_TIMEOUT, self.connect()).await {
            let removed: Result<(), _> = connection.hdel(&self.key, &self.record.id.0).await;
            if let Err(e) = removed {
                tracing::warn!(error = %e, "cluster: could not remove this node's record");
            }
        }
    }

    /// Renews the leases of the rooms open here and releases those of rooms that closed.
    async fn keep_leases(&mut self) {
        let open: BTreeSet<LessonId> = (self.lessons)().into_iter().collect();
        let closed: Vec<LessonId> = self.held.difference(&open).copied().collect();
        let open_list: Vec<LessonId> = open.iter().copied().collect();
        let kept = tokio::time::timeout(REDIS_TIMEOUT, async {
            let elsewhere = self.placement.renew(&open_list).await?;
            self.placement.release(&closed).await?;
            Ok::<_, redis::RedisError>(elsewhere)
        })
        .await;
        match kept {
            Ok(Ok(elsewhere)) => {
                for lesson in &elsewhere {
                    // Two rooms of one lesson: possible only after Redis lost the lease (a
                    // partition, a restart). This one ends with its lesson or its people.
                    tracing::warn!(%lesson, "cluster: another node holds the lease of a room open here");
                }
                self.held = open
                    .into_iter()
                    .filter(|l| !elsewhere.contains(l))
                    .collect();
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "cluster: could not renew room leases"),
            Err(_) => tracing::warn!("cluster: renewing room leases timed out"),
        }
    }

    async fn connect(&mut self) -> redis::RedisResult<ConnectionManager> {
        if let Some(connection) = &self.connection {
            return Ok(connection.clone());
        }
        let connection = ConnectionManager::new(self.client.clone()).await?;
        self.connection = Some(connection.clone());
        Ok(connection)
    }

    /// One heartbeat: stamp and write our record, read everybody's.
    async fn beat(&mut self) -> redis::RedisResult<()> {
        let mut connection = self.connect().await?;
        let (seconds, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut connection).await?;
        let now_ms = seconds * 1000 + micros / 1000;
        self.record.heartbeat_ms = now_ms;
        // A plain struct of strings and numbers: encoding it cannot fail.
        let json = serde_json::to_string(&self.record).unwrap_or_default();
        let () = connection.hset(&self.key, &self.record.id.0, json).await?;
        let all: Vec<(String, String)> = connection.hgetall(&self.key).await?;
        let records: Vec<NodeRecord> = all
            .into_iter()
            .filter_map(|(id, json)| match serde_json::from_str(&json) {
                Ok(record) => Some(record),
                Err(e) => {
                    tracing::warn!(node = %id, error = %e, "cluster: unreadable node record");
                    None
                }
            })
            .collect();
        let (events, forget) = self.registry.observe(now_ms, records);
        let mut alarms = 0;
        for event in events {
            match event {
                ClusterEvent::NodeOnline(node) => tracing::info!(%node, "cluster: node online"),
                ClusterEvent::NodeOffline { node, times } => {
                    alarms += 1;
                    tracing::error!(%node, times, "cluster: node offline (no heartbeat for 3 s)");
                }
            }
        }
        for node in forget {
            let () = connection.hdel(&self.key, &node.0).await?;
        }
        if let Ok(mut shared) = self.shared.lock() {
            shared.now_ms = now_ms;
            shared.nodes = self.registry.nodes(now_ms);
            let origins: Vec<_> = (shared.nodes.iter())
                .filter(|n| n.online && n.record.id != self.record.id)
                .filter_map(|n| crate::origin::PublicOrigin::parse(&n.record.http_url).ok())
                .collect();
            if origins != shared.node_origins {
                shared.content_security_policy = crate::web::cluster_policy(&origins);
                shared.node_origins = origins;
            }
            shared.offline_alarms += alarms;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(secret: &str) -> ClusterConfig {
        ClusterConfig {
            redis_url: "redis://127.0.0.1:6379".into(),
            secret: secret.into(),
            ..ClusterConfig::default()
        }
    }

    #[test]
    fn a_cluster_needs_a_shared_secret_of_32_bytes_and_never_prints_it() {
        let postgres = "postgres://u@h/db";
        let missing = cluster("").check(postgres).expect_err("no secret");
        assert!(
            missing.to_string().contains("cluster.secret is missing"),
            "{missing}"
        );
        let short = cluster("short").check(postgres).expect_err("too short");
        assert!(short.to_string().contains("too short"), "{short}");
        let secret = "0123456789abcdef0123456789abcdef";
        cluster(secret).check(postgres).expect("32 bytes");
        assert!(!format!("{:?}", cluster(secret)).contains(secret));
        // One node: no secret needed.
        ClusterConfig::default()
            .check("sqlite://x")
            .expect("a single node");
    }

    #[test]
    fn the_link_of_a_node_is_beside_its_signaling() {
        assert_eq!(
            link_url("http://127.0.0.2:8080/"),
            "ws://127.0.0.2:8080/cluster/link"
        );
        assert_eq!(
            link_url("https://node2.school.example"),
            "wss://node2.school.example/cluster/link"
        );
    }
}
