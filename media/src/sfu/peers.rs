//! The media plane's commands about peers, as signaling gives them: add a peer from its
//! offer, renegotiate, remove it, and what it may do (publish, unmuted audio, the size it shows
//! a video at).

use std::time::{Duration, Instant};

use classroom_protocol::RoomName;
use rustc_hash::FxHashMap;
use str0m::bwe::Bitrate;
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::rtp::Extension;
use str0m::{IceCreds, Rtc};

use super::tick::PeerTick;
use super::{PACER_BURST, Peer, PendingOffer, RtcMid, Sfu, Slot, start};
use crate::error::{
    AcceptAnswerError, AcceptOfferError, AddPeerError, UnknownPeer, VideoSizeError,
};
use crate::quality::{QualityConfig, QualityMonitor};
use crate::{Mid, PeerId, TrackKind};

impl Sfu {
    /// Adds a peer to `room` from the client's SDP offer; returns our SDP answer. The peer may
    /// publish; see [`Sfu::add_peer_with`] to add one that may not.
    pub fn add_peer(
        &mut self,
        now: Instant,
        peer_id: PeerId,
        room: RoomName,
        offer: &str,
    ) -> Result<String, AddPeerError> {
        self.add_peer_with(now, peer_id, room, offer, true)
    }

    /// [`Sfu::add_peer`] with the peer's initial publish permission. A peer added with
    /// `publish_allowed: false` has nothing forwarded from its first packet on, and its
    /// m-lines are never offered to the room until [`Sfu::set_publish_allowed`] grants it.
    pub fn add_peer_with(
        &mut self,
        now: Instant,
        peer_id: PeerId,
        room: RoomName,
        offer: &str,
        publish_allowed: bool,
    ) -> Result<String, AddPeerError> {
        self.add_peer_pinned(now, peer_id, room, offer, publish_allowed, None)
    }

    /// [`Sfu::add_peer_with`] for a peer that takes no offers of ours (see
    /// [`Sfu::set_pins`]): it receives only the publications of `pins`.
    pub fn add_peer_pinned(
        &mut self,
        now: Instant,
        peer_id: PeerId,
        room: RoomName,
        offer: &str,
        publish_allowed: bool,
        pins: Option<Vec<(PeerId, Mid)>>,
    ) -> Result<String, AddPeerError> {
        self.last_now = now;
        if self.peers.contains_key(&peer_id) {
            return Err(AddPeerError::DuplicatePeer(peer_id));
        }
        let offer = SdpOffer::from_sdp_string(offer)
            .map_err(|e| AddPeerError::InvalidSdp(e.to_string()))?;

        let mut rtc = new_rtc(now, self.config.pacer_burst, self.config.resend_history);
        for candidate in &self.candidates {
            rtc.add_local_candidate(candidate.clone());
        }
        // The server ufrag routes a peer's first STUN request, so it must be unique.
        let mut creds = rtc.direct_api().local_ice_credentials();
        while self.demux.has_ufrag(&creds.ufrag) {
            creds = IceCreds::new();
            rtc.direct_api().set_local_ice_credentials(creds.clone());
        }
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| AddPeerError::OfferRejected(e.to_string()))?;

        self.demux.insert_ufrag(creds.ufrag.clone(), peer_id);
        self.rooms.entry(room.clone()).or_default().push(peer_id);
        if let Some(speakers) = self.speakers.get_mut(&room) {
            speakers.report_again();
        }
        self.peers.insert(
            peer_id,
            Peer {
                room,
                rtc,
                ufrag: creds.ufrag,
                addrs: Vec::new(),
                timer: None,
                tick: PeerTick::default(),
                unserved: 0,
                connect_deadline: now + self.config.connect_timeout,
                connected: false,
                publish_allowed,
                audio_muted: false,
                publications: FxHashMap::default(),
                slots: Vec::new(),
                pins: pins.map(super::pins::rtc_pins),
                pending_offer: None,
                estimate: None,
                start_estimate: start::INITIAL_ESTIMATE,
                quality: QualityMonitor::new(now, QualityConfig::default()),
                media_started: false,
                worst_jitter: None,
                nacks_sent: FxHashMap::default(),
            },
        );
        self.drain(peer_id);
        self.run(now);
        Ok(answer.to_sdp_string())
    }

    /// Whether [`Sfu::add_peer`] would answer `offer`, changing nothing: for an HTTP
    /// negotiation (WHIP) that must refuse a bad offer before the room hears of an encoder.
    pub fn check_offer(now: Instant, offer: &str) -> Result<(), AddPeerError> {
        let offer = SdpOffer::from_sdp_string(offer)
            .map_err(|e| AddPeerError::InvalidSdp(e.to_string()))?;
        // The pacer's burst and the resend history play no part in answering.
        new_rtc(now, PACER_BURST, super::RESEND_HISTORY)
            .sdp_api()
            .accept_offer(offer)
            .map(|_| ())
            .map_err(|e| AddPeerError::OfferRejected(e.to_string()))
    }

    /// A client renegotiation: applies its offer and returns our answer.
    pub fn accept_offer(
        &mut self,
        now: Instant,
        peer_id: PeerId,
        offer: &str,
    ) -> Result<String, AcceptOfferError> {
        self.last_now = now;
        let peer = self.peers.get_mut(&peer_id).ok_or(UnknownPeer(peer_id))?;
        let offer = SdpOffer::from_sdp_string(offer)
            .map_err(|e| AcceptOfferError::InvalidSdp(e.to_string()))?;
        let answer = peer
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| AcceptOfferError::OfferRejected(e.to_string()))?;
        // The client's offer supersedes ours; what ours would have added is offered again.
        let superseded = peer.pending_offer.take().is_some();
        if superseded {
            self.dirty_rooms.push(peer.room.clone());
        }
        self.drain(peer_id);
        self.run(now);
        Ok(answer.to_sdp_string())
    }

    /// The client's answer to the offer of the last [`MediaEvent::OfferCreated`].
    pub fn accept_answer(
        &mut self,
        now: Instant,
        peer_id: PeerId,
        answer: &str,
    ) -> Result<(), AcceptAnswerError> {
        self.last_now = now;
        let peer = self.peers.get_mut(&peer_id).ok_or(UnknownPeer(peer_id))?;
        if peer.pending_offer.is_none() {
            return Err(AcceptAnswerError::NoPendingOffer);
        }
        let answer = SdpAnswer::from_sdp_string(answer)
            .map_err(|e| AcceptAnswerError::InvalidSdp(e.to_string()))?;
        let Some(PendingOffer { pending, mids }) = peer.pending_offer.take() else {
            return Err(AcceptAnswerError::NoPendingOffer);
        };
        let result = peer.rtc.sdp_api().accept_answer(pending, answer);
        if result.is_ok() {
            peer.slots
                .extend(mids.into_iter().map(|(mid, kind)| Slot::new(mid, kind)));
        }
        self.dirty_rooms.push(peer.room.clone());
        self.drain(peer_id);
        self.run(now);
        result.map_err(|e| AcceptAnswerError::AnswerRejected(e.to_string()))
    }

    /// Removes a peer: its publications end, its slots are released, its session is closed.
    pub fn remove_peer(&mut self, now: Instant, peer_id: PeerId) -> Result<(), UnknownPeer> {
        self.last_now = now;
        if self.peers.contains_key(&peer_id) {
            self.remove(peer_id);
        } else if self.locals.contains_key(&peer_id) {
            self.remove_local(peer_id);
        } else {
            return Err(UnknownPeer(peer_id));
        }
        self.run(now);
        Ok(())
    }

    /// Grants or revokes a peer's right to publish. On revocation nothing of the peer's is
    /// forwarded from the next packet on and its subscriptions end; on a grant its tracks are
    /// offered to the room again.
    pub fn set_publish_allowed(
        &mut self,
        now: Instant,
        peer_id: PeerId,
        allowed: bool,
    ) -> Result<(), UnknownPeer> {
        self.last_now = now;
        let (flag, room, publications) = match self.peers.get_mut(&peer_id) {
            Some(peer) => (&mut peer.publish_allowed, &peer.room, &peer.publications),
            None => {
                let local = self.locals.get_mut(&peer_id).ok_or(UnknownPeer(peer_id))?;
                (&mut local.publish_allowed, &local.room, &local.publications)
            }
        };
        if *flag == allowed {
            return Ok(());
        }
        *flag = allowed;
        let room = room.clone();
        let mut mids: Vec<(RtcMid, TrackKind)> =
            publications.iter().map(|(mid, p)| (*mid, p.kind)).collect();
        mids.sort_by_key(|(mid, _)| mid.to_string());
        for (mid, kind) in mids {
            if allowed {
                self.published(peer_id, mid, kind);
            } else {
                self.unpublish(peer_id, mid);
            }
        }
        self.dirty_rooms.push(room);
        self.run(now);
        Ok(())
    }

    /// Mutes or unmutes a peer's microphone at the SFU: while muted, its audio packets are
    /// dropped (counted in [`SfuStats::rtp_dropped_muted`]) and its video still flows. The
    /// subscriptions stay bound, so unmuting resumes the audio with the next packet.
    pub fn set_audio_muted(
        &mut self,
        now: Instant,
        peer_id: PeerId,
        muted: bool,
    ) -> Result<(), UnknownPeer> {
        self.last_now = now;
        match self.peers.get_mut(&peer_id) {
            Some(peer) => peer.audio_muted = muted,
            None => {
                let local = self.locals.get_mut(&peer_id).ok_or(UnknownPeer(peer_id))?;
                local.audio_muted = muted;
            }
        }
        Ok(())
    }

    /// The size (device pixels) at which the subscriber shows the video of its m-line `mid`;
    /// simulcast layers above what that size needs are not sent. `0×0` (hidden) asks for the
    /// lowest layer.
    pub fn set_video_size(
        &mut self,
        now: Instant,
        peer_id: PeerId,
        mid: &Mid,
        height: u32,
    ) -> Result<(), VideoSizeError> {
        self.last_now = now;
        let peer = self.peers.get_mut(&peer_id).ok_or(UnknownPeer(peer_id))?;
        let rtc_mid = RtcMid::from(mid.as_str());
        let slot = peer
            .slots
            .iter_mut()
            .find(|s| s.mid == rtc_mid && s.kind == TrackKind::Video)
            .ok_or_else(|| VideoSizeError::UnknownMid(mid.clone()))?;
        slot.forwarder.layer.max_height = Some(height.max(1));
        self.allocate_layers(now, peer_id);
        self.run(now);
        Ok(())
    }
}

/// Sent packets each peer's session remembers for TWCC feedback (see [`new_rtc`]).
const TWCC_SEND_HISTORY: usize = 511;

/// A peer's WebRTC engine, as every peer has it; its pacer lets out bursts of up to
/// `pacer_burst` at its pacing rate at once ([`super::SfuConfig::pacer_burst`]), and it keeps
/// what it sent for `resend_history` ([`super::SfuConfig::resend_history`]).
fn new_rtc(now: Instant, pacer_burst: Duration, resend_history: Duration) -> Rtc {
    Rtc::builder()
        .set_ice_lite(true)
        .set_rtp_mode(true)
        .set_extension(7, Extension::AbsoluteCaptureTime)
        // Bandwidth estimation toward each subscriber chooses its simulcast layers; the start
        // is raised once its floor is known (see `start`).
        .enable_bwe(Some(Bitrate::bps(start::INITIAL_ESTIMATE)))
        // Round-trip time, loss and jitter for the connection quality shown to the room.
        .set_stats_interval(Some(Duration::from_secs(1)))
        // One pass lets out every packet its pacer allows (vendor/str0m): a subscriber is
        // served once per batch of forwarded packets, not once per packet.
        .set_pacer_release_due(true)
        .set_pacer_burst(Some(pacer_burst))
        .set_rtx_cache_duration(resend_history)
        // str0m remembers 1000 sent packets for TWCC feedback (a 1024-record ring, ~90 KiB per
        // peer); its estimator and loss statistics look a second back, and 511 (a 512-record
        // ring) is 1.7 s at 300 packets a second, a 2.5 Mbit/s layer with audio and probes.
        .set_twcc_send_history(TWCC_SEND_HISTORY)
        .build(now)
}
