//! Who may be in a lesson's room, as the database says: why someone may not (or may no
//! longer) be there, with the error code and the WebSocket close code each reason is known by
//! ([`AccessDenied`], [`CloseReason`]), and the changes the courses layer announces to the live
//! rooms the moment they are stored ([`AccessChange`]).
//!
//! `AccessChange` never crosses the wire: it lives here because the courses layer (which
//! sends it) and signaling (which follows it) both depend on this crate and on nothing of
//! each other.

use crate::{CourseId, ErrorCode, LessonId, UserId};

/// Why a user may not be in a lesson's room, by what the database holds now. A join token
/// issued before the change is refused for the same reason, and a user already in the room
/// is closed out with [`AccessDenied::close_code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccessDenied {
    /// A moderator removed the user from this lesson; a teacher of the course can let them
    /// back in.
    RemovedFromLesson,
    /// The account is disabled.
    AccountDisabled,
    /// The user is no longer enrolled in (or teaching) the lesson's course.
    NotAMember,
    /// The lesson has ended.
    LessonEnded,
    /// The lesson was cancelled.
    LessonCancelled,
}

impl AccessDenied {
    /// The error code (in signaling `error` messages and in REST error bodies).
    pub fn code(self) -> &'static str {
        self.error_code().as_str()
    }

    /// The signaling error code, the same as [`AccessDenied::code`].
    pub fn error_code(self) -> ErrorCode {
        match self {
            AccessDenied::RemovedFromLesson => ErrorCode::RemovedFromLesson,
            AccessDenied::AccountDisabled => ErrorCode::AccountDisabled,
            AccessDenied::NotAMember => ErrorCode::NotAMember,
            AccessDenied::LessonEnded => ErrorCode::LessonEnded,
            AccessDenied::LessonCancelled => ErrorCode::LessonCancelled,
        }
    }

    /// The WebSocket close code (4000-4999 are the application's; see docs/protocol.md).
    pub fn close_code(self) -> u16 {
        match self {
            AccessDenied::RemovedFromLesson => 4001,
            AccessDenied::AccountDisabled => 4002,
            AccessDenied::NotAMember => 4003,
            AccessDenied::LessonEnded => 4004,
            AccessDenied::LessonCancelled => 4005,
        }
    }

    /// What to tell the person.
    pub fn message(self) -> &'static str {
        match self {
            AccessDenied::RemovedFromLesson => {
                "a teacher removed you from this lesson; ask them to let you back in"
            }
            AccessDenied::AccountDisabled => {
                "this account is disabled; ask the school's administrator"
            }
            AccessDenied::NotAMember => "you are no longer a teacher or student of this course",
            AccessDenied::LessonEnded => "the lesson has ended",
            AccessDenied::LessonCancelled => "the lesson was cancelled",
        }
    }
}

/// Why the server closes a signaling WebSocket: the close frame carries [`CloseReason::code`]
/// and [`CloseReason::as_str`] as its reason text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// The participant left, or the room closed: 1000.
    Done,
    /// The same user joined again from another connection, which took the place: 4000.
    Replaced,
    /// The user may no longer be in the room: 4001-4005.
    Denied(AccessDenied),
    /// The server is going away (drained before a restart or an upgrade): join again at once,
    /// through the REST join, which names the node to use: 1012 (Service Restart).
    Draining,
}

impl CloseReason {
    pub fn code(self) -> u16 {
        match self {
            CloseReason::Done => 1000,
            CloseReason::Replaced => 4000,
            CloseReason::Denied(why) => why.close_code(),
            CloseReason::Draining => 1012,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Done => "closed by the room",
            CloseReason::Replaced => "replaced",
            CloseReason::Denied(why) => why.code(),
            CloseReason::Draining => "server_draining",
        }
    }
}

/// A change to who may be in lessons' rooms, announced by the courses layer once it is stored,
/// for the live rooms to follow at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccessChange {
    /// The account was disabled: the user leaves every room.
    AccountDisabled(UserId),
    /// The user no longer belongs to the course (unenrolled, or no longer one of its
    /// teachers): they leave the rooms of its lessons.
    LeftCourse { course: CourseId, user: UserId },
    /// The lesson was cancelled: everyone leaves its room.
    LessonCancelled(LessonId),
    /// A teacher let a removed user back into the lesson.
    Readmitted { lesson: LessonId, user: UserId },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_denial_has_its_own_application_close_code() {
        let all = [
            AccessDenied::RemovedFromLesson,
            AccessDenied::AccountDisabled,
            AccessDenied::NotAMember,
            AccessDenied::LessonEnded,
            AccessDenied::LessonCancelled,
        ];
        let mut codes: Vec<u16> = all.iter().map(|d| d.close_code()).collect();
        assert!(codes.iter().all(|c| (4001..5000).contains(c)), "{codes:?}");
        codes.dedup();
        assert_eq!(codes.len(), all.len());
        assert_eq!(CloseReason::Replaced.code(), 4000);
        assert_eq!(
            CloseReason::Denied(AccessDenied::NotAMember).as_str(),
            "not_a_member"
        );
    }
}
