//! A lecture that spans two workers' cores joined by a relay link, on one virtual network and
//! clock (sans-IO, as `common::World` for one core): every student on both workers receives
//! the teacher's media in order; a student on stage on the second worker reaches the first
//! worker's students and the teacher, and nobody from the next packet once the stage is
//! revoked; keyframe requests of the second worker's students reach the publisher at most once
//! per interval; a link that closes takes what came over it along.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use classroom_media::{MediaEvent, Mid as OurMid, PeerId};
use common::span::Span;
use common::{Client, LAYERS, RECV, SEND, SimulcastPublisher, opus_frame, room, vp8_frame};
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};

/// Whether `frames` is `expected` in order, nothing missing, nothing twice.
fn in_order(frames: &[u32], expected: std::ops::Range<u32>) -> bool {
    frames == expected.collect::<Vec<_>>().as_slice()
}

const TEACHER: PeerId = PeerId(1);

/// The teacher and a student on worker 0 (the home), two students on worker 1.
fn lecture() -> (Span, usize, Vec<Mid>, [usize; 3], [Mid; 2]) {
    let mut span = Span::new(2);
    let (teacher, mids) = span.join(0, TEACHER, &SEND, true);
    let (ann, _) = span.join(0, PeerId(2), &RECV, true);
    // The first peer on worker 1 makes the link (as the driver does).
    span.link(0, 1, 0);
    let (bob, bob_mids) = span.join(1, PeerId(3), &RECV, true);
    let (cy, cy_mids) = span.join(1, PeerId(4), &RECV, true);
    span.advance(Duration::from_millis(300));
    (
        span,
        teacher,
        mids,
        [ann, bob, cy],
        [bob_mids[1], cy_mids[1]],
    )
}

#[test]
fn every_student_on_both_workers_receives_every_packet_in_order() {
    let (mut span, teacher, mids, students, _) = lecture();
    span.publish(teacher, &mids, 0, 100);
    for student in students {
        let client = span.client(student);
        let audio = client.received(MediaKind::Audio);
        let video = client.received(MediaKind::Video);
        assert!(
            in_order(&audio, 0..100),
            "student {student}: audio {audio:?}"
        );
        assert!(
            in_order(&video, 0..50),
            "student {student}: video {video:?}"
        );
    }
    // Worker 1 got each packet once over the link, whatever its number of students, and
    // forwarded it to both; nothing crossed back (nothing there is published).
    let home = span.sfu(0).stats();
    let edge = span.sfu(1).stats();
    // 100 audio packets, 50 video frames (the keyframe in 3 packets).
    assert_eq!(home.rtp_packets_in, 152);
    assert_eq!(edge.relay_packets_in, 152, "{edge:?}");
    assert_eq!(home.relay_packets_out, 152);
    assert_eq!(edge.rtp_packets_forwarded, 2 * 152);
    assert_eq!(home.relay_packets_in, 0);
    assert_eq!(edge.relay_packets_out, 0);
    let relayed = span.sfu(0).relay_stats();
    assert!(
        relayed.batches_sent < relayed.items_sent,
        "batched: {relayed:?}"
    );
    assert_eq!(relayed.items_dropped, 0);
    // Signaling hears of the teacher's tracks from the teacher's worker only.
    let published = |worker: usize| {
        span.events
            .iter()
            .filter(|(w, e)| *w == worker && matches!(e, MediaEvent::TrackPublished { .. }))
            .count()
    };
    assert_eq!((published(0), published(1)), (2, 0));
}

#[test]
fn a_student_on_stage_on_the_second_worker_reaches_everyone_until_revoked() {
    let (mut span, teacher, mids, [ann, bob, cy], _) = lecture();
    span.publish(teacher, &mids, 0, 10);
    let dee_peer = PeerId(5);
    let (dee, dee_mids) = span.join(1, dee_peer, &SEND, false);
    span.publish(dee, &dee_mids, 0, 10);
    assert_eq!(
        span.sfu(1).stats().relay_packets_out,
        0,
        "nothing of a student off stage crosses"
    );

    // On stage: the teacher (no slots yet) and every student get new m-lines for her.
    let now = span.now;
    span.sfu(1)
        .set_publish_allowed(now, dee_peer, true)
        .unwrap();
    span.settle();
    span.answer_offers();
    span.advance(Duration::from_millis(300));
    span.answer_offers();
    let before: Vec<usize> = [teacher, ann, bob, cy]
        .iter()
        .map(|i| span.client(*i).received(MediaKind::Audio).len())
        .collect();
    span.publish(dee, &dee_mids, 100, 50);
    for (n, index) in [teacher, ann, bob, cy].into_iter().enumerate() {
        let audio = span.client(index).received(MediaKind::Audio);
        let hers: Vec<u32> = audio.iter().copied().filter(|f| *f >= 100).collect();
        assert!(
            in_order(&hers, 100..150),
            "client {index} hears the student on stage: {hers:?} ({} before)",
            before[n]
        );
        let video = span.client(index).received(MediaKind::Video);
        assert!(
            video.iter().filter(|f| **f >= 50).count() >= 20,
            "client {index} sees her: {video:?}"
        );
    }
    assert!(span.sfu(0).stats().relay_packets_in >= 75);

    // Revoked on her worker: from her next packet nobody anywhere receives anything of hers.
    let now = span.now;
    span.sfu(1)
        .set_publish_allowed(now, dee_peer, false)
        .unwrap();
    let received = |span: &mut Span| -> Vec<usize> {
        [teacher, ann, bob, cy]
            .iter()
            .map(|i| {
                span.client(*i)
                    .received(MediaKind::Audio)
                    .iter()
                    .filter(|f| **f >= 100)
                    .count()
            })
            .collect()
    };
    let at_revocation = received(&mut span);
    let relayed = span.sfu(0).stats().relay_packets_in;
    span.publish(dee, &dee_mids, 200, 30);
    assert_eq!(
        received(&mut span),
        at_revocation,
        "nothing after revocation"
    );
    assert_eq!(span.sfu(0).stats().relay_packets_in, relayed);
    assert!(span.sfu(1).stats().rtp_dropped_unpublished >= 30);
    // The teacher's own media still flows to the second worker.
    let bob_before = span.client(bob).received(MediaKind::Audio).len();
    span.publish(teacher, &mids, 10, 10);
    assert_eq!(
        span.client(bob).received(MediaKind::Audio).len(),
        bob_before + 10
    );
}

#[test]
fn keyframe_requests_from_the_second_worker_reach_the_publisher_once_per_interval() {
    let (mut span, teacher, mids, [_, bob, cy], [bob_mid, cy_mid]) = lecture();
    span.publish(teacher, &mids, 0, 50);
    span.advance(Duration::from_secs(1));
    let asked = span.client(teacher).keyframe_requests();
    let sent_over = span.sfu(1).stats().relay_keyframe_requests;

    // Both students of worker 1 ask every 20 ms for 1.1 s: the teacher is asked at once, then
    // at the end of each 500 ms interval (0.5, 1 and 1.5 s): four times, not 110.
    for n in 0..55u32 {
        span.client(bob).request_keyframe(bob_mid);
        span.client(cy).request_keyframe(cy_mid);
        let (now, start) = (span.now, span.start);
        span.client(teacher)
            .write(now, start, mids[0], MediaKind::Audio, &opus_frame(50 + n));
        span.advance(Duration::from_millis(20));
    }
    span.advance(Duration::from_millis(600));
    let requests = span.client(teacher).keyframe_requests() - asked;
    assert_eq!(requests, 4, "once per interval");
    let edge = span.sfu(1).stats();
    assert!(edge.plis_received >= 100, "{edge:?}");
    // Worker 1 sends one request per batch (both students' PLIs arrive in one); the home
    // throttles them.
    assert_eq!(edge.relay_keyframe_requests - sent_over, 55, "{edge:?}");
    assert!(span.sfu(0).stats().keyframe_requests_merged > 0);
}

/// A simulcast video publisher on `worker`.
fn join_simulcast(span: &mut Span, worker: usize, peer: PeerId) -> SimulcastPublisher {
    let addr = SocketAddr::from(([10, 0, 0, 99], 5000));
    let rids = LAYERS.map(|(rid, _)| rid);
    let (mut client, video, offer, pending) = Client::simulcast(span.now, peer, addr, &rids);
    let now = span.now;
    let answer = span
        .sfu(worker)
        .add_peer(now, peer, room(), &offer)
        .unwrap();
    client.accept_answer(pending, &answer);
    span.clients.push((client, worker));
    let index = span.clients.len() - 1;
    span.advance(Duration::from_millis(500));
    assert!(span.client(index).is_connected());
    SimulcastPublisher::new(index, video, &LAYERS)
}

#[test]
fn the_second_worker_takes_only_the_layers_its_students_watch() {
    let mut span = Span::new(2);
    let mut teacher = join_simulcast(&mut span, 0, TEACHER);
    span.link(0, 1, 0);
    let (bob, bob_mids) = span.join(
        1,
        PeerId(3),
        &[(MediaKind::Video, Direction::RecvOnly)],
        true,
    );
    for _ in 0..75 {
        teacher.tick(&mut span);
    }
    let frames = span.client(bob).layers_received();
    assert!(frames.len() > 50, "video over the link: {frames:?}");
    assert!(
        frames.windows(2).all(|w| w[0].0 < w[1].0),
        "one layer at a time, in order: {frames:?}"
    );

    // Settled: one layer per frame crosses the link, not three.
    let relayed = |span: &mut Span| span.sfu(1).stats().relay_packets_in;
    let before = relayed(&mut span);
    for _ in 0..25 {
        teacher.tick(&mut span);
    }
    let crossed = relayed(&mut span) - before;
    assert!(
        (25..=30).contains(&crossed),
        "{crossed} packets crossed for 25 frames of 3 layers"
    );
    assert_eq!(
        span.sfu(0).stats().rtp_packets_in,
        3 * u64::from(teacher.sent)
    );

    // Bob shows it small: his worker moves him to the lowest layer, which it now asks for.
    let now = span.now;
    let mid = OurMid::from(bob_mids[0].to_string().as_str());
    span.sfu(1)
        .set_video_size(now, PeerId(3), &mid, 90)
        .unwrap();
    let before = span.client(bob).layers_received().len();
    for _ in 0..25 {
        teacher.tick(&mut span);
    }
    let after = span.client(bob).layers_received()[before..].to_vec();
    assert!(after.len() > 15, "video keeps flowing: {after:?}");
    assert!(
        after[after.len() - 10..]
            .iter()
            .all(|(_, layer)| *layer == 0),
        "the lowest layer: {after:?}"
    );
    assert!(span.sfu(1).stats().layer_switches >= 1);
}

/// 20 ms of Opus from client `index` at `level` (-dBov).
fn say(span: &mut Span, index: usize, mid: Mid, level: i8, frame: u32) {
    let (now, start) = (span.now, span.start);
    let writer = span.client(index).rtc.writer(mid).unwrap();
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
    span.advance(Duration::from_millis(20));
}

#[test]
fn the_home_alone_reports_the_speakers_of_every_worker() {
    let mut span = Span::new(2);
    let sends = [(MediaKind::Audio, Direction::SendOnly)];
    let (teacher, teacher_mids) = span.join(0, TEACHER, &sends, true);
    span.link(0, 1, 0);
    let (dee, dee_mids) = span.join(1, PeerId(5), &sends, true);
    let (_bob, _) = span.join(
        1,
        PeerId(3),
        &[(MediaKind::Audio, Direction::RecvOnly)],
        true,
    );
    span.answer_offers();
    // The student on worker 1 talks (nobody on the home listens to her, but its speaker
    // detector hears her all the same); then the teacher at home.
    for frame in 0..50 {
        say(&mut span, dee, dee_mids[0], -20, frame);
    }
    let reports = |span: &Span, worker: usize| -> Vec<Vec<PeerId>> {
        span.events
            .iter()
            .filter_map(|(w, e)| match e {
                MediaEvent::ActiveSpeakers { speakers, .. } if *w == worker => {
                    Some(speakers.clone())
                }
                _ => None,
            })
            .collect()
    };
    assert_eq!(reports(&span, 0).last(), Some(&vec![PeerId(5)]));
    for frame in 0..150 {
        say(&mut span, dee, dee_mids[0], -110, frame);
        say(&mut span, teacher, teacher_mids[0], -20, frame);
    }
    assert_eq!(reports(&span, 0).last(), Some(&vec![TEACHER]));
    assert_eq!(reports(&span, 1), Vec::<Vec<PeerId>>::new(), "one report");
}

#[test]
fn a_link_that_ends_takes_what_came_over_it_on_both_sides() {
    let (mut span, teacher, mids, [ann, bob, cy], _) = lecture();
    span.publish(teacher, &mids, 0, 10);
    let ended = |span: &Span, worker: usize, publisher: PeerId| {
        span.events
            .iter()
            .filter(|(w, e)| {
                *w == worker
                    && matches!(e, MediaEvent::SubscriptionEnded { publisher: p, .. } if *p == publisher)
            })
            .count()
    };
    assert_eq!(ended(&span, 1, TEACHER), 0);

    // Worker 1's room is gone there (as when its last peer left): both halves go.
    let now = span.now;
    span.sfu(1).end_relays(now, &room());
    span.settle();
    assert_eq!(
        ended(&span, 1, TEACHER),
        4,
        "bob's and cy's audio and video"
    );
    for worker in 0..2 {
        assert_eq!(span.sfu(worker).stats().relay_links_closed, 1);
    }
    let before = span.client(bob).received(MediaKind::Audio).len();
    span.publish(teacher, &mids, 10, 10);
    assert_eq!(span.client(bob).received(MediaKind::Audio).len(), before);
    assert_eq!(span.client(cy).received(MediaKind::Audio).len(), before);
    assert_eq!(
        span.client(ann).received(MediaKind::Audio).len(),
        20,
        "home goes on"
    );
    assert_eq!(span.sfu(0).relay_stats().items_dropped, 0);
}

/// `frames` video frames 40 ms apart from client `index` on `video`: a keyframe first and
/// whenever it was asked for one since, never otherwise (as a browser's encoder with a long
/// keyframe interval).
fn video(span: &mut Span, index: usize, video: Mid, sent: &mut u32, seen: &mut usize, frames: u32) {
    for _ in 0..frames {
        let (now, start) = (span.now, span.start);
        let client = span.client(index);
        let requests = client.keyframe_requests();
        let keyframe = *sent == 0 || requests > *seen;
        *seen = requests;
        client.write(
            now,
            start,
            video,
            MediaKind::Video,
            &vp8_frame(*sent, keyframe),
        );
        *sent += 1;
        span.advance(Duration::from_millis(40));
    }
}

#[test]
fn joiners_on_the_second_worker_start_from_its_cache_of_the_relayed_keyframe() {
    let mut span = Span::new(2);
    let (teacher, mids) = span.join(0, TEACHER, &SEND, true);
    span.link(0, 1, 0);
    // The first student on worker 1: nothing of the teacher crossed yet, so he asks.
    let (bob, _) = span.join(1, PeerId(3), &RECV, true);
    let (mut sent, mut seen) = (0, 0);
    video(&mut span, teacher, mids[1], &mut sent, &mut seen, 20);
    assert!(!span.client(bob).received(MediaKind::Video).is_empty());
    let asked = span.client(teacher).keyframe_requests();
    let before = span.sfu(1).stats();

    // Ten more join worker 1, one every ~120 ms of video.
    let storm_start = span.now;
    let mut joiners = Vec::new();
    for peer in 10..20 {
        let (index, _) = span.join(1, PeerId(peer), &RECV, true);
        joiners.push(index);
        video(&mut span, teacher, mids[1], &mut sent, &mut seen, 3);
    }
    let storm = span.now - storm_start;
    video(&mut span, teacher, mids[1], &mut sent, &mut seen, 10);
    for &index in &joiners {
        let frames = span.client(index).received_frames(MediaKind::Video);
        assert!(!frames.is_empty(), "joiner {index} got no video");
        assert_eq!(frames[0][0] & 1, 0, "joiner {index} starts on a keyframe");
    }
    let edge = span.sfu(1).stats();
    assert_eq!(
        edge.first_frames_from_cache - before.first_frames_from_cache,
        joiners.len() as u64,
        "every joiner started from worker 1's cache: {edge:?}"
    );
    assert_eq!(
        edge.first_frames_from_publisher,
        before.first_frames_from_publisher
    );
    // The cache was kept young across the link, at most once per 500 ms throttle interval of
    // the teacher's worker.
    let requests = span.client(teacher).keyframe_requests() - asked;
    let intervals = (storm.as_millis() / 500) as usize + 1;
    assert!(
        requests <= intervals,
        "{requests} keyframe requests to the teacher in {storm:?}"
    );
}
