//! The teacher's broadcast voice in a breakout room whose students spilled to another worker:
//! the student on the other worker hears it (every packet, in order) while it is on and from
//! the next packet no more once it is off, like the room's student on the teacher's worker;
//! the main room's student hears the teacher throughout, each packet once.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use classroom_media::{MediaEvent, PeerId};
use classroom_protocol::{LessonId, RoomName};
use common::span::Span;
use common::{RECV, SEND};
use str0m::media::MediaKind;

const TEACHER: PeerId = PeerId(1);
const FAR_STUDENT: PeerId = PeerId(4);

fn frames(from: u32, to: u32) -> Vec<u32> {
    (from..to).collect()
}

#[test]
fn a_breakout_student_on_another_worker_hears_the_voice_while_it_is_on() {
    let lesson = LessonId(1);
    let breakout = RoomName::for_breakout(lesson, 1, 0);
    let mut span = Span::new(2);
    // Worker 0: the teacher and a student in the main room, a student of the breakout room;
    // worker 1: the breakout room's other student (a per-worker limit), over the room's link.
    let (teacher, mids) = span.join(0, TEACHER, &SEND, true);
    let (main, _) = span.join(0, PeerId(2), &RECV, true);
    let (near, _) = span.join_in(0, PeerId(3), breakout.clone(), &RECV, true);
    span.link_room(0, 1, 0, breakout.clone());
    let (far, _) = span.join_in(1, FAR_STUDENT, breakout, &RECV, true);
    span.advance(Duration::from_millis(300));
    let audio = |span: &mut Span, index| span.client(index).received(MediaKind::Audio);

    span.publish(teacher, &mids, 0, 10);
    assert!(audio(&mut span, near).is_empty(), "not before the voice");
    assert!(audio(&mut span, far).is_empty(), "not before the voice");
    assert_eq!(span.sfu(0).stats().relay_packets_out, 0);

    let now = span.now;
    span.sfu(0)
        .set_voice_broadcast(now, TEACHER, Some(lesson))
        .unwrap();
    span.settle();
    span.answer_offers();
    span.advance(Duration::from_millis(100));
    span.answer_offers();
    span.publish(teacher, &mids, 100, 50);
    assert_eq!(audio(&mut span, near), frames(100, 150));
    assert_eq!(audio(&mut span, far), frames(100, 150), "the other worker");
    // Only the voice's audio crossed, once per packet.
    assert_eq!(span.sfu(0).stats().relay_packets_out, 50);
    assert_eq!(span.sfu(1).stats().relay_packets_in, 50);
    assert!(
        span.client(far).received(MediaKind::Video).is_empty(),
        "the teacher's video stays in the main room"
    );

    let now = span.now;
    span.sfu(0).set_voice_broadcast(now, TEACHER, None).unwrap();
    span.settle();
    span.publish(teacher, &mids, 200, 30);
    assert_eq!(
        audio(&mut span, near),
        frames(100, 150),
        "off from the next packet"
    );
    assert_eq!(
        audio(&mut span, far),
        frames(100, 150),
        "off on the other worker"
    );
    assert_eq!(span.sfu(0).stats().relay_packets_out, 50, "nothing crosses");
    let ended = span.events.iter().any(|(worker, event)| {
        *worker == 1
            && matches!(event, MediaEvent::SubscriptionEnded { subscriber, publisher, .. }
                if *subscriber == FAR_STUDENT && *publisher == TEACHER)
    });
    assert!(ended, "the far student's subscription ended");

    // The main room heard every packet once, the voice on or off.
    let heard = audio(&mut span, main);
    let expected: Vec<u32> = [frames(0, 10), frames(100, 150), frames(200, 230)].concat();
    assert_eq!(heard, expected);

    // On again: heard again over the same link.
    let now = span.now;
    span.sfu(0)
        .set_voice_broadcast(now, TEACHER, Some(lesson))
        .unwrap();
    span.settle();
    span.answer_offers();
    span.advance(Duration::from_millis(100));
    span.publish(teacher, &mids, 300, 20);
    let again: Vec<u32> = audio(&mut span, far)
        .into_iter()
        .filter(|f| *f >= 300)
        .collect();
    assert_eq!(again, frames(300, 320));
}
