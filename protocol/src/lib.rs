//! The wire vocabulary of classroom.
//!
//! Everything a client and `classroomd` exchange is named here once: typed IDs, account and
//! participant roles, the grants a join token carries, the JSON error body every endpoint
//! returns, the signaling error codes ([`ErrorCode`]), who may be in a room and why not ([`AccessDenied`], with its close codes), the
//! RFC 4571 framing of media over ICE-TCP ([`tcp_framing`]), and which addresses the server
//! may connect out to ([`outbound`]). The crate depends on serde, thiserror and ipnet only
//! (plus utoipa behind the `openapi` feature), so the load tester and other black-box clients
//! can use it without pulling in the server.
//!
//! Invariants:
//! - IDs are newtypes; a `UserId` can never be passed where a `CourseId` is expected.
//! - Grants are derived from a participant role by [`Grants::for_role`] and are the only source
//!   of truth for what a participant may do in a room.

mod access;
pub mod board;
pub mod breakout;
mod error;
mod error_code;
mod grants;
mod ids;
pub mod outbound;
pub mod poll;
mod roles;
pub mod signal;
pub mod tcp_framing;
mod token;

pub use access::{AccessChange, AccessDenied, CloseReason};
pub use error::{ErrorBody, ErrorDetail};
pub use error_code::ErrorCode;
pub use grants::{Grants, TrackSource};
pub use ids::{CourseId, DocumentId, LessonId, Mid, PeerId, ReplayId, RoomName, UserId};
pub use roles::{ParticipantRole, UserRole};
pub use token::{JOIN_TOKEN_AUDIENCE, JoinClaims};

/// Version of the signaling protocol; every WebSocket message carries it as `"v"`.
pub const PROTOCOL_VERSION: u32 = 1;
