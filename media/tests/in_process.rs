//! The in-process participant interface through the tokio driver: a local publisher's packets
//! reach a local subscriber of the same room, announced first and ended last.

#![allow(clippy::unwrap_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use classroom_media::driver::{self, DriverConfig};
use classroom_media::{Codec, LocalEvent, LocalPacket, LocalTrack, Mid, PeerId, TrackKind};
use classroom_protocol::{LessonId, RoomName};
use tokio::time::timeout;

async fn next(subscription: &mut driver::LocalSubscription) -> LocalEvent {
    timeout(Duration::from_secs(5), subscription.recv())
        .await
        .expect("an event in time")
        .expect("the driver runs")
}

#[tokio::test]
async fn a_local_publisher_reaches_a_local_subscriber() {
    let media = driver::start(DriverConfig::udp(
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        Ipv4Addr::LOCALHOST.into(),
    ))
    .await
    .unwrap();
    let room = RoomName::for_lesson(LessonId(7));
    let mut recorder = media
        .handle
        .add_local_subscriber(PeerId(2), room.clone())
        .await
        .unwrap();
    let track = LocalTrack {
        mid: Mid::from("mic"),
        codec: Codec::Opus,
        keep_gop: false,
    };
    let encoder = media
        .handle
        .add_local_publisher(PeerId(1), room.clone(), vec![track], true)
        .await
        .unwrap();
    // Another room's subscriber sees none of it.
    let mut elsewhere = media
        .handle
        .add_local_subscriber(PeerId(3), RoomName::for_lesson(LessonId(8)))
        .await
        .unwrap();

    for index in 0..50u8 {
        let packet = LocalPacket {
            seq_no: u64::from(index),
            timestamp: u32::from(index) * 960,
            marker: false,
            keyframe: false,
            payload: Arc::from(vec![index; 80]),
        };
        encoder.write(Mid::from("mic"), packet).await.unwrap();
    }
    let LocalEvent::TrackStarted {
        track,
        publisher,
        kind,
        ..
    } = next(&mut recorder).await
    else {
        panic!("the track is announced first");
    };
    assert_eq!((publisher, kind), (PeerId(1), TrackKind::Audio));
    for index in 0..50u8 {
        match next(&mut recorder).await {
            LocalEvent::Packet {
                track: t,
                codec,
                packet,
                ..
            } => {
                assert_eq!((t, codec), (track, Codec::Opus));
                assert_eq!(packet.payload.as_ref(), vec![index; 80].as_slice());
            }
            other => panic!("expected packet {index}, got {other:?}"),
        }
    }
    drop(encoder);
    assert_eq!(next(&mut recorder).await, LocalEvent::TrackEnded { track });
    assert_eq!(recorder.dropped_packets(), 0);
    assert!(
        timeout(Duration::from_millis(200), elsewhere.recv())
            .await
            .is_err(),
        "nothing crosses rooms"
    );
    let stats = media.handle.stats().await.unwrap();
    assert_eq!(stats.rtp_packets_in, 50);
}
