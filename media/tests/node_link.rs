//! One lecture across two nodes: two media drivers (a home and an edge, each with its own
//! sockets on 127.0.0.1) joined by a node link, str0m clients on real UDP. The teacher
//! publishes on the home; students on the edge receive from the edge.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use classroom_media::driver::{self, DriverConfig, MediaHandle};
use classroom_media::node_link::driver::NodeLinkHandle;
use classroom_media::node_link::{LINK_TIMEOUT, NodeLinkStats};
use classroom_media::{MediaEvent, PeerId};
use common::socket::{Cadence, Link, Publish, Running};
use common::{Client, LAYERS, RECV, SEND, room, vp8_frame_of_len};
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid, Rid};
use tokio::sync::mpsc;
use tokio::time::timeout;

const TEACHER: PeerId = PeerId(1);
const WATCHER: PeerId = PeerId(2);
const LISTENER: PeerId = PeerId(3);
const LOOPBACK: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// Frames arrived whole and in order: each kind's indices step by a constant from the first
/// received (the publisher stamps audio on even frames and video on odd ones).
fn assert_in_order(indices: &[u32], what: &str) {
    assert!(!indices.is_empty(), "no {what}");
    for pair in indices.windows(2) {
        assert_eq!(
            pair[1],
            pair[0] + 2,
            "{what} out of order or lost: {indices:?}"
        );
    }
}

async fn node() -> (MediaHandle, mpsc::UnboundedReceiver<MediaEvent>) {
    let media = driver::start(DriverConfig::udp((LOOPBACK, 0).into(), LOOPBACK.into()))
        .await
        .unwrap();
    (media.handle, media.events)
}

/// The edge offers, the home answers, the edge connects: the descriptions pass in-process
/// here, over signaling between nodes in the server.
async fn link(home: &MediaHandle, edge: &MediaHandle) -> (NodeLinkHandle, NodeLinkHandle) {
    let bind = SocketAddr::from((LOOPBACK, 0));
    let (pending, offer) = edge.node_link_offer(room(), bind).await.unwrap();
    let (at_home, answer) = home.node_link_answer(room(), bind, &offer).await.unwrap();
    let at_edge = pending.connect(&answer).unwrap();
    (at_home, at_edge)
}

fn sent(stats: NodeLinkStats) -> (u64, u64) {
    (stats.audio_packets_sent, stats.video_packets_sent)
}

#[tokio::test]
async fn a_lecture_spans_two_nodes_over_one_link() {
    let (home, _home_events) = node().await;
    let (edge, mut edge_events) = node().await;
    let mut teacher = Running::join(&home, TEACHER, &SEND, Some(Cadence::BROWSER)).await;
    let (at_home, at_edge) = link(&home, &edge).await;

    // Nobody on the edge watches yet: nothing crosses but the announcements.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sent(at_home.stats()), (0, 0));
    assert!(
        at_edge.stats().controls_received >= 2,
        "{:?}",
        at_edge.stats()
    );

    // A student on the edge receives the teacher's audio and video, whole and in order, from
    // the edge's media address only.
    let mut watcher = Running::join(&edge, WATCHER, &RECV, None).await;
    watcher.wait_for(25, 25).await;
    assert_eq!(watcher.sources, [edge.local_addr()]);
    assert_in_order(&watcher.received(MediaKind::Audio), "audio");
    assert_in_order(&watcher.received(MediaKind::Video), "video");

    // A second student (audio only) adds no second copy on the link: the link carries each
    // packet once, however many students the edge serves.
    let listener_lines = [(MediaKind::Audio, Direction::RecvOnly)];
    let mut listener = Running::join(&edge, LISTENER, &listener_lines, None).await;
    listener.wait_for(25, 0).await;
    assert_eq!(listener.sources, [edge.local_addr()]);
    assert_in_order(&listener.received(MediaKind::Audio), "audio");
    let home_stats = home.stats().await.unwrap();
    let (audio, video) = sent(at_home.stats());
    eprintln!(
        "link: {audio} audio and {video} video packets sent of {} the teacher sent; edge: {:?}",
        home_stats.rtp_packets_in,
        at_edge.stats()
    );
    assert!(
        audio + video <= home_stats.rtp_packets_in,
        "the link sent {audio} audio and {video} video packets of {} the teacher sent",
        home_stats.rtp_packets_in
    );
    // Over a second with both students watching: every packet of the teacher crosses at
    // most once (a copy per student would double the audio).
    let teacher_before = home.stats().await.unwrap().rtp_packets_in;
    let (audio_before, video_before) = sent(at_home.stats());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let teacher_sent = home.stats().await.unwrap().rtp_packets_in - teacher_before;
    let (audio_after, video_after) = sent(at_home.stats());
    let crossed = audio_after + video_after - audio_before - video_before;
    assert!(
        crossed <= teacher_sent + 5 && crossed * 10 >= teacher_sent * 9,
        "{crossed} packets crossed of {teacher_sent} the teacher sent"
    );
    assert_eq!(at_edge.stats().malformed_controls, 0);
    assert_eq!(at_home.stats().malformed_controls, 0);

    // Keyframe requests of edge students reach the teacher at most once per throttle
    // interval (the home's 500 ms), however many they send.
    teacher.collect();
    let before = teacher.keyframe_requests.len();
    for _ in 0..5 {
        watcher.ask.send(watcher.mids[1]).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    teacher.collect();
    let asked = &teacher.keyframe_requests;
    assert!(asked.len() > before, "the edge student's request arrived");
    assert!(
        asked.len() - before <= 3,
        "{} requests in 1.3 s",
        asked.len() - before
    );
    for pair in asked.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(400),
            "two requests {:?} apart",
            pair[1] - pair[0]
        );
    }

    // The last video viewer on the edge leaves: the link stops carrying the video, and
    // carries the audio on for the listener.
    edge.remove_peer(WATCHER).await.unwrap();
    drop(watcher);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (audio_before, video_before) = sent(at_home.stats());
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let (audio_after, video_after) = sent(at_home.stats());
    assert_eq!(video_after, video_before, "video still crosses");
    assert!(audio_after >= audio_before + 25, "audio stopped too");

    // The home node dies (its link stops without a word): the edge notices within the link
    // timeout and removes the relayed publications, ending the listener's subscription.
    at_home.abort();
    let died = Instant::now();
    let deadline = died + LINK_TIMEOUT + Duration::from_secs(3);
    while !at_edge.is_finished() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(at_edge.is_finished(), "the edge's link is still up");
    eprintln!(
        "the edge noticed the home's death after {:?}",
        died.elapsed()
    );
    let mut ended = false;
    while let Ok(Some(event)) = timeout(Duration::from_millis(500), edge_events.recv()).await {
        if let MediaEvent::SubscriptionEnded {
            subscriber: LISTENER,
            publisher: TEACHER,
            ..
        } = event
        {
            ended = true;
        }
    }
    assert!(ended, "the listener's subscription to the teacher ended");
    let edge_stats = edge.stats().await.unwrap();
    assert_eq!(edge_stats.relay_links_closed, 1, "{edge_stats:?}");
    drop(teacher);
    drop(listener);
}

#[tokio::test]
async fn a_home_that_closes_its_link_ends_it_at_the_edge_at_once() {
    let (home, _home_events) = node().await;
    let (edge, _edge_events) = node().await;
    let _teacher = Running::join(&home, TEACHER, &SEND, Some(Cadence::BROWSER)).await;
    let (at_home, at_edge) = link(&home, &edge).await;
    let mut watcher = Running::join(&edge, WATCHER, &RECV, None).await;
    watcher.wait_for(10, 5).await;

    drop(at_home);
    let start = Instant::now();
    while !at_edge.is_finished() && start.elapsed() < LINK_TIMEOUT {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "the edge's link ended {:?} after the home's",
        start.elapsed()
    );
    assert!(
        at_edge.is_finished() && start.elapsed() < LINK_TIMEOUT / 2,
        "the edge's link ended after {:?}",
        start.elapsed()
    );
    // The home's SFU removed its side too: its relay link is closed.
    let deadline = Instant::now() + Duration::from_secs(2);
    while home.stats().await.unwrap().relay_links_closed == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(home.stats().await.unwrap().relay_links_closed, 1);
}

#[tokio::test]
async fn a_malformed_description_is_refused() {
    let (home, _events) = node().await;
    let bind = SocketAddr::from((LOOPBACK, 0));
    for offer in [
        "",
        "classroom-node-link/1\nice a b\n",
        "hello\n",
        "classroom-node-link/1\nfingerprint x\n",
    ] {
        assert!(
            home.node_link_answer(room(), bind, offer).await.is_err(),
            "{offer:?}"
        );
    }
}

/// A simulcast publisher on a real socket: every 40 ms one frame of each layer of [`LAYERS`]
/// (the layer at byte 14), a keyframe first and whenever that layer is asked for one.
struct Simulcast {
    video: Mid,
    frame: u32,
    keyframe_due: [bool; 3],
}

impl Publish for Simulcast {
    fn write(&mut self, client: &mut Client, now: Instant, _start: Instant) -> Duration {
        let layer = (self.frame % 3) as usize;
        let (rid, len) = LAYERS[layer];
        let index = self.frame / 3;
        let time = MediaTime::new(u64::from(index) * 3600, Frequency::NINETY_KHZ);
        let mut data = vp8_frame_of_len(index, self.keyframe_due[layer], len);
        data[14] = layer as u8;
        self.keyframe_due[layer] = false;
        client.write_layer(now, time, self.video, rid, data);
        self.frame += 1;
        // The three layers of a frame in three wake-ups in a row.
        if layer == 2 {
            Duration::from_millis(40)
        } else {
            Duration::ZERO
        }
    }

    fn keyframe_requested(&mut self, rid: Option<Rid>) {
        if let Some(layer) = LAYERS
            .iter()
            .position(|(name, _)| rid == Some(Rid::from(*name)))
        {
            self.keyframe_due[layer] = true;
        }
    }
}

#[tokio::test]
async fn only_the_simulcast_layer_edge_students_watch_crosses_the_link_and_it_follows_them() {
    let (home, _home_events) = node().await;
    let (edge, _edge_events) = node().await;

    let link_to_home = Link::udp().await;
    let rids = LAYERS.map(|(rid, _)| rid);
    let (mut client, video, offer, pending) =
        Client::simulcast(Instant::now(), TEACHER, link_to_home.local(), &rids);
    let answer = home.add_peer(TEACHER, room(), offer).await.unwrap();
    client.accept_answer(pending, &answer);
    let simulcast = Simulcast {
        video,
        frame: 0,
        keyframe_due: [true; 3],
    };
    let teacher = Running::start(client, vec![video], link_to_home, Some(Box::new(simulcast)));

    let (at_home, _at_edge) = link(&home, &edge).await;
    let lines = [(MediaKind::Video, Direction::RecvOnly)];
    let mut watcher = Running::join(&edge, WATCHER, &lines, None).await;
    watcher.wait_for(0, 25).await;
    // The student shows the video small: the lowest layer is enough.
    let mid = classroom_media::Mid::from(watcher.mids[0].to_string().as_str());
    edge.set_video_size(WATCHER, mid.clone(), 90).await.unwrap();

    tokio::time::sleep(Duration::from_secs(1)).await;
    let teacher_before = home.stats().await.unwrap().rtp_packets_in;
    let (_, link_before) = sent(at_home.stats());
    watcher.collect();
    let frames_before = watcher.frames.len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let teacher_sent = home.stats().await.unwrap().rtp_packets_in - teacher_before;
    let (_, link_after) = sent(at_home.stats());
    let crossed = link_after - link_before;
    watcher.collect();
    let frames = watcher.frames.len() - frames_before;
    eprintln!("simulcast: {crossed} video packets crossed of {teacher_sent}; {frames} frames");
    // Three layers of one packet a frame each: one layer is a third.
    assert!(
        crossed * 2 < teacher_sent && crossed * 4 > teacher_sent,
        "{crossed} video packets crossed of {teacher_sent} the teacher sent"
    );
    assert!(
        frames >= 40,
        "the student receives the video: {frames} frames"
    );
    assert!(
        watcher.layers[watcher.layers.len() - 10..]
            .iter()
            .all(|l| *l == 0),
        "the small video is the lowest layer"
    );

    // Shown large: the edge moves the student up (its keyframe request for the higher layer
    // widens what the link carries), after the upgrade delay.
    edge.set_video_size(WATCHER, mid, 720).await.unwrap();
    let shown = Instant::now();
    // The edge student's bandwidth estimate must grow first: seconds, more on a busy machine.
    let deadline = shown + Duration::from_secs(20);
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        watcher.collect();
        if watcher.layers.last().is_some_and(|l| *l > 0) {
            break;
        }
        assert!(Instant::now() < deadline, "still on the lowest layer");
    }
    eprintln!("simulcast: a higher layer after {:?}", shown.elapsed());
    drop(teacher);
}

#[tokio::test]
async fn a_student_publishing_on_the_edge_is_heard_and_seen_at_the_home() {
    let (home, _home_events) = node().await;
    let (edge, _edge_events) = node().await;
    let (at_home, at_edge) = link(&home, &edge).await;
    // A student on stage on the edge publishes there; a viewer on the home receives it from
    // the home (the link carries the edge's own publishers the other way).
    let _student = Running::join(&edge, PeerId(4), &SEND, Some(Cadence::BROWSER)).await;
    let mut viewer = Running::join(&home, PeerId(5), &RECV, None).await;
    viewer.wait_for(50, 25).await;
    assert_eq!(viewer.sources, [home.local_addr()]);
    assert_in_order(&viewer.received(MediaKind::Audio), "audio");
    assert_in_order(&viewer.received(MediaKind::Video), "video");
    assert!(sent(at_edge.stats()).0 > 0 && sent(at_edge.stats()).1 > 0);
    assert!(at_home.stats().packets_received > 0);
}
