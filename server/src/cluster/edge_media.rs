//! The edge's side of an edge participant's media (`docs/scale-out.md`, step 2): the home's
//! room drives the participant's peer in this node's SFU over the signaling link. This node
//! carries out the home's commands with its own SFU ([`SfuPort`]) and answers them, reports
//! what its SFU says of those peers back to the home ([`EdgeMedia::forward`]), and opens the
//! room's node media link to the home with the room's first peer here, so that the home's
//! publications cross once per room and node pair.
//!
//! Peer ids are the home's (cluster-unique: each node's carry its node number), so this
//! node's SFU takes them as they are, and the relayed publishers the node media link brings
//! in are the ids the home's room knows.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use classroom_media::driver::MediaHandle;
use classroom_media::node_link::NodeLinkStats;
use classroom_media::node_link::driver::NodeLinkHandle;
use classroom_protocol::RoomName;
use classroom_signaling::{MediaError, MediaNotice, MediaPort, PeerAccess, PeerId};

use super::link::node::{NodeChannel, NodeCommand, NodeReply, WireError, WireNotice};
use super::registry::NodeId;
use crate::live::{JoinClock, SfuPort};

/// A signaling link to a home, numbered by this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HomeLinkId(u64);

/// The peers this node serves for home nodes' rooms, and their node media links.
pub struct EdgeMedia {
    port: SfuPort,
    media: MediaHandle,
    /// Where this node's ends of node media links bind (its media address's IP, port 0).
    link_ip: IpAddr,
    next_link: AtomicU64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    homes: HashMap<HomeLinkId, (NodeId, NodeChannel)>,
    /// The home's peers this node's SFU serves: over which link, in which room.
    peers: HashMap<PeerId, (HomeLinkId, RoomName)>,
    node_links: HashMap<(HomeLinkId, RoomName), NodeLinkHandle>,
}

impl EdgeMedia {
    pub fn new(media: MediaHandle, link_ip: IpAddr) -> EdgeMedia {
        EdgeMedia {
            port: SfuPort::new(media.clone(), Arc::new(JoinClock::default())),
            media,
            link_ip,
            next_link: AtomicU64::new(1),
            state: Mutex::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Each update is a few statements on plain maps: consistent enough under a panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A signaling link to `home` opened.
    pub fn link_opened(&self, home: &NodeId, channel: NodeChannel) -> HomeLinkId {
        let link = HomeLinkId(self.next_link.fetch_add(1, Ordering::Relaxed));
        self.state().homes.insert(link, (home.clone(), channel));
        link
    }

    /// The link ended: nobody drives its peers any more, so they go from the SFU (their
    /// students were told to join again), and its node media links close.
    pub async fn link_closed(&self, link: HomeLinkId) {
        let (peers, links) = {
            let mut state = self.state();
            state.homes.remove(&link);
            let peers: Vec<PeerId> = (state.peers.iter())
                .filter(|(_, (l, _))| *l == link)
                .map(|(peer, _)| *peer)
                .collect();
            for peer in &peers {
                state.peers.remove(peer);
            }
            let keys: Vec<(HomeLinkId, RoomName)> = (state.node_links.keys())
                .filter(|(l, _)| *l == link)
                .cloned()
                .collect();
            let links: Vec<NodeLinkHandle> = keys
                .iter()
                .filter_map(|key| state.node_links.remove(key))
                .collect();
            (peers, links)
        };
        drop(links);
        for peer in peers {
            self.port.remove_peer(peer).await;
        }
    }

    /// What this node's SFU says of a peer: sent to the peer's home when it is a home's
    /// (true), else left to this node's rooms (false).
    pub fn forward(&self, notice: &MediaNotice) -> bool {
        let Some(peer) = notice.peer() else {
            return false;
        };
        let mut state = self.state();
        let Some((link, _)) = state.peers.get(&peer).cloned() else {
            return false;
        };
        if matches!(notice, MediaNotice::PeerGone { .. }) {
            state.peers.remove(&peer);
        }
        if let (Some((_, channel)), Some(wire)) =
            (state.homes.get(&link), WireNotice::of(notice.clone()))
        {
            channel.notice(wire);
        }
        true
    }

    /// The counters of this node's node media links, summed, and how many run.
    pub fn node_link_stats(&self) -> (NodeLinkStats, usize) {
        NodeLinkHandle::running_totals(self.state().node_links.values())
    }

    /// Whether `peer` is one of `link`'s (a home drives only the peers it added).
    fn owns(&self, link: HomeLinkId, peer: PeerId) -> bool {
        self.state()
            .peers
            .get(&peer)
            .is_some_and(|(l, _)| *l == link)
    }

    /// Carries out the home's request `id` and answers it.
    pub async fn execute(&self, link: HomeLinkId, id: u64, command: NodeCommand) {
        let Some(channel) = self.state().homes.get(&link).map(|(_, c)| c.clone()) else {
            return;
        };
        let reply = self.run(link, command).await;
        channel.reply(id, reply);
    }

    async fn run(&self, link: HomeLinkId, command: NodeCommand) -> NodeReply {
        let done = |result: Result<(), MediaError>| NodeReply::Done {
            result: result.map_err(WireError::from),
        };
        let sdp = |result: Result<String, MediaError>| NodeReply::Sdp {
            result: result.map_err(WireError::from),
        };
        match command {
            NodeCommand::AddPeer {
                peer,
                room,
                offer,
                publish,
                audio_muted,
            } => {
                {
                    let mut state = self.state();
                    if state.peers.contains_key(&peer) {
                        return sdp(Err(MediaError::Unavailable));
                    }
                    // Before the SFU has it: it reports the peer's tracks while adding it.
                    state.peers.insert(peer, (link, room.clone()));
                }
                let access = PeerAccess {
                    publish,
                    audio_muted,
                    connection_opened: None,
                    edge: None,
                };
                let answer = self.port.add_peer(peer, &room, offer, access).await;
                match &answer {
                    Ok(_) => self.ensure_node_link(link, room).await,
                    Err(_) => {
                        self.state().peers.remove(&peer);
                    }
                }
                sdp(answer)
            }
            NodeCommand::AcceptOffer { peer, offer } if self.owns(link, peer) => {
                sdp(self.port.accept_offer(peer, offer).await)
            }
            NodeCommand::AcceptAnswer { peer, answer } if self.owns(link, peer) => {
                done(self.port.accept_answer(peer, answer).await)
            }
            NodeCommand::SetVideoSize { peer, mid, height } if self.owns(link, peer) => {
                done(self.port.set_video_size(peer, mid, height).await)
            }
            NodeCommand::RemovePeer { peer } if self.owns(link, peer) => {
                let room = self.state().peers.remove(&peer).map(|(_, room)| room);
                self.port.remove_peer(peer).await;
                if let Some(room) = room {
                    self.release_node_link(link, room);
                }
                done(Ok(()))
            }
            NodeCommand::SetPublishAllowed { peer, allowed } if self.owns(link, peer) => {
                self.port.set_publish_allowed(peer, allowed).await;
                done(Ok(()))
            }
            NodeCommand::SetAudioMuted { peer, muted } if self.owns(link, peer) => {
                self.port.set_audio_muted(peer, muted).await;
                done(Ok(()))
            }
            NodeCommand::SetVoiceBroadcast { peer, lesson } if self.owns(link, peer) => {
                self.port.set_voice_broadcast(peer, lesson).await;
                done(Ok(()))
            }
            NodeCommand::AcceptOffer { .. } => sdp(Err(MediaError::NoPeer)),
            // Nothing left to do for a peer this node no longer has (or never had).
            NodeCommand::RemovePeer { .. }
            | NodeCommand::SetPublishAllowed { .. }
            | NodeCommand::SetAudioMuted { .. }
            | NodeCommand::SetVoiceBroadcast { .. } => done(Ok(())),
            NodeCommand::AcceptAnswer { .. } | NodeCommand::SetVideoSize { .. } => {
                done(Err(MediaError::NoPeer))
            }
            // An edge answers no node media links.
            NodeCommand::NodeLinkOffer { .. } => NodeReply::NodeLinkAnswer {
                result: Err("an edge answers no node media link".into()),
            },
        }
    }

    /// The room's node media link to the home over `link`, opened when it has none (or its
    /// last one ended). Called after a peer of the room was added, so the link joins the
    /// worker the room lives on in this node's SFU.
    async fn ensure_node_link(&self, link: HomeLinkId, room: RoomName) {
        let channel = {
            let state = self.state();
            let running =
                (state.node_links.get(&(link, room.clone()))).is_some_and(|l| !l.is_finished());
            match (running, state.homes.get(&link)) {
                (false, Some((_, channel))) => channel.clone(),
                _ => return,
            }
        };
        let bind = SocketAddr::new(self.link_ip, 0);
        let (pending, offer) = match self.media.node_link_offer(room.clone(), bind).await {
            Ok(opened) => opened,
            Err(e) => {
                tracing::warn!(%room, error = %e, "cluster: cannot open a node media link");
                return;
            }
        };
        let command = NodeCommand::NodeLinkOffer {
            room: room.clone(),
            offer,
        };
        let answer = match channel.call(command).await {
            Ok(NodeReply::NodeLinkAnswer { result: Ok(answer) }) => answer,
            Ok(NodeReply::NodeLinkAnswer { result: Err(why) }) => {
                tracing::warn!(%room, %why, "cluster: the home refused a node media link");
                return;
            }
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(%room, error = %e, "cluster: no answer to a node media link");
                return;
            }
        };
        match pending.connect(&answer) {
            Ok(handle) => {
                tracing::info!(%room, link = %handle.local_addr(), "cluster: node media link to the home opened");
                self.state().node_links.insert((link, room), handle);
            }
            Err(e) => {
                tracing::warn!(%room, error = %e, "cluster: the home's node media link answer does not fit");
            }
        }
    }

    /// The room's last peer over `link` left: its node media link closes.
    fn release_node_link(&self, link: HomeLinkId, room: RoomName) {
        let handle = {
            let mut state = self.state();
            let in_use = (state.peers.values()).any(|(l, r)| *l == link && *r == room);
            if in_use {
                return;
            }
            state.node_links.remove(&(link, room))
        };
        drop(handle);
    }
}
