//! Going live: a teacher who joins holding the lesson back is in the room, students see that
//! it has not started and get no media, and Go live starts it for everyone at once.

use std::time::Instant;

use classroom_protocol::signal::{ClientMessage, ParticipantId, ServerMessage};
use classroom_protocol::{CourseId, ErrorCode, LessonId, ParticipantRole, TrackSource};

use super::*;
use crate::media::{PeerAccess, PeerId, PeerIds};

const LESSON: LessonId = LessonId(12);

struct Class {
    room: Room,
    now: Instant,
}

impl Class {
    fn new() -> Self {
        let now = Instant::now();
        let room = Room::new(
            RoomName::for_lesson(LESSON),
            LESSON,
            RoomConfig::default(),
            now,
        )
        .with_media(PeerIds::default());
        Class { room, now }
    }

    fn input(&mut self, input: Input) -> Vec<Output> {
        self.room.handle_input(self.now, input);
        std::iter::from_fn(|| self.room.poll_output()).collect()
    }

    /// Joins `user` on connection `user`; the participant and everything the join gave.
    fn join(
        &mut self,
        user: i64,
        role: ParticipantRole,
        go_live: bool,
    ) -> (ParticipantId, Vec<Output>) {
        let claims = test_claims(user, role, LESSON, CourseId(1), &format!("g{user}"));
        let out = self.input(Input::Join {
            connection: ConnectionId(user as u64),
            id: None,
            claims: Box::new(claims),
            opened_at: Some(self.now),
            edge: None,
            go_live,
        });
        let Some(Output::JoinDecided { result: Ok(id), .. }) = out.first() else {
            panic!("the join is decided first: {out:?}")
        };
        (*id, out)
    }

    fn say(&mut self, from: ParticipantId, user: i64, message: ClientMessage) -> Vec<Output> {
        self.input(Input::Message {
            participant: from,
            connection: ConnectionId(user as u64),
            id: Some(3),
            message,
        })
    }

    /// Opens a media peer publishing a camera; the access it was opened with.
    fn open(&mut self, from: ParticipantId, user: i64) -> (PeerId, PeerAccess) {
        let offer = ClientMessage::Offer {
            sdp: "v=0".into(),
            sources: [("0".to_string(), TrackSource::Camera)].into(),
        };
        let out = self.say(from, user, offer);
        let Some((request, peer, access)) = out.iter().find_map(|o| match o {
            Output::ToMedia(MediaCommand::AddPeer {
                request,
                peer,
                access,
                ..
            }) => Some((*request, *peer, *access)),
            _ => None,
        }) else {
            panic!("no peer asked for: {out:?}")
        };
        self.input(Input::MediaReply(MediaReply::Answer {
            request,
            result: Ok("answer".into()),
        }));
        (peer, access)
    }
}

fn live_in(joined: &[Output]) -> Option<bool> {
    joined.iter().find_map(|o| match o {
        Output::Send {
            message: ServerMessage::Joined { live, .. },
            ..
        } => Some(*live),
        _ => None,
    })
}

fn went_live(out: &[Output]) -> bool {
    out.contains(&Output::Lesson(LessonEffect::WentLive(LESSON)))
}

fn heard_live(out: &[Output]) -> bool {
    out.contains(&Output::Broadcast {
        except: None,
        message: ServerMessage::LessonLive,
    })
}

#[test]
fn a_teacher_who_holds_the_lesson_back_forwards_nothing_until_go_live() {
    let mut class = Class::new();
    let (teacher, out) = class.join(1, ParticipantRole::Teacher, false);
    assert_eq!(live_in(&out), Some(false));
    assert!(!went_live(&out), "{out:?}");
    let (student, out) = class.join(2, ParticipantRole::Student, true);
    assert_eq!(
        live_in(&out),
        Some(false),
        "a student's join starts nothing"
    );
    assert!(!went_live(&out));

    // The teacher's camera is negotiated (a preview, a sound check) but not forwarded.
    let (peer, access) = class.open(teacher, 1);
    assert!(
        !access.publish,
        "nothing is forwarded before the lesson is live"
    );

    let out = class.say(teacher, 1, ClientMessage::GoLive);
    assert!(went_live(&out) && heard_live(&out), "{out:?}");
    assert!(
        out.contains(&Output::ToMedia(MediaCommand::SetPublishAllowed {
            peer,
            allowed: true
        })),
        "the teacher's media flows from now: {out:?}"
    );
    assert!(out.contains(&Output::Send {
        to: teacher,
        message: ServerMessage::Ok { id: 3 }
    }));

    // Pressing it again changes nothing; a late joiner hears that the lesson is live.
    let again = class.say(teacher, 1, ClientMessage::GoLive);
    assert!(!went_live(&again) && !heard_live(&again), "{again:?}");
    let (_, out) = class.join(3, ParticipantRole::Student, true);
    assert_eq!(live_in(&out), Some(true));
    let _ = student;
}

#[test]
fn students_cannot_start_the_lesson() {
    let mut class = Class::new();
    class.join(1, ParticipantRole::Teacher, false);
    let (student, _) = class.join(2, ParticipantRole::Student, true);
    let out = class.say(student, 2, ClientMessage::GoLive);
    assert!(!went_live(&out) && !heard_live(&out));
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Send {
            message: ServerMessage::Error {
                code: ErrorCode::MissingGrant,
                ..
            },
            ..
        }
    )));
}

#[test]
fn a_teacher_who_does_not_hold_it_back_starts_it_on_joining_and_a_reload_keeps_it_live() {
    let mut class = Class::new();
    let (teacher, out) = class.join(1, ParticipantRole::Teacher, true);
    assert!(went_live(&out) && heard_live(&out));
    assert_eq!(live_in(&out), Some(true), "the snapshot says so already");
    let (_, access) = class.open(teacher, 1);
    assert!(access.publish);

    // The page reloads and joins holding back: the lesson stays live.
    class.input(Input::Disconnected {
        participant: teacher,
        connection: ConnectionId(1),
    });
    let (_, out) = class.join(1, ParticipantRole::Teacher, false);
    assert_eq!(live_in(&out), Some(true));
    assert!(!went_live(&out));
}
