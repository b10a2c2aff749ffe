//! The claims of a join token: a short-lived JWT that admits one user to one room.

use serde::{Deserialize, Serialize};

use crate::{CourseId, Grants, LessonId, ParticipantRole, RoomName, UserId};

/// The `aud` claim of join tokens, so a join token is never accepted as an API session token
/// and the other way round.
pub const JOIN_TOKEN_AUDIENCE: &str = "classroom-room";

/// What a join token says: who the user is, which room, and with which grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinClaims {
    /// The user, as a decimal string (JWT convention).
    pub sub: String,
    pub aud: String,
    /// Issued at, seconds since the Unix epoch.
    pub iat: u64,
    /// Expires at, seconds since the Unix epoch.
    pub exp: u64,
    /// A unique token id, so a removed participant's token can be refused.
    pub jti: String,
    pub name: String,
    pub room: RoomName,
    pub lesson: LessonId,
    pub course: CourseId,
    pub role: ParticipantRole,
    pub grants: Grants,
}

impl JoinClaims {
    pub fn user(&self) -> Option<UserId> {
        self.sub.parse().ok()
    }
}
