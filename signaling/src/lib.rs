//! WebSocket signaling of classroom: rooms (the live session of a lesson), participants,
//! their grants, and the teacher's controls (stage, hand queue, mute, remove, chat lock, end).
//!
//! Layers: [`room`] is the state machine with no I/O (time is an argument; inputs in,
//! outputs out); [`driver`] runs one tokio task per room that pumps it; [`session`] runs one
//! WebSocket connection. Messages are the
//! `classroom_protocol::signal` types, documented in `docs/protocol.md`.
//!
//! Invariants:
//! - Every client action is checked against the participant's live grants in the room task;
//!   refused actions change nothing and are answered with an error naming the grant.
//! - Media goes through the [`MediaPort`] trait with our own IDs and SDP strings; a peer is
//!   per connection, added with the participant's publish permission in force, and every
//!   grant change reaches the media plane before the participants hear of it.
//! - Network input never panics: bad JSON, unknown types, oversized or too frequent messages
//!   are answered with errors; the connection of a client that cannot keep up is closed.

pub mod driver;
pub mod limits;
pub mod media;
pub mod room;
pub mod session;
pub mod stats;

pub use driver::{
    AdmitError, DocumentCheck, Publisher, RoomEvent, RoomStates, Rooms, SignalingConfig,
    TokenVerifier,
};
pub use media::{MediaError, MediaNotice, MediaPort, PeerAccess, PeerId, PeerIds};
pub use room::{
    AttendanceEvent, BoardChange, EncoderError, EncoderIdentity, KeptBoard, KeptStroke,
    LessonEffect, MediaEffect, RecordingEffect, RoomActivity, RoomConfig, RoomState,
};
pub use session::{HomeFrame, HomeGone, HomeLink, InvalidToken, run_session, serve, serve_relayed};
pub use stats::SignalingSnapshot;
