//! The forwarding path: one incoming RTP packet written to every slot bound to its
//! publication, as each slot's [`Forwarder`](super::decide::Forwarder) decides, and handed
//! to the room's in-process subscribers; keyframe requests.

use std::mem;
use std::sync::Arc;
use std::time::Instant;

use classroom_protocol::RoomName;
use rustc_hash::FxHashMap;
use str0m::media::{KeyframeRequest, KeyframeRequestKind, Rid};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite};

use super::best_layer::BestLayerDecision;
use super::decide::{Context, Decision, Incoming};
use super::first_frame::{self, GopCache};
use super::in_process::{LocalPeer, LocalRole, codec_of};
use super::simulcast::is_keyframe_start;
use super::{Peer, RtcMid, Sfu, record_audio_level};
use crate::local::{Codec, LocalEvent, LocalPacket, LocalTrackId};
use crate::{MediaEvent, Output, PeerId, TrackKind};

impl Sfu {
    /// A browser's RTP packet: checked against the publisher's permissions, then fanned out.
    pub(super) fn forward(&mut self, now: Instant, publisher: PeerId, packet: RtpPacket) {
        self.stats.rtp_packets_in += 1;
        let Some(peer) = self.peers.get_mut(&publisher) else {
            return;
        };
        if !peer.publish_allowed {
            self.stats.rtp_dropped_unpublished += 1;
            return;
        }
        let ssrc = packet.header.ssrc;
        let stream = peer
            .rtc
            .direct_api()
            .stream_rx(&ssrc)
            .map(|s| (s.mid(), s.rid()));
        let Some(mid) = stream.map(|(mid, _)| mid).or(packet.header.ext_vals.mid) else {
            return;
        };
        let rid = stream
            .and_then(|(_, rid)| rid)
            .or(packet.header.ext_vals.rid);
        let in_pt = packet.header.payload_type;
        let params = peer
            .rtc
            .codec_config()
            .params()
            .iter()
            .find(|p| p.pt() == in_pt)
            .copied();
        let Some(publication) = peer.publications.get_mut(&mid) else {
            return;
        };
        let kind = publication.kind;
        if kind == TrackKind::Audio && peer.audio_muted {
            self.stats.rtp_dropped_muted += 1;
            return;
        }
        if let (TrackKind::Audio, Some(level)) = (kind, packet.header.ext_vals.audio_level) {
            let vad = packet.header.ext_vals.voice_activity;
            record_audio_level(
                &mut self.speakers,
                &mut self.outputs,
                &peer.room,
                (now, publisher, level, vad),
            );
        }
        let codec = params.as_ref().map_or(Codec::Other, codec_of);
        let rid = rid.filter(|_| kind == TrackKind::Video);
        let keyframe = kind == TrackKind::Video && is_keyframe_start(codec, &packet.payload);
        let mut new_layer = false;
        if let Some(rid) = rid {
            let known = publication.layers.0.len();
            publication.layers.record(now, rid, packet.payload.len());
            new_layer = publication.layers.0.len() != known;
        }
        if kind == TrackKind::Video {
            let max_age = self.config.first_frame_max_age;
            first_frame::cache(now, max_age, publication, rid, keyframe, || LocalPacket {
                seq_no: *packet.seq_no,
                timestamp: packet.header.timestamp,
                marker: packet.header.marker,
                keyframe,
                payload: Arc::clone(&packet.payload),
            });
        }
        if new_layer {
            // Subscribers of this publication choose among its layers again.
            let subscribers: Vec<PeerId> =
                publication.subscribers.iter().map(|(s, _)| *s).collect();
            for subscriber in subscribers {
                self.allocate_layers(now, subscriber);
            }
        }
        let incoming = Incoming {
            kind,
            codec,
            rid,
            params,
            in_pt,
            seq_no: *packet.seq_no,
            timestamp: packet.header.timestamp,
            marker: packet.header.marker,
            keyframe,
            payload: packet.payload,
            arrival: packet.timestamp,
            ext_vals: ExtensionValues {
                audio_level: packet.header.ext_vals.audio_level,
                voice_activity: packet.header.ext_vals.voice_activity,
                video_orientation: packet.header.ext_vals.video_orientation,
                // End-to-end capture time: relayed untouched, so receivers (the load tester)
                // can measure one-way latency through the server.
                abs_capture_time: packet.header.ext_vals.abs_capture_time,
                ..Default::default()
            },
        };
        self.fan_out(now, publisher, mid, &incoming);
        self.relay_out(publisher, mid, &incoming);
    }

    /// Writes one packet of a publication to every slot bound to it and hands it to every
    /// local subscriber of the room. No allocation per copy: the payload is shared.
    pub(super) fn fan_out(
        &mut self,
        now: Instant,
        publisher: PeerId,
        mid: RtcMid,
        incoming: &Incoming,
    ) {
        let Some(publication) = self.publication_mut(publisher, mid) else {
            return;
        };
        publication.bitrate.record(now, incoming.payload.len());
        let track = publication.track;
        let look_for_starts = publication.gop(incoming.rid).is_some() && publication.slots_starting;
        // Taken out for the loop (no allocation per packet) and put back after.
        let subscribers = mem::take(&mut publication.subscribers);
        // Copied only when a subscriber starts, not per packet; looked for only after a bind.
        // Does a slot wait for its first keyframe, and is one of those connected and waiting
        // for this packet's layer?
        let (mut waiting, mut ready) = (false, false);
        if look_for_starts {
            for start in subscribers.iter().filter_map(|s| self.starting_slot(*s)) {
                waiting = true;
                ready |= start.connected && start.layer.is_none_or(|l| incoming.rid == Some(l));
            }
        }
        let mut refresh = false;
        let gop: Option<Vec<LocalPacket>> = match self.publication_mut(publisher, mid) {
            Some(publication) if look_for_starts => {
                publication.slots_starting = waiting;
                let cached = publication
                    .gop(incoming.rid)
                    .filter(|g| ready && g.is_fresh(now));
                refresh = cached.is_some_and(|g| g.wants_refresh(now));
                cached.map(GopCache::replay)
            }
            _ => None,
        };
        let mut replayed = false;

        let kind = incoming.kind;
        let mut wants_keyframe = false;
        let context = Context {
            now,
            gop_cached: gop.as_ref().is_some_and(|g| !g.is_empty()),
            keyframe_request_interval: self.config.keyframe_request_interval,
        };
        for &(subscriber, subscriber_mid) in &subscribers {
            let Some(Peer {
                rtc,
                slots,
                connected: true,
                media_started,
                ..
            }) = self.peers.get_mut(&subscriber)
            else {
                continue;
            };
            let Some(slot) = slots.iter_mut().find(|s| s.mid == subscriber_mid) else {
                continue;
            };
            let decision = slot.forwarder.decide(incoming, context, |params| {
                let to = rtc.codec_config().match_params(params)?.pt();
                let negotiated = rtc.media(subscriber_mid)?.remote_pts().contains(&to);
                negotiated.then_some(to)
            });
            let (out_pt, replay) = match decision {
                Decision::OtherLayer => {
                    self.stats.rtp_skipped_layer += 1;
                    continue;
                }
                Decision::NoCodec { switched } => {
                    self.stats.layer_switches += u64::from(switched);
                    self.stats.rtp_dropped_no_codec += 1;
                    continue;
                }
                Decision::AwaitingKeyframe { ask_keyframe } => {
                    self.stats.rtp_dropped_awaiting_keyframe += 1;
                    wants_keyframe |= ask_keyframe;
                    continue;
                }
                Decision::Forward {
                    pt,
                    replay,
                    switched,
                    ask_keyframe,
                    first,
                } => {
                    self.stats.layer_switches += u64::from(switched);
                    if first {
                        match replay {
                            true => self.stats.first_frames_from_cache += 1,
                            false => self.stats.first_frames_from_publisher += 1,
                        }
                    }
                    replayed |= replay;
                    wants_keyframe |= ask_keyframe;
                    let replay = match &gop {
                        Some(gop) if replay => gop.as_slice(),
                        _ => &[],
                    };
                    (pt, replay)
                }
            };
            let mut api = rtc.direct_api();
            let Some(stream) = api.stream_tx_by_mid(subscriber_mid, None) else {
                continue;
            };
            let forwarded_before = self.stats.rtp_packets_forwarded;
            let mut write = |seq_no: u64, timestamp: u32, marker: bool, payload: &Arc<[u8]>| {
                let Some((seq_no, timestamp)) = slot.forwarder.rewrite(seq_no, timestamp) else {
                    return;
                };
                slot.egress.written += 1;
                stream.write_rtp(
                    RtpWrite::new(
                        out_pt,
                        seq_no.into(),
                        timestamp,
                        incoming.arrival,
                        Arc::clone(payload),
                    )
                    .marker(marker)
                    .nackable(kind == TrackKind::Video)
                    .ext_vals(incoming.ext_vals.clone()),
                );
                self.stats.rtp_packets_forwarded += 1;
            };
            if replay.is_empty() {
                write(
                    incoming.seq_no,
                    incoming.timestamp,
                    incoming.marker,
                    &incoming.payload,
                );
            } else {
                for cached in replay {
                    write(
                        cached.seq_no,
                        cached.timestamp,
                        cached.marker,
                        &cached.payload,
                    );
                }
            }
            let written = self.stats.rtp_packets_forwarded - forwarded_before;
            if !*media_started && written > 0 {
                // The end of the join: signaling measures it from the WebSocket's opening.
                *media_started = true;
                self.outputs
                    .push_back(Output::Event(MediaEvent::MediaStarted {
                        peer: subscriber,
                        at: now,
                    }));
            }
            // Served when the output is next polled, after the rest of the batch: its pacer
            // lets the packets out then, in one pass, not at its next deadline.
            if written > 0 {
                let Some(peer) = self.peers.get_mut(&subscriber) else {
                    continue;
                };
                if peer.unserved == 0 {
                    self.unserved.push(subscriber);
                }
                peer.unserved = peer
                    .unserved
                    .saturating_add(usize::try_from(written).unwrap_or(usize::MAX));
            } else {
                self.drain(subscriber);
            }
        }

        if let Some(publication) = self.publication_mut(publisher, mid) {
            let added_meanwhile = mem::replace(&mut publication.subscribers, subscribers);
            publication.subscribers.extend(added_meanwhile);
        }
        // Does anyone in process (the recorder, a restream) take this room's media?
        let in_process = (!self.local_rooms.is_empty())
            .then(|| room_of(&self.peers, &self.locals, publisher))
            .flatten()
            .and_then(|room| self.local_rooms.get(room))
            .is_some_and(|locals| {
                locals.iter().any(|l| {
                    *l != publisher
                        && self
                            .locals
                            .get(l)
                            .is_some_and(|local| local.role == LocalRole::Subscriber)
                })
            });
        let numbers = match incoming.rid {
            _ if !in_process => None,
            None => Some((incoming.seq_no, incoming.timestamp)),
            Some(rid) => self.best_layer_numbers(now, publisher, mid, rid, incoming),
        };
        if let Some((seq_no, timestamp)) = numbers {
            self.deliver_in_process(publisher, track, incoming, seq_no, timestamp);
        }
        if wants_keyframe && kind == TrackKind::Video {
            self.request_keyframe(now, publisher, mid, KeyframeRequestKind::Pli);
        }
        if replayed && refresh {
            // Keeps the cache young for the joiners still to come (throttled as always).
            match incoming.rid {
                Some(rid) => self.request_layer_keyframe(now, publisher, mid, rid),
                None => self.request_keyframe(now, publisher, mid, KeyframeRequestKind::Pli),
            }
        }
    }

    /// Hands a packet to every in-process subscriber of the publisher's room, under the
    /// numbers given (a simulcast publication's layer rewritten into one stream).
    fn deliver_in_process(
        &mut self,
        publisher: PeerId,
        track: LocalTrackId,
        incoming: &Incoming,
        seq_no: u64,
        timestamp: u32,
    ) {
        for &subscriber in room_of(&self.peers, &self.locals, publisher)
            .and_then(|room| self.local_rooms.get(room))
            .into_iter()
            .flatten()
        {
            let is_subscriber = self
                .locals
                .get(&subscriber)
                .is_some_and(|l| l.role == LocalRole::Subscriber);
            if subscriber == publisher || !is_subscriber {
                continue;
            }
            self.outputs.push_back(Output::Local {
                subscriber,
                event: LocalEvent::Packet {
                    track,
                    codec: incoming.codec,
                    arrival: incoming.arrival,
                    packet: LocalPacket {
                        seq_no,
                        timestamp,
                        marker: incoming.marker,
                        keyframe: incoming.keyframe,
                        payload: Arc::clone(&incoming.payload),
                    },
                },
            });
        }
    }

    /// The numbers under which a packet of simulcast layer `rid` goes to the room's
    /// in-process subscribers, or `None` when it is not the layer they take (see
    /// [`super::best_layer`]); asks the best layer for the keyframe a switch waits for.
    fn best_layer_numbers(
        &mut self,
        now: Instant,
        publisher: PeerId,
        mid: RtcMid,
        rid: Rid,
        incoming: &Incoming,
    ) -> Option<(u64, u32)> {
        let publication = self.publication_mut(publisher, mid)?;
        let best = if publication.best_layer.started() {
            publication.layers.best(now)
        } else {
            publication.layers.settled_best(now)
        };
        let decision = publication.best_layer.decide(
            rid,
            best,
            incoming.keyframe,
            incoming.seq_no,
            incoming.timestamp,
            incoming.arrival,
        );
        match decision {
            BestLayerDecision::Take { seq_no, timestamp } => Some((seq_no, timestamp)),
            BestLayerDecision::Skip { want_keyframe } => {
                if let Some(best) = want_keyframe {
                    self.request_layer_keyframe(now, publisher, mid, best);
                }
                None
            }
        }
    }

    /// A slot still waiting for its first keyframe: whether its peer is connected, and which
    /// simulcast layer it waits for.
    fn starting_slot(&self, (subscriber, mid): (PeerId, RtcMid)) -> Option<StartingSlot> {
        let peer = self.peers.get(&subscriber)?;
        let slot = peer.slots.iter().find(|s| s.mid == mid)?;
        slot.forwarder.is_starting().then_some(StartingSlot {
            connected: peer.connected,
            layer: slot.forwarder.layer.target,
        })
    }

    /// A subscriber asks for a keyframe on one of its slots: pass it to the publisher.
    pub(super) fn relay_keyframe_request(
        &mut self,
        now: Instant,
        subscriber: PeerId,
        request: KeyframeRequest,
    ) {
        let source = self
            .peers
            .get(&subscriber)
            .and_then(|p| p.slots.iter().find(|s| s.mid == request.mid))
            .and_then(|s| s.source);
        if let Some((publisher, publisher_mid)) = source {
            self.request_keyframe(now, publisher, publisher_mid, request.kind);
        }
    }
}

/// A slot waiting for its first keyframe, as the fan-out sees it.
struct StartingSlot {
    connected: bool,
    /// The simulcast layer it will start on (`None`: a single encoding).
    layer: Option<Rid>,
}

/// The room of `publisher`, a browser's peer or an in-process one (fields, not `&Sfu`, so
/// that the caller may push outputs while it holds the answer).
fn room_of<'a>(
    peers: &'a FxHashMap<PeerId, Peer>,
    locals: &'a FxHashMap<PeerId, LocalPeer>,
    publisher: PeerId,
) -> Option<&'a RoomName> {
    match (peers.get(&publisher), locals.get(&publisher)) {
        (Some(peer), _) => Some(&peer.room),
        (None, Some(local)) => Some(&local.room),
        (None, None) => None,
    }
}
