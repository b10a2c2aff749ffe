//! The tokio driver relays media between str0m clients over real UDP on 127.0.0.1.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use classroom_media::PeerId;
use classroom_media::driver::{self, DriverConfig};
use common::{Client, opus_frame, room, vp8_frame};
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Event, Input, Output};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// Drives one client over its own socket; publishes 20 ms audio and 40 ms video frames on
/// `publish` once connected; reports every received frame's kind.
async fn drive(
    mut client: Client,
    socket: UdpSocket,
    publish: Option<(Mid, Mid)>,
    received: mpsc::UnboundedSender<MediaKind>,
) {
    let start = Instant::now();
    let local = socket.local_addr().unwrap();
    let mut buf = vec![0; 2048];
    let mut connected = false;
    let mut next_frame = start;
    let mut frame = 0u32;
    loop {
        let timeout = loop {
            match client.rtc.poll_output().unwrap() {
                Output::Transmit(t) => {
                    let _ = socket.send_to(&t.contents, t.destination).await;
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
            result = socket.recv_from(&mut buf) => {
                let Ok((len, source)) = result else { continue };
                let Ok(contents) = buf[..len].try_into() else { continue };
                let input = Input::Receive(
                    Instant::now(),
                    Receive { proto: Protocol::Udp, source, destination: local, contents },
                );
                client.rtc.handle_input(input).unwrap();
            }
            () = tokio::time::sleep_until(deadline.into()) => {
                let now = Instant::now();
                match publishing {
                    Some((audio, video)) if now >= next_frame => {
                        // One write per wake-up, so each is drained before the next.
                        if frame % 3 == 2 {
                            let data = vp8_frame(frame, frame == 2);
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

async fn join(
    handle: &driver::MediaHandle,
    peer: PeerId,
    lines: &[(MediaKind, Direction)],
) -> (Client, Vec<Mid>, UdpSocket) {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr: SocketAddr = socket.local_addr().unwrap();
    let (mut client, mids, offer, pending) = Client::new(Instant::now(), peer, addr, lines);
    let answer = handle.add_peer(peer, room(), offer).await.unwrap();
    client.accept_answer(pending, &answer);
    (client, mids, socket)
}

#[tokio::test]
async fn media_crosses_real_udp_through_the_driver() {
    let media = driver::start(DriverConfig::udp(
        (Ipv4Addr::LOCALHOST, 0).into(),
        Ipv4Addr::LOCALHOST.into(),
    ))
    .await
    .unwrap();
    let handle = media.handle.clone();
    let mut events = media.events;

    let send = [
        (MediaKind::Audio, Direction::SendOnly),
        (MediaKind::Video, Direction::SendOnly),
    ];
    let recv = [
        (MediaKind::Audio, Direction::RecvOnly),
        (MediaKind::Video, Direction::RecvOnly),
    ];
    let (publisher, pub_mids, pub_socket) = join(&handle, PeerId(1), &send).await;
    let (subscriber, _, sub_socket) = join(&handle, PeerId(2), &recv).await;

    let (pub_tx, _pub_rx) = mpsc::unbounded_channel();
    let (sub_tx, mut sub_rx) = mpsc::unbounded_channel();
    let publish = Some((pub_mids[0], pub_mids[1]));
    let pub_task = tokio::spawn(drive(publisher, pub_socket, publish, pub_tx));
    let sub_task = tokio::spawn(drive(subscriber, sub_socket, None, sub_tx));

    let (mut audio, mut video) = (0, 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while audio < 25 || video < 10 {
        match tokio::time::timeout_at(deadline, sub_rx.recv()).await {
            Ok(Some(MediaKind::Audio)) => audio += 1,
            Ok(Some(MediaKind::Video)) => video += 1,
            Ok(None) | Err(_) => break,
        }
    }
    assert!(
        audio >= 25 && video >= 10,
        "received {audio} audio, {video} video frames"
    );

    let stats = handle.stats().await.unwrap();
    assert!(stats.rtp_packets_forwarded >= 35, "{stats:?}");
    let mut connected = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let classroom_media::MediaEvent::PeerConnected { peer } = event {
            connected.push(peer);
        }
    }
    connected.sort();
    assert_eq!(connected, [PeerId(1), PeerId(2)]);

    pub_task.abort();
    sub_task.abort();
    handle.remove_peer(PeerId(1)).await.unwrap();
    assert_eq!(handle.stats().await.unwrap().peers, 1);
}
