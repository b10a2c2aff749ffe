//! A participant with media for end-to-end tests: a signaling [`Ws`] paired with the load
//! tester's WebRTC client ([`Peer`]: str0m over real UDP, or ICE-TCP, on 127.0.0.1, sending the
//! built-in VP8 and Opus clips, measuring every stream it receives; it can also receive an RTMP
//! encoder's H.264 and keep what arrives, for byte-for-byte comparisons). [`Participant`] handles
//! what the server sends about media (its offers, which track arrives on which m-line) while a
//! test waits for something.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use classroom_loadtest::clip::Clips;
use classroom_loadtest::ingest::frames::SentFrames;
use classroom_loadtest::link::Transport;
use classroom_loadtest::peer::{Peer, PeerStats, Sending};
use classroom_loadtest::receiver::StreamStats;
use classroom_protocol::signal::{ClientMessage, MediaKind, ParticipantId, ServerMessage};

use crate::ws::Ws;

/// The load tester's clips, parsed once per test binary.
pub fn clips() -> Arc<Clips> {
    static CLIPS: OnceLock<Arc<Clips>> = OnceLock::new();
    CLIPS
        .get_or_init(|| Clips::builtin().expect("the built-in clips parse"))
        .clone()
}

/// A participant with a signaling connection and a media peer.
pub struct Participant {
    pub ws: Ws,
    pub peer: Peer,
    /// Which participant's track arrives on which of our m-lines, as `track` messages said.
    pub tracks: HashMap<String, (ParticipantId, MediaKind)>,
    /// m-lines announced by `track_ended`.
    pub ended: Vec<String>,
    /// What each m-line's track carries, as its `track` message said.
    pub sources: HashMap<String, classroom_protocol::TrackSource>,
    /// Other messages, in order.
    pub messages: Vec<ServerMessage>,
    /// The server's last SDP answer to this participant's offers.
    pub answer: String,
}

impl Participant {
    /// Starts a peer on 127.0.0.1 that sends `sending` and offers `receive` pairs of recvonly
    /// audio and video m-lines, and completes the negotiation over signaling.
    pub async fn connect(ws: Ws, sending: Sending, receive: usize) -> Participant {
        Self::connect_over(ws, Transport::Udp, sending, receive).await
    }

    /// A student receiving `receive` pairs of audio and video m-lines that also accepts H.264
    /// (an RTMP encoder's) and keeps everything it receives ([`Participant::received`]).
    pub async fn connect_keeping_h264(ws: Ws, receive: usize) -> Participant {
        let h264 = Some(Arc::new(SentFrames::default()));
        Self::start(ws, Transport::Udp, Sending::NOTHING, receive, h264).await
    }

    /// [`Participant::connect`] over ICE-TCP only, as a browser whose network blocks UDP: the
    /// peer connects to the TCP candidate the server's answer names.
    pub async fn connect_tcp(ws: Ws, sending: Sending, receive: usize) -> Participant {
        Self::connect_over(ws, Transport::Tcp, sending, receive).await
    }

    async fn connect_over(
        ws: Ws,
        transport: Transport,
        sending: Sending,
        receive: usize,
    ) -> Participant {
        Self::start(ws, transport, sending, receive, None).await
    }

    async fn start(
        ws: Ws,
        transport: Transport,
        sending: Sending,
        receive: usize,
        h264: Option<Arc<SentFrames>>,
    ) -> Participant {
        let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let (peer, offer) = Peer::start(
            localhost,
            transport,
            clips(),
            sending,
            receive,
            h264.clone(),
        )
        .await
        .expect("a media peer starts");
        // Before the negotiation, so that nothing arrives unkept.
        let keep = h264.is_some();
        peer.with_stats_mut(|s| s.keep_media = keep);
        let mut participant = Participant {
            ws,
            peer,
            tracks: HashMap::new(),
            ended: Vec::new(),
            sources: HashMap::new(),
            messages: Vec::new(),
            answer: String::new(),
        };
        let answer = participant.negotiate(offer).await;
        participant.answer = answer.clone();
        participant
            .peer
            .accept_answer(answer)
            .await
            .expect("the server's answer fits our offer");
        participant
    }

    /// Starts sending more (on stage): renegotiates with new sendonly m-lines.
    pub async fn publish(&mut self, sending: Sending) {
        let offer = self
            .peer
            .add_sending(sending)
            .await
            .expect("new m-lines make an offer");
        let answer = self.negotiate(offer).await;
        self.answer = answer.clone();
        self.peer
            .accept_answer(answer)
            .await
            .expect("the server's answer fits our offer");
    }

    /// The address the server sees this participant's media come from (without a relay);
    /// UDP peers only.
    pub fn media_addr(&self) -> SocketAddr {
        self.peer.local_addr().expect("a peer on UDP")
    }

    pub fn is_connected(&self) -> bool {
        self.peer.is_connected()
    }

    /// Reads the peer's measurements.
    pub fn stats<T>(&self, f: impl FnOnce(&PeerStats) -> T) -> T {
        self.peer.with_stats(f)
    }

    /// A copy of the stream received on `mid`, if any packet came.
    pub fn stream(&self, mid: &str) -> Option<StreamStats> {
        self.stats(|s| s.stream(mid).cloned())
    }

    /// What arrived on `mid` (H.264: pictures as Annex-B; Opus: frames), when kept.
    pub fn received(&self, mid: &str) -> Vec<Vec<u8>> {
        self.stats(|s| {
            s.received
                .iter()
                .find(|(m, _)| m.to_string() == mid)
                .map(|(_, kept)| kept.clone())
                .unwrap_or_default()
        })
    }

    /// Frames received on `mid` so far.
    pub fn received_on(&self, mid: &str) -> u64 {
        self.stats(|s| s.frames_on(mid))
    }

    /// RTP packets this peer has written.
    pub fn packets_sent(&self) -> u64 {
        self.stats(|s| s.packets_sent)
    }

    /// Sends our offer and returns the server's answer, handling other messages meanwhile.
    pub async fn negotiate(&mut self, offer: String) -> String {
        let id = self
            .ws
            .send(ClientMessage::Offer {
                sdp: offer,
                sources: Default::default(),
            })
            .await;
        let deadline = Instant::now() + crate::ws::WAIT;
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            let message = self.next(wait).await.expect("an answer in time");
            match message {
                ServerMessage::Answer { id: Some(got), sdp } if got == id => return sdp,
                ServerMessage::Error {
                    id: Some(got),
                    code,
                    message,
                    ..
                } if got == id => {
                    panic!("the offer was refused: {code}: {message}")
                }
                _ => {}
            }
        }
    }

    /// Sends `message` and returns the reply to it, handling other messages meanwhile.
    pub async fn request(&mut self, message: ClientMessage) -> ServerMessage {
        let id = self.ws.send(message).await;
        let deadline = Instant::now() + crate::ws::WAIT;
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            match self.next(wait).await.expect("a reply in time") {
                reply @ ServerMessage::Ok { id: got } if got == id => return reply,
                reply @ ServerMessage::Error { id: Some(got), .. } if got == id => return reply,
                reply @ ServerMessage::Answer { id: Some(got), .. } if got == id => return reply,
                _ => {}
            }
        }
    }

    /// Handles signaling for up to `wait` or until `done` holds; returns whether it holds.
    /// `done` is checked at least every 10 ms, so it may also look at media.
    pub async fn pump_until(
        &mut self,
        wait: Duration,
        done: impl Fn(&Participant) -> bool,
    ) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            if done(self) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return done(self);
            }
            self.next(left.min(Duration::from_millis(10))).await;
        }
    }

    /// Handles signaling that has already arrived, waiting at most `wait` for the first message.
    pub async fn pump(&mut self, wait: Duration) {
        let mut wait = wait;
        while self.next(wait).await.is_some() {
            wait = Duration::from_millis(1);
        }
    }

    /// The mids on which `participant`'s tracks arrive.
    pub fn mids_of(&self, participant: ParticipantId) -> Vec<String> {
        let mut mids: Vec<String> = self
            .tracks
            .iter()
            .filter(|(_, (p, _))| *p == participant)
            .map(|(mid, _)| mid.clone())
            .collect();
        mids.sort();
        mids
    }

    /// The mid on which `participant`'s track of `kind` arrives.
    pub fn mid_of(&self, participant: ParticipantId, kind: MediaKind) -> Option<String> {
        self.tracks
            .iter()
            .find(|(_, (p, k))| *p == participant && *k == kind)
            .map(|(mid, _)| mid.clone())
    }

    /// Frames received from `participant` so far, over all its tracks.
    pub fn received_from(&self, participant: ParticipantId) -> u64 {
        self.mids_of(participant)
            .iter()
            .map(|mid| self.received_on(mid))
            .sum()
    }

    /// Waits until frames arrived on every track (audio and video) of `from`, at least
    /// `frames` on each.
    pub async fn receives_from(
        &mut self,
        from: ParticipantId,
        frames: u64,
        wait: Duration,
    ) -> bool {
        self.pump_until(wait, |p| {
            let mids = p.mids_of(from);
            mids.len() == 2 && mids.iter().all(|mid| p.received_on(mid) >= frames)
        })
        .await
    }

    /// Leaves the lesson, waits for the server to close signaling, and stops the peer.
    pub async fn leave(self) {
        let Participant { mut ws, peer, .. } = self;
        ws.send(ClientMessage::Leave).await;
        ws.closed().await;
        peer.stop();
    }

    /// The next message within `wait`, after acting on it: server offers are answered, track
    /// mappings recorded. `None` when nothing came in time.
    async fn next(&mut self, wait: Duration) -> Option<ServerMessage> {
        let message = match self.ws.recv_within(wait).await {
            Ok(Some(message)) => message,
            Ok(None) => panic!("the server closed the signaling connection"),
            Err(()) => return None,
        };
        match &message {
            ServerMessage::Offer { sdp } => {
                let answer = self
                    .peer
                    .accept_offer(sdp.clone())
                    .await
                    .expect("the server's offer is acceptable");
                // The reply (ok) is skipped like any other message.
                self.ws.send(ClientMessage::Answer { sdp: answer }).await;
            }
            ServerMessage::Track {
                mid,
                participant,
                kind,
                source,
            } => {
                self.tracks.insert(mid.clone(), (*participant, *kind));
                self.sources.insert(mid.clone(), *source);
            }
            ServerMessage::TrackEnded { mid } => {
                self.tracks.remove(mid);
                self.ended.push(mid.clone());
            }
            _ => self.messages.push(message.clone()),
        }
        Some(message)
    }
}

/// Waits up to `wait` for `condition`, checking every 10 ms.
pub async fn wait_until(wait: Duration, condition: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + wait;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
