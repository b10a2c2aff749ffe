//! Media through an impaired network: every client reaches `classroomd` through the test's UDP
//! relay (the server advertises the relay's port with `media.advertised_port`), which drops
//! chosen packets or caps the bandwidth of one client in one direction. Real str0m clients
//! (the load tester's) send the load tester's VP8 clips and Opus.
//!
//! No assertion is about speed: waits are bounded generously and only say how long the test
//! may take on a slow, busy machine.

use std::time::Duration;

use classroom_loadtest::peer::Sending;
use classroom_protocol::signal::{ClientMessage, MediaKind, ParticipantId, ServerMessage};
use classroom_tests::media::{Participant, wait_until};
use classroom_tests::relay::{Cap, Impairment, Loss, Relay, Select, Way};
use classroom_tests::school::{School, join_token as token};
use classroom_tests::ws::Ws;
use classroom_tests::{Backend, TestServer};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

/// A server whose media is reached through a relay, and a lesson in its school.
struct Setup {
    server: TestServer,
    relay: Relay,
    school: School,
    lesson: i64,
}

impl Setup {
    async fn new() -> Setup {
        let relay = Relay::bind().await;
        let port = relay.port();
        let server = TestServer::start(Backend::Sqlite, |c| c.media.advertised_port = port)
            .await
            .expect("a SQLite server");
        relay.start(server.media_addr());
        let school = School::new(&server).await;
        school
            .teacher
            .post(
                &format!("/api/v1/courses/{}/enrollments", school.course_id),
                json!({"user_id": school.outsider_id}),
            )
            .await
            .expect(201);
        let lesson = school.lesson("Through the relay").await;
        Setup {
            server,
            relay,
            school,
            lesson,
        }
    }

    /// The teacher joins and starts sending.
    async fn teacher(&self, sending: Sending) -> (Participant, ParticipantId) {
        let join = token(&self.school.teacher, self.lesson).await;
        let (ws, _) = Ws::join(&self.server.base, &join).await;
        let id = ws.me.expect("joined");
        (Participant::connect(ws, sending, 0).await, id)
    }

    /// A student (`sam`: the enrolled student, else the second one) joins to receive.
    async fn student(&self, sam: bool) -> (Participant, ParticipantId) {
        let client = if sam {
            &self.school.student
        } else {
            &self.school.outsider
        };
        let (ws, _) = Ws::join(&self.server.base, &token(client, self.lesson).await).await;
        let id = ws.me.expect("joined");
        (Participant::connect(ws, Sending::NOTHING, 1).await, id)
    }

    async fn metric(&self, name: &str) -> f64 {
        self.server.metric(name).await.unwrap_or(0.0)
    }
}

#[tokio::test]
async fn nacks_recover_loss_between_the_server_and_a_subscriber() {
    let setup = Setup::new().await;
    let (teacher, teacher_id) = setup.teacher(Sending::AUDIO_VIDEO).await;
    let (mut sam, _) = setup.student(true).await;
    assert!(
        sam.receives_from(teacher_id, 30, WAIT).await,
        "Sam receives the teacher through the relay: {:?}",
        sam.tracks
    );
    let mid = sam
        .mid_of(teacher_id, MediaKind::Video)
        .expect("the teacher's video has a mid");
    let ssrc = sam.stream(&mid).expect("video arrived").ssrc;

    // Every 10th packet of the video toward Sam is lost (not its retransmissions: they
    // travel with another SSRC), for 300 packets (a few seconds of 360p).
    let start = sam.stream(&mid).map_or(0, |s| s.packets);
    setup.relay.impair(
        sam.media_addr(),
        Way::Down,
        Impairment {
            loss: Some((Select::Ssrc(ssrc), Loss::EveryNth(10))),
            cap: None,
        },
    );
    assert!(
        sam.pump_until(3 * WAIT, |p| p
            .stream(&mid)
            .is_some_and(|s| s.packets >= start + 300))
            .await,
        "video keeps arriving through the loss"
    );
    setup
        .relay
        .impair(sam.media_addr(), Way::Down, Impairment::default());
    let dropped = setup
        .relay
        .counters(sam.media_addr(), Way::Down)
        .lost
        .get(&ssrc)
        .copied()
        .unwrap_or(0);
    assert!(dropped >= 25, "the relay dropped video packets: {dropped}");

    // Retransmissions fill the holes: Sam's stream ends up (nearly) complete.
    let holes = |p: &Participant| p.stream(&mid).map_or(u64::MAX, |s| s.loss.lost());
    sam.pump_until(WAIT, |p| holes(p) == 0).await;
    let video = sam.stream(&mid).expect("video arrived");
    assert!(
        video.loss.lost() * 100 <= dropped,
        "{} of {dropped} dropped packets were never repaired ({} expected, {} received)",
        video.loss.lost(),
        video.loss.expected(),
        video.loss.received()
    );
    assert!(
        video.frames > 100,
        "frames kept completing: {}",
        video.frames
    );
    eprintln!(
        "loss: {dropped} video packets dropped toward Sam, {} never repaired, {} received",
        video.loss.lost(),
        video.loss.received()
    );

    // Sam asked for them (NACK), the server counted them and answered from its own buffer:
    // the teacher, whose packets all arrived, was asked for nothing.
    assert!(
        sam.pump_until(WAIT, |p| p.stats(|s| s.nacks_sent_on(&mid)) > 0)
            .await,
        "Sam's client sent NACKs"
    );
    let nacks = "classroom_media_nacks_total{direction=\"received\"}";
    let mut counted = 0.0;
    for _ in 0..100 {
        counted = setup.metric(nacks).await;
        if counted > 0.0 {
            break;
        }
        sam.pump(Duration::from_millis(100)).await;
    }
    assert!(counted > 0.0, "the server counted the NACKs");
    eprintln!(
        "loss: NACKs sent by Sam {}, counted by the server {counted}",
        sam.stats(|s| s.nacks_sent_on(&mid))
    );
    assert_eq!(
        setup
            .relay
            .counters(teacher.media_addr(), Way::Up)
            .lost_total(),
        0
    );
    assert_eq!(
        teacher.stats(|s| s.nacks_received.values().sum::<u64>()),
        0,
        "the SFU resent from its buffer, not by asking the publisher"
    );

    sam.leave().await;
    teacher.leave().await;
    setup.server.stop().await;
}

#[tokio::test]
async fn nacks_recover_loss_between_a_publisher_and_the_server() {
    let setup = Setup::new().await;
    let (teacher, teacher_id) = setup.teacher(Sending::AUDIO_VIDEO).await;
    let (mut sam, _) = setup.student(true).await;
    assert!(
        sam.receives_from(teacher_id, 30, WAIT).await,
        "{:?}",
        sam.tracks
    );
    let mid = sam
        .mid_of(teacher_id, MediaKind::Video)
        .expect("the teacher's video has a mid");
    let sent = teacher.peer.video_ssrcs().await.expect("the peer runs");
    let [ssrc] = sent[..] else {
        panic!("one video stream: {sent:?}")
    };

    // Every 10th packet of the teacher's video is lost on its way to the server.
    let start = sam.stream(&mid).map_or(0, |s| s.packets);
    setup.relay.impair(
        teacher.media_addr(),
        Way::Up,
        Impairment {
            loss: Some((Select::Ssrc(ssrc), Loss::EveryNth(10))),
            cap: None,
        },
    );
    assert!(
        sam.pump_until(3 * WAIT, |p| p
            .stream(&mid)
            .is_some_and(|s| s.packets >= start + 300))
            .await,
        "video keeps arriving through the loss"
    );
    setup
        .relay
        .impair(teacher.media_addr(), Way::Up, Impairment::default());
    let dropped = setup
        .relay
        .counters(teacher.media_addr(), Way::Up)
        .lost
        .get(&ssrc)
        .copied()
        .unwrap_or(0);
    assert!(dropped >= 25, "the relay dropped video packets: {dropped}");

    // The server asks the teacher again and forwards the repaired packets late: Sam's stream
    // ends up (nearly) complete.
    let holes = |p: &Participant| p.stream(&mid).map_or(u64::MAX, |s| s.loss.lost());
    sam.pump_until(WAIT, |p| holes(p) == 0).await;
    let video = sam.stream(&mid).expect("video arrived");
    assert!(
        video.loss.lost() * 100 <= dropped,
        "{} of {dropped} packets lost upstream never reached Sam ({} received)",
        video.loss.lost(),
        video.loss.received()
    );
    assert!(
        wait_until(WAIT, || teacher
            .stats(|s| s.nacks_received.values().sum::<u64>())
            > 0)
        .await,
        "the teacher was asked to resend"
    );
    eprintln!(
        "upstream loss: {dropped} dropped, {} never repaired at Sam, teacher got {} NACKs",
        video.loss.lost(),
        teacher.stats(|s| s.nacks_received.values().sum::<u64>())
    );

    sam.leave().await;
    teacher.leave().await;
    setup.server.stop().await;
}

#[tokio::test]
async fn a_bandwidth_cap_moves_a_subscriber_down_a_simulcast_layer_and_back() {
    let setup = Setup::new().await;
    let three_layers = Sending {
        audio: true,
        video_layers: 3,
    };
    let (teacher, teacher_id) = setup.teacher(three_layers).await;
    let (mut sam, _) = setup.student(true).await;
    assert!(
        sam.receives_from(teacher_id, 10, WAIT).await,
        "Sam receives the teacher: {:?}",
        sam.tracks
    );
    let mid = sam
        .mid_of(teacher_id, MediaKind::Video)
        .expect("the teacher's video has a mid");
    let height = |p: &Participant| p.stream(&mid).map_or(0, |s| s.height);

    // Unconstrained, the bandwidth estimate climbs and Sam gets the top layer (1280x720),
    // one upgrade at a time, each held for the SFU's upgrade delay.
    assert!(
        sam.pump_until(6 * WAIT, |p| height(p) == 720).await,
        "Sam reaches the top layer; at {} after {:?}",
        height(&sam),
        sam.stream(&mid).map(|s| s.bytes_by_layer)
    );

    let started = std::time::Instant::now();
    eprintln!("cap: top layer reached");
    // 400 kbit/s toward Sam: the 720p layer (about 900 kbit/s) no longer fits.
    setup.relay.impair(
        sam.media_addr(),
        Way::Down,
        Impairment {
            loss: None,
            cap: Some(Cap::kbps(400)),
        },
    );
    assert!(
        sam.pump_until(6 * WAIT, |p| height(p) > 0 && height(p) < 720)
            .await,
        "a capped Sam moves to a lower layer"
    );
    let capped_at = height(&sam);
    eprintln!("cap: down to {capped_at} after {:?}", started.elapsed());
    let started = std::time::Instant::now();
    let queue_drops = setup
        .relay
        .counters(sam.media_addr(), Way::Down)
        .queue_drops;

    // The cap is lifted: the estimate recovers and Sam goes back up.
    setup
        .relay
        .impair(sam.media_addr(), Way::Down, Impairment::default());
    assert!(
        sam.pump_until(9 * WAIT, |p| height(p) == 720).await,
        "Sam is back at the top layer; at {} (capped at {capped_at}, {queue_drops} datagrams \
         dropped by the cap)",
        height(&sam)
    );
    eprintln!("cap: back to 720 after {:?}", started.elapsed());
    let switches = setup
        .metric("classroom_media_simulcast_total{event=\"layer_switch\"}")
        .await;
    // At least down and up again (the first climb may be no switch: a slot whose first
    // keyframe comes after a good estimate starts on a higher layer).
    assert!(switches >= 2.0, "down and up: {switches} layer switches");
    eprintln!("cap: {switches} layer switches, {queue_drops} datagrams dropped by the cap");

    sam.leave().await;
    teacher.leave().await;
    setup.server.stop().await;
}

#[tokio::test]
async fn taking_the_stage_back_stops_forwarding_from_the_next_packet() {
    let setup = Setup::new().await;
    let (mut teacher, teacher_id) = setup.teacher(Sending::AUDIO_VIDEO).await;
    let (mut ann, ann_id) = setup.student(true).await;
    let (mut bob, _) = setup.student(false).await;
    assert!(bob.receives_from(teacher_id, 10, WAIT).await);

    // Ann on stage publishes; Bob receives her.
    let reply = teacher
        .request(ClientMessage::InviteToStage {
            participant: ann_id,
        })
        .await;
    assert!(matches!(reply, ServerMessage::Ok { .. }), "{reply:?}");
    assert!(
        ann.pump_until(WAIT, |p| p.messages.iter().any(
            |m| matches!(m, ServerMessage::GrantsChanged { grants } if !grants.publish.is_empty())
        ))
        .await
    );
    ann.publish(Sending::AUDIO_VIDEO).await;
    assert!(
        bob.receives_from(ann_id, 10, WAIT).await,
        "{:?}",
        bob.tracks
    );
    let ann_ssrcs_at_bob: Vec<u32> = bob
        .mids_of(ann_id)
        .iter()
        .filter_map(|mid| bob.stream(mid).map(|s| s.ssrc))
        .collect();
    assert_eq!(ann_ssrcs_at_bob.len(), 2, "Ann's audio and video at Bob");
    assert!(teacher.receives_from(ann_id, 10, WAIT).await);
    let ann_mids_at_teacher = teacher.mids_of(ann_id);
    let bob_addr = bob.media_addr();
    let from_ann_to_bob = |relay: &Relay| -> u64 {
        let counters = relay.counters(bob_addr, Way::Down);
        ann_ssrcs_at_bob
            .iter()
            .map(|ssrc| counters.forwarded(*ssrc))
            .sum()
    };

    // Hold Ann's media back at the relay and let what is on its way to Bob arrive, so that
    // whatever reaches Bob later was sent by Ann after the teacher's decision.
    setup.relay.impair(
        ann.media_addr(),
        Way::Up,
        Impairment {
            loss: Some((Select::Rtp, Loss::All)),
            cap: None,
        },
    );
    let mut settled = from_ann_to_bob(&setup.relay);
    for _ in 0..100 {
        bob.pump(Duration::from_millis(200)).await;
        let now = from_ann_to_bob(&setup.relay);
        if now == settled {
            break;
        }
        settled = now;
    }

    // Off stage. Ann hears of it only after the SFU has stopped forwarding her.
    let reply = teacher
        .request(ClientMessage::RemoveFromStage {
            participant: ann_id,
        })
        .await;
    assert!(matches!(reply, ServerMessage::Ok { .. }), "{reply:?}");
    assert!(
        ann.pump_until(WAIT, |p| p.messages.iter().any(
            |m| matches!(m, ServerMessage::GrantsChanged { grants } if grants.publish.is_empty())
        ))
        .await,
        "Ann hears she is off stage"
    );
    let not_granted = "classroom_media_dropped_total{reason=\"not_granted\"}";
    let dropped_before = setup.metric(not_granted).await;

    // Ann's client keeps sending, and now it reaches the server again: not one of those
    // packets (the very next one included) is forwarded to Bob.
    let up_before = setup
        .relay
        .counters(ann.media_addr(), Way::Up)
        .rtp_forwarded_total();
    setup
        .relay
        .impair(ann.media_addr(), Way::Up, Impairment::default());
    assert!(
        wait_until(WAIT, || setup
            .relay
            .counters(ann.media_addr(), Way::Up)
            .rtp_forwarded_total()
            >= up_before + 100)
        .await,
        "Ann's packets reach the server again"
    );
    let teacher_frames = bob.received_from(teacher_id);
    assert!(
        bob.pump_until(WAIT, |p| p.received_from(teacher_id) > teacher_frames + 10)
            .await,
        "the teacher still reaches Bob"
    );
    assert_eq!(
        from_ann_to_bob(&setup.relay),
        settled,
        "nothing Ann sent after leaving the stage was forwarded"
    );
    eprintln!(
        "stage: {settled} packets of Ann reached Bob on stage, {} sent to the server after",
        setup
            .relay
            .counters(ann.media_addr(), Way::Up)
            .rtp_forwarded_total()
            - up_before
    );
    assert!(
        setup.metric(not_granted).await >= dropped_before + 100.0,
        "the SFU dropped what Ann sent off stage"
    );
    // Ann is an ordinary student again; the teacher hears her no more either.
    let at_teacher =
        |t: &Participant| -> u64 { ann_mids_at_teacher.iter().map(|m| t.received_on(m)).sum() };
    let before = at_teacher(&teacher);
    teacher.pump(Duration::from_millis(300)).await;
    assert_eq!(at_teacher(&teacher), before);

    for participant in [teacher, ann, bob] {
        participant.leave().await;
    }
    setup.server.stop().await;
}
