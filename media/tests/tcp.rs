//! ICE over TCP through the driver: str0m clients that offer only a TCP candidate publish and
//! receive over real TCP connections on 127.0.0.1 (RFC 4571 framing), next to a UDP client;
//! hostile connections (garbage, absurd frame lengths, silence, a flood) are closed and
//! counted while the well-behaved participants keep receiving.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use classroom_media::PeerId;
use classroom_media::driver::{self, DriverConfig, TcpLimits};
use common::socket::{AudioVideo, Cadence, Keyframes, Link, Publish, Running};
use common::{Client, RECV, SEND, room};
use str0m::Candidate;
use str0m::media::{Direction, MediaKind};
use str0m::net::TcpType;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Audio, audio, video every 10 ms; a keyframe every 25 video frames (a second), as an
/// encoder with a fixed keyframe interval (this publisher does not answer requests).
const CADENCE: Cadence = Cadence {
    video_every: 3,
    keyframes: Keyframes::Every(25),
};

/// Joins a client reaching the SFU over `link` (UDP, or TCP only) and starts it.
async fn join(
    handle: &driver::MediaHandle,
    peer: PeerId,
    lines: &[(MediaKind, Direction)],
    link: Link,
    publish: bool,
) -> Running {
    let now = Instant::now();
    let candidate = match &link {
        Link::Udp(_) => Candidate::host(link.local(), "udp").unwrap(),
        // A browser behind a UDP-blocking firewall offers an active TCP candidate only.
        Link::Tcp { .. } => Candidate::builder()
            .tcp()
            .host(link.local())
            .tcptype(TcpType::Active)
            .build()
            .unwrap(),
    };
    let (mut client, mids, offer, pending) = Client::with_candidate(now, peer, candidate, lines);
    let answer = handle.add_peer(peer, room(), offer).await.unwrap();
    assert!(
        answer.contains(" tcp ") && answer.contains("tcptype passive"),
        "the answer carries the passive TCP candidate: {answer}"
    );
    assert!(answer.contains(" udp "), "and the UDP one: {answer}");
    client.accept_answer(pending, &answer);
    let publish =
        publish.then(|| Box::new(AudioVideo::new(mids[0], mids[1], CADENCE)) as Box<dyn Publish>);
    Running::start(client, mids, link, publish)
}

/// Frames of each kind received so far.
fn counts(running: &mut Running) -> (usize, usize) {
    running.collect();
    (
        running.received(MediaKind::Audio).len(),
        running.received(MediaKind::Video).len(),
    )
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
    let publisher = join(&handle, PeerId(1), &SEND, Link::tcp(server_tcp).await, true).await;
    let mut tcp_sub = join(
        &handle,
        PeerId(2),
        &RECV,
        Link::tcp(server_tcp).await,
        false,
    )
    .await;
    let mut udp_sub = join(&handle, PeerId(3), &RECV, Link::udp().await, false).await;

    tcp_sub.wait_for(25, 10).await;
    udp_sub.wait_for(25, 10).await;
    let stats = handle.stats().await.unwrap();
    assert!(
        stats.tcp_frames_in > 50 && stats.tcp_frames_out > 50,
        "{stats:?}"
    );
    assert_eq!(stats.tcp_connections_open, 2);

    // Hostile connections, while the lesson goes on.
    let (tcp_before, udp_before) = (counts(&mut tcp_sub), counts(&mut udp_sub));
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
    tcp_sub.wait_for(tcp_before.0 + 50, tcp_before.1 + 15).await;
    udp_sub.wait_for(udp_before.0 + 50, udp_before.1 + 15).await;
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
    drop((publisher, tcp_sub, udp_sub));
}
