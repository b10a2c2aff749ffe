//! Per-peer permissions of the core: a peer may be added without the right to publish, and a
//! moderator's mute drops a peer's audio while its video still flows.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use classroom_media::{MediaEvent, PeerId};
use common::{RECV, SEND, World, opus_frame, vp8_frame};
use str0m::media::{MediaKind, Mid};

/// Sends `frames` audio frames (20 ms apart) and a video frame with every second one.
fn publish(world: &mut World, index: usize, mids: &[Mid], first: u32, frames: u32) {
    for n in first..first + frames {
        let (now, start) = (world.now, world.start);
        world
            .client(index)
            .write(now, start, mids[0], MediaKind::Audio, &opus_frame(n));
        world.settle();
        if n % 2 == 0 {
            let frame = vp8_frame(n / 2, n == 0);
            world
                .client(index)
                .write(now, start, mids[1], MediaKind::Video, &frame);
        }
        world.advance(Duration::from_millis(20));
    }
    world.advance(Duration::from_millis(200));
}

#[test]
fn a_peer_added_without_publish_permission_is_not_forwarded_until_granted() {
    let mut world = World::new();
    let (student, mids) = world.join_with(PeerId(1), &SEND, false);
    let (viewer, _) = world.join(PeerId(2), &RECV);
    let offered = |world: &World| {
        world.events.iter().any(|e| {
            matches!(
                e,
                MediaEvent::TrackPublished {
                    peer: PeerId(1),
                    ..
                } | MediaEvent::SubscriptionStarted {
                    publisher: PeerId(1),
                    ..
                }
            )
        })
    };
    assert!(
        !offered(&world),
        "nothing of a peer without permission is offered"
    );

    publish(&mut world, student, &mids, 0, 20);
    let stats = world.sfu.stats();
    assert!(stats.rtp_packets_in >= 20, "the SFU received the packets");
    assert_eq!(stats.rtp_packets_forwarded, 0);
    assert!(world.client(viewer).received(MediaKind::Audio).is_empty());

    world
        .sfu
        .set_publish_allowed(world.now, PeerId(1), true)
        .unwrap();
    world.settle();
    assert!(offered(&world), "granting offers the tracks");
    publish(&mut world, student, &mids, 20, 20);
    assert!(world.client(viewer).received(MediaKind::Audio).len() >= 15);
}

#[test]
fn muted_audio_is_dropped_and_video_still_flows() {
    let mut world = World::new();
    let (publisher, mids) = world.join(PeerId(1), &SEND);
    let (viewer, _) = world.join(PeerId(2), &RECV);
    publish(&mut world, publisher, &mids, 0, 20);
    let audio_before = world.client(viewer).received(MediaKind::Audio).len();
    let video_before = world.client(viewer).received(MediaKind::Video).len();
    assert!(
        audio_before >= 15 && video_before >= 5,
        "{audio_before} {video_before}"
    );

    world
        .sfu
        .set_audio_muted(world.now, PeerId(1), true)
        .unwrap();
    publish(&mut world, publisher, &mids, 20, 20);
    let client = world.client(viewer);
    assert_eq!(
        client.received(MediaKind::Audio).len(),
        audio_before,
        "no audio while muted"
    );
    assert!(
        client.received(MediaKind::Video).len() >= video_before + 8,
        "video flows"
    );
    assert!(world.sfu.stats().rtp_dropped_muted >= 20);

    world
        .sfu
        .set_audio_muted(world.now, PeerId(1), false)
        .unwrap();
    publish(&mut world, publisher, &mids, 40, 20);
    let audio_after = world.client(viewer).received(MediaKind::Audio);
    assert!(audio_after.len() >= audio_before + 15, "audio resumes");
    assert!(
        audio_after.iter().all(|n| !(20..40).contains(n)),
        "muted frames never arrive"
    );
    assert!(
        world
            .sfu
            .set_audio_muted(world.now, PeerId(9), true)
            .is_err()
    );
}
