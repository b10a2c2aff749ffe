//! Simulcast through the core on a virtual clock: a publisher sends three layers, each
//! subscriber gets one layer at a time (switching only on keyframes, with contiguous sequence
//! numbers), and the size a subscriber asks for moves it down at once and back up after the
//! hysteresis delay.

#![allow(clippy::unwrap_used)]

mod common;

use classroom_media::{Mid as OurMid, PeerId};
use common::{LAYERS, SimulcastPublisher as Publisher, World, room};
use str0m::media::{Direction, MediaKind, Mid};

/// The viewer (peer 2) shows the video of its m-line `mid` at `height`; the frames it gets
/// over the next second.
fn show_at(
    world: &mut World,
    publisher: &mut Publisher,
    viewer: usize,
    mid: &Mid,
    height: u32,
) -> Vec<(u32, u8)> {
    let now = world.now;
    let mid = OurMid::from(mid.to_string().as_str());
    world
        .sfu
        .set_video_size(now, PeerId(2), &mid, height)
        .unwrap();
    let before = world.client(viewer).layers_received().len();
    for _ in 0..25 {
        publisher.tick(world);
    }
    world.client(viewer).layers_received()[before..].to_vec()
}

#[test]
fn each_subscriber_gets_one_layer_and_its_size_moves_it() {
    let mut world = World::new();
    let mut publisher = world.join_simulcast(PeerId(1), &LAYERS);
    let (viewer, mids) = world.join(PeerId(2), &[(MediaKind::Video, Direction::RecvOnly)]);
    for _ in 0..75 {
        publisher.tick(&mut world);
    }
    let frames = world.client(viewer).layers_received();
    assert!(
        frames.len() > 50,
        "the viewer receives video: {}",
        frames.len()
    );
    // One layer per frame: frame indices never repeat (no layer mixing on the slot).
    let mut indices: Vec<u32> = frames.iter().map(|(i, _)| *i).collect();
    let total = indices.len();
    indices.dedup();
    assert_eq!(
        indices.len(),
        total,
        "frames of two layers went out: {frames:?}"
    );
    assert!(
        indices.windows(2).all(|w| w[0] < w[1]),
        "frames in order: {frames:?}"
    );

    // The viewer shows the video small: it moves to the lowest layer at its next keyframe.
    let after = show_at(&mut world, &mut publisher, viewer, &mids[0], 90);
    assert!(after.len() > 15, "video keeps flowing: {after:?}");
    assert!(
        after[after.len() - 10..]
            .iter()
            .all(|(_, layer)| *layer == 0),
        "the small video gets the lowest layer: {after:?}"
    );

    // Large again: back up, but only after the upgrade delay.
    let soon = show_at(&mut world, &mut publisher, viewer, &mids[0], 720);
    assert!(
        soon.iter().all(|(_, layer)| *layer == 0),
        "no upgrade within the first second: {soon:?}"
    );
    for _ in 0..100 {
        publisher.tick(&mut world);
    }
    let last = world.client(viewer).layers_received();
    let (_, layer) = last.last().copied().unwrap();
    assert!(
        layer > 0,
        "upgraded after the delay: {:?}",
        &last[last.len() - 10..]
    );
    // It started low (no estimate yet) and switched up once, on a keyframe of the new layer.
    assert_eq!(frames.first().map(|(_, layer)| *layer), Some(0));
    assert!(world.sfu.stats().layer_switches >= 1);
}

/// (sequence number, timestamp, layer) of every video packet the in-process subscriber got.
fn in_process_video(world: &World, subscriber: PeerId) -> Vec<(u64, u32, u8)> {
    world
        .locals
        .iter()
        .filter_map(|(to, event)| match event {
            classroom_media::LocalEvent::Packet { packet, codec, .. }
                if *to == subscriber && *codec != classroom_media::Codec::Opus =>
            {
                // One packet per frame: the layer by its size (LAYERS), the payload
                // descriptor in front of the frame aside.
                let layer = LAYERS
                    .iter()
                    .rposition(|(_, len)| packet.payload.len() >= *len)?;
                Some((packet.seq_no, packet.timestamp, layer as u8))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn an_in_process_subscriber_gets_the_best_layer_as_one_stream() {
    let mut world = World::new();
    let now = world.now;
    // The recorder of the room, in process.
    world
        .sfu
        .add_local_subscriber(now, PeerId(9), room())
        .unwrap();
    let mut publisher = world.join_simulcast(PeerId(1), &LAYERS);
    for _ in 0..75 {
        publisher.tick(&mut world);
    }
    let packets = in_process_video(&world, PeerId(9));
    assert!(
        packets.len() > 40,
        "the recorder receives video: {packets:?}"
    );
    // One layer at a time, and from early on the best one (the largest frames).
    let last: Vec<u8> = packets[packets.len() - 30..].iter().map(|p| p.2).collect();
    assert!(last.iter().all(|l| *l == 2), "the top layer: {last:?}");
    // One stream: sequence numbers follow each other and timestamps never go back, also across
    // a switch of layer.
    for pair in packets.windows(2) {
        let ((seq_a, ts_a, _), (seq_b, ts_b, _)) = (pair[0], pair[1]);
        assert_eq!(seq_b, seq_a + 1, "contiguous: {pair:?}");
        assert!(
            ts_b.wrapping_sub(ts_a) < u32::MAX / 2,
            "forward in time: {pair:?}"
        );
    }
    // Without an in-process subscriber nothing is asked of the publisher for one: the
    // browser-less room above asked only for what the switch needed.
    let requests: usize = publisher.requests_seen.iter().sum();
    assert!(
        requests <= 3,
        "keyframe requests: {:?}",
        publisher.requests_seen
    );
}

#[test]
fn a_late_viewer_starts_from_its_layers_cached_keyframe() {
    let mut world = World::new();
    let mut publisher = world.join_simulcast(PeerId(1), &LAYERS);
    let (first, _) = world.join(PeerId(2), &[(MediaKind::Video, Direction::RecvOnly)]);
    // 400 ms of the three layers: their keyframes at frame 0 are young.
    for _ in 0..10 {
        publisher.tick(&mut world);
    }
    assert!(!world.client(first).layers_received().is_empty());
    let requests = publisher.requests_seen.clone();
    let before = world.sfu.stats();

    let (late, _) = world.join(PeerId(3), &[(MediaKind::Video, Direction::RecvOnly)]);
    for _ in 0..40 {
        publisher.tick(&mut world);
    }
    let frames = world.client(late).layers_received();
    // It starts on the layer its estimate allows, on that layer's cached keyframe at frame 0,
    // and gets every frame since (a later switch of layer waits for that layer's keyframe).
    let (first_index, layer) = frames.first().copied().unwrap();
    assert_eq!(first_index, 0, "{frames:?}");
    let indices: Vec<u32> = frames.iter().map(|(i, _)| *i).collect();
    assert!(
        indices.windows(2).all(|w| w[1] == w[0] + 1),
        "every frame once: {frames:?}"
    );
    let stats = world.sfu.stats();
    assert_eq!(
        stats.first_frames_from_cache,
        before.first_frames_from_cache + 1
    );
    assert_eq!(
        publisher.requests_seen[usize::from(layer)],
        requests[usize::from(layer)],
        "the layer it started on was not asked for a keyframe"
    );
}
