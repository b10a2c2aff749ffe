//! The SFU core forwards real str0m traffic between clients on a virtual network and clock.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use classroom_media::{MediaEvent, PeerId, TrackKind};
use common::{Publisher, RECV, SEND, World, vp8_frame};
use str0m::media::{Direction, MediaKind};

fn count<F: Fn(&MediaEvent) -> bool>(world: &World, f: F) -> usize {
    world.events.iter().filter(|e| f(e)).count()
}

#[test]
fn media_reaches_every_subscriber_until_publishing_is_revoked() {
    let mut world = World::new();
    let mut publisher = Publisher::join(&mut world, PeerId(1));
    let (sub_a, _) = world.join(PeerId(2), &RECV);
    let (sub_b, _) = world.join(PeerId(3), &RECV);
    // Both subscribers offered enough slots: no renegotiation.
    assert!(world.offers.is_empty());

    assert_eq!(
        count(&world, |e| matches!(
            e,
            MediaEvent::TrackPublished {
                peer: PeerId(1),
                ..
            }
        )),
        2
    );
    for subscriber in [PeerId(2), PeerId(3)] {
        for kind in [TrackKind::Audio, TrackKind::Video] {
            let started = count(
                &world,
                |e| matches!(e, MediaEvent::SubscriptionStarted { subscriber: s, publisher: PeerId(1), kind: k, .. } if *s == subscriber && *k == kind),
            );
            assert_eq!(started, 1, "{subscriber} {kind:?}");
        }
    }

    publisher.publish(&mut world, Duration::from_secs(2));
    world.advance(Duration::from_millis(200));

    let audio_sent: Vec<u32> = (0..publisher.audio_sent).collect();
    assert_eq!(audio_sent.len(), 100);
    for sub in [sub_a, sub_b] {
        let client = world.client(sub);
        assert_eq!(
            client.received(MediaKind::Audio),
            audio_sent,
            "audio of {}",
            client.peer
        );
        let frames = client.received_frames(MediaKind::Video);
        assert_eq!(
            frames.len(),
            publisher.video_sent.len(),
            "video of {}",
            client.peer
        );
        // Byte for byte what the publisher encoded, over multi-packet keyframes too.
        assert_eq!(
            frames,
            publisher.video_sent.values().cloned().collect::<Vec<_>>()
        );
    }
    // The publisher does not get its own media back.
    assert!(
        world
            .client(publisher.index)
            .received(MediaKind::Audio)
            .is_empty()
    );

    let before = world.sfu.stats();
    assert!(before.rtp_packets_forwarded >= 2 * before.rtp_packets_in - 10);
    let received = |world: &mut World| {
        [sub_a, sub_b].map(|s| {
            let c = world.client(s);
            (
                c.received(MediaKind::Audio).len(),
                c.received(MediaKind::Video).len(),
            )
        })
    };
    let received_before = received(&mut world);

    world
        .sfu
        .set_publish_allowed(world.now, PeerId(1), false)
        .unwrap();
    world.settle();
    assert_eq!(
        count(&world, |e| matches!(
            e,
            MediaEvent::TrackUnpublished {
                peer: PeerId(1),
                ..
            }
        )),
        2
    );
    assert_eq!(
        count(&world, |e| matches!(
            e,
            MediaEvent::SubscriptionEnded { .. }
        )),
        4
    );

    publisher.publish(&mut world, Duration::from_secs(1));
    world.advance(Duration::from_millis(200));

    let after = world.sfu.stats();
    assert_eq!(
        received(&mut world),
        received_before,
        "nothing arrives after revocation"
    );
    assert_eq!(after.rtp_packets_forwarded, before.rtp_packets_forwarded);
    // The publisher kept sending and the SFU kept receiving: the gate stopped it, not a failure.
    let arrived = after.rtp_packets_in - before.rtp_packets_in;
    assert!(
        arrived >= 50 + 25,
        "{arrived} packets arrived after revocation"
    );
    assert_eq!(
        after.rtp_dropped_unpublished - before.rtp_dropped_unpublished,
        arrived
    );

    // Granting again resumes forwarding.
    world
        .sfu
        .set_publish_allowed(world.now, PeerId(1), true)
        .unwrap();
    world.settle();
    publisher.publish(&mut world, Duration::from_millis(500));
    world.advance(Duration::from_millis(200));
    let [(audio_a, _), (audio_b, _)] = received(&mut world);
    assert!(audio_a >= received_before[0].0 + 20, "audio resumes for A");
    assert!(audio_b >= received_before[1].0 + 20, "audio resumes for B");
}

#[test]
fn subscriber_keyframe_requests_reach_the_publisher_throttled_but_never_lost() {
    // Without the first-frame cache, so that the subscribers' start asks too.
    let mut world = World::with_config(|c| c.first_frame_max_age = Duration::ZERO);
    let mut publisher = Publisher::join(&mut world, PeerId(1));
    let (sub_a, mids_a) = world.join(PeerId(2), &RECV);
    let (sub_b, mids_b) = world.join(PeerId(3), &RECV);

    publisher.publish(&mut world, Duration::from_secs(1));
    // A new subscriber to video makes the SFU ask the publisher for a keyframe.
    assert!(world.client(publisher.index).keyframe_requests() >= 1);
    assert!(
        count(&world, |e| matches!(
            e,
            MediaEvent::KeyframeRequested {
                publisher: PeerId(1),
                ..
            }
        )) >= 1
    );

    world.advance(Duration::from_secs(1));
    let requests = world.client(publisher.index).keyframe_requests();
    let before = world.sfu.stats();

    world.client(sub_a).request_keyframe(mids_a[1]);
    publisher.publish(&mut world, Duration::from_millis(100));
    assert_eq!(
        world.client(publisher.index).keyframe_requests(),
        requests + 1
    );

    // A second request for the same track within 500 ms waits for the interval's end …
    world.client(sub_b).request_keyframe(mids_b[1]);
    publisher.publish(&mut world, Duration::from_millis(100));
    assert_eq!(
        world.client(publisher.index).keyframe_requests(),
        requests + 1
    );
    // … and a third one in the same interval joins it.
    world.client(sub_a).request_keyframe(mids_a[1]);
    publisher.publish(&mut world, Duration::from_millis(100));
    let stats = world.sfu.stats();
    assert_eq!(
        stats.keyframe_requests_deferred,
        before.keyframe_requests_deferred + 1
    );
    assert_eq!(
        stats.keyframe_requests_merged,
        before.keyframe_requests_merged + 1
    );
    // The interval ends: the deferred request goes out by itself, once.
    publisher.publish(&mut world, Duration::from_millis(300));
    assert_eq!(
        world.client(publisher.index).keyframe_requests(),
        requests + 2
    );
    publisher.publish(&mut world, Duration::from_millis(600));
    assert_eq!(
        world.client(publisher.index).keyframe_requests(),
        requests + 2
    );

    // A request after a quiet interval goes out at once.
    world.client(sub_b).request_keyframe(mids_b[1]);
    publisher.publish(&mut world, Duration::from_millis(100));
    assert_eq!(
        world.client(publisher.index).keyframe_requests(),
        requests + 3
    );

    // The publisher answered with keyframes, and both subscribers got them.
    for sub in [sub_a, sub_b] {
        let frames = world.client(sub).received_frames(MediaKind::Video);
        let keyframes = frames.iter().filter(|f| f[0] & 1 == 0).count();
        assert!(keyframes >= 4, "{keyframes} keyframes");
    }
}

#[test]
fn a_burst_of_joiners_all_get_a_keyframe_within_one_interval() {
    // Without the first-frame cache (tests/first_frame.rs has it): every joiner asks.
    let mut world = World::with_config(|c| c.first_frame_max_age = Duration::ZERO);
    let mut publisher = Publisher::join(&mut world, PeerId(1));
    let (first, _) = world.join(PeerId(2), &RECV);
    publisher.publish(&mut world, Duration::from_secs(2));
    assert!(!world.client(first).received(MediaKind::Video).is_empty());

    // Five students join within 200 ms: their keyframe requests fall inside one interval.
    let joined_at = world.now;
    let mut joiners = Vec::new();
    for peer in 10..15 {
        let (index, _) = world.join(PeerId(peer), &RECV);
        joiners.push(index);
        publisher.publish(&mut world, Duration::from_millis(40));
    }
    // Within two intervals of the last join (the first request, then the deferred one), every
    // joiner decodes video.
    publisher.publish(&mut world, Duration::from_millis(1000));
    assert!(world.now - joined_at < Duration::from_secs(3));
    for index in joiners {
        let frames = world.client(index).received_frames(MediaKind::Video);
        assert!(!frames.is_empty(), "joiner {index} got no video");
        assert_eq!(
            frames[0][0] & 1,
            0,
            "joiner {index} starts on a keyframe, not a delta frame"
        );
    }
    let stats = world.sfu.stats();
    assert!(stats.keyframe_requests_deferred + stats.keyframe_requests_merged >= 1);
}

#[test]
fn a_new_video_subscriber_gets_nothing_before_a_keyframe() {
    // Without the first-frame cache, which would start the late joiner at frame 0.
    let mut world = World::with_config(|c| c.first_frame_max_age = Duration::ZERO);
    let (publisher, mids) = world.join(PeerId(1), &SEND);
    let (subscriber, _) = world.join(PeerId(2), &RECV);
    let video = mids[1];
    // The publisher ignores keyframe requests: one keyframe first, then only delta frames
    // until the periodic keyframe at frame 30.
    let mut sent = 0u32;
    let mut write = |world: &mut World, frames: u32| {
        for _ in 0..frames {
            let (now, start) = (world.now, world.start);
            let keyframe = sent.is_multiple_of(30);
            world.client(publisher).write(
                now,
                start,
                video,
                MediaKind::Video,
                &vp8_frame(sent, keyframe),
            );
            sent += 1;
            world.advance(Duration::from_millis(40));
        }
    };
    write(&mut world, 10);
    assert!(
        !world
            .client(subscriber)
            .received(MediaKind::Video)
            .is_empty()
    );

    // A late joiner: the frames 10..30 are delta frames, useless to a decoder that starts.
    let (late, _) = world.join(PeerId(3), &RECV);
    let dropped = world.sfu.stats().rtp_dropped_awaiting_keyframe;
    write(&mut world, 10);
    assert!(
        world.client(late).received(MediaKind::Video).is_empty(),
        "no delta frame reaches a subscriber before its first keyframe"
    );
    assert!(world.sfu.stats().rtp_dropped_awaiting_keyframe > dropped);
    // The SFU kept asking while it waited (the publisher ignores it here).
    assert!(world.client(publisher).keyframe_requests() >= 2);
    write(&mut world, 15);
    let frames = world.client(late).received(MediaKind::Video);
    assert_eq!(frames.first(), Some(&30), "starts at the keyframe");
    assert!(
        frames.windows(2).all(|w| w[1] == w[0] + 1),
        "and then every frame: {frames:?}"
    );
}

#[test]
fn subscriber_without_a_free_slot_gets_an_offer_from_the_sfu() {
    let mut world = World::new();
    let mut publisher = Publisher::join(&mut world, PeerId(1));
    // Offers to receive audio only.
    let (sub, _) = world.join(PeerId(2), &[(MediaKind::Audio, Direction::RecvOnly)]);

    assert_eq!(world.offers.len(), 1);
    assert_eq!(world.offers[0].0, PeerId(2));
    assert!(world.offers[0].1.contains("m=video"));
    world.answer_offers();
    let video_started = count(&world, |e| {
        matches!(
            e,
            MediaEvent::SubscriptionStarted {
                subscriber: PeerId(2),
                kind: TrackKind::Video,
                ..
            }
        )
    });
    assert_eq!(video_started, 1);

    publisher.publish(&mut world, Duration::from_secs(1));
    world.advance(Duration::from_millis(200));
    let client = world.client(sub);
    assert_eq!(client.received(MediaKind::Audio).len(), 50);
    assert_eq!(client.received(MediaKind::Video).len(), 25);
    assert!(world.offers.is_empty(), "no further offers");
}

#[test]
fn a_departing_publisher_ends_its_subscriptions() {
    let mut world = World::new();
    let mut publisher = Publisher::join(&mut world, PeerId(1));
    let (sub, _) = world.join(PeerId(2), &RECV);
    publisher.publish(&mut world, Duration::from_millis(200));

    world.sfu.remove_peer(world.now, PeerId(1)).unwrap();
    world.settle();
    assert!(
        world
            .events
            .contains(&MediaEvent::PeerDisconnected { peer: PeerId(1) })
    );
    assert_eq!(
        count(&world, |e| matches!(
            e,
            MediaEvent::SubscriptionEnded {
                subscriber: PeerId(2),
                ..
            }
        )),
        2
    );
    assert_eq!(world.sfu.stats().peers, 1);
    assert_eq!(
        world.sfu.remove_peer(world.now, PeerId(1)),
        Err(classroom_media::UnknownPeer(PeerId(1)))
    );

    // A new publisher reuses the subscriber's freed slots, without renegotiation.
    let mut second = Publisher::join(&mut world, PeerId(3));
    assert!(
        world.offers.is_empty(),
        "{:?} {:#?}",
        world.offers,
        world.events
    );
    second.publish(&mut world, Duration::from_millis(400));
    world.advance(Duration::from_millis(100));
    let audio = world.client(sub).received(MediaKind::Audio);
    // Indices restart at 0 for the second publisher, after the first one's 10 frames.
    assert_eq!(audio.len(), 10 + 20);
    assert_eq!(&audio[10..], (0..20).collect::<Vec<_>>());
}

/// A STUN binding request with the attributes str0m requires and a made-up integrity value.
fn stun_request(username: &str) -> Vec<u8> {
    let mut attrs = Vec::new();
    attrs.extend_from_slice(&[0x00, 0x06]);
    attrs.extend_from_slice(&(username.len() as u16).to_be_bytes());
    attrs.extend_from_slice(username.as_bytes());
    attrs.resize(attrs.len().div_ceil(4) * 4, 0);
    attrs.extend_from_slice(&[0x00, 0x24, 0x00, 0x04, 0x6E, 0x00, 0x01, 0xFF]); // PRIORITY
    attrs.extend_from_slice(&[0x00, 0x08, 0x00, 0x14]); // MESSAGE-INTEGRITY
    attrs.extend_from_slice(&[0x42; 20]);
    let mut msg = vec![0x00, 0x01];
    msg.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    msg.extend_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
    msg.extend_from_slice(&[9; 12]);
    msg.extend_from_slice(&attrs);
    msg
}

#[test]
fn hostile_datagrams_are_dropped_and_counted() {
    let mut world = World::new();
    let mut publisher = Publisher::join(&mut world, PeerId(1));
    let (sub, _) = world.join(PeerId(2), &RECV);
    let ufrag = world.answers[1]
        .lines()
        .find_map(|l| l.strip_prefix("a=ice-ufrag:"))
        .unwrap()
        .trim()
        .to_owned();
    let stranger: SocketAddr = "203.0.113.9:4000".parse().unwrap();
    let (now, sfu_addr, sub_addr) = (world.now, world.sfu_addr, world.client(sub).addr);
    let before = world.sfu.stats();

    world
        .sfu
        .handle_datagram(now, stranger, sfu_addr, &[0xFF; 100]);
    world.sfu.handle_datagram(now, stranger, sfu_addr, &[]);
    world
        .sfu
        .handle_datagram(now, stranger, sfu_addr, &stun_request("nobody:x"));
    // The right ufrag with a forged integrity: rejected, and the address is not learned.
    let forged = stun_request(&format!("{ufrag}:x"));
    world.sfu.handle_datagram(now, stranger, sfu_addr, &forged);
    world.sfu.handle_datagram(now, stranger, sfu_addr, &forged);
    world
        .sfu
        .handle_datagram(now, stranger, sfu_addr, &[0x80, 0x60, 0, 1, 0, 0, 0, 0]);
    // Garbage from a connected peer's address.
    world
        .sfu
        .handle_datagram(now, sub_addr, sfu_addr, &[0xFF; 50]);
    world
        .sfu
        .handle_datagram(now, sub_addr, sfu_addr, &[0x80; 3]);
    world
        .sfu
        .handle_datagram(now, sub_addr, sfu_addr, &[0x17, 0xFE, 0xFD, 0, 0]);
    world.settle();

    let after = world.sfu.stats();
    assert_eq!(
        after.dropped_unknown_source - before.dropped_unknown_source,
        3
    );
    assert_eq!(
        after.dropped_unknown_ufrag - before.dropped_unknown_ufrag,
        1
    );
    assert_eq!(
        after.dropped_stun_rejected - before.dropped_stun_rejected,
        2
    );
    assert!(after.dropped_malformed > before.dropped_malformed);
    assert_eq!(after.peers, 2);

    // Nobody was hurt: media still flows.
    publisher.publish(&mut world, Duration::from_millis(400));
    world.advance(Duration::from_millis(100));
    assert_eq!(world.client(sub).received(MediaKind::Audio).len(), 20);
}

#[test]
fn a_track_the_publisher_stops_sending_ends_for_its_subscribers() {
    let mut world = World::new();
    let mut publisher = Publisher::join(&mut world, PeerId(1));
    let (_sub, _) = world.join(PeerId(2), &RECV);
    publisher.publish(&mut world, Duration::from_millis(200));

    // The publisher stops its video (a screen share ended): it renegotiates the m-line to
    // inactive, and the subscriber's slot is released while the audio goes on.
    let client = world.client(publisher.index);
    let mut change = client.rtc.sdp_api();
    change.set_direction(publisher.video, Direction::Inactive);
    let (offer, pending) = change.apply().unwrap();
    let now = world.now;
    let answer = world
        .sfu
        .accept_offer(now, PeerId(1), &offer.to_sdp_string())
        .unwrap();
    world
        .client(publisher.index)
        .accept_answer(pending, &answer);
    world.settle();
    let video_mid = classroom_media::Mid::from(publisher.video.to_string().as_str());
    assert!(world.events.contains(&MediaEvent::TrackUnpublished {
        peer: PeerId(1),
        mid: video_mid,
    }));
    assert_eq!(
        count(&world, |e| matches!(
            e,
            MediaEvent::SubscriptionEnded {
                subscriber: PeerId(2),
                ..
            }
        )),
        1,
        "only the video subscription ends"
    );
}
