//! The tokio driver relays media between str0m clients over real UDP on 127.0.0.1.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::Ipv4Addr;

use classroom_media::PeerId;
use classroom_media::driver::{self, DriverConfig};
use common::socket::{Cadence, Keyframes, Running};
use common::{RECV, SEND};

/// Audio, audio, video every 10 ms; one keyframe, first.
const CADENCE: Cadence = Cadence {
    video_every: 3,
    keyframes: Keyframes::FirstOnly,
};

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

    let publisher = Running::join(&handle, PeerId(1), &SEND, Some(CADENCE)).await;
    let mut subscriber = Running::join(&handle, PeerId(2), &RECV, None).await;
    subscriber.wait_for(25, 10).await;

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

    drop((publisher, subscriber));
    handle.remove_peer(PeerId(1)).await.unwrap();
    assert_eq!(handle.stats().await.unwrap().peers, 1);
}
