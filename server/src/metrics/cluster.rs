//! The cluster's node registry as this node sees it (only with `cluster.redis_url`).

use prometheus::{IntCounter, IntGauge, IntGaugeVec, Opts};

use super::{gauge_value, sync_one};
use crate::cluster::ClusterStatus;

pub(super) struct ClusterMetrics {
    redis_up: IntGauge,
    nodes: IntGaugeVec,
    offline_alarms: IntCounter,
    relayed: IntGauge,
    node_links: IntGauge,
    node_link_sent: IntGaugeVec,
    node_link_received: IntGauge,
    node_link_malformed: IntGauge,
}

impl ClusterMetrics {
    pub(super) fn new() -> Self {
        let valid = "static metric definition to be valid";
        ClusterMetrics {
            redis_up: IntGauge::new(
                "classroom_cluster_redis_up",
                "1 while Redis answers this node's heartbeats (cluster.redis_url), else 0",
            )
            .expect(valid),
            nodes: IntGaugeVec::new(
                Opts::new(
                    "classroom_cluster_nodes",
                    "Nodes in the registry, online (heartbeat younger than 3 s) or offline",
                ),
                &["state"],
            )
            .expect(valid),
            offline_alarms: IntCounter::new(
                "classroom_cluster_node_offline_total",
                "Alarms: a node's heartbeat stopped for 3 s (counted once per outage)",
            )
            .expect(valid),
            relayed: IntGauge::new(
                "classroom_cluster_edge_participants",
                "Participants this node serves as an edge: their signaling relayed to their \
                 room's home node (cluster.home_capacity)",
            )
            .expect(valid),
            node_links: IntGauge::new(
                "classroom_cluster_node_links",
                "Node media links running on this node (one per room and other node)",
            )
            .expect(valid),
            node_link_sent: IntGaugeVec::new(
                Opts::new(
                    "classroom_cluster_node_link_packets_sent",
                    "RTP packets the running node media links sent the other nodes, by kind \
                     (retransmissions not counted; a link's count goes with it)",
                ),
                &["kind"],
            )
            .expect(valid),
            node_link_received: IntGauge::new(
                "classroom_cluster_node_link_packets_received",
                "RTP packets the running node media links received from the other nodes",
            )
            .expect(valid),
            node_link_malformed: IntGauge::new(
                "classroom_cluster_node_link_malformed_controls",
                "Control messages of the running node media links that were not ours (dropped)",
            )
            .expect(valid),
        }
    }

    pub(super) fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.redis_up.clone()),
            Box::new(self.nodes.clone()),
            Box::new(self.offline_alarms.clone()),
            Box::new(self.relayed.clone()),
            Box::new(self.node_links.clone()),
            Box::new(self.node_link_sent.clone()),
            Box::new(self.node_link_received.clone()),
            Box::new(self.node_link_malformed.clone()),
        ]
    }

    pub(super) fn observed(&self, status: &ClusterStatus) {
        self.redis_up.set(i64::from(status.redis == "up"));
        let online = status.nodes.iter().filter(|n| n.online).count() as u64;
        let offline = status.nodes.len() as u64 - online;
        self.nodes
            .with_label_values(&["online"])
            .set(gauge_value(online));
        self.nodes
            .with_label_values(&["offline"])
            .set(gauge_value(offline));
        sync_one(&self.offline_alarms, status.offline_alarms);
        self.relayed.set(gauge_value(status.relayed_participants));
        let links = &status.node_links;
        self.node_links.set(gauge_value(links.running));
        self.node_link_sent
            .with_label_values(&["audio"])
            .set(gauge_value(links.audio_packets_sent));
        self.node_link_sent
            .with_label_values(&["video"])
            .set(gauge_value(links.video_packets_sent));
        self.node_link_received
            .set(gauge_value(links.packets_received));
        self.node_link_malformed
            .set(gauge_value(links.malformed_controls));
    }
}
