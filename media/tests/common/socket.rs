//! Test clients on real sockets on 127.0.0.1: a [`Client`] driven by its own tokio task over
//! UDP, or ICE-TCP with RFC 4571 framing, as a browser's WebRTC stack would drive it. It
//! answers the network, publishes once connected ([`Publish`]), asks for keyframes when told,
//! and reports what it receives to the test's [`Running`].

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use classroom_media::PeerId;
use classroom_media::driver::MediaHandle;
use classroom_protocol::tcp_framing::{FrameReader, frame_header};
use str0m::media::{Direction, MediaKind, Mid, Rid};
use str0m::net::{Protocol, Receive};
use str0m::{Event, Input, Output};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;

use super::{Client, frame_index, opus_frame, room, vp8_frame};

/// How long [`Running::wait_for`] waits for frames (generous: the machine may be busy).
pub const WAIT: Duration = Duration::from_secs(15);

/// How a test client reaches the SFU.
pub enum Link {
    Udp(UdpSocket),
    Tcp {
        stream: TcpStream,
        reader: FrameReader,
    },
}

impl Link {
    /// A UDP socket on 127.0.0.1.
    pub async fn udp() -> Self {
        Link::Udp(UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap())
    }

    /// A TCP connection to the SFU's ICE-TCP listener at `server`.
    pub async fn tcp(server: SocketAddr) -> Self {
        Link::Tcp {
            stream: TcpStream::connect(server).await.unwrap(),
            reader: FrameReader::new(),
        }
    }

    pub fn local(&self) -> SocketAddr {
        match self {
            Link::Udp(socket) => socket.local_addr().unwrap(),
            Link::Tcp { stream, .. } => stream.local_addr().unwrap(),
        }
    }

    fn proto(&self) -> Protocol {
        match self {
            Link::Udp(_) => Protocol::Udp,
            Link::Tcp { .. } => Protocol::Tcp,
        }
    }

    async fn send(&mut self, destination: SocketAddr, packet: &[u8]) {
        match self {
            Link::Udp(socket) => {
                let _ = socket.send_to(packet, destination).await;
            }
            Link::Tcp { stream, .. } => {
                let mut frame = frame_header(packet).unwrap().to_vec();
                frame.extend_from_slice(packet);
                let _ = stream.write_all(&frame).await;
            }
        }
    }

    /// The next packets that arrived, with their source. Cancel-safe.
    async fn recv(&mut self) -> Vec<(SocketAddr, Vec<u8>)> {
        match self {
            Link::Udp(socket) => {
                let mut buf = vec![0; 2048];
                match socket.recv_from(&mut buf).await {
                    Ok((len, source)) => vec![(source, buf[..len].to_vec())],
                    Err(_) => Vec::new(),
                }
            }
            Link::Tcp { stream, reader } => {
                let peer = stream.peer_addr().unwrap();
                match stream.read(reader.spare()).await {
                    Ok(0) | Err(_) => {
                        // Closed: nothing more will come.
                        std::future::pending::<()>().await;
                        Vec::new()
                    }
                    Ok(len) => {
                        reader.filled(len);
                        let mut packets = Vec::new();
                        while let Ok(Some(frame)) = reader.next_frame() {
                            packets.push((peer, frame.to_vec()));
                        }
                        packets
                    }
                }
            }
        }
    }
}

/// What a publishing client sends once connected, one write per wake-up (so str0m's output
/// of each is drained before the next).
pub trait Publish: Send + 'static {
    /// Writes the next frame at `now` (`start`: when the client's task began); returns how
    /// long after this one the next is due.
    fn write(&mut self, client: &mut Client, now: Instant, start: Instant) -> Duration;

    /// The client was asked for a keyframe (of the simulcast layer `rid`).
    fn keyframe_requested(&mut self, _rid: Option<Rid>) {}
}

/// When an [`AudioVideo`] publisher sends a keyframe besides its first video frame.
#[derive(Debug, Clone, Copy)]
pub enum Keyframes {
    /// Never.
    FirstOnly,
    /// Every this many video frames.
    Every(u32),
    /// Whenever asked, as a browser's encoder.
    OnRequest,
}

/// How an [`AudioVideo`] publisher sends.
#[derive(Debug, Clone, Copy)]
pub struct Cadence {
    /// One frame in this many (the last of each group) is video, the others audio.
    pub video_every: u32,
    pub keyframes: Keyframes,
}

impl Cadence {
    /// Audio and video frames in turn, a keyframe first and whenever asked.
    pub const BROWSER: Cadence = Cadence {
        video_every: 2,
        keyframes: Keyframes::OnRequest,
    };
}

/// A frame every 10 ms, Opus or VP8 as its [`Cadence`] says, all numbered in one sequence
/// (the number stamped in, see [`frame_index`]).
pub struct AudioVideo {
    audio: Mid,
    video: Mid,
    cadence: Cadence,
    frame: u32,
    video_frames: u32,
    keyframe_due: bool,
}

impl AudioVideo {
    pub fn new(audio: Mid, video: Mid, cadence: Cadence) -> Self {
        AudioVideo {
            audio,
            video,
            cadence,
            frame: 0,
            video_frames: 0,
            keyframe_due: true,
        }
    }
}

impl Publish for AudioVideo {
    fn write(&mut self, client: &mut Client, now: Instant, start: Instant) -> Duration {
        let frame = self.frame;
        self.frame += 1;
        if frame % self.cadence.video_every != self.cadence.video_every - 1 {
            client.write(now, start, self.audio, MediaKind::Audio, &opus_frame(frame));
            return Duration::from_millis(10);
        }
        let periodic = match self.cadence.keyframes {
            Keyframes::Every(every) => self.video_frames.is_multiple_of(every),
            Keyframes::FirstOnly | Keyframes::OnRequest => false,
        };
        let data = vp8_frame(frame, self.keyframe_due || periodic);
        self.keyframe_due = false;
        self.video_frames += 1;
        client.write(now, start, self.video, MediaKind::Video, &data);
        Duration::from_millis(10)
    }

    fn keyframe_requested(&mut self, _rid: Option<Rid>) {
        if matches!(self.cadence.keyframes, Keyframes::OnRequest) {
            self.keyframe_due = true;
        }
    }
}

/// What a client's task reports.
#[derive(Debug)]
enum Report {
    /// A frame arrived (its stamped index; `layer`: a simulcast test's byte 14).
    Frame {
        kind: MediaKind,
        index: u32,
        layer: Option<u8>,
    },
    /// A datagram arrived from an address not seen before.
    Source(SocketAddr),
    /// The client was asked for a keyframe (it is a publisher).
    KeyframeRequest(Instant),
}

/// One client on its link, in its task.
struct Driver {
    client: Client,
    link: Link,
    publish: Option<Box<dyn Publish>>,
    reports: mpsc::UnboundedSender<Report>,
    connected: bool,
}

impl Driver {
    /// Answers, publishes and reports until aborted; `ask`: mids to ask keyframes on.
    async fn run(mut self, mut ask: mpsc::UnboundedReceiver<Mid>) {
        let start = Instant::now();
        let local = self.link.local();
        let proto = self.link.proto();
        let mut next_frame = start;
        let mut sources = BTreeSet::new();
        loop {
            let timeout = self.drain().await;
            let publishing = self.connected && self.publish.is_some();
            let deadline = if publishing {
                timeout.min(next_frame)
            } else {
                timeout
            };
            tokio::select! {
                packets = self.link.recv() => {
                    for (source, packet) in packets {
                        if sources.insert(source) {
                            let _ = self.reports.send(Report::Source(source));
                        }
                        let Ok(contents) = packet.as_slice().try_into() else { continue };
                        let input = Input::Receive(
                            Instant::now(),
                            Receive { proto, source, destination: local, contents },
                        );
                        self.client.rtc.handle_input(input).unwrap();
                        // str0m takes one mutation at a time: drain before the next packet.
                        self.drain().await;
                    }
                }
                Some(mid) = ask.recv() => self.client.request_keyframe(mid),
                () = tokio::time::sleep_until(deadline.into()) => {
                    let now = Instant::now();
                    match self.publish.as_mut() {
                        Some(publish) if publishing && now >= next_frame => {
                            next_frame += publish.write(&mut self.client, now, start);
                        }
                        _ => self.client.rtc.handle_input(Input::Timeout(now)).unwrap(),
                    }
                }
            }
        }
    }

    /// Sends what the client has to send and reports what happened to it, until it names
    /// its next timeout.
    async fn drain(&mut self) -> Instant {
        loop {
            match self.client.rtc.poll_output().unwrap() {
                Output::Transmit(t) => {
                    assert_eq!(
                        t.proto,
                        self.link.proto(),
                        "str0m sends on the offered transport"
                    );
                    self.link.send(t.destination, &t.contents).await;
                }
                Output::Event(Event::Connected) => self.connected = true,
                Output::Event(Event::MediaData(data)) => {
                    let kind = data.params.spec().codec.kind();
                    if let Some(index) = frame_index(kind, &data.data) {
                        let layer = data.data.get(14).copied();
                        let _ = self.reports.send(Report::Frame { kind, index, layer });
                    }
                }
                Output::Event(Event::KeyframeRequest(request)) => {
                    if let Some(publish) = self.publish.as_mut() {
                        publish.keyframe_requested(request.rid);
                    }
                    let _ = self.reports.send(Report::KeyframeRequest(Instant::now()));
                }
                Output::Event(_) => {}
                Output::Timeout(t) => return t,
            }
        }
    }
}

/// A client on a real socket, running on its own task (aborted when this is dropped), and
/// what it reported so far.
pub struct Running {
    pub peer: PeerId,
    pub mids: Vec<Mid>,
    reports: mpsc::UnboundedReceiver<Report>,
    /// A mid sent here makes the client ask for a keyframe on it.
    pub ask: mpsc::UnboundedSender<Mid>,
    task: tokio::task::JoinHandle<()>,
    pub frames: Vec<(MediaKind, u32)>,
    /// Byte 14 of each video frame (the layer, in a simulcast test).
    pub layers: Vec<u8>,
    /// The addresses datagrams came from, each once, in order.
    pub sources: Vec<SocketAddr>,
    pub keyframe_requests: Vec<Instant>,
}

impl Running {
    /// Joins `media` over a UDP socket of its own with these m-lines; `publish`: it sends
    /// audio on its first mid and video on its second.
    pub async fn join(
        media: &MediaHandle,
        peer: PeerId,
        lines: &[(MediaKind, Direction)],
        publish: Option<Cadence>,
    ) -> Self {
        let link = Link::udp().await;
        let (mut client, mids, offer, pending) =
            Client::new(Instant::now(), peer, link.local(), lines);
        let answer = media.add_peer(peer, room(), offer).await.unwrap();
        client.accept_answer(pending, &answer);
        let publish = publish.map(|cadence| {
            Box::new(AudioVideo::new(mids[0], mids[1], cadence)) as Box<dyn Publish>
        });
        Running::start(client, mids, link, publish)
    }

    /// Starts the task of a client that has its answer, on `link`.
    pub fn start(
        client: Client,
        mids: Vec<Mid>,
        link: Link,
        publish: Option<Box<dyn Publish>>,
    ) -> Self {
        let (report, reports) = mpsc::unbounded_channel();
        let (ask, asks) = mpsc::unbounded_channel();
        let peer = client.peer;
        let driver = Driver {
            client,
            link,
            publish,
            reports: report,
            connected: false,
        };
        Running {
            peer,
            mids,
            reports,
            ask,
            task: tokio::spawn(driver.run(asks)),
            frames: Vec::new(),
            layers: Vec::new(),
            sources: Vec::new(),
            keyframe_requests: Vec::new(),
        }
    }

    /// Takes in what the client reported so far.
    pub fn collect(&mut self) {
        while let Ok(report) = self.reports.try_recv() {
            match report {
                Report::Frame { kind, index, layer } => {
                    self.frames.push((kind, index));
                    self.layers
                        .extend(layer.filter(|_| kind == MediaKind::Video));
                }
                Report::Source(source) => self.sources.push(source),
                Report::KeyframeRequest(at) => self.keyframe_requests.push(at),
            }
        }
    }

    /// The stamped indices of the frames of `kind` received so far (as of the last collect).
    pub fn received(&self, kind: MediaKind) -> Vec<u32> {
        self.frames
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, index)| *index)
            .collect()
    }

    /// Waits until at least `audio` and `video` frames have arrived in all ([`WAIT`] at
    /// most, then fails the test).
    pub async fn wait_for(&mut self, audio: usize, video: usize) {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            self.collect();
            if self.received(MediaKind::Audio).len() >= audio
                && self.received(MediaKind::Video).len() >= video
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "peer {} received {} audio and {} video frames of {audio} and {video}",
            self.peer,
            self.received(MediaKind::Audio).len(),
            self.received(MediaKind::Video).len()
        );
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}
