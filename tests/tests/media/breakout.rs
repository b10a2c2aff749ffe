//! Breakout rooms with real media: four students hear the teacher in the main room, are split
//! by hand into two breakout rooms on the same WebSockets, each receives its room mate's media
//! and nobody else's, and all come back to the teacher when the rooms close. Each move sets up
//! a new media peer (docs/protocol.md, "Breakout rooms"); the gap, from `moved` to the first
//! frames on the new peer, is measured and printed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use classroom_protocol::signal::BreakoutRequest;
use classroom_protocol::{UserId, UserRole};
use classroom_tests::media::Participant;
use classroom_tests::school::id;
use futures_util::future::join_all;

use super::*;

/// A student moved to another room: their new peer, who is who there, and the gap.
struct Moved {
    student: Participant,
    /// Participant id in the new room → user id, as its `joined` and `participant_joined` say.
    users: HashMap<ParticipantId, UserId>,
    /// From `moved` to the first frames from everyone expected on the new peer.
    gap: Duration,
}

/// Follows a move: waits for `moved`, drops the old peer, reads the new room's `joined`,
/// opens a new peer there (sending `sending`), and waits for frames from every user of
/// `expect`.
async fn follow_move(old: Participant, sending: Sending, expect: Vec<UserId>) -> Moved {
    let mut old = old;
    assert!(
        old.pump_until(WAIT, |p| p
            .messages
            .iter()
            .any(|m| matches!(m, ServerMessage::Moved { .. })))
            .await,
        "moved in time: {:?}",
        old.messages
    );
    let moved_at = Instant::now();
    let Participant { mut ws, peer, .. } = old;
    peer.stop();
    let joined = ws
        .recv_where(|m| matches!(m, ServerMessage::Joined { .. }))
        .await;
    let ServerMessage::Joined {
        you, participants, ..
    } = &joined
    else {
        unreachable!("matched above")
    };
    ws.me = Some(you.id);
    let mut users: HashMap<ParticipantId, UserId> =
        participants.iter().map(|p| (p.id, p.user_id)).collect();
    let mut student = Participant::connect(ws, sending, expect.len().max(1)).await;
    let ids = |student: &Participant, users: &HashMap<ParticipantId, UserId>| {
        let mut known = users.clone();
        for m in &student.messages {
            if let ServerMessage::ParticipantJoined { participant } = m {
                known.insert(participant.id, participant.user_id);
            }
        }
        known
    };
    let receiving = student
        .pump_until(WAIT, |p| {
            let known = ids(p, &users);
            expect.iter().all(|user| {
                known
                    .iter()
                    .filter(|(_, u)| *u == user)
                    .any(|(id, _)| p.receives_now(*id))
            })
        })
        .await;
    let gap = moved_at.elapsed();
    users = ids(&student, &users);
    assert!(
        receiving,
        "frames from {expect:?} on the new peer: tracks {:?}, users {users:?}",
        student.tracks
    );
    Moved {
        student,
        users,
        gap,
    }
}

trait ReceivesNow {
    /// Whether frames arrived on both tracks (audio and video) of `from`.
    fn receives_now(&self, from: ParticipantId) -> bool;
}

impl ReceivesNow for Participant {
    fn receives_now(&self, from: ParticipantId) -> bool {
        let mids = self.mids_of(from);
        mids.len() == 2 && mids.iter().all(|mid| self.received_on(mid) > 0)
    }
}

fn print_gaps(what: &str, gaps: &[Duration]) {
    let ms: Vec<u128> = gaps.iter().map(Duration::as_millis).collect();
    let max = ms.iter().max().copied().unwrap_or(0);
    println!("breakout media gap {what}: {ms:?} ms (max {max} ms)");
}

#[tokio::test]
async fn students_split_into_breakout_rooms_hear_only_their_room_and_come_back() {
    let server = TestServer::start(Backend::Sqlite, |_| {})
        .await
        .expect("a SQLite server");
    let school = School::new(&server).await;
    let mut clients = vec![(school.student_id, school.student.clone())];
    for (email, name) in [
        ("olga@school.edu", None),
        ("cleo@school.edu", Some("Cleo Student")),
        ("dan@school.edu", Some("Dan Student")),
    ] {
        let (client, user_id) = match name {
            None => (school.outsider.clone(), school.outsider_id),
            Some(name) => {
                let (client, user) = server.user(UserRole::Student, email, name).await;
                (client, id(&user))
            }
        };
        school
            .teacher
            .post(
                &format!("/api/v1/courses/{}/enrollments", school.course_id),
                json!({ "user_id": user_id }),
            )
            .await
            .expect(201);
        clients.push((user_id, client));
    }
    let lesson = school.lesson("Group work").await;

    let (ws, _) = Ws::join(&server.base, &token(&school.teacher, lesson).await).await;
    let teacher_id = me(&ws);
    let mut teacher = Participant::connect(ws, Sending::AUDIO_VIDEO, 1).await;
    let mut students = Vec::new();
    let mut main_ids = Vec::new();
    for (_, client) in &clients {
        let (ws, _) = Ws::join(&server.base, &token(client, lesson).await).await;
        main_ids.push(me(&ws));
        let mut student = Participant::connect(ws, Sending::NOTHING, 1).await;
        assert!(
            student.receives_from(teacher_id, 5, WAIT).await,
            "a student hears the teacher in the main room"
        );
        students.push(student);
    }
    let users: Vec<UserId> = clients.iter().map(|(id, _)| UserId(*id)).collect();

    // Two rooms by hand: the first two students together, the last two together.
    let open = ClientMessage::OpenBreakouts {
        request: BreakoutRequest {
            rooms: 2,
            mode: classroom_protocol::signal::BreakoutMode::ByHand,
            assignment: vec![main_ids[..2].to_vec(), main_ids[2..].to_vec()],
            duration_seconds: None,
            warning_seconds: None,
            record: false,
        },
    };
    let reply = teacher.request(open).await;
    assert!(matches!(reply, ServerMessage::Ok { .. }), "{reply:?}");
    let mate = |i: usize| users[i ^ 1];
    let moves = students
        .into_iter()
        .enumerate()
        .map(|(i, s)| follow_move(s, Sending::AUDIO_VIDEO, vec![mate(i)]));
    let mut moved: Vec<Moved> = join_all(moves).await;
    let gaps: Vec<Duration> = moved.iter().map(|m| m.gap).collect();
    print_gaps("into the breakout rooms", &gaps);

    // A second of media: each student receives their mate, and nobody else (not the other
    // room, not the teacher, who stayed in the main room).
    let settle = Instant::now() + Duration::from_secs(1);
    for (i, m) in moved.iter_mut().enumerate() {
        let left = settle.saturating_duration_since(Instant::now());
        m.student.pump(left).await;
        let from: Vec<UserId> = m
            .student
            .tracks
            .values()
            .filter_map(|(p, _)| m.users.get(p).copied())
            .collect();
        assert_eq!(
            from.len(),
            m.student.tracks.len(),
            "every track is from this room"
        );
        assert!(
            from.iter().all(|u| *u == mate(i)),
            "student {i} receives only their room mate: {from:?}"
        );
        assert_eq!(from.len(), 2, "the mate's audio and video");
    }
    assert!(
        server
            .metrics_until(WAIT, |m| m.value("classroom_participants") == Some(5.0))
            .await
            .is_ok(),
        "a student in a breakout room is counted once, in the lesson"
    );
    teacher.pump(Duration::from_millis(200)).await;
    assert!(
        teacher.tracks.is_empty(),
        "the students' media does not reach the main room: {:?}",
        teacher.tracks
    );

    // The teacher closes the rooms: everyone is back with the teacher.
    let reply = teacher.request(ClientMessage::CloseBreakouts).await;
    assert!(matches!(reply, ServerMessage::Ok { .. }), "{reply:?}");
    let teacher_user = UserId(school.teacher_id);
    let back = moved
        .into_iter()
        .map(|m| follow_move(m.student, Sending::NOTHING, vec![teacher_user]));
    let back: Vec<Moved> = join_all(back).await;
    let gaps: Vec<Duration> = back.iter().map(|m| m.gap).collect();
    print_gaps("back to the main room", &gaps);
    for m in &back {
        assert_eq!(
            m.users.get(&teacher_id),
            Some(&teacher_user),
            "the main room's ids are the ones of before"
        );
        assert!(
            m.student.mids_of(teacher_id).len() == 2,
            "only the teacher publishes here: {:?}",
            m.student.tracks
        );
    }
    assert!(
        server
            .metrics_until(WAIT, |m| m.value("classroom_media_peers") == Some(5.0))
            .await
            .is_ok(),
        "one peer each, the old ones gone from the SFU"
    );
}

/// The mid of the last `voice_track` the participant got, unless a `track_ended` ended it.
fn voice_mid(p: &Participant) -> Option<String> {
    let mid = p.messages.iter().rev().find_map(|m| match m {
        ServerMessage::VoiceTrack { mid } => Some(mid.clone()),
        _ => None,
    })?;
    (!p.ended.contains(&mid)).then_some(mid)
}

/// The teacher speaks to all rooms from the main room of a two-worker server (a lesson's rooms
/// share its worker): one student alone in each of two rooms receives the teacher's voice
/// while it is on, not before, and not after (its voice track ends and nothing more arrives
/// on that m-line).
#[tokio::test]
async fn students_in_two_rooms_hear_the_teacher_speaking_to_all_rooms_only_while_on() {
    let server = TestServer::start(Backend::Sqlite, |config| config.media.workers = 2)
        .await
        .expect("a SQLite server");
    let school = School::new(&server).await;
    let (second, user) = server
        .user(UserRole::Student, "cleo@school.edu", "Cleo Student")
        .await;
    school
        .teacher
        .post(
            &format!("/api/v1/courses/{}/enrollments", school.course_id),
            json!({ "user_id": id(&user) }),
        )
        .await
        .expect(201);
    let lesson = school.lesson("Voice to all rooms").await;
    let (ws, _) = Ws::join(&server.base, &token(&school.teacher, lesson).await).await;
    let teacher_id = me(&ws);
    let mut teacher = Participant::connect(ws, Sending::AUDIO_VIDEO, 1).await;
    let mut students = Vec::new();
    let mut main_ids = Vec::new();
    for client in [&school.student, &second] {
        let (ws, _) = Ws::join(&server.base, &token(client, lesson).await).await;
        main_ids.push(me(&ws));
        let mut student = Participant::connect(ws, Sending::NOTHING, 1).await;
        assert!(student.receives_from(teacher_id, 5, WAIT).await);
        students.push(student);
    }
    let open = ClientMessage::OpenBreakouts {
        request: BreakoutRequest {
            rooms: 2,
            mode: classroom_protocol::signal::BreakoutMode::ByHand,
            assignment: vec![vec![main_ids[0]], vec![main_ids[1]]],
            duration_seconds: None,
            warning_seconds: None,
            record: false,
        },
    };
    let reply = teacher.request(open).await;
    assert!(matches!(reply, ServerMessage::Ok { .. }), "{reply:?}");
    let moves = students
        .into_iter()
        .map(|s| follow_move(s, Sending::NOTHING, Vec::new()));
    let mut moved: Vec<Moved> = join_all(moves).await;
    for m in &mut moved {
        m.student.pump(Duration::from_millis(500)).await;
        assert_eq!(voice_mid(&m.student), None, "no voice before it is on");
        assert!(m.student.tracks.is_empty(), "alone in the room");
    }

    let reply = teacher
        .request(ClientMessage::SpeakToBreakouts { on: true })
        .await;
    assert!(matches!(reply, ServerMessage::Ok { .. }), "{reply:?}");
    let on_at = Instant::now();
    let mut mids = Vec::new();
    for m in &mut moved {
        let heard = m
            .student
            .pump_until(WAIT, |p| {
                voice_mid(p).is_some_and(|mid| p.received_on(&mid) >= 10)
            })
            .await;
        assert!(
            heard,
            "the teacher's voice in each room: {:?}",
            m.student.messages
        );
        mids.push(voice_mid(&m.student).expect("a voice track"));
    }
    println!(
        "teacher's voice in both rooms within {} ms",
        on_at.elapsed().as_millis()
    );

    let reply = teacher
        .request(ClientMessage::SpeakToBreakouts { on: false })
        .await;
    assert!(matches!(reply, ServerMessage::Ok { .. }), "{reply:?}");
    for (m, mid) in moved.iter_mut().zip(&mids) {
        let ended = m.student.pump_until(WAIT, |p| p.ended.contains(mid)).await;
        assert!(ended, "the voice track ends when the teacher stops");
        let at_end = m.student.received_on(mid);
        m.student.pump(Duration::from_millis(600)).await;
        assert_eq!(
            m.student.received_on(mid),
            at_end,
            "nothing of the voice arrives after it stopped"
        );
    }

    // From a visit: the teacher goes to see the first room and speaks to all rooms from there;
    // the second room hears the voice (the first hears the teacher as one of its own).
    let reply = teacher
        .request(ClientMessage::VisitBreakout { room: Some(0) })
        .await;
    assert!(matches!(reply, ServerMessage::Ok { .. }), "{reply:?}");
    let mut visiting = follow_move(teacher, Sending::AUDIO_VIDEO, Vec::new()).await;
    let reply = visiting
        .student
        .request(ClientMessage::SpeakToBreakouts { on: true })
        .await;
    assert!(matches!(reply, ServerMessage::Ok { .. }), "{reply:?}");
    let voices = |p: &Participant| {
        p.messages
            .iter()
            .filter(|m| matches!(m, ServerMessage::VoiceTrack { .. }))
            .count()
    };
    let before = voices(&moved[1].student);
    // The m-line may be the one the voice had before: frames beyond what came then.
    let (old_mid, old_frames) = (mids[1].clone(), moved[1].student.received_on(&mids[1]));
    let heard = moved[1]
        .student
        .pump_until(WAIT, |p| {
            let mid = p.messages.iter().rev().find_map(|m| match m {
                ServerMessage::VoiceTrack { mid } => Some(mid.clone()),
                _ => None,
            });
            let already = |mid: &str| if mid == old_mid { old_frames } else { 0 };
            voices(p) > before && mid.is_some_and(|mid| p.received_on(&mid) > already(&mid))
        })
        .await;
    assert!(
        heard,
        "the other room hears the visiting teacher: {:?}",
        moved[1].student.messages
    );
    visiting.student.pump(Duration::from_millis(100)).await;
}
