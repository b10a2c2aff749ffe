//! In-process participants on the one forwarding path: a local publisher reaches browsers
//! (and late joiners start from its cached keyframe), a browser reaches a local subscriber,
//! and permissions apply to local publishers as to browsers.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use classroom_media::{
    Codec, LocalEvent, LocalPacket, LocalTrack, MediaEvent, Mid, PeerId, TrackKind,
};
use common::{RECV, SEND, World, frame_index, opus_frame, room, vp8_frame, vp8_frame_of_len};
use str0m::media::MediaKind;

/// A one-packet VP8 frame as RTP payload: the RFC 7741 descriptor (S=1, partition 0) before a
/// small synthetic frame.
fn vp8_payload(index: u32, keyframe: bool) -> Vec<u8> {
    let mut payload = vec![0x10];
    payload.extend_from_slice(&vp8_frame_of_len(index, keyframe, 400));
    payload
}

struct Encoder {
    peer: PeerId,
    sent: u32,
}

impl Encoder {
    fn add(world: &mut World, peer: PeerId, allowed: bool) -> Self {
        let tracks = vec![
            LocalTrack {
                mid: Mid::from("audio"),
                codec: Codec::Opus,
                keep_gop: false,
            },
            LocalTrack {
                mid: Mid::from("video"),
                codec: Codec::Vp8,
                keep_gop: true,
            },
        ];
        world
            .sfu
            .add_local_publisher(world.now, peer, room(), tracks, allowed)
            .unwrap();
        world.settle();
        Encoder { peer, sent: 0 }
    }

    /// 40 ms of media: two Opus frames and one VP8 frame (a keyframe every `gop` frames).
    fn tick(&mut self, world: &mut World, gop: u32) {
        let index = self.sent;
        for half in 0..2u32 {
            let packet = LocalPacket {
                seq_no: u64::from(index * 2 + half) + 1,
                timestamp: (index * 2 + half) * 960,
                marker: false,
                keyframe: false,
                payload: Arc::from(opus_frame(index * 2 + half)),
            };
            let now = world.now;
            world
                .sfu
                .write_local(now, self.peer, &Mid::from("audio"), packet)
                .unwrap();
        }
        let keyframe = index.is_multiple_of(gop);
        let packet = LocalPacket {
            seq_no: u64::from(index) + 1,
            timestamp: index * 3600,
            marker: true,
            keyframe,
            payload: Arc::from(vp8_payload(index, keyframe)),
        };
        let now = world.now;
        world
            .sfu
            .write_local(now, self.peer, &Mid::from("video"), packet)
            .unwrap();
        self.sent += 1;
        world.advance(Duration::from_millis(40));
    }
}

#[test]
fn a_local_publisher_reaches_browsers_and_late_joiners_start_at_its_keyframe() {
    let mut world = World::new();
    let (early, _) = world.join(PeerId(1), &RECV);
    let mut encoder = Encoder::add(&mut world, PeerId(9), true);
    for _ in 0..25 {
        encoder.tick(&mut world, 20);
    }
    let video = world.client(early).received(MediaKind::Video);
    assert_eq!(video, (0..25).collect::<Vec<_>>(), "every frame, in order");
    let audio = world.client(early).received(MediaKind::Audio);
    assert_eq!(audio, (0..50).collect::<Vec<_>>());

    // Frame 20 was the last keyframe: a subscriber joining now gets 20.. at once, then on.
    let (late, _) = world.join(PeerId(2), &RECV);
    for _ in 0..5 {
        encoder.tick(&mut world, 20);
    }
    let video = world.client(late).received(MediaKind::Video);
    assert_eq!(
        video.first(),
        Some(&20),
        "the late joiner starts from the cached keyframe: {video:?}"
    );
    assert!(video.ends_with(&[25, 26, 27, 28, 29]), "{video:?}");
    let started = world
        .events
        .iter()
        .filter(|e| {
            matches!(e, MediaEvent::SubscriptionStarted { subscriber, publisher: PeerId(9), .. }
                if *subscriber == PeerId(2))
        })
        .count();
    assert_eq!(started, 2);
}

#[test]
fn a_local_publisher_without_permission_forwards_nothing_until_granted() {
    let mut world = World::new();
    let (viewer, _) = world.join(PeerId(1), &RECV);
    let mut encoder = Encoder::add(&mut world, PeerId(9), false);
    for _ in 0..5 {
        encoder.tick(&mut world, 20);
    }
    assert!(world.client(viewer).received(MediaKind::Video).is_empty());
    assert_eq!(world.sfu.stats().rtp_dropped_unpublished, 15);

    let now = world.now;
    world.sfu.set_publish_allowed(now, PeerId(9), true).unwrap();
    world.settle();
    // The keyframe sent before the grant was cached: the viewer starts from it.
    for _ in 0..3 {
        encoder.tick(&mut world, 20);
    }
    let video = world.client(viewer).received(MediaKind::Video);
    assert_eq!(video.first(), Some(&0), "{video:?}");

    let now = world.now;
    world
        .sfu
        .set_publish_allowed(now, PeerId(9), false)
        .unwrap();
    world.settle();
    let before = world.client(viewer).received(MediaKind::Video).len();
    for _ in 0..3 {
        encoder.tick(&mut world, 20);
    }
    assert_eq!(
        world.client(viewer).received(MediaKind::Video).len(),
        before
    );
}

#[test]
fn a_local_subscriber_receives_every_track_of_its_room() {
    let mut world = World::new();
    let (teacher, mids) = world.join(PeerId(1), &SEND);
    let now = world.now;
    world
        .sfu
        .add_local_subscriber(now, PeerId(50), room())
        .unwrap();
    world.settle();
    let mut started: Vec<(PeerId, TrackKind)> = world
        .locals
        .iter()
        .filter_map(|(to, e)| match e {
            LocalEvent::TrackStarted {
                publisher, kind, ..
            } if *to == PeerId(50) => Some((*publisher, *kind)),
            _ => None,
        })
        .collect();
    started.sort_by_key(|(peer, kind)| (*peer, *kind == TrackKind::Video));
    assert_eq!(
        started,
        [(PeerId(1), TrackKind::Audio), (PeerId(1), TrackKind::Video)]
    );

    for index in 0..10u32 {
        let (now, start) = (world.now, world.start);
        world
            .client(teacher)
            .write(now, start, mids[0], MediaKind::Audio, &opus_frame(index));
        world.advance(Duration::from_millis(20));
    }
    let audio: Vec<(Codec, Vec<u8>)> = world
        .locals
        .iter()
        .filter_map(|(_, e)| match e {
            LocalEvent::Packet { codec, packet, .. } if *codec == Codec::Opus => {
                Some((*codec, packet.payload.to_vec()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(audio.len(), 10);
    for (index, (_, payload)) in audio.iter().enumerate() {
        assert_eq!(
            frame_index(MediaKind::Audio, payload),
            Some(index as u32),
            "payloads arrive untouched and in order"
        );
    }

    // The teacher leaves: the subscriber hears that both tracks ended.
    let now = world.now;
    world.sfu.remove_peer(now, PeerId(1)).unwrap();
    world.settle();
    let ended = world
        .locals
        .iter()
        .filter(|(_, e)| matches!(e, LocalEvent::TrackEnded { .. }))
        .count();
    assert_eq!(ended, 2);
}

#[test]
fn local_participants_are_refused_clearly() {
    let mut world = World::new();
    let now = world.now;
    world
        .sfu
        .add_local_subscriber(now, PeerId(5), room())
        .unwrap();
    assert!(
        world
            .sfu
            .add_local_subscriber(now, PeerId(5), room())
            .is_err()
    );
    let twice = vec![
        LocalTrack {
            mid: Mid::from("a"),
            codec: Codec::Opus,
            keep_gop: false,
        };
        2
    ];
    assert!(
        world
            .sfu
            .add_local_publisher(now, PeerId(6), room(), twice, true)
            .is_err()
    );
    let packet = LocalPacket {
        seq_no: 1,
        timestamp: 0,
        marker: false,
        keyframe: false,
        payload: Arc::from(vec![1u8]),
    };
    // A subscriber cannot write, and an unknown track is refused.
    assert!(
        world
            .sfu
            .write_local(now, PeerId(5), &Mid::from("a"), packet.clone())
            .is_err()
    );
    let _ = Encoder::add(&mut world, PeerId(7), true);
    assert!(
        world
            .sfu
            .write_local(now, PeerId(7), &Mid::from("nope"), packet)
            .is_err()
    );
}

#[test]
fn a_local_subscriber_asks_a_browser_for_a_keyframe() {
    let mut world = World::new();
    let (teacher, mids) = world.join(PeerId(1), &SEND);
    let now = world.now;
    world
        .sfu
        .add_local_subscriber(now, PeerId(50), room())
        .unwrap();
    world.settle();
    let video_mid = world
        .locals
        .iter()
        .find_map(|(_, e)| match e {
            LocalEvent::TrackStarted {
                mid,
                kind: TrackKind::Video,
                ..
            } => Some(mid.clone()),
            _ => None,
        })
        .expect("the teacher's video track started");
    for index in 0..5u32 {
        let (now, start) = (world.now, world.start);
        world.client(teacher).write(
            now,
            start,
            mids[1],
            MediaKind::Video,
            &vp8_frame(index, index == 0),
        );
        world.advance(Duration::from_millis(40));
    }
    // Past the throttle of the request made when the subscriber was added.
    world.advance(Duration::from_secs(1));
    let before = world.client(teacher).keyframe_requests();
    // The restream switches its main view to this track: it asks for a keyframe.
    let now = world.now;
    world.sfu.request_local_keyframe(now, PeerId(1), &video_mid);
    world.settle();
    world.advance(Duration::from_millis(100));
    assert!(
        world.client(teacher).keyframe_requests() > before,
        "the browser got a keyframe request"
    );
}
