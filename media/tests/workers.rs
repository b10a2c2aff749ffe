//! Media workers through the driver: rooms are placed on the least-loaded worker, every peer of
//! a room (in-process publishers and subscribers here) joins its room's worker, each worker
//! forwards its own rooms' packets, and a room's place is freed with its last peer.

#![allow(clippy::unwrap_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use classroom_media::driver::{self, DriverConfig, LocalPublisher, LocalSubscription};
use classroom_media::placement::WorkerId;
use classroom_media::{
    AddPeerError, Codec, LocalEvent, LocalPacket, LocalTrack, Mid, PeerId, UnknownPeer,
};
use classroom_protocol::{LessonId, RoomName};
use tokio::time::timeout;

fn two_workers() -> DriverConfig {
    DriverConfig {
        workers: 2,
        ..DriverConfig::udp(
            SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            Ipv4Addr::LOCALHOST.into(),
        )
    }
}

fn room(n: i64) -> RoomName {
    RoomName::for_lesson(LessonId(n))
}

async fn encoder(media: &driver::MediaHandle, peer: u64, room: RoomName) -> LocalPublisher {
    let track = LocalTrack {
        mid: Mid::from("mic"),
        codec: Codec::Opus,
        keep_gop: false,
    };
    media
        .add_local_publisher(PeerId(peer), room, vec![track], true)
        .await
        .unwrap()
}

async fn write(encoder: &LocalPublisher, count: u8) {
    for index in 0..count {
        let packet = LocalPacket {
            seq_no: u64::from(index),
            timestamp: u32::from(index) * 960,
            marker: false,
            keyframe: false,
            payload: Arc::from(vec![index; 80]),
        };
        encoder.write(Mid::from("mic"), packet).await.unwrap();
    }
}

/// Packets `subscriber` receives before a quiet spell.
async fn packets(subscriber: &mut LocalSubscription) -> usize {
    let mut count = 0;
    while let Ok(Some(event)) = timeout(Duration::from_millis(500), subscriber.recv()).await {
        if matches!(event, LocalEvent::Packet { .. }) {
            count += 1;
        }
    }
    count
}

#[tokio::test]
async fn rooms_spread_over_the_workers_and_each_forwards_its_own() {
    let media = driver::start(two_workers()).await.unwrap();
    let handle = &media.handle;
    assert_eq!(handle.workers(), 2);
    let addrs = handle.local_addrs();
    assert_eq!(addrs.len(), 2);
    assert_ne!(addrs[0], addrs[1], "a port per worker");
    assert_eq!(handle.local_addr(), addrs[0]);

    let mut first = handle
        .add_local_subscriber(PeerId(1), room(1))
        .await
        .unwrap();
    let mut second = handle
        .add_local_subscriber(PeerId(2), room(2))
        .await
        .unwrap();
    let one = encoder(handle, 3, room(1)).await;
    let two = encoder(handle, 4, room(2)).await;
    assert_eq!(handle.room_worker(&room(1)), Some(WorkerId(0)));
    assert_eq!(handle.room_worker(&room(2)), Some(WorkerId(1)));
    assert_eq!(handle.peer_worker(PeerId(3)), Some(WorkerId(0)));
    assert_eq!(handle.peer_worker(PeerId(4)), Some(WorkerId(1)));

    write(&one, 30).await;
    write(&two, 20).await;
    assert_eq!(packets(&mut first).await, 30);
    assert_eq!(packets(&mut second).await, 20);
    let workers = handle.worker_stats().await.unwrap();
    assert_eq!(
        workers
            .iter()
            .map(|w| (w.worker, w.load.rooms, w.load.peers, w.sfu.rtp_packets_in))
            .collect::<Vec<_>>(),
        [(WorkerId(0), 1, 2, 30), (WorkerId(1), 1, 2, 20)]
    );
    let total = handle.stats().await.unwrap();
    assert_eq!(total.rtp_packets_in, 50);

    // A peer id in use is refused wherever it lives; an unknown one is unknown.
    let taken = handle.add_local_subscriber(PeerId(4), room(1)).await;
    assert!(matches!(
        taken,
        Err(driver::CommandError::Failed(AddPeerError::DuplicatePeer(
            PeerId(4)
        )))
    ));
    assert_eq!(
        handle.remove_peer(PeerId(99)).await,
        Err(driver::CommandError::Failed(UnknownPeer(PeerId(99))))
    );

    // Room 2 empties: its place is freed (the worker reports its peers gone), and the next
    // new room goes to the idle worker 1.
    drop(two);
    drop(second);
    let freed = async {
        while handle.room_worker(&room(2)).is_some() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    timeout(Duration::from_secs(5), freed).await.unwrap();
    let _third = handle
        .add_local_subscriber(PeerId(5), room(3))
        .await
        .unwrap();
    assert_eq!(handle.room_worker(&room(3)), Some(WorkerId(1)));

    media.workers.stop().await;
    assert!(
        matches!(handle.stats().await, Err(driver::CommandError::Stopped)),
        "stopped workers answer nothing"
    );
}

#[tokio::test]
async fn worker_ports_follow_the_configured_one() {
    // A free port to start from, with the one after it (almost always free too).
    let probe = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let base = probe.local_addr().unwrap().port();
    drop(probe);
    if base == u16::MAX {
        return;
    }
    let mut config = two_workers();
    config.bind = SocketAddr::from((Ipv4Addr::LOCALHOST, base));
    let Ok(media) = driver::start(config).await else {
        // Someone else took one of the two ports meanwhile: nothing to check.
        return;
    };
    let ports: Vec<u16> = media
        .handle
        .local_addrs()
        .iter()
        .map(|a| a.port())
        .collect();
    assert_eq!(ports, [base, base + 1]);
    media.workers.stop().await;
    // The ports are free again once the workers have stopped.
    std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, base)).unwrap();
}

/// The packets `subscriber` receives before a quiet spell, as (publisher, sequence number).
async fn received(
    (subscriber, tracks): &mut (
        LocalSubscription,
        std::collections::HashMap<classroom_media::LocalTrackId, PeerId>,
    ),
) -> Vec<(PeerId, u64)> {
    let mut packets = Vec::new();
    while let Ok(Some(event)) = timeout(Duration::from_millis(500), subscriber.recv()).await {
        match event {
            LocalEvent::TrackStarted {
                track, publisher, ..
            } => {
                tracks.insert(track, publisher);
            }
            LocalEvent::Packet { track, packet, .. } => {
                let publisher = tracks.get(&track).copied().unwrap_or(PeerId(0));
                packets.push((publisher, packet.seq_no));
            }
            LocalEvent::TrackEnded { .. } => {}
        }
    }
    packets
}

#[tokio::test]
async fn a_lecture_spans_two_workers_when_its_home_is_full() {
    let mut config = two_workers();
    config.worker_peer_limit = Some(2);
    let media = driver::start(config).await.unwrap();
    let handle = &media.handle;
    let lecture = room(7);

    // The teacher (an encoder) and one student fill worker 0; two more go to worker 1.
    let teacher = encoder(handle, 10, lecture.clone()).await;
    let mut ann = (
        handle
            .add_local_subscriber(PeerId(11), lecture.clone())
            .await
            .unwrap(),
        Default::default(),
    );
    let mut bob = (
        handle
            .add_local_subscriber(PeerId(12), lecture.clone())
            .await
            .unwrap(),
        Default::default(),
    );
    let mut cy = (
        handle
            .add_local_subscriber(PeerId(13), lecture.clone())
            .await
            .unwrap(),
        Default::default(),
    );
    assert_eq!(handle.room_worker(&lecture), Some(WorkerId(0)));
    assert_eq!(handle.peer_worker(PeerId(11)), Some(WorkerId(0)));
    assert_eq!(handle.peer_worker(PeerId(12)), Some(WorkerId(1)));
    assert_eq!(handle.peer_worker(PeerId(13)), Some(WorkerId(1)));
    // The link is up and worker 1 has told what it takes.
    tokio::time::sleep(Duration::from_millis(500)).await;

    write(&teacher, 40).await;
    let every: Vec<(PeerId, u64)> = (0..40).map(|n| (PeerId(10), n)).collect();
    for (n, student) in [&mut ann, &mut bob, &mut cy].into_iter().enumerate() {
        let got = received(student).await;
        let stats = handle.worker_stats().await.unwrap();
        assert_eq!(
            got, every,
            "student {n}: every packet, in order: {stats:#?}"
        );
    }
    let stats = handle.worker_stats().await.unwrap();
    assert_eq!(stats[0].sfu.relay_packets_out, 40, "one copy per packet");
    assert_eq!(stats[1].sfu.relay_packets_in, 40);
    assert_eq!(stats[0].sfu.relay_links_opened, 1);
    assert_eq!(stats[1].sfu.relay_links_opened, 1);

    // A student on worker 1 comes on stage: worker 0's student hears her over the link.
    let track = LocalTrack {
        mid: Mid::from("mic"),
        codec: Codec::Opus,
        keep_gop: false,
    };
    let dee = handle
        .add_local_publisher(PeerId(14), lecture.clone(), vec![track], false)
        .await
        .unwrap();
    assert_eq!(handle.peer_worker(PeerId(14)), Some(WorkerId(1)));
    write(&dee, 5).await;
    handle.set_publish_allowed(PeerId(14), true).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    write(&dee, 20).await;
    let hers: Vec<(PeerId, u64)> = (0..20).map(|n| (PeerId(14), n)).collect();
    assert_eq!(received(&mut ann).await, hers, "over the link");
    assert_eq!(received(&mut bob).await, hers, "on her worker");
    assert_eq!(received(&mut cy).await, hers);

    // Revoked: from her next packet nobody on either worker receives anything of hers.
    handle.set_publish_allowed(PeerId(14), false).await.unwrap();
    write(&dee, 20).await;
    for student in [&mut ann, &mut bob, &mut cy] {
        assert_eq!(received(student).await, []);
    }

    // Worker 1 empties: its link ends on both sides, and the lecture goes on at home.
    drop((bob, cy, dee));
    let closed = async {
        loop {
            let stats = handle.worker_stats().await.unwrap();
            if stats.iter().all(|w| w.sfu.relay_links_closed == 1) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    if timeout(Duration::from_secs(5), closed).await.is_err() {
        panic!("links still open: {:#?}", handle.worker_stats().await);
    }
    write(&teacher, 10).await;
    assert_eq!(received(&mut ann).await.len(), 10);
    let stats = handle.worker_stats().await.unwrap();
    assert_eq!(
        stats[0].sfu.relay_packets_out, 40,
        "nothing crosses any more"
    );
    assert_eq!(stats[1].load.peers, 0);
    media.workers.stop().await;
}
