//! A moderator's voice in every breakout room of the lesson ("speak to all rooms"): heard in
//! each of the lesson's breakout rooms while on, in no other lesson's, and in none from the
//! first packet after it is turned off.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use classroom_media::{MediaEvent, PeerId};
use classroom_protocol::{LessonId, RoomName};
use common::{Publisher, RECV, World};
use str0m::media::MediaKind;

const TEACHER: PeerId = PeerId(1);

fn breakout(lesson: i64, index: u32) -> RoomName {
    RoomName::for_breakout(LessonId(lesson), 1, index)
}

#[test]
fn the_voice_reaches_every_breakout_room_of_the_lesson_while_on_and_stops_at_the_next_packet() {
    let mut world = World::new();
    let mut teacher = Publisher::join(&mut world, TEACHER);
    let (main_viewer, _) = world.join(PeerId(2), &RECV);
    let (first, _) = world.join_in(PeerId(3), breakout(1, 0), &RECV, true, None);
    let (second, _) = world.join_in(PeerId(4), breakout(1, 1), &RECV, true, None);
    let (stranger, _) = world.join_in(PeerId(5), breakout(2, 0), &RECV, true, None);
    let audio = |world: &mut World, index| world.client(index).received(MediaKind::Audio);

    teacher.publish(&mut world, Duration::from_millis(400));
    assert!(
        audio(&mut world, main_viewer).len() >= 15,
        "the main room hears"
    );
    assert!(
        audio(&mut world, first).is_empty(),
        "not before the voice is on"
    );

    world
        .sfu
        .set_voice_broadcast(world.now, TEACHER, Some(LessonId(1)))
        .unwrap();
    world.answer_offers();
    let on_from = teacher.audio_sent;
    teacher.publish(&mut world, Duration::from_millis(400));
    // A room opened while the voice is on hears it too.
    let (late, _) = world.join_in(PeerId(6), breakout(1, 2), &RECV, true, None);
    teacher.publish(&mut world, Duration::from_millis(400));
    let off_from = teacher.audio_sent;
    for (index, least) in [(first, 30), (second, 30), (late, 15)] {
        let heard = audio(&mut world, index);
        assert!(heard.len() >= least, "room {index} heard {}", heard.len());
        assert!(heard.iter().all(|n| (on_from..off_from).contains(n)));
    }
    assert!(
        audio(&mut world, stranger).is_empty(),
        "another lesson's room"
    );
    assert!(
        world.client(first).received(MediaKind::Video).is_empty(),
        "the voice only, never the camera"
    );

    world
        .sfu
        .set_voice_broadcast(world.now, TEACHER, None)
        .unwrap();
    world.settle();
    let ended = world
        .events
        .iter()
        .filter(|e| {
            matches!(
                e,
                MediaEvent::SubscriptionEnded {
                    publisher: TEACHER,
                    ..
                }
            )
        })
        .count();
    assert_eq!(ended, 3, "one subscription ends in each breakout room");
    let main_before = audio(&mut world, main_viewer).len();
    teacher.publish(&mut world, Duration::from_millis(400));
    for index in [first, second, late] {
        let heard = audio(&mut world, index);
        assert!(
            heard.iter().all(|n| *n < off_from),
            "nothing sent after the voice went off reaches room {index}"
        );
    }
    assert!(
        audio(&mut world, main_viewer).len() >= main_before + 15,
        "the teacher's own room still hears"
    );
    assert_eq!(world.sfu.voice_broadcast(TEACHER), None);
    assert!(
        world
            .sfu
            .set_voice_broadcast(world.now, PeerId(99), Some(LessonId(1)))
            .is_err()
    );
}
