//! Attendance: the facts a school's attendance report is made of, reported as they happen
//! ([`Output::Attendance`]). A user joined (with their role) or left, went on or off the
//! stage, raised a hand, sent a chat message. The room says what happened and to whom; the
//! server stamps the wall time and stores it (`server/src/attendance.rs`).
//!
//! A user is present from their `Joined` to their `Left`, which comes only when their place
//! is given up (they leave, a moderator removes them, their reconnect grace runs out, their
//! access is revoked, the lesson ends): a dropped connection that comes back within the grace
//! time is one interval, as it is one place. The RTMP encoder is not a user of its own (it
//! shares its teacher's id) and is not reported.

use classroom_protocol::signal::{LeaveReason, ParticipantId};
use classroom_protocol::{ParticipantRole, UserId};

use super::{Output, Room};

/// One attendance fact about one user of the room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttendanceEvent {
    /// The user took a place in the room (not reported again for a reconnect or second tab).
    Joined { user: UserId, role: ParticipantRole },
    /// The user's place is given up; their stage time, if any, ends too.
    Left { user: UserId, reason: LeaveReason },
    /// A moderator brought the student on stage (`true`), or they left it (`false`).
    /// Teachers' and assistants' place on the stage is their role's and is not reported.
    Stage { user: UserId, on_stage: bool },
    /// The user raised their hand (lowering it is not counted).
    HandRaised { user: UserId },
    /// The user sent a chat message that everyone received.
    ChatSent { user: UserId },
    /// The student went to breakout room `room` (from 0), or back to the main room (`None`).
    Breakout { user: UserId, room: Option<u32> },
}

impl AttendanceEvent {
    /// The user the fact is about.
    pub fn user(&self) -> UserId {
        match self {
            AttendanceEvent::Joined { user, .. }
            | AttendanceEvent::Left { user, .. }
            | AttendanceEvent::Stage { user, .. }
            | AttendanceEvent::HandRaised { user }
            | AttendanceEvent::ChatSent { user }
            | AttendanceEvent::Breakout { user, .. } => *user,
        }
    }
}

impl Room {
    /// The user a participant stands for in attendance: `None` for the encoder (and for
    /// nobody).
    pub(super) fn attendee(&self, participant: ParticipantId) -> Option<UserId> {
        let p = self.participants.get(&participant)?;
        let user = p.info.user_id;
        (self.by_user.get(&user) == Some(&participant)).then_some(user)
    }

    /// Reports `event` about `participant`, if they are an attendee; `event` builds it.
    pub(super) fn attended(
        &self,
        participant: ParticipantId,
        event: impl FnOnce(UserId) -> AttendanceEvent,
        out: &mut Vec<Output>,
    ) {
        if let Some(user) = self.attendee(participant) {
            out.push(Output::Attendance(event(user)));
        }
    }
}
