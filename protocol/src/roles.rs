//! Roles: what an account is in the school, and what a participant is in a room.

use serde::{Deserialize, Serialize};

/// The role of a user account in the school.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum UserRole {
    /// Manages users, courses and enrollments of the whole school.
    Admin,
    /// Creates courses, schedules and teaches lessons.
    Teacher,
    /// Is enrolled in courses and attends lessons.
    Student,
}

impl UserRole {
    pub const ALL: [UserRole; 3] = [UserRole::Admin, UserRole::Teacher, UserRole::Student];

    pub fn as_str(self) -> &'static str {
        match self {
            UserRole::Admin => "admin",
            UserRole::Teacher => "teacher",
            UserRole::Student => "student",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// The role of a participant in one room (the live session of a lesson).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ParticipantRole {
    /// A teacher of the course: publishes and runs the room.
    Teacher,
    /// Helps the teacher run the room.
    Assistant,
    /// An enrolled student: watches, listens, chats; publishes only on stage.
    Student,
    /// Watches only.
    Observer,
}
