//! The first frame at once: a subscriber who joins a publication that is already flowing
//! starts from its cached keyframe, without waiting for (or costing) a new one, as long as
//! that keyframe is young; real str0m clients on a virtual network and clock.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use classroom_media::PeerId;
use common::{Publisher, RECV, World, vp8_frame};
use str0m::Event;
use str0m::media::MediaKind;

/// The 90 kHz timestamps of the video frames a client received.
fn video_times(world: &mut World, client: usize) -> Vec<u64> {
    world
        .client(client)
        .events
        .iter()
        .filter_map(|e| match e {
            Event::MediaData(d) if d.params.spec().codec.kind() == MediaKind::Video => {
                Some(d.time.numer())
            }
            _ => None,
        })
        .collect()
}

fn is_keyframe(frame: &[u8]) -> bool {
    frame[0] & 1 == 0
}

#[test]
fn a_late_joiner_starts_from_the_cached_keyframe_without_asking_the_publisher() {
    let mut world = World::with_config(|c| c.first_frame_max_age = Duration::from_secs(10));
    let mut publisher = Publisher::join(&mut world, PeerId(1));
    let (first, _) = world.join(PeerId(2), &RECV);
    publisher.publish(&mut world, Duration::from_millis(600));
    assert!(!world.client(first).received(MediaKind::Video).is_empty());
    let requests = world.client(publisher.index).keyframe_requests();
    let before = world.sfu.stats();
    let last_keyframe = publisher
        .video_sent
        .iter()
        .filter(|(_, frame)| is_keyframe(frame))
        .map(|(index, _)| *index)
        .max()
        .unwrap();

    let (late, _) = world.join(PeerId(3), &RECV);
    let sent_before_join = publisher.video_sent.len() as u32;
    // The replay goes out at the pacer's pace, the live frames after it: the backlog is gone
    // within the pacer's queue limit (2 s).
    publisher.publish(&mut world, Duration::from_millis(2500));

    let frames = world.client(late).received(MediaKind::Video);
    assert_eq!(
        frames.first(),
        Some(&last_keyframe),
        "starts at the cached keyframe: {frames:?}"
    );
    assert!(
        frames.windows(2).all(|w| w[1] == w[0] + 1),
        "then every frame since, and the live ones: {frames:?}"
    );
    let live = world.client(first).received(MediaKind::Video);
    assert!(
        frames.last() >= live.last(),
        "caught up with the live stream ({:?}): {frames:?}",
        live.last()
    );
    assert_eq!(
        world.client(publisher.index).keyframe_requests(),
        requests,
        "the publisher was not asked"
    );
    let stats = world.sfu.stats();
    assert_eq!(
        stats.first_frames_from_cache,
        before.first_frames_from_cache + 1
    );
    assert_eq!(
        stats.first_frames_from_publisher,
        before.first_frames_from_publisher
    );

    // The replayed frames come a millisecond apart and end where the live ones go on: the
    // decoder is not made to show seconds-old frames at their old pace.
    let times = video_times(&mut world, late);
    let replayed = (sent_before_join - last_keyframe) as usize;
    assert!(replayed >= 2, "{replayed} frames replayed");
    assert!(
        times[..replayed].windows(2).all(|w| w[1] - w[0] == 90),
        "replay spacing: {times:?}"
    );
    assert!(
        times.windows(2).all(|w| w[1] > w[0]),
        "timestamps keep rising: {times:?}"
    );
}

#[test]
fn a_keyframe_older_than_the_limit_is_not_replayed_and_the_publisher_is_asked() {
    let mut world = World::new();
    let (publisher, mids) = world.join(PeerId(1), &common::SEND);
    let (first, _) = world.join(PeerId(2), &RECV);
    // A publisher that ignores keyframe requests: a keyframe every 100 frames (4 s).
    let mut sent = 0u32;
    let mut write = |world: &mut World, frames: u32| {
        for _ in 0..frames {
            let (now, start) = (world.now, world.start);
            let frame = vp8_frame(sent, sent.is_multiple_of(100));
            world
                .client(publisher)
                .write(now, start, mids[1], MediaKind::Video, &frame);
            sent += 1;
            world.advance(Duration::from_millis(40));
        }
    };
    write(&mut world, 75);
    assert!(!world.client(first).received(MediaKind::Video).is_empty());
    let requests = world.client(publisher).keyframe_requests();
    let before = world.sfu.stats();

    // 3 s after the keyframe: too old to start from (the limit is 1 s).
    let (late, _) = world.join(PeerId(3), &RECV);
    write(&mut world, 10);
    assert!(world.client(late).received(MediaKind::Video).is_empty());
    assert!(
        world.client(publisher).keyframe_requests() > requests,
        "the publisher is asked instead"
    );
    write(&mut world, 20);
    let frames = world.client(late).received(MediaKind::Video);
    assert_eq!(frames.first(), Some(&100), "starts at the next keyframe");
    let stats = world.sfu.stats();
    assert_eq!(
        stats.first_frames_from_cache,
        before.first_frames_from_cache
    );
    assert_eq!(
        stats.first_frames_from_publisher,
        before.first_frames_from_publisher + 1
    );
}

#[test]
fn a_join_storm_is_served_from_the_cache_and_keeps_it_young_at_one_request_per_interval() {
    let mut world = World::new();
    let mut publisher = Publisher::join(&mut world, PeerId(1));
    let (first, _) = world.join(PeerId(2), &RECV);
    publisher.publish(&mut world, Duration::from_millis(800));
    assert!(!world.client(first).received(MediaKind::Video).is_empty());
    let requests = world.client(publisher.index).keyframe_requests();
    let before = world.sfu.stats();

    let storm_start = world.now;
    let mut joiners = Vec::new();
    for peer in 10..30 {
        let (index, _) = world.join(PeerId(peer), &RECV);
        joiners.push(index);
        publisher.publish(&mut world, Duration::from_millis(100));
    }
    let storm = world.now - storm_start;
    publisher.publish(&mut world, Duration::from_millis(500));

    for &index in &joiners {
        let frames = world.client(index).received_frames(MediaKind::Video);
        assert!(!frames.is_empty(), "joiner {index} got no video");
        assert!(
            is_keyframe(&frames[0]),
            "joiner {index} starts on a keyframe"
        );
    }
    let stats = world.sfu.stats();
    assert_eq!(
        stats.first_frames_from_cache - before.first_frames_from_cache,
        joiners.len() as u64,
        "every joiner started from the cache"
    );
    // The cache was refreshed as it aged past half its limit of 1 s (the first joiner found
    // it 0.8 s old), at most once per throttle interval of 500 ms.
    let asked = world.client(publisher.index).keyframe_requests() - requests;
    let intervals = (storm.as_millis() / 500) as usize + 1;
    assert!(
        (1..=intervals).contains(&asked),
        "{asked} keyframe requests in {storm:?}"
    );
}
