//! A room on a virtual clock for the room core's tests: participants join and speak through
//! `handle_input`, and each step's outputs come back as a list.

use std::time::{Duration, Instant};

use classroom_protocol::signal::{ClientMessage, ParticipantId, ServerMessage};
use classroom_protocol::{CourseId, ErrorCode, LessonId, ParticipantRole, RoomName};

use super::{ConnectionId, Input, Output, Room, RoomConfig, test_claims};

pub(super) struct Class {
    pub room: Room,
    pub lesson: LessonId,
    pub start: Instant,
    pub now: Instant,
}

impl Class {
    pub fn new(lesson: LessonId) -> Self {
        Self::with_room(lesson, |room| room)
    }

    /// A class whose room `setup` configures (board limits, media).
    pub fn with_room(lesson: LessonId, setup: impl FnOnce(Room) -> Room) -> Self {
        let now = Instant::now();
        let room = Room::new(
            RoomName::for_lesson(lesson),
            lesson,
            RoomConfig::default(),
            now,
        );
        Class {
            room: setup(room),
            lesson,
            start: now,
            now,
        }
    }

    /// Moves the virtual clock to `ms` after the start.
    pub fn at(&mut self, ms: u64) {
        self.now = self.start + Duration::from_millis(ms);
    }

    pub fn input(&mut self, input: Input) -> Vec<Output> {
        self.room.handle_input(self.now, input);
        std::iter::from_fn(|| self.room.poll_output()).collect()
    }

    /// Joins `user` on connection `user` (a teacher starts the lesson unless `go_live` is
    /// false); the participant and everything the join gave.
    pub fn enter(
        &mut self,
        user: i64,
        role: ParticipantRole,
        go_live: bool,
    ) -> (ParticipantId, Vec<Output>) {
        let claims = test_claims(user, role, self.lesson, CourseId(1), &format!("j{user}"));
        let out = self.input(Input::Join {
            connection: ConnectionId(user as u64),
            id: None,
            claims: Box::new(claims),
            opened_at: Some(self.now),
            edge: None,
            go_live,
        });
        let id = out
            .iter()
            .find_map(|o| match o {
                Output::JoinDecided { result: Ok(id), .. } => Some(*id),
                _ => None,
            })
            .unwrap_or_else(|| panic!("not joined: {out:?}"));
        (id, out)
    }

    /// Joins `user`; the participant and the `joined` snapshot they got.
    pub fn join(&mut self, user: i64, role: ParticipantRole) -> (ParticipantId, ServerMessage) {
        let (id, out) = self.enter(user, role, true);
        (id, snapshot(out, id))
    }

    /// A message of `from`, with request id 7.
    pub fn say(&mut self, from: ParticipantId, message: ClientMessage) -> Vec<Output> {
        self.input(Input::Message {
            participant: from,
            connection: ConnectionId(from.0 + 1000),
            id: Some(7),
            message,
        })
    }

    /// Answers the timeout if it is due by now.
    pub fn tick(&mut self) -> Vec<Output> {
        match self.room.poll_timeout() {
            Some(at) if at <= self.now => self.input(Input::Timeout),
            _ => Vec::new(),
        }
    }
}

/// The `joined` snapshot sent to `id` in `out`.
pub fn snapshot(out: Vec<Output>, id: ParticipantId) -> ServerMessage {
    out.into_iter()
        .find_map(|o| match o {
            Output::Send {
                to,
                message: message @ ServerMessage::Joined { .. },
            } if to == id => Some(message),
            _ => None,
        })
        .expect("a snapshot")
}

/// The error code of the first refusal sent in `out`.
pub fn refusal(out: &[Output]) -> Option<ErrorCode> {
    out.iter().find_map(|o| match o {
        Output::Send {
            message: ServerMessage::Error { code, .. },
            ..
        } => Some(*code),
        _ => None,
    })
}
