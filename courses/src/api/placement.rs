//! Where a lesson's room lives when the school runs several nodes. The API only asks; the
//! server's cluster (Redis) answers: the room's home node, placed on the least-loaded node at
//! the first join and held by a lease while it is open. Without a cluster every room is here.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use classroom_protocol::LessonId;

/// The node that holds a lesson's room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Home {
    /// This node: signal at `signaling_path`.
    Here,
    /// Another node: open its signaling WebSocket at this URL (`wss://node2.example/ws`).
    Elsewhere { signaling_url: String },
}

/// Why no home could be found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    /// Redis does not answer, or no node is up: new lessons wait until it does.
    #[error("the school's servers cannot place the lesson right now; try again in a moment")]
    Unavailable,
}

pub type PlacementFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Home, PlacementError>> + Send + 'a>>;

/// Finds (or chooses) the home node of a lesson's room.
pub trait RoomPlacement: Send + Sync + 'static {
    fn home(&self, lesson: LessonId) -> PlacementFuture<'_>;
}

/// The placement the API asks; `None` in [`super::ApiState`] means a single node.
#[derive(Clone)]
pub struct Placement(pub Arc<dyn RoomPlacement>);

impl std::fmt::Debug for Placement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Placement")
    }
}
