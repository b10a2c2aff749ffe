//! Who may be in the room, as the courses layer stores it: a disabled account, a user no
//! longer in the course, a cancelled lesson and a user let back in reach the room as an
//! [`AccessChange`], and the room follows at once. The join re-checks the same things against
//! the database before it gets here (the driver's `TokenVerifier::admit`); this is for those
//! already in.

use classroom_protocol::signal::LeaveReason;
use classroom_protocol::{AccessChange, AccessDenied, CloseReason, UserId};

use super::{Output, Room};

impl Room {
    /// Follows a change to who may be here, stored by the courses layer: a disabled account or
    /// a user who left the course is closed out, a cancelled lesson closes the room, a user let
    /// back in may join again. Changes about other lessons, courses or absent users change
    /// nothing.
    pub(super) fn access_changed(&mut self, change: AccessChange) -> Vec<Output> {
        match change {
            AccessChange::AccountDisabled(user) => self.revoke(user, AccessDenied::AccountDisabled),
            AccessChange::LeftCourse { course, user } if self.course == Some(course) => {
                self.revoke(user, AccessDenied::NotAMember)
            }
            AccessChange::LessonCancelled(lesson) if lesson == self.lesson && !self.ended => {
                let mut out = Vec::new();
                self.end(AccessDenied::LessonCancelled, &mut out);
                out
            }
            AccessChange::Readmitted { lesson, user } if lesson == self.lesson => {
                self.removed_users.remove(&user);
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    /// Ends `user`'s place here at once, closing their connection with `why` (their media
    /// peer goes with them); the others see them leave, `revoked`.
    pub(super) fn revoke(&mut self, user: UserId, why: AccessDenied) -> Vec<Output> {
        let mut out = Vec::new();
        if let Some(participant) = self.by_user.get(&user).copied() {
            let reason = match why {
                AccessDenied::RemovedFromLesson => LeaveReason::Removed,
                AccessDenied::LessonEnded | AccessDenied::LessonCancelled => LeaveReason::Left,
                AccessDenied::AccountDisabled | AccessDenied::NotAMember => LeaveReason::Revoked,
            };
            self.remove(participant, reason, CloseReason::Denied(why), &mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use classroom_protocol::signal::ServerMessage;
    use classroom_protocol::{CourseId, JoinClaims, LessonId, ParticipantRole, RoomName};

    use super::*;
    use crate::room::{ConnectionId, JoinError, MediaEffect, RoomConfig};

    const LESSON: LessonId = LessonId(4);
    const COURSE: CourseId = CourseId(2);

    fn claims(user: i64, role: ParticipantRole) -> JoinClaims {
        crate::room::test_claims(user, role, LESSON, COURSE, &format!("t{user}"))
    }

    /// A room with a teacher (user 1, connection 1) and two students (users 2 and 3).
    fn room() -> Room {
        let mut room = Room::new(
            RoomName::for_lesson(LESSON),
            LESSON,
            RoomConfig::default(),
            Instant::now(),
        );
        for (user, role) in [
            (1, ParticipantRole::Teacher),
            (2, ParticipantRole::Student),
            (3, ParticipantRole::Student),
        ] {
            let connection = ConnectionId(u64::try_from(user).expect("small"));
            room.join(&claims(user, role), connection).expect("joins");
        }
        room
    }

    fn closes(out: &[Output]) -> Vec<(ConnectionId, CloseReason)> {
        out.iter()
            .filter_map(|o| match o {
                Output::Close { connection, why } => Some((*connection, *why)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_disabled_account_is_closed_out_with_its_reason_and_its_media_dropped() {
        let mut room = room();
        let out = room.access_changed(AccessChange::AccountDisabled(UserId(2)));
        assert_eq!(
            closes(&out),
            [(
                ConnectionId(2),
                CloseReason::Denied(AccessDenied::AccountDisabled)
            )]
        );
        assert!(
            out.iter()
                .any(|o| matches!(o, Output::Media(MediaEffect::ParticipantGone { .. })))
        );
        assert!(out.iter().any(|o| matches!(
            o,
            Output::Broadcast {
                message: ServerMessage::ParticipantLeft {
                    reason: LeaveReason::Revoked,
                    ..
                },
                ..
            }
        )));
        assert_eq!(room.participant_count(), 2);
        // Someone who is not here: nothing to do.
        assert!(
            room.access_changed(AccessChange::AccountDisabled(UserId(9)))
                .is_empty()
        );
    }

    #[test]
    fn leaving_the_course_closes_out_of_its_lessons_only() {
        let mut room = room();
        let other_course = AccessChange::LeftCourse {
            course: CourseId(99),
            user: UserId(3),
        };
        assert!(room.access_changed(other_course).is_empty());
        let this_course = AccessChange::LeftCourse {
            course: COURSE,
            user: UserId(3),
        };
        assert_eq!(
            closes(&room.access_changed(this_course)),
            [(
                ConnectionId(3),
                CloseReason::Denied(AccessDenied::NotAMember)
            )]
        );
        // Gone from the room: nothing they send is carried out any more.
        let student = room
            .participants()
            .iter()
            .find(|p| p.user_id == UserId(3))
            .map(|p| p.id);
        assert_eq!(student, None);
    }

    #[test]
    fn a_cancelled_lesson_closes_everyone_and_refuses_joins() {
        let mut room = room();
        assert!(
            room.access_changed(AccessChange::LessonCancelled(LessonId(5)))
                .is_empty(),
            "another lesson"
        );
        let out = room.access_changed(AccessChange::LessonCancelled(LESSON));
        let cancelled = CloseReason::Denied(AccessDenied::LessonCancelled);
        assert_eq!(
            closes(&out),
            [
                (ConnectionId(1), cancelled),
                (ConnectionId(2), cancelled),
                (ConnectionId(3), cancelled)
            ]
        );
        assert!(
            !out.iter().any(|o| matches!(o, Output::Lesson(_))),
            "the lesson is cancelled already: nothing to store"
        );
        assert!(room.is_ended());
        assert_eq!(
            room.join(&claims(2, ParticipantRole::Student), ConnectionId(20))
                .err(),
            Some(JoinError::LessonEnded)
        );
        let teacher = room.participants().first().map(|p| p.id);
        assert_eq!(teacher, None);
    }
}
