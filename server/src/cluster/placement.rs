//! Room placement: each lesson's room has one home node, named by a lease in Redis
//! (`<prefix>:lesson:<id>:home`, `SET NX PX`). The first join chooses the least-loaded node
//! that is up; the home node renews the lease every heartbeat while the room is open and
//! releases it when the room closes or the node stops. A home whose node went offline (no
//! heartbeat for 3 s) is taken over by the next join; a lease nobody renews lapses after
//! [`LEASE`] by itself. While Redis does not answer, rooms already open go on where they are
//! and new placements wait (`503 cluster_unavailable`).
//!
//! Compare-and-set and compare-and-delete run as Lua scripts (`EVAL`; they are a few lines),
//! so a node never renews or releases a lease another node holds.

use std::sync::Arc;
use std::time::Duration;

use classroom_courses::api::placement::{Home, PlacementError, PlacementFuture, RoomPlacement};
use classroom_protocol::LessonId;
use redis::aio::ConnectionManager;
use tokio::sync::Mutex;

use super::registry::{NodeId, NodeState, NodeView};
use super::{ClusterHandle, REDIS_TIMEOUT};

/// How long a lease lasts unless renewed (the home renews it every second).
pub const LEASE: Duration = Duration::from_secs(10);

/// The Redis key of a lesson's home.
pub fn lease_key(prefix: &str, lesson: LessonId) -> String {
    format!("{prefix}:lesson:{}:home", lesson.0)
}

/// The node a new room goes to: the least-loaded node that is up and online (fewest
/// participants, then fewest rooms), this one on a tie; `None` when no node is known.
pub fn choose(nodes: &[NodeView], this: &NodeId) -> Option<NodeId> {
    nodes
        .iter()
        .filter(|n| n.online && n.record.state == NodeState::Up)
        .min_by_key(|n| {
            (
                n.record.load.participants,
                n.record.load.rooms,
                &n.record.id != this,
                n.record.id.0.clone(),
            )
        })
        .map(|n| n.record.id.clone())
}

/// The node that serves a new participant of a room whose home is `home`: the home while
/// its load is under `capacity` participants (0: no limit), else the least-loaded other node
/// that is up and online, an edge (this one on a tie); the home when there is none.
pub fn serving(nodes: &[NodeView], home: &NodeId, this: &NodeId, capacity: u64) -> NodeId {
    let home_load = nodes
        .iter()
        .find(|n| &n.record.id == home)
        .map_or(0, |n| n.record.load.participants);
    if capacity == 0 || home_load < capacity {
        return home.clone();
    }
    let edges: Vec<NodeView> = nodes
        .iter()
        .filter(|n| &n.record.id != home)
        .cloned()
        .collect();
    choose(&edges, this).unwrap_or_else(|| home.clone())
}

/// The signaling WebSocket of a node reached at `http_url`.
pub fn signaling_url(http_url: &str) -> String {
    let base = http_url.trim_end_matches('/');
    let ws = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base.to_owned()
    };
    format!("{ws}/ws")
}

/// Renews this node's lease (or takes a lapsed one): 1 when it is ours now, 0 when another
/// node holds it.
const RENEW: &str = r"
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
elseif not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
";

/// Replaces the lease of a node gone offline (only if it still names that node).
const TAKE_OVER: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
";

/// Deletes the lease if this node holds it.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Placement through Redis, for the REST join ([`RoomPlacement`]) and the heartbeat.
pub struct RedisPlacement {
    cluster: ClusterHandle,
    client: redis::Client,
    connection: Mutex<Option<ConnectionManager>>,
    prefix: String,
    /// `cluster.home_capacity`: 0, every participant goes to the home.
    home_capacity: u64,
}

impl RedisPlacement {
    pub fn new(
        cluster: ClusterHandle,
        client: redis::Client,
        prefix: String,
        home_capacity: u64,
    ) -> Arc<Self> {
        Arc::new(RedisPlacement {
            cluster,
            client,
            connection: Mutex::new(None),
            prefix,
            home_capacity,
        })
    }

    /// Whether nodes serve rooms whose home is elsewhere (`cluster.home_capacity` is set).
    pub fn edges_enabled(&self) -> bool {
        self.home_capacity > 0
    }

    /// The node holding the lease of `lesson`'s room, if any (`None` too when Redis does not
    /// answer in time).
    pub async fn home_of(&self, lesson: LessonId) -> Option<NodeId> {
        let read = async {
            let mut redis = self.connect().await?;
            let holder: Option<String> = redis::cmd("GET")
                .arg(lease_key(&self.prefix, lesson))
                .query_async(&mut redis)
                .await?;
            Ok::<_, redis::RedisError>(holder.map(NodeId))
        };
        match tokio::time::timeout(REDIS_TIMEOUT, read).await {
            Ok(Ok(holder)) => holder,
            Ok(Err(e)) => {
                tracing::debug!(%lesson, error = %e, "cluster: cannot read the room's lease");
                self.forget_connection().await;
                None
            }
            Err(_) => None,
        }
    }

    async fn connect(&self) -> redis::RedisResult<ConnectionManager> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            return Ok(connection.clone());
        }
        let connection = ConnectionManager::new(self.client.clone()).await?;
        *slot = Some(connection.clone());
        Ok(connection)
    }

    async fn forget_connection(&self) {
        *self.connection.lock().await = None;
    }

    /// The home of `lesson`, placing its room when it has none (or its node is gone).
    async fn place(&self, lesson: LessonId) -> redis::RedisResult<NodeId> {
        let mut redis = self.connect().await?;
        let key = lease_key(&self.prefix, lesson);
        let lease_ms = LEASE.as_millis() as u64;
        let nodes = self.cluster.nodes();
        let this = &self.cluster.this;
        let chosen = choose(&nodes, this).unwrap_or_else(|| this.clone());
        let holder: Option<String> = redis::cmd("GET").arg(&key).query_async(&mut redis).await?;
        match holder {
            Some(holder) => {
                let holder = NodeId(holder);
                let alive =
                    &holder == this || nodes.iter().any(|n| n.record.id == holder && n.online);
                if alive {
                    return Ok(holder);
                }
                let taken: i64 = redis::cmd("EVAL")
                    .arg(TAKE_OVER)
                    .arg(1)
                    .arg(&key)
                    .arg(&holder.0)
                    .arg(&chosen.0)
                    .arg(lease_ms)
                    .query_async(&mut redis)
                    .await?;
                if taken == 1 {
                    tracing::warn!(%lesson, from = %holder, to = %chosen, "cluster: room moved off an offline node");
                    return Ok(chosen);
                }
            }
            None => {
                let set: Option<String> = redis::cmd("SET")
                    .arg(&key)
                    .arg(&chosen.0)
                    .arg("NX")
                    .arg("PX")
                    .arg(lease_ms)
                    .query_async(&mut redis)
                    .await?;
                if set.is_some() {
                    tracing::info!(%lesson, node = %chosen, "cluster: room placed");
                    return Ok(chosen);
                }
            }
        }
        // Another node placed it meanwhile: theirs stands.
        let holder: Option<String> = redis::cmd("GET").arg(&key).query_async(&mut redis).await?;
        Ok(holder.map_or(chosen, NodeId))
    }

    /// Renews the leases of the rooms open here; returns the lessons another node holds.
    pub async fn renew(&self, lessons: &[LessonId]) -> redis::RedisResult<Vec<LessonId>> {
        let mut redis = self.connect().await?;
        let lease_ms = LEASE.as_millis() as u64;
        let mut elsewhere = Vec::new();
        for &lesson in lessons {
            let ours: i64 = redis::cmd("EVAL")
                .arg(RENEW)
                .arg(1)
                .arg(lease_key(&self.prefix, lesson))
                .arg(&self.cluster.this.0)
                .arg(lease_ms)
                .query_async(&mut redis)
                .await?;
            if ours == 0 {
                elsewhere.push(lesson);
            }
        }
        Ok(elsewhere)
    }

    /// Whether a room of `lesson` may open (or is open) here: this node holds its lease, or
    /// takes it when nobody does. While Redis does not answer, yes: a lesson in progress goes
    /// on where its people are.
    pub async fn claim(&self, lesson: LessonId) -> bool {
        match tokio::time::timeout(REDIS_TIMEOUT, self.renew(&[lesson])).await {
            Ok(Ok(elsewhere)) => elsewhere.is_empty(),
            Ok(Err(e)) => {
                tracing::debug!(%lesson, error = %e, "cluster: cannot check the room's lease");
                self.forget_connection().await;
                true
            }
            Err(_) => true,
        }
    }

    /// Gives up the leases of rooms closed here.
    pub async fn release(&self, lessons: &[LessonId]) -> redis::RedisResult<()> {
        let mut redis = self.connect().await?;
        for &lesson in lessons {
            let _: i64 = redis::cmd("EVAL")
                .arg(RELEASE)
                .arg(1)
                .arg(lease_key(&self.prefix, lesson))
                .arg(&self.cluster.this.0)
                .query_async(&mut redis)
                .await?;
        }
        Ok(())
    }
}

impl RoomPlacement for RedisPlacement {
    fn home(&self, lesson: LessonId) -> PlacementFuture<'_> {
        Box::pin(async move {
            let placed = tokio::time::timeout(REDIS_TIMEOUT, self.place(lesson)).await;
            let home = match placed {
                Ok(Ok(home)) => home,
                Ok(Err(e)) => {
                    tracing::warn!(%lesson, error = %e, "cluster: cannot place the room");
                    self.forget_connection().await;
                    return Err(PlacementError::Unavailable);
                }
                Err(_) => {
                    self.forget_connection().await;
                    return Err(PlacementError::Unavailable);
                }
            };
            let nodes = self.cluster.nodes();
            let node = serving(&nodes, &home, &self.cluster.this, self.home_capacity);
            if node == self.cluster.this {
                return Ok(Home::Here);
            }
            match nodes.iter().find(|n| n.record.id == node) {
                Some(node) => Ok(Home::Elsewhere {
                    signaling_url: signaling_url(&node.record.http_url),
                }),
                // Placed by a node this one has not heard of yet: ask again in a moment.
                None => Err(PlacementError::Unavailable),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::registry::{NodeLoad, NodeRecord};

    fn node(id: &str, participants: u64, online: bool, state: NodeState) -> NodeView {
        NodeView {
            record: NodeRecord {
                id: NodeId(id.into()),
                http_url: format!("http://{id}.test:8080/"),
                media: Vec::new(),
                state,
                load: NodeLoad {
                    rooms: 1,
                    participants,
                    media_workers: 2,
                },
                heartbeat_ms: 0,
            },
            online,
            heartbeat_age_ms: 0,
            offline_times: 0,
        }
    }

    #[test]
    fn a_new_room_goes_to_the_least_loaded_node_that_is_up() {
        let this = NodeId("a".into());
        let nodes = [
            node("a", 40, true, NodeState::Up),
            node("b", 10, true, NodeState::Up),
            node("c", 0, false, NodeState::Up),
            node("d", 5, true, NodeState::Draining),
        ];
        assert_eq!(choose(&nodes, &this), Some(NodeId("b".into())));
        // On a tie this node keeps it (no hop for the person joining).
        let tie = [
            node("b", 10, true, NodeState::Up),
            node("a", 10, true, NodeState::Up),
        ];
        assert_eq!(choose(&tie, &this), Some(this.clone()));
        assert_eq!(choose(&[], &this), None);
    }

    #[test]
    fn a_full_home_sends_new_participants_to_the_least_loaded_edge() {
        let (home, this) = (NodeId("a".into()), NodeId("c".into()));
        let nodes = [
            node("a", 30, true, NodeState::Up),
            node("b", 12, true, NodeState::Up),
            node("c", 10, true, NodeState::Up),
            node("d", 1, false, NodeState::Up),
            node("e", 0, true, NodeState::Draining),
        ];
        // No limit, or under it: the home.
        assert_eq!(serving(&nodes, &home, &this, 0), home);
        assert_eq!(serving(&nodes, &home, &this, 31), home);
        // Full: the least-loaded node that is up and online, never the offline or the
        // draining one.
        assert_eq!(serving(&nodes, &home, &this, 30), NodeId("c".into()));
        // Full and alone: the home anyway (the limit is soft).
        assert_eq!(serving(&nodes[..1], &home, &this, 30), home);
    }

    #[test]
    fn a_nodes_signaling_url_follows_its_scheme() {
        assert_eq!(
            signaling_url("http://127.0.0.2:8080/"),
            "ws://127.0.0.2:8080/ws"
        );
        assert_eq!(
            signaling_url("https://node2.school.example"),
            "wss://node2.school.example/ws"
        );
    }
}
