//! In-process participants inside the core: local publishers feed the same fan-out as
//! browsers, local subscribers receive every track of their room as [`LocalEvent`]s.

use std::time::Instant;

use classroom_protocol::RoomName;
use rustc_hash::FxHashMap;
use str0m::format::{Codec as RtcCodec, CodecSpec, FormatParams, PayloadParams};
use str0m::media::{Frequency, Pt};

use super::decide::Incoming;
use super::first_frame::GopCache;
use super::{Publication, RtcMid, Sfu};
use crate::error::{AddPeerError, LocalWriteError};
use crate::local::{Codec, LocalEvent, LocalPacket, LocalTrack, LocalTrackId};
use crate::{MediaEvent, Mid, Output, PeerId, TrackKind};

/// An in-process participant.
pub(super) struct LocalPeer {
    pub(super) room: RoomName,
    pub(super) role: LocalRole,
    pub(super) publish_allowed: bool,
    pub(super) audio_muted: bool,
    /// Empty for subscribers.
    pub(super) publications: FxHashMap<RtcMid, Publication>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LocalRole {
    Publisher,
    Subscriber,
}

/// What a local publication needs beyond what every publication has.
pub(super) struct LocalSource {
    pub(super) codec: Codec,
    /// Codec parameters to match against each subscriber's negotiated payload types.
    pub(super) params: PayloadParams,
}

impl Sfu {
    /// Adds an in-process publisher with its tracks to `room`. Like a browser added with
    /// [`Sfu::add_peer_with`], nothing of it is forwarded while `publish_allowed` is false.
    pub fn add_local_publisher(
        &mut self,
        now: Instant,
        peer_id: PeerId,
        room: RoomName,
        tracks: Vec<LocalTrack>,
        publish_allowed: bool,
    ) -> Result<(), AddPeerError> {
        self.last_now = now;
        self.check_new_peer(peer_id)?;
        let mut publications = FxHashMap::default();
        for (index, track) in tracks.into_iter().enumerate() {
            let mid = RtcMid::from(track.mid.as_str());
            if publications.contains_key(&mid) {
                return Err(AddPeerError::DuplicateTrack(track.mid));
            }
            let id = LocalTrackId(self.next_track + index as u64);
            let mut publication = Publication::new(track.codec.kind(), id);
            publication.local = Some(LocalSource {
                codec: track.codec,
                params: payload_params(track.codec),
            });
            // The encoder cannot be asked for a keyframe: its GOP is kept, whatever its age.
            publication.gop = track.keep_gop.then(GopCache::keeping);
            publications.insert(mid, publication);
        }
        self.next_track += publications.len() as u64;
        let mut mids: Vec<(RtcMid, TrackKind)> =
            publications.iter().map(|(mid, p)| (*mid, p.kind)).collect();
        mids.sort_by_key(|(mid, _)| mid.to_string());
        self.insert_local(
            peer_id,
            LocalPeer {
                room: room.clone(),
                role: LocalRole::Publisher,
                publish_allowed,
                audio_muted: false,
                publications,
            },
        );
        if publish_allowed {
            for (mid, kind) in mids {
                self.published(peer_id, mid, kind);
            }
        }
        self.dirty_rooms.push(room);
        self.run(now);
        Ok(())
    }

    /// Adds an in-process subscriber to `room`: it receives [`LocalEvent::TrackStarted`] for
    /// every track forwarded there now and later, then their packets, as
    /// [`Output::Local`]. Keyframes are requested so that video can start at once.
    pub fn add_local_subscriber(
        &mut self,
        now: Instant,
        peer_id: PeerId,
        room: RoomName,
    ) -> Result<(), AddPeerError> {
        self.last_now = now;
        self.check_new_peer(peer_id)?;
        self.insert_local(
            peer_id,
            LocalPeer {
                room: room.clone(),
                role: LocalRole::Subscriber,
                publish_allowed: false,
                audio_muted: false,
                publications: FxHashMap::default(),
            },
        );
        for (publisher, mid, kind, track) in self.forwardable_tracks(&room) {
            self.outputs.push_back(Output::Local {
                subscriber: peer_id,
                event: LocalEvent::TrackStarted {
                    track,
                    publisher,
                    mid: super::our_mid(mid),
                    kind,
                },
            });
            if kind == TrackKind::Video {
                self.request_keyframe(now, publisher, mid, str0m::media::KeyframeRequestKind::Pli);
            }
        }
        self.run(now);
        Ok(())
    }

    /// A local subscriber asks for a keyframe of `publisher`'s video track `mid`.
    pub fn request_local_keyframe(&mut self, now: Instant, publisher: PeerId, mid: &Mid) {
        self.last_now = now;
        let mid = RtcMid::from(mid.as_str());
        self.request_keyframe(now, publisher, mid, str0m::media::KeyframeRequestKind::Pli);
        self.run(now);
    }

    /// One packet of a local publisher's track, forwarded like a browser's.
    pub fn write_local(
        &mut self,
        now: Instant,
        peer_id: PeerId,
        mid: &Mid,
        packet: LocalPacket,
    ) -> Result<(), LocalWriteError> {
        self.last_now = now;
        let local = self
            .locals
            .get_mut(&peer_id)
            .filter(|l| l.role == LocalRole::Publisher)
            .ok_or(LocalWriteError::UnknownPublisher(peer_id))?;
        let rtc_mid = RtcMid::from(mid.as_str());
        let publication = local
            .publications
            .get_mut(&rtc_mid)
            .ok_or_else(|| LocalWriteError::UnknownTrack(mid.clone()))?;
        self.stats.rtp_packets_in += 1;
        // Cached whatever the permission: a grant then starts viewers at the last keyframe.
        if let Some(gop) = publication.gop.as_mut() {
            gop.push(now, packet.keyframe, || packet.clone());
        }
        if !local.publish_allowed {
            self.stats.rtp_dropped_unpublished += 1;
            return Ok(());
        }
        if publication.kind == TrackKind::Audio && local.audio_muted {
            self.stats.rtp_dropped_muted += 1;
            return Ok(());
        }
        let Some(source) = publication.local.as_ref() else {
            return Err(LocalWriteError::UnknownTrack(mid.clone()));
        };
        let codec = source.codec;
        let params = source.params;
        let incoming = Incoming {
            kind: publication.kind,
            codec,
            params: Some(params),
            in_pt: params.pt(),
            seq_no: packet.seq_no,
            timestamp: packet.timestamp,
            marker: packet.marker,
            keyframe: packet.keyframe,
            rid: None,
            payload: packet.payload,
            arrival: now,
            ext_vals: Default::default(),
        };
        self.fan_out(now, peer_id, rtc_mid, &incoming);
        self.run(now);
        Ok(())
    }

    /// Every forwardable publication in the room: (publisher, mid, kind, track id).
    pub(super) fn forwardable_tracks(
        &self,
        room: &RoomName,
    ) -> Vec<(PeerId, RtcMid, TrackKind, LocalTrackId)> {
        let mut tracks = Vec::new();
        let remote = self.rooms.get(room).into_iter().flatten().filter_map(|p| {
            let peer = self.peers.get(p).filter(|peer| peer.publish_allowed)?;
            Some((*p, &peer.publications))
        });
        let local = self
            .local_rooms
            .get(room)
            .into_iter()
            .flatten()
            .filter_map(|p| {
                let peer = self.locals.get(p).filter(|peer| peer.publish_allowed)?;
                Some((*p, &peer.publications))
            });
        for (publisher, publications) in remote.chain(local) {
            tracks.extend(
                publications
                    .iter()
                    .map(|(mid, p)| (publisher, *mid, p.kind, p.track)),
            );
        }
        tracks.sort_by_key(|(peer, mid, _, _)| (*peer, mid.to_string()));
        tracks
    }

    /// A publication became forwardable: signaling hears of it, local subscribers see it.
    pub(super) fn published(&mut self, publisher: PeerId, mid: RtcMid, kind: TrackKind) {
        self.outputs
            .push_back(Output::Event(MediaEvent::TrackPublished {
                peer: publisher,
                mid: super::our_mid(mid),
                kind,
            }));
        let Some(track) = self.publication_mut(publisher, mid).map(|p| p.track) else {
            return;
        };
        for subscriber in self.local_subscribers(publisher) {
            self.outputs.push_back(Output::Local {
                subscriber,
                event: LocalEvent::TrackStarted {
                    track,
                    publisher,
                    mid: super::our_mid(mid),
                    kind,
                },
            });
        }
    }

    /// The local subscribers in the room of `publisher`, other than itself.
    pub(super) fn local_subscribers(&self, publisher: PeerId) -> Vec<PeerId> {
        let room = match (self.peers.get(&publisher), self.locals.get(&publisher)) {
            (Some(peer), _) => &peer.room,
            (None, Some(local)) => &local.room,
            (None, None) => return Vec::new(),
        };
        self.local_rooms
            .get(room)
            .into_iter()
            .flatten()
            .copied()
            .filter(|p| {
                *p != publisher
                    && self
                        .locals
                        .get(p)
                        .is_some_and(|l| l.role == LocalRole::Subscriber)
            })
            .collect()
    }

    /// A publication of a browser or a local publisher.
    pub(super) fn publication(&self, publisher: PeerId, mid: RtcMid) -> Option<&Publication> {
        match self.peers.get(&publisher) {
            Some(peer) => peer.publications.get(&mid),
            None => self.locals.get(&publisher)?.publications.get(&mid),
        }
    }

    /// A publication of a browser or a local publisher, to change.
    pub(super) fn publication_mut(
        &mut self,
        publisher: PeerId,
        mid: RtcMid,
    ) -> Option<&mut Publication> {
        match self.peers.get_mut(&publisher) {
            Some(peer) => peer.publications.get_mut(&mid),
            None => self.locals.get_mut(&publisher)?.publications.get_mut(&mid),
        }
    }

    /// Removes a local participant; its publications end like a browser's.
    pub(super) fn remove_local(&mut self, peer_id: PeerId) {
        let publications: Vec<RtcMid> = match self.locals.get(&peer_id) {
            Some(local) if local.publish_allowed => local.publications.keys().copied().collect(),
            Some(_) => Vec::new(),
            None => return,
        };
        for mid in publications {
            self.unpublish(peer_id, mid);
        }
        let Some(local) = self.locals.remove(&peer_id) else {
            return;
        };
        if let Some(members) = self.local_rooms.get_mut(&local.room) {
            members.retain(|p| *p != peer_id);
            if members.is_empty() {
                self.local_rooms.remove(&local.room);
            }
        }
        self.outputs
            .push_back(Output::Event(MediaEvent::PeerDisconnected {
                peer: peer_id,
            }));
    }

    fn check_new_peer(&self, peer_id: PeerId) -> Result<(), AddPeerError> {
        if self.peers.contains_key(&peer_id) || self.locals.contains_key(&peer_id) {
            return Err(AddPeerError::DuplicatePeer(peer_id));
        }
        Ok(())
    }

    fn insert_local(&mut self, peer_id: PeerId, local: LocalPeer) {
        self.local_rooms
            .entry(local.room.clone())
            .or_default()
            .push(peer_id);
        self.locals.insert(peer_id, local);
    }
}

/// Our codec for a negotiated payload type's parameters.
pub(super) fn codec_of(params: &PayloadParams) -> Codec {
    let spec = params.spec();
    match spec.codec {
        RtcCodec::Opus => Codec::Opus,
        RtcCodec::Vp8 => Codec::Vp8,
        RtcCodec::Vp9 => Codec::Vp9,
        RtcCodec::H264 => Codec::H264 {
            profile_level_id: spec.format.profile_level_id.unwrap_or(0x42e01f),
        },
        RtcCodec::Av1 => Codec::Av1,
        _ => Codec::Other,
    }
}

/// Parameters that match what browsers negotiate for each codec. The payload type is only a
/// key for the per-slot cache: local packets never go out with it.
pub(super) fn payload_params(codec: Codec) -> PayloadParams {
    let (codec, clock_rate, channels, format, pt) = match codec {
        Codec::Opus => (
            RtcCodec::Opus,
            Frequency::FORTY_EIGHT_KHZ,
            Some(2),
            FormatParams {
                min_p_time: Some(10),
                use_inband_fec: Some(true),
                ..Default::default()
            },
            111,
        ),
        Codec::Vp8 => (
            RtcCodec::Vp8,
            Frequency::NINETY_KHZ,
            None,
            FormatParams::default(),
            96,
        ),
        Codec::Vp9 => (
            RtcCodec::Vp9,
            Frequency::NINETY_KHZ,
            None,
            FormatParams {
                profile_id: Some(0),
                ..Default::default()
            },
            98,
        ),
        Codec::H264 { profile_level_id } => (
            RtcCodec::H264,
            Frequency::NINETY_KHZ,
            None,
            FormatParams {
                level_asymmetry_allowed: Some(true),
                packetization_mode: Some(1),
                profile_level_id: Some(profile_level_id),
                ..Default::default()
            },
            102,
        ),
        Codec::Av1 | Codec::Other => (
            RtcCodec::Av1,
            Frequency::NINETY_KHZ,
            None,
            FormatParams::default(),
            45,
        ),
    };
    PayloadParams::new(
        Pt::new_with_value(pt),
        None,
        CodecSpec {
            codec,
            clock_rate,
            channels,
            format,
        },
    )
}
