//! The home's media port in a cluster (`docs/scale-out.md`, step 2): the room's commands for a
//! peer go to the SFU that serves it. A participant who arrived over an edge's signaling link
//! has their peer in that edge's SFU, so their commands cross the link ([`NodeChannel`]) and
//! the edge answers; everyone else's go to this node's SFU ([`SfuPort`]). The edge reports
//! what its SFU says of those peers back over the link, and the home delivers it to its rooms
//! as its own SFU's ([`ClusterPort::edge_notice`]).
//!
//! The home also answers each edge's node media link for a room (one per room and edge), and
//! keeps it while the edge's link lives and the edge has not offered a new one for the room.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use classroom_media::driver::MediaHandle;
use classroom_media::node_link::NodeLinkStats;
use classroom_media::node_link::driver::NodeLinkHandle;
use classroom_protocol::{LessonId, Mid, RoomName};
use classroom_signaling::media::{EdgeId, MediaFuture};
use classroom_signaling::{MediaError, MediaNotice, MediaPort, PeerAccess, PeerId};

use super::link::node::{CallError, NodeChannel, NodeCommand, NodeReply, WireNotice};
use crate::live::SfuPort;

/// The home's media port: local peers to this node's SFU, an edge's peers to that edge's.
pub struct ClusterPort {
    local: SfuPort,
    media: MediaHandle,
    /// Where this node's ends of node media links bind (its media address's IP, port 0).
    link_ip: IpAddr,
    next_edge: AtomicU64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    edges: HashMap<EdgeId, NodeChannel>,
    /// The peers an edge serves: the edge's link, and the peer's room.
    peers: HashMap<PeerId, (EdgeId, RoomName)>,
    /// The node media links this node answered, by edge and room.
    node_links: HashMap<(EdgeId, RoomName), NodeLinkHandle>,
}

impl ClusterPort {
    pub fn new(local: SfuPort, link_ip: IpAddr) -> ClusterPort {
        ClusterPort {
            media: local.media.clone(),
            local,
            link_ip,
            next_edge: AtomicU64::new(1),
            state: Mutex::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Each update is a few statements on plain maps: consistent enough under a panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An edge's signaling link opened: its participants' media goes over `channel`.
    pub fn edge_opened(&self, channel: NodeChannel) -> EdgeId {
        let edge = EdgeId(self.next_edge.fetch_add(1, Ordering::Relaxed));
        self.state().edges.insert(edge, channel);
        edge
    }

    /// The edge's link ended: its requests failed already; its node media links close (its
    /// SFU drops the relayed publications), and its peers are forgotten as the room removes
    /// them (their sessions ended with the link).
    pub fn edge_closed(&self, edge: EdgeId) {
        // The handles are dropped (their links closed) after the lock is let go.
        let links: Vec<((EdgeId, RoomName), NodeLinkHandle)> = {
            let mut state = self.state();
            state.edges.remove(&edge);
            state.peers.retain(|_, (e, _)| *e != edge);
            state
                .node_links
                .extract_if(|(e, _), _| *e == edge)
                .collect()
        };
        drop(links);
    }

    /// What an edge's SFU said of one of its peers: delivered when the peer is that edge's
    /// (an edge speaks only for its own peers); `None` otherwise.
    pub fn edge_notice(&self, edge: EdgeId, notice: WireNotice) -> Option<MediaNotice> {
        let peer = notice.peer();
        let state = self.state();
        if state.peers.get(&peer).is_none_or(|(e, _)| *e != edge) {
            tracing::debug!(%peer, "cluster: a notice for a peer the edge does not serve; dropped");
            return None;
        }
        Some(notice.into_notice())
    }

    /// The edge's offer of a node media link for `room`: answered when the edge serves a peer
    /// of the room (an edge cannot make this node open links for rooms it has no part in).
    pub async fn node_link_offer(
        &self,
        edge: EdgeId,
        room: RoomName,
        offer: &str,
    ) -> Result<String, String> {
        let allowed = (self.state().peers.values()).any(|(e, r)| *e == edge && *r == room);
        if !allowed {
            return Err(format!("no peer of room {room} is on this edge"));
        }
        let bind = SocketAddr::new(self.link_ip, 0);
        let (handle, answer) = self
            .media
            .node_link_answer(room.clone(), bind, offer)
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(%room, link = %handle.local_addr(), "cluster: answered an edge's node media link");
        let replaced = self.state().node_links.insert((edge, room), handle);
        // The edge's previous link for the room ended on its side (it offers only then).
        drop(replaced);
        Ok(answer)
    }

    /// The counters of the node media links this node answered, summed, and how many run.
    pub fn node_link_stats(&self) -> (NodeLinkStats, usize) {
        NodeLinkHandle::running_totals(self.state().node_links.values())
    }

    /// The channel of the edge serving `peer`; `None` for a local peer.
    fn edge_of(&self, peer: PeerId) -> Option<Result<NodeChannel, MediaError>> {
        let state = self.state();
        let (edge, _) = state.peers.get(&peer)?;
        Some(
            state
                .edges
                .get(edge)
                .cloned()
                .ok_or(MediaError::Unavailable),
        )
    }

    async fn call(
        &self,
        channel: &NodeChannel,
        command: NodeCommand,
    ) -> Result<NodeReply, MediaError> {
        channel.call(command).await.map_err(|e| {
            tracing::warn!(error = %e, "cluster: an edge's media command failed");
            match e {
                CallError::Gone | CallError::Busy | CallError::Timeout => MediaError::Unavailable,
            }
        })
    }

    async fn sdp(&self, channel: &NodeChannel, command: NodeCommand) -> Result<String, MediaError> {
        match self.call(channel, command).await? {
            NodeReply::Sdp { result } => result.map_err(MediaError::from),
            _ => Err(MediaError::Unavailable),
        }
    }

    async fn done(&self, channel: &NodeChannel, command: NodeCommand) -> Result<(), MediaError> {
        match self.call(channel, command).await? {
            NodeReply::Done { result } => result.map_err(MediaError::from),
            _ => Err(MediaError::Unavailable),
        }
    }

    /// A command with nothing to answer: a failure is logged (the edge's peer is gone with
    /// its link anyway).
    async fn settle(&self, peer: PeerId, channel: NodeChannel, command: NodeCommand) {
        if let Err(e) = self.done(&channel, command).await {
            tracing::debug!(%peer, error = %e, "cluster: an edge's media command got no answer");
        }
    }

    /// A command with nothing to answer, for `peer` wherever it is: `local` on this node's
    /// SFU, `command` to the edge serving it (nothing when that edge's link is gone: so is the
    /// peer).
    async fn route(
        &self,
        peer: PeerId,
        local: impl Future<Output = ()>,
        command: impl FnOnce() -> NodeCommand,
    ) {
        match self.edge_of(peer) {
            None => local.await,
            Some(Err(_)) => {}
            Some(Ok(channel)) => self.settle(peer, channel, command()).await,
        }
    }
}

impl MediaPort for ClusterPort {
    fn add_peer<'a>(
        &'a self,
        peer: PeerId,
        room: &'a RoomName,
        offer: String,
        access: PeerAccess,
    ) -> MediaFuture<'a, Result<String, MediaError>> {
        Box::pin(async move {
            let Some(edge) = access.edge else {
                return self.local.add_peer(peer, room, offer, access).await;
            };
            let channel = {
                let mut state = self.state();
                let Some(channel) = state.edges.get(&edge).cloned() else {
                    return Err(MediaError::Unavailable);
                };
                // Before the call: the edge reports the peer's tracks while adding it.
                state.peers.insert(peer, (edge, room.clone()));
                channel
            };
            let command = NodeCommand::AddPeer {
                peer,
                room: room.clone(),
                offer,
                publish: access.publish,
                audio_muted: access.audio_muted,
            };
            let answer = self.sdp(&channel, command).await;
            if answer.is_err() {
                self.state().peers.remove(&peer);
            }
            answer
        })
    }

    fn accept_offer(
        &self,
        peer: PeerId,
        offer: String,
    ) -> MediaFuture<'_, Result<String, MediaError>> {
        Box::pin(async move {
            match self.edge_of(peer) {
                None => self.local.accept_offer(peer, offer).await,
                Some(channel) => {
                    self.sdp(&channel?, NodeCommand::AcceptOffer { peer, offer })
                        .await
                }
            }
        })
    }

    fn accept_answer(
        &self,
        peer: PeerId,
        answer: String,
    ) -> MediaFuture<'_, Result<(), MediaError>> {
        Box::pin(async move {
            match self.edge_of(peer) {
                None => self.local.accept_answer(peer, answer).await,
                Some(channel) => {
                    self.done(&channel?, NodeCommand::AcceptAnswer { peer, answer })
                        .await
                }
            }
        })
    }

    fn remove_peer(&self, peer: PeerId) -> MediaFuture<'_, ()> {
        Box::pin(async move {
            let edge = self.state().peers.remove(&peer).map(|(edge, _)| edge);
            let channel = edge.and_then(|edge| self.state().edges.get(&edge).cloned());
            match (edge, channel) {
                (None, _) => self.local.remove_peer(peer).await,
                // The edge's link is gone, and the peer with it.
                (Some(_), None) => {}
                (Some(_), Some(channel)) => {
                    self.settle(peer, channel, NodeCommand::RemovePeer { peer })
                        .await
                }
            }
        })
    }

    fn set_publish_allowed(&self, peer: PeerId, allowed: bool) -> MediaFuture<'_, ()> {
        Box::pin(async move {
            let local = self.local.set_publish_allowed(peer, allowed);
            let command = || NodeCommand::SetPublishAllowed { peer, allowed };
            self.route(peer, local, command).await
        })
    }

    fn set_audio_muted(&self, peer: PeerId, muted: bool) -> MediaFuture<'_, ()> {
        Box::pin(async move {
            let local = self.local.set_audio_muted(peer, muted);
            let command = || NodeCommand::SetAudioMuted { peer, muted };
            self.route(peer, local, command).await
        })
    }

    fn set_voice_broadcast(&self, peer: PeerId, lesson: Option<LessonId>) -> MediaFuture<'_, ()> {
        Box::pin(async move {
            let local = self.local.set_voice_broadcast(peer, lesson);
            let command = || NodeCommand::SetVoiceBroadcast { peer, lesson };
            self.route(peer, local, command).await
        })
    }

    fn set_video_size(
        &self,
        peer: PeerId,
        mid: Mid,
        height: u32,
    ) -> MediaFuture<'_, Result<(), MediaError>> {
        Box::pin(async move {
            match self.edge_of(peer) {
                None => self.local.set_video_size(peer, mid, height).await,
                Some(channel) => {
                    let command = NodeCommand::SetVideoSize { peer, mid, height };
                    self.done(&channel?, command).await
                }
            }
        })
    }
}

#[cfg(test)]
#[path = "media_port_tests.rs"]
mod tests;
