//! The node registry as one node sees it: every node's last heartbeat, and which of them are
//! online. Sans-IO: [`Registry::observe`] takes what Redis holds and the Redis server's clock
//! (one clock for every node, so no node's drift matters); the driver does the I/O.
//!
//! A node is online while its last heartbeat is younger than [`OFFLINE_AFTER`] (3 heartbeats of
//! one second). A node that falls silent raises an alarm once ([`ClusterEvent::NodeOffline`]),
//! counted per node, and a node heard again is back online. A node that stops cleanly removes
//! its own record, so leaving is not an alarm.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A heartbeat older than this means the node is offline.
pub const OFFLINE_AFTER: Duration = Duration::from_secs(3);
/// An offline node's record is forgotten (deleted from Redis) after this long.
pub const FORGET_AFTER: Duration = Duration::from_secs(3600);

/// A node's id: chosen by the operator (`cluster.node_id`) or made once and kept in the data
/// directory.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub String);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether a node takes new rooms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    Up,
    /// Stopping: finishes what it has, takes nothing new.
    Draining,
}

/// What a node carries, as it reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeLoad {
    /// Live rooms (lessons) on the node.
    pub rooms: u64,
    /// Participants connected to the node's signaling.
    pub participants: u64,
    /// Media workers (threads) of its SFU.
    pub media_workers: u64,
}

/// A node's heartbeat record, as stored in Redis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub id: NodeId,
    /// Where browsers reach its HTTP and signaling.
    pub http_url: String,
    /// Its media workers' UDP addresses, as announced to peers.
    pub media: Vec<String>,
    pub state: NodeState,
    pub load: NodeLoad,
    /// When it wrote this record, in the Redis server's clock (ms since the Unix epoch).
    pub heartbeat_ms: u64,
}

/// A change worth telling the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterEvent {
    /// A node not heard before, or heard again after being offline.
    NodeOnline(NodeId),
    /// A node's heartbeat is [`OFFLINE_AFTER`] old: the alarm. `times`: how often this node
    /// has gone offline since this node started.
    NodeOffline { node: NodeId, times: u32 },
}

/// One node in a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeView {
    #[serde(flatten)]
    pub record: NodeRecord,
    pub online: bool,
    /// How old its last heartbeat is, in ms.
    pub heartbeat_age_ms: u64,
    /// How often it went offline since this node started.
    pub offline_times: u32,
}

#[derive(Debug)]
struct Tracked {
    record: NodeRecord,
    online: bool,
    offline_times: u32,
}

/// Every node this node has heard of.
#[derive(Debug, Default)]
pub struct Registry {
    nodes: BTreeMap<NodeId, Tracked>,
}

impl Registry {
    pub fn new() -> Self {
        Registry::default()
    }

    /// What Redis holds now (`records`), at `now_ms` of the Redis clock. Returns what changed,
    /// and the ids of records to delete (offline for [`FORGET_AFTER`]).
    pub fn observe(
        &mut self,
        now_ms: u64,
        records: Vec<NodeRecord>,
    ) -> (Vec<ClusterEvent>, Vec<NodeId>) {
        let mut events = Vec::new();
        let mut seen = Vec::with_capacity(records.len());
        for record in records {
            let id = record.id.clone();
            seen.push(id.clone());
            let tracked = self.nodes.entry(id).or_insert_with(|| Tracked {
                record: record.clone(),
                online: false,
                offline_times: 0,
            });
            tracked.record = record;
        }
        // Records gone from Redis: their nodes stopped cleanly (or were forgotten).
        self.nodes.retain(|id, _| seen.contains(id));
        let mut forget = Vec::new();
        for (id, tracked) in &mut self.nodes {
            let age = now_ms.saturating_sub(tracked.record.heartbeat_ms);
            let online = age < OFFLINE_AFTER.as_millis() as u64;
            match (tracked.online, online) {
                (false, true) => events.push(ClusterEvent::NodeOnline(id.clone())),
                (true, false) => {
                    tracked.offline_times += 1;
                    events.push(ClusterEvent::NodeOffline {
                        node: id.clone(),
                        times: tracked.offline_times,
                    });
                }
                _ => {}
            }
            tracked.online = online;
            if age >= FORGET_AFTER.as_millis() as u64 {
                forget.push(id.clone());
            }
        }
        (events, forget)
    }

    /// Every node, at `now_ms` of the Redis clock.
    pub fn nodes(&self, now_ms: u64) -> Vec<NodeView> {
        self.nodes
            .values()
            .map(|t| NodeView {
                record: t.record.clone(),
                online: t.online,
                heartbeat_age_ms: now_ms.saturating_sub(t.record.heartbeat_ms),
                offline_times: t.offline_times,
            })
            .collect()
    }

    /// How many nodes are online and offline.
    pub fn counts(&self) -> (usize, usize) {
        let online = self.nodes.values().filter(|t| t.online).count();
        (online, self.nodes.len() - online)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, heartbeat_ms: u64) -> NodeRecord {
        NodeRecord {
            id: NodeId(id.into()),
            http_url: format!("http://{id}.example:8080/"),
            media: vec![],
            state: NodeState::Up,
            load: NodeLoad::default(),
            heartbeat_ms,
        }
    }

    #[test]
    fn a_silent_node_goes_offline_once_and_comes_back() {
        let mut registry = Registry::new();
        let (events, _) = registry.observe(1_000, vec![record("a", 1_000), record("b", 900)]);
        assert_eq!(
            events,
            vec![
                ClusterEvent::NodeOnline(NodeId("a".into())),
                ClusterEvent::NodeOnline(NodeId("b".into()))
            ]
        );
        // b stops beating at 900: offline once its heartbeat is 3 s old, and only once.
        let (events, _) = registry.observe(3_800, vec![record("a", 3_800), record("b", 900)]);
        assert!(events.is_empty(), "2.9 s is not yet offline: {events:?}");
        let (events, _) = registry.observe(3_900, vec![record("a", 3_900), record("b", 900)]);
        assert_eq!(
            events,
            vec![ClusterEvent::NodeOffline {
                node: NodeId("b".into()),
                times: 1
            }]
        );
        let (events, _) = registry.observe(5_000, vec![record("a", 5_000), record("b", 900)]);
        assert!(events.is_empty(), "one alarm per outage");
        assert_eq!(registry.counts(), (1, 1));
        // Heard again: online; a second outage counts twice.
        let (events, _) = registry.observe(6_000, vec![record("a", 6_000), record("b", 6_000)]);
        assert_eq!(events, vec![ClusterEvent::NodeOnline(NodeId("b".into()))]);
        let (events, _) = registry.observe(9_500, vec![record("a", 9_500), record("b", 6_000)]);
        assert_eq!(
            events,
            vec![ClusterEvent::NodeOffline {
                node: NodeId("b".into()),
                times: 2
            }]
        );
        let views = registry.nodes(9_500);
        let b = views
            .iter()
            .find(|v| v.record.id.0 == "b")
            .expect("b is listed");
        assert_eq!(
            (b.online, b.heartbeat_age_ms, b.offline_times),
            (false, 3_500, 2)
        );
    }

    #[test]
    fn a_node_that_left_cleanly_raises_no_alarm_and_old_records_are_forgotten() {
        let mut registry = Registry::new();
        registry.observe(1_000, vec![record("a", 1_000), record("b", 1_000)]);
        let (events, _) = registry.observe(9_000, vec![record("a", 9_000)]);
        assert!(events.is_empty(), "b removed its record: {events:?}");
        assert_eq!(registry.counts(), (1, 0));
        let hour = FORGET_AFTER.as_millis() as u64;
        registry.observe(10_000, vec![record("a", 10_000), record("c", 10_000)]);
        let (_, forget) = registry.observe(
            10_000 + hour,
            vec![record("a", 10_000 + hour), record("c", 10_000)],
        );
        assert_eq!(forget, vec![NodeId("c".into())]);
    }
}
