//! The room's media peers: one per connection that sent an `offer` (and one for the encoder's
//! in-process publisher, which has no connection), what each one's sending m-lines carry, and
//! the negotiation steps under way with the media plane.
//!
//! Grants are checked here, against the room's participants, once per step: an `offer` may
//! declare only sources its participant may publish; a peer opens with the publish and mute
//! state in force when it is asked for, and if that changed while the media plane opened it
//! (or its connection went), the room corrects it (or removes it) when the reply comes. Every
//! later change reaches the peers through [`Room::apply_to_peers`], before anyone hears of it.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use classroom_protocol::signal::{
    MediaKind, ParticipantId, QualityUpdate, RecordingState, ServerMessage,
};
use classroom_protocol::{ErrorCode, TrackSource};

use super::{
    ConnectionId, MediaCommand, MediaEffect, MediaReply, Output, PeerFiling, RequestId, Room,
    RoomActivity,
};
use crate::media::{EdgeId, MediaError, MediaNotice, Mid, PeerAccess, PeerId, PeerIds};

/// The media side of a room.
#[derive(Debug, Default)]
pub(super) struct MediaPeers {
    /// Where new peer ids come from; `None` for a room without a media plane.
    ids: Option<PeerIds>,
    peers: BTreeMap<PeerId, Peer>,
    by_connection: HashMap<ConnectionId, PeerId>,
    /// When each joined connection's WebSocket opened (the start of its peer's join time).
    opened_at: HashMap<ConnectionId, Instant>,
    /// The joined connections that came over an edge's signaling link.
    edges: HashMap<ConnectionId, EdgeId>,
    /// Negotiation steps the media plane has not answered yet.
    pending: HashMap<RequestId, Pending>,
    next_request: u64,
}

#[derive(Debug)]
struct Peer {
    participant: ParticipantId,
    /// `None` for the encoder's in-process publisher: nothing is sent to it.
    connection: Option<ConnectionId>,
    /// What each sending m-line carries, by mid, as the last offer declared it.
    sources: BTreeMap<String, TrackSource>,
}

/// A negotiation step waiting for the media plane, and whom to answer.
#[derive(Debug)]
struct Pending {
    participant: ParticipantId,
    connection: ConnectionId,
    id: Option<u64>,
    step: Step,
}

#[derive(Debug)]
enum Step {
    /// A new peer, asked for with `access`.
    Open {
        peer: PeerId,
        access: PeerAccess,
        sources: BTreeMap<String, TrackSource>,
    },
    /// A renegotiation; `offer` is kept to open a new peer if the media plane lost this one.
    Renegotiate {
        peer: PeerId,
        offer: String,
        sources: BTreeMap<String, TrackSource>,
    },
    /// A client `answer` or `video_size`.
    Apply { peer: PeerId },
}

impl MediaPeers {
    pub(super) fn new(ids: PeerIds) -> Self {
        MediaPeers {
            ids: Some(ids),
            ..MediaPeers::default()
        }
    }

    /// Whether the room has a media plane.
    pub(super) fn enabled(&self) -> bool {
        self.ids.is_some()
    }

    /// Where new peer ids come from, when the room has a media plane.
    pub(super) fn ids(&self) -> Option<PeerIds> {
        self.ids.clone()
    }

    pub(super) fn connection_opened(&mut self, connection: ConnectionId, at: Instant) {
        self.opened_at.insert(connection, at);
    }

    pub(super) fn connection_from_edge(&mut self, connection: ConnectionId, edge: EdgeId) {
        self.edges.insert(connection, edge);
    }

    fn request(&mut self, pending: Pending) -> RequestId {
        self.next_request += 1;
        let request = RequestId(self.next_request);
        self.pending.insert(request, pending);
        request
    }

    /// Whether this room has `peer`, or is opening it (the media plane reports a new peer's
    /// tracks before its answer is back).
    fn opened_here(&self, peer: PeerId) -> bool {
        self.peers.contains_key(&peer)
            || self
                .pending
                .values()
                .any(|p| matches!(p.step, Step::Open { peer: opening, .. } if opening == peer))
    }

    /// The peers of `participant`, in order.
    pub(super) fn of(&self, participant: ParticipantId) -> Vec<PeerId> {
        self.peers
            .iter()
            .filter(|(_, p)| p.participant == participant)
            .map(|(peer, _)| *peer)
            .collect()
    }

    fn participant_of(&self, peer: PeerId) -> Option<ParticipantId> {
        self.peers.get(&peer).map(|p| p.participant)
    }

    /// Drops the record of `peer` (the media plane has no such peer, or is told to remove it).
    fn forget(&mut self, peer: PeerId) -> Output {
        if let Some(record) = self.peers.remove(&peer)
            && let Some(connection) = record.connection
            && self.by_connection.get(&connection) == Some(&peer)
        {
            self.by_connection.remove(&connection);
        }
        Output::Filing(PeerFiling::Forgotten(peer))
    }
}

fn media_error(connection: ConnectionId, id: Option<u64>, error: &MediaError) -> Output {
    Output::SendToConnection {
        connection,
        message: ServerMessage::Error {
            id,
            code: error.code(),
            message: error.to_string(),
            grant: None,
        },
    }
}

impl Room {
    /// The participant of media peer `peer`, while the room has it.
    pub fn peer_participant(&self, peer: PeerId) -> Option<ParticipantId> {
        self.media.participant_of(peer)
    }

    /// A client `offer`: opens the connection's peer, or renegotiates it. Answered with the
    /// media plane's answer or an error; a refused offer changes nothing.
    pub(super) fn offer(
        &mut self,
        participant: ParticipantId,
        connection: ConnectionId,
        id: Option<u64>,
        offer: String,
        sources: BTreeMap<String, TrackSource>,
    ) -> Vec<Output> {
        if let Some(grants) = self.grants(participant)
            && let Some(missing) = sources.values().find(|s| !grants.publish.contains(s))
        {
            return vec![Output::SendToConnection {
                connection,
                message: ServerMessage::Error {
                    id,
                    code: ErrorCode::MissingGrant,
                    message: format!("you may not publish a {} track", missing.as_str()),
                    grant: Some(format!("publish:{}", missing.as_str())),
                },
            }];
        }
        if let Some(&peer) = self.media.by_connection.get(&connection) {
            let step = Step::Renegotiate {
                peer,
                offer: offer.clone(),
                sources,
            };
            let request = self.media.request(Pending {
                participant,
                connection,
                id,
                step,
            });
            return vec![Output::ToMedia(MediaCommand::AcceptOffer {
                request,
                peer,
                offer,
            })];
        }
        self.open_peer(participant, connection, id, offer, sources)
    }

    /// Asks the media plane for a new peer for `connection`, with the participant's grants and
    /// mute state as they are now.
    fn open_peer(
        &mut self,
        participant: ParticipantId,
        connection: ConnectionId,
        id: Option<u64>,
        offer: String,
        sources: BTreeMap<String, TrackSource>,
    ) -> Vec<Output> {
        let reply = |message| {
            vec![Output::SendToConnection {
                connection,
                message,
            }]
        };
        // Only on the participant's own connection: one replaced by a second tab (or gone
        // while a renegotiation was under way) gets no peer, which nothing would remove; nor
        // one whose session is away in a breakout room (an offer sent before the move).
        let away = self.is_away(participant);
        let present = self.participants.get(&participant);
        let Some(p) = present.filter(|p| p.connection == Some(connection) && !away) else {
            return reply(ServerMessage::Error {
                id,
                code: ErrorCode::NotJoined,
                message: "join the room first".into(),
                grant: None,
            });
        };
        if !p.grants.subscribe && p.grants.publish.is_empty() {
            return reply(ServerMessage::Error {
                id,
                code: ErrorCode::MissingGrant,
                message: "you need the `subscribe` grant to receive media".into(),
                grant: Some("subscribe".into()),
            });
        }
        let access = PeerAccess {
            publish: self.forwards(p),
            audio_muted: p.info.muted,
            connection_opened: self.media.opened_at.get(&connection).copied(),
            edge: self.media.edges.get(&connection).copied(),
        };
        let Some(peer) = self.media.ids.as_ref().map(PeerIds::next) else {
            return reply(ServerMessage::Error {
                id,
                code: ErrorCode::MediaUnavailable,
                message: MediaError::Unavailable.to_string(),
                grant: None,
            });
        };
        let step = Step::Open {
            peer,
            access,
            sources,
        };
        let request = self.media.request(Pending {
            participant,
            connection,
            id,
            step,
        });
        vec![
            // Routed first: the media plane reports the new peer's tracks while adding it.
            Output::Filing(PeerFiling::Routed(peer)),
            Output::ToMedia(MediaCommand::AddPeer {
                request,
                peer,
                offer,
                access,
            }),
        ]
    }

    /// A client `answer` to the media plane's offer.
    pub(super) fn answer(
        &mut self,
        connection: ConnectionId,
        id: Option<u64>,
        answer: String,
    ) -> Vec<Output> {
        self.apply_step(
            connection,
            id,
            MediaError::NoPendingOffer,
            |request, peer| MediaCommand::AcceptAnswer {
                request,
                peer,
                answer,
            },
        )
    }

    /// A client `video_size`.
    pub(super) fn video_size(
        &mut self,
        connection: ConnectionId,
        id: Option<u64>,
        mid: String,
        height: u32,
    ) -> Vec<Output> {
        self.apply_step(connection, id, MediaError::NoPeer, |request, peer| {
            MediaCommand::SetVideoSize {
                request,
                peer,
                mid: Mid::from(mid),
                height,
            }
        })
    }

    /// A step on the connection's existing peer, or `no_peer` when it has none.
    fn apply_step(
        &mut self,
        connection: ConnectionId,
        id: Option<u64>,
        no_peer: MediaError,
        command: impl FnOnce(RequestId, PeerId) -> MediaCommand,
    ) -> Vec<Output> {
        let Some(&peer) = self.media.by_connection.get(&connection) else {
            return vec![media_error(connection, id, &no_peer)];
        };
        let Some(participant) = self.media.participant_of(peer) else {
            return vec![media_error(connection, id, &no_peer)];
        };
        let request = self.media.request(Pending {
            participant,
            connection,
            id,
            step: Step::Apply { peer },
        });
        vec![Output::ToMedia(command(request, peer))]
    }

    /// The media plane answered a negotiation step.
    pub(super) fn media_reply(&mut self, reply: MediaReply) -> Vec<Output> {
        let (request, result) = match reply {
            MediaReply::Answer { request, result } => (request, result.map(Some)),
            MediaReply::Done { request, result } => (request, result.map(|()| None)),
        };
        let Some(Pending {
            participant,
            connection,
            id,
            step,
        }) = self.media.pending.remove(&request)
        else {
            return Vec::new();
        };
        match (step, result) {
            (
                Step::Open {
                    peer,
                    access,
                    sources,
                },
                Ok(answer),
            ) => self.peer_opened(participant, connection, id, (peer, access, sources), answer),
            (Step::Open { peer, .. }, Err(e)) => {
                vec![self.media.forget(peer), media_error(connection, id, &e)]
            }
            (Step::Renegotiate { peer, sources, .. }, Ok(answer)) => {
                let mut out = Vec::new();
                if let Some(record) = self.media.peers.get_mut(&peer) {
                    // Each offer describes the whole session, so its sources replace the last
                    // ones (and a client cannot grow them offer after offer).
                    record.sources = sources;
                    out.extend(self.published(peer));
                }
                out.push(answer_to(connection, id, answer));
                out.extend(self.publishers(Some(connection)));
                out
            }
            // The media plane dropped the peer (connection failed): open a new one.
            (
                Step::Renegotiate {
                    peer,
                    offer,
                    sources,
                },
                Err(MediaError::NoPeer),
            ) => {
                let mut out = vec![self.media.forget(peer)];
                out.extend(self.open_peer(participant, connection, id, offer, sources));
                out
            }
            (Step::Renegotiate { .. }, Err(e)) => vec![media_error(connection, id, &e)],
            (Step::Apply { .. }, Ok(_)) => id
                .map(|id| Output::SendToConnection {
                    connection,
                    message: ServerMessage::Ok { id },
                })
                .into_iter()
                .collect(),
            (Step::Apply { peer }, Err(e)) => {
                let mut out = Vec::new();
                if e == MediaError::NoPeer {
                    out.push(self.media.forget(peer));
                }
                out.push(media_error(connection, id, &e));
                out
            }
        }
    }

    /// A new peer is open: filed under its connection, unless the connection went while it
    /// opened (then it goes too), and brought in line with grants that changed meanwhile.
    fn peer_opened(
        &mut self,
        participant: ParticipantId,
        connection: ConnectionId,
        id: Option<u64>,
        (peer, access, sources): (PeerId, PeerAccess, BTreeMap<String, TrackSource>),
        answer: Option<String>,
    ) -> Vec<Output> {
        // Gone, or moved to a breakout room while it opened: the peer goes too.
        let away = self.is_away(participant);
        let present = self
            .participants
            .get(&participant)
            .filter(|p| p.connection == Some(connection) && !away);
        let Some(p) = present else {
            return vec![
                self.media.forget(peer),
                Output::ToMedia(MediaCommand::RemovePeer { peer }),
            ];
        };
        let mut out = Vec::new();
        let publish = self.forwards(p);
        if publish != access.publish {
            out.push(Output::ToMedia(MediaCommand::SetPublishAllowed {
                peer,
                allowed: publish,
            }));
        }
        if p.info.muted != access.audio_muted {
            out.push(Output::ToMedia(MediaCommand::SetAudioMuted {
                peer,
                muted: p.info.muted,
            }));
        }
        // Speaking to every breakout room carries over to a new peer of the participant (one
        // opened on coming back from a visit, or while the voice was turned on).
        if self.voices.contains(&participant) {
            out.push(Output::ToMedia(MediaCommand::SetVoiceBroadcast {
                peer,
                lesson: Some(self.lesson),
            }));
        }
        let record = Peer {
            participant,
            connection: Some(connection),
            sources,
        };
        self.media.peers.insert(peer, record);
        // Two offers that both opened a peer (sent before the first was answered): the later
        // one is the connection's, the earlier goes, so that one peer per connection holds
        // and none is left behind when the connection goes or moves.
        if let Some(earlier) = self.media.by_connection.insert(connection, peer)
            && earlier != peer
        {
            out.push(self.media.forget(earlier));
            out.push(Output::ToMedia(MediaCommand::RemovePeer { peer: earlier }));
        }
        tracing::debug!(%participant, %peer, ?access, "media peer opened");
        out.extend(self.published(peer));
        out.push(answer_to(connection, id, answer));
        out.extend(self.publishers(Some(connection)));
        out
    }

    /// Files a new media peer for the encoder's in-process publisher; every track it
    /// publishes (on `mids`) has the source `encoder`. An earlier encoder peer of the
    /// participant is forgotten (the ingest removes it from the media plane itself).
    pub(super) fn file_encoder_peer(
        &mut self,
        participant: ParticipantId,
        peer: PeerId,
        mids: Vec<String>,
    ) -> Vec<Output> {
        let mut out: Vec<Output> = (self.media.of(participant).into_iter())
            .map(|old| self.media.forget(old))
            .collect();
        out.push(Output::Filing(PeerFiling::Routed(peer)));
        let sources = mids
            .into_iter()
            .map(|mid| (mid, TrackSource::Encoder))
            .collect();
        let record = Peer {
            participant,
            connection: None,
            sources,
        };
        self.media.peers.insert(peer, record);
        tracing::debug!(%participant, %peer, "encoder peer filed");
        // In-process subscribers (the restream, WHEP players) learn that it is the encoder.
        out.extend(self.published(peer));
        out
    }

    /// The commands that carry a change of a participant's media permissions to each of their
    /// peers (a participant who is gone takes their peers with them).
    pub(super) fn apply_to_peers(&mut self, effect: &MediaEffect) -> Vec<Output> {
        let mut out = Vec::new();
        for peer in self.media.of(effect.participant()) {
            let command = match effect {
                // Before the lesson is live nobody's media is forwarded; going live allows
                // every publisher's peers at once.
                MediaEffect::PublishAllowed { .. } if !self.live => continue,
                MediaEffect::PublishAllowed { .. } => MediaCommand::SetPublishAllowed {
                    peer,
                    allowed: true,
                },
                MediaEffect::PublishRevoked { .. } => MediaCommand::SetPublishAllowed {
                    peer,
                    allowed: false,
                },
                MediaEffect::AudioMuted { .. } => MediaCommand::SetAudioMuted { peer, muted: true },
                MediaEffect::AudioUnmuted { .. } => {
                    MediaCommand::SetAudioMuted { peer, muted: false }
                }
                MediaEffect::ParticipantGone { .. } => {
                    out.push(self.media.forget(peer));
                    MediaCommand::RemovePeer { peer }
                }
            };
            out.push(Output::ToMedia(command));
        }
        out
    }

    /// A connection ended (dropped, closed by the room, or too slow): its peer goes with it.
    pub(super) fn connection_gone(&mut self, connection: ConnectionId) -> Vec<Output> {
        self.media.opened_at.remove(&connection);
        self.media.edges.remove(&connection);
        match self.media.by_connection.get(&connection).copied() {
            Some(peer) => vec![
                self.media.forget(peer),
                Output::ToMedia(MediaCommand::RemovePeer { peer }),
            ],
            None => Vec::new(),
        }
    }

    /// The room task ends: every peer left is removed.
    pub(super) fn close_peers(&mut self) -> Vec<Output> {
        let peers: Vec<PeerId> = self.media.peers.keys().copied().collect();
        let mut out = Vec::new();
        for peer in peers {
            out.push(self.media.forget(peer));
            out.push(Output::ToMedia(MediaCommand::RemovePeer { peer }));
        }
        out
    }

    /// What the media plane reports: relayed to the peer's connection, naming participants.
    /// Notices about peers the room does not have (any more) change nothing.
    pub(super) fn media_event(&mut self, notice: MediaNotice) -> Vec<Output> {
        if !self.media.enabled() {
            return Vec::new();
        }
        let to = |peer: PeerId| self.media.peers.get(&peer).and_then(|p| p.connection);
        let message = match notice {
            MediaNotice::Speakers { peers, .. } => {
                // A participant may have a peer per tab: each once, in order.
                let mut speakers: Vec<ParticipantId> = Vec::new();
                for participant in peers.iter().filter_map(|p| self.media.participant_of(*p)) {
                    if !speakers.contains(&participant) {
                        speakers.push(participant);
                    }
                }
                let mut out = Vec::new();
                if self.kind == super::RoomKind::Breakout {
                    // The lesson's moderators see who speaks in each room (their overview).
                    let users = speakers
                        .iter()
                        .filter_map(|p| self.participants.get(p).map(|p| p.info.user_id))
                        .collect();
                    out.push(Output::RoomSpeakers { users });
                }
                out.push(Output::Broadcast {
                    except: None,
                    message: ServerMessage::Speakers { speakers },
                });
                return out;
            }
            MediaNotice::Quality { peer, quality } => {
                let Some(participant) = self.media.participant_of(peer) else {
                    return Vec::new();
                };
                let updates = vec![QualityUpdate {
                    participant,
                    quality,
                }];
                return vec![Output::Broadcast {
                    except: None,
                    message: ServerMessage::ConnectionQuality { updates },
                }];
            }
            MediaNotice::PeerGone { peer } => {
                let Some(participant) = self.media.participant_of(peer) else {
                    return Vec::new();
                };
                tracing::debug!(%peer, "the media plane dropped a peer");
                let mut out = vec![self.media.forget(peer)];
                // An encoder publishing over WebRTC (WHIP) whose connection failed has stopped:
                // nothing else would ever take its participant out.
                if self.is_encoder(participant) && self.media.of(participant).is_empty() {
                    let reason = "the encoder's connection was lost".to_owned();
                    out.extend(self.encoder_changed(
                        classroom_protocol::signal::EncoderState::Stopped,
                        Some(reason),
                    ));
                }
                return out;
            }
            MediaNotice::Offer { peer, sdp } => to(peer).map(|c| (c, ServerMessage::Offer { sdp })),
            MediaNotice::TrackEnded { subscriber, mid } => to(subscriber).map(|c| {
                let mid = mid.to_string();
                (c, ServerMessage::TrackEnded { mid })
            }),
            MediaNotice::TrackStarted {
                subscriber,
                mid,
                publisher,
                publisher_mid,
                kind,
            } => {
                if self.kind == super::RoomKind::Breakout
                    && kind == MediaKind::Audio
                    && !self.media.opened_here(publisher)
                {
                    // Only a voice speaking to every breakout room reaches a room's
                    // subscribers from another room (the media plane's `sfu/voice.rs`).
                    let message = ServerMessage::VoiceTrack {
                        mid: mid.to_string(),
                    };
                    return to(subscriber)
                        .map(|connection| Output::SendToConnection {
                            connection,
                            message,
                        })
                        .into_iter()
                        .collect();
                }
                let track = self.media.peers.get(&publisher).map(|p| {
                    let declared = p.sources.get(publisher_mid.as_str()).copied();
                    let source = declared.unwrap_or(match kind {
                        MediaKind::Audio => TrackSource::Microphone,
                        MediaKind::Video => TrackSource::Camera,
                    });
                    ServerMessage::Track {
                        mid: mid.to_string(),
                        participant: p.participant,
                        kind,
                        source,
                    }
                });
                to(subscriber).zip(track)
            }
        };
        message
            .map(|(connection, message)| Output::SendToConnection {
                connection,
                message,
            })
            .into_iter()
            .collect()
    }

    /// Shares what a client's peer publishes with in-process subscribers (the restream
    /// chooses its main view by it).
    fn published(&self, peer: PeerId) -> Option<Output> {
        let record = self.media.peers.get(&peer)?;
        let role = self.role(record.participant)?;
        Some(Output::Filing(PeerFiling::Published {
            peer,
            role,
            sources: record.sources.clone(),
        }))
    }

    /// While the lesson is recorded: tells the recorder which participant each peer is and
    /// what its m-lines carry; every peer, or the one of `connection`.
    pub(super) fn publishers(&self, connection: Option<ConnectionId>) -> Vec<Output> {
        if self.recording == RecordingState::Off {
            return Vec::new();
        }
        self.media
            .peers
            .iter()
            .filter(|(_, p)| connection.is_none() || p.connection == connection)
            .map(|(peer, p)| {
                Output::Activity(RoomActivity::Publisher {
                    peer: *peer,
                    participant: p.participant,
                    sources: p.sources.clone(),
                })
            })
            .collect()
    }
}

fn answer_to(connection: ConnectionId, id: Option<u64>, answer: Option<String>) -> Output {
    Output::SendToConnection {
        connection,
        message: ServerMessage::Answer {
            id,
            sdp: answer.unwrap_or_default(),
        },
    }
}
