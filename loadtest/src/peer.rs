//! A simulated browser's WebRTC session: a str0m `Rtc` in RTP mode on its own UDP socket or
//! its own ICE-TCP connection ([`crate::link`]), run by one tokio task. It sends the clips'
//! packets stamped with abs-capture-time and measures every packet it receives. The signaling
//! side talks to it through [`Peer`] commands.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid, Pt, Rid, Simulcast, SimulcastLayer};
use str0m::net::{Protocol, Receive, TcpType};
use str0m::rtp::{AbsCaptureTime, Extension, ExtensionValues, RtpPacket, RtpWrite, Ssrc};
use str0m::{Candidate, Event, Input, Output, Rtc};
use thiserror::Error;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::clip::Clips;
use crate::ingest::depacketize::PictureAssembler;
use crate::ingest::frames::{SentFrames, rtp_key};
use crate::link::{Link, TcpLink, Transport};
use crate::receiver::{Arrival, StreamKind, StreamStats};
use crate::source::{OutPacket, TrackKind, TrackSource};
use classroom_protocol::tcp_framing::MAX_FRAME;

/// The rids of the three simulcast layers, lowest first (as browsers name them).
pub const RIDS: [&str; 3] = ["q", "h", "f"];

#[derive(Debug, Error)]
pub enum PeerError {
    #[error("cannot open a UDP socket: {0}")]
    Socket(std::io::Error),
    #[error("the server's answer names no ICE-TCP candidate (is its media.tcp_addr set?)")]
    NoTcpCandidate,
    #[error("the server's SDP is invalid: {0}")]
    Sdp(String),
    #[error("the WebRTC session failed: {0}")]
    Rtc(String),
    #[error("the peer task has stopped")]
    Stopped,
}

/// What this participant sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sending {
    pub audio: bool,
    /// Simulcast layers of video (0: no video, 1: the middle layer only, 3: all three).
    pub video_layers: usize,
}

impl Sending {
    /// Receive only.
    pub const NOTHING: Sending = Sending {
        audio: false,
        video_layers: 0,
    };
    /// Audio and one layer of video (the middle one, 640x360).
    pub const AUDIO_VIDEO: Sending = Sending {
        audio: true,
        video_layers: 1,
    };
}

/// What a peer measured, shared with the signaling side and the report.
#[derive(Debug, Default)]
pub struct PeerStats {
    pub connected_at: Option<Instant>,
    /// Received streams by the m-line they arrive on.
    pub streams: HashMap<Mid, StreamStats>,
    /// Cumulative NACKs and PLIs this peer sent as a receiver, by m-line.
    pub nacks_sent: HashMap<Mid, u64>,
    pub plis_sent: HashMap<Mid, u64>,
    /// Cumulative NACKs and PLIs this peer received as a publisher, by m-line and rid.
    pub nacks_received: HashMap<(Mid, Option<Rid>), u64>,
    pub plis_received: HashMap<(Mid, Option<Rid>), u64>,
    pub packets_sent: u64,
    pub bytes_sent: u64,
    /// ICE-TCP: the server's TCP candidate this peer connected to.
    pub tcp_connected_to: Option<SocketAddr>,
    pub error: Option<String>,
    /// Keep what arrives in `received`, for a test that compares it with what was sent.
    pub keep_media: bool,
    /// By m-line, when `keep_media`: H.264 pictures (Annex-B), or packet payloads (Opus).
    pub received: HashMap<Mid, Vec<Vec<u8>>>,
}

impl PeerStats {
    /// The stream received on the m-line `mid` (as signaling names it).
    pub fn stream(&self, mid: &str) -> Option<&StreamStats> {
        self.streams
            .iter()
            .find(|(m, _)| m.to_string() == mid)
            .map(|(_, s)| s)
    }

    /// Frames received on `mid` so far (video: completed by a marker bit; audio: packets).
    pub fn frames_on(&self, mid: &str) -> u64 {
        self.stream(mid).map_or(0, |s| s.frames)
    }

    /// NACKs this peer sent for the stream on `mid`, as of the last stats event.
    pub fn nacks_sent_on(&self, mid: &str) -> u64 {
        self.nacks_sent
            .iter()
            .filter(|(m, _)| m.to_string() == mid)
            .map(|(_, n)| *n)
            .sum()
    }
}

type Command = Box<dyn FnOnce(&mut State) + Send>;

struct Track {
    mid: Mid,
    source: TrackSource,
    /// Payload type, per layer's rid, found after negotiation.
    pt: Option<Pt>,
    rids: Vec<Option<Rid>>,
}

struct State {
    rtc: Rtc,
    transport: Transport,
    /// ICE-TCP: the server's passive TCP candidate, once its answer named it.
    tcp_server: Option<SocketAddr>,
    pending: Option<SdpPendingOffer>,
    clips: Arc<Clips>,
    tracks: Vec<Track>,
    /// Tracks added by the offer awaiting its answer.
    planned: Vec<Track>,
    /// Sending is paused: the tracks stay negotiated, no packet is written.
    paused: bool,
    /// Which m-line each incoming SSRC belongs to (looked up once per SSRC).
    ssrc_mids: HashMap<Ssrc, (Mid, StreamKind)>,
    stats: Arc<Mutex<PeerStats>>,
    /// Receiving an RTMP encoder's H.264: when each of its pictures was sent, to time their
    /// arrivals (they carry no abs-capture-time).
    h264: Option<Arc<SentFrames>>,
    /// Reassembles H.264 pictures per m-line (with `keep_media`).
    depacketizers: HashMap<Mid, PictureAssembler>,
}

/// Handle to a peer's task.
pub struct Peer {
    commands: mpsc::UnboundedSender<Command>,
    pub stats: Arc<Mutex<PeerStats>>,
    /// The UDP socket's address (ICE-TCP: none; the connection is made after the answer).
    local_addr: Option<SocketAddr>,
    task: JoinHandle<()>,
}

impl Peer {
    /// A peer on `bind_ip`, and its first offer: `sending` as sendonly m-lines, then
    /// `receive` recvonly m-lines of each kind. Over UDP it binds a port and offers it as a
    /// host candidate. Over ICE-TCP the offer has no candidate (the server, ICE-lite, learns
    /// ours from our first check): once the answer names the server's passive TCP candidate,
    /// the peer connects to it and checks from an active candidate on that connection.
    ///
    /// `h264`: also receive H.264 (as an RTMP encoder's, passed through by the server), timing
    /// each picture's arrival against when it was sent.
    pub async fn start(
        bind_ip: IpAddr,
        transport: Transport,
        clips: Arc<Clips>,
        sending: Sending,
        receive: usize,
        h264: Option<Arc<SentFrames>>,
    ) -> Result<(Peer, String), PeerError> {
        let (mut state, link, local_addr) = State::bind(bind_ip, transport, clips, h264).await?;
        let offer = state.offer(sending, receive, Instant::now())?;
        Ok((Peer::spawn(state, link, local_addr), offer))
    }

    /// A receive-only peer over UDP that waits for the server's offer
    /// ([`Peer::accept_offer`]), as a Janus subscriber does.
    pub async fn answering(bind_ip: IpAddr, clips: Arc<Clips>) -> Result<Peer, PeerError> {
        let (state, link, local_addr) = State::bind(bind_ip, Transport::Udp, clips, None).await?;
        Ok(Peer::spawn(state, link, local_addr))
    }

    fn spawn(state: State, link: Link, local_addr: Option<SocketAddr>) -> Peer {
        let stats = state.stats.clone();
        let (commands, inbox) = mpsc::unbounded_channel();
        let task = tokio::spawn(drive(state, link, inbox));
        Peer {
            commands,
            stats,
            local_addr,
            task,
        }
    }

    /// The address of this peer's UDP socket (`None` over ICE-TCP).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut State) -> T + Send + 'static,
    ) -> Result<T, PeerError> {
        let (reply, result) = oneshot::channel();
        let command: Command = Box::new(move |state| {
            let _ = reply.send(f(state));
        });
        self.commands
            .send(command)
            .map_err(|_| PeerError::Stopped)?;
        result.await.map_err(|_| PeerError::Stopped)
    }

    /// Applies the server's answer to our offer.
    pub async fn accept_answer(&self, sdp: String) -> Result<(), PeerError> {
        self.with(move |state| state.accept_answer(&sdp)).await?
    }

    /// Answers a server offer (it adds m-lines to carry more tracks).
    pub async fn accept_offer(&self, sdp: String) -> Result<String, PeerError> {
        self.with(move |state| {
            let offer =
                SdpOffer::from_sdp_string(&sdp).map_err(|e| PeerError::Sdp(e.to_string()))?;
            let answer = state
                .rtc
                .sdp_api()
                .accept_offer(offer)
                .map_err(|e| PeerError::Sdp(e.to_string()))?;
            Ok(answer.to_sdp_string())
        })
        .await?
    }

    /// Renegotiates from our side to send more (a student brought on stage): returns the
    /// offer for the new sendonly m-lines; they send once its answer is accepted.
    pub async fn add_sending(&self, sending: Sending) -> Result<String, PeerError> {
        self.with(move |state| state.offer(sending, 0, Instant::now()))
            .await?
    }

    /// Pauses or resumes writing media on every sending track (they stay negotiated).
    pub async fn set_sending(&self, on: bool) -> Result<(), PeerError> {
        self.with(move |state| state.paused = !on).await
    }

    /// What this peer measured so far (a copy of the shared stats, taken under the lock).
    pub fn with_stats_mut<T>(&self, f: impl FnOnce(&mut PeerStats) -> T) -> T {
        f(&mut lock(&self.stats))
    }

    pub fn with_stats<T>(&self, f: impl FnOnce(&PeerStats) -> T) -> T {
        f(&lock(&self.stats))
    }

    /// The SSRCs of the video this peer sends, one per layer (lowest first), once negotiated.
    pub async fn video_ssrcs(&self) -> Result<Vec<u32>, PeerError> {
        self.with(|state| {
            let mut ssrcs = Vec::new();
            for track in &state.tracks {
                if track.source.kind != TrackKind::Video {
                    continue;
                }
                let mut api = state.rtc.direct_api();
                for rid in &track.rids {
                    if let Some(stream) = api.stream_tx_by_mid(track.mid, *rid) {
                        ssrcs.push(*stream.ssrc());
                    }
                }
            }
            ssrcs
        })
        .await
    }

    pub fn is_connected(&self) -> bool {
        self.with_stats(|s| s.connected_at.is_some())
    }

    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl State {
    /// A fresh peer state and its link: a bound UDP socket, or (ICE-TCP) a connection made
    /// once the server's answer names its TCP candidate.
    async fn bind(
        bind_ip: IpAddr,
        transport: Transport,
        clips: Arc<Clips>,
        h264: Option<Arc<SentFrames>>,
    ) -> Result<(State, Link, Option<SocketAddr>), PeerError> {
        let mut rtc = Rtc::builder()
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .enable_h264(h264.is_some())
            .set_extension(7, Extension::AbsoluteCaptureTime)
            .set_stats_interval(Some(Duration::from_secs(1)))
            .build(Instant::now());
        let link = match transport {
            Transport::Udp => {
                let socket = UdpSocket::bind(SocketAddr::new(bind_ip, 0))
                    .await
                    .map_err(PeerError::Socket)?;
                // The generator must not be where packets are lost: with Linux's default
                // 208 KiB a student's socket can overflow while this process serves hundreds.
                let _ = socket2::SockRef::from(&socket).set_recv_buffer_size(1 << 20);
                let local = socket.local_addr().map_err(PeerError::Socket)?;
                let candidate =
                    Candidate::host(local, "udp").map_err(|e| PeerError::Rtc(e.to_string()))?;
                rtc.add_local_candidate(candidate);
                Link::Udp { socket, local }
            }
            Transport::Tcp => Link::TcpWaiting { bind: bind_ip },
        };
        let local_addr = match &link {
            Link::Udp { local, .. } => Some(*local),
            _ => None,
        };
        let state = State {
            rtc,
            transport,
            tcp_server: None,
            pending: None,
            clips,
            tracks: Vec::new(),
            planned: Vec::new(),
            paused: false,
            ssrc_mids: HashMap::new(),
            stats: Arc::new(Mutex::new(PeerStats::default())),
            h264,
            depacketizers: HashMap::new(),
        };
        Ok((state, link, local_addr))
    }

    /// An offer adding `sending` as sendonly m-lines, then `receive` pairs of recvonly audio
    /// and video m-lines.
    fn offer(
        &mut self,
        sending: Sending,
        receive: usize,
        now: Instant,
    ) -> Result<String, PeerError> {
        let mut change = self.rtc.sdp_api();
        let mut planned = Vec::new();
        if sending.audio {
            let mid = change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
            planned.push((mid, TrackSource::audio(self.clips.clone(), now), vec![None]));
        }
        let layers: Vec<usize> = match sending.video_layers {
            0 => vec![],
            1 | 2 => vec![1],
            _ => vec![0, 1, 2],
        };
        if !layers.is_empty() {
            let (simulcast, rids) = if layers.len() > 1 {
                let mut simulcast = Simulcast::new();
                for rid in RIDS {
                    simulcast.add_send_layer(SimulcastLayer::new(rid));
                }
                (
                    Some(simulcast),
                    RIDS.iter().map(|r| Some(Rid::from(*r))).collect(),
                )
            } else {
                (None, vec![None])
            };
            let mid =
                change.add_media(MediaKind::Video, Direction::SendOnly, None, None, simulcast);
            planned.push((
                mid,
                TrackSource::video(self.clips.clone(), layers, now),
                rids,
            ));
        }
        for _ in 0..receive {
            change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
            change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        }
        let (offer, pending) = change
            .apply()
            .ok_or_else(|| PeerError::Rtc("nothing to offer".into()))?;
        self.pending = Some(pending);
        self.planned = planned
            .into_iter()
            .map(|(mid, source, rids)| Track {
                mid,
                source,
                pt: None,
                rids,
            })
            .collect();
        Ok(offer.to_sdp_string())
    }

    fn accept_answer(&mut self, sdp: &str) -> Result<(), PeerError> {
        let answer = SdpAnswer::from_sdp_string(sdp).map_err(|e| PeerError::Sdp(e.to_string()))?;
        let pending = self
            .pending
            .take()
            .ok_or_else(|| PeerError::Sdp("an answer without an offer".into()))?;
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| PeerError::Sdp(e.to_string()))?;
        if self.transport == Transport::Tcp && self.tcp_server.is_none() {
            self.tcp_server = Some(passive_tcp_candidate(sdp).ok_or(PeerError::NoTcpCandidate)?);
        }
        self.tracks.append(&mut self.planned);
        for track in &mut self.tracks {
            let codec = match track.source.kind {
                TrackKind::Audio => Codec::Opus,
                TrackKind::Video => Codec::Vp8,
            };
            let remote = self.rtc.media(track.mid).map(|m| m.remote_pts().to_vec());
            track.pt = self
                .rtc
                .codec_config()
                .params()
                .iter()
                .filter(|p| p.spec().codec == codec)
                .map(|p| p.pt())
                .find(|pt| remote.as_ref().is_none_or(|r| r.contains(pt)));
        }
        Ok(())
    }

    /// Writes every packet due by `now`; returns when the next one is due.
    fn send_due(
        &mut self,
        now: Instant,
        wall: SystemTime,
        buf: &mut Vec<OutPacket>,
    ) -> Option<Instant> {
        if self.paused {
            // Look again soon; the sources skip what fell due meanwhile.
            return Some(now + Duration::from_millis(20));
        }
        let mut next: Option<Instant> = None;
        let mut sent = (0u64, 0u64);
        for track in &mut self.tracks {
            let Some(pt) = track.pt else { continue };
            buf.clear();
            track.source.due(now, buf);
            let ext_vals = ExtensionValues {
                abs_capture_time: Some(AbsCaptureTime {
                    capture_time: wall,
                    clock_offset: None,
                }),
                ..Default::default()
            };
            let video = track.source.kind == TrackKind::Video;
            let mut api = self.rtc.direct_api();
            for packet in buf.drain(..) {
                let rid = track.rids.get(packet.layer).copied().flatten();
                let Some(stream) = api.stream_tx_by_mid(track.mid, rid) else {
                    continue;
                };
                sent.0 += 1;
                sent.1 += packet.payload.len() as u64;
                stream.write_rtp(
                    RtpWrite::new(pt, packet.seq.into(), packet.rtp_time, now, packet.payload)
                        .marker(packet.marker)
                        .nackable(video)
                        .ext_vals(ext_vals.clone()),
                );
            }
            let due = track.source.next_due();
            next = Some(next.map_or(due, |n| n.min(due)));
        }
        if sent.0 > 0 {
            let mut stats = lock(&self.stats);
            stats.packets_sent += sent.0;
            stats.bytes_sent += sent.1;
        }
        next
    }

    /// Handles str0m's output until it asks for a timeout, which it returns; packets to send
    /// go to `send` (ICE-TCP: the one connection carries everything, whatever the address).
    fn poll(&mut self, mut send: impl FnMut(&[u8])) -> Result<Instant, LinkError> {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Transmit(t)) => send(&t.contents),
                Ok(Output::Event(event)) => self.on_event(event),
                Ok(Output::Timeout(t)) => return Ok(t),
                Err(e) => return Err(LinkError::Rtc(e)),
            }
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Connected => {
                let now = Instant::now();
                lock(&self.stats).connected_at = Some(now);
                // Media starts when the session is up, so the first frame is a keyframe.
                for track in &mut self.tracks {
                    track.source.restart_at(now);
                }
            }
            Event::RtpPacket(packet) => self.on_rtp(packet),
            Event::KeyframeRequest(request) => {
                let now = Instant::now();
                if let Some(track) = self.tracks.iter_mut().find(|t| t.mid == request.mid) {
                    track.source.keyframe_requested(now);
                }
            }
            Event::MediaIngressStats(s) => {
                let mut stats = lock(&self.stats);
                stats.nacks_sent.insert(s.mid, s.nacks);
                stats.plis_sent.insert(s.mid, s.plis);
            }
            Event::MediaEgressStats(s) => {
                let mut stats = lock(&self.stats);
                stats.nacks_received.insert((s.mid, s.rid), s.nacks);
                stats.plis_received.insert((s.mid, s.rid), s.plis);
            }
            _ => {}
        }
    }

    fn on_rtp(&mut self, packet: RtpPacket) {
        let ssrc = packet.header.ssrc;
        let entry = match self.ssrc_mids.get(&ssrc) {
            Some(entry) => Some(*entry),
            None => {
                let mid = self.rtc.direct_api().stream_rx(&ssrc).map(|s| s.mid());
                let kind = mid
                    .and_then(|mid| self.rtc.media(mid))
                    .map(|m| match m.kind() {
                        MediaKind::Audio => StreamKind::Audio,
                        MediaKind::Video => StreamKind::Video,
                    });
                let entry = mid.zip(kind);
                if let Some(entry) = entry {
                    self.ssrc_mids.insert(ssrc, entry);
                }
                entry
            }
        };
        let Some((mid, kind)) = entry else { return };
        let arrival = Arrival {
            at: packet.timestamp,
            wall: SystemTime::now(),
            seq: packet.header.sequence_number,
            rtp_time: packet.header.timestamp,
            ssrc: *packet.header.ssrc,
            pt: *packet.header.payload_type,
            marker: packet.header.marker,
            payload: &packet.payload,
            size: packet.payload.len() + 12,
            capture_time: packet
                .header
                .ext_vals
                .abs_capture_time
                .map(|t| t.capture_time)
                .or_else(|| {
                    // An encoder's picture: sent when the publisher's clock says.
                    let frames = self.h264.as_ref().filter(|_| kind == StreamKind::Video)?;
                    frames.sent_at(rtp_key(&packet.payload)?)
                }),
        };
        let mut stats = lock(&self.stats);
        stats
            .streams
            .entry(mid)
            .or_insert_with(|| StreamStats::new(kind))
            .packet(arrival);
        if stats.keep_media {
            let h264 = kind == StreamKind::Video
                && self
                    .rtc
                    .codec_config()
                    .find(|p| p.pt() == packet.header.payload_type)
                    .is_some_and(|p| p.spec().codec == Codec::H264);
            let kept = if h264 {
                self.depacketizers
                    .entry(mid)
                    .or_default()
                    .push(&packet.payload, packet.header.marker)
            } else {
                Some(packet.payload.to_vec())
            };
            if let Some(kept) = kept {
                stats.received.entry(mid).or_default().push(kept);
            }
        }
    }
}

/// The stats lock is never held across an await or a panic path, so poisoning cannot happen;
/// if it ever did, the numbers are still worth reporting.
pub fn lock(stats: &Mutex<PeerStats>) -> std::sync::MutexGuard<'_, PeerStats> {
    stats
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The server's passive ICE-TCP candidate in its SDP (RFC 6544: `tcptype passive`, or no
/// tcptype from a server that only listens).
fn passive_tcp_candidate(sdp: &str) -> Option<SocketAddr> {
    sdp.lines()
        .filter_map(|line| line.trim().strip_prefix("a="))
        .filter(|attribute| attribute.starts_with("candidate:"))
        .filter_map(|attribute| Candidate::from_sdp_string(attribute).ok())
        .find(|c| c.proto() == Protocol::Tcp && c.tcptype().is_none_or(|t| t == TcpType::Passive))
        .map(|c| c.addr())
}

/// What woke the task on its socket or connection.
enum Received {
    /// A datagram of this length from this address, in the buffer.
    Datagram(usize, SocketAddr),
    /// Bytes on the TCP connection, now in its frame reader.
    Stream,
}

/// Waits for input on `link`; cancel-safe. Never returns while ICE-TCP waits for the answer.
async fn receive(link: &mut Link, buf: &mut [u8]) -> std::io::Result<Received> {
    match link {
        Link::Udp { socket, .. } => {
            let (len, source) = socket.recv_from(buf).await?;
            Ok(Received::Datagram(len, source))
        }
        Link::TcpWaiting { .. } => std::future::pending().await,
        Link::Tcp(tcp) => match tcp.read().await? {
            0 => Err(std::io::ErrorKind::UnexpectedEof.into()),
            _ => Ok(Received::Stream),
        },
    }
}

/// Why a running peer's connection ended; its message goes into the peer's report.
#[derive(Debug, Error)]
enum LinkError {
    #[error(transparent)]
    Rtc(str0m::RtcError),
    #[error("connecting to {0} over TCP timed out")]
    TcpTimedOut(SocketAddr),
    #[error("cannot connect to {server} over TCP: {error}")]
    TcpConnect {
        server: SocketAddr,
        error: std::io::Error,
    },
    /// The local end of the TCP connection is no usable ICE candidate.
    #[error(transparent)]
    Candidate(str0m::error::IceError),
    #[error("the ICE-TCP connection failed: {0}")]
    TcpFailed(std::io::Error),
    #[error("the ICE-TCP connection broke: {0}")]
    TcpBroken(classroom_protocol::tcp_framing::FrameError),
    #[error("the ICE-TCP connection closed: {0}")]
    TcpClosed(std::io::Error),
}

/// Connects to the server's TCP candidate and starts checking from an active candidate on
/// that connection.
async fn connect_tcp(
    state: &mut State,
    bind: IpAddr,
    server: SocketAddr,
) -> Result<TcpLink, LinkError> {
    let tcp = tokio::time::timeout(CONNECT_WAIT, TcpLink::connect(bind, server))
        .await
        .map_err(|_| LinkError::TcpTimedOut(server))?
        .map_err(|error| LinkError::TcpConnect { server, error })?;
    let candidate = Candidate::builder()
        .tcp()
        .host(tcp.local)
        .tcptype(TcpType::Active)
        .build()
        .map_err(LinkError::Candidate)?;
    state.rtc.add_local_candidate(candidate);
    lock(&state.stats).tcp_connected_to = Some(server);
    Ok(tcp)
}

/// How long a TCP connection to the server may take.
const CONNECT_WAIT: Duration = Duration::from_secs(10);

async fn drive(mut state: State, mut link: Link, mut commands: mpsc::UnboundedReceiver<Command>) {
    let mut buf = vec![0; MAX_FRAME];
    let mut out = Vec::new();
    let mut next_send: Option<Instant> = None;
    let fail = |state: &State, error: LinkError| lock(&state.stats).error = Some(error.to_string());
    loop {
        let polled = match &mut link {
            Link::Udp { socket, .. } => loop {
                match state.rtc.poll_output() {
                    Ok(Output::Transmit(t)) => {
                        let _ = socket.send_to(&t.contents, t.destination).await;
                    }
                    Ok(Output::Event(event)) => state.on_event(event),
                    Ok(Output::Timeout(t)) => break Ok(t),
                    Err(e) => break Err(LinkError::Rtc(e)),
                }
            },
            Link::TcpWaiting { .. } => state.poll(|_| {}),
            Link::Tcp(tcp) => match state.poll(|packet| tcp.queue(packet)) {
                Ok(timeout) => tcp
                    .flush()
                    .await
                    .map(|()| timeout)
                    .map_err(LinkError::TcpFailed),
                error => error,
            },
        };
        let timeout = match polled {
            Ok(timeout) => timeout,
            Err(error) => {
                fail(&state, error);
                return;
            }
        };
        let connected = lock(&state.stats).connected_at.is_some();
        if connected && next_send.is_none() {
            next_send = Some(Instant::now());
        }
        let deadline = match next_send {
            Some(send) if connected => timeout.min(send),
            _ => timeout,
        };
        tokio::select! {
            command = commands.recv() => match command {
                Some(command) => {
                    command(&mut state);
                    next_send = Some(Instant::now());
                    if let Link::TcpWaiting { bind } = link
                        && let Some(server) = state.tcp_server
                    {
                        match connect_tcp(&mut state, bind, server).await {
                            Ok(tcp) => link = Link::Tcp(Box::new(tcp)),
                            Err(e) => {
                                fail(&state, e);
                                return;
                            }
                        }
                    }
                }
                None => return,
            },
            received = receive(&mut link, &mut buf) => match (received, &mut link) {
                (Ok(Received::Datagram(len, source)), Link::Udp { local, .. }) => {
                    let Ok(contents) = buf[..len].try_into() else { continue };
                    let input = Input::Receive(Instant::now(), Receive { proto: Protocol::Udp, source, destination: *local, contents });
                    let _ = state.rtc.handle_input(input);
                }
                (Ok(Received::Stream), Link::Tcp(tcp)) => {
                    let now = Instant::now();
                    loop {
                        let frame = match tcp.frames.next_frame() {
                            Ok(Some(frame)) => frame,
                            Ok(None) => break,
                            Err(e) => {
                                fail(&state, LinkError::TcpBroken(e));
                                return;
                            }
                        };
                        let Ok(contents) = frame.try_into() else { continue };
                        let input = Input::Receive(now, Receive { proto: Protocol::Tcp, source: tcp.remote, destination: tcp.local, contents });
                        let _ = state.rtc.handle_input(input);
                        // str0m must be polled after each input: in RTP mode it holds one
                        // received packet, and the next input would replace it unseen.
                        if let Err(e) = state.poll(|packet| tcp.queue(packet)) {
                            fail(&state, e);
                            return;
                        }
                    }
                }
                (Err(e), Link::Tcp(_)) => {
                    fail(&state, LinkError::TcpClosed(e));
                    return;
                }
                // A UDP error (an ICMP port unreachable) concerns one datagram only.
                _ => continue,
            },
            () = tokio::time::sleep_until(deadline.into()) => {
                let now = Instant::now();
                if connected && next_send.is_some_and(|s| s <= now) {
                    next_send = state.send_due(now, SystemTime::now(), &mut out);
                }
                let _ = state.rtc.handle_input(Input::Timeout(now));
            }
        }
    }
}
