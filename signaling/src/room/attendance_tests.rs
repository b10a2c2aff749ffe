//! Attendance in the room core, on a virtual clock: one interval per place (a reconnect within
//! the grace time is not a leave), a leave for every way a place is given up, and the
//! engagement facts (stage, hands, chat) reported once each and only when they happened.

use std::time::{Duration, Instant};

use classroom_protocol::signal::{ClientMessage, LeaveReason, ParticipantId};
use classroom_protocol::{CourseId, LessonId, ParticipantRole, UserId};

use super::*;

const LESSON: LessonId = LessonId(20);

struct Class {
    room: Room,
    now: Instant,
}

impl Class {
    fn new() -> Self {
        let now = Instant::now();
        let name = RoomName::for_lesson(LESSON);
        Class {
            room: Room::new(name, LESSON, RoomConfig::default(), now),
            now,
        }
    }

    fn input(&mut self, input: Input) -> Vec<AttendanceEvent> {
        self.room.handle_input(self.now, input);
        std::iter::from_fn(|| self.room.poll_output())
            .filter_map(|o| match o {
                Output::Attendance(event) => Some(event),
                _ => None,
            })
            .collect()
    }

    /// Joins `user` on connection `connection`; returns the participant and what attendance
    /// heard.
    fn join_on(
        &mut self,
        user: i64,
        role: ParticipantRole,
        connection: u64,
    ) -> (ParticipantId, Vec<AttendanceEvent>) {
        let claims = test_claims(user, role, LESSON, CourseId(1), &format!("j{connection}"));
        let events = self.input(Input::Join {
            connection: ConnectionId(connection),
            id: None,
            claims: Box::new(claims),
            opened_at: Some(self.now),
            edge: None,
            go_live: true,
        });
        let id = self
            .room
            .by_user
            .get(&UserId(user))
            .copied()
            .expect("the user has a place");
        (id, events)
    }

    fn say(&mut self, from: ParticipantId, message: ClientMessage) -> Vec<AttendanceEvent> {
        let connection = self.room.participants[&from]
            .connection
            .expect("a connected participant");
        self.input(Input::Message {
            participant: from,
            connection,
            id: Some(1),
            message,
        })
    }

    fn drop_connection(&mut self, participant: ParticipantId) -> Vec<AttendanceEvent> {
        let connection = self.room.participants[&participant]
            .connection
            .expect("a connected participant");
        self.input(Input::Disconnected {
            participant,
            connection,
        })
    }

    fn advance(&mut self, by: Duration) -> Vec<AttendanceEvent> {
        self.now += by;
        match self.room.poll_timeout() {
            Some(at) if at <= self.now => self.input(Input::Timeout),
            _ => Vec::new(),
        }
    }
}

fn joined(user: i64, role: ParticipantRole) -> AttendanceEvent {
    AttendanceEvent::Joined {
        user: UserId(user),
        role,
    }
}

fn left(user: i64, reason: LeaveReason) -> AttendanceEvent {
    AttendanceEvent::Left {
        user: UserId(user),
        reason,
    }
}

#[test]
fn a_reconnect_within_the_grace_time_is_one_interval() {
    let mut class = Class::new();
    let grace = RoomConfig::default().reconnect_grace;
    let (sam, events) = class.join_on(2, ParticipantRole::Student, 10);
    assert_eq!(events, vec![joined(2, ParticipantRole::Student)]);

    // Dropped, and back just before the grace time runs out: nothing to report.
    assert_eq!(class.drop_connection(sam), vec![]);
    assert_eq!(class.advance(grace - Duration::from_secs(1)), vec![]);
    let (again, events) = class.join_on(2, ParticipantRole::Student, 11);
    assert_eq!(again, sam);
    assert_eq!(events, vec![], "a reconnect is not a new interval");
    // Nor is a second tab.
    let (_, events) = class.join_on(2, ParticipantRole::Student, 12);
    assert_eq!(events, vec![]);

    // Dropped for good: the place is given up when the grace time ends, not before.
    assert_eq!(class.drop_connection(sam), vec![]);
    assert_eq!(class.advance(grace - Duration::from_secs(1)), vec![]);
    assert_eq!(
        class.advance(Duration::from_secs(1)),
        vec![left(2, LeaveReason::TimedOut)]
    );
    // Coming back after that is a new interval.
    let (_, events) = class.join_on(2, ParticipantRole::Student, 13);
    assert_eq!(events, vec![joined(2, ParticipantRole::Student)]);
}

#[test]
fn every_way_of_giving_up_a_place_reports_a_leave_with_its_reason() {
    let mut class = Class::new();
    let (tess, events) = class.join_on(1, ParticipantRole::Teacher, 1);
    assert_eq!(events, vec![joined(1, ParticipantRole::Teacher)]);
    let (sam, _) = class.join_on(2, ParticipantRole::Student, 2);
    let (olga, _) = class.join_on(3, ParticipantRole::Student, 3);
    let (_ida, _) = class.join_on(4, ParticipantRole::Student, 4);
    let (_ann, _) = class.join_on(5, ParticipantRole::Assistant, 5);

    assert_eq!(
        class.say(sam, ClientMessage::Leave),
        vec![left(2, LeaveReason::Left)]
    );
    assert_eq!(
        class.say(tess, ClientMessage::RemoveParticipant { participant: olga }),
        vec![left(3, LeaveReason::Removed)]
    );
    // A student may not remove anyone: refused, and nothing is reported.
    let (sam, _) = class.join_on(2, ParticipantRole::Student, 6);
    let tess_id = tess;
    assert_eq!(
        class.say(
            sam,
            ClientMessage::RemoveParticipant {
                participant: tess_id
            }
        ),
        vec![]
    );
    // The lesson's end closes everyone's interval, the teacher's included.
    let mut ended = class.say(tess, ClientMessage::EndLesson);
    ended.sort_by_key(AttendanceEvent::user);
    assert_eq!(
        ended,
        vec![
            left(1, LeaveReason::LessonEnded),
            left(2, LeaveReason::LessonEnded),
            left(4, LeaveReason::LessonEnded),
            left(5, LeaveReason::LessonEnded),
        ]
    );
}

#[test]
fn a_revoked_account_leaves_with_its_reason() {
    let mut class = Class::new();
    class.join_on(2, ParticipantRole::Student, 2);
    let events = class.input(Input::Revoke {
        user: UserId(2),
        why: classroom_protocol::AccessDenied::AccountDisabled,
    });
    assert_eq!(events, vec![left(2, LeaveReason::Revoked)]);
}

#[test]
fn stage_hands_and_chat_are_reported_once_each_and_only_when_they_happened() {
    let mut class = Class::new();
    let (tess, _) = class.join_on(1, ParticipantRole::Teacher, 1);
    let (sam, _) = class.join_on(2, ParticipantRole::Student, 2);
    let hand = AttendanceEvent::HandRaised { user: UserId(2) };
    let stage = |on_stage| AttendanceEvent::Stage {
        user: UserId(2),
        on_stage,
    };

    assert_eq!(class.say(sam, ClientMessage::RaiseHand), vec![hand.clone()]);
    // Raising a raised hand is not a second hand.
    assert_eq!(class.say(sam, ClientMessage::RaiseHand), vec![]);
    assert_eq!(
        class.say(sam, ClientMessage::LowerHand { participant: None }),
        vec![]
    );
    assert_eq!(class.say(sam, ClientMessage::RaiseHand), vec![hand]);

    assert_eq!(
        class.say(tess, ClientMessage::InviteToStage { participant: sam }),
        vec![stage(true)]
    );
    // Already on stage: nothing new.
    assert_eq!(
        class.say(tess, ClientMessage::InviteToStage { participant: sam }),
        vec![]
    );
    assert_eq!(
        class.say(sam, ClientMessage::LeaveStage),
        vec![stage(false)]
    );
    // A teacher's place on the stage is their role's: leaving it reports nothing.
    assert_eq!(class.say(tess, ClientMessage::LeaveStage), vec![]);
    class.say(tess, ClientMessage::InviteToStage { participant: sam });
    assert_eq!(
        class.say(tess, ClientMessage::RemoveFromStage { participant: sam }),
        vec![stage(false)]
    );

    let chat = |text: &str| ClientMessage::Chat { text: text.into() };
    assert_eq!(
        class.say(sam, chat("hello")),
        vec![AttendanceEvent::ChatSent { user: UserId(2) }]
    );
    // Refused messages are not counted: empty, or while the chat is locked.
    assert_eq!(class.say(sam, chat("   ")), vec![]);
    class.say(tess, ClientMessage::LockChat { locked: true });
    assert_eq!(class.say(sam, chat("still here?")), vec![]);
    assert_eq!(
        class.say(tess, chat("yes")),
        vec![AttendanceEvent::ChatSent { user: UserId(1) }]
    );
}

#[test]
fn the_teachers_encoder_is_not_an_attendee() {
    let mut class = Class::new();
    let (_, events) = class.join_on(1, ParticipantRole::Teacher, 1);
    assert_eq!(events, vec![joined(1, ParticipantRole::Teacher)]);
    let identity = EncoderIdentity {
        user: UserId(1),
        name: "user 1 (encoder)".into(),
    };
    // The encoder shares its teacher's user id: its coming and going is not theirs.
    let (encoder, out) = class.room.encoder_started(&identity).expect("starts");
    assert!(!out.iter().any(|o| matches!(o, Output::Attendance(_))));
    let out = class
        .room
        .encoder_changed(classroom_protocol::signal::EncoderState::Stopped, None);
    assert!(!out.iter().any(|o| matches!(o, Output::Attendance(_))));
    assert!(class.room.grants(encoder).is_none(), "the encoder is gone");
    assert!(
        class.room.by_user.contains_key(&UserId(1)),
        "its teacher is not"
    );
}
