//! Node-to-node commands on a signaling link (`docs/scale-out.md`, step 2): the home's room
//! drives an edge participant's media peer in the edge's SFU, and the edge answers and reports
//! what its SFU says of that peer; the edge asks the home to answer its node media link.
//!
//! Each message is one [`super::frame::LinkFrame::Node`] frame: a version byte, then JSON
//! (small, rare next to the media, and easy to extend). Requests carry an id their response
//! repeats; notices are one way. A message that does not parse, or of another version, is
//! counted and dropped (the link goes on); a request is answered within [`CALL_TIMEOUT`] or
//! fails, and every request still waiting when the link ends fails at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use classroom_protocol::signal::{ConnectionQuality, MediaKind};
use classroom_protocol::{LessonId, Mid, PeerId, RoomName};
use classroom_signaling::{MediaError, MediaNotice};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::mux::Link;

/// The version of the messages below; a message of another is dropped.
pub const VERSION: u8 = 1;
/// Requests one side may have waiting for the other at once: a bound on what a silent other
/// side makes this one keep.
pub const MAX_PENDING: usize = 4096;
/// How long a request waits for its response.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// One node-to-node message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NodeMessage {
    Request {
        id: u64,
        command: NodeCommand,
    },
    Response {
        id: u64,
        reply: NodeReply,
    },
    /// Edge to home: what the edge's SFU says of a peer the home drives.
    Notice {
        notice: WireNotice,
    },
}

/// What one node asks of the other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum NodeCommand {
    /// Home to edge: the [`classroom_signaling::MediaPort`] calls, for a peer of the edge's.
    AddPeer {
        peer: PeerId,
        room: RoomName,
        offer: String,
        publish: bool,
        audio_muted: bool,
    },
    AcceptOffer {
        peer: PeerId,
        offer: String,
    },
    AcceptAnswer {
        peer: PeerId,
        answer: String,
    },
    RemovePeer {
        peer: PeerId,
    },
    SetPublishAllowed {
        peer: PeerId,
        allowed: bool,
    },
    SetAudioMuted {
        peer: PeerId,
        muted: bool,
    },
    SetVoiceBroadcast {
        peer: PeerId,
        lesson: Option<LessonId>,
    },
    SetVideoSize {
        peer: PeerId,
        mid: Mid,
        height: u32,
    },
    /// Edge to home: the edge's offer of a node media link for `room`.
    NodeLinkOffer {
        room: RoomName,
        offer: String,
    },
}

/// The answer to a [`NodeCommand`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NodeReply {
    /// `add_peer`, `accept_offer`: the SDP answer.
    Sdp { result: Result<String, WireError> },
    /// The other media commands.
    Done { result: Result<(), WireError> },
    /// `node_link_offer`: the home's answer, or why there is none.
    NodeLinkAnswer { result: Result<String, String> },
}

/// [`MediaError`] on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "error", rename_all = "snake_case")]
pub enum WireError {
    InvalidSdp { message: String },
    NoPendingOffer,
    NoPeer,
    Unavailable,
    UnknownMid { mid: Mid },
}

impl From<MediaError> for WireError {
    fn from(e: MediaError) -> Self {
        match e {
            MediaError::InvalidSdp(message) => WireError::InvalidSdp { message },
            MediaError::NoPendingOffer => WireError::NoPendingOffer,
            MediaError::NoPeer => WireError::NoPeer,
            MediaError::Unavailable => WireError::Unavailable,
            MediaError::UnknownMid(mid) => WireError::UnknownMid { mid },
        }
    }
}

impl From<WireError> for MediaError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::InvalidSdp { message } => MediaError::InvalidSdp(message),
            WireError::NoPendingOffer => MediaError::NoPendingOffer,
            WireError::NoPeer => MediaError::NoPeer,
            WireError::Unavailable => MediaError::Unavailable,
            WireError::UnknownMid { mid } => MediaError::UnknownMid(mid),
        }
    }
}

/// The per-peer [`MediaNotice`]s on the wire. (A room's speakers are not among them: the
/// edge's SFU leaves a room's speaker detection to the room's home, where the edge's
/// publishers arrive over the node media link.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "notice", rename_all = "snake_case")]
pub enum WireNotice {
    Offer {
        peer: PeerId,
        sdp: String,
    },
    TrackStarted {
        subscriber: PeerId,
        mid: Mid,
        publisher: PeerId,
        publisher_mid: Mid,
        kind: MediaKind,
    },
    TrackEnded {
        subscriber: PeerId,
        mid: Mid,
    },
    PeerGone {
        peer: PeerId,
    },
    Quality {
        peer: PeerId,
        quality: ConnectionQuality,
    },
}

impl WireNotice {
    /// The notice for the wire; `None` for a room's speakers.
    pub fn of(notice: MediaNotice) -> Option<WireNotice> {
        Some(match notice {
            MediaNotice::Offer { peer, sdp } => WireNotice::Offer { peer, sdp },
            MediaNotice::TrackStarted {
                subscriber,
                mid,
                publisher,
                publisher_mid,
                kind,
            } => WireNotice::TrackStarted {
                subscriber,
                mid,
                publisher,
                publisher_mid,
                kind,
            },
            MediaNotice::TrackEnded { subscriber, mid } => {
                WireNotice::TrackEnded { subscriber, mid }
            }
            MediaNotice::PeerGone { peer } => WireNotice::PeerGone { peer },
            MediaNotice::Quality { peer, quality } => WireNotice::Quality { peer, quality },
            MediaNotice::Speakers { .. } => return None,
        })
    }

    /// The peer the notice is about.
    pub fn peer(&self) -> PeerId {
        match self {
            WireNotice::Offer { peer, .. }
            | WireNotice::PeerGone { peer }
            | WireNotice::Quality { peer, .. } => *peer,
            WireNotice::TrackStarted { subscriber, .. }
            | WireNotice::TrackEnded { subscriber, .. } => *subscriber,
        }
    }

    pub fn into_notice(self) -> MediaNotice {
        match self {
            WireNotice::Offer { peer, sdp } => MediaNotice::Offer { peer, sdp },
            WireNotice::TrackStarted {
                subscriber,
                mid,
                publisher,
                publisher_mid,
                kind,
            } => MediaNotice::TrackStarted {
                subscriber,
                mid,
                publisher,
                publisher_mid,
                kind,
            },
            WireNotice::TrackEnded { subscriber, mid } => {
                MediaNotice::TrackEnded { subscriber, mid }
            }
            WireNotice::PeerGone { peer } => MediaNotice::PeerGone { peer },
            WireNotice::Quality { peer, quality } => MediaNotice::Quality { peer, quality },
        }
    }
}

/// Why bytes of a node frame are not a message of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeMessageError {
    #[error("an empty node message")]
    Empty,
    #[error("a node message of version {0} (this node speaks {VERSION})")]
    Version(u8),
    #[error("a node message that does not parse: {0}")]
    Malformed(String),
}

impl NodeMessage {
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = vec![VERSION];
        // Serializing these types cannot fail (no maps with non-string keys, no custom code).
        if serde_json::to_writer(&mut bytes, self).is_err() {
            bytes.truncate(1);
        }
        bytes
    }

    pub fn decode(bytes: &[u8]) -> Result<NodeMessage, NodeMessageError> {
        let (&version, json) = bytes.split_first().ok_or(NodeMessageError::Empty)?;
        if version != VERSION {
            return Err(NodeMessageError::Version(version));
        }
        serde_json::from_slice(json).map_err(|e| NodeMessageError::Malformed(e.to_string()))
    }
}

/// Why a request got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("the node link is gone")]
    Gone,
    #[error("too many requests are waiting on the node link")]
    Busy,
    #[error("no answer on the node link within {CALL_TIMEOUT:?}")]
    Timeout,
}

/// What arrived that is for the channel's owner.
#[derive(Debug)]
pub enum Incoming {
    Request { id: u64, command: NodeCommand },
    Notice(WireNotice),
}

/// The node-to-node messages of one link (either end): requests out and their answers in,
/// and what else comes in for the owner. Cheap to clone.
#[derive(Clone)]
pub struct NodeChannel {
    link: Link,
    shared: Arc<Calls>,
}

#[derive(Default)]
struct Calls {
    pending: Mutex<HashMap<u64, oneshot::Sender<NodeReply>>>,
    next: AtomicU64,
    /// Messages from the other node that were dropped: not ours, or answers nobody waits for.
    dropped: AtomicU64,
}

impl Calls {
    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<NodeReply>>> {
        // Each update is one statement: consistent under a panic elsewhere.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl NodeChannel {
    pub fn new(link: Link) -> NodeChannel {
        NodeChannel {
            link,
            shared: Arc::default(),
        }
    }

    pub fn is_alive(&self) -> bool {
        self.link.is_alive()
    }

    /// Sends `command` and waits for its answer.
    pub async fn call(&self, command: NodeCommand) -> Result<NodeReply, CallError> {
        let id = self.shared.next.fetch_add(1, Ordering::Relaxed) + 1;
        let (reply, answered) = oneshot::channel();
        {
            let mut pending = self.shared.pending();
            if pending.len() >= MAX_PENDING {
                return Err(CallError::Busy);
            }
            pending.insert(id, reply);
        }
        // Forgets the request however this call ends (answered, timed out, dropped).
        let _forget = Forget(&self.shared, id);
        if !self.link.is_alive() {
            return Err(CallError::Gone);
        }
        self.link
            .send_node(NodeMessage::Request { id, command }.encode());
        match tokio::time::timeout(CALL_TIMEOUT, answered).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => Err(CallError::Gone),
            Err(_) => Err(CallError::Timeout),
        }
    }

    /// Answers the other node's request `id`.
    pub fn reply(&self, id: u64, reply: NodeReply) {
        self.link
            .send_node(NodeMessage::Response { id, reply }.encode());
    }

    /// Tells the other node what the media plane says of one of its peers.
    pub fn notice(&self, notice: WireNotice) {
        self.link.send_node(NodeMessage::Notice { notice }.encode());
    }

    /// A node frame from the other node: answers go to their callers here; what is for the
    /// owner is returned. What does not parse is counted and dropped.
    pub fn receive(&self, bytes: &[u8]) -> Option<Incoming> {
        let message = match NodeMessage::decode(bytes) {
            Ok(message) => message,
            Err(e) => {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "cluster link: dropped a node message");
                return None;
            }
        };
        match message {
            NodeMessage::Request { id, command } => Some(Incoming::Request { id, command }),
            NodeMessage::Notice { notice } => Some(Incoming::Notice(notice)),
            NodeMessage::Response { id, reply } => {
                let waiting = self.shared.pending().remove(&id);
                match waiting {
                    Some(caller) => {
                        let _ = caller.send(reply);
                    }
                    // Timed out meanwhile, or never asked.
                    None => {
                        self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
                None
            }
        }
    }

    /// The link ended: every request still waiting fails now.
    pub fn ended(&self) {
        self.shared.pending().clear();
    }

    /// Messages from the other node dropped so far.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Requests waiting for an answer now.
    pub fn waiting(&self) -> usize {
        self.shared.pending().len()
    }
}

struct Forget<'a>(&'a Calls, u64);

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.0.pending().remove(&self.1);
    }
}
