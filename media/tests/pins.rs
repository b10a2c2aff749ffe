//! Pinned peers (WHIP publishers, WHEP players) negotiate once and cannot take an offer: the
//! SFU never offers them m-lines, and a player receives only the publications it is pinned
//! to, moved to others by a new choice without renegotiation.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use classroom_media::{MediaEvent, PeerId};
use common::{Publisher, RECV, SEND, World};
use str0m::media::MediaKind;

/// The publishers each of `subscriber`'s subscriptions came from, in order, by event.
fn subscribed_to(world: &World, subscriber: PeerId) -> Vec<PeerId> {
    world
        .events
        .iter()
        .filter_map(|e| match e {
            MediaEvent::SubscriptionStarted {
                subscriber: s,
                publisher,
                ..
            } if *s == subscriber => Some(*publisher),
            _ => None,
        })
        .collect()
}

fn offered_to(world: &World, peer: PeerId) -> bool {
    world
        .events
        .iter()
        .any(|e| matches!(e, MediaEvent::OfferCreated { peer: p, .. } if *p == peer))
}

#[test]
fn a_player_receives_its_pins_only_and_follows_a_new_choice_without_an_offer() {
    let mut world = World::new();
    let mut teacher = Publisher::join(&mut world, PeerId(1));
    let mut student = Publisher::join(&mut world, PeerId(2));
    let our = |mid: str0m::media::Mid| classroom_media::Mid::from(mid.to_string());
    let teachers = vec![
        (PeerId(1), our(teacher.video)),
        (PeerId(1), our(teacher.audio)),
    ];
    let (player, _) = world.join_pinned(PeerId(3), &RECV, false, Some(teachers));
    // A WHIP publisher: pinned to nothing.
    let (_encoder, _) = world.join_pinned(PeerId(4), &SEND, true, Some(Vec::new()));
    for _ in 0..10 {
        teacher.publish(&mut world, Duration::from_millis(100));
        student.publish(&mut world, Duration::from_millis(100));
    }
    assert_eq!(
        subscribed_to(&world, PeerId(3)),
        [PeerId(1), PeerId(1)],
        "the teacher's two tracks, nothing of the student's"
    );
    let audio = world.client(player).received(MediaKind::Audio).len();
    let video = world.client(player).received(MediaKind::Video).len();
    assert!(audio > 20 && video > 10, "audio {audio}, video {video}");
    assert!(
        !offered_to(&world, PeerId(3)),
        "a player is never offered m-lines"
    );
    assert!(!offered_to(&world, PeerId(4)), "nor is a WHIP publisher");
    assert!(subscribed_to(&world, PeerId(4)).is_empty());

    // The main view moves to the student's video; the teacher's voice stays.
    let students = vec![
        (PeerId(2), our(student.video)),
        (PeerId(1), our(teacher.audio)),
    ];
    world.sfu.set_pins(world.now, PeerId(3), students).unwrap();
    world.settle();
    let ended: Vec<PeerId> = (world.events.iter())
        .filter_map(|e| match e {
            MediaEvent::SubscriptionEnded {
                subscriber: PeerId(3),
                publisher,
                ..
            } => Some(*publisher),
            _ => None,
        })
        .collect();
    assert_eq!(ended, [PeerId(1)], "only the teacher's video is let go");
    assert_eq!(
        subscribed_to(&world, PeerId(3)),
        [PeerId(1), PeerId(1), PeerId(2)]
    );
    let before = world.client(player).received(MediaKind::Video).len();
    for _ in 0..10 {
        teacher.publish(&mut world, Duration::from_millis(100));
        student.publish(&mut world, Duration::from_millis(100));
    }
    let after = world.client(player).received(MediaKind::Video).len();
    assert!(
        after > before + 10,
        "the student's video flows: {before} → {after}"
    );
    assert!(!offered_to(&world, PeerId(3)));
    assert!(
        world
            .sfu
            .set_pins(world.now, PeerId(9), Vec::new())
            .is_err()
    );
}
