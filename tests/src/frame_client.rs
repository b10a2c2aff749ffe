//! A str0m client in frame mode for the RTMP ingest tests: it depacketizes what it receives
//! (H.264 as Annex-B), so a test can compare an encoder's pictures byte for byte with what a
//! student gets. The other end-to-end tests use the load tester's client (`crate::media`),
//! which works in RTP mode and speaks VP8 and Opus only; folding H.264 depacketization into it
//! would leave one client.
//!
//! [`Participant`] pairs the client with a signaling [`Ws`] and handles what the server sends
//! about media (its offers, which track arrives on which m-line).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use classroom_protocol::signal::{ClientMessage, ParticipantId, ServerMessage};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::ws::Ws;

/// Audio frames are written this often; every second tick also writes a video frame.
const TICK: Duration = Duration::from_millis(20);

/// What a client observed, shared with the test.
#[derive(Debug, Default)]
pub struct Observed {
    pub connected: bool,
    /// Frames received, by the m-line they arrived on.
    pub frames: HashMap<Mid, usize>,
    /// Frames written while publishing.
    pub sent: usize,
    /// Keep each received frame's data in `data` (for tests that compare payloads).
    pub keep_data: bool,
    /// Received frames' data by m-line (depacketized: H.264 in Annex-B), when `keep_data`.
    pub data: HashMap<Mid, Vec<Vec<u8>>>,
}

type Command = Box<dyn FnOnce(&mut ClientState) + Send>;

struct ClientState {
    rtc: Rtc,
    pending: Option<SdpPendingOffer>,
    publishing: Vec<(Mid, MediaKind)>,
    keyframe_wanted: bool,
}

/// A str0m client on its own UDP socket, run by a background task.
pub struct MediaClient {
    commands: mpsc::UnboundedSender<Command>,
    pub observed: Arc<Mutex<Observed>>,
    task: JoinHandle<()>,
}

impl MediaClient {
    /// A client with one m-line per entry, and its SDP offer for them.
    pub async fn new(lines: &[(MediaKind, Direction)]) -> (MediaClient, String, Vec<Mid>) {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("a UDP socket");
        let local = socket.local_addr().expect("bound");
        let mut rtc = Rtc::new(Instant::now());
        rtc.add_local_candidate(Candidate::host(local, "udp").expect("a host candidate"));
        let mut state = ClientState {
            rtc,
            pending: None,
            publishing: Vec::new(),
            keyframe_wanted: true,
        };
        let (offer, mids) = add_media(&mut state, lines);
        let observed = Arc::new(Mutex::new(Observed::default()));
        let (commands, inbox) = mpsc::unbounded_channel();
        let task = tokio::spawn(drive(state, socket, local, inbox, observed.clone()));
        (
            MediaClient {
                commands,
                observed,
                task,
            },
            offer,
            mids,
        )
    }

    /// Runs `f` on the client's state inside its task and returns its result.
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut ClientState) -> T + Send + 'static,
    ) -> T {
        let (reply, result) = oneshot::channel();
        let command: Command = Box::new(move |state| {
            let _ = reply.send(f(state));
        });
        self.commands
            .send(command)
            .map_err(|_| ())
            .expect("the client task runs");
        result.await.expect("the client task replies")
    }

    /// Applies the server's answer to our last offer.
    pub async fn accept_answer(&self, sdp: String) {
        self.with(move |state| {
            let answer = SdpAnswer::from_sdp_string(&sdp).expect("a valid SDP answer");
            let pending = state.pending.take().expect("an offer awaiting its answer");
            state
                .rtc
                .sdp_api()
                .accept_answer(pending, answer)
                .expect("the answer fits the offer");
        })
        .await
    }

    /// Answers a server offer.
    pub async fn accept_offer(&self, sdp: String) -> String {
        self.with(move |state| {
            let offer = SdpOffer::from_sdp_string(&sdp).expect("a valid SDP offer");
            let answer = state
                .rtc
                .sdp_api()
                .accept_offer(offer)
                .expect("the offer is acceptable");
            answer.to_sdp_string()
        })
        .await
    }

    /// Renegotiates from our side: adds m-lines and returns the offer for them.
    pub async fn add_media(&self, lines: &[(MediaKind, Direction)]) -> (String, Vec<Mid>) {
        let lines = lines.to_vec();
        self.with(move |state| add_media(state, &lines)).await
    }

    /// Starts writing synthetic Opus (every 20 ms) and VP8 (every 40 ms) frames on these
    /// sending m-lines, from the next tick on.
    pub async fn publish(&self, lines: Vec<(Mid, MediaKind)>) {
        self.with(move |state| {
            state.publishing = lines;
            state.keyframe_wanted = true;
        })
        .await
    }

    pub fn is_connected(&self) -> bool {
        self.observed.lock().expect("not poisoned").connected
    }

    /// Frames received on `mid` so far.
    pub fn received_on(&self, mid: &str) -> usize {
        let observed = self.observed.lock().expect("not poisoned");
        observed
            .frames
            .iter()
            .filter(|(m, _)| m.to_string() == mid)
            .map(|(_, n)| *n)
            .sum()
    }

    /// Frames written so far.
    pub fn sent(&self) -> usize {
        self.observed.lock().expect("not poisoned").sent
    }

    /// Waits up to `wait` for `condition`, checking every 10 ms.
    pub async fn wait_for(&self, wait: Duration, condition: impl Fn(&MediaClient) -> bool) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            if condition(self) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the client (its peer at the server times out or is removed by signaling).
    pub fn stop(self) {
        self.task.abort();
    }
}

fn add_media(state: &mut ClientState, lines: &[(MediaKind, Direction)]) -> (String, Vec<Mid>) {
    let mut change = state.rtc.sdp_api();
    let mids = lines
        .iter()
        .map(|(kind, dir)| change.add_media(*kind, *dir, None, None, None))
        .collect();
    let (offer, pending) = change.apply().expect("new m-lines make an offer");
    state.pending = Some(pending);
    (offer.to_sdp_string(), mids)
}

/// A synthetic frame with `index` stamped in: a valid VP8 header (keyframe or not), or an
/// Opus TOC byte and filler.
fn frame(kind: MediaKind, index: u32, keyframe: bool) -> Vec<u8> {
    match kind {
        MediaKind::Audio => {
            let mut frame = vec![0xA5; 160];
            frame[0] = 0x78;
            frame[1..5].copy_from_slice(&index.to_be_bytes());
            frame
        }
        MediaKind::Video => {
            let mut frame = vec![0x5A; if keyframe { 3000 } else { 900 }];
            frame[0] = if keyframe { 0x10 } else { 0x11 };
            frame[1] = 0x02;
            frame[2] = 0x00;
            if keyframe {
                frame[3..6].copy_from_slice(&[0x9D, 0x01, 0x2A]);
                frame[6..10].copy_from_slice(&[0x80, 0x02, 0xE0, 0x01]);
            }
            frame[10..14].copy_from_slice(&index.to_be_bytes());
            frame
        }
    }
}

fn write(
    state: &mut ClientState,
    start: Instant,
    now: Instant,
    mid: Mid,
    kind: MediaKind,
    data: Vec<u8>,
) -> bool {
    let codec = if kind == MediaKind::Audio {
        Codec::Opus
    } else {
        Codec::Vp8
    };
    let Some(writer) = state.rtc.writer(mid) else {
        return false;
    };
    let Some(pt) = writer
        .payload_params()
        .find(|p| p.spec().codec == codec)
        .map(|p| p.pt())
    else {
        return false;
    };
    let micros = (now - start).as_micros() as u64;
    let time = match kind {
        MediaKind::Audio => MediaTime::new(micros * 48 / 1000, Frequency::FORTY_EIGHT_KHZ),
        MediaKind::Video => MediaTime::new(micros * 90 / 1000, Frequency::NINETY_KHZ),
    };
    writer.write(pt, now, time, data).is_ok()
}

async fn drive(
    mut state: ClientState,
    socket: UdpSocket,
    local: SocketAddr,
    mut commands: mpsc::UnboundedReceiver<Command>,
    observed: Arc<Mutex<Observed>>,
) {
    let start = Instant::now();
    let mut buf = vec![0; 2048];
    let mut next_tick = start;
    let mut tick = 0u32;
    // The writes of one tick, done one per wake-up so each is drained before the next.
    let mut due: Vec<(Mid, MediaKind, bool)> = Vec::new();
    loop {
        let timeout = loop {
            match state.rtc.poll_output() {
                Ok(Output::Transmit(t)) => {
                    let _ = socket.send_to(&t.contents, t.destination).await;
                }
                Ok(Output::Event(event)) => {
                    let mut observed = observed.lock().expect("not poisoned");
                    match event {
                        Event::Connected => observed.connected = true,
                        Event::MediaData(data) => {
                            *observed.frames.entry(data.mid).or_default() += 1;
                            if observed.keep_data {
                                observed
                                    .data
                                    .entry(data.mid)
                                    .or_default()
                                    .push(data.data.to_vec());
                            }
                        }
                        Event::KeyframeRequest(_) => state.keyframe_wanted = true,
                        _ => {}
                    }
                }
                Ok(Output::Timeout(t)) => break t,
                Err(e) => panic!("the client's Rtc failed: {e}"),
            }
        };
        let connected = observed.lock().expect("not poisoned").connected;
        let publishing = connected && !state.publishing.is_empty();
        let deadline = if !due.is_empty() {
            Instant::now()
        } else if publishing {
            timeout.min(next_tick)
        } else {
            timeout
        };
        tokio::select! {
            command = commands.recv() => match command {
                Some(command) => command(&mut state),
                None => return,
            },
            received = socket.recv_from(&mut buf) => {
                let Ok((len, source)) = received else { continue };
                let Ok(contents) = buf[..len].try_into() else { continue };
                let input = Input::Receive(Instant::now(), Receive { proto: Protocol::Udp, source, destination: local, contents });
                let _ = state.rtc.handle_input(input);
            }
            () = tokio::time::sleep_until(deadline.into()) => {
                let now = Instant::now();
                if let Some((mid, kind, keyframe)) = due.pop() {
                    if write(&mut state, start, now, mid, kind, frame(kind, tick, keyframe)) {
                        observed.lock().expect("not poisoned").sent += 1;
                    }
                } else if publishing && now >= next_tick {
                    // A keyframe when asked, and every 25 video frames anyway.
                    let keyframe = std::mem::take(&mut state.keyframe_wanted) || tick.is_multiple_of(50);
                    for (mid, kind) in state.publishing.clone() {
                        if kind == MediaKind::Audio || tick.is_multiple_of(2) {
                            due.push((mid, kind, keyframe));
                        }
                    }
                    tick += 1;
                    next_tick += TICK;
                    if next_tick < now {
                        next_tick = now + TICK; // fell behind (a slow machine): do not burst
                    }
                } else {
                    let _ = state.rtc.handle_input(Input::Timeout(now));
                }
            }
        }
    }
}

/// A participant with a signaling connection and a media client.
pub struct Participant {
    pub ws: Ws,
    pub media: MediaClient,
    /// Which participant's track arrives on which of our m-lines, as `track` messages said.
    pub tracks: HashMap<String, (ParticipantId, classroom_protocol::signal::MediaKind)>,
    /// m-lines announced by `track_ended`.
    pub ended: Vec<String>,
    /// What each m-line's track carries, as its `track` message said.
    pub sources: HashMap<String, classroom_protocol::TrackSource>,
    /// Other messages, in order.
    pub messages: Vec<ServerMessage>,
}

impl Participant {
    /// Offers these m-lines over signaling and completes the negotiation.
    pub async fn connect(ws: Ws, lines: &[(MediaKind, Direction)]) -> (Participant, Vec<Mid>) {
        let (media, offer, mids) = MediaClient::new(lines).await;
        let mut participant = Participant {
            ws,
            media,
            tracks: HashMap::new(),
            ended: Vec::new(),
            sources: HashMap::new(),
            messages: Vec::new(),
        };
        let answer = participant.negotiate(offer).await;
        participant.media.accept_answer(answer).await;
        (participant, mids)
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
            // Media arrives on its own task, so `done` can turn true without any signaling:
            // look again every 10 ms rather than waiting for the next message (which left the
            // other connections of a test unread for the whole wait).
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

    /// Frames received from `participant` so far, over all its tracks.
    pub fn received_from(&self, participant: ParticipantId) -> usize {
        self.mids_of(participant)
            .iter()
            .map(|mid| self.media.received_on(mid))
            .sum()
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
                let answer = self.media.accept_offer(sdp.clone()).await;
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
