//! Typed identifiers. Database rows use 64-bit integer keys; on the wire they are JSON numbers.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

macro_rules! int_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = std::num::ParseIntError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map($name)
            }
        }
    };
}

int_id!(
    /// A user account (admin, teacher or student) of the school.
    UserId
);
int_id!(
    /// A course: the unit of enrollment and of the replay library.
    CourseId
);
int_id!(
    /// A scheduled lesson of a course; its live session is a room.
    LessonId
);
int_id!(
    /// A replay (VOD asset) in a course's library.
    ReplayId
);
int_id!(
    /// A document (slides, a handout) in a course's materials.
    DocumentId
);

/// The name of a room: the live session of one lesson.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct RoomName(String);

impl RoomName {
    /// The room of a lesson. One lesson has exactly one room, so the name is derived.
    pub fn for_lesson(lesson: LessonId) -> Self {
        RoomName(format!("lesson-{lesson}"))
    }

    /// The lesson a room belongs to, if the name is one of ours (a lesson's main room; a
    /// breakout room answers [`RoomName::breakout`]).
    pub fn lesson(&self) -> Option<LessonId> {
        self.0.strip_prefix("lesson-")?.parse().ok()
    }

    /// Breakout room `index` (from 0) of round `round` of a lesson: a room of its own. The
    /// round is in the name so that a closed round's rooms (kept ended) never collide with
    /// the next one's.
    pub fn for_breakout(lesson: LessonId, round: u32, index: u32) -> Self {
        RoomName(format!("lesson-{lesson}-breakout-{round}-{index}"))
    }

    /// The lesson, round and index of a breakout room's name.
    pub fn breakout(&self) -> Option<(LessonId, u32, u32)> {
        let rest = self.0.strip_prefix("lesson-")?;
        let (lesson, rest) = rest.split_once("-breakout-")?;
        let (round, index) = rest.split_once('-')?;
        Some((
            lesson.parse().ok()?,
            round.parse().ok()?,
            index.parse().ok()?,
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One peer connection of a participant in the media plane, chosen by signaling: a session,
/// not a user (a user in two tabs is two peers). Never reused, so a stale notice about a
/// removed peer cannot be mistaken for a newer one. Signaling and the SFU both name peers
/// with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PeerId(pub u64);

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "peer{}", self.0)
    }
}

/// The media identification of an m-line (`a=mid:`) in one peer's session.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Mid(String);

impl Mid {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Mid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Mid {
    fn from(value: &str) -> Self {
        Mid(value.to_owned())
    }
}

impl From<String> for Mid {
    fn from(value: String) -> Self {
        Mid(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_name_round_trips_its_lesson() {
        let room = RoomName::for_lesson(LessonId(42));
        assert_eq!(room.as_str(), "lesson-42");
        assert_eq!(room.lesson(), Some(LessonId(42)));
        assert_eq!(RoomName("elsewhere".into()).lesson(), None);
        let breakout = RoomName::for_breakout(LessonId(42), 2, 5);
        assert_eq!(breakout.as_str(), "lesson-42-breakout-2-5");
        assert_eq!(breakout.breakout(), Some((LessonId(42), 2, 5)));
        assert_eq!(
            breakout.lesson(),
            None,
            "a breakout room is not the lesson's room"
        );
        assert_eq!(room.breakout(), None);
    }

    #[test]
    fn ids_are_plain_numbers_on_the_wire() {
        assert_eq!(serde_json::to_string(&UserId(7)).ok().as_deref(), Some("7"));
        let id: CourseId = serde_json::from_str("12").expect("a number is a course id");
        assert_eq!(id, CourseId(12));
        assert_eq!(serde_json::to_string(&PeerId(3)).ok().as_deref(), Some("3"));
        assert_eq!(
            serde_json::to_string(&Mid::from("1")).ok().as_deref(),
            Some(r#""1""#)
        );
    }
}
