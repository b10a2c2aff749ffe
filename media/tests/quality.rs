//! Connection quality per peer through the core on a virtual clock: a healthy connection is
//! reported as such, and one that goes silent is reported lost at once.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use classroom_media::{ConnectionQuality, MediaEvent, PeerId};
use common::{World, opus_frame};
use str0m::media::{Direction, MediaKind};

fn qualities(world: &World, peer: PeerId) -> Vec<ConnectionQuality> {
    world
        .events
        .iter()
        .filter_map(|e| match e {
            MediaEvent::QualityChanged { peer: p, quality } if *p == peer => Some(*quality),
            _ => None,
        })
        .collect()
}

#[test]
fn healthy_connections_are_reported_and_a_silent_one_is_lost() {
    let mut world = World::new();
    let (teacher, mids) = world.join(PeerId(1), &[(MediaKind::Audio, Direction::SendOnly)]);
    let (_student, _) = world.join(PeerId(2), &[(MediaKind::Audio, Direction::RecvOnly)]);
    for frame in 0..300 {
        let (now, start) = (world.now, world.start);
        world
            .client(teacher)
            .write(now, start, mids[0], MediaKind::Audio, &opus_frame(frame));
        world.advance(Duration::from_millis(20));
    }
    assert_eq!(
        qualities(&world, PeerId(1)).last(),
        Some(&ConnectionQuality::Excellent),
        "a loss-free instant network is excellent"
    );
    assert!(!qualities(&world, PeerId(2)).is_empty());

    // The teacher's network goes away: nothing arrives from it any more.
    world.clients.remove(teacher);
    world.advance(Duration::from_secs(6));
    assert_eq!(
        qualities(&world, PeerId(1)).last(),
        Some(&ConnectionQuality::Lost)
    );
}
