//! ICE over TCP through the driver: str0m clients that offer only a TCP candidate publish and
//! receive over real TCP connections on 127.0.0.1 (RFC 4571 framing), next to a UDP client;
//! hostile connections (garbage, absurd frame lengths, silence, a flood) are closed and
//! counted while the well-behaved participants keep receiving.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use classroom_media::PeerId;
use classroom_media::driver::{self, DriverConfig, TcpLimits};
use classroom_protocol::tcp_framing::{FrameReader, frame_header};
use common::{Client, opus_frame, room, vp8_frame};
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{Protocol, Receive, TcpType};
use str0m::{Candidate, Event, Input, Output};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;

const SEND: [(MediaKind, Direction); 2] = [
    (MediaKind::Audio, Direction::SendOnly),
    (MediaKind::Video, Direction::SendOnly),
];
const RECV: [(MediaKind, Direction); 2] = [
    (MediaKind::Audio, Direction::RecvOnly),
    (MediaKind::Video, Direction::RecvOnly),
];

/// How a test client reaches the SFU.
enum Link {
    Udp(UdpSocket),
    Tcp {
        stream: TcpStream,
        reader: FrameReader,
    },
}

impl Link {
    fn local(&self) -> SocketAddr {
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

/// Joins a client reaching the SFU over `link` (UDP, or TCP only).
async fn join(
    handle: &driver::MediaHandle,
    peer: PeerId,
    lines: &[(MediaKind, Direction)],
    link: &Link,
) -> (Client, Vec<Mid>) {
    let now = Instant::now();
    let (mut client, mids, offer, pending) = match link {
        Link::Udp(_) => Client::new(now, peer, link.local(), lines),
        Link::Tcp { .. } => {
            // A browser behind a UDP-blocking firewall offers an active TCP candidate only.
            let mut rtc = str0m::Rtc::new(now);
            let candidate = Candidate::builder()
                .tcp()
                .host(link.local())
                .tcptype(TcpType::Active)
                .build()
                .unwrap();
            rtc.add_local_candidate(candidate);
            let mut change = rtc.sdp_api();
            let mids = lines
                .iter()
                .map(|(kind, dir)| change.add_media(*kind, *dir, None, None, None))
                .collect();
            let (offer, pending) = change.apply().unwrap();
            let client = Client {
                peer,
                addr: link.local(),
                rtc,
                timeout: now,
                events: Vec::new(),
            };
            (client, mids, offer.to_sdp_string(), pending)
        }
    };
    let answer = handle.add_peer(peer, room(), offer).await.unwrap();
    assert!(
        answer.contains(" tcp ") && answer.contains("tcptype passive"),
        "the answer carries the passive TCP candidate: {answer}"
    );
    assert!(answer.contains(" udp "), "and the UDP one: {answer}");
    client.accept_answer(pending, &answer);
    (client, mids)
}

/// Drives one client; publishes 20 ms audio and 40 ms video once connected when `publish`
/// is given; reports every received frame's kind.
async fn drive(
    mut client: Client,
    mut link: Link,
    publish: Option<(Mid, Mid)>,
    received: mpsc::UnboundedSender<MediaKind>,
) {
    let start = Instant::now();
    let local = link.local();
    let proto = link.proto();
    let mut connected = false;
    let mut next_frame = start;
    let mut frame = 0u32;
    loop {
        let timeout = loop {
            match client.rtc.poll_output().unwrap() {
                Output::Transmit(t) => {
                    assert_eq!(t.proto, proto, "str0m sends on the offered transport");
                    link.send(t.destination, &t.contents).await;
                }
                Output::Event(Event::Connected) => connected = true,
                Output::Event(Event::MediaData(data)) => {
                    let _ = received.send(data.params.spec().codec.kind());
                }
                Output::Event(_) => {}
                Output::Timeout(t) => break t,
            }
        };
        let publishing = publish.filter(|_| connected);
        let deadline = match publishing {
            Some(_) => timeout.min(next_frame),
            None => timeout,
        };
        tokio::select! {
            packets = link.recv() => {
                for (source, packet) in packets {
                    let Ok(contents) = packet.as_slice().try_into() else { continue };
                    let input = Input::Receive(
                        Instant::now(),
                        Receive { proto, source, destination: local, contents },
                    );
                    client.rtc.handle_input(input).unwrap();
                    // Drain between packets: str0m takes one mutation at a time.
                    while let Ok(output) = client.rtc.poll_output() {
                        match output {
                            Output::Transmit(t) => link.send(t.destination, &t.contents).await,
                            Output::Event(Event::Connected) => connected = true,
                            Output::Event(Event::MediaData(data)) => {
                                let _ = received.send(data.params.spec().codec.kind());
                            }
                            Output::Event(_) => {}
                            Output::Timeout(_) => break,
                        }
                    }
                }
            }
            () = tokio::time::sleep_until(deadline.into()) => {
                let now = Instant::now();
                match publishing {
                    Some((audio, video)) if now >= next_frame => {
                        if frame % 3 == 2 {
                            let data = vp8_frame(frame, frame == 2 || frame % 75 == 2);
                            client.write(now, start, video, MediaKind::Video, &data);
                        } else {
                            client.write(now, start, audio, MediaKind::Audio, &opus_frame(frame));
                        }
                        frame += 1;
                        next_frame += Duration::from_millis(10);
                    }
                    _ => client.rtc.handle_input(Input::Timeout(now)).unwrap(),
                }
            }
        }
    }
}

/// Counts frames per kind arriving on `rx` until both counts are reached or `wait` passes.
async fn receive(
    rx: &mut mpsc::UnboundedReceiver<MediaKind>,
    audio: usize,
    video: usize,
) -> (usize, usize) {
    let (mut a, mut v) = (0, 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while a < audio || v < video {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(MediaKind::Audio)) => a += 1,
            Ok(Some(MediaKind::Video)) => v += 1,
            Ok(None) | Err(_) => break,
        }
    }
    (a, v)
}

async fn tcp_link(server: SocketAddr) -> Link {
    Link::Tcp {
        stream: TcpStream::connect(server).await.unwrap(),
        reader: FrameReader::new(),
    }
}

/// Whether the server closed `stream` (EOF or reset) within `wait`.
async fn closed_by_server(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 256];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn peers_publish_and_receive_over_ice_tcp_and_hostile_connections_are_closed() {
    let limits = TcpLimits {
        max_connections: 24,
        max_unverified: 8,
        handshake_timeout: Duration::from_secs(2),
        ..TcpLimits::default()
    };
    let media = driver::start(DriverConfig {
        tcp_bind: Some((Ipv4Addr::LOCALHOST, 0).into()),
        tcp_limits: limits,
        ..DriverConfig::udp((Ipv4Addr::LOCALHOST, 0).into(), Ipv4Addr::LOCALHOST.into())
    })
    .await
    .unwrap();
    let handle = media.handle.clone();
    let server_tcp = handle.tcp_local_addr().unwrap();

    // The publisher and one subscriber can only use TCP; another subscriber uses UDP.
    let pub_link = tcp_link(server_tcp).await;
    let (publisher, pub_mids) = join(&handle, PeerId(1), &SEND, &pub_link).await;
    let tcp_sub_link = tcp_link(server_tcp).await;
    let (tcp_sub, _) = join(&handle, PeerId(2), &RECV, &tcp_sub_link).await;
    let udp_sub_link = Link::Udp(UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap());
    let (udp_sub, _) = join(&handle, PeerId(3), &RECV, &udp_sub_link).await;

    let (pub_tx, _pub_rx) = mpsc::unbounded_channel();
    let (tcp_tx, mut tcp_rx) = mpsc::unbounded_channel();
    let (udp_tx, mut udp_rx) = mpsc::unbounded_channel();
    let publish = Some((pub_mids[0], pub_mids[1]));
    let tasks = [
        tokio::spawn(drive(publisher, pub_link, publish, pub_tx)),
        tokio::spawn(drive(tcp_sub, tcp_sub_link, None, tcp_tx)),
        tokio::spawn(drive(udp_sub, udp_sub_link, None, udp_tx)),
    ];

    let (audio, video) = receive(&mut tcp_rx, 25, 10).await;
    assert!(
        audio >= 25 && video >= 10,
        "over TCP: {audio} audio, {video} video frames"
    );
    let (audio, video) = receive(&mut udp_rx, 25, 10).await;
    assert!(
        audio >= 25 && video >= 10,
        "over UDP: {audio} audio, {video} video frames"
    );
    let stats = handle.stats().await.unwrap();
    assert!(
        stats.tcp_frames_in > 50 && stats.tcp_frames_out > 50,
        "{stats:?}"
    );
    assert_eq!(stats.tcp_connections_open, 2);

    // Hostile connections, while the lesson goes on.
    // 1. Garbage instead of STUN: closed at once.
    let mut garbage = TcpStream::connect(server_tcp).await.unwrap();
    garbage
        .write_all(&[0x00, 0x08, 1, 2, 3, 4, 5, 6, 7, 8])
        .await
        .unwrap();
    // 2. An absurd frame length: closed at once.
    let mut absurd = TcpStream::connect(server_tcp).await.unwrap();
    absurd.write_all(&[0xFF, 0xFF, 0x00, 0x01]).await.unwrap();
    // 3. Slowloris: half a frame, then silence: closed at the handshake deadline.
    let mut slow = TcpStream::connect(server_tcp).await.unwrap();
    slow.write_all(&[0x00, 0x40, 0x00]).await.unwrap();
    assert!(
        closed_by_server(&mut garbage, Duration::from_secs(5)).await,
        "garbage"
    );
    assert!(
        closed_by_server(&mut absurd, Duration::from_secs(5)).await,
        "absurd length"
    );
    assert!(
        closed_by_server(&mut slow, Duration::from_secs(8)).await,
        "slowloris"
    );
    // 4. A flood of silent connections: never more than the limits hold open.
    let mut flood = Vec::new();
    for _ in 0..40 {
        if let Ok(stream) = TcpStream::connect(server_tcp).await {
            flood.push(stream);
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stats = handle.stats().await.unwrap();
    assert!(
        stats.tcp_connections_open <= 2 + limits.max_unverified as u64,
        "{stats:?}"
    );
    assert!(stats.tcp_connections_closed_hostile >= 3 + 30, "{stats:?}");

    // The participants over TCP and UDP kept receiving through all of it.
    let (audio, video) = receive(&mut tcp_rx, 50, 15).await;
    assert!(
        audio >= 50 && video >= 15,
        "over TCP after the attacks: {audio}, {video}"
    );
    let (audio, video) = receive(&mut udp_rx, 50, 15).await;
    assert!(
        audio >= 50 && video >= 15,
        "over UDP after the attacks: {audio}, {video}"
    );
    drop(flood);

    // A peer that leaves has its TCP connection closed.
    handle.remove_peer(PeerId(2)).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let open = handle.stats().await.unwrap().tcp_connections_open;
        if open == 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{open} TCP connections still open"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for task in tasks {
        task.abort();
    }
}
