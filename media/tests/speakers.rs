//! Active speakers from the audio level header extension, through the core on a virtual clock:
//! a publisher who talks becomes the speaker, and silence ends the turn.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use classroom_media::{MediaEvent, PeerId};
use common::{World, opus_frame, room};
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};

/// 20 ms of Opus from client `index` at `level` (-dBov).
fn say(world: &mut World, index: usize, mid: Mid, level: i8, frame: u32) {
    let (now, start) = (world.now, world.start);
    let client = world.client(index);
    let writer = client.rtc.writer(mid).unwrap();
    let pt = writer
        .payload_params()
        .find(|p| p.spec().codec == Codec::Opus)
        .unwrap()
        .pt();
    let time = MediaTime::new(
        (now - start).as_micros() as u64 * 48 / 1000,
        Frequency::FORTY_EIGHT_KHZ,
    );
    writer
        .audio_level(level, level > -50)
        .write(pt, now, time, opus_frame(frame))
        .unwrap();
    world.advance(Duration::from_millis(20));
}

fn reports(world: &World) -> Vec<Vec<PeerId>> {
    world
        .events
        .iter()
        .filter_map(|e| match e {
            MediaEvent::ActiveSpeakers { room: r, speakers } if *r == room() => {
                Some(speakers.clone())
            }
            _ => None,
        })
        .collect()
}

#[test]
fn talking_makes_a_speaker_and_silence_ends_the_turn() {
    let mut world = World::new();
    let (teacher, mids) = world.join(PeerId(1), &[(MediaKind::Audio, Direction::SendOnly)]);
    let (_student, _) = world.join(PeerId(2), &[(MediaKind::Audio, Direction::RecvOnly)]);
    for frame in 0..10 {
        say(&mut world, teacher, mids[0], -90, frame);
    }
    assert!(
        reports(&world).iter().all(|r| r.is_empty()),
        "quiet is no speaker"
    );
    for frame in 10..60 {
        say(&mut world, teacher, mids[0], -20, frame);
    }
    assert_eq!(reports(&world).last(), Some(&vec![PeerId(1)]));
    for frame in 60..150 {
        say(&mut world, teacher, mids[0], -110, frame);
    }
    assert_eq!(
        reports(&world).last(),
        Some(&Vec::new()),
        "{:?}",
        reports(&world)
    );
}
